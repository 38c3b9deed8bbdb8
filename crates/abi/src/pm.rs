//! The process manager (PM, `user/servers/pm`): its request protocol, the kernel's
//! child-exit notice to it, and the typed arguments of its kernel calls (`kcalls=pm`).
//!
//! Programs ask PM with one `SendReceive` each, answered with `request::REPLY` (outcome in
//! `payload[0]`: 0 or an `Error` code, results after it). Spawn text travels in a read
//! grant: `PROGRAM [-- ARGUMENTS]`, where PROGRAM names a boot module.

use crate::error::Error;
use crate::syscall::Argument;
use crate::user_memory::UserPtr;

/// The kernel's message to PM: some process PM created has exited; PM collects every
/// such exit with `PmReap`. Notices coalesce (one may stand for several exits).
pub const KIND_CHILD_EXITED: u32 = 0xffff_0004;

/// The process name of PM (the boot module the kernel registers as the process manager).
pub const PM_SERVER_NAME: &str = "pm";

/// The boot table: the process names of the system servers the kernel starts itself (in
/// module order) when PM is among the boot modules; PM starts every other module that is
/// not `boot=pm`. RS, the reincarnation server, comes after PM (it spawns its services
/// through PM); DS, the data store, is one too (list it before RS: the services RS starts
/// read their state back from DS as they start).
pub const SYSTEM_SERVERS: &[&str] = &[
    "vm",
    PM_SERVER_NAME,
    crate::ds::DS_SERVER_NAME,
    crate::rs::RS_SERVER_NAME,
];

/// Request kinds (`Message::kind`) PM answers.
pub mod request {
    /// payload `[grant, len, spawn_flags]`: spawn text (`PROGRAM [-- ARGUMENTS]`, at most
    /// `MAX_SPAWN_BYTES`) in a read grant to PM → reply `[0, pid]`. The new process is a
    /// child of the caller; with `spawn_flags::CALLER_MANAGES` the caller is its signal
    /// manager too (its exceptions are events for the caller, not signals PM decides;
    /// PM still collects its exit for the caller's `WAIT`, and tells the calling thread
    /// of it at once: the exit notice, below). Unknown flags are `InvalidArgument`.
    pub const SPAWN: u32 = 0x0300_0001;
    /// payload `[pid or ANY_CHILD, wait_flags]` → reply `[0, pid, status]`; with
    /// `NO_HANG` and no exited child `[0, 0, 0]`. `NotFound` if the caller has no such
    /// child (a pid that is not its child, forged or otherwise).
    pub const WAIT: u32 = 0x0300_0002;
    /// payload `[pid, status]` → reply `[0]`: ends process `pid` with exit status
    /// `status`. `PermissionDenied` for PM, VM or the caller itself; `NotFound` for no
    /// such process.
    pub const KILL: u32 = 0x0300_0003;
    /// payload `[pid, signal]` → reply `[0]`: sends `signal` (`vigil_abi::signal`) to
    /// process `pid` (the caller's own too); PM applies its action, mask and default.
    /// `InvalidArgument` for signal 0 or above 63, `PermissionDenied` for PM or VM,
    /// `NotFound` for no such process.
    pub const SIGNAL: u32 = 0x0300_0004;
    /// payload `[signal, action, handler entry]` → reply `[0, previous action, caller's
    /// pid]`: what the caller's process does with `signal` (`signal_action`); the entry is
    /// the runtime's trampoline, used with `CATCH`. The pid lets the runtime tell a signal
    /// to itself, which it raises with `SignalRaise` when PM has allowed it (the signals
    /// the process catches and has not masked: `PmSignalDirect`). `InvalidArgument` for KILL and STOP, an unknown
    /// action, or `CATCH` with entry 0.
    pub const SIGACTION: u32 = 0x0300_0005;
    /// payload `[how, set]` → reply `[0, previous mask]`: changes the caller's signal mask
    /// (`mask_how`); KILL and STOP are never masked. Signals unmasked this way that are
    /// pending are delivered before the reply.
    pub const SIGMASK: u32 = 0x0300_0006;
    /// payload `[pid]` → reply `[0]`: PM becomes the signal manager of process `pid` (a
    /// boot process: its exceptions then become signals PM handles). `NotFound` for no
    /// such process, `InvalidArgument` for PM itself, `PermissionDenied` for VM.
    pub const MANAGE: u32 = 0x0300_0007;
    /// Every answer.
    pub const REPLY: u32 = 0x0300_00ff;
}

