//! x86-64 four-level page tables: the kernel's address space (direct map + W^X image) and lookups.
//!
//! The walker itself (map, translate, unmap, destroy) is `vigil_kcore::paging`, host-tested
//! against a model; this module is its physical-memory backend (the direct map), plus what
//! needs the CPU: CR3, INVLPG, and the kernel's own layout.
//!
//! Layout of the kernel half:
//! - `DIRECT_MAP_BASE` + p maps physical address p, read/write, never executable, with
//!   2 MiB pages, for all RAM (at least the low 4 GiB, which also holds the APIC windows).
//! - `KERNEL_VMA` + p maps the kernel image with 4 KiB pages: .text read+execute,
//!   .rodata read-only, .data/.bss read/write and non-executable, and the page below the
//!   kernel stack left unmapped as a guard.

use super::cpu;
use core::sync::atomic::{AtomicU64, Ordering};
pub use vigil_kcore::paging::{flags, MapError, PageSize, Translation, LARGE_PAGE_SIZE, PAGE_SIZE};
use vigil_kcore::paging::{PageTables, PhysicalMemory, ADDRESS_MASK, ENTRIES};
pub use vigil_kcore::phys::{Frame, PhysAddr};

pub const DIRECT_MAP_BASE: u64 = 0xffff_8000_0000_0000;
pub const KERNEL_VMA: u64 = 0xffff_ffff_8000_0000;

/// Virtual address of physical memory in the direct map.
pub const fn phys_to_virt(phys: u64) -> u64 {
    DIRECT_MAP_BASE + phys
}

/// Physical address of a kernel-image virtual address.
pub const fn kernel_virt_to_phys(virt: u64) -> u64 {
    virt - KERNEL_VMA
}

/// The 512 entries of one table, reached through the direct map.
///
/// # Safety
/// `phys` must be the address of a page-table page owned by the caller's address space,
/// and no other reference to it may be live.
unsafe fn table_at(table: Frame) -> &'static mut [u64; ENTRIES] {
    // SAFETY: the caller guarantees `table` is a page table; the direct map covers it.
    unsafe { &mut *(phys_to_virt(table.address()) as *mut [u64; ENTRIES]) }
}

/// Physical memory as the kernel reaches it, through the direct map: the backend of
/// `kcore::paging`. Private to this module, and only ever passed to `kcore::paging` together
/// with the tables of an `AddressSpace` (or a frame just allocated for one of them).
struct DirectMap;

impl PhysicalMemory for DirectMap {
    #[inline(always)]
    fn read_entry(&self, table: Frame, index: usize) -> u64 {
        // SAFETY: kcore::paging only reads the root of an `AddressSpace` or a frame named by
        // a present, non-large entry of its tables, and this kernel only ever points such
        // entries at page-table frames it allocated (or the boot-time kernel half's); the
        // reference lives for this one read.
        let entries = unsafe { table_at(table) };
        entries[index]
    }

    #[inline(always)]
    fn write_entry(&mut self, table: Frame, index: usize, entry: u64) {
        // SAFETY: as in `read_entry`; writes come from `&mut AddressSpace` methods (or
        // building one), so the tables are the caller's alone.
        let entries = unsafe { table_at(table) };
        entries[index] = entry;
    }

    #[inline(always)]
    fn zero_table(&mut self, table: Frame) {
        // SAFETY: a freshly allocated frame belongs to nobody else; the direct map covers it.
        unsafe { table_at(table) }.fill(0);
    }
}

/// A four-level address space identified by the physical address of its PML4.
pub struct AddressSpace {
    tables: PageTables,
    /// Changes with every change of a mapping (`map`, `protect`, `unmap`), and is never
    /// the same in two spaces: a translation remembered with it (`message_buffer`) is
    /// still right while it is unchanged.
    generation: u64,
}

/// The source of `AddressSpace::generation`: never repeats, so no two spaces (nor one
/// space before and after a change) share a value.
static NEXT_GENERATION: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);

