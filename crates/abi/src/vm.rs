//! The VM server's protocol with the kernel: page faults as messages, and the checked page
//! ranges and flags of the memory kernel calls.
//!
//! A user page fault blocks the faulting thread (`ThreadState::WaitingForVm`) and the
//! kernel sends VM a [`KIND_PAGE_FAULT`] message from `Endpoint::KERNEL` on its behalf. VM
//! maps memory with the memory kernel calls (`VmMap`, `VmUnmap`, `VmProtect`, `VmQuery`) and then either resumes the thread (`VmResume`: the faulting instruction runs
//! again) or fails the fault (`VmFail`: the fault becomes an exception for the process).
//! A system call that needs a user page that is not there yet is suspended the same way
//! ([`PageFault::system_call`]) and runs again once VM resumes it.
//! When a process exits the kernel tells VM with a [`KIND_PROCESS_EXIT`] message, so VM
//! drops its records of that process.

use crate::error::Error;
use crate::layout::{USER_END, USER_IMAGE_MIN};
use crate::message::Message;
use crate::syscall::Argument;
use crate::Endpoint;

/// Bytes in a page.
pub const PAGE_SIZE: u64 = 4096;
/// Most pages one memory kernel call maps, unmaps or protects: the kernel's work per call
/// stays bounded (a larger range takes several calls).
pub const MAX_PAGES_PER_CALL: u64 = 512;

/// Kernel → VM: a thread faulted. Payload: see [`PageFault`].
pub const KIND_PAGE_FAULT: u32 = 0xffff_0002;
/// Kernel → VM: a process exited; `payload[0]` is its pid.
pub const KIND_PROCESS_EXIT: u32 = 0xffff_0003;

pub use crate::message::KERNEL_KINDS_START;

/// Requests programs send the VM server (with `SendReceive`; the server is the boot process
/// named `vm`), and its reply. Every reply has kind [`request::REPLY`] and the outcome in
/// `payload[0]`: 0, or the `Error` code of the refusal.
pub mod request {
    /// `payload[0]` = bytes (a page multiple), `payload[1]` = 1 for writable, 0 for
    /// read-only → `payload[1]` = the base of a new demand-zero mapping.
    pub const MAP_ANONYMOUS: u32 = 0x0200_0001;
    /// `payload[0]` = address, `payload[1]` = bytes: unmaps that part of one mapping.
    pub const UNMAP: u32 = 0x0200_0002;
    /// → `payload[1]` resident pages, `[2]` virtual bytes, `[3]` shared resident pages,
    /// `[4]` peak resident pages, `[5]` demand-zero faults: the caller's own figures.
    pub const STATS: u32 = 0x0200_0003;
    /// → `payload[1..5]`: the TSC when VM received the last page fault it served, when it
    /// had decided, when its map call returned and when its resume call returned (0s before
    /// any fault). Diagnostics for `cargo xtask bench`'s fault breakdown; any process may ask.
    pub const FAULT_TIMES: u32 = 0x0200_0004;
    /// The server's answer to any request.
    pub const REPLY: u32 = 0x0200_00ff;
}

/// What the faulting access did.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultAccess {
    Read = 0,
    Write = 1,
    Execute = 2,
}

impl FaultAccess {
    /// From a #PF error code (bit 1 = write, bit 4 = instruction fetch).
    pub const fn from_error_code(code: u64) -> FaultAccess {
        if code & (1 << 4) != 0 {
            FaultAccess::Execute
        } else if code & (1 << 1) != 0 {
            FaultAccess::Write
        } else {
            FaultAccess::Read
        }
    }

    pub const fn from_u8(value: u8) -> Option<FaultAccess> {
        match value {
            0 => Some(FaultAccess::Read),
            1 => Some(FaultAccess::Write),
            2 => Some(FaultAccess::Execute),
            _ => None,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            FaultAccess::Read => "read",
            FaultAccess::Write => "write",
            FaultAccess::Execute => "exec",
        }
    }
}

