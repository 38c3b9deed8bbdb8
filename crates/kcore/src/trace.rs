//! The kernel trace ring: fixed-size events with consecutive sequence numbers and an exact
//! count of events lost, so loss is always visible and never silent.
//!
//! Writers never block: when the ring is full the oldest unread event is overwritten and
//! counted as dropped. A disabled kind costs the caller one branch (`enabled`).

use vigil_abi::trace::{EventKind, TraceEvent};

/// Ring of `N` events (`N` a power of two).
pub struct TraceRing<const N: usize> {
    events: [TraceEvent; N],
    /// Sequence number the next event gets (== number of events recorded so far).
    next_seq: u64,
    /// Sequence number of the next event the reader takes.
    read_seq: u64,
    /// Events overwritten before the reader took them.
    dropped: u64,
    /// Kinds *not* recorded (the complement of the mask), so a ring that records everything
    /// is all zero bytes and a `static` of it costs nothing in the kernel image.
    ignored: u64,
}

impl<const N: usize> TraceRing<N> {
    const CAPACITY_OK: () = assert!(N.is_power_of_two() && N >= 2);

    pub const fn new(mask: u64) -> Self {
        let () = Self::CAPACITY_OK;
        TraceRing {
            events: [TraceEvent {
                seq: 0,
                timestamp_ns: 0,
                kind: 0,
                reserved: [0; 3],
                thread: 0,
                args: [0; 3],
            }; N],
            next_seq: 0,
            read_seq: 0,
            dropped: 0,
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
        let seq = self.next_seq;
        if seq - self.read_seq == N as u64 {
            // Full: the oldest unread event is overwritten.
            self.read_seq += 1;
            self.dropped += 1;
        }
        self.events[(seq % N as u64) as usize] = TraceEvent {
            seq,
            timestamp_ns,
            kind: kind as u16,
            reserved: [0; 3],
            thread,
            args,
        };
        self.next_seq = seq + 1;
        seq
    }

    /// Takes up to `max` unread events, oldest first.
    pub fn drain(&mut self, max: usize, mut take: impl FnMut(&TraceEvent)) -> usize {
        let mut taken = 0;
        while taken < max && self.read_seq < self.next_seq {
            take(&self.events[(self.read_seq % N as u64) as usize]);
            self.read_seq += 1;
            taken += 1;
        }
        taken
    }

    /// Calls `take` with the last `max` events recorded (read or not), oldest first, and
    /// leaves the ring as it was: for a report that must not disturb the monitor's reader.
    pub fn recent(&self, max: usize, mut take: impl FnMut(&TraceEvent)) {
        let held = self.next_seq.min(N as u64);
        let count = held.min(max as u64);
        for seq in self.next_seq - count..self.next_seq {
            take(&self.events[(seq % N as u64) as usize]);
        }
    }

    /// Unread events.
    pub fn pending(&self) -> usize {
        (self.next_seq - self.read_seq) as usize
    }

    /// Events lost to overwriting since creation.
    pub fn dropped(&self) -> u64 {
        self.dropped
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

    #[test]
    fn recent_shows_the_latest_events_without_consuming_them() {
        let mut ring = TraceRing::<4>::new(u64::MAX);
        let mut seqs = Vec::new();
        ring.recent(8, |e| seqs.push(e.seq));
        assert!(seqs.is_empty());
        for i in 0..6 {
            ring.record(i, EventKind::Syscall, 1, [i, 0, 0]);
        }
        ring.recent(3, |e| seqs.push(e.seq));
        assert_eq!(seqs, [3, 4, 5]);
        seqs.clear();
        // More than the ring holds: only what is still there (the last four).
        ring.recent(100, |e| seqs.push(e.seq));
        assert_eq!(seqs, [2, 3, 4, 5]);
        assert_eq!(ring.pending(), 4, "recent must not consume");
        assert_eq!(drain_all(&mut ring).len(), 4);
        seqs.clear();
        ring.recent(2, |e| seqs.push(e.seq));
        assert_eq!(seqs, [4, 5], "drained events are still recent");
    }

    fn drain_all<const N: usize>(ring: &mut TraceRing<N>) -> Vec<TraceEvent> {
        let mut out = Vec::new();
        ring.drain(usize::MAX, |e| out.push(*e));
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
        assert_eq!(ring.drain(3, |e| first.push(e.seq)), 3);
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
                    ring.drain(op, |e| delivered.push(e.seq));
                }
            }
            ring.drain(usize::MAX, |e| delivered.push(e.seq));
            proptest::prop_assert!(delivered.windows(2).all(|w| w[0] < w[1]));
            proptest::prop_assert_eq!(delivered.len() as u64 + ring.dropped(), ring.recorded());
        }
    }
}
