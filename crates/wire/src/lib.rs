//! The Vigil monitor protocol: typed frames between the kernel (on COM2) and host tools.
//!
//! Every frame is `postcard(frame) ‖ crc32(postcard bytes, little-endian)`, COBS-encoded and
//! terminated by a 0x00 byte. A decoder that sees garbage resynchronises at the next 0x00,
//! losing at most the damaged frame. `docs/protocol.md` specifies the bytes.
//!
//! # Compatibility rules (the contract every change to this file must keep)
//!
//! * postcard lays out struct fields in declaration order with no names or tags: fields are
//!   never reordered, removed or retyped without bumping [`PROTOCOL_VERSION`].
//! * postcard encodes an enum variant as its index (declaration order): new variants of
//!   [`KernelFrame`], [`HostFrame`] and [`CrashKind`] are only ever *appended*. An older
//!   decoder then reports [`DecodeError::Malformed`] for the newer frame kind and carries on
//!   with the next frame, because framing and checksum do not depend on the frame's type.
//! * A decoder ignores bytes after the end of the frame value (before the checksum); senders
//!   of this version never put any there.
//!
//! # Use
//!
//! Kernel side: [`encode_kernel_frame`] appends a frame to a transmit buffer; a
//! [`HostFrameDecoder`] turns bytes received on COM2 into [`HostFrame`]s. Host side:
//! [`KernelFrameDecoder`] and [`encode_host_frame`].
//!
//! ```
//! use vigil_wire::{encode_kernel_frame, DropReport, KernelFrame, KernelFrameDecoder};
//!
//! let mut wire = Vec::new();
//! encode_kernel_frame(&KernelFrame::Drops(DropReport::default()), &mut wire);
//! assert_eq!(wire.last(), Some(&0x00));
//!
//! let mut decoder = KernelFrameDecoder::new();
//! let mut frames = Vec::new();
//! for chunk in wire.chunks(3) {
//!     decoder.push(chunk, |frame| frames.push(frame));
//! }
//! assert_eq!(frames, [Ok(KernelFrame::Drops(DropReport::default()))]);
//! assert_eq!(decoder.stats().frames, 1);
//! ```
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

mod codec;
mod convert;

pub use codec::{
    decode_frame, encode_frame, encode_host_frame, encode_kernel_frame, encode_payload,
    try_encode_host_frame, try_encode_kernel_frame, try_encode_kernel_frame_reporting, DecodeError,
    DecoderStats, EncodeError, FrameDecoder, HostFrameDecoder, KernelFrameDecoder,
    MAX_ENCODED_FRAME_BYTES, PROGRESS_BYTES,
};

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};
pub use vigil_abi::introspect::ThreadCounters;

/// Protocol version spoken by this crate. A peer with another major version is refused.
///
/// For now the whole value is the major version: two peers interoperate only if they speak
/// exactly the same version (see [`compatible`]). Any incompatible change to a frame's layout
/// bumps it; appending a new frame kind (variant) does not need to, because older decoders
/// skip frames they cannot decode.
pub const PROTOCOL_VERSION: u16 = 3;

/// Whether a peer announcing `peer_version` (in [`Hello::protocol_version`] or
/// [`HostFrame::Hello`]) can talk to this crate: same major version, which for now means the
/// same value as [`PROTOCOL_VERSION`].
pub const fn compatible(peer_version: u16) -> bool {
    peer_version == PROTOCOL_VERSION
}

/// Largest encoded frame (before COBS: postcard bytes plus the 4-byte checksum) a decoder
/// accepts; bigger ones are dropped and counted as [`DecodeError::Oversized`]. The encoders
/// refuse to produce them.
pub const MAX_FRAME_BYTES: usize = 256 * 1024;

/// First frame the kernel sends (and re-sends when a host says Hello).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u16,
    pub kernel_version: String,
    pub tsc_hz: u64,
    /// Kernel time when the frame was sent.
    pub now_ns: u64,
    pub event_mask: u64,
    pub snapshot_period_ms: u32,
}

/// A trace event (see `vigil_abi::trace`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    pub timestamp_ns: u64,
    pub kind: u16,
    pub thread: u64,
    pub args: [u64; 3],
}

