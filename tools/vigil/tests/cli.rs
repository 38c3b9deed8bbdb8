//! End-to-end tests of the `vigil` binary against a fake kernel on 127.0.0.1:0.

mod common;

use std::net::TcpListener;
use std::process::{Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use assert_cmd::prelude::*;
use common::*;
use serde_json::Value;
use vigil_wire::HostFrame;

fn run(args: &[&str]) -> Output {
    vigil().args(args).output().expect("run vigil")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn of_type<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["type"] == kind).collect()
}

#[test]
fn events_json_reports_events_alerts_and_everything_else() {
    let kernel = FakeKernel::start(vec![Session {
        bytes: encode(&script()),
        chunk: usize::MAX,
        close: true,
    }]);
    let output = run(&[
        "events",
        "--connect",
        &kernel.address(),
        "--json",
        "--once",
        "--duration",
        "10s",
    ]);
    output.clone().assert().success();
    let lines = json_lines(&output.stdout);

    let hello = of_type(&lines, "hello");
    assert_eq!(hello.len(), 1, "{lines:#?}");
    assert_eq!(hello[0]["kernel_version"], "fake-kernel 0.1");
    assert_eq!(hello[0]["compatible"], true);

    let events = of_type(&lines, "event");
    assert_eq!(events.len(), 7);
    let send = events
        .iter()
        .find(|e| e["kind"] == "send")
        .expect("a send event");
    assert_eq!(send["thread"], "client#2");
    assert_eq!(send["args"]["to"], "server#3");
    assert_eq!(send["args"]["msg_type"], 7);
    assert_eq!(send["seq"], 2);
    let block = events.iter().find(|e| e["kind"] == "block").unwrap();
    assert_eq!(block["args"]["wait"], "sendrec → server#3");
    let switch = events.iter().find(|e| e["kind"] == "switch").unwrap();
    assert_eq!(switch["thread"], "client#2");
    assert_eq!(switch["args"]["from"], "spinner#4");

    let lost = of_type(&lines, "lost");
    assert_eq!(lost.len(), 1);
    assert_eq!(
        (lost[0]["first_seq"].as_u64(), lost[0]["count"].as_u64()),
        (Some(7), Some(2))
    );

    let alerts = of_type(&lines, "alert");
    let deadlock = alerts
        .iter()
        .find(|a| a["kind"] == "deadlock")
        .expect("a deadlock alert");
    let message = deadlock["message"].as_str().unwrap();
    assert!(
        message.contains("locker#5") && message.contains("locker#6"),
        "{message}"
    );
    let hog = alerts
        .iter()
        .find(|a| a["kind"] == "cpu-hog")
        .expect("a cpu-hog alert");
    assert!(
        hog["message"].as_str().unwrap().contains("spinner#4"),
        "{hog}"
    );
    assert_eq!(hog["threads"][0], "spinner#4");

    let snapshots = of_type(&lines, "snapshot");
    assert_eq!(snapshots.len(), 4);
    assert_eq!(snapshots[0]["thread_count"], 6);
    assert_eq!(snapshots[3]["generation"], 4);
    assert_eq!(snapshots[3]["busy_percent"], 98.0);

    assert_eq!(of_type(&lines, "log")[0]["text"], "fake kernel up");
    assert_eq!(of_type(&lines, "drops")[0]["events_dropped"], 3);
    let crash = of_type(&lines, "crash");
    assert_eq!(crash[0]["process"], "crasher");
    assert_eq!(crash[0]["backtrace"][1], "0x402000");

    // The tool announced itself to the kernel.
    let host = kernel.host_frames.lock().unwrap().clone();
    assert_eq!(
        host.first(),
        Some(&HostFrame::Hello {
            protocol_version: vigil_wire::PROTOCOL_VERSION
        })
    );
}

#[test]
fn events_text_and_full_snapshots() {
    let kernel = FakeKernel::start(vec![Session {
        bytes: encode(&script()),
        chunk: usize::MAX,
        close: false,
    }]);
    let output = run(&[
        "events",
        "--connect",
        &kernel.address(),
        "--snapshots",
        "--duration",
        "2s",
    ]);
    output.clone().assert().success();
    let text = stdout(&output);
    assert!(text.contains("1.100001 send           client#2"), "{text}");
    assert!(text.contains("to=server#3 msg_type=7"), "{text}");
    assert!(text.contains("ALERT          deadlock: "), "{text}");
    assert!(text.contains("mutex 0x4010 owned by locker#6"), "{text}");
    assert!(text.contains("recv ← ANY"), "{text}");
    assert!(text.contains("sleep 12 ms"), "{text}");
    assert!(
        text.contains("lost           2 events (seq 7..8)"),
        "{text}"
    );
    assert!(text.contains("CRASH          user-fault in crasher (pid 9): page fault at 0x0 backtrace: 0x401000 0x402000"), "{text}");
    let err = stderr(&output);
    assert!(
        err.contains(&format!("connected to {}", kernel.address())),
        "{err}"
    );
    assert!(err.contains("lost in sequence gaps"), "{err}");
}

