//! The kernel trace ring: fixed-size events with consecutive sequence numbers and an exact
//! count of events lost, so loss is always visible and never silent.
//!
//! Writers never block: when the ring is full the oldest unread record is overwritten and
//! its events counted as dropped. A disabled kind costs the caller one branch (`enabled`).
//!
//! A slot holds a record: one event, or a fast IPC call's five events in one compact record
//! (`record_fast_ipc`: one write for the IPC fast path's whole round of `IpcReceive`,
//! `IpcSend`, `Unblock`, `Block` and `ContextSwitch`). Readers never see a compact record:
//! `drain` and `recent` expand it into the five events, with consecutive sequence numbers
//! and the record's timestamp, exactly as five separate records would have given them.
//! A compact record keeps the raw TSC value of its instant (the writer's one clock read, not
//! converted on the fast path); the readers convert it with the clock they are given
//! (`TscToNs`), so what they hand on is in nanoseconds like every other event.

use vigil_abi::trace::{EventKind, TraceEvent};

/// `TraceEvent::kind` of a compact fast-IPC record inside the ring (never shown to a
/// reader: no `EventKind` has this value).
const FAST_IPC_RECORD: u16 = 0xfa57;

/// Events a compact fast-IPC record stands for.
pub const FAST_IPC_EVENTS: u64 = 5;

/// The event kinds a compact fast-IPC record stands for: it is written only when all are
/// enabled.
pub const FAST_IPC_KINDS: u64 = EventKind::IpcReceive.mask_bit()
    | EventKind::IpcSend.mask_bit()
    | EventKind::Unblock.mask_bit()
    | EventKind::Block.mask_bit()
    | EventKind::ContextSwitch.mask_bit();

/// A fast IPC call, as one compact record: `caller` delivered a message with `header` to
/// `partner` (whose call finished with 0 in RAX), blocked in the state (`state_code`,
/// `state_target`, argument 0), and the CPU went to `partner`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FastIpc {
    pub caller: u64,
    pub partner: u64,
    /// The message's header word as the register call carried it: the kind in its low half
    /// (the only part the events show; the high half, the tag, is ignored), kept whole so
    /// the fast path stores it as it is.
    pub header: u64,
    pub state_code: u8,
    pub state_target: u64,
}

impl FastIpc {
    /// Its events, in the order the slow path records them: the delivery (the receiver's
    /// `IpcReceive`, the sender's `IpcSend`), the partner's `Unblock` with result 0, the
    /// caller's `Block`, the `ContextSwitch` to the partner.
    pub fn events(&self) -> [(EventKind, u64, [u64; 3]); FAST_IPC_EVENTS as usize] {
        let kind = u64::from(self.header as u32);
        let code = u64::from(self.state_code);
        [
            (EventKind::IpcReceive, self.partner, [self.caller, kind, 0]),
            (EventKind::IpcSend, self.caller, [self.partner, kind, 0]),
            (EventKind::Unblock, self.partner, [0, 0, 0]),
            (EventKind::Block, self.caller, [code, self.state_target, 0]),
            (
                EventKind::ContextSwitch,
                self.partner,
                [self.caller, code, 0],
            ),
        ]
    }
}

/// The clock conversion a reader applies to a compact record's raw TSC value: nanoseconds
/// since boot at that TSC value (the kernel's `time::ns_at`).
pub type TscToNs = fn(u64) -> u64;

/// Ring of `N` records (`N` a power of two).
pub struct TraceRing<const N: usize> {
    records: [TraceEvent; N],
    /// Records written so far.
    next_record: u64,
    /// The record the reader takes from next, and how many of its events it took already.
    read_record: u64,
    read_offset: u64,
    /// Sequence number the next event gets (== number of events recorded so far).
    next_seq: u64,
    /// Events the reader took. The others were recorded are pending or were overwritten
    /// before the reader took them (`dropped`), so an overwrite only moves the read position.
    delivered: u64,
    /// Kinds *not* recorded (the complement of the mask), so a ring that records everything
    /// is all zero bytes and a `static` of it costs nothing in the kernel image.
    ignored: u64,
}

/// Events `record` stands for.
fn events_in(record: &TraceEvent) -> u64 {
    if record.kind == FAST_IPC_RECORD {
        FAST_IPC_EVENTS
    } else {
        1
    }
}

