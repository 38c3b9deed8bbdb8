//! Scheduling: picking the next thread, quanta and preemption, and exact CPU-time accounting.
//!
//! Priority queues with round robin inside a priority (`kcore::sched`). A thread runs until
//! it blocks, yields, uses up its quantum (`QUANTUM_TICKS`), or a thread of a more urgent
//! priority becomes ready. CPU time is charged from the TSC at every entry to the kernel.

use crate::arch::{cpu, fpu, user_entry};
use crate::lock::MutexGuard;
use crate::system::{Kernel, KERNEL, QUANTUM_TICKS};
use crate::time;
use vigil_abi::trace::EventKind;
use vigil_abi::Endpoint;
use vigil_kcore::sched::{self as policy, Decision, Running};
use vigil_kcore::slot::ThreadSlot;

/// The scheduler's view of the CPU: which thread runs, since when, and the idle time.
pub struct Cpu {
    /// The thread on the CPU (None while idle).
    current: Option<ThreadSlot>,
    /// TSC when the current thread (or idle) was last put on the CPU.
    dispatch_tsc: u64,
    /// TSC ticks with no thread to run (converted when read, as a thread's CPU time).
    idle_ticks: u64,
    /// The thread whose x87/MMX/SSE state is in the registers (None: nobody's that must be
    /// kept — boot, or its thread left the system).
    fpu_loaded: Option<ThreadSlot>,
    /// Whether CR0.TS is set (the running thread's first x87/MMX/SSE use traps).
    fpu_trap_set: bool,
    /// The thread an IPC fast path woke for the CPU, not on the run queues: it runs next,
    /// exactly when the run queues would have given it the CPU (`hand_off_to`).
    handoff: Option<ThreadSlot>,
}

impl Cpu {
    pub const fn new() -> Cpu {
        Cpu {
            current: None,
            dispatch_tsc: 0,
            idle_ticks: 0,
            fpu_loaded: None,
            fpu_trap_set: false,
            handoff: None,
        }
    }

    pub fn current(&self) -> Option<ThreadSlot> {
        self.current
    }

    /// Time the CPU spent with no thread to run.
    pub fn idle_ns(&self) -> u64 {
        crate::time::tsc_to_ns(self.idle_ticks)
    }

    /// The thread on the CPU, read without a reference (see `Threads::read_identity`).
    ///
    /// # Safety
    /// `cpu` points at a live `Cpu`.
    pub unsafe fn read_current(cpu: *const Cpu) -> Option<ThreadSlot> {
        // SAFETY: the caller guarantees `cpu` is valid; an `Option<ThreadSlot>` is read in
        // one load, and any slot value it holds is masked into range when used.
        unsafe { core::ptr::addr_of!((*cpu).current).read_volatile() }
    }

    /// `slot` is leaving the system: if it was on the CPU, the CPU is now idle.
    pub fn forget(&mut self, slot: ThreadSlot) {
        if self.current == Some(slot) {
            self.current = None;
        }
        if self.handoff == Some(slot) {
            self.handoff = None;
        }
        self.forget_fpu(slot);
    }

    /// `slot`'s FPU state no longer matters (it left, or a new thread takes the slot with
    /// a fresh image): the next thread to run loads its own, and nothing is saved into the
    /// slot.
    pub fn forget_fpu(&mut self, slot: ThreadSlot) {
        if self.fpu_loaded == Some(slot) {
            self.fpu_loaded = None;
        }
    }
}

/// The slot of a run queue entry (the queues only ever hold thread slots).
fn queued_slot(index: u16) -> ThreadSlot {
    ThreadSlot::new(index).expect("run queues hold thread slots")
}

impl Kernel {
    /// Charges the time since the last dispatch to the current thread (or to idle).
    #[inline(always)]
    pub fn account_cpu_time(&mut self) {
        self.account_cpu_time_at(cpu::rdtsc());
    }

    /// `account_cpu_time` with the TSC value `now` the caller read.
    #[inline(always)]
    pub fn account_cpu_time_at(&mut self, now: u64) {
        let elapsed = self.ticks_since_dispatch(now);
        match self.cpu.current {
            Some(slot) => self.threads[slot].charge_cpu_ticks(elapsed),
            None => self.cpu.idle_ticks += elapsed,
        }
    }

    /// The TSC ticks since the last dispatch, up to TSC value `now`, which becomes the
    /// next charge's start: what `account_cpu_time_at` and `enter_partner` charge.
    #[inline(always)]
    fn ticks_since_dispatch(&mut self, now: u64) -> u64 {
        let elapsed = now.wrapping_sub(self.cpu.dispatch_tsc);
        self.cpu.dispatch_tsc = now;
        elapsed
    }

