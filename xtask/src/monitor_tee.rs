//! The monitor tee of a recorded or replayed run: the one client of QEMU's COM2 socket. It
//! writes every byte the kernel sends to a file, and serves host tools (a `vigil hub`,
//! `vigil top`, `vigil events`) on a loopback port or a Unix socket: each client first gets
//! everything the
//! kernel has sent since reset, then the live stream, so a tool that attaches late sees what
//! it would have seen attached from the start.
//!
//! ```text
//! QEMU COM2 (tcp server, wait=on) ── tee ──┬── monitor.raw
//!                                          └── 127.0.0.1:PORT or unix:PATH ── host tools
//! ```
//!
//! The tee reads QEMU without pause: a UART write that QEMU cannot pass on at once is retried
//! on the host's schedule, which a replay could not reproduce. When recording, what a tool
//! sends goes on to the kernel (QEMU records it); when replaying, the kernel gets the recorded
//! input and what a tool sends is dropped.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Pause between attempts to connect to QEMU's COM2 (it listens once it has started; the
/// tee keeps trying until [`MonitorTee::finish`] gives up).
const CONNECT_RETRY: Duration = Duration::from_millis(20);

/// The bytes seen so far and the live clients; one lock, so a new client misses nothing.
#[derive(Default)]
struct Stream {
    history: Vec<u8>,
    clients: Vec<Sender<Vec<u8>>>,
}

/// Where the tee serves host tools: a loopback TCP port or a Unix socket.
enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// One host tool's connection, either kind.
enum Client {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Listener {
    /// Binds `listen`: `unix:PATH` (a stale socket file at PATH is replaced; any other file
    /// there is an error) or `HOST:PORT`. Returns the listener and the address tools use
    /// (`unix:PATH` or `127.0.0.1:PORT`, the port resolved).
    fn bind(listen: &str) -> Result<(Listener, String)> {
        if let Some(path) = listen.strip_prefix("unix:") {
            let path = PathBuf::from(path);
            if let Ok(metadata) = std::fs::symlink_metadata(&path) {
                if !metadata.file_type().is_socket() {
                    bail!(
                        "{} exists and is not a socket: choose another path for the monitor",
                        path.display()
                    );
                }
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing the stale socket {}", path.display()))?;
            }
            let listener = UnixListener::bind(&path)
                .with_context(|| format!("listening on {}", path.display()))?;
            return Ok((Listener::Unix(listener), format!("unix:{}", path.display())));
        }
        let listener =
            TcpListener::bind(listen).with_context(|| format!("listening on {listen}"))?;
        let address = listener.local_addr()?.to_string();
        Ok((Listener::Tcp(listener), address))
    }

    fn accept(&self) -> std::io::Result<Client> {
        match self {
            Listener::Tcp(listener) => {
                let (client, _) = listener.accept()?;
                client.set_nodelay(true).ok();
                Ok(Client::Tcp(client))
            }
            Listener::Unix(listener) => Ok(Client::Unix(listener.accept()?.0)),
        }
    }
}

impl Client {
    fn try_clone(&self) -> std::io::Result<Client> {
        Ok(match self {
            Client::Tcp(stream) => Client::Tcp(stream.try_clone()?),
            Client::Unix(stream) => Client::Unix(stream.try_clone()?),
        })
    }

    /// Tells the tool the stream has ended.
    fn shutdown_write(&self) {
        let _ = match self {
            Client::Tcp(stream) => stream.shutdown(std::net::Shutdown::Write),
            Client::Unix(stream) => stream.shutdown(std::net::Shutdown::Write),
        };
    }
}

impl Read for Client {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Client::Tcp(stream) => stream.read(buffer),
            Client::Unix(stream) => stream.read(buffer),
        }
    }
}

impl Write for Client {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            Client::Tcp(stream) => stream.write(bytes),
            Client::Unix(stream) => stream.write(bytes),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Client::Tcp(stream) => stream.flush(),
            Client::Unix(stream) => stream.flush(),
        }
    }
}

/// A running tee; [`MonitorTee::finish`] waits for QEMU's end of the stream.
pub struct MonitorTee {
    /// Where host tools attach: `127.0.0.1:PORT` or `unix:PATH`.
    pub address: String,
    reader: JoinHandle<Result<u64>>,
    /// Bytes host tools sent that were dropped (replay).
    dropped: Arc<AtomicU64>,
    /// Set when the tee should stop trying to connect.
    abandon: Arc<AtomicBool>,
}

