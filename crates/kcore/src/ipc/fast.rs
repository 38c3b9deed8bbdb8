//! The IPC fast path: the common round trip (a client's `SendReceive` to a server waiting
//! in `Receive`, the server's `ReplyReceive` back, a `Receive` that finds nothing and
//! blocks) done in one straight line, beside the general state machine of `ipc.rs`.
//!
//! The seL4 manner: every precondition is checked first, and on any doubt the function
//! returns `None` having changed nothing, so the caller runs the slow path instead, which
//! then does the same thing the long way (or fails with the right error). The point of no
//! return is the successful write of the message into the partner's buffer; everything
//! after it cannot fail. The result is the same as the slow path's in every respect — the
//! states, buffers, queues, pending sets and the results the partners get — which the
//! differential property test below checks after every step of random operation sequences.
//!
//! A fast call that wakes a partner does not call `IpcEnvironment::unblock` itself: it
//! returns a [`Handoff`] naming the partner, whose call has finished with `Ok(0)`. The
//! kernel then writes that result and switches to the partner directly when the slow path's
//! scheduler would have picked it (no ready thread as urgent), without the run queues.

use super::{bit_test, kind, matches, IpcEnvironment, ThreadTable, NO_LINK};
use vigil_abi::message::user_may_send;
use vigil_abi::user_memory::UserPtr;
use vigil_abi::wait::ThreadState;
use vigil_abi::{Endpoint, Message};

use crate::slot::ThreadSlot;

/// A fast call finished with the caller blocked and `woken` Ready: `woken`'s own call has
/// completed with `Ok(0)`, and the environment must still be told (`IpcEnvironment::unblock`
/// or the kernel's direct switch).
#[must_use]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handoff {
    pub woken: ThreadSlot,
}

impl Handoff {
    /// Tells `env` the way the slow path does: `unblock(woken, Ok(0))`.
    pub fn unblock(self, env: &mut impl IpcEnvironment) {
        env.unblock(self.woken, Ok(0));
    }
}

/// What the register fast path's checks found (`register_call_partner`,
/// `register_reply_partner`): the partner, and the caller's own endpoint, which they
/// compared with the partner's wait and the commit and the trace record need again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterPartner {
    pub partner: ThreadSlot,
    pub caller: Endpoint,
}

/// The `ipc_fastpath=` kernel command-line option: `on` (the default) or `off` (every IPC
/// call takes the slow path; for tests and the slow-path benchmark).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastPathOption {
    On,
    Off,
}

impl FastPathOption {
    /// Parses the option's value (None: the option is absent → On). A bad value is an
    /// error naming the accepted ones.
    pub fn parse(value: Option<&str>) -> Result<FastPathOption, &'static str> {
        match value {
            None | Some("on") => Ok(FastPathOption::On),
            Some("off") => Ok(FastPathOption::Off),
            Some(_) => Err("ipc_fastpath takes on or off"),
        }
    }
}

/// The two facts outside the thread table the register fast path's checks ask the kernel,
/// each with the answer the slow path's `IpcEnvironment` would give: whether `from` may
/// send to `to` (`IpcEnvironment::may_send`), and whether a kernel message waits for
/// `receiver` (`IpcEnvironment::peek_kernel_message` is `Some`). Only reads, so the kernel
/// answers them from its own tables without building an environment.
pub trait RegisterCallFacts {
    fn may_send(&self, from: ThreadSlot, to: ThreadSlot) -> bool;
    fn kernel_message_waiting(&self, receiver: ThreadSlot) -> bool;
}

