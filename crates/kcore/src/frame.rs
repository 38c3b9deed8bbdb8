//! Physical frame allocator: a bitmap over 4 KiB frames that never hands out reserved memory.

use crate::memmap::PhysRange;
pub use crate::phys::Frame;

pub use crate::phys::FRAME_SIZE;
/// How many reserved ranges the allocator remembers: low memory, the kernel, the bitmap and
/// one per boot module, with room to spare — so every module the boot accepts fits.
pub const MAX_RESERVED: usize = crate::multiboot::MAX_MODULES + 8;

const BITS_PER_WORD: usize = u64::BITS as usize;

/// Why a free was refused. Each carries the physical address the caller passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Address beyond the memory the allocator manages.
    OutOfRange(u64),
    /// Frame is already free: a double free.
    DoubleFree(u64),
    /// Frame belongs to a reserved range (kernel image, modules, …) and is never freed.
    Reserved(u64),
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            FrameError::OutOfRange(addr) => {
                write!(f, "{addr:#x} is beyond the memory the allocator manages")
            }
            FrameError::DoubleFree(addr) => write!(f, "frame {addr:#x} is already free"),
            FrameError::Reserved(addr) => {
                write!(
                    f,
                    "frame {addr:#x} is reserved (kernel image, modules, boot data)"
                )
            }
        }
    }
}

/// Frame number `index` (below `frame_count`, so far below 2^40).
const fn frame_at(index: u64) -> Frame {
    Frame::from_aligned(index * FRAME_SIZE)
}

/// Error from `reserve` when the reserved-range table is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyReserved;

/// Bitmap allocator. Bit set = frame in use (or not RAM); bit clear = free.
/// Frame `i` is physical address `i * FRAME_SIZE`.
///
/// Only whole frames below `phys_end` are managed: a last partial frame is never free.
/// `free` cannot tell a frame that was allocated from one that was never RAM (both are set
/// bits); freeing only what `alloc` returned is the caller's side of the contract.
pub struct FrameAllocator<'a> {
    bitmap: &'a mut [u64],
    /// Frames managed: `[0, frame_count)`.
    frame_count: usize,
    free_count: usize,
    /// Word where the next single-frame search starts (the last word something was found in).
    next_word_hint: usize,
    reserved: [PhysRange; MAX_RESERVED],
    reserved_len: usize,
}

/// Frame range `[first, end)` of the frames lying entirely inside `range`.
fn frames_inside(range: PhysRange) -> (u64, u64) {
    (range.start.div_ceil(FRAME_SIZE), range.end / FRAME_SIZE)
}

/// Frame range `[first, end)` of the frames overlapping `range` (empty if `range` is).
fn frames_overlapping(range: PhysRange) -> (u64, u64) {
    if range.is_empty() {
        return (0, 0);
    }
    (range.start / FRAME_SIZE, range.end.div_ceil(FRAME_SIZE))
}

/// Mask of bits `[from, to)` within one word (`from <= to <= 64`).
fn bit_mask(from: usize, to: usize) -> u64 {
    let width = to - from;
    if width == BITS_PER_WORD {
        !0
    } else {
        ((1u64 << width) - 1) << from
    }
}

impl<'a> FrameAllocator<'a> {
    /// Number of u64 words the bitmap needs to cover physical addresses `[0, phys_end)`.
    pub const fn bitmap_words(phys_end: u64) -> usize {
        (phys_end / FRAME_SIZE).div_ceil(BITS_PER_WORD as u64) as usize
    }

    /// Creates an allocator over `[0, phys_end)`; every frame starts in use.
    /// `bitmap.len()` must be at least `bitmap_words(phys_end)` (panics otherwise).
    pub fn new(bitmap: &'a mut [u64], phys_end: u64) -> Self {
        let words = Self::bitmap_words(phys_end);
        assert!(
            bitmap.len() >= words,
            "frame bitmap too small: {} words, {} needed",
            bitmap.len(),
            words
        );
        let bitmap = &mut bitmap[..words];
        // Every bit set, including the padding bits past the last frame: those are then
        // never found free.
        bitmap.fill(!0);
        FrameAllocator {
            bitmap,
            frame_count: (phys_end / FRAME_SIZE) as usize,
            free_count: 0,
            next_word_hint: 0,
            reserved: [PhysRange::new(0, 0); MAX_RESERVED],
            reserved_len: 0,
        }
    }

