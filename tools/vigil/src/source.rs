//! Byte sources: a live monitor socket (TCP or Unix, reconnecting) or a recording being replayed.
//!
//! A source runs on its own thread and reports [`SourceMsg`]s on a channel: raw byte chunks
//! with the host time they arrived, and connection changes. Live connections and replays
//! produce the same messages, so everything downstream (the decoder in [`crate::link`], the
//! model, the UIs) cannot tell them apart.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
#[cfg(unix)]
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use crossbeam_channel::{Receiver, Sender};
use vigil_wire::{encode_host_frame, HostFrame, PROTOCOL_VERSION};

use crate::record::{Record, RecordReader};

/// First delay before retrying a connection; doubles up to [`RETRY_MAX`].
pub const RETRY_MIN: Duration = Duration::from_millis(100);
/// Steady-state delay between connection attempts.
pub const RETRY_MAX: Duration = Duration::from_millis(500);
/// How long a read blocks before the thread checks for commands and for being stopped.
const READ_POLL: Duration = Duration::from_millis(50);
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// A socket that opened but stays silent this long is reported ([`no_data_message`]).
pub const NO_DATA_WARNING: Duration = Duration::from_secs(2);
/// How long after the kernel's first bytes its Hello may take before ours is repeated.
const HELLO_GRACE: Duration = Duration::from_millis(500);

/// What a client is told when its socket opened but nothing arrives.
pub fn no_data_message(address: &Address) -> String {
    format!(
        "the socket {address} opened but no data arrived in {} s: QEMU serves one client at a \
         time and another client probably holds it (run `vigil hub --connect {address}` and \
         point every client at the hub), or the kernel is not running (halted in gdb, or \
         waiting); still trying",
        NO_DATA_WARNING.as_secs()
    )
}

/// Watches the start of a connection for the kernel's Hello, to repeat ours once if it is
/// missing [`HELLO_GRACE`] after the first bytes.
struct HelloWatch {
    decoder: Option<vigil_wire::KernelFrameDecoder>,
    first_bytes: Option<Instant>,
}

impl HelloWatch {
    fn new() -> HelloWatch {
        HelloWatch {
            decoder: Some(vigil_wire::KernelFrameDecoder::new()),
            first_bytes: None,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        let Some(decoder) = &mut self.decoder else {
            return;
        };
        self.first_bytes.get_or_insert_with(Instant::now);
        let mut seen = false;
        decoder.push(bytes, |frame| {
            seen |= matches!(frame, Ok(vigil_wire::KernelFrame::Hello(_)));
        });
        if seen {
            self.decoder = None;
        }
    }

    /// True once, when the Hello is overdue.
    fn should_repeat(&mut self) -> bool {
        if self.decoder.is_some() && self.first_bytes.is_some_and(|t| t.elapsed() >= HELLO_GRACE) {
            self.decoder = None;
            return true;
        }
        false
    }
}

/// Where the monitor channel is: `HOST:PORT` or `tcp:HOST:PORT` (TCP), or `unix:PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    Tcp(String),
    Unix(PathBuf),
}

impl Address {
    pub fn parse(text: &str) -> Result<Address> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                bail!("`unix:` needs a socket path, e.g. unix:/tmp/vigil.sock");
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        let text = text.strip_prefix("tcp:").unwrap_or(text);
        match text.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Address::Tcp(text.to_string()))
            }
            _ => bail!(
                "`{text}` is not an address: use HOST:PORT (e.g. 127.0.0.1:5555) or unix:PATH"
            ),
        }
    }

    fn connect(&self) -> io::Result<Conn> {
        match self {
            Address::Tcp(text) => {
                let mut last =
                    io::Error::new(io::ErrorKind::NotFound, "host name resolves to no address");
                for addr in text.to_socket_addrs()? {
                    match TcpStream::connect_timeout(&addr, TCP_CONNECT_TIMEOUT) {
                        Ok(stream) => {
                            stream.set_nodelay(true)?;
                            stream.set_read_timeout(Some(READ_POLL))?;
                            return Ok(Conn::Tcp(stream));
                        }
                        Err(e) => last = e,
                    }
                }
                Err(last)
            }
            #[cfg(unix)]
            Address::Unix(path) => {
                let stream = UnixStream::connect(path)?;
                stream.set_read_timeout(Some(READ_POLL))?;
                Ok(Conn::Unix(stream))
            }
            #[cfg(not(unix))]
            Address::Unix(_) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "unix sockets are not supported on this platform",
            )),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp(text) => f.write_str(text),
            Address::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A connected socket of either kind.
