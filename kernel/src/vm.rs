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
//!
//! System calls take the same road (MINIX's VMREQUEST): a call whose user memory is not
//! mapped yet is suspended in `WaitingForVm`, VM is sent the same message (with
//! `system_call` set), and the call runs again from the start once VM resumes it, or
//! returns `Fault` if VM fails it (`suspend_for_vm`).

use crate::arch::user_entry::SYSCALL_FRAME_MARKER;
use crate::fault::PAGE_FAULT_VECTOR;
use crate::system::Kernel;
use crate::usercopy::MissingPage;
use vigil_abi::layout::USER_IMAGE_END;
use vigil_abi::vm::{FaultAccess, PageFault, KIND_PROCESS_EXIT};
use vigil_abi::wait::ThreadState;
use vigil_abi::{Endpoint, Message};
use vigil_kcore::slot::{ProcessSlot, ThreadSlot, MAX_PROCESSES, MAX_THREADS};

/// The boot module name that makes a process the VM server.
pub const VM_SERVER_NAME: &str = "vm";

/// Length of the `syscall` instruction (0f 05): a suspended call's saved RIP moves back by
/// this much so that it runs again.
pub const SYSCALL_INSTRUCTION_BYTES: u64 = 2;

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
        self.holds_message_for(receiver)
            .then(|| self.queue[self.head].message)
    }

    /// Whether `peek(receiver)` has a message, without copying it.
    #[inline(always)]
    pub fn holds_message_for(&self, receiver: ThreadSlot) -> bool {
        // Every receive asks: the common answer (nothing held) comes first and cheapest.
        self.len != 0 && self.server.is_some_and(|server| server.thread == receiver)
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

    /// The VM server's process, if VM runs.
    pub fn vm_server_process(&self) -> Option<ProcessSlot> {
        self.vm.server.map(|server| server.process)
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
        let fault = PageFault {
            address,
            access: FaultAccess::from_error_code(context.error_code),
            thread: self.table.endpoint(slot),
            pid: self.processes[thread.process()].pid(),
            instruction: context.rip,
            present: context.error_code & 1 != 0,
            system_call: false,
        };
        self.wait_for_vm(server, slot, fault);
        true
    }

    /// A system call of `slot` failed with `Fault` because `missing` is not mapped. If VM
    /// serves the process that page belongs to, the call is suspended (true): the thread
    /// waits for VM, its saved RIP is moved back onto its `syscall` instruction (RAX and the
    /// argument registers still hold the call), and VM gets a page-fault message with
    /// `system_call` set. `VmResume` then runs the whole call again; `VmFail` makes it return
    /// `Fault` (`finish_suspended_call`). False (the call returns `Fault` now) when there is
    /// no VM, the page is VM's own or the caller is VM (VM never waits for itself), or the
    /// page belongs to no live process.
    ///
    /// Running the call again is exact because every call checks the user memory it needs
    /// before it changes anything (kcore::ipc's buffer checks, send_async's first pass,
    /// the snapshot and grant checks): a call that fails with `Fault` on its own memory has
    /// done nothing yet.
    pub fn suspend_for_vm(&mut self, slot: ThreadSlot, missing: MissingPage) -> bool {
        let Some((server, owner)) = self.vm_request_for(slot, missing) else {
            return false;
        };
        let pid = self.processes[owner].pid();
        // A page the kernel needed is a not-present fault of the owner's address space.
        self.processes[owner].count_forwarded_fault(false);
        let thread = &mut self.threads[slot];
        // One call, however often it runs: the entry counted this attempt.
        thread.counters_mut().syscalls -= 1;
        thread.counters_mut().page_faults += 1;
        let context = thread.context_mut();
        context.rip -= SYSCALL_INSTRUCTION_BYTES;
        let fault = PageFault {
            address: missing.page,
            access: if missing.write {
                FaultAccess::Write
            } else {
                FaultAccess::Read
            },
            thread: self.table.endpoint(slot),
            pid,
            instruction: context.rip,
            present: false,
            system_call: true,
        };
        self.wait_for_vm(server, slot, fault);
        true
    }

    /// Whether a system call of `slot` that failed on `missing` is VM's to serve: the VM
    /// server and the process that owns the page, or `None` (no VM; the null zone or the
    /// image, which VM never maps; a call by VM; a page of VM's own or of no live process;
    /// not a system call). The one rule `suspend_for_vm` and the kernel-call layer share.
    pub fn vm_request_for(
        &self,
        slot: ThreadSlot,
        missing: MissingPage,
    ) -> Option<(VmServer, ProcessSlot)> {
        let server = self.vm.server?;
        // Below the image is the null zone and the image itself is mapped whole by the
        // loader: VM maps neither, so a missing page there is a bad pointer, answered now.
        if missing.page < USER_IMAGE_END
            || self.threads[slot].process() == server.process
            || self.threads[slot].context().vector != SYSCALL_FRAME_MARKER
        {
            return None;
        }
        let (owner, _) = self
            .processes
            .live()
            .find(|(_, process)| missing.is_in(process.space()))?;
        (owner != server.process).then_some((server, owner))
    }

    /// The VM server, if it runs.
    pub fn vm_server(&self) -> Option<VmServer> {
        self.vm.server
    }

    /// Blocks `slot` waiting for VM on `fault` and sends VM the fault.
    pub(crate) fn wait_for_vm(&mut self, server: VmServer, slot: ThreadSlot, fault: PageFault) {
        self.table
            .wait_for_vm(slot, server.endpoint, fault.address, fault.access);
        crate::trace::emit(
            vigil_abi::trace::EventKind::Block,
            fault.thread,
            [
                u64::from(vigil_abi::introspect::state_code::WAITING_FOR_VM),
                server.endpoint.0,
                fault.address,
            ],
        );
        self.send_to_vm(fault.to_message(), Some(slot));
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

    /// VM handled `slot`'s fault: it runs the faulting instruction (or its suspended system
    /// call) again.
    pub fn resume_from_vm(&mut self, slot: ThreadSlot) {
        self.vm.forget_thread(slot);
        if self.table.release_from_vm(slot) {
            self.requeue_after_vm(slot, 0);
        }
    }

    /// VM declared `slot`'s fault invalid (or VM is gone): a CPU fault becomes an exception
    /// that kills the process, with `reason` in the report; a suspended system call returns
    /// `Fault` instead, as it would have for a page that can never be mapped.
    pub fn fail_from_vm(&mut self, slot: ThreadSlot, reason: &str) {
        self.vm.forget_thread(slot);
        let ThreadState::WaitingForVm { address, .. } = self.table.state(slot) else {
            return;
        };
        self.table.release_from_vm(slot);
        let thread = &mut self.threads[slot];
        if thread.context().vector == SYSCALL_FRAME_MARKER {
            // The call ends here, without running again: count it now (the suspension took
            // its counts back so that a call run again counts once), and trace a kernel
            // call's result as the kernel-call layer would have.
            let number = thread.context().rax;
            let kernel_call = thread.context().rdi;
            let counters = thread.counters_mut();
            counters.syscalls += 1;
            let fault = vigil_abi::Error::Fault.to_return_value();
            if number == vigil_abi::syscall::Syscall::KernelCall as u64 {
                counters.kernel_calls += 1;
                crate::trace::emit(
                    vigil_abi::trace::EventKind::KernelCall,
                    self.table.endpoint(slot),
                    [kernel_call, fault, 0],
                );
            }
            let context = self.threads[slot].context_mut();
            context.rip += SYSCALL_INSTRUCTION_BYTES;
            context.rax = fault;
            self.requeue_after_vm(slot, fault);
        } else {
            self.kill_for_exception(slot, address, Some(reason));
        }
    }

    fn requeue_after_vm(&mut self, slot: ThreadSlot, rax: u64) {
        let priority = self.process_of(slot).priority();
        self.run_queues.push_back(slot.get(), priority);
        crate::trace::emit(
            vigil_abi::trace::EventKind::Unblock,
            self.table.endpoint(slot),
            [rax, 0, 0],
        );
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
        let waiting: alloc::vec::Vec<ThreadSlot> = self
            .table
            .threads()
            .filter_map(|(slot, state)| match state {
                ThreadState::WaitingForVm { .. } => Some(slot),
                _ => None,
            })
            .collect();
        crate::error!(
            "vm: the VM server exited; failing the {} page faults it had not resolved",
            waiting.len()
        );
        for slot in waiting {
            self.fail_from_vm(slot, "not served: the VM server is gone");
        }
    }
}
