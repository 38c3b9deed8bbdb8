//! A fake kernel for the tests: scripted monitor frames served on a TCP port (127.0.0.1:0).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use vigil_abi::introspect::{state_code, ThreadCounters};
use vigil_abi::trace::{EventKind, DEFAULT_EVENT_MASK};
use vigil_abi::Endpoint;
use vigil_wire::{
    encode_kernel_frame, CrashKind, CrashReport, DropReport, Event, Hello, HostFrame,
    HostFrameDecoder, KernelFrame, LogLine, ProcessInfo, Snapshot, ThreadInfo,
};

pub const CLIENT: u64 = Endpoint::new(2, 1).0;
pub const SERVER: u64 = Endpoint::new(3, 1).0;
pub const SPINNER: u64 = Endpoint::new(4, 1).0;
pub const LOCK_A: u64 = Endpoint::new(5, 1).0;
pub const LOCK_B: u64 = Endpoint::new(6, 1).0;
pub const SLEEPER: u64 = Endpoint::new(7, 1).0;

const SECOND: u64 = 1_000_000_000;

pub fn hello() -> KernelFrame {
    KernelFrame::Hello(Hello {
        protocol_version: vigil_wire::PROTOCOL_VERSION,
        kernel_version: "fake-kernel 0.1".into(),
        tsc_hz: 1_000_000_000,
        now_ns: SECOND / 2,
        event_mask: DEFAULT_EVENT_MASK,
        snapshot_period_ms: 1000,
    })
}

fn thread(
    endpoint: u64,
    pid: u32,
    state: u8,
    target: Endpoint,
    argument: u64,
    cpu_ns: u64,
) -> ThreadInfo {
    ThreadInfo {
        endpoint,
        pid,
        state,
        priority: 4,
        wait_target: target.0,
        wait_argument: argument,
        counters: ThreadCounters {
            cpu_ns,
            ..Default::default()
        },
    }
}

fn process(pid: u32, name: &str, threads: u32, main: u64, pages: u64, cpu_ns: u64) -> ProcessInfo {
    ProcessInfo {
        pid,
        name: name.into(),
        threads,
        main_thread: main,
        memory_pages: pages,
        priority: 4,
        grants: 0,
        cpu_ns,
        peak_pages: pages + pages / 4,
        // The image and a 4 MiB heap reservation on top of what is resident.
        virtual_bytes: pages * 4096 + (4 << 20),
        shared_pages: pages / 8,
        faults_not_present: pages,
        faults_protection: pages / 100,
        stopped_by: 0,
    }
}

/// Snapshot `n` (1-based) at n seconds: client waits for a reply from server, server
/// receives from ANY, spinner burns 95% of the CPU, locker's two threads deadlock on two
/// mutexes, sleeper sleeps.
pub fn snapshot(n: u64) -> KernelFrame {
    let t = n * SECOND;
    let spin = n * SECOND * 95 / 100;
    let client_cpu = n * 10_000_000;
    let mut client = thread(
        CLIENT,
        2,
        state_code::AWAITING_REPLY,
        Endpoint(SERVER),
        0,
        client_cpu,
    );
    client.counters.messages_sent = n * 100;
    client.counters.voluntary_switches = n * 100;
    let mut server = thread(
        SERVER,
        3,
        state_code::RECEIVING,
        Endpoint::ANY,
        0,
        n * 20_000_000,
    );
    server.counters.messages_received = n * 100;
    server.counters.voluntary_switches = n * 100;
    KernelFrame::Snapshot(Snapshot {
        generation: n,
        timestamp_ns: t,
        idle_ns: n * SECOND / 50,
        threads: vec![
            client,
            server,
            thread(SPINNER, 4, state_code::RUNNING, Endpoint::NONE, 0, spin),
            thread(
                LOCK_A,
                5,
                state_code::MUTEX,
                Endpoint(LOCK_B),
                0x4010,
                1_000_000,
            ),
            thread(
                LOCK_B,
                5,
                state_code::MUTEX,
                Endpoint(LOCK_A),
                0x4020,
                1_000_000,
            ),
            thread(
                SLEEPER,
                6,
                state_code::SLEEPING,
                Endpoint::NONE,
                t + 12_000_000,
                0,
            ),
        ],
        processes: vec![
            process(2, "client", 1, CLIENT, 40, client_cpu),
            process(3, "server", 1, SERVER, 64, n * 20_000_000),
            process(4, "spinner", 1, SPINNER, 16, spin),
            process(5, "locker", 2, LOCK_A, 300, 2_000_000),
            process(6, "sleeper", 1, SLEEPER, 8, 0),
        ],
    })
}

