//! `vigil hub`: owns the kernel's monitor socket and shares the stream with any number of
//! local clients (`top`, `events`, `record`, `metrics`, … at the same time).
//!
//! QEMU serves one client per COM2 socket. The hub is that one client; every other tool
//! connects to the hub exactly as it would to QEMU (same `--connect ADDR` syntax, same bytes),
//! so nothing downstream needs to know it is there:
//!
//! - kernel → clients: the stream is cut at frame boundaries (0x00) and every frame is
//!   forwarded unchanged to every client, so a client that joins mid-stream starts on a frame
//!   boundary and damaged frames still show up in each client's own link health;
//! - answers are routed: the kernel answers host commands in order, so the hub keeps a queue
//!   of (client, expected answer) and sends each `Hello` / `CommandResult` answer only to the
//!   client that asked; an unsolicited `Hello` goes to the clients that asked for one and were
//!   not greeted yet (or to all
//!   when the kernel restarted); every client thus sees one `Hello` per session;
//! - process and service commands (`ProcessCommand`, `ProcessTreeNow`, `ServiceCommand`,
//!   `ServiceListNow`) carry a request id: the hub gives each one an id of its own, and sends
//!   the kernel's `ProcessResult` / `ProcessTree` / `ServiceList` for it to the asking client
//!   alone, with the client's id put back (so clients choose ids freely);
//! - clients → kernel: each client's bytes are decoded as host frames; a frame that does not
//!   decode is not forwarded (the kernel never sees it) and the client gets a
//!   `CommandResult { ok: false }` naming the problem; the hub keeps serving;
//! - the link: when the kernel side closes, every client is disconnected (so each sees the
//!   loss and reconnects); while there is no kernel, a client's Hello is answered with a
//!   failed `CommandResult` saying the hub is waiting.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
#[cfg(unix)]
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use vigil_wire::{
    decode_frame, encode_kernel_frame, CommandResult, DecodeError, HostFrame, HostFrameDecoder,
    KernelFrame, MAX_ENCODED_FRAME_BYTES,
};

use crate::source::{Address, Source, SourceMsg};

/// Default address the hub serves its clients on.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4560";
/// Most clients served at once; one more is told so and closed.
pub const MAX_CLIENTS: usize = 64;
/// Frames queued for one client before it counts as not reading and is disconnected.
const CLIENT_QUEUE_FRAMES: usize = 8192;
/// An answer the kernel has not given within this long is no longer expected.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(3);
/// A client gets at most one "bad frame" answer this often (the rest are counted).
const BAD_FRAME_REPLY_EVERY: Duration = Duration::from_secs(1);
/// Host frames a client may send are small; anything longer is refused.
const MAX_CLIENT_FRAME_BYTES: usize = 256;

/// A listening socket for clients: TCP or Unix.
pub enum HubListener {
    Tcp(TcpListener),
    #[cfg(unix)]
    Unix(UnixListener, std::path::PathBuf),
}

impl HubListener {
    /// Binds `address`. A Unix socket path left behind by a dead hub is replaced; one in use
    /// is refused.
    pub fn bind(address: &Address) -> Result<HubListener> {
        match address {
            Address::Tcp(text) => Ok(HubListener::Tcp(
                TcpListener::bind(text).with_context(|| format!("cannot listen on {text}"))?,
            )),
            #[cfg(unix)]
            Address::Unix(path) => {
                if path.exists() {
                    if UnixStream::connect(path).is_ok() {
                        bail!("{} is in use (another hub?)", path.display());
                    }
                    std::fs::remove_file(path).with_context(|| {
                        format!("cannot remove the stale socket {}", path.display())
                    })?;
                }
                let listener = UnixListener::bind(path)
                    .with_context(|| format!("cannot listen on unix:{}", path.display()))?;
                Ok(HubListener::Unix(listener, path.clone()))
            }
            #[cfg(not(unix))]
            Address::Unix(_) => bail!("unix sockets are not supported on this platform"),
        }
    }

    /// The address clients connect to (with the real port when bound to port 0).
    pub fn address(&self) -> String {
        match self {
            HubListener::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "?".into(), |a| a.to_string()),
            #[cfg(unix)]
            HubListener::Unix(_, path) => format!("unix:{}", path.display()),
        }
    }

    fn accept(&self) -> io::Result<(ClientStream, String)> {
        match self {
            HubListener::Tcp(l) => {
                let (stream, peer) = l.accept()?;
                stream.set_nodelay(true)?;
                Ok((ClientStream::Tcp(stream), peer.to_string()))
            }
            #[cfg(unix)]
            HubListener::Unix(l, _) => {
                let (stream, _) = l.accept()?;
                Ok((ClientStream::Unix(stream), "local".into()))
            }
        }
    }
}

