//! Tests of restart tombstones, takeover, release and swap: who waits, who fails with
//! `Restarted`, what the replacement inherits, and every refused argument changing nothing.

use super::super::tests::{buf, ps, table, table_of, ts, TestEnv};
use crate::ipc::{KernelSource, Outcome, ThreadTable};
use crate::slot::ThreadSlot;
use std::boxed::Box;
use std::vec::Vec;
use vigil_abi::async_message::async_flags::{DONE, FAILED, VALID};
use vigil_abi::async_message::AsyncMessage;
use vigil_abi::user_memory::UserPtr;
use vigil_abi::wait::ThreadState;
use vigil_abi::{Endpoint, Error, Message};

const ANY: Endpoint = Endpoint::ANY;
const BLOCKED: Outcome = Outcome::Blocked;

struct World {
    t: Box<ThreadTable>,
    env: TestEnv,
}

impl World {
    fn new() -> World {
        World {
            t: Box::new(ThreadTable::new()),
            env: TestEnv {
                now: 1_000,
                ..TestEnv::default()
            },
        }
    }

    /// A thread of process `process` with a request of kind `kind` in its buffer.
    fn spawn(&mut self, process: u16, kind: u32) -> (ThreadSlot, Endpoint) {
        let endpoint = self.t.create(ps(process)).unwrap();
        let slot = ts(endpoint.slot());
        self.env.put(
            slot,
            buf(slot),
            Message::with_payload(kind, [kind as u64; 6]),
        );
        (slot, endpoint)
    }

    fn recv(&mut self, slot: ThreadSlot) -> Outcome {
        self.t.receive(&mut self.env, slot, ANY, buf(slot))
    }

    fn sendrec(&mut self, slot: ThreadSlot, to: Endpoint) -> Outcome {
        self.t.send_receive(&mut self.env, slot, to, buf(slot))
    }

    fn unblocks(&mut self) -> Vec<(ThreadSlot, Result<u64, Error>)> {
        self.env.take_unblocks()
    }

    /// A marked service thread `(slot, endpoint)` of process 1, and a client in process 2
    /// whose request it has received (the client awaits its reply).
    fn service_with_a_client_in_flight(&mut self) -> [(ThreadSlot, Endpoint); 2] {
        let service = self.spawn(1, 0x10);
        let client = self.spawn(2, 0x20);
        self.t.keep_endpoint(service.0);
        assert_eq!(self.recv(service.0), BLOCKED);
        assert_eq!(self.sendrec(client.0, service.1), BLOCKED);
        assert_eq!(self.unblocks(), [(service.0, Ok(0))]);
        [service, client]
    }
}

#[test]
fn a_marked_thread_leaves_a_tombstone_its_clients_wait_on() {
    let mut w = World::new();
    let [(service, se), (client, _)] = w.service_with_a_client_in_flight();
    let (queued, _) = w.spawn(2, 0x30);
    assert_eq!(
        w.sendrec(queued, se),
        BLOCKED,
        "queued behind the request in flight"
    );
    let (notifier, _) = w.spawn(3, 0x40);
    assert_eq!(w.t.notify(&mut w.env, notifier, se), Ok(0));

    w.t.exit(&mut w.env, service, 139);
    // The request in flight fails with the distinct error; the queued sender stays.
    assert_eq!(w.unblocks(), [(client, Err(Error::Restarted))]);
    assert_eq!(w.t.state(service), ThreadState::Restarting);
    assert_eq!(
        w.t.endpoint(service),
        se,
        "the tombstone keeps the generation"
    );
    assert_eq!(w.t.senders(service).collect::<Vec<_>>(), [queued]);
    assert_eq!(w.t.state(queued), ThreadState::Sending { to: se });
    assert_eq!(
        w.t.pending_notifications(service),
        1,
        "the notification is kept"
    );
    assert_eq!(w.t.tombstone(se), Ok(service));
    assert_eq!(
        w.t.resolve(se),
        Err(Error::DeadEndpoint),
        "not a live thread"
    );
    assert!(w.t.slots_in_use() == 4, "the slot is not freed");
    // New senders queue too; a non-blocking send or a join finds no one.
    assert_eq!(w.sendrec(client, se), BLOCKED);
    assert_eq!(w.t.senders(service).collect::<Vec<_>>(), [queued, client]);
    assert_eq!(
        w.t.send_nonblocking(&mut w.env, notifier, se, buf(notifier)),
        Err(Error::NotReady)
    );
    assert_eq!(
        w.t.join(notifier, se),
        Outcome::Complete(Err(Error::DeadEndpoint))
    );
    // A tombstone belongs to no process: process 1's exit does not see it.
    assert_eq!(w.t.threads_of(ps(1)).count(), 0);
    // Exiting it again is ignored.
    w.t.exit(&mut w.env, service, 1);
    assert_eq!(w.t.state(service), ThreadState::Restarting);
}

