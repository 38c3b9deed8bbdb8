//! Trace stops: a traced thread held for its signal manager at a system call's entry and
//! exit, or after one instruction (`PmTraceFlags`; `vigil_abi::ptrace::stop`).
//!
//! A stop is the same hold as an exception's (`HeldForManager`, an event the manager
//! collects with `PmNextEvent`, `PmResumeThread` to go on), at a pseudo-vector naming it.
//!
//! - **Entry.** The call has not run: the thread is held with its registers as it entered
//!   (the tracer may read and change them), and its RIP is moved back onto the `SYSCALL`
//!   instruction, so when the tracer resumes it the call runs by entering again — the
//!   restart `suspend_for_vm` already uses. The call is counted once.
//! - **Exit.** A call that finished at once (a result, an error, a yield) holds the thread
//!   before it returns; one that blocked holds it when it is next picked to run, which is
//!   when its result is in RAX. A call suspended for VM is neither: it is still in progress.
//! - **Step.** The thread runs with the trap flag; its #DB becomes a step stop (no report).
//!
//! The IPC fast path does not run while any thread is traced (`any`), so every call and
//! every wake-up passes the points above.

use crate::signal::{bit, set, WORDS};
use crate::syscall::Next;
use crate::system::Kernel;
use vigil_abi::ptrace::{stop, TraceFlags, HELD_AT_STOP};
use vigil_abi::syscall::PmTraceFlagsArgs;
use vigil_abi::user_memory::UserSlice;
use vigil_abi::Error;
use vigil_kcore::slot::ThreadSlot;

/// The RFLAGS trap flag.
const TRAP_FLAG: u64 = 1 << 8;

/// `SYSCALL`'s encoding.
const SYSCALL_INSTRUCTION: [u8; 2] = [0x0f, 0x05];

/// Per-thread tracing state, as bitmaps over the thread table.
pub struct TraceLink {
    /// Threads that stop at system calls.
    syscalls: [u64; WORDS],
    /// Threads stepping one instruction.
    step: [u64; WORDS],
    /// Threads whose call's entry stop was reported and which have not finished it.
    in_call: [u64; WORDS],
    /// Threads whose call blocked: the exit stop comes when they next run.
    exit_when_picked: [u64; WORDS],
    /// Some bit above is set: the fast path is off and the scheduler looks.
    any: bool,
    /// The kernel command line turned the IPC fast path off (`ipc_fastpath=off`).
    fast_path_off: bool,
    /// The IPC fast paths' gate, one byte tested at entry: `CLOSED_BY_TRACE_OR_OPTION`
    /// while `any || fast_path_off` (kept by `refresh` and `set_fast_path`; the fast paths
    /// may not run, `Kernel::fast_ipc_allowed`), `SCHEDULING_CHECKS` while the signal code
    /// has the scheduler check what it picks (kept by `Kernel::set_scheduling_checks`; no
    /// direct switch then). The register fast path needs both clear, so it tests the byte
    /// once (`register_fast_path_open`).
    fast_ipc_gate: u8,
    /// Registered tracers and the ones waiting for a stop (`trace_handoff.rs`).
    pub handoff: crate::trace_handoff::HandoffLink,
}

/// `TraceLink::fast_ipc_gate`: a thread is traced or the command line turned the fast path off.
const CLOSED_BY_TRACE_OR_OPTION: u8 = 1;
/// `TraceLink::fast_ipc_gate`: the scheduler checks the threads it picks (signals, stops).
const SCHEDULING_CHECKS: u8 = 2;

impl TraceLink {
    /// Whether `slot` stops at system calls, steps, or is between a call's trace stops.
    pub fn is_traced(&self, slot: ThreadSlot) -> bool {
        self.any
            && [
                &self.syscalls,
                &self.step,
                &self.in_call,
                &self.exit_when_picked,
            ]
            .into_iter()
            .any(|map| bit(map, slot))
    }

    pub const fn new() -> TraceLink {
        TraceLink {
            syscalls: [0; WORDS],
            step: [0; WORDS],
            in_call: [0; WORDS],
            exit_when_picked: [0; WORDS],
            any: false,
            fast_path_off: false,
            fast_ipc_gate: 0,
            handoff: crate::trace_handoff::HandoffLink::new(),
        }
    }

    /// Whether some thread is traced (then the IPC fast path is off).
    #[inline]
    pub fn any(&self) -> bool {
        self.any
    }

