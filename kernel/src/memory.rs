//! Physical memory: the frame allocator over the boot memory map, the holder counts of
//! shared frames, the final kernel address space, and the kernel heap.

use crate::arch::paging::{self, phys_to_virt, KernelLayout, PAGE_SIZE};
use crate::{heap, info, lock, warn};
use vigil_kcore::frame::{Frame, FrameAllocator, FrameError, FRAME_SIZE};
use vigil_kcore::frame_share::{FrameShares, Release};
use vigil_kcore::memmap::{self, MemoryRegion, PhysRange, RegionKind};
use vigil_kcore::multiboot::BootInfo;

/// Below 1 MiB lives firmware data and the real-mode world; Vigil never allocates there.
const LOW_MEMORY_END: u64 = 0x10_0000;
/// The boot page tables map physical memory only up to 4 GiB, so boot-time structures
/// (the bitmap) must lie below it.
const BOOT_DIRECT_MAP_END: u64 = 1 << 32;

// Low memory, the kernel, the bitmap and every module the boot keeps must fit.
const _: () = assert!(vigil_kcore::frame::MAX_RESERVED >= vigil_kcore::multiboot::MAX_MODULES + 3);

/// Ranges kept out of the allocator, collected before it exists.
struct ReservedList {
    ranges: [PhysRange; vigil_kcore::frame::MAX_RESERVED],
    len: usize,
}

impl ReservedList {
    const fn new() -> ReservedList {
        ReservedList {
            ranges: [PhysRange::new(0, 0); vigil_kcore::frame::MAX_RESERVED],
            len: 0,
        }
    }

    fn push(&mut self, range: PhysRange) -> Result<(), MemoryInitError> {
        let slot = self
            .ranges
            .get_mut(self.len)
            .ok_or(MemoryInitError::TooManyReservedRanges)?;
        *slot = range;
        self.len += 1;
        Ok(())
    }

    fn as_slice(&self) -> &[PhysRange] {
        &self.ranges[..self.len]
    }
}

/// The allocator and the holder counts of the frames it hands out, under one lock: a
/// release decides "still held" or "free" and frees in one step.
struct PhysicalFrames {
    allocator: FrameAllocator<'static>,
    shares: FrameShares<'static>,
}

static FRAMES: lock::Mutex<Option<PhysicalFrames>> = lock::Mutex::new(lock::Level::Frames, None);

/// Sizes found while setting up memory, for the banner and the self-tests.
#[derive(Clone, Copy, Debug)]
pub struct MemoryReport {
    pub installed_bytes: u64,
    pub usable_bytes: u64,
    pub free_frames_after_boot: usize,
    pub regions: usize,
}

/// Why memory setup failed; the boot stops with this reason.
#[derive(Clone, Copy, Debug)]
pub enum MemoryInitError {
    NoUsableMemory,
    NoRoomForBitmap { bytes: u64 },
    TooManyReservedRanges,
    Paging(paging::MapError),
    NoRoomForHeap,
    NoRoomForFrameShares { bytes: u64 },
}

impl core::fmt::Display for MemoryInitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            MemoryInitError::NoUsableMemory => write!(f, "the memory map has no available RAM"),
            MemoryInitError::NoRoomForBitmap { bytes } => {
                write!(
                    f,
                    "no free RAM below 4 GiB for the {bytes}-byte frame bitmap"
                )
            }
            MemoryInitError::TooManyReservedRanges => {
                write!(
                    f,
                    "more than {} reserved ranges (too many modules?)",
                    vigil_kcore::frame::MAX_RESERVED
                )
            }
            MemoryInitError::Paging(error) => {
                write!(f, "building the kernel page tables failed: {error:?}")
            }
            MemoryInitError::NoRoomForFrameShares { bytes } => write!(
                f,
                "no {bytes} bytes of contiguous free RAM for the shared-frame counters"
            ),
            MemoryInitError::NoRoomForHeap => {
                write!(
                    f,
                    "no {} KiB of contiguous free RAM for the kernel heap",
                    heap::HEAP_BYTES / 1024
                )
            }
        }
    }
}

