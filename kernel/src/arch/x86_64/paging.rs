//! x86-64 four-level page tables: the kernel's address space (direct map + W^X image) and lookups.
//!
//! Layout of the kernel half:
//! - `DIRECT_MAP_BASE` + p maps physical address p, read/write, never executable, with
//!   2 MiB pages, for all RAM (at least the low 4 GiB, which also holds the APIC windows).
//! - `KERNEL_VMA` + p maps the kernel image with 4 KiB pages: .text read+execute,
//!   .rodata read-only, .data/.bss read/write and non-executable, and the page below the
//!   kernel stack left unmapped as a guard.

use super::cpu;

pub const DIRECT_MAP_BASE: u64 = 0xffff_8000_0000_0000;
pub const KERNEL_VMA: u64 = 0xffff_ffff_8000_0000;
pub const PAGE_SIZE: u64 = 4096;
pub const LARGE_PAGE_SIZE: u64 = 2 * 1024 * 1024;

/// Page-table entry bits.
pub mod flags {
    pub const PRESENT: u64 = 1 << 0;
    pub const WRITABLE: u64 = 1 << 1;
    pub const USER: u64 = 1 << 2;
    pub const WRITE_THROUGH: u64 = 1 << 3;
    pub const CACHE_DISABLE: u64 = 1 << 4;
    pub const LARGE: u64 = 1 << 7;
    pub const GLOBAL: u64 = 1 << 8;
    pub const NO_EXECUTE: u64 = 1 << 63;
}

const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Virtual address of physical memory in the direct map.
pub const fn phys_to_virt(phys: u64) -> u64 {
    DIRECT_MAP_BASE + phys
}

/// Physical address of a kernel-image virtual address.
pub const fn kernel_virt_to_phys(virt: u64) -> u64 {
    virt - KERNEL_VMA
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
    pub phys: u64,
    /// Leaf entry flags (the address bits cleared).
    pub flags: u64,
    pub size: PageSize,
}

impl Translation {
    pub fn writable(&self) -> bool {
        self.flags & flags::WRITABLE != 0
    }
    pub fn executable(&self) -> bool {
        self.flags & flags::NO_EXECUTE == 0
    }
}

/// The 512 entries of one table, reached through the direct map.
///
/// # Safety
/// `phys` must be the address of a page-table page owned by the caller's address space,
/// and no other reference to it may be live.
unsafe fn table_at(phys: u64) -> &'static mut [u64; 512] {
    // SAFETY: the caller guarantees `phys` is a page table; the direct map covers it.
    unsafe { &mut *(phys_to_virt(phys) as *mut [u64; 512]) }
}

/// A four-level address space identified by the physical address of its PML4.
pub struct AddressSpace {
    pml4: u64,
}

impl AddressSpace {
    /// Creates an empty address space; `alloc_frame` supplies zero-able 4 KiB frames.
    pub fn new(alloc_frame: &mut dyn FnMut() -> Option<u64>) -> Result<AddressSpace, MapError> {
        let pml4 = new_table(alloc_frame)?;
        Ok(AddressSpace { pml4 })
    }

    /// The address space currently loaded in CR3.
    pub fn active() -> AddressSpace {
        AddressSpace {
            pml4: cpu::read_cr3() & ADDRESS_MASK,
        }
    }

    pub fn root_phys(&self) -> u64 {
        self.pml4
    }

    /// Maps one page of `size` at `virt` to `phys` with leaf `flags` (PRESENT is added).
    /// Intermediate tables are created writable and executable; the leaf decides.
    pub fn map(
        &mut self,
        virt: u64,
        phys: u64,
        size: PageSize,
        leaf_flags: u64,
        alloc_frame: &mut dyn FnMut() -> Option<u64>,
    ) -> Result<(), MapError> {
        let (page_bytes, leaf_level) = match size {
            PageSize::Size4K => (PAGE_SIZE, 1),
            PageSize::Size2M => (LARGE_PAGE_SIZE, 2),
        };
        if !virt.is_multiple_of(page_bytes) || !phys.is_multiple_of(page_bytes) {
            return Err(MapError::Misaligned(virt));
        }
        let mut table_phys = self.pml4;
        for level in (leaf_level + 1..=4).rev() {
            let index = table_index(virt, level);
            // SAFETY: `table_phys` is a table of this address space (root or created below).
            let table = unsafe { table_at(table_phys) };
            let entry = table[index];
            if entry & flags::PRESENT == 0 {
                let next = new_table(alloc_frame)?;
                let intermediate = flags::PRESENT | flags::WRITABLE | (leaf_flags & flags::USER);
                table[index] = next | intermediate;
                table_phys = next;
            } else if entry & flags::LARGE != 0 {
                return Err(MapError::AlreadyMapped(virt));
            } else {
                table_phys = entry & ADDRESS_MASK;
            }
        }
        // SAFETY: as above.
        let table = unsafe { table_at(table_phys) };
        let index = table_index(virt, leaf_level);
        if table[index] & flags::PRESENT != 0 {
            return Err(MapError::AlreadyMapped(virt));
        }
        let large = if leaf_level == 2 { flags::LARGE } else { 0 };
        table[index] = phys | leaf_flags | large | flags::PRESENT;
        Ok(())
    }

