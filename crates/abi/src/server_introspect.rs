//! INTROSPECT: the one request every server answers with fixed-size records of what it
//! knows (VM: memory per process and shared-memory objects; PM: processes; RS: services;
//! later VFS: open files), written straight into the client's memory through a grant.
//!
//! The client creates a WRITE grant of a buffer for the server and sends
//! [`INTROSPECT`] with a [`Topic`], the grant id, the buffer's size and the index of the
//! first record it wants ([`IntrospectRequest`]). The server lays the records out
//! back to back, little-endian, from that index on, as many whole records as fit, copies
//! them in one `SafeCopyTo`, and replies [`INTROSPECT_REPLY`] with the records written and
//! the records available ([`IntrospectReply`]): `written < available - first` means the
//! buffer was too small, and the client asks again from `first + written` or with a bigger
//! buffer. A request with size 0 only counts (no grant needed). Each topic has its own
//! record layout with a version, both in the reply, so a client can tell what it got.
//!
//! Refusals (`payload[0]` of the reply): `NoSuchCall` for a topic the server does not
//! answer, `InvalidArgument` for a buffer smaller than one record or reserved words that
//! are not 0, `BadGrant` when the copy is refused (no such grant, not for the server, read
//! only, or smaller than the size the client named). The server survives every request.

use crate::error::Error;
use crate::message::Message;

/// Client → server: `payload` = [topic, grant id, buffer bytes, first record, 0, 0].
pub const INTROSPECT: u32 = 0x0100_0001;
/// Server → client: `payload` = [0 or error code, records written, records available,
/// record bytes, record layout version, topic].
pub const INTROSPECT_REPLY: u32 = 0x0100_00ff;

/// What a client asks about. Numbers are fixed; a server answers the ones it knows about.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// VM: one [`MemoryRecord`] per process.
    Memory = 1,
    /// VM: per shared-memory object, a [`SharedObjectRecord`] followed by one
    /// [`SharedMapperRecord`] per mapping of it (`mapper_count` of them).
    SharedObjects = 2,
    /// RS: one [`ServiceRecord`] per supervised service, by index in RS's table.
    Services = 3,
    /// Reserved for VFS: open files.
    OpenFiles = 4,
    /// PM: one [`ProcessTreeRecord`] per process PM started and still knows (running, or
    /// exited and not yet waited for), by pid.
    Processes = 5,
    /// DS: one `ds::KeyRecord` per key (key, owner, value size, publishes).
    DataStore = 6,
    /// RS: one [`ServiceBacktraceRecord`] per service, by index: the backtrace of its last
    /// failure by a CPU exception (the restart history's backtrace).
    ServiceBacktraces = 7,
}

impl Topic {
    pub const fn from_u64(value: u64) -> Option<Topic> {
        Some(match value {
            1 => Topic::Memory,
            2 => Topic::SharedObjects,
            3 => Topic::Services,
            4 => Topic::OpenFiles,
            5 => Topic::Processes,
            6 => Topic::DataStore,
            7 => Topic::ServiceBacktraces,
            _ => return None,
        })
    }

    pub const fn name(self) -> &'static str {
        match self {
            Topic::Memory => "memory",
            Topic::SharedObjects => "shared-objects",
            Topic::Services => "services",
            Topic::OpenFiles => "open-files",
            Topic::Processes => "processes",
            Topic::DataStore => "data-store",
            Topic::ServiceBacktraces => "service-backtraces",
        }
    }
}

/// An INTROSPECT request, checked: a server decodes the message once with
/// [`IntrospectRequest::from_message`] and never looks at the raw words again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntrospectRequest {
    pub topic: Topic,
    /// The client's WRITE grant for the server (ignored when `bytes` is 0).
    pub grant: u64,
    /// Size of the granted buffer.
    pub bytes: u64,
    /// Index of the first record wanted (0 for all).
    pub first: u64,
}

impl IntrospectRequest {
    pub fn to_message(&self) -> Message {
        Message::with_payload(
            INTROSPECT,
            [self.topic as u64, self.grant, self.bytes, self.first, 0, 0],
        )
    }