    /// Marks every frame lying entirely inside `range` free (start rounded up, end rounded
    /// down), except frames inside a reserved range. The part beyond `phys_end` is ignored.
    pub fn add_free(&mut self, range: PhysRange) {
        let (first, end) = frames_inside(range);
        let end = end.min(self.frame_count as u64);
        let mut frame = first;
        while frame < end {
            // Skip a reserved stretch starting here, or free up to the next one.
            if let Some(reserved_end) = self.reserved_frames_at(frame) {
                frame = reserved_end;
                continue;
            }
            let next_reserved = self.next_reserved_frame_after(frame).unwrap_or(end);
            let stop = next_reserved.min(end);
            self.clear_bits(frame as usize, stop as usize);
            frame = stop;
        }
    }

    /// Marks every frame overlapping `range` in use and remembers the range, so those
    /// frames are never handed out and `free` refuses them.
    ///
    /// An empty range is accepted and not recorded. When the table is full nothing changes.
    pub fn reserve(&mut self, range: PhysRange) -> Result<(), TooManyReserved> {
        if range.is_empty() {
            return Ok(());
        }
        if self.reserved_len == MAX_RESERVED {
            return Err(TooManyReserved);
        }
        self.reserved[self.reserved_len] = range;
        self.reserved_len += 1;
        let (first, end) = frames_overlapping(range);
        let end = end.min(self.frame_count as u64);
        if first < end {
            self.set_bits(first as usize, end as usize);
        }
        Ok(())
    }

    /// Allocates one frame; `None` when memory is exhausted.
    pub fn alloc(&mut self) -> Option<Frame> {
        if self.free_count == 0 {
            return None;
        }
        let words = self.bitmap.len();
        let start = self.next_word_hint.min(words.saturating_sub(1));
        for offset in 0..words {
            let index = (start + offset) % words;
            let word = self.bitmap[index];
            if !word == 0 {
                continue;
            }
            let bit = (!word).trailing_zeros() as usize;
            self.bitmap[index] = word | (1 << bit);
            self.free_count -= 1;
            self.next_word_hint = index;
            return Some(frame_at((index * BITS_PER_WORD + bit) as u64));
        }
        None
    }

    /// Allocates `count` physically contiguous frames; returns the first.
    ///
    /// First fit: the lowest run of `count` free frames. `count == 0` yields `None`.
    pub fn alloc_contiguous(&mut self, count: usize) -> Option<Frame> {
        if count == 0 || count > self.free_count {
            return None;
        }
        let mut run_start = 0;
        let mut run_len = 0;
        let mut frame = 0;
        while frame < self.frame_count {
            let word = self.bitmap[frame / BITS_PER_WORD];
            if frame % BITS_PER_WORD == 0 && !word == 0 {
                run_len = 0;
                frame += BITS_PER_WORD;
                continue;
            }
            if word & (1 << (frame % BITS_PER_WORD)) != 0 {
                run_len = 0;
            } else {
                if run_len == 0 {
                    run_start = frame;
                }
                run_len += 1;
                if run_len == count {
                    self.set_bits(run_start, run_start + count);
                    return Some(frame_at(run_start as u64));
                }
            }
            frame += 1;
        }
        None
    }

    /// Returns a frame. Detects out-of-range, reserved and double frees (a `Frame` is
    /// aligned by construction).
    ///
    /// Checks in that order: a frame both out of range and reserved is `OutOfRange`.
    pub fn free(&mut self, frame: Frame) -> Result<(), FrameError> {
        let addr = frame.address();
        let frame = addr / FRAME_SIZE;
        if frame >= self.frame_count as u64 {
            return Err(FrameError::OutOfRange(addr));
        }
        if self.reserved_frames_at(frame).is_some() {
            return Err(FrameError::Reserved(addr));
        }
        let frame = frame as usize;
        let (index, bit) = (frame / BITS_PER_WORD, frame % BITS_PER_WORD);
        if self.bitmap[index] & (1 << bit) == 0 {
            return Err(FrameError::DoubleFree(addr));
        }
        self.bitmap[index] &= !(1 << bit);
        self.free_count += 1;
        Ok(())
    }