/// One thread in a snapshot (fields as in `vigil_abi::introspect::ThreadRecord`).
///
/// `counters` is the ABI's own [`ThreadCounters`] struct; postcard encodes it as its fields in
/// declaration order, so on the wire they follow `wait_argument` exactly as separate fields
/// would (docs/protocol.md lists them flat).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ThreadInfo {
    pub endpoint: u64,
    pub pid: u32,
    pub state: u8,
    pub priority: u8,
    pub wait_target: u64,
    pub wait_argument: u64,
    pub counters: ThreadCounters,
}

/// One process in a snapshot (fields as in `vigil_abi::introspect::ProcessRecord`; the
/// five after `cpu_ns` are new in protocol version 2, `stopped_by` in version 3).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProcessInfo {
    pub pid: u32,
    pub name: String,
    pub threads: u32,
    pub main_thread: u64,
    /// Resident user pages (4 KiB each).
    pub memory_pages: u64,
    pub priority: u8,
    pub grants: u32,
    pub cpu_ns: u64,
    /// The most pages ever resident at once.
    pub peak_pages: u64,
    /// Virtual size in bytes (the image plus the regions VM placed).
    pub virtual_bytes: u64,
    /// Of the resident pages, those shared with other processes.
    pub shared_pages: u64,
    /// Page faults forwarded to VM on a page that was not present.
    pub faults_not_present: u64,
    /// Page faults forwarded to VM on a present page (protection).
    pub faults_protection: u64,
    /// The pid that stopped the process (`PmStop`: SIGSTOP, a tracer's attach, a host
    /// "stop"), 0 while it may run. New in protocol version 3.
    pub stopped_by: u32,
}

impl ProcessInfo {
    /// Every page fault forwarded to VM.
    pub fn page_faults(&self) -> u64 {
        self.faults_not_present
            .saturating_add(self.faults_protection)
    }
}

/// A consistent snapshot of every thread and process.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub generation: u64,
    pub timestamp_ns: u64,
    pub idle_ns: u64,
    pub threads: Vec<ThreadInfo>,
    pub processes: Vec<ProcessInfo>,
}

/// Loss counters, cumulative since boot: loss is always reported, never silent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DropReport {
    /// Trace events overwritten before they could be sent.
    pub events_dropped: u64,
    /// Whole frames not sent because the transmit buffer was full.
    pub frames_dropped: u64,
    /// Host frames the kernel could not decode or refused.
    pub malformed_commands: u64,
}

/// A kernel log line (see `vigil_abi::log::LogLevel`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub seq: u64,
    pub timestamp_ns: u64,
    pub level: u8,
    pub text: String,
}

/// What crashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CrashKind {
    /// Index 0: a kernel `panic!`.
    KernelPanic,
    /// Index 1: a CPU exception in kernel mode.
    KernelFault,
    /// Index 2: a user thread faulted; its process was killed.
    UserFault,
    /// Index 3: the NMI watchdog found the kernel locked up (no timer tick across its NMIs);
    /// the backtrace starts at the interrupted instruction, and `process` names the process
    /// whose thread was current, if any.
    KernelLockup,
    /// Index 4: a user program panicked (its runtime's panic handler made the `Panic` system
    /// call); the process ended with status 101. `message` is the panic message, the
    /// backtrace starts at the panic handler's call into the kernel.
    UserPanic,
}

/// A panic or fault report; `backtrace` holds raw addresses (frame 0 = faulting pc when
/// known) for the host to symbolise.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrashReport {
    pub kind: CrashKind,
    pub timestamp_ns: u64,
    /// Process name and pid for a user fault.
    pub process: Option<(String, u32)>,
    pub message: String,
    pub backtrace: Vec<u64>,
}

/// The end of a process, as the kernel keeps it in its exit history (the last
/// `EXIT_HISTORY` ends): sent when the process ends, and again to every client that starts
/// a session (`Hello`), so a client that attaches later sees what exited and crashed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessExit {
    pub pid: u32,
    pub name: String,
    /// The exit status: the process's own, 101 after a panic, 128 + vector after a CPU
    /// exception.
    pub status: u64,
    /// Kernel time of the end.
    pub timestamp_ns: u64,
    /// The crash report (the same as the `Crash` frame sent then), if the process ended by
    /// a fault or a panic.
    pub crash: Option<CrashReport>,
    /// False when sent as the process ended; true when sent from the history after a Hello.
    pub from_history: bool,
}

