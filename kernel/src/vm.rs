//! The kernel's side of the VM server: user page faults become messages to VM, and the
//! messages the kernel holds for VM until it receives.
//!
//! The boot process named `vm` is the VM server. From then on a page fault in any other
//! process blocks the faulting thread (`WaitingForVm`) and the kernel sends VM a
//! `KIND_PAGE_FAULT` message from `Endpoint::KERNEL` on its behalf — at once if VM is
//! receiving, else the message waits in [`VmLink`]'s queue for VM's next receive (the queue
//! holds at most one fault per thread, since a faulting thread is blocked, plus process-exit
//! notices). VM resolves the fault with the memory kernel calls and `VmResume`, or declares
//! it invalid with `VmFail`. A fault inside VM itself cannot be served: the kernel reports
//! it naming VM and fails every fault still waiting, so nothing hangs.

use crate::fault::PAGE_FAULT_VECTOR;
use crate::system::Kernel;
use vigil_abi::vm::{FaultAccess, PageFault, KIND_PROCESS_EXIT};
use vigil_abi::{Endpoint, Message};
use vigil_kcore::slot::{ProcessSlot, ThreadSlot, MAX_PROCESSES, MAX_THREADS};

/// The boot module name that makes a process the VM server.
pub const VM_SERVER_NAME: &str = "vm";

/// Messages held for VM: one fault per thread at most, and an exit notice per process.
const QUEUE_CAPACITY: usize = MAX_THREADS + MAX_PROCESSES;

/// The VM server, once it is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmServer {
    /// VM's main thread: faults are delivered to it.
    pub thread: ThreadSlot,
    pub endpoint: Endpoint,
    pub process: ProcessSlot,
}

/// A held message, and the thread it is about (for a fault).
#[derive(Clone, Copy)]
struct Held {
    message: Message,
    thread: Option<ThreadSlot>,
}

/// The link between the kernel and VM: who VM is, and the messages waiting for it.
pub struct VmLink {
    server: Option<VmServer>,
    queue: [Held; QUEUE_CAPACITY],
    head: usize,
    len: usize,
    /// Exit notices dropped because the queue was full (VM never received them).
    dropped_exits: u64,
}

impl VmLink {
    pub const fn new() -> VmLink {
        VmLink {
            server: None,
            queue: [Held {
                message: Message::new(0),
                thread: None,
            }; QUEUE_CAPACITY],
            head: 0,
            len: 0,
            dropped_exits: 0,
        }
    }

    /// Whether `receiver` is VM and has a message waiting: the oldest one.
    #[inline]
    pub fn peek(&self, receiver: ThreadSlot) -> Option<Message> {
        // Every receive asks: the common answer (nothing held) comes first and cheapest.
        if self.len == 0 {
            return None;
        }
        let server = self.server?;
        if server.thread != receiver {
            return None;
        }
        Some(self.queue[self.head].message)
    }

    /// The message `peek` returned was delivered.
    pub fn consume(&mut self, receiver: ThreadSlot) {
        if self.server.is_some_and(|server| server.thread == receiver) && self.len > 0 {
            self.head = (self.head + 1) % QUEUE_CAPACITY;
            self.len -= 1;
        }
    }

    /// Holds `message` for VM; `false` if the queue is full.
    fn push(&mut self, message: Message, thread: Option<ThreadSlot>) -> bool {
        if self.len == QUEUE_CAPACITY {
            return false;
        }
        let tail = (self.head + self.len) % QUEUE_CAPACITY;
        self.queue[tail] = Held { message, thread };
        self.len += 1;
        true
    }

    /// Drops a fault still held for `thread` (it exited, or was resumed or failed before
    /// VM received it).
    fn forget_thread(&mut self, thread: ThreadSlot) {
        let mut kept = 0;
        for i in 0..self.len {
            let entry = self.queue[(self.head + i) % QUEUE_CAPACITY];
            if entry.thread != Some(thread) {
                self.queue[(self.head + kept) % QUEUE_CAPACITY] = entry;
                kept += 1;
            }
        }
        self.len = kept;
    }
}

impl Kernel {
    /// Makes process `process` (just created from the boot module named `vm`) the VM server.
    pub fn register_vm_server(&mut self, process: ProcessSlot) {
        let endpoint = self.processes[process].main_thread();
        let Some(thread) = ThreadSlot::new(endpoint.slot()) else {
            return;
        };
        self.vm.server = Some(VmServer {
            thread,
            endpoint,
            process,
        });
        crate::info!(
            "vm: '{}' serves page faults",
            self.processes[process].name()
        );
    }

