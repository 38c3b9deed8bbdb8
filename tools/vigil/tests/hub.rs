//! The hub against a fake kernel that answers commands: three `vigil events` clients at once
//! each get the whole stream and exactly one Hello, a client's command answer goes to it
//! alone, a client sending garbage is refused with a clear answer while the others carry on,
//! and a second direct client of a single-connection socket says it gets nothing.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{hello, json_lines, snapshot, vigil};
use vigil_wire::{
    decode_frame, encode_host_frame, encode_kernel_frame, CommandResult, HostFrame,
    HostFrameDecoder, KernelFrame,
};

/// A kernel that serves one connection at a time (like QEMU): answers Hello with Hello and
/// every other command with a CommandResult naming it, and sends a snapshot every 50 ms.
struct AnsweringKernel {
    address: String,
    commands: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl AnsweringKernel {
    fn start() -> AnsweringKernel {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let commands = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (commands, stop) = (commands.clone(), stop.clone());
            thread::spawn(move || {
                // One connection at a time: the next is accepted only when this one ends.
                while let Ok((stream, _)) = listener.accept() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    serve(stream, &commands, &stop);
                }
            });
        }
        AnsweringKernel {
            address,
            commands,
            stop,
        }
    }
}

impl Drop for AnsweringKernel {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.address);
    }
}

