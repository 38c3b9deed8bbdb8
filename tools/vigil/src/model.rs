//! The model: what the host knows about the kernel, built from decoded frames.
//!
//! It keeps the latest snapshot, names (via [`Labels`]), per-thread and per-process rates
//! (CPU %, context switches/s, IPC messages/s) computed between consecutive snapshots, the
//! kernel's loss counters, event sequence gaps, a bounded event log, and the alerts of the
//! shared detector, which runs on every snapshot.

use std::collections::{HashMap, VecDeque};

use vigil_abi::trace::EventKind;
use vigil_detect::{Alert, AlertKind, Detector, DetectorConfig};
use vigil_wire::{
    CommandResult, CrashKind, CrashReport, DropReport, Event, Hello, KernelFrame, LogLine,
    MemoryReport, ProcessExit, ProcessInfo, ProcessResult, ProcessTree, ServiceList, Snapshot,
    ThreadInfo,
};

use crate::describe::{self, Labels};

/// How many entries the event log keeps.
pub const EVENT_LOG_CAPACITY: usize = 2000;

/// Rates over the interval between the two latest snapshots.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    /// Share of one CPU, 0–100.
    pub cpu_percent: f64,
    pub switches_per_s: f64,
    /// Messages sent plus received per second.
    pub ipc_per_s: f64,
}

/// CPU % from two cumulative CPU-time readings taken `dt_ns` apart.
pub fn cpu_percent(cpu_ns_before: u64, cpu_ns_after: u64, dt_ns: u64) -> f64 {
    if dt_ns == 0 {
        return 0.0;
    }
    cpu_ns_after.saturating_sub(cpu_ns_before) as f64 * 100.0 / dt_ns as f64
}

/// Per-second rate of a cumulative counter.
pub fn per_second(before: u64, after: u64, dt_ns: u64) -> f64 {
    if dt_ns == 0 {
        return 0.0;
    }
    after.saturating_sub(before) as f64 * 1e9 / dt_ns as f64
}

/// Rates of one thread between two snapshots.
pub fn thread_rates(before: &ThreadInfo, after: &ThreadInfo, dt_ns: u64) -> Rates {
    let (before, after) = (&before.counters, &after.counters);
    Rates {
        cpu_percent: cpu_percent(before.cpu_ns, after.cpu_ns, dt_ns),
        switches_per_s: per_second(
            before.voluntary_switches + before.involuntary_switches,
            after.voluntary_switches + after.involuntary_switches,
            dt_ns,
        ),
        ipc_per_s: per_second(
            before.messages_sent + before.messages_received,
            after.messages_sent + after.messages_received,
            dt_ns,
        ),
    }
}

/// What the log entry is about (the TUI colours and filters by it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogCategory {
    Switch,
    Event,
    Ipc,
    Log,
    Alert,
    Crash,
    Link,
}

/// One line of the event log.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEntry {
    /// Kernel time (0 when unknown).
    pub timestamp_ns: u64,
    pub category: LogCategory,
    pub text: String,
}

/// Something the model learned from a frame, in arrival order (what `vigil events` prints).
#[derive(Clone, Debug)]
pub enum Item {
    Hello(Hello),
    Event(Event),
    /// Events `first..first+count` never arrived (sequence gap).
    Lost {
        first: u64,
        count: u64,
    },
    Log(LogLine),
    /// A snapshot arrived; read it from [`Model::snapshot`].
    Snapshot,
    /// An alert raised by the detector on the latest snapshot.
    Alert(Alert),
    Drops(DropReport),
    Crash(CrashReport),
    CommandResult(CommandResult),
    /// A process ended (news, or from the kernel's history when this client attached late).
    Exit(ProcessExit),
    /// The answer to a process command (or a failed tree request).
    ProcessResult(ProcessResult),
    /// PM's process tree arrived; read it from [`Model::tree`].
    ProcessTree,
    /// RS's services arrived; read them from [`Model::services`].
    ServiceList,
}