impl ThreadTable {
    /// `send_receive` to a thread already receiving from the caller or ANY: delivers the
    /// message and leaves the caller awaiting the reply. `None` (nothing changed) unless the
    /// destination is a live thread the caller may send to, it is `Receiving` from ANY or
    /// the caller, no async reply from it is pending for the caller, the caller's buffer is
    /// readable and writable with a message kind users may send, and the destination's
    /// buffer takes the message.
    pub fn fast_send_receive(
        &mut self,
        env: &mut impl IpcEnvironment,
        caller: ThreadSlot,
        destination: Endpoint,
        buffer: UserPtr<Message>,
    ) -> Option<Handoff> {
        let d = self.resolve(destination).ok()?;
        if d == caller || !env.may_send(caller, d) {
            return None;
        }
        let me = self.endpoint(caller);
        let target = &self.slots[d.index()];
        if target.kind != kind::RECEIVING || !matches(Endpoint(target.arg0), me) {
            return None;
        }
        // The slow path would look for an async reply from `d` before blocking.
        if bit_test(&self.slots[caller.index()].pending_async, d) {
            return None;
        }
        let mut message = env.read_message_writable(caller, buffer).ok()?;
        if !user_may_send(message.kind) {
            return None;
        }
        message.source = me;
        let target_buffer = self.slots[d.index()].buffer;
        env.write_message(d, target_buffer, &message).ok()?;
        // Point of no return: nothing below can fail.
        self.set_woken(d);
        let slot = &mut self.slots[caller.index()];
        slot.set_state(ThreadState::AwaitingReply { from: destination });
        slot.buffer = buffer;
        slot.flags = 0;
        Some(Handoff { woken: d })
    }

    /// `receive` that finds nothing and blocks. `None` (nothing changed) unless `from` is
    /// ANY or a live thread other than the caller, nothing is pending for the caller
    /// (notifications, clock, kernel messages, queued senders, async messages) and its
    /// buffer is writable. Returns whether the caller is now blocked (`Some(())`).
    pub fn fast_receive(
        &mut self,
        env: &mut impl IpcEnvironment,
        caller: ThreadSlot,
        from: Endpoint,
        buffer: UserPtr<Message>,
    ) -> Option<()> {
        if !self.nothing_to_receive(env, caller, from) {
            return None;
        }
        env.check_message_buffer(caller, buffer).ok()?;
        self.block_receiving(caller, from, buffer);
        Some(())
    }

    /// `reply_receive` when the reply goes to a thread awaiting it and nothing is there to
    /// receive: delivers the reply and blocks the caller receiving from `from`. `None`
    /// (nothing changed) unless the destination is a live thread the caller may send to,
    /// `AwaitingReply` from the caller, the receive would block (as for `fast_receive`), the
    /// caller's buffer is readable and writable with a kind users may send, and the
    /// destination's buffer takes the message.
    pub fn fast_reply_receive(
        &mut self,
        env: &mut impl IpcEnvironment,
        caller: ThreadSlot,
        destination: Endpoint,
        from: Endpoint,
        buffer: UserPtr<Message>,
    ) -> Option<Handoff> {
        let d = self.resolve(destination).ok()?;
        if d == caller || !env.may_send(caller, d) {
            return None;
        }
        let me = self.endpoint(caller);
        let target = &self.slots[d.index()];
        if target.kind != kind::AWAITING_REPLY || Endpoint(target.arg0) != me {
            return None;
        }
        if !self.nothing_to_receive(env, caller, from) {
            return None;
        }
        let mut message = env.read_message_writable(caller, buffer).ok()?;
        if !user_may_send(message.kind) {
            return None;
        }
        message.source = me;
        let target_buffer = self.slots[d.index()].buffer;
        env.write_message(d, target_buffer, &message).ok()?;
        // Point of no return: nothing below can fail.
        self.set_woken(d);
        self.block_receiving(caller, from, buffer);
        Some(Handoff { woken: d })
    }