/// A page fault as VM receives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageFault {
    /// The faulting address (CR2).
    pub address: u64,
    pub access: FaultAccess,
    /// The blocked thread: resume or fail it with this endpoint.
    pub thread: Endpoint,
    /// The process whose address space faulted.
    pub pid: u32,
    /// The faulting instruction.
    pub instruction: u64,
    /// Whether the page was present (a protection fault) rather than missing.
    pub present: bool,
    /// Whether the kernel found the page missing while running a system call of `thread`
    /// (a message buffer, a snapshot buffer, a grant's memory: `instruction` is then the
    /// `syscall` instruction), rather than a CPU page fault. `pid` may then be another
    /// process than `thread`'s (the owner of a granted buffer). VM serves both alike;
    /// `VmResume` runs the call again, `VmFail` makes it return `Fault`.
    pub system_call: bool,
}

impl PageFault {
    /// The message the kernel sends (source `Endpoint::KERNEL`).
    pub fn to_message(&self) -> Message {
        let mut message = Message::with_payload(
            KIND_PAGE_FAULT,
            [
                self.address,
                self.access as u64
                    | (u64::from(self.present) << 8)
                    | (u64::from(self.system_call) << 9),
                self.thread.0,
                u64::from(self.pid),
                self.instruction,
                0,
            ],
        );
        message.source = Endpoint::KERNEL;
        message
    }

    /// Reads a page-fault message; `None` if it is not one or came from anyone but the
    /// kernel.
    pub fn from_message(message: &Message) -> Option<PageFault> {
        if message.kind != KIND_PAGE_FAULT || message.source != Endpoint::KERNEL {
            return None;
        }
        let p = &message.payload;
        Some(PageFault {
            address: p[0],
            access: FaultAccess::from_u8((p[1] & 0xff) as u8)?,
            present: p[1] & (1 << 8) != 0,
            system_call: p[1] & (1 << 9) != 0,
            thread: Endpoint(p[2]),
            pid: u32::try_from(p[3]).ok()?,
            instruction: p[4],
        })
    }
}

/// A page-aligned range of user pages, `[start, start + pages·4K)`: non-empty, at most
/// [`MAX_PAGES_PER_CALL`] pages, above the null-pointer zone and below `USER_END`. Built
/// only by `new`, so a kernel call never sees an unaligned, wrapping or kernel range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRange {
    start: u64,
    pages: u64,
}

impl PageRange {
    /// Checks a range: unaligned start, zero or too many pages → `InvalidArgument`;
    /// below `USER_IMAGE_MIN`, past `USER_END` or wrapping → `Fault`.
    pub const fn new(start: u64, pages: u64) -> Result<PageRange, Error> {
        if !start.is_multiple_of(PAGE_SIZE) || pages == 0 || pages > MAX_PAGES_PER_CALL {
            return Err(Error::InvalidArgument);
        }
        let end = match start.checked_add(pages * PAGE_SIZE) {
            Some(end) => end,
            None => return Err(Error::Fault),
        };
        if start < USER_IMAGE_MIN || end > USER_END {
            return Err(Error::Fault);
        }
        Ok(PageRange { start, pages })
    }

    pub const fn start(self) -> u64 {
        self.start
    }

    pub const fn pages(self) -> u64 {
        self.pages
    }

    /// One past the last byte.
    pub const fn end(self) -> u64 {
        self.start + self.pages * PAGE_SIZE
    }

    /// The address of page `index` of the range.
    pub const fn page(self, index: u64) -> u64 {
        self.start + index * PAGE_SIZE
    }
}

/// Two registers: the start, then the page count.
impl Argument for PageRange {
    const REGISTERS: usize = 2;
    #[inline(always)]
    fn decode(registers: &[u64]) -> Result<Self, Error> {
        PageRange::new(registers[0], registers[1])
    }
    #[inline(always)]
    fn encode(&self, registers: &mut [u64]) {
        registers[0] = self.start;
        registers[1] = self.pages;
    }
}

/// How a mapping may be used: [`MapFlags::READ_ONLY`] or [`MapFlags::WRITABLE`] (user pages
/// are never executable when VM maps them; program images are mapped by the loader).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapFlags(u64);

