//! Thread and process slot numbers as distinct types, so one can never stand for the other.
//!
//! A slot is an index into a fixed kernel table. Both kinds used to be a bare `u16`, so
//! `ThreadTable::create(thread)` or `processes[thread]` compiled. Each newtype can only be
//! built in range (`new` checks against its table's size), so indexing the table with
//! `index()` never goes out of bounds and the compiler refuses a thread slot where a process
//! slot is meant. They are `repr(transparent)` over `u16`: free at run time.

use core::fmt;

/// Thread slots in the kernel's thread table.
pub const MAX_THREADS: usize = 1024;
/// Process slots in the kernel's process table.
pub const MAX_PROCESSES: usize = 64;

const _: () = assert!(MAX_THREADS < u16::MAX as usize);
const _: () = assert!(MAX_PROCESSES <= u16::MAX as usize);
// `index()` relies on it to be a mask.
const _: () = assert!(MAX_THREADS.is_power_of_two() && MAX_PROCESSES.is_power_of_two());

macro_rules! slot_type {
    ($(#[$doc:meta])* $name:ident, $max:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
        #[repr(transparent)]
        pub struct $name(u16);

        impl $name {
            /// The first slot.
            pub const FIRST: $name = $name(0);

            /// The slot numbered `index`, if the table has one.
            pub const fn new(index: u16) -> Option<$name> {
                if (index as usize) < $max {
                    Some($name(index))
                } else {
                    None
                }
            }

            /// The slot at table position `index`, which the caller got from iterating
            /// the table (so it is in range; checked in debug builds).
            pub(crate) const fn at(index: usize) -> $name {
                debug_assert!(index < $max);
                $name(index as u16)
            }

            /// The slot number.
            pub const fn get(self) -> u16 {
                self.0
            }

            /// The table position (always below the table size). The value is already in
            /// range; taking it modulo the (power-of-two) table size changes nothing but
            /// lets the compiler drop the bounds check of every table lookup.
            #[inline(always)]
            pub const fn index(self) -> usize {
                self.0 as usize % $max
            }

            /// Every slot of the table, lowest first.
            pub fn all() -> impl DoubleEndedIterator<Item = $name> + Clone {
                (0..$max).map($name::at)
            }
        }

        /// Just the number, as console messages and the wire show slots ("thread 7").
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

slot_type!(
    /// A thread's slot in the thread table (below [`MAX_THREADS`]).
    ThreadSlot,
    MAX_THREADS
);
slot_type!(
    /// A process's slot in the process table (below [`MAX_PROCESSES`]).
    ProcessSlot,
    MAX_PROCESSES
);

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn slots_exist_only_inside_their_table() {
        assert_eq!(ThreadSlot::new(0), Some(ThreadSlot::FIRST));
        assert_eq!(
            ThreadSlot::new(MAX_THREADS as u16 - 1).map(ThreadSlot::index),
            Some(MAX_THREADS - 1)
        );
        assert_eq!(ThreadSlot::new(MAX_THREADS as u16), None);
        assert_eq!(
            ProcessSlot::new(MAX_PROCESSES as u16 - 1).map(ProcessSlot::get),
            Some(63)
        );
        assert_eq!(ProcessSlot::new(MAX_PROCESSES as u16), None);
        assert_eq!(ThreadSlot::all().count(), MAX_THREADS);
        assert_eq!(
            ProcessSlot::all().last().map(ProcessSlot::index),
            Some(MAX_PROCESSES - 1)
        );
    }

    #[test]
    fn slots_display_as_their_number() {
        assert_eq!(
            format!("thread {}", ThreadSlot::new(7).unwrap()),
            "thread 7"
        );
        assert_eq!(format!("{:>3}", ProcessSlot::new(3).unwrap()), "  3");
    }
}