/// Event `index` of `record` (0 for a plain one), as a reader sees it (a compact record's
/// TSC value converted with `ns_of_tsc`).
fn event_of(record: &TraceEvent, index: u64, ns_of_tsc: TscToNs) -> TraceEvent {
    if record.kind != FAST_IPC_RECORD {
        return *record;
    }
    let fast = FastIpc {
        caller: record.thread,
        partner: record.args[0],
        header: record.args[1],
        state_code: record.reserved[0] as u8,
        state_target: record.args[2],
    };
    let (kind, thread, args) = fast.events()[index as usize];
    TraceEvent {
        seq: record.seq + index,
        timestamp_ns: ns_of_tsc(record.timestamp_ns),
        kind: kind as u16,
        reserved: [0; 3],
        thread,
        args,
    }
}

impl<const N: usize> TraceRing<N> {
    const CAPACITY_OK: () = assert!(N.is_power_of_two() && N >= 2);

    pub const fn new(mask: u64) -> Self {
        let () = Self::CAPACITY_OK;
        TraceRing {
            records: [TraceEvent {
                seq: 0,
                timestamp_ns: 0,
                kind: 0,
                reserved: [0; 3],
                thread: 0,
                args: [0; 3],
            }; N],
            next_record: 0,
            read_record: 0,
            read_offset: 0,
            next_seq: 0,
            delivered: 0,
            ignored: !mask,
        }
    }

    pub fn mask(&self) -> u64 {
        !self.ignored
    }

    pub fn set_mask(&mut self, mask: u64) {
        self.ignored = !mask;
    }

    /// Whether `kind` is recorded under the current mask.
    pub fn enabled(&self, kind: EventKind) -> bool {
        self.ignored & kind.mask_bit() == 0
    }

    /// Records an event if its kind is enabled; returns its sequence number.
    pub fn record(
        &mut self,
        timestamp_ns: u64,
        kind: EventKind,
        thread: u64,
        args: [u64; 3],
    ) -> Option<u64> {
        if !self.enabled(kind) {
            return None;
        }
        Some(self.record_unfiltered(timestamp_ns, kind, thread, args))
    }

    /// Records an event whatever the ring's own mask says (for a writer that filters with a
    /// mask of its own first); returns its sequence number.
    #[inline]
    pub fn record_unfiltered(
        &mut self,
        timestamp_ns: u64,
        kind: EventKind,
        thread: u64,
        args: [u64; 3],
    ) -> u64 {
        self.push::<1>(TraceEvent {
            seq: self.next_seq,
            timestamp_ns,
            kind: kind as u16,
            reserved: [0; 3],
            thread,
            args,
        })
    }

    /// Records a fast IPC call's five events (`FastIpc::events`) as one record at TSC value
    /// `tsc` (converted by the readers), whatever the ring's own mask says (the writer
    /// records it only with all of `FAST_IPC_KINDS` enabled); returns the first one's
    /// sequence number.
    // Always inlined: it is the fast path's one write (out of line it cost 20 a call).
    #[inline(always)]
    pub fn record_fast_ipc(&mut self, tsc: u64, call: &FastIpc) -> u64 {
        // The state code rides in the (otherwise unused) reserved field, so the record is
        // the call's words stored as they are.
        self.push::<FAST_IPC_EVENTS>(TraceEvent {
            seq: self.next_seq,
            timestamp_ns: tsc,
            kind: FAST_IPC_RECORD,
            reserved: [u16::from(call.state_code), 0, 0],
            thread: call.caller,
            args: [call.partner, call.header, call.state_target],
        })
    }

    /// Writes `record` of `EVENTS` events (its `seq` is `next_seq`), overwriting the oldest
    /// if full. The writer does not move the reader: a reader `N` or more records behind
    /// was overwritten, which it tells itself (`read_position`), so a write is the record's
    /// stores and two indices.
    #[inline(always)]
    fn push<const EVENTS: u64>(&mut self, record: TraceEvent) -> u64 {
        let seq = record.seq;
        let at = self.next_record;
        self.next_seq = seq + EVENTS;
        self.records[(at % N as u64) as usize] = record;
        self.next_record = at + 1;
        seq
    }