    /// Walks the tables for `virt`.
    pub fn translate(&self, virt: u64) -> Option<Translation> {
        let mut table_phys = self.pml4;
        for level in (1..=4).rev() {
            // SAFETY: read-only walk of this address space's own tables.
            let entry = unsafe { table_at(table_phys) }[table_index(virt, level)];
            if entry & flags::PRESENT == 0 {
                return None;
            }
            let is_leaf = level == 1 || (level == 2 && entry & flags::LARGE != 0);
            if level == 3 && entry & flags::LARGE != 0 {
                return None; // 1 GiB pages are never created by this kernel
            }
            if is_leaf {
                let (size, offset_mask) = if level == 1 {
                    (PageSize::Size4K, PAGE_SIZE - 1)
                } else {
                    (PageSize::Size2M, LARGE_PAGE_SIZE - 1)
                };
                let base = entry & ADDRESS_MASK & !offset_mask;
                return Some(Translation {
                    phys: base + (virt & offset_mask),
                    flags: entry & !ADDRESS_MASK,
                    size,
                });
            }
            table_phys = entry & ADDRESS_MASK;
        }
        None
    }

    /// Makes this address space the active one.
    ///
    /// # Safety
    /// The address space must map the running kernel (code, stack, data) exactly where
    /// the current one does.
    pub unsafe fn activate(&self) {
        // SAFETY: guaranteed by the caller.
        unsafe { cpu::write_cr3(self.pml4) }
    }
}