    /// The request in `message` (whose kind the caller checked): an unknown topic is
    /// `NoSuchCall`, non-zero reserved words `InvalidArgument`.
    pub fn from_message(message: &Message) -> Result<IntrospectRequest, Error> {
        let p = &message.payload;
        if message.kind != INTROSPECT || p[4] != 0 || p[5] != 0 {
            return Err(Error::InvalidArgument);
        }
        let topic = Topic::from_u64(p[0]).ok_or(Error::NoSuchCall)?;
        Ok(IntrospectRequest {
            topic,
            grant: p[1],
            bytes: p[2],
            first: p[3],
        })
    }

    /// How many records of `record_bytes` to write from `first` when `available` exist:
    /// `InvalidArgument` if the buffer is not empty but smaller than one record.
    pub fn records_to_write(&self, record_bytes: usize, available: u64) -> Result<u64, Error> {
        let fit = self.bytes / record_bytes as u64;
        if self.bytes != 0 && fit == 0 {
            return Err(Error::InvalidArgument);
        }
        Ok(fit.min(available.saturating_sub(self.first)))
    }
}

/// A successful INTROSPECT answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntrospectReply {
    /// Records copied into the buffer, starting at the request's `first`.
    pub written: u64,
    /// Records the topic has in all (from index 0).
    pub available: u64,
    /// Size of each record.
    pub record_bytes: u64,
    /// Layout version of the topic's records.
    pub version: u64,
    pub topic: Topic,
}

impl IntrospectReply {
    /// The reply message for an outcome.
    pub fn message(outcome: Result<IntrospectReply, (Topic, Error)>) -> Message {
        match outcome {
            Ok(r) => Message::with_payload(
                INTROSPECT_REPLY,
                [
                    0,
                    r.written,
                    r.available,
                    r.record_bytes,
                    r.version,
                    r.topic as u64,
                ],
            ),
            Err((topic, error)) => {
                Message::with_payload(INTROSPECT_REPLY, [error as u64, 0, 0, 0, 0, topic as u64])
            }
        }
    }

    /// A refusal for a request whose topic could not even be read.
    pub fn refusal(error: Error) -> Message {
        Message::with_payload(INTROSPECT_REPLY, [error as u64, 0, 0, 0, 0, 0])
    }

    /// Reads a reply: the server's refusal as its `Error`; a message that is not a reply
    /// is `InvalidArgument`.
    pub fn from_message(message: &Message) -> Result<IntrospectReply, Error> {
        let p = &message.payload;
        if message.kind != INTROSPECT_REPLY {
            return Err(Error::InvalidArgument);
        }
        if p[0] != 0 {
            return Err(Error::from_code(p[0]).unwrap_or(Error::InvalidArgument));
        }
        Ok(IntrospectReply {
            written: p[1],
            available: p[2],
            record_bytes: p[3],
            version: p[4],
            topic: Topic::from_u64(p[5]).ok_or(Error::InvalidArgument)?,
        })
    }
}

/// Writes little-endian fields into a fixed-size record.
struct Writer<'a> {
    bytes: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, field: &[u8]) {
        self.bytes[self.at..self.at + field.len()].copy_from_slice(field);
        self.at += field.len();
    }
    fn u8(&mut self, value: u8) {
        self.put(&[value]);
    }
    fn u32(&mut self, value: u32) {
        self.put(&value.to_le_bytes());
    }
    fn u64(&mut self, value: u64) {
        self.put(&value.to_le_bytes());
    }
}

/// Reads little-endian fields from a fixed-size record.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut field = [0; N];
        field.copy_from_slice(&self.bytes[self.at..self.at + N]);
        self.at += N;
        field
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
}

/// Layout version of [`MemoryRecord`].
pub const MEMORY_RECORD_VERSION: u64 = 1;

/// Topic [`Topic::Memory`]: one process's memory as VM counts it. 112 bytes. VM counts the
/// pages it mapped (heap, stacks, mappings), not the program image the kernel loaded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryRecord {
    pub pid: u32,
    pub reserved: u32,
    /// Pages VM mapped that are resident (private and shared).
    pub resident_pages: u64,
    /// Sum of the regions VM placed: heap, whole stack regions, mappings.
    pub virtual_bytes: u64,
    /// Of `resident_pages`, pages of shared-memory objects.
    pub shared_pages: u64,
    /// The most pages ever resident at once.
    pub peak_pages: u64,
    /// The memory limit in pages.
    pub limit_pages: u64,
    /// Faults resolved with a zeroed private page (heap, stack growth, anonymous).
    pub demand_zero_faults: u64,
    /// Faults resolved with a shared object's page.
    pub shared_faults: u64,
    /// Faults VM refused as invalid (protection faults included).
    pub invalid_faults: u64,
    /// Faults and requests refused at the memory limit.
    pub out_of_memory: u64,
    /// Maps VM decided that the kernel could not make.
    pub map_failures: u64,
    pub reserved2: [u64; 3],
}

