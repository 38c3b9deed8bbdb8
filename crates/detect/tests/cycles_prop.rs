//! Property tests: `find_cycles` against brute force on random graphs, and the detector on
//! random snapshot sequences.

mod support;

use std::collections::BTreeSet;

use proptest::prelude::*;
use support::*;
use vigil_abi::endpoint::Endpoint;
use vigil_abi::wait::ThreadState;
use vigil_detect::{find_cycles, wait_for_graph, AlertKind, Detector, DetectorConfig, EdgeKind};
use vigil_detect::{thread_label, WaitEdge};

fn kind(code: u8) -> EdgeKind {
    match code {
        0 => EdgeKind::Send,
        1 => EdgeKind::AwaitReply,
        2 => EdgeKind::Mutex { address: 0x10 },
        _ => EdgeKind::Join,
    }
}

fn graph() -> impl Strategy<Value = Vec<WaitEdge>> {
    prop::collection::vec((0u64..7, 0u64..7, 0u8..4), 0..16).prop_map(|edges| {
        edges
            .into_iter()
            .map(|(from, to, code)| WaitEdge {
                from,
                to,
                kind: kind(code),
            })
            .collect()
    })
}

/// Whether any cycle exists: depth-first search for a back edge (white/grey/black).
fn has_cycle(edges: &[WaitEdge]) -> bool {
    let nodes: BTreeSet<u64> = edges.iter().flat_map(|e| [e.from, e.to]).collect();
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour: std::collections::BTreeMap<u64, Colour> =
        nodes.iter().map(|&n| (n, Colour::White)).collect();
    fn visit(
        node: u64,
        edges: &[WaitEdge],
        colour: &mut std::collections::BTreeMap<u64, Colour>,
    ) -> bool {
        colour.insert(node, Colour::Grey);
        for edge in edges.iter().filter(|e| e.from == node) {
            let target = colour[&edge.to];
            match target {
                Colour::Grey => return true,
                Colour::White if visit(edge.to, edges, colour) => return true,
                _ => {}
            }
        }
        colour.insert(node, Colour::Black);
        false
    }
    nodes
        .iter()
        .any(|&n| colour[&n] == Colour::White && visit(n, edges, &mut colour))
}

/// Every elementary cycle by exhaustive search: from each node, all simple paths through
/// larger nodes that come back to it.
fn all_cycles(edges: &[WaitEdge]) -> BTreeSet<Vec<WaitEdge>> {
    let edges: BTreeSet<WaitEdge> = edges.iter().copied().collect();
    let nodes: BTreeSet<u64> = edges.iter().flat_map(|e| [e.from, e.to]).collect();
    let mut found = BTreeSet::new();
    fn extend(
        start: u64,
        path: &mut Vec<WaitEdge>,
        edges: &BTreeSet<WaitEdge>,
        found: &mut BTreeSet<Vec<WaitEdge>>,
    ) {
        let at = path.last().map_or(start, |e| e.to);
        for edge in edges.iter().filter(|e| e.from == at) {
            if edge.to == start {
                let mut cycle = path.clone();
                cycle.push(*edge);
                found.insert(cycle);
            } else if edge.to > start && !path.iter().any(|e| e.to == edge.to) {
                path.push(*edge);
                extend(start, path, edges, found);
                path.pop();
            }
        }
    }
    for &start in &nodes {
        extend(start, &mut Vec::new(), &edges, &mut found);
    }
    found
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn find_cycles_matches_brute_force(edges in graph()) {
        let cycles = find_cycles(&edges);
        prop_assert_eq!(!cycles.is_empty(), has_cycle(&edges));

        for cycle in &cycles {
            prop_assert!(!cycle.is_empty());
            for (i, edge) in cycle.iter().enumerate() {
                prop_assert!(edges.contains(edge), "edge {:?} not in the input", edge);
                prop_assert_eq!(edge.to, cycle[(i + 1) % cycle.len()].from);
            }
            let nodes: BTreeSet<u64> = cycle.iter().map(|e| e.from).collect();
            prop_assert_eq!(nodes.len(), cycle.len(), "not elementary: {:?}", cycle);
            prop_assert_eq!(Some(&cycle[0].from), nodes.iter().next());
        }
        let unique: BTreeSet<Vec<WaitEdge>> = cycles.iter().cloned().collect();
        prop_assert_eq!(unique.len(), cycles.len(), "a cycle was reported twice");
        prop_assert_eq!(unique, all_cycles(&edges));

        let mut sorted = cycles.clone();
        sorted.sort();
        prop_assert_eq!(&sorted, &cycles, "not in deterministic order");
        let mut reversed = edges.clone();
        reversed.reverse();
        prop_assert_eq!(find_cycles(&reversed), cycles);
    }

    #[test]
    fn detector_is_consistent_on_random_snapshots(
        steps in prop::collection::vec(
            prop::collection::vec((0u8..8, 0u16..8, 0u64..3), 8),
            1..12,
        )
    ) {
        let mut detector = Detector::new(DetectorConfig {
            hung_after_ns: 2 * SECOND,
            anomaly_min_history: 3,
            ..DetectorConfig::default()
        });
        let mut cpu = [0u64; 8];
        for (i, threads) in steps.iter().enumerate() {
            let mut builder = SnapshotBuilder::at(i as u64 * SECOND).process(1, "p");
            for (slot, &(state, target, work)) in threads.iter().enumerate() {
                let target = ep(target);
                let state = match state {
                    0 => ThreadState::Running,
                    1 => ThreadState::Sending { to: target },
                    2 => ThreadState::AwaitingReply { from: target },
                    3 => ThreadState::Receiving { from: Endpoint::ANY },
                    4 => ThreadState::Mutex { address: 0x40, owner: target },
                    5 => ThreadState::Joining { thread: target },
                    6 => ThreadState::Dead { exit_code: 0 },
                    _ => ThreadState::Sleeping { until_ns: 0 },
                };
                cpu[slot] += work * SECOND / 2;
                builder = builder.thread(ep(slot as u16), 1, state).cpu(cpu[slot]);
            }
            let snapshot = builder.build();
            let raised = detector.observe(&snapshot);
            // Everything raised is active, and a deadlock is active iff the graph has a cycle.
            for alert in &raised {
                prop_assert!(detector.active().contains(alert));
            }
            let cycles = find_cycles(&wait_for_graph(&snapshot));
            let deadlocks = detector
                .active()
                .iter()
                .filter(|a| matches!(a.kind, AlertKind::Deadlock { .. }))
                .count();
            prop_assert_eq!(deadlocks, cycles.len());
            // One edge out of each thread: cycles are disjoint.
            let mut seen = BTreeSet::new();
            for cycle in &cycles {
                for edge in cycle {
                    prop_assert!(seen.insert(edge.from));
                    let label = thread_label(&snapshot, edge.from);
                    prop_assert!(label.starts_with("p#"));
                }
            }
        }
    }
}