    /// Whether page faults of `process` go to the VM server.
    pub fn served_by_vm(&self, process: ProcessSlot) -> bool {
        self.vm
            .server
            .is_some_and(|server| server.process != process)
    }

    /// A user page fault of `slot` at `address`: if VM serves its process, block the thread
    /// and tell VM (true); otherwise (no VM, or the fault is VM's own) the caller reports it
    /// as an exception (false).
    pub fn forward_page_fault(&mut self, slot: ThreadSlot, address: u64) -> bool {
        let Some(server) = self.vm.server else {
            return false;
        };
        let thread = &self.threads[slot];
        let context = *thread.context();
        if context.vector != PAGE_FAULT_VECTOR || thread.process() == server.process {
            return false;
        }
        let access = FaultAccess::from_error_code(context.error_code);
        let process = &self.processes[thread.process()];
        let fault = PageFault {
            address,
            access,
            thread: self.table.endpoint(slot),
            pid: process.pid(),
            instruction: context.rip,
            present: context.error_code & 1 != 0,
        };
        self.table
            .wait_for_vm(slot, server.endpoint, address, access);
        crate::trace::emit(
            vigil_abi::trace::EventKind::Block,
            fault.thread,
            [
                u64::from(vigil_abi::introspect::state_code::WAITING_FOR_VM),
                server.endpoint.0,
                address,
            ],
        );
        self.send_to_vm(fault.to_message(), Some(slot));
        true
    }

    /// Tells VM that the process with `pid` exited.
    pub fn notify_vm_of_exit(&mut self, pid: u32) {
        if self.vm.server.is_none() {
            return;
        }
        let mut message = Message::with_payload(KIND_PROCESS_EXIT, [u64::from(pid), 0, 0, 0, 0, 0]);
        message.source = Endpoint::KERNEL;
        self.send_to_vm(message, None);
    }

    /// Delivers `message` to VM now if it is receiving, else holds it.
    fn send_to_vm(&mut self, message: Message, thread: Option<ThreadSlot>) {
        let Some(server) = self.vm.server else {
            return;
        };
        let delivered = {
            let (table, mut env) = self.ipc_parts();
            table.deliver_from_kernel(&mut env, server.thread, &message)
        };
        if !delivered && !self.vm.push(message, thread) {
            self.vm.dropped_exits += 1;
            crate::warn!(
                "vm: message queue full; {} exit notices dropped",
                self.vm.dropped_exits
            );
        }
    }

    /// VM handled `slot`'s fault: it runs the faulting instruction again.
    pub fn resume_from_vm(&mut self, slot: ThreadSlot) {
        self.vm.forget_thread(slot);
        if self.table.release_from_vm(slot) {
            let priority = self.process_of(slot).priority();
            self.run_queues.push_back(slot.get(), priority);
            crate::trace::emit(
                vigil_abi::trace::EventKind::Unblock,
                self.table.endpoint(slot),
                [0, 0, 0],
            );
        }
    }

    /// `slot` is leaving the system: drop any fault still held for it.
    pub fn forget_vm_wait(&mut self, slot: ThreadSlot) {
        self.vm.forget_thread(slot);
    }

    /// The VM server's process is gone: faults can no longer be served. Every thread still
    /// waiting for VM has its fault failed (its process is killed with a report), so none
    /// of them hangs.
    pub fn vm_server_exited(&mut self, process: ProcessSlot) {
        if self.vm.server.map(|server| server.process) != Some(process) {
            return;
        }
        self.vm.server = None;
        self.vm.len = 0;
        let waiting: alloc::vec::Vec<(ThreadSlot, u64)> = self
            .table
            .threads()
            .filter_map(|(slot, state)| match state {
                vigil_abi::wait::ThreadState::WaitingForVm { address, .. } => Some((slot, address)),
                _ => None,
            })
            .collect();
        crate::error!(
            "vm: the VM server exited; failing the {} page faults it had not resolved",
            waiting.len()
        );
        for (slot, address) in waiting {
            if self.table.release_from_vm(slot) {
                self.kill_for_exception(slot, address, Some("not served: the VM server is gone"));
            }
        }
    }
}