/// Everything known about the kernel.
pub struct Model {
    pub hello: Option<Hello>,
    pub labels: Labels,
    snapshot: Option<Snapshot>,
    /// Rates by thread endpoint (threads in the latest snapshot that were in the previous one).
    pub thread_rates: HashMap<u64, Rates>,
    /// Rates by pid (CPU from the process's own counter, the rest summed over its threads).
    pub process_rates: HashMap<u32, Rates>,
    /// Share of the CPU not idle over the last interval.
    pub busy_percent: Option<f64>,
    pub drops: DropReport,
    /// Events missing from the sequence (gaps), since the tool started.
    pub lost_events: u64,
    next_seq: Option<u64>,
    pub events_seen: u64,
    pub snapshots_seen: u64,
    log: VecDeque<LogEntry>,
    detector: Detector,
    /// Every alert raised so far (bounded like the log).
    pub raised: VecDeque<Alert>,
    pub last_crash: Option<CrashReport>,
    /// The latest crashes (at most [`RECENT_CRASHES`]), oldest first: `top` keeps them in
    /// its alerts pane, where they do not scroll away.
    pub crashes: VecDeque<CrashReport>,
    /// The latest process ends (at most [`RECENT_EXITS`]), oldest first.
    pub exits: VecDeque<ProcessExit>,
    /// Free and total physical memory, as of the latest snapshot (kernels that send it).
    pub memory: Option<MemoryReport>,
    pub last_command: Option<CommandResult>,
    /// PM's process tree, as of its latest answer (None: none yet, or no PM).
    pub tree: Option<ProcessTree>,
    /// RS's services, as of its latest answer (None: none yet, or no RS).
    pub services: Option<ServiceList>,
}

/// How many process ends the model keeps.
pub const RECENT_EXITS: usize = 64;

/// How many crashes the model keeps for display.
pub const RECENT_CRASHES: usize = 8;

impl Default for Model {
    fn default() -> Self {
        Model::new()
    }
}

impl Model {
    pub fn new() -> Model {
        Model {
            hello: None,
            labels: Labels::default(),
            snapshot: None,
            thread_rates: HashMap::new(),
            process_rates: HashMap::new(),
            busy_percent: None,
            drops: DropReport::default(),
            lost_events: 0,
            next_seq: None,
            events_seen: 0,
            snapshots_seen: 0,
            log: VecDeque::new(),
            detector: Detector::new(DetectorConfig::default()),
            raised: VecDeque::new(),
            last_crash: None,
            exits: VecDeque::new(),
            memory: None,
            crashes: VecDeque::new(),
            last_command: None,
            tree: None,
            services: None,
        }
    }

    /// Process `pid`'s parent as PM's tree has it; None when PM did not start it (the
    /// kernel did, from the boot table) or there is no tree (no PM).
    pub fn parent_of(&self, pid: u32) -> Option<u32> {
        self.tree_entry(pid).map(|entry| entry.parent)
    }

    /// Process `pid`'s record in PM's tree (parent, arguments, start time), if PM started it.
    pub fn tree_entry(&self, pid: u32) -> Option<&vigil_wire::ProcessTreeEntry> {
        self.tree
            .as_ref()?
            .processes
            .iter()
            .find(|entry| entry.pid == pid)
    }

    /// The latest snapshot.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// Alerts the detector considers active now.
    pub fn active_alerts(&self) -> &[Alert] {
        self.detector.active()
    }

    /// The event log, oldest first.
    pub fn log(&self) -> impl DoubleEndedIterator<Item = &LogEntry> + ExactSizeIterator {
        self.log.iter()
    }

    /// Adds a line to the event log (also used for link changes).
    pub fn push_log(&mut self, timestamp_ns: u64, category: LogCategory, text: String) {
        if self.log.len() == EVENT_LOG_CAPACITY {
            self.log.pop_front();
        }
        self.log.push_back(LogEntry {
            timestamp_ns,
            category,
            text,
        });
    }