enum Conn {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            #[cfg(unix)]
            Conn::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.flush(),
            #[cfg(unix)]
            Conn::Unix(s) => s.flush(),
        }
    }
}

/// What a source reports. `at_ns` is host time in nanoseconds since the source started (for
/// a replay: the offset stored in the recording).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceMsg {
    /// Cannot reach the kernel; the source keeps retrying. Sent once per distinct error.
    Waiting { error: String },
    /// A new connection: the byte stream starts afresh (the decoder must be reset).
    Connected { at_ns: u64 },
    /// Bytes received.
    Data { at_ns: u64, bytes: Vec<u8> },
    /// The connection closed; the source reconnects on its own.
    Disconnected { reason: String },
    /// No more data will come (end of a recording).
    End,
}

/// How `now_ns` is computed.
enum Clock {
    Live(Instant),
    Replay(Arc<AtomicU64>),
}

/// Pause, step and speed of a replay, shared with its thread.
#[derive(Debug)]
pub struct ReplayControl {
    paused: AtomicBool,
    speed_bits: AtomicU64,
    /// Recording time to play while paused (a step), in ns.
    step_ns: AtomicU64,
}

impl ReplayControl {
    fn new(speed: f64) -> ReplayControl {
        ReplayControl {
            paused: AtomicBool::new(false),
            speed_bits: AtomicU64::new(speed.to_bits()),
            step_ns: AtomicU64::new(0),
        }
    }

    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Plays `ns` more of the recording (meant for while paused).
    pub fn step(&self, ns: u64) {
        self.step_ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub fn speed(&self) -> f64 {
        f64::from_bits(self.speed_bits.load(Ordering::Relaxed))
    }

    /// Sets the speed (clamped to 1/64 … 64).
    pub fn set_speed(&self, speed: f64) {
        self.speed_bits
            .store(speed.clamp(1.0 / 64.0, 64.0).to_bits(), Ordering::Relaxed);
    }
}

/// A running source. Dropping it stops its thread.
pub struct Source {
    pub rx: Receiver<SourceMsg>,
    /// Replays with timing (speed > 0) can be paused, stepped and sped up.
    pub control: Option<Arc<ReplayControl>>,
    commands: Option<Sender<HostFrame>>,
    stop: Arc<AtomicBool>,
    clock: Clock,
    description: String,
    live: bool,
}

impl Source {
    /// Connects to a live kernel, reconnecting whenever the socket closes or cannot be
    /// opened. Sends `HostFrame::Hello` on every new connection.
    pub fn connect(address: Address) -> Source {
        let (tx, rx) = crossbeam_channel::unbounded();
        let (cmd_tx, cmd_rx) = crossbeam_channel::unbounded();
        let stop = Arc::new(AtomicBool::new(false));
        let start = Instant::now();
        let description = address.to_string();
        {
            let stop = stop.clone();
            thread::Builder::new()
                .name("vigil-connection".into())
                .spawn(move || run_live(address, start, tx, cmd_rx, stop))
                .expect("spawn connection thread");
        }
        Source {
            rx,
            control: None,
            commands: Some(cmd_tx),
            stop,
            clock: Clock::Live(start),
            description,
            live: true,
        }
    }