    #[inline(always)]
    fn priority_of(&self, slot: ThreadSlot) -> u8 {
        let priority = self.threads[slot].priority();
        debug_assert_eq!(priority, self.process_of(slot).priority());
        priority
    }

    /// Timer tick: count it, expire timers, then charge the tick to the current thread's
    /// quantum.
    pub fn on_tick(&mut self) {
        time::on_timer_tick();
        crate::monitor::forward_host_commands(self);
        let now = time::now_ns();
        while let Some(expired) = self.timers.pop_expired(now) {
            let slot = queued_slot(expired.slot);
            if self.table.endpoint(slot).generation() != expired.generation {
                continue; // the thread that set it is gone
            }
            let (table, mut env) = self.ipc_parts();
            match expired.kind {
                vigil_kcore::timer::TimerKind::Wakeup => table.wake_sleeper(&mut env, slot),
                vigil_kcore::timer::TimerKind::Alarm { .. } => {
                    table.notify_from_kernel(&mut env, vigil_kcore::ipc::KernelSource::Clock, slot)
                }
            }
        }
        if let Some(slot) = self.cpu.current {
            let quantum_left = self.threads[slot].quantum_left_mut();
            // A spent quantum is acted on at the kernel's exit (`choose_next`).
            *quantum_left = policy::tick(*quantum_left);
        }
        crate::monitor::poll(self);
        crate::selftest::on_tick();
    }

    /// Decides what runs next. Returns the slot to run, or None to idle. The current thread
    /// keeps the CPU unless it blocked or exited, or must be preempted.
    fn pick_next(&mut self) -> Option<ThreadSlot> {
        let previous = self.cpu.current;
        let next = self.choose_next();
        if next != previous {
            let (previous_endpoint, previous_state) = match previous {
                Some(slot) => (self.table.endpoint(slot), self.table.encoded_state(slot).0),
                None => (Endpoint::NONE, 0),
            };
            let next_endpoint = next.map_or(Endpoint::NONE, |slot| self.table.endpoint(slot));
            crate::trace::emit(
                EventKind::ContextSwitch,
                next_endpoint,
                [previous_endpoint.0, u64::from(previous_state), 0],
            );
        }
        next
    }

    fn choose_next(&mut self) -> Option<ThreadSlot> {
        if let Some(slot) = self.cpu.current {
            let running = self.table.is_running(slot).then(|| Running {
                priority: self.priority_of(slot),
                quantum_left: self.threads[slot].quantum_left(),
            });
            match policy::decide(running, &self.run_queues) {
                Decision::Continue => {
                    // Nobody to give the CPU to: keep running (with a fresh quantum if spent).
                    policy::refill_if_spent(self.threads[slot].quantum_left_mut(), QUANTUM_TICKS);
                    return Some(slot);
                }
                decision @ (Decision::PreemptToBack | Decision::PreemptToFront) => {
                    // Only a running thread is preempted, so `running` holds its priority.
                    let priority = running.map_or(0, |running| running.priority);
                    let thread = &mut self.threads[slot];
                    thread.counters_mut().involuntary_switches += 1;
                    self.table.mark_ready(slot);
                    if decision == Decision::PreemptToBack {
                        *thread.quantum_left_mut() = QUANTUM_TICKS;
                        self.run_queues.push_back(slot.get(), priority);
                    } else {
                        self.run_queues.push_front(slot.get(), priority);
                    }
                }
                // Blocked, exited, or yielded (then `yield_current` already queued it).
                Decision::Voluntary => {
                    self.threads[slot].counters_mut().voluntary_switches += 1;
                }
            }
            self.cpu.current = None;
        }
        let next = if self.signals.scheduling_checks() || self.trace.any() {
            self.next_runnable()?
        } else {
            match self.cpu.handoff.take() {
                Some(next) => next,
                None => queued_slot(self.run_queues.pop_highest()?),
            }
        };
        self.table.mark_running(next);
        policy::refill_if_spent(self.threads[next].quantum_left_mut(), QUANTUM_TICKS);
        self.cpu.current = Some(next);
        Some(next)
    }

    /// `slot` was made Ready by an IPC fast path while the current thread blocked: it runs
    /// next without the run queues when they would give it the CPU anyway — nothing queued
    /// is as urgent (a thread of its own priority would be ahead of it in the FIFO) — and
    /// goes to the back of its queue otherwise, as the slow path's `unblock` does.
    pub fn hand_off_to(&mut self, slot: ThreadSlot) {
        let priority = self.priority_of(slot);
        let direct = self.cpu.handoff.is_none() && self.run_queues.pushed_back_runs_next(priority);
        if direct {
            self.cpu.handoff = Some(slot);
        } else {
            self.run_queues.push_back(slot.get(), priority);
        }
    }

