//! `vigil events`: one line per event, log line, snapshot, alert, … for scripts.
//!
//! Text lines start with the kernel timestamp in seconds; JSON lines are objects whose
//! `"type"` is one of `hello`, `event`, `lost`, `log`, `snapshot`, `alert`, `drops`, `crash`,
//! `command_result`. Field names are stable. Link changes and the final health summary go to
//! stderr, so stdout is identical for a live session and a replay of its recording. With
//! [`CrashSymbols`] (`--kernel-elf`, `--programs`) a crash's backtrace is symbolised: one
//! frame a line in text, a `frames` array in JSON.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{json, Map, Value};
use vigil_detect::{Alert, AlertKind};
use vigil_wire::{compatible, DropReport, Snapshot, PROTOCOL_VERSION};

use crate::describe::{self, Labels};
use crate::link::{Link, LinkState};
use crate::model::{alert_kind_name, crash_kind_name, crash_text, Item, Model};
use crate::source::{Source, SourceMsg};
use crate::symbols::CrashSymbols;

/// Output options.
#[derive(Clone, Debug, Default)]
pub struct Format {
    pub json: bool,
    /// Print every thread and process of a snapshot, not just a summary.
    pub full_snapshots: bool,
    /// Only these event kinds (names as in `vigil_abi::trace::EventKind::name`); empty = all.
    pub kinds: Vec<String>,
}

/// When to stop.
#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    pub duration: Option<Duration>,
    /// Stop after this many trace events were printed.
    pub count: Option<u64>,
    /// Stop when the first connection closes instead of reconnecting.
    pub once: bool,
}

/// Formats model items as lines.
pub struct Printer {
    pub format: Format,
    /// Symbolises crash backtraces (`None`: raw addresses only).
    pub symbols: Option<CrashSymbols>,
    last_drops: Option<DropReport>,
}

impl Printer {
    pub fn new(format: Format) -> Printer {
        Printer {
            format,
            symbols: None,
            last_drops: None,
        }
    }

    /// The line for `item` (without newline), or `None` if it is filtered out.
    pub fn line(&mut self, item: &Item, model: &Model) -> Option<String> {
        if let Item::Drops(drops) = item {
            // Drop reports repeat; print the first and every change.
            if self.last_drops == Some(*drops) {
                return None;
            }
            self.last_drops = Some(*drops);
        }
        if let Item::Event(event) = item {
            if !self.format.kinds.is_empty()
                && !self.format.kinds.contains(&describe::kind_name(event.kind))
            {
                return None;
            }
        }
        let symbols = self.symbols.as_ref();
        Some(if self.format.json {
            json_line(item, model, self.format.full_snapshots, symbols).to_string()
        } else {
            text_line(item, model, self.format.full_snapshots, symbols)
        })
    }
}

fn alert_threads(alert: &Alert, labels: &Labels) -> Vec<String> {
    match &alert.kind {
        AlertKind::Deadlock { cycle } => {
            cycle.iter().map(|edge| labels.thread(edge.from)).collect()
        }
        AlertKind::HungChain { chain, .. } => {
            let mut threads: Vec<String> =
                chain.iter().map(|edge| labels.thread(edge.from)).collect();
            threads.extend(chain.last().map(|edge| labels.thread(edge.to)));
            threads
        }
        AlertKind::CpuHog { thread, .. } | AlertKind::Anomaly { thread, .. } => {
            vec![labels.thread(*thread)]
        }
        AlertKind::MemoryHog { pid, .. } => labels
            .process(*pid)
            .map(|name| vec![name.to_string()])
            .unwrap_or_default(),
    }
}

/// Largest integer a JSON reader using IEEE doubles (JavaScript, jq) reads exactly: 2^53 − 1.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Replaces every integer above [`MAX_SAFE_INTEGER`] in `value` by its decimal digits as a
/// string (`18446744073709551614` → `"18446744073709551614"`), so that jq and JavaScript do
/// not round it; smaller integers stay numbers.
pub fn stringify_big_integers(value: &mut Value) {
    match value {
        Value::Number(number) => {
            if let Some(n) = number.as_u64().filter(|n| *n > MAX_SAFE_INTEGER) {
                *value = Value::String(n.to_string());
            }
        }
        Value::Array(items) => items.iter_mut().for_each(stringify_big_integers),
        Value::Object(map) => map.values_mut().for_each(stringify_big_integers),
        _ => {}
    }
}

