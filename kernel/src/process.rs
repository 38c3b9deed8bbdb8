//! Processes: the process object and table, creation from a validated ELF image, exit and
//! teardown, and user faults.

use crate::arch::paging::{self, flags, AddressSpace, Frame, PageSize, PAGE_SIZE};
use crate::arch::{cpu, trap};
use crate::fault::{FaultPlace, FaultReport, PAGE_FAULT_VECTOR};
use crate::grant::Grant;
use crate::memory;
use crate::syscall::Next;
use crate::system::Kernel;
use crate::thread::{self, ThreadStart, MAIN_STACK_BYTES};
use crate::usercopy;
use vigil_abi::layout::{HEAP_BASE, INITIAL_STACK_BYTES, RUNTIME_HEAP_BYTES, STACK_REGION_SIZE};
use vigil_abi::pm::ImageFlags;
use vigil_abi::syscall::KernelCall;
use vigil_abi::syscall::{PanicArgs, ProcessExitArgs};
use vigil_abi::user_memory::UserSlice;
use vigil_abi::vm::{MapFlags, PageRange};
use vigil_abi::{Endpoint, Error};
use vigil_kcore::elf::{ElfImage, Segment};
use vigil_kcore::slot::{ProcessSlot, ThreadSlot, MAX_PROCESSES, MAX_THREADS};

/// The debug exception (#DB): a single step of a traced thread (`ptrace.rs`).
const DEBUG_VECTOR: u64 = 1;

/// Memory grants per process.
pub const MAX_GRANTS: usize = 32;
/// Longest process name kept.
pub const NAME_BYTES: usize = 32;

/// Which processes a process may send to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpcTargets {
    All,
    /// Bit `p` allows process slot `p`.
    Only(u64),
}

/// A process: an address space, its threads' shared privileges, its grants. Its state is
/// private: it changes only through the methods below, which keep the thread count, the
/// stack-region bitmap and the mapped-page count consistent with each other.
pub struct Process {
    in_use: bool,
    /// Unique for the life of the system (slots are reused, pids are not).
    pid: u32,
    name: [u8; NAME_BYTES],
    name_len: usize,
    /// The process's address space: owned here, built by `create_process`, taken apart
    /// by `exit_process` (None while the slot is free).
    space: Option<AddressSpace>,
    priority: u8,
    /// Bit `n` allows kernel call `n`.
    kernel_calls: u64,
    ipc_targets: IpcTargets,
    main_thread: Endpoint,
    live_threads: u16,
    /// User pages mapped (image, stacks, VM's maps, shared views), kept up to date so
    /// introspection is cheap.
    mapped_pages: u64,
    /// Of `mapped_pages`, views of frames another mapping holds too (`VmMapShared`).
    shared_pages: u64,
    /// The memory limit from the boot table (`mem=`), in pages; 0 if none was set.
    memory_limit_pages: u64,
    /// Accounting for introspection (`ProcessRecord`): see [`Accounting`].
    accounting: Accounting,
    /// Bit `i` set = stack region `i` in use.
    stack_regions: [u64; MAX_THREADS / 64],
    grants: [Grant; MAX_GRANTS],
    /// The pid of the process that handles this one's signals and exceptions and collects
    /// its exit (seed 002's signal manager): the process manager for every process it
    /// created; None for a boot process (the kernel reports and kills it, as before).
    signal_manager: Option<u32>,
    /// The pid that collects its exit (`PmReap`): the process manager for every process
    /// it created (`PmCreate`), whoever its signal manager is later (RS for the services
    /// it supervises); None for a boot process (its signal manager, if PM, collects it).
    reaper: Option<u32>,
    /// Started by the kernel from the boot table (VM, PM, DS, RS): serves forever, so
    /// `exit-when-done` does not wait for it.
    system_server: bool,
    /// Whether the main thread has started (a process `PmCreate` made has none until
    /// `PmStart`).
    started: bool,
    /// Set when a process with a signal manager has exited: the slot (free of threads
    /// and memory) is kept, with the status, until the manager collects it (`PmReap`).
    exit_status: Option<u64>,
    /// Who stopped it, and signals to deliver (`signal.rs`; the manager holds the rest).
    pub(crate) signals: crate::signal::ProcessSignals,
}

impl Process {
    pub const EMPTY: Process = Process {
        in_use: false,
        pid: 0,
        name: [0; NAME_BYTES],
        name_len: 0,
        space: None,
        priority: 0,
        kernel_calls: 0,
        ipc_targets: IpcTargets::All,
        main_thread: Endpoint(0),
        live_threads: 0,
        mapped_pages: 0,
        shared_pages: 0,
        memory_limit_pages: 0,
        accounting: Accounting::ZERO,
        stack_regions: [0; MAX_THREADS / 64],
        grants: [Grant::EMPTY; MAX_GRANTS],
        signal_manager: None,
        reaper: None,
        system_server: false,
        started: false,
        exit_status: None,
        signals: crate::signal::ProcessSignals::NONE,
    };