    /// Where the reader is, as (record, events of it already taken): its own position, or
    /// the oldest record still held if the writer lapped it (what was left of the record it
    /// was in is lost with it, and counted by `dropped`).
    #[inline]
    fn read_position(&self) -> (u64, u64) {
        let oldest_held = self.next_record.saturating_sub(N as u64);
        if self.read_record < oldest_held {
            (oldest_held, 0)
        } else {
            (self.read_record, self.read_offset)
        }
    }

    /// Takes up to `max` unread events, oldest first (compact records' TSC values converted
    /// with `ns_of_tsc`).
    pub fn drain(
        &mut self,
        max: usize,
        ns_of_tsc: TscToNs,
        mut take: impl FnMut(&TraceEvent),
    ) -> usize {
        (self.read_record, self.read_offset) = self.read_position();
        let mut taken = 0;
        while taken < max && self.read_record < self.next_record {
            let record = &self.records[(self.read_record % N as u64) as usize];
            take(&event_of(record, self.read_offset, ns_of_tsc));
            taken += 1;
            self.delivered += 1;
            self.read_offset += 1;
            if self.read_offset == events_in(record) {
                self.read_record += 1;
                self.read_offset = 0;
            }
        }
        taken
    }

    /// Calls `take` with the last `max` events recorded (read or not), oldest first, and
    /// leaves the ring as it was: for a report that must not disturb the monitor's reader.
    pub fn recent(&self, max: usize, ns_of_tsc: TscToNs, mut take: impl FnMut(&TraceEvent)) {
        let oldest_held = self.next_record.saturating_sub(N as u64);
        // Walk back to the record holding the `max`th-last event.
        let mut first = self.next_record;
        let mut events = 0;
        while first > oldest_held && events < max as u64 {
            first -= 1;
            events += events_in(&self.records[(first % N as u64) as usize]);
        }
        let mut skip = events.saturating_sub(max as u64);
        for at in first..self.next_record {
            let record = &self.records[(at % N as u64) as usize];
            for index in 0..events_in(record) {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                take(&event_of(record, index, ns_of_tsc));
            }
        }
    }

    /// Unread events.
    pub fn pending(&self) -> usize {
        let (read_record, read_offset) = self.read_position();
        if read_record == self.next_record {
            return 0;
        }
        let record = &self.records[(read_record % N as u64) as usize];
        (self.next_seq - record.seq - read_offset) as usize
    }

    /// Events lost to overwriting since creation.
    pub fn dropped(&self) -> u64 {
        self.next_seq - self.delivered - self.pending() as u64
    }

    /// Events recorded since creation.
    pub fn recorded(&self) -> u64 {
        self.next_seq
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// The tests' clock: a compact record's TSC value in nanoseconds (tripled, so a reader
    /// that forgot to convert shows).
    fn tsc_ns(tsc: u64) -> u64 {
        tsc * 3
    }

    #[test]
    fn recent_shows_the_latest_events_without_consuming_them() {
        let mut ring = TraceRing::<4>::new(u64::MAX);
        let mut seqs = Vec::new();
        ring.recent(8, tsc_ns, |e| seqs.push(e.seq));
        assert!(seqs.is_empty());
        for i in 0..6 {
            ring.record(i, EventKind::Syscall, 1, [i, 0, 0]);
        }
        ring.recent(3, tsc_ns, |e| seqs.push(e.seq));
        assert_eq!(seqs, [3, 4, 5]);
        seqs.clear();
        // More than the ring holds: only what is still there (the last four).
        ring.recent(100, tsc_ns, |e| seqs.push(e.seq));
        assert_eq!(seqs, [2, 3, 4, 5]);
        assert_eq!(ring.pending(), 4, "recent must not consume");
        assert_eq!(drain_all(&mut ring).len(), 4);
        seqs.clear();
        ring.recent(2, tsc_ns, |e| seqs.push(e.seq));
        assert_eq!(seqs, [4, 5], "drained events are still recent");
    }

    fn drain_all<const N: usize>(ring: &mut TraceRing<N>) -> Vec<TraceEvent> {
        let mut out = Vec::new();
        ring.drain(usize::MAX, tsc_ns, |e| out.push(*e));
        out
    }

    #[test]
    fn the_unfiltered_writer_records_whatever_it_is_given() {
        // Its caller filters with a mask of its own (the kernel's `trace::emit`).
        let mut ring = TraceRing::<4>::new(0);
        assert_eq!(
            ring.record_unfiltered(7, EventKind::Syscall, 5, [1, 2, 3]),
            0
        );
        assert_eq!(ring.record_unfiltered(8, EventKind::Block, 6, [0; 3]), 1);
        let events = drain_all(&mut ring);
        assert_eq!(events.len(), 2);
        assert_eq!((events[0].timestamp_ns, events[0].thread), (7, 5));
        assert_eq!(events[0].args, [1, 2, 3]);
        assert_eq!(events[1].kind, EventKind::Block as u16);
    }

    #[test]
    fn disabled_kinds_are_not_recorded() {
        let mut ring = TraceRing::<8>::new(EventKind::Block.mask_bit());
        assert_eq!(ring.record(1, EventKind::Syscall, 5, [0; 3]), None);
        assert_eq!(ring.record(2, EventKind::Block, 5, [1, 2, 3]), Some(0));
        let events = drain_all(&mut ring);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::Block as u16);
        assert_eq!(events[0].args, [1, 2, 3]);
        ring.set_mask(0);
        assert!(!ring.enabled(EventKind::Block));
    }

