//! Threads: creation with a fresh stack region, exit, join.

use crate::arch::fpu::FpuState;
use crate::arch::paging::{flags, AddressSpace, PageSize, PAGE_SIZE};
use crate::arch::trap::TrapFrame;
use crate::arch::user_entry;
use crate::memory;
use crate::syscall::Next;
use crate::system::{Kernel, QUANTUM_TICKS};
use crate::usercopy;
use vigil_abi::introspect::ThreadCounters;
use vigil_abi::layout::{
    ThreadInfo, INITIAL_STACK_BYTES, STACK_AREA_TOP, STACK_REGION_SIZE, THREAD_INFO_SIZE, USER_END,
    USER_IMAGE_MIN,
};
use vigil_abi::syscall::{ThreadCreateArgs, ThreadExitArgs, ThreadJoinArgs};
use vigil_abi::user_memory::{UserPtr, UserSlice};
use vigil_abi::{Endpoint, Error};
use vigil_kcore::buffer_translation::BufferTranslation;
use vigil_kcore::slot::{ProcessSlot, ThreadSlot, MAX_THREADS};

/// A thread, as far as the kernel keeps it beside the IPC table (`kcore::ipc`, which keeps
/// its state and queues): saved registers, its process, its stack, its quantum and its
/// counters — the `ThreadCounters` that snapshots and the wire carry unchanged. Its process,
/// endpoint and stack region are fixed when it is created and cannot be changed after.
#[repr(C, align(16))]
pub struct Thread {
    /// User registers, saved on every entry to the kernel. Must stay first and 16-aligned:
    /// the CPU pushes interrupt frames into it (TSS.rsp0 points at its end).
    context: TrapFrame,
    process: ProcessSlot,
    /// The thread's endpoint (a copy of the thread table's, for tracing).
    endpoint: Endpoint,
    /// Index of this thread's stack region in its process.
    stack_index: u16,
    quantum_left: u8,
    /// Its process's scheduling priority, copied at creation (a process's priority never
    /// changes): the scheduler and the IPC fast path's direct switch read it here, one
    /// load, instead of through the process table.
    priority: u8,
    /// Switches, calls, messages and page faults; its `cpu_ns` stays 0, the CPU time being
    /// `cpu_ticks` (`counters` fills it in).
    counters: ThreadCounters,
    /// CPU time in TSC ticks: charged as the TSC counts it (a subtraction and an add on
    /// every switch) and converted to nanoseconds only when read, which is also exact to
    /// the tick where converting each charge rounded it down every time.
    cpu_ticks: u64,
    /// x87/MMX/SSE registers while another thread's are loaded (`Kernel::switch_fpu`).
    fpu: FpuState,
    /// Where its last IPC message buffer is (`message_buffer`).
    message_buffer: BufferTranslation,
    /// Service takeovers and swaps that moved it to another endpoint (`ThreadInfo::moves`).
    moves: u64,
}

const _: () = assert!(core::mem::offset_of!(Thread, context) == 0);

impl Thread {
    pub const EMPTY: Thread = Thread {
        context: TrapFrame::ZERO,
        process: ProcessSlot::FIRST,
        endpoint: Endpoint(0),
        stack_index: 0,
        quantum_left: 0,
        priority: 0,
        counters: ThreadCounters::ZERO,
        cpu_ticks: 0,
        fpu: FpuState::INITIAL,
        message_buffer: BufferTranslation::NONE,
        moves: 0,
    };

    /// The registers saved at the thread's last entry to the kernel.
    pub fn context(&self) -> &TrapFrame {
        &self.context
    }

    /// The saved registers, to set a system call's result or to start the thread.
    pub fn context_mut(&mut self) -> &mut TrapFrame {
        &mut self.context
    }

    pub fn process(&self) -> ProcessSlot {
        self.process
    }

    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    /// Its process's priority (`Process::priority`, copied when the thread was created).
    #[inline(always)]
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// The thread's counters as snapshots carry them, its CPU time in nanoseconds.
    pub fn counters(&self) -> ThreadCounters {
        debug_assert_eq!(self.counters.cpu_ns, 0, "CPU time is kept in cpu_ticks");
        ThreadCounters {
            cpu_ns: crate::time::tsc_to_ns(self.cpu_ticks),
            ..self.counters
        }
    }

    /// The event counters, to count one (the CPU time is charged by `charge_cpu_ticks`).
    pub fn counters_mut(&mut self) -> &mut ThreadCounters {
        &mut self.counters
    }

    /// Charges `ticks` of TSC time to the thread.
    #[inline(always)]
    pub fn charge_cpu_ticks(&mut self, ticks: u64) {
        self.cpu_ticks += ticks;
    }

