//! The kernel side of IPC: gives the portable state machine (`kcore::ipc`) access to user
//! memory, saved registers and the run queues.
//!
//! Where a thread's message is: in its buffer in memory, or — while its call is one of the
//! register-message calls (`SendReceiveRegisters`, `ReplyReceiveRegisters`) — in its saved
//! registers (`RegisterMessage`: RDX, R10, R8, R9, and the sender in RDI on delivery). The
//! call in progress is the saved RAX: it holds the call's number until the call's result is
//! written, which is always after the last message copy of the call (`write_result`). So
//! the state machine, its fast path and every delivery (replies, notifications, kernel
//! messages, async messages) work unchanged on register calls, with the buffer address
//! unused (0).

use crate::arch::paging::AddressSpace;
use crate::arch::trap::TrapFrame;
use crate::message_buffer;
use crate::process::Processes;
use crate::thread::Threads;
use crate::usercopy::{self, Access};
use crate::vm::VmLink;
use vigil_abi::async_message::AsyncMessage;
use vigil_abi::message::RegisterMessage;
use vigil_abi::syscall::Syscall;
use vigil_abi::trace::EventKind;
use vigil_abi::user_memory::{UserPtr, UserSlice};
use vigil_abi::{Endpoint, Error, Message};
use vigil_kcore::buffer_translation::BufferTranslation;
use vigil_kcore::ipc::{IpcEnvironment, MAX_THREADS};
use vigil_kcore::sched::RunQueues;
use vigil_kcore::slot::ThreadSlot;

/// Borrowed view of the kernel tables an IPC operation may touch (everything but the
/// thread table itself, which runs the operation).
pub struct KernelEnv<'a> {
    pub threads: &'a mut Threads,
    pub processes: &'a Processes,
    pub vm: &'a mut VmLink,
    pub pm: &'a mut crate::pm::PmLink,
    pub signals: &'a mut crate::signal::SignalLink,
    pub run_queues: &'a mut RunQueues<MAX_THREADS>,
    /// Set by the IPC fast path (`Kernel::fast_ipc_parts`): `write_message` keeps the kind
    /// of the message it delivers in `deferred_kind` instead of recording the delivery's
    /// events, and the fast path records them with the call's other events (one compact
    /// record when it switches straight to the partner, `Kernel::fast_ipc_call`). Only the
    /// kind: the receiver and the sender are the fast call's partner and caller.
    defer_delivery_events: bool,
    /// The kind of the message `write_message` delivered (with `defer_delivery_events`).
    pub deferred_kind: Option<u32>,
}

/// A message delivered from `sender` to `receiver`: the slow path records it as the
/// receiver's `IpcReceive` and the sender's `IpcSend`, one instant for both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub receiver: Endpoint,
    pub sender: Endpoint,
    pub kind: u32,
}

impl Delivery {
    /// Its two events, in the slow path's order.
    #[inline(always)]
    pub fn events(&self) -> [crate::trace::Event; 2] {
        let kind = u64::from(self.kind);
        [
            (
                EventKind::IpcReceive,
                self.receiver,
                [self.sender.0, kind, 0],
            ),
            (EventKind::IpcSend, self.sender, [self.receiver.0, kind, 0]),
        ]
    }
}

/// Whether system call `number` carries its message in registers (see the module's doc).
#[inline(always)]
pub fn is_register_message_call(number: u64) -> bool {
    number == Syscall::SendReceiveRegisters as u64
        || number == Syscall::ReplyReceiveRegisters as u64
}

/// The message in `context`'s registers (its source is the state machine's to fill in).
#[inline(always)]
pub fn message_from_registers(context: &TrapFrame) -> Message {
    RegisterMessage::from_registers([context.rdx, context.r10, context.r8, context.r9])
        .to_message(Endpoint::NONE)
}

/// Delivers `message` into `context`'s registers: its sender in RDI, the rest as a
/// `RegisterMessage` (payload words past the registers' are not delivered).
#[inline(always)]
pub fn message_into_registers(context: &mut TrapFrame, message: &Message) {
    let [header, word0, word1, word2] = RegisterMessage::from_message(message).to_registers();
    context.rdi = message.source.0;
    context.rdx = header;
    context.r10 = word0;
    context.r8 = word1;
    context.r9 = word2;
}