impl Drop for HubListener {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let HubListener::Unix(_, path) = self {
            let _ = std::fs::remove_file(path);
        }
    }
}

enum ClientStream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(UnixStream),
}

impl ClientStream {
    fn try_clone(&self) -> io::Result<ClientStream> {
        Ok(match self {
            ClientStream::Tcp(s) => ClientStream::Tcp(s.try_clone()?),
            #[cfg(unix)]
            ClientStream::Unix(s) => ClientStream::Unix(s.try_clone()?),
        })
    }

    fn shutdown(&self) {
        let _ = match self {
            ClientStream::Tcp(s) => s.shutdown(Shutdown::Both),
            #[cfg(unix)]
            ClientStream::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            ClientStream::Tcp(s) => s.read(buf),
            #[cfg(unix)]
            ClientStream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            ClientStream::Tcp(s) => s.write(buf),
            #[cfg(unix)]
            ClientStream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            ClientStream::Tcp(s) => s.flush(),
            #[cfg(unix)]
            ClientStream::Unix(s) => s.flush(),
        }
    }
}

/// What the client threads report to the hub's loop.
enum ClientEvent {
    New {
        id: u64,
        peer: String,
        tx: Sender<Arc<[u8]>>,
    },
    Frame(u64, HostFrame),
    Bad(u64, DecodeError),
    Gone(u64),
}

struct Client {
    peer: String,
    tx: Sender<Arc<[u8]>>,
    /// Got a Hello in this kernel session.
    greeted: bool,
    /// Sent a Hello of its own: only such clients are greeted by an unsolicited one (a raw
    /// client that never asked gets the stream but no one else's Hello).
    asked_hello: bool,
    bad_frames: u64,
    last_bad_reply: Option<Instant>,
}

/// Which answer a forwarded command expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Hello,
    Result,
}

/// Totals, printed when the hub stops (and returned to tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HubStats {
    pub clients_served: u64,
    pub frames_forwarded: u64,
    pub commands_forwarded: u64,
    pub bad_client_frames: u64,
    pub kernel_connections: u64,
}

fn encode(frame: &KernelFrame) -> Arc<[u8]> {
    let mut bytes = Vec::new();
    encode_kernel_frame(frame, &mut bytes);
    bytes.into()
}

fn failure(message: String) -> Arc<[u8]> {
    encode(&KernelFrame::CommandResult(CommandResult {
        ok: false,
        message,
    }))
}

/// The routing state: clients, expected answers, frame splitting.
struct Hub {
    upstream: String,
    clients: HashMap<u64, Client>,
    pending: VecDeque<(u64, Expect, Instant)>,
    /// Process commands forwarded, by the hub's request id: (client, its request id, when).
    process_requests: HashMap<u32, (u64, u32, Instant)>,
    /// The hub's next request id for a process command.
    next_request: u32,
    kernel_up: bool,
    /// Why the kernel side is down (for the waiting message).
    kernel_error: String,
    /// Bytes of the kernel frame being received.
    partial: Vec<u8>,
    overflowing: bool,
    last_hello_ns: Option<u64>,
    /// The client whose Hello was just answered: the kernel's exit history that follows the
    /// answer is for it alone (the others have it, or get their own after their Hello).
    history_for: Option<u64>,
    stats: HubStats,
    log: Box<dyn Fn(String) + Send>,
}

