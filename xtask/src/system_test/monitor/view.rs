//! Reading what a monitor scenario observed: the tool's JSON lines (line types, fields,
//! threads labelled `process#slot`, alerts) and the frames the proxy decoded from the same
//! stream.

use std::collections::BTreeSet;

use serde_json::Value;
use vigil_wire::{KernelFrame, ProcessInfo, Snapshot, ThreadInfo};

use super::super::proxy::ProxyReport;

// ---------------------------------------------------------------------------------------------
// JSON helpers (the tool's view)
// ---------------------------------------------------------------------------------------------

pub fn line_type(line: &Value) -> &str {
    line.get("type").and_then(Value::as_str).unwrap_or("")
}

/// The lines of one type, with their index in the output.
pub fn of_type<'a>(lines: &'a [Value], kind: &'a str) -> impl Iterator<Item = (usize, &'a Value)> {
    lines
        .iter()
        .enumerate()
        .filter(move |(_, line)| line_type(line) == kind)
}

/// An unsigned integer field; the tool writes integers above 2^53 − 1 as decimal strings.
pub fn u64_field(value: &Value, field: &str) -> Option<u64> {
    match value.get(field)? {
        Value::String(digits) => digits.parse().ok(),
        other => other.as_u64(),
    }
}

pub fn str_field<'a>(value: &'a Value, field: &str) -> &'a str {
    value.get(field).and_then(Value::as_str).unwrap_or("")
}

pub fn array<'a>(value: &'a Value, field: &str) -> &'a [Value] {
    value
        .get(field)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The kernel time a line carries: `ts_ns` (event, log, snapshot, crash), `now_ns` (hello)
/// or `first_seen_ns` (alert); drops, lost and command results carry none.
pub fn kernel_time(line: &Value) -> Option<u64> {
    u64_field(line, "ts_ns")
        .or_else(|| u64_field(line, "now_ns"))
        .or_else(|| u64_field(line, "first_seen_ns"))
}

/// The threads of a snapshot line whose label is `<process>#<slot>`.
pub fn threads_of<'a>(snapshot: &'a Value, process: &str) -> Vec<&'a Value> {
    let prefix = format!("{process}#");
    array(snapshot, "threads")
        .iter()
        .filter(|t| {
            str_field(t, "thread")
                .strip_prefix(&prefix)
                .is_some_and(|slot| slot.parse::<u16>().is_ok())
        })
        .collect()
}

/// The single thread of `process` in a snapshot line.
pub fn thread_of<'a>(snapshot: &'a Value, process: &str) -> Result<&'a Value, String> {
    match threads_of(snapshot, process).as_slice() {
        [thread] => Ok(thread),
        [] => Err(format!(
            "snapshot generation {} has no thread labelled {process}#<slot>",
            u64_field(snapshot, "generation").unwrap_or(0)
        )),
        many => Err(format!(
            "snapshot generation {} has {} threads of {process}, expected one",
            u64_field(snapshot, "generation").unwrap_or(0),
            many.len()
        )),
    }
}

/// The slot of a thread label `name#slot`.
pub fn slot_of(label: &str) -> Option<u16> {
    label.rsplit_once('#')?.1.parse().ok()
}

pub fn process_names(snapshot: &Value) -> BTreeSet<&str> {
    array(snapshot, "processes")
        .iter()
        .map(|p| str_field(p, "name"))
        .collect()
}

/// Alert lines of `kind`.
pub fn alerts<'a>(lines: &'a [Value], kind: &'a str) -> Vec<&'a Value> {
    of_type(lines, "alert")
        .filter(|(_, alert)| str_field(alert, "kind") == kind)
        .map(|(_, alert)| alert)
        .collect()
}

pub fn alert_threads(alert: &Value) -> Vec<&str> {
    array(alert, "threads")
        .iter()
        .map(|t| t.as_str().unwrap_or(""))
        .collect()
}

/// Every `0x…` number in `text`.
pub fn hex_numbers(text: &str) -> Vec<u64> {
    text.split(|c: char| !c.is_ascii_alphanumeric())
        .filter_map(|word| word.strip_prefix("0x"))
        .filter_map(|digits| u64::from_str_radix(digits, 16).ok())
        .collect()
}

pub fn alert_summary(lines: &[Value]) -> String {
    let alerts: Vec<String> = of_type(lines, "alert")
        .map(|(_, a)| format!("{}: {}", str_field(a, "kind"), str_field(a, "message")))
        .collect();
    if alerts.is_empty() {
        "no alerts at all".to_string()
    } else {
        format!("alerts: {}", alerts.join(" | "))
    }
}

// ---------------------------------------------------------------------------------------------
// Raw helpers (the proxy's view of the same stream)
// ---------------------------------------------------------------------------------------------

pub fn raw_snapshots(proxy: &ProxyReport) -> impl Iterator<Item = &Snapshot> {
    proxy.frames.iter().filter_map(|f| match &f.frame {
        KernelFrame::Snapshot(snapshot) => Some(snapshot),
        _ => None,
    })
}

pub fn raw_snapshot(proxy: &ProxyReport, generation: u64) -> Option<&Snapshot> {
    raw_snapshots(proxy).find(|s| s.generation == generation)
}

pub fn raw_process<'a>(snapshot: &'a Snapshot, name: &str) -> Result<&'a ProcessInfo, String> {
    snapshot
        .processes
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| {
            format!(
                "the raw snapshot generation {} has no process {name:?}",
                snapshot.generation
            )
        })
}

pub fn raw_main_thread<'a>(snapshot: &'a Snapshot, name: &str) -> Result<&'a ThreadInfo, String> {
    let process = raw_process(snapshot, name)?;
    snapshot
        .threads
        .iter()
        .find(|t| t.endpoint == process.main_thread)
        .ok_or_else(|| {
            format!(
                "the raw snapshot generation {} has no record of {name}'s main thread",
                snapshot.generation
            )
        })
}