    /// A live process with pid `pid`, its address space, `image_pages` pages of image and
    /// `heap_pages` of heap mapped.
    fn new(
        config: &ProcessConfig<'_>,
        pid: u32,
        space: AddressSpace,
        image_pages: u64,
        heap_pages: u64,
    ) -> Self {
        let mut process = Process {
            in_use: true,
            pid,
            space: Some(space),
            priority: config.priority,
            kernel_calls: config.kernel_calls,
            ipc_targets: config.ipc_targets,
            mapped_pages: image_pages + heap_pages,
            memory_limit_pages: config.memory_limit_pages,
            accounting: Accounting {
                peak_pages: image_pages + heap_pages,
                image_pages,
                ..Accounting::ZERO
            },
            ..Process::EMPTY
        };
        process.set_name(config.name);
        process
    }

    /// The pid of the process's signal manager (None: the kernel's default handling).
    pub fn signal_manager(&self) -> Option<u32> {
        self.signal_manager
    }

    /// Makes `manager` (a pid) the process's signal manager (`PmSetSignalManager`).
    pub fn set_signal_manager(&mut self, manager: u32) {
        self.signal_manager = Some(manager);
    }

    /// The pid that collects its exit, if any (see the field).
    pub fn reaper(&self) -> Option<u32> {
        self.reaper
    }

    /// Whether the kernel started it as a system server of the boot table.
    pub fn is_system_server(&self) -> bool {
        self.system_server
    }

    /// Marks it a system server of the boot table (`boot_image`).
    pub fn mark_system_server(&mut self) {
        self.system_server = true;
    }

    /// The process has no signal manager any more (its manager exited).
    pub fn clear_signal_manager(&mut self) {
        self.signal_manager = None;
    }

    /// Whether the main thread has been started.
    pub fn started(&self) -> bool {
        self.started
    }