    /// Whether the CPU may go straight from the current thread, just blocked by an IPC
    /// fast path, to `slot`, which that call made Ready (`enter_partner`): exactly when
    /// `choose_next` would pick it next — nothing queued as urgent (a thread of its own
    /// priority would be ahead of it), no stopped process, pending signal or traced thread
    /// asking for `next_runnable`'s checks.
    ///
    /// Asked only by the fast paths, which run only while `fast_ipc_allowed` (so no thread
    /// is traced, which `choose_next` would have to look at too), once per system call and
    /// before anything of the call is handed off. No handoff is pending then: the only
    /// writer, `hand_off_to`, runs after this answer in the same call, and every way out of
    /// the kernel to user mode passes `pick_next`, which takes it (`enter_partner` goes out
    /// only when this said yes, so with none set). So the answer does not ask.
    #[inline(always)]
    pub fn direct_switch_allowed(&self, slot: ThreadSlot) -> bool {
        debug_assert!(self.fast_ipc_allowed() && !self.trace.any());
        !self.signals.scheduling_checks() && self.runs_next_if_queued(slot)
    }

    /// `direct_switch_allowed` but for the signal checks, which the register fast path's
    /// gate test covered (`TraceLink::register_fast_path_open`): whether nothing queued is
    /// as urgent as `slot`.
    #[inline(always)]
    pub fn runs_next_if_queued(&self, slot: ThreadSlot) -> bool {
        debug_assert!(self.cpu.handoff.is_none(), "a handoff outlived its exit");
        self.run_queues
            .pushed_back_runs_next(self.priority_of(slot))
    }

    /// `choose_next`'s pick while some process is stopped or has a signal pending, or some
    /// thread is traced: a traced thread whose call blocked stops for its tracer; a thread
    /// of a stopped process stays Ready off the queues until `PmResume`; one whose process
    /// must take a signal starts in its handler (`signal.rs`).
    #[inline(never)]
    fn next_runnable(&mut self) -> Option<ThreadSlot> {
        loop {
            let candidate = match self.cpu.handoff.take() {
                Some(next) => next,
                None => queued_slot(self.run_queues.pop_highest()?),
            };
            // A traced thread whose call blocked stops for its tracer now (`ptrace.rs`).
            if self.trace_picked(candidate) {
                continue;
            }
            let signals = self.process_of(candidate).signals;
            if signals.stopped_by != 0 {
                continue;
            }
            if signals.pending == 0 || self.deliver_pending_signal(candidate) {
                return Some(candidate);
            }
        }
    }

    /// Whether `slot` is the thread an IPC fast path handed the CPU to (off the queues).
    pub fn is_handed_off(&self, slot: ThreadSlot) -> bool {
        self.cpu.handoff == Some(slot)
    }

    /// Saves `slot`'s x87/MMX/SSE registers into its `Thread` if they are the loaded
    /// ones (a signal frame copies them from there).
    pub fn save_fpu_of(&mut self, slot: ThreadSlot) {
        if self.cpu.fpu_loaded == Some(slot) {
            // FXSAVE with CR0.TS set would fault: the registers are usable first.
            fpu::allow_use();
            self.cpu.fpu_trap_set = false;
            fpu::save(self.threads[slot].fpu_mut());
        }
    }

    /// `slot`'s saved x87/MMX/SSE state changed (SignalReturn): if the registers hold its
    /// state, load the new one now (no #NM on its next use).
    pub fn reload_fpu_of(&mut self, slot: ThreadSlot) {
        if self.cpu.fpu_loaded == Some(slot) {
            fpu::allow_use();
            self.cpu.fpu_trap_set = false;
            fpu::restore(self.threads[slot].fpu());
        }
    }

    /// Gives up the CPU voluntarily, staying runnable.
    pub fn yield_current(&mut self) {
        if let Some(slot) = self.cpu.current {
            let priority = self.priority_of(slot);
            self.table.mark_ready(slot);
            *self.threads[slot].quantum_left_mut() = QUANTUM_TICKS;
            self.run_queues.push_back(slot.get(), priority);
        }
    }

    /// Prepares the CPU for `slot`: its address space, and where its next entry saves registers.
    #[inline(always)]
    fn dispatch(&mut self, slot: ThreadSlot) -> *const crate::arch::trap::TrapFrame {
        self.switch_fpu(slot);
        self.process_of(slot).space().enter();
        let frame = self.threads[slot].context() as *const _;
        user_entry::set_current_context(frame);
        frame
    }
}

