//! Human wording for what the kernel reports: thread labels, states with their wait targets,
//! and decoded trace-event arguments. Shared by `top`, `events` and `export`.

use std::collections::HashMap;

use vigil_abi::introspect::decode_state;
use vigil_abi::log::LogLevel;
use vigil_abi::syscall::{KernelCall, Syscall};
use vigil_abi::trace::EventKind;
use vigil_abi::wait::ThreadState;
use vigil_abi::Endpoint;
use vigil_wire::{Event, Snapshot, ThreadInfo};

/// Names for endpoints and pids, learned from snapshots and kept after threads die so that
/// late events still read well.
#[derive(Clone, Debug, Default)]
pub struct Labels {
    threads: HashMap<u64, String>,
    pids: HashMap<u64, u32>,
    processes: HashMap<u32, String>,
}

impl Labels {
    /// Learns every thread and process of a snapshot.
    pub fn learn(&mut self, snapshot: &Snapshot) {
        for process in &snapshot.processes {
            self.processes.insert(process.pid, process.name.clone());
        }
        for thread in &snapshot.threads {
            self.pids.insert(thread.endpoint, thread.pid);
            self.threads.insert(
                thread.endpoint,
                vigil_detect::thread_label(snapshot, thread.endpoint),
            );
        }
    }

    /// Records that `endpoint` belongs to `pid` (from a ThreadCreate/ProcessCreate event).
    pub fn learn_pid(&mut self, endpoint: u64, pid: u32) {
        if Endpoint(endpoint).is_thread() {
            self.pids.entry(endpoint).or_insert(pid);
        }
    }

    /// "name#slot" for a known thread, "ANY"/"NONE"/"CLOCK"/"KERNEL" for the special
    /// endpoints, "slot.gen" for a thread never seen in a snapshot.
    pub fn thread(&self, endpoint: u64) -> String {
        match self.threads.get(&endpoint) {
            Some(label) => label.clone(),
            None => format!("{:?}", Endpoint(endpoint)),
        }
    }

    /// Like [`Labels::thread`], but "idle" for NONE (the thread on the CPU when none runs).
    pub fn cpu_thread(&self, endpoint: u64) -> String {
        if Endpoint(endpoint) == Endpoint::NONE {
            "idle".into()
        } else {
            self.thread(endpoint)
        }
    }

    pub fn pid_of(&self, endpoint: u64) -> Option<u32> {
        self.pids.get(&endpoint).copied()
    }

    pub fn process(&self, pid: u32) -> Option<&str> {
        self.processes.get(&pid).map(String::as_str)
    }

    /// Every endpoint with a known label.
    pub fn known_threads(&self) -> impl Iterator<Item = (u64, &str)> {
        self.threads.iter().map(|(ep, label)| (*ep, label.as_str()))
    }

    /// Every pid with a known name.
    pub fn known_processes(&self) -> impl Iterator<Item = (u32, &str)> {
        self.processes
            .iter()
            .map(|(pid, name)| (*pid, name.as_str()))
    }
}

/// Short state name ("running", "sendrec", "mutex", …) for sorting and compact columns.
pub fn state_name(state: Option<ThreadState>) -> &'static str {
    match state {
        None => "unknown",
        Some(ThreadState::Free) => "free",
        Some(ThreadState::Ready) => "ready",
        Some(ThreadState::Running) => "running",
        Some(ThreadState::Sending { .. }) => "send",
        Some(ThreadState::Receiving { .. }) => "recv",
        Some(ThreadState::AwaitingReply { .. }) => "sendrec",
        Some(ThreadState::Mutex { .. }) => "mutex",
        Some(ThreadState::Sleeping { .. }) => "sleep",
        Some(ThreadState::Joining { .. }) => "join",
        Some(ThreadState::Dead { .. }) => "dead",
        Some(ThreadState::Restarting) => "restarting",
        Some(ThreadState::WaitingForVm { .. }) => "vm",
        Some(ThreadState::WaitingForTracee { .. }) => "tracing",
        Some(ThreadState::HeldForManager { vector, .. })
            if vigil_abi::ptrace::stop::describe(vector).is_some() =>
        {
            "traced"
        }
        Some(ThreadState::HeldForManager { .. }) => "held",
    }
}