    /// Maps fresh zeroed image pages at `range` for the process manager (none mapped,
    /// frames checked by the caller), counted as image.
    pub fn map_image(&mut self, range: PageRange, flags: ImageFlags) {
        let mut leaf = 0;
        if flags.writable() {
            leaf |= paging::flags::WRITABLE;
        }
        if !flags.executable() {
            leaf |= paging::flags::NO_EXECUTE;
        }
        thread::map_user_pages(self.space_mut(), range.start(), range.pages(), leaf);
        self.add_mapped(range.pages());
        self.accounting.image_pages += range.pages();
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// The endpoint of the thread the process started with (after a service takeover,
    /// the endpoint it took over).
    pub fn main_thread(&self) -> Endpoint {
        self.main_thread
    }

    /// Its main thread now has endpoint `endpoint` (a service takeover or swap).
    pub fn set_main_thread(&mut self, endpoint: Endpoint) {
        self.main_thread = endpoint;
    }

    /// User pages mapped into the process (image, stacks, VM's maps and shared views: a
    /// shared frame is charged to every process it is mapped into).
    pub fn mapped_pages(&self) -> u64 {
        self.mapped_pages
    }

    /// The most pages `mapped_pages` has been.
    pub fn peak_pages(&self) -> u64 {
        self.accounting.peak_pages
    }

    /// Of `mapped_pages`, the pages that map a frame another mapping holds too
    /// (`VmMapShared`).
    pub fn shared_pages(&self) -> u64 {
        self.shared_pages
    }

    /// The memory limit the boot table set (`mem=`), in pages; 0 if it set none.
    pub fn memory_limit_pages(&self) -> u64 {
        self.memory_limit_pages
    }

    /// Virtual size in bytes: the image the kernel loaded plus the regions VM reported
    /// (`VmSetVirtual`); for a process VM has not reported on, its mapped bytes.
    pub fn virtual_bytes(&self) -> u64 {
        let accounting = &self.accounting;
        match accounting.vm_virtual_bytes {
            Some(bytes) => (accounting.image_pages * PAGE_SIZE).saturating_add(bytes),
            None => self.mapped_pages * PAGE_SIZE,
        }
    }

    /// VM's figure for the regions it placed (`VmSetVirtual`).
    pub fn set_vm_virtual_bytes(&mut self, bytes: u64) {
        self.accounting.vm_virtual_bytes = Some(bytes);
    }

    /// Page faults forwarded to VM: (page not present, protection fault on a present page).
    pub fn forwarded_faults(&self) -> (u64, u64) {
        (
            self.accounting.faults_not_present,
            self.accounting.faults_protection,
        )
    }

    /// Counts a page fault forwarded to VM, by the #PF error code's P bit.
    pub fn count_forwarded_fault(&mut self, present: bool) {
        let accounting = &mut self.accounting;
        if present {
            accounting.faults_protection += 1;
        } else {
            accounting.faults_not_present += 1;
        }
    }

    /// `pages` more pages are mapped: counts them and raises the peak.
    fn add_mapped(&mut self, pages: u64) {
        self.mapped_pages += pages;
        self.accounting.peak_pages = self.accounting.peak_pages.max(self.mapped_pages);
    }

    /// Threads of the process that have not exited.
    pub fn live_threads(&self) -> u16 {
        self.live_threads
    }

    /// Whether the process may make kernel call `call`.
    pub fn may_call(&self, call: KernelCall) -> bool {
        self.kernel_calls & call.mask_bit() != 0
    }

    pub fn grants(&self) -> &[Grant; MAX_GRANTS] {
        &self.grants
    }

    pub fn grants_mut(&mut self) -> &mut [Grant; MAX_GRANTS] {
        &mut self.grants
    }

    /// The address space of a live process.
    pub fn space(&self) -> &AddressSpace {
        self.space
            .as_ref()
            .expect("a live process has an address space")
    }

    fn space_mut(&mut self) -> &mut AddressSpace {
        self.space
            .as_mut()
            .expect("a live process has an address space")
    }

    pub fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..self.name_len]).unwrap_or("?")
    }

    fn set_name(&mut self, name: &str) {
        let mut len = name.len().min(NAME_BYTES);
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        self.name[..len].copy_from_slice(&name.as_bytes()[..len]);
        self.name_len = len;
    }

    /// Limits the processes this one may send to (boot-time `ipc=` lists).
    pub fn set_ipc_targets(&mut self, targets: IpcTargets) {
        self.ipc_targets = targets;
    }

    /// Whether no `ipc=` list limits this process (it may send to every process).
    #[inline(always)]
    pub fn may_send_to_all(&self) -> bool {
        matches!(self.ipc_targets, IpcTargets::All)
    }

    pub fn may_send_to(&self, process: ProcessSlot) -> bool {
        match self.ipc_targets {
            IpcTargets::All => true,
            IpcTargets::Only(mask) => mask & (1 << process.get()) != 0,
        }
    }

    /// The lowest stack region no thread uses, if any.
    pub fn free_stack_region(&self) -> Option<u16> {
        (0..MAX_THREADS)
            .find(|&i| self.stack_regions[i / 64] & (1 << (i % 64)) == 0)
            .map(|i| i as u16)
    }

    /// Maps `pages` of fresh stack at `bottom` for a new thread in stack region
    /// `stack_index` and counts the thread. The caller checked there are frames for it.
    pub fn start_thread_stack(
        &mut self,
        stack_index: u16,
        bottom: u64,
        pages: u64,
    ) -> &mut AddressSpace {
        thread::map_user_pages(
            self.space_mut(),
            bottom,
            pages,
            flags::WRITABLE | flags::NO_EXECUTE,
        );
        self.stack_regions[usize::from(stack_index) / 64] |= 1 << (stack_index % 64);
        self.live_threads += 1;
        self.add_mapped(pages);
        self.space_mut()
    }

    /// Unmaps the whole stack region `stack_index` of an exiting thread and stops counting it.
    pub fn end_thread_stack(&mut self, stack_index: u16) {
        let top = thread::stack_region_top(stack_index);
        let unmapped = thread::unmap_user_pages(
            self.space_mut(),
            top - STACK_REGION_SIZE,
            STACK_REGION_SIZE / PAGE_SIZE,
        );
        self.stack_regions[usize::from(stack_index) / 64] &= !(1 << (stack_index % 64));
        self.count_unmapped(unmapped);
        self.live_threads = self.live_threads.saturating_sub(1);
    }
}

/// The memory calls VM makes on a process's address space. Each keeps `mapped_pages` equal
/// to what the tables hold.
impl Process {
    /// Leaf flags of a page VM maps: user, never executable, writable if asked.
    fn vm_leaf(flags: MapFlags) -> u64 {
        let writable = if flags.writable() {
            paging::flags::WRITABLE
        } else {
            0
        };
        paging::flags::USER | paging::flags::NO_EXECUTE | writable
    }

    /// Whether any page of `range` is mapped.
    pub fn any_mapped(&self, range: PageRange) -> bool {
        (0..range.pages()).any(|i| self.space().translate(range.page(i)).is_some())
    }

    /// Pages of `range` that are mapped.
    pub fn mapped_in(&self, range: PageRange) -> u64 {
        (0..range.pages())
            .filter(|&i| self.space().translate(range.page(i)).is_some())
            .count() as u64
    }

