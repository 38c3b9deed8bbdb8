//! A monitor scenario's session: QEMU runs with COM2 on a TCP socket, the built host tool
//! (`vigil`) watches the kernel through the transparent proxy (`proxy.rs`), and
//! the session is judged on what the tool printed (JSON lines) as well as on the console.
//!
//! ```text
//! QEMU ── COM2 tcp:127.0.0.1:P1 ── proxy (127.0.0.1:P2) ── vigil events|record --connect P2
//! ```
//!
//! The proxy forwards bytes unchanged, decodes the kernel's stream itself and can inject
//! garbage towards the kernel. QEMU is stopped as soon as the tool exits (it runs with
//! `--duration`), or at the scenario's deadline. A recording scenario then replays the
//! recording with `vigil events --replay FILE --json`.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::super::console::Console;
use super::super::proxy::{self, Injection, Proxy, ProxyReport};
use super::super::runner::{self, Verdict};
use super::super::scenario::Scenario;
use crate::kernel;
use crate::qemu::{self, Com2, QemuConfig, SupervisedRun};
use crate::symbolize::Symbolizer;
use crate::user::UserPrograms;
use vigil_wire::HostFrame;

/// How long QEMU may take to accept the proxy's connection on COM2.
const QEMU_LISTEN_WITHIN: Duration = Duration::from_secs(10);
/// How long a replay of a recording may take.
const REPLAY_DEADLINE: Duration = Duration::from_secs(30);
/// Cap on the tool's stdout kept from one run (JSON lines with full snapshots).
const STDOUT_LIMIT: usize = 64 * 1024 * 1024;
/// Cap on the tool's stderr kept from one run.
const STDERR_LIMIT: usize = 64 * 1024;

/// Garbage written into the kernel-bound direction of the monitor socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Garbage {
    /// When, after the tool connected.
    pub at: Duration,
    /// How many bytes (pseudo-random, none of them forming a valid frame).
    pub bytes: usize,
}

/// A steady flood of garbage towards the kernel, with a `SnapshotNow` command behind every
/// `command_every` chunks, as a hostile or broken client mixed with a real one would send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flood {
    /// When the first chunk goes, after the tool connected.
    pub at: Duration,
    /// Chunks of garbage, `interval` apart, `chunk_bytes` each.
    pub chunks: usize,
    pub chunk_bytes: usize,
    pub interval: Duration,
    pub command_every: usize,
}

impl Flood {
    /// The flood's rate in bytes per second.
    pub fn bytes_per_second(&self) -> f64 {
        self.chunk_bytes as f64 / self.interval.as_secs_f64()
    }

    /// The injections, in time order (a command goes right after its chunk).
    pub fn injections(&self) -> Vec<Injection> {
        let (chunk, _) = proxy::garbage(self.chunk_bytes, GARBAGE_SEED);
        let mut command = Vec::new();
        vigil_wire::encode_host_frame(&HostFrame::SnapshotNow, &mut command);
        let mut injections = Vec::new();
        for index in 0..self.chunks {
            let at = self.at + self.interval * index as u32;
            injections.push(Injection {
                at,
                bytes: chunk.clone(),
            });
            if (index + 1) % self.command_every.max(1) == 0 {
                injections.push(Injection {
                    at,
                    bytes: command.clone(),
                });
            }
        }
        injections
    }
}

