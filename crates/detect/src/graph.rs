//! The wait-for graph of a snapshot and its elementary cycles (Johnson's algorithm,
//! iterative so that a very long chain cannot overflow a small monitor stack).

use alloc::vec;
use alloc::vec::Vec;
use vigil_abi::endpoint::Endpoint;
use vigil_abi::introspect::decode_state;
use vigil_abi::wait::ThreadState;
use vigil_wire::Snapshot;

use crate::index::SnapshotIndex;

/// Why one thread waits for another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EdgeKind {
    /// Blocked in Send until the target receives.
    Send,
    /// Request delivered; blocked until the target replies.
    AwaitReply,
    /// Blocked in Receive from this specific target.
    Receive,
    /// Blocked on the mutex at `address`, owned by the target.
    Mutex { address: u64 },
    /// Waiting for the target to exit.
    Join,
    /// Blocked on a page fault at `address` the target (the VM server) resolves.
    PageFault { address: u64 },
}

/// `from` waits for `to` (both raw thread endpoints).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WaitEdge {
    pub from: u64,
    pub to: u64,
    pub kind: EdgeKind,
}

/// The wait-for edge of one thread record, if its state has a thread partner.
pub(crate) fn edge_of(thread: &vigil_wire::ThreadInfo) -> Option<WaitEdge> {
    let state = decode_state(
        thread.state,
        Endpoint(thread.wait_target),
        thread.wait_argument,
    )?;
    let target = state.waits_on()?;
    if !target.is_thread() {
        return None;
    }
    let kind = match state {
        ThreadState::Sending { .. } => EdgeKind::Send,
        ThreadState::AwaitingReply { .. } => EdgeKind::AwaitReply,
        ThreadState::Receiving { .. } => EdgeKind::Receive,
        ThreadState::Mutex { address, .. } => EdgeKind::Mutex { address },
        ThreadState::Joining { .. } => EdgeKind::Join,
        ThreadState::WaitingForVm { address, .. } => EdgeKind::PageFault { address },
        _ => return None,
    };
    Some(WaitEdge {
        from: thread.endpoint,
        to: target.0,
        kind,
    })
}

/// The wait-for graph of a snapshot, sorted by (from, to, kind).
///
/// Only edges whose target is a live thread of the snapshot (present, not free, not dead)
/// are kept: a wait on an exited or unknown thread cannot be part of a cycle. Receive from
/// ANY (and any other special endpoint) has no edge. A well-formed snapshot gives each
/// thread at most one outgoing edge.
pub fn wait_for_graph(snapshot: &Snapshot) -> Vec<WaitEdge> {
    let index = SnapshotIndex::new(snapshot);
    let mut edges: Vec<WaitEdge> = snapshot
        .threads
        .iter()
        .filter(|t| crate::index::is_live(t))
        .filter_map(edge_of)
        .filter(|e| index.is_live_thread(e.to))
        .collect();
    edges.sort_unstable();
    edges.dedup();
    edges
}

/// Every elementary cycle of `edges`, each once.
///
/// A cycle is the list of its edges in order, rotated to start at its smallest endpoint;
/// parallel edges with different kinds make different cycles, and a self-edge is a cycle of
/// one. Duplicate input edges are ignored. Cycles come out sorted (lexicographically by
/// edges), so the result does not depend on the input order.
///
/// Johnson's algorithm: O((V + E)·(C + 1)) for C cycles. A snapshot's graph has at most one
/// edge out of each thread, so its cycles are disjoint and the whole search is linear; an
/// arbitrary dense graph can have exponentially many elementary cycles.
pub fn find_cycles(edges: &[WaitEdge]) -> Vec<Vec<WaitEdge>> {
    let graph = Graph::new(edges);
    let mut search = Search::new(graph.node_count());
    let mut cycles = Vec::new();

    // Strongly connected components of the whole graph: a cycle never leaves one, so each
    // non-trivial component is searched on its own.
    let all: Vec<usize> = (0..graph.node_count()).collect();
    let allowed = vec![true; graph.node_count()];
    for component in search.components(&graph, &all, &allowed) {
        if graph.is_cyclic_component(&component) {
            search.cycles_in_component(&graph, component, &mut cycles);
        }
    }
    cycles.sort_unstable();
    cycles
}

/// The edges as a compact adjacency structure over node indices (endpoints sorted).
struct Graph {
    nodes: Vec<u64>,
    edges: Vec<WaitEdge>,
    /// `targets[i]` is the node index of `edges[i].to`.
    targets: Vec<usize>,
    /// The edges out of node `n` are `edges[first_edge[n]..first_edge[n + 1]]`.
    first_edge: Vec<usize>,
}

impl Graph {
    fn new(edges: &[WaitEdge]) -> Self {
        let mut edges = edges.to_vec();
        edges.sort_unstable();
        edges.dedup();
        let mut nodes: Vec<u64> = edges.iter().flat_map(|e| [e.from, e.to]).collect();
        nodes.sort_unstable();
        nodes.dedup();
        let index_of = |endpoint: u64| {
            nodes
                .binary_search(&endpoint)
                .expect("every endpoint of an edge is a node")
        };
        let targets = edges.iter().map(|e| index_of(e.to)).collect();
        let mut first_edge = vec![0; nodes.len() + 1];
        for edge in &edges {
            first_edge[index_of(edge.from) + 1] += 1;
        }
        for n in 0..nodes.len() {
            first_edge[n + 1] += first_edge[n];
        }
        Graph {
            nodes,
            edges,
            targets,
            first_edge,
        }
    }