    fn note_crash(&mut self, crash: &CrashReport) {
        self.push_log(
            crash.timestamp_ns,
            LogCategory::Crash,
            format!("CRASH {}", crash_text(crash)),
        );
        self.last_crash = Some(crash.clone());
        if self.crashes.len() == RECENT_CRASHES {
            self.crashes.pop_front();
        }
        self.crashes.push_back(crash.clone());
    }

    /// Kernel time of the newest information (for log lines that have no time of their own).
    pub fn kernel_now(&self) -> u64 {
        self.snapshot.as_ref().map_or(0, |s| s.timestamp_ns)
    }

    /// Folds one frame into the model and returns what it contained, in order.
    pub fn apply(&mut self, frame: KernelFrame) -> Vec<Item> {
        match frame {
            KernelFrame::Hello(hello) => {
                if self
                    .hello
                    .as_ref()
                    .is_some_and(|seen| same_kernel_run(seen, &hello))
                {
                    // The same kernel again: this client re-sent its Hello (its first answer
                    // was slow), or another client began a session. Not a new timeline, and
                    // not a second `hello` item; only the settings it states are new.
                    self.hello = Some(hello);
                    return Vec::new();
                }
                // A (re)started kernel: its sequence numbers start afresh.
                self.next_seq = None;
                self.push_log(
                    hello.now_ns,
                    LogCategory::Link,
                    format!(
                        "hello: kernel {} (protocol {})",
                        hello.kernel_version, hello.protocol_version
                    ),
                );
                self.hello = Some(hello.clone());
                vec![Item::Hello(hello)]
            }
            KernelFrame::Events(events) => {
                let mut items = Vec::with_capacity(events.len());
                for event in events {
                    if let Some(expected) = self.next_seq {
                        if event.seq > expected {
                            let count = event.seq - expected;
                            self.lost_events += count;
                            self.push_log(
                                event.timestamp_ns,
                                LogCategory::Link,
                                format!("lost {count} events"),
                            );
                            items.push(Item::Lost {
                                first: expected,
                                count,
                            });
                        }
                    }
                    self.next_seq = Some(event.seq.wrapping_add(1));
                    self.events_seen += 1;
                    self.learn_from_event(&event);
                    let category = match EventKind::from_u16(event.kind) {
                        Some(EventKind::ContextSwitch) => LogCategory::Switch,
                        Some(EventKind::IpcSend | EventKind::IpcReceive | EventKind::IpcNotify) => {
                            LogCategory::Ipc
                        }
                        Some(EventKind::Crash) => LogCategory::Crash,
                        _ => LogCategory::Event,
                    };
                    // A `log` trace event only marks where a kernel log line was written;
                    // the line itself arrives as a Log frame and is shown from that.
                    if EventKind::from_u16(event.kind) != Some(EventKind::Log) {
                        let text = describe::event_text(&event, &self.labels);
                        self.push_log(event.timestamp_ns, category, text);
                    }
                    items.push(Item::Event(event));
                }
                items
            }
            KernelFrame::Snapshot(snapshot) => {
                let mut items = vec![Item::Snapshot];
                let alerts = self.apply_snapshot(snapshot);
                for alert in alerts {
                    self.push_log(
                        alert.first_seen_ns,
                        LogCategory::Alert,
                        format!("ALERT {}", alert.message),
                    );
                    if self.raised.len() == EVENT_LOG_CAPACITY {
                        self.raised.pop_front();
                    }
                    self.raised.push_back(alert.clone());
                    items.push(Item::Alert(alert));
                }
                items
            }
            KernelFrame::Drops(drops) => {
                if drops != self.drops {
                    self.push_log(
                        self.kernel_now(),
                        LogCategory::Link,
                        format!(
                            "kernel drops: {} events, {} frames, {} bad commands",
                            drops.events_dropped, drops.frames_dropped, drops.malformed_commands
                        ),
                    );
                }
                self.drops = drops;
                vec![Item::Drops(drops)]
            }
            KernelFrame::Log(line) => {
                let level =
                    vigil_abi::log::LogLevel::from_u8(line.level).map_or("?    ", |l| l.label());
                self.push_log(
                    line.timestamp_ns,
                    LogCategory::Log,
                    format!("{level} {}", line.text),
                );
                vec![Item::Log(line)]
            }
            KernelFrame::Crash(crash) => {
                self.note_crash(&crash);
                vec![Item::Crash(crash)]
            }
            KernelFrame::Memory(memory) => {
                // Read with the snapshot that follows it; not an item of its own.
                self.memory = Some(memory);
                Vec::new()
            }
            KernelFrame::Exit(exit) => {
                let known =
                    |e: &ProcessExit| e.pid == exit.pid && e.timestamp_ns == exit.timestamp_ns;
                if self.exits.iter().any(known) {
                    // The history resent after a Hello: this client has it already.
                    return Vec::new();
                }
                let mut items = Vec::with_capacity(2);
                if let Some(crash) = &exit.crash {
                    // A crash from before this client attached: as good as the live one.
                    if !self.crashes.contains(crash) {
                        self.note_crash(crash);
                        items.push(Item::Crash(crash.clone()));
                    }
                }
                self.push_log(
                    exit.timestamp_ns,
                    LogCategory::Link,
                    format!(
                        "exit: {} (pid {}) status {}{}",
                        exit.name,
                        exit.pid,
                        exit.status as i64,
                        if exit.from_history {
                            " (before this client attached)"
                        } else {
                            ""
                        }
                    ),
                );
                if self.exits.len() == RECENT_EXITS {
                    self.exits.pop_front();
                }
                self.exits.push_back(exit.clone());
                items.push(Item::Exit(exit));
                items
            }
            KernelFrame::CommandResult(result) => {
                self.push_log(
                    self.kernel_now(),
                    LogCategory::Link,
                    format!(
                        "command {}: {}",
                        if result.ok { "ok" } else { "failed" },
                        result.message
                    ),
                );
                self.last_command = Some(result.clone());
                vec![Item::CommandResult(result)]
            }
            KernelFrame::ProcessResult(result) => {
                if result.outcome == vigil_abi::host_command::Outcome::NoProcessManager as u8 {
                    // Nobody keeps a tree: PPIDs are unknown, not stale.
                    self.tree = None;
                }
                if result.outcome == vigil_abi::host_command::Outcome::NoServiceManager as u8 {
                    self.services = None;
                }
                // Not logged here: `top` logs the answers to its own commands (and not those
                // to its periodic tree requests).
                vec![Item::ProcessResult(result)]
            }
            KernelFrame::ProcessTree(tree) => {
                self.tree = Some(tree);
                vec![Item::ProcessTree]
            }
            KernelFrame::ServiceList(list) => {
                self.services = Some(list);
                vec![Item::ServiceList]
            }
        }
    }