/// What the host tool does in a monitor scenario, and how its output is judged.
#[derive(Clone, Copy)]
pub struct MonitorCheck {
    /// How long the tool listens (its `--duration`).
    pub duration: Duration,
    /// Garbage to write towards the kernel mid-run.
    pub garbage: Option<Garbage>,
    /// A flood of garbage with commands in it, mid-run.
    pub flood: Option<Flood>,
    /// Host frames to write towards the kernel at these times after the tool connected, as
    /// another client would (commands the tool itself never sends).
    pub commands: &'static [(Duration, HostFrame)],
    /// Frame bodies (postcard bytes) to write towards the kernel at these times, with a
    /// valid checksum and framing: host frames no encoder would make (an unknown action).
    pub raw_commands: &'static [(Duration, &'static [u8])],
    /// Run `vigil record -o FILE` instead of `vigil events --json --snapshots`, then judge
    /// `vigil events --replay FILE --json --snapshots`.
    pub record: bool,
    /// QEMU starts the guest only when the proxy connects (`--wait-monitor`), so the stream
    /// is seen from reset.
    pub from_reset: bool,
    /// Run this many `vigil events` clients at once through a `vigil hub` (between the
    /// proxy and the clients) instead of one client on the proxy; 0 = no hub.
    pub hub_clients: usize,
    /// Run `vigil metrics` instead, and probe it (promtool, a real Prometheus server).
    pub metrics: bool,
    /// Judges what was observed; `Ok` carries a short note for the PASS line.
    pub check: fn(&Observation) -> Result<String, String>,
}

/// What [`no_tool_check`] says.
pub const NO_TOOL_CHECK: &str = "the monitor scenario names no host-tool check (`check: …`)";

/// The host-tool check of a row that names none: it always fails.
pub fn no_tool_check(_: &Observation) -> Result<String, String> {
    Err(NO_TOOL_CHECK.to_string())
}

impl MonitorCheck {
    /// No garbage, `vigil events` (not `record`); `duration` and `check` have none (a zero
    /// duration, and [`no_tool_check`], which fails).
    pub const DEFAULT: MonitorCheck = MonitorCheck {
        duration: Duration::ZERO,
        garbage: None,
        flood: None,
        commands: &[],
        raw_commands: &[],
        record: false,
        from_reset: false,
        hub_clients: 0,
        metrics: false,
        check: no_tool_check,
    };
}

/// The recording made by `vigil record`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recording {
    /// Connection markers in the file.
    pub connections: usize,
    /// The recorded byte stream (all connections' data, in order).
    pub bytes: Vec<u8>,
}

/// Everything a monitor check can look at.
pub struct Observation {
    /// The live tool's stdout, one JSON value per line (`vigil record` prints none); with a
    /// hub, the first client's.
    pub lines: Vec<Value>,
    /// With a hub: every client's lines (the first is `lines` again).
    pub clients: Vec<Vec<Value>>,
    /// The metrics scenario's probe of `vigil metrics`.
    pub metrics: Option<super::prom::MetricsProbe>,
    /// The replay's stdout (recording scenarios).
    pub replay: Option<Vec<Value>>,
    /// The recording file's contents (recording scenarios).
    pub recording: Option<Recording>,
    /// What the proxy forwarded and decoded.
    pub proxy: ProxyReport,
    /// The guest console.
    pub console: Console,
}

/// The host tool's run.
#[derive(Debug, Default)]
struct ToolRun {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    /// Set if the tool had to be killed at the deadline.
    killed: bool,
    /// Why it could not even start.
    error: Option<String>,
}

/// The `--duration` argument for the tool.
fn duration_arg(duration: Duration) -> String {
    format!("{}ms", duration.as_millis())
}

/// The tool's command line for a live session through the proxy at `port`; a live `events`
/// run symbolises crash backtraces from `kernel` (`--kernel-elf`), as a developer would, and
/// a `metrics` run serves on `metrics_port`.
fn tool_args(
    check: &MonitorCheck,
    port: u16,
    recording: &Path,
    kernel: &Path,
    metrics_port: u16,
) -> Vec<String> {
    let address = format!("127.0.0.1:{port}");
    let duration = duration_arg(check.duration);
    if check.metrics {
        vec![
            "metrics".into(),
            "--connect".into(),
            address,
            "--listen".into(),
            format!("127.0.0.1:{metrics_port}"),
            "--duration".into(),
            duration,
        ]
    } else if check.record {
        vec![
            "record".into(),
            "--connect".into(),
            address,
            "-o".into(),
            recording.display().to_string(),
            "--duration".into(),
            duration,
        ]
    } else {
        vec![
            "events".into(),
            "--connect".into(),
            address,
            "--json".into(),
            "--snapshots".into(),
            "--kernel-elf".into(),
            kernel.display().to_string(),
            "--duration".into(),
            duration,
        ]
    }
}

