//! Conversions between the kernel ABI records (`vigil_abi`) and the wire types.

use alloc::string::String;
use alloc::vec::Vec;

use vigil_abi::endpoint::Endpoint;
use vigil_abi::introspect::{decode_state, ProcessRecord, SnapshotHeader, ThreadRecord};
use vigil_abi::log::LogLevel;
use vigil_abi::trace::{EventKind, TraceEvent};
use vigil_abi::wait::ThreadState;

use crate::{Event, LogLine, ProcessInfo, Snapshot, ThreadInfo};

impl From<&ThreadRecord> for ThreadInfo {
    fn from(record: &ThreadRecord) -> Self {
        ThreadInfo {
            endpoint: record.endpoint.0,
            pid: record.pid,
            state: record.state,
            priority: record.priority,
            wait_target: record.wait_target.0,
            wait_argument: record.wait_argument,
            counters: record.counters,
        }
    }
}

impl ThreadInfo {
    /// The thread's state with its wait target, decoded from `state`, `wait_target` and
    /// `wait_argument`; `None` for a state code this crate does not know.
    pub fn state(&self) -> Option<ThreadState> {
        decode_state(self.state, Endpoint(self.wait_target), self.wait_argument)
    }

    /// `endpoint` as an [`Endpoint`].
    pub fn thread(&self) -> Endpoint {
        Endpoint(self.endpoint)
    }
}

impl ProcessInfo {
    /// The wire form of a kernel process record (the name up to its first NUL; "?" if it is
    /// not UTF-8).
    pub fn from_record(record: &ProcessRecord) -> Self {
        ProcessInfo {
            pid: record.pid,
            name: String::from(record.name()),
            threads: record.threads,
            main_thread: record.main_thread.0,
            memory_pages: record.memory_pages,
            priority: record.priority,
            grants: record.grants,
            cpu_ns: record.cpu_ns,
            peak_pages: record.peak_pages,
            virtual_bytes: record.virtual_bytes,
            shared_pages: record.shared_pages,
            faults_not_present: record.faults_not_present,
            faults_protection: record.faults_protection,
            stopped_by: record.stopped_by,
        }
    }
}

impl From<&ProcessRecord> for ProcessInfo {
    fn from(record: &ProcessRecord) -> Self {
        ProcessInfo::from_record(record)
    }
}

impl Snapshot {
    /// The wire form of a kernel snapshot buffer (header and records).
    pub fn from_records(
        header: &SnapshotHeader,
        threads: &[ThreadRecord],
        processes: &[ProcessRecord],
    ) -> Self {
        Snapshot {
            generation: header.generation,
            timestamp_ns: header.timestamp_ns,
            idle_ns: header.idle_ns,
            threads: threads.iter().map(ThreadInfo::from).collect::<Vec<_>>(),
            processes: processes.iter().map(ProcessInfo::from_record).collect(),
        }
    }
}

impl From<&TraceEvent> for Event {
    fn from(event: &TraceEvent) -> Self {
        Event {
            seq: event.seq,
            timestamp_ns: event.timestamp_ns,
            kind: event.kind,
            thread: event.thread,
            args: event.args,
        }
    }
}

impl From<&Event> for TraceEvent {
    fn from(event: &Event) -> Self {
        TraceEvent {
            seq: event.seq,
            timestamp_ns: event.timestamp_ns,
            kind: event.kind,
            reserved: [0; 3],
            thread: event.thread,
            args: event.args,
        }
    }
}

impl Event {
    /// `kind` as an [`EventKind`]; `None` for a kind this crate does not know.
    pub const fn event_kind(&self) -> Option<EventKind> {
        EventKind::from_u16(self.kind)
    }
}

impl LogLine {
    /// `level` as a [`LogLevel`]; `None` for a level this crate does not know.
    pub const fn log_level(&self) -> Option<LogLevel> {
        LogLevel::from_u8(self.level)
    }
}
