//! Physical memory ranges and the boot memory map: usable/installed sizes and free-span search.

/// A half-open physical address range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PhysRange {
    pub start: u64,
    pub end: u64,
}

/// What a region of the firmware memory map is (Multiboot / E820 types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    Available,
    Reserved,
    AcpiReclaimable,
    AcpiNvs,
    BadRam,
    /// Any other type number, kept as-is.
    Other(u32),
}

/// One entry of the firmware memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    pub range: PhysRange,
    pub kind: RegionKind,
}

impl PhysRange {
    pub const fn new(start: u64, end: u64) -> Self {
        todo!()
    }
    pub const fn len(&self) -> u64 {
        todo!()
    }
    pub const fn is_empty(&self) -> bool {
        todo!()
    }
    pub fn overlaps(&self, other: &PhysRange) -> bool {
        todo!()
    }
    pub fn contains(&self, addr: u64) -> bool {
        todo!()
    }
}

/// Sum of the lengths of all `Available` regions (overlaps counted once).
pub fn usable_bytes(regions: &[MemoryRegion]) -> u64 {
    todo!()
}

/// Estimate of installed RAM as a user would state it (`-m 128` → 128 MiB): below 4 GiB,
/// the end of the highest `Available` region rounded up to a MiB; above 4 GiB, the
/// `Available` bytes there, also rounded up to a MiB. Returned in bytes.
pub fn installed_bytes(regions: &[MemoryRegion]) -> u64 {
    todo!()
}

/// Highest end address of any `Available` region (0 if none).
pub fn available_end(regions: &[MemoryRegion]) -> u64 {
    todo!()
}

/// Lowest address `a` with `a % align == 0` such that `[a, a+size)` lies entirely inside
/// one `Available` region and overlaps none of `reserved`. `align` is a power of two.
pub fn find_free_span(
    regions: &[MemoryRegion],
    reserved: &[PhysRange],
    size: u64,
    align: u64,
) -> Option<u64> {
    todo!()
}