fn event(seq: u64, t: u64, kind: EventKind, thread: u64, args: [u64; 3]) -> Event {
    Event {
        seq,
        timestamp_ns: t,
        kind: kind as u16,
        thread,
        args,
    }
}

/// Events between snapshot 1 and 2 (sequence numbers 1..=6).
pub fn events_batch() -> KernelFrame {
    let t = SECOND + SECOND / 10;
    KernelFrame::Events(vec![
        event(
            1,
            t,
            EventKind::ContextSwitch,
            CLIENT,
            [SPINNER, state_code::READY as u64, 0],
        ),
        event(2, t + 1_000, EventKind::IpcSend, CLIENT, [SERVER, 7, 0]),
        event(
            3,
            t + 2_000,
            EventKind::Block,
            CLIENT,
            [state_code::AWAITING_REPLY as u64, SERVER, 0],
        ),
        event(
            4,
            t + 3_000,
            EventKind::ContextSwitch,
            SERVER,
            [CLIENT, state_code::AWAITING_REPLY as u64, 0],
        ),
        event(5, t + 4_000, EventKind::IpcReceive, SERVER, [CLIENT, 7, 0]),
        event(
            6,
            t + 5_000,
            EventKind::ContextSwitch,
            SPINNER,
            [SERVER, state_code::RECEIVING as u64, 0],
        ),
    ])
}

/// Events with a gap: 7 and 8 never arrive.
pub fn events_with_gap() -> KernelFrame {
    let t = 2 * SECOND + SECOND / 10;
    KernelFrame::Events(vec![event(9, t, EventKind::Unblock, CLIENT, [0, 0, 0])])
}

pub fn log_line() -> KernelFrame {
    KernelFrame::Log(LogLine {
        seq: 1,
        timestamp_ns: SECOND + 5,
        level: 2,
        text: "fake kernel up".into(),
    })
}

pub fn drops() -> KernelFrame {
    KernelFrame::Drops(DropReport {
        events_dropped: 3,
        frames_dropped: 1,
        malformed_commands: 0,
    })
}

pub fn crash() -> KernelFrame {
    KernelFrame::Crash(CrashReport {
        kind: CrashKind::UserFault,
        timestamp_ns: 3 * SECOND + 7,
        process: Some(("crasher".into(), 9)),
        message: "page fault at 0x0".into(),
        backtrace: vec![0x40_1000, 0x40_2000],
    })
}

/// The whole scripted session, in order.
pub fn script() -> Vec<KernelFrame> {
    vec![
        hello(),
        snapshot(1),
        log_line(),
        events_batch(),
        snapshot(2),
        events_with_gap(),
        drops(),
        snapshot(3),
        crash(),
        snapshot(4),
    ]
}

pub fn encode(frames: &[KernelFrame]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for frame in frames {
        encode_kernel_frame(frame, &mut bytes);
    }
    bytes
}

/// What one accepted connection gets.
#[derive(Clone)]
pub struct Session {
    pub bytes: Vec<u8>,
    /// Write in chunks of this many bytes (with a short pause between) to vary chunking.
    pub chunk: usize,
    /// Close the connection after writing (else keep it open until the client leaves).
    pub close: bool,
}

