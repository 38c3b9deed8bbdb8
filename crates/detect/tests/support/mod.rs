//! A small builder of synthetic snapshots for the detector tests.
#![allow(dead_code)]

use vigil_abi::endpoint::Endpoint;
use vigil_abi::introspect::encode_state;
use vigil_abi::wait::ThreadState;
use vigil_wire::{ProcessInfo, Snapshot, ThreadInfo};

pub const SECOND: u64 = 1_000_000_000;

/// The endpoint of slot `slot`, generation 1.
pub fn ep(slot: u16) -> Endpoint {
    Endpoint::new(slot, 1)
}

/// Builds one snapshot: processes, then threads (each setter after `thread` applies to the
/// last thread added).
pub struct SnapshotBuilder {
    snapshot: Snapshot,
}

impl SnapshotBuilder {
    pub fn at(timestamp_ns: u64) -> Self {
        SnapshotBuilder {
            snapshot: Snapshot {
                generation: timestamp_ns / 1_000_000,
                timestamp_ns,
                ..Snapshot::default()
            },
        }
    }

    pub fn process(mut self, pid: u32, name: &str) -> Self {
        self.snapshot.processes.push(ProcessInfo {
            pid,
            name: name.into(),
            ..ProcessInfo::default()
        });
        self
    }

    pub fn pages(mut self, pages: u64) -> Self {
        self.snapshot
            .processes
            .last_mut()
            .expect("a process")
            .memory_pages = pages;
        self
    }

    pub fn thread(mut self, endpoint: Endpoint, pid: u32, state: ThreadState) -> Self {
        let (code, target, argument) = encode_state(&state);
        self.snapshot.threads.push(ThreadInfo {
            endpoint: endpoint.0,
            pid,
            state: code,
            wait_target: target.0,
            wait_argument: argument,
            ..ThreadInfo::default()
        });
        if let Some(process) = self.snapshot.processes.iter_mut().find(|p| p.pid == pid) {
            process.threads += 1;
        }
        self
    }

    fn last(&mut self) -> &mut ThreadInfo {
        self.snapshot.threads.last_mut().expect("a thread")
    }

    pub fn cpu(mut self, cpu_ns: u64) -> Self {
        self.last().counters.cpu_ns = cpu_ns;
        self
    }

    pub fn sent(mut self, messages: u64) -> Self {
        self.last().counters.messages_sent = messages;
        self
    }

    pub fn syscalls(mut self, syscalls: u64) -> Self {
        self.last().counters.syscalls = syscalls;
        self
    }

    pub fn build(self) -> Snapshot {
        self.snapshot
    }
}

pub fn sending(to: Endpoint) -> ThreadState {
    ThreadState::Sending { to }
}

pub fn awaiting_reply(from: Endpoint) -> ThreadState {
    ThreadState::AwaitingReply { from }
}

pub fn receiving(from: Endpoint) -> ThreadState {
    ThreadState::Receiving { from }
}

pub fn mutex(address: u64, owner: Endpoint) -> ThreadState {
    ThreadState::Mutex { address, owner }
}

pub fn joining(thread: Endpoint) -> ThreadState {
    ThreadState::Joining { thread }
}
