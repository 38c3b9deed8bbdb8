//! Interrupt descriptor table and the 256 entry stubs that build a `TrapFrame` and call Rust.
//!
//! Each stub pushes a zero error code when the CPU does not push one, then its vector
//! number, and jumps to `trap_common`, which saves every general register. From kernel
//! mode it calls `trap::dispatch` with a pointer to the frame and returns with IRETQ. From
//! user mode the CPU has already put the frame in the current thread's control block (via
//! TSS.rsp0); `trap_common` does SWAPGS, moves to the kernel stack and calls
//! `entry::interrupt_from_user`, which leaves through `user_entry::return_to_user`. The NMI
//! stub is separate: it saves the same frame on the NMI's IST stack, calls `trap::nmi` and
//! returns with IRETQ to the interrupted code, in whichever mode.

use super::gdt::{IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI, KERNEL_CODE_SELECTOR};
use super::trap::{
    restore_general_registers, save_general_registers, FRAME_CS, FRAME_RIP, FRAME_VECTOR,
};
use super::user_entry::PER_CPU_KERNEL_STACK_TOP;
use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::mem::{offset_of, size_of};

// The first `.irp` list below holds the vectors for which the CPU pushes an error code
// (8, 10–14, 17, 21, 29, 30); the second holds all others.
global_asm!(
    r#"
    .section .text.trap_stubs, "ax"
    .balign 16
    .irp vector, 8,10,11,12,13,14,17,21,29,30
vector_stub_\vector:
    push \vector
    jmp trap_common
    .balign 16
    .endr

    .irp vector, 0,1,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99,100,101,102,103,104,105,106,107,108,109,110,111,112,113,114,115,116,117,118,119,120,121,122,123,124,125,126,127,128,129,130,131,132,133,134,135,136,137,138,139,140,141,142,143,144,145,146,147,148,149,150,151,152,153,154,155,156,157,158,159,160,161,162,163,164,165,166,167,168,169,170,171,172,173,174,175,176,177,178,179,180,181,182,183,184,185,186,187,188,189,190,191,192,193,194,195,196,197,198,199,200,201,202,203,204,205,206,207,208,209,210,211,212,213,214,215,216,217,218,219,220,221,222,223,224,225,226,227,228,229,230,231,232,233,234,235,236,237,238,239,240,241,242,243,244,245,246,247,248,249,250,251,252,253,254,255
vector_stub_\vector:
    push 0
    push \vector
    jmp trap_common
    .balign 16
    .endr

    // NMI: on its own IST stack, from any mode, returning to wherever it struck. No
    // SWAPGS and no GS access: it can arrive between SYSCALL and the entry's SWAPGS, where
    // CS is the kernel's but GS is still the user's. It never enters the scheduler.
vector_stub_2:
    push 0
    push 2
    "#,
    save_general_registers!(),
    r#"
    mov rdi, rsp
    cld
    /* From user mode RBP is the user's: zero it so a backtrace of the handler ends
       there instead of walking user memory. From the kernel it chains to the
       interrupted frame. */
    test qword ptr [rsp + {frame_cs}], 3
    jz 3f
    xor ebp, ebp
3:
    call {nmi}
    "#,
    restore_general_registers!(),
    r#"
    add rsp, {cpu_frame_start}
    iretq
    .balign 16

trap_common:
    test qword ptr [rsp + {cs_above_vector}], 3
    jz 1f
    swapgs
1:
    "#,
    save_general_registers!(),
    r#"
    mov rdi, rsp
    cld
    test qword ptr [rsp + {frame_cs}], 3
    jnz 2f
    call {dispatch}
    "#,
    restore_general_registers!(),
    r#"
    add rsp, {cpu_frame_start}
    iretq
2:
    mov rsp, gs:[{kernel_stack_top}]
    xor ebp, ebp
    call {from_user}
    ud2

    .section .rodata.vector_stub_table, "a"
    .balign 8
    .global vector_stub_table
vector_stub_table:
    .irp vector, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99,100,101,102,103,104,105,106,107,108,109,110,111,112,113,114,115,116,117,118,119,120,121,122,123,124,125,126,127,128,129,130,131,132,133,134,135,136,137,138,139,140,141,142,143,144,145,146,147,148,149,150,151,152,153,154,155,156,157,158,159,160,161,162,163,164,165,166,167,168,169,170,171,172,173,174,175,176,177,178,179,180,181,182,183,184,185,186,187,188,189,190,191,192,193,194,195,196,197,198,199,200,201,202,203,204,205,206,207,208,209,210,211,212,213,214,215,216,217,218,219,220,221,222,223,224,225,226,227,228,229,230,231,232,233,234,235,236,237,238,239,240,241,242,243,244,245,246,247,248,249,250,251,252,253,254,255
    .quad vector_stub_\vector
    .endr
    "#,
    cs_above_vector = const FRAME_CS - FRAME_VECTOR,
    frame_cs = const FRAME_CS,
    cpu_frame_start = const FRAME_RIP - FRAME_VECTOR,
    kernel_stack_top = const PER_CPU_KERNEL_STACK_TOP,
    dispatch = sym super::trap::dispatch,
    nmi = sym super::trap::nmi,
    from_user = sym crate::entry::interrupt_from_user,
);

