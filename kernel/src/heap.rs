//! The kernel heap: a linked-list allocator over physically contiguous frames in the direct map.

use crate::lock;
use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};
use linked_list_allocator::Heap;

/// Size of the kernel heap. The kernel keeps most state in fixed tables; the heap is for
/// the few structures whose size is only known at run time.
pub const HEAP_BYTES: usize = 4 * 1024 * 1024;

struct KernelHeap {
    heap: lock::Mutex<Heap>,
    allocations: AtomicUsize,
}

#[global_allocator]
static KERNEL_HEAP: KernelHeap = KernelHeap {
    heap: lock::Mutex::new(lock::Level::Heap, Heap::empty()),
    allocations: AtomicUsize::new(0),
};

// SAFETY: allocation and deallocation are delegated to `linked_list_allocator::Heap` under a
// lock; the heap region is owned exclusively by it after `init`.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match self.heap.lock().allocate_first_fit(layout) {
            Ok(block) => {
                self.allocations.fetch_add(1, Ordering::Relaxed);
                block.as_ptr()
            }
            Err(()) => core::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(block) = NonNull::new(ptr) {
            // SAFETY: the caller passes a pointer this allocator returned, with its layout.
            unsafe { self.heap.lock().deallocate(block, layout) };
            self.allocations.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Hands the region `[start, start + size)` to the heap.
///
/// # Safety
/// The region must be mapped, writable, unused by anything else, and live forever.
pub unsafe fn init(start: u64, size: usize) {
    // SAFETY: guaranteed by the caller.
    unsafe { KERNEL_HEAP.heap.lock().init(start as *mut u8, size) };
}

/// Whether the heap's lock is held (a panic inside the allocator must not allocate).
pub fn is_locked() -> bool {
    KERNEL_HEAP.heap.is_locked()
}

/// Heap statistics for the boot log and self-tests.
#[derive(Clone, Copy, Debug)]
pub struct HeapStats {
    pub size: usize,
    pub used: usize,
    pub live_allocations: usize,
}

pub fn stats() -> HeapStats {
    let heap = KERNEL_HEAP.heap.lock();
    HeapStats {
        size: heap.size(),
        used: heap.used(),
        live_allocations: KERNEL_HEAP.allocations.load(Ordering::Relaxed),
    }
}

/// Takes the heap's lock and returns its guard, for the `lockup-locked` self-test only.
pub fn hold_for_selftest() -> impl Sized {
    KERNEL_HEAP.heap.lock()
}
