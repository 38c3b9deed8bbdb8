//! Signal delivery and process control for signal managers (seed 002; MINIX's runctl and
//! sys_kill): a CPU exception held for the manager, the events it collects, the stop flag,
//! and signal frames on user stacks.
//!
//! Mechanism only. The manager (PM for the processes it creates) keeps the signal state —
//! pending set, mask, action per signal — and decides; the kernel keeps, per process, just
//! who stopped it, the signals it must still deliver and the handler entry to deliver them
//! to, and per thread, whether an exception event waits to be collected.
//!
//! - **Exceptions.** A thread of a process with a manager that takes a CPU exception (or a
//!   page fault VM refused) is reported exactly as before, then held (`HeldForManager`)
//!   instead of killed; the manager gets one coalescing `KIND_PROCESS_EVENT` message and
//!   collects the events with `PmNextEvent`.
//! - **Stop.** A stopped process's ready threads are taken off the run queues, and a thread
//!   of it that becomes ready later is skipped when it reaches the front (`choose_next`):
//!   `PmResume` queues every ready thread again.
//! - **Signals.** `PmSignal` interrupts the target's interruptible waits (they return
//!   `Interrupted`) and, with a handler, marks the signal pending; the next thread of the
//!   process the scheduler picks gets a signal frame pushed on its stack and starts in the
//!   handler. `SignalReturn` restores the frame.

use crate::arch::fpu::FpuState;
use crate::syscall::Next;
use crate::system::Kernel;
use crate::usercopy;
use vigil_abi::layout::{USER_END, USER_IMAGE_MIN};
use vigil_abi::message::Message;
use vigil_abi::signal::{
    event, frame, status, CatchableSet, ProcessEvent, Signal, KIND_PROCESS_EVENT,
};
use vigil_abi::syscall::{SignalRaiseArgs, SignalReturnArgs};
use vigil_abi::user_memory::UserPtr;
use vigil_abi::wait::ThreadState;
use vigil_abi::{Endpoint, Error};
use vigil_kcore::slot::{ProcessSlot, ThreadSlot, MAX_PROCESSES, MAX_THREADS};

/// Words of a bitmap over the thread table (one bit per thread slot).
pub(crate) const WORDS: usize = MAX_THREADS / 64;

/// The signal state the kernel keeps per process (everything else is the manager's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessSignals {
    /// The pid of the process that stopped it (`PmStop`), 0 while it may run.
    pub stopped_by: u32,
    /// Signals to deliver to the handler (bit `n` for signal `n`).
    pub pending: u64,
    /// The handler entry the manager named with the last `PmSignal`.
    pub handler: u64,
    /// The signals the process may raise itself without its manager (`SignalRaise`): the
    /// manager's mirror of what it catches and has not masked (`PmSignalDirect`).
    pub direct: CatchableSet,
    /// The handler entry for them (0 while `direct` is empty).
    pub direct_handler: u64,
}

impl ProcessSignals {
    pub const NONE: ProcessSignals = ProcessSignals {
        stopped_by: 0,
        pending: 0,
        handler: 0,
        direct: CatchableSet::EMPTY,
        direct_handler: 0,
    };
}

/// What became of a signal frame push (`push_signal_frame`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FramePush {
    /// The frame is on the stack; the thread starts in the handler.
    Pushed,
    /// The frame's stack page is not mapped yet: the thread waits for VM, the signal
    /// pending again (`fault_in_frame_page`).
    WaitingForVm,
    /// The frame could not be written: the process was ended as by SIGSEGV.
    Ended,
}