/// Parses the tool's stdout: every non-empty line must be a JSON object with a "type".
pub fn parse_json_lines(stdout: &str) -> Result<Vec<Value>, String> {
    stdout
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            let value: Value = serde_json::from_str(line).map_err(|error| {
                format!(
                    "line {} of the tool's output is not JSON ({error}): {}",
                    index + 1,
                    shorten(line, 200)
                )
            })?;
            if value.get("type").and_then(Value::as_str).is_none() {
                return Err(format!(
                    "line {} of the tool's output has no \"type\": {}",
                    index + 1,
                    shorten(line, 200)
                ));
            }
            Ok(value)
        })
        .collect()
}

/// The first `max` characters of `text`, with "…" if cut.
pub fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Reads a recording (`vigil record`'s container: "VIGILREC", u32 version 1, then records of
/// u64 time, u32 length and the bytes; length 0 marks a new connection; a truncated final
/// record is ignored, as the tool does).
pub fn parse_recording(file: &[u8]) -> Result<Recording, String> {
    let rest = file
        .strip_prefix(b"VIGILREC")
        .ok_or("the recording does not start with VIGILREC")?;
    let (version, mut rest) = rest
        .split_first_chunk::<4>()
        .ok_or("the recording has no version")?;
    if u32::from_le_bytes(*version) != 1 {
        return Err(format!(
            "recording format version {} (expected 1)",
            u32::from_le_bytes(*version)
        ));
    }
    let mut recording = Recording::default();
    while let Some((head, body)) = rest.split_first_chunk::<12>() {
        let length = u32::from_le_bytes(head[8..12].try_into().expect("4 bytes")) as usize;
        if length == 0 {
            recording.connections += 1;
        } else if body.len() < length {
            break;
        } else {
            recording.bytes.extend_from_slice(&body[..length]);
        }
        rest = &body[length.min(body.len())..];
    }
    Ok(recording)
}

/// Starts `command` with its output captured; a thread per pipe reads it to the end.
fn spawn_captured(mut command: Command) -> Result<(Child, mpsc::Receiver<(String, String)>)> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .spawn()
        .with_context(|| format!("failed to start {program}"))?;
    let mut stdout = child.stdout.take().context("tool stdout")?;
    let stderr = child.stderr.take().context("tool stderr")?;
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let err = thread::spawn(move || qemu::read_capped(stderr, STDERR_LIMIT));
        let mut kept = Vec::new();
        let _ = stdout
            .by_ref()
            .take(STDOUT_LIMIT as u64)
            .read_to_end(&mut kept);
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        let err = err.join().unwrap_or_default();
        let _ = sender.send((String::from_utf8_lossy(&kept).into_owned(), err));
    });
    Ok((child, receiver))
}

/// Runs `command` to completion (killed and reaped after `deadline`), capturing its output.
fn run_tool(command: Command, deadline: Duration, stop: &AtomicBool) -> ToolRun {
    let (mut child, output) = match spawn_captured(command) {
        Ok(started) => started,
        Err(error) => {
            return ToolRun {
                error: Some(format!("{error:#}")),
                ..ToolRun::default()
            }
        }
    };
    let until = Instant::now() + deadline;
    let mut run = ToolRun::default();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                run.status = Some(status);
                break;
            }
            Ok(None) if Instant::now() < until && !stop.load(Ordering::SeqCst) => {
                thread::sleep(Duration::from_millis(10));
            }
            _ => {
                run.killed = true;
                if let Ok((exit, _)) = qemu::kill_and_reap(&mut child) {
                    run.status = None;
                    run.error = Some(format!(
                        "killed before it finished: QEMU had stopped or the deadline passed \
                         ({exit:?})"
                    ));
                }
                break;
            }
        }
    }
    if let Ok((stdout, stderr)) = output.recv_timeout(Duration::from_secs(2)) {
        run.stdout = stdout;
        run.stderr = stderr;
    }
    run
}