impl KernelEnv<'_> {
    /// Whether `thread`'s message is in its registers rather than in memory.
    #[inline(always)]
    fn message_in_registers(&self, thread: ThreadSlot) -> bool {
        is_register_message_call(self.threads[thread].context().rax)
    }

    fn space_of(&self, thread: ThreadSlot) -> &AddressSpace {
        let process = self.threads[thread].process();
        self.processes[process].space()
    }

    /// `thread`'s address space and its remembered message-buffer translation.
    fn buffer_of(&mut self, thread: ThreadSlot) -> (&AddressSpace, &mut BufferTranslation) {
        let process = self.threads[thread].process();
        let processes: &Processes = self.processes;
        (
            processes[process].space(),
            self.threads[thread].message_buffer_mut(),
        )
    }

    /// The endpoint of `thread`, from the copy its saved context keeps (the thread table
    /// itself is busy running the operation).
    fn endpoint_of(&self, thread: ThreadSlot) -> Endpoint {
        self.threads[thread].endpoint()
    }

    fn priority_of(&self, thread: ThreadSlot) -> u8 {
        let process = self.threads[thread].process();
        self.processes[process].priority()
    }
}

impl IpcEnvironment for KernelEnv<'_> {
    fn read_message(
        &mut self,
        thread: ThreadSlot,
        address: UserPtr<Message>,
    ) -> Result<Message, Error> {
        if self.message_in_registers(thread) {
            return Ok(message_from_registers(self.threads[thread].context()));
        }
        let (space, remembered) = self.buffer_of(thread);
        message_buffer::read(space, remembered, address, Access::Read)
    }

    fn read_message_writable(
        &mut self,
        thread: ThreadSlot,
        address: UserPtr<Message>,
    ) -> Result<Message, Error> {
        if self.message_in_registers(thread) {
            return Ok(message_from_registers(self.threads[thread].context()));
        }
        let (space, remembered) = self.buffer_of(thread);
        message_buffer::read(space, remembered, address, Access::Write)
    }

    /// Every delivery goes through here, so this is where messages are counted.
    fn write_message(
        &mut self,
        thread: ThreadSlot,
        address: UserPtr<Message>,
        message: &Message,
    ) -> Result<(), Error> {
        if self.message_in_registers(thread) {
            message_into_registers(self.threads[thread].context_mut(), message);
        } else {
            let (space, remembered) = self.buffer_of(thread);
            message_buffer::write(space, remembered, address, message)?;
        }
        let delivery = Delivery {
            receiver: self.endpoint_of(thread),
            sender: message.source,
            kind: message.kind,
        };
        if message.is_notification() {
            let [(kind, thread, args), _] = delivery.events();
            crate::trace::emit(kind, thread, args);
        } else if self.defer_delivery_events {
            debug_assert!(
                self.deferred_kind.is_none(),
                "a fast call delivers one message"
            );
            self.deferred_kind = Some(message.kind);
        } else {
            // The delivery is one instant for both sides (`trace::emit_together`).
            crate::trace::emit_together(delivery.events());
        }
        let receiver = &mut self.threads[thread];
        if message.is_notification() {
            receiver.counters_mut().notifications_received += 1;
        } else {
            receiver.counters_mut().messages_received += 1;
            let sender = message.source;
            if let Some(sender) = ThreadSlot::new(sender.slot()).filter(|_| sender.is_thread()) {
                self.threads[sender].counters_mut().messages_sent += 1;
            }
        }
        Ok(())
    }

    fn check_message_buffer(
        &mut self,
        thread: ThreadSlot,
        address: UserPtr<Message>,
    ) -> Result<(), Error> {
        if self.message_in_registers(thread) {
            return Ok(());
        }
        let (space, remembered) = self.buffer_of(thread);
        message_buffer::check_writable(space, remembered, address)
    }

    fn read_async_entry(
        &mut self,
        thread: ThreadSlot,
        table: UserSlice<AsyncMessage>,
        index: usize,
    ) -> Result<AsyncMessage, Error> {
        let entry = table.get(index).ok_or(Error::Fault)?;
        usercopy::read_value(self.space_of(thread), entry)
    }

    fn write_async_status(
        &mut self,
        thread: ThreadSlot,
        table: UserSlice<AsyncMessage>,
        index: usize,
        flags: u32,
        result: u32,
    ) -> Result<(), Error> {
        // `flags` and `result` are the entry's first two words.
        let status = table.get(index).ok_or(Error::Fault)?.prefix::<[u32; 2]>();
        usercopy::write_value(self.space_of(thread), status, &[flags, result])
    }

    fn unblock(&mut self, thread: ThreadSlot, result: Result<u64, Error>) {
        let context = self.threads[thread].context_mut();
        crate::syscall::write_result(context, result);
        let rax = context.rax;
        crate::trace::emit(EventKind::Unblock, self.endpoint_of(thread), [rax, 0, 0]);
        let priority = self.priority_of(thread);
        // A more urgent thread than the current one preempts it at the kernel's exit:
        // the scheduler compares priorities there (`choose_next`).
        self.run_queues.push_back(thread.get(), priority);
    }

    // Inlined: the register fast path asks it on every call (a call here cost 18).
    #[inline(always)]
    fn may_send(&self, from: ThreadSlot, to: ThreadSlot) -> bool {
        may_send(self.threads, self.processes, from, to)
    }

    /// Read when a notification is composed, not for every operation (most never ask).
    fn now_ns(&self) -> u64 {
        crate::time::now_ns()
    }

    #[inline(always)]
    fn peek_kernel_message(&mut self, receiver: ThreadSlot) -> Option<Message> {
        self.vm
            .peek(receiver)
            .or_else(|| self.pm.peek(receiver))
            .or_else(|| self.signals.peek(receiver))
    }

    fn consume_kernel_message(&mut self, receiver: ThreadSlot) {
        // One message was delivered: VM's if VM had one held, else PM's notice, else a
        // signal manager's event notice.
        if self.vm.peek(receiver).is_some() {
            self.vm.consume(receiver);
        } else if self.pm.peek(receiver).is_some() {
            self.pm.consume(receiver);
        } else {
            self.signals.consume(receiver);
        }
    }
}