/// Exception events and the notices held for managers.
pub struct SignalLink {
    /// Manager threads with a `KIND_PROCESS_EVENT` notice held for their next receive.
    notices: [u64; WORDS],
    /// Bits set in `notices` (kept by `set_notice`): every receive from ANY asks `peek`,
    /// which with none held is one test instead of the bitmap's word.
    notices_held: u32,
    /// Held threads whose event the manager has not collected yet.
    unreported: [u64; WORDS],
    /// CR2 at each held thread's exception (0 unless it was a page fault).
    fault_address: [u64; MAX_THREADS],
    /// Some process may be stopped or have a signal to deliver: the scheduler looks at
    /// each thread it picks only while this is set (`scheduling_checks`), so a system
    /// without signals pays one test per dispatch. Set by every stop and signal, cleared
    /// when a resume or a delivery finds no process left with either.
    active: bool,
}

/// Whether `slot`'s bit is set in a thread bitmap (`ptrace.rs` uses these too).
pub(crate) fn bit(map: &[u64; WORDS], slot: ThreadSlot) -> bool {
    map[slot.index() / 64] & (1 << (slot.index() % 64)) != 0
}

/// Sets or clears `slot`'s bit in a thread bitmap.
pub(crate) fn set(map: &mut [u64; WORDS], slot: ThreadSlot, on: bool) {
    let mask = 1 << (slot.index() % 64);
    if on {
        map[slot.index() / 64] |= mask;
    } else {
        map[slot.index() / 64] &= !mask;
    }
}

fn process_event_notice() -> Message {
    let mut message = Message::new(KIND_PROCESS_EVENT);
    message.source = Endpoint::KERNEL;
    message
}

impl SignalLink {
    pub const fn new() -> SignalLink {
        SignalLink {
            notices: [0; WORDS],
            notices_held: 0,
            unreported: [0; WORDS],
            fault_address: [0; MAX_THREADS],
            active: false,
        }
    }

    /// Whether the scheduler must check the threads it picks (see `active`).
    #[inline]
    pub fn scheduling_checks(&self) -> bool {
        self.active
    }

    /// Whether `receiver` is a manager with an event notice held: the notice.
    #[inline]
    pub fn peek(&self, receiver: ThreadSlot) -> Option<Message> {
        self.holds_notice_for(receiver).then(process_event_notice)
    }

    /// Whether `peek(receiver)` has the notice, without building it.
    #[inline(always)]
    pub fn holds_notice_for(&self, receiver: ThreadSlot) -> bool {
        self.notices_held != 0 && bit(&self.notices, receiver)
    }

    /// The notice `peek` returned was delivered.
    pub fn consume(&mut self, receiver: ThreadSlot) {
        self.set_notice(receiver, false);
    }

    /// Holds a notice for manager thread `slot` (`on`) or drops it, counting the held ones.
    fn set_notice(&mut self, slot: ThreadSlot, on: bool) {
        let was = bit(&self.notices, slot);
        set(&mut self.notices, slot, on);
        match (was, on) {
            (false, true) => self.notices_held += 1,
            (true, false) => self.notices_held -= 1,
            _ => {}
        }
        debug_assert_eq!(
            self.notices_held,
            self.notices
                .iter()
                .map(|word| word.count_ones())
                .sum::<u32>()
        );
    }

    /// `slot` is leaving the system: no event or notice of it stays.
    pub fn forget_thread(&mut self, slot: ThreadSlot) {
        set(&mut self.unreported, slot, false);
        self.set_notice(slot, false);
    }
}

impl Kernel {
    /// The main thread of the live process with pid `pid`.
    fn main_thread_of_pid(&self, pid: u32) -> Option<(ProcessSlot, ThreadSlot, Endpoint)> {
        let process = self.processes.by_pid(pid)?;
        let endpoint = self.processes[process].main_thread();
        let slot = self.table.resolve(endpoint).ok()?;
        Some((process, slot, endpoint))
    }

    /// A CPU exception of `slot` (already reported): if its process has a live manager
    /// other than itself, hold the thread for it and tell it (true); false: the kernel's
    /// default (kill) applies.
    pub fn hold_for_manager(&mut self, slot: ThreadSlot, fault_address: u64) -> bool {
        let vector = self.threads[slot].context().vector;
        self.hold_for_manager_at(slot, vector, fault_address)
    }

