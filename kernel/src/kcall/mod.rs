//! Kernel calls: the privileged system calls, one file per call.
//!
//! `Syscall::KernelCall` has already checked the caller's kernel-call mask.

mod safe_copy;
mod shutdown;
mod snapshot;
mod trace_mask;

use crate::grant::CopyDirection;
use crate::system::Kernel;
use vigil_abi::syscall::KernelCall;
use vigil_kcore::ipc::Outcome;

impl Kernel {
    /// Runs kernel call `call` with its five arguments.
    pub fn kernel_call(&mut self, caller: u16, call: KernelCall, arguments: [u64; 5]) -> Outcome {
        let outcome = self.run_kernel_call(caller, call, arguments);
        let result = match outcome {
            Outcome::Complete(Ok(value)) => value,
            Outcome::Complete(Err(error)) => error.to_return_value(),
            Outcome::Blocked => 0,
        };
        let endpoint = self.table.endpoint(caller);
        crate::trace::emit(
            vigil_abi::trace::EventKind::KernelCall,
            endpoint,
            [call as u64, result, 0],
        );
        outcome
    }

    fn run_kernel_call(&mut self, caller: u16, call: KernelCall, arguments: [u64; 5]) -> Outcome {
        match call {
            KernelCall::SafeCopyFrom => Outcome::Complete(safe_copy::run(
                self,
                caller,
                arguments,
                CopyDirection::FromGrant,
            )),
            KernelCall::SafeCopyTo => Outcome::Complete(safe_copy::run(
                self,
                caller,
                arguments,
                CopyDirection::ToGrant,
            )),
            KernelCall::Shutdown => shutdown::run(self, caller, arguments[0]),
            KernelCall::Snapshot => {
                Outcome::Complete(snapshot::run(self, caller, arguments[0], arguments[1]))
            }
            KernelCall::TraceMask => Outcome::Complete(Ok(trace_mask::run(arguments[0]))),
        }
    }
}