/// The JSON object for one item; with `symbols`, a crash also gets `frames`, its backtrace
/// symbolised. Integers above 2^53 − 1 are strings ([`stringify_big_integers`]).
pub fn json_line(
    item: &Item,
    model: &Model,
    full_snapshots: bool,
    symbols: Option<&CrashSymbols>,
) -> Value {
    let mut value = json_value(item, model, full_snapshots, symbols);
    stringify_big_integers(&mut value);
    value
}

fn json_value(
    item: &Item,
    model: &Model,
    full_snapshots: bool,
    symbols: Option<&CrashSymbols>,
) -> Value {
    let labels = &model.labels;
    match item {
        Item::Hello(hello) => json!({
            "type": "hello",
            "protocol_version": hello.protocol_version,
            "compatible": compatible(hello.protocol_version),
            "kernel_version": hello.kernel_version,
            "tsc_hz": hello.tsc_hz,
            "now_ns": hello.now_ns,
            "event_mask": hello.event_mask,
            "snapshot_period_ms": hello.snapshot_period_ms,
        }),
        Item::Event(event) => {
            let mut args = Map::new();
            for (name, value) in describe::event_args(event, labels) {
                args.insert(name.into(), value.to_json());
            }
            let thread = if event.kind == 0 {
                labels.cpu_thread(event.thread)
            } else {
                labels.thread(event.thread)
            };
            json!({
                "type": "event",
                "seq": event.seq,
                "ts_ns": event.timestamp_ns,
                "kind": describe::kind_name(event.kind),
                "thread": thread,
                "endpoint": format!("{:?}", vigil_abi::Endpoint(event.thread)),
                "args": args,
                "raw_args": event.args,
            })
        }
        Item::Lost { first, count } => {
            json!({ "type": "lost", "first_seq": first, "count": count })
        }
        Item::Log(line) => json!({
            "type": "log",
            "seq": line.seq,
            "ts_ns": line.timestamp_ns,
            "level": vigil_abi::log::LogLevel::from_u8(line.level).map_or_else(|| line.level.to_string(), |l| l.label().trim().to_string()),
            "text": line.text,
        }),
        Item::Snapshot => {
            let Some(snapshot) = model.snapshot() else {
                return json!({ "type": "snapshot" });
            };
            let mut value = json!({
                "type": "snapshot",
                "generation": snapshot.generation,
                "ts_ns": snapshot.timestamp_ns,
                "thread_count": snapshot.threads.len(),
                "process_count": snapshot.processes.len(),
                "blocked": blocked(snapshot),
                "busy_percent": model.busy_percent.map(round2),
                "active_alerts": model.active_alerts().len(),
            });
            if let Some(memory) = &model.memory {
                let bytes = u64::from(memory.frame_bytes);
                value["memory_total_bytes"] = json!(memory.total_frames * bytes);
                value["memory_free_bytes"] = json!(memory.free_frames * bytes);
            }
            if full_snapshots {
                value["threads"] = snapshot
                    .threads
                    .iter()
                    .map(|t| {
                        let rates = model
                            .thread_rates
                            .get(&t.endpoint)
                            .copied()
                            .unwrap_or_default();
                        json!({
                            "thread": labels.thread(t.endpoint),
                            "endpoint": format!("{:?}", vigil_abi::Endpoint(t.endpoint)),
                            "pid": t.pid,
                            "state": describe::state_name(t.state()),
                            "state_code": t.state,
                            "wait_target": format!("{:?}", vigil_abi::Endpoint(t.wait_target)),
                            "wait_argument": t.wait_argument,
                            "wait": describe::thread_state_text(t, labels, snapshot.timestamp_ns),
                            "priority": t.priority,
                            "cpu_ns": t.counters.cpu_ns,
                            "cpu_percent": round2(rates.cpu_percent),
                            "switches_per_s": round2(rates.switches_per_s),
                            "ipc_per_s": round2(rates.ipc_per_s),
                            "voluntary_switches": t.counters.voluntary_switches,
                            "involuntary_switches": t.counters.involuntary_switches,
                            "syscalls": t.counters.syscalls,
                            "messages_sent": t.counters.messages_sent,
                            "messages_received": t.counters.messages_received,
                            "notifications_received": t.counters.notifications_received,
                            "page_faults": t.counters.page_faults,
                            "kernel_calls": t.counters.kernel_calls,
                        })
                    })
                    .collect();
                value["processes"] = snapshot
                    .processes
                    .iter()
                    .map(|p| {
                        let rates = model.process_rates.get(&p.pid).copied().unwrap_or_default();
                        json!({
                            "pid": p.pid,
                            "name": p.name,
                            "main_thread": format!("{:?}", vigil_abi::Endpoint(p.main_thread)),
                            "threads": p.threads,
                            "memory_pages": p.memory_pages,
                            "peak_pages": p.peak_pages,
                            "virtual_bytes": p.virtual_bytes,
                            "shared_pages": p.shared_pages,
                            "faults_not_present": p.faults_not_present,
                            "faults_protection": p.faults_protection,
                            "stopped_by": p.stopped_by,
                            "priority": p.priority,
                            "grants": p.grants,
                            "cpu_ns": p.cpu_ns,
                            "cpu_percent": round2(rates.cpu_percent),
                        })
                    })
                    .collect();
            }
            value
        }
        Item::Alert(alert) => json!({
            "type": "alert",
            "kind": alert_kind_name(&alert.kind),
            "first_seen_ns": alert.first_seen_ns,
            "message": alert.message,
            "threads": alert_threads(alert, labels),
        }),
        Item::Drops(drops) => json!({
            "type": "drops",
            "events_dropped": drops.events_dropped,
            "frames_dropped": drops.frames_dropped,
            "malformed_commands": drops.malformed_commands,
        }),
        Item::Crash(crash) => {
            let mut value = json!({
                "type": "crash",
                "kind": crash_kind_name(crash.kind),
                "ts_ns": crash.timestamp_ns,
                "process": crash.process.as_ref().map(|(name, _)| name),
                "pid": crash.process.as_ref().map(|(_, pid)| pid),
                "message": crash.message,
                "backtrace": crash.backtrace.iter().map(|a| format!("{a:#x}")).collect::<Vec<_>>(),
            });
            if let Some(symbols) = symbols {
                value["frames"] = symbols
                    .frames(crash)
                    .iter()
                    .map(|frame| frame.to_json())
                    .collect();
            }
            value
        }
        Item::CommandResult(result) => json!({
            "type": "command_result",
            "ok": result.ok,
            "message": result.message,
        }),
        Item::Exit(exit) => json!({
            "type": "exit",
            "ts_ns": exit.timestamp_ns,
            "process": exit.name,
            "pid": exit.pid,
            "status": exit.status as i64,
            "crashed": exit.crash.is_some(),
            "from_history": exit.from_history,
        }),
        Item::ProcessResult(result) => json!({
            "type": "process_result",
            "request": result.request,
            "ok": result.ok(),
            "outcome": result.outcome,
            "outcome_name": crate::model::outcome_text(result),
            "message": result.message,
        }),
        Item::ProcessTree => {
            let tree = model.tree.as_ref();
            json!({
                "type": "process_tree",
                "ts_ns": tree.map_or(0, |t| t.timestamp_ns),
                "request": tree.map_or(0, |t| t.request),
                "manager": tree.map_or(0, |t| t.manager),
                "processes": tree.map_or_else(Vec::new, |t| t
                    .processes
                    .iter()
                    .map(|p| json!({
                        "pid": p.pid,
                        "parent": p.parent,
                        "state": p.state,
                        "exit_status": p.exit_status,
                        "start_ns": p.start_ns,
                        "name": p.name,
                        "arguments": p.arguments,
                    }))
                    .collect()),
            })
        }
        Item::ServiceList => {
            let list = model.services.as_ref();
            json!({
                "type": "service_list",
                "ts_ns": list.map_or(0, |l| l.timestamp_ns),
                "request": list.map_or(0, |l| l.request),
                "supervisor": list.map_or(0, |l| l.supervisor),
                "services": list.map_or_else(Vec::new, |l| l
                    .services
                    .iter()
                    .map(|s| json!({
                        "index": s.index,
                        "name": s.name,
                        "program": s.program,
                        "version": s.version,
                        "state": s.state,
                        "state_name": crate::model::service_state_name(s.state),
                        "held": s.held,
                        "pid": s.pid,
                        "restarts": s.restarts,
                        "failures_in_a_row": s.failures_in_a_row,
                        "last_reason": s.last_reason,
                        "last_detail": s.last_detail,
                        "last_failure": crate::model::failure_text(s),
                        "last_failure_ns": s.last_failure_ns,
                        "started_ns": s.started_ns,
                    }))
                    .collect()),
            })
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn blocked(snapshot: &Snapshot) -> usize {
    snapshot
        .threads
        .iter()
        .filter(|t| t.state().is_some_and(|s| s.is_blocked()))
        .count()
}

/// The text line for one item; with `symbols`, a crash's backtrace follows it one frame a
/// line, symbolised.
pub fn text_line(
    item: &Item,
    model: &Model,
    full_snapshots: bool,
    symbols: Option<&CrashSymbols>,
) -> String {
    let labels = &model.labels;
    let ts = describe::timestamp_text;
    match item {
        Item::Hello(hello) => format!(
            "{} hello          kernel {} protocol {}{} tsc {} Hz, snapshots every {} ms",
            ts(hello.now_ns),
            hello.kernel_version,
            hello.protocol_version,
            if compatible(hello.protocol_version) {
                String::new()
            } else {
                format!(" (INCOMPATIBLE: this vigil speaks {PROTOCOL_VERSION})")
            },
            hello.tsc_hz,
            hello.snapshot_period_ms
        ),
        Item::Event(event) => format!(
            "{} {}",
            ts(event.timestamp_ns),
            describe::event_text(event, labels)
        ),
        Item::Lost { first, count } => format!(
            "{} lost           {count} events (seq {first}..{})",
            ts(model.kernel_now()),
            first + count - 1
        ),
        Item::Log(line) => format!(
            "{} log            {} {}",
            ts(line.timestamp_ns),
            vigil_abi::log::LogLevel::from_u8(line.level).map_or("?    ", |l| l.label()),
            line.text
        ),
        Item::Snapshot => {
            let Some(snapshot) = model.snapshot() else {
                return "snapshot".into();
            };
            let mut text = format!(
                "{} snapshot       gen {}: {} threads, {} processes, {} blocked",
                ts(snapshot.timestamp_ns),
                snapshot.generation,
                snapshot.threads.len(),
                snapshot.processes.len(),
                blocked(snapshot)
            );
            if let Some(busy) = model.busy_percent {
                text.push_str(&format!(", busy {busy:.1}%"));
            }
            if full_snapshots {
                for t in &snapshot.threads {
                    let rates = model
                        .thread_rates
                        .get(&t.endpoint)
                        .copied()
                        .unwrap_or_default();
                    text.push_str(&format!(
                        "\n    {:<24} pid {:<4} {:>6.1}% cpu  {}",
                        labels.thread(t.endpoint),
                        t.pid,
                        rates.cpu_percent,
                        describe::thread_state_text(t, labels, snapshot.timestamp_ns)
                    ));
                }
            }
            text
        }
        Item::Alert(alert) => format!(
            "{} ALERT          {}",
            ts(alert.first_seen_ns),
            alert.message
        ),
        Item::Drops(drops) => format!(
            "{} drops          {} events, {} frames, {} bad commands dropped by the kernel",
            ts(model.kernel_now()),
            drops.events_dropped,
            drops.frames_dropped,
            drops.malformed_commands
        ),
        Item::Crash(crash) => {
            let mut text = format!(
                "{} CRASH          {}",
                ts(crash.timestamp_ns),
                crash_text(crash)
            );
            if !crash.backtrace.is_empty() {
                text.push_str(" backtrace:");
                match symbols {
                    Some(symbols) => {
                        for frame in symbols.frames(crash) {
                            text.push_str("\n  ");
                            text.push_str(&frame.text());
                        }
                    }
                    None => {
                        for address in &crash.backtrace {
                            text.push_str(&format!(" {address:#x}"));
                        }
                    }
                }
            }
            text
        }
        Item::CommandResult(result) => format!(
            "{} command        {}: {}",
            ts(model.kernel_now()),
            if result.ok { "ok" } else { "failed" },
            result.message
        ),
        Item::Exit(exit) => format!(
            "{} exit           {} (pid {}) status {}{}{}",
            ts(exit.timestamp_ns),
            exit.name,
            exit.pid,
            exit.status as i64,
            if exit.crash.is_some() {
                ", crashed"
            } else {
                ""
            },
            if exit.from_history {
                " (before this client attached)"
            } else {
                ""
            }
        ),
        Item::ProcessResult(result) => format!(
            "{} process-result request {}: {}: {}",
            ts(model.kernel_now()),
            result.request,
            crate::model::outcome_text(result),
            result.message
        ),
        Item::ProcessTree => {
            let mut text = format!("{} process-tree  ", ts(model.kernel_now()));
            if let Some(tree) = &model.tree {
                text.push_str(&format!(
                    "request {}, manager pid {}:",
                    tree.request, tree.manager
                ));
                for p in &tree.processes {
                    text.push_str(&format!(" {}({})<-{}", p.name, p.pid, p.parent));
                }
            }
            text
        }
        Item::ServiceList => {
            let mut text = format!("{} service-list  ", ts(model.kernel_now()));
            if let Some(list) = &model.services {
                text.push_str(&format!(
                    "request {}, rs pid {}:",
                    list.request, list.supervisor
                ));
                for s in &list.services {
                    text.push_str(&format!(
                        " {}({}, pid {}, {} restarts)",
                        s.name,
                        crate::model::service_state_name(s.state),
                        s.pid,
                        s.restarts
                    ));
                }
            }
            text
        }
    }
}

/// Link changes as told on stderr (`live` false: `source` is a recording being replayed).
pub fn link_message(msg: &SourceMsg, source: &str, live: bool) -> Option<String> {
    match msg {
        SourceMsg::Waiting { error } => Some(format!("waiting for kernel at {source}… ({error})")),
        SourceMsg::Connected { .. } if live => Some(format!("connected to {source}")),
        SourceMsg::Connected { .. } => Some(format!("{source}: a recorded connection starts")),
        SourceMsg::Disconnected { reason } if live => Some(format!(
            "connection to {source} lost: {reason}; reconnecting"
        )),
        SourceMsg::Disconnected { reason } => Some(format!("{source}: {reason}")),
        SourceMsg::Data { .. } | SourceMsg::End => None,
    }
}

/// Whether `item` (an exit, or the crash that the exit after it carries) came from the
/// kernel's exit history rather than as news.
fn from_history(item: &Item, following: &[Item]) -> bool {
    match item {
        Item::Exit(exit) => exit.from_history,
        Item::Crash(_) => matches!(following.first(), Some(Item::Exit(exit)) if exit.from_history),
        _ => false,
    }
}

/// How much kernel time a line is held for lines with earlier times to arrive. The kernel
/// sends event batches, snapshots and log lines from separate queues, so a line can arrive
/// after a later-stamped one; within this window the output is in kernel-time order.
pub const REORDER_WINDOW_NS: u64 = 1_000_000_000;
/// Held lines are let out after this much host time without new input (a stalled link).
const REORDER_IDLE_FLUSH: Duration = Duration::from_secs(1);

/// The kernel time a line is sorted by: its own time stamp, else the latest snapshot's
/// (drops, command results, alerts: an alert is raised by the snapshot just taken in, and
/// its `first_seen_ns` may be much earlier); a sequence gap sorts with the event after it.
pub fn item_time(item: &Item, following: &[Item], model: &Model) -> u64 {
    match item {
        Item::Hello(hello) => hello.now_ns,
        Item::Event(event) => event.timestamp_ns,
        Item::Log(line) => line.timestamp_ns,
        // A crash or exit from the kernel's history (resent after a Hello) sorts where it
        // arrived, after that Hello, not at its own (older) time.
        Item::Crash(_) | Item::Exit(_) if from_history(item, following) => model
            .hello
            .as_ref()
            .map_or(0, |hello| hello.now_ns)
            .max(model.kernel_now()),
        Item::Crash(crash) => crash.timestamp_ns,
        Item::Exit(exit) => exit.timestamp_ns,
        Item::Lost { .. } => following
            .iter()
            .find_map(|next| match next {
                Item::Event(event) => Some(event.timestamp_ns),
                _ => None,
            })
            .unwrap_or_else(|| model.kernel_now()),
        Item::ProcessTree => model
            .tree
            .as_ref()
            .map_or(model.kernel_now(), |t| t.timestamp_ns),
        Item::ServiceList => model
            .services
            .as_ref()
            .map_or(model.kernel_now(), |l| l.timestamp_ns),
        Item::Snapshot
        | Item::Alert(_)
        | Item::Drops(_)
        | Item::CommandResult(_)
        | Item::ProcessResult(_) => model.kernel_now(),
    }
}

/// A line waiting in [`Reorder`]: (kernel time, arrival number), text, whether it is an event.
type Held = (Reverse<(u64, u64)>, String, bool);

/// Puts lines in kernel-time order within [`REORDER_WINDOW_NS`]; ties keep arrival order.
pub struct Reorder {
    window_ns: u64,
    held: BinaryHeap<HeldLine>,
    arrivals: u64,
    newest_ns: u64,
    last_push: Option<Instant>,
}

/// Ordered by time, then arrival (the heap is a max-heap: the key is reversed).
#[derive(PartialEq, Eq)]
struct HeldLine(Held);

impl PartialOrd for HeldLine {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for HeldLine {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0 .0.cmp(&other.0 .0)
    }
}

impl Reorder {
    pub fn new(window_ns: u64) -> Reorder {
        Reorder {
            window_ns,
            held: BinaryHeap::new(),
            arrivals: 0,
            newest_ns: 0,
            last_push: None,
        }
    }

    /// Holds `line` (kernel time `at_ns`). A `hello` far behind the newest time (a rebooted
    /// kernel) first lets everything held out: a new timeline starts.
    pub fn push(
        &mut self,
        at_ns: u64,
        line: String,
        is_event: bool,
        hello: bool,
    ) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        if hello && at_ns.saturating_add(self.window_ns) < self.newest_ns {
            out = self.drain();
            self.newest_ns = 0;
        }
        self.arrivals += 1;
        self.newest_ns = self.newest_ns.max(at_ns);
        self.held
            .push(HeldLine((Reverse((at_ns, self.arrivals)), line, is_event)));
        self.last_push = Some(Instant::now());
        out.extend(self.ready());
        out
    }

    /// Lines no earlier line can still come for, oldest first.
    pub fn ready(&mut self) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        while let Some(HeldLine((Reverse((at_ns, _)), _, _))) = self.held.peek() {
            if at_ns.saturating_add(self.window_ns) > self.newest_ns {
                break;
            }
            let HeldLine((_, line, is_event)) = self.held.pop().expect("peeked");
            out.push((line, is_event));
        }
        out
    }

    /// Everything held, oldest first (at the end, or when input stalls).
    pub fn drain(&mut self) -> Vec<(String, bool)> {
        let mut out = Vec::with_capacity(self.held.len());
        while let Some(HeldLine((_, line, is_event))) = self.held.pop() {
            out.push((line, is_event));
        }
        out
    }

    /// True when lines are held and nothing new came for a while.
    pub fn idle(&self) -> bool {
        !self.held.is_empty()
            && self
                .last_push
                .is_some_and(|at| at.elapsed() >= REORDER_IDLE_FLUSH)
    }
}

/// Writes `lines`; true when done (the event count reached, or stdout closed).
fn emit(
    out: &mut impl Write,
    lines: Vec<(String, bool)>,
    printed_events: &mut u64,
    count: Option<u64>,
    broken_pipe: &mut bool,
) -> bool {
    for (line, is_event) in lines {
        if *broken_pipe || count.is_some_and(|n| *printed_events >= n) {
            return true;
        }
        if writeln!(out, "{line}").is_err() {
            *broken_pipe = true;
            return true;
        }
        if is_event {
            *printed_events += 1;
        }
    }
    *broken_pipe || count.is_some_and(|n| *printed_events >= n)
}

/// Runs `vigil events` until the limits are reached or the source ends.
pub fn run(
    source: Source,
    format: Format,
    symbols: Option<CrashSymbols>,
    limits: Limits,
    quiet: bool,
) -> Result<()> {
    let mut link = Link::new();
    let mut model = Model::new();
    let mut printer = Printer::new(format);
    printer.symbols = symbols;
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let deadline = limits.duration.map(|d| Instant::now() + d);
    let mut printed_events = 0u64;
    let mut done = limits.count == Some(0);
    let mut broken_pipe = false;
    let mut reorder = Reorder::new(REORDER_WINDOW_NS);
    let live = source.is_live();
    while !done {
        let wait = match deadline {
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) => left.min(Duration::from_millis(200)),
                None => break,
            },
            None => Duration::from_millis(200),
        };
        let msg = match source.rx.recv_timeout(wait) {
            Ok(msg) => msg,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if reorder.idle() {
                    let lines = reorder.drain();
                    done = emit(
                        &mut out,
                        lines,
                        &mut printed_events,
                        limits.count,
                        &mut broken_pipe,
                    );
                }
                out.flush().ok();
                continue;
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        if !quiet {
            if let Some(text) = link_message(&msg, source.description(), source.is_live()) {
                eprintln!("vigil: {text}");
            }
        }
        let closed = matches!(msg, SourceMsg::Disconnected { .. });
        let mut frames = Vec::new();
        link.handle(msg, |frame| frames.push(frame));
        // Format each frame's items right after applying it, so that a line never sees a
        // later frame's state (output must not depend on how bytes were chunked); the lines
        // then wait in `reorder` until they can go out in kernel-time order.
        let mut ready = Vec::new();
        for frame in frames {
            let items = model.apply(frame);
            for (index, item) in items.iter().enumerate() {
                let Some(line) = printer.line(item, &model) else {
                    continue;
                };
                let at_ns = item_time(item, &items[index + 1..], &model);
                ready.extend(reorder.push(
                    at_ns,
                    line,
                    matches!(item, Item::Event(_)),
                    matches!(item, Item::Hello(_)),
                ));
            }
        }
        if emit(
            &mut out,
            ready,
            &mut printed_events,
            limits.count,
            &mut broken_pipe,
        ) {
            done = true;
        }
        if live {
            out.flush().ok();
        }
        if link.state == LinkState::Ended || (closed && limits.once) {
            break;
        }
    }
    if !done {
        let lines = reorder.drain();
        emit(
            &mut out,
            lines,
            &mut printed_events,
            limits.count,
            &mut broken_pipe,
        );
    }
    if !broken_pipe {
        out.flush().ok();
    }
    if !quiet {
        eprintln!("vigil: {}", link.summary());
        eprintln!(
            "vigil: kernel: {} events ({} lost in sequence gaps), {} snapshots; kernel drops: {} events, {} frames",
            model.events_seen, model.lost_events, model.snapshots_seen, model.drops.events_dropped, model.drops.frames_dropped
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(lines: Vec<(String, bool)>) -> Vec<String> {
        lines.into_iter().map(|(line, _)| line).collect()
    }

    #[test]
    fn reorder_sorts_within_the_window_and_restarts_on_a_new_boot() {
        let mut reorder = Reorder::new(100);
        assert!(reorder.push(50, "b".into(), false, false).is_empty());
        assert!(reorder.push(10, "a".into(), false, false).is_empty());
        assert!(reorder.push(50, "c".into(), true, false).is_empty());
        // 160 is more than the window past 10 and 50: those are out, in order, ties by arrival.
        assert_eq!(
            texts(reorder.push(160, "d".into(), false, false)),
            ["a", "b", "c"]
        );
        // A Hello far back in time: a rebooted kernel; what was held goes out first.
        assert_eq!(texts(reorder.push(5, "hello".into(), false, true)), ["d"]);
        assert_eq!(texts(reorder.drain()), ["hello"]);
    }

    #[test]
    fn big_integers_become_strings() {
        let mut value = serde_json::json!({
            "small": MAX_SAFE_INTEGER,
            "big": MAX_SAFE_INTEGER + 1,
            "nested": [u64::MAX, 1, {"x": 1u64 << 60}],
            "float": 0.5,
        });
        stringify_big_integers(&mut value);
        assert_eq!(value["small"], MAX_SAFE_INTEGER);
        assert_eq!(value["big"], "9007199254740992");
        assert_eq!(value["nested"][0], "18446744073709551615");
        assert_eq!(value["nested"][1], 1);
        assert_eq!(value["nested"][2]["x"], "1152921504606846976");
        assert_eq!(value["float"], 0.5);
    }
}
