//! The register-message IPC fast path: a `SendReceiveRegisters` to a thread waiting in a
//! register receive (`ReplyReceiveRegisters`), or a `ReplyReceiveRegisters` to a thread
//! awaiting its reply in `SendReceiveRegisters`, done in one straight line — the checks,
//! the state, four registers copied, the counters, one compact trace record — before the
//! CPU goes straight to the partner (`sched::enter_partner`, from the stub's own entry for
//! these calls, `entry::register_call_from_user`). The call and the reply each get their
//! own copy of the line (`fast_register_exchange::<IS_CALL>`), so what differs between
//! them is a constant in each.
//!
//! Every precondition is checked before anything changes: the partner is named by a live
//! endpoint the caller may send to and waits for exactly this (`kcore::ipc::fast`'s
//! `register_call_partner` / `register_reply_partner`), its own call takes register
//! messages, the message's kind is one users may send, the reserved register is 0, nothing
//! must be received first, and the scheduler would pick the partner next (the entry's gate
//! byte: nothing traced, no signal or stop checks, `TraceLink::register_fast_path_open`;
//! then `runs_next_if_queued`: nothing queued as urgent). On any doubt it returns `None`
//! having changed nothing, and the
//! call takes the general fast path (`Kernel::fast_ipc_call`) or the slow path, which give
//! the same outcome the long way or the right error. Everything after the checks cannot
//! fail. The result is the state machine's: the same states, results, counters and events.

use crate::ipc::is_register_message_call;
use crate::system::Kernel;
use crate::trace::FastCallRecord;
use vigil_abi::introspect::state_code;
use vigil_abi::message::user_may_send;
use vigil_abi::syscall::Syscall;
use vigil_abi::trace::EventKind;
use vigil_abi::Endpoint;
use vigil_kcore::slot::ThreadSlot;
use vigil_kcore::trace::FastIpc;

impl Kernel {
    /// Runs `slot`'s register call `NUMBER` (`SendReceiveRegisters` or
    /// `ReplyReceiveRegisters`) on the register fast path if every precondition holds:
    /// returns the partner the CPU must go to now (already Running, its `ContextSwitch`
    /// recorded with the call's other events) and the TSC value read at the point of no
    /// return, which timestamps the events and ends the caller's CPU time
    /// (`sched::enter_partner`). `None`: nothing changed (nor was anything recorded).
    #[inline(always)]
    pub fn fast_register_call<const NUMBER: u64>(
        &mut self,
        slot: ThreadSlot,
    ) -> Option<(ThreadSlot, u64)> {
        // One straight line per call, so each knows its caller's state as a constant.
        if NUMBER == Syscall::SendReceiveRegisters as u64 {
            self.fast_register_exchange::<true>(slot, NUMBER)
        } else {
            debug_assert_eq!(NUMBER, Syscall::ReplyReceiveRegisters as u64);
            self.fast_register_exchange::<false>(slot, NUMBER)
        }
    }