fn next_generation() -> u64 {
    NEXT_GENERATION.fetch_add(1, core::sync::atomic::Ordering::Relaxed)
}

impl AddressSpace {
    /// Creates an empty address space; `alloc_frame` supplies zero-able 4 KiB frames.
    fn new(alloc_frame: &mut dyn FnMut() -> Option<Frame>) -> Result<AddressSpace, MapError> {
        let tables = PageTables::new(&mut DirectMap, alloc_frame)?;
        Ok(AddressSpace {
            tables,
            generation: next_generation(),
        })
    }

    pub fn root(&self) -> Frame {
        self.tables.root()
    }

    /// Maps one page of `size` at `virt` to `phys` with leaf `flags` (PRESENT is added).
    /// Intermediate tables are created writable and executable; the leaf decides.
    pub fn map(
        &mut self,
        virt: u64,
        phys: PhysAddr,
        size: PageSize,
        leaf_flags: u64,
        alloc_frame: &mut dyn FnMut() -> Option<Frame>,
    ) -> Result<(), MapError> {
        self.generation = next_generation();
        self.tables
            .map(&mut DirectMap, virt, phys, size, leaf_flags, alloc_frame)
    }

    /// The space's current generation (see the field).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Walks the tables for `virt`.
    pub fn translate(&self, virt: u64) -> Option<Translation> {
        self.tables.translate(&DirectMap, virt)
    }

    /// Makes this address space the active one.
    ///
    /// # Safety
    /// The address space must map the running kernel (code, stack, data) exactly where
    /// the current one does.
    pub unsafe fn activate(&self) {
        // SAFETY: guaranteed by the caller.
        unsafe { load_root(self.root()) }
    }
}

/// The page walk usercopy checks and copies with.
impl vigil_kcore::usercopy::Translate for AddressSpace {
    #[inline(always)]
    fn translate(&self, virt: u64) -> Option<Translation> {
        AddressSpace::translate(self, virt)
    }
}

unsafe extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __kernel_stack_guard: u8;
    static __kernel_stack_bottom: u8;
    static __kernel_stack_top: u8;
    static __bss_end: u8;
}

/// Virtual address ranges of the kernel image's parts, from the linker script.
#[derive(Clone, Copy, Debug)]
pub struct KernelLayout {
    pub text: (u64, u64),
    pub rodata: (u64, u64),
    /// .data and .bss up to the stack guard page.
    pub data: (u64, u64),
    pub stack_guard: u64,
    /// The boot/kernel stack `[bottom, top)`.
    pub stack: (u64, u64),
}

impl KernelLayout {
    pub fn get() -> KernelLayout {
        // Only the addresses of these linker symbols are used, never their contents.
        KernelLayout {
            text: (&raw const __text_start as u64, &raw const __text_end as u64),
            rodata: (
                &raw const __rodata_start as u64,
                &raw const __rodata_end as u64,
            ),
            data: (
                &raw const __data_start as u64,
                &raw const __kernel_stack_guard as u64,
            ),
            stack_guard: &raw const __kernel_stack_guard as u64,
            stack: (
                &raw const __kernel_stack_bottom as u64,
                &raw const __kernel_stack_top as u64,
            ),
        }
    }

    /// End of the image (after the stack), virtual.
    pub fn end(&self) -> u64 {
        &raw const __bss_end as u64
    }
}

/// What `build_kernel_space` mapped, for the boot log.
#[derive(Clone, Copy, Debug)]
pub struct KernelSpaceReport {
    pub direct_map_bytes: u64,
    pub image_pages: u64,
    pub root: Frame,
}