    /// Maps fresh zeroed frames at every page of `range` (none mapped, frames checked by
    /// the caller).
    pub fn map_fresh(&mut self, range: PageRange, flags: MapFlags) {
        thread::map_user_pages(
            self.space_mut(),
            range.start(),
            range.pages(),
            Self::vm_leaf(flags),
        );
        self.add_mapped(range.pages());
    }

    /// Unmaps the mapped pages of `range` and releases their frames (freed unless another
    /// mapping still holds them); returns how many.
    pub fn unmap_range(&mut self, range: PageRange) -> u64 {
        let unmapped = thread::unmap_user_pages(self.space_mut(), range.start(), range.pages());
        self.count_unmapped(unmapped);
        unmapped.pages
    }

    fn count_unmapped(&mut self, unmapped: thread::Unmapped) {
        self.mapped_pages = self.mapped_pages.saturating_sub(unmapped.pages);
        self.shared_pages = self.shared_pages.saturating_sub(unmapped.shared);
    }

    /// Sets the access of the mapped pages of `range` (a shared view stays one); returns
    /// how many.
    pub fn protect_range(&mut self, range: PageRange, flags: MapFlags) -> u64 {
        let leaf = Self::vm_leaf(flags);
        let space = self.space_mut();
        (0..range.pages())
            .filter(|&i| {
                let page = range.page(i);
                let shared = space
                    .translate(page)
                    .map_or(0, |t| t.flags & paging::flags::SHARED_VIEW);
                space.protect(page, leaf | shared).is_some()
            })
            .count() as u64
    }

    /// The frame a user page maps at `page` (4 KiB, user-accessible) and whether the page
    /// is writable.
    pub fn user_page(&self, page: u64) -> Option<(Frame, bool)> {
        let translation = self.space().translate(page)?;
        let user = translation.flags & paging::flags::USER != 0;
        (user && translation.size == PageSize::Size4K)
            .then(|| (translation.phys.frame(), translation.writable()))
    }

    /// Maps `frame`, which another mapping holds and which the caller gave one more holder
    /// (`memory::share_frame`), at the unmapped page `page`, counted resident and shared.
    /// The caller checked there are frames for the page tables.
    pub fn map_shared_page(&mut self, page: u64, frame: Frame, flags: MapFlags) {
        let leaf = Self::vm_leaf(flags) | paging::flags::SHARED_VIEW;
        let mapped = self.space_mut().map(
            page,
            frame.start(),
            PageSize::Size4K,
            leaf,
            &mut memory::alloc_frame,
        );
        if let Err(error) = mapped {
            panic!("mapping shared page {page:#x} failed after the checks: {error:?}");
        }
        self.add_mapped(1);
        self.shared_pages += 1;
    }
}

/// What the kernel counts of a process's memory for introspection, beyond the mapped pages.
#[derive(Clone, Copy, Debug)]
struct Accounting {
    /// The most pages `mapped_pages` has been.
    peak_pages: u64,
    /// Pages of the program image the kernel loaded (VM does not count them).
    image_pages: u64,
    /// The virtual size of the regions VM placed, once VM has said (`VmSetVirtual`).
    vm_virtual_bytes: Option<u64>,
    /// Page faults forwarded to VM on a page that was not present.
    faults_not_present: u64,
    /// Page faults forwarded to VM on a present page (protection).
    faults_protection: u64,
}

impl Accounting {
    const ZERO: Accounting = Accounting {
        peak_pages: 0,
        image_pages: 0,
        vm_virtual_bytes: None,
        faults_not_present: 0,
        faults_protection: 0,
    };
}

/// The process table, indexed only by [`ProcessSlot`].
pub struct Processes([Process; MAX_PROCESSES]);

impl Processes {
    pub const fn new() -> Processes {
        Processes([Process::EMPTY; MAX_PROCESSES])
    }

    /// The lowest free slot (neither live nor an exit waiting for its manager).
    fn free_slot(&self) -> Option<ProcessSlot> {
        ProcessSlot::all().find(|&slot| !self[slot].in_use && self[slot].exit_status.is_none())
    }

    /// Forgets every uncollected exit of processes `manager` managed (it is gone).
    pub fn forget_exits_managed_by(&mut self, manager: u32) {
        for slot in ProcessSlot::all() {
            let process = &mut self[slot];
            if process.exit_status.is_some() && process.reaper == Some(manager) {
                process.exit_status = None;
                process.reaper = None;
            }
        }
    }

    /// Takes one exit of a process managed by `manager` that it has not collected:
    /// (pid, status). The slot is free from then on.
    pub fn reap(&mut self, manager: u32) -> Option<(u32, u64)> {
        let slot = ProcessSlot::all().find(|&slot| {
            let process = &self[slot];
            process.exit_status.is_some() && process.reaper == Some(manager)
        })?;
        let process = &mut self[slot];
        let status = process.exit_status.take()?;
        process.reaper = None;
        Some((process.pid, status))
    }

