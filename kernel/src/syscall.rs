//! System-call dispatch: decodes the saved registers once, at the boundary, and runs the call.
//!
//! Raw register values become typed arguments here (`Endpoint`, addresses that are only
//! allegations until `usercopy` checks them, enums for call numbers). Each call either
//! completes (its result goes into the caller's RAX) or blocks the caller, in which case
//! the partner that later finishes it writes RAX through `IpcEnvironment::unblock`.

use crate::system::Kernel;
use crate::usercopy;
use vigil_abi::async_message::MAX_ASYNC_ENTRIES;
use vigil_abi::syscall::{mutex_word, KernelCall, Syscall};
use vigil_abi::trace::EventKind;
use vigil_abi::wait::ThreadState;
use vigil_abi::{Endpoint, Error};
use vigil_kcore::ipc::Outcome;

/// The six argument registers of a system call.
#[derive(Clone, Copy, Debug)]
pub struct Arguments(pub [u64; 6]);

/// Longest DebugWrite accepted in one call.
const DEBUG_WRITE_MAX: usize = 4096;
/// Longest name `Lookup` accepts.
const LOOKUP_NAME_MAX: usize = crate::system::NAME_BYTES;

impl Kernel {
    /// Runs the system call saved in `slot`'s registers.
    pub fn handle_syscall(&mut self, slot: u16) {
        let context = &self.threads[usize::from(slot)].context;
        let number = context.rax;
        let arguments = Arguments([
            context.rdi,
            context.rsi,
            context.rdx,
            context.r10,
            context.r8,
            context.r9,
        ]);
        let caller = self.table.endpoint(slot);
        crate::trace::emit(EventKind::Syscall, caller, [number, arguments.0[0], 0]);
        let outcome = match Syscall::from_number(number) {
            Some(call) => self.syscall(slot, call, arguments),
            None => Outcome::Complete(Err(Error::NoSuchCall)),
        };
        if outcome == Outcome::Blocked {
            let state = self.table.state(slot);
            if state.is_blocked() {
                let (code, target, argument) = vigil_abi::introspect::encode_state(&state);
                crate::trace::emit(
                    EventKind::Block,
                    caller,
                    [u64::from(code), target.0, argument],
                );
            }
        }
        if let Outcome::Complete(result) = outcome {
            // The caller may have exited (ThreadExit/ProcessExit complete with Blocked).
            self.threads[usize::from(slot)].context.rax = match result {
                Ok(value) => value,
                Err(error) => error.to_return_value(),
            };
        }
    }

    fn syscall(&mut self, slot: u16, call: Syscall, Arguments(a): Arguments) -> Outcome {
        let done = Outcome::Complete;
        match call {
            Syscall::DebugWrite => done(self.debug_write(slot, a[0], a[1])),
            Syscall::Send => {
                let (table, mut env) = self.ipc_parts();
                table.send(&mut env, slot, Endpoint(a[0]), a[1])
            }
            Syscall::Receive => {
                let (table, mut env) = self.ipc_parts();
                table.receive(&mut env, slot, Endpoint(a[0]), a[1])
            }
            Syscall::SendReceive => {
                let (table, mut env) = self.ipc_parts();
                table.send_receive(&mut env, slot, Endpoint(a[0]), a[1])
            }
            Syscall::Notify => {
                crate::trace::emit(
                    EventKind::IpcNotify,
                    self.table.endpoint(slot),
                    [a[0], 0, 0],
                );
                let (table, mut env) = self.ipc_parts();
                done(table.notify(&mut env, slot, Endpoint(a[0])))
            }
            Syscall::SendNonBlocking => {
                let (table, mut env) = self.ipc_parts();
                done(table.send_nonblocking(&mut env, slot, Endpoint(a[0]), a[1]))
            }
            Syscall::SendAsync => {
                if a[1] > MAX_ASYNC_ENTRIES as u64 {
                    return done(Err(Error::InvalidArgument));
                }
                let (table, mut env) = self.ipc_parts();
                done(table.send_async(&mut env, slot, a[0], a[1] as usize))
            }
            Syscall::ThreadCreate => done(self.create_thread(slot, a[0], a[1])),
            Syscall::ThreadExit => {
                self.exit_thread(slot, a[0]);
                Outcome::Blocked
            }
            Syscall::ThreadJoin => self.join_thread(slot, Endpoint(a[0])),
            Syscall::ProcessExit => {
                let process = self.threads[usize::from(slot)].process;
                self.exit_process(process, a[0]);
                Outcome::Blocked
            }
            Syscall::Yield => {
                self.yield_current();
                done(Ok(0))
            }
            Syscall::Sleep => {
                let until = crate::time::now_ns().saturating_add(a[0]);
                let generation = self.table.endpoint(slot).generation();
                self.timers.set(
                    slot,
                    generation,
                    vigil_kcore::timer::TimerKind::Wakeup,
                    until,
                );
                self.table.sleep(slot, until)
            }
            Syscall::AlarmSet => {
                if a[0] == 0 {
                    self.timers.cancel_alarm(slot);
                } else {
                    let generation = self.table.endpoint(slot).generation();
                    let first = crate::time::now_ns().saturating_add(a[0]);
                    self.timers.set(
                        slot,
                        generation,
                        vigil_kcore::timer::TimerKind::Alarm { period_ns: a[0] },
                        first,
                    );
                }
                done(Ok(0))
            }
            Syscall::MutexWait => self.mutex_wait(slot, a[0], a[1]),
            Syscall::MutexWake => {
                let (table, mut env) = self.ipc_parts();
                done(Ok(table.mutex_wake(&mut env, slot, a[0])))
            }
            Syscall::GrantCreate => done(self.grant_create(slot, Endpoint(a[0]), a[1], a[2], a[3])),
            Syscall::GrantRevoke => done(self.grant_revoke(slot, a[0])),
            Syscall::SelfEndpoint => done(Ok(self.table.endpoint(slot).0)),
            Syscall::ClockNs => done(Ok(crate::time::now_ns())),
            Syscall::Lookup => done(self.lookup(slot, a[0], a[1])),
            Syscall::KernelCall => match KernelCall::from_number(a[0]) {
                None => done(Err(Error::NoSuchCall)),
                Some(kernel_call) => {
                    self.threads[usize::from(slot)].kernel_calls += 1;
                    if self.process_of(slot).kernel_calls & kernel_call.mask_bit() == 0 {
                        done(Err(Error::PermissionDenied))
                    } else {
                        self.kernel_call(slot, kernel_call, [a[1], a[2], a[3], a[4], a[5]])
                    }
                }
            },
        }
    }