fn table_index(virt: u64, level: u32) -> usize {
    ((virt >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

fn new_table(alloc_frame: &mut dyn FnMut() -> Option<u64>) -> Result<u64, MapError> {
    let frame = alloc_frame().ok_or(MapError::OutOfFrames)?;
    // SAFETY: a freshly allocated frame belongs to nobody else; the direct map covers it.
    unsafe { table_at(frame) }.fill(0);
    Ok(frame)
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
    pub root: u64,
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
    alloc_frame: &mut dyn FnMut() -> Option<u64>,
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
        space.map(
            phys_to_virt(phys),
            phys,
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
            space.map(
                virt,
                kernel_virt_to_phys(virt),
                PageSize::Size4K,
                leaf,
                alloc_frame,
            )?;
            virt += PAGE_SIZE;
            image_pages += 1;
        }
    }
    // SAFETY: the new space maps the whole image (code, data, stack) at the link
    // addresses the CPU is using, and the direct map at the same base as the boot tables.
    unsafe { space.activate() };
    KERNEL_ROOT.store(space.root_phys(), core::sync::atomic::Ordering::Relaxed);
    Ok(KernelSpaceReport {
        direct_map_bytes: end,
        image_pages,
        root: space.root_phys(),
    })
}

impl AddressSpace {
    /// A new user address space sharing the kernel half of `kernel`.
    pub fn new_user(
        kernel: &AddressSpace,
        alloc_frame: &mut dyn FnMut() -> Option<u64>,
    ) -> Result<AddressSpace, MapError> {
        let space = AddressSpace::new(alloc_frame)?;
        // SAFETY: both roots are page tables; the new one is not yet in use, and the kernel
        // half of the kernel's PML4 never changes after boot, so sharing its entries is sound.
        unsafe {
            let source = table_at(kernel.pml4);
            let target = table_at(space.pml4);
            target[256..].copy_from_slice(&source[256..]);
        }
        Ok(space)
    }

    /// Removes the 4 KiB mapping at `virt`; returns the frame it mapped.
    pub fn unmap(&mut self, virt: u64) -> Option<u64> {
        let mut table_phys = self.pml4;
        for level in (2..=4).rev() {
            // SAFETY: walking this address space's own tables.
            let entry = unsafe { table_at(table_phys) }[table_index(virt, level)];
            if entry & flags::PRESENT == 0 || entry & flags::LARGE != 0 {
                return None;
            }
            table_phys = entry & ADDRESS_MASK;
        }
        // SAFETY: as above; the caller owns the address space.
        let table = unsafe { table_at(table_phys) };
        let index = table_index(virt, 1);
        let entry = table[index];
        if entry & flags::PRESENT == 0 {
            return None;
        }
        table[index] = 0;
        cpu::invlpg(virt);
        Some(entry & ADDRESS_MASK)
    }

    /// Frees every user-half frame and page table (4 KiB leaves only: user mappings never
    /// use large pages) through `free_frame`, then the PML4 itself. The space must not be
    /// active.
    pub fn destroy_user(self, free_frame: &mut dyn FnMut(u64)) {
        debug_assert_ne!(
            self.pml4,
            cpu::read_cr3() & ADDRESS_MASK,
            "destroying the active address space"
        );
        // SAFETY: the caller hands over the address space; nothing else uses its tables.
        let pml4 = unsafe { table_at(self.pml4) };
        for &l4 in pml4[..256].iter().filter(|e| *e & flags::PRESENT != 0) {
            let pdpt_phys = l4 & ADDRESS_MASK;
            // SAFETY: as above.
            let pdpt = unsafe { table_at(pdpt_phys) };
            for &l3 in pdpt.iter().filter(|e| *e & flags::PRESENT != 0) {
                let pd_phys = l3 & ADDRESS_MASK;
                // SAFETY: as above.
                let pd = unsafe { table_at(pd_phys) };
                for &l2 in pd.iter().filter(|e| *e & flags::PRESENT != 0) {
                    let pt_phys = l2 & ADDRESS_MASK;
                    // SAFETY: as above.
                    let pt = unsafe { table_at(pt_phys) };
                    for &l1 in pt.iter().filter(|e| *e & flags::PRESENT != 0) {
                        free_frame(l1 & ADDRESS_MASK);
                    }
                    free_frame(pt_phys);
                }
                free_frame(pd_phys);
            }
            free_frame(pdpt_phys);
        }
        free_frame(self.pml4);
    }
}

/// The kernel's own address space (built at boot; the kernel half of every process).
pub fn kernel_space() -> AddressSpace {
    AddressSpace {
        pml4: KERNEL_ROOT.load(core::sync::atomic::Ordering::Relaxed),
    }
}

static KERNEL_ROOT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

impl AddressSpace {
    /// Makes this user (or the kernel's) address space the CPU's, unless it already is.
    /// Safe, unlike `activate`: every `AddressSpace` outside this module came from
    /// `new_user` or `kernel_space`, so it shares the kernel half and the kernel keeps
    /// running.
    pub fn enter(&self) {
        switch_to(self.pml4);
    }
}

/// Loads `root` into CR3 unless it is already active.
fn switch_to(root: u64) {
    if cpu::read_cr3() & ADDRESS_MASK != root {
        // SAFETY: every address space shares the kernel half, so the kernel keeps running.
        unsafe { cpu::write_cr3(root) }
    }
}

impl AddressSpace {
    /// Number of 4 KiB user pages mapped (the user half).
    pub fn count_user_pages(&self) -> u64 {
        let mut pages = 0;
        // SAFETY: read-only walk of this address space's own tables.
        let pml4 = unsafe { table_at(self.pml4) };
        for &l4 in pml4[..256].iter().filter(|e| *e & flags::PRESENT != 0) {
            // SAFETY: as above.
            let pdpt = unsafe { table_at(l4 & ADDRESS_MASK) };
            for &l3 in pdpt.iter().filter(|e| *e & flags::PRESENT != 0) {
                // SAFETY: as above.
                let pd = unsafe { table_at(l3 & ADDRESS_MASK) };
                for &l2 in pd.iter().filter(|e| *e & flags::PRESENT != 0) {
                    // SAFETY: as above.
                    let pt = unsafe { table_at(l2 & ADDRESS_MASK) };
                    pages += pt.iter().filter(|e| *e & flags::PRESENT != 0).count() as u64;
                }
            }
        }
        pages
    }
}