#[test]
fn an_unmarked_thread_dies_as_before() {
    let mut w = World::new();
    let (service, se) = w.spawn(1, 0x10);
    let (client, _) = w.spawn(2, 0x20);
    let (queued, _) = w.spawn(2, 0x30);
    assert_eq!(w.recv(service), BLOCKED);
    assert_eq!(w.sendrec(client, se), BLOCKED);
    assert_eq!(w.sendrec(queued, se), BLOCKED);
    w.unblocks();
    w.t.exit(&mut w.env, service, 0);
    let mut got = w.unblocks();
    got.sort_by_key(|&(slot, _)| slot);
    assert_eq!(
        got,
        [
            (client, Err(Error::PartnerDied)),
            (queued, Err(Error::DeadEndpoint))
        ]
    );
    assert_eq!(w.t.state(service), ThreadState::Dead { exit_code: 0 });
    assert_eq!(w.t.tombstone(se), Err(Error::DeadEndpoint));
}

#[test]
fn the_replacement_takes_over_the_queue_and_serves_the_first_sender_at_once() {
    let mut w = World::new();
    let [(service, se), (client, _)] = w.service_with_a_client_in_flight();
    w.t.exit(&mut w.env, service, 139);
    w.unblocks();
    // The client retries the same request on the same endpoint: it waits.
    assert_eq!(w.sendrec(client, se), BLOCKED);
    let (other, _) = w.spawn(3, 0x30);
    assert_eq!(w.t.notify(&mut w.env, other, se), Ok(0));

    let (new, ne) = w.spawn(4, 0x50);
    // Not yet in its receive loop: refused, nothing changed.
    let before = w.t.clone();
    assert_eq!(w.t.take_over(&mut w.env, se, ne), Err(Error::Busy));
    assert!(*w.t == *before);
    assert_eq!(w.recv(new), BLOCKED);

    assert_eq!(w.t.take_over(&mut w.env, se, ne), Ok(()));
    // Its receive ran again at once: the pending notification comes first.
    assert_eq!(w.unblocks(), [(service, Ok(0))]);
    let delivered = w.env.message(service, buf(new));
    assert_eq!(delivered.source, other_endpoint(&w, other));
    assert_eq!(w.t.state(service), ThreadState::Ready);
    assert_eq!(w.t.endpoint(service), se, "the kept endpoint");
    assert_eq!(w.t.process(service), ps(4), "now the replacement's thread");
    assert!(
        w.t.keeps_endpoint(service),
        "still marked for the next restart"
    );
    assert_eq!(w.t.state(new), ThreadState::Free);
    assert_eq!(
        w.t.resolve(ne),
        Err(Error::DeadEndpoint),
        "its old endpoint is gone"
    );
    assert_eq!(w.t.threads_of(ps(4)).collect::<Vec<_>>(), [service]);
    // The next receive takes the retried request; the reply completes the client's call.
    w.t.mark_running(service);
    assert_eq!(
        w.t.receive(&mut w.env, service, ANY, buf(new)),
        Outcome::Complete(Ok(0))
    );
    assert_eq!(w.env.message(service, buf(new)).kind, 0x20);
    assert_eq!(w.t.state(client), ThreadState::AwaitingReply { from: se });
    w.env
        .put(service, buf(new), Message::with_payload(0x21, [7; 6]));
    assert_eq!(
        w.t.send_nonblocking(&mut w.env, service, w.t.endpoint(client), buf(new)),
        Ok(0)
    );
    assert_eq!(w.unblocks(), [(client, Ok(0))]);
    assert_eq!(w.env.message(client, buf(client)).kind, 0x21);
    assert_eq!(w.env.message(client, buf(client)).source, se);
}

fn other_endpoint(w: &World, slot: ThreadSlot) -> Endpoint {
    w.t.endpoint(slot)
}

