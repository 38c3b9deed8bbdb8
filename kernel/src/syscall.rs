//! System-call dispatch: the one wrapper that decodes a call at the boundary, runs its
//! handler and applies the handler's verdict.
//!
//! Every handler has the same shape, `fn(&mut Kernel, caller, XArgs) -> Result<Next, Error>`:
//! it gets its arguments as the typed struct of `vigil_abi::syscall` (decoded once from the
//! six registers: user memory already a `UserPtr`/`UserSlice`, flags already checked), and
//! says what happens to the caller next. Only `handle_syscall` writes RAX, counts and traces.

use crate::arch::trap::TrapFrame;
use crate::system::Kernel;
use crate::usercopy;
use vigil_abi::async_message::MAX_ASYNC_ENTRIES;
use vigil_abi::syscall::*;
use vigil_abi::trace::EventKind;
use vigil_abi::Error;
use vigil_kcore::ipc::Outcome;
use vigil_kcore::slot::ThreadSlot;

/// What happens to the caller when its system call is over.
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// The call is finished: return this value in RAX.
    Return(u64),
    /// The call finished with 0 and the caller gives up the rest of its quantum.
    Yield,
    /// The caller is blocked (its state says on what); whoever finishes the call later
    /// writes its result (`IpcEnvironment::unblock`).
    Blocked,
    /// The caller no longer exists (thread or process exit): nothing to write.
    Exited,
    /// The caller's registers were replaced whole (SignalReturn): nothing to write.
    Restored,
}

impl Next {
    /// The verdict of an operation of the IPC state machine.
    pub fn from_outcome(outcome: Outcome) -> Result<Next, Error> {
        match outcome {
            Outcome::Complete(result) => result.map(Next::Return),
            Outcome::Blocked => Ok(Next::Blocked),
        }
    }

    /// The value RAX gets when the call ends now (none if blocked or exited).
    pub fn return_value(result: Result<Next, Error>) -> Option<u64> {
        match result {
            Ok(Next::Return(value)) => Some(value),
            Ok(Next::Yield) => Some(0),
            Ok(Next::Blocked | Next::Exited | Next::Restored) => None,
            Err(error) => Some(error.to_return_value()),
        }
    }
}

/// Longest DebugWrite accepted in one call (longer is `InvalidArgument`).
const DEBUG_WRITE_MAX: usize = 4096;
/// Most bytes and lines one DebugWrite prints; it returns how much it took.
const DEBUG_WRITE_BYTES_PER_CALL: usize = 512;
const DEBUG_WRITE_LINES_PER_CALL: usize = 8;
/// Longest name `Lookup` accepts.
const LOOKUP_NAME_MAX: usize = crate::process::NAME_BYTES;

