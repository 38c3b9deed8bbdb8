//! Scheduling: run queues (a FIFO per priority, lowest number first), quanta and preemption.
//!
//! A thread runs until it blocks, yields, uses up its quantum, or a thread of a more urgent
//! priority becomes ready. `decide` says what happens to the running thread when the kernel
//! is about to leave; `tick` and `refill_if_spent` keep its quantum.

/// Number of priority levels; 0 is the highest.
pub const PRIORITIES: usize = 16;

/// Run queues over thread slots `0..N`. Intrusive: one `next` link per slot, so a thread is
/// on at most one queue and every operation is O(1) except `remove` (O(queue length)).
///
/// Representation: every link stores `slot + 1` in a `u16` with 0 meaning "none", and each
/// slot records `priority + 1` (0 = not queued), so the empty value is all-zero bytes and a
/// `static` of it lands in .bss. `N` must be at most `u16::MAX` (checked at compile time).
///
/// Misuse (a slot `>= N`, pushing a slot that is already queued, a priority
/// `>= PRIORITIES`) trips a debug assertion; in release builds an out-of-range or
/// already-queued slot is ignored and an out-of-range priority is clamped to the lowest
/// priority (`PRIORITIES - 1`), so the thread stays runnable rather than being lost.
pub struct RunQueues<const N: usize> {
    /// `next[slot]` = the following slot + 1 in the same queue; 0 = last or not queued.
    next: [u16; N],
    /// `level[slot]` = the slot's priority + 1 while queued; 0 = not queued.
    level: [u8; N],
    /// First slot + 1 of each priority's FIFO; 0 = empty.
    head: [u16; PRIORITIES],
    /// Last slot + 1 of each priority's FIFO; 0 = empty.
    tail: [u16; PRIORITIES],
    /// Bit `p` set = priority `p` has at least one queued slot.
    nonempty: u16,
    /// Number of queued slots.
    len: usize,
}

const _: () = assert!(PRIORITIES <= u16::BITS as usize);

/// Encodes a slot as a link (`slot + 1`); callers guarantee `slot < N <= u16::MAX`.
const fn link(slot: u16) -> u16 {
    slot + 1
}

/// Decodes a link: `None` for 0 ("no slot").
const fn unlink(link: u16) -> Option<u16> {
    link.checked_sub(1)
}

impl<const N: usize> RunQueues<N> {
    /// Compile-time check that every slot + 1 fits in a `u16` link.
    const SLOTS_FIT: () = assert!(
        N <= u16::MAX as usize,
        "RunQueues supports at most u16::MAX slots"
    );

