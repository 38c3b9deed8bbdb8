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

const MIB: u64 = 1 << 20;
const FOUR_GIB: u64 = 1 << 32;

/// Most disjoint `Available` stretches the size computations track. Firmware maps the kernel
/// sees hold at most 64 regions (`multiboot::MAX_REGIONS`), so this is never reached in
/// practice; past it, further disjoint stretches are ignored (overlapping ones still merge).
const MAX_MERGED: usize = 64;

impl PhysRange {
    /// The range `[start, end)`. A range with `end <= start` is empty.
    pub const fn new(start: u64, end: u64) -> Self {
        PhysRange { start, end }
    }

    /// Number of bytes in the range (0 when `end <= start`).
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// Whether the two ranges share at least one byte (empty ranges overlap nothing).
    pub fn overlaps(&self, other: &PhysRange) -> bool {
        !self.is_empty() && !other.is_empty() && self.start < other.end && other.start < self.end
    }

    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }
}

/// The non-empty `Available` ranges of a map, merged into sorted disjoint stretches, in a
/// fixed-size array (no heap).
struct MergedAvailable {
    ranges: [PhysRange; MAX_MERGED],
    len: usize,
}

impl MergedAvailable {
    fn of(regions: &[MemoryRegion]) -> Self {
        let mut merged = MergedAvailable {
            ranges: [PhysRange::default(); MAX_MERGED],
            len: 0,
        };
        for region in regions {
            if region.kind == RegionKind::Available && !region.range.is_empty() {
                merged.insert(region.range);
            }
        }
        merged
    }

    /// Adds a non-empty range, merging it with every stretch it overlaps or touches.
    fn insert(&mut self, range: PhysRange) {
        // Stretches [first, last) are the ones that overlap or touch `range`; they are
        // contiguous in the sorted array.
        let held = &self.ranges[..self.len];
        let first = held
            .iter()
            .position(|r| r.end >= range.start)
            .unwrap_or(self.len);
        let last = first
            + held[first..]
                .iter()
                .take_while(|r| r.start <= range.end)
                .count();
        if first == last {
            if self.len == MAX_MERGED {
                return;
            }
            self.ranges.copy_within(first..self.len, first + 1);
            self.ranges[first] = range;
            self.len += 1;
        } else {
            let combined = PhysRange::new(
                range.start.min(self.ranges[first].start),
                range.end.max(self.ranges[last - 1].end),
            );
            self.ranges[first] = combined;
            self.ranges.copy_within(last..self.len, first + 1);
            self.len -= last - first - 1;
        }
    }

    fn as_slice(&self) -> &[PhysRange] {
        &self.ranges[..self.len]
    }
}

fn round_up_to_mib(bytes: u64) -> u64 {
    bytes.div_ceil(MIB).saturating_mul(MIB)
}

/// Sum of the lengths of all `Available` regions (overlaps counted once).
///
/// Works on at most 64 disjoint `Available` stretches (see `MAX_MERGED`).
pub fn usable_bytes(regions: &[MemoryRegion]) -> u64 {
    MergedAvailable::of(regions)
        .as_slice()
        .iter()
        .map(PhysRange::len)
        .fold(0, u64::saturating_add)
}

/// Estimate of installed RAM as a user would state it (`-m 128` → 128 MiB): below 4 GiB,
/// the end of the highest `Available` region rounded up to a MiB; above 4 GiB, the
/// `Available` bytes there, also rounded up to a MiB. Returned in bytes.
///
/// A region straddling 4 GiB contributes its part below to the first term (its end is
/// clamped to 4 GiB) and its part above to the second. Bytes above 4 GiB are counted once
/// even when regions overlap.
pub fn installed_bytes(regions: &[MemoryRegion]) -> u64 {
    let merged = MergedAvailable::of(regions);
    let mut end_below_4g = 0;
    let mut bytes_above_4g: u64 = 0;
    for range in merged.as_slice() {
        if range.start < FOUR_GIB {
            end_below_4g = end_below_4g.max(range.end.min(FOUR_GIB));
        }
        if range.end > FOUR_GIB {
            let above = PhysRange::new(range.start.max(FOUR_GIB), range.end);
            bytes_above_4g = bytes_above_4g.saturating_add(above.len());
        }
    }
    round_up_to_mib(end_below_4g).saturating_add(round_up_to_mib(bytes_above_4g))
}

