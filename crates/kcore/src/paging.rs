//! x86-64 four-level page tables over a `PhysicalMemory` trait: map, translate, unmap, destroy.
//!
//! The tables live in physical frames the walker never touches directly: every entry is read
//! and written through [`PhysicalMemory`], which the kernel implements with its direct map
//! and the tests with a fake. Frames for new tables come from an allocator closure, as the
//! kernel's allocators are called today, and `destroy_user` hands every frame back through a
//! free closure. All methods are generic over the backend, so the kernel's (a zero-sized
//! direct-map type) monomorphises to plain loads and stores.
//!
//! Mappings are 4 KiB or 2 MiB pages; 1 GiB entries are never created and translate to
//! nothing. Intermediate tables are created writable and executable (USER if the leaf is), so
//! the leaf entry alone decides the permissions a translation reports.

pub use crate::phys::{Frame, PhysAddr};

/// Bytes in a small page (and in a page-table frame).
pub const PAGE_SIZE: u64 = 4096;
/// Bytes in a large (level-2) page.
pub const LARGE_PAGE_SIZE: u64 = 2 * 1024 * 1024;
/// Entries in one table.
pub const ENTRIES: usize = 512;
/// First PML4 entry of the kernel half (virtual addresses with bit 47 set).
pub const KERNEL_HALF_FIRST_ENTRY: usize = ENTRIES / 2;

/// Page-table entry bits.
pub mod flags {
    pub const PRESENT: u64 = 1 << 0;
    pub const WRITABLE: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const WRITE_THROUGH: u64 = 1 << 3;
    pub const CACHE_DISABLE: u64 = 1 << 4;
    pub const LARGE: u64 = 1 << 7;
    pub const GLOBAL: u64 = 1 << 8;
    /// Ignored by the CPU (a bit for software): the kernel marks a user page that maps
    /// another mapping's frame (`VmMapShared`), so unmapping it counts it as shared.
    pub const SHARED_VIEW: u64 = 1 << 9;
    pub const NO_EXECUTE: u64 = 1 << 63;
}

