//! The global allocator: `linked_list_allocator`'s heap over the process's heap region
//! (`layout::HEAP_BASE`, `RUNTIME_HEAP_BYTES`), behind the runtime's own [`Mutex`] (so
//! contended allocation sleeps in the kernel, not spins).
//!
//! The region is mapped by the kernel at process creation, or — when the VM server serves
//! the process — page by page on first touch: the heap then grows through VM, and only
//! the pages the allocator has touched are resident.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use linked_list_allocator::Heap;
use vigil_abi::layout::{HEAP_BASE, RUNTIME_HEAP_BYTES};

use crate::sync::Mutex;

/// Size of the heap region.
pub const HEAP_SIZE: usize = RUNTIME_HEAP_BYTES as usize;

/// The process-wide allocator.
pub struct RuntimeAllocator {
    heap: Mutex<Heap>,
}

impl RuntimeAllocator {
    const fn new() -> RuntimeAllocator {
        RuntimeAllocator {
            heap: Mutex::new(Heap::empty()),
        }
    }
}

/// Gives the heap its arena the first time it is needed.
fn ensure_initialised(heap: &mut Heap) {
    if heap.size() == 0 {
        // SAFETY: the kernel reserves [HEAP_BASE, HEAP_BASE + HEAP_SIZE) of every process
        // for this heap (mapped, or provided by VM on first touch) and nothing else uses it;
        // this runs once (the size is non-zero afterwards), under the heap's lock.
        unsafe { heap.init(HEAP_BASE as *mut u8, HEAP_SIZE) };
    }
}

// SAFETY: allocation and deallocation go through `linked_list_allocator::Heap`, which hands
// out disjoint blocks of the region fitting the layout; the mutex serialises access to it.
unsafe impl GlobalAlloc for RuntimeAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut heap = self.heap.lock();
        ensure_initialised(&mut heap);
        heap.allocate_first_fit(layout)
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if let Some(block) = NonNull::new(block) {
            // SAFETY: the caller passes a block this allocator returned for `layout`.
            unsafe { self.heap.lock().deallocate(block, layout) };
        }
    }
}

#[cfg_attr(all(target_os = "none", not(test)), global_allocator)]
static ALLOCATOR: RuntimeAllocator = RuntimeAllocator::new();

/// Sets the heap up (the entry point calls this before `main`; allocation would otherwise
/// do it on first use).
pub fn init() {
    ensure_initialised(&mut ALLOCATOR.heap.lock());
}

/// Bytes in use and bytes free on the heap.
pub fn usage() -> (usize, usize) {
    let heap = ALLOCATOR.heap.lock();
    (heap.used(), heap.free())
}
