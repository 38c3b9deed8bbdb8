//! Kernel timer queue: deadlines for sleeping threads and periodic alarms, earliest first.

/// What a timer is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimerKind {
    /// Wake a thread blocked in Sleep.
    Wakeup,
    /// Deliver an alarm notification, then re-arm after `period_ns`.
    Alarm { period_ns: u64 },
}

/// One expired timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expired {
    pub slot: u16,
    /// Generation of the thread when the timer was set (ignore it if the slot was reused).
    pub generation: u32,
    pub kind: TimerKind,
    pub deadline_ns: u64,
}

/// Index of a kind in the per-slot tables (and its tie-break rank: Wakeup first).
const WAKEUP: usize = 0;
const ALARM: usize = 1;

/// One heap entry. Field sizes add up to 24 bytes with no padding, so the all-zero value is
/// fully initialised zero bytes.
#[derive(Clone, Copy, Debug)]
struct Entry {
    deadline_ns: u64,
    /// Alarm period (0 for a wake-up).
    period_ns: u64,
    generation: u32,
    slot: u16,
    /// `WAKEUP` or `ALARM`.
    kind: u16,
}

impl Entry {
    const ZERO: Entry = Entry {
        deadline_ns: 0,
        period_ns: 0,
        generation: 0,
        slot: 0,
        kind: 0,
    };

    /// Heap order: deadline, then slot, then kind. Every (slot, kind) is in the heap at most
    /// once, so this is a total order and pops are deterministic.
    fn key(&self) -> (u64, u16, u16) {
        (self.deadline_ns, self.slot, self.kind)
    }

    fn timer_kind(&self) -> TimerKind {
        if usize::from(self.kind) == ALARM {
            TimerKind::Alarm {
                period_ns: self.period_ns,
            }
        } else {
            TimerKind::Wakeup
        }
    }
}

const _: () = assert!(core::mem::size_of::<Entry>() == 24);

/// At most one timer of each kind per thread slot (`0..N`): setting a kind again replaces
/// it. A binary min-heap on deadline with a position index per (slot, kind), so insert,
/// cancel and pop are O(log n).
///
/// Order: earliest deadline first; equal deadlines go by slot, then Wakeup before Alarm.
///
/// Alarms: when an alarm fires it is re-armed at the first `deadline + k·period` (k ≥ 1)
/// strictly after `now_ns`. An alarm with a zero period fires once and is then removed (as
/// if cancelled after firing), and so is one whose next deadline would overflow `u64`;
/// either way a `pop_expired` loop always terminates.
///
/// A slot `>= N` is a caller bug: `set` debug-asserts and otherwise ignores it; cancels
/// report that there was nothing to cancel.
pub struct TimerQueue<const N: usize> {
    /// Heap position `i` is `heap[i / 2][i % 2]` (2·N entries without generic const
    /// arithmetic); positions `0..len` are in use.
    heap: [[Entry; 2]; N],
    /// `position[slot][kind]` = heap position + 1, 0 = no such timer.
    position: [[u32; 2]; N],
    len: usize,
}

impl<const N: usize> TimerQueue<N> {
    /// Compile-time check that slots fit in `u16` (and so positions in `u32`).
    const SLOTS_FIT: () = assert!(
        N <= u16::MAX as usize + 1,
        "TimerQueue supports at most 65536 slots"
    );

