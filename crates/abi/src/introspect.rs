//! Introspection records: what the snapshot kernel call returns, one fixed-size record per
//! thread and per process after a header. Defined once here for kernel, servers and host.

use crate::endpoint::Endpoint;
use crate::wait::ThreadState;

/// Snapshot format version; bumped on any layout change. Version 3 grew `ProcessRecord`
/// from 96 to 128 bytes (peak, virtual, shared, faults by kind); the header's record sizes
/// let a reader step over records of another size (see `ProcessRecord`).
pub const SNAPSHOT_VERSION: u32 = 3;
/// `SnapshotHeader::magic`: "VSNP".
pub const SNAPSHOT_MAGIC: u32 = 0x504e_5356;
/// Longest process name in a record.
pub const RECORD_NAME_BYTES: usize = 32;

/// Header of a snapshot buffer, followed by `thread_count` `ThreadRecord`s and then
/// `process_count` `ProcessRecord`s.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotHeader {
    pub magic: u32,
    pub version: u32,
    /// Increases by one with every snapshot taken.
    pub generation: u64,
    /// Kernel time of the snapshot (ns since boot).
    pub timestamp_ns: u64,
    /// TSC ticks per second (to interpret nothing here, but handy for consumers).
    pub tsc_hz: u64,
    /// CPU time spent idle since boot.
    pub idle_ns: u64,
    pub thread_count: u32,
    pub process_count: u32,
    pub thread_record_size: u32,
    pub process_record_size: u32,
    /// Physical frames free right now, and all the allocator manages (4 KiB each): a leak
    /// shows as free frames that do not come back. Since version 2.
    pub free_frames: u64,
    pub total_frames: u64,
}

/// `ThreadRecord::state` codes (the variants of `ThreadState`).
pub mod state_code {
    pub const FREE: u8 = 0;
    pub const READY: u8 = 1;
    pub const RUNNING: u8 = 2;
    pub const SENDING: u8 = 3;
    pub const RECEIVING: u8 = 4;
    pub const AWAITING_REPLY: u8 = 5;
    pub const MUTEX: u8 = 6;
    pub const SLEEPING: u8 = 7;
    pub const JOINING: u8 = 8;
    pub const DEAD: u8 = 9;
    /// Waiting for VM; the argument is the address with the access in bits 60..62.
    pub const WAITING_FOR_VM: u8 = 10;
    /// Held for the signal manager after a CPU exception; the target is the manager's
    /// main thread, the argument the exception vector.
    pub const HELD_FOR_MANAGER: u8 = 11;
    /// A tracer waiting for its tracee's next trace stop (`TraceResumeWait`); the target
    /// is the tracee's traced thread, the argument its pid.
    pub const WAITING_FOR_TRACEE: u8 = 12;
    /// A restart tombstone: the dead main thread of a service RS supervises, its endpoint
    /// kept for the replacement (threads sending to it wait queued); no target, no argument.
    pub const RESTARTING: u8 = 13;
}

/// Where `encode_state` puts a VM wait's access in the argument (above any user address).
pub const VM_ACCESS_SHIFT: u32 = 60;

/// A thread's cumulative counters since it was created: the one definition used by the
/// snapshot record ([`ThreadRecord::counters`]) and, unchanged, by the monitor protocol
/// (`vigil_wire::ThreadInfo::counters`). 72 bytes.
///
/// The field order is part of both formats: the record's byte offsets (asserted below) and
/// the wire encoding, where postcard writes a nested struct as its fields in declaration
/// order. Fields are never reordered or removed; a new counter would change both formats.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ThreadCounters {
    /// CPU time used (ns).
    pub cpu_ns: u64,
    /// Times it blocked or yielded.
    pub voluntary_switches: u64,
    /// Times it was preempted.
    pub involuntary_switches: u64,
    /// System calls made.
    pub syscalls: u64,
    /// IPC messages sent.
    pub messages_sent: u64,
    /// IPC messages received.
    pub messages_received: u64,
    /// Notifications received.
    pub notifications_received: u64,
    /// Page faults taken.
    pub page_faults: u64,
    /// Kernel calls made.
    pub kernel_calls: u64,
}

impl ThreadCounters {
    /// All counters at zero (a new thread).
    pub const ZERO: ThreadCounters = ThreadCounters {
        cpu_ns: 0,
        voluntary_switches: 0,
        involuntary_switches: 0,
        syscalls: 0,
        messages_sent: 0,
        messages_received: 0,
        notifications_received: 0,
        page_faults: 0,
        kernel_calls: 0,
    };
}