    fn node_count(&self) -> usize {
        self.nodes.len()
    }

    fn out_edges(&self, node: usize) -> core::ops::Range<usize> {
        self.first_edge[node]..self.first_edge[node + 1]
    }

    fn has_self_edge(&self, node: usize) -> bool {
        self.out_edges(node).any(|e| self.targets[e] == node)
    }

    /// Whether a strongly connected component holds a cycle (two or more nodes, or a
    /// self-edge).
    fn is_cyclic_component(&self, component: &[usize]) -> bool {
        component.len() > 1 || component.iter().any(|&n| self.has_self_edge(n))
    }
}

const UNVISITED: usize = usize::MAX;

/// Scratch state for Tarjan's components and Johnson's circuit search, sized once.
struct Search {
    // Tarjan.
    order: Vec<usize>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    // Johnson.
    allowed: Vec<bool>,
    blocked: Vec<bool>,
    blocked_by: Vec<Vec<usize>>,
}

impl Search {
    fn new(nodes: usize) -> Self {
        Search {
            order: vec![UNVISITED; nodes],
            low: vec![0; nodes],
            on_stack: vec![false; nodes],
            allowed: vec![false; nodes],
            blocked: vec![false; nodes],
            blocked_by: vec![Vec::new(); nodes],
        }
    }

    /// Strongly connected components of the subgraph induced by `members` (each allowed),
    /// each component's nodes ascending. Iterative Tarjan.
    fn components(
        &mut self,
        graph: &Graph,
        members: &[usize],
        allowed: &[bool],
    ) -> Vec<Vec<usize>> {
        for &n in members {
            self.order[n] = UNVISITED;
            self.on_stack[n] = false;
        }
        let mut components = Vec::new();
        let mut counter = 0;
        let mut stack = Vec::new();
        let mut calls: Vec<(usize, usize)> = Vec::new();
        for &root in members {
            if self.order[root] != UNVISITED {
                continue;
            }
            self.visit(root, &mut counter, &mut stack);
            calls.push((root, graph.first_edge[root]));
            while let Some(&(node, cursor)) = calls.last() {
                if cursor < graph.first_edge[node + 1] {
                    calls.last_mut().expect("non-empty").1 += 1;
                    let next = graph.targets[cursor];
                    if !allowed[next] {
                        continue;
                    }
                    if self.order[next] == UNVISITED {
                        self.visit(next, &mut counter, &mut stack);
                        calls.push((next, graph.first_edge[next]));
                    } else if self.on_stack[next] {
                        self.low[node] = self.low[node].min(self.order[next]);
                    }
                    continue;
                }
                calls.pop();
                if let Some(&(parent, _)) = calls.last() {
                    self.low[parent] = self.low[parent].min(self.low[node]);
                }
                if self.low[node] == self.order[node] {
                    let mut component = Vec::new();
                    loop {
                        let member = stack.pop().expect("node is on the stack");
                        self.on_stack[member] = false;
                        component.push(member);
                        if member == node {
                            break;
                        }
                    }
                    component.sort_unstable();
                    components.push(component);
                }
            }
        }
        components
    }

    fn visit(&mut self, node: usize, counter: &mut usize, stack: &mut Vec<usize>) {
        self.order[node] = *counter;
        self.low[node] = *counter;
        *counter += 1;
        stack.push(node);
        self.on_stack[node] = true;
    }

    /// Johnson's outer loop inside one strongly connected component (nodes ascending).
    fn cycles_in_component(
        &mut self,
        graph: &Graph,
        component: Vec<usize>,
        cycles: &mut Vec<Vec<WaitEdge>>,
    ) {
        let mut rest = component;
        while !rest.is_empty() {
            // The least node of a cyclic component of the subgraph induced by `rest` starts
            // every cycle found next; nodes below it are done.
            let mut mask = core::mem::take(&mut self.allowed);
            for &n in &rest {
                mask[n] = true;
            }
            let subcomponents = self.components(graph, &rest, &mask);
            for &n in &rest {
                mask[n] = false;
            }
            self.allowed = mask;
            let Some(start_component) = subcomponents
                .into_iter()
                .filter(|c| graph.is_cyclic_component(c))
                .min_by_key(|c| c[0])
            else {
                return;
            };
            let start = start_component[0];
            for &n in &start_component {
                self.allowed[n] = true;
                self.blocked[n] = false;
                self.blocked_by[n].clear();
            }
            self.circuits_from(graph, start, cycles);
            for &n in &start_component {
                self.allowed[n] = false;
            }
            rest.retain(|&n| n > start);
        }
    }