    /// Empty queues. Must be `const` (the kernel may place it in a static).
    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::SLOTS_FIT;
        Self {
            next: [0; N],
            level: [0; N],
            head: [0; PRIORITIES],
            tail: [0; PRIORITIES],
            nonempty: 0,
            len: 0,
        }
    }

    /// Validates a push: `Some(priority index)` if `slot` may be queued (see the type docs
    /// for what happens on misuse).
    fn admit(&self, slot: u16, priority: u8) -> Option<usize> {
        let index = usize::from(slot);
        debug_assert!(index < N, "run queue: slot {slot} out of range (N = {N})");
        debug_assert!(
            usize::from(priority) < PRIORITIES,
            "run queue: priority {priority} out of range"
        );
        if index >= N {
            return None;
        }
        debug_assert!(
            self.level[index] == 0,
            "run queue: slot {slot} already queued"
        );
        if self.level[index] != 0 {
            return None;
        }
        Some(usize::from(priority).min(PRIORITIES - 1))
    }

    /// Marks `slot` as queued at priority `p` (the links are set by the caller).
    fn mark_queued(&mut self, slot: u16, p: usize) {
        // `p < PRIORITIES <= 16`, so `p + 1` fits in a u8.
        self.level[usize::from(slot)] = p as u8 + 1;
        self.nonempty |= 1 << p;
        self.len += 1;
    }

    /// Appends `slot` at priority `priority`. Panics (debug assertion) if already queued or
    /// out of range; in release the call is ignored for an already-queued slot.
    pub fn push_back(&mut self, slot: u16, priority: u8) {
        let Some(p) = self.admit(slot, priority) else {
            return;
        };
        self.next[usize::from(slot)] = 0;
        match unlink(self.tail[p]) {
            Some(last) => self.next[usize::from(last)] = link(slot),
            None => self.head[p] = link(slot),
        }
        self.tail[p] = link(slot);
        self.mark_queued(slot, p);
    }

    /// Puts `slot` at the head of its priority (used when a preempted thread still has
    /// quantum left).
    pub fn push_front(&mut self, slot: u16, priority: u8) {
        let Some(p) = self.admit(slot, priority) else {
            return;
        };
        self.next[usize::from(slot)] = self.head[p];
        if self.head[p] == 0 {
            self.tail[p] = link(slot);
        }
        self.head[p] = link(slot);
        self.mark_queued(slot, p);
    }

    /// Removes and returns the first slot of the highest non-empty priority.
    pub fn pop_highest(&mut self) -> Option<u16> {
        let p = usize::from(self.highest_priority()?);
        let slot = unlink(self.head[p])?;
        let index = usize::from(slot);
        self.head[p] = self.next[index];
        if self.head[p] == 0 {
            self.tail[p] = 0;
            self.nonempty &= !(1 << p);
        }
        self.next[index] = 0;
        self.level[index] = 0;
        self.len -= 1;
        Some(slot)
    }

    /// Highest priority with a queued slot.
    pub fn highest_priority(&self) -> Option<u8> {
        if self.nonempty == 0 {
            None
        } else {
            // At most 15: the bitmap only has PRIORITIES = 16 meaningful bits.
            Some(self.nonempty.trailing_zeros() as u8)
        }
    }

    /// Whether a slot pushed to the back of `priority` now would be the next `pop_highest`:
    /// nothing queued is as urgent (a slot of the same priority would be ahead of it). The
    /// IPC fast path's direct switch asks this, so it gives the CPU to exactly the thread
    /// the queues would have.
    pub fn pushed_back_runs_next(&self, priority: u8) -> bool {
        self.highest_priority()
            .is_none_or(|queued| queued > priority)
    }

    /// Priority `slot` is queued at, or `None` if it is not queued (or out of range).
    pub fn priority_of(&self, slot: u16) -> Option<u8> {
        self.level.get(usize::from(slot))?.checked_sub(1)
    }

    /// Removes `slot` wherever it is queued; returns whether it was queued.
    pub fn remove(&mut self, slot: u16) -> bool {
        let Some(p) = self.priority_of(slot) else {
            return false;
        };
        let p = usize::from(p);
        let index = usize::from(slot);
        let mut previous: Option<u16> = None;
        let mut cursor = unlink(self.head[p]);
        while let Some(current) = cursor {
            if current == slot {
                let after = self.next[index];
                match previous {
                    Some(prev) => self.next[usize::from(prev)] = after,
                    None => self.head[p] = after,
                }
                if self.tail[p] == link(slot) {
                    self.tail[p] = previous.map_or(0, link);
                }
                if self.head[p] == 0 {
                    self.nonempty &= !(1 << p);
                }
                self.next[index] = 0;
                self.level[index] = 0;
                self.len -= 1;
                return true;
            }
            previous = Some(current);
            cursor = unlink(self.next[usize::from(current)]);
        }
        debug_assert!(false, "run queue: slot {slot} marked queued but not linked");
        false
    }

    pub fn is_queued(&self, slot: u16) -> bool {
        self.priority_of(slot).is_some()
    }

    /// Number of queued slots.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<const N: usize> Default for RunQueues<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// The running thread, as the scheduler sees it when the kernel is about to leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Running {
    pub priority: u8,
    /// Timer ticks left in its quantum; 0 = spent.
    pub quantum_left: u8,
}

/// What happens to the thread that was running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// It keeps the CPU: nobody more urgent is ready, and if its quantum is spent nobody
    /// of its priority either, so it starts a fresh one (`refill_if_spent`).
    Continue,
    /// Preempted with its quantum spent by a ready thread of the same or a more urgent
    /// priority: to the back of its queue, with a fresh quantum.
    PreemptToBack,
    /// Preempted by a more urgent thread with quantum left: to the front of its queue, so
    /// it resumes first at its priority, with the quantum it has left.
    PreemptToFront,
    /// It blocked, exited or yielded (a yield has already queued it): a voluntary switch.
    Voluntary,
}

impl Decision {
    /// Whether the thread loses the CPU while still runnable (an involuntary switch).
    #[inline]
    pub const fn is_preemption(self) -> bool {
        matches!(self, Decision::PreemptToBack | Decision::PreemptToFront)
    }
}