    /// The live process with pid `pid`.
    pub fn by_pid(&self, pid: u32) -> Option<ProcessSlot> {
        self.live()
            .find(|(_, process)| process.pid == pid)
            .map(|(slot, _)| slot)
    }

    /// Every live process with its slot, lowest slot first.
    pub fn live(&self) -> impl Iterator<Item = (ProcessSlot, &Process)> + '_ {
        ProcessSlot::all()
            .map(|slot| (slot, &self[slot]))
            .filter(|(_, process)| process.in_use)
    }
}

impl Processes {
    /// The pid and name (bytes and length, clamped) of process `slot`, read without a
    /// reference (see `Threads::read_identity`).
    ///
    /// # Safety
    /// `processes` points at a live `Processes`; nothing writes these fields meanwhile.
    pub unsafe fn read_name(
        processes: *const Processes,
        slot: ProcessSlot,
    ) -> (u32, [u8; NAME_BYTES], usize) {
        // SAFETY: the caller guarantees `processes` is valid; `slot.index()` is in bounds;
        // `addr_of!` creates no reference.
        unsafe {
            let process = core::ptr::addr_of!((*processes).0[slot.index()]);
            (
                core::ptr::addr_of!((*process).pid).read_volatile(),
                core::ptr::addr_of!((*process).name).read_volatile(),
                core::ptr::addr_of!((*process).name_len)
                    .read_volatile()
                    .min(NAME_BYTES),
            )
        }
    }
}

impl core::ops::Index<ProcessSlot> for Processes {
    type Output = Process;
    fn index(&self, slot: ProcessSlot) -> &Process {
        &self.0[slot.index()]
    }
}

impl core::ops::IndexMut<ProcessSlot> for Processes {
    fn index_mut(&mut self, slot: ProcessSlot) -> &mut Process {
        &mut self.0[slot.index()]
    }
}

/// Privileges and scheduling of a new process.
#[derive(Clone, Copy, Debug)]
pub struct ProcessConfig<'a> {
    pub name: &'a str,
    pub priority: u8,
    pub kernel_calls: u64,
    pub ipc_targets: IpcTargets,
    /// `mem=` in pages, 0 for none.
    pub memory_limit_pages: u64,
}

impl Kernel {
    /// Creates a process from `image` (already validated) with file bytes `file`, and starts
    /// its main thread with `arguments`. Returns the process slot.
    pub fn create_process(
        &mut self,
        config: &ProcessConfig<'_>,
        image: &ElfImage,
        file: &[u8],
        arguments: &'static [u8],
    ) -> Result<ProcessSlot, Error> {
        let slot = self.processes.free_slot().ok_or(Error::OutOfResources)?;
        // A process VM serves gets its heap and the rest of its stack from VM on demand;
        // any other (VM itself, or every process when there is no VM) has them mapped now.
        let served = self.served_by_vm(slot);
        let (stack_bytes, heap_pages) = if served {
            (INITIAL_STACK_BYTES, 0)
        } else {
            (MAIN_STACK_BYTES, RUNTIME_HEAP_BYTES / PAGE_SIZE)
        };
        // The PML4, the image, the heap, the main thread's stack and the tables they need.
        let frames = 1
            + image
                .segments()
                .map(|segment| thread::frames_to_map(segment_pages(segment)))
                .sum::<u64>()
            + thread::frames_to_map(heap_pages)
            + thread::frames_to_map(stack_bytes / PAGE_SIZE);
        if !self.table.has_free_slot() || (memory::free_frames() as u64) < frames {
            return Err(Error::OutOfResources);
        }
        // Everything is checked: from here on nothing fails.
        let mut space = AddressSpace::new_user(&paging::kernel_space(), &mut memory::alloc_frame)
            .unwrap_or_else(|error| panic!("no frame for a PML4 after the checks: {error:?}"));
        let image_pages = load_segments(&mut space, image, file);
        thread::map_user_pages(
            &mut space,
            HEAP_BASE,
            heap_pages,
            flags::WRITABLE | flags::NO_EXECUTE,
        );
        let pid = self.allocate_pid();
        self.processes[slot] = Process::new(config, pid, space, image_pages, heap_pages);
        let start = ThreadStart {
            entry: image.entry,
            stack_bytes,
            main_arguments: Some(arguments),
            arg: 0,
        };
        let endpoint = self
            .spawn_thread(slot, start)
            .unwrap_or_else(|error| panic!("main thread refused after the checks: {error}"));
        self.processes[slot].main_thread = endpoint;
        self.processes[slot].started = true;
        let pid = u64::from(self.processes[slot].pid);
        crate::trace::emit(
            vigil_abi::trace::EventKind::ProcessCreate,
            endpoint,
            [pid, 0, 0],
        );
        Ok(slot)
    }

