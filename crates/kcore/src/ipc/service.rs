//! Service endpoints that outlive their instance (issue 10 item 2, MINIX's `sys_update`
//! slot swap made one-sided): the restart tombstone a supervised service's main thread
//! leaves when it dies, the takeover of that tombstone by the replacement's main thread,
//! and its release when RS gives the service up.
//!
//! - `keep_endpoint` marks a live thread (RS marks each service's main thread). When a
//!   marked thread exits (`ThreadTable::exit`), its slot becomes a tombstone
//!   (`ThreadState::Restarting`) with the same generation, so its endpoint stays valid:
//!   threads queued sending to it stay queued, and new senders queue behind them
//!   (`check_destination` accepts a tombstone; nothing is delivered to it); notifications
//!   and async messages pending for it stay pending; threads awaiting its reply or
//!   receiving from it fail with `Restarted` (their request may or may not have been
//!   acted on: the retry is the client's, `ipc::call_service`). A tombstone belongs to no
//!   process (`threads_of` skips it) and cannot be joined.
//! - `take_over` moves the replacement's main thread, blocked in `Receive` from ANY with
//!   nothing in progress, into the tombstone's slot: it keeps the tombstone's generation,
//!   queue, pending notifications and async messages and the keep mark; its own slot is
//!   freed, so its old endpoint is dead. References to the old endpoint (pending bits,
//!   threads awaiting its reply or receiving from it) follow it to the kept endpoint, and
//!   the receive it was blocked in is run again at once, so the first queued sender is
//!   delivered without waiting for another system call. What it had sent the tombstone
//!   itself is dropped (a notification) or fails with `SelfTarget` (an async entry).
//! - `release_tombstone` ends a tombstone: its queued senders fail with `DeadEndpoint`,
//!   async messages pending for it fail at their senders, and its slot is freed.
//! - `swap_endpoints` exchanges the slots of two live threads, both blocked in `Receive` from
//!   ANY with nothing in progress (live update: the new version takes the old one's
//!   endpoint and the old one is left with the new one's, to swap back for a rollback).
//!
//! The kernel moves its own per-slot state (registers, FPU, timers, the process's main
//! thread) around these calls (`kernel/src/kcall/service.rs`); here is only the IPC half.

use super::{
    bit_clear, bit_set, bit_test, kind, slot_of, IpcEnvironment, Outcome, Slot, ThreadTable,
};
use crate::slot::ThreadSlot;
use vigil_abi::user_memory::UserPtr;
use vigil_abi::wait::ThreadState;
use vigil_abi::{Endpoint, Error};

impl ThreadTable {
    /// Marks live thread `slot` to keep its endpoint when it exits (idempotent).
    pub fn keep_endpoint(&mut self, slot: ThreadSlot) {
        let s = &mut self.slots[slot.index()];
        debug_assert!(s.is_live(), "keep_endpoint of {:?}", s.state());
        if s.is_live() {
            s.keep_endpoint = 1;
        }
    }

    /// Whether `slot` is marked to keep its endpoint (a tombstone always is).
    pub fn keeps_endpoint(&self, slot: ThreadSlot) -> bool {
        self.slots[slot.index()].keep_endpoint != 0
    }

    /// The slot of restart tombstone `endpoint`: `BadEndpoint` for a special endpoint or a
    /// slot outside the table, `DeadEndpoint` for anything but a tombstone of that
    /// generation.
    pub fn tombstone(&self, endpoint: Endpoint) -> Result<ThreadSlot, Error> {
        let index = slot_of(endpoint).ok_or(Error::BadEndpoint)?;
        let slot = &self.slots[index.index()];
        if slot.kind != kind::RESTARTING || slot.generation != endpoint.generation() {
            return Err(Error::DeadEndpoint);
        }
        Ok(index)
    }

    /// `exit` of a marked thread, after its waits are undone: everything but what its
    /// replacement inherits is cleared and the slot becomes a tombstone.
    pub(super) fn make_tombstone(&mut self, slot: ThreadSlot) {
        let s = &mut self.slots[slot.index()];
        let kept = Slot {
            generation: s.generation,
            process: s.process,
            queue_head: s.queue_head,
            queue_tail: s.queue_tail,
            pending_notify: s.pending_notify,
            pending_async: s.pending_async,
            keep_endpoint: 1,
            ..Slot::EMPTY
        };
        *s = kept;
        s.set_state(ThreadState::Restarting);
    }