#[test]
fn json_snapshots_carry_each_process_memory_figures() {
    let kernel = FakeKernel::start(vec![Session {
        bytes: encode(&script()),
        chunk: usize::MAX,
        close: true,
    }]);
    let output = run(&[
        "events",
        "--connect",
        &kernel.address(),
        "--json",
        "--snapshots",
        "--once",
        "--duration",
        "10s",
    ]);
    output.clone().assert().success();
    let lines = json_lines(&output.stdout);
    let snapshots = of_type(&lines, "snapshot");
    let last = snapshots.last().expect("a snapshot");
    let locker = last["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .find(|p| p["name"] == "locker")
        .expect("locker");
    assert_eq!(locker["memory_pages"], 300);
    assert_eq!(locker["peak_pages"], 375);
    assert_eq!(locker["virtual_bytes"], 5_423_104);
    assert_eq!(locker["shared_pages"], 37);
    assert_eq!(locker["faults_not_present"], 300);
    assert_eq!(locker["faults_protection"], 3);
}

#[test]
fn count_stops_after_n_events_and_kind_filters() {
    let kernel = FakeKernel::start(vec![Session {
        bytes: encode(&script()),
        chunk: usize::MAX,
        close: false,
    }]);
    let started = Instant::now();
    let output = run(&[
        "events",
        "--connect",
        &kernel.address(),
        "--json",
        "--count",
        "2",
        "--kind",
        "send,block",
        "-q",
    ]);
    output.clone().assert().success();
    assert!(started.elapsed() < Duration::from_secs(5));
    let lines = json_lines(&output.stdout);
    let kinds: Vec<&str> = of_type(&lines, "event")
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["send", "block"]);
    assert!(stderr(&output).is_empty(), "--quiet: {}", stderr(&output));
}

#[test]
fn garbage_in_the_stream_is_survived_and_counted() {
    let frames = script();
    let mut bytes = encode(&frames[..3]);
    bytes.extend_from_slice(b"\x05garbage that is not a frame\x00");
    bytes.extend_from_slice(&[0xff; 40]);
    // A frame whose checksum is damaged.
    let mut damaged = encode(&frames[3..4]);
    damaged[3] ^= 0x55;
    bytes.extend_from_slice(&damaged);
    bytes.extend_from_slice(&encode(&frames[4..]));
    let kernel = FakeKernel::start(vec![Session {
        bytes,
        chunk: 64,
        close: true,
    }]);
    let output = run(&[
        "events",
        "--connect",
        &kernel.address(),
        "--json",
        "--once",
        "--duration",
        "10s",
    ]);
    output.clone().assert().success();
    let lines = json_lines(&output.stdout);
    // Everything after the garbage still arrived…
    assert_eq!(of_type(&lines, "snapshot").len(), 4);
    assert_eq!(of_type(&lines, "crash").len(), 1);
    assert!(of_type(&lines, "alert")
        .iter()
        .any(|a| a["kind"] == "cpu-hog"));
    // …except the damaged events frame.
    assert!(of_type(&lines, "event").iter().all(|e| e["seq"] == 9));
    let err = stderr(&output);
    let summary = err
        .lines()
        .find(|l| l.contains("checksum errors"))
        .expect("a link summary");
    let count = |label: &str| -> u64 {
        let before = summary.split(label).next().unwrap();
        before
            .rsplit(", ")
            .next()
            .unwrap()
            .trim()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(count(" checksum errors") >= 2, "{summary}");
    assert!(count(" bytes discarded") > 40, "{summary}");
}

#[test]
fn reconnects_when_the_kernel_restarts_on_the_same_port() {
    let frames = script();
    let first = FakeKernel::start(vec![Session {
        bytes: encode(&frames[..3]),
        chunk: usize::MAX,
        close: false,
    }]);
    let address = first.address();
    let child = vigil()
        .args([
            "events",
            "--connect",
            &address,
            "--json",
            "--count",
            "7",
            "--duration",
            "10s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let it connect and read, then "kill QEMU": connection and listener go away.
    let deadline = Instant::now() + Duration::from_secs(5);
    while first.connections.load(std::sync::atomic::Ordering::Relaxed) == 0
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(10));
    }
    thread::sleep(Duration::from_millis(200));
    first.stop();
    drop(first);
    thread::sleep(Duration::from_millis(400));
    // "Restart QEMU" on the same port with a fresh kernel (sequence numbers start again).
    let listener = TcpListener::bind(&address).expect("rebind the same port");
    let second = FakeKernel::serve(
        listener,
        vec![Session {
            bytes: encode(&script()),
            chunk: usize::MAX,
            close: false,
        }],
    );
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert!(
        second
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    let lines = json_lines(&output.stdout);
    assert_eq!(of_type(&lines, "hello").len(), 2, "{lines:#?}");
    assert_eq!(
        of_type(&lines, "event").len(),
        7,
        "events of the second kernel arrived"
    );
    assert_eq!(
        of_type(&lines, "lost").len(),
        1,
        "a restart is not a gap, 7..8 is"
    );
    let err = stderr(&output);
    assert!(
        err.contains(&format!("connection to {address} lost")),
        "{err}"
    );
    assert!(err.contains(&format!("waiting for kernel at {address}… (cannot connect to {address}: connection refused; retrying")), "{err}");
    assert_eq!(
        err.matches(&format!("connected to {address}")).count(),
        2,
        "{err}"
    );
}

#[test]
fn waits_for_a_kernel_that_is_not_there_yet() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let address = format!("127.0.0.1:{port}");
    let output = run(&["events", "--connect", &address, "--duration", "600ms"]);
    output.clone().assert().success();
    assert!(stdout(&output).is_empty());
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "waiting for kernel at {address}… (cannot connect to {address}: connection refused"
        )),
        "{err}"
    );
    assert_eq!(
        err.matches("waiting for kernel").count(),
        1,
        "said once, not every retry: {err}"
    );
}