    /// `fast_register_call` for a `SendReceiveRegisters` (`IS_CALL`) or a
    /// `ReplyReceiveRegisters`.
    #[inline(always)]
    fn fast_register_exchange<const IS_CALL: bool>(
        &mut self,
        slot: ThreadSlot,
        number: u64,
    ) -> Option<(ThreadSlot, u64)> {
        let context = self.threads[slot].context();
        let destination = Endpoint(context.rdi);
        let second = context.rsi;
        let header = context.rdx;
        // The header's low half is the message kind (`RegisterMessage`).
        if !user_may_send(header as u32) {
            return None;
        }
        // The entry tested the gate: the fast paths may run and no scheduling checks are
        // due, so `direct_switch_allowed` is `runs_next_if_queued` here.
        debug_assert!(self.trace.register_fast_path_open() && !self.signals.scheduling_checks());
        let is_call = IS_CALL;
        // The thread's copy of its endpoint (equal to the table's, which the table asserts).
        let caller_endpoint = self.threads[slot].endpoint();
        // The table's checks, with the two facts outside it read straight from the kernel's
        // tables (`RegisterCallFacts for Kernel`, no environment built).
        let found = if is_call {
            // `Reserved`: a nonzero RSI is the slow path's InvalidArgument.
            if second != 0 {
                return None;
            }
            self.table
                .register_call_partner(self, slot, caller_endpoint, destination)?
        } else {
            let from = Endpoint(second);
            self.table
                .register_reply_partner(self, slot, caller_endpoint, destination, from)?
        };
        let (partner, caller) = (found.partner, found.caller);
        if !is_register_message_call(self.threads[partner].context().rax)
            || !self.runs_next_if_queued(partner)
        {
            return None;
        }
        // Point of no return: nothing below can fail.
        let now = crate::arch::cpu::rdtsc();
        let (waits_for, state_code, state_target) = if is_call {
            (None, state_code::AWAITING_REPLY, destination)
        } else {
            let from = Endpoint(second);
            (Some(from), state_code::RECEIVING, from)
        };
        self.table
            .commit_register_call(slot, partner, destination, waits_for);
        // The destination resolved to the partner, so it is the partner's endpoint.
        let partner_endpoint = destination;
        debug_assert_eq!(partner_endpoint, self.table.endpoint(partner));
        // The payload read only now: held across the checks, the words were spilled.
        let from = self.threads[slot].context();
        let message = [header, from.r10, from.r8, from.r9];
        let to = self.threads[partner].context_mut();
        // Its call finished with 0, the message in its registers, the sender in RDI.
        to.rax = 0;
        to.rdi = caller.0;
        [to.rdx, to.r10, to.r8, to.r9] = message;
        self.threads[partner].counters_mut().messages_received += 1;
        self.threads[slot].counters_mut().messages_sent += 1;
        record_fast_call(
            number,
            now,
            FastIpc {
                caller: caller.0,
                partner: partner_endpoint.0,
                header,
                state_code,
                state_target: state_target.0,
            },
        );
        Some((partner, now))
    }
}

/// Records the events of a register fast call (`number`, what it did in `call`, at TSC
/// value `now`) that the mask enables, in the slow path's order: its `Syscall` event, then
/// the other five — as one compact record when all are enabled (the default mask), else
/// each enabled one on its own; with none enabled, nothing is built.
#[inline(always)]
fn record_fast_call(number: u64, now: u64, call: FastIpc) {
    // The default mask in one test (`trace::fast_call_record`, one byte kept with the mask),
    // tracing off in one more; every other mask is the cold case.
    let record = crate::trace::fast_call_record();
    if record == FastCallRecord::Compact {
        crate::trace::emit_fast_ipc(now, None, &call);
    } else if record == FastCallRecord::EachEnabled {
        let enabled = crate::trace::mask() & FastCallRecord::SIX_KINDS;
        // By value: the record is built in memory only on this (cold) way.
        record_fast_call_other_mask(enabled, number, now, call);
    }
}

/// `record_fast_call` with a mask other than the default or none (`enabled`: its bits of
/// the six kinds).
#[cold]
#[inline(never)]
fn record_fast_call_other_mask(enabled: u64, number: u64, now: u64, call: FastIpc) {
    // RDI, the first argument, was the partner's endpoint (it resolved to the partner).
    let syscall = (
        EventKind::Syscall,
        Endpoint(call.caller),
        [number, call.partner, 0],
    );
    if enabled == FastCallRecord::SIX_KINDS {
        crate::trace::emit_fast_ipc(now, Some(syscall), &call);
    } else {
        let [a, b, c, d, e] = call
            .events()
            .map(|(kind, thread, args)| (kind, Endpoint(thread), args));
        crate::trace::emit_together([syscall, a, b, c, d, e]);
    }
}