/// A state with its wait target by name: "sendrec → pingpong_server#0", "recv ← ANY",
/// "mutex 0x4010 owned by worker#3", "sleep 12 ms", "join worker#2". `now_ns` is the kernel
/// time the state was observed at (for the remaining sleep).
pub fn state_text(state: Option<ThreadState>, labels: &Labels, now_ns: u64) -> String {
    let Some(state) = state else {
        return "unknown state".into();
    };
    match state {
        ThreadState::Free | ThreadState::Ready | ThreadState::Running => {
            state_name(Some(state)).into()
        }
        ThreadState::Sending { to } => format!("send → {}", labels.thread(to.0)),
        ThreadState::Receiving { from } => format!("recv ← {}", labels.thread(from.0)),
        ThreadState::AwaitingReply { from } => format!("sendrec → {}", labels.thread(from.0)),
        ThreadState::Mutex { address, owner } => {
            format!("mutex {address:#x} owned by {}", labels.thread(owner.0))
        }
        ThreadState::Sleeping { until_ns } => {
            format!("sleep {}", duration_text(until_ns.saturating_sub(now_ns)))
        }
        ThreadState::Joining { thread } => format!("join {}", labels.thread(thread.0)),
        ThreadState::Dead { exit_code } => format!("dead (exit {})", exit_code as i64),
        ThreadState::Restarting => "restarting (endpoint kept for the replacement)".into(),
        ThreadState::WaitingForVm {
            vm,
            address,
            access,
        } => format!(
            "waiting for VM {}: page fault at {address:#x} ({})",
            labels.thread(vm.0),
            access.name()
        ),
        ThreadState::WaitingForTracee { tracee, pid } => format!(
            "waiting for tracee {} (pid {pid}) to stop",
            labels.thread(tracee.0)
        ),
        ThreadState::HeldForManager { manager, vector } => {
            match vigil_abi::ptrace::stop::describe(vector) {
                Some(stop) => format!("{stop} (held by {})", labels.thread(manager.0)),
                None => format!(
                    "held for signal manager {} after exception vector {vector}",
                    labels.thread(manager.0)
                ),
            }
        }
    }
}

/// The state of a snapshot thread as text (see [`state_text`]).
pub fn thread_state_text(thread: &ThreadInfo, labels: &Labels, now_ns: u64) -> String {
    match thread.state() {
        Some(state) => state_text(Some(state), labels, now_ns),
        None => format!("state {}?", thread.state),
    }
}

/// "850 ns", "12 µs", "12 ms", "3.4 s", "120 s": a short duration.
pub fn duration_text(ns: u64) -> String {
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{} µs", ns / 1_000)
    } else if ns < 1_000_000_000 {
        format!("{} ms", (ns + 500_000) / 1_000_000)
    } else if ns < 100_000_000_000 {
        format!("{:.1} s", ns as f64 / 1e9)
    } else {
        format!("{} s", (ns + 500_000_000) / 1_000_000_000)
    }
}

/// Kernel time as seconds with microseconds: "12.345678".
pub fn timestamp_text(ns: u64) -> String {
    format!("{}.{:06}", ns / 1_000_000_000, (ns % 1_000_000_000) / 1_000)
}

/// Name of a trace event kind, or "kind-N" for one this tool does not know.
pub fn kind_name(kind: u16) -> String {
    match EventKind::from_u16(kind) {
        Some(kind) => kind.name().into(),
        None => format!("kind-{kind}"),
    }
}

/// A decoded argument of an event: a name and a value, both as JSON-friendly values.
#[derive(Clone, Debug, PartialEq)]
pub enum ArgValue {
    Text(String),
    Number(u64),
    Signed(i64),
    Hex(u64),
}

impl std::fmt::Display for ArgValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ArgValue::Text(text) => f.write_str(text),
            ArgValue::Number(n) => write!(f, "{n}"),
            ArgValue::Signed(n) => write!(f, "{n}"),
            ArgValue::Hex(n) => write!(f, "{n:#x}"),
        }
    }
}

impl ArgValue {
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            ArgValue::Text(text) => text.clone().into(),
            ArgValue::Number(n) => (*n).into(),
            ArgValue::Signed(n) => (*n).into(),
            ArgValue::Hex(n) => format!("{n:#x}").into(),
        }
    }
}