impl ToolRun {
    /// Ok if the tool exited by itself with status 0.
    fn require_success(&self, what: &str) -> Result<(), String> {
        if let Some(error) = &self.error {
            return Err(format!("{what}: {error}"));
        }
        match self.status {
            Some(status) if status.success() => Ok(()),
            Some(status) => Err(format!("{what} failed ({status})")),
            None => Err(format!("{what} did not finish")),
        }
    }
}

/// Boots a monitor scenario, runs the tool against it, prints the verdict (and on failure
/// the details), returns pass/fail.
pub fn run_scenario(
    scenario: &Scenario,
    check: &MonitorCheck,
    kernel: &Path,
    programs: Option<&UserPrograms>,
    symbolizer: &Symbolizer,
    verbose: bool,
    tool: &Path,
) -> bool {
    match run_and_observe(scenario, check, kernel, programs, symbolizer, verbose, tool) {
        Ok(session) => {
            let verdict = judge(scenario, check, &session);
            println!("{}", verdict.summary);
            if !verdict.passed {
                print_failure_details(&session);
            }
            verdict.passed
        }
        Err(error) => {
            println!("FAIL {}: {error:#}", scenario.name);
            false
        }
    }
}

/// One monitor scenario run: QEMU's, the tool's and the proxy's.
struct Session {
    run: SupervisedRun,
    tool: ToolRun,
    /// With a hub: the other clients' runs, then the hub's own.
    others: Vec<ToolRun>,
    hub: Option<ToolRun>,
    metrics: Option<super::prom::MetricsProbe>,
    replay: Option<ToolRun>,
    recording: Option<Result<Recording, String>>,
    proxy: ProxyReport,
    tool_command: String,
    /// Where the tool's stdout was saved.
    output_path: PathBuf,
}

