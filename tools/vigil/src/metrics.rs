//! `vigil metrics`: a Prometheus endpoint for a live kernel.
//!
//! The model is fed from the source on the main thread; a small HTTP server answers
//! `GET /metrics` with the current figures (link health, kernel loss counters, per-thread and
//! per-process counters and state, active alerts) in the classic Prometheus text format, or
//! OpenMetrics when the scraper's `Accept` header asks for it. Conventions: counters in base
//! units ending in `_total`, ratios 0–1, labels from fixed sets or bounded names (thread,
//! process, pid; never addresses or free text), and no kernel series while the link is down.
//!
//! The encoder is ours (about a hundred lines): `prometheus-client` writes OpenMetrics only,
//! and `promtool check metrics` reads the classic format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::describe;
use crate::events::link_message;
use crate::link::Link;
use crate::model::{alert_kind_name, crash_kind_name, Item, Model};
use crate::source::Source;

/// The exposition format a scraper asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// The classic Prometheus text format, version 0.0.4 (`promtool check metrics` reads it).
    Text,
    /// OpenMetrics 1.0.0 text (ends with `# EOF`).
    OpenMetrics,
}

impl Format {
    /// Content negotiation: OpenMetrics only when the `Accept` header names it.
    pub fn from_accept(accept: Option<&str>) -> Format {
        match accept {
            Some(accept) if accept.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    /// A constant 1 whose labels carry the information (`…_info`).
    Info,
}

type Labels = Vec<(&'static str, String)>;

/// One metric family: name without `_total` / `_info`, and its samples.
struct Family {
    name: &'static str,
    kind: Kind,
    unit: Option<&'static str>,
    help: &'static str,
    samples: Vec<(Labels, f64)>,
}

/// The states a `vigil_thread_state` series can have: a fixed set, whatever the kernel says.
pub const THREAD_STATES: [&str; 11] = [
    "free", "ready", "running", "send", "recv", "sendrec", "mutex", "sleep", "join", "dead",
    "unknown",
];
/// The alert kinds `vigil_alerts_active` always lists.
pub const ALERT_KINDS: [&str; 5] = ["deadlock", "hung-chain", "cpu-hog", "memory-hog", "anomaly"];
/// Crash kinds `vigil_crashes_total` always lists.
pub const CRASH_KINDS: [&str; 5] = [
    "kernel-panic",
    "kernel-fault",
    "user-fault",
    "kernel-lockup",
    "user-panic",
];
/// The link counts as down when no frame came for this long (the kernel sends a `Drops`
/// heartbeat every second), so a wedged machine behind an open socket is not "up".
pub const LINK_SILENCE_NS: u64 = 3_000_000_000;

/// What `render` needs besides the model and the link.
#[derive(Clone, Copy, Debug, Default)]
pub struct Extra {
    /// Host time now, on the source's clock.
    pub now_ns: u64,
    /// Wall-clock (Unix) time of the kernel's boot, estimated from the latest snapshot.
    pub boot_time_seconds: Option<f64>,
    /// Crashes seen, by kind (index as in [`CRASH_KINDS`]): live ones and those the kernel's
    /// exit history reported to a client that attached later.
    pub crashes: [u64; CRASH_KINDS.len()],
}

fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{}", value as i64)
    } else {
        format!("{value}")
    }
}

/// Encodes the families in `format`.
fn encode(families: &[Family], format: Format) -> String {
    let mut out = String::new();
    for family in families {
        let sample_name = match family.kind {
            Kind::Counter => format!("{}_total", family.name),
            Kind::Info => format!("{}_info", family.name),
            Kind::Gauge => family.name.to_string(),
        };
        match format {
            Format::Text => {
                let kind = match family.kind {
                    Kind::Counter => "counter",
                    Kind::Gauge | Kind::Info => "gauge",
                };
                let _ = writeln!(out, "# HELP {sample_name} {}", family.help);
                let _ = writeln!(out, "# TYPE {sample_name} {kind}");
            }
            Format::OpenMetrics => {
                let kind = match family.kind {
                    Kind::Counter => "counter",
                    Kind::Gauge => "gauge",
                    Kind::Info => "info",
                };
                let _ = writeln!(out, "# TYPE {} {kind}", family.name);
                if let Some(unit) = family.unit {
                    let _ = writeln!(out, "# UNIT {} {unit}", family.name);
                }
                let _ = writeln!(out, "# HELP {} {}", family.name, family.help);
            }
        }
        for (labels, value) in &family.samples {
            out.push_str(&sample_name);
            if !labels.is_empty() {
                out.push('{');
                for (index, (key, value)) in labels.iter().enumerate() {
                    if index > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{key}=\"{}\"", escape(value));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {}", number(*value));
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

fn one(
    name: &'static str,
    kind: Kind,
    unit: Option<&'static str>,
    help: &'static str,
    value: f64,
) -> Family {
    Family {
        name,
        kind,
        unit,
        help,
        samples: vec![(Vec::new(), value)],
    }
}

/// Whether the system's series are served: connected, and a frame arrived recently.
pub fn link_up(link: &Link, now_ns: u64) -> bool {
    link.is_connected()
        && link
            .since_last_frame(now_ns)
            .is_some_and(|ago| ago <= LINK_SILENCE_NS)
}

/// The exposition text for the current state. While the link is down only the tool's own
/// series are served (`vigil_link_up 0`, link counters, build info): the kernel's series
/// disappear, so a dead system never looks busy.
pub fn render(model: &Model, link: &Link, extra: &Extra, format: Format) -> String {
    use Kind::{Counter, Gauge, Info};
    let c = link.counters();
    let up = link_up(link, extra.now_ns);
    let mut build = vec![("version", env!("CARGO_PKG_VERSION").to_string())];
    if let (true, Some(hello)) = (up, &model.hello) {
        build.push(("kernel_version", hello.kernel_version.clone()));
        build.push(("protocol_version", hello.protocol_version.to_string()));
    }
    let mut families = vec![
        Family {
            name: "vigil_build",
            kind: Info,
            unit: None,
            help: "The host tool's version and, while the link is up, the kernel's",
            samples: vec![(build, 1.0)],
        },
        one(
            "vigil_link_up",
            Gauge,
            None,
            "1 while connected to the monitor channel and frames keep arriving",
            if up { 1.0 } else { 0.0 },
        ),
        one(
            "vigil_link_connections",
            Counter,
            None,
            "Connections made to the monitor channel",
            link.connections as f64,
        ),
        one(
            "vigil_link_received_bytes",
            Counter,
            Some("bytes"),
            "Bytes received on the monitor channel",
            link.bytes as f64,
        ),
        one(
            "vigil_link_frames",
            Counter,
            None,
            "Frames decoded",
            c.frames as f64,
        ),
        one(
            "vigil_link_checksum_errors",
            Counter,
            None,
            "Frames damaged in transit (CRC or COBS)",
            c.checksum_errors as f64,
        ),
        one(
            "vigil_link_malformed_frames",
            Counter,
            None,
            "Frames with a valid checksum that did not decode, or too large",
            (c.malformed + c.oversized) as f64,
        ),
        one(
            "vigil_link_discarded_bytes",
            Counter,
            Some("bytes"),
            "Bytes not part of any decoded frame",
            c.discarded_bytes as f64,
        ),
        one(
            "vigil_events_received",
            Counter,
            None,
            "Trace events received by this tool",
            model.events_seen as f64,
        ),
        one(
            "vigil_events_lost",
            Counter,
            None,
            "Trace events missing from the sequence, seen by this tool",
            model.lost_events as f64,
        ),
        Family {
            name: "vigil_crashes",
            kind: Counter,
            unit: None,
            help: "Crash reports received by this tool, by kind",
            samples: CRASH_KINDS
                .iter()
                .zip(extra.crashes)
                .map(|(kind, n)| (vec![("kind", kind.to_string())], n as f64))
                .collect(),
        },
    ];
    if let Some(ago) = link.since_last_frame(extra.now_ns) {
        families.push(one(
            "vigil_link_last_frame_age_seconds",
            Gauge,
            Some("seconds"),
            "Time since the last frame arrived",
            ago as f64 / 1e9,
        ));
    }
    if !up {
        return encode(&families, format);
    }
    families.extend([
        one(
            "vigil_kernel_events_dropped",
            Counter,
            None,
            "Trace events the kernel overwrote before sending",
            model.drops.events_dropped as f64,
        ),
        one(
            "vigil_kernel_frames_dropped",
            Counter,
            None,
            "Frames the kernel could not send",
            model.drops.frames_dropped as f64,
        ),
        one(
            "vigil_kernel_malformed_commands",
            Counter,
            None,
            "Host commands the kernel refused",
            model.drops.malformed_commands as f64,
        ),
    ]);
    let mut alerts: BTreeMap<&str, f64> = ALERT_KINDS.iter().map(|k| (*k, 0.0)).collect();
    for alert in model.active_alerts() {
        *alerts.entry(alert_kind_name(&alert.kind)).or_default() += 1.0;
    }
    families.push(Family {
        name: "vigil_alerts_active",
        kind: Gauge,
        unit: None,
        help: "Alerts the detector considers active, by kind",
        samples: alerts
            .into_iter()
            .map(|(kind, n)| (vec![("kind", kind.to_string())], n))
            .collect(),
    });
    let Some(snapshot) = model.snapshot() else {
        return encode(&families, format);
    };
    if let Some(boot) = extra.boot_time_seconds {
        families.push(one(
            "vigil_kernel_boot_time_seconds",
            Gauge,
            Some("seconds"),
            "When the kernel booted, Unix time (host clock, from the latest snapshot)",
            boot,
        ));
    }
    if let Some(memory) = model.memory.filter(|m| m.total_frames > 0) {
        let bytes = u64::from(memory.frame_bytes);
        families.push(one(
            "vigil_memory_total_bytes",
            Gauge,
            Some("bytes"),
            "Physical memory the kernel's frame allocator manages",
            (memory.total_frames * bytes) as f64,
        ));
        families.push(one(
            "vigil_memory_free_bytes",
            Gauge,
            Some("bytes"),
            "Physical memory free in the kernel's frame allocator",
            (memory.free_frames * bytes) as f64,
        ));
    }
    families.push(one(
        "vigil_kernel_uptime_seconds",
        Gauge,
        Some("seconds"),
        "Kernel time at the latest snapshot",
        snapshot.timestamp_ns as f64 / 1e9,
    ));
    families.push(one(
        "vigil_cpu_idle_seconds",
        Counter,
        Some("seconds"),
        "CPU time spent idle since boot",
        snapshot.idle_ns as f64 / 1e9,
    ));
    if let Some(busy) = model.busy_percent {
        families.push(one(
            "vigil_cpu_busy_ratio",
            Gauge,
            Some("ratio"),
            "Share of the CPU not idle between the last two snapshots (0-1)",
            busy / 100.0,
        ));
    }
    let labels = &model.labels;
    let thread_labels = |t: &vigil_wire::ThreadInfo| -> Labels {
        vec![
            ("thread", labels.thread(t.endpoint)),
            ("process", labels.process(t.pid).unwrap_or("?").into()),
            ("pid", t.pid.to_string()),
        ]
    };
    let threads = &snapshot.threads;
    let per_thread = |name: &'static str,
                      kind: Kind,
                      unit: Option<&'static str>,
                      help: &'static str,
                      value: &dyn Fn(&vigil_wire::ThreadInfo) -> f64| Family {
        name,
        kind,
        unit,
        help,
        samples: threads
            .iter()
            .map(|t| (thread_labels(t), value(t)))
            .collect(),
    };
    families.push(per_thread(
        "vigil_thread_cpu_seconds",
        Counter,
        Some("seconds"),
        "CPU time used since the thread started",
        &|t| t.counters.cpu_ns as f64 / 1e9,
    ));
    families.push(Family {
        name: "vigil_thread_context_switches",
        kind: Counter,
        unit: None,
        help: "Context switches: voluntary (blocked or yielded) and involuntary (preempted)",
        samples: threads
            .iter()
            .flat_map(|t| {
                let labels = thread_labels(t);
                let mut voluntary = labels.clone();
                voluntary.push(("kind", "voluntary".into()));
                let mut involuntary = labels;
                involuntary.push(("kind", "involuntary".into()));
                [
                    (voluntary, t.counters.voluntary_switches as f64),
                    (involuntary, t.counters.involuntary_switches as f64),
                ]
            })
            .collect(),
    });
    families.push(per_thread(
        "vigil_thread_syscalls",
        Counter,
        None,
        "System calls made",
        &|t| t.counters.syscalls as f64,
    ));
    families.push(per_thread(
        "vigil_thread_kernel_calls",
        Counter,
        None,
        "Kernel calls made",
        &|t| t.counters.kernel_calls as f64,
    ));
    families.push(per_thread(
        "vigil_thread_messages_sent",
        Counter,
        None,
        "IPC messages sent",
        &|t| t.counters.messages_sent as f64,
    ));
    families.push(per_thread(
        "vigil_thread_messages_received",
        Counter,
        None,
        "IPC messages received",
        &|t| t.counters.messages_received as f64,
    ));
    families.push(per_thread(
        "vigil_thread_notifications_received",
        Counter,
        None,
        "Notifications received",
        &|t| t.counters.notifications_received as f64,
    ));
    families.push(per_thread(
        "vigil_thread_page_faults",
        Counter,
        None,
        "Page faults taken",
        &|t| t.counters.page_faults as f64,
    ));
    families.push(per_thread(
        "vigil_thread_priority",
        Gauge,
        None,
        "Scheduling priority",
        &|t| f64::from(t.priority),
    ));
    families.push(Family {
        name: "vigil_thread_state",
        kind: Gauge,
        unit: None,
        help: "1 for the thread's current state, 0 for the others (a fixed set of states)",
        samples: threads
            .iter()
            .flat_map(|t| {
                let current = describe::state_name(t.state());
                let labels = thread_labels(t);
                THREAD_STATES.iter().map(move |state| {
                    let mut l = labels.clone();
                    l.push(("state", state.to_string()));
                    (l, if *state == current { 1.0 } else { 0.0 })
                })
            })
            .collect(),
    });
    let processes = &snapshot.processes;
    let per_process =
        |name: &'static str,
         kind: Kind,
         unit: Option<&'static str>,
         help: &'static str,
         value: &dyn Fn(&vigil_wire::ProcessInfo) -> f64| Family {
            name,
            kind,
            unit,
            help,
            samples: processes
                .iter()
                .map(|p| {
                    (
                        vec![("process", p.name.clone()), ("pid", p.pid.to_string())],
                        value(p),
                    )
                })
                .collect(),
        };
    families.push(per_process(
        "vigil_process_cpu_seconds",
        Counter,
        Some("seconds"),
        "CPU time of all the process's threads",
        &|p| p.cpu_ns as f64 / 1e9,
    ));
    families.push(per_process(
        "vigil_process_memory_bytes",
        Gauge,
        Some("bytes"),
        "Resident user memory: every page mapped in the process (image, stacks, heap, mappings)",
        &|p| (p.memory_pages * 4096) as f64,
    ));
    families.push(per_process(
        "vigil_process_peak_memory_bytes",
        Gauge,
        Some("bytes"),
        "The most resident user memory the process has had",
        &|p| (p.peak_pages * 4096) as f64,
    ));
    families.push(per_process(
        "vigil_process_virtual_memory_bytes",
        Gauge,
        Some("bytes"),
        "Virtual size: the program image plus the regions the VM server placed",
        &|p| p.virtual_bytes as f64,
    ));
    families.push(per_process(
        "vigil_process_shared_memory_bytes",
        Gauge,
        Some("bytes"),
        "Resident memory whose frames are shared with other processes",
        &|p| (p.shared_pages * 4096) as f64,
    ));
    families.push(Family {
        name: "vigil_process_page_faults",
        kind: Counter,
        unit: None,
        help:
            "Page faults the kernel forwarded to the VM server, by kind (not_present, protection)",
        samples: processes
            .iter()
            .flat_map(|p| {
                [
                    ("not_present", p.faults_not_present),
                    ("protection", p.faults_protection),
                ]
                .map(|(kind, count)| {
                    (
                        vec![
                            ("process", p.name.clone()),
                            ("pid", p.pid.to_string()),
                            ("kind", kind.to_string()),
                        ],
                        count as f64,
                    )
                })
            })
            .collect(),
    });
    families.push(per_process(
        "vigil_process_threads",
        Gauge,
        None,
        "Live threads of the process",
        &|p| f64::from(p.threads),
    ));
    families.push(per_process(
        "vigil_process_grants",
        Gauge,
        None,
        "Memory grants the process has open",
        &|p| f64::from(p.grants),
    ));
    encode(&families, format)
}

/// Shared between the feeding loop and the HTTP server.
struct State {
    model: Model,
    link: Link,
    boot_time_seconds: Option<f64>,
    crashes: [u64; CRASH_KINDS.len()],
    /// The source's clock at `started` (so that "since last frame" uses the source's scale).
    clock_at_start: u64,
    started: Instant,
}

fn respond(mut stream: TcpStream, state: &Mutex<State>) {
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok();
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let request = String::from_utf8_lossy(&request);
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let accept = request.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("accept")
            .then(|| value.trim().to_string())
    });
    let (status, content_type, body) = match path.split('?').next().unwrap_or("") {
        "/metrics" => {
            let format = Format::from_accept(accept.as_deref());
            let state = state.lock().unwrap_or_else(|e| e.into_inner());
            let extra = Extra {
                now_ns: state.clock_at_start + state.started.elapsed().as_nanos() as u64,
                boot_time_seconds: state.boot_time_seconds,
                crashes: state.crashes,
            };
            (
                "200 OK",
                format.content_type(),
                render(&state.model, &state.link, &extra, format),
            )
        }
        "/" => (
            "200 OK",
            "text/plain; charset=utf-8",
            "vigil metrics: see /metrics\n".to_string(),
        ),
        _ => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found; try /metrics\n".to_string(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(body.as_bytes()));
}

/// Runs `vigil metrics`: serves `/metrics` on `listen` while following the source.
pub fn run(source: Source, listen: &str, duration: Option<Duration>, quiet: bool) -> Result<()> {
    let listener =
        TcpListener::bind(listen).with_context(|| format!("cannot listen on {listen}"))?;
    let local = listener.local_addr()?;
    eprintln!("vigil: serving metrics on http://{local}/metrics");
    let state = Arc::new(Mutex::new(State {
        model: Model::new(),
        link: Link::new(),
        boot_time_seconds: None,
        crashes: [0; CRASH_KINDS.len()],
        clock_at_start: source.now_ns(),
        started: Instant::now(),
    }));
    {
        let state = state.clone();
        thread::Builder::new()
            .name("vigil-metrics-http".into())
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    let state = state.clone();
                    thread::spawn(move || respond(stream, &state));
                }
            })?;
    }
    let deadline = duration.map(|d| Instant::now() + d);
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let msg = match source.rx.recv_timeout(Duration::from_millis(200)) {
            Ok(msg) => msg,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                let now = source.now_ns();
                state
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .link
                    .tick(now);
                continue;
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        if !quiet {
            if let Some(text) = link_message(&msg, source.description(), source.is_live()) {
                eprintln!("vigil: {text}");
            }
        }
        let now = source.now_ns();
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        let State {
            model,
            link,
            boot_time_seconds,
            crashes,
            ..
        } = &mut *state;
        link.handle(msg, |frame| {
            let snapshot_ns = match &frame {
                vigil_wire::KernelFrame::Snapshot(s) => Some(s.timestamp_ns),
                _ => None,
            };
            // The model reports each crash once, whether it came live or from the history.
            for item in model.apply(frame) {
                if let Item::Crash(crash) = item {
                    let kind = crash_kind_name(crash.kind);
                    if let Some(index) = CRASH_KINDS.iter().position(|k| *k == kind) {
                        crashes[index] += 1;
                    }
                }
            }
            if let (Some(ns), Ok(now)) = (snapshot_ns, SystemTime::now().duration_since(UNIX_EPOCH))
            {
                *boot_time_seconds = Some(now.as_secs_f64() - ns as f64 / 1e9);
            }
        });
        link.tick(now);
    }
    Ok(())
}