/// Size of a [`MemoryRecord`].
pub const MEMORY_RECORD_BYTES: usize = 112;

impl MemoryRecord {
    pub fn to_bytes(&self) -> [u8; MEMORY_RECORD_BYTES] {
        let mut bytes = [0; MEMORY_RECORD_BYTES];
        let mut w = Writer {
            bytes: &mut bytes,
            at: 0,
        };
        w.u32(self.pid);
        w.u32(self.reserved);
        for value in [
            self.resident_pages,
            self.virtual_bytes,
            self.shared_pages,
            self.peak_pages,
            self.limit_pages,
            self.demand_zero_faults,
            self.shared_faults,
            self.invalid_faults,
            self.out_of_memory,
            self.map_failures,
            self.reserved2[0],
            self.reserved2[1],
            self.reserved2[2],
        ] {
            w.u64(value);
        }
        bytes
    }

    pub fn from_bytes(bytes: &[u8; MEMORY_RECORD_BYTES]) -> MemoryRecord {
        let mut r = Reader { bytes, at: 0 };
        MemoryRecord {
            pid: r.u32(),
            reserved: r.u32(),
            resident_pages: r.u64(),
            virtual_bytes: r.u64(),
            shared_pages: r.u64(),
            peak_pages: r.u64(),
            limit_pages: r.u64(),
            demand_zero_faults: r.u64(),
            shared_faults: r.u64(),
            invalid_faults: r.u64(),
            out_of_memory: r.u64(),
            map_failures: r.u64(),
            reserved2: [r.u64(), r.u64(), r.u64()],
        }
    }
}

/// Layout version of the shared-objects topic's records.
pub const SHARED_RECORD_VERSION: u64 = 1;
/// Size of every record of the shared-objects topic (objects and mappers alike).
pub const SHARED_RECORD_BYTES: usize = 80;
/// Longest object name a record carries.
pub const SHARED_RECORD_NAME_BYTES: usize = 32;

/// `record_type` of the shared-objects topic's records.
pub mod shared_record_type {
    /// A [`super::SharedObjectRecord`].
    pub const OBJECT: u32 = 1;
    /// A [`super::SharedMapperRecord`] of the object before it.
    pub const MAPPER: u32 = 2;
}

/// `SharedObjectRecord::others_may` values.
pub mod others_may {
    /// Processes other than the owner may map the object read-only.
    pub const READ: u8 = 0;
    /// They may map it writable too.
    pub const READ_WRITE: u8 = 1;
}

/// Topic [`Topic::SharedObjects`]: one shared-memory object. 80 bytes; followed by its
/// `mapper_count` [`SharedMapperRecord`]s (a truncated answer may end among them).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SharedObjectRecord {
    /// [`shared_record_type::OBJECT`].
    pub record_type: u32,
    pub id: u32,
    /// pid of the owner.
    pub owner: u32,
    /// Mappings of the object (the mapper records that follow).
    pub mapper_count: u32,
    /// Size in bytes.
    pub bytes: u64,
    /// Object pages that have a frame.
    pub resident_pages: u64,
    /// [`others_may`] value.
    pub others_may: u8,
    /// 1 if the owner destroyed it and it goes when its last mapper unmaps it.
    pub destroy_pending: u8,
    /// Bytes of `name` used (0 once destroyed: the name is free again).
    pub name_len: u8,
    pub reserved: [u8; 5],
    pub name: [u8; SHARED_RECORD_NAME_BYTES],
    pub reserved2: u64,
}

impl SharedObjectRecord {
    pub fn to_bytes(&self) -> [u8; SHARED_RECORD_BYTES] {
        let mut bytes = [0; SHARED_RECORD_BYTES];
        let mut w = Writer {
            bytes: &mut bytes,
            at: 0,
        };
        w.u32(self.record_type);
        w.u32(self.id);
        w.u32(self.owner);
        w.u32(self.mapper_count);
        w.u64(self.bytes);
        w.u64(self.resident_pages);
        w.u8(self.others_may);
        w.u8(self.destroy_pending);
        w.u8(self.name_len);
        w.put(&self.reserved);
        w.put(&self.name);
        w.u64(self.reserved2);
        bytes
    }