/// Highest end address of any `Available` region (0 if none). Empty regions are ignored.
pub fn available_end(regions: &[MemoryRegion]) -> u64 {
    regions
        .iter()
        .filter(|r| r.kind == RegionKind::Available && !r.range.is_empty())
        .map(|r| r.range.end)
        .max()
        .unwrap_or(0)
}

/// Smallest multiple of `align` that is `>= addr`, if it fits in a u64.
fn align_up(addr: u64, align: u64) -> Option<u64> {
    addr.checked_next_multiple_of(align)
}

/// Lowest aligned start of a `size`-byte span inside `region` that overlaps no `reserved`.
fn lowest_span_in(region: PhysRange, reserved: &[PhysRange], size: u64, align: u64) -> Option<u64> {
    let mut candidate = align_up(region.start, align)?;
    loop {
        let span = PhysRange::new(candidate, candidate.checked_add(size)?);
        if span.end > region.end {
            return None;
        }
        // Every step moves past the end of a reserved range that overlapped, so no range
        // is hit twice: at most `reserved.len() + 1` iterations.
        match reserved
            .iter()
            .filter(|r| r.overlaps(&span))
            .map(|r| r.end)
            .max()
        {
            None => return Some(candidate),
            Some(blocked_until) => candidate = align_up(blocked_until, align)?,
        }
    }
}