    /// Timer ticks left of the thread's quantum (the scheduler's to spend and refill).
    pub fn quantum_left_mut(&mut self) -> &mut u8 {
        &mut self.quantum_left
    }

    pub fn quantum_left(&self) -> u8 {
        self.quantum_left
    }

    pub fn fpu(&self) -> &FpuState {
        &self.fpu
    }

    pub fn fpu_mut(&mut self) -> &mut FpuState {
        &mut self.fpu
    }

    pub fn message_buffer_mut(&mut self) -> &mut BufferTranslation {
        &mut self.message_buffer
    }
}

/// The thread table's kernel half, indexed only by [`ThreadSlot`].
pub struct Threads([Thread; MAX_THREADS]);

impl Threads {
    pub const fn new() -> Threads {
        Threads([Thread::EMPTY; MAX_THREADS])
    }
}

impl Threads {
    /// The endpoint and process of thread `slot`, read without a reference (the NMI
    /// watchdog reads them while the interrupted code may hold `&mut` to the table).
    ///
    /// # Safety
    /// `threads` points at a live `Threads`; nothing writes these two fields meanwhile
    /// (the writer is frozen under the NMI).
    pub unsafe fn read_identity(
        threads: *const Threads,
        slot: ThreadSlot,
    ) -> (Endpoint, ProcessSlot) {
        // SAFETY: the caller guarantees `threads` is valid; `slot.index()` is in bounds;
        // `addr_of!` creates no reference.
        unsafe {
            let thread = core::ptr::addr_of!((*threads).0[slot.index()]);
            (
                core::ptr::addr_of!((*thread).endpoint).read_volatile(),
                core::ptr::addr_of!((*thread).process).read_volatile(),
            )
        }
    }
}

impl Threads {
    /// The thread at `from` is at `to` from now on, with endpoint `endpoint` (a service
    /// takeover: `kcall/service.rs`); `from` is left empty. Its registers, stack region,
    /// counters, FPU state and buffer translation go with it.
    pub fn move_thread(&mut self, from: ThreadSlot, to: ThreadSlot, endpoint: Endpoint) {
        let moved = core::mem::replace(&mut self.0[from.index()], Thread::EMPTY);
        self.0[to.index()] = moved;
        self.0[to.index()].endpoint = endpoint;
    }

    /// The threads at `a` and `b` exchange slots and so endpoints (live update).
    pub fn swap_threads(&mut self, a: ThreadSlot, b: ThreadSlot) {
        let (endpoint_a, endpoint_b) = (self.0[a.index()].endpoint, self.0[b.index()].endpoint);
        self.0.swap(a.index(), b.index());
        self.0[a.index()].endpoint = endpoint_a;
        self.0[b.index()].endpoint = endpoint_b;
    }
}

impl core::ops::Index<ThreadSlot> for Threads {
    type Output = Thread;
    fn index(&self, slot: ThreadSlot) -> &Thread {
        &self.0[slot.index()]
    }
}

impl core::ops::IndexMut<ThreadSlot> for Threads {
    fn index_mut(&mut self, slot: ThreadSlot) -> &mut Thread {
        &mut self.0[slot.index()]
    }
}

/// Stack mapped for a process's main thread, and for every other thread. The rest of the
/// 256 KiB region stays unmapped (its lowest page is the guard); growing stacks on demand
/// is the VM server's job once it exists.
pub use vigil_abi::layout::{MAIN_STACK_BYTES, THREAD_STACK_BYTES};

/// Where a new thread starts.
pub struct ThreadStart<'a> {
    pub entry: u64,
    /// Bytes of stack mapped below the top of the thread's stack region.
    pub stack_bytes: u64,
    /// For a main thread: the argument string, copied onto the stack; the thread starts
    /// with RDI = its address, RSI = its length, RDX = the endpoint.
    pub main_arguments: Option<&'a [u8]>,
    /// For other threads: RDI; RSI is the endpoint.
    pub arg: u64,
}

/// Top (exclusive) of stack region `index`.
pub const fn stack_region_top(index: u16) -> u64 {
    STACK_AREA_TOP - index as u64 * STACK_REGION_SIZE
}

/// Frames that mapping `pages` consecutive 4 KiB pages can take at most: the pages, plus
/// the page tables, page directories and PDPTs the range may need (each level's count,
/// plus one for a range that straddles a boundary).
pub const fn frames_to_map(pages: u64) -> u64 {
    pages + (pages.div_ceil(512) + 1) + (pages.div_ceil(512 * 512) + 1) + 2
}