    /// `hold_for_manager` for a stop named by `vector`: a CPU exception's vector, or one of
    /// the trace stops (`vigil_abi::ptrace::stop`) that `ptrace.rs` reports.
    pub fn hold_for_manager_at(
        &mut self,
        slot: ThreadSlot,
        vector: u64,
        fault_address: u64,
    ) -> bool {
        let process = self.threads[slot].process();
        let Some(manager) = self.processes[process].signal_manager() else {
            return false;
        };
        let Some((manager_process, manager_thread, manager_endpoint)) =
            self.main_thread_of_pid(manager)
        else {
            return false;
        };
        // Running (a CPU exception) or Ready off the queues (a fault VM just refused).
        let state = self.table.state(slot);
        if manager_process == process || !matches!(state, ThreadState::Running | ThreadState::Ready)
        {
            return false;
        }
        self.run_queues.remove(slot.get());
        self.table.hold_for_manager(slot, manager_endpoint, vector);
        self.signals.fault_address[slot.index()] = fault_address;
        set(&mut self.signals.unreported, slot, true);
        crate::trace::emit(
            vigil_abi::trace::EventKind::Block,
            self.table.endpoint(slot),
            [
                u64::from(vigil_abi::introspect::state_code::HELD_FOR_MANAGER),
                manager_endpoint.0,
                vector,
            ],
        );
        self.send_process_event_notice(manager_thread);
        true
    }

    /// Tells `manager_thread` that an event waits for it: the coalescing
    /// `KIND_PROCESS_EVENT` notice, delivered now if it is receiving, else held for its
    /// next receive.
    pub fn send_process_event_notice(&mut self, manager_thread: ThreadSlot) {
        let delivered = {
            let (table, mut env) = self.ipc_parts();
            table.deliver_from_kernel(&mut env, manager_thread, &process_event_notice())
        };
        if !delivered {
            self.signals.set_notice(manager_thread, true);
        }
    }

    /// The oldest-slot event about a process `manager` manages, taken from the queue.
    pub fn next_process_event(&mut self, manager: u32) -> Option<ProcessEvent> {
        for word in 0..WORDS {
            let mut bits = self.signals.unreported[word];
            while bits != 0 {
                let index = word * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let slot = ThreadSlot::new(index as u16)?;
                let process = &self.processes[self.threads[slot].process()];
                if process.signal_manager() != Some(manager) {
                    continue;
                }
                set(&mut self.signals.unreported, slot, false);
                let ThreadState::HeldForManager { vector, .. } = self.table.state(slot) else {
                    continue;
                };
                let context = self.threads[slot].context();
                let mut record = [0u64; 8];
                record[event::PID] = u64::from(process.pid());
                record[event::THREAD] = self.table.endpoint(slot).0;
                record[event::KIND] = vigil_abi::ptrace::stop::event_kind(vector);
                record[event::VECTOR] = vector;
                record[event::ERROR_CODE] = context.error_code;
                record[event::FAULT_ADDRESS] = self.signals.fault_address[index];
                record[event::RIP] = context.rip;
                // A trace stop's value: RAX, the call's number at entry, its result at exit.
                record[event::VALUE] = context.rax;
                return Some(record);
            }
        }
        None
    }

    /// A held thread runs again (the faulting instruction first); false if not held.
    pub fn release_held_thread(&mut self, slot: ThreadSlot) -> bool {
        set(&mut self.signals.unreported, slot, false);
        if !self.table.release_held(slot) {
            return false;
        }
        let priority = self.process_of(slot).priority();
        self.run_queues.push_back(slot.get(), priority);
        crate::trace::emit(
            vigil_abi::trace::EventKind::Unblock,
            self.table.endpoint(slot),
            [0, 0, 0],
        );
        true
    }