/// One thread. 128 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadRecord {
    pub endpoint: Endpoint,
    /// pid of the owning process.
    pub pid: u32,
    /// `state_code::*`.
    pub state: u8,
    pub priority: u8,
    pub reserved: u16,
    /// The thread waited on (`Endpoint::NONE` if none; ANY for receive-from-any).
    pub wait_target: Endpoint,
    /// Mutex address, sleep deadline (ns) or exit code, depending on `state`.
    pub wait_argument: u64,
    pub counters: ThreadCounters,
    pub reserved2: [u64; 3],
}

/// One process. 128 bytes (96 up to snapshot version 2: the fields from `peak_pages` on
/// were reserved and zero). A reader steps through the records by the header's
/// `process_record_size` and treats bytes a shorter record lacks as zero, so version 2
/// buffers still decode.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessRecord {
    pub pid: u32,
    pub threads: u32,
    pub name: [u8; RECORD_NAME_BYTES],
    pub main_thread: Endpoint,
    /// Resident user pages (4 KiB each): every page mapped in its address space (image,
    /// stacks, heap, mappings), counted by the kernel as it maps and unmaps them.
    pub memory_pages: u64,
    pub priority: u8,
    pub reserved: [u8; 7],
    /// Memory grants currently open.
    pub grants: u32,
    /// The pid of the process that stopped this one (`PmStop`, MINIX's runctl), 0 while
    /// it may run. Reserved (0) before snapshot version 3's signal support.
    pub stopped_by: u32,
    pub cpu_ns: u64,
    /// The most pages `memory_pages` has been (kernel-counted). Since version 3.
    pub peak_pages: u64,
    /// Virtual size in bytes: the image the kernel loaded plus the regions the VM server
    /// placed (heap, stack regions, mappings) as VM last reported them (`VmSetVirtual`);
    /// for a process VM does not serve, its mapped bytes. Since version 3.
    pub virtual_bytes: u64,
    /// Of `memory_pages`, pages whose frame is shared with other processes (the views
    /// `VmMapShared` made). Since version 3.
    pub shared_pages: u64,
    /// Page faults the kernel forwarded to VM on a page that was not present. Since 3.
    pub faults_not_present: u64,
    /// Page faults the kernel forwarded to VM on a present page (a protection fault:
    /// write to read-only, execute of no-execute). Since version 3.
    pub faults_protection: u64,
    pub reserved3: u64,
}

impl ProcessRecord {
    pub fn name(&self) -> &str {
        let len = self
            .name
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(RECORD_NAME_BYTES);
        core::str::from_utf8(&self.name[..len]).unwrap_or("?")
    }
}

/// Encodes a state as (code, wait target, argument).
pub const fn encode_state(state: &ThreadState) -> (u8, Endpoint, u64) {
    match *state {
        ThreadState::Free => (state_code::FREE, Endpoint::NONE, 0),
        ThreadState::Ready => (state_code::READY, Endpoint::NONE, 0),
        ThreadState::Running => (state_code::RUNNING, Endpoint::NONE, 0),
        ThreadState::Sending { to } => (state_code::SENDING, to, 0),
        ThreadState::Receiving { from } => (state_code::RECEIVING, from, 0),
        ThreadState::AwaitingReply { from } => (state_code::AWAITING_REPLY, from, 0),
        ThreadState::Mutex { address, owner } => (state_code::MUTEX, owner, address),
        ThreadState::Sleeping { until_ns } => (state_code::SLEEPING, Endpoint::NONE, until_ns),
        ThreadState::Joining { thread } => (state_code::JOINING, thread, 0),
        ThreadState::Dead { exit_code } => (state_code::DEAD, Endpoint::NONE, exit_code),
        ThreadState::Restarting => (state_code::RESTARTING, Endpoint::NONE, 0),
        ThreadState::HeldForManager { manager, vector } => {
            (state_code::HELD_FOR_MANAGER, manager, vector)
        }
        ThreadState::WaitingForTracee { tracee, pid } => {
            (state_code::WAITING_FOR_TRACEE, tracee, pid)
        }
        ThreadState::WaitingForVm {
            vm,
            address,
            access,
        } => (
            state_code::WAITING_FOR_VM,
            vm,
            address | ((access as u64) << VM_ACCESS_SHIFT),
        ),
    }
}