    fn learn_from_event(&mut self, event: &Event) {
        if let Some(EventKind::ProcessCreate | EventKind::ThreadCreate) =
            EventKind::from_u16(event.kind)
        {
            self.labels.learn_pid(event.thread, event.args[0] as u32)
        }
    }

    /// Computes rates against the previous snapshot, runs the detector, keeps the snapshot.
    fn apply_snapshot(&mut self, snapshot: Snapshot) -> Vec<Alert> {
        self.snapshots_seen += 1;
        self.labels.learn(&snapshot);
        self.thread_rates.clear();
        self.process_rates.clear();
        self.busy_percent = None;
        if let Some(prev) = &self.snapshot {
            // A kernel restart (time going backwards) has no meaningful delta.
            if snapshot.timestamp_ns > prev.timestamp_ns {
                let dt = snapshot.timestamp_ns - prev.timestamp_ns;
                let before: HashMap<u64, &ThreadInfo> =
                    prev.threads.iter().map(|t| (t.endpoint, t)).collect();
                for thread in &snapshot.threads {
                    if let Some(old) = before.get(&thread.endpoint) {
                        self.thread_rates
                            .insert(thread.endpoint, thread_rates(old, thread, dt));
                    }
                }
                let old_processes: HashMap<u32, &ProcessInfo> =
                    prev.processes.iter().map(|p| (p.pid, p)).collect();
                for process in &snapshot.processes {
                    let mut rates = Rates::default();
                    for thread in snapshot.threads.iter().filter(|t| t.pid == process.pid) {
                        if let Some(r) = self.thread_rates.get(&thread.endpoint) {
                            rates.cpu_percent += r.cpu_percent;
                            rates.switches_per_s += r.switches_per_s;
                            rates.ipc_per_s += r.ipc_per_s;
                        }
                    }
                    if let Some(old) = old_processes.get(&process.pid) {
                        // The process counter also covers threads that exited in between.
                        rates.cpu_percent = cpu_percent(old.cpu_ns, process.cpu_ns, dt);
                    }
                    self.process_rates.insert(process.pid, rates);
                }
                let idle = cpu_percent(prev.idle_ns, snapshot.idle_ns, dt);
                self.busy_percent = Some((100.0 - idle).clamp(0.0, 100.0));
            }
        }
        let alerts = self.detector.observe(&snapshot);
        self.snapshot = Some(snapshot);
        alerts
    }
}