impl Kernel {
    /// Before `slot` runs: its x87/MMX/SSE instructions run directly if the registers hold
    /// its state, and trap (#NM, `fpu_first_use`) otherwise. Changes CR0 only when that
    /// answer changes, so switching between threads that never touch these registers costs
    /// a comparison.
    #[inline]
    fn switch_fpu(&mut self, slot: ThreadSlot) {
        let trap = self.cpu.fpu_loaded != Some(slot);
        if trap != self.cpu.fpu_trap_set {
            if trap {
                fpu::trap_next_use();
            } else {
                fpu::allow_use();
            }
            self.cpu.fpu_trap_set = trap;
        }
    }

    /// #NM in `slot`: its first x87/MMX/SSE instruction since another thread's state was
    /// loaded. Saves that state, loads `slot`'s own and lets the instruction run again.
    /// `false` if the registers already were `slot`'s (an #NM the kernel did not cause).
    pub fn fpu_first_use(&mut self, slot: ThreadSlot) -> bool {
        if self.cpu.fpu_loaded == Some(slot) {
            return false;
        }
        fpu::allow_use();
        self.cpu.fpu_trap_set = false;
        if let Some(previous) = self.cpu.fpu_loaded {
            fpu::save(self.threads[previous].fpu_mut());
        }
        fpu::restore(self.threads[slot].fpu());
        self.cpu.fpu_loaded = Some(slot);
        true
    }
}

/// The end of every direct switch of an IPC fast path from `previous`, the current thread
/// its call just blocked, to `partner`, already Running (the register fast path makes it so
/// in its commit, `Kernel::fast_ipc_call` otherwise) with its events recorded: the CPU time
/// up to TSC value `now` charged to the blocked caller, its voluntary switch counted, the
/// partner's quantum refilled if spent and the partner the current thread, then its address
/// space, FPU trap state, entry stack and SYSRET.
#[inline(always)]
pub fn enter_partner(
    mut kernel: MutexGuard<'_, Kernel>,
    previous: ThreadSlot,
    partner: ThreadSlot,
    now: u64,
) -> ! {
    // The caller's own slot, so neither the charge nor the count asks `cpu.current` again.
    debug_assert_eq!(kernel.cpu.current, Some(previous));
    debug_assert!(!kernel.table.is_running(previous));
    debug_assert!(kernel.table.is_running(partner));
    let elapsed = kernel.ticks_since_dispatch(now);
    let thread = &mut kernel.threads[previous];
    thread.charge_cpu_ticks(elapsed);
    thread.counters_mut().voluntary_switches += 1;
    policy::refill_if_spent(kernel.threads[partner].quantum_left_mut(), QUANTUM_TICKS);
    kernel.cpu.current = Some(partner);
    let frame = kernel.dispatch(partner);
    drop(kernel);
    // SAFETY: as in `leave`: `dispatch` loaded the partner's address space and made
    // `frame` (inside the static thread table) its save area; the frame only ever holds
    // user-mode state. The partner is finishing an IPC call it blocked in, so its frame
    // is the SYSCALL stub's.
    unsafe { user_entry::return_to_user_from_syscall(frame) }
}

/// Leaves the kernel: runs the chosen thread, or idles until one is ready. Never returns.
pub fn run_next() -> ! {
    leave(KERNEL.lock())
}

/// Leaves the kernel from an entry that still holds the kernel lock (`kernel`), with that
/// lock rather than a second one: charges the CPU time since the last dispatch, picks the
/// next thread and runs it; with none to run, idles until an interrupt makes one ready (or
/// stops the machine once everything but the servers has exited). Never returns.
pub fn leave(mut kernel: MutexGuard<'_, Kernel>) -> ! {
    loop {
        kernel.account_cpu_time();
        if let Some(slot) = kernel.pick_next() {
            let frame = kernel.dispatch(slot);
            drop(kernel);
            // SAFETY: `dispatch` loaded the thread's address space and made `frame` (inside
            // the static thread table) its save area; the frame was built by the kernel
            // with user selectors and only ever holds user-mode state.
            unsafe { user_entry::return_to_user(frame) }
        }
        if kernel.is_done() {
            crate::info!(
                "every process but the system servers has exited; stopping (exit-when-done)"
            );
            crate::arch::debug_exit::exit(crate::arch::debug_exit::ExitStatus::Success);
        }
        drop(kernel);
        // Nothing runnable: sleep until an interrupt (the timer handler may wake someone).
        cpu::wait_for_interrupt();
        kernel = KERNEL.lock();
    }
}