/// Maps `pages` zeroed user pages from `start` with `leaf` flags (USER added). The caller
/// has checked that `frames_to_map(pages)` frames are free, so this cannot run out: a
/// failure here is a kernel bug.
pub fn map_user_pages(space: &mut AddressSpace, start: u64, pages: u64, leaf: u64) {
    for page in 0..pages {
        let virt = start + page * PAGE_SIZE;
        let frame = memory::alloc_frame().unwrap_or_else(|| {
            panic!("out of frames mapping {virt:#x} after the free-frame check")
        });
        let mapped = space.map(
            virt,
            frame.start(),
            PageSize::Size4K,
            leaf | flags::USER,
            &mut memory::alloc_frame,
        );
        if let Err(error) = mapped {
            panic!("mapping user page {virt:#x} failed after the checks: {error:?}");
        }
    }
}

/// Pages an unmap removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Unmapped {
    pub pages: u64,
    /// Of those, views of another mapping's frame (`flags::SHARED_VIEW`).
    pub shared: u64,
}

/// Unmaps the pages of `[start, start + pages·4K)` that are mapped and releases their
/// frames (a frame another mapping still holds stays allocated); returns how many.
pub fn unmap_user_pages(space: &mut AddressSpace, start: u64, pages: u64) -> Unmapped {
    let mut unmapped = Unmapped::default();
    space.unmap_range(start, pages, &mut |_, frame, leaf| {
        memory::release_frame(frame);
        unmapped.pages += 1;
        if leaf & flags::SHARED_VIEW != 0 {
            unmapped.shared += 1;
        }
    });
    unmapped
}

/// The `ThreadInfo` the kernel writes at the top of a thread's stack region, at its
/// creation and after each move: its endpoint, its stack's index in the process, and the
/// moves so far.
fn thread_info(endpoint: Endpoint, stack_index: u16, moves: u64) -> ThreadInfo {
    ThreadInfo {
        endpoint: endpoint.0,
        index_in_process: u64::from(stack_index),
        moves,
        reserved: [0; 5],
    }
}

impl Kernel {
    /// Counts a move of the thread at `slot` (a service takeover or swap gave it another
    /// slot's endpoint) and writes its new endpoint and move count into its `ThreadInfo`:
    /// the runtime reads `thread::current()` (and its mutexes their owner's slot) from
    /// there, not from the kernel, and a service compares `moves` to learn that another
    /// instance may have served its endpoint. The record was written at the thread's
    /// creation at the top of its stack region, which stays mapped while the thread lives;
    /// a failed write (a process that unmapped its own stack top) leaves the stale values
    /// and is said on the console.
    pub fn republish_thread_endpoint(&mut self, slot: ThreadSlot) {
        self.threads[slot].moves += 1;
        let thread = &self.threads[slot];
        let info_address = stack_region_top(thread.stack_index) - THREAD_INFO_SIZE;
        let space = self.processes[thread.process].space();
        let info = thread_info(thread.endpoint, thread.stack_index, thread.moves);
        let written =
            UserPtr::new(info_address).and_then(|at| usercopy::write_value(space, at, &info));
        if let Err(error) = written {
            crate::info!(
                "thread {}: its ThreadInfo at {info_address:#x} keeps a stale endpoint ({error})",
                thread.endpoint
            );
        }
    }

    /// Creates a thread in `process` and makes it ready.
    pub fn spawn_thread(
        &mut self,
        process: ProcessSlot,
        start: ThreadStart<'_>,
    ) -> Result<Endpoint, Error> {
        let stack_index = self.processes[process]
            .free_stack_region()
            .ok_or(Error::OutOfResources)?;
        let stack_pages = start.stack_bytes / PAGE_SIZE;
        if !self.table.has_free_slot()
            || (memory::free_frames() as u64) < frames_to_map(stack_pages)
        {
            return Err(Error::OutOfResources);
        }
        // Everything is checked: from here on nothing fails.
        let top = stack_region_top(stack_index);
        let stack_bottom = top - start.stack_bytes;
        let endpoint = self
            .table
            .create(process)
            .expect("a free thread slot was checked for");
        let slot = thread_slot(endpoint);
        let owner = &mut self.processes[process];
        let priority = owner.priority();
        let space = owner.start_thread_stack(stack_index, stack_bottom, stack_pages);
        let info_address = top - THREAD_INFO_SIZE;
        let info = thread_info(endpoint, stack_index, 0);
        let mut stack_pointer = info_address;
        let mut arguments = (0, 0);
        let written = UserPtr::new(info_address)
            .and_then(|at| usercopy::write_value(space, at, &info))
            .and_then(|()| match start.main_arguments {
                Some(bytes) => {
                    stack_pointer = (info_address - bytes.len() as u64) & !15;
                    arguments = (stack_pointer, bytes.len() as u64);
                    let destination = UserSlice::new(stack_pointer, bytes.len() as u64)?;
                    usercopy::write(space, destination, bytes)
                }
                None => Ok(()),
            });
        debug_assert!(
            written.is_ok(),
            "freshly mapped stack must be writable: {written:?}"
        );
        // As after a CALL: RSP ≡ 8 (mod 16), with a zero "return address" ending backtraces.
        stack_pointer = (stack_pointer & !15) - 8;
        let _ = UserPtr::new(stack_pointer).and_then(|at| usercopy::write_value(space, at, &0u64));

        let mut context = user_entry::new_user_frame(start.entry, stack_pointer);
        match start.main_arguments {
            Some(_) => {
                context.rdi = arguments.0;
                context.rsi = arguments.1;
                context.rdx = endpoint.0;
            }
            None => {
                context.rdi = start.arg;
                context.rsi = endpoint.0;
            }
        }
        self.threads[slot] = Thread {
            context,
            process,
            endpoint,
            stack_index,
            quantum_left: QUANTUM_TICKS,
            priority,
            ..Thread::EMPTY
        };
        // The slot's new thread starts from `FpuState::INITIAL`, never from the registers
        // a previous thread of the slot left loaded.
        self.cpu.forget_fpu(slot);
        self.run_queues.push_back(slot.get(), priority);
        let owner = &self.processes[process];
        crate::trace::emit(
            vigil_abi::trace::EventKind::ThreadCreate,
            endpoint,
            [u64::from(owner.pid()), 0, 0],
        );
        crate::debug!("thread {endpoint} created in process '{}'", owner.name());
        Ok(endpoint)
    }