/// Builds the kernel's final address space and switches to it.
///
/// `direct_map_end` is the physical end of memory to map (rounded up to 2 MiB and at least
/// 4 GiB, so the APIC windows are reachable); `is_ram(chunk)` says whether a 2 MiB chunk
/// holds RAM, so device memory (the top of the 4 GiB hole) is mapped uncached.
pub fn build_kernel_space(
    direct_map_end: u64,
    nx_supported: bool,
    is_ram: &dyn Fn(u64) -> bool,
    alloc_frame: &mut dyn FnMut() -> Option<Frame>,
) -> Result<KernelSpaceReport, MapError> {
    let nx = if nx_supported { flags::NO_EXECUTE } else { 0 };
    let mut space = AddressSpace::new(alloc_frame)?;
    let end = direct_map_end
        .max(1 << 32)
        .next_multiple_of(LARGE_PAGE_SIZE);

    let mut phys = 0;
    while phys < end {
        let mut leaf = flags::WRITABLE | flags::GLOBAL | nx;
        if !is_ram(phys) && phys >= 0xc000_0000 {
            leaf |= flags::CACHE_DISABLE | flags::WRITE_THROUGH;
        }
        let physical = PhysAddr::new(phys).expect("the direct map covers physical memory");
        space.map(
            phys_to_virt(phys),
            physical,
            PageSize::Size2M,
            leaf,
            alloc_frame,
        )?;
        phys += LARGE_PAGE_SIZE;
    }

    let layout = KernelLayout::get();
    let mut image_pages = 0;
    let sections: [((u64, u64), u64); 4] = [
        (layout.text, flags::GLOBAL),
        (layout.rodata, flags::GLOBAL | nx),
        (layout.data, flags::GLOBAL | flags::WRITABLE | nx),
        (layout.stack, flags::GLOBAL | flags::WRITABLE | nx),
    ];
    for ((start, end), leaf) in sections {
        let mut virt = start;
        while virt < end {
            let physical = PhysAddr::new(kernel_virt_to_phys(virt))
                .expect("the kernel image lies in physical memory");
            space.map(virt, physical, PageSize::Size4K, leaf, alloc_frame)?;
            virt += PAGE_SIZE;
            image_pages += 1;
        }
    }
    // SAFETY: the new space maps the whole image (code, data, stack) at the link
    // addresses the CPU is using, and the direct map at the same base as the boot tables.
    unsafe { space.activate() };
    KERNEL_ROOT.store(
        space.root().address(),
        core::sync::atomic::Ordering::Relaxed,
    );
    Ok(KernelSpaceReport {
        direct_map_bytes: end,
        image_pages,
        root: space.root(),
    })
}

impl AddressSpace {
    /// A new user address space sharing the kernel half of `kernel`.
    pub fn new_user(
        kernel: &AddressSpace,
        alloc_frame: &mut dyn FnMut() -> Option<Frame>,
    ) -> Result<AddressSpace, MapError> {
        // The kernel half of the kernel's PML4 never changes after boot, so sharing its
        // entries is sound.
        let tables = PageTables::new_user(&kernel.tables, &mut DirectMap, alloc_frame)?;
        Ok(AddressSpace {
            tables,
            generation: next_generation(),
        })
    }

    /// Replaces the leaf flags of the 4 KiB mapping at `virt` (PRESENT is kept); returns the
    /// previous flags, or None if `virt` has no 4 KiB mapping.
    pub fn protect(&mut self, virt: u64, leaf_flags: u64) -> Option<u64> {
        self.generation = next_generation();
        let previous = self.tables.protect(&mut DirectMap, virt, leaf_flags)?;
        cpu::invlpg(virt);
        Some(previous)
    }

    /// Removes every 4 KiB mapping of the `pages` pages from `virt`, walking to each page
    /// table once (`PageTables::unmap_range`): `unmapped(page, frame, flags)` for each, in
    /// address order, after its TLB entry is invalidated.
    pub fn unmap_range(
        &mut self,
        virt: u64,
        pages: u64,
        unmapped: &mut dyn FnMut(u64, Frame, u64),
    ) {
        self.generation = next_generation();
        self.tables
            .unmap_range(&mut DirectMap, virt, pages, &mut |page, frame, flags| {
                cpu::invlpg(page);
                unmapped(page, frame, flags);
            });
    }