impl Hub {
    fn send_to(&mut self, id: u64, bytes: Arc<[u8]>) {
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        match client.tx.try_send(bytes) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let peer = client.peer.clone();
                self.drop_client(
                    id,
                    &format!("client {id} ({peer}) is not reading; disconnected"),
                );
            }
            Err(TrySendError::Disconnected(_)) => {
                self.clients.remove(&id);
            }
        }
    }

    fn broadcast(&mut self, bytes: Arc<[u8]>, only_ungreeted: bool, greet: bool) {
        let ids: Vec<u64> = self
            .clients
            .iter()
            .filter(|(_, c)| !only_ungreeted || (c.asked_hello && !c.greeted))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if greet {
                if let Some(c) = self.clients.get_mut(&id) {
                    c.greeted = true;
                }
            }
            self.send_to(id, bytes.clone());
        }
    }

    fn drop_client(&mut self, id: u64, why: &str) {
        if self.clients.remove(&id).is_some() {
            (self.log)(why.to_string());
        }
        self.pending.retain(|(client, _, _)| *client != id);
        self.process_requests
            .retain(|_, (client, _, _)| *client != id);
    }

    fn drop_all_clients(&mut self) {
        let count = self.clients.len();
        self.clients.clear();
        self.pending.clear();
        self.process_requests.clear();
        if count > 0 {
            (self.log)(format!(
                "disconnected {count} client(s): the kernel side is gone"
            ));
        }
    }

    fn on_source(&mut self, msg: SourceMsg) {
        match msg {
            SourceMsg::Waiting { error } => {
                self.kernel_error = error.clone();
                (self.log)(format!(
                    "waiting for the kernel at {}: {error}",
                    self.upstream
                ));
            }
            SourceMsg::Connected { .. } => {
                self.stats.kernel_connections += 1;
                self.kernel_up = true;
                self.partial.clear();
                self.overflowing = false;
                self.last_hello_ns = None;
                for client in self.clients.values_mut() {
                    client.greeted = false;
                }
                (self.log)(format!("connected to the kernel at {}", self.upstream));
            }
            SourceMsg::Data { bytes, .. } => self.on_kernel_bytes(&bytes),
            SourceMsg::Disconnected { reason } => {
                self.kernel_up = false;
                self.kernel_error = reason.clone();
                (self.log)(format!(
                    "the kernel at {} went away: {reason}",
                    self.upstream
                ));
                self.drop_all_clients();
            }
            SourceMsg::End => {}
        }
    }

    fn on_kernel_bytes(&mut self, bytes: &[u8]) {
        for piece in bytes.split_inclusive(|&b| b == 0) {
            let complete = piece.last() == Some(&0);
            if !self.overflowing {
                self.partial.extend_from_slice(piece);
                if self.partial.len() > MAX_ENCODED_FRAME_BYTES + 1 {
                    // Not a frame any client could decode; skip it up to the next 0x00.
                    self.overflowing = true;
                    self.partial.clear();
                }
            }
            if complete {
                let frame = std::mem::take(&mut self.partial);
                let overflowed = std::mem::replace(&mut self.overflowing, false);
                if !overflowed && frame.len() > 1 {
                    self.on_kernel_frame(frame.into());
                }
            }
        }
    }

    fn expire_pending(&mut self) {
        self.process_requests
            .retain(|_, (_, _, at)| at.elapsed() <= ANSWER_TIMEOUT);
        while self
            .pending
            .front()
            .is_some_and(|(_, _, at)| at.elapsed() > ANSWER_TIMEOUT)
        {
            self.pending.pop_front();
        }
    }

    fn on_kernel_frame(&mut self, frame: Arc<[u8]>) {
        self.stats.frames_forwarded += 1;
        self.expire_pending();
        let decoded = decode_frame::<KernelFrame>(&frame);
        let history_for = self.history_for.take();
        match decoded {
            Ok(KernelFrame::Exit(exit)) if exit.from_history => {
                self.history_for = history_for;
                match history_for {
                    Some(id) => self.send_to(id, frame),
                    None => self.broadcast(frame, false, false),
                }
            }
            Ok(KernelFrame::Hello(hello)) => {
                let restarted = self.last_hello_ns.is_some_and(|ns| hello.now_ns < ns);
                self.last_hello_ns = Some(hello.now_ns);
                if restarted {
                    self.pending.clear();
                    self.broadcast(frame, false, true);
                } else if let Some((id, Expect::Hello, _)) = self.pending.front().copied() {
                    self.pending.pop_front();
                    if let Some(c) = self.clients.get_mut(&id) {
                        c.greeted = true;
                    }
                    self.history_for = Some(id);
                    self.send_to(id, frame);
                } else {
                    self.broadcast(frame, true, true);
                }
            }
            Ok(KernelFrame::ProcessResult(mut result)) => {
                match self.process_requests.remove(&result.request) {
                    Some((id, request, _)) => {
                        result.request = request;
                        self.send_to(id, encode(&KernelFrame::ProcessResult(result)));
                    }
                    None => self.broadcast(frame, false, false),
                }
            }
            Ok(KernelFrame::ProcessTree(mut tree)) => {
                match self.process_requests.remove(&tree.request) {
                    Some((id, request, _)) => {
                        tree.request = request;
                        self.send_to(id, encode(&KernelFrame::ProcessTree(tree)));
                    }
                    None => self.broadcast(frame, false, false),
                }
            }
            Ok(KernelFrame::ServiceList(mut list)) => {
                match self.process_requests.remove(&list.request) {
                    Some((id, request, _)) => {
                        list.request = request;
                        self.send_to(id, encode(&KernelFrame::ServiceList(list)));
                    }
                    None => self.broadcast(frame, false, false),
                }
            }
            Ok(KernelFrame::CommandResult(_)) => match self.pending.pop_front() {
                // An incompatible Hello is answered with a failed CommandResult too.
                Some((id, _, _)) => self.send_to(id, frame),
                None => self.broadcast(frame, false, false),
            },
            // Everything else (and damaged frames, which each client counts) goes to all.
            _ => self.broadcast(frame, false, false),
        }
    }

    fn on_client(&mut self, event: ClientEvent, source: &Source) {
        match event {
            ClientEvent::New { id, peer, tx } => {
                self.stats.clients_served += 1;
                if self.clients.len() >= MAX_CLIENTS {
                    let _ = tx.try_send(failure(format!(
                        "vigil hub: {MAX_CLIENTS} clients already attached; refused"
                    )));
                    (self.log)(format!(
                        "refused client {id} ({peer}): {MAX_CLIENTS} attached"
                    ));
                    return;
                }
                self.clients.insert(
                    id,
                    Client {
                        peer: peer.clone(),
                        tx,
                        greeted: false,
                        asked_hello: false,
                        bad_frames: 0,
                        last_bad_reply: None,
                    },
                );
                (self.log)(format!(
                    "client {id} ({peer}) attached ({} attached)",
                    self.clients.len()
                ));
            }
            ClientEvent::Gone(id) => {
                if let Some(client) = self.clients.remove(&id) {
                    self.pending.retain(|(c, _, _)| *c != id);
                    (self.log)(format!(
                        "client {id} ({}) left ({} attached)",
                        client.peer,
                        self.clients.len()
                    ));
                }
            }
            ClientEvent::Bad(id, error) => {
                self.stats.bad_client_frames += 1;
                let Some(client) = self.clients.get_mut(&id) else {
                    return;
                };
                client.bad_frames += 1;
                let due = client
                    .last_bad_reply
                    .is_none_or(|at| at.elapsed() >= BAD_FRAME_REPLY_EVERY);
                if due {
                    client.last_bad_reply = Some(Instant::now());
                    let count = client.bad_frames;
                    let peer = client.peer.clone();
                    (self.log)(format!(
                        "client {id} ({peer}) sent a bad frame ({error}; {count} so far); not forwarded"
                    ));
                    self.send_to(
                        id,
                        failure(format!(
                            "vigil hub: dropped a bad frame from this client ({error}); the kernel \
                             did not see it ({count} bad frame(s) so far)"
                        )),
                    );
                }
            }
            ClientEvent::Frame(id, frame) => {
                if !self.clients.contains_key(&id) {
                    return;
                }
                if !self.kernel_up {
                    let what = match frame {
                        HostFrame::Hello { .. } => "the stream starts when it is".to_string(),
                        _ => format!("command {} not sent", frame.kind_name()),
                    };
                    self.send_to(
                        id,
                        failure(format!(
                            "vigil hub: not connected to the kernel at {} ({}); {what}",
                            self.upstream, self.kernel_error
                        )),
                    );
                    return;
                }
                if let Some(client_request) = process_request(&frame) {
                    let request = self.hub_request_id();
                    let frame = with_request(frame, request);
                    if source.send(frame) {
                        self.stats.commands_forwarded += 1;
                        self.process_requests
                            .insert(request, (id, client_request, Instant::now()));
                    }
                    return;
                }
                let expect = match frame {
                    HostFrame::Hello { .. } => {
                        if let Some(client) = self.clients.get_mut(&id) {
                            client.asked_hello = true;
                        }
                        Expect::Hello
                    }
                    _ => Expect::Result,
                };
                if source.send(frame) {
                    self.stats.commands_forwarded += 1;
                    self.pending.push_back((id, expect, Instant::now()));
                }
            }
        }
    }
}

