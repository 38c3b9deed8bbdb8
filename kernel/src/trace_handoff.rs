//! The direct trace path: a tracer PM registered (`PmSetTracer`) resumes its stopped tracee
//! and waits for the next trace stop (`TraceResumeWait`), which the kernel hands it at once
//! instead of holding it for PM (`vigil_abi::ptrace::direct`).
//!
//! PM keeps the policy — who traces whom, attach and detach, followed children, exits — and
//! registers the tracer per tracee; the kernel only checks that registration. The hot loop
//! (stop → tracer → resume) then costs two system calls and two switches per stop instead
//! of two PM round trips. Whatever is not a plain trace stop goes PM's way: the call
//! answers `NOT_AT_STOP` (nothing done) or `ASK_MANAGER` (resumed, then something else
//! came) and the runtime asks PM (RESUME_WAIT or WAIT), so PM's events are unchanged.
//!
//! - **Registration** is keyed by process slot *and* pid, so a process later created in the
//!   slot inherits nothing, and no exit hook is needed.
//! - **The waiter** is the tracer thread, `WaitingForTracee` on the tracee's traced thread
//!   (snapshots show it). Its entry here is only a hint: it counts while that thread is
//!   still in that state, so a tracer that was killed, signalled (`interrupt`) or woken by
//!   the tracee's exit (`ThreadTable::exit`) leaves nothing to clean up.
//! - **The stop** is the same hold as PM's (`HeldForManager` at the stop's pseudo-vector,
//!   so PM's register and memory verbs and `PmResumeThread` work on it), minus the event
//!   and the notice: PM never hears of it.

use crate::syscall::Next;
use crate::system::Kernel;
use crate::usercopy;
use vigil_abi::ptrace::{direct, stop, ResumeMode};
use vigil_abi::syscall::{PmSetTracerArgs, TraceResumeWaitArgs};
use vigil_abi::user_memory::UserPtr;
use vigil_abi::wait::ThreadState;
use vigil_abi::Error;
use vigil_kcore::slot::{ProcessSlot, ThreadSlot, MAX_PROCESSES};

/// Where a waiting tracer's stop record goes.
type RecordPtr = UserPtr<[u64; direct::RECORD_WORDS]>;

/// A tracer PM registered for a tracee.
#[derive(Clone, Copy)]
struct Registration {
    /// The tracee's pid (the slot may later hold another process).
    tracee: u32,
    tracer: u32,
}

/// A tracer thread blocked in `TraceResumeWait`.
#[derive(Clone, Copy)]
struct Waiter {
    thread: ThreadSlot,
    out: RecordPtr,
}

/// The direct path's state, per process slot.
pub struct HandoffLink {
    tracers: [Option<Registration>; MAX_PROCESSES],
    waiters: [Option<Waiter>; MAX_PROCESSES],
}

impl HandoffLink {
    pub const fn new() -> HandoffLink {
        HandoffLink {
            tracers: [None; MAX_PROCESSES],
            waiters: [None; MAX_PROCESSES],
        }
    }
}

/// Whether `vector` is one of the trace stops' pseudo-vectors.
pub fn is_trace_stop(vector: u64) -> bool {
    matches!(
        vector,
        stop::SYSCALL_ENTRY_VECTOR | stop::SYSCALL_EXIT_VECTOR | stop::STEP_VECTOR
    )
}

impl Kernel {
    /// Whether `slot` is held at a trace stop now.
    pub fn held_at_trace_stop(&self, slot: ThreadSlot) -> bool {
        matches!(
            self.table.state(slot),
            ThreadState::HeldForManager { vector, .. } if is_trace_stop(vector)
        )
    }

    /// The tracer registered for `process`, if the registration is its own.
    fn registered_tracer(&self, process: ProcessSlot) -> Option<u32> {
        let registration = self.trace.handoff.tracers[process.index()]?;
        (registration.tracee == self.processes[process].pid()).then_some(registration.tracer)
    }

    /// The tracer thread waiting for `process`'s next stop, taken from its entry (None if
    /// the entry is stale: that thread no longer waits for this process).
    fn take_waiter(&mut self, process: ProcessSlot) -> Option<Waiter> {
        let waiter = self.trace.handoff.waiters[process.index()].take()?;
        let pid = u64::from(self.processes[process].pid());
        match self.table.state(waiter.thread) {
            ThreadState::WaitingForTracee { pid: waited, .. } if waited == pid => Some(waiter),
            _ => None,
        }
    }

    /// Ends `waiter`'s wait for process `pid` with `result` (its RAX).
    fn wake_tracer(&mut self, waiter: Waiter, pid: u32, result: u64) {
        let (table, mut env) = self.ipc_parts();
        table.end_tracee_wait(&mut env, waiter.thread, u64::from(pid), Ok(result));
    }

    /// A trace stop of `slot` at `vector`: handed to its waiting tracer (true), else held
    /// for the signal manager as before.
    pub fn trace_stop(&mut self, slot: ThreadSlot, vector: u64) -> bool {
        if self.hand_stop_to_tracer(slot, vector) {
            return true;
        }
        self.hold_for_manager_at(slot, vector, 0)
    }

