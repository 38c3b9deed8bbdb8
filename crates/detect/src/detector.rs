//! The stateful detector: folds snapshots into bounded per-thread and per-program history
//! and raises edge-triggered alerts (deadlocks, hung chains, CPU and memory hogs,
//! anomalies).

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use vigil_wire::Snapshot;

use crate::graph::{find_cycles, wait_for_graph, WaitEdge};
use crate::history::{ProgramStats, Rates, ThreadHistory, WindowUsage};
use crate::index::{duration_text, is_live, permille_text, SnapshotIndex};
use crate::DetectorConfig;

/// `AlertKind::Anomaly::metric` for CPU share, in thousandths of wall time.
pub const METRIC_CPU_PERMILLE: &str = "cpu_permille";
/// `AlertKind::Anomaly::metric` for IPC messages sent per second.
pub const METRIC_MESSAGES_PER_SECOND: &str = "messages_per_second";

/// A program's typical CPU share is taken as at least this (5%), so a program that is
/// usually idle is not flagged for a few percent.
pub const MIN_TYPICAL_CPU_PERMILLE: u64 = 50;
/// A program's typical message rate is taken as at least this many per second.
pub const MIN_TYPICAL_MESSAGES_PER_SECOND: u64 = 5;
/// Programs (process names) whose statistics are kept; the least recently seen is
/// forgotten first.
pub const MAX_PROGRAMS: usize = 256;

/// Bytes per page, for messages.
const PAGE_BYTES: u64 = 4096;

/// What was detected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertKind {
    /// A cycle of threads each waiting for the next (rotated to its smallest endpoint).
    Deadlock { cycle: Vec<WaitEdge> },
    /// A path of blocked threads to one that makes no progress; `blocked_ns` is how long
    /// the head has been blocked in the same state.
    HungChain {
        chain: Vec<WaitEdge>,
        blocked_ns: u64,
    },
    /// A thread that used at least the configured share of wall time over `window_ns`.
    CpuHog {
        thread: u64,
        percent: u32,
        window_ns: u64,
    },
    /// A process mapping at least the configured number of pages.
    MemoryHog { pid: u32, pages: u64 },
    /// A thread whose `metric` (`METRIC_*`) since the previous snapshot is more than the
    /// configured factor above what is `typical` for its program.
    Anomaly {
        thread: u64,
        metric: &'static str,
        value: u64,
        typical: u64,
    },
}

/// One detected condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    pub kind: AlertKind,
    /// Snapshot time at which this condition was first seen (kept while it persists).
    pub first_seen_ns: u64,
    /// Human-readable description naming threads as `<process name>#<slot>`.
    pub message: String,
}

/// What makes two alerts the same condition, for edge-triggering.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum AlertKey {
    Deadlock(Vec<WaitEdge>),
    /// Keyed by the stuck end thread: the waiters in front of it may change.
    HungChain(u64),
    CpuHog(u64),
    MemoryHog(u32),
    Anomaly(u64, &'static str),
}

impl AlertKey {
    fn of(kind: &AlertKind) -> AlertKey {
        match kind {
            AlertKind::Deadlock { cycle } => AlertKey::Deadlock(cycle.clone()),
            AlertKind::HungChain { chain, .. } => {
                AlertKey::HungChain(chain.last().map_or(0, |e| e.to))
            }
            AlertKind::CpuHog { thread, .. } => AlertKey::CpuHog(*thread),
            AlertKind::MemoryHog { pid, .. } => AlertKey::MemoryHog(*pid),
            AlertKind::Anomaly { thread, metric, .. } => AlertKey::Anomaly(*thread, metric),
        }
    }
}

/// What one snapshot says about one live thread, after folding it into its history.
struct ThreadObservation<'a> {
    endpoint: u64,
    program: &'a str,
    usage: Option<WindowUsage>,
    rates: Option<Rates>,
}

/// Watches a stream of snapshots and reports conditions worth a controller's attention.
///
/// Memory is bounded whatever the number of snapshots: history is kept only for threads in
/// the latest snapshot (a bounded number of CPU samples each), for at most `MAX_PROGRAMS`
/// programs, and for the alerts currently active.
#[derive(Clone, Debug)]
pub struct Detector {
    config: DetectorConfig,
    threads: BTreeMap<u64, ThreadHistory>,
    programs: BTreeMap<String, ProgramStats>,
    active: Vec<Alert>,
    first_seen: BTreeMap<AlertKey, u64>,
    last_timestamp_ns: Option<u64>,
}