/// Physical memory as the kernel's frame allocator sees it, sent just before each snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MemoryReport {
    /// Kernel time (the snapshot's that follows).
    pub timestamp_ns: u64,
    /// Frames the allocator manages, free or not.
    pub total_frames: u64,
    /// Frames free now.
    pub free_frames: u64,
    /// Bytes per frame (4096).
    pub frame_bytes: u32,
}

/// Process ends the kernel keeps for clients that attach later.
pub const EXIT_HISTORY: usize = 16;

/// The kernel's answer to a host command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    pub ok: bool,
    pub message: String,
}

/// What a host asks PM to do to a process (`HostFrame::ProcessCommand`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProcessAction {
    /// Index 0: stop it (until continued).
    Stop,
    /// Index 1: let it run again.
    Continue,
    /// Index 2: end it (exit status `vigil_abi::host_command::HOST_KILL_STATUS`, 137).
    Kill,
}

impl ProcessAction {
    pub const fn label(self) -> &'static str {
        match self {
            ProcessAction::Stop => "stop",
            ProcessAction::Continue => "continue",
            ProcessAction::Kill => "kill",
        }
    }
}

/// A host command for a process, forwarded by the kernel to the process manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessCommand {
    /// Chosen by the host; the answer ([`ProcessResult`]) carries it back.
    pub request: u32,
    pub action: ProcessAction,
    pub pid: u32,
}

/// The answer to a `ProcessCommand`, `ServiceCommand`, `ProcessTreeNow` or `ServiceListNow`
/// (for the last two only when they failed: a tree or list that could be read comes as a
/// [`ProcessTree`] or [`ServiceList`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessResult {
    pub request: u32,
    /// `vigil_abi::host_command::Outcome` code: 0 ok, 1 no such process (or service), 2
    /// refused, 3 not supported, 4 failed, 5 invalid, 6 no process manager, 7 busy, 8 timed
    /// out, 9 no reincarnation server; a code this crate does not know is shown by number.
    pub outcome: u8,
    /// PM's (or, for codes 6–8, the kernel's) explanation.
    pub message: String,
}

impl ProcessResult {
    /// The outcome's name ("ok", "refused", …), or None for an unknown code.
    pub fn outcome_name(&self) -> Option<&'static str> {
        vigil_abi::host_command::Outcome::from_code(u64::from(self.outcome))
            .map(vigil_abi::host_command::Outcome::name)
    }

    pub fn ok(&self) -> bool {
        self.outcome == vigil_abi::host_command::Outcome::Ok as u8
    }
}

/// One process of PM's tree (INTROSPECT topic 5's `ProcessTreeRecord`).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProcessTreeEntry {
    pub pid: u32,
    /// The parent's pid (PM's own once reparented).
    pub parent: u32,
    /// 1 running, 2 exited and not yet waited for.
    pub state: u32,
    /// The exit status when `state` is 2.
    pub exit_status: u64,
    /// When PM started it (kernel time).
    pub start_ns: u64,
    /// Its name (at most 32 bytes).
    pub name: String,
    /// The start of its argument string (at most 32 bytes).
    pub arguments: String,
}

/// PM's process tree, the answer to `HostFrame::ProcessTreeNow`.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProcessTree {
    pub request: u32,
    /// Kernel time when the kernel received PM's answer.
    pub timestamp_ns: u64,
    /// The pid of PM (every process here is one PM started).
    pub manager: u32,
    pub processes: Vec<ProcessTreeEntry>,
}

