//! Kernel calls: the privileged system calls, one file per call.
//!
//! `kernel_call` is their wrapper: an unknown number is `NoSuchCall`, a call outside the
//! caller's kernel-call mask is `PermissionDenied` (before its arguments are even decoded),
//! then the arguments are decoded into the call's typed struct and the handler runs. Every
//! handler has the system-call shape `fn(&mut Kernel, caller, XArgs) -> Result<Next, Error>`.

mod pm;
mod pm_host_reply;
mod pm_signal;
mod pm_trace;
mod safe_copy;
mod service;
mod service_failure;
mod shutdown;
mod snapshot;
mod trace_mask;
mod vm;
mod vm_account;
mod vm_limit;
mod vm_shared;

use crate::syscall::Next;
use crate::system::Kernel;
use vigil_abi::syscall::{KernelCall, KernelCallArgs, KernelCallTrapArgs};
use vigil_abi::Error;
use vigil_kcore::slot::ThreadSlot;

impl Kernel {
    /// Runs the kernel call `trap` names, if the caller may make it; traces the result.
    pub fn kernel_call(
        &mut self,
        caller: ThreadSlot,
        trap: KernelCallTrapArgs,
    ) -> Result<Next, Error> {
        let Some(call) = KernelCall::from_number(trap.call) else {
            return Err(Error::NoSuchCall);
        };
        self.threads[caller].counters_mut().kernel_calls += 1;
        let result = if !self.process_of(caller).may_call(call) {
            Err(Error::PermissionDenied)
        } else {
            KernelCallArgs::decode(call, &trap.arguments.0)
                .and_then(|args| self.run_kernel_call(caller, args))
        };
        let suspended = result == Err(Error::Fault)
            && crate::usercopy::missing_page()
                .is_some_and(|missing| self.vm_request_for(caller, missing).is_some());
        if suspended {
            // The call will be suspended for VM and run again (`handle_syscall`): it is
            // traced, and counted, when it finishes.
            self.threads[caller].counters_mut().kernel_calls -= 1;
            return result;
        }
        let traced = Next::return_value(result).unwrap_or(0);
        let endpoint = self.table.endpoint(caller);
        crate::trace::emit(
            vigil_abi::trace::EventKind::KernelCall,
            endpoint,
            [call as u64, traced, 0],
        );
        result
    }

    fn run_kernel_call(&mut self, caller: ThreadSlot, call: KernelCallArgs) -> Result<Next, Error> {
        match call {
            KernelCallArgs::SafeCopyFrom(args) => safe_copy::from_grant(self, caller, args),
            KernelCallArgs::SafeCopyTo(args) => safe_copy::to_grant(self, caller, args),
            KernelCallArgs::Shutdown(args) => shutdown::run(self, caller, args),
            KernelCallArgs::Snapshot(args) => snapshot::run(self, caller, args),
            KernelCallArgs::TraceMask(args) => trace_mask::run(self, caller, args),
            KernelCallArgs::VmMap(args) => vm::map(self, caller, args),
            KernelCallArgs::VmUnmap(args) => vm::unmap(self, caller, args),
            KernelCallArgs::VmProtect(args) => vm::protect(self, caller, args),
            KernelCallArgs::VmQuery(args) => vm::query(self, caller, args),
            KernelCallArgs::VmResume(args) => vm::resume(self, caller, args),
            KernelCallArgs::VmFail(args) => vm::fail(self, caller, args),
            KernelCallArgs::VmProcessOf(args) => vm::process_of(self, caller, args),
            KernelCallArgs::VmMapShared(args) => vm_shared::map_shared(self, caller, args),
            KernelCallArgs::VmLimitOf(args) => vm_limit::limit_of(self, caller, args),
            KernelCallArgs::VmSetVirtual(args) => vm_account::set_virtual(self, caller, args),
            KernelCallArgs::PmModuleName(args) => pm::module_name(self, caller, args),
            KernelCallArgs::PmModuleRead(args) => pm::module_read(self, caller, args),
            KernelCallArgs::PmCreate(args) => pm::create(self, caller, args),
            KernelCallArgs::PmMapImage(args) => pm::map_image(self, caller, args),
            KernelCallArgs::PmCopyTo(args) => pm::copy_to(self, caller, args),
            KernelCallArgs::PmStart(args) => pm::start(self, caller, args),
            KernelCallArgs::PmKill(args) => pm::kill(self, caller, args),
            KernelCallArgs::PmReap(args) => pm::reap(self, caller, args),
            KernelCallArgs::PmHostReply(args) => pm_host_reply::run(self, caller, args),
            KernelCallArgs::PmNextEvent(args) => pm_signal::next_event(self, caller, args),
            KernelCallArgs::PmResumeThread(args) => pm_signal::resume_thread(self, caller, args),
            KernelCallArgs::PmSetSignalManager(args) => {
                pm_signal::set_signal_manager(self, caller, args)
            }
            KernelCallArgs::PmSignal(args) => pm_signal::signal(self, caller, args),
            KernelCallArgs::PmStop(args) => pm_signal::stop(self, caller, args),
            KernelCallArgs::PmResume(args) => pm_signal::resume(self, caller, args),
            KernelCallArgs::PmSignalDirect(args) => pm_signal::signal_direct(self, caller, args),
            KernelCallArgs::PmGetRegisters(args) => pm_trace::get_registers(self, caller, args),
            KernelCallArgs::PmSetRegisters(args) => pm_trace::set_registers(self, caller, args),
            KernelCallArgs::PmPeek(args) => pm_trace::peek(self, caller, args),
            KernelCallArgs::PmPoke(args) => pm_trace::poke(self, caller, args),
            KernelCallArgs::PmTraceFlags(args) => crate::ptrace::set_flags(self, caller, args),
            KernelCallArgs::PmSetTracer(args) => {
                crate::trace_handoff::set_tracer(self, caller, args)
            }
            KernelCallArgs::ServiceKeepEndpoint(args) => service::keep_endpoint(self, caller, args),
            KernelCallArgs::ServiceTakeOver(args) => service::take_over(self, caller, args),
            KernelCallArgs::ServiceRelease(args) => service::release(self, caller, args),
            KernelCallArgs::ServiceSwap(args) => service::swap(self, caller, args),
            KernelCallArgs::ServiceBacktrace(args) => {
                service_failure::backtrace(self, caller, args)
            }
            KernelCallArgs::ServiceSystemCrash(args) => {
                service_failure::system_crash(self, caller, args)
            }
        }
    }
}
