//! `vigil export`: a recording as a Chrome trace-event JSON file (opens in Perfetto UI and
//! chrome://tracing).
//!
//! Layout of the trace: one process (`pid`) per Vigil process, named by `process_name`
//! metadata; one track (`tid`) per thread, named by its label ("name#slot"); a pseudo-process
//! "kernel" holds the idle track, kernel log lines, alerts and overall CPU use. Running
//! intervals are "X" slices from context-switch events (before the first one, from the
//! snapshots' running thread, so a steady-state recording has slices too); IPC sends and receives are short "X"
//! slices joined by flow events ("s"/"f") from sender to receiver; blocks, crashes, thread and
//! process lifecycle are instant events; per-process CPU % from snapshots are counters ("C").
//! Timestamps are kernel time in microseconds.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use vigil_abi::trace::EventKind;
use vigil_abi::Endpoint;
use vigil_wire::Event;

use crate::describe::{self, Labels};
use crate::link::Link;
use crate::model::{alert_kind_name, crash_text, Item, Model};
use crate::record::{Record, RecordReader};
use crate::source::SourceMsg;
use crate::symbols::CrashSymbols;

/// Feeds every frame of a recording through a link and a model; `on_item` sees each item
/// with the model as it was right after the frame.
pub fn replay_items(path: &Path, mut on_item: impl FnMut(&Item, &Model)) -> Result<Model> {
    let file =
        File::open(path).with_context(|| format!("cannot open recording {}", path.display()))?;
    let reader = RecordReader::new(BufReader::new(file))
        .with_context(|| format!("{} is not a vigil recording", path.display()))?;
    let mut link = Link::new();
    let mut model = Model::new();
    for record in reader {
        let msg = match record.with_context(|| format!("reading {}", path.display()))? {
            Record::Connected { at_ns } => SourceMsg::Connected { at_ns },
            Record::Data { at_ns, bytes } => SourceMsg::Data { at_ns, bytes },
        };
        let mut frames = Vec::new();
        link.handle(msg, |frame| frames.push(frame));
        // Each frame's items are reported right after that frame was applied.
        for frame in frames {
            for item in &model.apply(frame) {
                on_item(item, &model);
            }
        }
    }
    Ok(model)
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// Builds the trace.
struct Builder {
    kernel_pid: u32,
    final_labels: Labels,
    tids: BTreeMap<u64, u64>,
    next_tid: u64,
    events: Vec<Value>,
    running: Option<(u64, u64)>,
    /// `running` was opened from a snapshot, not from a switch event.
    running_from_snapshot: bool,
    /// Context-switch events seen so far (without any, snapshots drive the run slices).
    switches_seen: u64,
    flows: HashMap<(u64, u64), VecDeque<u64>>,
    next_flow: u64,
    last_ts: u64,
    pids_used: BTreeSet<u32>,
}

impl Builder {
    /// (pid, tid) of a thread track. NONE (idle) and unknown threads live in the kernel
    /// pseudo-process.
    fn track(&mut self, endpoint: u64) -> (u32, u64) {
        if Endpoint(endpoint) == Endpoint::NONE || !Endpoint(endpoint).is_thread() {
            return (self.kernel_pid, 0);
        }
        let pid = self
            .final_labels
            .pid_of(endpoint)
            .unwrap_or(self.kernel_pid);
        let next = &mut self.next_tid;
        let tid = *self.tids.entry(endpoint).or_insert_with(|| {
            *next += 1;
            *next
        });
        self.pids_used.insert(pid);
        (pid, tid)
    }

    fn slice(&mut self, endpoint: u64, name: String, ts: u64, dur: u64, args: Value) {
        let (pid, tid) = self.track(endpoint);
        self.events.push(json!({
            "name": name, "cat": "sched", "ph": "X", "ts": us(ts), "dur": us(dur), "pid": pid, "tid": tid, "args": args,
        }));
    }

    fn instant(&mut self, endpoint: u64, name: String, cat: &str, ts: u64, args: Value) {
        let (pid, tid) = self.track(endpoint);
        self.events.push(json!({
            "name": name, "cat": cat, "ph": "i", "s": "t", "ts": us(ts), "pid": pid, "tid": tid, "args": args,
        }));
    }

    fn global(&mut self, name: String, cat: &str, ts: u64, args: Value) {
        self.events.push(json!({
            "name": name, "cat": cat, "ph": "i", "s": "g", "ts": us(ts), "pid": self.kernel_pid, "tid": 0, "args": args,
        }));
    }

    fn close_running(&mut self, at: u64) {
        if let Some((endpoint, start)) = self.running.take() {
            let name = if Endpoint(endpoint) == Endpoint::NONE {
                "idle"
            } else {
                "running"
            };
            self.slice(
                endpoint,
                name.into(),
                start,
                at.saturating_sub(start),
                json!({}),
            );
        }
    }

    fn event(&mut self, event: &Event, labels: &Labels) {
        let ts = event.timestamp_ns;
        self.last_ts = self.last_ts.max(ts);
        let Some(kind) = EventKind::from_u16(event.kind) else {
            return;
        };
        match kind {
            EventKind::ContextSwitch => {
                self.switches_seen += 1;
                match self.running {
                    // A switch from before the snapshot that opened the slice (events can
                    // arrive after a later snapshot): the switch events take over from here.
                    Some((_, start)) if self.running_from_snapshot && ts < start => {
                        self.running = None;
                    }
                    _ => self.close_running(ts),
                }
                self.running_from_snapshot = false;
                self.running = Some((event.thread, ts));
            }
            EventKind::IpcSend => {
                let dest = event.args[0];
                let id = self.next_flow;
                self.next_flow += 1;
                self.flows
                    .entry((event.thread, dest))
                    .or_default()
                    .push_back(id);
                let name = format!("send → {}", labels.thread(dest));
                self.slice(
                    event.thread,
                    name,
                    ts,
                    0,
                    json!({ "to": labels.thread(dest), "msg_type": event.args[1] }),
                );
                let (pid, tid) = self.track(event.thread);
                self.events.push(json!({
                    "name": "ipc", "cat": "ipc", "ph": "s", "id": id, "ts": us(ts), "pid": pid, "tid": tid,
                }));
            }
            EventKind::IpcReceive => {
                let source = event.args[0];
                let name = format!("recv ← {}", labels.thread(source));
                self.slice(
                    event.thread,
                    name,
                    ts,
                    0,
                    json!({ "from": labels.thread(source), "msg_type": event.args[1] }),
                );
                let id = self
                    .flows
                    .get_mut(&(source, event.thread))
                    .and_then(VecDeque::pop_front);
                if let Some(id) = id {
                    let (pid, tid) = self.track(event.thread);
                    self.events.push(json!({
                        "name": "ipc", "cat": "ipc", "ph": "f", "bp": "e", "id": id, "ts": us(ts), "pid": pid, "tid": tid,
                    }));
                }
            }
            EventKind::Block
            | EventKind::IpcNotify
            | EventKind::Crash
            | EventKind::ProcessCreate
            | EventKind::ProcessExit
            | EventKind::ThreadCreate
            | EventKind::ThreadExit => {
                let mut args = serde_json::Map::new();
                for (name, value) in describe::event_args(event, labels) {
                    args.insert(name.into(), value.to_json());
                }
                let name = match kind {
                    EventKind::Block => describe::state_text(
                        vigil_abi::introspect::decode_state(
                            event.args[0] as u8,
                            Endpoint(event.args[1]),
                            event.args[2],
                        ),
                        labels,
                        ts,
                    ),
                    EventKind::IpcNotify => format!("notify → {}", labels.thread(event.args[0])),
                    other => other.name().to_string(),
                };
                let cat = if kind == EventKind::Crash {
                    "crash"
                } else {
                    "event"
                };
                self.instant(event.thread, name, cat, ts, args.into());
            }
            EventKind::Unblock
            | EventKind::Syscall
            | EventKind::KernelCall
            | EventKind::Interrupt
            | EventKind::Log => {}
        }
    }

    fn item(&mut self, item: &Item, model: &Model, symbols: Option<&CrashSymbols>) {
        match item {
            Item::Event(event) => self.event(event, &model.labels),
            Item::Snapshot => {
                let Some(snapshot) = model.snapshot() else {
                    return;
                };
                let ts = snapshot.timestamp_ns;
                self.last_ts = self.last_ts.max(ts);
                // Until switch events arrive (a steady-state recording of a thread that never
                // switches, or a mask without switches), the snapshot says who is on the CPU:
                // its running thread, or idle.
                if self.switches_seen == 0 {
                    let on_cpu = snapshot
                        .threads
                        .iter()
                        .find(|t| t.state == vigil_abi::introspect::state_code::RUNNING)
                        .map_or(Endpoint::NONE.0, |t| t.endpoint);
                    if self.running.is_none_or(|(endpoint, _)| endpoint != on_cpu) {
                        self.close_running(ts);
                        self.running = Some((on_cpu, ts));
                        self.running_from_snapshot = true;
                    }
                }
                for process in &snapshot.processes {
                    if let Some(rates) = model.process_rates.get(&process.pid) {
                        self.pids_used.insert(process.pid);
                        self.events.push(json!({
                            "name": "cpu %", "ph": "C", "ts": us(ts), "pid": process.pid, "args": { "cpu %": rates.cpu_percent },
                        }));
                    }
                }
                if let Some(busy) = model.busy_percent {
                    self.events.push(json!({
                        "name": "cpu busy %", "ph": "C", "ts": us(ts), "pid": self.kernel_pid, "args": { "busy %": busy },
                    }));
                }
            }
            Item::Alert(alert) => self.global(
                format!("alert: {}", alert_kind_name(&alert.kind)),
                "alert",
                alert.first_seen_ns,
                json!({ "message": alert.message }),
            ),
            Item::Crash(crash) => {
                let backtrace: Vec<String> =
                    crash.backtrace.iter().map(|a| format!("{a:#x}")).collect();
                let mut args = json!({ "message": crash.message, "backtrace": backtrace });
                if let Some(symbols) = symbols {
                    args["frames"] = symbols
                        .frames(crash)
                        .iter()
                        .map(|frame| Value::String(frame.text().trim().to_string()))
                        .collect();
                }
                self.global(
                    format!("crash: {}", crash_text(crash)),
                    "crash",
                    crash.timestamp_ns,
                    args,
                );
            }
            Item::Log(line) => {
                let level =
                    vigil_abi::log::LogLevel::from_u8(line.level).map_or("?", |l| l.label().trim());
                let (pid, tid) = (self.kernel_pid, 0);
                self.events.push(json!({
                    "name": format!("{level} {}", line.text), "cat": "log", "ph": "i", "s": "t",
                    "ts": us(line.timestamp_ns), "pid": pid, "tid": tid, "args": { "seq": line.seq },
                }));
            }
            Item::Exit(exit) => self.global(
                format!(
                    "exit: {} (pid {}) status {}",
                    exit.name, exit.pid, exit.status as i64
                ),
                "exit",
                exit.timestamp_ns,
                json!({ "status": exit.status as i64, "crashed": exit.crash.is_some() }),
            ),
            Item::Hello(_)
            | Item::Lost { .. }
            | Item::Drops(_)
            | Item::CommandResult(_)
            | Item::ProcessResult(_)
            | Item::ProcessTree
            | Item::ServiceList => {}
        }
    }

    fn metadata(&mut self) -> Vec<Value> {
        // Threads only ever seen in snapshots get a (quiet) track too, in endpoint order.
        let mut known: Vec<u64> = self
            .final_labels
            .known_threads()
            .map(|(endpoint, _)| endpoint)
            .collect();
        known.sort_unstable();
        for endpoint in known {
            self.track(endpoint);
        }
        let mut meta = vec![
            json!({ "name": "process_name", "ph": "M", "pid": self.kernel_pid, "args": { "name": "kernel" } }),
            json!({ "name": "process_sort_index", "ph": "M", "pid": self.kernel_pid, "args": { "sort_index": -1 } }),
            json!({ "name": "thread_name", "ph": "M", "pid": self.kernel_pid, "tid": 0, "args": { "name": "idle / kernel" } }),
        ];
        let processes: BTreeMap<u32, String> = self
            .final_labels
            .known_processes()
            .map(|(pid, name)| (pid, name.to_string()))
            .collect();
        for pid in self.pids_used.clone() {
            if pid == self.kernel_pid {
                continue;
            }
            let name = processes
                .get(&pid)
                .cloned()
                .unwrap_or_else(|| format!("pid{pid}"));
            meta.push(json!({ "name": "process_name", "ph": "M", "pid": pid, "args": { "name": format!("{name} ({pid})") } }));
            meta.push(json!({ "name": "process_sort_index", "ph": "M", "pid": pid, "args": { "sort_index": pid } }));
        }
        for (endpoint, tid) in self.tids.clone() {
            let pid = self
                .final_labels
                .pid_of(endpoint)
                .unwrap_or(self.kernel_pid);
            meta.push(json!({
                "name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                "args": { "name": self.final_labels.thread(endpoint) },
            }));
        }
        meta
    }
}

/// Writes the Chrome trace JSON for `recording` to `out`. Returns (trace events, threads).
/// With `symbols`, each crash marker carries its backtrace symbolised (`frames`).
pub fn export_perfetto(
    recording: &Path,
    out: &Path,
    symbols: Option<&CrashSymbols>,
) -> Result<(usize, usize)> {
    // First pass: final names and process membership for the metadata.
    let final_model = replay_items(recording, |_, _| {})?;
    let max_pid = final_model
        .labels
        .known_processes()
        .map(|(pid, _)| pid)
        .max();
    let kernel_pid = match final_model.labels.process(0) {
        None => 0,
        Some(_) => max_pid.unwrap_or(0) + 1,
    };
    let mut builder = Builder {
        kernel_pid,
        final_labels: final_model.labels.clone(),
        tids: BTreeMap::new(),
        next_tid: 0,
        events: Vec::new(),
        running: None,
        running_from_snapshot: false,
        switches_seen: 0,
        flows: HashMap::new(),
        next_flow: 1,
        last_ts: 0,
        pids_used: BTreeSet::new(),
    };
    // Second pass: the timeline, with names as they were at each moment.
    replay_items(recording, |item, model| builder.item(item, model, symbols))?;
    builder.close_running(builder.last_ts);
    let mut events = builder.metadata();
    events.append(&mut builder.events);
    let count = events.len();
    let kernel_version = final_model.hello.as_ref().map(|h| h.kernel_version.clone());
    let trace = json!({
        "traceEvents": events,
        "displayTimeUnit": "ns",
        "otherData": {
            "generator": "vigil export",
            "recording": recording.display().to_string(),
            "kernel_version": kernel_version,
        },
    });
    let file = File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut writer = BufWriter::new(file);
    serde_json::to_writer(&mut writer, &trace)?;
    writer
        .flush()
        .with_context(|| format!("writing {}", out.display()))?;
    Ok((count, builder.tids.len()))
}
