//! Physical addresses and physical frames as types, so neither is mistaken for a virtual one.
//!
//! A [`PhysAddr`] is any physical address the CPU can form (below 2^52). A [`Frame`] is a
//! 4 KiB-aligned physical frame: what the frame allocator hands out, what a page-table entry
//! points at and what gets freed. Both wrap a `u64` and cost nothing at run time; they exist
//! so that a virtual address, a byte count or a misaligned address cannot be mapped, freed
//! or used as a page table by accident.

use core::fmt;

/// Bytes in a frame.
pub const FRAME_SIZE: u64 = 4096;
/// One past the highest physical address x86-64 page tables can name (52 bits).
pub const PHYS_LIMIT: u64 = 1 << 52;

/// A physical address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[repr(transparent)]
pub struct PhysAddr(u64);

impl PhysAddr {
    /// `address` as a physical address, if page tables can name it.
    pub const fn new(address: u64) -> Option<PhysAddr> {
        if address < PHYS_LIMIT {
            Some(PhysAddr(address))
        } else {
            None
        }
    }

    pub const fn get(self) -> u64 {
        self.0
    }

    /// The frame this address lies in.
    pub const fn frame(self) -> Frame {
        Frame(self.0 & !(FRAME_SIZE - 1))
    }

    /// Offset of the address inside its frame.
    pub const fn frame_offset(self) -> u64 {
        self.0 & (FRAME_SIZE - 1)
    }
}

/// A 4 KiB physical frame, named by its first address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[repr(transparent)]
pub struct Frame(u64);

impl Frame {
    /// The frame at physical address 0.
    pub const FIRST: Frame = Frame(0);

    /// The frame starting at `start`, if `start` is 4 KiB aligned and a physical address.
    pub const fn new(start: u64) -> Option<Frame> {
        if start.is_multiple_of(FRAME_SIZE) && start < PHYS_LIMIT {
            Some(Frame(start))
        } else {
            None
        }
    }

    /// The frame at `start`, which the caller knows is aligned and below 2^52 (a
    /// page-table entry's address bits, or the allocator's frame numbers); debug-checked.
    pub(crate) const fn from_aligned(address: u64) -> Frame {
        debug_assert!(address.is_multiple_of(FRAME_SIZE) && address < PHYS_LIMIT);
        Frame(address)
    }

    /// The frame's first address.
    pub const fn start(self) -> PhysAddr {
        PhysAddr(self.0)
    }

    /// The address `offset` bytes into the frame (`offset` is taken modulo the frame size).
    pub const fn with_offset(self, offset: u64) -> PhysAddr {
        PhysAddr(self.0 | (offset & (FRAME_SIZE - 1)))
    }

    /// The frame's first address as a number (for page-table entries and the direct map).
    pub const fn address(self) -> u64 {
        self.0
    }

    /// The frame `count` frames after this one, if it is still a physical frame.
    pub const fn add(self, count: u64) -> Option<Frame> {
        match count.checked_mul(FRAME_SIZE) {
            Some(bytes) => match self.0.checked_add(bytes) {
                Some(start) => Frame::new(start),
                None => None,
            },
            None => None,
        }
    }
}

/// A frame's first address.
impl From<Frame> for PhysAddr {
    fn from(frame: Frame) -> PhysAddr {
        frame.start()
    }
}

impl fmt::Display for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

impl fmt::LowerHex for PhysAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

impl fmt::LowerHex for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::LowerHex::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn frames_are_aligned_physical_addresses() {
        assert_eq!(Frame::new(0x2000).map(Frame::address), Some(0x2000));
        assert_eq!(Frame::new(0x2001), None);
        assert_eq!(Frame::new(PHYS_LIMIT), None);
        assert_eq!(
            Frame::new(PHYS_LIMIT - FRAME_SIZE).map(|f| f.add(1)),
            Some(None)
        );
        assert_eq!(
            Frame::new(0x1000).and_then(|f| f.add(2)),
            Frame::new(0x3000)
        );
        assert_eq!(Frame::new(0).and_then(|f| f.add(u64::MAX)), None);
    }

    #[test]
    fn an_address_knows_its_frame_and_offset() {
        let address = PhysAddr::new(0x12_3456).unwrap();
        assert_eq!(address.frame(), Frame::new(0x12_3000).unwrap());
        assert_eq!(address.frame_offset(), 0x456);
        assert_eq!(PhysAddr::new(u64::MAX), None);
        assert_eq!(
            format!("{address} {}", address.frame()),
            "0x123456 0x123000"
        );
        assert_eq!(address.frame().with_offset(0x1456), address);
        assert_eq!(format!("{:#x}", address.frame()), "0x123000");
    }
}
