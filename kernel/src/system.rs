//! The kernel's global state — thread, process, scheduler and timer tables — and its lock.
//!
//! The kernel runs with interrupts off on one CPU, so one lock around all of it is never
//! contended; it exists to make the single owner explicit to the compiler. Every entry
//! from user mode takes it, does its work, and releases it before leaving.

use crate::arch::paging::AddressSpace;
use crate::process::{Process, Processes};
use crate::sched::Cpu;
use crate::thread::Threads;
use crate::vm::VmLink;
use vigil_kcore::ipc::ThreadTable;
use vigil_kcore::sched::RunQueues;
use vigil_kcore::slot::{ThreadSlot, MAX_THREADS};
use vigil_kcore::timer::TimerQueue;
/// Scheduling quantum in timer ticks.
pub const QUANTUM_TICKS: u8 = 5;

/// Everything the kernel knows about threads and processes.
///
/// The tables are objects with private state and checked methods (`ThreadTable`,
/// `RunQueues`, `TimerQueue` in kcore; [`Threads`] and [`Processes`], indexed only by their
/// slot types); the kernel's operations in the other files reach them through these fields.
/// The few plain values are private and change only through the methods below.
pub struct Kernel {
    pub(crate) table: ThreadTable,
    pub(crate) run_queues: RunQueues<MAX_THREADS>,
    pub(crate) timers: TimerQueue<MAX_THREADS>,
    pub(crate) threads: Threads,
    pub(crate) processes: Processes,
    /// What is on the CPU and since when (the scheduler's state).
    pub(crate) cpu: Cpu,
    /// The VM server and the messages held for it.
    pub(crate) vm: VmLink,
    /// The last pid handed out.
    last_pid: u32,
    /// Snapshots taken so far.
    snapshot_generation: u64,
    /// `exit-when-done` on the command line: stop the machine (success) once every
    /// process has exited — for tests and scripted runs.
    exit_when_done: bool,
}

impl Kernel {
    pub const fn new() -> Kernel {
        Kernel {
            table: ThreadTable::new(),
            run_queues: RunQueues::new(),
            timers: TimerQueue::new(),
            threads: Threads::new(),
            processes: Processes::new(),
            cpu: Cpu::new(),
            vm: VmLink::new(),
            last_pid: 0,
            snapshot_generation: 0,
            exit_when_done: false,
        }
    }

    /// The thread on the CPU (None while idle).
    pub fn current(&self) -> Option<ThreadSlot> {
        self.cpu.current()
    }

    /// The process of thread `slot`.
    pub fn process_of(&self, slot: ThreadSlot) -> &Process {
        &self.processes[self.threads[slot].process()]
    }

    /// The address space of thread `slot`.
    pub fn space_of(&self, slot: ThreadSlot) -> &AddressSpace {
        self.process_of(slot).space()
    }

    /// A pid no process has had before.
    pub fn allocate_pid(&mut self) -> u32 {
        self.last_pid += 1;
        self.last_pid
    }

    /// Counts a snapshot and returns its generation (1 for the first).
    pub fn next_snapshot_generation(&mut self) -> u64 {
        self.snapshot_generation += 1;
        self.snapshot_generation
    }

    /// Stop the machine once every process has exited (`exit-when-done`).
    pub fn set_exit_when_done(&mut self, exit: bool) {
        self.exit_when_done = exit;
    }

    /// Whether the machine should stop now: `exit-when-done` is set and no process is left.
    pub fn is_done(&self) -> bool {
        self.exit_when_done && self.processes.live().next().is_none()
    }
}

pub static KERNEL: crate::lock::Mutex<Kernel> =
    crate::lock::Mutex::new(crate::lock::Level::Kernel, Kernel::new());

// The mutex lock word stores the owner's slot + 1 in 16 bits.
const _: () = assert!(MAX_THREADS < vigil_abi::syscall::mutex_word::OWNER_MASK as usize);