    /// Whether live thread `slot` is in the safe state for a takeover or a swap: blocked
    /// in `Receive` from ANY with nothing for it anywhere (no queued sender, no pending
    /// notification or async message — a receive from ANY would have taken them — and no
    /// thread waiting on a lock it owns).
    fn is_quiescent(&self, slot: ThreadSlot) -> bool {
        let s = &self.slots[slot.index()];
        let endpoint = s.endpoint(slot);
        s.state()
            == (ThreadState::Receiving {
                from: Endpoint::ANY,
            })
            && s.queue_head == super::NO_LINK
            && s.pending_notify.is_empty()
            && s.pending_async.is_empty()
            && s.clock_pending == 0
            && !self
                .slots
                .iter()
                .any(|other| other.kind == kind::MUTEX && other.arg0 == endpoint.0)
    }

    /// The checks of `take_over`, changing nothing: the (tombstone, replacement) slots.
    /// `InvalidArgument` for the same endpoint twice; the replacement's errors as
    /// `resolve`'s; for the tombstone `BadEndpoint`, `DeadEndpoint` (free, dead, stale)
    /// or `Busy` (still live: not dead yet); `Busy` if the replacement is not quiescent.
    pub fn check_take_over(
        &self,
        tombstone: Endpoint,
        replacement: Endpoint,
    ) -> Result<(ThreadSlot, ThreadSlot), Error> {
        if tombstone == replacement {
            return Err(Error::InvalidArgument);
        }
        let new = self.resolve(replacement)?;
        let old = match self.tombstone(tombstone) {
            Ok(old) => old,
            Err(Error::DeadEndpoint) if self.resolve(tombstone).is_ok() => return Err(Error::Busy),
            Err(error) => return Err(error),
        };
        if !self.is_quiescent(new) {
            return Err(Error::Busy);
        }
        Ok((old, new))
    }

    /// The replacement's thread takes over the tombstone's slot and endpoint (see the
    /// module comment); errors as `check_take_over`, nothing changed. The kernel must have
    /// moved its own per-slot state of the replacement to the tombstone's slot first: the
    /// resumed receive reads and writes the message buffer through the tombstone's slot.
    pub fn take_over(
        &mut self,
        env: &mut impl IpcEnvironment,
        tombstone: Endpoint,
        replacement: Endpoint,
    ) -> Result<(), Error> {
        let (old, new) = self.check_take_over(tombstone, replacement)?;
        {
            let n = &self.slots[new.index()];
            let (process, buffer, async_table) = (n.process, n.buffer, n.async_table);
            let o = &mut self.slots[old.index()];
            o.process = process;
            o.buffer = buffer;
            o.async_table = async_table;
            o.flags = 0;
            o.keep_endpoint = 1;
            o.set_state(ThreadState::Receiving {
                from: Endpoint::ANY,
            });
        }
        // What the replacement itself sent to the tombstone would now be to itself: its
        // async entries fail as a send to oneself does (`retarget` drops the bits).
        if bit_test(&self.slots[old.index()].pending_async, new) {
            self.fail_async_entries_to(env, old, tombstone, Error::SelfTarget);
        }
        self.retarget(new, old, replacement, tombstone);
        // Free the replacement's own slot: its endpoint is dead from now on.
        let n = &mut self.slots[new.index()];
        let generation = n.generation;
        *n = Slot::EMPTY;
        n.generation = generation;
        self.in_use -= 1;
        self.resume_receive(env, old);
        Ok(())
    }

    /// The checks of `swap_endpoints`, changing nothing: `InvalidArgument` for the same
    /// endpoint twice, errors as `resolve`'s, `Busy` unless both are quiescent.
    pub fn check_swap(&self, a: Endpoint, b: Endpoint) -> Result<(ThreadSlot, ThreadSlot), Error> {
        if a == b {
            return Err(Error::InvalidArgument);
        }
        let (first, second) = (self.resolve(a)?, self.resolve(b)?);
        if !self.is_quiescent(first) || !self.is_quiescent(second) {
            return Err(Error::Busy);
        }
        Ok((first, second))
    }

    /// Two live threads exchange slots and so endpoints (live update): the thread at `a`
    /// is at `b` afterwards and the other way round, each with its own process, buffer and
    /// async table. A slot's generation and keep mark stay with the slot: the endpoint RS
    /// supervises stays marked whoever serves it. Both are quiescent, so no queue or
    /// pending message is for either; what follows the threads are the notifications and
    /// async messages they sent that are still pending elsewhere and the waits of other
    /// threads on them (a client still awaiting the old version's reply gets it from the
    /// old version at its new endpoint). Errors as `check_swap`, nothing changed. The
    /// kernel swaps its own per-slot state as well.
    pub fn swap_endpoints(&mut self, a: Endpoint, b: Endpoint) -> Result<(), Error> {
        let (first, second) = self.check_swap(a, b)?;
        let take = |s: &Slot| (s.process, s.buffer, s.async_table);
        let (first_fields, second_fields) = (
            take(&self.slots[first.index()]),
            take(&self.slots[second.index()]),
        );
        for (slot, (process, buffer, async_table)) in
            [(first, second_fields), (second, first_fields)]
        {
            let s = &mut self.slots[slot.index()];
            s.process = process;
            s.buffer = buffer;
            s.async_table = async_table;
        }
        self.swap_references(first, second, a, b);
        Ok(())
    }

