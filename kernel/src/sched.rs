//! Scheduling: picking the next thread, quanta and preemption, and exact CPU-time accounting.
//!
//! Priority queues with round robin inside a priority (`kcore::sched`). A thread runs until
//! it blocks, yields, uses up its quantum (`QUANTUM_TICKS`), or a thread of a more urgent
//! priority becomes ready. CPU time is charged from the TSC at every entry to the kernel.

use crate::arch::{cpu, user_entry};
use crate::system::{Kernel, KERNEL, QUANTUM_TICKS};
use crate::time;
use vigil_abi::introspect::encode_state;
use vigil_abi::trace::EventKind;
use vigil_abi::wait::ThreadState;
use vigil_abi::Endpoint;
use vigil_kcore::sched::{self as policy, Decision, Running};

impl Kernel {
    /// Charges the time since the last dispatch to the current thread (or to idle).
    pub fn account_cpu_time(&mut self) {
        let now = cpu::rdtsc();
        let elapsed = time::tsc_to_ns(now.wrapping_sub(self.dispatch_tsc));
        self.dispatch_tsc = now;
        match self.current {
            Some(slot) => self.threads[usize::from(slot)].counters.cpu_ns += elapsed,
            None => self.idle_ns += elapsed,
        }
    }

    fn priority_of(&self, slot: u16) -> u8 {
        self.process_of(slot).priority
    }

    /// Timer tick: count it, expire timers, then charge the tick to the current thread's
    /// quantum.
    pub fn on_tick(&mut self) {
        time::on_timer_tick();
        let now = time::now_ns();
        while let Some(expired) = self.timers.pop_expired(now) {
            if self.table.endpoint(expired.slot).generation() != expired.generation {
                continue; // the thread that set it is gone
            }
            let (table, mut env) = self.ipc_parts();
            match expired.kind {
                vigil_kcore::timer::TimerKind::Wakeup => table.wake_sleeper(&mut env, expired.slot),
                vigil_kcore::timer::TimerKind::Alarm { .. } => table.notify_from_kernel(
                    &mut env,
                    vigil_kcore::ipc::KernelSource::Clock,
                    expired.slot,
                ),
            }
        }
        if let Some(slot) = self.current {
            let thread = &mut self.threads[usize::from(slot)];
            // A spent quantum is acted on at the kernel's exit (`choose_next`).
            thread.quantum_left = policy::tick(thread.quantum_left);
        }
        crate::monitor::poll(self);
        crate::selftest::on_tick();
    }

    /// Decides what runs next. Returns the slot to run, or None to idle. The current thread
    /// keeps the CPU unless it blocked or exited, or must be preempted.
    fn pick_next(&mut self) -> Option<u16> {
        let previous = self.current;
        let next = self.choose_next();
        if next != previous {
            let (previous_endpoint, previous_state) = match previous {
                Some(slot) => (
                    self.table.endpoint(slot),
                    encode_state(&self.table.state(slot)).0,
                ),
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

    fn choose_next(&mut self) -> Option<u16> {
        if let Some(slot) = self.current {
            let running = (self.table.state(slot) == ThreadState::Running).then(|| Running {
                priority: self.priority_of(slot),
                quantum_left: self.threads[usize::from(slot)].quantum_left,
            });
            match policy::decide(running, &self.run_queues) {
                Decision::Continue => {
                    // Nobody to give the CPU to: keep running (with a fresh quantum if spent).
                    policy::refill_if_spent(
                        &mut self.threads[usize::from(slot)].quantum_left,
                        QUANTUM_TICKS,
                    );
                    return Some(slot);
                }
                decision @ (Decision::PreemptToBack | Decision::PreemptToFront) => {
                    // Only a running thread is preempted, so `running` holds its priority.
                    let priority = running.map_or(0, |running| running.priority);
                    let thread = &mut self.threads[usize::from(slot)];
                    thread.counters.involuntary_switches += 1;
                    self.table.mark_ready(slot);
                    if decision == Decision::PreemptToBack {
                        thread.quantum_left = QUANTUM_TICKS;
                        self.run_queues.push_back(slot, priority);
                    } else {
                        self.run_queues.push_front(slot, priority);
                    }
                }
                // Blocked, exited, or yielded (then `yield_current` already queued it).
                Decision::Voluntary => {
                    self.threads[usize::from(slot)].counters.voluntary_switches += 1;
                }
            }
            self.current = None;
        }
        let next = self.run_queues.pop_highest()?;
        self.table.mark_running(next);
        policy::refill_if_spent(
            &mut self.threads[usize::from(next)].quantum_left,
            QUANTUM_TICKS,
        );
        self.current = Some(next);
        Some(next)
    }

    /// Gives up the CPU voluntarily, staying runnable.
    pub fn yield_current(&mut self) {
        if let Some(slot) = self.current {
            let priority = self.priority_of(slot);
            self.table.mark_ready(slot);
            self.threads[usize::from(slot)].quantum_left = QUANTUM_TICKS;
            self.run_queues.push_back(slot, priority);
        }
    }

    /// Prepares the CPU for `slot`: its address space, and where its next entry saves registers.
    fn dispatch(&mut self, slot: u16) -> *const crate::arch::trap::TrapFrame {
        self.process_of(slot).space().enter();
        let frame = &self.threads[usize::from(slot)].context as *const _;
        user_entry::set_current_context(frame);
        frame
    }
}

/// Leaves the kernel: runs the chosen thread, or idles until one is ready. Never returns.
pub fn run_next() -> ! {
    loop {
        let frame = {
            let mut kernel = KERNEL.lock();
            kernel.account_cpu_time();
            kernel.pick_next().map(|slot| kernel.dispatch(slot))
        };
        if frame.is_none() {
            let kernel = KERNEL.lock();
            if kernel.exit_when_done && kernel.processes.iter().all(|process| !process.in_use) {
                crate::info!("every process has exited; stopping (exit-when-done)");
                crate::arch::debug_exit::exit(crate::arch::debug_exit::ExitStatus::Success);
            }
        }
        if let Some(frame) = frame {
            // SAFETY: `dispatch` loaded the thread's address space and made `frame` (inside
            // the static thread table) its save area; the frame was built by the kernel
            // with user selectors and only ever holds user-mode state.
            unsafe { user_entry::return_to_user(frame) }
        }
        // Nothing runnable: sleep until an interrupt (the timer handler may wake someone).
        cpu::wait_for_interrupt();
    }
}