/// `SIGACTION`'s actions.
pub mod signal_action {
    pub const DEFAULT: u64 = 0;
    pub const IGNORE: u64 = 1;
    pub const CATCH: u64 = 2;
}

/// `SIGMASK`'s `how`.
pub mod mask_how {
    pub const SET: u64 = 0;
    pub const BLOCK: u64 = 1;
    pub const UNBLOCK: u64 = 2;
}

/// `SPAWN`'s flags (`payload[2]`).
pub mod spawn_flags {
    /// The caller becomes the new process's signal manager before it runs (RS for the
    /// services it supervises). When such a child exits and no `WAIT` of its parent is
    /// waiting for it, PM raises a notification at the thread that spawned it (source:
    /// PM), the *exit notice*: the manager collects the exit with `WAIT` (`NO_HANG`) at
    /// once instead of polling. Notices coalesce (one may stand for several exits), and
    /// one may come for an exit a `WAIT` already took (then `WAIT` finds none).
    pub const CALLER_MANAGES: u64 = 1;
    /// The request's arguments are appended to the module's own (after a space) instead
    /// of replacing them: RS's live-update candidate keeps its module's options and
    /// learns it is a candidate (`rs::update::CANDIDATE_ARGUMENT`).
    pub const APPEND_ARGUMENTS: u64 = 2;
    pub const ALL: u64 = CALLER_MANAGES | APPEND_ARGUMENTS;
}

/// `WAIT`'s `payload[0]` for "any child".
pub const ANY_CHILD: u64 = 0;

/// `WAIT`'s flags.
pub mod wait_flags {
    /// Answer at once: `[0, 0, 0]` if no child has exited yet.
    pub const NO_HANG: u64 = 1;
}

/// Longest spawn text (program name, ` -- `, arguments); longer is `InvalidArgument`.
pub const MAX_SPAWN_BYTES: u64 = 4096;
/// Longest argument string a new process gets (`PmStart`); longer is `InvalidArgument`.
pub const MAX_ARGUMENT_BYTES: u64 = 2048;
/// Most bytes one `PmCopyTo` copies (the bounded-work rule).
pub const MAX_COPY_BYTES: u64 = 64 * 1024;

/// A scheduling priority, 0 (most urgent) ..= 15: anything else is `InvalidArgument`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Priority(u8);

impl Priority {
    /// The lowest priority (highest number).
    pub const LOWEST: u8 = 15;

    pub const fn new(value: u64) -> Result<Priority, Error> {
        if value > Self::LOWEST as u64 {
            return Err(Error::InvalidArgument);
        }
        Ok(Priority(value as u8))
    }

    pub const fn get(self) -> u8 {
        self.0
    }
}

impl Argument for Priority {
    const REGISTERS: usize = 1;
    #[inline(always)]
    fn decode(registers: &[u64]) -> Result<Self, Error> {
        Priority::new(registers[0])
    }
    #[inline(always)]
    fn encode(&self, registers: &mut [u64]) {
        registers[0] = u64::from(self.0);
    }
}

/// Access of image pages PM maps (`PmMapImage`): a subset of `WRITABLE | EXECUTABLE`
/// (writable and executable together, or unknown bits, are `InvalidArgument`: W^X).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageFlags(u64);

impl ImageFlags {
    pub const READ_ONLY: ImageFlags = ImageFlags(0);
    pub const WRITABLE: ImageFlags = ImageFlags(1);
    pub const EXECUTABLE: ImageFlags = ImageFlags(2);

    pub const fn new(bits: u64) -> Result<ImageFlags, Error> {
        if bits > 2 {
            return Err(Error::InvalidArgument);
        }
        Ok(ImageFlags(bits))
    }

    pub const fn writable(self) -> bool {
        self.0 == Self::WRITABLE.0
    }

