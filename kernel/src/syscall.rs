//! System-call dispatch: the one wrapper that decodes a call at the boundary, runs its
//! handler and applies the handler's verdict.
//!
//! Every handler has the same shape, `fn(&mut Kernel, caller, XArgs) -> Result<Next, Error>`:
//! it gets its arguments as the typed struct of `vigil_abi::syscall` (decoded once from the
//! six registers: user memory already a `UserPtr`/`UserSlice`, flags already checked), and
//! says what happens to the caller next. Only `apply_verdict` (or the IPC fast path's own
//! `fast_ipc_call`) writes RAX and traces the outcome.

use crate::arch::trap::TrapFrame;
use crate::ipc::Delivery;
use crate::system::Kernel;
use crate::usercopy;
use vigil_abi::async_message::MAX_ASYNC_ENTRIES;
use vigil_abi::syscall::*;
use vigil_abi::trace::EventKind;
use vigil_abi::user_memory::UserPtr;
use vigil_abi::wait::ThreadState;
use vigil_abi::Error;
use vigil_kcore::ipc::Outcome;
use vigil_kcore::slot::ThreadSlot;
use vigil_kcore::trace::FastIpc;

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
    /// Whether system call `number` is one the IPC fast path has a way for (`SendReceive`,
    /// `ReplyReceive` and their register-message forms): one bit test, so every other call
    /// pays next to nothing for it.
    #[inline]
    pub fn is_fast_ipc_call(number: u64) -> bool {
        const CALLS: u64 = 1 << Syscall::SendReceive as u64
            | 1 << Syscall::ReplyReceive as u64
            | 1 << Syscall::SendReceiveRegisters as u64
            | 1 << Syscall::ReplyReceiveRegisters as u64;
        number < 64 && CALLS >> number & 1 != 0
    }

    /// Whether the IPC fast path may run now: it is on and nothing is traced (trace stops
    /// need the slow path's points, `ptrace.rs`).
    #[inline]
    pub fn fast_ipc_allowed(&self) -> bool {
        // One bit for both (`TraceLink::fast_ipc_closed`).
        !self.trace.fast_ipc_closed()
    }

    /// The IPC fast path's way through the kernel for the calls of `is_fast_ipc_call`
    /// (`number`), with nothing traced: the `Syscall` event, the arguments decoded, the fast
    /// operation (`kcore::ipc::fast`; a register call's message is copied between saved
    /// registers, `ipc.rs`), then directly the verdict a blocked call gets (the partner's
    /// result and `Unblock`, the caller's `Block` event), without the general dispatch.
    ///
    /// Returns the partner when the CPU goes straight to it (`DirectSwitch`): the scheduler
    /// would pick it now (`direct_switch_allowed`). Otherwise the partner was
    /// queued or handed off as the slow path's `unblock` would (or the call declined and ran
    /// the slow way, `fast_ipc_declined`), and the kernel leaves through the scheduler.
    ///
    /// The CPU time of the call is charged once, at the switch or the kernel's exit: the
    /// caller stays the current thread until then, so its user time and its kernel time go
    /// to it as with a charge at entry too, in one conversion instead of two.
    #[inline(always)]
    pub fn fast_ipc_call(&mut self, slot: ThreadSlot, number: u64) -> Option<DirectSwitch> {
        let registers = self.threads[slot].context().syscall_arguments();
        let caller = self.table.endpoint(slot);
        crate::trace::emit(EventKind::Syscall, caller, [number, registers[0], 0]);
        usercopy::forget_missing_page();
        let done = match Syscall::from_number(number) {
            Some(Syscall::SendReceiveRegisters) => SendReceiveRegistersArgs::decode(&registers)
                .ok()
                .and_then(|args| self.fast_send_receive(slot, args.destination, UserPtr::NULL)),
            Some(Syscall::ReplyReceiveRegisters) => ReplyReceiveRegistersArgs::decode(&registers)
                .ok()
                .and_then(|args| {
                    self.fast_reply_receive(slot, args.destination, args.source, UserPtr::NULL)
                }),
            Some(Syscall::SendReceive) => SendReceiveArgs::decode(&registers)
                .ok()
                .and_then(|args| self.fast_send_receive(slot, args.destination, args.message)),
            _ => ReplyReceiveArgs::decode(&registers).ok().and_then(|args| {
                self.fast_reply_receive(slot, args.destination, args.source, args.message)
            }),
        };
        match done {
            Some((handoff, state, deferred_kind)) => {
                self.finish_fast_ipc_call(slot, caller, handoff, state, deferred_kind)
            }
            None => {
                self.fast_ipc_declined(slot, number, &registers, caller);
                None
            }
        }
    }

    /// The fast `SendReceive` of `slot` to `destination` (message at `buffer`, or in the
    /// registers for the register call): the partner woken and the caller's new state.
    #[inline(always)]
    fn fast_send_receive(
        &mut self,
        slot: ThreadSlot,
        destination: vigil_abi::Endpoint,
        buffer: UserPtr<vigil_abi::Message>,
    ) -> Option<(vigil_kcore::ipc::Handoff, ThreadState, Option<u32>)> {
        let (table, mut env) = self.fast_ipc_parts();
        let handoff = table.fast_send_receive(&mut env, slot, destination, buffer)?;
        let state = ThreadState::AwaitingReply { from: destination };
        Some((handoff, state, env.deferred_kind))
    }

    /// The fast `ReplyReceive` of `slot`, as `fast_send_receive`.
    #[inline(always)]
    fn fast_reply_receive(
        &mut self,
        slot: ThreadSlot,
        destination: vigil_abi::Endpoint,
        source: vigil_abi::Endpoint,
        buffer: UserPtr<vigil_abi::Message>,
    ) -> Option<(vigil_kcore::ipc::Handoff, ThreadState, Option<u32>)> {
        let (table, mut env) = self.fast_ipc_parts();
        let handoff = table.fast_reply_receive(&mut env, slot, destination, source, buffer)?;
        let state = ThreadState::Receiving { from: source };
        Some((handoff, state, env.deferred_kind))
    }

    /// The fast operation declined `slot`'s (`caller`'s) call `number` (its argument
    /// `registers`) after its `Syscall` event, having changed nothing: the CPU time is
    /// charged now, and the call runs the slow way with the general verdict, as in
    /// `handle_syscall` (no trace stop is due: nothing is traced).
    #[cold]
    #[inline(never)]
    fn fast_ipc_declined(
        &mut self,
        slot: ThreadSlot,
        number: u64,
        registers: &[u64; 6],
        caller: vigil_abi::Endpoint,
    ) {
        self.account_cpu_time();
        usercopy::forget_missing_page();
        let result = match Syscall::from_number(number) {
            Some(call) => self.syscall(slot, call, registers),
            None => Err(Error::NoSuchCall),
        };
        self.apply_verdict(slot, caller, result);
    }

    /// A fast call by `slot` (`caller`) left it blocked in `state` and woke `handoff.woken`,
    /// delivering it a message, of kind `deferred_kind` if its events are not recorded yet: the
    /// partner's result, then what `handle_syscall` does for `Next::Blocked` with nothing
    /// traced, and the events in the slow path's order — the delivery's `IpcReceive` and
    /// `IpcSend`, the partner's `Unblock`, the caller's `Block`. Returns the partner if the
    /// CPU goes straight to it; else it was handed off or queued as `unblock` would.
    ///
    /// Going straight to the partner with the default mask, the five events with the
    /// `ContextSwitch` are one compact record, as on the register fast path: the partner is
    /// then Running already and the record's TSC value ends the caller's CPU time
    /// (`DirectSwitch::now`).
    #[inline(always)]
    fn finish_fast_ipc_call(
        &mut self,
        slot: ThreadSlot,
        caller: vigil_abi::Endpoint,
        handoff: vigil_kcore::ipc::Handoff,
        state: ThreadState,
        deferred_kind: Option<u32>,
    ) -> Option<DirectSwitch> {
        let woken = handoff.woken;
        write_result(self.threads[woken].context_mut(), Ok(0));
        debug_assert_eq!(self.table.state(slot), state);
        if !self.direct_switch_allowed(woken) {
            self.hand_off_to(woken);
            record_fast_call_events(
                caller,
                self.threads[woken].endpoint(),
                deferred_kind,
                &state,
            );
            return None;
        }
        // Straight to the partner: it runs from here, and the call's CPU time ends now.
        let now = crate::arch::cpu::rdtsc();
        self.table.mark_running(woken);
        let woken_endpoint = self.threads[woken].endpoint();
        match deferred_kind {
            // The default mask (deferred: every compact kind is enabled).
            Some(kind) => {
                let (code, target, argument) = vigil_abi::introspect::encode_state(&state);
                // AwaitingReply or Receiving: a compact record has no argument to keep.
                debug_assert_eq!(argument, 0);
                let call = FastIpc {
                    caller: caller.0,
                    partner: woken_endpoint.0,
                    header: u64::from(kind),
                    state_code: code,
                    state_target: target.0,
                };
                crate::trace::emit_fast_ipc(now, None, &call);
            }
            None => {
                record_fast_call_events(caller, woken_endpoint, None, &state);
                record_context_switch(caller, woken_endpoint, &state);
            }
        }
        Some(DirectSwitch {
            partner: woken,
            now,
        })
    }

    /// Runs the system call saved in `slot`'s registers and applies the verdict.
    #[inline(never)]
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
        self.apply_verdict(slot, caller, result);
    }

    /// Applies the verdict `result` of `slot`'s (`caller`'s) call: the result in its
    /// registers, a suspension for VM, the trace stops, the `Block` event.
    #[inline(always)]
    fn apply_verdict(
        &mut self,
        slot: ThreadSlot,
        caller: vigil_abi::Endpoint,
        result: Result<Next, Error>,
    ) {
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
    #[inline(always)]
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
            Syscall::SendReceiveRegisters => {
                run!(SendReceiveRegistersArgs, send_receive_registers)
            }
            Syscall::ReplyReceiveRegisters => {
                run!(ReplyReceiveRegistersArgs, reply_receive_registers)
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

/// A fast IPC call sends the CPU straight to `partner`, Running now with the call's events
/// recorded (`sched::enter_partner`); the caller's CPU time ends at TSC value `now`.
#[derive(Clone, Copy, Debug)]
pub struct DirectSwitch {
    pub partner: ThreadSlot,
    pub now: u64,
}

/// The `ContextSwitch` from `previous`, just blocked in `state`, to `next`, if enabled.
#[inline(always)]
fn record_context_switch(
    previous: vigil_abi::Endpoint,
    next: vigil_abi::Endpoint,
    state: &ThreadState,
) {
    let (code, _, _) = vigil_abi::introspect::encode_state(state);
    crate::trace::emit(
        EventKind::ContextSwitch,
        next,
        [previous.0, u64::from(code), 0],
    );
}

/// The events of a fast call by `caller` that are not one compact record, in the slow
/// path's order and as one instant: the delivery's two to `woken` (if they were deferred:
/// the message's kind `deferred_kind`), `woken`'s `Unblock` with result 0, the caller's
/// `Block` in `state`.
#[inline(always)]
fn record_fast_call_events(
    caller: vigil_abi::Endpoint,
    woken: vigil_abi::Endpoint,
    deferred_kind: Option<u32>,
    state: &ThreadState,
) {
    // The delivery's events were deferred only with every compact kind enabled, so with
    // `Unblock` and `Block` both off there is nothing to record.
    const CALL_EVENT_KINDS: u64 = EventKind::Unblock.mask_bit() | EventKind::Block.mask_bit();
    if crate::trace::mask() & CALL_EVENT_KINDS != 0 {
        record_fast_call_events_enabled(caller, woken, deferred_kind, state);
    }
}

/// `record_fast_call_events` with something to record.
#[inline(never)]
fn record_fast_call_events_enabled(
    caller: vigil_abi::Endpoint,
    woken: vigil_abi::Endpoint,
    deferred_kind: Option<u32>,
    state: &ThreadState,
) {
    let (code, target, argument) = vigil_abi::introspect::encode_state(state);
    let unblocked = (EventKind::Unblock, woken, [0, 0, 0]);
    let blocked = (
        EventKind::Block,
        caller,
        [u64::from(code), target.0, argument],
    );
    match deferred_kind {
        Some(kind) => {
            let delivery = Delivery {
                receiver: woken,
                sender: caller,
                kind,
            };
            let [received, sent] = delivery.events();
            crate::trace::emit_together([received, sent, unblocked, blocked]);
        }
        None => crate::trace::emit_together([unblocked, blocked]),
    }
}

fn send(kernel: &mut Kernel, caller: ThreadSlot, args: SendArgs) -> Result<Next, Error> {
    let (table, mut env) = kernel.ipc_parts();
    Next::from_outcome(table.send(&mut env, caller, args.destination, args.message))
}

// Receive here, SendReceive and ReplyReceive before the general dispatch
// (`Kernel::fast_ipc_call`), try the fast path first (`kcore::ipc::fast`): it either does
// the whole call, or changes nothing and the slow path runs.

fn receive(kernel: &mut Kernel, caller: ThreadSlot, args: ReceiveArgs) -> Result<Next, Error> {
    // Off while anything is traced: trace stops need the slow path's points (`ptrace.rs`).
    let fast = kernel.fast_ipc_allowed();
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

/// `SendReceive` the slow way (the state machine's general operation): its fast path is tried
/// before the general dispatch (`fast_ipc_call`).
fn send_receive(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: SendReceiveArgs,
) -> Result<Next, Error> {
    let (table, mut env) = kernel.ipc_parts();
    Next::from_outcome(table.send_receive(&mut env, caller, args.destination, args.message))
}

/// `ReplyReceive` the slow way (the state machine's general operation): its fast path is
/// tried before the general dispatch (`fast_ipc_call`).
fn reply_receive(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: ReplyReceiveArgs,
) -> Result<Next, Error> {
    let (table, mut env) = kernel.ipc_parts();
    Next::from_outcome(table.reply_receive(
        &mut env,
        caller,
        args.destination,
        args.source,
        args.message,
    ))
}

/// `SendReceiveRegisters` the slow way: `send_receive` with the message in the caller's
/// registers (`ipc.rs` copies them; no buffer in memory).
fn send_receive_registers(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: SendReceiveRegistersArgs,
) -> Result<Next, Error> {
    let (table, mut env) = kernel.ipc_parts();
    Next::from_outcome(table.send_receive(&mut env, caller, args.destination, UserPtr::NULL))
}

/// `ReplyReceiveRegisters` the slow way: `reply_receive` with register messages.
fn reply_receive_registers(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: ReplyReceiveRegistersArgs,
) -> Result<Next, Error> {
    let (table, mut env) = kernel.ipc_parts();
    Next::from_outcome(table.reply_receive(
        &mut env,
        caller,
        args.destination,
        args.source,
        UserPtr::NULL,
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