    /// Ends every thread of `process`, frees its memory and its slot.
    pub fn exit_process(&mut self, process: ProcessSlot, status: u64) {
        if !self.processes[process].in_use {
            return;
        }
        let mut slots = [ThreadSlot::FIRST; MAX_THREADS];
        let mut count = 0;
        for slot in self.table.threads_of(process) {
            slots[count] = slot;
            count += 1;
        }
        for &slot in &slots[..count] {
            if !matches!(
                self.table.state(slot),
                vigil_abi::wait::ThreadState::Dead { .. }
            ) {
                self.retire_thread(slot, status);
            }
        }
        for &slot in &slots[..count] {
            if matches!(
                self.table.state(slot),
                vigil_abi::wait::ThreadState::Dead { .. }
            ) {
                self.table.free(slot);
            }
        }
        let space = self.processes[process]
            .space
            .take()
            .expect("a live process has an address space");
        // The page counter introspection reports must match the tables exactly.
        let counted = space.count_user_pages();
        let recorded = self.processes[process].mapped_pages;
        if counted != recorded {
            crate::error!(
                "memory accounting drift in '{}': {recorded} pages recorded, {counted} mapped",
                self.processes[process].name()
            );
        }
        let counted_shared = space.count_shared_views();
        let recorded_shared = self.processes[process].shared_pages();
        if counted_shared != recorded_shared {
            crate::error!(
                "memory accounting drift in '{}': {recorded_shared} shared pages recorded, {counted_shared} mapped",
                self.processes[process].name()
            );
        }
        paging::kernel_space().enter();
        space.destroy_user(&mut |frame| {
            memory::release_frame(frame);
        });
        let process_record = &mut self.processes[process];
        crate::trace::emit(
            vigil_abi::trace::EventKind::ProcessExit,
            process_record.main_thread,
            [u64::from(process_record.pid), status, 0],
        );
        match vigil_abi::signal::status::signal_of(status) {
            // A signal's status (`1 << 32 | signal`, PM's encoding) reads as one.
            Some(signal) => crate::info!(
                "process '{}' (pid {}) exited with status {status:#x} ({})",
                process_record.name(),
                process_record.pid,
                signal.name()
            ),
            None => crate::info!(
                "process '{}' (pid {}) exited with status {}",
                process_record.name(),
                process_record.pid,
                status as i64
            ),
        }
        crate::monitor::record_exit(process_record.name(), process_record.pid, status);
        process_record.in_use = false;
        let pid = process_record.pid;
        // Its reaper (PM for what PM created, whoever manages it now), else a manager
        // that is PM (a boot process PM adopted), collects the exit.
        let collector = process_record.reaper.or(process_record.signal_manager);
        // A process PM collects stays an exit for PM (while PM runs).
        let managed = collector.is_some_and(|collector| {
            self.pm
                .process()
                .is_some_and(|pm| self.processes[pm].pid == collector)
        });
        self.processes[process].signal_manager = None;
        self.processes[process].reaper = if managed { collector } else { None };
        if managed {
            self.processes[process].exit_status = Some(status);
        }
        self.notify_vm_of_exit(pid);
        self.vm_server_exited(process);
        self.pm_server_exited(process);
        self.rs_server_exited(process);
        self.signal_manager_exited(pid);
        if managed {
            self.notify_pm_of_exit();
        }
    }

    /// Creates an empty process for the process manager: an address space and
    /// privileges, no image and no threads yet; `manager` is its signal manager.
    pub fn create_empty_process(
        &mut self,
        config: &ProcessConfig<'_>,
        manager: u32,
    ) -> Result<ProcessSlot, Error> {
        let slot = self.processes.free_slot().ok_or(Error::OutOfResources)?;
        if memory::free_frames() == 0 {
            return Err(Error::OutOfResources);
        }
        let space = AddressSpace::new_user(&paging::kernel_space(), &mut memory::alloc_frame)
            .map_err(|_| Error::OutOfResources)?;
        let pid = self.allocate_pid();
        self.processes[slot] = Process::new(config, pid, space, 0, 0);
        self.processes[slot].signal_manager = Some(manager);
        self.processes[slot].reaper = Some(manager);
        Ok(slot)
    }

