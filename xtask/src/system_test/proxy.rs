//! A transparent TCP proxy between QEMU's COM2 socket (the kernel) and the host tool, for the
//! monitor scenarios: it forwards bytes both ways unchanged, decodes the kernel → host stream
//! itself (so a check can compare the tool's view with the raw frames), and can write garbage
//! into the kernel-bound direction at a chosen moment.
//!
//! ```text
//! QEMU COM2 (tcp server) ──upstream── proxy ──downstream── vigil (client of the proxy)
//! ```
//!
//! The proxy connects upstream first (retrying until QEMU listens), then accepts tool
//! connections one at a time (a tool that reconnects gets a new one). It reads from QEMU only
//! while a tool is connected, so nothing the kernel sends is consumed without being
//! forwarded; QEMU holds back the guest's UART meanwhile.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vigil_wire::{DecoderStats, HostFrameDecoder, KernelFrame, KernelFrameDecoder};

/// How long a socket read blocks before the loops look at their flags and the clock.
const POLL: Duration = Duration::from_millis(20);
/// Pause between attempts to connect to QEMU.
const CONNECT_RETRY: Duration = Duration::from_millis(20);

/// Bytes to write towards the kernel (garbage, or encoded host frames a tool would not
/// send): `bytes` at `at` after the first tool connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injection {
    pub at: Duration,
    pub bytes: Vec<u8>,
}

/// One kernel frame decoded by the proxy from the bytes it forwarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyFrame {
    /// When its last byte arrived, since the proxy started.
    pub at: Duration,
    /// Offset in [`ProxyReport::from_kernel`] just past the frame's 0x00 terminator.
    pub end: usize,
    pub frame: KernelFrame,
}

/// What the garbage injection did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injected {
    /// When it was written, since the proxy started.
    pub at: Duration,
    pub bytes: usize,
    /// Bytes forwarded kernel → tool before it (an offset in `from_kernel`).
    pub from_kernel_offset: usize,
}

/// Everything the proxy saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxyReport {
    /// When the upstream (QEMU) connection was made, since the proxy started.
    pub upstream_connected: Option<Duration>,
    /// Tool connections accepted, with the time of each.
    pub connections: Vec<Duration>,
    /// Every byte forwarded kernel → tool, in order (all tool connections concatenated).
    pub from_kernel: Vec<u8>,
    /// Frame boundaries per tool connection: `from_kernel` offsets where each one started.
    pub connection_offsets: Vec<usize>,
    /// The kernel frames decoded from `from_kernel` (the decoder restarts with each tool
    /// connection, as the tool's does).
    pub frames: Vec<ProxyFrame>,
    /// Decoder counters over all connections (damage in the kernel → host direction).
    pub stats: DecoderStats,
    /// Bytes the tool sent that were forwarded to the kernel.
    pub to_kernel_bytes: u64,
    /// What was injected, in order.
    pub injected: Vec<Injected>,
    /// Why the proxy stopped early, if it did (e.g. QEMU never listened).
    pub error: Option<String>,
}

impl ProxyReport {
    /// One line for failure reports.
    pub fn summary(&self) -> String {
        let stats = &self.stats;
        let mut text = format!(
            "proxy: upstream {}, {} tool connection(s), {} bytes kernel→tool in {} frames \
             ({} checksum errors, {} malformed, {} oversized, {} bytes discarded), {} bytes \
             tool→kernel",
            match self.upstream_connected {
                Some(at) => format!("connected after {:.2} s", at.as_secs_f64()),
                None => "never connected".to_string(),
            },
            self.connections.len(),
            self.from_kernel.len(),
            stats.frames,
            stats.checksum_errors,
            stats.malformed,
            stats.oversized,
            stats.discarded_bytes,
            self.to_kernel_bytes
        );
        for injected in &self.injected {
            text.push_str(&format!(
                ", {} bytes injected at {:.2} s",
                injected.bytes,
                injected.at.as_secs_f64()
            ));
        }
        if let Some(error) = &self.error {
            text.push_str(&format!("; error: {error}"));
        }
        text
    }
}

/// A running proxy. [`Proxy::finish`] stops it and returns its report.
pub struct Proxy {
    port: u16,
    stop: Arc<AtomicBool>,
    upstream_up: Arc<AtomicBool>,
    failed: Arc<AtomicBool>,
    thread: JoinHandle<ProxyReport>,
}