impl MonitorTee {
    /// Connects to QEMU's COM2 at `qemu_address` in the background (retrying until QEMU
    /// listens), writes the kernel's stream to `raw`, and serves tools on `listen`
    /// (`127.0.0.1:0` for a free port, or `unix:PATH`). `forward_input`: pass what tools
    /// send to the kernel.
    pub fn start(
        qemu_address: &str,
        raw: &Path,
        listen: &str,
        forward_input: bool,
    ) -> Result<MonitorTee> {
        let mut file = File::create(raw).with_context(|| format!("creating {}", raw.display()))?;
        let (listener, address) = Listener::bind(listen)?;
        let stream = Arc::new(Mutex::new(Stream::default()));
        let upstream_slot: Arc<Mutex<Option<TcpStream>>> = Arc::new(Mutex::new(None));
        let dropped = Arc::new(AtomicU64::new(0));
        {
            let stream = stream.clone();
            let upstream_slot = upstream_slot.clone();
            let dropped = dropped.clone();
            thread::spawn(move || serve(listener, stream, upstream_slot, forward_input, dropped));
        }
        let qemu_address = qemu_address.to_string();
        let abandon = Arc::new(AtomicBool::new(false));
        let give_up = abandon.clone();
        let reader = thread::spawn(move || -> Result<u64> {
            let mut upstream = connect(&qemu_address, &give_up)?;
            *upstream_slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(upstream.try_clone()?);
            let mut buffer = vec![0u8; 64 * 1024];
            let mut total = 0u64;
            loop {
                let n = match upstream.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                total += n as u64;
                file.write_all(&buffer[..n])?;
                let mut stream = stream.lock().unwrap_or_else(|e| e.into_inner());
                stream.history.extend_from_slice(&buffer[..n]);
                stream
                    .clients
                    .retain(|client| client.send(buffer[..n].to_vec()).is_ok());
            }
            file.flush()?;
            // Clients see the end of the stream as the end of their connection.
            stream
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clients
                .clear();
            Ok(total)
        });
        Ok(MonitorTee {
            address,
            reader,
            dropped,
            abandon,
        })
    }

    /// Waits (up to `timeout`) for QEMU to close COM2 and returns the bytes written to the
    /// file and the bytes tools sent that were dropped.
    pub fn finish(self, timeout: Duration) -> Result<(u64, u64)> {
        let until = Instant::now() + timeout;
        while !self.reader.is_finished() {
            if Instant::now() >= until {
                self.abandon.store(true, Ordering::SeqCst);
                bail!("the monitor stream did not end within {timeout:?} of QEMU's exit");
            }
            thread::sleep(Duration::from_millis(10));
        }
        let total = self
            .reader
            .join()
            .map_err(|_| anyhow::anyhow!("the monitor tee panicked"))??;
        Ok((total, self.dropped.load(Ordering::SeqCst)))
    }
}

fn connect(address: &str, abandon: &AtomicBool) -> Result<TcpStream> {
    loop {
        match TcpStream::connect(address) {
            Ok(stream) => {
                stream.set_nodelay(true).ok();
                return Ok(stream);
            }
            Err(error) if abandon.load(Ordering::SeqCst) => {
                return Err(error)
                    .with_context(|| format!("connecting to QEMU's COM2 at {address}"))
            }
            Err(_) => thread::sleep(CONNECT_RETRY),
        }
    }
}