fn run_and_observe(
    scenario: &Scenario,
    check: &MonitorCheck,
    kernel: &Path,
    programs: Option<&UserPrograms>,
    symbolizer: &Symbolizer,
    verbose: bool,
    tool: &Path,
) -> Result<Session> {
    let mut config = QemuConfig::for_test(kernel, scenario.memory, scenario.cmdline);
    let (modules, processes) = runner::boot_modules(scenario, programs)?;
    config.modules = modules;
    // The proxy's port first, so the port chosen for QEMU cannot be the proxy's.
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the proxy's port")?;
    let qemu_port = qemu::free_local_port()?;
    config.com2 = Com2::Tcp {
        host: "127.0.0.1".to_string(),
        port: qemu_port,
    };
    config.wait_for_monitor = check.from_reset;
    let upstream = SocketAddr::from(([127, 0, 0, 1], qemu_port));
    let mut injections: Vec<Injection> = check
        .garbage
        .map(|garbage| Injection {
            at: garbage.at,
            bytes: proxy::garbage(garbage.bytes, GARBAGE_SEED).0,
        })
        .into_iter()
        .collect();
    injections.extend(check.flood.iter().flat_map(Flood::injections));
    for (at, frame) in check.commands {
        let mut bytes = Vec::new();
        vigil_wire::encode_host_frame(frame, &mut bytes);
        injections.push(Injection { at: *at, bytes });
    }
    for (at, body) in check.raw_commands {
        let mut bytes = Vec::new();
        vigil_wire::encode_payload(body, &mut bytes);
        injections.push(Injection { at: *at, bytes });
    }
    let proxy = Proxy::start(listener, upstream, QEMU_LISTEN_WITHIN, injections)?;
    let work_dir = kernel::target_dir().join("xtask-monitor");
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("creating {}", work_dir.display()))?;
    let recording_path = work_dir.join(format!("{}.vrec", scenario.name));
    let _ = std::fs::remove_file(&recording_path);
    let metrics_port = qemu::free_local_port()?;
    let args = tool_args(check, proxy.port(), &recording_path, kernel, metrics_port);
    let tool_command = format!("{} {}", kernel::display_relative(tool), args.join(" "));
    if verbose {
        println!("---- {}: {}", scenario.name, config.display_command());
        println!("---- {}: {tool_command}", scenario.name);
    }

    // The session thread waits for QEMU's socket, runs the tool, then says "done".
    let done = Arc::new(AtomicBool::new(false));
    let qemu_gone = Arc::new(AtomicBool::new(false));
    let session = {
        let done = done.clone();
        let qemu_gone = qemu_gone.clone();
        let tool = tool.to_path_buf();
        let deadline = scenario.deadline;
        let hub_clients = check.hub_clients;
        let metrics = check.metrics;
        let work_dir = work_dir.clone();
        thread::Builder::new()
            .name("monitor-session".into())
            .spawn(move || {
                let started = Instant::now();
                let mut probed = None;
                let result = match wait_for_qemu(&proxy, &qemu_gone) {
                    Err(error) => ToolRun {
                        error: Some(format!("not started: {error:#}")),
                        ..ToolRun::default()
                    },
                    Ok(()) if hub_clients > 0 => {
                        let left = deadline.saturating_sub(started.elapsed());
                        let (first, others, hub) = run_through_hub(
                            &tool,
                            &args,
                            proxy.port(),
                            hub_clients,
                            left,
                            &qemu_gone,
                        );
                        done.store(true, Ordering::SeqCst);
                        return ((first, others, Some(hub), None), proxy);
                    }
                    Ok(()) => {
                        let mut command = Command::new(&tool);
                        command.args(&args);
                        let probe = metrics.then(|| {
                            let work_dir = work_dir.clone();
                            thread::spawn(move || super::prom::probe(metrics_port, &work_dir))
                        });
                        let run = run_tool(
                            command,
                            deadline.saturating_sub(started.elapsed()),
                            &qemu_gone,
                        );
                        probed = probe.and_then(|probe| probe.join().ok());
                        run
                    }
                };
                done.store(true, Ordering::SeqCst);
                ((result, Vec::new(), None, probed), proxy)
            })
            .context("starting the monitor session thread")?
    };

    let mut process_line = |line: &str| {
        let line = symbolizer.rewrite(line, &processes);
        if verbose {
            println!("{line}");
        }
        line
    };
    let stop = || done.load(Ordering::SeqCst);
    let run = qemu::supervise_until(
        config.command(),
        scenario.deadline,
        &mut process_line,
        &stop,
    );
    qemu_gone.store(true, Ordering::SeqCst);
    let ((tool_run, others, hub, metrics), proxy) = session
        .join()
        .map_err(|_| anyhow::anyhow!("the monitor session thread panicked"))?;
    let proxy = proxy.finish();
    let run = run?;

    // Kept for a person investigating a failure (named in the failure details).
    let output_path = work_dir.join(format!("{}.jsonl", scenario.name));
    let _ = std::fs::write(&output_path, &tool_run.stdout);
    let (replay, recording) = if check.record {
        let recording = std::fs::read(&recording_path)
            .map_err(|error| format!("reading {}: {error}", recording_path.display()))
            .and_then(|bytes| parse_recording(&bytes));
        let mut command = Command::new(tool);
        command.args(["events", "--replay"]);
        command.arg(&recording_path);
        command.args(["--json", "--snapshots"]);
        let never = AtomicBool::new(false);
        (
            Some(run_tool(command, REPLAY_DEADLINE, &never)),
            Some(recording),
        )
    } else {
        (None, None)
    };
    Ok(Session {
        run,
        tool: tool_run,
        others,
        hub,
        metrics,
        replay,
        recording,
        proxy,
        tool_command,
        output_path,
    })
}

/// How long the hub may take to listen.
const HUB_LISTEN_WITHIN: Duration = Duration::from_secs(5);