    /// Holds `slot` at `vector` for the tracer waiting in `TraceResumeWait`, writes it the
    /// stop record and wakes it. False if no tracer waits, or (after waking it with
    /// `ASK_MANAGER`) if the stop cannot be handed over: then PM gets it.
    fn hand_stop_to_tracer(&mut self, slot: ThreadSlot, vector: u64) -> bool {
        let process = self.threads[slot].process();
        let Some(waiter) = self.take_waiter(process) else {
            return false;
        };
        let pid = self.processes[process].pid();
        // The hold names the manager's main thread, as PM's holds do.
        let manager = self.processes[process]
            .signal_manager()
            .and_then(|manager| self.processes.by_pid(manager))
            .map(|manager| self.processes[manager].main_thread());
        let runnable = matches!(
            self.table.state(slot),
            ThreadState::Running | ThreadState::Ready
        );
        let stopped = self.processes[process].signals.stopped_by != 0;
        let Some(manager) = manager.filter(|_| runnable && !stopped) else {
            self.wake_tracer(waiter, pid, direct::ASK_MANAGER);
            return false;
        };
        let context = self.threads[slot].context();
        let mut record = [0u64; direct::RECORD_WORDS];
        record[direct::KIND] = stop::event_kind(vector);
        record[direct::THREAD] = self.table.endpoint(slot).0;
        // An entry stop's RIP is moved back onto SYSCALL right after the hold.
        record[direct::RIP] = if vector == stop::SYSCALL_ENTRY_VECTOR {
            context.rip - crate::vm::SYSCALL_INSTRUCTION_BYTES
        } else {
            context.rip
        };
        record[direct::VALUE] = context.rax;
        let tracer_space = self.space_of(waiter.thread);
        if usercopy::write_value(tracer_space, waiter.out, &record).is_err() {
            // Checked when the call began; unmapped since. PM takes the stop.
            usercopy::forget_missing_page();
            self.wake_tracer(waiter, pid, direct::ASK_MANAGER);
            return false;
        }
        self.run_queues.remove(slot.get());
        self.table.hold_for_manager(slot, manager, vector);
        crate::trace::emit(
            vigil_abi::trace::EventKind::Block,
            self.table.endpoint(slot),
            [
                u64::from(vigil_abi::introspect::state_code::HELD_FOR_MANAGER),
                manager.0,
                vector,
            ],
        );
        self.wake_tracer(waiter, pid, direct::STOPPED);
        true
    }
}

/// TraceResumeWait (system call 26): the registered tracer resumes its tracee held at a
/// trace stop (or, `WaitOnly`, leaves it running) and waits for the next stop.
pub fn resume_wait(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: TraceResumeWaitArgs,
) -> Result<Next, Error> {
    let process = kernel
        .processes
        .by_pid(args.process.0)
        .ok_or(Error::NotFound)?;
    let caller_pid = kernel.process_of(caller).pid();
    if kernel.registered_tracer(process) != Some(caller_pid) {
        return Err(Error::PermissionDenied);
    }
    if let Some(waiter) = kernel.trace.handoff.waiters[process.index()] {
        let pid = u64::from(args.process.0);
        if waiter.thread != caller
            && matches!(kernel.table.state(waiter.thread),
                ThreadState::WaitingForTracee { pid: waited, .. } if waited == pid)
        {
            return Err(Error::Exists);
        }
    }
    // The record's page first: a fault here is served by VM and the call runs again,
    // having changed nothing.
    usercopy::write_value(
        kernel.space_of(caller),
        args.out,
        &[0u64; direct::RECORD_WORDS],
    )?;
    let tracee_endpoint = kernel.processes[process].main_thread();
    let Ok(tracee) = kernel.table.resolve(tracee_endpoint) else {
        return Ok(Next::Return(direct::NOT_AT_STOP));
    };
    // A process PM stopped (attach, SIGSTOP) is PM's to resume.
    if kernel.processes[process].signals.stopped_by != 0 {
        return Ok(Next::Return(direct::NOT_AT_STOP));
    }
    match args.mode {
        ResumeMode::Resume(flags) => {
            if !kernel.held_at_trace_stop(tracee) {
                return Ok(Next::Return(direct::NOT_AT_STOP));
            }
            kernel.apply_trace_flags(tracee, flags);
            kernel.release_held_thread(tracee);
        }
        ResumeMode::WaitOnly => {
            // Held for anything (a stop PM reported, an exception): PM knows of it.
            if matches!(
                kernel.table.state(tracee),
                ThreadState::HeldForManager { .. }
            ) {
                return Ok(Next::Return(direct::NOT_AT_STOP));
            }
        }
    }
    kernel.trace.handoff.waiters[process.index()] = Some(Waiter {
        thread: caller,
        out: args.out,
    });
    let pid = u64::from(args.process.0);
    Next::from_outcome(kernel.table.wait_for_tracee(caller, tracee_endpoint, pid))
}

/// PmSetTracer (kernel call 45): the caller, `process`'s signal manager, names the process
/// that may use `TraceResumeWait` on it (pid 0: none). A tracer thread still waiting there
/// is woken with `ASK_MANAGER`.
pub fn set_tracer(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: PmSetTracerArgs,
) -> Result<Next, Error> {
    let process = kernel
        .processes
        .by_pid(args.process.0)
        .ok_or(Error::NotFound)?;
    if process == kernel.threads[caller].process() {
        return Err(Error::SelfTarget);
    }
    if kernel.processes[process].signal_manager() != Some(kernel.process_of(caller).pid()) {
        return Err(Error::PermissionDenied);
    }
    let registration = match args.tracer.0 {
        0 => None,
        tracer => {
            let tracer_slot = kernel.processes.by_pid(tracer).ok_or(Error::NotFound)?;
            if tracer_slot == process {
                return Err(Error::SelfTarget);
            }
            Some(Registration {
                tracee: args.process.0,
                tracer,
            })
        }
    };
    if let Some(waiter) = kernel.take_waiter(process) {
        kernel.wake_tracer(waiter, args.process.0, direct::ASK_MANAGER);
    }
    kernel.trace.handoff.tracers[process.index()] = registration;
    Ok(Next::Return(0))
}