/// A process command's outcome by name ("ok", "refused", …), or "outcome N" for a code this
/// tool does not know.
pub fn outcome_text(result: &ProcessResult) -> String {
    result
        .outcome_name()
        .map_or_else(|| format!("outcome {}", result.outcome), str::to_string)
}

/// A service state code's name ("running", "held-down", …), or "state N" for a code this
/// tool does not know.
pub fn service_state_name(state: u8) -> String {
    vigil_abi::rs::ServiceState::from_code(u64::from(state))
        .map_or_else(|| format!("state {state}"), |s| s.name().to_string())
}

/// A service's last failure as RS says it ("exception #PF (vector 14)", "none").
pub fn failure_text(service: &vigil_wire::ServiceEntry) -> String {
    vigil_abi::rs::FailureText {
        reason: service.last_reason,
        detail: service.last_detail,
    }
    .to_string()
}

/// Short name of an alert kind ("deadlock", "cpu-hog", …), stable for JSON.
pub fn alert_kind_name(kind: &AlertKind) -> &'static str {
    match kind {
        AlertKind::Deadlock { .. } => "deadlock",
        AlertKind::HungChain { .. } => "hung-chain",
        AlertKind::CpuHog { .. } => "cpu-hog",
        AlertKind::MemoryHog { .. } => "memory-hog",
        AlertKind::Anomaly { .. } => "anomaly",
    }
}

/// Name of a crash kind, stable for JSON.
pub fn crash_kind_name(kind: CrashKind) -> &'static str {
    match kind {
        CrashKind::KernelPanic => "kernel-panic",
        CrashKind::KernelFault => "kernel-fault",
        CrashKind::UserFault => "user-fault",
        CrashKind::KernelLockup => "kernel-lockup",
        CrashKind::UserPanic => "user-panic",
    }
}

/// "user-fault in shell (pid 7): page fault at 0x0".
pub fn crash_text(crash: &CrashReport) -> String {
    match &crash.process {
        Some((name, pid)) => format!(
            "{} in {name} (pid {pid}): {}",
            crash_kind_name(crash.kind),
            crash.message
        ),
        None => format!("{}: {}", crash_kind_name(crash.kind), crash.message),
    }
}