/// Accepts tool connections for as long as the process lives.
fn serve(
    listener: Listener,
    stream: Arc<Mutex<Stream>>,
    upstream: Arc<Mutex<Option<TcpStream>>>,
    forward_input: bool,
    dropped: Arc<AtomicU64>,
) {
    loop {
        let Ok(client) = listener.accept() else {
            continue;
        };
        let (sender, receiver) = mpsc::channel::<Vec<u8>>();
        {
            let mut stream = stream.lock().unwrap_or_else(|e| e.into_inner());
            if sender.send(stream.history.clone()).is_err() {
                continue;
            }
            stream.clients.push(sender);
        }
        let Ok(mut writer) = client.try_clone() else {
            continue;
        };
        thread::spawn(move || {
            for chunk in receiver {
                if writer.write_all(&chunk).is_err() {
                    return;
                }
            }
            writer.shutdown_write();
        });
        let upstream = upstream.clone();
        let dropped = dropped.clone();
        let mut reader = client;
        thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            loop {
                let n = match reader.read(&mut buffer) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let guard = upstream.lock().unwrap_or_else(|e| e.into_inner());
                match guard.as_ref() {
                    Some(mut qemu) if forward_input => {
                        if qemu.write_all(&buffer[..n]).is_err() {
                            return;
                        }
                    }
                    _ => {
                        dropped.fetch_add(n as u64, Ordering::SeqCst);
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_exactly(stream: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; n];
        stream.read_exact(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn a_late_client_gets_the_history_and_input_goes_upstream_when_recording() {
        let qemu = TcpListener::bind("127.0.0.1:0").unwrap();
        let qemu_address = qemu.local_addr().unwrap().to_string();
        let dir = std::env::temp_dir().join(format!("vigil-tee-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let raw = dir.join("monitor.raw");
        let tee = MonitorTee::start(&qemu_address, &raw, "127.0.0.1:0", true).unwrap();
        let (mut kernel, _) = qemu.accept().unwrap();
        kernel.write_all(b"early").unwrap();
        thread::sleep(Duration::from_millis(100));
        let mut tool = TcpStream::connect(&tee.address).unwrap();
        assert_eq!(read_exactly(&mut tool, 5), b"early");
        kernel.write_all(b"-live").unwrap();
        assert_eq!(read_exactly(&mut tool, 5), b"-live");
        tool.write_all(b"cmd").unwrap();
        assert_eq!(read_exactly(&mut kernel, 3), b"cmd");
        drop(kernel);
        let (total, dropped) = tee.finish(Duration::from_secs(5)).unwrap();
        assert_eq!((total, dropped), (10, 0));
        assert_eq!(std::fs::read(&raw).unwrap(), b"early-live");
        let mut rest = Vec::new();
        tool.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "the tool sees the end of the stream");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn input_is_dropped_when_replaying() {
        let qemu = TcpListener::bind("127.0.0.1:0").unwrap();
        let qemu_address = qemu.local_addr().unwrap().to_string();
        let dir = std::env::temp_dir().join(format!("vigil-tee-r-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tee = MonitorTee::start(&qemu_address, &dir.join("m"), "127.0.0.1:0", false).unwrap();
        let (mut kernel, _) = qemu.accept().unwrap();
        let mut tool = TcpStream::connect(&tee.address).unwrap();
        tool.write_all(b"ignored").unwrap();
        thread::sleep(Duration::from_millis(200));
        kernel.write_all(b"x").unwrap();
        assert_eq!(read_exactly(&mut tool, 1), b"x");
        kernel
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut buffer = [0u8; 8];
        assert!(kernel.read(&mut buffer).is_err(), "nothing reached QEMU");
        drop(kernel);
        assert_eq!(tee.finish(Duration::from_secs(5)).unwrap(), (1, 7));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn no_qemu_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("vigil-tee-n-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // A port that was free a moment ago: nothing listens there.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let tee = MonitorTee::start(&address, &dir.join("m"), "127.0.0.1:0", true).unwrap();
        assert!(tee.finish(Duration::from_millis(200)).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn tools_can_attach_on_a_unix_socket() {
        let qemu = TcpListener::bind("127.0.0.1:0").unwrap();
        let qemu_address = qemu.local_addr().unwrap().to_string();
        let dir = std::env::temp_dir().join(format!("vigil-tee-u-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("monitor.sock");
        // A socket left by an earlier run is replaced.
        drop(UnixListener::bind(&socket).unwrap());
        let listen = format!("unix:{}", socket.display());
        let tee = MonitorTee::start(&qemu_address, &dir.join("m"), &listen, true).unwrap();
        assert_eq!(tee.address, listen);
        let (mut kernel, _) = qemu.accept().unwrap();
        kernel.write_all(b"boot").unwrap();
        let mut tool = UnixStream::connect(&socket).unwrap();
        assert_eq!(read_exactly_unix(&mut tool, 4), b"boot");
        tool.write_all(b"cmd").unwrap();
        assert_eq!(read_exactly(&mut kernel, 3), b"cmd");
        drop(kernel);
        assert_eq!(tee.finish(Duration::from_secs(5)).unwrap(), (4, 0));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_regular_file_in_the_socket_path_is_refused() {
        let dir = std::env::temp_dir().join(format!("vigil-tee-f-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("not-a-socket");
        std::fs::write(&path, b"keep me").unwrap();
        let listen = format!("unix:{}", path.display());
        let error = MonitorTee::start("127.0.0.1:1", &dir.join("m"), &listen, true)
            .err()
            .expect("refused");
        assert!(error.to_string().contains("is not a socket"), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
        std::fs::remove_dir_all(&dir).ok();
    }

    fn read_exactly_unix(stream: &mut UnixStream, n: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; n];
        stream.read_exact(&mut bytes).unwrap();
        bytes
    }
}