/// Sets up the frame allocator, switches to the kernel's own page tables, and creates the
/// heap. `boot` must still be the information the loader gave (modules are reserved).
pub fn init(boot: &BootInfo) -> Result<MemoryReport, MemoryInitError> {
    let mut regions = [MemoryRegion {
        range: PhysRange::default(),
        kind: RegionKind::Reserved,
    }; 64];
    let mut region_count = 0;
    for region in boot.regions().take(regions.len()) {
        regions[region_count] = region;
        region_count += 1;
    }
    let regions = &regions[..region_count];
    for region in regions {
        crate::debug!(
            "memory: [{:#012x}, {:#012x}) {:?}",
            region.range.start,
            region.range.end,
            region.kind
        );
    }

    let phys_end = memmap::available_end(regions);
    if phys_end == 0 {
        return Err(MemoryInitError::NoUsableMemory);
    }

    // Everything that must never be handed out.
    let layout = KernelLayout::get();
    let kernel_image_end = paging::kernel_virt_to_phys(layout.end());
    let mut reserved = ReservedList::new();
    reserved.push(PhysRange::new(0, LOW_MEMORY_END))?;
    // The kernel image: .boot at 1 MiB, then .text … .bss and the stack.
    reserved.push(PhysRange::new(LOW_MEMORY_END, kernel_image_end))?;
    for module in boot.modules() {
        reserved.push(PhysRange::new(
            module.start & !(PAGE_SIZE - 1),
            module.end.next_multiple_of(PAGE_SIZE),
        ))?;
    }

    let bitmap_words = FrameAllocator::bitmap_words(phys_end);
    let bitmap_bytes = (bitmap_words as u64 * 8).next_multiple_of(FRAME_SIZE);
    let bitmap_phys =
        memmap::find_free_span(regions, reserved.as_slice(), bitmap_bytes, FRAME_SIZE)
            .filter(|&start| start + bitmap_bytes <= BOOT_DIRECT_MAP_END)
            .ok_or(MemoryInitError::NoRoomForBitmap {
                bytes: bitmap_bytes,
            })?;
    reserved.push(PhysRange::new(bitmap_phys, bitmap_phys + bitmap_bytes))?;

    // SAFETY: [bitmap_phys, +bitmap_bytes) is Available RAM below 4 GiB that overlaps no
    // reserved range (find_free_span), it is mapped by the boot direct map and will be by
    // the final one, and it is reserved in the allocator so nothing else ever uses it.
    let bitmap: &'static mut [u64] = unsafe {
        core::slice::from_raw_parts_mut(phys_to_virt(bitmap_phys) as *mut u64, bitmap_words)
    };
    let mut frames = FrameAllocator::new(bitmap, phys_end);
    for range in reserved.as_slice() {
        frames
            .reserve(*range)
            .map_err(|_| MemoryInitError::TooManyReservedRanges)?;
    }
    for region in regions.iter().filter(|r| r.kind == RegionKind::Available) {
        frames.add_free(region.range);
    }
    info!(
        "memory: frame bitmap {} KiB at {:#x}, {} free frames",
        bitmap_bytes / 1024,
        bitmap_phys,
        frames.free_frames()
    );

    let features = crate::arch::cpu::Features::detect();
    let is_ram = |chunk: u64| {
        let chunk_range = PhysRange::new(chunk, chunk + paging::LARGE_PAGE_SIZE);
        regions
            .iter()
            .any(|r| r.kind == RegionKind::Available && r.range.overlaps(&chunk_range))
    };
    let report = paging::build_kernel_space(phys_end, features.nx, &is_ram, &mut || frames.alloc())
        .map_err(MemoryInitError::Paging)?;
    info!(
        "paging: kernel space at {:#x}: direct map {} MiB, image {} pages (W^X), stack guard at {:#x}",
        report.root,
        report.direct_map_bytes >> 20,
        report.image_pages,
        layout.stack_guard
    );

    // One holder counter per frame, allocated once for all of memory (the final direct map
    // covers it, and it is never freed).
    let counters = FrameShares::counters_for(phys_end);
    let counter_bytes = (counters * core::mem::size_of::<u16>()) as u64;
    let counter_frames = counter_bytes.div_ceil(FRAME_SIZE) as usize;
    let counters_phys = frames
        .alloc_contiguous(counter_frames)
        .ok_or(MemoryInitError::NoRoomForFrameShares {
            bytes: counter_bytes,
        })?
        .address();
    // SAFETY: the frames were just allocated for the counters alone (never handed out
    // again), the final direct map covers all RAM, and `u16` has no invalid bit patterns;
    // `FrameShares::new` zeroes them before use.
    let counters: &'static mut [u16] = unsafe {
        core::slice::from_raw_parts_mut(phys_to_virt(counters_phys) as *mut u16, counters)
    };
    let shares = FrameShares::new(counters);
    info!(
        "memory: shared-frame counters {} KiB at {:#x}",
        counter_frames * FRAME_SIZE as usize / 1024,
        counters_phys
    );

    let heap_frames = heap::HEAP_BYTES / FRAME_SIZE as usize;
    let heap_phys = frames
        .alloc_contiguous(heap_frames)
        .ok_or(MemoryInitError::NoRoomForHeap)?
        .address();
    // SAFETY: the frames were just allocated for the heap alone and the final direct map
    // covers all RAM; the allocator never hands them out again.
    unsafe { heap::init(phys_to_virt(heap_phys), heap::HEAP_BYTES) };
    info!(
        "heap: {} KiB at {:#x}",
        heap::HEAP_BYTES / 1024,
        phys_to_virt(heap_phys)
    );

    let report = MemoryReport {
        installed_bytes: memmap::installed_bytes(regions),
        usable_bytes: memmap::usable_bytes(regions),
        free_frames_after_boot: frames.free_frames(),
        regions: region_count,
    };
    if boot.regions_truncated {
        warn!(
            "memory: the loader's map has more than {} regions; the rest are ignored",
            regions.len()
        );
    }
    *FRAMES.lock() = Some(PhysicalFrames {
        allocator: frames,
        shares,
    });
    Ok(report)
}

