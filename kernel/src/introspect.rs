//! Introspection records of the kernel's threads and processes, shared by the snapshot
//! kernel call and the monitor channel.

use crate::arch::paging::AddressSpace;
use crate::system::{Kernel, Process};
use vigil_abi::introspect::{encode_state, ProcessRecord, ThreadRecord, RECORD_NAME_BYTES};

impl Kernel {
    /// The record of every thread that is not Free, lowest slot first.
    pub fn thread_records(&self) -> impl Iterator<Item = ThreadRecord> + '_ {
        self.table.threads().map(move |(slot, state)| {
            let thread = &self.threads[usize::from(slot)];
            let process = &self.processes[usize::from(thread.process)];
            let (code, wait_target, wait_argument) = encode_state(&state);
            ThreadRecord {
                endpoint: self.table.endpoint(slot),
                pid: process.pid,
                state: code,
                priority: process.priority,
                wait_target,
                wait_argument,
                cpu_ns: thread.cpu_ns,
                voluntary_switches: thread.voluntary_switches,
                involuntary_switches: thread.involuntary_switches,
                syscalls: thread.syscalls,
                messages_sent: thread.messages_sent,
                messages_received: thread.messages_received,
                notifications_received: thread.notifications_received,
                kernel_calls: thread.kernel_calls,
                ..ThreadRecord::default()
            }
        })
    }

    /// The record of every live process.
    pub fn process_records(&self) -> impl Iterator<Item = ProcessRecord> + '_ {
        self.processes.iter().filter(|p| p.in_use).map(move |process| self.process_record(process))
    }

    fn process_record(&self, process: &Process) -> ProcessRecord {
        let mut name = [0u8; RECORD_NAME_BYTES];
        let bytes = process.name().as_bytes();
        let len = bytes.len().min(RECORD_NAME_BYTES);
        name[..len].copy_from_slice(&bytes[..len]);
        let (mut threads, mut cpu_ns) = (0u32, 0u64);
        for (slot, _) in self.table.threads() {
            let thread = &self.threads[usize::from(slot)];
            if self.processes[usize::from(thread.process)].pid == process.pid {
                threads += 1;
                cpu_ns += thread.cpu_ns;
            }
        }
        ProcessRecord {
            pid: process.pid,
            threads,
            name,
            main_thread: process.main_thread,
            memory_pages: AddressSpace::from_root(process.root).count_user_pages(),
            priority: process.priority,
            grants: process.grants.iter().filter(|g| g.in_use).count() as u32,
            cpu_ns,
            ..ProcessRecord::default()
        }
    }
}