/// Runs `vigil hub` on the proxy and `clients` copies of the tool (`args`, pointed at the
/// hub) at the same time; returns the first client's run, the others', and the hub's.
fn run_through_hub(
    tool: &Path,
    args: &[String],
    proxy_port: u16,
    clients: usize,
    deadline: Duration,
    qemu_gone: &Arc<AtomicBool>,
) -> (ToolRun, Vec<ToolRun>, ToolRun) {
    let failed = |error: String| ToolRun {
        error: Some(error),
        ..ToolRun::default()
    };
    let hub_port = match qemu::free_local_port() {
        Ok(port) => port,
        Err(error) => {
            let error = format!("no port for the hub: {error:#}");
            return (failed(error.clone()), Vec::new(), failed(error));
        }
    };
    let hub_address = format!("127.0.0.1:{hub_port}");
    let mut hub = Command::new(tool);
    hub.args([
        "hub".to_string(),
        "--connect".into(),
        format!("127.0.0.1:{proxy_port}"),
        "--listen".into(),
        hub_address.clone(),
        "--duration".into(),
        duration_arg(deadline),
    ]);
    let hub_stop = Arc::new(AtomicBool::new(false));
    let hub_thread = {
        let hub_stop = hub_stop.clone();
        thread::spawn(move || run_tool(hub, deadline, &hub_stop))
    };
    let until = Instant::now() + HUB_LISTEN_WITHIN;
    while std::net::TcpStream::connect(&hub_address).is_err() && Instant::now() < until {
        thread::sleep(Duration::from_millis(20));
    }
    // The tool's arguments name the proxy; point them at the hub.
    let proxy_address = format!("127.0.0.1:{proxy_port}");
    let client_args: Vec<String> = args
        .iter()
        .map(|arg| {
            if *arg == proxy_address {
                hub_address.clone()
            } else {
                arg.clone()
            }
        })
        .collect();
    let runs: Vec<_> = (0..clients)
        .map(|_| {
            let mut command = Command::new(tool);
            command.args(&client_args);
            let qemu_gone = qemu_gone.clone();
            thread::spawn(move || run_tool(command, deadline, &qemu_gone))
        })
        .collect();
    let mut runs: Vec<ToolRun> = runs
        .into_iter()
        .map(|run| {
            run.join()
                .unwrap_or_else(|_| failed("the client thread panicked".into()))
        })
        .collect();
    hub_stop.store(true, Ordering::SeqCst);
    let hub_run = hub_thread
        .join()
        .unwrap_or_else(|_| failed("the hub thread panicked".into()));
    let first = runs.remove(0);
    (first, runs, hub_run)
}

/// Waits until the proxy is connected to QEMU's COM2 socket, giving up early if QEMU has
/// already gone.
fn wait_for_qemu(proxy: &Proxy, qemu_gone: &AtomicBool) -> Result<()> {
    let until = Instant::now() + QEMU_LISTEN_WITHIN;
    loop {
        match proxy.wait_upstream(Duration::from_millis(100)) {
            Ok(()) => return Ok(()),
            Err(error) if Instant::now() >= until => return Err(error),
            Err(_) if qemu_gone.load(Ordering::SeqCst) => {
                bail!("QEMU stopped before its COM2 socket accepted a connection")
            }
            Err(error) if proxy.has_failed() => return Err(error),
            Err(_) => {}
        }
    }
}

/// Seed of the injected garbage (any seed works; a fixed one makes runs repeatable).
pub const GARBAGE_SEED: u64 = 0x5649_4749_4c21;

/// Judges a monitor session: QEMU must have run until the tool was done, the console check
/// must pass, the tool must have exited cleanly with JSON on stdout, and the monitor check
/// must pass on what it printed.
fn judge(scenario: &Scenario, check: &MonitorCheck, session: &Session) -> Verdict {
    let console = Console {
        lines: session.run.lines.clone(),
    };
    let mut problems = Vec::new();
    if let Err(error) = runner::judge_run(scenario, &session.run) {
        problems.push(error);
    }
    if let Err(error) = (scenario.check)(&console) {
        problems.push(error);
    }
    let observed = observe(check, session, console);
    let note = match observed {
        Err(error) => {
            problems.push(error);
            None
        }
        Ok(observation) => match (check.check)(&observation) {
            Ok(note) => Some(note),
            Err(error) => {
                problems.push(error);
                None
            }
        },
    };
    if problems.is_empty() {
        let mut timing = format!("{:.2} s", session.run.elapsed.as_secs_f64());
        if let Some(note) = note.filter(|n| !n.is_empty()) {
            timing.push_str("; ");
            timing.push_str(&note);
        }
        Verdict {
            passed: true,
            summary: format!("PASS {} ({timing})", scenario.name),
        }
    } else {
        Verdict {
            passed: false,
            summary: format!("FAIL {}: {}", scenario.name, problems.join("; also ")),
        }
    }
}