    /// Frees every user-half frame and page table (4 KiB leaves only: user mappings never
    /// use large pages) through `free_frame`, then the PML4 itself. The space must not be
    /// active.
    pub fn destroy_user(self, free_frame: &mut dyn FnMut(Frame)) {
        debug_assert_ne!(
            self.root(),
            active_root(),
            "destroying the active address space"
        );
        self.tables.destroy_user(&DirectMap, free_frame);
    }
}

/// The kernel's own address space (built at boot; the kernel half of every process),
/// lent out: it can be read, entered and shared from, never owned — so never destroyed.
pub struct KernelSpace(AddressSpace);

impl core::ops::Deref for KernelSpace {
    type Target = AddressSpace;
    fn deref(&self) -> &AddressSpace {
        &self.0
    }
}

/// The kernel's own address space.
pub fn kernel_space() -> KernelSpace {
    KernelSpace(AddressSpace {
        tables: PageTables::from_root(
            Frame::new(KERNEL_ROOT.load(core::sync::atomic::Ordering::Relaxed))
                .expect("the kernel's PML4 is a frame"),
        ),
        generation: next_generation(),
    })
}

static KERNEL_ROOT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

impl AddressSpace {
    /// Makes this user (or the kernel's) address space the CPU's, unless it already is.
    /// Safe, unlike `activate`: every `AddressSpace` outside this module came from
    /// `new_user` or `kernel_space`, so it shares the kernel half and the kernel keeps
    /// running.
    #[inline(always)]
    pub fn enter(&self) {
        switch_to(self.root());
    }

    /// Whether this is the address space loaded in CR3.
    pub fn is_active(&self) -> bool {
        self.root() == active_root()
    }
}

/// The PML4 loaded in CR3.
fn active_root() -> Frame {
    Frame::new(cpu::read_cr3() & ADDRESS_MASK).expect("CR3's address bits name a frame")
}

/// The root last loaded into CR3, by `load_root` (the only writer of CR3 after boot; one
/// CPU), so a switch compares it with memory instead of reading CR3 (`switch_to`). 0 until
/// the first load: no frame is at address 0 here, so the first switch loads.
static LOADED_ROOT: AtomicU64 = AtomicU64::new(0);

/// Loads `root` into CR3 and remembers it in `LOADED_ROOT`.
///
/// # Safety
/// `root` must map the running kernel (code, stack, data) exactly where the current
/// tables do (`activate`'s contract).
// Always inlined: two instructions, on every switch between address spaces (called, they
// were seven on the IPC fast path's switch).
#[inline(always)]
unsafe fn load_root(root: Frame) {
    LOADED_ROOT.store(root.address(), Ordering::Relaxed);
    // SAFETY: guaranteed by the caller.
    unsafe { cpu::write_cr3(root.address()) }
}

/// Loads `root` into CR3 unless it is already the loaded one.
#[inline(always)]
fn switch_to(root: Frame) {
    debug_assert_eq!(
        LOADED_ROOT.load(Ordering::Relaxed) == root.address(),
        cpu::read_cr3() & ADDRESS_MASK == root.address(),
        "LOADED_ROOT disagrees with CR3"
    );
    if LOADED_ROOT.load(Ordering::Relaxed) != root.address() {
        // SAFETY: every address space shares the kernel half (`enter`), so the kernel keeps
        // running.
        unsafe { load_root(root) }
    }
}

impl AddressSpace {
    /// Number of 4 KiB user pages mapped (the user half).
    pub fn count_user_pages(&self) -> u64 {
        self.tables.count_user_pages(&DirectMap)
    }

    /// Number of 4 KiB user pages that are views of a frame another mapping holds
    /// (`flags::SHARED_VIEW`).
    pub fn count_shared_views(&self) -> u64 {
        self.tables
            .count_user_pages_with(&DirectMap, flags::SHARED_VIEW)
    }
}