#[test]
fn a_takeover_with_an_empty_queue_leaves_the_replacement_receiving() {
    let mut w = World::new();
    let [(service, se), _] = w.service_with_a_client_in_flight();
    w.t.exit(&mut w.env, service, 1);
    w.unblocks();
    let (new, ne) = w.spawn(4, 0x50);
    assert_eq!(w.recv(new), BLOCKED);
    assert_eq!(w.t.take_over(&mut w.env, se, ne), Ok(()));
    assert!(w.unblocks().is_empty());
    assert_eq!(w.t.state(service), ThreadState::Receiving { from: ANY });
    // A new request is delivered straight to it.
    let (client, _) = w.spawn(2, 0x60);
    assert_eq!(w.sendrec(client, se), BLOCKED);
    assert_eq!(w.unblocks(), [(service, Ok(0))]);
    assert_eq!(w.env.message(service, buf(new)).kind, 0x60);
}

#[test]
fn the_replacement_dying_again_leaves_the_same_tombstone() {
    let mut w = World::new();
    let [(service, se), (client, _)] = w.service_with_a_client_in_flight();
    w.t.exit(&mut w.env, service, 1);
    w.unblocks();
    let (new, ne) = w.spawn(4, 0x50);
    assert_eq!(w.recv(new), BLOCKED);
    assert_eq!(w.t.take_over(&mut w.env, se, ne), Ok(()));
    assert_eq!(w.sendrec(client, se), BLOCKED);
    assert_eq!(w.unblocks(), [(service, Ok(0))]);
    w.t.exit(&mut w.env, service, 2);
    assert_eq!(w.unblocks(), [(client, Err(Error::Restarted))]);
    assert_eq!(w.t.tombstone(se), Ok(service));
}

#[test]
fn waits_on_the_replacement_follow_it_to_the_kept_endpoint() {
    let mut w = World::new();
    let [(service, se), _] = w.service_with_a_client_in_flight();
    w.t.exit(&mut w.env, service, 1);
    w.unblocks();
    let (new, ne) = w.spawn(4, 0x50);
    // The replacement took a request during its start-up and answers later; it also
    // notified someone who has not received yet.
    let (early, _) = w.spawn(2, 0x70);
    let (watcher, we) = w.spawn(3, 0x71);
    assert_eq!(w.recv(new), BLOCKED);
    assert_eq!(w.sendrec(early, ne), BLOCKED);
    w.unblocks();
    w.t.mark_running(new);
    assert_eq!(w.t.notify(&mut w.env, new, we), Ok(0));
    assert_eq!(w.recv(new), BLOCKED);
    assert_eq!(w.t.take_over(&mut w.env, se, ne), Ok(()));
    assert_eq!(w.t.state(early), ThreadState::AwaitingReply { from: se });
    // The pending notification now comes from the kept endpoint.
    w.t.mark_running(watcher);
    assert_eq!(
        w.t.receive(&mut w.env, watcher, ANY, buf(watcher)),
        Outcome::Complete(Ok(0))
    );
    assert_eq!(w.env.message(watcher, buf(watcher)).source, se);
}

