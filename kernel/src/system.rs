//! The kernel's global state — thread, process, scheduler and timer tables — and its lock.
//!
//! The kernel runs with interrupts off on one CPU, so one lock around all of it is never
//! contended; it exists to make the single owner explicit to the compiler. Every entry
//! from user mode takes it, does its work, and releases it before leaving.

use crate::arch::paging::AddressSpace;
use crate::grant::Grant;
use crate::thread::Thread;
use vigil_abi::Endpoint;
use vigil_kcore::ipc::{ThreadTable, MAX_THREADS};
use vigil_kcore::sched::RunQueues;
use vigil_kcore::timer::TimerQueue;

/// Process slots.
pub const MAX_PROCESSES: usize = 64;
/// Memory grants per process.
pub const MAX_GRANTS: usize = 32;
/// Longest process name kept.
pub const NAME_BYTES: usize = 32;
/// Scheduling quantum in timer ticks.
pub const QUANTUM_TICKS: u8 = 5;

/// Which processes a process may send to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpcTargets {
    All,
    /// Bit `p` allows process slot `p`.
    Only(u64),
}

/// A process: an address space, its threads' shared privileges, its grants.
pub struct Process {
    pub in_use: bool,
    /// Unique for the life of the system (slots are reused, pids are not).
    pub pid: u32,
    name: [u8; NAME_BYTES],
    name_len: usize,
    /// The process's address space: owned here, built by `create_process`, taken apart
    /// by `exit_process` (None while the slot is free).
    pub space: Option<AddressSpace>,
    pub priority: u8,
    /// Bit `n` allows kernel call `n`.
    pub kernel_calls: u64,
    pub ipc_targets: IpcTargets,
    pub main_thread: Endpoint,
    pub live_threads: u16,
    /// User pages mapped (image, stacks), kept up to date so introspection is cheap.
    pub mapped_pages: u64,
    /// Bit `i` set = stack region `i` in use.
    pub stack_regions: [u64; MAX_THREADS / 64],
    pub grants: [Grant; MAX_GRANTS],
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
        stack_regions: [0; MAX_THREADS / 64],
        grants: [Grant::EMPTY; MAX_GRANTS],
    };

    /// The address space of a live process.
    pub fn space(&self) -> &AddressSpace {
        self.space
            .as_ref()
            .expect("a live process has an address space")
    }

    pub fn name(&self) -> &str {
        core::str::from_utf8(&self.name[..self.name_len]).unwrap_or("?")
    }

    pub fn set_name(&mut self, name: &str) {
        let mut len = name.len().min(NAME_BYTES);
        while !name.is_char_boundary(len) {
            len -= 1;
        }
        self.name[..len].copy_from_slice(&name.as_bytes()[..len]);
        self.name_len = len;
    }

    pub fn may_send_to(&self, process: u16) -> bool {
        match self.ipc_targets {
            IpcTargets::All => true,
            IpcTargets::Only(mask) => process < 64 && mask & (1 << process) != 0,
        }
    }
}

/// Everything the kernel knows about threads and processes.
pub struct Kernel {
    pub table: ThreadTable,
    pub run_queues: RunQueues<MAX_THREADS>,
    pub timers: TimerQueue<MAX_THREADS>,
    pub threads: [Thread; MAX_THREADS],
    pub processes: [Process; MAX_PROCESSES],
    /// The thread on the CPU (None while idle).
    pub current: Option<u16>,
    /// TSC when the current thread (or idle) was last put on the CPU.
    pub dispatch_tsc: u64,
    pub idle_ns: u64,
    pub next_pid: u32,
    /// Snapshots taken so far (the next snapshot's generation).
    pub snapshot_generation: u64,
    /// `exit-when-done` on the command line: stop the machine (success) once every
    /// process has exited — for tests and scripted runs.
    pub exit_when_done: bool,
}

impl Kernel {
    pub const fn new() -> Kernel {
        Kernel {
            table: ThreadTable::new(),
            run_queues: RunQueues::new(),
            timers: TimerQueue::new(),
            threads: [Thread::EMPTY; MAX_THREADS],
            processes: [Process::EMPTY; MAX_PROCESSES],
            current: None,
            dispatch_tsc: 0,
            idle_ns: 0,
            next_pid: 0,
            snapshot_generation: 0,
            exit_when_done: false,
        }
    }

    /// The process of thread `slot`.
    pub fn process_of(&self, slot: u16) -> &Process {
        &self.processes[usize::from(self.threads[usize::from(slot)].process)]
    }

    /// The address space of thread `slot`.
    pub fn space_of(&self, slot: u16) -> &AddressSpace {
        self.process_of(slot).space()
    }
}

pub static KERNEL: crate::lock::Mutex<Kernel> =
    crate::lock::Mutex::new(crate::lock::Level::Kernel, Kernel::new());

// The mutex lock word stores the owner's slot + 1 in 16 bits.
const _: () = assert!(MAX_THREADS < vigil_abi::syscall::mutex_word::OWNER_MASK as usize);

/// The thread that was on the CPU when the NMI watchdog struck, as its report names it.
pub struct InterruptedThread {
    pub endpoint: Endpoint,
    pub pid: u32,
    name: [u8; NAME_BYTES],
    name_len: usize,
}

impl InterruptedThread {
    /// The process name (`?` if it was caught half-written).
    pub fn process_name(&self) -> &str {
        core::str::from_utf8(&self.name[..self.name_len]).unwrap_or("?")
    }
}

/// Who was current, read from NMI context without ever waiting for the kernel lock: with
/// the lock if it is free, else through `data_while_held` (a lockup inside the kernel holds
/// it). Returns the thread (None while idle) and whether the lock was held.
pub fn interrupted_thread() -> (Option<InterruptedThread>, bool) {
    let guard = KERNEL.try_lock();
    let held = guard.is_none();
    let kernel: *const Kernel = match &guard {
        Some(guard) => &**guard,
        // SAFETY: called only by the NMI handler, under which the lock's holder (the
        // interrupted code) cannot run; only integers and byte arrays are read below (and
        // `current`, an Option<u16> whose every torn state is still a valid value), and
        // each index is bounds-checked.
        None => unsafe { KERNEL.data_while_held() },
    };
    // SAFETY: `kernel` points at the static's value (see above for the unlocked case).
    // `addr_of!` projects to the fields without creating references.
    let current = unsafe { core::ptr::addr_of!((*kernel).current).read_volatile() };
    let Some(slot) = current.filter(|&slot| usize::from(slot) < MAX_THREADS) else {
        return (None, held);
    };
    // SAFETY: as above; `slot` is in range.
    let (endpoint, process) = unsafe {
        let thread = core::ptr::addr_of!((*kernel).threads[usize::from(slot)]);
        (
            core::ptr::addr_of!((*thread).endpoint).read_volatile(),
            usize::from(core::ptr::addr_of!((*thread).process).read_volatile()),
        )
    };
    let mut found = InterruptedThread {
        endpoint,
        pid: 0,
        name: [0; NAME_BYTES],
        name_len: 0,
    };
    if process < MAX_PROCESSES {
        // SAFETY: as above; `process` is in range, and the name length is clamped.
        unsafe {
            let process = core::ptr::addr_of!((*kernel).processes[process]);
            found.pid = core::ptr::addr_of!((*process).pid).read_volatile();
            found.name = core::ptr::addr_of!((*process).name).read_volatile();
            found.name_len = core::ptr::addr_of!((*process).name_len)
                .read_volatile()
                .min(NAME_BYTES);
        }
    }
    (Some(found), held)
}