/// Turns the session into what a check sees, or says why the tool's side is unusable.
fn observe(
    check: &MonitorCheck,
    session: &Session,
    console: Console,
) -> Result<Observation, String> {
    let what = if check.metrics {
        "vigil metrics"
    } else if check.record {
        "vigil record"
    } else {
        "vigil events"
    };
    session.tool.require_success(what)?;
    let lines = parse_json_lines(&session.tool.stdout)?;
    let mut clients = Vec::new();
    if session.hub.is_some() {
        clients.push(lines.clone());
        for (index, other) in session.others.iter().enumerate() {
            other.require_success(&format!("vigil events (hub client {})", index + 2))?;
            clients.push(
                parse_json_lines(&other.stdout)
                    .map_err(|e| format!("hub client {}: {e}", index + 2))?,
            );
        }
    }
    let replay = match &session.replay {
        None => None,
        Some(replay) => {
            replay.require_success("vigil events --replay")?;
            Some(parse_json_lines(&replay.stdout).map_err(|e| format!("replay: {e}"))?)
        }
    };
    let recording = match &session.recording {
        None => None,
        Some(Ok(recording)) => Some(recording.clone()),
        Some(Err(error)) => return Err(error.clone()),
    };
    Ok(Observation {
        lines,
        clients,
        metrics: session.metrics.clone(),
        replay,
        recording,
        proxy: session.proxy.clone(),
        console,
    })
}

/// How many of the tool's output lines to show after a failure.
const TOOL_TAIL_LINES: usize = 15;

fn print_failure_details(session: &Session) {
    qemu::print_failure_details(&session.run, runner::TAIL_LINES);
    println!("  tool: {}", session.tool_command);
    println!(
        "  tool output kept in {}",
        kernel::display_relative(&session.output_path)
    );
    print_tool_output("tool", &session.tool);
    for (index, other) in session.others.iter().enumerate() {
        print_tool_output(&format!("hub client {}", index + 2), other);
    }
    if let Some(hub) = &session.hub {
        print_tool_output("hub", hub);
    }
    if let Some(replay) = &session.replay {
        print_tool_output("replay", replay);
    }
    println!("  {}", session.proxy.summary());
}