    /// Process `manager` (a pid) has exited: what it held gets the kernel's default, as
    /// if the processes it managed had never had a manager — a thread held after an
    /// exception ends its process with the exception's status (the report was printed
    /// when it faulted), a trace stop runs on untraced — and those processes have no
    /// manager from now on: a stop it made is lifted and their direct sets are emptied.
    pub fn signal_manager_exited(&mut self, manager: u32) {
        let mut orphans = [false; MAX_PROCESSES];
        let mut any = false;
        for slot in ProcessSlot::all() {
            let process = &mut self.processes[slot];
            if process.signal_manager() != Some(manager) || !process.started() {
                continue;
            }
            process.clear_signal_manager();
            process.signals.direct = CatchableSet::EMPTY;
            process.signals.direct_handler = 0;
            orphans[slot.index()] = true;
            any = true;
            if process.signals.stopped_by == manager {
                self.resume_process(slot);
            }
        }
        if !any {
            return;
        }
        let mut threads = [ThreadSlot::FIRST; MAX_THREADS];
        let mut count = 0;
        for (slot, _) in self.table.threads() {
            if orphans[self.threads[slot].process().index()] {
                threads[count] = slot;
                count += 1;
            }
        }
        for &slot in &threads[..count] {
            self.untrace(slot);
        }
        for &slot in &threads[..count] {
            let ThreadState::HeldForManager { vector, .. } = self.table.state(slot) else {
                continue; // not held, or ended with an earlier thread of its process
            };
            let process = self.threads[slot].process();
            if vigil_abi::ptrace::stop::event_kind(vector) != event::EXCEPTION {
                self.release_held_thread(slot);
                continue;
            }
            let record = &self.processes[process];
            crate::error!(
                "process '{}' (pid {}) held for its signal manager (pid {manager}), which exited: killed by {} as with no manager",
                record.name(),
                record.pid(),
                crate::arch::trap::exception_name(vector).0
            );
            self.exit_process(process, 128 + vector);
        }
    }

    /// The thread slots of `process` (not Free), in an array with their count.
    fn threads_of_process(&self, process: ProcessSlot) -> ([ThreadSlot; MAX_THREADS], usize) {
        let mut slots = [ThreadSlot::FIRST; MAX_THREADS];
        let mut count = 0;
        for slot in self.table.threads_of(process) {
            slots[count] = slot;
            count += 1;
        }
        (slots, count)
    }

    /// Clears `SignalLink::active` if no live process is stopped or has a signal to
    /// deliver any more.
    fn refresh_signal_checks(&mut self) {
        let active = self
            .processes
            .live()
            .any(|(_, process)| process.signals.stopped_by != 0 || process.signals.pending != 0);
        self.set_scheduling_checks(active);
    }

    /// Sets `SignalLink::active` (`scheduling_checks`), with its copy in the IPC fast
    /// paths' gate byte (`TraceLink::set_scheduling_checks`): every write goes here.
    fn set_scheduling_checks(&mut self, on: bool) {
        self.signals.active = on;
        self.trace.set_scheduling_checks(on);
    }

    /// Stops `process` (by `by`, a pid): its ready threads leave the run queues.
    pub fn stop_process(&mut self, process: ProcessSlot, by: u32) {
        self.processes[process].signals.stopped_by = by;
        self.set_scheduling_checks(true);
        let (threads, count) = self.threads_of_process(process);
        let threads = &threads[..count];
        for &slot in threads {
            if self.table.state(slot) == ThreadState::Ready {
                self.run_queues.remove(slot.get());
            }
        }
    }

    /// Lets a stopped `process` run: every ready thread of it is queued again.
    pub fn resume_process(&mut self, process: ProcessSlot) {
        if self.processes[process].signals.stopped_by == 0 {
            return;
        }
        self.processes[process].signals.stopped_by = 0;
        self.refresh_signal_checks();
        let priority = self.processes[process].priority();
        let (threads, count) = self.threads_of_process(process);
        let threads = &threads[..count];
        for &slot in threads {
            if self.table.state(slot) == ThreadState::Ready && !self.is_handed_off(slot) {
                self.run_queues.remove(slot.get());
                self.run_queues.push_back(slot.get(), priority);
            }
        }
    }