    pub fn from_bytes(bytes: &[u8; SHARED_RECORD_BYTES]) -> SharedObjectRecord {
        let mut r = Reader { bytes, at: 0 };
        SharedObjectRecord {
            record_type: r.u32(),
            id: r.u32(),
            owner: r.u32(),
            mapper_count: r.u32(),
            bytes: r.u64(),
            resident_pages: r.u64(),
            others_may: r.u8(),
            destroy_pending: r.u8(),
            name_len: r.u8(),
            reserved: r.take(),
            name: r.take(),
            reserved2: r.u64(),
        }
    }

    /// The name's bytes (`name_len` clamped to the field).
    pub fn name(&self) -> &[u8] {
        &self.name[..usize::from(self.name_len).min(SHARED_RECORD_NAME_BYTES)]
    }
}

/// Topic [`Topic::SharedObjects`]: one mapping of the object whose record came before.
/// 80 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SharedMapperRecord {
    /// [`shared_record_type::MAPPER`].
    pub record_type: u32,
    /// The object mapped.
    pub object: u32,
    /// The mapping process.
    pub pid: u32,
    /// 1 if mapped writable.
    pub writable: u8,
    pub reserved: [u8; 3],
    /// Where the object starts in that process.
    pub base: u64,
    /// Object pages resident in that process.
    pub resident_pages: u64,
    pub reserved2: [u64; 6],
}

impl SharedMapperRecord {
    pub fn to_bytes(&self) -> [u8; SHARED_RECORD_BYTES] {
        let mut bytes = [0; SHARED_RECORD_BYTES];
        let mut w = Writer {
            bytes: &mut bytes,
            at: 0,
        };
        w.u32(self.record_type);
        w.u32(self.object);
        w.u32(self.pid);
        w.u8(self.writable);
        w.put(&self.reserved);
        w.u64(self.base);
        w.u64(self.resident_pages);
        for value in self.reserved2 {
            w.u64(value);
        }
        bytes
    }

    pub fn from_bytes(bytes: &[u8; SHARED_RECORD_BYTES]) -> SharedMapperRecord {
        let mut r = Reader { bytes, at: 0 };
        SharedMapperRecord {
            record_type: r.u32(),
            object: r.u32(),
            pid: r.u32(),
            writable: r.u8(),
            reserved: r.take(),
            base: r.u64(),
            resident_pages: r.u64(),
            reserved2: [r.u64(), r.u64(), r.u64(), r.u64(), r.u64(), r.u64()],
        }
    }
}

/// A record of the shared-objects topic, told apart by its first word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SharedRecord {
    Object(SharedObjectRecord),
    Mapper(SharedMapperRecord),
}

impl SharedRecord {
    /// Decodes one record; `None` for an unknown record type.
    pub fn from_bytes(bytes: &[u8; SHARED_RECORD_BYTES]) -> Option<SharedRecord> {
        let record_type = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        match record_type {
            shared_record_type::OBJECT => {
                Some(SharedRecord::Object(SharedObjectRecord::from_bytes(bytes)))
            }
            shared_record_type::MAPPER => {
                Some(SharedRecord::Mapper(SharedMapperRecord::from_bytes(bytes)))
            }
            _ => None,
        }
    }
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<MemoryRecord>() == MEMORY_RECORD_BYTES);
    assert!(offset_of!(MemoryRecord, resident_pages) == 8);
    assert!(offset_of!(MemoryRecord, limit_pages) == 40);
    assert!(offset_of!(MemoryRecord, map_failures) == 80);
    assert!(size_of::<SharedObjectRecord>() == SHARED_RECORD_BYTES);
    assert!(offset_of!(SharedObjectRecord, bytes) == 16);
    assert!(offset_of!(SharedObjectRecord, others_may) == 32);
    assert!(offset_of!(SharedObjectRecord, name) == 40);
    assert!(size_of::<SharedMapperRecord>() == SHARED_RECORD_BYTES);
    assert!(offset_of!(SharedMapperRecord, writable) == 12);
    assert!(offset_of!(SharedMapperRecord, base) == 16);
    assert!(offset_of!(SharedMapperRecord, resident_pages) == 24);
};