impl Proxy {
    /// Starts forwarding between tool connections on `listener` and the kernel at `upstream`,
    /// connecting upstream until `connect_within` has passed.
    pub fn start(
        listener: TcpListener,
        upstream: SocketAddr,
        connect_within: Duration,
        injections: Vec<Injection>,
    ) -> Result<Proxy> {
        let port = listener.local_addr()?.port();
        listener
            .set_nonblocking(true)
            .context("making the proxy listener non-blocking")?;
        let stop = Arc::new(AtomicBool::new(false));
        let upstream_up = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicBool::new(false));
        let shared = Flags {
            stop: stop.clone(),
            upstream_up: upstream_up.clone(),
            failed: failed.clone(),
        };
        let thread = thread::Builder::new()
            .name("monitor-proxy".into())
            .spawn(move || {
                run(
                    listener,
                    upstream,
                    Instant::now() + connect_within,
                    injections,
                    shared,
                )
            })
            .context("starting the proxy thread")?;
        Ok(Proxy {
            port,
            stop,
            upstream_up,
            failed,
            thread,
        })
    }

    /// The port tools connect to (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Waits until the proxy is connected to QEMU (Ok) or has given up (Err), at most
    /// `within`.
    pub fn wait_upstream(&self, within: Duration) -> Result<()> {
        let until = Instant::now() + within;
        loop {
            if self.upstream_up.load(Ordering::SeqCst) {
                return Ok(());
            }
            if self.has_failed() {
                bail!("the proxy could not connect to QEMU's COM2 socket");
            }
            if Instant::now() >= until {
                bail!(
                    "QEMU's COM2 socket did not accept a connection within {:.1} s",
                    within.as_secs_f64()
                );
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// True once the proxy has given up connecting to QEMU.
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst) || self.thread.is_finished()
    }

    /// Stops forwarding and returns what the proxy saw.
    pub fn finish(self) -> ProxyReport {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap_or_else(|_| ProxyReport {
            error: Some("the proxy thread panicked".to_string()),
            ..ProxyReport::default()
        })
    }
}

struct Flags {
    stop: Arc<AtomicBool>,
    upstream_up: Arc<AtomicBool>,
    failed: Arc<AtomicBool>,
}