#[test]
fn forged_and_unsafe_takeovers_are_refused_and_change_nothing() {
    let mut w = World::new();
    let [(service, se), (client, ce)] = w.service_with_a_client_in_flight();
    let (new, ne) = w.spawn(4, 0x50);
    assert_eq!(w.recv(new), BLOCKED);
    let cases = [
        // The old instance has not died yet: not a tombstone, not safe.
        (se, ne, Error::Busy),
        (ne, ne, Error::InvalidArgument),
        (Endpoint::ANY, ne, Error::BadEndpoint),
        (Endpoint::new(4000, 1), ne, Error::BadEndpoint),
        (se, Endpoint::NONE, Error::BadEndpoint),
        (
            Endpoint::new(se.slot(), se.generation() + 1),
            ne,
            Error::DeadEndpoint,
        ),
        (Endpoint::new(900, 1), ne, Error::DeadEndpoint),
    ];
    for (tombstone, replacement, error) in cases {
        let before = w.t.clone();
        assert_eq!(
            w.t.take_over(&mut w.env, tombstone, replacement),
            Err(error),
            "{tombstone:?} by {replacement:?}"
        );
        assert!(*w.t == *before);
    }
    w.t.exit(&mut w.env, service, 1);
    w.unblocks();
    // A replacement that is not receiving from ANY (here: sending) is busy; so is one
    // whose receive is from one thread only.
    let (sender, sender_endpoint) = w.spawn(4, 0x51);
    let (partner, _) = w.spawn(5, 0x52);
    assert_eq!(w.sendrec(sender, w.t.endpoint(partner)), BLOCKED);
    let (narrow, narrow_endpoint) = w.spawn(4, 0x53);
    assert_eq!(w.t.receive(&mut w.env, narrow, ce, buf(narrow)), BLOCKED);
    for replacement in [sender_endpoint, narrow_endpoint] {
        let before = w.t.clone();
        assert_eq!(w.t.take_over(&mut w.env, se, replacement), Err(Error::Busy));
        assert!(*w.t == *before);
    }
    // A replacement some thread waits on for a lock it owns is busy.
    let (locker, _) = w.spawn(4, 0x54);
    let word = UserPtr::new(0x40).unwrap();
    assert_eq!(w.t.mutex_wait(locker, word, ne), BLOCKED);
    assert_eq!(w.t.take_over(&mut w.env, se, ne), Err(Error::Busy));
    w.t.exit(&mut w.env, locker, 0);
    assert_eq!(w.t.take_over(&mut w.env, se, ne), Ok(()));
    // The tombstone is gone: a second takeover finds a live thread.
    let (second, second_endpoint) = w.spawn(6, 0x55);
    assert_eq!(w.recv(second), BLOCKED);
    assert_eq!(
        w.t.take_over(&mut w.env, se, second_endpoint),
        Err(Error::Busy)
    );
    let _ = client;
}

#[test]
fn releasing_a_tombstone_fails_its_senders_and_frees_the_slot() {
    let mut w = World::new();
    let [(service, se), (client, ce)] = w.service_with_a_client_in_flight();
    let (async_sender, _) = w.spawn(3, 0x30);
    assert_eq!(
        w.t.release_tombstone(&mut w.env, se),
        Err(Error::InvalidArgument)
    );
    w.t.exit(&mut w.env, service, 1);
    w.unblocks();
    assert_eq!(w.sendrec(client, se), BLOCKED);
    w.env.tables.insert(
        (async_sender, table_of(async_sender)),
        std::vec![AsyncMessage {
            flags: VALID,
            result: 0,
            destination: se,
            message: Message::new(0x31),
        }],
    );
    assert_eq!(
        w.t.send_async(&mut w.env, async_sender, table(async_sender, 1)),
        Ok(0)
    );
    let in_use = w.t.slots_in_use();
    assert_eq!(w.t.release_tombstone(&mut w.env, se), Ok(()));
    assert_eq!(w.unblocks(), [(client, Err(Error::DeadEndpoint))]);
    let entry = w.env.entries(async_sender, table_of(async_sender))[0];
    assert_eq!(entry.flags, VALID | DONE | FAILED);
    assert_eq!(entry.result, Error::DeadEndpoint as u32);
    assert_eq!(w.t.state(service), ThreadState::Free);
    assert_eq!(w.t.slots_in_use(), in_use - 1);
    assert_eq!(
        w.sendrec(client, se),
        Outcome::Complete(Err(Error::DeadEndpoint))
    );
    // Released once; forged endpoints are refused.
    for (endpoint, error) in [
        (se, Error::DeadEndpoint),
        (Endpoint::ANY, Error::BadEndpoint),
        (ce, Error::InvalidArgument),
    ] {
        assert_eq!(w.t.release_tombstone(&mut w.env, endpoint), Err(error));
    }
    // The slot is reused with a new generation: the old endpoint stays dead.
    let (reused, reused_endpoint) = w.spawn(7, 0x70);
    assert_eq!(reused, service);
    assert_ne!(reused_endpoint, se);
    assert!(!w.t.keeps_endpoint(reused), "a new thread is not marked");
}