/// What a host asks the reincarnation server to do to a service
/// (`HostFrame::ServiceCommand`; the same actions as `vigil_abi::rs::ServiceAction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceAction {
    /// Index 0: start a service that is down.
    Up,
    /// Index 1: end it and do not restart it until `Up`.
    Down,
    /// Index 2: end it if it runs and start a new instance now (a held-down one too).
    Restart,
    /// Index 3: replace the running instance with a fresh one.
    Refresh,
    /// Index 4: do not restart it when it ends.
    Hold,
    /// Index 5: clear a hold (or crash-loop hold) and start it if it is held down.
    Release,
}

impl ServiceAction {
    pub const fn label(self) -> &'static str {
        match self {
            ServiceAction::Up => "up",
            ServiceAction::Down => "down",
            ServiceAction::Restart => "restart",
            ServiceAction::Refresh => "refresh",
            ServiceAction::Hold => "hold",
            ServiceAction::Release => "release",
        }
    }
}

/// A host command for a service, forwarded by the kernel to the reincarnation server and
/// answered by a [`ProcessResult`] with the same request id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceCommand {
    pub request: u32,
    pub action: ServiceAction,
    /// The service's index in RS's table ([`ServiceEntry::index`]).
    pub service: u32,
}

/// Bytes of [`ServiceUpdate::program`] (`vigil_abi::host_command::MAX_UPDATE_PROGRAM_BYTES`).
pub const UPDATE_PROGRAM_BYTES: usize = 24;

/// A host's live update of a service (`HostFrame::ServiceUpdate`): RS starts `program`
/// beside the running instance and swaps them (docs/architecture.md, "The reincarnation
/// server", live update).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceUpdate {
    pub request: u32,
    /// The service's index in RS's table ([`ServiceEntry::index`]).
    pub service: u32,
    /// The `boot=pm` program to update to, zero-padded: 1 to 24 bytes of UTF-8 with no NUL
    /// inside (anything else the kernel answers `Invalid` itself, without asking RS).
    pub program: [u8; UPDATE_PROGRAM_BYTES],
}

impl ServiceUpdate {
    /// `name` zero-padded, or None if it does not fit (empty, longer than 24 bytes).
    pub const fn padded_program(name: &str) -> Option<[u8; UPDATE_PROGRAM_BYTES]> {
        let bytes = name.as_bytes();
        if bytes.is_empty() || bytes.len() > UPDATE_PROGRAM_BYTES {
            return None;
        }
        let mut padded = [0u8; UPDATE_PROGRAM_BYTES];
        let mut index = 0;
        while index < bytes.len() {
            padded[index] = bytes[index];
            index += 1;
        }
        Some(padded)
    }
}

/// One service RS supervises (INTROSPECT topic 3's `ServiceRecord`).
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceEntry {
    pub index: u32,
    pub name: String,
    /// The `boot=pm` program its instances run.
    pub program: String,
    /// The version of that program (1 until live update).
    pub version: u32,
    /// `vigil_abi::rs::ServiceState` code: 1 running, 2 backing off, 3 held down, 4 spawn
    /// failed, 5 down.
    pub state: u8,
    /// An operator's hold: RS will not restart it when it ends.
    pub held: bool,
    /// The running instance's pid, 0 when none runs.
    pub pid: u32,
    pub restarts: u64,
    pub failures_in_a_row: u32,
    /// `vigil_abi::rs::reason` of the last end (0: never failed) and its detail.
    pub last_reason: u64,
    pub last_detail: u64,
    /// Kernel time of the last failure (0: never).
    pub last_failure_ns: u64,
    /// Kernel time the current (or last) instance started.
    pub started_ns: u64,
}

/// RS's services, the answer to `HostFrame::ServiceListNow`.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ServiceList {
    pub request: u32,
    /// Kernel time when the kernel received RS's answer.
    pub timestamp_ns: u64,
    /// The pid of RS.
    pub supervisor: u32,
    pub services: Vec<ServiceEntry>,
}

