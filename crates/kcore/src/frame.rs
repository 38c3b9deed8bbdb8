//! Physical frame allocator: a bitmap over 4 KiB frames that never hands out reserved memory.

use crate::memmap::PhysRange;

pub const FRAME_SIZE: u64 = 4096;
/// How many reserved ranges the allocator remembers (kernel, modules, boot data, bitmap…).
pub const MAX_RESERVED: usize = 32;

/// Why a free was refused. Each carries the physical address the caller passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Address not 4 KiB aligned.
    Misaligned(u64),
    /// Address beyond the memory the allocator manages.
    OutOfRange(u64),
    /// Frame is already free: a double free.
    DoubleFree(u64),
    /// Frame belongs to a reserved range (kernel image, modules, …) and is never freed.
    Reserved(u64),
}

/// Error from `reserve` when the reserved-range table is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyReserved;

/// Bitmap allocator. Bit set = frame in use (or not RAM); bit clear = free.
/// Frame `i` is physical address `i * FRAME_SIZE`.
pub struct FrameAllocator<'a> {
    _bitmap: &'a mut [u64],
}

impl<'a> FrameAllocator<'a> {
    /// Number of u64 words the bitmap needs to cover physical addresses `[0, phys_end)`.
    pub const fn bitmap_words(phys_end: u64) -> usize {
        todo!()
    }

    /// Creates an allocator over `[0, phys_end)`; every frame starts in use.
    /// `bitmap.len()` must be at least `bitmap_words(phys_end)` (panics otherwise).
    pub fn new(bitmap: &'a mut [u64], phys_end: u64) -> Self {
        todo!()
    }

    /// Marks every frame lying entirely inside `range` free (start rounded up, end rounded
    /// down), except frames inside a reserved range. The part beyond `phys_end` is ignored.
    pub fn add_free(&mut self, range: PhysRange) {
        todo!()
    }

    /// Marks every frame overlapping `range` in use and remembers the range, so those
    /// frames are never handed out and `free` refuses them.
    pub fn reserve(&mut self, range: PhysRange) -> Result<(), TooManyReserved> {
        todo!()
    }

    /// Allocates one frame; `None` when memory is exhausted. Returns its physical address.
    pub fn alloc(&mut self) -> Option<u64> {
        todo!()
    }

    /// Allocates `count` physically contiguous frames; returns the first address.
    pub fn alloc_contiguous(&mut self, count: usize) -> Option<u64> {
        todo!()
    }

    /// Returns a frame. Detects misaligned, out-of-range, reserved and double frees.
    pub fn free(&mut self, addr: u64) -> Result<(), FrameError> {
        todo!()
    }

    /// Number of free frames.
    pub fn free_frames(&self) -> usize {
        todo!()
    }

    /// Whether the frame at `addr` is currently free.
    pub fn is_free(&self, addr: u64) -> bool {
        todo!()
    }

    /// The reserved ranges recorded so far.
    pub fn reserved(&self) -> &[PhysRange] {
        todo!()
    }
}
