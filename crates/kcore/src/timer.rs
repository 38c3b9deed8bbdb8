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

/// At most one timer of each kind per thread slot (`0..N`): setting a kind again replaces
/// it. A binary min-heap on deadline with a position index per (slot, kind), so insert,
/// cancel and pop are O(log n).
pub struct TimerQueue<const N: usize> {
    _private: (),
}

impl<const N: usize> TimerQueue<N> {
    /// Empty queue; storage is inline (2·N entries). `const` so the kernel can keep it in a
    /// static (prefer an all-zero initial value so it lands in .bss).
    pub const fn new() -> Self {
        todo!()
    }

    /// Sets (or replaces) the timer of `kind`'s variant for `slot`.
    pub fn set(&mut self, slot: u16, generation: u32, kind: TimerKind, deadline_ns: u64) {
        todo!()
    }

    /// Cancels `slot`'s wake-up timer; returns whether there was one.
    pub fn cancel_wakeup(&mut self, slot: u16) -> bool {
        todo!()
    }

    /// Cancels `slot`'s alarm; returns whether there was one.
    pub fn cancel_alarm(&mut self, slot: u16) -> bool {
        todo!()
    }

    /// Cancels both timers of `slot` (thread exit).
    pub fn cancel_all(&mut self, slot: u16) {
        todo!()
    }

    /// Earliest deadline, if any.
    pub fn next_deadline(&self) -> Option<u64> {
        todo!()
    }

    /// Removes and returns one timer with `deadline_ns <= now_ns` (earliest first). An
    /// expired alarm is re-armed at `deadline + period` (skipping missed periods so it stays
    /// in the future relative to `now_ns`) before being returned.
    pub fn pop_expired(&mut self, now_ns: u64) -> Option<Expired> {
        todo!()
    }

    pub fn len(&self) -> usize {
        todo!()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<const N: usize> Default for TimerQueue<N> {
    fn default() -> Self {
        Self::new()
    }
}
