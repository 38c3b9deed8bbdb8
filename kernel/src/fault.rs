//! The fault report: one description of a CPU exception, printed the same way whether the
//! kernel or a user thread took it (header with the decoded cause, CR2 for a page fault,
//! the registers) and summarised in one line for the monitor's Crash frame.

use crate::arch::trap::{self, PageFaultCause, TrapFrame};
use vigil_abi::Endpoint;

/// Where the exception happened.
#[derive(Clone, Copy, Debug)]
pub enum FaultPlace<'a> {
    /// In the kernel (or in user mode with no thread to blame): the machine stops.
    Kernel,
    /// In a thread of a user process, which is killed (or held for its signal manager).
    User {
        process: &'a str,
        pid: u32,
        thread: Endpoint,
    },
}

/// A CPU exception as the report shows it.
pub struct FaultReport<'a> {
    pub frame: &'a TrapFrame,
    pub place: FaultPlace<'a>,
    /// CR2 as it was when the fault was taken (a page fault's address).
    pub fault_address: u64,
}

/// The page-fault vector (#PF), whose error code and CR2 are decoded.
pub const PAGE_FAULT_VECTOR: u64 = 14;

impl FaultReport<'_> {
    /// Prints the header line (vector, mnemonic, where, error code, decoded #PF cause), CR2
    /// for a page fault, and the registers. Allocates nothing: it also runs for a fault in
    /// the middle of the heap allocator.
    pub fn print(&self) {
        let frame = self.frame;
        if frame.vector == PAGE_FAULT_VECTOR {
            crate::error!(
                "{}, error code {:#x} [{}]",
                Header(self),
                frame.error_code,
                PageFaultCause(frame.error_code)
            );
            crate::console::continuation(format_args!("  cr2={:#018x}", self.fault_address));
        } else {
            crate::error!("{}, error code {:#x}", Header(self), frame.error_code);
        }
        trap::print_registers(frame);
    }

    /// One line for the Crash frame: "#PF page fault (vector 14) … at RIP".
    pub fn summary(&self) -> alloc::string::String {
        let frame = self.frame;
        let (mnemonic, name) = trap::exception_name(frame.vector);
        match self.place {
            FaultPlace::Kernel => {
                let mode = if frame.cs & 3 == 0 { "kernel" } else { "user" };
                alloc::format!(
                    "{mnemonic} {name} (vector {}) in {mode} mode at {:#x}",
                    frame.vector,
                    frame.rip
                )
            }
            FaultPlace::User { .. } => alloc::format!(
                "{mnemonic} {name} (vector {}) at {:#x}",
                frame.vector,
                frame.rip
            ),
        }
    }
}

/// The start of the header line: what happened and where.
struct Header<'a>(&'a FaultReport<'a>);

impl core::fmt::Display for Header<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let frame = self.0.frame;
        let (mnemonic, name) = trap::exception_name(frame.vector);
        match self.0.place {
            FaultPlace::Kernel => {
                let mode = if frame.cs & 3 == 0 { "kernel" } else { "user" };
                write!(f, "fault: {mnemonic} {name} (vector {}) in {mode} mode", frame.vector)
            }
            FaultPlace::User {
                process,
                pid,
                thread,
            } => write!(
                f,
                "user fault: {mnemonic} {name} (vector {}) in process '{process}' (pid {pid}) thread {thread}",
                frame.vector
            ),
        }
    }
}