#[test]
fn record_then_replay_gives_the_same_output_and_export_is_valid_json() {
    let dir = std::env::temp_dir().join(format!("vigil-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let recording = dir.join("session.vrec");
    // Small chunks with pauses: the live client and the recorder see different chunking.
    let kernel = FakeKernel::start(vec![Session {
        bytes: encode(&script()),
        chunk: 97,
        close: true,
    }]);
    let address = kernel.address();
    let recorder = vigil()
        .args([
            "record",
            "--connect",
            &address,
            "-o",
            recording.to_str().unwrap(),
            "--once",
            "--duration",
            "10s",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let spawn = |args: &[&str]| {
        vigil()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let live_json = spawn(&[
        "events",
        "--connect",
        &address,
        "--json",
        "--once",
        "--duration",
        "10s",
    ]);
    let live_text = spawn(&[
        "events",
        "--connect",
        &address,
        "--once",
        "--duration",
        "10s",
    ]);
    let live_json = live_json.wait_with_output().unwrap();
    let live_text = live_text.wait_with_output().unwrap();
    let recorded = recorder.wait_with_output().unwrap();
    assert!(recorded.status.success(), "{}", stderr(&recorded));
    assert!(
        stderr(&recorded).contains("recorded "),
        "{}",
        stderr(&recorded)
    );

    let replay_json = run(&["events", "--replay", recording.to_str().unwrap(), "--json"]);
    replay_json.clone().assert().success();
    assert!(!live_json.stdout.is_empty());
    assert_eq!(stdout(&replay_json), stdout(&live_json));
    let replay_text = run(&["events", "--replay", recording.to_str().unwrap()]);
    assert_eq!(stdout(&replay_text), stdout(&live_text));

    // Timed replay at high speed ends on its own too.
    let fast = run(&[
        "events",
        "--replay",
        recording.to_str().unwrap(),
        "--json",
        "--speed",
        "100",
    ]);
    assert_eq!(stdout(&fast), stdout(&live_json));

    let trace_path = dir.join("trace.json");
    let export = run(&[
        "export",
        recording.to_str().unwrap(),
        "--perfetto",
        trace_path.to_str().unwrap(),
    ]);
    export.clone().assert().success();
    let trace: Value =
        serde_json::from_slice(&std::fs::read(&trace_path).unwrap()).expect("valid JSON");
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    if let Err(error) = check_trace_event_rules(events) {
        panic!("the export breaks the trace-event rules: {error}");
    }
    let meta = |name: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["ph"] == "M" && e["name"] == name)
            .collect()
    };
    let thread_names: Vec<&str> = meta("thread_name")
        .iter()
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    for label in ["client#2", "server#3", "spinner#4"] {
        assert!(thread_names.contains(&label), "{thread_names:?}");
    }
    let client_track = meta("thread_name")
        .into_iter()
        .find(|e| e["args"]["name"] == "client#2")
        .unwrap();
    assert_eq!(
        client_track["pid"], 2,
        "a thread track sits under its process"
    );
    let process_names: Vec<&str> = meta("process_name")
        .iter()
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    assert!(
        process_names.contains(&"client (2)") && process_names.contains(&"kernel"),
        "{process_names:?}"
    );
    let slices: Vec<&Value> = events
        .iter()
        .filter(|e| e["ph"] == "X" && e["name"] == "running")
        .collect();
    assert_eq!(
        slices.len(),
        4,
        "the spinner from the first snapshot (1 s) to the first switch, then three context \
         switches → three running intervals"
    );
    let spinner_track = meta("thread_name")
        .into_iter()
        .find(|e| e["args"]["name"] == "spinner#4")
        .unwrap();
    assert_eq!(slices[0]["tid"], spinner_track["tid"]);
    assert_eq!(slices[0]["ts"], 1_000_000.0);
    assert_eq!(slices[0]["dur"], 100_000.0, "1.0 s to 1.1 s");
    assert_eq!(slices[1]["tid"], client_track["tid"]);
    assert_eq!(slices[1]["dur"], 3.0, "client ran 3 µs");
    let flow_start = events
        .iter()
        .find(|e| e["ph"] == "s")
        .expect("an IPC flow start");
    let flow_end = events
        .iter()
        .find(|e| e["ph"] == "f")
        .expect("an IPC flow end");
    assert_eq!(flow_start["id"], flow_end["id"]);
    assert_eq!(flow_start["tid"], client_track["tid"]);
    let counters: Vec<&Value> = events
        .iter()
        .filter(|e| e["ph"] == "C" && e["pid"] == 4)
        .collect();
    assert_eq!(
        counters.len(),
        3,
        "spinner CPU % on every snapshot after the first"
    );
    assert_eq!(counters[0]["args"]["cpu %"], 95.0);
    assert!(events
        .iter()
        .any(|e| e["ph"] == "i" && e["name"] == "alert: deadlock"));
    assert!(events.iter().any(|e| e["ph"] == "i" && e["cat"] == "crash"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn clear_errors() {
    let bad = run(&["events", "--connect", "nonsense"]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("is not an address: use HOST:PORT"),
        "{}",
        stderr(&bad)
    );
    let missing = run(&["events", "--replay", "/nonexistent/recording"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("vigil: error: cannot open recording /nonexistent/recording"),
        "{}",
        stderr(&missing)
    );
    let top = vigil()
        .args(["top", "--connect", "127.0.0.1:1"])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(!top.status.success());
    assert!(
        stderr(&top).contains("needs a terminal"),
        "{}",
        stderr(&top)
    );
    let help = run(&["--help"]);
    for command in ["top", "events", "record", "replay", "export"] {
        assert!(stdout(&help).contains(command));
    }
}

#[cfg(unix)]
#[test]
fn unix_socket_monitor_channel() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;
    let dir = std::env::temp_dir().join(format!("vigil-unix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("monitor.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        stream.write_all(&encode(&script())).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut hello = [0u8; 64];
        let n = stream.read(&mut hello).unwrap_or(0);
        let mut decoder = vigil_wire::HostFrameDecoder::new();
        let mut frames = Vec::new();
        decoder.push(&hello[..n], |f| frames.push(f));
        frames
    });
    let address = format!("unix:{}", path.display());
    let output = run(&[
        "events",
        "--connect",
        &address,
        "--json",
        "--once",
        "--duration",
        "10s",
    ]);
    output.clone().assert().success();
    let lines = json_lines(&output.stdout);
    assert_eq!(of_type(&lines, "snapshot").len(), 4);
    assert!(stderr(&output).contains(&format!("connected to {address}")));
    let host = server.join().unwrap();
    assert!(
        matches!(host.first(), Some(Ok(HostFrame::Hello { .. }))),
        "{host:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Starts `vigil metrics` on the fake kernel; returns the child and the host:port it serves.
fn start_metrics(kernel: &FakeKernel) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = vigil()
        .args([
            "metrics",
            "--connect",
            &kernel.address(),
            "--listen",
            "127.0.0.1:0",
            "--duration",
            "20s",
            "--quiet",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("vigil: serving metrics on http://")
        .expect(&line);
    let host = url.strip_suffix("/metrics").unwrap().to_string();
    (child, host)
}

/// GET `path` with an optional Accept header; the whole response.
fn http_get(host: &str, path: &str, accept: Option<&str>) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    let accept = accept.map_or(String::new(), |a| format!("Accept: {a}\r\n"));
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n{accept}\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// Polls `/metrics` until `ready` holds for the body (or 5 s pass); the last response.
fn metrics_when(host: &str, accept: Option<&str>, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let body = http_get(host, "/metrics", accept);
        if ready(&body) || Instant::now() >= deadline {
            return body;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn metrics_follow_prometheus_conventions_in_both_formats() {
    let kernel = FakeKernel::start(vec![Session {
        bytes: encode(&script()),
        chunk: usize::MAX,
        close: false,
    }]);
    let (mut child, host) = start_metrics(&kernel);
    let body = metrics_when(&host, None, |b| {
        b.contains("vigil_events_lost_total 2") && b.contains("vigil_cpu_busy_ratio 0.98")
    });
    let open = http_get(
        &host,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    );
    let not_found = http_get(&host, "/nope", None);
    child.kill().ok();
    child.wait().ok();

    // The classic text format by default.
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(
        body.contains("Content-Type: text/plain; version=0.0.4"),
        "{body}"
    );
    assert!(!body.contains("# EOF"), "{body}");
    assert!(body.contains("vigil_link_up 1\n"), "{body}");
    assert!(
        body.contains("# TYPE vigil_thread_cpu_seconds_total counter"),
        "{body}"
    );
    assert!(
        body.contains(
            r#"vigil_thread_cpu_seconds_total{thread="spinner#4",process="spinner",pid="4"} "#
        ),
        "{body}"
    );
    assert!(
        body.contains(r#"vigil_thread_context_switches_total{thread="spinner#4",process="spinner",pid="4",kind="involuntary"} "#),
        "{body}"
    );
    assert!(
        body.contains("vigil_kernel_events_dropped_total 3"),
        "{body}"
    );
    assert!(
        body.contains(r#"vigil_alerts_active{kind="deadlock"} 1"#),
        "{body}"
    );
    assert!(
        body.contains(r#"vigil_alerts_active{kind="memory-hog"} 0"#),
        "every alert kind is listed: {body}"
    );
    assert!(
        body.contains(r#"vigil_process_memory_bytes{process="locker",pid="5"} 1228800"#),
        "{body}"
    );
    // The fake kernel's locker: 300 pages resident, peak 375, 37 shared, 300 + 3 faults.
    for series in [
        r#"vigil_process_peak_memory_bytes{process="locker",pid="5"} 1536000"#,
        r#"vigil_process_virtual_memory_bytes{process="locker",pid="5"} 5423104"#,
        r#"vigil_process_shared_memory_bytes{process="locker",pid="5"} 151552"#,
        r#"vigil_process_page_faults_total{process="locker",pid="5",kind="not_present"} 300"#,
        r#"vigil_process_page_faults_total{process="locker",pid="5",kind="protection"} 3"#,
        "# TYPE vigil_process_page_faults_total counter",
        "# TYPE vigil_process_virtual_memory_bytes gauge",
    ] {
        assert!(body.contains(series), "{series}: {body}");
    }
    assert!(body.contains(r#"vigil_build_info{version=""#), "{body}");
    assert!(
        body.contains(r#"kernel_version="fake-kernel 0.1""#),
        "{body}"
    );
    assert!(body.contains("vigil_kernel_boot_time_seconds "), "{body}");
    assert!(body.contains("vigil_cpu_idle_seconds_total "), "{body}");
    // The thread state is one of a fixed set; no free text, no addresses in any label.
    assert!(
        body.contains(
            r#"vigil_thread_state{thread="locker#5",process="locker",pid="5",state="mutex"} 1"#
        ),
        "{body}"
    );
    assert!(!body.contains("wait="), "{body}");
    assert!(!body.contains("0x"), "no addresses: {body}");
    assert!(
        !body.contains("_percent"),
        "ratios, not percentages: {body}"
    );
    for line in body.lines().filter(|l| l.starts_with("# TYPE ")) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words[3] == "counter" {
            assert!(words[2].ends_with("_total"), "{line}");
        }
    }

    // OpenMetrics when asked for.
    assert!(
        open.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
        "{open}"
    );
    assert!(open.trim_end().ends_with("# EOF"), "{open}");
    assert!(
        open.contains("# TYPE vigil_thread_cpu_seconds counter"),
        "{open}"
    );
    assert!(
        open.contains("# UNIT vigil_thread_cpu_seconds seconds"),
        "{open}"
    );
    assert!(open.contains("# TYPE vigil_build info"), "{open}");
    assert!(
        open.contains("# UNIT vigil_process_virtual_memory_bytes bytes"),
        "{open}"
    );
    assert!(
        open.contains("# TYPE vigil_process_page_faults counter"),
        "{open}"
    );
    assert!(not_found.starts_with("HTTP/1.1 404"), "{not_found}");
}

#[test]
fn metrics_drop_the_system_series_when_the_link_goes_down() {
    let kernel = FakeKernel::start(vec![Session {
        bytes: encode(&script()),
        chunk: usize::MAX,
        close: false,
    }]);
    let (mut child, host) = start_metrics(&kernel);
    let up = metrics_when(&host, None, |b| {
        b.contains("vigil_thread_cpu_seconds_total{")
    });
    assert!(up.contains("vigil_link_up 1\n"), "{up}");
    // The fake kernel goes silent and then away: the series must go, link_up must say 0.
    kernel.stop();
    drop(kernel);
    let down = metrics_when(&host, None, |b| b.contains("vigil_link_up 0\n"));
    child.kill().ok();
    child.wait().ok();
    assert!(down.contains("vigil_link_up 0\n"), "{down}");
    assert!(
        !down.contains("vigil_thread_"),
        "no stale thread series: {down}"
    );
    assert!(
        !down.contains("vigil_process_"),
        "no stale process series: {down}"
    );
    assert!(!down.contains("vigil_cpu_"), "no stale CPU series: {down}");
    assert!(!down.contains("kernel_version="), "{down}");
    assert!(
        down.contains("vigil_link_connections_total 1"),
        "the tool's own series stay: {down}"
    );
}

/// Crash reports whose addresses point into this test binary, which stands in for the kernel
/// ELF (`--kernel-elf`) and for the program of process `marker` (`--programs DIR`).
#[cfg(unix)]
#[test]
fn events_symbolise_crash_backtraces_with_kernel_and_program_elves() {
    use vigil_wire::CrashKind;

    let address = marker_address();
    let exe = this_binary();
    let programs = std::env::temp_dir().join(format!("vigil-programs-{}", std::process::id()));
    std::fs::remove_dir_all(&programs).ok();
    std::fs::create_dir_all(&programs).unwrap();
    std::os::unix::fs::symlink(&exe, programs.join("marker")).unwrap();
    let frames = vec![
        hello(),
        // Frame 0 of a fault is the pc, then return addresses (looked up one byte earlier).
        crash_with(
            CrashKind::UserFault,
            Some("marker"),
            vec![address, address + 1],
        ),
        // No program of that name in DIR: left raw.
        crash_with(CrashKind::UserFault, Some("stranger"), vec![address]),
        // A panic's frames are all return addresses, looked up in the kernel ELF.
        crash_with(CrashKind::KernelPanic, None, vec![address + 1]),
    ];
    let kernel = FakeKernel::start(vec![Session {
        bytes: encode(&frames),
        chunk: usize::MAX,
        close: true,
    }]);
    let events = |extra: &[&str]| {
        let output = vigil()
            .current_dir(workspace_root())
            .args(["events", "--connect", &kernel.address(), "--once"])
            .args(["--duration", "10s", "--quiet"])
            .args(extra)
            .output()
            .expect("run vigil");
        output.clone().assert().success();
        output
    };
    let exe_arg = exe.to_str().unwrap();
    let programs_arg = programs.to_str().unwrap();
    let symbol_args = ["--kernel-elf", exe_arg, "--programs", programs_arg];
    let marker = "common::marker_function_for_symbols";
    let source = "tools/vigil/tests/common/mod.rs";

    let mut json_args = vec!["--json"];
    json_args.extend(symbol_args);
    let lines = json_lines(&events(&json_args).stdout);
    let crashes = of_type(&lines, "crash");
    assert_eq!(crashes.len(), 3, "{lines:#?}");
    let user = &crashes[0]["frames"];
    assert_eq!(user.as_array().map(Vec::len), Some(2), "{user:#}");
    for (index, kind) in [(0, "pc"), (1, "ret")] {
        let frame = &user[index];
        assert_eq!(frame["index"], index, "{frame:#}");
        assert_eq!(frame["kind"], kind, "{frame:#}");
        let function = frame["symbols"][0]["function"].as_str().unwrap_or_default();
        assert!(function.ends_with(marker), "{frame:#}");
        assert_eq!(frame["symbols"][0]["file"], source, "{frame:#}");
        assert!(frame["symbols"][0]["line"].as_u64().is_some(), "{frame:#}");
    }
    assert_eq!(user[0]["address"], format!("{address:#x}"));
    // The raw backtrace is still there.
    assert_eq!(crashes[0]["backtrace"][1], format!("{:#x}", address + 1));
    assert_eq!(
        crashes[1]["frames"][0]["symbols"],
        Value::Null,
        "{:#}",
        crashes[1]
    );
    let panic = &crashes[2]["frames"][0];
    assert_eq!(panic["kind"], "ret", "{panic:#}");
    assert!(
        panic["symbols"][0]["function"]
            .as_str()
            .is_some_and(|f| f.ends_with(marker)),
        "{panic:#}"
    );

    let text = stdout(&events(&symbol_args));
    assert!(
        text.contains(&format!(
            "CRASH          user-fault in marker (pid 9): page fault at 0x0 backtrace:\n    \
             #0 pc  {address:#018x} (marker) cli::{marker} at {source}:"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "\n    #1 ret {:#018x} (marker) cli::{marker} at ",
            address + 1
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("\n    #0 pc  {address:#018x} (stranger)\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "\n    #0 ret {:#018x} cli::{marker} at ",
            address + 1
        )),
        "{text}"
    );

    // With --no-symbols, crashes print raw (without options the tool would use the build
    // under ./target of the directory it runs in, here the workspace).
    let raw = json_lines(&events(&["--json", "--no-symbols"]).stdout);
    let raw_crash = of_type(&raw, "crash")[0];
    assert!(raw_crash.get("frames").is_none(), "{raw_crash:#}");
    assert!(!stdout(&events(&["--no-symbols"])).contains(marker));

    // A kernel ELF that cannot be read is an error, not a silently raw backtrace.
    let bad = run(&[
        "events",
        "--connect",
        &kernel.address(),
        "--kernel-elf",
        "/nonexistent/vigil-kernel",
    ]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("vigil: error: --kernel-elf: cannot read debug information of /nonexistent/vigil-kernel"),
        "{}",
        stderr(&bad)
    );
    std::fs::remove_dir_all(&programs).ok();
}

/// A stream whose frames arrive out of kernel-time order (a snapshot before the events and
/// the log line it postdates, as the kernel's separate queues can send them): JSON lines come
/// out in time order, with one hello, and integers above 2^53 − 1 as strings.
#[test]
fn json_lines_are_in_time_order_with_big_integers_as_strings() {
    use vigil_abi::trace::EventKind;
    use vigil_wire::{Event, KernelFrame};

    let big = KernelFrame::Events(vec![Event {
        seq: 100,
        timestamp_ns: 2_500_000_000,
        kind: EventKind::IpcSend as u16,
        thread: common::CLIENT,
        args: [u64::MAX - 1, 7, (1 << 53) + 1],
    }]);
    let frames = vec![
        hello(),
        snapshot(2),
        common::events_batch(),
        common::log_line(),
        big,
        snapshot(3),
    ];
    let kernel = FakeKernel::start(vec![Session {
        bytes: encode(&frames),
        chunk: usize::MAX,
        close: true,
    }]);
    let output = run(&[
        "events",
        "--connect",
        &kernel.address(),
        "--json",
        "--once",
        "--duration",
        "10s",
    ]);
    output.clone().assert().success();
    let lines = json_lines(&output.stdout);
    assert_eq!(of_type(&lines, "hello").len(), 1, "{lines:#?}");
    let times: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.get("ts_ns").or(l.get("now_ns")).and_then(Value::as_u64))
        .collect();
    assert!(times.len() >= 10, "{lines:#?}");
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "kernel times out of order: {times:?}"
    );
    let kinds: Vec<&str> = lines.iter().map(|l| l["type"].as_str().unwrap()).collect();
    let log = kinds.iter().position(|k| *k == "log").unwrap();
    let first_snapshot = kinds.iter().position(|k| *k == "snapshot").unwrap();
    assert!(
        log < first_snapshot,
        "the 1 s log line precedes the 2 s snapshot: {kinds:?}"
    );

    let send = lines
        .iter()
        .find(|l| l["seq"] == 100)
        .expect("the big event");
    assert_eq!(send["raw_args"][0], "18446744073709551614", "{send}");
    assert_eq!(
        send["raw_args"][1], 7,
        "small integers stay numbers: {send}"
    );
    assert_eq!(send["raw_args"][2], "9007199254740993", "{send}");
}

/// The Chrome trace-event format's rules that Perfetto and chrome://tracing rely on: every
/// event has a known `ph`, a `pid`, a numeric `ts` (metadata excepted) and a `name`; "X" has a
/// `dur` ≥ 0 and complete slices on one track nest (never overlap partially); "i" has a scope
/// `s` of g, p or t; "C" carries numeric args; a flow end ("f") follows a flow start ("s") with
/// the same id, no earlier in time, and each id starts once; "M" is a known metadata name.
/// A complete slice: start, end (µs) and name.
type Slice = (f64, f64, String);

fn check_trace_event_rules(events: &[Value]) -> Result<(), String> {
    use std::collections::{BTreeMap, HashMap};
    let mut slices: BTreeMap<(u64, u64), Vec<Slice>> = BTreeMap::new();
    let mut flow_starts: HashMap<u64, f64> = HashMap::new();
    for (index, event) in events.iter().enumerate() {
        let ph = event["ph"]
            .as_str()
            .ok_or(format!("event {index} has no ph: {event}"))?;
        let pid = event["pid"]
            .as_u64()
            .ok_or(format!("event {index} has no pid: {event}"))?;
        let name = event["name"]
            .as_str()
            .ok_or(format!("event {index} has no name: {event}"))?;
        if ph == "M" {
            if ![
                "process_name",
                "thread_name",
                "process_sort_index",
                "thread_sort_index",
            ]
            .contains(&name)
            {
                return Err(format!("unknown metadata {name}: {event}"));
            }
            continue;
        }
        let ts = event["ts"]
            .as_f64()
            .ok_or(format!("event {index} has no ts: {event}"))?;
        let tid = event["tid"].as_u64();
        match ph {
            "X" => {
                let dur = event["dur"]
                    .as_f64()
                    .ok_or(format!("X without dur: {event}"))?;
                if dur < 0.0 {
                    return Err(format!("negative dur: {event}"));
                }
                let tid = tid.ok_or(format!("X without tid: {event}"))?;
                slices
                    .entry((pid, tid))
                    .or_default()
                    .push((ts, ts + dur, name.into()));
            }
            "i" => {
                if !matches!(event["s"].as_str(), Some("g" | "p" | "t")) {
                    return Err(format!("instant without scope g/p/t: {event}"));
                }
            }
            "C" => {
                let args = event["args"]
                    .as_object()
                    .ok_or(format!("C without args: {event}"))?;
                if args.is_empty() || !args.values().all(Value::is_number) {
                    return Err(format!("counter args must be numbers: {event}"));
                }
            }
            "s" => {
                let id = event["id"]
                    .as_u64()
                    .ok_or(format!("flow without id: {event}"))?;
                if flow_starts.insert(id, ts).is_some() {
                    return Err(format!("flow id {id} starts twice"));
                }
            }
            "f" => {
                let id = event["id"]
                    .as_u64()
                    .ok_or(format!("flow without id: {event}"))?;
                match flow_starts.get(&id) {
                    Some(start) if *start <= ts => {}
                    Some(start) => {
                        return Err(format!(
                            "flow {id} ends at {ts} before it starts at {start}"
                        ))
                    }
                    None => return Err(format!("flow {id} ends without a start: {event}")),
                }
            }
            other => return Err(format!("unknown ph {other:?}: {event}")),
        }
    }
    for (track, mut list) in slices {
        // Longest first among equal starts, so a parent comes before its children.
        list.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
        let mut open: Vec<Slice> = Vec::new();
        for slice in list {
            while open.last().is_some_and(|top| top.1 <= slice.0) {
                open.pop();
            }
            if let Some(top) = open.last() {
                if slice.1 > top.1 + 1e-6 {
                    return Err(format!(
                        "slices overlap without nesting on {track:?}: {top:?} and {slice:?}"
                    ));
                }
            }
            open.push(slice);
        }
    }
    Ok(())
}

#[test]
fn the_trace_rules_checker_catches_what_it_should() {
    let good = serde_json::json!([
        {"name": "process_name", "ph": "M", "pid": 1, "args": {"name": "p"}},
        {"name": "running", "ph": "X", "ts": 0.0, "dur": 10.0, "pid": 1, "tid": 1},
        {"name": "send", "ph": "X", "ts": 2.0, "dur": 0.0, "pid": 1, "tid": 1},
        {"name": "ipc", "ph": "s", "id": 1, "ts": 2.0, "pid": 1, "tid": 1},
        {"name": "ipc", "ph": "f", "bp": "e", "id": 1, "ts": 3.0, "pid": 1, "tid": 2},
    ]);
    assert_eq!(check_trace_event_rules(good.as_array().unwrap()), Ok(()));
    let bad_cases = [
        serde_json::json!({"name": "x", "ph": "X", "ts": 5.0, "dur": 10.0, "pid": 1, "tid": 1}),
        serde_json::json!({"name": "ipc", "ph": "f", "id": 9, "ts": 3.0, "pid": 1, "tid": 2}),
        serde_json::json!({"name": "x", "ph": "i", "ts": 3.0, "pid": 1, "tid": 2}),
        serde_json::json!({"name": "x", "ph": "Q", "ts": 3.0, "pid": 1}),
    ];
    for bad in bad_cases {
        let mut events = good.as_array().unwrap().clone();
        events.push(bad.clone());
        assert!(check_trace_event_rules(&events).is_err(), "{bad}");
    }
}

/// A steady-state recording (snapshots only, no context switch): the thread on the CPU still
/// gets a run slice from the first snapshot to the end, and the export keeps the rules.
#[test]
fn a_steady_state_recording_exports_run_slices() {
    use vigil::record::RecordWriter;
    let dir = std::env::temp_dir().join(format!("vigil-steady-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let recording = dir.join("steady.vrec");
    let mut writer = RecordWriter::new(std::fs::File::create(&recording).unwrap()).unwrap();
    writer.connected(0).unwrap();
    writer
        .data(
            1,
            &encode(&[hello(), snapshot(1), snapshot(2), snapshot(3), snapshot(4)]),
        )
        .unwrap();
    drop(writer);
    let trace_path = dir.join("steady.json");
    run(&[
        "export",
        recording.to_str().unwrap(),
        "--perfetto",
        trace_path.to_str().unwrap(),
    ])
    .assert()
    .success();
    let trace: Value = serde_json::from_slice(&std::fs::read(&trace_path).unwrap()).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    check_trace_event_rules(events).unwrap();
    let spinner_tid = events
        .iter()
        .find(|e| e["ph"] == "M" && e["args"]["name"] == "spinner#4")
        .map(|e| e["tid"].clone())
        .expect("a spinner track");
    let slice = events
        .iter()
        .find(|e| e["ph"] == "X" && e["name"] == "running" && e["tid"] == spinner_tid)
        .unwrap_or_else(|| panic!("no run slice on the spinner's track: {events:#?}"));
    assert_eq!(
        slice["ts"].as_f64(),
        Some(1_000_000.0),
        "opened at the first snapshot"
    );
    assert_eq!(
        slice["dur"].as_f64(),
        Some(3_000_000.0),
        "until the last one"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `export --kernel-elf`: a crash marker carries its backtrace symbolised.
#[test]
fn export_symbolises_crash_markers() {
    use vigil::record::RecordWriter;
    use vigil_wire::CrashKind;
    let address = marker_address();
    let dir = std::env::temp_dir().join(format!("vigil-export-sym-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let recording = dir.join("crash.vrec");
    let mut writer = RecordWriter::new(std::fs::File::create(&recording).unwrap()).unwrap();
    writer.connected(0).unwrap();
    writer
        .data(
            1,
            &encode(&[
                hello(),
                crash_with(CrashKind::KernelFault, None, vec![address]),
            ]),
        )
        .unwrap();
    drop(writer);
    let trace_path = dir.join("crash.json");
    let output = vigil()
        .current_dir(workspace_root())
        .args([
            "export",
            recording.to_str().unwrap(),
            "--perfetto",
            trace_path.to_str().unwrap(),
        ])
        .arg("--kernel-elf")
        .arg(this_binary())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let trace: Value = serde_json::from_slice(&std::fs::read(&trace_path).unwrap()).unwrap();
    let events = trace["traceEvents"].as_array().unwrap();
    check_trace_event_rules(events).unwrap();
    let crash = events
        .iter()
        .find(|e| e["cat"] == "crash" && e["s"] == "g")
        .expect("a crash marker");
    let frame = crash["args"]["frames"][0]
        .as_str()
        .expect("symbolised frames");
    assert!(frame.starts_with("#0 pc"), "{frame}");
    assert!(frame.contains("marker_function_for_symbols"), "{frame}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A peer that answers like the kernel and RS: `hello` and the service list at once, then
/// for the first service command or update it reads, `answer` with that command's request
/// id. Returns its address and the host frames it read.
fn answering_kernel(
    services: Vec<vigil_wire::ServiceEntry>,
    answer: (u8, &'static str),
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<HostFrame>>>) {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let frames = seen.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut decoder = vigil_wire::HostFrameDecoder::new();
            let mut buf = [0u8; 256];
            let mut listed = false;
            let until = Instant::now() + Duration::from_secs(20);
            stream
                .set_read_timeout(Some(Duration::from_millis(20)))
                .ok();
            let _ = stream.write_all(&encode(&[hello()]));
            while Instant::now() < until {
                let Ok(n) = stream.read(&mut buf) else {
                    continue;
                };
                if n == 0 {
                    break;
                }
                let mut replies = Vec::new();
                decoder.push(&buf[..n], |frame| {
                    let Ok(frame) = frame else { return };
                    frames.lock().unwrap().push(frame.clone());
                    match frame {
                        HostFrame::ServiceListNow { request } if !listed => {
                            listed = true;
                            replies.push(vigil_wire::KernelFrame::ServiceList(
                                vigil_wire::ServiceList {
                                    request,
                                    timestamp_ns: 1,
                                    supervisor: 3,
                                    services: services.clone(),
                                },
                            ));
                        }
                        HostFrame::ServiceUpdate(vigil_wire::ServiceUpdate { request, .. })
                        | HostFrame::ServiceCommand(vigil_wire::ServiceCommand {
                            request, ..
                        }) => replies.push(vigil_wire::KernelFrame::ProcessResult(
                            vigil_wire::ProcessResult {
                                request,
                                outcome: answer.0,
                                message: answer.1.into(),
                            },
                        )),
                        _ => {}
                    }
                });
                if !replies.is_empty() && stream.write_all(&encode(&replies)).is_err() {
                    break;
                }
            }
        }
    });
    (address, seen)
}

#[test]
fn service_update_looks_the_name_up_and_prints_rs_s_answer() {
    let entry = |index: u32, name: &str| vigil_wire::ServiceEntry {
        index,
        name: name.into(),
        program: name.into(),
        version: 1,
        state: 1,
        pid: 4 + index,
        ..Default::default()
    };
    let services = vec![
        entry(0, "hello_service"),
        entry(1, "crashy"),
        entry(2, "vm"),
    ];
    let (address, seen) =
        answering_kernel(services.clone(), (0, "update crashy to hello_v2: begun"));
    let output = run(&[
        "service",
        "-c",
        &address,
        "--timeout",
        "10s",
        "update",
        "crashy",
        "hello_v2",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("ok: update crashy to hello_v2: begun"),
        "{}",
        stdout(&output)
    );
    let sent = seen.lock().unwrap().clone();
    let update = sent
        .iter()
        .find_map(|frame| match frame {
            HostFrame::ServiceUpdate(update) => Some(*update),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no ServiceUpdate among {sent:?}"));
    assert_eq!(update.service, 1);
    assert_eq!(&update.program[..8], b"hello_v2");
    assert!(update.program[8..].iter().all(|&b| b == 0));

    // RS's refusal is an error with its text; so are a name RS does not list and a program
    // the frame cannot carry (refused before anything is sent).
    let (refusing, _) = answering_kernel(
        services,
        (3, "restart vm refused: system server: not restartable"),
    );
    let refused = run(&[
        "service",
        "-c",
        &refusing,
        "--timeout",
        "10s",
        "restart",
        "vm",
    ]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused)
            .contains("not supported: restart vm refused: system server: not restartable"),
        "{}",
        stderr(&refused)
    );
    let unknown = run(&[
        "service",
        "-c",
        &refusing,
        "--timeout",
        "10s",
        "restart",
        "nobody",
    ]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("no service named 'nobody' (rs lists hello_service, crashy, vm)"),
        "{}",
        stderr(&unknown)
    );
    let long = run(&[
        "service",
        "-c",
        &refusing,
        "update",
        "crashy",
        "a_program_name_far_too_long_for_it",
    ]);
    assert!(!long.status.success());
    assert!(stderr(&long).contains("1 to 24 bytes"), "{}", stderr(&long));
}