    /// The register fast path's `send_receive` checks (`RegisterCall::check`'s for a call):
    /// the partner `destination` names if it is a live thread the caller may send to,
    /// `Receiving` from ANY or the caller, with no async reply from it pending for the
    /// caller. Changes nothing; the message itself (its kind, the partner's call taking
    /// register messages) is the kernel's to check, and `commit_register_call` does it.
    ///
    /// `me` is the caller's endpoint (`endpoint(caller)`), which the kernel has at hand
    /// in its own copy, one load where the table would rebuild it from the generation.
    #[inline(always)]
    pub fn register_call_partner(
        &self,
        facts: &impl RegisterCallFacts,
        caller: ThreadSlot,
        me: Endpoint,
        destination: Endpoint,
    ) -> Option<RegisterPartner> {
        debug_assert_eq!(me, self.endpoint(caller));
        let (d, target) = self.resolve_slot(destination)?;
        // No test of `d == caller`: the caller is on the CPU (Running; in the tests' world
        // possibly Ready), never in the wait the partner must be in, so naming itself
        // fails the state test and takes the slow path's SelfTarget.
        debug_assert!(d != caller || !matches!(target.kind, kind::RECEIVING));
        if target.kind != kind::RECEIVING
            || !matches(Endpoint(target.arg0), me)
            || self.slots[caller.index()].async_pending_from(d)
            || !facts.may_send(caller, d)
        {
            return None;
        }
        Some(RegisterPartner {
            partner: d,
            caller: me,
        })
    }

    /// The register fast path's `reply_receive` checks: the partner `destination` names if
    /// it is a live thread the caller may send to, `AwaitingReply` from the caller, and the
    /// caller's receive from `from` would block at once (`nothing_to_receive`). Changes
    /// nothing. `me` as for `register_call_partner`.
    #[inline(always)]
    pub fn register_reply_partner(
        &self,
        facts: &impl RegisterCallFacts,
        caller: ThreadSlot,
        me: Endpoint,
        destination: Endpoint,
        from: Endpoint,
    ) -> Option<RegisterPartner> {
        debug_assert_eq!(me, self.endpoint(caller));
        let (d, target) = self.resolve_slot(destination)?;
        // No test of `d == caller`, as in `register_call_partner`.
        debug_assert!(d != caller || target.kind != kind::AWAITING_REPLY);
        if target.kind != kind::AWAITING_REPLY || Endpoint(target.arg0) != me {
            return None;
        }
        // `nothing_to_receive`, with `from` tested once: a server's receive from ANY also
        // asks the kernel's messages, a receive from a thread asks that it is one.
        let receive_blocks = if from == Endpoint::ANY {
            self.nothing_pending_for(caller) && !facts.kernel_message_waiting(caller)
        } else {
            self.is_other_live_thread(caller, from) && self.nothing_pending_for(caller)
        };
        if !receive_blocks || !facts.may_send(caller, d) {
            return None;
        }
        Some(RegisterPartner {
            partner: d,
            caller: me,
        })
    }

    /// The state `send_receive` (`register_call_partner`'s case, `waits_for` = None) or
    /// `reply_receive` (`waits_for` = Some(from)) leaves after delivering a register
    /// message, with the CPU going to the partner at once: `partner`'s call finished and it
    /// Running (as `set_woken` then the scheduler's `mark_running` leave it), the caller
    /// `AwaitingReply` from `destination` or `Receiving` from `from`, neither with a
    /// buffer. Only after the checks: nothing here can fail.
    #[inline(always)]
    pub fn commit_register_call(
        &mut self,
        caller: ThreadSlot,
        partner: ThreadSlot,
        destination: Endpoint,
        waits_for: Option<Endpoint>,
    ) {
        // The stored codes written directly, as `Slot::set_state` stores these states. Only
        // what differs is written: none of the four states has an argument (`arg1` is 0
        // before and after), a thread waiting in one has no mutex turn (`wait_seq` 0), and
        // the Running caller has no buffer — invariants the table's tests check after every
        // step of their random sequences (`check_invariants`, for Ready threads as well).
        let woken = &mut self.slots[partner.index()];
        debug_assert!(
            woken.queue_next == NO_LINK,
            "woken thread {partner} still queued"
        );
        debug_assert_eq!((woken.arg1, woken.wait_seq), (0, 0));
        // A register call waits with no buffer (its message is in its registers), so
        // `buffer` is already what Running needs.
        debug_assert_eq!(woken.buffer, UserPtr::NULL, "a register call kept a buffer");
        woken.kind = kind::RUNNING;
        woken.arg0 = 0;
        woken.flags = 0;
        let (code, target) = match waits_for {
            None => (kind::AWAITING_REPLY, destination),
            Some(from) => (kind::RECEIVING, from),
        };
        let slot = &mut self.slots[caller.index()];
        // Running in the kernel; the tests' world may leave its caller Ready (the same holds).
        debug_assert!(matches!(slot.kind, kind::RUNNING | kind::READY));
        debug_assert_eq!((slot.arg1, slot.buffer), (0, UserPtr::NULL));
        slot.kind = code;
        slot.arg0 = target.0;
        slot.flags = 0;
        debug_assert_eq!(
            slot.state(),
            match waits_for {
                None => ThreadState::AwaitingReply { from: destination },
                Some(from) => ThreadState::Receiving { from },
            }
        );
    }