    pub const fn executable(self) -> bool {
        self.0 == Self::EXECUTABLE.0
    }

    pub const fn bits(self) -> u64 {
        self.0
    }
}

impl Argument for ImageFlags {
    const REGISTERS: usize = 1;
    #[inline(always)]
    fn decode(registers: &[u64]) -> Result<Self, Error> {
        ImageFlags::new(registers[0])
    }
    #[inline(always)]
    fn encode(&self, registers: &mut [u64]) {
        registers[0] = self.0;
    }
}

/// Most pids an `IpcAllow::Only` list names (`PmStart`).
pub const MAX_IPC_PIDS: usize = 15;

/// An `IpcAllow::Only` list in the caller's memory: word 0 is the count (at most
/// `MAX_IPC_PIDS`), words 1..=count the pids of the processes allowed.
pub type IpcPidList = [u32; MAX_IPC_PIDS + 1];

/// Whom a process PM starts may send to (`PmStart`, from the module's `ipc=`): every
/// process, or only the live processes a pid list names. One register: 0 is `All`, any
/// other value the address of an `IpcPidList` (checked like any `UserPtr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpcAllow {
    All,
    Only(UserPtr<IpcPidList>),
}

impl IpcAllow {
    /// The list's pids: `InvalidArgument` for a count above `MAX_IPC_PIDS` or a pid 0.
    pub fn pids(list: &IpcPidList) -> Result<&[u32], Error> {
        let count = list[0] as usize;
        if count > MAX_IPC_PIDS {
            return Err(Error::InvalidArgument);
        }
        let pids = &list[1..=count];
        if pids.contains(&0) {
            return Err(Error::InvalidArgument);
        }
        Ok(pids)
    }
}

impl Argument for IpcAllow {
    const REGISTERS: usize = 1;
    #[inline(always)]
    fn decode(registers: &[u64]) -> Result<Self, Error> {
        match registers[0] {
            0 => Ok(IpcAllow::All),
            address => UserPtr::new(address).map(IpcAllow::Only),
        }
    }
    #[inline(always)]
    fn encode(&self, registers: &mut [u64]) {
        registers[0] = match self {
            IpcAllow::All => 0,
            IpcAllow::Only(list) => list.address(),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_above_fifteen_are_refused() {
        assert_eq!(Priority::new(15).map(Priority::get), Ok(15));
        assert_eq!(Priority::new(0).map(Priority::get), Ok(0));
        assert_eq!(Priority::new(16), Err(Error::InvalidArgument));
        assert_eq!(Priority::new(u64::MAX), Err(Error::InvalidArgument));
    }

    #[test]
    fn image_flags_are_never_writable_and_executable() {
        assert!(ImageFlags::new(1).unwrap().writable());
        assert!(ImageFlags::new(2).unwrap().executable());
        assert!(!ImageFlags::new(0).unwrap().writable());
        assert_eq!(ImageFlags::new(3), Err(Error::InvalidArgument));
        assert_eq!(ImageFlags::new(4), Err(Error::InvalidArgument));
    }

    #[test]
    fn ipc_allow_lists_are_checked() {
        assert_eq!(IpcAllow::decode(&[0]), Ok(IpcAllow::All));
        assert_eq!(IpcAllow::decode(&[3]), Err(Error::InvalidArgument));
        let list = IpcAllow::decode(&[0x40_0000]).unwrap();
        let mut registers = [0];
        list.encode(&mut registers);
        assert_eq!(registers, [0x40_0000]);
        let mut pids: IpcPidList = [0; MAX_IPC_PIDS + 1];
        assert_eq!(IpcAllow::pids(&pids), Ok(&[][..]));
        pids[..3].copy_from_slice(&[2, 5, 9]);
        assert_eq!(IpcAllow::pids(&pids), Ok(&[5, 9][..]));
        pids[0] = MAX_IPC_PIDS as u32 + 1;
        assert_eq!(IpcAllow::pids(&pids), Err(Error::InvalidArgument));
        pids[..3].copy_from_slice(&[2, 5, 0]);
        assert_eq!(IpcAllow::pids(&pids), Err(Error::InvalidArgument));
    }
}