/// The decoded arguments of an event, in a stable order with stable names.
pub fn event_args(event: &Event, labels: &Labels) -> Vec<(&'static str, ArgValue)> {
    use ArgValue::*;
    let [a0, a1, a2] = event.args;
    let Some(kind) = EventKind::from_u16(event.kind) else {
        return vec![("arg0", Hex(a0)), ("arg1", Hex(a1)), ("arg2", Hex(a2))];
    };
    match kind {
        EventKind::ContextSwitch => vec![
            ("from", Text(labels.cpu_thread(a0))),
            (
                "from_state",
                Text(state_name(decode_state(a1 as u8, Endpoint::NONE, 0)).into()),
            ),
        ],
        EventKind::Block => {
            let state = decode_state(a0 as u8, Endpoint(a1), a2);
            vec![
                ("state", Text(state_name(state).into())),
                ("wait", Text(state_text(state, labels, event.timestamp_ns))),
            ]
        }
        EventKind::Unblock => vec![("result", Signed(a0 as i64))],
        EventKind::IpcSend => vec![("to", Text(labels.thread(a0))), ("msg_type", Number(a1))],
        EventKind::IpcReceive => vec![("from", Text(labels.thread(a0))), ("msg_type", Number(a1))],
        EventKind::IpcNotify => vec![("to", Text(labels.thread(a0)))],
        EventKind::Syscall => vec![
            (
                "syscall",
                Text(
                    Syscall::from_number(a0).map_or_else(|| format!("#{a0}"), |s| format!("{s:?}")),
                ),
            ),
            ("arg", Hex(a1)),
        ],
        EventKind::KernelCall => vec![
            (
                "call",
                Text(
                    KernelCall::from_number(a0)
                        .map_or_else(|| format!("#{a0}"), |c| format!("{c:?}")),
                ),
            ),
            ("result", Signed(a1 as i64)),
        ],
        EventKind::Interrupt => vec![("vector", Number(a0))],
        EventKind::ProcessCreate | EventKind::ThreadCreate => vec![("pid", Number(a0))],
        EventKind::ProcessExit => vec![("pid", Number(a0)), ("status", Signed(a1 as i64))],
        EventKind::ThreadExit => vec![("pid", Number(a0)), ("code", Signed(a1 as i64))],
        EventKind::Crash => vec![
            ("pid", Number(a0)),
            ("vector", Number(a1)),
            ("rip", Hex(a2)),
        ],
        EventKind::Log => vec![
            ("log_seq", Number(a0)),
            (
                "level",
                Text(
                    LogLevel::from_u8(a1 as u8)
                        .map_or_else(|| format!("{a1}"), |l| l.label().trim().into()),
                ),
            ),
        ],
    }
}