    /// RS gives the service of tombstone `endpoint` up: its senders fail with
    /// `DeadEndpoint`, async messages pending for it fail at their senders, and the slot
    /// is freed. `InvalidArgument` for a live thread; otherwise errors as `tombstone`.
    pub fn release_tombstone(
        &mut self,
        env: &mut impl IpcEnvironment,
        endpoint: Endpoint,
    ) -> Result<(), Error> {
        if self.resolve(endpoint).is_ok() {
            return Err(Error::InvalidArgument);
        }
        let slot = self.tombstone(endpoint)?;
        while let Some(sender) = self.queue_pop(slot) {
            self.wake(env, sender, Err(Error::DeadEndpoint));
        }
        let pending_async = self.slots[slot.index()].pending_async;
        let mut next = 0;
        while let Some(sender) = super::bit_next(&pending_async, next) {
            next = sender.index() + 1;
            self.fail_async_entries_to(env, sender, endpoint, Error::DeadEndpoint);
        }
        let s = &mut self.slots[slot.index()];
        let generation = s.generation;
        *s = Slot::EMPTY;
        s.generation = generation;
        self.in_use -= 1;
        Ok(())
    }

    /// What named the thread at `from` (endpoint `from_endpoint`) names it at `to`
    /// (`to_endpoint`) now: the pending notification and async bits it has at other
    /// threads, and the waits of other threads on it.
    fn retarget(
        &mut self,
        from: ThreadSlot,
        to: ThreadSlot,
        from_endpoint: Endpoint,
        to_endpoint: Endpoint,
    ) {
        for other in ThreadSlot::all() {
            let o = &mut self.slots[other.index()];
            for map in [&mut o.pending_notify, &mut o.pending_async] {
                if bit_test(map, from) {
                    bit_clear(map, from);
                    // A thread never has a message pending from itself.
                    if other != to {
                        bit_set(map, to);
                    }
                }
            }
            if o.is_live() {
                o.rename_partner(from_endpoint, to_endpoint);
            }
        }
    }

    /// `retarget` both ways at once, for a swap.
    fn swap_references(&mut self, first: ThreadSlot, second: ThreadSlot, a: Endpoint, b: Endpoint) {
        for other in ThreadSlot::all() {
            let o = &mut self.slots[other.index()];
            for map in [&mut o.pending_notify, &mut o.pending_async] {
                let (has_first, has_second) = (bit_test(map, first), bit_test(map, second));
                if has_first != has_second {
                    if has_first {
                        bit_clear(map, first);
                        bit_set(map, second);
                    } else {
                        bit_clear(map, second);
                        bit_set(map, first);
                    }
                }
            }
            if o.is_live() && other != first && other != second && !o.rename_partner(a, b) {
                o.rename_partner(b, a);
            }
        }
    }

    /// The receive the thread at `slot` is blocked in runs again (after a takeover gave it
    /// a queue): if something is waiting it is delivered and the thread unblocked.
    fn resume_receive(&mut self, env: &mut impl IpcEnvironment, slot: ThreadSlot) {
        let s = &mut self.slots[slot.index()];
        let ThreadState::Receiving { from } = s.state() else {
            return;
        };
        let buffer = s.buffer;
        s.set_state(ThreadState::Ready);
        match self.receive(env, slot, from, buffer) {
            Outcome::Blocked => {}
            Outcome::Complete(result) => {
                let s = &mut self.slots[slot.index()];
                s.buffer = UserPtr::NULL;
                s.flags = 0;
                env.unblock(slot, result);
            }
        }
    }
}

impl Slot {
    /// A wait of this thread on `from` (receiving from it, awaiting its reply, joining it,
    /// waiting for its trace stop) now names `to`; whether there was one. A sender's
    /// `Sending { to }` is not renamed: a quiescent thread has no queue.
    fn rename_partner(&mut self, from: Endpoint, to: Endpoint) -> bool {
        let renamed = match self.state() {
            ThreadState::Receiving { from: f } if f == from => ThreadState::Receiving { from: to },
            ThreadState::AwaitingReply { from: f } if f == from => {
                ThreadState::AwaitingReply { from: to }
            }
            ThreadState::Joining { thread } if thread == from => {
                ThreadState::Joining { thread: to }
            }
            ThreadState::WaitingForTracee { tracee, pid } if tracee == from => {
                ThreadState::WaitingForTracee { tracee: to, pid }
            }
            _ => return false,
        };
        self.set_state(renamed);
        true
    }
}

#[cfg(test)]
mod tests;
