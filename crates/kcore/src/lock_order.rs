//! The lock-order rule the kernel checks in debug builds: a lock may be taken only while
//! every lock already held comes earlier in the order.
//!
//! Levels are small integers, outermost (taken first) lowest; the kernel names them
//! (`kernel/src/lock.rs`). A CPU's held locks are a bit set, so locks may be released in
//! any order.

/// The set of lock levels one CPU holds (bit `level` set while that lock is held).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeldLevels(pub u32);

/// Why a lock may not be taken now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderViolation {
    /// The lock itself is already held: taking it again would spin forever.
    AlreadyHeld,
    /// A lock later in the order is held (the latest such level).
    Holding(u8),
}

impl HeldLevels {
    /// Most levels a set can hold.
    pub const MAX_LEVELS: u8 = u32::BITS as u8;

    pub const NONE: HeldLevels = HeldLevels(0);

    /// This set with `level` added.
    pub const fn with(self, level: u8) -> HeldLevels {
        HeldLevels(self.0 | 1 << level)
    }

    /// This set with `level` removed.
    pub const fn without(self, level: u8) -> HeldLevels {
        HeldLevels(self.0 & !(1 << level))
    }

    pub const fn contains(self, level: u8) -> bool {
        self.0 & 1 << level != 0
    }

    /// Whether the lock of `level` may be taken while this set is held.
    pub const fn may_take(self, level: u8) -> Result<(), OrderViolation> {
        let at_or_after = self.0 >> level;
        if at_or_after == 0 {
            Ok(())
        } else if at_or_after == 1 {
            Err(OrderViolation::AlreadyHeld)
        } else {
            let latest = (u32::BITS - 1 - self.0.leading_zeros()) as u8;
            Err(OrderViolation::Holding(latest))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn anything_may_be_taken_while_nothing_is_held() {
        for level in 0..HeldLevels::MAX_LEVELS {
            assert_eq!(HeldLevels::NONE.may_take(level), Ok(()));
        }
    }

    #[test]
    fn later_levels_may_be_taken_earlier_ones_not() {
        let held = HeldLevels::NONE.with(0).with(2);
        assert_eq!(held.may_take(3), Ok(()));
        assert_eq!(held.may_take(5), Ok(()));
        assert_eq!(held.may_take(2), Err(OrderViolation::AlreadyHeld));
        assert_eq!(held.may_take(1), Err(OrderViolation::Holding(2)));
        assert_eq!(held.may_take(0), Err(OrderViolation::Holding(2)));
    }

    #[test]
    fn releasing_out_of_order_keeps_the_rest() {
        let held = HeldLevels::NONE.with(1).with(4).without(1);
        assert!(!held.contains(1) && held.contains(4));
        assert_eq!(held.may_take(2), Err(OrderViolation::Holding(4)));
        assert_eq!(held.without(4), HeldLevels::NONE);
    }

    proptest! {
        /// `may_take` agrees with the definition: fine iff every held level is lower.
        #[test]
        fn may_take_matches_the_rule(bits in any::<u32>(), level in 0..HeldLevels::MAX_LEVELS) {
            let held = HeldLevels(bits);
            let highest = (0..HeldLevels::MAX_LEVELS).rev().find(|&l| held.contains(l));
            let expected = match highest {
                None => Ok(()),
                Some(h) if h < level => Ok(()),
                Some(h) if h == level => Err(OrderViolation::AlreadyHeld),
                Some(h) => Err(OrderViolation::Holding(h)),
            };
            prop_assert_eq!(held.may_take(level), expected);
        }
    }
}
