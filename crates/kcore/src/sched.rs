//! Scheduler run queues: one FIFO per priority, highest priority (lowest number) first.

/// Number of priority levels; 0 is the highest.
pub const PRIORITIES: usize = 16;

/// Run queues over thread slots `0..N`. Intrusive: one `next` link per slot, so a thread is
/// on at most one queue and every operation is O(1) except `remove` (O(queue length)).
pub struct RunQueues<const N: usize> {
    _private: (),
}

impl<const N: usize> RunQueues<N> {
    /// Empty queues. Must be `const` (the kernel may place it in a static).
    pub const fn new() -> Self {
        todo!()
    }

    /// Appends `slot` at priority `priority`. Panics (debug assertion) if already queued or
    /// out of range; in release the call is ignored for an already-queued slot.
    pub fn push_back(&mut self, slot: u16, priority: u8) {
        todo!()
    }

    /// Puts `slot` at the head of its priority (used when a preempted thread still has
    /// quantum left).
    pub fn push_front(&mut self, slot: u16, priority: u8) {
        todo!()
    }

    /// Removes and returns the first slot of the highest non-empty priority.
    pub fn pop_highest(&mut self) -> Option<u16> {
        todo!()
    }

    /// Highest priority with a queued slot.
    pub fn highest_priority(&self) -> Option<u8> {
        todo!()
    }

    /// Removes `slot` wherever it is queued; returns whether it was queued.
    pub fn remove(&mut self, slot: u16) -> bool {
        todo!()
    }

    pub fn is_queued(&self, slot: u16) -> bool {
        todo!()
    }

    /// Number of queued slots.
    pub fn len(&self) -> usize {
        todo!()
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