    /// Empty queue; storage is inline (2·N entries). `const` so the kernel can keep it in a
    /// static (prefer an all-zero initial value so it lands in .bss).
    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::SLOTS_FIT;
        Self {
            heap: [[Entry::ZERO; 2]; N],
            position: [[0; 2]; N],
            len: 0,
        }
    }

    fn at(&self, i: usize) -> Entry {
        self.heap[i / 2][i % 2]
    }

    /// Writes `entry` at heap position `i` and records the position.
    fn put(&mut self, i: usize, entry: Entry) {
        self.heap[i / 2][i % 2] = entry;
        // i < 2·N <= 2^17, so it fits.
        self.position[usize::from(entry.slot)][usize::from(entry.kind)] = i as u32 + 1;
    }

    fn sift_up(&mut self, mut i: usize) {
        let entry = self.at(i);
        while i > 0 {
            let parent = (i - 1) / 2;
            let above = self.at(parent);
            if above.key() <= entry.key() {
                break;
            }
            self.put(i, above);
            i = parent;
        }
        self.put(i, entry);
    }

    fn sift_down(&mut self, mut i: usize) {
        let entry = self.at(i);
        loop {
            let left = 2 * i + 1;
            if left >= self.len {
                break;
            }
            let right = left + 1;
            let mut child = left;
            if right < self.len && self.at(right).key() < self.at(left).key() {
                child = right;
            }
            let below = self.at(child);
            if entry.key() <= below.key() {
                break;
            }
            self.put(i, below);
            i = child;
        }
        self.put(i, entry);
    }

    /// Restores heap order after the entry at `i` changed key in either direction.
    fn resift(&mut self, i: usize) {
        if i > 0 && self.at(i).key() < self.at((i - 1) / 2).key() {
            self.sift_up(i);
        } else {
            self.sift_down(i);
        }
    }

    /// Removes the entry at heap position `i < len`.
    fn remove_at(&mut self, i: usize) {
        let removed = self.at(i);
        self.position[usize::from(removed.slot)][usize::from(removed.kind)] = 0;
        self.len -= 1;
        if i != self.len {
            let last = self.at(self.len);
            self.put(i, last);
            self.resift(i);
        }
    }

    /// Heap position of `slot`'s timer of `kind`, if set.
    fn find(&self, slot: u16, kind: usize) -> Option<usize> {
        let encoded = self.position.get(usize::from(slot))?[kind];
        (encoded as usize).checked_sub(1)
    }

    fn cancel(&mut self, slot: u16, kind: usize) -> bool {
        match self.find(slot, kind) {
            Some(i) => {
                self.remove_at(i);
                true
            }
            None => false,
        }
    }

    /// Sets (or replaces) the timer of `kind`'s variant for `slot`.
    pub fn set(&mut self, slot: u16, generation: u32, kind: TimerKind, deadline_ns: u64) {
        debug_assert!(
            usize::from(slot) < N,
            "timer queue: slot {slot} out of range (N = {N})"
        );
        if usize::from(slot) >= N {
            return;
        }
        let (kind, period_ns) = match kind {
            TimerKind::Wakeup => (WAKEUP, 0),
            TimerKind::Alarm { period_ns } => (ALARM, period_ns),
        };
        let entry = Entry {
            deadline_ns,
            period_ns,
            generation,
            slot,
            kind: kind as u16,
        };
        match self.find(slot, kind) {
            Some(i) => {
                self.put(i, entry);
                self.resift(i);
            }
            None => {
                let i = self.len;
                self.len += 1;
                self.put(i, entry);
                self.sift_up(i);
            }
        }
    }

    /// Cancels `slot`'s wake-up timer; returns whether there was one.
    pub fn cancel_wakeup(&mut self, slot: u16) -> bool {
        self.cancel(slot, WAKEUP)
    }

    /// Cancels `slot`'s alarm; returns whether there was one.
    pub fn cancel_alarm(&mut self, slot: u16) -> bool {
        self.cancel(slot, ALARM)
    }

    /// Cancels both timers of `slot` (thread exit).
    pub fn cancel_all(&mut self, slot: u16) {
        self.cancel(slot, WAKEUP);
        self.cancel(slot, ALARM);
    }

    /// The timers of `slot` are `slot`'s no more: they belong to thread `to` of generation
    /// `generation` from now on, with their deadlines and periods (a thread moved to
    /// another slot by a service takeover). Timers `to` had are replaced.
    pub fn move_timers(&mut self, slot: u16, to: u16, generation: u32) {
        if usize::from(slot) >= N || usize::from(to) >= N || slot == to {
            return;
        }
        for kind in [WAKEUP, ALARM] {
            self.cancel(to, kind);
            if let Some(i) = self.find(slot, kind) {
                let entry = self.at(i);
                self.remove_at(i);
                self.set(to, generation, entry.timer_kind(), entry.deadline_ns);
            }
        }
    }

    /// The timers of slots `a` and `b` change places (two threads that swap slots): `a`'s
    /// become `b`'s, of generation `generation_b`, and the other way round.
    pub fn swap_timers(&mut self, a: u16, generation_a: u32, b: u16, generation_b: u32) {
        if usize::from(a) >= N || usize::from(b) >= N || a == b {
            return;
        }
        for kind in [WAKEUP, ALARM] {
            let take = |queue: &mut Self, slot: u16| {
                let i = queue.find(slot, kind)?;
                let entry = queue.at(i);
                queue.remove_at(i);
                Some(entry)
            };
            let (of_a, of_b) = (take(self, a), take(self, b));
            if let Some(entry) = of_a {
                self.set(b, generation_b, entry.timer_kind(), entry.deadline_ns);
            }
            if let Some(entry) = of_b {
                self.set(a, generation_a, entry.timer_kind(), entry.deadline_ns);
            }
        }
    }

    /// Earliest deadline, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        (self.len > 0).then(|| self.at(0).deadline_ns)
    }

    /// Removes and returns one timer with `deadline_ns <= now_ns` (earliest first). An
    /// expired alarm is re-armed at `deadline + period` (skipping missed periods so it stays
    /// in the future relative to `now_ns`) before being returned.
    ///
    /// The returned `deadline_ns` is the deadline that expired (not the re-armed one). A
    /// zero-period alarm, or one whose next deadline would overflow `u64`, is removed
    /// instead of re-armed.
    pub fn pop_expired(&mut self, now_ns: u64) -> Option<Expired> {
        if self.len == 0 {
            return None;
        }
        let top = self.at(0);
        if top.deadline_ns > now_ns {
            return None;
        }
        let expired = Expired {
            slot: top.slot,
            generation: top.generation,
            kind: top.timer_kind(),
            deadline_ns: top.deadline_ns,
        };
        match next_alarm_deadline(&top, now_ns) {
            Some(next) => {
                self.put(
                    0,
                    Entry {
                        deadline_ns: next,
                        ..top
                    },
                );
                self.sift_down(0);
            }
            None => self.remove_at(0),
        }
        Some(expired)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// For an expired alarm, the first `deadline + k·period` (k ≥ 1) after `now_ns`; `None` for
/// a wake-up, a zero period, or on overflow (the timer is then removed).
fn next_alarm_deadline(entry: &Entry, now_ns: u64) -> Option<u64> {
    if usize::from(entry.kind) != ALARM || entry.period_ns == 0 {
        return None;
    }
    let periods = (now_ns.checked_sub(entry.deadline_ns)? / entry.period_ns).checked_add(1)?;
    entry
        .deadline_ns
        .checked_add(periods.checked_mul(entry.period_ns)?)
}

impl<const N: usize> Default for TimerQueue<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    type Queue = TimerQueue<8>;

    fn alarm(period_ns: u64) -> TimerKind {
        TimerKind::Alarm { period_ns }
    }

    fn drain<const N: usize>(queue: &mut TimerQueue<N>, now_ns: u64) -> Vec<Expired> {
        core::iter::from_fn(|| queue.pop_expired(now_ns)).collect()
    }

    /// Heap order and the position index agree with the heap contents.
    fn check_invariants<const N: usize>(queue: &TimerQueue<N>) {
        for i in 1..queue.len {
            assert!(
                queue.at((i - 1) / 2).key() <= queue.at(i).key(),
                "heap order at {i}"
            );
        }
        let mut indexed = 0;
        for slot in 0..N {
            for kind in [WAKEUP, ALARM] {
                if let Some(i) = queue.find(slot as u16, kind) {
                    assert!(i < queue.len);
                    let entry = queue.at(i);
                    assert_eq!(
                        (usize::from(entry.slot), usize::from(entry.kind)),
                        (slot, kind)
                    );
                    indexed += 1;
                }
            }
        }
        assert_eq!(indexed, queue.len);
    }

    #[test]
    fn a_static_is_possible_and_starts_empty() {
        static QUEUE: TimerQueue<64> = TimerQueue::new();
        assert!(QUEUE.is_empty());
        assert_eq!(QUEUE.next_deadline(), None);
    }

    #[test]
    fn pops_in_deadline_order_and_only_when_expired() {
        let mut queue = Queue::new();
        queue.set(0, 1, TimerKind::Wakeup, 300);
        queue.set(1, 1, TimerKind::Wakeup, 100);
        queue.set(2, 1, TimerKind::Wakeup, 200);
        queue.set(3, 1, TimerKind::Wakeup, 200);
        check_invariants(&queue);
        assert_eq!(queue.len(), 4);
        assert_eq!(queue.next_deadline(), Some(100));
        assert_eq!(queue.pop_expired(99), None);
        let popped: Vec<(u16, u64)> = drain(&mut queue, 250)
            .iter()
            .map(|e| (e.slot, e.deadline_ns))
            .collect();
        // Equal deadlines go by slot.
        assert_eq!(popped, [(1, 100), (2, 200), (3, 200)]);
        assert_eq!(queue.next_deadline(), Some(300));
        let last = queue.pop_expired(300).unwrap();
        assert_eq!(
            last,
            Expired {
                slot: 0,
                generation: 1,
                kind: TimerKind::Wakeup,
                deadline_ns: 300
            }
        );
        assert!(queue.is_empty());
    }

    #[test]
    fn wakeup_comes_before_alarm_of_the_same_slot_and_deadline() {
        let mut queue = Queue::new();
        queue.set(4, 9, alarm(0), 50);
        queue.set(4, 9, TimerKind::Wakeup, 50);
        assert_eq!(queue.len(), 2);
        let kinds: Vec<TimerKind> = drain(&mut queue, 50).iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [TimerKind::Wakeup, alarm(0)]);
    }

    #[test]
    fn set_replaces_the_same_kind_only() {
        let mut queue = Queue::new();
        queue.set(2, 1, TimerKind::Wakeup, 500);
        queue.set(2, 1, alarm(1000), 700);
        queue.set(5, 1, TimerKind::Wakeup, 600);
        // Earlier and later replacements, with a new generation.
        queue.set(2, 2, TimerKind::Wakeup, 100);
        check_invariants(&queue);
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.next_deadline(), Some(100));
        queue.set(2, 3, TimerKind::Wakeup, 900);
        check_invariants(&queue);
        assert_eq!(queue.next_deadline(), Some(600));
        let expired = drain(&mut queue, 1000);
        assert_eq!(expired.len(), 3);
        assert_eq!((expired[0].slot, expired[0].deadline_ns), (5, 600));
        assert_eq!(expired[1].kind, alarm(1000));
        assert_eq!(
            expired[2],
            Expired {
                slot: 2,
                generation: 3,
                kind: TimerKind::Wakeup,
                deadline_ns: 900
            }
        );
        // Replacing an alarm's period takes effect too.
        queue.set(2, 3, alarm(10), 1005);
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.pop_expired(1005).unwrap().kind, alarm(10));
        assert_eq!(queue.next_deadline(), Some(1015));
    }

    #[test]
    fn cancel_removes_only_what_was_asked() {
        let mut queue = Queue::new();
        for slot in 0..6 {
            queue.set(slot, 0, TimerKind::Wakeup, 100 + u64::from(slot));
            queue.set(slot, 0, alarm(50), 10 + u64::from(slot));
        }
        assert!(queue.cancel_wakeup(3));
        assert!(!queue.cancel_wakeup(3));
        assert!(queue.cancel_alarm(0)); // the root
        assert!(!queue.cancel_alarm(0));
        check_invariants(&queue);
        queue.cancel_all(5);
        queue.cancel_all(5);
        check_invariants(&queue);
        assert_eq!(queue.len(), 12 - 4);
        assert!(!queue.cancel_wakeup(7)); // never set
        assert!(!queue.cancel_alarm(200)); // out of range
                                           // Alarms re-arm at 60.. (past 200: 210..), so draining at 200 fires each once.
        let mut fired: Vec<(u16, bool)> = drain(&mut queue, 200)
            .iter()
            .map(|e| (e.slot, e.kind == TimerKind::Wakeup))
            .collect();
        fired.sort_unstable();
        fired.dedup();
        assert_eq!(
            fired,
            [
                (0, true),
                (1, false),
                (1, true),
                (2, false),
                (2, true),
                (3, false),
                (4, false),
                (4, true),
            ]
        );
    }

    #[test]
    fn alarm_rearms_at_the_next_period_after_now() {
        let mut queue = Queue::new();
        queue.set(1, 7, alarm(100), 1000);
        // On time: next deadline is one period later.
        let fired = queue.pop_expired(1000).unwrap();
        assert_eq!(
            fired,
            Expired {
                slot: 1,
                generation: 7,
                kind: alarm(100),
                deadline_ns: 1000
            }
        );
        assert_eq!(queue.next_deadline(), Some(1100));
        assert_eq!(queue.pop_expired(1000), None);
        // Late by 3.5 periods: fires once, missed periods skipped.
        assert_eq!(queue.pop_expired(1450).unwrap().deadline_ns, 1100);
        assert_eq!(queue.next_deadline(), Some(1500));
        assert_eq!(queue.pop_expired(1450), None);
        // Exactly on a later multiple: the next deadline is strictly after now.
        assert_eq!(queue.pop_expired(1700).unwrap().deadline_ns, 1500);
        assert_eq!(queue.next_deadline(), Some(1800));
        assert_eq!(queue.len(), 1);
    }

    #[test]
    fn rearmed_alarm_is_reordered_among_other_timers() {
        let mut queue = Queue::new();
        queue.set(0, 0, alarm(10), 5);
        queue.set(1, 0, TimerKind::Wakeup, 12);
        queue.set(2, 0, TimerKind::Wakeup, 20);
        let order: Vec<(u16, u64)> = core::iter::from_fn(|| queue.pop_expired(30))
            .map(|e| (e.slot, e.deadline_ns))
            .collect();
        // The alarm fires once at 5 and is re-armed at 35 (> 30).
        assert_eq!(order, [(0, 5), (1, 12), (2, 20)]);
        assert_eq!(queue.next_deadline(), Some(35));
        check_invariants(&queue);
    }

    #[test]
    fn zero_period_alarm_fires_once() {
        let mut queue = Queue::new();
        queue.set(3, 0, alarm(0), 10);
        assert_eq!(queue.pop_expired(u64::MAX).unwrap().kind, alarm(0));
        assert_eq!(queue.pop_expired(u64::MAX), None);
        assert!(queue.is_empty());
        assert!(!queue.cancel_alarm(3));
    }

    #[test]
    fn alarm_whose_next_deadline_overflows_is_removed() {
        let mut queue = Queue::new();
        queue.set(0, 0, alarm(u64::MAX / 2), u64::MAX - 10);
        queue.set(1, 0, alarm(1), 0);
        queue.set(2, 0, alarm(3), u64::MAX - 5);
        let fired = drain(&mut queue, u64::MAX);
        assert_eq!(fired.len(), 3);
        assert!(queue.is_empty());
    }

    #[test]
    fn every_deadline_fires_when_now_is_the_maximum() {
        let mut queue = Queue::new();
        queue.set(0, 0, TimerKind::Wakeup, u64::MAX);
        queue.set(1, 0, TimerKind::Wakeup, 0);
        assert_eq!(drain(&mut queue, u64::MAX).len(), 2);
    }

    #[test]
    fn largest_slot_count_works() {
        // 4 MiB of queue: build it on a thread with room for it.
        std::thread::Builder::new()
            .stack_size(32 << 20)
            .spawn(|| {
                let mut queue: std::boxed::Box<TimerQueue<65536>> = std::boxed::Box::default();
                queue.set(u16::MAX, 1, alarm(5), 10);
                queue.set(0, 1, TimerKind::Wakeup, 10);
                assert_eq!(queue.pop_expired(10).unwrap().slot, 0);
                assert_eq!(queue.pop_expired(10).unwrap().slot, u16::MAX);
                assert!(queue.cancel_alarm(u16::MAX));
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "out of range")]
    fn out_of_range_slot_is_a_debug_assertion() {
        let mut queue = Queue::new();
        queue.set(8, 0, TimerKind::Wakeup, 1);
    }

    /// The model: a plain list of timers, scanned linearly.
    #[derive(Clone, Copy, Debug)]
    struct ModelTimer {
        slot: u16,
        generation: u32,
        kind: TimerKind,
        deadline_ns: u64,
    }

    fn is_alarm(kind: TimerKind) -> bool {
        matches!(kind, TimerKind::Alarm { .. })
    }

    fn model_pop(model: &mut Vec<ModelTimer>, now_ns: u64) -> Option<Expired> {
        let at = model
            .iter()
            .enumerate()
            .filter(|(_, t)| t.deadline_ns <= now_ns)
            .min_by_key(|(_, t)| (t.deadline_ns, t.slot, is_alarm(t.kind)))?
            .0;
        let timer = model[at];
        let expired = Expired {
            slot: timer.slot,
            generation: timer.generation,
            kind: timer.kind,
            deadline_ns: timer.deadline_ns,
        };
        // Re-arm computed in u128, so overflow shows up as a value past u64::MAX.
        let mut next = None;
        if let TimerKind::Alarm { period_ns } = timer.kind {
            if period_ns > 0 {
                let (deadline, now, period) = (
                    u128::from(timer.deadline_ns),
                    u128::from(now_ns),
                    u128::from(period_ns),
                );
                let wide = deadline + ((now - deadline) / period + 1) * period;
                assert!(wide > now && wide - period <= now);
                next = u64::try_from(wide).ok();
            }
        }
        match next {
            Some(deadline_ns) => model[at].deadline_ns = deadline_ns,
            None => {
                model.remove(at);
            }
        }
        Some(expired)
    }

    #[derive(Clone, Debug)]
    enum Op {
        Set(u16, u32, TimerKind, u64),
        CancelWakeup(u16),
        CancelAlarm(u16),
        CancelAll(u16),
        Pop(u64),
    }

    const MODEL_SLOTS: u16 = 6;

    fn deadline() -> impl Strategy<Value = u64> {
        prop_oneof![8 => 0u64..2_000, 1 => (u64::MAX - 2_000)..=u64::MAX]
    }

    fn kind() -> impl Strategy<Value = TimerKind> {
        prop_oneof![
            Just(TimerKind::Wakeup),
            (prop_oneof![Just(0u64), 1u64..300, Just(u64::MAX / 3)]).prop_map(alarm),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        let slot = 0..MODEL_SLOTS + 1; // MODEL_SLOTS is out of range: cancels only
        prop_oneof![
            4 => (0..MODEL_SLOTS, any::<u32>(), kind(), deadline())
                .prop_map(|(s, g, k, d)| Op::Set(s, g, k, d)),
            1 => slot.clone().prop_map(Op::CancelWakeup),
            1 => slot.clone().prop_map(Op::CancelAlarm),
            1 => slot.prop_map(Op::CancelAll),
            3 => prop_oneof![0u64..2_500, Just(u64::MAX)].prop_map(Op::Pop),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn matches_a_linear_scan_model(ops in proptest::collection::vec(op(), 1..80)) {
            let mut queue = TimerQueue::<{ MODEL_SLOTS as usize }>::new();
            let mut model: Vec<ModelTimer> = Vec::new();
            let find = |model: &Vec<ModelTimer>, slot: u16, alarm: bool| {
                model.iter().position(|t| t.slot == slot && is_alarm(t.kind) == alarm)
            };
            for op in ops {
                match op {
                    Op::Set(slot, generation, kind, deadline_ns) => {
                        queue.set(slot, generation, kind, deadline_ns);
                        let timer = ModelTimer { slot, generation, kind, deadline_ns };
                        match find(&model, slot, is_alarm(kind)) {
                            Some(at) => model[at] = timer,
                            None => model.push(timer),
                        }
                    }
                    Op::CancelWakeup(slot) | Op::CancelAlarm(slot) => {
                        let alarm = matches!(op, Op::CancelAlarm(_));
                        let expected = find(&model, slot, alarm).map(|at| model.remove(at));
                        let cancelled = if alarm {
                            queue.cancel_alarm(slot)
                        } else {
                            queue.cancel_wakeup(slot)
                        };
                        prop_assert_eq!(cancelled, expected.is_some());
                    }
                    Op::CancelAll(slot) => {
                        queue.cancel_all(slot);
                        model.retain(|t| t.slot != slot);
                    }
                    Op::Pop(now_ns) => {
                        // Drain everything due, comparing each pop.
                        loop {
                            let expected = model_pop(&mut model, now_ns);
                            prop_assert_eq!(queue.pop_expired(now_ns), expected);
                            if expected.is_none() {
                                break;
                            }
                        }
                    }
                }
                check_invariants(&queue);
                prop_assert_eq!(queue.len(), model.len());
                prop_assert_eq!(queue.next_deadline(), model.iter().map(|t| t.deadline_ns).min());
            }
        }
    }

    #[test]
    fn moved_timers_keep_their_deadlines_under_the_new_slot() {
        let mut q: TimerQueue<8> = TimerQueue::new();
        q.set(2, 5, TimerKind::Alarm { period_ns: 10 }, 100);
        q.set(2, 5, TimerKind::Wakeup, 50);
        q.set(3, 1, TimerKind::Wakeup, 70);
        q.set(6, 9, TimerKind::Wakeup, 10);
        q.move_timers(2, 6, 7);
        assert!(
            !q.cancel_alarm(2) && !q.cancel_wakeup(2),
            "slot 2 has none left"
        );
        let mut popped = std::vec::Vec::new();
        while let Some(expired) = q.pop_expired(105) {
            popped.push((
                expired.slot,
                expired.generation,
                expired.kind,
                expired.deadline_ns,
            ));
            if popped.len() == 3 {
                break;
            }
        }
        assert_eq!(
            popped,
            [
                (6, 7, TimerKind::Wakeup, 50),
                (3, 1, TimerKind::Wakeup, 70),
                (6, 7, TimerKind::Alarm { period_ns: 10 }, 100),
            ],
            "slot 6's own wake-up at 10 was replaced"
        );
        q.move_timers(9, 1, 1);
        q.move_timers(1, 1, 1);
    }

    #[test]
    fn swapped_timers_change_slots_and_generations() {
        let mut q: TimerQueue<8> = TimerQueue::new();
        q.set(1, 3, TimerKind::Alarm { period_ns: 10 }, 40);
        q.set(2, 4, TimerKind::Wakeup, 30);
        q.swap_timers(1, 3, 2, 4);
        let first = q.pop_expired(100).unwrap();
        assert_eq!(
            (first.slot, first.generation, first.kind),
            (1, 3, TimerKind::Wakeup)
        );
        let second = q.pop_expired(100).unwrap();
        assert_eq!(
            (second.slot, second.generation, second.kind),
            (2, 4, TimerKind::Alarm { period_ns: 10 })
        );
    }
}