#[test]
fn two_quiescent_threads_swap_endpoints_and_swap_back() {
    let mut w = World::new();
    let (old, oe) = w.spawn(1, 0x10);
    let (new, ne) = w.spawn(4, 0x50);
    w.t.keep_endpoint(old);
    // A client awaiting the old version's reply, and a notification the old version sent.
    let (client, _) = w.spawn(2, 0x20);
    let (watcher, we) = w.spawn(3, 0x30);
    assert_eq!(w.recv(old), BLOCKED);
    assert_eq!(w.sendrec(client, oe), BLOCKED);
    w.unblocks();
    w.t.mark_running(old);
    assert_eq!(w.t.notify(&mut w.env, old, we), Ok(0));
    // Not both quiescent yet: refused.
    let before = w.t.clone();
    assert_eq!(w.t.swap_endpoints(oe, ne), Err(Error::Busy));
    assert!(*w.t == *before);
    assert_eq!(w.recv(old), BLOCKED);
    assert_eq!(w.recv(new), BLOCKED);
    for (a, b, error) in [
        (oe, oe, Error::InvalidArgument),
        (oe, Endpoint::ANY, Error::BadEndpoint),
        (Endpoint::new(oe.slot(), 9), ne, Error::DeadEndpoint),
    ] {
        assert_eq!(w.t.swap_endpoints(a, b), Err(error));
    }
    assert_eq!(w.t.swap_endpoints(oe, ne), Ok(()));
    // The new version (process 4) serves the old endpoint, keep mark included.
    assert_eq!(w.t.process(old), ps(4));
    assert_eq!(w.t.process(new), ps(1));
    assert!(w.t.keeps_endpoint(old) && !w.t.keeps_endpoint(new));
    // The client's reply will come from the old version, now at the other endpoint.
    assert_eq!(w.t.state(client), ThreadState::AwaitingReply { from: ne });
    w.t.mark_running(watcher);
    assert_eq!(
        w.t.receive(&mut w.env, watcher, ANY, buf(watcher)),
        Outcome::Complete(Ok(0))
    );
    assert_eq!(w.env.message(watcher, buf(watcher)).source, ne);
    // A request to the kept endpoint reaches the new version.
    let (next, _) = w.spawn(2, 0x60);
    assert_eq!(w.sendrec(next, oe), BLOCKED);
    assert_eq!(w.unblocks(), [(old, Ok(0))]);
    assert_eq!(
        w.env.message(old, buf(new)).kind,
        0x60,
        "the new version's buffer"
    );
    // Rollback: both receiving again, swap back.
    w.t.mark_running(old);
    assert_eq!(w.t.receive(&mut w.env, old, ANY, buf(new)), BLOCKED);
    assert_eq!(w.t.swap_endpoints(oe, ne), Ok(()));
    assert_eq!(w.t.process(old), ps(1));
    assert_eq!(w.t.state(client), ThreadState::AwaitingReply { from: oe });
    let _ = KernelSource::Clock;
}

#[test]
fn what_the_replacement_sent_its_own_future_endpoint_fails_as_a_send_to_itself() {
    let mut w = World::new();
    let [(service, se), _] = w.service_with_a_client_in_flight();
    w.t.exit(&mut w.env, service, 1);
    w.unblocks();
    let (new, ne) = w.spawn(4, 0x50);
    // During its start-up the replacement sent the kept endpoint an async message and a
    // notification (both pending at the tombstone).
    w.env.tables.insert(
        (new, table_of(new)),
        std::vec![AsyncMessage {
            flags: VALID,
            result: 0,
            destination: se,
            message: Message::new(0x51),
        }],
    );
    w.t.mark_running(new);
    assert_eq!(w.t.send_async(&mut w.env, new, table(new, 1)), Ok(0));
    assert_eq!(w.t.notify(&mut w.env, new, se), Ok(0));
    assert_eq!(w.t.pending_async_senders(service), 1);
    assert_eq!(w.recv(new), BLOCKED);
    // The kernel moves the thread's memory with it (the test memory is per slot).
    w.env.move_thread_memory(new, service, false);
    assert_eq!(w.t.take_over(&mut w.env, se, ne), Ok(()));
    let entry = w.env.entries(service, table_of(new))[0];
    assert_eq!(entry.flags, VALID | DONE | FAILED);
    assert_eq!(entry.result, Error::SelfTarget as u32);
    assert_eq!(w.t.pending_async_senders(service), 0);
    assert_eq!(
        w.t.pending_notifications(service),
        0,
        "no notification from itself"
    );
    assert!(
        w.unblocks().is_empty(),
        "nothing else waited: it stays receiving"
    );
    assert_eq!(w.t.state(service), ThreadState::Receiving { from: ANY });
}
