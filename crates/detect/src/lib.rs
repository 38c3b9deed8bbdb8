//! Detection over Vigil snapshots: deadlocks, hung chains, CPU/memory hogs and anomalies
//! (shared by the in-guest monitor and the host tool).
//!
//! `no_std` + `alloc`. Input is a stream of [`vigil_wire::Snapshot`]s; a [`Detector`]
//! remembers a bounded amount of history between them and raises edge-triggered
//! [`Alert`]s:
//!
//! - **Deadlock**: a cycle in the wait-for graph ([`wait_for_graph`], [`find_cycles`]):
//!   Sending → destination, AwaitingReply → server, Receiving from a specific thread → that
//!   thread, Mutex → owner, Joining → the joined thread. Reported at first sight: every
//!   thread of the cycle is blocked waiting for the next one, so none of them can run to
//!   release it (the kernel's calls on these edges have no timeout), and a snapshot is
//!   taken in one kernel call, so a cycle in it is not an artefact of a torn read.
//! - **Hung chain**: a path of blocked threads ending at a thread that waits for nobody
//!   (running, ready, sleeping, receiving from ANY, waiting on a thread that is gone) and
//!   has made no progress (CPU time and all counters unchanged) for `hung_after_ns`, while
//!   the chain's head has been blocked in the same state for at least as long. One alert
//!   per stuck end thread: the longest such chain is named, other waiters counted.
//! - **CPU hog**: a thread whose CPU time over the last `cpu_hog_window_ns` or a little
//!   more (measured from the snapshots' timestamps) is at least `cpu_hog_percent` of wall
//!   time. Nothing is judged before a whole window of history exists.
//! - **Memory hog**: a process mapping at least `memory_hog_pages` pages.
//! - **Anomaly**: per program (process name, across all its processes and restarts), an
//!   EWMA (weight 1/8) of the busiest thread's rates in each snapshot: CPU share
//!   ([`METRIC_CPU_PERMILLE`]) and messages sent per second
//!   ([`METRIC_MESSAGES_PER_SECOND`]). Once a program has `anomaly_min_history` samples, a
//!   thread whose rate since the previous snapshot exceeds `anomaly_factor` × the typical
//!   value (but at least [`MIN_TYPICAL_CPU_PERMILLE`] / [`MIN_TYPICAL_MESSAGES_PER_SECOND`])
//!   is anomalous; its rates are then left out of the statistics so an anomaly does not
//!   teach itself to be typical.
//!
//! Threads are named `<process name>#<slot>` in messages ([`thread_label`]).
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;

mod detector;
mod graph;
mod history;
mod index;

pub use detector::{
    Alert, AlertKind, Detector, MAX_PROGRAMS, METRIC_CPU_PERMILLE, METRIC_MESSAGES_PER_SECOND,
    MIN_TYPICAL_CPU_PERMILLE, MIN_TYPICAL_MESSAGES_PER_SECOND,
};
pub use graph::{find_cycles, wait_for_graph, EdgeKind, WaitEdge};
pub use index::thread_label;

/// Thresholds of a [`Detector`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetectorConfig {
    /// CPU share (of one CPU's wall time) at or above which a thread is a hog. Default 80.
    pub cpu_hog_percent: u32,
    /// Shortest window over which CPU share is measured. Default 2 s.
    pub cpu_hog_window_ns: u64,
    /// How long a chain must be blocked (and its end idle) to be hung. Default 5 s.
    pub hung_after_ns: u64,
    /// Pages (4 KiB) at or above which a process is a memory hog. Default 16384 (64 MiB).
    pub memory_hog_pages: u64,
    /// How many times its program's typical value a thread's rate must exceed to be an
    /// anomaly. Default 4.
    pub anomaly_factor: u32,
    /// Snapshots of a program's history needed before judging anomalies. Default 20.
    pub anomaly_min_history: u32,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            cpu_hog_percent: 80,
            cpu_hog_window_ns: 2_000_000_000,
            hung_after_ns: 5_000_000_000,
            memory_hog_pages: 16384,
            anomaly_factor: 4,
            anomaly_min_history: 20,
        }
    }
}