    /// Replays a recording. `speed` 1.0 keeps the recorded timing, 2.0 plays twice as fast,
    /// 0 (or less) feeds everything as fast as possible.
    pub fn replay(path: &Path, speed: f64) -> Result<Source> {
        let file = std::fs::File::open(path)
            .with_context(|| format!("cannot open recording {}", path.display()))?;
        let reader = RecordReader::new(io::BufReader::new(file))
            .with_context(|| format!("{} is not a vigil recording", path.display()))?;
        let (tx, rx) = crossbeam_channel::bounded(256);
        let stop = Arc::new(AtomicBool::new(false));
        let position = Arc::new(AtomicU64::new(0));
        let control = (speed > 0.0).then(|| Arc::new(ReplayControl::new(speed)));
        {
            let stop = stop.clone();
            let position = position.clone();
            let name = path.display().to_string();
            let control = control.clone();
            thread::Builder::new()
                .name("vigil-replay".into())
                .spawn(move || run_replay(reader, name, control, tx, stop, position))
                .expect("spawn replay thread");
        }
        Ok(Source {
            rx,
            control,
            commands: None,
            stop,
            clock: Clock::Replay(position),
            description: format!("replay {}", path.display()),
            live: false,
        })
    }

    /// Host time now, on the same scale as `at_ns` in the messages.
    pub fn now_ns(&self) -> u64 {
        match &self.clock {
            Clock::Live(start) => start.elapsed().as_nanos() as u64,
            Clock::Replay(position) => position.load(Ordering::Relaxed),
        }
    }

    /// Sends a command to the kernel (when connected). Returns false for a replay.
    pub fn send(&self, frame: HostFrame) -> bool {
        self.commands
            .as_ref()
            .is_some_and(|tx| tx.send(frame).is_ok())
    }

    /// "127.0.0.1:5555", "unix:/tmp/x", or "replay FILE".
    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn is_live(&self) -> bool {
        self.live
    }
}

impl Drop for Source {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Human wording for a connection error ("connection refused" rather than the OS string).
pub fn describe_io_error(error: &io::Error) -> String {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        io::ErrorKind::ConnectionAborted => "connection aborted".into(),
        io::ErrorKind::NotFound => "no such socket".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => "timed out".into(),
        io::ErrorKind::BrokenPipe => "broken pipe".into(),
        _ => error.to_string(),
    }
}

fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let deadline = Instant::now() + total;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        thread::sleep((deadline - now).min(Duration::from_millis(20)));
    }
}

fn host_frame_bytes(frame: &HostFrame) -> Vec<u8> {
    let mut bytes = Vec::new();
    encode_host_frame(frame, &mut bytes);
    bytes
}