fn print_tool_output(label: &str, run: &ToolRun) {
    match (&run.status, &run.error) {
        (_, Some(error)) => println!("  {label}: {error}"),
        (Some(status), None) => println!("  {label} exited: {status}"),
        (None, None) => println!("  {label}: no status"),
    }
    let lines: Vec<&str> = run.stdout.lines().collect();
    let skipped = lines.len().saturating_sub(TOOL_TAIL_LINES);
    println!(
        "  {label} stdout ({} lines{}):",
        lines.len(),
        if skipped > 0 {
            format!(", last {TOOL_TAIL_LINES}, each cut to 300 characters")
        } else {
            String::new()
        }
    );
    for line in &lines[skipped..] {
        println!("  > {}", shorten(line, 300));
    }
    let stderr = run.stderr.trim_end();
    if !stderr.is_empty() {
        println!("  {label} stderr:");
        for line in stderr.lines() {
            println!("  ! {line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_must_all_be_objects_with_a_type() {
        let lines = parse_json_lines(
            "{\"type\":\"hello\",\"now_ns\":5}\n\n{\"type\":\"drops\",\"malformed_commands\":0}\n",
        )
        .unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["type"], "drops");
        let error = parse_json_lines("{\"type\":\"hello\"}\nvigil: connected\n").unwrap_err();
        assert!(error.contains("line 2"), "{error}");
        assert!(error.contains("not JSON"), "{error}");
        let error = parse_json_lines("[1,2]\n").unwrap_err();
        assert!(error.contains("no \"type\""), "{error}");
    }

    #[test]
    fn reads_recordings_like_the_tool_does() {
        let mut file = b"VIGILREC".to_vec();
        file.extend(1u32.to_le_bytes());
        let mut record = |at: u64, bytes: &[u8]| {
            file.extend(at.to_le_bytes());
            file.extend((bytes.len() as u32).to_le_bytes());
            file.extend_from_slice(bytes);
        };
        record(0, b"");
        record(5, b"abc");
        record(9, b"de");
        // A truncated final record is ignored.
        file.extend(10u64.to_le_bytes());
        file.extend(100u32.to_le_bytes());
        file.extend_from_slice(b"xyz");
        let recording = parse_recording(&file).unwrap();
        assert_eq!(recording.connections, 1);
        assert_eq!(recording.bytes, b"abcde");
        assert!(parse_recording(b"NOTAREC").is_err());
        let mut v2 = b"VIGILREC".to_vec();
        v2.extend(2u32.to_le_bytes());
        assert!(parse_recording(&v2).unwrap_err().contains("version 2"));
    }

    #[test]
    fn a_flood_puts_each_command_behind_its_chunk() {
        let flood = Flood {
            at: Duration::from_millis(1000),
            chunks: 4,
            chunk_bytes: 512,
            interval: Duration::from_millis(50),
            command_every: 2,
        };
        let injections = flood.injections();
        let sizes: Vec<usize> = injections.iter().map(|i| i.bytes.len()).collect();
        let command = sizes[2];
        assert_ne!(command, 512);
        assert_eq!(sizes, [512, 512, command, 512, 512, command]);
        let times: Vec<u64> = injections.iter().map(|i| i.at.as_millis() as u64).collect();
        assert_eq!(times, [1000, 1050, 1050, 1100, 1150, 1150]);
        assert_eq!(flood.bytes_per_second(), 10_240.0);
    }

    #[test]
    fn tool_command_lines() {
        let check = MonitorCheck {
            duration: Duration::from_millis(2500),
            garbage: None,
            flood: None,
            commands: &[],
            raw_commands: &[],
            record: false,
            from_reset: false,
            hub_clients: 0,
            metrics: false,
            check: |_| Ok(String::new()),
        };
        let kernel = Path::new("/k/vigil-kernel");
        let args = tool_args(&check, 4000, Path::new("/t/x.vrec"), kernel, 4001);
        assert_eq!(
            args.join(" "),
            "events --connect 127.0.0.1:4000 --json --snapshots --kernel-elf /k/vigil-kernel \
             --duration 2500ms"
        );
        let record = MonitorCheck {
            record: true,
            ..check
        };
        assert_eq!(
            tool_args(&record, 4000, Path::new("/t/x.vrec"), kernel, 4001).join(" "),
            "record --connect 127.0.0.1:4000 -o /t/x.vrec --duration 2500ms"
        );
    }

    #[test]
    fn shortens_on_character_boundaries() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("äöüäöü", 3), "äöü…");
    }

    #[test]
    fn a_tool_that_overstays_is_killed_and_reaped() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo '{\"type\":\"x\"}'; exec sleep 30"]);
        let started = Instant::now();
        let never = AtomicBool::new(false);
        let run = run_tool(command, Duration::from_millis(300), &never);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(run.killed);
        assert!(run.require_success("tool").is_err());
        assert_eq!(run.stdout, "{\"type\":\"x\"}\n");

        let mut command = Command::new("sh");
        command.args(["-c", "echo out; echo err >&2"]);
        let run = run_tool(command, Duration::from_secs(10), &never);
        assert_eq!(run.require_success("tool"), Ok(()));
        assert_eq!(
            (run.stdout.as_str(), run.stderr.as_str()),
            ("out\n", "err\n")
        );

        let run = run_tool(
            Command::new("/nonexistent/vigil"),
            Duration::from_secs(1),
            &never,
        );
        assert!(run
            .require_success("tool")
            .unwrap_err()
            .contains("failed to start"));
    }
}