    #[test]
    fn sequence_numbers_are_consecutive_and_drain_is_bounded() {
        let mut ring = TraceRing::<8>::new(u64::MAX);
        for t in 0..5 {
            ring.record(t, EventKind::IpcSend, 1, [t, 0, 0]);
        }
        let mut first = Vec::new();
        assert_eq!(ring.drain(3, tsc_ns, |e| first.push(e.seq)), 3);
        assert_eq!(first, [0, 1, 2]);
        assert_eq!(ring.pending(), 2);
        let rest: Vec<u64> = drain_all(&mut ring).iter().map(|e| e.seq).collect();
        assert_eq!(rest, [3, 4]);
        assert_eq!(ring.dropped(), 0);
    }

    #[test]
    fn overflow_drops_the_oldest_and_counts_them() {
        let mut ring = TraceRing::<4>::new(u64::MAX);
        for t in 0..10 {
            ring.record(t, EventKind::IpcSend, 1, [0; 3]);
        }
        assert_eq!(ring.dropped(), 6);
        assert_eq!(ring.recorded(), 10);
        let seqs: Vec<u64> = drain_all(&mut ring).iter().map(|e| e.seq).collect();
        // The reader sees a gap (0..6 missing) and the drop counter explains it exactly.
        assert_eq!(seqs, [6, 7, 8, 9]);
        assert_eq!(ring.pending(), 0);
    }

    #[test]
    fn a_ring_recording_everything_is_all_zero_bytes() {
        let ring = TraceRing::<4>::new(u64::MAX);
        // SAFETY: reading the bytes of a plain struct of integers (no padding: u64 fields
        // and 56-byte events).
        let bytes = unsafe {
            core::slice::from_raw_parts(
                &ring as *const _ as *const u8,
                core::mem::size_of::<TraceRing<4>>(),
            )
        };
        assert!(bytes.iter().all(|&b| b == 0));
        assert_eq!(ring.mask(), u64::MAX);
    }

    #[test]
    fn a_static_ring_is_possible() {
        static RING: std::sync::Mutex<TraceRing<16>> = std::sync::Mutex::new(TraceRing::new(0));
        assert_eq!(RING.lock().unwrap().recorded(), 0);
    }

    fn sample_call(caller: u64) -> FastIpc {
        FastIpc {
            caller,
            partner: 77,
            // Kind 0x1234 with tag 9, which no event shows.
            header: 0x1234 | 9 << 32,
            state_code: vigil_abi::introspect::state_code::AWAITING_REPLY,
            state_target: 77,
        }
    }