/// Whether `later` comes from the kernel run that said `earlier`: the same version and TSC
/// rate, and kernel time moved on (a reboot starts it from zero again; the very same Hello
/// again is a recording or a restarted link replaying it, so it starts a timeline too).
fn same_kernel_run(earlier: &Hello, later: &Hello) -> bool {
    later.kernel_version == earlier.kernel_version
        && later.tsc_hz == earlier.tsc_hz
        && later.now_ns > earlier.now_ns
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_abi::introspect::{state_code, ThreadCounters};
    use vigil_abi::Endpoint;

    #[test]
    fn pm_s_tree_gives_parents_and_arguments() {
        let mut model = Model::new();
        assert_eq!(model.parent_of(5), None, "no tree yet");
        let entry = |pid, parent, arguments: &str| vigil_wire::ProcessTreeEntry {
            pid,
            parent,
            state: 1,
            name: "pm_child".into(),
            arguments: arguments.into(),
            ..Default::default()
        };
        model.apply(KernelFrame::ProcessTree(ProcessTree {
            request: 1,
            timestamp_ns: 1,
            manager: 2,
            processes: vec![entry(5, 3, "sleep"), entry(6, 2, "")],
        }));
        assert_eq!(model.parent_of(5), Some(3));
        assert_eq!(
            model.tree_entry(5).map(|e| e.arguments.as_str()),
            Some("sleep")
        );
        assert_eq!(model.parent_of(1), None, "not PM's: the kernel started it");
    }

    #[test]
    fn cpu_percent_is_delta_cpu_over_delta_time() {
        assert_eq!(cpu_percent(0, 500_000_000, 1_000_000_000), 50.0);
        assert_eq!(cpu_percent(100, 100, 1_000), 0.0);
        assert_eq!(
            cpu_percent(200, 100, 1_000),
            0.0,
            "counter going backwards is not negative"
        );
        assert_eq!(cpu_percent(0, 10, 0), 0.0, "no interval, no rate");
        assert_eq!(per_second(10, 30, 500_000_000), 40.0);
    }

    fn thread(slot: u16, pid: u32, cpu_ns: u64, switches: u64, sent: u64) -> ThreadInfo {
        ThreadInfo {
            endpoint: Endpoint::new(slot, 1).0,
            pid,
            state: state_code::READY,
            wait_target: Endpoint::NONE.0,
            counters: ThreadCounters {
                cpu_ns,
                voluntary_switches: switches,
                messages_sent: sent,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn snapshot(generation: u64, t_ns: u64, idle_ns: u64, threads: Vec<ThreadInfo>) -> Snapshot {
        Snapshot {
            generation,
            timestamp_ns: t_ns,
            idle_ns,
            processes: vec![ProcessInfo {
                pid: 1,
                name: "spin".into(),
                threads: threads.len() as u32,
                cpu_ns: threads.iter().map(|t| t.counters.cpu_ns).sum(),
                ..Default::default()
            }],
            threads,
        }
    }

    #[test]
    fn snapshots_give_rates() {
        let mut model = Model::new();
        model.apply(KernelFrame::Snapshot(snapshot(
            1,
            1_000_000_000,
            0,
            vec![thread(1, 1, 0, 0, 0), thread(2, 1, 0, 0, 0)],
        )));
        assert!(model.thread_rates.is_empty(), "one snapshot gives no rates");
        model.apply(KernelFrame::Snapshot(snapshot(
            2,
            1_500_000_000,
            100_000_000,
            vec![
                thread(1, 1, 250_000_000, 10, 0),
                thread(2, 1, 150_000_000, 0, 40),
            ],
        )));
        let r1 = model.thread_rates[&Endpoint::new(1, 1).0];
        let r2 = model.thread_rates[&Endpoint::new(2, 1).0];
        assert_eq!(r1.cpu_percent, 50.0);
        assert_eq!(r1.switches_per_s, 20.0);
        assert_eq!(r2.cpu_percent, 30.0);
        assert_eq!(r2.ipc_per_s, 80.0);
        assert_eq!(model.process_rates[&1].cpu_percent, 80.0);
        assert_eq!(model.busy_percent, Some(80.0));
    }

    #[test]
    fn sequence_gaps_count_as_lost_and_hello_resets() {
        let mut model = Model::new();
        let event = |seq| Event {
            seq,
            timestamp_ns: seq,
            kind: EventKind::Unblock as u16,
            thread: 0,
            args: [0; 3],
        };
        let items = model.apply(KernelFrame::Events(vec![event(1), event(2), event(5)]));
        assert_eq!(model.lost_events, 2);
        assert!(matches!(items[2], Item::Lost { first: 3, count: 2 }));
        model.apply(KernelFrame::Hello(Hello {
            protocol_version: 1,
            kernel_version: "test".into(),
            tsc_hz: 1,
            now_ns: 0,
            event_mask: 0,
            snapshot_period_ms: 100,
        }));
        model.apply(KernelFrame::Events(vec![event(0)]));
        assert_eq!(
            model.lost_events, 2,
            "a restarted kernel's sequence is not a gap"
        );
        assert_eq!(model.events_seen, 4);
    }

    #[test]
    fn exits_are_known_once_and_a_crash_from_history_counts_as_a_crash() {
        let report = CrashReport {
            kind: CrashKind::UserFault,
            timestamp_ns: 10,
            process: Some(("crash_null".into(), 3)),
            message: "page fault".into(),
            backtrace: vec![0x40_1000],
        };
        let exit = |pid, name: &str, crash: Option<CrashReport>, from_history| ProcessExit {
            pid,
            name: name.into(),
            status: if crash.is_some() { 142 } else { 0 },
            timestamp_ns: 11 + u64::from(pid),
            crash,
            from_history,
        };
        // Live: the crash frame, then the end; the history later adds nothing.
        let mut live = Model::new();
        live.apply(KernelFrame::Crash(report.clone()));
        let items = live.apply(KernelFrame::Exit(exit(
            3,
            "crash_null",
            Some(report.clone()),
            false,
        )));
        assert!(matches!(items.as_slice(), [Item::Exit(_)]), "{items:?}");
        let again = live.apply(KernelFrame::Exit(exit(
            3,
            "crash_null",
            Some(report.clone()),
            true,
        )));
        assert!(again.is_empty());
        assert_eq!(live.crashes.len(), 1);
        // Late: only the history; the crash is reported from it, once.
        let mut late = Model::new();
        let items = late.apply(KernelFrame::Exit(exit(
            3,
            "crash_null",
            Some(report.clone()),
            true,
        )));
        assert!(
            matches!(items.as_slice(), [Item::Crash(_), Item::Exit(_)]),
            "{items:?}"
        );
        assert_eq!(late.last_crash.as_ref(), Some(&report));
        let items = late.apply(KernelFrame::Exit(exit(4, "hello", None, true)));
        assert!(matches!(items.as_slice(), [Item::Exit(_)]));
        assert_eq!(late.exits.len(), 2);
        assert!(late
            .apply(KernelFrame::Exit(exit(4, "hello", None, true)))
            .is_empty());
    }

    #[test]
    fn a_repeated_hello_of_the_same_kernel_run_is_no_new_item() {
        let hello = |now_ns, event_mask| {
            KernelFrame::Hello(Hello {
                protocol_version: 2,
                kernel_version: "test".into(),
                tsc_hz: 1_000,
                now_ns,
                event_mask,
                snapshot_period_ms: 100,
            })
        };
        let event = |seq| Event {
            seq,
            timestamp_ns: seq,
            kind: EventKind::Unblock as u16,
            thread: 0,
            args: [0; 3],
        };
        let mut model = Model::new();
        assert!(matches!(
            model.apply(hello(50, 1)).as_slice(),
            [Item::Hello(_)]
        ));
        model.apply(KernelFrame::Events(vec![event(7)]));
        // The client's second Hello, answered later in the same run: nothing new to print,
        // the sequence carries on (event 8 is no restart), the settings are the new ones.
        assert!(model.apply(hello(900, 3)).is_empty());
        assert_eq!(model.hello.as_ref().map(|h| h.event_mask), Some(3));
        let items = model.apply(KernelFrame::Events(vec![event(9)]));
        assert!(
            matches!(items[0], Item::Lost { first: 8, count: 1 }),
            "{items:?}"
        );
        // A reboot (kernel time back near zero) is a new run: a new hello item.
        assert!(matches!(
            model.apply(hello(40, 1)).as_slice(),
            [Item::Hello(_)]
        ));
    }
}