/// One-line description of an event without its timestamp:
/// "send        client#1  to=server#0 msg_type=3".
pub fn event_text(event: &Event, labels: &Labels) -> String {
    let thread = if event.kind == EventKind::ContextSwitch as u16 {
        labels.cpu_thread(event.thread)
    } else {
        labels.thread(event.thread)
    };
    let mut text = format!("{:<14} {:<24}", kind_name(event.kind), thread);
    for (name, value) in event_args(event, labels) {
        text.push(' ');
        text.push_str(name);
        text.push('=');
        let value = value.to_string();
        if value.contains(' ') {
            text.push('"');
            text.push_str(&value);
            text.push('"');
        } else {
            text.push_str(&value);
        }
    }
    text.trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_abi::introspect::state_code;
    use vigil_wire::ProcessInfo;

    fn labels() -> (Labels, Snapshot) {
        let server = Endpoint::new(4, 1).0;
        let worker = Endpoint::new(7, 2).0;
        let snapshot = Snapshot {
            generation: 1,
            timestamp_ns: 1_000_000_000,
            processes: vec![
                ProcessInfo {
                    pid: 2,
                    name: "pingpong_server".into(),
                    threads: 1,
                    main_thread: server,
                    ..Default::default()
                },
                ProcessInfo {
                    pid: 3,
                    name: "worker".into(),
                    threads: 1,
                    main_thread: worker,
                    ..Default::default()
                },
            ],
            threads: vec![
                ThreadInfo {
                    endpoint: server,
                    pid: 2,
                    state: state_code::RECEIVING,
                    wait_target: Endpoint::ANY.0,
                    ..Default::default()
                },
                ThreadInfo {
                    endpoint: worker,
                    pid: 3,
                    state: state_code::RUNNING,
                    wait_target: Endpoint::NONE.0,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let mut labels = Labels::default();
        labels.learn(&snapshot);
        (labels, snapshot)
    }

    #[test]
    fn wait_targets_are_named() {
        let (labels, snapshot) = labels();
        let server = Endpoint::new(4, 1);
        let worker = Endpoint::new(7, 2);
        let server_label = vigil_detect::thread_label(&snapshot, server.0);
        let worker_label = vigil_detect::thread_label(&snapshot, worker.0);
        assert!(
            server_label.starts_with("pingpong_server#"),
            "{server_label}"
        );
        let now = 1_000_000_000;
        let text = |state| state_text(Some(state), &labels, now);
        assert_eq!(
            text(ThreadState::AwaitingReply { from: server }),
            format!("sendrec → {server_label}")
        );
        assert_eq!(
            text(ThreadState::Receiving {
                from: Endpoint::ANY
            }),
            "recv ← ANY"
        );
        assert_eq!(
            text(ThreadState::Sending { to: server }),
            format!("send → {server_label}")
        );
        assert_eq!(
            text(ThreadState::Mutex {
                address: 0x4010,
                owner: worker
            }),
            format!("mutex 0x4010 owned by {worker_label}")
        );
        assert_eq!(
            text(ThreadState::Sleeping {
                until_ns: now + 12_000_000
            }),
            "sleep 12 ms"
        );
        assert_eq!(
            text(ThreadState::Sleeping { until_ns: now - 5 }),
            "sleep 0 ns"
        );
        assert_eq!(
            text(ThreadState::Joining { thread: worker }),
            format!("join {worker_label}")
        );
        assert_eq!(text(ThreadState::Running), "running");
        assert_eq!(text(ThreadState::Dead { exit_code: 3 }), "dead (exit 3)");
        // A page fault the VM server is resolving names VM and the fault.
        assert_eq!(
            text(ThreadState::WaitingForVm {
                vm: worker,
                address: 0x2000_0000_1000,
                access: vigil_abi::vm::FaultAccess::Write,
            }),
            format!("waiting for VM {worker_label}: page fault at 0x200000001000 (write)")
        );
        assert_eq!(
            state_name(Some(ThreadState::WaitingForVm {
                vm: worker,
                address: 0,
                access: vigil_abi::vm::FaultAccess::Read,
            })),
            "vm"
        );
        // A thread held after an exception names its signal manager and the vector.
        let held = ThreadState::HeldForManager {
            manager: worker,
            vector: 14,
        };
        assert_eq!(
            text(held),
            format!("held for signal manager {worker_label} after exception vector 14")
        );
        assert_eq!(state_name(Some(held)), "held");
        // A trace stop says so: the tracer's stop, not an exception.
        let traced = ThreadState::HeldForManager {
            manager: worker,
            vector: vigil_abi::ptrace::stop::SYSCALL_ENTRY_VECTOR,
        };
        assert_eq!(
            text(traced),
            format!("stopped by tracer at system call entry (held by {worker_label})")
        );
        assert_eq!(state_name(Some(traced)), "traced");
        // A thread never seen in a snapshot reads as slot.generation.
        assert_eq!(
            text(ThreadState::Joining {
                thread: Endpoint::new(9, 4)
            }),
            "join 9.4"
        );
        assert_eq!(state_text(None, &labels, now), "unknown state");
    }

    #[test]
    fn durations_and_timestamps() {
        assert_eq!(duration_text(850), "850 ns");
        assert_eq!(duration_text(12_300), "12 µs");
        assert_eq!(duration_text(12_400_000), "12 ms");
        assert_eq!(duration_text(999_000_000), "999 ms");
        assert_eq!(duration_text(3_000_000_000), "3.0 s");
        assert_eq!(duration_text(120_000_000_000), "120 s");
        assert_eq!(timestamp_text(12_345_678_901), "12.345678");
    }

    #[test]
    fn events_decode_their_arguments() {
        let (labels, snapshot) = labels();
        let server = Endpoint::new(4, 1).0;
        let worker = Endpoint::new(7, 2).0;
        let server_label = vigil_detect::thread_label(&snapshot, server);
        let worker_label = vigil_detect::thread_label(&snapshot, worker);
        let send = Event {
            seq: 1,
            timestamp_ns: 5,
            kind: EventKind::IpcSend as u16,
            thread: worker,
            args: [server, 3, 0],
        };
        assert_eq!(
            event_text(&send, &labels),
            format!(
                "{:<14} {:<24} to={server_label} msg_type=3",
                "send", worker_label
            )
        );
        let switch = Event {
            seq: 2,
            timestamp_ns: 6,
            kind: 0,
            thread: Endpoint::NONE.0,
            args: [worker, state_code::READY as u64, 0],
        };
        let args = event_args(&switch, &labels);
        assert_eq!(args[0], ("from", ArgValue::Text(worker_label.clone())));
        assert_eq!(args[1], ("from_state", ArgValue::Text("ready".into())));
        assert!(event_text(&switch, &labels).contains("idle"));
        let block = Event {
            seq: 3,
            timestamp_ns: 7,
            kind: EventKind::Block as u16,
            thread: worker,
            args: [state_code::AWAITING_REPLY as u64, server, 0],
        };
        assert!(event_text(&block, &labels)
            .ends_with(&format!("state=sendrec wait=\"sendrec → {server_label}\"")));
        let unknown = Event {
            seq: 4,
            timestamp_ns: 8,
            kind: 999,
            thread: worker,
            args: [1, 2, 3],
        };
        assert!(event_text(&unknown, &labels).starts_with("kind-999"));
    }
}