/// Decodes (code, wait target, argument); `None` for an unknown code.
pub const fn decode_state(code: u8, target: Endpoint, argument: u64) -> Option<ThreadState> {
    Some(match code {
        state_code::FREE => ThreadState::Free,
        state_code::READY => ThreadState::Ready,
        state_code::RUNNING => ThreadState::Running,
        state_code::SENDING => ThreadState::Sending { to: target },
        state_code::RECEIVING => ThreadState::Receiving { from: target },
        state_code::AWAITING_REPLY => ThreadState::AwaitingReply { from: target },
        state_code::MUTEX => ThreadState::Mutex {
            address: argument,
            owner: target,
        },
        state_code::SLEEPING => ThreadState::Sleeping { until_ns: argument },
        state_code::JOINING => ThreadState::Joining { thread: target },
        state_code::DEAD => ThreadState::Dead {
            exit_code: argument,
        },
        state_code::RESTARTING => ThreadState::Restarting,
        state_code::HELD_FOR_MANAGER => ThreadState::HeldForManager {
            manager: target,
            vector: argument,
        },
        state_code::WAITING_FOR_TRACEE => ThreadState::WaitingForTracee {
            tracee: target,
            pid: argument,
        },
        state_code::WAITING_FOR_VM => ThreadState::WaitingForVm {
            vm: target,
            address: argument & ((1 << VM_ACCESS_SHIFT) - 1),
            access: match crate::vm::FaultAccess::from_u8((argument >> VM_ACCESS_SHIFT) as u8) {
                Some(access) => access,
                None => return None,
            },
        },
        _ => return None,
    })
}

const _: () = assert!(core::mem::size_of::<ThreadCounters>() == 72);
const _: () = assert!(core::mem::align_of::<ThreadCounters>() == 8);
const _: () = {
    use core::mem::offset_of;
    assert!(offset_of!(ThreadCounters, cpu_ns) == 0);
    assert!(offset_of!(ThreadCounters, voluntary_switches) == 8);
    assert!(offset_of!(ThreadCounters, involuntary_switches) == 16);
    assert!(offset_of!(ThreadCounters, syscalls) == 24);
    assert!(offset_of!(ThreadCounters, messages_sent) == 32);
    assert!(offset_of!(ThreadCounters, messages_received) == 40);
    assert!(offset_of!(ThreadCounters, notifications_received) == 48);
    assert!(offset_of!(ThreadCounters, page_faults) == 56);
    assert!(offset_of!(ThreadCounters, kernel_calls) == 64);
    // The counters sit where the flat fields were: the record layout is unchanged.
    assert!(offset_of!(ThreadRecord, wait_argument) == 24);
    assert!(offset_of!(ThreadRecord, counters) == 32);
    assert!(offset_of!(ThreadRecord, reserved2) == 104);
};
const _: () = assert!(core::mem::size_of::<ThreadRecord>() == 128);
const _: () = assert!(core::mem::size_of::<ProcessRecord>() == 128);
const _: () = {
    use core::mem::offset_of;
    // The first 80 bytes are laid out as in version 2.
    assert!(offset_of!(ProcessRecord, memory_pages) == 48);
    assert!(offset_of!(ProcessRecord, grants) == 64);
    assert!(offset_of!(ProcessRecord, cpu_ns) == 72);
    assert!(offset_of!(ProcessRecord, peak_pages) == 80);
    assert!(offset_of!(ProcessRecord, virtual_bytes) == 88);
    assert!(offset_of!(ProcessRecord, shared_pages) == 96);
    assert!(offset_of!(ProcessRecord, faults_not_present) == 104);
    assert!(offset_of!(ProcessRecord, faults_protection) == 112);
};
/// Size of a `ProcessRecord` up to snapshot version 2.
pub const PROCESS_RECORD_V2_BYTES: usize = 96;
const _: () = assert!(core::mem::size_of::<SnapshotHeader>() == 72);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip() {
        let t = Endpoint::new(7, 3);
        for state in [
            ThreadState::Free,
            ThreadState::Ready,
            ThreadState::Running,
            ThreadState::Sending { to: t },
            ThreadState::Receiving {
                from: Endpoint::ANY,
            },
            ThreadState::AwaitingReply { from: t },
            ThreadState::Mutex {
                address: 0x1234,
                owner: t,
            },
            ThreadState::Sleeping { until_ns: 99 },
            ThreadState::Joining { thread: t },
            ThreadState::Dead { exit_code: 3 },
            ThreadState::Restarting,
            ThreadState::HeldForManager {
                manager: t,
                vector: 13,
            },
            ThreadState::WaitingForTracee { tracee: t, pid: 9 },
            ThreadState::WaitingForVm {
                vm: Endpoint::new(1, 1),
                address: 0x7eff_fffb_f000,
                access: crate::vm::FaultAccess::Execute,
            },
        ] {
            let (code, target, argument) = encode_state(&state);
            assert_eq!(decode_state(code, target, argument), Some(state));
        }
        assert_eq!(decode_state(200, Endpoint::NONE, 0), None);
        // A VM wait whose access bits are no access is refused, not guessed.
        assert_eq!(
            decode_state(
                state_code::WAITING_FOR_VM,
                Endpoint::NONE,
                3 << VM_ACCESS_SHIFT
            ),
            None
        );
    }
}