/// Layout version of [`ProcessTreeRecord`].
pub const PROCESS_RECORD_VERSION: u64 = 1;
/// Size of a [`ProcessTreeRecord`].
pub const PROCESS_RECORD_BYTES: usize = 96;
/// Bytes of a process name or argument string a [`ProcessTreeRecord`] keeps (cut, padded
/// with zeros).
pub const PROCESS_RECORD_TEXT_BYTES: usize = 32;

/// [`ProcessTreeRecord::state`] values.
pub mod process_state {
    pub const RUNNING: u32 = 1;
    /// Exited, its status kept until the parent waits.
    pub const EXITED: u32 = 2;
}

/// Topic [`Topic::Processes`]: one process of PM's tree. 96 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessTreeRecord {
    pub pid: u32,
    /// The parent's pid (PM's own after reparenting).
    pub parent: u32,
    /// A `process_state` value.
    pub state: u32,
    pub reserved: u32,
    /// The exit status once `state` is `EXITED`, else 0.
    pub exit_status: u64,
    /// When PM started it, in ns since boot.
    pub start_ns: u64,
    pub name: [u8; PROCESS_RECORD_TEXT_BYTES],
    /// The start of its argument string.
    pub arguments: [u8; PROCESS_RECORD_TEXT_BYTES],
}

/// `text` cut to a record's text field.
pub fn record_text(text: &[u8]) -> [u8; PROCESS_RECORD_TEXT_BYTES] {
    let mut field = [0; PROCESS_RECORD_TEXT_BYTES];
    let len = text.len().min(PROCESS_RECORD_TEXT_BYTES);
    field[..len].copy_from_slice(&text[..len]);
    field
}

/// A record text field without its zero padding.
pub fn text_of(field: &[u8; PROCESS_RECORD_TEXT_BYTES]) -> &[u8] {
    let len = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    &field[..len]
}

impl ProcessTreeRecord {
    pub fn to_bytes(&self) -> [u8; PROCESS_RECORD_BYTES] {
        let mut bytes = [0; PROCESS_RECORD_BYTES];
        let mut w = Writer {
            bytes: &mut bytes,
            at: 0,
        };
        w.u32(self.pid);
        w.u32(self.parent);
        w.u32(self.state);
        w.u32(self.reserved);
        w.u64(self.exit_status);
        w.u64(self.start_ns);
        w.put(&self.name);
        w.put(&self.arguments);
        bytes
    }

    pub fn from_bytes(bytes: &[u8; PROCESS_RECORD_BYTES]) -> ProcessTreeRecord {
        let mut r = Reader { bytes, at: 0 };
        ProcessTreeRecord {
            pid: r.u32(),
            parent: r.u32(),
            state: r.u32(),
            reserved: r.u32(),
            exit_status: r.u64(),
            start_ns: r.u64(),
            name: r.take(),
            arguments: r.take(),
        }
    }
}

/// Layout version of [`ServiceRecord`].
pub const SERVICE_RECORD_VERSION: u64 = 1;
/// Size of a [`ServiceRecord`].
pub const SERVICE_RECORD_BYTES: usize = 128;

/// Topic [`Topic::Services`]: one service RS supervises, as RS's table has it. 128 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceRecord {
    /// Its index in RS's table (what `rs::request::ACTION` names).
    pub index: u32,
    /// A `vigil_abi::rs::ServiceState` code.
    pub state: u32,
    /// The running instance's pid, 0 when none runs.
    pub pid: u32,
    /// 1 when an operator's hold keeps RS from restarting it.
    pub held: u8,
    pub reserved: [u8; 3],
    /// Instances started after the first.
    pub restarts: u64,
    /// Failures in a row (the crash-loop count).
    pub failures_in_a_row: u32,
    /// The version of the program it runs (1 until live update, issue 10 item 5).
    pub version: u32,
    /// A `vigil_abi::rs::reason` value: why the last instance ended (0: never).
    pub last_reason: u64,
    /// The exception vector, exit status or error code of `last_reason`.
    pub last_detail: u64,
    /// Kernel time of the last failure (0: never).
    pub last_failure_ns: u64,
    /// Kernel time the running instance (or the last one) started.
    pub started_ns: u64,
    /// The service's name (cut, padded with zeros).
    pub name: [u8; PROCESS_RECORD_TEXT_BYTES],
    /// The `boot=pm` program its instances run.
    pub program: [u8; PROCESS_RECORD_TEXT_BYTES],
}