fn run_live(
    address: Address,
    start: Instant,
    tx: Sender<SourceMsg>,
    commands: Receiver<HostFrame>,
    stop: Arc<AtomicBool>,
) {
    let now = || start.elapsed().as_nanos() as u64;
    let mut delay = RETRY_MIN;
    let mut last_error: Option<String> = None;
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let mut conn = match address.connect() {
            Ok(conn) => conn,
            Err(error) => {
                let error = format!(
                    "cannot connect to {address}: {}; retrying every {} ms",
                    describe_io_error(&error),
                    RETRY_MAX.as_millis()
                );
                if last_error.as_ref() != Some(&error) {
                    if tx
                        .send(SourceMsg::Waiting {
                            error: error.clone(),
                        })
                        .is_err()
                    {
                        return;
                    }
                    last_error = Some(error);
                }
                sleep_unless_stopped(delay, &stop);
                delay = (delay * 2).min(RETRY_MAX);
                continue;
            }
        };
        delay = RETRY_MIN;
        last_error = None;
        let opened = Instant::now();
        // `Connected` is reported when the first bytes arrive, not when the socket opens: QEMU
        // serves one client per socket, and a second client's connection is accepted by the
        // kernel's listen backlog but never served. Such a client must not claim "connected".
        let mut announced = false;
        let mut warned = false;
        // Stale commands from an earlier connection are not replayed.
        while commands.try_recv().is_ok() {}
        // A lone 0x00 first: if the kernel's UART drops the first byte we send (QEMU
        // holds one byte before the guest initialises the port, and the kernel's FIFO reset
        // discards it), the delimiter is what is lost, not the Hello frame.
        let mut hello = vec![0u8];
        hello.extend(host_frame_bytes(&HostFrame::Hello {
            protocol_version: PROTOCOL_VERSION,
        }));
        let mut failure = conn.write_all(&hello).err();
        // If we connected before the kernel was listening on COM2 at all, our Hello was lost:
        // say it again if no Hello arrives soon after the kernel's first bytes (only then, so
        // that a normal session gets exactly one Hello).
        let mut hello_watch = HelloWatch::new();
        while failure.is_none() && !stop.load(Ordering::Relaxed) {
            match conn.read(&mut buf) {
                Ok(0) => {
                    let reason = if announced {
                        "connection closed by the kernel side".to_string()
                    } else {
                        "the socket closed before any data arrived".to_string()
                    };
                    let _ = tx.send(SourceMsg::Disconnected { reason });
                    break;
                }
                Ok(n) => {
                    if !announced {
                        announced = true;
                        if tx.send(SourceMsg::Connected { at_ns: now() }).is_err() {
                            return;
                        }
                    }
                    hello_watch.feed(&buf[..n]);
                    if tx
                        .send(SourceMsg::Data {
                            at_ns: now(),
                            bytes: buf[..n].to_vec(),
                        })
                        .is_err()
                    {
                        return;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => failure = Some(e),
            }
            if hello_watch.should_repeat() {
                failure = failure.or(conn.write_all(&hello).err());
            }
            if !announced && !warned && opened.elapsed() >= NO_DATA_WARNING {
                warned = true;
                let _ = tx.send(SourceMsg::Waiting {
                    error: no_data_message(&address),
                });
            }
            while let Ok(frame) = commands.try_recv() {
                if let Err(e) = conn.write_all(&host_frame_bytes(&frame)) {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failure {
            let _ = tx.send(SourceMsg::Disconnected {
                reason: describe_io_error(&e),
            });
        }
        sleep_unless_stopped(RETRY_MIN, &stop);
    }
}

/// The recording time a timed replay has reached: advances with the host clock times the
/// speed while not paused, and by steps while paused.
struct ReplayClock {
    at_ns: Option<u64>,
    last: Instant,
}

impl ReplayClock {
    fn advance(&mut self, control: &ReplayControl) -> u64 {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last);
        self.last = now;
        let at = self.at_ns.get_or_insert(0);
        if !control.is_paused() {
            *at += (elapsed.as_nanos() as f64 * control.speed()) as u64;
        }
        *at += control.step_ns.swap(0, Ordering::Relaxed);
        *at
    }
}

fn run_replay<R: Read>(
    mut reader: RecordReader<R>,
    name: String,
    control: Option<Arc<ReplayControl>>,
    tx: Sender<SourceMsg>,
    stop: Arc<AtomicBool>,
    position: Arc<AtomicU64>,
) {
    let mut clock = ReplayClock {
        at_ns: None,
        last: Instant::now(),
    };
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let record = match reader.next_record() {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(e) => {
                let _ = tx.send(SourceMsg::Disconnected {
                    reason: format!("{name}: {e:#}"),
                });
                break;
            }
        };
        let at_ns = record.at_ns();
        if let Some(control) = &control {
            // The first record starts the clock at its own time.
            clock.at_ns.get_or_insert(at_ns);
            while clock.advance(control) < at_ns {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                thread::sleep(Duration::from_millis(5));
            }
        }
        position.store(at_ns, Ordering::Relaxed);
        let msg = match record {
            Record::Connected { at_ns } => SourceMsg::Connected { at_ns },
            Record::Data { at_ns, bytes } => SourceMsg::Data { at_ns, bytes },
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
    let _ = tx.send(SourceMsg::End);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse() {
        assert_eq!(
            Address::parse("127.0.0.1:5555").unwrap(),
            Address::Tcp("127.0.0.1:5555".into())
        );
        assert_eq!(
            Address::parse("localhost:1").unwrap().to_string(),
            "localhost:1"
        );
        assert_eq!(
            Address::parse("tcp:127.0.0.1:4555").unwrap(),
            Address::Tcp("127.0.0.1:4555".into())
        );
        assert_eq!(
            Address::parse("unix:/tmp/x.sock").unwrap(),
            Address::Unix("/tmp/x.sock".into())
        );
        assert_eq!(
            Address::parse("unix:/tmp/x.sock").unwrap().to_string(),
            "unix:/tmp/x.sock"
        );
        for bad in ["5555", "host:", ":5555", "host:port", "unix:", "host:70000"] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn refused_connection_reports_waiting() {
        // Bind then drop a listener so the port is (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let source = Source::connect(Address::parse(&format!("127.0.0.1:{port}")).unwrap());
        match source.rx.recv_timeout(Duration::from_secs(5)).unwrap() {
            SourceMsg::Waiting { error } => {
                assert!(
                    error.starts_with(&format!("cannot connect to 127.0.0.1:{port}: ")),
                    "{error}"
                );
                assert!(error.contains("retrying"), "{error}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn replay_clock_pauses_steps_and_changes_speed() {
        let control = ReplayControl::new(1.0);
        let mut clock = ReplayClock {
            at_ns: Some(1_000),
            last: Instant::now(),
        };
        control.set_paused(true);
        thread::sleep(Duration::from_millis(20));
        assert_eq!(clock.advance(&control), 1_000, "paused: time stands still");
        control.step(100_000_000);
        assert_eq!(clock.advance(&control), 100_001_000, "a step plays 100 ms");
        control.set_paused(false);
        control.set_speed(64.0);
        thread::sleep(Duration::from_millis(20));
        let at = clock.advance(&control);
        assert!(at >= 100_001_000 + 64 * 20_000_000, "64x: {at}");
        control.set_speed(1000.0);
        assert_eq!(control.speed(), 64.0, "clamped");
    }

    #[test]
    fn a_silent_socket_is_not_called_connected() {
        // A listener that never accepts: the connection completes in the backlog, like a
        // second client of QEMU's single-connection socket, but no byte ever arrives.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let source = Source::connect(Address::parse(&format!("127.0.0.1:{port}")).unwrap());
        match source.rx.recv_timeout(NO_DATA_WARNING * 3).unwrap() {
            SourceMsg::Waiting { error } => {
                assert!(error.contains("no data arrived"), "{error}");
                assert!(error.contains("vigil hub"), "{error}");
            }
            other => panic!("a silent socket reported {other:?}"),
        }
        drop(listener);
    }

    #[test]
    fn hello_is_repeated_only_when_the_kernel_sent_none() {
        let mut watch = HelloWatch::new();
        assert!(!watch.should_repeat(), "no bytes yet: nothing to judge");
        let mut hello = Vec::new();
        vigil_wire::encode_kernel_frame(
            &vigil_wire::KernelFrame::Hello(vigil_wire::Hello {
                protocol_version: PROTOCOL_VERSION,
                kernel_version: "t".into(),
                tsc_hz: 1,
                now_ns: 1,
                event_mask: 0,
                snapshot_period_ms: 100,
            }),
            &mut hello,
        );
        watch.feed(&hello);
        watch.first_bytes = Some(Instant::now() - HELLO_GRACE * 2);
        assert!(!watch.should_repeat(), "a Hello arrived: no repeat");

        let mut silent = HelloWatch::new();
        silent.feed(&[1, 2, 3]);
        silent.first_bytes = Some(Instant::now() - HELLO_GRACE * 2);
        assert!(
            silent.should_repeat(),
            "no Hello after the grace time: repeat"
        );
        assert!(!silent.should_repeat(), "only once");
    }
}