impl Detector {
    pub fn new(config: DetectorConfig) -> Self {
        Detector {
            config,
            threads: BTreeMap::new(),
            programs: BTreeMap::new(),
            active: Vec::new(),
            first_seen: BTreeMap::new(),
            last_timestamp_ns: None,
        }
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Folds in a snapshot and returns the alerts it newly raises. A condition that
    /// persists is reported once; it is reported again only after it has cleared.
    ///
    /// A snapshot with the same timestamp as the previous one is a repeat and changes
    /// nothing. One with an earlier timestamp means the machine restarted: thread history
    /// and active alerts are dropped (endpoints are reused after a reboot) while the
    /// per-program statistics are kept.
    pub fn observe(&mut self, snapshot: &Snapshot) -> Vec<Alert> {
        let now = snapshot.timestamp_ns;
        match self.last_timestamp_ns {
            Some(last) if now == last => return Vec::new(),
            Some(last) if now < last => {
                self.threads.clear();
                self.active.clear();
                self.first_seen.clear();
            }
            _ => {}
        }
        self.last_timestamp_ns = Some(now);

        let index = SnapshotIndex::new(snapshot);
        let observations = self.fold_threads(snapshot, &index, now);

        let edges = wait_for_graph(snapshot);
        let mut current = Vec::new();
        current.extend(self.deadlocks(&edges, &index, now));
        current.extend(self.hung_chains(&edges, &index, now));
        current.extend(self.cpu_hogs(&observations, &index, now));
        current.extend(self.memory_hogs(snapshot, now));
        current.extend(self.anomalies(&observations, &index, now));
        self.forget_programs();
        self.reconcile(current)
    }

    /// Conditions currently true (as of the latest snapshot), with current values.
    pub fn active(&self) -> &[Alert] {
        &self.active
    }

    /// Threads with history (those alive in the latest snapshot).
    pub fn tracked_threads(&self) -> usize {
        self.threads.len()
    }

    /// Programs with statistics.
    pub fn tracked_programs(&self) -> usize {
        self.programs.len()
    }

    /// Updates per-thread history from the snapshot, dropping threads that are gone.
    fn fold_threads<'a>(
        &mut self,
        snapshot: &'a Snapshot,
        index: &SnapshotIndex<'a>,
        now: u64,
    ) -> Vec<ThreadObservation<'a>> {
        let mut observations = Vec::new();
        for thread in snapshot.threads.iter().filter(|t| is_live(t)) {
            // A snapshot naming one endpoint twice: only its first record counts.
            if !index
                .thread(thread.endpoint)
                .is_some_and(|first| core::ptr::eq(first, thread))
            {
                continue;
            }
            let history = self
                .threads
                .entry(thread.endpoint)
                .or_insert_with(|| ThreadHistory::new(thread, now));
            let (usage, rates) = history.update(thread, now, self.config.cpu_hog_window_ns);
            observations.push(ThreadObservation {
                endpoint: thread.endpoint,
                program: index.program_of(thread),
                usage,
                rates,
            });
        }
        // Threads that exited (or whose slot was reused) take their history with them.
        self.threads.retain(|_, h| h.last_seen_ns() == now);
        observations
    }

    fn deadlocks(&self, edges: &[WaitEdge], index: &SnapshotIndex, now: u64) -> Vec<Alert> {
        find_cycles(edges)
            .into_iter()
            .map(|cycle| Alert {
                message: format!("deadlock: {}", index.path_text(&cycle)),
                kind: AlertKind::Deadlock { cycle },
                first_seen_ns: now,
            })
            .collect()
    }

    /// Paths of blocked threads ending at a thread that is not waiting for another one
    /// (running, sleeping, receiving from ANY, …). Reported, once per end thread, when the
    /// end has made no progress for `hung_after_ns` and some thread behind it has been
    /// blocked in the same state for as long. Paths that lead into a cycle are part of a
    /// deadlock instead.
    fn hung_chains(&self, edges: &[WaitEdge], index: &SnapshotIndex, now: u64) -> Vec<Alert> {
        let threshold = self.config.hung_after_ns;
        let mut next: BTreeMap<u64, WaitEdge> = BTreeMap::new();
        for edge in edges {
            next.entry(edge.from).or_insert(*edge);
        }
        let ends = chain_ends(&next);

        // For each end: its waiters as (depth, blocked_ns, endpoint).
        let mut waiters: BTreeMap<u64, Vec<(usize, u64, u64)>> = BTreeMap::new();
        for (&thread, &(end, depth)) in &ends {
            let blocked_ns = self
                .threads
                .get(&thread)
                .map_or(0, |h| now.saturating_sub(h.state_since_ns));
            waiters
                .entry(end)
                .or_default()
                .push((depth, blocked_ns, thread));
        }

        let mut alerts = Vec::new();
        for (end, waiting) in waiters {
            let Some(end_history) = self.threads.get(&end) else {
                continue;
            };
            let stalled_ns = now.saturating_sub(end_history.progress_since_ns);
            if stalled_ns < threshold || stalled_ns == 0 {
                continue;
            }
            // The longest chain whose head has been blocked long enough; ties go to the
            // longer-blocked, then the smaller endpoint.
            let Some(&(_, blocked_ns, head)) = waiting
                .iter()
                .filter(|(_, blocked, _)| *blocked >= threshold)
                .max_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| b.2.cmp(&a.2)))
            else {
                continue;
            };
            let mut chain = Vec::new();
            let mut at = head;
            while let Some(edge) = next.get(&at) {
                chain.push(*edge);
                at = edge.to;
                if at == end {
                    break;
                }
            }
            let others = waiting.len() - chain.len();
            let mut message = format!(
                "hung chain: {}, which has made no progress for {}; {} blocked for {}",
                index.path_text(&chain),
                duration_text(stalled_ns),
                index.label(head),
                duration_text(blocked_ns),
            );
            if others > 0 {
                message.push_str(&format!(
                    " ({others} more thread{} waiting)",
                    if others == 1 { "" } else { "s" }
                ));
            }
            alerts.push(Alert {
                kind: AlertKind::HungChain { chain, blocked_ns },
                first_seen_ns: now,
                message,
            });
        }
        alerts
    }

    fn cpu_hogs(
        &self,
        observations: &[ThreadObservation],
        index: &SnapshotIndex,
        now: u64,
    ) -> Vec<Alert> {
        observations
            .iter()
            .filter_map(|o| {
                let usage = o.usage?;
                (usage.percent >= self.config.cpu_hog_percent).then(|| Alert {
                    kind: AlertKind::CpuHog {
                        thread: o.endpoint,
                        percent: usage.percent,
                        window_ns: usage.span_ns,
                    },
                    first_seen_ns: now,
                    message: format!(
                        "cpu hog: {} used {}% of a CPU over the last {}",
                        index.label(o.endpoint),
                        usage.percent,
                        duration_text(usage.span_ns)
                    ),
                })
            })
            .collect()
    }

    fn memory_hogs(&self, snapshot: &Snapshot, now: u64) -> Vec<Alert> {
        let mut alerts: Vec<Alert> = snapshot
            .processes
            .iter()
            .filter(|p| p.memory_pages >= self.config.memory_hog_pages)
            .map(|p| Alert {
                kind: AlertKind::MemoryHog {
                    pid: p.pid,
                    pages: p.memory_pages,
                },
                first_seen_ns: now,
                message: format!(
                    "memory hog: {} (pid {}) maps {} pages ({} MiB)",
                    p.name,
                    p.pid,
                    p.memory_pages,
                    p.memory_pages.saturating_mul(PAGE_BYTES) >> 20
                ),
            })
            .collect();
        alerts.sort_by_key(|a| match a.kind {
            AlertKind::MemoryHog { pid, .. } => pid,
            _ => 0,
        });
        alerts.dedup_by_key(|a| AlertKey::of(&a.kind));
        alerts
    }

    /// Judges each thread's rates against its program's typical values (once the program
    /// has `anomaly_min_history` samples), then folds the snapshot into the program's
    /// statistics: one sample per program per snapshot, the busiest non-anomalous thread's
    /// rates.
    fn anomalies(
        &mut self,
        observations: &[ThreadObservation],
        index: &SnapshotIndex,
        now: u64,
    ) -> Vec<Alert> {
        let factor = u64::from(self.config.anomaly_factor);
        let mut alerts = Vec::new();
        let mut busiest: BTreeMap<&str, Rates> = BTreeMap::new();
        for o in observations {
            let Some(rates) = o.rates.filter(|_| !o.program.is_empty()) else {
                continue;
            };
            let mut anomalous = false;
            if let Some(stats) = self.programs.get(o.program) {
                if stats.samples >= self.config.anomaly_min_history {
                    let metrics = [
                        (
                            METRIC_CPU_PERMILLE,
                            rates.cpu_permille,
                            stats.cpu_permille.value(),
                            MIN_TYPICAL_CPU_PERMILLE,
                        ),
                        (
                            METRIC_MESSAGES_PER_SECOND,
                            rates.messages_per_second,
                            stats.messages_per_second.value(),
                            MIN_TYPICAL_MESSAGES_PER_SECOND,
                        ),
                    ];
                    for (metric, value, typical, floor) in metrics {
                        if value > factor.saturating_mul(typical.max(floor)) {
                            anomalous = true;
                            alerts.push(Alert {
                                kind: AlertKind::Anomaly {
                                    thread: o.endpoint,
                                    metric,
                                    value,
                                    typical,
                                },
                                first_seen_ns: now,
                                message: anomaly_message(
                                    &index.label(o.endpoint),
                                    o.program,
                                    metric,
                                    value,
                                    typical,
                                ),
                            });
                        }
                    }
                }
            }
            if !anomalous {
                let entry = busiest.entry(o.program).or_insert(Rates {
                    cpu_permille: 0,
                    messages_per_second: 0,
                });
                entry.cpu_permille = entry.cpu_permille.max(rates.cpu_permille);
                entry.messages_per_second =
                    entry.messages_per_second.max(rates.messages_per_second);
            }
        }
        for (program, rates) in busiest {
            match self.programs.get_mut(program) {
                Some(stats) => stats.add(rates, now),
                None => {
                    let mut stats = ProgramStats::default();
                    stats.add(rates, now);
                    self.programs.insert(String::from(program), stats);
                }
            }
        }
        alerts
    }

    /// Keeps at most `MAX_PROGRAMS` program statistics, forgetting the least recently seen.
    fn forget_programs(&mut self) {
        while self.programs.len() > MAX_PROGRAMS {
            let oldest = self
                .programs
                .iter()
                .min_by_key(|(_, s)| s.last_seen_ns)
                .map(|(name, _)| name.clone());
            match oldest {
                Some(name) => self.programs.remove(&name),
                None => break,
            };
        }
    }

    /// Replaces the active set with `current`, keeping `first_seen_ns` of conditions that
    /// persist, and returns those that are new.
    fn reconcile(&mut self, current: Vec<Alert>) -> Vec<Alert> {
        let mut raised = Vec::new();
        let mut first_seen = BTreeMap::new();
        let mut active = Vec::with_capacity(current.len());
        for mut alert in current {
            let key = AlertKey::of(&alert.kind);
            if first_seen.contains_key(&key) {
                continue;
            }
            match self.first_seen.get(&key) {
                Some(&since) => alert.first_seen_ns = since,
                None => raised.push(alert.clone()),
            }
            first_seen.insert(key, alert.first_seen_ns);
            active.push(alert);
        }
        self.first_seen = first_seen;
        self.active = active;
        raised
    }
}