impl Flags {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// Connects to `address` until it accepts, `until` passes or the proxy is stopped.
fn connect_upstream(address: SocketAddr, until: Instant, flags: &Flags) -> Result<TcpStream> {
    loop {
        match TcpStream::connect_timeout(&address, Duration::from_millis(200)) {
            Ok(stream) => return Ok(stream),
            Err(error) => {
                if flags.stopped() {
                    bail!("stopped before QEMU's COM2 socket accepted a connection");
                }
                if Instant::now() >= until {
                    return Err(error).with_context(|| format!("connecting to {address}"));
                }
                thread::sleep(CONNECT_RETRY);
            }
        }
    }
}

/// Waits for the next tool connection (`None`: stopped).
fn accept(listener: &TcpListener, flags: &Flags) -> Option<TcpStream> {
    loop {
        if flags.stopped() {
            return None;
        }
        match listener.accept() {
            Ok((stream, _)) => return Some(stream),
            Err(error) if error.kind() == ErrorKind::WouldBlock => thread::sleep(POLL / 4),
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(_) => thread::sleep(POLL),
        }
    }
}

fn is_timeout(error: &std::io::Error) -> bool {
    matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// The proxy thread: upstream connection, then one tool connection after another.
fn run(
    listener: TcpListener,
    upstream_address: SocketAddr,
    connect_until: Instant,
    injections: Vec<Injection>,
    flags: Flags,
) -> ProxyReport {
    let mut injections: std::collections::VecDeque<Injection> = {
        let mut sorted = injections;
        sorted.sort_by_key(|injection| injection.at);
        sorted.into()
    };
    let started = Instant::now();
    let mut report = ProxyReport::default();
    let upstream = match connect_upstream(upstream_address, connect_until, &flags) {
        Ok(stream) => stream,
        Err(error) => {
            report.error = Some(format!("{error:#}"));
            flags.failed.store(true, Ordering::SeqCst);
            return report;
        }
    };
    report.upstream_connected = Some(started.elapsed());
    let prepared = upstream
        .set_nodelay(true)
        .and_then(|()| upstream.set_read_timeout(Some(POLL)))
        .and_then(|()| upstream.try_clone());
    let upstream_writer = match prepared {
        Ok(writer) => Arc::new(Mutex::new(writer)),
        Err(error) => {
            report.error = Some(format!("setting up the QEMU connection: {error}"));
            flags.failed.store(true, Ordering::SeqCst);
            return report;
        }
    };
    flags.upstream_up.store(true, Ordering::SeqCst);
    let mut upstream = upstream;
    let to_kernel = Arc::new(AtomicU64::new(0));
    let mut earlier_stats = DecoderStats::default();
    let mut first_connection: Option<Instant> = None;

    'connections: while let Some(tool) = accept(&listener, &flags) {
        report.connections.push(started.elapsed());
        report.connection_offsets.push(report.from_kernel.len());
        let first = *first_connection.get_or_insert_with(Instant::now);
        let mut decoder = KernelFrameDecoder::new();
        let tool_closed = Arc::new(AtomicBool::new(false));
        let set_up = tool
            .set_nodelay(true)
            .and_then(|()| tool.set_nonblocking(false))
            .and_then(|()| tool.set_read_timeout(Some(POLL)))
            .and_then(|()| tool.try_clone());
        let tool_reader = match set_up {
            Ok(reader) => reader,
            Err(error) => {
                report.error = Some(format!("setting up a tool connection: {error}"));
                continue;
            }
        };
        let pump = {
            let writer = upstream_writer.clone();
            let closed = tool_closed.clone();
            let stop = flags.stop.clone();
            let counter = to_kernel.clone();
            thread::spawn(move || pump_to_kernel(tool_reader, &writer, &closed, &stop, &counter))
        };
        let mut tool_writer = tool;
        let mut buffer = vec![0u8; 16 * 1024];
        let upstream_ended = loop {
            if flags.stopped() || tool_closed.load(Ordering::SeqCst) {
                break false;
            }
            while injections
                .front()
                .is_some_and(|injection| first.elapsed() >= injection.at)
            {
                let bytes = injections.pop_front().map(|i| i.bytes).unwrap_or_default();
                let written = upstream_writer
                    .lock()
                    .map_err(|_| std::io::Error::from(ErrorKind::Other))
                    .and_then(|mut writer| writer.write_all(&bytes));
                if let Err(error) = written {
                    report.error = Some(format!("writing injected bytes to QEMU: {error}"));
                }
                report.injected.push(Injected {
                    at: started.elapsed(),
                    bytes: bytes.len(),
                    from_kernel_offset: report.from_kernel.len(),
                });
            }
            // Wake for the next injection on time: a late wake-up would write several
            // chunks of a flood at once.
            let wait = injections.front().map_or(POLL, |next| {
                next.at
                    .saturating_sub(first.elapsed())
                    .clamp(Duration::from_millis(1), POLL)
            });
            let _ = upstream.set_read_timeout(Some(wait));
            match upstream.read(&mut buffer) {
                Ok(0) => break true,
                Ok(n) => {
                    let bytes = &buffer[..n];
                    if tool_writer.write_all(bytes).is_err() {
                        // The tool went away: these bytes were not forwarded.
                        tool_closed.store(true, Ordering::SeqCst);
                        break false;
                    }
                    let base = report.from_kernel.len();
                    report.from_kernel.extend_from_slice(bytes);
                    let at = started.elapsed();
                    let frames = &mut report.frames;
                    let mut offset = base;
                    // Split at terminators so each frame gets its exact end offset.
                    for chunk in bytes.split_inclusive(|&b| b == 0) {
                        offset += chunk.len();
                        decoder.push(chunk, |result| {
                            if let Ok(frame) = result {
                                frames.push(ProxyFrame {
                                    at,
                                    end: offset,
                                    frame,
                                });
                            }
                        });
                    }
                }
                Err(error) if is_timeout(&error) || error.kind() == ErrorKind::Interrupted => {}
                Err(_) => break true,
            }
        };
        tool_closed.store(true, Ordering::SeqCst);
        let _ = tool_writer.shutdown(std::net::Shutdown::Both);
        let _ = pump.join();
        earlier_stats = add_stats(earlier_stats, decoder.stats());
        if upstream_ended {
            break 'connections;
        }
    }
    report.stats = earlier_stats;
    report.to_kernel_bytes = to_kernel.load(Ordering::SeqCst);
    report
}

/// Forwards what the tool sends to the kernel until the tool closes or the proxy stops.
fn pump_to_kernel(
    mut tool: TcpStream,
    upstream: &Mutex<TcpStream>,
    closed: &AtomicBool,
    stop: &AtomicBool,
    forwarded: &AtomicU64,
) {
    let mut buffer = [0u8; 4096];
    while !closed.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst) {
        match tool.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => {
                let written = match upstream.lock() {
                    Ok(mut writer) => writer.write_all(&buffer[..n]).is_ok(),
                    Err(_) => false,
                };
                if !written {
                    break;
                }
                forwarded.fetch_add(n as u64, Ordering::SeqCst);
            }
            Err(error) if is_timeout(&error) || error.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    closed.store(true, Ordering::SeqCst);
}

fn add_stats(a: DecoderStats, b: DecoderStats) -> DecoderStats {
    DecoderStats {
        frames: a.frames + b.frames,
        checksum_errors: a.checksum_errors + b.checksum_errors,
        malformed: a.malformed + b.malformed,
        oversized: a.oversized + b.oversized,
        discarded_bytes: a.discarded_bytes + b.discarded_bytes,
    }
}

/// The kernel's limit on host frames (`MAX_COMMAND_BYTES` in kernel/src/monitor.rs): garbage
/// is checked against a decoder with this limit as well as the protocol's maximum.
pub const KERNEL_COMMAND_LIMIT: usize = 256;

/// `len` pseudo-random bytes (xorshift64*, deterministic for a seed) that contain no valid
/// frame in either direction and end with a 0x00, so that the kernel's decoder finishes (and
/// counts) the last piece at once. Random bytes contain 0x00 about once in 256, so the
/// garbage is many bad frames, not one oversized one. Returns the bytes and the number of
/// bad frames a kernel decoder must count for them (each non-empty piece ending at a 0x00).
pub fn garbage(len: usize, seed: u64) -> (Vec<u8>, u64) {
    let mut seed = seed;
    loop {
        let bytes = pseudo_random(len, seed);
        if let Some(pieces) = frameless(&bytes) {
            return (bytes, pieces);
        }
        seed = seed.wrapping_add(1);
    }
}

fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut bytes: Vec<u8> = (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect();
    if let Some(last) = bytes.last_mut() {
        *last = 0;
    }
    bytes
}

/// `Some(bad frames)` if no decoder a receiver could use finds a valid frame in `bytes` and
/// the kernel's decoder counts at least one error; `None` otherwise.
pub fn frameless(bytes: &[u8]) -> Option<u64> {
    let mut kernel_side = HostFrameDecoder::with_max_frame_bytes(KERNEL_COMMAND_LIMIT);
    let mut host_side_full = HostFrameDecoder::new();
    let mut kernel_frames = KernelFrameDecoder::new();
    let mut any_frame = false;
    kernel_side.push(bytes, |r| any_frame |= r.is_ok());
    host_side_full.push(bytes, |r| any_frame |= r.is_ok());
    kernel_frames.push(bytes, |r| any_frame |= r.is_ok());
    let errors = kernel_side.stats().errors();
    (!any_frame && errors > 0).then_some(errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_wire::{encode_host_frame, encode_kernel_frame, DropReport, HostFrame, Snapshot};

    fn frame_bytes(frames: &[KernelFrame]) -> Vec<u8> {
        let mut out = Vec::new();
        for frame in frames {
            encode_kernel_frame(frame, &mut out);
        }
        out
    }

    /// A fake kernel: a listener that accepts one connection, sends `first`, waits until it
    /// has received `expect_in` bytes (or 3 s), sends `second`, then keeps reading for
    /// `linger` and returns everything it received.
    fn fake_kernel(
        first: Vec<u8>,
        expect_in: usize,
        second: Vec<u8>,
        linger: Duration,
    ) -> (SocketAddr, JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            stream.write_all(&first).unwrap();
            let mut received = Vec::new();
            let mut buffer = [0u8; 8192];
            let until = Instant::now() + Duration::from_secs(3);
            while received.len() < expect_in && Instant::now() < until {
                match stream.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => received.extend_from_slice(&buffer[..n]),
                    Err(_) => {}
                }
            }
            stream.write_all(&second).unwrap();
            let until = Instant::now() + linger;
            while Instant::now() < until {
                match stream.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => received.extend_from_slice(&buffer[..n]),
                    Err(_) => {}
                }
            }
            received
        });
        (address, handle)
    }

    /// Reads from `stream` until `len` bytes arrived or 3 s passed.
    fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
        stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let mut got = Vec::new();
        let mut buffer = [0u8; 8192];
        let until = Instant::now() + Duration::from_secs(3);
        while got.len() < len && Instant::now() < until {
            match stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buffer[..n]),
                Err(_) => {}
            }
        }
        got
    }

    #[test]
    fn forwards_both_ways_and_decodes_the_kernel_stream() {
        let snapshot = KernelFrame::Snapshot(Snapshot {
            generation: 7,
            timestamp_ns: 123,
            ..Snapshot::default()
        });
        let drops = KernelFrame::Drops(DropReport {
            malformed_commands: 2,
            ..DropReport::default()
        });
        let mut first = vec![0u8];
        first.extend(frame_bytes(std::slice::from_ref(&snapshot)));
        // Noise, then a frame cut in two by the second write.
        first.extend_from_slice(&[9, 9, 9, 0]);
        let tail = frame_bytes(std::slice::from_ref(&drops));
        let (cut_a, cut_b) = tail.split_at(3);
        first.extend_from_slice(cut_a);
        let mut command = Vec::new();
        encode_host_frame(&HostFrame::SnapshotNow, &mut command);
        let (address, kernel) = fake_kernel(
            first.clone(),
            command.len(),
            cut_b.to_vec(),
            Duration::from_millis(100),
        );

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = Proxy::start(listener, address, Duration::from_secs(3), Vec::new()).unwrap();
        proxy.wait_upstream(Duration::from_secs(3)).unwrap();
        let mut tool = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        tool.write_all(&command).unwrap();
        let expected: Vec<u8> = [first.as_slice(), cut_b].concat();
        let got = read_exactly(&mut tool, expected.len());
        assert_eq!(got, expected, "the tool gets the kernel's bytes unchanged");
        let received = kernel.join().unwrap();
        assert_eq!(
            received, command,
            "the kernel gets the tool's bytes unchanged"
        );
        drop(tool);
        let report = proxy.finish();

        assert_eq!(report.from_kernel, expected);
        let frames: Vec<&KernelFrame> = report.frames.iter().map(|f| &f.frame).collect();
        assert_eq!(frames, [&snapshot, &drops]);
        assert_eq!(report.frames[1].end, expected.len());
        assert_eq!(report.frames[0].end, 1 + frame_bytes(&[snapshot]).len());
        assert_eq!(report.stats.frames, 2);
        assert_eq!(
            report.stats.checksum_errors, 1,
            "the noise is one bad frame"
        );
        assert_eq!(report.to_kernel_bytes, command.len() as u64);
        assert_eq!(report.connections.len(), 1);
        assert!(report.upstream_connected.is_some());
        assert!(report.injected.is_empty());
        assert!(report.error.is_none(), "{:?}", report.error);
        assert!(
            report.summary().contains("2 frames"),
            "{}",
            report.summary()
        );
    }

    #[test]
    fn injects_garbage_towards_the_kernel_only() {
        let (garbage, _) = garbage(512, 42);
        let hello = frame_bytes(&[KernelFrame::Drops(DropReport::default())]);
        let later = frame_bytes(&[KernelFrame::Drops(DropReport {
            malformed_commands: 1,
            ..DropReport::default()
        })]);
        let (address, kernel) = fake_kernel(
            hello.clone(),
            garbage.len(),
            later.clone(),
            Duration::from_millis(100),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let injection = Injection {
            at: Duration::from_millis(150),
            bytes: garbage.clone(),
        };
        let proxy =
            Proxy::start(listener, address, Duration::from_secs(3), vec![injection]).unwrap();
        proxy.wait_upstream(Duration::from_secs(3)).unwrap();
        let mut tool = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        let got = read_exactly(&mut tool, hello.len() + later.len());
        assert_eq!(got, [hello.as_slice(), later.as_slice()].concat());
        assert_eq!(kernel.join().unwrap(), garbage);
        drop(tool);
        let report = proxy.finish();
        let injected = report
            .injected
            .first()
            .cloned()
            .expect("garbage was injected");
        assert_eq!(injected.bytes, garbage.len());
        assert_eq!(injected.from_kernel_offset, hello.len());
        assert!(injected.at >= Duration::from_millis(150));
        let after: Vec<&ProxyFrame> = report
            .frames
            .iter()
            .filter(|f| f.end > injected.from_kernel_offset)
            .collect();
        assert_eq!(after.len(), 1);
        assert_eq!(report.to_kernel_bytes, 0, "garbage is not the tool's");
    }

    #[test]
    fn accepts_a_reconnecting_tool_and_restarts_its_decoder() {
        let frame = frame_bytes(&[KernelFrame::Drops(DropReport::default())]);
        let (cut_a, cut_b) = frame.split_at(4);
        // The kernel sends half a frame to the first connection and the rest (plus a whole
        // frame) after the tool reconnected: the glued frame must not decode.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let (first, second) = (cut_a.to_vec(), [cut_b, frame.as_slice()].concat());
        let kernel = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream.write_all(&first).unwrap();
            thread::sleep(Duration::from_millis(300));
            stream.write_all(&second).unwrap();
            thread::sleep(Duration::from_millis(300));
        });
        let proxy_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy =
            Proxy::start(proxy_listener, address, Duration::from_secs(3), Vec::new()).unwrap();
        proxy.wait_upstream(Duration::from_secs(3)).unwrap();
        let mut tool = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        assert_eq!(read_exactly(&mut tool, cut_a.len()), cut_a);
        drop(tool);
        thread::sleep(Duration::from_millis(50));
        let mut tool = TcpStream::connect(("127.0.0.1", proxy.port())).unwrap();
        let expected = [cut_b, frame.as_slice()].concat();
        assert_eq!(read_exactly(&mut tool, expected.len()), expected);
        kernel.join().unwrap();
        let report = proxy.finish();
        assert_eq!(report.connections.len(), 2);
        assert_eq!(report.connection_offsets, [0, cut_a.len()]);
        assert_eq!(report.frames.len(), 1);
        assert_eq!(report.frames[0].end, cut_a.len() + expected.len());
    }

    #[test]
    fn reports_a_kernel_that_never_listens() {
        // A port that was free a moment ago: nothing listens there.
        let address: SocketAddr = format!("127.0.0.1:{}", crate::qemu::free_local_port().unwrap())
            .parse()
            .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy =
            Proxy::start(listener, address, Duration::from_millis(200), Vec::new()).unwrap();
        let error = proxy.wait_upstream(Duration::from_secs(3)).unwrap_err();
        assert!(
            format!("{error:#}").contains("could not connect"),
            "{error:#}"
        );
        let report = proxy.finish();
        assert!(report.error.is_some());
        assert!(
            report.summary().contains("never connected"),
            "{}",
            report.summary()
        );
    }

    #[test]
    fn garbage_is_deterministic_and_contains_no_frame() {
        let (bytes, pieces) = garbage(4096, 0x5eed);
        assert_eq!(bytes.len(), 4096);
        assert_eq!(bytes, garbage(4096, 0x5eed).0);
        assert_eq!(bytes.last(), Some(&0));
        let zeros = bytes.iter().filter(|&&b| b == 0).count();
        assert!(
            zeros >= 4,
            "only {zeros} terminators: one oversized frame is not enough"
        );
        assert!(pieces >= 4, "{pieces}");
        assert_eq!(frameless(&bytes), Some(pieces));
        // Every piece is a bad frame for the kernel (none is empty or decodes).
        let mut decoder = HostFrameDecoder::with_max_frame_bytes(KERNEL_COMMAND_LIMIT);
        let mut results = Vec::new();
        decoder.push(&bytes, |r| results.push(r));
        assert_eq!(results.len() as u64, pieces);
        assert!(results.iter().all(Result::is_err));
    }

    #[test]
    fn frameless_rejects_bytes_that_hide_a_valid_frame() {
        let (mut bytes, _) = garbage(1024, 7);
        encode_host_frame(&HostFrame::SnapshotNow, &mut bytes);
        assert_eq!(frameless(&bytes), None);
        let (mut bytes, _) = garbage(1024, 7);
        encode_kernel_frame(&KernelFrame::Drops(DropReport::default()), &mut bytes);
        assert_eq!(frameless(&bytes), None);
        assert_eq!(
            frameless(&[]),
            None,
            "no bytes: nothing the kernel would count"
        );
    }
}