impl Kernel {
    /// Runs the system call saved in `slot`'s registers and applies the verdict.
    pub fn handle_syscall(&mut self, slot: ThreadSlot) {
        if self.trace_syscall_entry(slot) {
            // Held for its tracer; the call runs when it enters again (`ptrace.rs`).
            return;
        }
        let context = self.threads[slot].context();
        let number = context.rax;
        let registers = context.syscall_arguments();
        let caller = self.table.endpoint(slot);
        crate::trace::emit(EventKind::Syscall, caller, [number, registers[0], 0]);
        usercopy::forget_missing_page();
        let result = match Syscall::from_number(number) {
            Some(call) => self.syscall(slot, call, &registers),
            None => Err(Error::NoSuchCall),
        };
        if result == Err(Error::Fault) {
            // A page the call needs is not there yet: VM may make it present, and then the
            // call runs again (it has changed nothing; see `suspend_for_vm`).
            if let Some(missing) = usercopy::missing_page() {
                if self.suspend_for_vm(slot, missing) {
                    return;
                }
            }
        }
        let context = self.threads[slot].context_mut();
        match result {
            Ok(Next::Return(value)) => {
                write_result(context, Ok(value));
                self.trace_syscall_finished(slot);
            }
            Err(error) => {
                write_result(context, Err(error));
                self.trace_syscall_finished(slot);
            }
            Ok(Next::Yield) => {
                context.rax = 0;
                self.yield_current();
                self.trace_syscall_finished(slot);
            }
            Ok(Next::Blocked) => {
                self.trace_syscall_blocked(slot);
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
            // The caller is gone: its slot may already be free or reused.
            Ok(Next::Exited) => {}
            Ok(Next::Restored) => self.trace_syscall_finished(slot),
        }
    }

    /// Decodes system call `call`'s arguments and runs its handler: one match, so each
    /// call's decoding is inlined into its own arm.
    fn syscall(
        &mut self,
        caller: ThreadSlot,
        call: Syscall,
        registers: &[u64; 6],
    ) -> Result<Next, Error> {
        /// Decodes the arguments as `$Args` and calls `$handler(kernel, caller, args)`.
        macro_rules! run {
            ($Args:ident, $handler:path) => {
                $Args::decode(registers).and_then(|args| $handler(self, caller, args))
            };
        }
        match call {
            Syscall::DebugWrite => run!(DebugWriteArgs, debug_write),
            Syscall::Send => run!(SendArgs, send),
            Syscall::Receive => run!(ReceiveArgs, receive),
            Syscall::SendReceive => run!(SendReceiveArgs, send_receive),
            Syscall::Notify => run!(NotifyArgs, notify),
            Syscall::SendNonBlocking => run!(SendNonBlockingArgs, send_nonblocking),
            Syscall::SendAsync => run!(SendAsyncArgs, send_async),
            Syscall::ThreadCreate => run!(ThreadCreateArgs, crate::thread::create),
            Syscall::ThreadExit => run!(ThreadExitArgs, crate::thread::exit),
            Syscall::ThreadJoin => run!(ThreadJoinArgs, crate::thread::join),
            Syscall::ProcessExit => run!(ProcessExitArgs, crate::process::exit),
            Syscall::Yield => Ok(Next::Yield),
            Syscall::Sleep => run!(SleepArgs, crate::timer::sleep),
            Syscall::AlarmSet => run!(AlarmSetArgs, crate::timer::alarm_set),
            Syscall::MutexWait => run!(MutexWaitArgs, crate::mutex::wait),
            Syscall::MutexWake => run!(MutexWakeArgs, crate::mutex::wake),
            Syscall::GrantCreate => run!(GrantCreateArgs, crate::grant::create),
            Syscall::GrantRevoke => run!(GrantRevokeArgs, crate::grant::revoke),
            Syscall::SelfEndpoint => Ok(Next::Return(self.table.endpoint(caller).0)),
            Syscall::ClockNs => Ok(Next::Return(crate::time::now_ns())),
            Syscall::Lookup => run!(LookupArgs, lookup),
            Syscall::Panic => run!(PanicArgs, crate::process::panic),
            Syscall::KernelCall => run!(KernelCallTrapArgs, Kernel::kernel_call),
            Syscall::ReplyReceive => run!(ReplyReceiveArgs, reply_receive),
            Syscall::SignalReturn => run!(SignalReturnArgs, crate::signal::signal_return),
            Syscall::SignalRaise => run!(SignalRaiseArgs, crate::signal::raise),
            Syscall::TraceResumeWait => {
                run!(TraceResumeWaitArgs, crate::trace_handoff::resume_wait)
            }
        }
    }
}

/// Writes a call's result into the caller's saved registers as the call's ABI says, when
/// it finishes now or later (`IpcEnvironment::unblock`; RAX still holds the call's number
/// until then): the value or the error code in RAX — except `ThreadJoin`, whose success is
/// 0 in RAX and the exit code in RDX, because an exit code may be any `u64`.
pub fn write_result(context: &mut TrapFrame, result: Result<u64, Error>) {
    match result {
        Ok(exit_code) if context.rax == Syscall::ThreadJoin as u64 => {
            context.rax = 0;
            context.rdx = exit_code;
        }
        Ok(value) => context.rax = value,
        Err(error) => context.rax = error.to_return_value(),
    }
}

fn send(kernel: &mut Kernel, caller: ThreadSlot, args: SendArgs) -> Result<Next, Error> {
    let (table, mut env) = kernel.ipc_parts();
    Next::from_outcome(table.send(&mut env, caller, args.destination, args.message))
}

// Receive, SendReceive and ReplyReceive try the fast path first (`kcore::ipc::fast`): it
// either does the whole call, or changes nothing and the slow path runs.

fn receive(kernel: &mut Kernel, caller: ThreadSlot, args: ReceiveArgs) -> Result<Next, Error> {
    // Off while anything is traced: trace stops need the slow path's points (`ptrace.rs`).
    let fast = kernel.ipc_fastpath && !kernel.trace.any();
    let (table, mut env) = kernel.ipc_parts();
    if fast
        && table
            .fast_receive(&mut env, caller, args.source, args.message)
            .is_some()
    {
        return Ok(Next::Blocked);
    }
    Next::from_outcome(table.receive(&mut env, caller, args.source, args.message))
}

fn send_receive(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: SendReceiveArgs,
) -> Result<Next, Error> {
    // Off while anything is traced: trace stops need the slow path's points (`ptrace.rs`).
    let fast = kernel.ipc_fastpath && !kernel.trace.any();
    let (table, mut env) = kernel.ipc_parts();
    if fast {
        if let Some(handoff) =
            table.fast_send_receive(&mut env, caller, args.destination, args.message)
        {
            kernel.finish_handoff(handoff);
            return Ok(Next::Blocked);
        }
    }
    Next::from_outcome(table.send_receive(&mut env, caller, args.destination, args.message))
}

fn reply_receive(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: ReplyReceiveArgs,
) -> Result<Next, Error> {
    // Off while anything is traced: trace stops need the slow path's points (`ptrace.rs`).
    let fast = kernel.ipc_fastpath && !kernel.trace.any();
    let (table, mut env) = kernel.ipc_parts();
    if fast {
        if let Some(handoff) = table.fast_reply_receive(
            &mut env,
            caller,
            args.destination,
            args.source,
            args.message,
        ) {
            kernel.finish_handoff(handoff);
            return Ok(Next::Blocked);
        }
    }
    Next::from_outcome(table.reply_receive(
        &mut env,
        caller,
        args.destination,
        args.source,
        args.message,
    ))
}

fn notify(kernel: &mut Kernel, caller: ThreadSlot, args: NotifyArgs) -> Result<Next, Error> {
    crate::trace::emit(
        EventKind::IpcNotify,
        kernel.table.endpoint(caller),
        [args.destination.0, 0, 0],
    );
    let (table, mut env) = kernel.ipc_parts();
    table
        .notify(&mut env, caller, args.destination)
        .map(Next::Return)
}

fn send_nonblocking(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: SendNonBlockingArgs,
) -> Result<Next, Error> {
    let (table, mut env) = kernel.ipc_parts();
    table
        .send_nonblocking(&mut env, caller, args.destination, args.message)
        .map(Next::Return)
}

fn send_async(kernel: &mut Kernel, caller: ThreadSlot, args: SendAsyncArgs) -> Result<Next, Error> {
    if args.table.len() > MAX_ASYNC_ENTRIES {
        return Err(Error::InvalidArgument);
    }
    let (table, mut env) = kernel.ipc_parts();
    table
        .send_async(&mut env, caller, args.table)
        .map(Next::Return)
}

/// DebugWrite: the caller's text on the console, a line per `\n`. One call prints at most
/// `DEBUG_WRITE_LINES_PER_CALL` lines of at most `DEBUG_WRITE_BYTES_PER_CALL` bytes in all,
/// and returns how many bytes it took (a prefix of the text, cut after a line or at a
/// character boundary): the console is slow (about 1.6 µs a byte under TCG, 87 µs on a real
/// 115,200-baud UART), and an unbounded call would keep the kernel busy with interrupts off
/// while higher-priority threads wait. The runtime's `print` calls again for the rest.
fn debug_write(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: DebugWriteArgs,
) -> Result<Next, Error> {
    let len = args.text.len();
    if len > DEBUG_WRITE_MAX {
        return Err(Error::InvalidArgument);
    }
    let mut buffer = [0u8; DEBUG_WRITE_BYTES_PER_CALL];
    let taken = len.min(DEBUG_WRITE_BYTES_PER_CALL);
    let chunk = args.text.truncate(taken);
    usercopy::read(kernel.space_of(caller), chunk, &mut buffer[..taken])?;
    let consumed = debug_write_prefix(&buffer[..taken], taken < len);
    let text = match core::str::from_utf8(&buffer[..consumed]) {
        Ok(text) => text,
        Err(error) => core::str::from_utf8(&buffer[..error.valid_up_to()]).unwrap_or(""),
    };
    let name = kernel.process_of(caller).name();
    for line in text.split('\n').filter(|line| !line.is_empty()) {
        crate::info!("{name}: {}", line.trim_end_matches('\r'));
    }
    Ok(Next::Return(consumed as u64))
}

/// How much of `bytes` (the start of a text, `more` if it goes on) one DebugWrite prints:
/// up to the end of its `DEBUG_WRITE_LINES_PER_CALL`th line; when cut at the byte bound,
/// not inside a UTF-8 character (unless the text is not UTF-8 there anyway). Never 0 for a
/// non-empty text, so a caller that writes the rest again always progresses.
fn debug_write_prefix(bytes: &[u8], more: bool) -> usize {
    let mut lines = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        if byte == b'\n' {
            lines += 1;
            if lines == DEBUG_WRITE_LINES_PER_CALL {
                return index + 1;
            }
        }
    }
    if more {
        if let Err(error) = core::str::from_utf8(bytes) {
            if error.error_len().is_none() && error.valid_up_to() > 0 {
                return error.valid_up_to();
            }
        }
    }
    bytes.len()
}

/// Lookup: the main thread of the boot process with that name. A process PM has created
/// but not started has no main thread yet: `NotFound` until it starts (PM builds every
/// boot program before it starts any, so a caller retries as for a later module).
fn lookup(kernel: &mut Kernel, caller: ThreadSlot, args: LookupArgs) -> Result<Next, Error> {
    let len = args.name.len();
    if len == 0 || len > LOOKUP_NAME_MAX {
        return Err(Error::NotFound);
    }
    let mut buffer = [0u8; LOOKUP_NAME_MAX];
    usercopy::read(kernel.space_of(caller), args.name, &mut buffer[..len])?;
    let name = core::str::from_utf8(&buffer[..len]).map_err(|_| Error::NotFound)?;
    kernel
        .process_named(name)
        .filter(|&slot| kernel.processes[slot].started())
        .map(|slot| Next::Return(kernel.processes[slot].main_thread().0))
        .ok_or(Error::NotFound)
}
