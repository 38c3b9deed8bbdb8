//! The x86-64 port: everything that touches the CPU, its tables and its legacy devices.

pub mod apic;
pub mod boot;
pub mod cpu;
pub mod debug_exit;
pub mod fpu;
pub mod gdt;
pub mod idt;
pub mod ioapic;
pub mod nmi;
pub mod paging;
pub mod pit;
pub mod trap;
pub mod uart;
pub mod user_entry;

/// Stack ranges `[low, high)` the kernel may run on: the kernel stack and the IST stacks.
/// The backtrace walker only dereferences frame pointers inside these.
pub fn kernel_stack_ranges() -> [(u64, u64); 4] {
    let layout = paging::KernelLayout::get();
    let [ist0, ist1, ist2] = gdt::ist_stack_ranges();
    [layout.stack, ist0, ist1, ist2]
}