/// Allocates one zero-filled 4 KiB frame.
pub fn alloc_frame() -> Option<Frame> {
    let frame = FRAMES.lock().as_mut()?.allocator.alloc()?;
    let start = phys_to_virt(frame.address()) as *mut u8;
    // SAFETY: the frame was just allocated and is owned by the caller; the direct map covers it.
    unsafe { core::ptr::write_bytes(start, 0, FRAME_SIZE as usize) };
    Some(frame)
}

/// Returns a frame to the allocator, or says why it refused. Kernel code that owns the
/// frame uses `release_frame`; this form is for the self-test that provokes refusals.
pub fn free_frame(frame: Frame) -> Result<(), FrameError> {
    match FRAMES.lock().as_mut() {
        Some(frames) => frames.allocator.free(frame),
        None => Err(FrameError::OutOfRange(frame.address())),
    }
}

/// Whether `frame` (mapped somewhere now) can get `times` more holders: it is memory the
/// counters cover and its count would not overflow.
pub fn can_share(frame: Frame, times: u32) -> bool {
    FRAMES
        .lock()
        .as_ref()
        .is_some_and(|frames| frames.shares.can_share(frame, times))
}

/// One more mapping holds `frame`, which is mapped somewhere now; it stays allocated until
/// every holder has released it (`release_frame`). The caller checked `can_share`, so a
/// refusal is a kernel bug.
#[track_caller]
pub fn share_frame(frame: Frame) {
    let mut guard = FRAMES.lock();
    let shared = match guard.as_mut() {
        Some(frames) => frames.shares.share(frame),
        None => Err(vigil_kcore::frame_share::ShareError::OutOfRange(
            frame.address(),
        )),
    };
    if let Err(error) = shared {
        drop(guard);
        panic!("kernel bug: sharing frame {frame:#x} after the checks failed: {error}");
    }
}

/// How many mappings hold `frame` (1 for a frame that is not shared).
pub fn frame_holders(frame: Frame) -> u32 {
    FRAMES
        .lock()
        .as_ref()
        .map_or(1, |frames| frames.shares.holders(frame))
}

/// Releases the caller's hold on a frame (it came from `alloc_frame`, or the caller's
/// mapping of it from `share_frame`): the frame goes back to the allocator when that was
/// its last holder, and stays allocated while another mapping holds it.
///
/// A refused free — the frame is already free, reserved or out of range —
/// means the kernel's own records (a page table, a thread's stack) named a frame that was
/// not theirs, so the frame may be in use twice. That is a kernel bug, and going on would
/// hand the same memory to two owners: this panics with the address and the reason.
#[track_caller]
pub fn release_frame(frame: Frame) {
    let freed = match FRAMES.lock().as_mut() {
        Some(frames) => match frames.shares.release(frame) {
            Release::StillHeld => Ok(()),
            Release::Free => frames.allocator.free(frame),
        },
        None => Err(FrameError::OutOfRange(frame.address())),
    };
    if let Err(error) = freed {
        panic!("kernel bug: freeing frame {frame:#x} failed: {error} ({error:?})");
    }
}

/// Frames the allocator manages (free or not).
pub fn total_frames() -> usize {
    FRAMES
        .lock()
        .as_ref()
        .map_or(0, |frames| frames.allocator.total_frames())
}

/// Free frames right now.
pub fn free_frames() -> usize {
    FRAMES
        .lock()
        .as_ref()
        .map_or(0, |frames| frames.allocator.free_frames())
}

/// Whether `phys` falls inside a range the allocator keeps reserved.
pub fn is_reserved(phys: u64) -> bool {
    FRAMES
        .lock()
        .as_ref()
        .is_some_and(|frames| frames.allocator.reserved().iter().any(|r| r.contains(phys)))
}