    /// Starts the main thread of a process `create_empty_process` made, at `entry` with
    /// `arguments`. A process VM does not serve gets its heap now, as at boot.
    pub fn start_created_process(
        &mut self,
        slot: ProcessSlot,
        entry: u64,
        arguments: &[u8],
    ) -> Result<Endpoint, Error> {
        if self.processes[slot].started {
            return Err(Error::Exists);
        }
        let served = self.served_by_vm(slot);
        let (stack_bytes, heap_pages) = if served {
            (INITIAL_STACK_BYTES, 0)
        } else {
            (MAIN_STACK_BYTES, RUNTIME_HEAP_BYTES / PAGE_SIZE)
        };
        let frames =
            thread::frames_to_map(heap_pages) + thread::frames_to_map(stack_bytes / PAGE_SIZE);
        if !self.table.has_free_slot() || (memory::free_frames() as u64) < frames {
            return Err(Error::OutOfResources);
        }
        let process = &mut self.processes[slot];
        thread::map_user_pages(
            process.space_mut(),
            HEAP_BASE,
            heap_pages,
            flags::WRITABLE | flags::NO_EXECUTE,
        );
        process.add_mapped(heap_pages);
        let start = ThreadStart {
            entry,
            stack_bytes,
            main_arguments: Some(arguments),
            arg: 0,
        };
        let endpoint = self.spawn_thread(slot, start)?;
        let process = &mut self.processes[slot];
        process.main_thread = endpoint;
        process.started = true;
        crate::trace::emit(
            vigil_abi::trace::EventKind::ProcessCreate,
            endpoint,
            [u64::from(process.pid), 0, 0],
        );
        Ok(endpoint)
    }

    /// A CPU exception in user code: report it and kill the process (or hold the thread for
    /// its signal manager, `signal.rs`); the rest run on. (An
    /// #NM that only asks for the thread's FPU state, and a page fault VM serves, are not
    /// errors.)
    pub fn user_exception(&mut self, slot: ThreadSlot) {
        if self.threads[slot].context().vector == DEBUG_VECTOR && self.trace_debug_trap(slot) {
            return;
        }
        if self.threads[slot].context().vector == crate::arch::fpu::DEVICE_NOT_AVAILABLE_VECTOR
            && self.fpu_first_use(slot)
        {
            return;
        }
        let thread = &mut self.threads[slot];
        let mut address = 0;
        if thread.context().vector == PAGE_FAULT_VECTOR {
            thread.counters_mut().page_faults += 1;
            address = cpu::read_cr2();
            // The P bit of the error code: a protection fault on a present page.
            let present = thread.context().error_code & 1 != 0;
            let process = thread.process();
            if self.forward_page_fault(slot, address) {
                self.processes[process].count_forwarded_fault(present);
                return;
            }
        }
        self.kill_for_exception(slot, address, None);
    }

    /// Reports the exception saved in `slot`'s registers (`fault_address` is CR2 for a page
    /// fault; `reason` says why VM refused it, if it did) and kills the process — unless it
    /// has a live signal manager, which then holds the thread and gets an event; the rest
    /// run on.
    pub fn kill_for_exception(
        &mut self,
        slot: ThreadSlot,
        fault_address: u64,
        reason: Option<&str>,
    ) {
        let thread = &self.threads[slot];
        let context = *thread.context();
        let counters = thread.counters();
        let (page_faults, syscalls) = (counters.page_faults, counters.syscalls);
        let process = thread.process();
        let record = &self.processes[process];
        let (name, pid) = (record.name(), record.pid);
        let (mnemonic, _) = trap::exception_name(context.vector);
        let endpoint = self.table.endpoint(slot);
        let report = FaultReport {
            frame: &context,
            place: FaultPlace::User {
                process: name,
                pid,
                thread: endpoint,
            },
            fault_address,
        };
        report.print();
        if let Some(reason) = reason {
            crate::console::continuation(format_args!("  {reason}"));
        }
        let backtrace = print_user_backtrace(record.space(), context.rip, context.rbp, name);
        let backtrace_for_rs = backtrace.clone();
        crate::monitor::report_user_crash(
            vigil_wire::CrashKind::UserFault,
            name,
            pid,
            report.summary(),
            backtrace,
        );
        crate::trace::emit(
            vigil_abi::trace::EventKind::Crash,
            endpoint,
            [u64::from(pid), context.vector, context.rip],
        );
        self.report_system_server_crash(slot, fault_address, &backtrace_for_rs);
        let record = &self.processes[process];
        if let Some(manager) = record.signal_manager() {
            if self.hold_for_manager(slot, fault_address) {
                crate::info!(
                    "process '{}' (pid {pid}) held for its signal manager (pid {manager}) after {mnemonic} at {:#x} (thread {endpoint}: {page_faults} page faults, {syscalls} system calls)",
                    self.processes[process].name(),
                    context.rip
                );
                return;
            }
        }
        let record = &self.processes[process];
        let name = record.name();
        crate::error!(
            "process '{name}' (pid {pid}) killed by {mnemonic} at {:#x} (thread {endpoint}: {page_faults} page faults, {syscalls} system calls)",
            context.rip
        );
        self.exit_process(process, 128 + context.vector);
    }