    /// Whether the IPC fast path may not run: a thread is traced (trace stops need the slow
    /// path's points) or the command line turned it off.
    #[inline(always)]
    pub fn fast_ipc_closed(&self) -> bool {
        self.fast_ipc_gate & CLOSED_BY_TRACE_OR_OPTION != 0
    }

    /// Whether neither closes the register fast path: the fast paths may run and no direct
    /// switch waits for the scheduler's checks (one test of the gate byte).
    #[inline(always)]
    pub fn register_fast_path_open(&self) -> bool {
        self.fast_ipc_gate == 0
    }

    /// The signal code's `SignalLink::scheduling_checks` changed to `on` (mirrored in the
    /// gate byte; `Kernel::set_scheduling_checks` keeps the two equal).
    pub fn set_scheduling_checks(&mut self, on: bool) {
        self.set_gate_bit(SCHEDULING_CHECKS, on);
    }

    /// The command line's `ipc_fastpath=` (`on` false: every IPC call takes the slow path).
    pub fn set_fast_path(&mut self, on: bool) {
        self.fast_path_off = !on;
        self.set_gate_bit(CLOSED_BY_TRACE_OR_OPTION, self.any || self.fast_path_off);
    }

    fn set_gate_bit(&mut self, bit: u8, on: bool) {
        if on {
            self.fast_ipc_gate |= bit;
        } else {
            self.fast_ipc_gate &= !bit;
        }
    }

    fn refresh(&mut self) {
        self.any = [
            self.syscalls,
            self.step,
            self.in_call,
            self.exit_when_picked,
        ]
        .iter()
        .any(|map| map.iter().any(|&word| word != 0));
        self.set_gate_bit(CLOSED_BY_TRACE_OR_OPTION, self.any || self.fast_path_off);
    }

    fn flags(&self, slot: ThreadSlot) -> TraceFlags {
        let mut bits = 0;
        if bit(&self.syscalls, slot) {
            bits |= TraceFlags::SYSCALLS.bits();
        }
        if bit(&self.step, slot) {
            bits |= TraceFlags::STEP.bits();
        }
        TraceFlags::new(bits).unwrap_or(TraceFlags::NONE)
    }

    /// `slot` is leaving the system: no tracing state of it stays.
    pub fn forget_thread(&mut self, slot: ThreadSlot) {
        if !self.any {
            return;
        }
        for map in [
            &mut self.syscalls,
            &mut self.step,
            &mut self.in_call,
            &mut self.exit_when_picked,
        ] {
            set(map, slot, false);
        }
        self.refresh();
    }
}

impl Kernel {
    /// `slot` is traced no more (its manager exited): no trace state of it stays, and a
    /// step in progress ends (its trap flag is cleared).
    pub fn untrace(&mut self, slot: ThreadSlot) {
        if !self.trace.any {
            return;
        }
        if bit(&self.trace.step, slot) {
            self.threads[slot].context_mut().rflags &= !TRAP_FLAG;
        }
        self.trace.forget_thread(slot);
    }

    /// At a system call's entry: true if `slot` was held for an entry stop instead (the
    /// call must not run now).
    pub fn trace_syscall_entry(&mut self, slot: ThreadSlot) -> bool {
        if !self.trace.any || bit(&self.trace.in_call, slot) {
            return false;
        }
        if bit(&self.trace.step, slot) {
            // Stepping over this call: the step stop comes when it has finished.
            set(&mut self.trace.in_call, slot, true);
            return false;
        }
        if !bit(&self.trace.syscalls, slot) {
            return false;
        }
        if !self.trace_stop(slot, stop::SYSCALL_ENTRY_VECTOR) {
            return false;
        }
        set(&mut self.trace.in_call, slot, true);
        let thread = &mut self.threads[slot];
        // Entered again when resumed; counted then.
        thread.counters_mut().syscalls -= 1;
        thread.context_mut().rip -= crate::vm::SYSCALL_INSTRUCTION_BYTES;
        true
    }

    /// After a system call of `slot` that finished now (its result is in RAX): hold it for
    /// the exit stop if its entry was reported.
    pub fn trace_syscall_finished(&mut self, slot: ThreadSlot) {
        if !self.trace.any || !bit(&self.trace.in_call, slot) {
            return;
        }
        set(&mut self.trace.in_call, slot, false);
        let vector = self.finished_call_stop(slot);
        self.trace.refresh();
        if let Some(vector) = vector {
            self.trace_stop(slot, vector);
        }
    }