/// The slot of an endpoint (bits 0–15).
pub fn slot(endpoint: u64) -> u16 {
    (endpoint & 0xffff) as u16
}

/// Observations as a check sees them, for the checks' unit tests.
#[cfg(test)]
pub mod fixtures {
    use std::time::Duration;

    use serde_json::{json, Value};
    use vigil_wire::{encode_kernel_frame, KernelFrame, ProcessInfo, Snapshot, ThreadInfo};

    use super::super::super::console::Console;
    use super::super::super::proxy::{ProxyFrame, ProxyReport};
    use super::super::super::scenario::millis;
    use super::super::session::Observation;

    pub fn console(texts: &[&str]) -> Console {
        Console::from_texts(texts)
    }

    /// A thread as the tool prints it.
    pub fn thread(label: &str, state: &str, wait: &str, cpu_ns: u64, percent: f64) -> Value {
        json!({
            "thread": label, "endpoint": "0.1", "pid": 1, "state": state, "wait": wait,
            "priority": 8, "cpu_ns": cpu_ns, "cpu_percent": percent,
        })
    }

    pub fn snapshot_line(
        generation: u64,
        ts_ns: u64,
        threads: Vec<Value>,
        names: &[&str],
    ) -> Value {
        let processes: Vec<Value> = names
            .iter()
            .enumerate()
            .map(|(i, name)| json!({"pid": i + 1, "name": name}))
            .collect();
        json!({
            "type": "snapshot", "generation": generation, "ts_ns": ts_ns,
            "thread_count": threads.len(), "process_count": names.len(),
            "threads": threads, "processes": processes,
        })
    }

    pub fn raw_thread(
        endpoint: u64,
        pid: u32,
        state: u8,
        target: u64,
        argument: u64,
    ) -> ThreadInfo {
        ThreadInfo {
            endpoint,
            pid,
            state,
            wait_target: target,
            wait_argument: argument,
            ..ThreadInfo::default()
        }
    }

    pub fn raw_process_info(pid: u32, name: &str, main_thread: u64) -> ProcessInfo {
        ProcessInfo {
            pid,
            name: name.to_string(),
            threads: 1,
            main_thread,
            ..ProcessInfo::default()
        }
    }

    /// A proxy report whose stream is `frames`, encoded, arriving `spacing_ms` apart.
    pub fn proxy_spaced(frames: Vec<KernelFrame>, spacing_ms: u64) -> ProxyReport {
        let mut report = ProxyReport {
            connections: vec![Duration::ZERO],
            connection_offsets: vec![0],
            ..ProxyReport::default()
        };
        for (index, frame) in frames.into_iter().enumerate() {
            encode_kernel_frame(&frame, &mut report.from_kernel);
            report.frames.push(ProxyFrame {
                at: millis(spacing_ms * index as u64),
                end: report.from_kernel.len(),
                frame,
            });
        }
        report.stats.frames = report.frames.len() as u64;
        report
    }

    pub fn proxy_with(frames: Vec<KernelFrame>) -> ProxyReport {
        proxy_spaced(frames, 10)
    }

    pub fn observation(
        lines: Vec<Value>,
        proxy: ProxyReport,
        console_lines: &[&str],
    ) -> Observation {
        Observation {
            lines,
            clients: Vec::new(),
            metrics: None,
            replay: None,
            recording: None,
            proxy,
            console: console(console_lines),
        }
    }

    pub fn raw_snapshot_frame(
        generation: u64,
        ts: u64,
        threads: Vec<ThreadInfo>,
        processes: Vec<ProcessInfo>,
    ) -> KernelFrame {
        KernelFrame::Snapshot(Snapshot {
            generation,
            timestamp_ns: ts,
            idle_ns: 0,
            threads,
            processes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{snapshot_line, thread};
    use super::*;
    use serde_json::json;

    #[test]
    fn helpers_read_the_tool_s_fields() {
        assert_eq!(
            hex_numbers("mutex 0x406010 owned by a#7 → mutex 0x406000,"),
            [0x406010, 0x406000]
        );
        assert_eq!(slot_of("chain_b#3"), Some(3));
        assert_eq!(slot_of("chain_b"), None);
        assert_eq!(kernel_time(&json!({"type": "hello", "now_ns": 5})), Some(5));
        assert_eq!(kernel_time(&json!({"type": "drops"})), None);
        let snapshot = snapshot_line(
            1,
            1,
            vec![
                thread("chain_a#2", "send", "", 0, 0.0),
                thread("chain_ab#3", "send", "", 0, 0.0),
            ],
            &[],
        );
        assert_eq!(threads_of(&snapshot, "chain_a").len(), 1);
        assert!(thread_of(&snapshot, "chain_c").is_err());
    }
}

/// The `process_result` line answering host command `request` (process commands and, with
/// the same frame, service commands).
pub fn result(lines: &[Value], request: u64) -> Result<(usize, &Value), String> {
    of_type(lines, "process_result")
        .find(|(_, line)| u64_field(line, "request") == Some(request))
        .ok_or_else(|| format!("the tool printed no process_result for request {request}"))
}

/// `request` was answered with `outcome` and a message containing `says`.
pub fn expect_result(
    lines: &[Value],
    request: u64,
    outcome: u64,
    says: &str,
) -> Result<usize, String> {
    let (index, line) = result(lines, request)?;
    if u64_field(line, "outcome") != Some(outcome) || !str_field(line, "message").contains(says) {
        return Err(format!(
            "request {request}: expected outcome {outcome} saying {says:?}, got {line}"
        ));
    }
    Ok(index)
}