    /// Signal `signal` for `process`: its interruptible waits end with `Interrupted`
    /// (a wait on `signaller`, the caller, is spared), and with a `handler` the signal
    /// is delivered into it at the next return to user mode. Returns the number of waits
    /// interrupted.
    pub fn signal_process(
        &mut self,
        process: ProcessSlot,
        signal: Signal,
        handler: u64,
        signaller: Endpoint,
    ) -> Result<u64, Error> {
        if handler != 0 && !(USER_IMAGE_MIN..USER_END).contains(&handler) {
            return Err(Error::InvalidArgument);
        }
        if handler != 0 {
            let signals = &mut self.processes[process].signals;
            signals.pending |= signal.bit();
            signals.handler = handler;
            self.set_scheduling_checks(true);
        }
        Ok(self.interrupt_waits(process, signaller))
    }

    /// Ends every interruptible wait of `process`'s threads with `Interrupted` but a wait
    /// on `spare`; returns how many ended.
    fn interrupt_waits(&mut self, process: ProcessSlot, spare: Endpoint) -> u64 {
        let (threads, count) = self.threads_of_process(process);
        let threads = &threads[..count];
        let mut interrupted = 0;
        for &slot in threads {
            let sleeping = matches!(self.table.state(slot), ThreadState::Sleeping { .. });
            let cancelled = {
                let (table, mut env) = self.ipc_parts();
                table.interrupt(&mut env, slot, spare)
            };
            if cancelled {
                if sleeping {
                    self.timers.cancel_wakeup(slot.get());
                }
                interrupted += 1;
            }
        }
        interrupted
    }

    /// `slot` was picked to run: if its process has a signal to deliver, push a signal
    /// frame on its stack and start it in the handler. False if it must not run now: the
    /// frame's stack page is not mapped yet and the thread waits for VM to map it
    /// (`fault_in_frame_page`), or the frame cannot be written at all and the process is
    /// ended as by SIGSEGV, with a report, as Linux does when it cannot build a frame.
    pub fn deliver_pending_signal(&mut self, slot: ThreadSlot) -> bool {
        let process = self.threads[slot].process();
        let signals = self.processes[process].signals;
        if signals.pending == 0 || signals.handler == 0 {
            return true;
        }
        let number = u64::from(signals.pending.trailing_zeros());
        self.processes[process].signals.pending &= !(1 << number);
        self.refresh_signal_checks();
        self.push_signal_frame(slot, number, signals.handler) == FramePush::Pushed
    }

    /// Pushes a frame for signal `number` on `slot`'s stack, saving the registers its
    /// context holds now, and points the context at `handler` (RDI = the signal, RSI = the
    /// frame).
    fn push_signal_frame(&mut self, slot: ThreadSlot, number: u64, handler: u64) -> FramePush {
        let process = self.threads[slot].process();
        self.save_fpu_of(slot);
        let thread = &self.threads[slot];
        let interrupted_rsp = thread.context().rsp;
        let size = (frame::WORDS * 8) as u64;
        let address = interrupted_rsp.wrapping_sub(frame::RED_ZONE + size) & !15;
        let space = self.processes[process].space();
        // The handler's return address (0: the end of a backtrace) and the frame above it,
        // in one copy.
        let written =
            UserPtr::<[u64; frame::WORDS + 1]>::new(address.wrapping_sub(8)).and_then(|at| {
                usercopy::write_value(
                    space,
                    at,
                    &pushed_words(thread.context(), number, &thread.fpu().words()),
                )
            });
        if written.is_err() {
            let missing = usercopy::missing_page();
            usercopy::forget_missing_page();
            if let Some(missing) = missing.filter(|m| m.is_in(self.processes[process].space())) {
                if self.fault_in_frame_page(slot, missing.page, number) {
                    return FramePush::WaitingForVm;
                }
            }
            let record = &self.processes[process];
            crate::error!(
                "process '{}' (pid {}): no room for the frame of signal {} on the stack at {:#x}; ended as by SIGSEGV",
                record.name(),
                record.pid(),
                number,
                interrupted_rsp
            );
            self.exit_process(process, status::killed_by(Signal::SEGV, true));
            return FramePush::Ended;
        }
        let context = self.threads[slot].context_mut();
        context.rip = handler;
        context.rdi = number;
        context.rsi = address;
        context.rsp = address - 8;
        FramePush::Pushed
    }
}