fn serve(mut stream: TcpStream, commands: &AtomicUsize, stop: &AtomicBool) {
    stream
        .set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let mut decoder = HostFrameDecoder::new();
    let mut buf = [0u8; 512];
    let mut next_snapshot = Instant::now();
    let mut n = 1;
    while !stop.load(Ordering::Relaxed) {
        let mut out = Vec::new();
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(len) => decoder.push(&buf[..len], |frame| {
                let Ok(frame) = frame else { return };
                commands.fetch_add(1, Ordering::Relaxed);
                let answer = match frame {
                    HostFrame::Hello { .. } => hello(),
                    other => KernelFrame::CommandResult(CommandResult {
                        ok: true,
                        message: format!("did {}", other.kind_name()),
                    }),
                };
                encode_kernel_frame(&answer, &mut out);
            }),
            Err(_) => {}
        }
        if Instant::now() >= next_snapshot {
            encode_kernel_frame(&snapshot(n), &mut out);
            n += 1;
            next_snapshot += Duration::from_millis(50);
        }
        if stream.write_all(&out).is_err() {
            return;
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections at `address`.
fn wait_listening(address: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(address).is_err() {
        assert!(Instant::now() < until, "nothing listens on {address}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn kernel_frames(bytes: &[u8]) -> Vec<KernelFrame> {
    bytes
        .split_inclusive(|&b| b == 0)
        .filter(|frame| frame.len() > 1)
        .filter_map(|frame| decode_frame::<KernelFrame>(frame).ok())
        .collect()
}

#[test]
fn three_clients_share_one_kernel_and_bad_input_is_refused() {
    let kernel = AnsweringKernel::start();
    let hub_address = format!("127.0.0.1:{}", free_port());
    let mut hub = vigil()
        .args([
            "hub",
            "--connect",
            &kernel.address,
            "--listen",
            &hub_address,
            "--duration",
            "12s",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(&hub_address);
    let hub_log = HubLog::collect(&mut hub);
    // The raw client's valid command is answered only once the hub holds the kernel's
    // connection (before that it is refused with "not connected", rightly): the hub can
    // listen before the kernel has accepted it, which on a loaded machine it often does.
    hub_log.wait_for("connected to the kernel at");

    let clients: Vec<_> = (0..3)
        .map(|_| {
            vigil()
                .args([
                    "events",
                    "--connect",
                    &hub_address,
                    "--json",
                    "--duration",
                    "3s",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();

    // Meanwhile a raw client: garbage, then a valid command.
    let mut raw = TcpStream::connect(&hub_address).unwrap();
    raw.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    raw.write_all(&[0x00, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00])
        .unwrap();
    let mut command = Vec::new();
    encode_host_frame(&HostFrame::SnapshotNow, &mut command);
    raw.write_all(&command).unwrap();
    let mut received = Vec::new();
    let until = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 4096];
    while Instant::now() < until {
        if let Ok(n) = raw.read(&mut buf) {
            received.extend_from_slice(&buf[..n]);
        }
    }
    let frames = kernel_frames(&received);
    let results: Vec<&CommandResult> = frames
        .iter()
        .filter_map(|f| match f {
            KernelFrame::CommandResult(r) => Some(r),
            _ => None,
        })
        .collect();
    assert!(
        results
            .iter()
            .any(|r| !r.ok && r.message.contains("bad frame") && r.message.contains("hub")),
        "the garbage was answered: {results:?}"
    );
    assert!(
        results
            .iter()
            .any(|r| r.ok && r.message == "did snapshot-now"),
        "the valid command after the garbage reached the kernel and its answer came back: {results:?}"
    );
    assert!(
        frames.iter().any(|f| matches!(f, KernelFrame::Snapshot(_))),
        "the raw client gets the stream too"
    );
    assert!(
        !frames.iter().any(|f| matches!(f, KernelFrame::Hello(_))),
        "a client that never said Hello while the kernel was up gets no other client's Hello"
    );

    for client in clients {
        let output = client.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert!(stderr.contains("connected to"), "{stderr}");
        let lines = json_lines(&output.stdout);
        let of = |kind: &str| lines.iter().filter(|l| l["type"] == kind).count();
        assert_eq!(of("hello"), 1, "exactly one hello per client: {lines:?}");
        assert!(
            of("snapshot") >= 20,
            "snapshots every 50 ms for 3 s: {}",
            of("snapshot")
        );
        assert!(
            lines
                .iter()
                .all(|l| l["type"] != "command_result" || l["ok"] == true),
            "no client saw the raw client's refusal: {lines:?}"
        );
    }

    // The kernel saw the hub's Hello, the clients' Hellos and SnapshotNow, never the garbage.
    assert!(kernel.commands.load(Ordering::Relaxed) >= 5);
    hub.kill().unwrap();
    hub.wait().unwrap();
    let stderr = hub_log.finish();
    assert!(stderr.contains("sent a bad frame"), "{stderr}");
}

/// A child's stderr, read as it comes (the hub logs each step there), so a test can wait
/// for a line and still check the whole log at the end.
struct HubLog {
    text: Arc<Mutex<String>>,
    reader: thread::JoinHandle<()>,
}

impl HubLog {
    /// Takes `child`'s piped stderr.
    fn collect(child: &mut Child) -> HubLog {
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let text = Arc::new(Mutex::new(String::new()));
        let reader = {
            let text = text.clone();
            thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = stderr.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    text.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            })
        };
        HubLog { text, reader }
    }

    /// Waits (up to 10 s) until the log contains `needle`.
    fn wait_for(&self, needle: &str) {
        let until = Instant::now() + Duration::from_secs(10);
        while !self.text.lock().unwrap().contains(needle) {
            assert!(
                Instant::now() < until,
                "no {needle:?} in the hub's log: {}",
                self.text.lock().unwrap()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The whole log, once the child has exited.
    fn finish(self) -> String {
        self.reader.join().unwrap();
        let text = self.text.lock().unwrap();
        text.clone()
    }
}

#[test]
fn a_second_direct_client_says_it_gets_nothing() {
    let kernel = AnsweringKernel::start();
    // The first client holds the kernel's only connection...
    let first = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["events", "--connect", &kernel.address, "--duration", "6s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(500));
    // ...so the second is accepted by the backlog only, and must not claim "connected".
    let second = vigil()
        .args([
            "events",
            "--connect",
            &kernel.address,
            "--duration",
            "3500ms",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!stderr.contains("connected to"), "{stderr}");
    assert!(stderr.contains("no data arrived"), "{stderr}");
    assert!(stderr.contains("vigil hub"), "{stderr}");
    let mut first = first;
    first.kill().ok();
    first.wait().ok();
}

#[test]
fn the_hub_refuses_its_own_kernel_address_as_listen_address() {
    let output = vigil()
        .args([
            "hub",
            "--connect",
            "127.0.0.1:4999",
            "--listen",
            "127.0.0.1:4999",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("the kernel's own socket"));
}