    fn debug_write(&mut self, slot: u16, address: u64, len: u64) -> Result<u64, Error> {
        let len = usize::try_from(len).map_err(|_| Error::InvalidArgument)?;
        if len > DEBUG_WRITE_MAX {
            return Err(Error::InvalidArgument);
        }
        let mut buffer = [0u8; DEBUG_WRITE_MAX];
        usercopy::read(&self.space_of(slot), address, &mut buffer[..len])?;
        let text = match core::str::from_utf8(&buffer[..len]) {
            Ok(text) => text,
            Err(error) => core::str::from_utf8(&buffer[..error.valid_up_to()]).unwrap_or(""),
        };
        let name = self.process_of(slot).name();
        for line in text.split('\n').filter(|line| !line.is_empty()) {
            crate::info!("{name}: {}", line.trim_end_matches('\r'));
        }
        Ok(len as u64)
    }

    fn lookup(&mut self, slot: u16, address: u64, len: u64) -> Result<u64, Error> {
        let len = usize::try_from(len).map_err(|_| Error::InvalidArgument)?;
        if len == 0 || len > LOOKUP_NAME_MAX {
            return Err(Error::NotFound);
        }
        let mut buffer = [0u8; LOOKUP_NAME_MAX];
        usercopy::read(&self.space_of(slot), address, &mut buffer[..len])?;
        let name = core::str::from_utf8(&buffer[..len]).map_err(|_| Error::NotFound)?;
        self.processes
            .iter()
            .find(|process| process.in_use && process.name() == name)
            .map(|process| process.main_thread.0)
            .ok_or(Error::NotFound)
    }

    fn mutex_wait(&mut self, slot: u16, address: u64, expected: u64) -> Outcome {
        if !address.is_multiple_of(4) {
            return Outcome::Complete(Err(Error::InvalidArgument));
        }
        let word: u32 = match usercopy::read_value(&self.space_of(slot), address) {
            Ok(word) => word,
            Err(error) => return Outcome::Complete(Err(error)),
        };
        if u64::from(word) != expected {
            return Outcome::Complete(Ok(0));
        }
        let process = self.threads[usize::from(slot)].process;
        let owner = mutex_word::owner(word)
            .filter(|&owner| usize::from(owner) < vigil_kcore::ipc::MAX_THREADS)
            .filter(|&owner| self.threads[usize::from(owner)].process == process)
            .filter(|&owner| self.table.state(owner) != ThreadState::Free)
            .map_or(Endpoint::NONE, |owner| self.table.endpoint(owner));
        self.table.mutex_wait(slot, address, owner)
    }
}
