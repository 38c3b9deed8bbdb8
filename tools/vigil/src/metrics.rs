//! `vigil metrics`: a Prometheus (OpenMetrics text) endpoint for a live kernel.
//!
//! The model is fed from the source on the main thread; a small HTTP server answers
//! `GET /metrics` with the current figures (link health, kernel loss counters, per-thread and
//! per-process CPU, counters and state, active alerts), encoded by `prometheus-client`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::describe;
use crate::events::link_message;
use crate::link::Link;
use crate::model::{alert_kind_name, Model};
use crate::source::Source;

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

fn counter(registry: &mut Registry, name: &str, help: &str, value: u64) {
    let metric = Counter::<u64>::default();
    metric.inc_by(value);
    registry.register(name, help, metric);
}

fn gauge(registry: &mut Registry, name: &str, help: &str, value: f64) {
    let metric = FloatGauge::default();
    metric.set(value);
    registry.register(name, help, metric);
}

/// A family of gauges or counters filled from `(labels, value)` pairs.
fn gauge_family(registry: &mut Registry, name: &str, help: &str, values: Vec<(Labels, f64)>) {
    let family = Family::<Labels, FloatGauge>::default();
    for (labels, value) in values {
        family.get_or_create(&labels).set(value);
    }
    registry.register(name, help, family);
}

fn counter_family(registry: &mut Registry, name: &str, help: &str, values: Vec<(Labels, u64)>) {
    let family = Family::<Labels, Counter<u64>>::default();
    for (labels, value) in values {
        family.get_or_create(&labels).inc_by(value);
    }
    registry.register(name, help, family);
}