    /// Johnson's CIRCUIT(start), iteratively: every elementary cycle through `start` within
    /// the allowed nodes.
    fn circuits_from(&mut self, graph: &Graph, start: usize, cycles: &mut Vec<Vec<WaitEdge>>) {
        struct Frame {
            node: usize,
            cursor: usize,
            found: bool,
        }
        let mut path: Vec<usize> = Vec::new(); // edge indices from `start`
        let mut frames = vec![Frame {
            node: start,
            cursor: graph.first_edge[start],
            found: false,
        }];
        self.blocked[start] = true;
        while let Some(frame) = frames.last_mut() {
            if frame.cursor < graph.first_edge[frame.node + 1] {
                let edge = frame.cursor;
                frame.cursor += 1;
                let next = graph.targets[edge];
                if !self.allowed[next] {
                    continue;
                }
                if next == start {
                    let cycle = path
                        .iter()
                        .chain(core::iter::once(&edge))
                        .map(|&e| graph.edges[e])
                        .collect();
                    cycles.push(cycle);
                    frame.found = true;
                } else if !self.blocked[next] {
                    path.push(edge);
                    self.blocked[next] = true;
                    frames.push(Frame {
                        node: next,
                        cursor: graph.first_edge[next],
                        found: false,
                    });
                }
                continue;
            }
            let Frame { node, found, .. } = frames.pop().expect("non-empty");
            if found {
                self.unblock(node);
            } else {
                for edge in graph.out_edges(node) {
                    let next = graph.targets[edge];
                    if self.allowed[next] && !self.blocked_by[next].contains(&node) {
                        self.blocked_by[next].push(node);
                    }
                }
            }
            if let Some(parent) = frames.last_mut() {
                parent.found |= found;
                path.pop();
            }
        }
    }

    fn unblock(&mut self, node: usize) {
        let mut work = vec![node];
        self.blocked[node] = true; // so the loop below clears it like any other
        while let Some(n) = work.pop() {
            if self.blocked[n] {
                self.blocked[n] = false;
                work.append(&mut self.blocked_by[n]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(from: u64, to: u64) -> WaitEdge {
        WaitEdge {
            from,
            to,
            kind: EdgeKind::Send,
        }
    }

    #[test]
    fn a_thread_waiting_for_vm_has_an_edge_to_vm() {
        let vm = Endpoint::new(1, 1);
        let state = ThreadState::WaitingForVm {
            vm,
            address: 0x7eff_fffb_0000,
            access: vigil_abi::vm::FaultAccess::Write,
        };
        let (code, target, argument) = vigil_abi::introspect::encode_state(&state);
        let thread = vigil_wire::ThreadInfo {
            endpoint: Endpoint::new(4, 2).0,
            state: code,
            wait_target: target.0,
            wait_argument: argument,
            ..Default::default()
        };
        assert_eq!(
            edge_of(&thread),
            Some(WaitEdge {
                from: Endpoint::new(4, 2).0,
                to: vm.0,
                kind: EdgeKind::PageFault {
                    address: 0x7eff_fffb_0000
                },
            })
        );
    }

    #[test]
    fn cycles_are_rotated_to_their_smallest_endpoint() {
        let cycles = find_cycles(&[edge(5, 2), edge(2, 9), edge(9, 5)]);
        assert_eq!(cycles, vec![vec![edge(2, 9), edge(9, 5), edge(5, 2)]]);
    }

    #[test]
    fn chains_and_empty_graphs_have_no_cycle() {
        assert!(find_cycles(&[]).is_empty());
        assert!(find_cycles(&[edge(1, 2), edge(2, 3), edge(1, 3)]).is_empty());
    }

    #[test]
    fn self_edges_and_parallel_edges_are_cycles() {
        let mutex = WaitEdge {
            from: 1,
            to: 2,
            kind: EdgeKind::Mutex { address: 0x40 },
        };
        let cycles = find_cycles(&[edge(3, 3), edge(1, 2), mutex, edge(2, 1), edge(2, 1)]);
        assert_eq!(
            cycles,
            vec![
                vec![edge(1, 2), edge(2, 1)],
                vec![mutex, edge(2, 1)],
                vec![edge(3, 3)],
            ]
        );
    }

    #[test]
    fn overlapping_cycles_are_each_found_once() {
        // 1→2→1, 2→3→2, 1→2→3→1: three elementary cycles sharing nodes.
        let edges = [edge(1, 2), edge(2, 1), edge(2, 3), edge(3, 2), edge(3, 1)];
        let cycles = find_cycles(&edges);
        assert_eq!(
            cycles,
            vec![
                vec![edge(1, 2), edge(2, 1)],
                vec![edge(1, 2), edge(2, 3), edge(3, 1)],
                vec![edge(2, 3), edge(3, 2)],
            ]
        );
    }

    #[test]
    fn a_very_long_cycle_does_not_recurse() {
        let n = 50_000u64;
        let edges: Vec<WaitEdge> = (0..n).map(|i| edge(i, (i + 1) % n)).collect();
        let cycles = find_cycles(&edges);
        assert_eq!(cycles.len(), 1);
        assert_eq!(cycles[0].len(), n as usize);
        assert_eq!(cycles[0][0].from, 0);
    }
}