impl Hub {
    /// A request id no forwarded process command uses.
    fn hub_request_id(&mut self) -> u32 {
        loop {
            let id = self.next_request;
            self.next_request = self.next_request.wrapping_add(1);
            if !self.process_requests.contains_key(&id) {
                return id;
            }
        }
    }
}

/// The client's request id of a process command, None for other frames.
fn process_request(frame: &HostFrame) -> Option<u32> {
    match frame {
        HostFrame::ProcessCommand(command) => Some(command.request),
        HostFrame::ProcessTreeNow { request } => Some(*request),
        HostFrame::ServiceCommand(command) => Some(command.request),
        HostFrame::ServiceListNow { request } => Some(*request),
        HostFrame::ServiceUpdate(update) => Some(update.request),
        _ => None,
    }
}

/// `frame` (a process command) with request id `request`.
fn with_request(frame: HostFrame, request: u32) -> HostFrame {
    match frame {
        HostFrame::ProcessCommand(command) => {
            HostFrame::ProcessCommand(vigil_wire::ProcessCommand { request, ..command })
        }
        HostFrame::ProcessTreeNow { .. } => HostFrame::ProcessTreeNow { request },
        HostFrame::ServiceCommand(command) => {
            HostFrame::ServiceCommand(vigil_wire::ServiceCommand { request, ..command })
        }
        HostFrame::ServiceListNow { .. } => HostFrame::ServiceListNow { request },
        HostFrame::ServiceUpdate(update) => {
            HostFrame::ServiceUpdate(vigil_wire::ServiceUpdate { request, ..update })
        }
        other => other,
    }
}