/// What goes on the user stack at a signal's delivery: the handler's return address (0)
/// and then the frame (`fill_frame`).
#[inline(always)]
fn pushed_words(
    context: &crate::arch::trap::TrapFrame,
    number: u64,
    fpu: &[u64; frame::FPU_WORDS],
) -> [u64; frame::WORDS + 1] {
    let mut words = [0u64; frame::WORDS + 1];
    fill_frame(&mut words[1..], context, number, fpu);
    words
}

/// Fills `image` (`frame::WORDS` zeroed words) with the signal frame for signal `number`
/// interrupting the registers `context` and the x87/SSE state `fpu`
/// (`vigil_abi::signal::frame`).
#[inline(always)]
fn fill_frame(
    image: &mut [u64],
    context: &crate::arch::trap::TrapFrame,
    number: u64,
    fpu: &[u64; frame::FPU_WORDS],
) {
    image[frame::MAGIC] = frame::MAGIC_VALUE;
    image[frame::SIGNAL] = number;
    image[frame::GENERAL..frame::GENERAL + frame::GENERAL_COUNT].copy_from_slice(&[
        context.r15,
        context.r14,
        context.r13,
        context.r12,
        context.r11,
        context.r10,
        context.r9,
        context.r8,
        context.rbp,
        context.rdi,
        context.rsi,
        context.rdx,
        context.rcx,
        context.rbx,
        context.rax,
    ]);
    image[frame::RIP] = context.rip;
    image[frame::RFLAGS] = context.rflags;
    image[frame::RSP] = context.rsp;
    image[frame::FPU..].copy_from_slice(fpu);
}

/// SignalRaise: the caller's process signals itself with a signal its manager lets it
/// deliver directly (`ProcessSignals::direct`), exactly as the manager would have it done
/// (`PmSignal` with the handler): the other threads' waits are interrupted and the caller
/// enters the handler now, with 0 as the call's result in the frame. Any other signal is
/// `NotReady`, with nothing changed: the runtime asks the manager.
pub fn raise(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: SignalRaiseArgs,
) -> Result<Next, Error> {
    let process = kernel.threads[caller].process();
    let signals = kernel.processes[process].signals;
    if !signals.direct.contains(args.signal) {
        return Err(Error::NotReady);
    }
    if kernel.processes[process].live_threads() > 1 {
        // As the manager's `PmSignal` does it: a wait on the manager is spared.
        let manager = kernel.processes[process]
            .signal_manager()
            .and_then(|pid| kernel.main_thread_of_pid(pid))
            .map_or(Endpoint::NONE, |(_, _, endpoint)| endpoint);
        kernel.interrupt_waits(process, manager);
    }
    kernel.threads[caller].context_mut().rax = 0;
    // Where a frame pushed later (after VM mapped its page) enters.
    kernel.processes[process].signals.handler = signals.direct_handler;
    match kernel.push_signal_frame(caller, args.signal.number(), signals.direct_handler) {
        FramePush::Pushed | FramePush::WaitingForVm => Ok(Next::Restored),
        FramePush::Ended => Ok(Next::Exited),
    }
}