unsafe extern "C" {
    /// Addresses of the 256 entry stubs, built by the assembly above.
    static vector_stub_table: [u64; 256];
}

#[derive(Clone, Copy)]
#[repr(C)]
struct GateDescriptor {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attributes: u8,
    offset_middle: u16,
    offset_high: u32,
    reserved: u32,
}

// The 16-byte 64-bit gate the CPU reads: offset 15..0, selector, IST, type, offset 31..16,
// offset 63..32, reserved.
const _: () = {
    assert!(offset_of!(GateDescriptor, selector) == 2);
    assert!(offset_of!(GateDescriptor, ist) == 4);
    assert!(offset_of!(GateDescriptor, type_attributes) == 5);
    assert!(offset_of!(GateDescriptor, offset_middle) == 6);
    assert!(offset_of!(GateDescriptor, offset_high) == 8);
    assert!(size_of::<GateDescriptor>() == 16);
};

/// Present, DPL 0, 64-bit interrupt gate (clears IF on entry).
const INTERRUPT_GATE: u8 = 0x8e;

impl GateDescriptor {
    const MISSING: GateDescriptor = GateDescriptor {
        offset_low: 0,
        selector: 0,
        ist: 0,
        type_attributes: 0,
        offset_middle: 0,
        offset_high: 0,
        reserved: 0,
    };

    fn interrupt_gate(handler: u64, ist: u8) -> GateDescriptor {
        GateDescriptor {
            offset_low: handler as u16,
            selector: KERNEL_CODE_SELECTOR,
            ist,
            type_attributes: INTERRUPT_GATE,
            offset_middle: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

struct Idt(UnsafeCell<[GateDescriptor; 256]>);

// SAFETY: single CPU; written only in `init` with interrupts off, then read by the CPU.
unsafe impl Sync for Idt {}

static IDT: Idt = Idt(UnsafeCell::new([GateDescriptor::MISSING; 256]));

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

// LIDT's operand: a 16-bit limit directly followed by the 64-bit base.
const _: () =
    assert!(offset_of!(DescriptorPointer, base) == 2 && size_of::<DescriptorPointer>() == 10);

/// Fills every gate with its stub and loads the IDT. NMI, double fault and machine check
/// run on their own IST stacks so they work even when the kernel stack is broken.
pub fn init() {
    // SAFETY: `vector_stub_table` is initialised read-only data emitted by global_asm above.
    let stubs = unsafe { &vector_stub_table };
    // SAFETY: see `Idt`; no interrupt can use the table while it is written.
    let idt = unsafe { &mut *IDT.0.get() };
    for (vector, gate) in idt.iter_mut().enumerate() {
        let ist = match vector {
            2 => IST_NMI,
            8 => IST_DOUBLE_FAULT,
            18 => IST_MACHINE_CHECK,
            _ => 0,
        };
        *gate = GateDescriptor::interrupt_gate(stubs[vector], ist);
    }
    let pointer = DescriptorPointer {
        limit: (size_of::<[GateDescriptor; 256]>() - 1) as u16,
        base: IDT.0.get() as u64,
    };
    // SAFETY: the IDT is fully initialised and 'static.
    unsafe { asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags)) }
}
