//! Processes: creation from a validated ELF image, exit and teardown, and user faults.

use crate::arch::paging::{self, flags, AddressSpace, PAGE_SIZE};
use crate::arch::trap;
use crate::fault::{FaultPlace, FaultReport, PAGE_FAULT_VECTOR};
use crate::memory;
use crate::syscall::Next;
use crate::system::{IpcTargets, Kernel, Process, MAX_PROCESSES};
use crate::thread::{self, ThreadStart, MAIN_STACK_BYTES};
use crate::usercopy;
use vigil_abi::syscall::ProcessExitArgs;
use vigil_abi::user_memory::{UserPtr, UserSlice};
use vigil_abi::Error;
use vigil_kcore::elf::{ElfImage, Segment};
use vigil_kcore::ipc::MAX_THREADS;

/// Privileges and scheduling of a new process.
#[derive(Clone, Copy, Debug)]
pub struct ProcessConfig<'a> {
    pub name: &'a str,
    pub priority: u8,
    pub kernel_calls: u64,
    pub ipc_targets: IpcTargets,
}

/// Most frames a backtrace of user code prints.
const USER_BACKTRACE_FRAMES: usize = 16;

impl Kernel {
    /// Creates a process from `image` (already validated) with file bytes `file`, and starts
    /// its main thread with `arguments`. Returns the process slot.
    pub fn create_process(
        &mut self,
        config: &ProcessConfig<'_>,
        image: &ElfImage,
        file: &[u8],
        arguments: &'static [u8],
    ) -> Result<u16, Error> {
        let slot = self
            .processes
            .iter()
            .position(|p| !p.in_use)
            .ok_or(Error::OutOfResources)? as u16;
        // The PML4, the image, the main thread's stack and the tables they need.
        let frames = 1
            + image
                .segments()
                .map(|segment| thread::frames_to_map(segment_pages(segment)))
                .sum::<u64>()
            + thread::frames_to_map(MAIN_STACK_BYTES / PAGE_SIZE);
        if !self.table.has_free_slot() || (memory::free_frames() as u64) < frames {
            return Err(Error::OutOfResources);
        }
        // Everything is checked: from here on nothing fails.
        let mut space = AddressSpace::new_user(&paging::kernel_space(), &mut memory::alloc_frame)
            .unwrap_or_else(|error| panic!("no frame for a PML4 after the checks: {error:?}"));
        let image_pages = load_segments(&mut space, image, file);
        self.next_pid += 1;
        let process = &mut self.processes[usize::from(slot)];
        *process = Process::EMPTY;
        process.in_use = true;
        process.pid = self.next_pid;
        process.set_name(config.name);
        process.space = Some(space);
        process.priority = config.priority;
        process.kernel_calls = config.kernel_calls;
        process.ipc_targets = config.ipc_targets;
        process.mapped_pages = image_pages;
        let start = ThreadStart {
            entry: image.entry,
            stack_bytes: MAIN_STACK_BYTES,
            main_arguments: Some(arguments),
            arg: 0,
        };
        let endpoint = self
            .spawn_thread(slot, start)
            .unwrap_or_else(|error| panic!("main thread refused after the checks: {error}"));
        self.processes[usize::from(slot)].main_thread = endpoint;
        let pid = u64::from(self.processes[usize::from(slot)].pid);
        crate::trace::emit(
            vigil_abi::trace::EventKind::ProcessCreate,
            endpoint,
            [pid, 0, 0],
        );
        Ok(slot)
    }

    /// Ends every thread of `process`, frees its memory and its slot.
    pub fn exit_process(&mut self, process: u16, status: u64) {
        let index = usize::from(process);
        if !self.processes[index].in_use {
            return;
        }
        let mut slots = [0u16; MAX_THREADS];
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
        let space = self.processes[index]
            .space
            .take()
            .expect("a live process has an address space");
        // The page counter introspection reports must match the tables exactly.
        let counted = space.count_user_pages();
        let recorded = self.processes[index].mapped_pages;
        if counted != recorded {
            crate::error!(
                "memory accounting drift in '{}': {recorded} pages recorded, {counted} mapped",
                self.processes[index].name()
            );
        }
        paging::kernel_space().enter();
        space.destroy_user(&mut |frame| {
            memory::release_frame(frame);
        });
        let process_record = &mut self.processes[index];
        crate::trace::emit(
            vigil_abi::trace::EventKind::ProcessExit,
            process_record.main_thread,
            [u64::from(process_record.pid), status, 0],
        );
        crate::info!(
            "process '{}' (pid {}) exited with status {}",
            process_record.name(),
            process_record.pid,
            status as i64
        );
        process_record.in_use = false;
    }

    /// A CPU exception in user code: report it and kill the process; the rest run on.
    pub fn user_exception(&mut self, slot: u16) {
        let context = self.threads[usize::from(slot)].context;
        if context.vector == PAGE_FAULT_VECTOR {
            self.threads[usize::from(slot)].counters.page_faults += 1;
        }
        let thread = &self.threads[usize::from(slot)];
        let (page_faults, syscalls) = (thread.counters.page_faults, thread.counters.syscalls);
        let process = thread.process;
        let record = &self.processes[usize::from(process)];
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
        };
        report.print();
        let backtrace = print_user_backtrace(record.space(), context.rip, context.rbp, name);
        crate::monitor::report_user_crash(name, pid, report.summary(), backtrace);
        crate::error!(
            "process '{name}' (pid {pid}) killed by {mnemonic} at {:#x} (thread {endpoint}: {page_faults} page faults, {syscalls} system calls)",
            context.rip
        );
        crate::trace::emit(
            vigil_abi::trace::EventKind::Crash,
            endpoint,
            [u64::from(pid), context.vector, context.rip],
        );
        self.exit_process(process, 128 + context.vector);
    }

    /// Slot of the live process named `name`.
    pub fn process_named(&self, name: &str) -> Option<u16> {
        (0..MAX_PROCESSES)
            .find(|&i| self.processes[i].in_use && self.processes[i].name() == name)
            .map(|i| i as u16)
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

/// Follows the user frame-pointer chain (through `usercopy`, so a garbage chain just ends).
fn print_user_backtrace(
    space: &AddressSpace,
    pc: u64,
    mut rbp: u64,
    name: &str,
) -> alloc::vec::Vec<u64> {
    let mut addresses = alloc::vec![pc];
    crate::console::continuation(format_args!("backtrace:"));
    crate::console::continuation(format_args!("  #0 pc  {pc:#018x} ({name})"));
    for index in 1..USER_BACKTRACE_FRAMES {
        if rbp == 0 {
            break;
        }
        let Ok(frame) =
            UserPtr::<[u64; 2]>::new(rbp).and_then(|at| usercopy::read_value(space, at))
        else {
            break;
        };
        let [next_rbp, return_address] = frame;
        if return_address == 0 {
            break;
        }
        crate::console::continuation(format_args!(
            "  #{index} ret {return_address:#018x} ({name})"
        ));
        addresses.push(return_address);
        if next_rbp <= rbp {
            break;
        }
        rbp = next_rbp;
    }
    addresses
}

/// ProcessExit: ends every thread of the caller's process.
pub fn exit(kernel: &mut Kernel, caller: u16, args: ProcessExitArgs) -> Result<Next, Error> {
    let process = kernel.threads[usize::from(caller)].process;
    kernel.exit_process(process, args.status);
    Ok(Next::Exited)
}