/// The OpenMetrics text for the current state.
pub fn render(model: &Model, link: &Link, now_ns: u64) -> String {
    let mut registry = Registry::with_prefix("vigil");
    let c = link.counters();
    gauge(
        &mut registry,
        "link_up",
        "1 while connected to the kernel's monitor channel",
        if link.is_connected() { 1.0 } else { 0.0 },
    );
    counter(
        &mut registry,
        "link_connections",
        "Connections made to the monitor channel",
        link.connections,
    );
    counter(
        &mut registry,
        "link_bytes",
        "Bytes received on the monitor channel",
        link.bytes,
    );
    counter(&mut registry, "link_frames", "Frames decoded", c.frames);
    counter(
        &mut registry,
        "link_checksum_errors",
        "Frames damaged in transit (CRC or COBS)",
        c.checksum_errors,
    );
    counter(
        &mut registry,
        "link_malformed_frames",
        "Frames with a valid checksum that did not decode, or too large",
        c.malformed + c.oversized,
    );
    counter(
        &mut registry,
        "link_discarded_bytes",
        "Bytes not part of any decoded frame",
        c.discarded_bytes,
    );
    if let Some(ago) = link.since_last_frame(now_ns) {
        gauge(
            &mut registry,
            "link_seconds_since_last_frame",
            "Time since the last frame arrived",
            ago as f64 / 1e9,
        );
    }
    counter(
        &mut registry,
        "kernel_events_dropped",
        "Trace events the kernel overwrote before sending",
        model.drops.events_dropped,
    );
    counter(
        &mut registry,
        "kernel_frames_dropped",
        "Frames the kernel could not send",
        model.drops.frames_dropped,
    );
    counter(
        &mut registry,
        "kernel_malformed_commands",
        "Host commands the kernel refused",
        model.drops.malformed_commands,
    );
    counter(
        &mut registry,
        "events_received",
        "Trace events received",
        model.events_seen,
    );
    counter(
        &mut registry,
        "events_lost",
        "Trace events missing from the sequence",
        model.lost_events,
    );
    if let Some(busy) = model.busy_percent {
        gauge(
            &mut registry,
            "cpu_busy_percent",
            "CPU not idle between the last two snapshots",
            busy,
        );
    }
    let mut alerts: BTreeMap<&str, f64> = BTreeMap::new();
    for alert in model.active_alerts() {
        *alerts.entry(alert_kind_name(&alert.kind)).or_default() += 1.0;
    }
    gauge_family(
        &mut registry,
        "alerts_active",
        "Alerts the detector considers active, by kind",
        alerts
            .into_iter()
            .map(|(kind, n)| (vec![("kind".into(), kind.into())], n))
            .collect(),
    );
    if let Some(snapshot) = model.snapshot() {
        let labels = &model.labels;
        let thread_labels = |t: &vigil_wire::ThreadInfo| -> Labels {
            vec![
                ("thread".into(), labels.thread(t.endpoint)),
                (
                    "process".into(),
                    labels.process(t.pid).unwrap_or("?").into(),
                ),
                ("pid".into(), t.pid.to_string()),
            ]
        };
        let threads = &snapshot.threads;
        let rate = |t: &vigil_wire::ThreadInfo| {
            model
                .thread_rates
                .get(&t.endpoint)
                .copied()
                .unwrap_or_default()
        };
        gauge_family(
            &mut registry,
            "thread_cpu_percent",
            "Share of one CPU between the last two snapshots",
            threads
                .iter()
                .map(|t| (thread_labels(t), rate(t).cpu_percent))
                .collect(),
        );
        gauge_family(
            &mut registry,
            "thread_cpu_seconds",
            "CPU time used since the thread started",
            threads
                .iter()
                .map(|t| (thread_labels(t), t.counters.cpu_ns as f64 / 1e9))
                .collect(),
        );
        counter_family(
            &mut registry,
            "thread_context_switches",
            "Voluntary and involuntary context switches",
            threads
                .iter()
                .map(|t| {
                    (
                        thread_labels(t),
                        t.counters.voluntary_switches + t.counters.involuntary_switches,
                    )
                })
                .collect(),
        );
        counter_family(
            &mut registry,
            "thread_messages_sent",
            "IPC messages sent",
            threads
                .iter()
                .map(|t| (thread_labels(t), t.counters.messages_sent))
                .collect(),
        );
        counter_family(
            &mut registry,
            "thread_messages_received",
            "IPC messages received",
            threads
                .iter()
                .map(|t| (thread_labels(t), t.counters.messages_received))
                .collect(),
        );
        counter_family(
            &mut registry,
            "thread_page_faults",
            "Page faults",
            threads
                .iter()
                .map(|t| (thread_labels(t), t.counters.page_faults))
                .collect(),
        );
        gauge_family(
            &mut registry,
            "thread_state",
            "1 for the thread's current state (and what it waits for)",
            threads
                .iter()
                .map(|t| {
                    let mut l = thread_labels(t);
                    l.push(("state".into(), describe::state_name(t.state()).into()));
                    l.push((
                        "wait".into(),
                        describe::thread_state_text(t, labels, snapshot.timestamp_ns),
                    ));
                    (l, 1.0)
                })
                .collect(),
        );
        let process_labels = |p: &vigil_wire::ProcessInfo| -> Labels {
            vec![
                ("process".into(), p.name.clone()),
                ("pid".into(), p.pid.to_string()),
            ]
        };
        let processes = &snapshot.processes;
        gauge_family(
            &mut registry,
            "process_memory_bytes",
            "User memory mapped",
            processes
                .iter()
                .map(|p| (process_labels(p), (p.memory_pages * 4096) as f64))
                .collect(),
        );
        gauge_family(
            &mut registry,
            "process_threads",
            "Threads of the process",
            processes
                .iter()
                .map(|p| (process_labels(p), p.threads as f64))
                .collect(),
        );
        gauge_family(
            &mut registry,
            "process_cpu_percent",
            "Share of one CPU between the last two snapshots",
            processes
                .iter()
                .map(|p| {
                    (
                        process_labels(p),
                        model
                            .process_rates
                            .get(&p.pid)
                            .map_or(0.0, |r| r.cpu_percent),
                    )
                })
                .collect(),
        );
    }
    let mut text = String::new();
    encode(&mut text, &registry).expect("encoding into a String cannot fail");
    text
}

/// Shared between the feeding loop and the HTTP server.
struct State {
    model: Model,
    link: Link,
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
    let (status, content_type, body) = match path {
        "/metrics" => {
            let state = state.lock().unwrap();
            let now = state.clock_at_start + state.started.elapsed().as_nanos() as u64;
            (
                "200 OK",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                render(&state.model, &state.link, now),
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
                state.lock().unwrap().link.tick(now);
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
        let mut state = state.lock().unwrap();
        let State { model, link, .. } = &mut *state;
        link.handle(msg, |frame| {
            model.apply(frame);
        });
        link.tick(now);
    }
    Ok(())
}
