//! Lookups into one snapshot (thread by endpoint, process by pid) and the human-readable
//! text of alerts: thread labels, wait edges, durations.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use vigil_abi::endpoint::Endpoint;
use vigil_abi::introspect::state_code;
use vigil_wire::{ProcessInfo, Snapshot, ThreadInfo};

use crate::graph::{EdgeKind, WaitEdge};

/// The label of a thread in alert messages: `"<process name>#<slot>"`, e.g. `"worker#3"`.
///
/// A thread missing from the snapshot is `"?#<slot>"`; a process with an empty name is
/// shown as `pid<N>`; special endpoints (ANY, NONE, …) are shown by name.
pub fn thread_label(snapshot: &Snapshot, endpoint: u64) -> String {
    let thread = snapshot.threads.iter().find(|t| t.endpoint == endpoint);
    let process = thread.and_then(|t| snapshot.processes.iter().find(|p| p.pid == t.pid));
    label(endpoint, thread, process)
}

fn label(endpoint: u64, thread: Option<&ThreadInfo>, process: Option<&ProcessInfo>) -> String {
    let endpoint = Endpoint(endpoint);
    if endpoint.is_special() {
        return format!("{endpoint:?}");
    }
    match (thread, process) {
        (Some(_), Some(process)) if !process.name.is_empty() => {
            format!("{}#{}", process.name, endpoint.slot())
        }
        (Some(thread), _) => format!("pid{}#{}", thread.pid, endpoint.slot()),
        (None, _) => format!("?#{}", endpoint.slot()),
    }
}

/// Whether a thread record is a live thread (not a free slot, not exited).
pub(crate) fn is_live(thread: &ThreadInfo) -> bool {
    thread.state != state_code::FREE && thread.state != state_code::DEAD
}

/// A snapshot indexed by endpoint and pid (first record wins if a snapshot repeats one).
pub(crate) struct SnapshotIndex<'a> {
    threads: BTreeMap<u64, &'a ThreadInfo>,
    processes: BTreeMap<u32, &'a ProcessInfo>,
}

impl<'a> SnapshotIndex<'a> {
    pub(crate) fn new(snapshot: &'a Snapshot) -> Self {
        let mut threads = BTreeMap::new();
        for thread in &snapshot.threads {
            threads.entry(thread.endpoint).or_insert(thread);
        }
        let mut processes = BTreeMap::new();
        for process in &snapshot.processes {
            processes.entry(process.pid).or_insert(process);
        }
        SnapshotIndex { threads, processes }
    }

    pub(crate) fn thread(&self, endpoint: u64) -> Option<&'a ThreadInfo> {
        self.threads.get(&endpoint).copied()
    }

    /// Whether `endpoint` names a live thread of this snapshot.
    pub(crate) fn is_live_thread(&self, endpoint: u64) -> bool {
        self.thread(endpoint).is_some_and(is_live)
    }

    pub(crate) fn process(&self, pid: u32) -> Option<&'a ProcessInfo> {
        self.processes.get(&pid).copied()
    }

    /// The name of the program a thread belongs to ("" if its process is not in the snapshot).
    pub(crate) fn program_of(&self, thread: &ThreadInfo) -> &'a str {
        self.process(thread.pid).map_or("", |p| p.name.as_str())
    }

    pub(crate) fn label(&self, endpoint: u64) -> String {
        let thread = self.thread(endpoint);
        let process = thread.and_then(|t| self.process(t.pid));
        label(endpoint, thread, process)
    }

    /// What the source of `edge` is doing, naming its target: "mutex 0x4010 owned by worker#4".
    pub(crate) fn edge_phrase(&self, edge: &WaitEdge) -> String {
        let to = self.label(edge.to);
        match edge.kind {
            EdgeKind::Send => format!("sending to {to}"),
            EdgeKind::AwaitReply => format!("awaiting reply from {to}"),
            EdgeKind::Receive => format!("receiving from {to}"),
            EdgeKind::Mutex { address } => format!("mutex {address:#x} owned by {to}"),
            EdgeKind::Join => format!("joining {to}"),
            EdgeKind::PageFault { address } => {
                format!("waiting for {to} to resolve a page fault at {address:#x}")
            }
        }
    }

    /// A path of edges as text: "a#1 → sending to b#2 → awaiting reply from c#3".
    pub(crate) fn path_text(&self, edges: &[WaitEdge]) -> String {
        let mut text = match edges.first() {
            Some(first) => self.label(first.from),
            None => return String::new(),
        };
        for edge in edges {
            text.push_str(" → ");
            text.push_str(&self.edge_phrase(edge));
        }
        text
    }
}

/// A duration for people: "250 ms", "6.0 s", "12 min 5 s".
pub(crate) fn duration_text(ns: u64) -> String {
    const MS: u64 = 1_000_000;
    const S: u64 = 1_000_000_000;
    if ns < S {
        format!("{} ms", ns / MS)
    } else if ns < 120 * S {
        format!("{}.{} s", ns / S, (ns % S) / (S / 10))
    } else {
        format!("{} min {} s", ns / (60 * S), (ns / S) % 60)
    }
}

/// A value in thousandths as a percentage with one decimal: 975 → "97.5%".
pub(crate) fn permille_text(permille: u64) -> String {
    format!("{}.{}%", permille / 10, permille % 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration_text(250_000_000), "250 ms");
        assert_eq!(duration_text(6_040_000_000), "6.0 s");
        assert_eq!(duration_text(725_000_000_000), "12 min 5 s");
        assert_eq!(permille_text(975), "97.5%");
    }

    #[test]
    fn labels_fall_back_when_names_are_missing() {
        let snapshot = Snapshot {
            threads: alloc::vec![ThreadInfo {
                endpoint: Endpoint::new(4, 2).0,
                pid: 9,
                state: state_code::READY,
                ..ThreadInfo::default()
            }],
            ..Snapshot::default()
        };
        assert_eq!(thread_label(&snapshot, Endpoint::new(4, 2).0), "pid9#4");
        assert_eq!(thread_label(&snapshot, Endpoint::new(5, 1).0), "?#5");
        assert_eq!(thread_label(&snapshot, Endpoint::ANY.0), "ANY");
    }
}