    #[test]
    fn a_compact_record_reads_as_the_five_events_separate_records_give() {
        let call = sample_call(5);
        let mut compact = TraceRing::<8>::new(u64::MAX);
        compact.record(1, EventKind::Syscall, 5, [27, 0, 0]);
        assert_eq!(compact.record_fast_ipc(9, &call), 1);
        compact.record(10, EventKind::Log, 0, [3, 0, 0]);
        let mut separate = TraceRing::<8>::new(u64::MAX);
        separate.record(1, EventKind::Syscall, 5, [27, 0, 0]);
        // The compact record's TSC value 9 reads as the clock's 27 ns.
        for (kind, thread, args) in call.events() {
            separate.record(tsc_ns(9), kind, thread, args);
        }
        separate.record(10, EventKind::Log, 0, [3, 0, 0]);
        assert_eq!(compact.recorded(), 7);
        assert_eq!(compact.pending(), 7);
        let mut recent_compact = Vec::new();
        compact.recent(4, tsc_ns, |e| recent_compact.push(*e));
        let mut recent_separate = Vec::new();
        separate.recent(4, tsc_ns, |e| recent_separate.push(*e));
        assert_eq!(recent_compact, recent_separate);
        let events = drain_all(&mut compact);
        assert_eq!(events, drain_all(&mut separate));
        let kinds: Vec<u16> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                EventKind::Syscall as u16,
                EventKind::IpcReceive as u16,
                EventKind::IpcSend as u16,
                EventKind::Unblock as u16,
                EventKind::Block as u16,
                EventKind::ContextSwitch as u16,
                EventKind::Log as u16,
            ]
        );
        assert_eq!(events[4].args, [u64::from(call.state_code), 77, 0]);
        assert_eq!(events[5].thread, 77);
        assert_eq!(
            events[1].args,
            [call.caller, 0x1234, 0],
            "the receive shows the kind only"
        );
    }

    #[test]
    fn a_compact_record_drains_in_parts_and_overwritten_counts_its_unread_events() {
        let mut ring = TraceRing::<2>::new(u64::MAX);
        ring.record_fast_ipc(1, &sample_call(1));
        let mut seqs = Vec::new();
        assert_eq!(ring.drain(2, tsc_ns, |e| seqs.push(e.seq)), 2);
        assert_eq!(ring.pending(), 3);
        ring.record_fast_ipc(2, &sample_call(2));
        ring.record(3, EventKind::Log, 0, [0; 3]);
        // The first record's three unread events were lost with it.
        assert_eq!(ring.dropped(), 3);
        ring.drain(usize::MAX, tsc_ns, |e| seqs.push(e.seq));
        assert_eq!(seqs, [0, 1, 5, 6, 7, 8, 9, 10]);
        assert_eq!(ring.recorded(), 11);
    }

    proptest::proptest! {
        /// Compact and plain records mixed, drained in any amounts: every event is
        /// delivered in order exactly once or counted as dropped, and `recent` shows the
        /// last events recorded.
        #[test]
        fn compact_records_keep_the_count_exact(ops in proptest::collection::vec(0usize..8, 0..300)) {
            let mut ring = TraceRing::<8>::new(u64::MAX);
            let mut delivered = Vec::new();
            for op in ops {
                match op {
                    0..=2 => { ring.record(0, EventKind::Block, 0, [0; 3]); }
                    3..=4 => { ring.record_fast_ipc(0, &sample_call(1)); }
                    _ => { ring.drain(op - 4, tsc_ns, |e| delivered.push(e.seq)); }
                }
                let mut recent = Vec::new();
                ring.recent(3, tsc_ns, |e| recent.push(e.seq));
                let newest: Vec<u64> = (ring.recorded().saturating_sub(3)..ring.recorded()).collect();
                proptest::prop_assert_eq!(recent, newest);
                proptest::prop_assert_eq!(
                    delivered.len() as u64 + ring.dropped() + ring.pending() as u64,
                    ring.recorded()
                );
            }
            ring.drain(usize::MAX, tsc_ns, |e| delivered.push(e.seq));
            proptest::prop_assert!(delivered.windows(2).all(|w| w[0] < w[1]));
            proptest::prop_assert_eq!(delivered.len() as u64 + ring.dropped(), ring.recorded());
        }
    }

    proptest::proptest! {
        /// Whatever the interleaving, every recorded event is either delivered (in order,
        /// exactly once) or counted as dropped.
        #[test]
        fn delivered_plus_dropped_equals_recorded(ops in proptest::collection::vec(0usize..6, 0..300)) {
            let mut ring = TraceRing::<8>::new(u64::MAX);
            let mut delivered = Vec::new();
            for op in ops {
                if op < 4 {
                    ring.record(0, EventKind::Block, 0, [0; 3]);
                } else {
                    ring.drain(op, tsc_ns, |e| delivered.push(e.seq));
                }
            }
            ring.drain(usize::MAX, tsc_ns, |e| delivered.push(e.seq));
            proptest::prop_assert!(delivered.windows(2).all(|w| w[0] < w[1]));
            proptest::prop_assert_eq!(delivered.len() as u64 + ring.dropped(), ring.recorded());
        }
    }
}