/// Lowest address `a` with `a % align == 0` such that `[a, a+size)` lies entirely inside
/// one `Available` region and overlaps none of `reserved`. `align` is a power of two.
///
/// "One region" is taken literally: a span is not placed across two adjacent `Available`
/// entries. `size == 0` yields `None` (an empty span is never useful). `align == 0` is
/// treated as 1; any non-zero `align` works, a power of two is not required.
pub fn find_free_span(
    regions: &[MemoryRegion],
    reserved: &[PhysRange],
    size: u64,
    align: u64,
) -> Option<u64> {
    if size == 0 {
        return None;
    }
    let align = align.max(1);
    regions
        .iter()
        .filter(|r| r.kind == RegionKind::Available)
        .filter_map(|r| lowest_span_in(r.range, reserved, size, align))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    const GIB: u64 = 1 << 30;

    fn available(start: u64, end: u64) -> MemoryRegion {
        MemoryRegion {
            range: PhysRange::new(start, end),
            kind: RegionKind::Available,
        }
    }

    fn region(start: u64, end: u64, kind: RegionKind) -> MemoryRegion {
        MemoryRegion {
            range: PhysRange::new(start, end),
            kind,
        }
    }

    #[test]
    fn range_basics() {
        let r = PhysRange::new(0x1000, 0x3000);
        assert_eq!(r.len(), 0x2000);
        assert!(!r.is_empty());
        assert!(r.contains(0x1000));
        assert!(r.contains(0x2fff));
        assert!(!r.contains(0x3000));
        assert!(!r.contains(0xfff));
        let backwards = PhysRange::new(0x3000, 0x1000);
        assert_eq!(backwards.len(), 0);
        assert!(backwards.is_empty());
        assert!(!backwards.contains(0x2000));
        assert!(PhysRange::new(5, 5).is_empty());
    }

    #[test]
    fn overlaps_is_half_open_and_symmetric() {
        let a = PhysRange::new(0x1000, 0x2000);
        let touching = PhysRange::new(0x2000, 0x3000);
        let inside = PhysRange::new(0x1800, 0x1900);
        let straddling = PhysRange::new(0x0, 0x1001);
        assert!(!a.overlaps(&touching) && !touching.overlaps(&a));
        assert!(a.overlaps(&inside) && inside.overlaps(&a));
        assert!(a.overlaps(&straddling) && straddling.overlaps(&a));
        assert!(a.overlaps(&a));
        let empty = PhysRange::new(0x1800, 0x1800);
        assert!(!a.overlaps(&empty) && !empty.overlaps(&a));
    }

    #[test]
    fn usable_bytes_counts_only_available() {
        let map = [
            available(0, 0x9fc00),
            region(0x9fc00, 0xa0000, RegionKind::Reserved),
            region(0xf0000, 0x100000, RegionKind::Reserved),
            available(0x100000, 0x7fe0000),
            region(0x7fe0000, 0x8000000, RegionKind::AcpiReclaimable),
            region(0xfffc0000, 0x1_0000_0000, RegionKind::Reserved),
        ];
        assert_eq!(usable_bytes(&map), 0x9fc00 + (0x7fe0000 - 0x100000));
        assert_eq!(usable_bytes(&[]), 0);
    }

    #[test]
    fn usable_bytes_counts_overlaps_once_in_any_order() {
        let map = [
            available(0x5000, 0x9000),
            available(0x1000, 0x3000),
            available(0x2000, 0x6000), // bridges the two above
            available(0x1000, 0x3000), // duplicate
            available(0x20000, 0x21000),
            available(0x7000, 0x8000),   // nested
            available(0x9000, 0xa000),   // touching
            available(0x30000, 0x30000), // empty
        ];
        assert_eq!(usable_bytes(&map), (0xa000 - 0x1000) + 0x1000);
    }

    #[test]
    fn usable_bytes_handles_many_overlapping_regions() {
        // 200 regions that all overlap still collapse into one stretch.
        let map: Vec<_> = (0..200u64)
            .map(|i| available(i * 0x1000, i * 0x1000 + 0x4000))
            .collect();
        assert_eq!(usable_bytes(&map), 199 * 0x1000 + 0x4000);
    }

    #[test]
    fn usable_bytes_keeps_the_first_64_disjoint_stretches() {
        let map: Vec<_> = (0..100u64)
            .map(|i| available(i * 0x10000, i * 0x10000 + 0x1000))
            .collect();
        // Fed in ascending order, the first 64 stretches are kept.
        assert_eq!(usable_bytes(&map), 64 * 0x1000);
    }

    #[test]
    fn usable_bytes_saturates_instead_of_overflowing() {
        let map = [available(0, u64::MAX)];
        assert_eq!(usable_bytes(&map), u64::MAX);
    }

    #[test]
    fn installed_bytes_qemu_128m() {
        let map = [
            available(0, 0x9fc00),
            region(0x9fc00, 0xa0000, RegionKind::Reserved),
            available(0x100000, 0x7fe0000),
            region(0x7fe0000, 0x8000000, RegionKind::Reserved),
        ];
        assert_eq!(installed_bytes(&map), 128 * MIB);
    }

    #[test]
    fn installed_bytes_q35_5g() {
        // QEMU q35 with -m 5G: 2 GiB below the PCI hole, 3 GiB above 4 GiB.
        let map = [
            available(0, 0x9fc00),
            available(0x100000, 0x7ffdf000),
            region(0x7ffdf000, 0x80000000, RegionKind::Reserved),
            region(0xb0000000, 0xc0000000, RegionKind::Reserved),
            available(0x1_0000_0000, 0x1_c000_0000),
        ];
        assert_eq!(installed_bytes(&map), 5 * GIB);
    }

    #[test]
    fn installed_bytes_follows_the_documented_formula() {
        // Below 4 GiB: highest end (0x7ffdf000) rounded up to a MiB = 2 GiB.
        // Above 4 GiB: Available bytes there (2 GiB here) rounded up to a MiB.
        let map = [
            available(0, 0x9fc00),
            available(0x100000, 0x7ffdf000),
            available(0x1_0000_0000, 0x1_8000_0000),
        ];
        assert_eq!(installed_bytes(&map), 2 * GIB + 2 * GIB);

        // Holes below 4 GiB do not matter, only the end; above 4 GiB only bytes count.
        let map = [
            available(0x100000, 0x200000),
            available(0x3ff00000, 0x3ff00001),
            available(0x2_0000_0000, 0x2_0000_1000),
            available(0x3_0000_0000, 0x3_0000_1000),
            available(0x3_0000_0000, 0x3_0000_1000),
        ];
        assert_eq!(installed_bytes(&map), 0x40000000 + MIB);
    }

    #[test]
    fn installed_bytes_splits_a_region_straddling_4g() {
        let map = [available(0x100000, 0x1_0010_0000)];
        assert_eq!(installed_bytes(&map), 4 * GIB + MIB);
        assert_eq!(installed_bytes(&[]), 0);
        let reserved_only = [region(0, 0x8000000, RegionKind::Reserved)];
        assert_eq!(installed_bytes(&reserved_only), 0);
    }

    #[test]
    fn installed_bytes_does_not_overflow() {
        let map = [available(0, u64::MAX)];
        assert_eq!(installed_bytes(&map), u64::MAX);
    }

    #[test]
    fn available_end_is_highest_available_end() {
        let map = [
            available(0x100000, 0x7fe0000),
            region(0x7fe0000, 0xffff_0000, RegionKind::Reserved),
            available(0, 0x9fc00),
            available(0x9000_0000, 0x9000_0000), // empty
        ];
        assert_eq!(available_end(&map), 0x7fe0000);
        assert_eq!(available_end(&[]), 0);
        assert_eq!(available_end(&[region(0, 0x1000, RegionKind::BadRam)]), 0);
    }

    #[test]
    fn find_free_span_skips_reserved_and_respects_alignment() {
        let map = [available(0x1000, 0x100000)];
        assert_eq!(find_free_span(&map, &[], 0x1000, 0x1000), Some(0x1000));
        assert_eq!(find_free_span(&map, &[], 0x1000, 0x10000), Some(0x10000));
        let reserved = [PhysRange::new(0x0, 0x2800), PhysRange::new(0x4000, 0x5000)];
        // 0x3000..0x4000 fits between the two reserved ranges.
        assert_eq!(
            find_free_span(&map, &reserved, 0x1000, 0x1000),
            Some(0x3000)
        );
        // 0x2000 bytes do not fit there, the next spot is after the second range.
        assert_eq!(
            find_free_span(&map, &reserved, 0x2000, 0x1000),
            Some(0x5000)
        );
        // Touching a reserved range is fine; overlapping by one byte is not.
        let reserved = [PhysRange::new(0x1000, 0x2000)];
        assert_eq!(find_free_span(&map, &reserved, 0x1000, 1), Some(0x2000));
        let reserved = [PhysRange::new(0x1000, 0x2001)];
        assert_eq!(
            find_free_span(&map, &reserved, 0x1000, 0x1000),
            Some(0x3000)
        );
    }

    #[test]
    fn find_free_span_stays_inside_one_available_region() {
        let map = [
            region(0, 0x100000, RegionKind::Reserved),
            available(0x200000, 0x201000),
            available(0x100000, 0x101000),
            available(0x101000, 0x102000), // adjacent, but a separate region
            available(0x400000, 0x500000),
        ];
        assert_eq!(find_free_span(&map, &[], 0x1000, 0x1000), Some(0x100000));
        assert_eq!(find_free_span(&map, &[], 0x2000, 0x1000), Some(0x400000));
        assert_eq!(find_free_span(&map, &[], 0x100000, 0x1000), Some(0x400000));
        assert_eq!(find_free_span(&map, &[], 0x100001, 0x1000), None);
        // Reserved (non-Available) map regions are never used.
        assert_eq!(find_free_span(&map[..1], &[], 0x1000, 0x1000), None);
    }

    #[test]
    fn find_free_span_lowest_over_unsorted_regions() {
        let map = [available(0x800000, 0x900000), available(0x300000, 0x400000)];
        let reserved = [PhysRange::new(0x300000, 0x3ff000)];
        assert_eq!(
            find_free_span(&map, &reserved, 0x1000, 0x1000),
            Some(0x3ff000)
        );
        assert_eq!(
            find_free_span(&map, &reserved, 0x2000, 0x1000),
            Some(0x800000)
        );
    }

    #[test]
    fn find_free_span_edge_cases() {
        let map = [available(0x1000, 0x3000)];
        assert_eq!(find_free_span(&map, &[], 0, 0x1000), None);
        assert_eq!(find_free_span(&map, &[], 0x1000, 0), Some(0x1000));
        assert_eq!(find_free_span(&[], &[], 0x1000, 0x1000), None);
        // Near the top of the address space nothing overflows.
        let top = [available(u64::MAX - 0x1fff, u64::MAX)];
        assert_eq!(
            find_free_span(&top, &[], 0x1000, 0x1000),
            Some(u64::MAX - 0x1fff)
        );
        assert_eq!(find_free_span(&top, &[], 0x2000, 0x1000), None);
        assert_eq!(find_free_span(&top, &[], 0x1000, 1 << 63), None);
        let everything_reserved = [PhysRange::new(0, u64::MAX)];
        assert_eq!(find_free_span(&top, &everything_reserved, 1, 1), None);
    }

    const UNIT: u64 = 0x1000;
    const UNITS: u64 = 96;

    fn kind_strategy() -> impl Strategy<Value = RegionKind> {
        prop_oneof![
            3 => Just(RegionKind::Available),
            1 => Just(RegionKind::Reserved),
            1 => (6u32..9).prop_map(RegionKind::Other),
        ]
    }

    /// Up to 20 regions on a 0x1000 grid, some with ragged (unaligned) ends.
    fn map_strategy() -> impl Strategy<Value = Vec<MemoryRegion>> {
        prop::collection::vec((0..UNITS, 0..UNITS / 3, 0..2u64, kind_strategy()), 0..20).prop_map(
            |entries| {
                entries
                    .into_iter()
                    .map(|(start, len, ragged, kind)| {
                        region(start * UNIT, (start + len) * UNIT + ragged * 0x10, kind)
                    })
                    .collect()
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// usable_bytes equals the bytes covered by Available regions, counted once.
        #[test]
        fn usable_bytes_matches_byte_model(map in map_strategy()) {
            // Every boundary is a multiple of 0x10, so count 0x10-byte cells.
            let mut covered = std::vec![false; ((UNITS * 2) * UNIT / 0x10) as usize];
            for r in map.iter().filter(|r| r.kind == RegionKind::Available) {
                for cell in (r.range.start / 0x10)..(r.range.end / 0x10) {
                    covered[cell as usize] = true;
                }
            }
            let cells = covered.iter().filter(|&&c| c).count() as u64;
            prop_assert_eq!(usable_bytes(&map), cells * 0x10);
        }

        /// find_free_span returns the lowest aligned span a brute-force search finds.
        #[test]
        fn find_free_span_matches_brute_force(
            map in map_strategy(),
            reserved in prop::collection::vec((0..UNITS * UNIT, 0..8 * UNIT), 0..6),
            size in prop_oneof![(1..6u64).prop_map(|units| units * UNIT), 1..6 * UNIT],
            align_shift in 4u32..14,
        ) {
            // Reserved ranges on a 0x10 grid too, so stepping by align (>= 0x10) is exhaustive.
            let reserved: Vec<_> = reserved
                .iter()
                .map(|&(s, l)| PhysRange::new(s & !0xf, (s + l) & !0xf))
                .collect();
            let align = 1u64 << align_shift;
            let fits = |a: u64| {
                let span = PhysRange::new(a, a + size);
                map.iter().any(|r| {
                    r.kind == RegionKind::Available && r.range.start <= a && span.end <= r.range.end
                }) && !reserved.iter().any(|r| r.overlaps(&span))
            };
            // Regions end below (UNITS + UNITS / 3) * UNIT + 0x20; search well past that.
            let limit = 2 * UNITS * UNIT;
            let expected = (0..limit).step_by(align as usize).find(|&a| fits(a));
            let found = find_free_span(&map, &reserved, size, align);
            prop_assert_eq!(found, expected);
        }
    }
}