impl ServiceRecord {
    pub fn to_bytes(&self) -> [u8; SERVICE_RECORD_BYTES] {
        let mut bytes = [0; SERVICE_RECORD_BYTES];
        let mut w = Writer {
            bytes: &mut bytes,
            at: 0,
        };
        w.u32(self.index);
        w.u32(self.state);
        w.u32(self.pid);
        w.u8(self.held);
        w.put(&self.reserved);
        w.u64(self.restarts);
        w.u32(self.failures_in_a_row);
        w.u32(self.version);
        w.u64(self.last_reason);
        w.u64(self.last_detail);
        w.u64(self.last_failure_ns);
        w.u64(self.started_ns);
        w.put(&self.name);
        w.put(&self.program);
        bytes
    }

    pub fn from_bytes(bytes: &[u8; SERVICE_RECORD_BYTES]) -> ServiceRecord {
        let mut r = Reader { bytes, at: 0 };
        ServiceRecord {
            index: r.u32(),
            state: r.u32(),
            pid: r.u32(),
            held: r.u8(),
            reserved: r.take(),
            restarts: r.u64(),
            failures_in_a_row: r.u32(),
            version: r.u32(),
            last_reason: r.u64(),
            last_detail: r.u64(),
            last_failure_ns: r.u64(),
            started_ns: r.u64(),
            name: r.take(),
            program: r.take(),
        }
    }
}

/// Layout version of [`ServiceBacktraceRecord`].
pub const SERVICE_BACKTRACE_RECORD_VERSION: u64 = 1;
/// Size of a [`ServiceBacktraceRecord`].
pub const SERVICE_BACKTRACE_RECORD_BYTES: usize = 16 + 8 * crate::signal::BACKTRACE_FRAMES;

/// Topic [`Topic::ServiceBacktraces`]: the backtrace of a service's last failure by a CPU
/// exception, as the kernel walked the held thread's frame-pointer chain for RS
/// (`KernelCall::ServiceBacktrace`). 144 bytes: `index` u32, `frames` u32, `vector` u64,
/// then `BACKTRACE_FRAMES` addresses (the faulting RIP first, then return addresses; the
/// ones past `frames` are 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceBacktraceRecord {
    /// The service's index in RS's table (as its `ServiceRecord`).
    pub index: u32,
    /// How many of `addresses` are valid (0: it never failed by an exception).
    pub frames: u32,
    /// The exception's vector.
    pub vector: u64,
    pub addresses: [u64; crate::signal::BACKTRACE_FRAMES],
}

impl ServiceBacktraceRecord {
    /// The valid addresses (at most `BACKTRACE_FRAMES`, whatever `frames` claims).
    pub fn frames(&self) -> &[u64] {
        let count = (self.frames as usize).min(crate::signal::BACKTRACE_FRAMES);
        &self.addresses[..count]
    }

    pub fn to_bytes(&self) -> [u8; SERVICE_BACKTRACE_RECORD_BYTES] {
        let mut bytes = [0; SERVICE_BACKTRACE_RECORD_BYTES];
        let mut w = Writer {
            bytes: &mut bytes,
            at: 0,
        };
        w.u32(self.index);
        w.u32(self.frames);
        w.u64(self.vector);
        for address in self.addresses {
            w.u64(address);
        }
        bytes
    }

