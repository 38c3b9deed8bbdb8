//! Introspection records of the kernel's threads and processes, shared by the snapshot
//! kernel call and the monitor channel. One pass over the thread table builds everything.

use crate::system::Kernel;
use vigil_abi::introspect::{ProcessRecord, ThreadRecord, RECORD_NAME_BYTES};
use vigil_kcore::slot::MAX_PROCESSES;

/// Where `visit_records` puts the records it builds.
pub trait RecordSink {
    fn thread(&mut self, record: &ThreadRecord);
    fn process(&mut self, record: &ProcessRecord);
}

/// A pair of closures, one per record kind.
impl<T: FnMut(&ThreadRecord), P: FnMut(&ProcessRecord)> RecordSink for (T, P) {
    fn thread(&mut self, record: &ThreadRecord) {
        (self.0)(record)
    }
    fn process(&mut self, record: &ProcessRecord) {
        (self.1)(record)
    }
}

impl Kernel {
    /// Gives `sink` a record for every thread that is not Free (lowest slot first), then
    /// for every live process, with its thread count and CPU time summed in the same pass.
    pub fn visit_records(&self, sink: &mut impl RecordSink) {
        let mut threads_per_process = [0u32; MAX_PROCESSES];
        let mut cpu_per_process = [0u64; MAX_PROCESSES];
        for (slot, (code, wait_target, wait_argument)) in self.table.encoded_threads() {
            let control = &self.threads[slot];
            let owner = control.process();
            let process = &self.processes[owner];
            // A restart tombstone belongs to no process (its slot may be another's now).
            let tombstone = code == vigil_abi::introspect::state_code::RESTARTING;
            if !tombstone {
                threads_per_process[owner.index()] += 1;
                cpu_per_process[owner.index()] += control.counters().cpu_ns;
            }
            sink.thread(&ThreadRecord {
                endpoint: control.endpoint(),
                pid: if tombstone { 0 } else { process.pid() },
                state: code,
                priority: process.priority(),
                wait_target,
                wait_argument,
                counters: control.counters(),
                ..ThreadRecord::default()
            });
        }
        for (slot, record) in self.processes.live() {
            let index = slot.index();
            let mut name = [0u8; RECORD_NAME_BYTES];
            let bytes = record.name().as_bytes();
            let len = bytes.len().min(RECORD_NAME_BYTES);
            name[..len].copy_from_slice(&bytes[..len]);
            let (faults_not_present, faults_protection) = record.forwarded_faults();
            sink.process(&ProcessRecord {
                pid: record.pid(),
                threads: threads_per_process[index],
                name,
                main_thread: record.main_thread(),
                memory_pages: record.mapped_pages(),
                priority: record.priority(),
                grants: record.grants().iter().filter(|g| g.in_use()).count() as u32,
                cpu_ns: cpu_per_process[index],
                peak_pages: record.peak_pages(),
                virtual_bytes: record.virtual_bytes(),
                shared_pages: record.shared_pages(),
                faults_not_present,
                faults_protection,
                stopped_by: record.signals.stopped_by,
                ..ProcessRecord::default()
            });
        }
    }

    /// Threads that are not Free, and live processes.
    pub fn record_counts(&self) -> (usize, usize) {
        (self.table.slots_in_use(), self.processes.live().count())
    }
}