/// Decides for the thread that was running: `running` is `None` if it is no longer
/// runnable (blocked, exited, yielded), and `queues` holds the ready threads. The queues are
/// only looked at for a thread still running.
#[inline]
pub fn decide<const N: usize>(running: Option<Running>, queues: &RunQueues<N>) -> Decision {
    let Some(Running {
        priority,
        quantum_left,
    }) = running
    else {
        return Decision::Voluntary;
    };
    let waiting = queues.highest_priority();
    let more_urgent_waiting = waiting.is_some_and(|p| p < priority);
    let peer_waiting = waiting.is_some_and(|p| p <= priority);
    let quantum_over = quantum_left == 0;
    if !(more_urgent_waiting || (quantum_over && peer_waiting)) {
        Decision::Continue
    } else if quantum_over {
        Decision::PreemptToBack
    } else {
        Decision::PreemptToFront
    }
}

/// The running thread's quantum after one timer tick (a spent quantum stays spent until
/// the kernel's exit acts on it through `decide`).
#[inline]
pub const fn tick(quantum_left: u8) -> u8 {
    quantum_left.saturating_sub(1)
}

/// Sets the quantum of a thread being dispatched: it keeps what it has left, or starts a
/// fresh `quantum` if it has none.
#[inline]
pub fn refill_if_spent(quantum_left: &mut u8, quantum: u8) {
    if *quantum_left == 0 {
        *quantum_left = quantum;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;
    use std::vec::Vec;

    type Queues = RunQueues<16>;

    fn drain<const N: usize>(queues: &mut RunQueues<N>) -> Vec<u16> {
        core::iter::from_fn(|| queues.pop_highest()).collect()
    }

    /// Walks every list and checks it against `level`, `tail`, the bitmap and `len`.
    fn check_invariants<const N: usize>(queues: &RunQueues<N>) {
        let mut seen = 0;
        for p in 0..PRIORITIES {
            let mut cursor = unlink(queues.head[p]);
            let mut last = None;
            let mut count = 0;
            while let Some(slot) = cursor {
                assert_eq!(usize::from(queues.level[usize::from(slot)]), p + 1);
                count += 1;
                assert!(count <= N, "cycle in priority {p}");
                last = Some(slot);
                cursor = unlink(queues.next[usize::from(slot)]);
            }
            assert_eq!(unlink(queues.tail[p]), last);
            assert_eq!(queues.nonempty & (1 << p) != 0, count > 0);
            seen += count;
        }
        assert_eq!(seen, queues.len());
        assert_eq!(queues.level.iter().filter(|&&l| l != 0).count(), seen);
    }

    #[test]
    fn a_static_is_possible_and_starts_empty() {
        static QUEUES: RunQueues<64> = RunQueues::new();
        assert!(QUEUES.is_empty());
        assert_eq!(QUEUES.highest_priority(), None);
        assert!(!QUEUES.is_queued(0));
    }

    #[test]
    fn fifo_within_a_priority() {
        let mut queues = Queues::new();
        for slot in [3, 1, 7, 0] {
            queues.push_back(slot, 5);
        }
        assert_eq!(queues.len(), 4);
        assert_eq!(queues.highest_priority(), Some(5));
        assert_eq!(drain(&mut queues), [3, 1, 7, 0]);
        assert!(queues.is_empty());
        assert_eq!(queues.highest_priority(), None);
        check_invariants(&queues);
    }

    #[test]
    fn higher_priority_first() {
        let mut queues = Queues::new();
        queues.push_back(1, 15);
        queues.push_back(2, 3);
        queues.push_back(3, 0);
        queues.push_back(4, 3);
        queues.push_back(5, 15);
        assert_eq!(queues.highest_priority(), Some(0));
        assert_eq!(queues.pop_highest(), Some(3));
        assert_eq!(queues.highest_priority(), Some(3));
        assert_eq!(drain(&mut queues), [2, 4, 1, 5]);
        check_invariants(&queues);
    }

    #[test]
    fn push_front_goes_ahead_of_its_priority_only() {
        let mut queues = Queues::new();
        queues.push_back(1, 2);
        queues.push_back(2, 2);
        queues.push_back(3, 1);
        queues.push_front(4, 2);
        queues.push_front(5, 7);
        assert_eq!(queues.priority_of(4), Some(2));
        check_invariants(&queues);
        assert_eq!(drain(&mut queues), [3, 4, 1, 2, 5]);
    }

    #[test]
    fn push_front_into_empty_then_push_back() {
        let mut queues = Queues::new();
        queues.push_front(9, 4);
        queues.push_back(8, 4);
        check_invariants(&queues);
        assert_eq!(drain(&mut queues), [9, 8]);
    }

    #[test]
    fn remove_head_middle_tail_and_absent() {
        let mut queues = Queues::new();
        for slot in 0..5 {
            queues.push_back(slot, 6);
        }
        assert!(queues.remove(2)); // middle
        check_invariants(&queues);
        assert!(queues.remove(0)); // head
        check_invariants(&queues);
        assert!(queues.remove(4)); // tail
        check_invariants(&queues);
        assert!(!queues.remove(4));
        assert!(!queues.remove(15));
        assert!(!queues.remove(1000)); // out of range: not queued
        assert_eq!(queues.len(), 2);
        // The tail was fixed up: a new push lands after slot 3.
        queues.push_back(4, 6);
        assert_eq!(drain(&mut queues), [1, 3, 4]);
    }

    #[test]
    fn removing_the_only_slot_clears_the_level() {
        let mut queues = Queues::new();
        queues.push_back(7, 0);
        queues.push_back(8, 9);
        assert!(queues.remove(7));
        assert_eq!(queues.highest_priority(), Some(9));
        check_invariants(&queues);
        assert_eq!(drain(&mut queues), [8]);
    }

    #[test]
    fn is_queued_and_len_track_membership() {
        let mut queues = Queues::new();
        assert!(!queues.is_queued(3));
        queues.push_back(3, 1);
        assert!(queues.is_queued(3));
        assert_eq!(queues.priority_of(3), Some(1));
        assert_eq!(queues.len(), 1);
        assert_eq!(queues.pop_highest(), Some(3));
        assert!(!queues.is_queued(3));
        assert_eq!(queues.priority_of(3), None);
        assert_eq!(queues.len(), 0);
        // A popped slot can be queued again, anywhere.
        queues.push_front(3, 12);
        assert_eq!(queues.priority_of(3), Some(12));
        assert!(!queues.is_queued(u16::MAX));
    }

    #[test]
    fn largest_slot_count_works() {
        let mut queues: std::boxed::Box<RunQueues<{ u16::MAX as usize }>> =
            std::boxed::Box::default();
        queues.push_back(u16::MAX - 1, 0);
        queues.push_back(0, 0);
        assert!(queues.is_queued(u16::MAX - 1));
        assert_eq!(queues.pop_highest(), Some(u16::MAX - 1));
        assert_eq!(queues.pop_highest(), Some(0));
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "already queued")]
    fn double_push_is_a_debug_assertion() {
        let mut queues = Queues::new();
        queues.push_back(1, 0);
        queues.push_front(1, 3);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "out of range")]
    fn out_of_range_slot_is_a_debug_assertion() {
        let mut queues = Queues::new();
        queues.push_back(16, 0);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "out of range")]
    fn out_of_range_priority_is_a_debug_assertion() {
        let mut queues = Queues::new();
        queues.push_back(1, 16);
    }

    fn running(priority: u8, quantum_left: u8) -> Option<Running> {
        Some(Running {
            priority,
            quantum_left,
        })
    }

    /// Queues with one ready thread at `priority` (or none).
    fn waiting(priority: Option<u8>) -> Queues {
        let mut queues = Queues::new();
        if let Some(priority) = priority {
            queues.push_back(9, priority);
        }
        queues
    }

    #[test]
    fn a_thread_no_longer_running_switches_voluntarily() {
        for ready in [None, Some(0), Some(15)] {
            assert_eq!(decide(None, &waiting(ready)), Decision::Voluntary);
        }
        assert!(!Decision::Voluntary.is_preemption());
    }

    #[test]
    fn alone_or_ahead_it_keeps_running() {
        // Nobody ready, or only less urgent threads, with or without quantum left.
        for ready in [None, Some(6)] {
            assert_eq!(decide(running(5, 3), &waiting(ready)), Decision::Continue);
            assert_eq!(decide(running(5, 0), &waiting(ready)), Decision::Continue);
        }
        assert!(!Decision::Continue.is_preemption());
    }

    #[test]
    fn a_peer_waits_until_the_quantum_is_spent() {
        assert_eq!(decide(running(5, 1), &waiting(Some(5))), Decision::Continue);
        assert_eq!(
            decide(running(5, 0), &waiting(Some(5))),
            Decision::PreemptToBack
        );
    }

    #[test]
    fn a_more_urgent_thread_preempts_at_once() {
        assert_eq!(
            decide(running(5, 2), &waiting(Some(4))),
            Decision::PreemptToFront
        );
        assert_eq!(
            decide(running(15, 5), &waiting(Some(0))),
            Decision::PreemptToFront
        );
        // With the quantum spent as well, it goes to the back with a fresh one.
        assert_eq!(
            decide(running(5, 0), &waiting(Some(4))),
            Decision::PreemptToBack
        );
        assert!(Decision::PreemptToFront.is_preemption());
        assert!(Decision::PreemptToBack.is_preemption());
    }

    #[test]
    fn the_most_urgent_waiting_priority_decides() {
        let mut queues = waiting(Some(9));
        queues.push_back(3, 2);
        assert_eq!(decide(running(4, 3), &queues), Decision::PreemptToFront);
    }

    #[test]
    fn ticks_count_the_quantum_down_to_zero_and_stay() {
        let mut left = 5;
        let mut ticks = 0;
        while left > 0 {
            left = tick(left);
            ticks += 1;
        }
        assert_eq!(ticks, 5);
        assert_eq!(tick(0), 0);
    }

    #[test]
    fn dispatch_refills_only_a_spent_quantum() {
        for (left, after) in [(0, 5), (2, 2), (5, 5)] {
            let mut quantum_left = left;
            refill_if_spent(&mut quantum_left, 5);
            assert_eq!(quantum_left, after);
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        PushBack(u16, u8),
        PushFront(u16, u8),
        Pop,
        Remove(u16),
    }

    const MODEL_SLOTS: u16 = 12;

    fn op() -> impl Strategy<Value = Op> {
        // Few priorities half the time so levels hold several slots.
        let priority = prop_oneof![0u8..3, 0u8..PRIORITIES as u8];
        prop_oneof![
            3 => (0..MODEL_SLOTS, priority.clone()).prop_map(|(s, p)| Op::PushBack(s, p)),
            2 => (0..MODEL_SLOTS, priority).prop_map(|(s, p)| Op::PushFront(s, p)),
            2 => Just(Op::Pop),
            2 => (0..MODEL_SLOTS + 2).prop_map(Op::Remove),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn matches_a_vecdeque_model(ops in proptest::collection::vec(op(), 1..120)) {
            let mut queues = RunQueues::<{ MODEL_SLOTS as usize }>::new();
            let mut model: Vec<VecDeque<u16>> = (0..PRIORITIES).map(|_| VecDeque::new()).collect();
            let queued = |model: &Vec<VecDeque<u16>>, slot: u16| {
                model.iter().any(|q| q.contains(&slot))
            };
            for op in ops {
                match op {
                    Op::PushBack(slot, p) => {
                        if !queued(&model, slot) {
                            queues.push_back(slot, p);
                            model[usize::from(p)].push_back(slot);
                        }
                    }
                    Op::PushFront(slot, p) => {
                        if !queued(&model, slot) {
                            queues.push_front(slot, p);
                            model[usize::from(p)].push_front(slot);
                        }
                    }
                    Op::Pop => {
                        let expected = model.iter_mut().find_map(|q| q.pop_front());
                        prop_assert_eq!(queues.pop_highest(), expected);
                    }
                    Op::Remove(slot) => {
                        let mut found = false;
                        for q in model.iter_mut() {
                            if let Some(at) = q.iter().position(|&s| s == slot) {
                                q.remove(at);
                                found = true;
                            }
                        }
                        prop_assert_eq!(queues.remove(slot), found);
                    }
                }
                check_invariants(&queues);
                // What the direct switch assumes: a slot pushed to the back now is popped
                // next exactly when `pushed_back_runs_next` says so (checked on a model
                // copy: the model's order is the queues', as checked below).
                if let Some(fresh) = (0..MODEL_SLOTS).find(|&slot| !queued(&model, slot)) {
                    for p in 0..PRIORITIES as u8 {
                        let mut pushed = model.clone();
                        pushed[usize::from(p)].push_back(fresh);
                        let next = pushed.iter_mut().find_map(|q| q.pop_front());
                        prop_assert_eq!(queues.pushed_back_runs_next(p), next == Some(fresh), "priority {}", p);
                    }
                }
                prop_assert_eq!(queues.len(), model.iter().map(VecDeque::len).sum::<usize>());
                let highest = model.iter().position(|q| !q.is_empty()).map(|p| p as u8);
                prop_assert_eq!(queues.highest_priority(), highest);
                for slot in 0..MODEL_SLOTS {
                    let expected = model.iter().position(|q| q.contains(&slot)).map(|p| p as u8);
                    prop_assert_eq!(queues.priority_of(slot), expected);
                    prop_assert_eq!(queues.is_queued(slot), expected.is_some());
                }
            }
            let mut expected = Vec::new();
            for q in &model {
                expected.extend(q.iter().copied());
            }
            prop_assert_eq!(drain(&mut queues), expected);
        }
    }
}