    pub fn from_bytes(bytes: &[u8; SERVICE_BACKTRACE_RECORD_BYTES]) -> ServiceBacktraceRecord {
        let mut r = Reader { bytes, at: 0 };
        ServiceBacktraceRecord {
            index: r.u32(),
            frames: r.u32(),
            vector: r.u64(),
            addresses: core::array::from_fn(|_| r.u64()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_backtrace_records_round_trip_and_never_claim_more_than_they_hold() {
        let mut addresses = [0u64; crate::signal::BACKTRACE_FRAMES];
        addresses[0] = 0x40_1234;
        addresses[1] = 0x40_0100;
        let record = ServiceBacktraceRecord {
            index: 3,
            frames: 2,
            vector: 14,
            addresses,
        };
        let bytes = record.to_bytes();
        assert_eq!(bytes[..4], [3, 0, 0, 0]);
        assert_eq!(bytes[8..16], 14u64.to_le_bytes());
        assert_eq!(bytes[16..24], 0x40_1234u64.to_le_bytes());
        let back = ServiceBacktraceRecord::from_bytes(&bytes);
        assert_eq!(back, record);
        assert_eq!(back.frames(), &[0x40_1234, 0x40_0100]);
        let forged = ServiceBacktraceRecord {
            frames: u32::MAX,
            ..record
        };
        assert_eq!(forged.frames().len(), crate::signal::BACKTRACE_FRAMES);
        assert_eq!(Topic::from_u64(7), Some(Topic::ServiceBacktraces));
        assert_eq!(Topic::from_u64(8), None);
    }

    #[test]
    fn memory_records_are_little_endian_at_their_offsets() {
        let record = MemoryRecord {
            pid: 0x0102_0304,
            resident_pages: 5,
            virtual_bytes: 0x1122_3344_5566_7788,
            shared_pages: 2,
            peak_pages: 9,
            limit_pages: 32768,
            demand_zero_faults: 3,
            shared_faults: 4,
            invalid_faults: 6,
            out_of_memory: 7,
            map_failures: 8,
            ..MemoryRecord::default()
        };
        let bytes = record.to_bytes();
        assert_eq!(bytes[..4], [4, 3, 2, 1]);
        assert_eq!(bytes[8..16], 5u64.to_le_bytes());
        assert_eq!(bytes[16..24], 0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(bytes[40..48], 32768u64.to_le_bytes());
        assert_eq!(bytes[80..88], 8u64.to_le_bytes());
        assert_eq!(bytes[88..], [0; 24]);
        assert_eq!(MemoryRecord::from_bytes(&bytes), record);
    }

    #[test]
    fn shared_records_round_trip_and_are_told_apart() {
        let mut name = [0; SHARED_RECORD_NAME_BYTES];
        name[..4].copy_from_slice(b"ring");
        let object = SharedObjectRecord {
            record_type: shared_record_type::OBJECT,
            id: 7,
            owner: 3,
            mapper_count: 1,
            bytes: 8192,
            resident_pages: 1,
            others_may: others_may::READ_WRITE,
            destroy_pending: 1,
            name_len: 4,
            name,
            ..SharedObjectRecord::default()
        };
        let bytes = object.to_bytes();
        assert_eq!(bytes[4..8], 7u32.to_le_bytes());
        assert_eq!(bytes[16..24], 8192u64.to_le_bytes());
        assert_eq!(bytes[32..35], [1, 1, 4]);
        assert_eq!(&bytes[40..44], b"ring");
        assert_eq!(
            SharedRecord::from_bytes(&bytes),
            Some(SharedRecord::Object(object))
        );
        assert_eq!(object.name(), b"ring");
        let mapper = SharedMapperRecord {
            record_type: shared_record_type::MAPPER,
            object: 7,
            pid: 4,
            writable: 1,
            base: 0x1000_0000_0000,
            resident_pages: 1,
            ..SharedMapperRecord::default()
        };
        let bytes = mapper.to_bytes();
        assert_eq!(bytes[12], 1);
        assert_eq!(bytes[16..24], 0x1000_0000_0000u64.to_le_bytes());
        assert_eq!(
            SharedRecord::from_bytes(&bytes),
            Some(SharedRecord::Mapper(mapper))
        );
        let mut unknown = bytes;
        unknown[0] = 9;
        assert_eq!(SharedRecord::from_bytes(&unknown), None);
    }

    #[test]
    fn requests_are_checked_once() {
        let request = IntrospectRequest {
            topic: Topic::SharedObjects,
            grant: 0x10001,
            bytes: 4096,
            first: 2,
        };
        let message = request.to_message();
        assert_eq!(message.kind, INTROSPECT);
        assert_eq!(IntrospectRequest::from_message(&message), Ok(request));
        let mut unknown = message;
        unknown.payload[0] = 99;
        assert_eq!(
            IntrospectRequest::from_message(&unknown),
            Err(Error::NoSuchCall)
        );
        let mut reserved = message;
        reserved.payload[5] = 1;
        assert_eq!(
            IntrospectRequest::from_message(&reserved),
            Err(Error::InvalidArgument)
        );
        // 4096 bytes hold 51 records of 80; 10 exist, the client starts at 2.
        assert_eq!(request.records_to_write(SHARED_RECORD_BYTES, 10), Ok(8));
        assert_eq!(request.records_to_write(SHARED_RECORD_BYTES, 100), Ok(51));
        assert_eq!(request.records_to_write(SHARED_RECORD_BYTES, 1), Ok(0));
        let small = IntrospectRequest {
            bytes: 79,
            ..request
        };
        assert_eq!(
            small.records_to_write(SHARED_RECORD_BYTES, 10),
            Err(Error::InvalidArgument)
        );
        let count = IntrospectRequest {
            bytes: 0,
            ..request
        };
        assert_eq!(count.records_to_write(SHARED_RECORD_BYTES, 10), Ok(0));
    }

    #[test]
    fn replies_carry_counts_or_the_refusal() {
        let reply = IntrospectReply {
            written: 3,
            available: 5,
            record_bytes: MEMORY_RECORD_BYTES as u64,
            version: MEMORY_RECORD_VERSION,
            topic: Topic::Memory,
        };
        let message = IntrospectReply::message(Ok(reply));
        assert_eq!(message.kind, INTROSPECT_REPLY);
        assert_eq!(IntrospectReply::from_message(&message), Ok(reply));
        let refused = IntrospectReply::message(Err((Topic::Memory, Error::BadGrant)));
        assert_eq!(
            IntrospectReply::from_message(&refused),
            Err(Error::BadGrant)
        );
        assert_eq!(
            IntrospectReply::from_message(&IntrospectReply::refusal(Error::NoSuchCall)),
            Err(Error::NoSuchCall)
        );
        assert_eq!(
            IntrospectReply::from_message(&Message::new(0x0200_00ff)),
            Err(Error::InvalidArgument)
        );
    }

    #[test]
    fn a_process_tree_record_round_trips_in_96_bytes() {
        let record = ProcessTreeRecord {
            pid: 12,
            parent: 3,
            state: process_state::EXITED,
            reserved: 0,
            exit_status: 137,
            start_ns: 5_000_000,
            name: record_text(b"pm_child"),
            arguments: record_text(b"a very long argument string that is cut here"),
        };
        let bytes = record.to_bytes();
        assert_eq!(bytes.len(), PROCESS_RECORD_BYTES);
        assert_eq!(&bytes[..4], &12u32.to_le_bytes());
        assert_eq!(ProcessTreeRecord::from_bytes(&bytes), record);
        assert_eq!(text_of(&record.name), b"pm_child");
        assert_eq!(text_of(&record.arguments).len(), PROCESS_RECORD_TEXT_BYTES);
        assert_eq!(Topic::from_u64(5), Some(Topic::Processes));
        assert_eq!(Topic::Processes.name(), "processes");
    }

    #[test]
    fn a_service_record_round_trips_in_128_bytes_at_its_offsets() {
        let record = ServiceRecord {
            index: 2,
            state: 3,
            pid: 0x0a0b_0c0d,
            held: 1,
            reserved: [0; 3],
            restarts: 0x1122_3344_5566_7788,
            failures_in_a_row: 5,
            version: 1,
            last_reason: 1,
            last_detail: 14,
            last_failure_ns: 9_000_000,
            started_ns: 8_000_000,
            name: record_text(b"hello_service"),
            program: record_text(b"hello_service"),
        };
        let bytes = record.to_bytes();
        assert_eq!(bytes.len(), SERVICE_RECORD_BYTES);
        assert_eq!(&bytes[0..4], &2u32.to_le_bytes());
        assert_eq!(&bytes[8..12], &0x0a0b_0c0du32.to_le_bytes());
        assert_eq!(bytes[12], 1);
        assert_eq!(&bytes[16..24], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(&bytes[24..28], &5u32.to_le_bytes());
        assert_eq!(&bytes[40..48], &14u64.to_le_bytes());
        assert_eq!(&bytes[64..77], b"hello_service");
        assert_eq!(&bytes[96..109], b"hello_service");
        assert_eq!(ServiceRecord::from_bytes(&bytes), record);
        assert_eq!(text_of(&record.name), b"hello_service");
        assert_eq!(Topic::from_u64(3), Some(Topic::Services));
        assert_eq!(Topic::Services.name(), "services");
    }
}