/// Reads one client's host frames until it closes.
fn client_reader(id: u64, mut stream: ClientStream, events: Sender<ClientEvent>) {
    let mut decoder = HostFrameDecoder::with_max_frame_bytes(MAX_CLIENT_FRAME_BYTES);
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let mut out = Vec::new();
                decoder.push(&buf[..n], |result| out.push(result));
                for result in out {
                    let event = match result {
                        Ok(frame) => ClientEvent::Frame(id, frame),
                        Err(error) => ClientEvent::Bad(id, error),
                    };
                    if events.send(event).is_err() {
                        return;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let _ = events.send(ClientEvent::Gone(id));
}

/// Writes what the hub queues for one client; closes the socket when the hub lets go.
fn client_writer(mut stream: ClientStream, frames: Receiver<Arc<[u8]>>) {
    for bytes in frames.iter() {
        if stream.write_all(&bytes).is_err() {
            break;
        }
    }
    stream.shutdown();
}

fn accept_loop(listener: Arc<HubListener>, events: Sender<ClientEvent>, stop: Arc<AtomicBool>) {
    let mut next_id = 1u64;
    while !stop.load(Ordering::Relaxed) {
        let (stream, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(_) => {
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let id = next_id;
        next_id += 1;
        let Ok(reader) = stream.try_clone() else {
            continue;
        };
        let (tx, rx) = crossbeam_channel::bounded(CLIENT_QUEUE_FRAMES);
        if events.send(ClientEvent::New { id, peer, tx }).is_err() {
            break;
        }
        let events = events.clone();
        thread::spawn(move || client_writer(stream, rx));
        thread::spawn(move || client_reader(id, reader, events));
    }
}

/// Runs a hub: `upstream` is the kernel's socket, clients attach to `listener`. Returns when
/// `stop` is set (or `duration` passes), with the totals. `log` gets one line per happening.
pub fn serve(
    upstream: Address,
    listener: HubListener,
    duration: Option<Duration>,
    stop: Arc<AtomicBool>,
    log: Box<dyn Fn(String) + Send>,
) -> Result<HubStats> {
    let listener = Arc::new(listener);
    let listen_address = listener.address();
    let source = Source::connect(upstream.clone());
    let (events_tx, events_rx) = crossbeam_channel::unbounded();
    {
        let listener = listener.clone();
        let stop = stop.clone();
        thread::Builder::new()
            .name("vigil-hub-accept".into())
            .spawn(move || accept_loop(listener, events_tx, stop))?;
    }
    log(format!(
        "serving the kernel at {upstream} to clients on {listen_address} (connect with --connect {listen_address})"
    ));
    let mut hub = Hub {
        upstream: upstream.to_string(),
        clients: HashMap::new(),
        pending: VecDeque::new(),
        process_requests: HashMap::new(),
        next_request: 1,
        kernel_up: false,
        kernel_error: "not connected yet".into(),
        partial: Vec::new(),
        overflowing: false,
        last_hello_ns: None,
        history_for: None,
        stats: HubStats::default(),
        log,
    };
    let deadline = duration.map(|d| Instant::now() + d);
    while !stop.load(Ordering::Relaxed) && deadline.is_none_or(|d| Instant::now() < d) {
        crossbeam_channel::select! {
            recv(source.rx) -> msg => match msg {
                Ok(msg) => hub.on_source(msg),
                Err(_) => break,
            },
            recv(events_rx) -> event => match event {
                Ok(event) => hub.on_client(event, &source),
                Err(_) => break,
            },
            default(Duration::from_millis(100)) => hub.expire_pending(),
        }
    }
    stop.store(true, Ordering::Relaxed);
    // Wake the accept loop so it sees `stop`.
    if let Ok(address) = Address::parse(&listen_address) {
        match address {
            Address::Tcp(text) => drop(TcpStream::connect(text)),
            #[cfg(unix)]
            Address::Unix(path) => drop(UnixStream::connect(path)),
            #[cfg(not(unix))]
            Address::Unix(_) => {}
        }
    }
    hub.clients.clear();
    Ok(hub.stats)
}

/// `vigil hub`: serves until interrupted or `duration`.
pub fn run(
    upstream: Address,
    listen: Address,
    duration: Option<Duration>,
    quiet: bool,
) -> Result<()> {
    if upstream == listen {
        bail!("--listen {listen} is the kernel's own socket; pick another address");
    }
    let listener = HubListener::bind(&listen)?;
    let log: Box<dyn Fn(String) + Send> = if quiet {
        Box::new(|_| {})
    } else {
        Box::new(|line| eprintln!("vigil hub: {line}"))
    };
    let stats = serve(
        upstream,
        listener,
        duration,
        Arc::new(AtomicBool::new(false)),
        log,
    )?;
    if !quiet {
        eprintln!(
            "vigil hub: {} client(s) served, {} frames forwarded, {} commands forwarded, {} bad client frames refused, {} kernel connection(s)",
            stats.clients_served,
            stats.frames_forwarded,
            stats.commands_forwarded,
            stats.bad_client_frames,
            stats.kernel_connections
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> Hub {
        Hub {
            upstream: "k".into(),
            clients: HashMap::new(),
            pending: VecDeque::new(),
            process_requests: HashMap::new(),
            next_request: 1,
            kernel_up: true,
            kernel_error: String::new(),
            partial: Vec::new(),
            overflowing: false,
            last_hello_ns: None,
            history_for: None,
            stats: HubStats::default(),
            log: Box::new(|_| {}),
        }
    }

    fn add_client(hub: &mut Hub, id: u64) -> Receiver<Arc<[u8]>> {
        let (tx, rx) = crossbeam_channel::unbounded();
        hub.clients.insert(
            id,
            Client {
                peer: format!("c{id}"),
                tx,
                greeted: false,
                asked_hello: true,
                bad_frames: 0,
                last_bad_reply: None,
            },
        );
        rx
    }

    fn hello(now_ns: u64) -> Vec<u8> {
        let mut bytes = Vec::new();
        encode_kernel_frame(
            &KernelFrame::Hello(vigil_wire::Hello {
                protocol_version: 1,
                kernel_version: "t".into(),
                tsc_hz: 1,
                now_ns,
                event_mask: 0,
                snapshot_period_ms: 100,
            }),
            &mut bytes,
        );
        bytes
    }

    fn frames(rx: &Receiver<Arc<[u8]>>) -> Vec<KernelFrame> {
        rx.try_iter()
            .map(|bytes| decode_frame::<KernelFrame>(&bytes).expect("whole frames"))
            .collect()
    }

    #[test]
    fn an_unsolicited_hello_greets_only_clients_that_asked_for_one() {
        let mut hub = hub();
        let asked = add_client(&mut hub, 1);
        let raw = add_client(&mut hub, 2);
        hub.clients.get_mut(&2).unwrap().asked_hello = false;
        // No Hello is pending (say the client's own answer timed out): the kernel's Hello
        // goes to the client that asked, not to the raw one, which still gets the stream.
        hub.on_kernel_bytes(&hello(10));
        let mut drops = Vec::new();
        encode_kernel_frame(
            &KernelFrame::Drops(vigil_wire::DropReport::default()),
            &mut drops,
        );
        hub.on_kernel_bytes(&drops);
        assert!(matches!(
            frames(&asked).as_slice(),
            [KernelFrame::Hello(_), KernelFrame::Drops(_)]
        ));
        assert!(matches!(frames(&raw).as_slice(), [KernelFrame::Drops(_)]));
    }

    #[test]
    fn frames_are_cut_at_boundaries_whatever_the_chunking() {
        let mut hub = hub();
        let a = add_client(&mut hub, 1);
        hub.clients.get_mut(&1).unwrap().greeted = true;
        let mut stream = Vec::new();
        encode_kernel_frame(
            &KernelFrame::Drops(vigil_wire::DropReport::default()),
            &mut stream,
        );
        stream.extend(hello(5));
        // Byte by byte: still two whole frames, the Hello not re-sent to a greeted client.
        for byte in &stream {
            hub.on_kernel_bytes(std::slice::from_ref(byte));
        }
        let got = frames(&a);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(matches!(got[0], KernelFrame::Drops(_)));
    }

    #[test]
    fn the_history_after_a_hello_answer_goes_to_that_client_alone() {
        let mut hub = hub();
        let a = add_client(&mut hub, 1);
        let b = add_client(&mut hub, 2);
        hub.on_kernel_bytes(&hello(10));
        assert_eq!(frames(&a).len(), 1);
        assert_eq!(frames(&b).len(), 1);
        let exit = |from_history| {
            let mut bytes = Vec::new();
            encode_kernel_frame(
                &KernelFrame::Exit(vigil_wire::ProcessExit {
                    pid: 3,
                    name: "crasher".into(),
                    status: 142,
                    timestamp_ns: 5,
                    crash: None,
                    from_history,
                }),
                &mut bytes,
            );
            bytes
        };
        let mut drops = Vec::new();
        encode_kernel_frame(
            &KernelFrame::Drops(vigil_wire::DropReport::default()),
            &mut drops,
        );
        // Client 2 says Hello: its answer and the history after it are its own; the next
        // frame and a live exit go to everyone.
        hub.pending.push_back((2, Expect::Hello, Instant::now()));
        hub.on_kernel_bytes(&hello(20));
        hub.on_kernel_bytes(&exit(true));
        hub.on_kernel_bytes(&exit(true));
        hub.on_kernel_bytes(&drops);
        hub.on_kernel_bytes(&exit(true));
        hub.on_kernel_bytes(&exit(false));
        let (a, b) = (frames(&a), frames(&b));
        assert_eq!(a.len(), 3, "{a:?}");
        assert!(matches!(a[0], KernelFrame::Drops(_)));
        assert_eq!(b.len(), 6, "{b:?}");
        assert!(matches!(b[0], KernelFrame::Hello(_)));
    }

    #[test]
    fn process_answers_go_to_the_asking_client_with_its_own_id() {
        let mut hub = hub();
        let a = add_client(&mut hub, 1);
        let b = add_client(&mut hub, 2);
        // Both clients chose request id 7; the hub forwarded them as its ids 1 and 2.
        let first = hub.hub_request_id();
        let second = hub.hub_request_id();
        assert_ne!(first, second);
        hub.process_requests.insert(first, (1, 7, Instant::now()));
        hub.process_requests.insert(second, (2, 7, Instant::now()));
        assert_eq!(
            with_request(
                HostFrame::ProcessCommand(vigil_wire::ProcessCommand {
                    request: 7,
                    action: vigil_wire::ProcessAction::Kill,
                    pid: 4,
                }),
                first
            ),
            HostFrame::ProcessCommand(vigil_wire::ProcessCommand {
                request: first,
                action: vigil_wire::ProcessAction::Kill,
                pid: 4,
            })
        );
        assert_eq!(
            process_request(&HostFrame::ProcessTreeNow { request: 9 }),
            Some(9)
        );
        assert_eq!(process_request(&HostFrame::SnapshotNow), None);
        let mut bytes = Vec::new();
        encode_kernel_frame(
            &KernelFrame::ProcessTree(vigil_wire::ProcessTree {
                request: second,
                ..Default::default()
            }),
            &mut bytes,
        );
        encode_kernel_frame(
            &KernelFrame::ProcessResult(vigil_wire::ProcessResult {
                request: first,
                outcome: 0,
                message: "killed".into(),
            }),
            &mut bytes,
        );
        hub.on_kernel_bytes(&bytes);
        let (got_a, got_b) = (frames(&a), frames(&b));
        assert!(
            matches!(got_a.as_slice(), [KernelFrame::ProcessResult(r)] if r.request == 7 && r.message == "killed"),
            "{got_a:?}"
        );
        assert!(
            matches!(got_b.as_slice(), [KernelFrame::ProcessTree(t)] if t.request == 7),
            "{got_b:?}"
        );
        assert!(hub.process_requests.is_empty());
        // Service commands and lists are mapped the same way.
        assert_eq!(
            with_request(
                HostFrame::ServiceCommand(vigil_wire::ServiceCommand {
                    request: 7,
                    action: vigil_wire::ServiceAction::Hold,
                    service: 1,
                }),
                first
            ),
            HostFrame::ServiceCommand(vigil_wire::ServiceCommand {
                request: first,
                action: vigil_wire::ServiceAction::Hold,
                service: 1,
            })
        );
        assert_eq!(
            process_request(&HostFrame::ServiceListNow { request: 5 }),
            Some(5)
        );
        let third = hub.hub_request_id();
        hub.process_requests.insert(third, (2, 8, Instant::now()));
        let mut list = Vec::new();
        encode_kernel_frame(
            &KernelFrame::ServiceList(vigil_wire::ServiceList {
                request: third,
                ..Default::default()
            }),
            &mut list,
        );
        hub.on_kernel_bytes(&list);
        let got_b = frames(&b);
        assert!(
            matches!(got_b.as_slice(), [KernelFrame::ServiceList(l)] if l.request == 8),
            "{got_b:?}"
        );
        assert!(frames(&a).is_empty(), "the list went to its client only");
        assert!(hub.process_requests.is_empty());
        // An answer nobody waits for (expired) goes to everyone, unchanged.
        let mut late = Vec::new();
        encode_kernel_frame(
            &KernelFrame::ProcessResult(vigil_wire::ProcessResult {
                request: 99,
                outcome: 8,
                message: String::new(),
            }),
            &mut late,
        );
        let a = add_client(&mut hub, 3);
        hub.on_kernel_bytes(&late);
        assert!(
            matches!(frames(&a).as_slice(), [KernelFrame::ProcessResult(r)] if r.request == 99)
        );
    }

    #[test]
    fn answers_go_to_whoever_asked() {
        let mut hub = hub();
        let a = add_client(&mut hub, 1);
        let b = add_client(&mut hub, 2);
        // The hub's own Hello answer greets both.
        hub.on_kernel_bytes(&hello(10));
        assert_eq!(frames(&a).len(), 1);
        assert_eq!(frames(&b).len(), 1);
        // Client 2 says Hello again and client 1 sends a command: each gets its own answer.
        hub.pending.push_back((2, Expect::Hello, Instant::now()));
        hub.pending.push_back((1, Expect::Result, Instant::now()));
        hub.on_kernel_bytes(&hello(20));
        let mut result = Vec::new();
        encode_kernel_frame(
            &KernelFrame::CommandResult(CommandResult {
                ok: true,
                message: "mask".into(),
            }),
            &mut result,
        );
        hub.on_kernel_bytes(&result);
        let (a, b) = (frames(&a), frames(&b));
        assert!(
            matches!(a.as_slice(), [KernelFrame::CommandResult(_)]),
            "{a:?}"
        );
        assert!(matches!(b.as_slice(), [KernelFrame::Hello(_)]), "{b:?}");
    }

    #[test]
    fn a_restarted_kernel_greets_everyone() {
        let mut hub = hub();
        let a = add_client(&mut hub, 1);
        hub.on_kernel_bytes(&hello(1_000));
        hub.on_kernel_bytes(&hello(2_000));
        assert_eq!(
            frames(&a).len(),
            1,
            "a repeated Hello reaches a client once"
        );
        hub.on_kernel_bytes(&hello(5));
        assert_eq!(
            frames(&a).len(),
            1,
            "time went backwards: a new boot is announced"
        );
    }

    #[test]
    fn an_oversized_run_is_skipped_and_the_next_frame_passes() {
        let mut hub = hub();
        let a = add_client(&mut hub, 1);
        hub.on_kernel_bytes(&vec![7u8; MAX_ENCODED_FRAME_BYTES + 10]);
        hub.on_kernel_bytes(&[7, 0]);
        hub.on_kernel_bytes(&hello(1));
        let got = frames(&a);
        assert!(matches!(got.as_slice(), [KernelFrame::Hello(_)]), "{got:?}");
        assert_eq!(hub.stats.frames_forwarded, 1);
    }
}