/// For every thread with an outgoing edge whose path ends at a thread without one: that
/// end and the number of edges to it. Threads whose path runs into a cycle are left out.
fn chain_ends(next: &BTreeMap<u64, WaitEdge>) -> BTreeMap<u64, (u64, usize)> {
    // `None`: the thread's path leads into a cycle.
    let mut resolved: BTreeMap<u64, Option<(u64, usize)>> = BTreeMap::new();
    let mut path: Vec<u64> = Vec::new();
    let mut on_path: BTreeSet<u64> = BTreeSet::new();
    for &start in next.keys() {
        // Walk until an end, an already-resolved thread, or a thread on this walk (cycle).
        path.clear();
        on_path.clear();
        let mut at = start;
        let mut outcome = loop {
            if let Some(&known) = resolved.get(&at) {
                break known;
            }
            let Some(edge) = next.get(&at) else {
                break Some((at, 0)); // `at` waits for nobody: it is the end
            };
            if !on_path.insert(at) {
                break None;
            }
            path.push(at);
            at = edge.to;
        };
        // Resolve the walk backwards: each step adds one edge.
        for &thread in path.iter().rev() {
            outcome = outcome.map(|(end, depth)| (end, depth + 1));
            resolved.insert(thread, outcome);
        }
    }
    resolved
        .into_iter()
        .filter_map(|(thread, outcome)| outcome.map(|o| (thread, o)))
        .collect()
}

fn anomaly_message(label: &str, program: &str, metric: &str, value: u64, typical: u64) -> String {
    if metric == METRIC_CPU_PERMILLE {
        format!(
            "anomaly: {label} used {} of a CPU; {program}'s busiest thread typically uses {}",
            permille_text(value),
            permille_text(typical)
        )
    } else {
        format!(
            "anomaly: {label} sent {value} messages/s; {program}'s busiest thread typically sends {typical}/s"
        )
    }
}