impl Kernel {
    /// The stack page at `page` where `slot`'s signal frame goes is not mapped yet: if VM
    /// serves the process (and the page is above the image, where VM maps), the thread
    /// waits for VM as for its own write fault there, with `signal` pending again, and the
    /// frame is pushed when it is picked after VM resumed it (true). Its saved frame is
    /// marked as an exception's (#PF, a user write to a missing page), so that it returns
    /// with IRETQ and a refusal by VM ends it as a page fault would — reported, and held
    /// for its manager. False: the caller ends the process.
    fn fault_in_frame_page(&mut self, slot: ThreadSlot, page: u64, signal: u64) -> bool {
        let process = self.threads[slot].process();
        let Some(server) = self.vm_server() else {
            return false;
        };
        if server.process == process || page < vigil_abi::layout::USER_IMAGE_END {
            return false;
        }
        self.processes[process].signals.pending |= 1 << signal;
        self.set_scheduling_checks(true);
        self.processes[process].count_forwarded_fault(false);
        let pid = self.processes[process].pid();
        let thread = &mut self.threads[slot];
        thread.counters_mut().page_faults += 1;
        let context = thread.context_mut();
        context.vector = crate::fault::PAGE_FAULT_VECTOR;
        // Not present, write, user mode.
        context.error_code = 0b110;
        let fault = vigil_abi::vm::PageFault {
            address: page,
            access: vigil_abi::vm::FaultAccess::Write,
            thread: self.table.endpoint(slot),
            pid,
            instruction: context.rip,
            present: false,
            system_call: false,
        };
        // `choose_next` marks the thread it returns Running; this one it does not return.
        self.wait_for_vm(server, slot, fault);
        true
    }
}

/// Reads a general register list back into a frame.
fn restore_general(context: &mut crate::arch::trap::TrapFrame, general: &[u64]) {
    context.r15 = general[0];
    context.r14 = general[1];
    context.r13 = general[2];
    context.r12 = general[3];
    context.r11 = general[4];
    context.r10 = general[5];
    context.r9 = general[6];
    context.r8 = general[7];
    context.rbp = general[8];
    context.rdi = general[9];
    context.rsi = general[10];
    context.rdx = general[11];
    context.rcx = general[12];
    context.rbx = general[13];
    context.rax = general[14];
}

/// SignalReturn: the handler is done; the registers saved in the frame come back.
pub fn signal_return(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: SignalReturnArgs,
) -> Result<Next, Error> {
    let image = usercopy::read_value(kernel.space_of(caller), args.frame)?;
    let (rip, rsp) = (image[frame::RIP], image[frame::RSP]);
    if image[frame::MAGIC] != frame::MAGIC_VALUE
        || !(USER_IMAGE_MIN..USER_END).contains(&rip)
        || rsp >= USER_END
        || Signal::new(image[frame::SIGNAL]).is_err()
    {
        return Err(Error::InvalidArgument);
    }
    let mut words = [0u64; frame::FPU_WORDS];
    words.copy_from_slice(&image[frame::FPU..frame::FPU + frame::FPU_WORDS]);
    let fpu = FpuState::from_words(words).ok_or(Error::InvalidArgument)?;
    // Checked: from here on nothing fails.
    *kernel.threads[caller].fpu_mut() = fpu;
    kernel.reload_fpu_of(caller);
    let thread = &mut kernel.threads[caller];
    let context = thread.context_mut();
    restore_general(
        context,
        &image[frame::GENERAL..frame::GENERAL + frame::GENERAL_COUNT],
    );
    let rax = context.rax;
    context.rip = rip;
    context.rsp = rsp;
    context.rflags =
        (context.rflags & !frame::USER_FLAGS) | (image[frame::RFLAGS] & frame::USER_FLAGS);
    context.rax = rax;
    // Return with IRETQ, which restores RCX and R11 too (SYSRET would take them).
    context.vector = 0;
    Ok(Next::Restored)
}
