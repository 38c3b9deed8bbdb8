//! The Vigil monitor protocol: typed frames between the kernel (on COM2) and host tools.
//!
//! Every frame is `postcard(frame) ‖ crc32(postcard bytes, little-endian)`, COBS-encoded and
//! terminated by a 0x00 byte. A decoder that sees garbage resynchronises at the next 0x00,
//! losing at most the damaged frame. `docs/protocol.md` specifies the bytes.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;

/// Protocol version spoken by this crate. A peer with another major version is refused.
pub const PROTOCOL_VERSION: u16 = 1;

/// Largest encoded frame (before COBS) a decoder accepts; bigger ones are dropped.
pub const MAX_FRAME_BYTES: usize = 256 * 1024;

/// First frame the kernel sends (and re-sends when a host says Hello).
#[derive(Clone, Debug, PartialEq, Eq)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub seq: u64,
    pub timestamp_ns: u64,
    pub kind: u16,
    pub thread: u64,
    pub args: [u64; 3],
}

/// One thread in a snapshot (fields as in `vigil_abi::introspect::ThreadRecord`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ThreadInfo {
    pub endpoint: u64,
    pub pid: u32,
    pub state: u8,
    pub priority: u8,
    pub wait_target: u64,
    pub wait_argument: u64,
    pub cpu_ns: u64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    pub syscalls: u64,
    pub messages_sent: u64,
    pub messages_received: u64,
    pub notifications_received: u64,
    pub page_faults: u64,
    pub kernel_calls: u64,
}

/// One process in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ProcessInfo {
    pub pid: u32,
    pub name: String,
    pub threads: u32,
    pub main_thread: u64,
    pub memory_pages: u64,
    pub priority: u8,
    pub grants: u32,
    pub cpu_ns: u64,
}

/// A consistent snapshot of every thread and process.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub generation: u64,
    pub timestamp_ns: u64,
    pub idle_ns: u64,
    pub threads: Vec<ThreadInfo>,
    pub processes: Vec<ProcessInfo>,
}

/// Loss counters, cumulative since boot: loss is always reported, never silent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DropReport {
    /// Trace events overwritten before they could be sent.
    pub events_dropped: u64,
    /// Whole frames not sent because the transmit buffer was full.
    pub frames_dropped: u64,
    /// Host frames the kernel could not decode or refused.
    pub malformed_commands: u64,
}

/// A kernel log line (see `vigil_abi::log::LogLevel`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub seq: u64,
    pub timestamp_ns: u64,
    pub level: u8,
    pub text: String,
}

/// What crashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashKind {
    KernelPanic,
    KernelFault,
    UserFault,
}

/// A panic or fault report; `backtrace` holds raw addresses (frame 0 = faulting pc when
/// known) for the host to symbolise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashReport {
    pub kind: CrashKind,
    pub timestamp_ns: u64,
    /// Process name and pid for a user fault.
    pub process: Option<(String, u32)>,
    pub message: String,
    pub backtrace: Vec<u64>,
}

/// The kernel's answer to a host command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandResult {
    pub ok: bool,
    pub message: String,
}

/// Frames the kernel sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelFrame {
    Hello(Hello),
    Events(Vec<Event>),
    Snapshot(Snapshot),
    Drops(DropReport),
    Log(LogLine),
    Crash(CrashReport),
    CommandResult(CommandResult),
}

/// Frames a host sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostFrame {
    /// Announces the host's protocol version; the kernel answers with its Hello (or a
    /// failed CommandResult if the major version differs).
    Hello { protocol_version: u16 },
    SetEventMask(u64),
    /// 0 stops periodic snapshots.
    SetSnapshotPeriod { period_ms: u32 },
    SnapshotNow,
}
