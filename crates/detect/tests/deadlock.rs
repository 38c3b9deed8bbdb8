//! Wait-for graphs and deadlock alerts on synthetic snapshots.

mod support;

use support::*;
use vigil_abi::endpoint::Endpoint;
use vigil_abi::wait::ThreadState;
use vigil_detect::{
    find_cycles, thread_label, wait_for_graph, AlertKind, Detector, DetectorConfig, EdgeKind,
    WaitEdge,
};
use vigil_wire::Snapshot;

fn edge(from: Endpoint, to: Endpoint, kind: EdgeKind) -> WaitEdge {
    WaitEdge {
        from: from.0,
        to: to.0,
        kind,
    }
}

fn deadlocks(snapshot: &Snapshot) -> Vec<(Vec<WaitEdge>, String)> {
    Detector::new(DetectorConfig::default())
        .observe(snapshot)
        .into_iter()
        .filter_map(|alert| match alert.kind {
            AlertKind::Deadlock { cycle } => Some((cycle, alert.message)),
            _ => None,
        })
        .collect()
}

#[test]
fn two_thread_ipc_deadlock() {
    // client#1 called server#2, which in turn sends to client#1: neither can go on.
    let snapshot = SnapshotBuilder::at(SECOND)
        .process(1, "client")
        .process(2, "server")
        .thread(ep(1), 1, awaiting_reply(ep(2)))
        .thread(ep(2), 2, sending(ep(1)))
        .build();
    let found = deadlocks(&snapshot);
    assert_eq!(
        found,
        vec![(
            vec![
                edge(ep(1), ep(2), EdgeKind::AwaitReply),
                edge(ep(2), ep(1), EdgeKind::Send),
            ],
            "deadlock: client#1 → awaiting reply from server#2 → sending to client#1".into()
        )]
    );
}

#[test]
fn three_thread_ipc_deadlock() {
    let snapshot = SnapshotBuilder::at(SECOND)
        .process(1, "a")
        .process(2, "b")
        .process(3, "c")
        .thread(ep(7), 1, sending(ep(5)))
        .thread(ep(5), 2, awaiting_reply(ep(9)))
        .thread(ep(9), 3, receiving(ep(7)))
        .build();
    let found = deadlocks(&snapshot);
    assert_eq!(found.len(), 1);
    let (cycle, message) = &found[0];
    // Rotated to the smallest endpoint (slot 5).
    assert_eq!(
        cycle,
        &vec![
            edge(ep(5), ep(9), EdgeKind::AwaitReply),
            edge(ep(9), ep(7), EdgeKind::Receive),
            edge(ep(7), ep(5), EdgeKind::Send),
        ]
    );
    assert_eq!(
        message,
        "deadlock: b#5 → awaiting reply from c#9 → receiving from a#7 → sending to b#5"
    );
}

#[test]
fn two_thread_mutex_deadlock_names_threads_and_mutexes() {
    let snapshot = SnapshotBuilder::at(SECOND)
        .process(1, "worker")
        .thread(ep(3), 1, mutex(0x4010, ep(4)))
        .thread(ep(4), 1, mutex(0x4020, ep(3)))
        .build();
    let found = deadlocks(&snapshot);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].1,
        "deadlock: worker#3 → mutex 0x4010 owned by worker#4 → mutex 0x4020 owned by worker#3"
    );
    assert_eq!(
        found[0].0,
        vec![
            edge(ep(3), ep(4), EdgeKind::Mutex { address: 0x4010 }),
            edge(ep(4), ep(3), EdgeKind::Mutex { address: 0x4020 }),
        ]
    );
}