    /// Number of frames the allocator manages: every whole frame below `phys_end`, free,
    /// allocated or reserved.
    pub fn total_frames(&self) -> usize {
        self.frame_count
    }

    /// Number of free frames.
    pub fn free_frames(&self) -> usize {
        self.free_count
    }

    /// Whether `frame` is currently free. Frames beyond `phys_end` are never free.
    pub fn is_free(&self, frame: Frame) -> bool {
        let frame = frame.address() / FRAME_SIZE;
        if frame >= self.frame_count as u64 {
            return false;
        }
        let frame = frame as usize;
        self.bitmap[frame / BITS_PER_WORD] & (1 << (frame % BITS_PER_WORD)) == 0
    }

    /// The reserved ranges recorded so far.
    pub fn reserved(&self) -> &[PhysRange] {
        &self.reserved[..self.reserved_len]
    }

    /// If `frame` overlaps a reserved range, the frame just past the end of the reserved
    /// frames containing it (the furthest such end, if several ranges cover it).
    fn reserved_frames_at(&self, frame: u64) -> Option<u64> {
        self.reserved()
            .iter()
            .map(|&r| frames_overlapping(r))
            .filter(|&(first, end)| first <= frame && frame < end)
            .map(|(_, end)| end)
            .max()
    }

    /// First frame after `frame` that overlaps a reserved range, if any.
    fn next_reserved_frame_after(&self, frame: u64) -> Option<u64> {
        self.reserved()
            .iter()
            .map(|&r| frames_overlapping(r))
            .filter(|&(first, end)| first > frame && first < end)
            .map(|(first, _)| first)
            .min()
    }

    /// Marks frames `[from, to)` free, counting only those that were in use.
    fn clear_bits(&mut self, from: usize, to: usize) {
        let mut frame = from;
        while frame < to {
            let index = frame / BITS_PER_WORD;
            let word_end = ((index + 1) * BITS_PER_WORD).min(to);
            let mask = bit_mask(frame % BITS_PER_WORD, word_end - index * BITS_PER_WORD);
            self.free_count += (self.bitmap[index] & mask).count_ones() as usize;
            self.bitmap[index] &= !mask;
            frame = word_end;
        }
    }

    /// Marks frames `[from, to)` in use, counting only those that were free.
    fn set_bits(&mut self, from: usize, to: usize) {
        let mut frame = from;
        while frame < to {
            let index = frame / BITS_PER_WORD;
            let word_end = ((index + 1) * BITS_PER_WORD).min(to);
            let mask = bit_mask(frame % BITS_PER_WORD, word_end - index * BITS_PER_WORD);
            self.free_count -= (!self.bitmap[index] & mask).count_ones() as usize;
            self.bitmap[index] |= mask;
            frame = word_end;
        }
    }
}

#[cfg(test)]
mod tests {
    /// The allocator's calls in addresses, as these tests name frames; a misaligned
    /// address is no `Frame` at all, so it never reaches the allocator.
    trait ByAddress {
        fn alloc_addr(&mut self) -> Option<u64>;
        fn alloc_contiguous_addr(&mut self, count: usize) -> Option<u64>;
        fn free_addr(&mut self, address: u64) -> Result<(), FrameError>;
        fn is_free_addr(&self, address: u64) -> bool;
    }