    /// The stop a finished call of `slot` makes: the step it was stepped over by, its exit
    /// if calls are still traced, or none (the tracer resumed the entry stop with RUN, as
    /// Linux's PTRACE_CONT from a syscall-entry stop: no exit stop follows).
    fn finished_call_stop(&mut self, slot: ThreadSlot) -> Option<u64> {
        if bit(&self.trace.step, slot) {
            set(&mut self.trace.step, slot, false);
            Some(stop::STEP_VECTOR)
        } else if bit(&self.trace.syscalls, slot) {
            Some(stop::SYSCALL_EXIT_VECTOR)
        } else {
            None
        }
    }

    /// After a system call of `slot` that blocked: its exit stop comes when it next runs.
    pub fn trace_syscall_blocked(&mut self, slot: ThreadSlot) {
        if !self.trace.any || !bit(&self.trace.in_call, slot) {
            return;
        }
        set(&mut self.trace.in_call, slot, false);
        set(&mut self.trace.exit_when_picked, slot, true);
    }

    /// `slot` was picked to run: true if it was held for its exit stop instead.
    pub fn trace_picked(&mut self, slot: ThreadSlot) -> bool {
        if !self.trace.any || !bit(&self.trace.exit_when_picked, slot) {
            return false;
        }
        set(&mut self.trace.exit_when_picked, slot, false);
        let vector = self.finished_call_stop(slot);
        self.trace.refresh();
        vector.is_some_and(|vector| self.trace_stop(slot, vector))
    }

    /// A #DB of `slot` in user mode: true if it was the step the tracer asked for (then
    /// the thread is held for the step stop, without a crash report).
    pub fn trace_debug_trap(&mut self, slot: ThreadSlot) -> bool {
        if !self.trace.any || !bit(&self.trace.step, slot) {
            return false;
        }
        set(&mut self.trace.step, slot, false);
        self.trace.refresh();
        self.threads[slot].context_mut().rflags &= !TRAP_FLAG;
        self.trace_stop(slot, stop::STEP_VECTOR)
    }
}

/// PmTraceFlags: sets the trace flags of a thread of a process the caller manages; returns
/// the previous ones, with `HELD_AT_STOP` if the thread is held at a trace stop now.
pub fn set_flags(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: PmTraceFlagsArgs,
) -> Result<Next, Error> {
    let slot = kernel.table.resolve(args.thread)?;
    let manager = kernel.process_of(caller).pid();
    let process = kernel.threads[slot].process();
    if process == kernel.threads[caller].process() {
        return Err(Error::SelfTarget);
    }
    if kernel.processes[process].signal_manager() != Some(manager) {
        return Err(Error::PermissionDenied);
    }
    let held = kernel.held_at_trace_stop(slot);
    let previous = kernel.apply_trace_flags(slot, args.flags);
    let held_bit = if held { HELD_AT_STOP } else { 0 };
    Ok(Next::Return(previous.bits() | held_bit))
}

impl Kernel {
    /// Sets `slot`'s trace flags (the trap flag with STEP); returns the previous ones.
    pub fn apply_trace_flags(&mut self, slot: ThreadSlot, flags: TraceFlags) -> TraceFlags {
        let process = self.threads[slot].process();
        let previous = self.trace.flags(slot);
        set(&mut self.trace.syscalls, slot, flags.syscalls());
        set(&mut self.trace.step, slot, flags.step());
        // The trap flag, unless the next instruction is SYSCALL: entering the kernel with it
        // set would trap in the kernel's entry. That call is stepped over (`finished_call_stop`).
        let rip = self.threads[slot].context().rip;
        let mut next = [0u8; 2];
        let at_syscall = UserSlice::<u8>::new(rip, 2)
            .and_then(|at| crate::usercopy::read(self.processes[process].space(), at, &mut next))
            .is_ok()
            && next == SYSCALL_INSTRUCTION;
        crate::usercopy::forget_missing_page();
        let context = self.threads[slot].context_mut();
        if flags.step() && !at_syscall {
            context.rflags |= TRAP_FLAG;
            // Return with IRETQ (as after an interrupt), which runs one instruction before the
            // trap; SYSRET with TF traps before the first (measured under QEMU: the step stop
            // came at the same RIP). RCX and R11 of a system-call frame hold exactly what
            // SYSRET would have loaded, so the thread sees no difference.
            context.vector = 0;
        } else {
            context.rflags &= !TRAP_FLAG;
        }
        self.trace.refresh();
        previous
    }
}
