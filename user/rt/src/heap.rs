//! The global allocator: `linked_list_allocator`'s heap over a 4 MiB arena in .bss, behind
//! the runtime's own [`Mutex`] (so contended allocation sleeps in the kernel, not spins).

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};

use linked_list_allocator::Heap;

use crate::sync::Mutex;

/// Size of the heap arena.
pub const HEAP_SIZE: usize = 4 << 20;

/// The arena's bytes; only the allocator touches them, through the pointer it was given.
#[repr(C, align(4096))]
struct Arena(UnsafeCell<[u8; HEAP_SIZE]>);

// SAFETY: the arena is only accessed through the heap, which the mutex serialises.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; HEAP_SIZE]));

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
        // SAFETY: the arena is a static of HEAP_SIZE bytes used by nothing but this heap,
        // and this runs once (the size is non-zero afterwards), under the heap's lock.
        unsafe { heap.init(ARENA.0.get().cast::<u8>(), HEAP_SIZE) };
    }
}

// SAFETY: allocation and deallocation go through `linked_list_allocator::Heap`, which hands
// out disjoint blocks of the arena fitting the layout; the mutex serialises access to it.
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