    /// Slot of the live process named `name`.
    pub fn process_named(&self, name: &str) -> Option<ProcessSlot> {
        self.processes
            .live()
            .find(|(_, process)| process.name() == name)
            .map(|(slot, _)| slot)
    }
}

/// 4 KiB pages a segment occupies.
fn segment_pages(segment: &Segment) -> u64 {
    let first_page = segment.virt & !(PAGE_SIZE - 1);
    (segment.virt + segment.mem_size - first_page).div_ceil(PAGE_SIZE)
}

/// Maps every segment of `image` into `space`, copying file bytes and zeroing the rest.
/// Returns the number of pages mapped. `kcore::elf` validated the image (segments inside
/// the file and the user image range) and the caller checked there are frames for it, so
/// nothing here can fail.
fn load_segments(space: &mut AddressSpace, image: &ElfImage, file: &[u8]) -> u64 {
    let mut mapped = 0;
    for segment in image.segments() {
        let first_page = segment.virt & !(PAGE_SIZE - 1);
        let pages = segment_pages(segment);
        let mut leaf = 0;
        if segment.flags.write {
            leaf |= flags::WRITABLE;
        }
        if !segment.flags.execute {
            leaf |= flags::NO_EXECUTE;
        }
        // Map with the final permissions; the kernel fills the pages through the direct map.
        thread::map_user_pages(space, first_page, pages, leaf);
        mapped += pages;
        let start = segment.file_offset as usize;
        let bytes = &file[start..start + segment.file_size as usize];
        let filled = UserSlice::new(segment.virt, bytes.len() as u64)
            .and_then(|destination| usercopy::fill(space, destination, bytes));
        if let Err(error) = filled {
            panic!(
                "filling a validated segment at {:#x} failed: {error}",
                segment.virt
            );
        }
    }
    mapped
}

/// Prints the user frame-pointer chain (`backtrace::user_frames`: a garbage chain just
/// ends) and returns its addresses.
fn print_user_backtrace(
    space: &AddressSpace,
    pc: u64,
    rbp: u64,
    name: &str,
) -> alloc::vec::Vec<u64> {
    let (frames, count) = crate::backtrace::user_frames(space, pc, rbp);
    crate::console::continuation(format_args!("backtrace:"));
    for (index, address) in frames[..count].iter().enumerate() {
        let kind = if index == 0 { "pc " } else { "ret" };
        crate::console::continuation(format_args!("  #{index} {kind} {address:#018x} ({name})"));
    }
    frames[..count].to_vec()
}

/// ProcessExit: ends every thread of the caller's process.
/// Longest panic message the kernel reports.
const PANIC_TEXT_MAX: usize = 512;
/// The exit status of a process that panicked (as Rust's test harness and `cargo` use).
pub const PANIC_EXIT_STATUS: u64 = 101;

/// Panic: the caller's runtime reports a panic. Logged as an error with a backtrace of the
/// caller, sent to the monitor as a `UserPanic` crash, and the process ends with status 101.
pub fn panic(kernel: &mut Kernel, caller: ThreadSlot, args: PanicArgs) -> Result<Next, Error> {
    let process = kernel.threads[caller].process();
    let mut buffer = [0u8; PANIC_TEXT_MAX];
    let len = args.text.len().min(PANIC_TEXT_MAX);
    let space = kernel.space_of(caller);
    let read = usercopy::read(space, args.text.truncate(len), &mut buffer[..len]);
    let message = match read {
        Ok(()) => match core::str::from_utf8(&buffer[..len]) {
            Ok(text) => text,
            Err(error) => core::str::from_utf8(&buffer[..error.valid_up_to()]).unwrap_or(""),
        },
        Err(_) => "(the panic message could not be read)",
    };
    let context = *kernel.threads[caller].context();
    let endpoint = kernel.table.endpoint(caller);
    let record = &kernel.processes[process];
    let (name, pid) = (record.name(), record.pid);
    crate::error!("process '{name}' (pid {pid}) panicked (thread {endpoint}): {message}");
    let backtrace = print_user_backtrace(record.space(), context.rip, context.rbp, name);
    crate::monitor::report_user_crash(
        vigil_wire::CrashKind::UserPanic,
        name,
        pid,
        alloc::string::String::from(message),
        backtrace,
    );
    crate::trace::emit(
        vigil_abi::trace::EventKind::Crash,
        endpoint,
        [u64::from(pid), PANIC_EXIT_STATUS, context.rip],
    );
    kernel.exit_process(process, PANIC_EXIT_STATUS);
    Ok(Next::Exited)
}

pub fn exit(kernel: &mut Kernel, caller: ThreadSlot, args: ProcessExitArgs) -> Result<Next, Error> {
    let process = kernel.threads[caller].process();
    kernel.exit_process(process, args.status);
    Ok(Next::Exited)
}