/// Whether thread `from` may send to thread `to` (`IpcEnvironment::may_send`, and the
/// register fast path's `RegisterCallFacts::may_send`).
#[inline(always)]
fn may_send(threads: &Threads, processes: &Processes, from: ThreadSlot, to: ThreadSlot) -> bool {
    let from_process = threads[from].process();
    // A process may always talk to its own threads; `ipc=` limits talking to others. The
    // common case (no `ipc=` list) is answered by the sender's process alone, first: the
    // register fast path asks on every call, and the other process is then never looked up.
    processes[from_process].may_send_to_all() || {
        let to_process = threads[to].process();
        from_process == to_process || processes[from_process].may_send_to(to_process)
    }
}

/// The register fast path's facts, from the kernel's tables: the same answers as
/// `KernelEnv`'s `may_send` and `peek_kernel_message` (VM's held message, PM's exit notice,
/// a signal manager's event notice), without building the environment or a message.
impl vigil_kcore::ipc::RegisterCallFacts for crate::system::Kernel {
    #[inline(always)]
    fn may_send(&self, from: ThreadSlot, to: ThreadSlot) -> bool {
        may_send(&self.threads, &self.processes, from, to)
    }

    #[inline(always)]
    fn kernel_message_waiting(&self, receiver: ThreadSlot) -> bool {
        self.vm.holds_message_for(receiver)
            || self.pm.holds_notice_for(receiver)
            || self.signals.holds_notice_for(receiver)
    }
}

impl crate::system::Kernel {
    /// Splits the kernel into the thread table and the environment its operations need.
    pub fn ipc_parts(&mut self) -> (&mut vigil_kcore::ipc::ThreadTable, KernelEnv<'_>) {
        self.ipc_parts_deferring(false)
    }

    /// `ipc_parts` for the IPC fast path: with every kind of a compact record enabled (the
    /// default mask), the delivery's events are left to the fast path (`deferred_kind`),
    /// which records them with its other ones; else they are recorded as usual.
    #[inline(always)]
    pub fn fast_ipc_parts(&mut self) -> (&mut vigil_kcore::ipc::ThreadTable, KernelEnv<'_>) {
        use vigil_kcore::trace::FAST_IPC_KINDS;
        self.ipc_parts_deferring(crate::trace::mask() & FAST_IPC_KINDS == FAST_IPC_KINDS)
    }

    #[inline(always)]
    fn ipc_parts_deferring(
        &mut self,
        defer_delivery_events: bool,
    ) -> (&mut vigil_kcore::ipc::ThreadTable, KernelEnv<'_>) {
        let env = KernelEnv {
            threads: &mut self.threads,
            processes: &self.processes,
            vm: &mut self.vm,
            pm: &mut self.pm,
            signals: &mut self.signals,
            run_queues: &mut self.run_queues,
            defer_delivery_events,
            deferred_kind: None,
        };
        (&mut self.table, env)
    }
}