    /// Ends thread `slot` (ThreadExit, or part of a process exit): releases its stack, its
    /// timers and every IPC wait on it. The last thread of a process ends the process.
    pub fn exit_thread(&mut self, slot: ThreadSlot, exit_code: u64) {
        self.retire_thread(slot, exit_code);
        let process = self.threads[slot].process;
        if self.processes[process].live_threads() == 0 {
            self.exit_process(process, exit_code);
        }
    }

    /// Everything `exit_thread` does except ending the process.
    pub(crate) fn retire_thread(&mut self, slot: ThreadSlot, exit_code: u64) {
        let pid = self.process_of(slot).pid();
        crate::trace::emit(
            vigil_abi::trace::EventKind::ThreadExit,
            self.table.endpoint(slot),
            [u64::from(pid), exit_code, 0],
        );
        self.timers.cancel_all(slot.get());
        self.run_queues.remove(slot.get());
        {
            let (table, mut env) = self.ipc_parts();
            table.exit(&mut env, slot, exit_code);
        }
        self.cpu.forget(slot);
        self.forget_vm_wait(slot);
        self.signals.forget_thread(slot);
        self.trace.forget_thread(slot);
        let thread = &self.threads[slot];
        let stack_index = thread.stack_index;
        self.processes[thread.process].end_thread_stack(stack_index);
    }
}

/// The slot of a thread endpoint the thread table handed out (so it is in the table).
pub fn thread_slot(endpoint: Endpoint) -> ThreadSlot {
    ThreadSlot::new(endpoint.slot()).expect("the thread table hands out slots inside it")
}

/// ThreadCreate: a new thread of the caller's process at `entry`.
pub fn create(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: ThreadCreateArgs,
) -> Result<Next, Error> {
    if !(USER_IMAGE_MIN..USER_END).contains(&args.entry) {
        return Err(Error::InvalidArgument);
    }
    let process = kernel.threads[caller].process;
    let start = ThreadStart {
        entry: args.entry,
        stack_bytes: if kernel.served_by_vm(process) {
            INITIAL_STACK_BYTES
        } else {
            THREAD_STACK_BYTES
        },
        main_arguments: None,
        arg: args.argument,
    };
    kernel
        .spawn_thread(process, start)
        .map(|endpoint| Next::Return(endpoint.0))
}

/// ThreadExit: ends the caller.
pub fn exit(kernel: &mut Kernel, caller: ThreadSlot, args: ThreadExitArgs) -> Result<Next, Error> {
    kernel.exit_thread(caller, args.code);
    Ok(Next::Exited)
}

/// ThreadJoin: waits for a thread of the caller's own process.
pub fn join(kernel: &mut Kernel, caller: ThreadSlot, args: ThreadJoinArgs) -> Result<Next, Error> {
    let target = args.thread;
    let slot = match ThreadSlot::new(target.slot()) {
        Some(slot) if target.is_thread() => slot,
        _ => return Err(Error::BadEndpoint),
    };
    if kernel.table.endpoint(slot) != target
        || kernel.table.state(slot) == vigil_abi::wait::ThreadState::Free
    {
        return Err(Error::DeadEndpoint);
    }
    if kernel.threads[slot].process != kernel.threads[caller].process {
        return Err(Error::PermissionDenied);
    }
    Next::from_outcome(kernel.table.join(caller, target))
}