    /// Whether `receive(from)` by `caller` would block at once: `from` is ANY or a live
    /// thread other than the caller (kernel sources take the slow path), and nothing is
    /// pending for the caller at all.
    fn nothing_to_receive(
        &self,
        env: &mut impl IpcEnvironment,
        caller: ThreadSlot,
        from: Endpoint,
    ) -> bool {
        // Kernel messages are only taken by a receive from ANY or KERNEL.
        self.nothing_pending(caller, from)
            && (from != Endpoint::ANY || env.peek_kernel_message(caller).is_none())
    }

    /// `nothing_to_receive` but for kernel messages (the environment's to tell): `from` is
    /// ANY or a live thread other than the caller, and nothing is pending in the table
    /// (`nothing_pending_for`).
    #[inline(always)]
    fn nothing_pending(&self, caller: ThreadSlot, from: Endpoint) -> bool {
        (from == Endpoint::ANY || self.is_other_live_thread(caller, from))
            && self.nothing_pending_for(caller)
    }

    /// Whether `from` names a live thread other than `caller` (a receive source the fast
    /// paths take; kernel sources and dead ones take the slow path).
    #[inline(always)]
    fn is_other_live_thread(&self, caller: ThreadSlot, from: Endpoint) -> bool {
        matches!(self.resolve(from), Ok(source) if source != caller)
    }

    /// Whether nothing waits in the table for `caller` to receive: no clock notification,
    /// queued sender, notification or async message: two tests, the clock count with the
    /// queue's links as one word and the two bitmaps' summary words as one.
    #[inline(always)]
    fn nothing_pending_for(&self, caller: ThreadSlot) -> bool {
        let slot = &self.slots[caller.index()];
        debug_assert_eq!(slot.queue_head == NO_LINK, slot.queue_tail == NO_LINK);
        slot.nothing_queued() && slot.nothing_signalled()
    }

    /// `d`'s call has finished: Ready, as `wake` leaves it (the environment is told by the
    /// `Handoff`).
    fn set_woken(&mut self, d: ThreadSlot) {
        let s = &mut self.slots[d.index()];
        debug_assert!(s.queue_next == NO_LINK, "woken thread {d} still queued");
        s.set_state(ThreadState::Ready);
        s.buffer = UserPtr::NULL;
        s.flags = 0;
        s.wait_seq = 0;
    }

    /// The caller blocks `Receiving { from }` on `buffer`, as `receive`'s last step.
    fn block_receiving(&mut self, caller: ThreadSlot, from: Endpoint, buffer: UserPtr<Message>) {
        let slot = &mut self.slots[caller.index()];
        slot.set_state(ThreadState::Receiving { from });
        slot.buffer = buffer;
        slot.flags = 0;
    }
}

#[cfg(test)]
mod tests;