/// Frames the kernel sends. The comment on each variant gives its wire index: variants are
/// only ever appended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KernelFrame {
    /// Index 0: sent first, and again in answer to a host's Hello.
    Hello(Hello),
    /// Index 1: a batch of trace events in sequence order.
    Events(Vec<Event>),
    /// Index 2: a periodic or requested snapshot.
    Snapshot(Snapshot),
    /// Index 3: cumulative loss counters.
    Drops(DropReport),
    /// Index 4: a kernel log line.
    Log(LogLine),
    /// Index 5: a panic, kernel fault or user fault.
    Crash(CrashReport),
    /// Index 6: the answer to a host command.
    CommandResult(CommandResult),
    /// Index 7: a process ended (or, after a Hello, one of the kernel's recent ends).
    Exit(ProcessExit),
    /// Index 8: free and total physical memory, just before each snapshot.
    Memory(MemoryReport),
    /// Index 9: the answer to a `ProcessCommand` (or a failed `ProcessTreeNow`).
    ProcessResult(ProcessResult),
    /// Index 10: PM's process tree, the answer to `ProcessTreeNow`.
    ProcessTree(ProcessTree),
    /// Index 11: RS's services, the answer to `ServiceListNow` (a failed one is a
    /// `ProcessResult`).
    ServiceList(ServiceList),
}

/// Frames a host sends. The comment on each variant gives its wire index: variants are only
/// ever appended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HostFrame {
    /// Index 0: announces the host's protocol version; the kernel answers with its Hello (or a
    /// failed CommandResult if the major version differs).
    Hello { protocol_version: u16 },
    /// Index 1: replaces the trace event mask (bit `EventKind as u16` enables a kind).
    SetEventMask(u64),
    /// Index 2: sets the period of snapshot frames; 0 stops periodic snapshots.
    SetSnapshotPeriod { period_ms: u32 },
    /// Index 3: asks for one snapshot now.
    SnapshotNow,
    /// Index 4: stop, continue or kill a process; forwarded to the process manager,
    /// answered by a `ProcessResult` with the same request id.
    ProcessCommand(ProcessCommand),
    /// Index 5: asks for the process manager's process tree; answered by a `ProcessTree`
    /// (or a failed `ProcessResult`) with the same request id.
    ProcessTreeNow { request: u32 },
    /// Index 6: up, down, restart, refresh, hold or release a service; forwarded to the
    /// reincarnation server, answered by a `ProcessResult` with the same request id.
    ServiceCommand(ServiceCommand),
    /// Index 7: asks for RS's services; answered by a `ServiceList` (or a failed
    /// `ProcessResult`) with the same request id.
    ServiceListNow { request: u32 },
    /// Index 8: live update of a service to another `boot=pm` program; forwarded to the
    /// reincarnation server, answered by a `ProcessResult` with the same request id when
    /// the update has begun (or is refused). Appended in protocol 3: an older kernel
    /// reports it malformed and carries on.
    ServiceUpdate(ServiceUpdate),
}

impl KernelFrame {
    /// Short lower-case name of the frame kind, for logs and JSON.
    pub const fn kind_name(&self) -> &'static str {
        match self {
            KernelFrame::Hello(_) => "hello",
            KernelFrame::Events(_) => "events",
            KernelFrame::Snapshot(_) => "snapshot",
            KernelFrame::Drops(_) => "drops",
            KernelFrame::Log(_) => "log",
            KernelFrame::Crash(_) => "crash",
            KernelFrame::Exit(_) => "exit",
            KernelFrame::Memory(_) => "memory",
            KernelFrame::CommandResult(_) => "command-result",
            KernelFrame::ProcessResult(_) => "process-result",
            KernelFrame::ProcessTree(_) => "process-tree",
            KernelFrame::ServiceList(_) => "service-list",
        }
    }
}

impl HostFrame {
    /// Short lower-case name of the frame kind, for logs and JSON.
    pub const fn kind_name(&self) -> &'static str {
        match self {
            HostFrame::Hello { .. } => "hello",
            HostFrame::SetEventMask(_) => "set-event-mask",
            HostFrame::SetSnapshotPeriod { .. } => "set-snapshot-period",
            HostFrame::SnapshotNow => "snapshot-now",
            HostFrame::ProcessCommand(_) => "process-command",
            HostFrame::ProcessTreeNow { .. } => "process-tree-now",
            HostFrame::ServiceCommand(_) => "service-command",
            HostFrame::ServiceListNow { .. } => "service-list-now",
            HostFrame::ServiceUpdate(_) => "service-update",
        }
    }
}