/// A fake kernel: a listener that serves each accepted connection one session in turn
/// (the last one repeats). Records the host frames it received.
pub struct FakeKernel {
    pub addr: SocketAddr,
    pub host_frames: Arc<Mutex<Vec<HostFrame>>>,
    pub connections: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl FakeKernel {
    pub fn start(sessions: Vec<Session>) -> FakeKernel {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        Self::serve(listener, sessions)
    }

    pub fn serve(listener: TcpListener, sessions: Vec<Session>) -> FakeKernel {
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let host_frames = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let host_frames = host_frames.clone();
            let connections = connections.clone();
            let stop = stop.clone();
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let index = connections.fetch_add(1, Ordering::Relaxed);
                            let session = sessions[index.min(sessions.len() - 1)].clone();
                            let host_frames = host_frames.clone();
                            let stop = stop.clone();
                            thread::spawn(move || serve_one(stream, session, host_frames, stop));
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        FakeKernel {
            addr,
            host_frames,
            connections,
            stop,
        }
    }

    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Stops accepting (the listener closes; open connections end too).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for FakeKernel {
    fn drop(&mut self) {
        self.stop();
    }
}

fn serve_one(
    mut stream: TcpStream,
    session: Session,
    host_frames: Arc<Mutex<Vec<HostFrame>>>,
    stop: Arc<AtomicBool>,
) {
    stream.set_nodelay(true).ok();
    for piece in session.bytes.chunks(session.chunk.max(1)) {
        if stream.write_all(piece).is_err() {
            return;
        }
        if session.chunk < session.bytes.len() {
            thread::sleep(Duration::from_millis(1));
        }
    }
    let mut decoder = HostFrameDecoder::new();
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .ok();
    let until = Instant::now() + Duration::from_secs(30);
    // With `close`, linger briefly (to read the host's Hello, so the close is a clean FIN).
    let close_at = session
        .close
        .then(|| Instant::now() + Duration::from_millis(100));
    let mut buf = [0u8; 256];
    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
        if close_at.is_some_and(|t| Instant::now() >= t) {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => decoder.push(&buf[..n], |frame| {
                if let Ok(frame) = frame {
                    host_frames.lock().unwrap().push(frame);
                }
            }),
            Err(_) => {}
        }
    }
}

/// The path of the built `vigil` binary.
pub fn vigil() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
}

/// Parses JSON lines.
pub fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect()
}

/// A function of the test binary that the symbolisation tests find in its own DWARF.
#[inline(never)]
pub fn marker_function_for_symbols() -> u64 {
    std::hint::black_box(0x5eed)
}

/// The running test binary: an ELF with debug information, standing in for the kernel ELF
/// and for user programs.
pub fn this_binary() -> std::path::PathBuf {
    std::env::current_exe().unwrap()
}

/// The workspace root (what symbolised source paths are shown relative to when the tool
/// runs there).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The link-time address of [`marker_function_for_symbols`] in this test binary.
pub fn marker_address() -> u64 {
    use object::{Object, ObjectSymbol};

    assert_eq!(marker_function_for_symbols(), 0x5eed);
    let bytes = std::fs::read(this_binary()).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    // Both manglings keep the identifier itself.
    file.symbols()
        .find(|symbol| {
            symbol
                .name()
                .is_ok_and(|name| name.contains("marker_function_for_symbols"))
        })
        .expect("marker function in the symbol table")
        .address()
}

/// A crash report of `kind` with `backtrace`, at 4 s.
pub fn crash_with(kind: CrashKind, process: Option<&str>, backtrace: Vec<u64>) -> KernelFrame {
    KernelFrame::Crash(CrashReport {
        kind,
        timestamp_ns: 4 * SECOND,
        process: process.map(|name| (name.to_string(), 9)),
        message: "page fault at 0x0".into(),
        backtrace,
    })
}
