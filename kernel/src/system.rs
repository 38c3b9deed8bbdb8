//! The kernel's global state — thread, process, scheduler and timer tables — and its lock.
//!
//! The kernel runs with interrupts off on one CPU, so one lock around all of it is never
//! contended; it exists to make the single owner explicit to the compiler. Every entry
//! from user mode takes it, does its work, and releases it before leaving.

use crate::arch::paging::AddressSpace;
use crate::process::{Process, Processes, NAME_BYTES};
use crate::sched::Cpu;
use crate::thread::Threads;
use crate::vm::VmLink;
use vigil_abi::Endpoint;
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
    /// The process manager, the boot modules it reads and the exit notice held for it.
    pub(crate) pm: crate::pm::PmLink,
    pub(crate) rs: crate::rs::RsLink,
    /// Host commands forwarded to PM and waiting for its answer.
    pub(crate) host_commands: crate::host_command::HostCommandTable,
    /// Exception events and notices for signal managers (`signal.rs`).
    pub(crate) signals: crate::signal::SignalLink,
    /// Which threads are traced, and where their trace stops are (`ptrace.rs`).
    pub(crate) trace: crate::ptrace::TraceLink,
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
            pm: crate::pm::PmLink::new(),
            rs: crate::rs::RsLink::new(),
            host_commands: crate::host_command::HostCommandTable::new(),
            signals: crate::signal::SignalLink::new(),
            trace: crate::ptrace::TraceLink::new(),
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

    /// Whether IPC calls try the fast path first (`ipc_fastpath=`, default on).
    /// The setting lives with the tracing state, which closes the fast path too
    /// (`TraceLink::fast_ipc_closed`).
    pub fn set_ipc_fastpath(&mut self, on: bool) {
        self.trace.set_fast_path(on);
    }

    /// Whether the machine should stop now (called when nothing is runnable):
    /// `exit-when-done` is set and no process is left but the boot table's system servers
    /// (VM, PM, DS and RS serve forever), every thread of theirs waiting in Receive — so PM has
    /// reaped every exit and nothing will wake them.
    pub fn is_done(&self) -> bool {
        self.exit_when_done
            && self.processes.live().all(|(slot, process)| {
                process.is_system_server()
                    && self.table.threads_of(slot).all(|thread| {
                        matches!(
                            self.table.state(thread),
                            vigil_abi::wait::ThreadState::Receiving { .. }
                        )
                    })
            })
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
    let current = unsafe { Cpu::read_current(core::ptr::addr_of!((*kernel).cpu)) };
    let Some(slot) = current else {
        return (None, held);
    };
    // SAFETY: as above; slot lookups stay inside the table (`ThreadSlot::index`).
    let (endpoint, process) =
        unsafe { Threads::read_identity(core::ptr::addr_of!((*kernel).threads), slot) };
    // SAFETY: as above; the process slot lookup stays inside the table and the name
    // length is clamped.
    let (pid, name, name_len) =
        unsafe { Processes::read_name(core::ptr::addr_of!((*kernel).processes), process) };
    let found = InterruptedThread {
        endpoint,
        pid,
        name,
        name_len,
    };
    (Some(found), held)
}
