//! Shared frames: how many user mappings hold each frame, so a frame mapped into several
//! address spaces goes back to the allocator only when the last of them lets go.
//!
//! One counter per frame the allocator manages, allocated once at boot. The counter is the
//! number of holders *beyond the first*: a frame the allocator hands out has one holder
//! (whoever allocated it) and counter 0, so code that never shares a frame (page tables,
//! private user pages, kernel memory) never touches the table. Every extra mapping of a
//! frame ([`FrameShares::share`]) adds one; every unmap or teardown of a mapping calls
//! [`FrameShares::release`], which either drops one extra holder ([`Release::StillHeld`])
//! or says the caller was the last ([`Release::Free`]) and must free the frame.
//!
//! Checks come first: [`FrameShares::can_share`] tells whether `times` more holders fit, so
//! a kernel call that maps many pages can refuse before it changes anything.

use crate::phys::{Frame, FRAME_SIZE};

/// Most holders a frame can have (the counter is 16 bits of extra holders).
pub const MAX_HOLDERS: u32 = u16::MAX as u32 + 1;

/// What releasing one holder of a frame means for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// The caller was the last holder: free the frame.
    Free,
    /// Other mappings still hold it: keep it.
    StillHeld,
}

/// Why a frame could not get another holder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareError {
    /// The frame is beyond the memory the table covers.
    OutOfRange(u64),
    /// The frame already has [`MAX_HOLDERS`] holders.
    Saturated(u64),
}

impl core::fmt::Display for ShareError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ShareError::OutOfRange(address) => {
                write!(f, "frame {address:#x} is beyond the shared-frame table")
            }
            ShareError::Saturated(address) => {
                write!(f, "frame {address:#x} already has {MAX_HOLDERS} holders")
            }
        }
    }
}

/// The extra-holder counters of frames `[0, counters.len())` (frame `i` is physical address
/// `i * FRAME_SIZE`).
pub struct FrameShares<'a> {
    extra: &'a mut [u16],
    /// Frames with at least one extra holder.
    shared: usize,
}

impl<'a> FrameShares<'a> {
    /// Counters a table for physical memory `[0, phys_end)` needs.
    pub const fn counters_for(phys_end: u64) -> usize {
        (phys_end / FRAME_SIZE) as usize
    }