impl MapFlags {
    pub const READ_ONLY: MapFlags = MapFlags(0);
    pub const WRITABLE: MapFlags = MapFlags(1);

    /// Unknown bits → `InvalidArgument`.
    pub const fn new(bits: u64) -> Result<MapFlags, Error> {
        if bits & !1 != 0 {
            return Err(Error::InvalidArgument);
        }
        Ok(MapFlags(bits))
    }

    pub const fn writable(self) -> bool {
        self.0 & 1 != 0
    }
}

impl Argument for MapFlags {
    const REGISTERS: usize = 1;
    #[inline(always)]
    fn decode(registers: &[u64]) -> Result<Self, Error> {
        MapFlags::new(registers[0])
    }
    #[inline(always)]
    fn encode(&self, registers: &mut [u64]) {
        registers[0] = self.0;
    }
}

/// A process id: one register that must fit 32 bits (`InvalidArgument` otherwise); whether
/// a live process has it is the kernel's to decide (`NotFound`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pid(pub u32);

impl Argument for Pid {
    const REGISTERS: usize = 1;
    #[inline(always)]
    fn decode(registers: &[u64]) -> Result<Self, Error> {
        u32::try_from(registers[0])
            .map(Pid)
            .map_err(|_| Error::InvalidArgument)
    }
    #[inline(always)]
    fn encode(&self, registers: &mut [u64]) {
        registers[0] = u64::from(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_ranges_are_checked_when_built() {
        let base = USER_IMAGE_MIN;
        assert_eq!(
            PageRange::new(base, 3).map(PageRange::end),
            Ok(base + 3 * PAGE_SIZE)
        );
        assert_eq!(PageRange::new(base + 1, 1), Err(Error::InvalidArgument));
        assert_eq!(PageRange::new(base, 0), Err(Error::InvalidArgument));
        assert_eq!(
            PageRange::new(base, MAX_PAGES_PER_CALL + 1),
            Err(Error::InvalidArgument)
        );
        assert_eq!(PageRange::new(0, 1), Err(Error::Fault));
        assert_eq!(PageRange::new(USER_END - PAGE_SIZE, 2), Err(Error::Fault));
        assert_eq!(
            PageRange::new(USER_END - PAGE_SIZE, 1).map(|r| r.pages()),
            Ok(1)
        );
        assert_eq!(PageRange::new(!0xfff, 2), Err(Error::Fault));
        assert_eq!(PageRange::new(0xffff_8000_0000_0000, 1), Err(Error::Fault));
    }

    #[test]
    fn flags_and_pids_refuse_unknown_values() {
        assert_eq!(MapFlags::new(1).map(MapFlags::writable), Ok(true));
        assert_eq!(MapFlags::new(2), Err(Error::InvalidArgument));
        assert_eq!(Pid::decode(&[7]), Ok(Pid(7)));
        assert_eq!(Pid::decode(&[1 << 32]), Err(Error::InvalidArgument));
    }

    #[test]
    fn a_fault_message_round_trips_and_cannot_be_forged() {
        let fault = PageFault {
            address: 0x2000_0000_1234,
            access: FaultAccess::Write,
            thread: Endpoint::new(5, 2),
            pid: 9,
            instruction: 0x40_1000,
            present: true,
            system_call: false,
        };
        let message = fault.to_message();
        assert_eq!(PageFault::from_message(&message), Some(fault));
        let in_call = PageFault {
            system_call: true,
            present: false,
            ..fault
        };
        assert_eq!(
            PageFault::from_message(&in_call.to_message()),
            Some(in_call)
        );
        let mut forged = message;
        forged.source = Endpoint::new(1, 1);
        assert_eq!(PageFault::from_message(&forged), None);
        assert_eq!(FaultAccess::from_error_code(0b10), FaultAccess::Write);
        assert_eq!(FaultAccess::from_error_code(0b1_0000), FaultAccess::Execute);
        assert_eq!(FaultAccess::from_error_code(0b101), FaultAccess::Read);
    }
}