#[test]
fn mixed_ipc_mutex_and_join_cycle() {
    // fs#2 holds mutex 0x8000 and waits for a reply from disk#3; disk#3 joins helper#4;
    // helper#4 waits for the mutex.
    let snapshot = SnapshotBuilder::at(SECOND)
        .process(1, "fs")
        .process(2, "disk")
        .thread(ep(2), 1, awaiting_reply(ep(3)))
        .thread(ep(3), 2, joining(ep(4)))
        .thread(ep(4), 2, mutex(0x8000, ep(2)))
        .thread(ep(6), 1, ThreadState::Running)
        .build();
    let found = deadlocks(&snapshot);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].1,
        "deadlock: fs#2 → awaiting reply from disk#3 → joining disk#4 → mutex 0x8000 owned by fs#2"
    );
}

#[test]
fn a_chain_is_not_a_deadlock() {
    let snapshot = SnapshotBuilder::at(SECOND)
        .process(1, "p")
        .thread(ep(1), 1, sending(ep(2)))
        .thread(ep(2), 1, awaiting_reply(ep(3)))
        .thread(ep(3), 1, mutex(0x10, ep(4)))
        .thread(ep(4), 1, ThreadState::Running)
        .build();
    assert_eq!(wait_for_graph(&snapshot).len(), 3);
    assert!(deadlocks(&snapshot).is_empty());
}

#[test]
fn receive_from_any_has_no_edge() {
    // A server receiving from ANY while its client awaits its reply (the reply was lost):
    // not a deadlock, and ANY is not a thread.
    let snapshot = SnapshotBuilder::at(SECOND)
        .process(1, "server")
        .process(2, "client")
        .thread(ep(1), 1, receiving(Endpoint::ANY))
        .thread(ep(2), 2, awaiting_reply(ep(1)))
        .build();
    assert_eq!(
        wait_for_graph(&snapshot),
        vec![edge(ep(2), ep(1), EdgeKind::AwaitReply)]
    );
    assert!(deadlocks(&snapshot).is_empty());
}

#[test]
fn waits_on_missing_or_dead_threads_have_no_edge() {
    let snapshot = SnapshotBuilder::at(SECOND)
        .process(1, "p")
        .thread(ep(1), 1, joining(ep(2)))
        .thread(ep(2), 1, ThreadState::Dead { exit_code: 0 })
        .thread(ep(3), 1, mutex(0x20, Endpoint::new(4, 7))) // owner exited long ago
        .thread(ep(5), 1, sending(Endpoint::new(1, 2))) // stale generation of slot 1
        .build();
    assert!(wait_for_graph(&snapshot).is_empty());
}

#[test]
fn deadlock_is_reported_once_while_it_persists() {
    let build = |t| {
        SnapshotBuilder::at(t)
            .process(1, "worker")
            .thread(ep(3), 1, mutex(0x4010, ep(4)))
            .thread(ep(4), 1, mutex(0x4020, ep(3)))
            .build()
    };
    let mut detector = Detector::new(DetectorConfig::default());
    assert_eq!(detector.observe(&build(SECOND)).len(), 1);
    assert!(detector.observe(&build(2 * SECOND)).is_empty());
    assert_eq!(detector.active().len(), 1);
    assert_eq!(detector.active()[0].first_seen_ns, SECOND);
}

#[test]
fn find_cycles_is_independent_of_input_order() {
    let a = edge(ep(1), ep(2), EdgeKind::Send);
    let b = edge(ep(2), ep(1), EdgeKind::AwaitReply);
    let c = edge(ep(3), ep(4), EdgeKind::Join);
    let d = edge(ep(4), ep(3), EdgeKind::Mutex { address: 8 });
    let forward = find_cycles(&[a, b, c, d]);
    assert_eq!(forward, find_cycles(&[d, c, b, a, a]));
    assert_eq!(forward, vec![vec![a, b], vec![c, d]]);
}

#[test]
fn labels_use_process_name_and_slot() {
    let snapshot = SnapshotBuilder::at(0)
        .process(4, "worker")
        .thread(Endpoint::new(3, 9), 4, ThreadState::Ready)
        .build();
    assert_eq!(thread_label(&snapshot, Endpoint::new(3, 9).0), "worker#3");
}