    impl ByAddress for FrameAllocator<'_> {
        fn alloc_addr(&mut self) -> Option<u64> {
            self.alloc().map(Frame::address)
        }
        fn alloc_contiguous_addr(&mut self, count: usize) -> Option<u64> {
            self.alloc_contiguous(count).map(Frame::address)
        }
        fn free_addr(&mut self, address: u64) -> Result<(), FrameError> {
            self.free(Frame::new(address).expect("tests free aligned frames"))
        }
        fn is_free_addr(&self, address: u64) -> bool {
            crate::phys::PhysAddr::new(address).is_some_and(|a| self.is_free(a.frame()))
        }
    }

    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;
    use std::vec;
    use std::vec::Vec;

    const MIB: u64 = 1 << 20;

    fn bitmap_for(phys_end: u64) -> Vec<u64> {
        vec![0; FrameAllocator::bitmap_words(phys_end)]
    }

    fn range(start: u64, end: u64) -> PhysRange {
        PhysRange::new(start, end)
    }

    /// Allocates until exhaustion, returning every address handed out.
    fn drain(allocator: &mut FrameAllocator<'_>) -> Vec<u64> {
        let mut frames = Vec::new();
        while let Some(addr) = allocator.alloc_addr() {
            frames.push(addr);
            assert!(frames.len() <= 1 << 20, "allocator never ran out");
        }
        frames
    }

    #[test]
    fn bitmap_words_rounds_up_to_whole_words() {
        assert_eq!(FrameAllocator::bitmap_words(0), 0);
        assert_eq!(FrameAllocator::bitmap_words(FRAME_SIZE - 1), 0);
        assert_eq!(FrameAllocator::bitmap_words(FRAME_SIZE), 1);
        assert_eq!(FrameAllocator::bitmap_words(64 * FRAME_SIZE), 1);
        assert_eq!(FrameAllocator::bitmap_words(65 * FRAME_SIZE), 2);
        assert_eq!(FrameAllocator::bitmap_words(128 * MIB), 32768 / 64);
        assert_eq!(
            FrameAllocator::bitmap_words(5 << 30),
            (5 << 30) / FRAME_SIZE as usize / 64
        );
    }

    #[test]
    #[should_panic(expected = "frame bitmap too small")]
    fn new_panics_on_short_bitmap() {
        let mut bitmap = [0u64; 1];
        let _ = FrameAllocator::new(&mut bitmap, 65 * FRAME_SIZE);
    }

    #[test]
    fn new_starts_with_everything_in_use_and_accepts_a_longer_bitmap() {
        let mut bitmap = [0u64; 8];
        let mut allocator = FrameAllocator::new(&mut bitmap, 10 * FRAME_SIZE);
        assert_eq!(allocator.free_frames(), 0);
        assert_eq!(allocator.alloc_addr(), None);
        assert_eq!(allocator.alloc_contiguous_addr(1), None);
        assert!(!allocator.is_free_addr(0));
        assert!(allocator.reserved().is_empty());
    }

    #[test]
    fn exhaustion_hands_out_every_free_frame_once() {
        let phys_end = 4 * MIB + 3 * FRAME_SIZE; // not a whole number of words
        let mut bitmap = bitmap_for(phys_end);
        let mut allocator = FrameAllocator::new(&mut bitmap, phys_end);
        allocator.add_free(range(0x1000, 0x9f000));
        allocator.add_free(range(MIB, phys_end));
        let expected = (0x9f000 - 0x1000) / FRAME_SIZE + (phys_end - MIB) / FRAME_SIZE;
        assert_eq!(allocator.free_frames() as u64, expected);
        let frames = drain(&mut allocator);
        assert_eq!(frames.len() as u64, expected);
        assert_eq!(allocator.free_frames(), 0);
        let unique: HashSet<_> = frames.iter().copied().collect();
        assert_eq!(unique.len(), frames.len(), "a frame was handed out twice");
        for &addr in &frames {
            assert_eq!(addr % FRAME_SIZE, 0);
            assert!((0x1000..0x9f000).contains(&addr) || (MIB..phys_end).contains(&addr));
        }
        assert_eq!(allocator.alloc_addr(), None);
        // After one free, exactly that frame comes back.
        allocator.free_addr(frames[17]).unwrap();
        assert_eq!(allocator.free_frames(), 1);
        assert_eq!(allocator.alloc_addr(), Some(frames[17]));
        assert_eq!(allocator.alloc_addr(), None);
    }

    #[test]
    fn add_free_rounds_inward_and_ignores_memory_past_the_end() {
        let phys_end = 16 * FRAME_SIZE;
        let mut bitmap = bitmap_for(phys_end);
        let mut allocator = FrameAllocator::new(&mut bitmap, phys_end);
        allocator.add_free(range(0x1001, 0x3fff)); // only frame 2 is entirely inside
        assert_eq!(allocator.free_frames(), 1);
        assert!(allocator.is_free_addr(0x2000));
        assert!(!allocator.is_free_addr(0x1000) && !allocator.is_free_addr(0x3000));
        allocator.add_free(range(14 * FRAME_SIZE, 1 << 40));
        assert_eq!(allocator.free_frames(), 3);
        assert!(!allocator.is_free_addr(16 * FRAME_SIZE));
        // Adding the same memory again does not count it twice.
        allocator.add_free(range(0x2000, 0x3000));
        allocator.add_free(range(0, 0)); // empty
        allocator.add_free(range(0x5000, 0x1000)); // backwards
        assert_eq!(allocator.free_frames(), 3);
        assert_eq!(drain(&mut allocator).len(), 3);
    }

    #[test]
    fn a_partial_last_frame_is_not_managed() {
        let phys_end = 3 * FRAME_SIZE + 100;
        let mut bitmap = bitmap_for(phys_end);
        let mut allocator = FrameAllocator::new(&mut bitmap, phys_end);
        allocator.add_free(range(0, phys_end));
        assert_eq!(allocator.free_frames(), 3);
        assert_eq!(
            allocator.free_addr(3 * FRAME_SIZE),
            Err(FrameError::OutOfRange(3 * FRAME_SIZE))
        );
    }

    fn reserved_never_handed_out(reserve_first: bool) {
        let phys_end = 2 * MIB;
        let kernel = range(0x100000, 0x123456); // end not frame aligned
        let module = range(0x180800, 0x181000); // start not frame aligned
        let mut bitmap = bitmap_for(phys_end);
        let mut allocator = FrameAllocator::new(&mut bitmap, phys_end);
        if reserve_first {
            allocator.reserve(kernel).unwrap();
            allocator.reserve(module).unwrap();
            allocator.add_free(range(0, phys_end));
        } else {
            allocator.add_free(range(0, phys_end));
            allocator.reserve(kernel).unwrap();
            allocator.reserve(module).unwrap();
        }
        assert_eq!(allocator.reserved(), &[kernel, module]);
        let kernel_frames = (0x124000 - 0x100000) / FRAME_SIZE;
        let expected = phys_end / FRAME_SIZE - kernel_frames - 1;
        assert_eq!(allocator.free_frames() as u64, expected);
        // A later add_free over the reserved memory changes nothing.
        allocator.add_free(range(0x100000, 0x200000));
        assert_eq!(allocator.free_frames() as u64, expected);

        for addr in [0x100000, 0x123000, 0x180000] {
            assert!(!allocator.is_free_addr(addr));
            assert_eq!(allocator.free_addr(addr), Err(FrameError::Reserved(addr)));
        }
        let frames = drain(&mut allocator);
        assert_eq!(frames.len() as u64, expected);
        for addr in frames {
            let frame = range(addr, addr + FRAME_SIZE);
            assert!(
                !frame.overlaps(&kernel) && !frame.overlaps(&module),
                "{addr:#x}"
            );
        }
        // Frames right next to the reserved ones were handed out and can be freed.
        assert_eq!(allocator.free_addr(0xff000), Ok(()));
        assert_eq!(allocator.free_addr(0x124000), Ok(()));
        assert_eq!(allocator.free_addr(0x17f000), Ok(()));
        assert_eq!(allocator.free_addr(0x181000), Ok(()));
    }

    #[test]
    fn reserved_never_handed_out_when_reserved_before_add_free() {
        reserved_never_handed_out(true);
    }

    #[test]
    fn reserved_never_handed_out_when_reserved_after_add_free() {
        reserved_never_handed_out(false);
    }

    #[test]
    fn reserving_an_allocated_frame_keeps_the_count_right() {
        let phys_end = 64 * FRAME_SIZE;
        let mut bitmap = bitmap_for(phys_end);
        let mut allocator = FrameAllocator::new(&mut bitmap, phys_end);
        allocator.add_free(range(0, phys_end));
        let addr = allocator.alloc_addr().unwrap();
        assert_eq!(allocator.free_frames(), 63);
        allocator
            .reserve(range(addr, addr + 2 * FRAME_SIZE))
            .unwrap();
        assert_eq!(allocator.free_frames(), 62);
        assert_eq!(allocator.free_addr(addr), Err(FrameError::Reserved(addr)));
        // Reserved ranges beyond phys_end are remembered but touch no bits.
        allocator.reserve(range(1 << 40, (1 << 40) + 1)).unwrap();
        assert_eq!(allocator.free_frames(), 62);
        assert_eq!(allocator.reserved().len(), 2);
        // Empty ranges are accepted and not recorded.
        allocator.reserve(range(0x5000, 0x5000)).unwrap();
        assert_eq!(allocator.reserved().len(), 2);
    }

    #[test]
    fn reserve_table_fills_up() {
        let phys_end = 128 * FRAME_SIZE;
        let mut bitmap = bitmap_for(phys_end);
        let mut allocator = FrameAllocator::new(&mut bitmap, phys_end);
        allocator.add_free(range(0, phys_end));
        for i in 0..MAX_RESERVED as u64 {
            allocator
                .reserve(range(i * FRAME_SIZE, i * FRAME_SIZE + 1))
                .unwrap();
        }
        let before = allocator.free_frames();
        let extra = range(100 * FRAME_SIZE, 101 * FRAME_SIZE);
        assert_eq!(allocator.reserve(extra), Err(TooManyReserved));
        assert_eq!(
            allocator.free_frames(),
            before,
            "a failed reserve changes nothing"
        );
        assert!(allocator.is_free_addr(100 * FRAME_SIZE));
        assert_eq!(allocator.reserved().len(), MAX_RESERVED);
    }

    #[test]
    fn free_detects_out_of_range_and_double_free() {
        let phys_end = 64 * FRAME_SIZE;
        let mut bitmap = bitmap_for(phys_end);
        let mut allocator = FrameAllocator::new(&mut bitmap, phys_end);
        allocator.add_free(range(0, phys_end));
        let addr = allocator.alloc_addr().unwrap();
        // A misaligned address is not a frame, so it cannot be freed at all.
        assert_eq!(Frame::new(addr + 1), None);
        assert_eq!(Frame::new(addr + 0x800), None);
        assert_eq!(
            allocator.free_addr(phys_end),
            Err(FrameError::OutOfRange(phys_end))
        );
        // Beyond what page tables can name: not a frame either.
        assert_eq!(Frame::new(u64::MAX - 4095), None);
        assert_eq!(Frame::new(u64::MAX), None);
        assert_eq!(allocator.free_addr(addr), Ok(()));
        assert_eq!(allocator.free_addr(addr), Err(FrameError::DoubleFree(addr)));
        assert_eq!(allocator.free_frames(), 64);
        // A frame never handed out is also a double free.
        let other = (addr + FRAME_SIZE) % phys_end;
        assert_eq!(
            allocator.free_addr(other),
            Err(FrameError::DoubleFree(other))
        );
        assert_eq!(allocator.free_frames(), 64);
    }

    #[test]
    fn is_free_tracks_alloc_and_free() {
        let phys_end = 64 * FRAME_SIZE;
        let mut bitmap = bitmap_for(phys_end);
        let mut allocator = FrameAllocator::new(&mut bitmap, phys_end);
        allocator.add_free(range(0, phys_end));
        let addr = allocator.alloc_addr().unwrap();
        assert!(!allocator.is_free_addr(addr));
        assert!(!allocator.is_free_addr(addr + 123));
        allocator.free_addr(addr).unwrap();
        assert!(allocator.is_free_addr(addr));
        assert!(!allocator.is_free_addr(phys_end));
        assert!(!allocator.is_free_addr(u64::MAX));
    }

    #[test]
    fn alloc_contiguous_finds_the_lowest_run() {
        let phys_end = 256 * FRAME_SIZE;
        let mut bitmap = bitmap_for(phys_end);
        let mut allocator = FrameAllocator::new(&mut bitmap, phys_end);
        // Free: frames 1..4, 10..13, 60..200 (crossing word boundaries).
        allocator.add_free(range(FRAME_SIZE, 4 * FRAME_SIZE));
        allocator.add_free(range(10 * FRAME_SIZE, 13 * FRAME_SIZE));
        allocator.add_free(range(60 * FRAME_SIZE, 200 * FRAME_SIZE));
        assert_eq!(allocator.free_frames(), 3 + 3 + 140);
        assert_eq!(allocator.alloc_contiguous_addr(0), None);
        assert_eq!(allocator.alloc_contiguous_addr(3), Some(FRAME_SIZE));
        assert_eq!(allocator.alloc_contiguous_addr(3), Some(10 * FRAME_SIZE));
        assert_eq!(allocator.alloc_contiguous_addr(4), Some(60 * FRAME_SIZE));
        assert_eq!(allocator.alloc_contiguous_addr(100), Some(64 * FRAME_SIZE));
        assert_eq!(allocator.free_frames(), 140 - 104);
        assert_eq!(allocator.alloc_contiguous_addr(37), None);
        assert_eq!(allocator.alloc_contiguous_addr(36), Some(164 * FRAME_SIZE));
        assert_eq!(allocator.free_frames(), 0);
        for frame in [1, 3, 10, 12, 60, 63, 64, 163, 164, 199] {
            assert!(!allocator.is_free_addr(frame * FRAME_SIZE));
        }
        // The frames can be freed one by one.
        for frame in 164..200 {
            allocator.free_addr(frame * FRAME_SIZE).unwrap();
        }
        assert_eq!(allocator.free_frames(), 36);
    }

    #[test]
    fn alloc_contiguous_skips_reserved_and_fragmented_memory() {
        let phys_end = 128 * FRAME_SIZE;
        let mut bitmap = bitmap_for(phys_end);
        let mut allocator = FrameAllocator::new(&mut bitmap, phys_end);
        allocator
            .reserve(range(8 * FRAME_SIZE, 9 * FRAME_SIZE))
            .unwrap();
        allocator.add_free(range(0, phys_end));
        assert_eq!(allocator.alloc_contiguous_addr(10), Some(9 * FRAME_SIZE));
        // Fragment: allocate everything, then free every other frame.
        let frames = drain(&mut allocator);
        for &addr in &frames {
            if (addr / FRAME_SIZE).is_multiple_of(2) {
                allocator.free_addr(addr).unwrap();
            }
        }
        assert!(allocator.free_frames() > 2);
        assert_eq!(allocator.alloc_contiguous_addr(2), None);
        assert!(allocator.alloc_contiguous_addr(1).is_some());
    }

    #[test]
    fn repeated_alloc_scans_forward_from_the_hint() {
        let phys_end = 4096 * FRAME_SIZE;
        let mut bitmap = bitmap_for(phys_end);
        let mut allocator = FrameAllocator::new(&mut bitmap, phys_end);
        allocator.add_free(range(0, phys_end));
        // Addresses come out in increasing order while memory lasts.
        let mut previous = None;
        for _ in 0..4096 {
            let addr = allocator.alloc_addr().unwrap();
            assert!(previous.is_none_or(|p| addr > p));
            previous = Some(addr);
        }
        // A freed low frame is found again after wrapping around.
        allocator.free_addr(5 * FRAME_SIZE).unwrap();
        assert_eq!(allocator.alloc_addr(), Some(5 * FRAME_SIZE));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Alloc,
        AllocContiguous(usize),
        /// Free the n-th currently allocated frame (modulo the count).
        FreeAllocated(usize),
        /// Free an arbitrary address (often invalid).
        FreeAddress(u64),
    }

    fn op_strategy(phys_end: u64) -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Alloc),
            1 => (1usize..6).prop_map(Op::AllocContiguous),
            3 => any::<usize>().prop_map(Op::FreeAllocated),
            2 => (0..phys_end + 4 * FRAME_SIZE).prop_map(|a| Op::FreeAddress(a & !0x7ff)),
        ]
    }

    const MODEL_END: u64 = 200 * FRAME_SIZE;

    fn ranges_strategy() -> impl Strategy<Value = Vec<(u64, u64)>> {
        prop::collection::vec((0..MODEL_END + 8 * FRAME_SIZE, 0..40 * FRAME_SIZE), 0..5)
    }

    #[test]
    fn frame_errors_name_the_address() {
        use std::string::ToString;
        assert_eq!(
            FrameError::DoubleFree(0x5000).to_string(),
            "frame 0x5000 is already free"
        );
        assert_eq!(
            FrameError::Reserved(0x5000).to_string(),
            "frame 0x5000 is reserved (kernel image, modules, boot data)"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random alloc/free sequences against a model: the allocator never hands out a
        /// reserved or in-use frame, and its free count matches the model.
        #[test]
        fn alloc_free_matches_a_model(
            free_ranges in ranges_strategy(),
            reserved_ranges in ranges_strategy(),
            reserve_first in any::<bool>(),
            ops in prop::collection::vec(op_strategy(MODEL_END), 0..300),
        ) {
            let free_ranges: Vec<_> = free_ranges.iter().map(|&(s, l)| range(s, s + l)).collect();
            let reserved_ranges: Vec<_> =
                reserved_ranges.iter().map(|&(s, l)| range(s, s + l)).collect();
            let mut bitmap = bitmap_for(MODEL_END);
            let mut allocator = FrameAllocator::new(&mut bitmap, MODEL_END);
            if reserve_first {
                for &r in &reserved_ranges { allocator.reserve(r).unwrap(); }
                for &r in &free_ranges { allocator.add_free(r); }
            } else {
                for &r in &free_ranges { allocator.add_free(r); }
                for &r in &reserved_ranges { allocator.reserve(r).unwrap(); }
            }

            let is_reserved = |addr: u64| {
                reserved_ranges.iter().any(|r| r.overlaps(&range(addr, addr + FRAME_SIZE)))
            };
            let mut model_free: HashSet<u64> = HashSet::new();
            for frame in 0..MODEL_END / FRAME_SIZE {
                let addr = frame * FRAME_SIZE;
                let in_free_range = free_ranges
                    .iter()
                    .any(|r| r.start <= addr && addr + FRAME_SIZE <= r.end);
                if in_free_range && !is_reserved(addr) {
                    model_free.insert(addr);
                }
            }
            let mut allocated: Vec<u64> = Vec::new();
            prop_assert_eq!(allocator.free_frames(), model_free.len());

            for op in ops {
                match op {
                    Op::Alloc => match allocator.alloc_addr() {
                        Some(addr) => {
                            prop_assert!(model_free.remove(&addr), "handed out {:#x}", addr);
                            prop_assert!(!is_reserved(addr));
                            allocated.push(addr);
                        }
                        None => prop_assert!(model_free.is_empty()),
                    },
                    Op::AllocContiguous(count) => {
                        let lowest_run = (0..MODEL_END / FRAME_SIZE)
                            .map(|f| f * FRAME_SIZE)
                            .find(|&a| (0..count as u64).all(|i| model_free.contains(&(a + i * FRAME_SIZE))));
                        let got = allocator.alloc_contiguous_addr(count);
                        prop_assert_eq!(got, lowest_run);
                        if let Some(first) = got {
                            for i in 0..count as u64 {
                                let addr = first + i * FRAME_SIZE;
                                prop_assert!(model_free.remove(&addr));
                                prop_assert!(!is_reserved(addr));
                                allocated.push(addr);
                            }
                        }
                    }
                    Op::FreeAllocated(n) => {
                        if !allocated.is_empty() {
                            let addr = allocated.swap_remove(n % allocated.len());
                            prop_assert_eq!(allocator.free_addr(addr), Ok(()));
                            model_free.insert(addr);
                        }
                    }
                    Op::FreeAddress(addr) => {
                        if Frame::new(addr).is_none() {
                            // Misaligned: no frame, nothing to free.
                            prop_assert!(addr % FRAME_SIZE != 0);
                            continue;
                        }
                        let expected = if addr >= MODEL_END {
                            Err(FrameError::OutOfRange(addr))
                        } else if is_reserved(addr) {
                            Err(FrameError::Reserved(addr))
                        } else if model_free.contains(&addr) {
                            Err(FrameError::DoubleFree(addr))
                        } else {
                            Ok(())
                        };
                        // Only test frees the model considers valid if they were allocated
                        // (freeing never-RAM frames is outside the contract).
                        if expected.is_err() || allocated.contains(&addr) {
                            prop_assert_eq!(allocator.free_addr(addr), expected);
                            if expected.is_ok() {
                                allocated.retain(|&a| a != addr);
                                model_free.insert(addr);
                            }
                        }
                    }
                }
                prop_assert_eq!(allocator.free_frames(), model_free.len());
            }
            for frame in 0..MODEL_END / FRAME_SIZE + 2 {
                let addr = frame * FRAME_SIZE;
                prop_assert_eq!(allocator.is_free_addr(addr), model_free.contains(&addr));
            }
        }
    }
}