    /// A table over `counters`, every frame with no extra holder.
    pub fn new(counters: &'a mut [u16]) -> FrameShares<'a> {
        counters.fill(0);
        FrameShares {
            extra: counters,
            shared: 0,
        }
    }

    /// Frames the table covers.
    pub fn frames(&self) -> usize {
        self.extra.len()
    }

    /// Frames currently held by more than one mapping.
    pub fn shared_frames(&self) -> usize {
        self.shared
    }

    fn index(&self, frame: Frame) -> Option<usize> {
        let index = usize::try_from(frame.start().get() / FRAME_SIZE).ok()?;
        (index < self.extra.len()).then_some(index)
    }

    /// Holders of an allocated frame: 1 plus its extra holders (1 for a frame the table
    /// does not cover).
    pub fn holders(&self, frame: Frame) -> u32 {
        self.index(frame)
            .map_or(1, |index| 1 + u32::from(self.extra[index]))
    }

    /// Whether `times` more holders of `frame` fit.
    pub fn can_share(&self, frame: Frame, times: u32) -> bool {
        self.index(frame).is_some()
            && self
                .holders(frame)
                .checked_add(times)
                .is_some_and(|holders| holders <= MAX_HOLDERS)
    }

    /// One more mapping holds `frame` (which is allocated: someone holds it already).
    pub fn share(&mut self, frame: Frame) -> Result<(), ShareError> {
        let address = frame.start().get();
        let index = self.index(frame).ok_or(ShareError::OutOfRange(address))?;
        let extra = &mut self.extra[index];
        *extra = extra.checked_add(1).ok_or(ShareError::Saturated(address))?;
        if *extra == 1 {
            self.shared += 1;
        }
        Ok(())
    }

    /// A mapping of `frame` is gone: [`Release::Free`] if it was the last holder (a frame
    /// the table does not cover has only the one).
    pub fn release(&mut self, frame: Frame) -> Release {
        let Some(index) = self.index(frame) else {
            return Release::Free;
        };
        let extra = &mut self.extra[index];
        match *extra {
            0 => Release::Free,
            _ => {
                *extra -= 1;
                if *extra == 0 {
                    self.shared -= 1;
                }
                Release::StillHeld
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::string::ToString;
    use std::vec;
    use std::vec::Vec;

    fn frame(index: u64) -> Frame {
        Frame::new(index * FRAME_SIZE).unwrap()
    }

    #[test]
    fn a_frame_is_freed_only_by_its_last_holder() {
        let mut counters = vec![7u16; 16];
        let mut shares = FrameShares::new(&mut counters);
        assert_eq!(shares.frames(), 16);
        assert_eq!(shares.holders(frame(3)), 1, "new() clears the counters");
        shares.share(frame(3)).unwrap();
        shares.share(frame(3)).unwrap();
        assert_eq!(shares.holders(frame(3)), 3);
        assert_eq!(shares.shared_frames(), 1);
        assert_eq!(shares.release(frame(3)), Release::StillHeld);
        assert_eq!(shares.release(frame(3)), Release::StillHeld);
        assert_eq!(shares.shared_frames(), 0);
        assert_eq!(shares.release(frame(3)), Release::Free);
        // An unshared frame (a page table, a private page) is freed at once.
        assert_eq!(shares.release(frame(4)), Release::Free);
    }

    #[test]
    fn frames_beyond_the_table_cannot_be_shared() {
        let mut counters = vec![0u16; FrameShares::counters_for(8 * FRAME_SIZE + 100)];
        let mut shares = FrameShares::new(&mut counters);
        assert_eq!(shares.frames(), 8);
        assert_eq!(
            shares.share(frame(8)),
            Err(ShareError::OutOfRange(8 * FRAME_SIZE))
        );
        assert!(!shares.can_share(frame(8), 1));
        assert_eq!(shares.release(frame(8)), Release::Free);
        assert_eq!(shares.holders(frame(8)), 1);
    }

    #[test]
    fn the_counter_saturates_instead_of_wrapping() {
        let mut counters = vec![0u16; 2];
        let mut shares = FrameShares::new(&mut counters);
        assert!(shares.can_share(frame(1), MAX_HOLDERS - 1));
        assert!(!shares.can_share(frame(1), MAX_HOLDERS));
        assert!(!shares.can_share(frame(1), u32::MAX));
        for _ in 0..MAX_HOLDERS - 1 {
            shares.share(frame(1)).unwrap();
        }
        assert_eq!(shares.holders(frame(1)), MAX_HOLDERS);
        assert!(!shares.can_share(frame(1), 1));
        assert_eq!(
            shares.share(frame(1)),
            Err(ShareError::Saturated(FRAME_SIZE))
        );
        assert_eq!(
            shares.holders(frame(1)),
            MAX_HOLDERS,
            "a refusal changes nothing"
        );
        assert!(ShareError::Saturated(FRAME_SIZE)
            .to_string()
            .contains("65536 holders"));
    }

    /// One step of the property test: an address space maps a fresh frame, maps an extra
    /// view of a frame some mapping holds, or drops one of its mappings.
    #[derive(Clone, Debug)]
    enum Step {
        Allocate,
        Share(usize),
        Unmap(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            Just(Step::Allocate),
            any::<usize>().prop_map(Step::Share),
            any::<usize>().prop_map(Step::Unmap),
        ]
    }

    proptest! {
        /// Against a model that keeps every mapping: a frame is reported free exactly when
        /// its last mapping goes, never while one remains, and never twice.
        #[test]
        fn matches_a_model_of_mappings(steps in proptest::collection::vec(step(), 1..200)) {
            const FRAMES: u64 = 8;
            let mut counters = vec![0u16; FRAMES as usize];
            let mut shares = FrameShares::new(&mut counters);
            // Every live mapping names its frame; `free` lists frames nobody holds.
            let mut mappings: Vec<u64> = Vec::new();
            let mut free: Vec<u64> = (0..FRAMES).collect();
            for step in steps {
                match step {
                    Step::Allocate => {
                        if let Some(index) = free.pop() {
                            mappings.push(index);
                        }
                    }
                    Step::Share(pick) if !mappings.is_empty() => {
                        let index = mappings[pick % mappings.len()];
                        shares.share(frame(index)).unwrap();
                        mappings.push(index);
                    }
                    Step::Unmap(pick) if !mappings.is_empty() => {
                        let index = mappings.swap_remove(pick % mappings.len());
                        let still_mapped = mappings.contains(&index);
                        let released = shares.release(frame(index));
                        prop_assert_eq!(
                            released,
                            if still_mapped { Release::StillHeld } else { Release::Free }
                        );
                        if !still_mapped {
                            prop_assert!(!free.contains(&index), "freed twice");
                            free.push(index);
                        }
                    }
                    Step::Share(_) | Step::Unmap(_) => {}
                }
                let mut holders: BTreeMap<u64, u32> = BTreeMap::new();
                for &index in &mappings {
                    *holders.entry(index).or_default() += 1;
                }
                for (&index, &count) in &holders {
                    prop_assert_eq!(shares.holders(frame(index)), count);
                }
                let shared = holders.values().filter(|&&count| count > 1).count();
                prop_assert_eq!(shares.shared_frames(), shared);
            }
        }
    }
}