/// The physical-address bits of an entry.
pub const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Physical memory holding page tables, reached one 64-bit entry at a time.
///
/// `table` is always a frame the walker got from the root or from a present, non-large
/// entry of the same tables, and `index < ENTRIES`.
pub trait PhysicalMemory {
    /// Entry `index` of the table in frame `table`.
    fn read_entry(&self, table: Frame, index: usize) -> u64;
    /// Sets entry `index` of the table in frame `table`.
    fn write_entry(&mut self, table: Frame, index: usize, entry: u64);
    /// Clears all entries of the (freshly allocated) frame `table`.
    fn zero_table(&mut self, table: Frame) {
        for index in 0..ENTRIES {
            self.write_entry(table, index, 0);
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// No frame left for an intermediate table.
    OutOfFrames,
    /// The virtual address is already mapped (or covered by a large page).
    AlreadyMapped(u64),
    /// Address not aligned to the page size.
    Misaligned(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    Size4K,
    Size2M,
}

/// Result of walking the tables for one virtual address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    pub phys: PhysAddr,
    /// Leaf entry flags (the address bits cleared).
    pub flags: u64,
    pub size: PageSize,
}

impl Translation {
    #[inline]
    pub fn writable(&self) -> bool {
        self.flags & flags::WRITABLE != 0
    }
    #[inline]
    pub fn executable(&self) -> bool {
        self.flags & flags::NO_EXECUTE == 0
    }
    #[inline]
    pub fn user(&self) -> bool {
        self.flags & flags::USER != 0
    }
}

/// Index into the level-`level` table (4 = PML4, 1 = page table) for `virt`.
#[inline]
pub const fn table_index(virt: u64, level: u32) -> usize {
    ((virt >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

/// A four-level address space identified by the physical address of its PML4. The tables
/// themselves live in a `PhysicalMemory` passed to every call.
#[derive(Debug, PartialEq, Eq)]
pub struct PageTables {
    root: Frame,
}

impl PageTables {
    /// Creates an empty address space; `alloc_frame` supplies 4 KiB frames (zeroed here).
    pub fn new<M: PhysicalMemory + ?Sized>(
        memory: &mut M,
        alloc_frame: &mut dyn FnMut() -> Option<Frame>,
    ) -> Result<PageTables, MapError> {
        let root = new_table(memory, alloc_frame)?;
        Ok(PageTables { root })
    }

    /// A new user address space sharing the kernel half (PML4 entries 256..512) of `kernel`.
    /// The kernel half must never change after this (it is shared by reference, not copied).
    pub fn new_user<M: PhysicalMemory + ?Sized>(
        kernel: &PageTables,
        memory: &mut M,
        alloc_frame: &mut dyn FnMut() -> Option<Frame>,
    ) -> Result<PageTables, MapError> {
        let space = PageTables::new(memory, alloc_frame)?;
        for index in KERNEL_HALF_FIRST_ENTRY..ENTRIES {
            let entry = memory.read_entry(kernel.root, index);
            memory.write_entry(space.root, index, entry);
        }
        Ok(space)
    }

    /// Wraps an existing PML4.
    #[inline]
    pub const fn from_root(root: Frame) -> PageTables {
        PageTables { root }
    }

    /// Physical address of the PML4.
    #[inline]
    pub const fn root(&self) -> Frame {
        self.root
    }

    /// Maps one page of `size` at `virt` to `phys` with leaf `leaf_flags` (PRESENT is added,
    /// and LARGE for a 2 MiB page). Intermediate tables are created as needed, writable and
    /// executable, USER if the leaf is; on `OutOfFrames` the ones already created stay.
    pub fn map<M: PhysicalMemory + ?Sized>(
        &mut self,
        memory: &mut M,
        virt: u64,
        phys: PhysAddr,
        size: PageSize,
        leaf_flags: u64,
        alloc_frame: &mut dyn FnMut() -> Option<Frame>,
    ) -> Result<(), MapError> {
        let (page_bytes, leaf_level) = match size {
            PageSize::Size4K => (PAGE_SIZE, 1),
            PageSize::Size2M => (LARGE_PAGE_SIZE, 2),
        };
        if !virt.is_multiple_of(page_bytes) || !phys.get().is_multiple_of(page_bytes) {
            return Err(MapError::Misaligned(virt));
        }
        let mut table = self.root;
        for level in (leaf_level + 1..=4).rev() {
            let index = table_index(virt, level);
            let entry = memory.read_entry(table, index);
            if entry & flags::PRESENT == 0 {
                let next = new_table(memory, alloc_frame)?;
                let intermediate = flags::PRESENT | flags::WRITABLE | (leaf_flags & flags::USER);
                memory.write_entry(table, index, next.address() | intermediate);
                table = next;
            } else if entry & flags::LARGE != 0 {
                return Err(MapError::AlreadyMapped(virt));
            } else {
                table = entry_frame(entry);
            }
        }
        let index = table_index(virt, leaf_level);
        if memory.read_entry(table, index) & flags::PRESENT != 0 {
            return Err(MapError::AlreadyMapped(virt));
        }
        let large = if leaf_level == 2 { flags::LARGE } else { 0 };
        memory.write_entry(
            table,
            index,
            phys.get() | leaf_flags | large | flags::PRESENT,
        );
        Ok(())
    }

    /// Walks the tables for `virt`.
    #[inline]
    pub fn translate<M: PhysicalMemory + ?Sized>(
        &self,
        memory: &M,
        virt: u64,
    ) -> Option<Translation> {
        let mut table = self.root;
        for level in (1..=4).rev() {
            let entry = memory.read_entry(table, table_index(virt, level));
            if entry & flags::PRESENT == 0 {
                return None;
            }
            let is_leaf = level == 1 || (level == 2 && entry & flags::LARGE != 0);
            if level == 3 && entry & flags::LARGE != 0 {
                return None; // 1 GiB pages are never created
            }
            if is_leaf {
                let (size, offset_mask) = if level == 1 {
                    (PageSize::Size4K, PAGE_SIZE - 1)
                } else {
                    (PageSize::Size2M, LARGE_PAGE_SIZE - 1)
                };
                let base = entry & ADDRESS_MASK & !offset_mask;
                return Some(Translation {
                    phys: PhysAddr::new(base + (virt & offset_mask))
                        .expect("an entry's address bits are a physical address"),
                    flags: entry & !ADDRESS_MASK,
                    size,
                });
            }
            table = entry_frame(entry);
        }
        None
    }

    /// The page table (level 1) covering `virt`, if the walk reaches one (no large page or
    /// missing table on the way).
    fn page_table_of<M: PhysicalMemory + ?Sized>(&self, memory: &M, virt: u64) -> Option<Frame> {
        let mut table = self.root;
        for level in (2..=4).rev() {
            let entry = memory.read_entry(table, table_index(virt, level));
            if entry & flags::PRESENT == 0 || entry & flags::LARGE != 0 {
                return None;
            }
            table = entry_frame(entry);
        }
        Some(table)
    }

    /// Removes the 4 KiB mapping at `virt`; returns the frame it mapped. Page tables left
    /// empty stay until `destroy_user`. The caller invalidates the TLB entry.
    pub fn unmap<M: PhysicalMemory + ?Sized>(
        &mut self,
        memory: &mut M,
        virt: u64,
    ) -> Option<Frame> {
        let mut removed = None;
        self.unmap_range(memory, virt & !(PAGE_SIZE - 1), 1, &mut |_, frame, _| {
            removed = Some(frame);
        });
        removed
    }

    /// Removes every 4 KiB mapping of the `pages` pages from `virt` (page aligned), one walk
    /// to each page table the range crosses instead of one per page: `unmapped(page, frame,
    /// flags)` is told about each mapping removed, in address order. Pages with no mapping,
    /// a missing table or a large page on the way are skipped. Page tables left empty stay
    /// until `destroy_user`. The caller invalidates the TLB entries.
    pub fn unmap_range<M: PhysicalMemory + ?Sized>(
        &mut self,
        memory: &mut M,
        virt: u64,
        pages: u64,
        unmapped: &mut dyn FnMut(u64, Frame, u64),
    ) {
        let end = virt.saturating_add(pages.saturating_mul(PAGE_SIZE));
        let mut page = virt & !(PAGE_SIZE - 1);
        while page < end {
            // The rest of this page table's 2 MiB, or of the range.
            let table_end = (page | (LARGE_PAGE_SIZE - 1)).saturating_add(1).min(end);
            if let Some(table) = self.page_table_of(memory, page) {
                let first = table_index(page, 1);
                let count = ((table_end - page) / PAGE_SIZE) as usize;
                for index in first..first + count {
                    let entry = memory.read_entry(table, index);
                    if entry & flags::PRESENT != 0 {
                        memory.write_entry(table, index, 0);
                        let at = page + (index - first) as u64 * PAGE_SIZE;
                        unmapped(at, entry_frame(entry), entry & !ADDRESS_MASK);
                    }
                }
            }
            page = table_end;
        }
    }

    /// Replaces the leaf flags of the 4 KiB mapping at `virt` with `leaf_flags` (PRESENT is
    /// added), keeping its frame; returns the previous flags, or `None` if `virt` has no 4 KiB
    /// mapping. The caller invalidates the TLB entry.
    pub fn protect<M: PhysicalMemory + ?Sized>(
        &mut self,
        memory: &mut M,
        virt: u64,
        leaf_flags: u64,
    ) -> Option<u64> {
        let table = self.page_table_of(memory, virt)?;
        let index = table_index(virt, 1);
        let entry = memory.read_entry(table, index);
        if entry & flags::PRESENT == 0 {
            return None;
        }
        let frame = entry & ADDRESS_MASK;
        memory.write_entry(
            table,
            index,
            frame | (leaf_flags & !ADDRESS_MASK) | flags::PRESENT,
        );
        Some(entry & !ADDRESS_MASK)
    }

    /// Walks the user half (PML4 entries `0..256`) depth first, telling `visit` about every
    /// present entry below the PML4: leaves first, then the table holding them. Large entries
    /// are leaves, not tables, so they are reported and not descended.
    fn walk_user_half<M: PhysicalMemory + ?Sized>(
        &self,
        memory: &M,
        visit: &mut dyn FnMut(Visited),
    ) {
        let present = |entry: &u64| *entry & flags::PRESENT != 0;
        let entries = |table: Frame, range: core::ops::Range<usize>| {
            range.map(move |index| memory.read_entry(table, index))
        };
        for l4 in entries(self.root, 0..KERNEL_HALF_FIRST_ENTRY).filter(present) {
            let pdpt = entry_frame(l4);
            for l3 in entries(pdpt, 0..ENTRIES).filter(present) {
                if l3 & flags::LARGE != 0 {
                    visit(Visited::Huge);
                    continue;
                }
                let pd = entry_frame(l3);
                for l2 in entries(pd, 0..ENTRIES).filter(present) {
                    if l2 & flags::LARGE != 0 {
                        visit(Visited::Large);
                        continue;
                    }
                    let pt = entry_frame(l2);
                    for l1 in entries(pt, 0..ENTRIES).filter(present) {
                        visit(Visited::Page(entry_frame(l1), l1 & !ADDRESS_MASK));
                    }
                    visit(Visited::Table(pt));
                }
                visit(Visited::Table(pd));
            }
            visit(Visited::Table(pdpt));
        }
    }

    /// Frees every user-half 4 KiB frame and page table through `free_frame` (each table
    /// after the frames it maps), then the PML4 itself. Large user pages (the kernel creates
    /// none) go with their tables, but their memory is not freed: it did not come from the
    /// 4 KiB frame allocator. The space must not be in use.
    pub fn destroy_user<M: PhysicalMemory + ?Sized>(
        self,
        memory: &M,
        free_frame: &mut dyn FnMut(Frame),
    ) {
        self.walk_user_half(memory, &mut |visited| match visited {
            Visited::Page(frame, _) | Visited::Table(frame) => free_frame(frame),
            Visited::Large | Visited::Huge => {}
        });
        free_frame(self.root);
    }

    /// Number of 4 KiB user pages mapped in the user half (a 2 MiB page counts as 512; 1 GiB
    /// entries, which translate to nothing, count as none).
    pub fn count_user_pages<M: PhysicalMemory + ?Sized>(&self, memory: &M) -> u64 {
        let mut pages = 0;
        self.walk_user_half(memory, &mut |visited| match visited {
            Visited::Page(..) => pages += 1,
            Visited::Large => pages += LARGE_PAGE_SIZE / PAGE_SIZE,
            Visited::Table(_) | Visited::Huge => {}
        });
        pages
    }

    /// Number of 4 KiB user pages whose leaf has every bit of `flag` set (e.g.
    /// `flags::SHARED_VIEW`).
    pub fn count_user_pages_with<M: PhysicalMemory + ?Sized>(&self, memory: &M, flag: u64) -> u64 {
        let mut pages = 0;
        self.walk_user_half(memory, &mut |visited| {
            if let Visited::Page(_, leaf) = visited {
                if leaf & flag == flag {
                    pages += 1;
                }
            }
        });
        pages
    }
}

/// What `walk_user_half` found.
#[derive(Clone, Copy)]
enum Visited {
    /// A 4 KiB leaf mapping this frame, with the leaf's flags (address bits cleared).
    Page(Frame, u64),
    /// A 2 MiB leaf.
    Large,
    /// A 1 GiB leaf.
    Huge,
    /// A page table, PD or PDPT frame, reported after everything it maps.
    Table(Frame),
}

/// The frame an entry points at.
const fn entry_frame(entry: u64) -> Frame {
    Frame::from_aligned(entry & ADDRESS_MASK)
}

/// Allocates a frame for a table and clears it.
fn new_table<M: PhysicalMemory + ?Sized>(
    memory: &mut M,
    alloc_frame: &mut dyn FnMut() -> Option<Frame>,
) -> Result<Frame, MapError> {
    let frame = alloc_frame().ok_or(MapError::OutOfFrames)?;
    memory.zero_table(frame);
    Ok(frame)
}

/// A fake physical memory for the tests: frames are boxes of 512 entries, handed out by an
/// allocator with an optional budget, and every access to a frame that is not allocated (a
/// walk through a freed table, or through an entry of a table never zeroed) panics.
#[cfg(test)]
pub(crate) mod fake {
    use super::*;
    use core::cell::{Cell, RefCell};
    use std::boxed::Box;
    use std::collections::{BTreeMap, BTreeSet};

    /// Contents of every word of a freshly allocated frame: a present, writable user table
    /// entry pointing at a frame that does not exist, so a table used without being zeroed
    /// sends the walk into a panic.
    pub const GARBAGE: u64 = 0x000b_ad00_0000_0000 | flags::PRESENT | flags::WRITABLE | flags::USER;

    /// Where the fake's frames start: high enough that every address bit up to 51 is used.
    pub const FRAME_BASE: u64 = 0x000f_ff00_0000_0000;

    #[derive(Default)]
    pub struct FakeMemory {
        frames: RefCell<BTreeMap<u64, Box<[u64; ENTRIES]>>>,
        /// Frames handed out so far (the next one is `FRAME_BASE + handed_out · 4 KiB`).
        handed_out: Cell<u64>,
        /// Allocations still allowed; `None` = unlimited.
        budget: Cell<Option<usize>>,
    }

    impl FakeMemory {
        pub fn new() -> FakeMemory {
            FakeMemory::default()
        }

        /// Allows `budget` more allocations (`None`: unlimited).
        pub fn set_budget(&self, budget: Option<usize>) {
            self.budget.set(budget);
        }

        pub fn budget(&self) -> Option<usize> {
            self.budget.get()
        }

        /// A new frame full of `GARBAGE`, or `None` once the budget is spent.
        pub fn alloc(&self) -> Option<Frame> {
            match self.budget.get() {
                Some(0) => return None,
                Some(left) => self.budget.set(Some(left - 1)),
                None => {}
            }
            let frame = FRAME_BASE + self.handed_out.get() * PAGE_SIZE;
            self.handed_out.set(self.handed_out.get() + 1);
            self.frames
                .borrow_mut()
                .insert(frame, Box::new([GARBAGE; ENTRIES]));
            Some(Frame::new(frame).expect("the fake's frames are physical frames"))
        }

        /// Returns `frame`; panics if it is not allocated (a double or foreign free).
        pub fn free(&self, frame: Frame) {
            assert!(
                self.frames.borrow_mut().remove(&frame.address()).is_some(),
                "free of {frame:#x}, which is not allocated"
            );
        }

        /// Frames allocated and not freed.
        pub fn live(&self) -> BTreeSet<u64> {
            self.frames.borrow().keys().copied().collect()
        }

        /// Runs `f` on the frame `table`; panics if it is not allocated.
        fn with_frame<R>(&self, table: Frame, f: impl FnOnce(&mut [u64; ENTRIES]) -> R) -> R {
            match self.frames.borrow_mut().get_mut(&table.address()) {
                Some(frame) => f(frame),
                None => panic!("table access to {table:#x}, which is not an allocated frame"),
            }
        }
    }

    impl PhysicalMemory for &FakeMemory {
        fn read_entry(&self, table: Frame, index: usize) -> u64 {
            self.with_frame(table, |frame| frame[index])
        }

        fn write_entry(&mut self, table: Frame, index: usize, entry: u64) {
            self.with_frame(table, |frame| frame[index] = entry);
        }
    }
}

#[cfg(test)]
mod tests {
    /// The frame at `address` (aligned: the tests name frames by address).
    fn fr(address: u64) -> crate::phys::Frame {
        crate::phys::Frame::new(address).expect("an aligned physical address")
    }

    /// The physical address `address`.
    fn pa(address: u64) -> crate::phys::PhysAddr {
        crate::phys::PhysAddr::new(address).expect("a physical address")
    }

    use super::fake::{FakeMemory, GARBAGE};
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};
    use std::vec::Vec;

    const USER_RW: u64 = flags::USER | flags::WRITABLE | flags::NO_EXECUTE;

    fn space(fake: &FakeMemory) -> PageTables {
        PageTables::new(&mut &*fake, &mut || fake.alloc()).unwrap()
    }

    fn map(
        fake: &FakeMemory,
        tables: &mut PageTables,
        virt: u64,
        phys: impl Into<PhysAddr>,
        size: PageSize,
        leaf: u64,
    ) -> Result<(), MapError> {
        tables.map(&mut &*fake, virt, phys.into(), size, leaf, &mut || {
            fake.alloc()
        })
    }

    fn destroy(fake: &FakeMemory, tables: PageTables) {
        tables.destroy_user(&fake, &mut |frame| fake.free(frame));
    }

    #[test]
    fn a_new_space_is_empty_because_its_root_is_zeroed() {
        let fake = FakeMemory::new();
        let tables = space(&fake);
        // A root left full of GARBAGE would send these walks into a missing frame.
        for virt in [
            0,
            0x40_0000,
            0x7fff_ffff_f000,
            0xffff_8000_0000_0000,
            u64::MAX,
        ] {
            assert_eq!(tables.translate(&&fake, virt), None);
        }
        assert_eq!(tables.count_user_pages(&&fake), 0);
        destroy(&fake, tables);
        assert!(fake.live().is_empty());
    }

    #[test]
    fn the_default_zero_table_clears_every_entry() {
        let fake = FakeMemory::new();
        let frame = fake.alloc().unwrap();
        let mut memory = &fake;
        assert_eq!(memory.read_entry(frame, 511), GARBAGE);
        memory.zero_table(frame);
        assert!((0..ENTRIES).all(|index| memory.read_entry(frame, index) == 0));
    }

    #[test]
    fn table_indices_split_the_address() {
        let virt = (3 << 39) | (5 << 30) | (7 << 21) | (9 << 12) | 0x123;
        assert_eq!(
            [4, 3, 2, 1].map(|level| table_index(virt, level)),
            [3, 5, 7, 9]
        );
        assert_eq!(table_index(0xffff_ff80_0000_0000, 4), 511);
    }

    #[test]
    fn map_then_translate_a_small_page() {
        let fake = FakeMemory::new();
        let mut tables = space(&fake);
        let frame = fake.alloc().unwrap();
        map(
            &fake,
            &mut tables,
            0x40_1000,
            frame,
            PageSize::Size4K,
            USER_RW,
        )
        .unwrap();
        let translation = tables.translate(&&fake, 0x40_1abc).unwrap();
        assert_eq!(
            translation,
            Translation {
                phys: frame.with_offset(0xabc),
                flags: USER_RW | flags::PRESENT,
                size: PageSize::Size4K,
            }
        );
        assert!(translation.writable() && translation.user() && !translation.executable());
        assert_eq!(tables.translate(&&fake, 0x40_0fff), None);
        assert_eq!(tables.translate(&&fake, 0x40_2000), None);
        assert_eq!(tables.count_user_pages(&&fake), 1);
        assert_eq!(tables.count_user_pages_with(&&fake, flags::USER), 1);
        assert_eq!(tables.count_user_pages_with(&&fake, flags::SHARED_VIEW), 0);
        // Root, PDPT, PD, PT and the data frame.
        assert_eq!(fake.live().len(), 5);
        destroy(&fake, tables);
        assert!(fake.live().is_empty());
    }

    #[test]
    fn mapping_twice_is_refused() {
        let fake = FakeMemory::new();
        let mut tables = space(&fake);
        map(
            &fake,
            &mut tables,
            0x40_0000,
            pa(0x1000),
            PageSize::Size4K,
            0,
        )
        .unwrap();
        assert_eq!(
            map(
                &fake,
                &mut tables,
                0x40_0000,
                pa(0x2000),
                PageSize::Size4K,
                0
            ),
            Err(MapError::AlreadyMapped(0x40_0000))
        );
        assert_eq!(
            tables.translate(&&fake, 0x40_0000).unwrap().phys,
            pa(0x1000)
        );
    }

    #[test]
    fn misaligned_addresses_are_refused() {
        let fake = FakeMemory::new();
        let mut tables = space(&fake);
        assert_eq!(
            map(
                &fake,
                &mut tables,
                0x40_0800,
                pa(0x1000),
                PageSize::Size4K,
                0
            ),
            Err(MapError::Misaligned(0x40_0800))
        );
        assert_eq!(
            map(
                &fake,
                &mut tables,
                0x40_0000,
                pa(0x1800),
                PageSize::Size4K,
                0
            ),
            Err(MapError::Misaligned(0x40_0000))
        );
        assert_eq!(
            map(
                &fake,
                &mut tables,
                0x40_1000,
                pa(0x20_0000),
                PageSize::Size2M,
                0
            ),
            Err(MapError::Misaligned(0x40_1000))
        );
        assert_eq!(
            map(
                &fake,
                &mut tables,
                0x40_0000,
                pa(0x20_1000),
                PageSize::Size2M,
                0
            ),
            Err(MapError::Misaligned(0x40_0000))
        );
        // Nothing was allocated for the refused maps.
        assert_eq!(fake.live().len(), 1);
    }

    #[test]
    fn large_pages_translate_with_their_offset_and_block_small_ones() {
        let fake = FakeMemory::new();
        let mut tables = space(&fake);
        let virt = 0xffff_8000_0020_0000; // kernel half: the direct map's shape
        let phys = 0x8000_0000;
        let leaf = flags::WRITABLE | flags::GLOBAL | flags::NO_EXECUTE;
        map(&fake, &mut tables, virt, pa(phys), PageSize::Size2M, leaf).unwrap();
        assert_eq!(
            tables.translate(&&fake, virt + 0x1f_fff8),
            Some(Translation {
                phys: pa(phys + 0x1f_fff8),
                flags: leaf | flags::LARGE | flags::PRESENT,
                size: PageSize::Size2M,
            })
        );
        assert_eq!(tables.translate(&&fake, virt + LARGE_PAGE_SIZE), None);
        // A small page inside it, or the large page again, is refused.
        assert_eq!(
            map(
                &fake,
                &mut tables,
                virt + 0x5000,
                pa(0x1000),
                PageSize::Size4K,
                0
            ),
            Err(MapError::AlreadyMapped(virt + 0x5000))
        );
        assert_eq!(
            map(&fake, &mut tables, virt, pa(phys), PageSize::Size2M, 0),
            Err(MapError::AlreadyMapped(virt))
        );
        // Unmap and protect handle small pages only: the large page stays.
        assert_eq!(tables.unmap(&mut &fake, virt), None);
        assert_eq!(tables.protect(&mut &fake, virt, 0), None);
        assert_eq!(tables.translate(&&fake, virt).unwrap().phys, pa(phys));
    }

    #[test]
    fn a_large_page_over_an_existing_page_table_is_refused() {
        let fake = FakeMemory::new();
        let mut tables = space(&fake);
        let frame = fake.alloc().unwrap();
        map(&fake, &mut tables, 0x60_3000, frame, PageSize::Size4K, 0).unwrap();
        assert_eq!(tables.unmap(&mut &fake, 0x60_3000), Some(frame));
        // The (now empty) page table still occupies the 2 MiB slot.
        assert_eq!(
            map(
                &fake,
                &mut tables,
                0x60_0000,
                pa(0x20_0000),
                PageSize::Size2M,
                0
            ),
            Err(MapError::AlreadyMapped(0x60_0000))
        );
    }

    #[test]
    fn gigabyte_entries_translate_to_nothing_and_block_mapping() {
        let fake = FakeMemory::new();
        let mut tables = space(&fake);
        // Create the PDPT, then turn its entry 1 into a 1 GiB page by hand.
        let frame = fake.alloc().unwrap();
        map(&fake, &mut tables, 0x1000, frame, PageSize::Size4K, 0).unwrap();
        let pdpt = (&fake).read_entry(tables.root(), 0) & ADDRESS_MASK;
        let huge = 0x4000_0000 | flags::PRESENT | flags::LARGE | flags::USER;
        (&fake).write_entry(fr(pdpt), 1, huge);
        assert_eq!(tables.translate(&&fake, 0x4000_1000), None);
        assert_eq!(
            map(
                &fake,
                &mut tables,
                0x4000_1000,
                pa(0x1000),
                PageSize::Size4K,
                0
            ),
            Err(MapError::AlreadyMapped(0x4000_1000))
        );
        assert_eq!(tables.unmap(&mut &fake, 0x4000_1000), None);
        // Neither counted nor, by destroy, freed or walked into as a table (0x4000_0000 is
        // not a fake frame, so either would panic).
        assert_eq!(tables.count_user_pages(&&fake), 1);
        destroy(&fake, tables);
        assert!(fake.live().is_empty());
    }

    #[test]
    fn unmap_returns_the_frame_once() {
        let fake = FakeMemory::new();
        let mut tables = space(&fake);
        let frame = fake.alloc().unwrap();
        map(&fake, &mut tables, 0x7000, frame, PageSize::Size4K, USER_RW).unwrap();
        assert_eq!(tables.unmap(&mut &fake, 0x7000), Some(frame));
        assert_eq!(tables.unmap(&mut &fake, 0x7000), None);
        assert_eq!(tables.translate(&&fake, 0x7000), None);
        // Never-mapped: no table on the way, or an empty slot in an existing table.
        assert_eq!(tables.unmap(&mut &fake, 0x1234_5678_9000), None);
        assert_eq!(tables.unmap(&mut &fake, 0x8000), None);
        // The page can be mapped again.
        map(&fake, &mut tables, 0x7000, frame, PageSize::Size4K, 0).unwrap();
    }

    #[test]
    fn unmap_range_removes_each_mapping_once_across_page_tables() {
        let fake = FakeMemory::new();
        let mut tables = space(&fake);
        // Pages on both sides of a 2 MiB boundary (two page tables), with holes, and one
        // outside the range that must stay.
        let boundary = 0x4000_0000u64;
        let mapped = [
            boundary - 3 * PAGE_SIZE,
            boundary - PAGE_SIZE,
            boundary,
            boundary + 5 * PAGE_SIZE,
        ];
        let mut frames = BTreeMap::new();
        for &virt in &mapped {
            let frame = fake.alloc().unwrap();
            map(&fake, &mut tables, virt, frame, PageSize::Size4K, USER_RW).unwrap();
            frames.insert(virt, frame);
        }
        let outside = boundary + 6 * PAGE_SIZE;
        map(&fake, &mut tables, outside, pa(0x9000), PageSize::Size4K, 0).unwrap();
        let mut seen = Vec::new();
        tables.unmap_range(
            &mut &fake,
            boundary - 4 * PAGE_SIZE,
            10,
            &mut |virt, frame, fl| {
                seen.push((virt, frame, fl & USER_RW));
            },
        );
        let wanted: Vec<_> = mapped.iter().map(|v| (*v, frames[v], USER_RW)).collect();
        assert_eq!(seen, wanted);
        for virt in mapped {
            assert_eq!(tables.translate(&&fake, virt), None);
        }
        assert!(
            tables.translate(&&fake, outside).is_some(),
            "outside the range"
        );
        // Again: nothing is left to remove. A range with no tables at all is fine too.
        seen.clear();
        tables.unmap_range(
            &mut &fake,
            boundary - 4 * PAGE_SIZE,
            10,
            &mut |virt, frame, fl| {
                seen.push((virt, frame, fl));
            },
        );
        tables.unmap_range(
            &mut &fake,
            0x7000_0000_0000,
            1024,
            &mut |virt, frame, fl| {
                seen.push((virt, frame, fl));
            },
        );
        assert!(seen.is_empty());
    }

    proptest! {
        #[test]
        fn unmap_range_removes_exactly_the_mapped_pages_in_range(
            offsets in proptest::collection::btree_set(0u64..1536, 0..40),
            start in 0u64..1536,
            pages in 0u64..1024,
        ) {
            let base = 0x1000_0000u64;
            let frame_of = |offset: u64| pa(0x1000 * (offset + 1));
            let fake = FakeMemory::new();
            let mut tables = space(&fake);
            for &offset in &offsets {
                let virt = base + offset * PAGE_SIZE;
                map(&fake, &mut tables, virt, frame_of(offset), PageSize::Size4K, USER_RW).unwrap();
            }
            let in_range = |offset: u64| (start..start + pages).contains(&offset);
            let mut removed = Vec::new();
            tables.unmap_range(&mut &fake, base + start * PAGE_SIZE, pages, &mut |virt, frame, _| {
                removed.push((virt, frame.address()));
            });
            let wanted: Vec<(u64, u64)> = offsets
                .iter()
                .filter(|&&offset| in_range(offset))
                .map(|&offset| (base + offset * PAGE_SIZE, frame_of(offset).get()))
                .collect();
            prop_assert_eq!(removed, wanted);
            for offset in 0..1536 {
                let mapped = tables.translate(&&fake, base + offset * PAGE_SIZE).is_some();
                prop_assert_eq!(mapped, offsets.contains(&offset) && !in_range(offset));
            }
        }
    }

    #[test]
    fn protect_changes_flags_and_keeps_the_frame() {
        let fake = FakeMemory::new();
        let mut tables = space(&fake);
        map(
            &fake,
            &mut tables,
            0x9000,
            pa(0x5000),
            PageSize::Size4K,
            USER_RW,
        )
        .unwrap();
        let old = tables.protect(&mut &fake, 0x9000, flags::USER);
        assert_eq!(old, Some(USER_RW | flags::PRESENT));
        let translation = tables.translate(&&fake, 0x9010).unwrap();
        assert_eq!(translation.phys, pa(0x5010));
        assert_eq!(translation.flags, flags::USER | flags::PRESENT);
        // Address bits in the new flags are ignored rather than redirecting the page.
        tables.protect(&mut &fake, 0x9000, 0xdead_b000 | flags::USER);
        assert_eq!(tables.translate(&&fake, 0x9000).unwrap().phys, pa(0x5000));
        assert_eq!(tables.protect(&mut &fake, 0xa000, 0), None);
    }

    #[test]
    fn out_of_frames_keeps_the_tables_already_made_and_destroy_frees_them() {
        let fake = FakeMemory::new();
        let mut tables = space(&fake);
        fake.set_budget(Some(2)); // PDPT and PD, but no page table
        assert_eq!(
            map(
                &fake,
                &mut tables,
                0x40_0000,
                pa(0x1000),
                PageSize::Size4K,
                flags::USER
            ),
            Err(MapError::OutOfFrames)
        );
        assert_eq!(fake.live().len(), 3);
        assert_eq!(tables.translate(&&fake, 0x40_0000), None);
        fake.set_budget(Some(1)); // the page table; the others are reused
        map(
            &fake,
            &mut tables,
            0x40_0000,
            pa(0x1000),
            PageSize::Size4K,
            flags::USER,
        )
        .unwrap();
        assert_eq!(fake.budget(), Some(0));
        assert_eq!(
            PageTables::new(&mut &fake, &mut || fake.alloc()),
            Err(MapError::OutOfFrames)
        );
        // 0x1000 is not a fake frame, so destroy would panic on it: unmap it first.
        assert_eq!(tables.unmap(&mut &fake, 0x40_0000), Some(fr(0x1000)));
        destroy(&fake, tables);
        assert!(fake.live().is_empty());
    }

    #[test]
    fn user_spaces_share_the_kernel_half_and_destroy_only_their_own() {
        let fake = FakeMemory::new();
        let mut kernel = space(&fake);
        let kernel_virt = 0xffff_8000_0000_0000;
        map(
            &fake,
            &mut kernel,
            kernel_virt,
            pa(0),
            PageSize::Size2M,
            flags::WRITABLE,
        )
        .unwrap();
        map(
            &fake,
            &mut kernel,
            0xffff_ffff_8000_0000,
            pa(0x10_0000),
            PageSize::Size4K,
            0,
        )
        .unwrap();
        let kernel_frames = fake.live();

        let mut user = PageTables::new_user(&kernel, &mut &fake, &mut || fake.alloc()).unwrap();
        assert_ne!(user.root(), kernel.root());
        assert_eq!(
            user.translate(&&fake, kernel_virt + 0x1234).unwrap().phys,
            pa(0x1234)
        );
        assert_eq!(
            user.translate(&&fake, 0xffff_ffff_8000_0042).unwrap().phys,
            pa(0x10_0042)
        );
        let frame = fake.alloc().unwrap();
        map(
            &fake,
            &mut user,
            0x40_0000,
            frame,
            PageSize::Size4K,
            USER_RW,
        )
        .unwrap();
        assert_eq!(kernel.translate(&&fake, 0x40_0000), None);
        // The kernel half is not counted or freed with the user space.
        assert_eq!(user.count_user_pages(&&fake), 1);
        destroy(&fake, user);
        assert_eq!(fake.live(), kernel_frames);
        assert_eq!(kernel.translate(&&fake, kernel_virt).unwrap().phys, pa(0));
    }

    #[test]
    fn destroy_frees_each_table_after_the_frames_it_maps() {
        let fake = FakeMemory::new();
        let mut tables = space(&fake);
        let root = tables.root();
        let data = fake.alloc().unwrap();
        map(
            &fake,
            &mut tables,
            0x40_0000,
            data,
            PageSize::Size4K,
            USER_RW,
        )
        .unwrap();
        let pdpt = fr((&fake).read_entry(root, 0) & ADDRESS_MASK);
        let pd = fr((&fake).read_entry(pdpt, 0) & ADDRESS_MASK);
        let pt = fr((&fake).read_entry(pd, 2) & ADDRESS_MASK);
        let mut order = Vec::new();
        tables.destroy_user(&&fake, &mut |frame| order.push(frame));
        assert_eq!(order, [data, pt, pd, pdpt, root]);
    }

    // Property test: random map / unmap / protect / translate sequences against a model.

    /// 2 MiB chunks of the user half the operations hit: neighbours, both sides of a 1 GiB
    /// and a 512 GiB boundary (new PD, new PDPT) and the last chunk below `USER_END`.
    const CHUNKS: [u64; 7] = [
        0x40_0000,
        0x60_0000,
        0x3fe0_0000,
        0x4000_0000,
        0x7f_ffe0_0000,
        0x80_0000_0000,
        0x7fff_ffe0_0000,
    ];
    /// Pages within a chunk: first, second, third and last.
    const PAGES: [u64; 4] = [0, 1, 2, 511];
    /// Physical memory for large pages (not the fake's frames, so destroy must not free it).
    const LARGE_BASE: u64 = 0x0000_0100_0000_0000;

    #[derive(Clone, Debug)]
    enum Op {
        Map {
            chunk: usize,
            page: usize,
            leaf: u64,
        },
        MapLarge {
            chunk: usize,
            leaf: u64,
        },
        Unmap {
            chunk: usize,
            page: usize,
        },
        Protect {
            chunk: usize,
            page: usize,
            leaf: u64,
        },
        Translate {
            chunk: usize,
            page: usize,
            offset: u64,
        },
        Budget(Option<usize>),
    }

    fn leaf_flags() -> impl Strategy<Value = u64> {
        const BITS: [u64; 6] = [
            flags::WRITABLE,
            flags::USER,
            flags::WRITE_THROUGH,
            flags::CACHE_DISABLE,
            flags::GLOBAL,
            flags::NO_EXECUTE,
        ];
        (0u8..64).prop_map(|mask| {
            (0..BITS.len())
                .filter(|bit| mask & (1 << bit) != 0)
                .fold(0, |leaf, bit| leaf | BITS[bit])
        })
    }

    fn op() -> impl Strategy<Value = Op> {
        let chunk = 0..CHUNKS.len();
        let page = 0..PAGES.len();
        prop_oneof![
            5 => (chunk.clone(), page.clone(), leaf_flags())
                .prop_map(|(chunk, page, leaf)| Op::Map { chunk, page, leaf }),
            1 => (chunk.clone(), leaf_flags()).prop_map(|(chunk, leaf)| Op::MapLarge { chunk, leaf }),
            3 => (chunk.clone(), page.clone()).prop_map(|(chunk, page)| Op::Unmap { chunk, page }),
            2 => (chunk.clone(), page.clone(), leaf_flags())
                .prop_map(|(chunk, page, leaf)| Op::Protect { chunk, page, leaf }),
            3 => (chunk, page, 0..PAGE_SIZE)
                .prop_map(|(chunk, page, offset)| Op::Translate { chunk, page, offset }),
            1 => proptest::option::of(0usize..4).prop_map(Op::Budget),
        ]
    }

    /// What the tables should hold.
    #[derive(Default)]
    struct Model {
        /// Small pages: virtual page → (frame, leaf flags as mapped).
        small: BTreeMap<u64, (Frame, u64)>,
        /// Large pages: chunk → (physical base, leaf flags).
        large: BTreeMap<u64, (u64, u64)>,
        /// Chunks with a page table (made by a small map, never removed).
        page_tables: BTreeSet<u64>,
    }

    impl Model {
        fn translate(&self, virt: u64) -> Option<Translation> {
            let page = virt & !(PAGE_SIZE - 1);
            let chunk = virt & !(LARGE_PAGE_SIZE - 1);
            if let Some(&(frame, leaf)) = self.small.get(&page) {
                return Some(Translation {
                    phys: frame.with_offset(virt - page),
                    flags: leaf | flags::PRESENT,
                    size: PageSize::Size4K,
                });
            }
            self.large.get(&chunk).map(|&(base, leaf)| Translation {
                phys: pa(base + (virt - chunk)),
                flags: leaf | flags::LARGE | flags::PRESENT,
                size: PageSize::Size2M,
            })
        }

        fn pages(&self) -> u64 {
            self.small.len() as u64 + self.large.len() as u64 * 512
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn page_tables_match_a_model(ops in proptest::collection::vec(op(), 1..150)) {
            let fake = FakeMemory::new();
            let mut tables = space(&fake);
            let mut model = Model::default();
            let mut large_frames = 0;
            for (step, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Map { chunk, page, leaf } => {
                        let chunk = CHUNKS[chunk];
                        let virt = chunk + PAGES[page] * PAGE_SIZE;
                        let Some(frame) = fake.alloc() else { continue };
                        let result = map(&fake, &mut tables, virt, frame, PageSize::Size4K, leaf);
                        if model.large.contains_key(&chunk) || model.small.contains_key(&virt) {
                            prop_assert_eq!(result, Err(MapError::AlreadyMapped(virt)));
                        } else if result == Err(MapError::OutOfFrames) {
                            // Only a walk that had to make a table can run out.
                            prop_assert_eq!(fake.budget(), Some(0));
                            prop_assert!(!model.page_tables.contains(&chunk));
                        } else {
                            prop_assert_eq!(result, Ok(()));
                            model.small.insert(virt, (frame, leaf));
                            model.page_tables.insert(chunk);
                        }
                        if result.is_err() {
                            fake.free(frame);
                        }
                    }
                    Op::MapLarge { chunk, leaf } => {
                        let chunk = CHUNKS[chunk];
                        let phys = LARGE_BASE + large_frames * LARGE_PAGE_SIZE;
                        let result = map(&fake, &mut tables, chunk, pa(phys), PageSize::Size2M, leaf);
                        if model.large.contains_key(&chunk) || model.page_tables.contains(&chunk) {
                            prop_assert_eq!(result, Err(MapError::AlreadyMapped(chunk)));
                        } else if result == Err(MapError::OutOfFrames) {
                            prop_assert_eq!(fake.budget(), Some(0));
                        } else {
                            prop_assert_eq!(result, Ok(()));
                            model.large.insert(chunk, (phys, leaf));
                            large_frames += 1;
                        }
                    }
                    Op::Unmap { chunk, page } => {
                        let virt = CHUNKS[chunk] + PAGES[page] * PAGE_SIZE;
                        let expected = model.small.remove(&virt).map(|(frame, _)| frame);
                        let frame = tables.unmap(&mut &fake, virt);
                        prop_assert_eq!(frame, expected);
                        if let Some(frame) = frame {
                            fake.free(frame);
                        }
                    }
                    Op::Protect { chunk, page, leaf } => {
                        let virt = CHUNKS[chunk] + PAGES[page] * PAGE_SIZE;
                        let expected = model.small.get_mut(&virt).map(|entry| {
                            let old = entry.1;
                            entry.1 = leaf;
                            old | flags::PRESENT
                        });
                        prop_assert_eq!(tables.protect(&mut &fake, virt, leaf), expected);
                    }
                    Op::Translate { chunk, page, offset } => {
                        let virt = CHUNKS[chunk] + PAGES[page] * PAGE_SIZE + offset;
                        prop_assert_eq!(tables.translate(&&fake, virt), model.translate(virt));
                    }
                    Op::Budget(budget) => fake.set_budget(budget),
                }
                // Counting walks every table; every few steps keeps the test quick.
                if step % 16 == 0 {
                    prop_assert_eq!(tables.count_user_pages(&&fake), model.pages());
                }
            }
            prop_assert_eq!(tables.count_user_pages(&&fake), model.pages());
            for &chunk in &CHUNKS {
                for &page in &PAGES {
                    let virt = chunk + page * PAGE_SIZE + 8;
                    prop_assert_eq!(tables.translate(&&fake, virt), model.translate(virt));
                }
            }
            // Destroy returns every frame the test and the tables allocated and still hold,
            // each once (a second free, or freeing large-page memory, panics), and nothing
            // else remains.
            let mut freed = 0;
            tables.destroy_user(&&fake, &mut |frame| {
                fake.free(frame);
                freed += 1;
            });
            prop_assert!(freed > model.small.len());
            prop_assert!(fake.live().is_empty());
        }
    }
}
