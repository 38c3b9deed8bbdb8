//! Global descriptor table and task-state segment, with IST stacks for NMI and double fault.
//!
//! Selector layout is fixed by SYSCALL/SYSRET: kernel code, kernel data, then user data
//! before user code (SYSRET loads SS = base + 8 and CS = base + 16).

use core::arch::asm;
use core::cell::UnsafeCell;
use core::mem::{offset_of, size_of};

pub const KERNEL_CODE_SELECTOR: u16 = 0x08;
pub const KERNEL_DATA_SELECTOR: u16 = 0x10;
pub const USER_DATA_SELECTOR: u16 = 0x18 | 3;
pub const USER_CODE_SELECTOR: u16 = 0x20 | 3;
pub const TSS_SELECTOR: u16 = 0x28;

// SYSRET loads SS from STAR[63:48] + 8 and CS from STAR[63:48] + 16, so user data must sit
// directly below user code.
const _: () = assert!((USER_CODE_SELECTOR & !3) == (USER_DATA_SELECTOR & !3) + 8);

/// IST slots (1-based, as the IDT encodes them).
pub const IST_NMI: u8 = 1;
pub const IST_DOUBLE_FAULT: u8 = 2;
pub const IST_MACHINE_CHECK: u8 = 3;

const IST_STACK_SIZE: usize = 16 * 1024;
const IST_STACKS: usize = 3;

#[repr(C, packed)]
struct TaskStateSegment {
    reserved0: u32,
    privilege_stacks: [u64; 3],
    reserved1: u64,
    interrupt_stacks: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    io_map_base: u16,
}

// The layout the CPU reads (64-bit TSS): RSP0 at 4, IST1 at 0x24, the I/O map base at 0x66,
// 104 bytes in all.
const _: () = {
    assert!(offset_of!(TaskStateSegment, privilege_stacks) == 0x04);
    assert!(offset_of!(TaskStateSegment, interrupt_stacks) == 0x24);
    assert!(offset_of!(TaskStateSegment, io_map_base) == 0x66);
    assert!(size_of::<TaskStateSegment>() == 0x68);
};

#[repr(C, align(16))]
struct IstStacks([[u8; IST_STACK_SIZE]; IST_STACKS]);

/// Boot-time CPU tables, written once by `init` before any interrupt can use them.
struct CpuTables {
    gdt: UnsafeCell<[u64; 7]>,
    tss: UnsafeCell<TaskStateSegment>,
}

/// The IST stacks, in their own all-zero static so they land in .bss, not in the image.
struct IstStackArea(UnsafeCell<IstStacks>);

// SAFETY: the CPU switches to these stacks itself; Rust code only takes their address.
unsafe impl Sync for IstStackArea {}

static IST_STACK_AREA: IstStackArea = IstStackArea(UnsafeCell::new(IstStacks(
    [[0; IST_STACK_SIZE]; IST_STACKS],
)));

// SAFETY: single CPU; the tables are written only in `init` (interrupts off, before the
// IDT is loaded) and afterwards only read by the CPU itself.
unsafe impl Sync for CpuTables {}

static TABLES: CpuTables = CpuTables {
    gdt: UnsafeCell::new([0; 7]),
    tss: UnsafeCell::new(TaskStateSegment {
        reserved0: 0,
        privilege_stacks: [0; 3],
        reserved1: 0,
        interrupt_stacks: [0; 7],
        reserved2: 0,
        reserved3: 0,
        io_map_base: size_of::<TaskStateSegment>() as u16,
    }),
};

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

// LGDT's operand: a 16-bit limit directly followed by the 64-bit base.
const _: () =
    assert!(offset_of!(DescriptorPointer, base) == 2 && size_of::<DescriptorPointer>() == 10);

/// Address range `[low, high)` of each IST stack, for the backtrace walker's bounds checks.
pub fn ist_stack_ranges() -> [(u64, u64); IST_STACKS] {
    let base = IST_STACK_AREA.0.get() as u64;
    core::array::from_fn(|i| {
        let low = base + (i * IST_STACK_SIZE) as u64;
        (low, low + IST_STACK_SIZE as u64)
    })
}

/// Sets where the CPU saves the interrupted user frame on the next interrupt or exception
/// from user mode (TSS.rsp0).
pub fn set_kernel_entry_stack(top: u64) {
    // SAFETY: single CPU, interrupts off; the CPU reads rsp0 only on a privilege change,
    // which cannot happen while the kernel runs.
    unsafe { (*TABLES.tss.get()).privilege_stacks[0] = top };
}

/// Builds and loads the GDT and TSS, reloads the segment registers.
pub fn init(kernel_stack_top: u64) {
    let tss_address = TABLES.tss.get() as u64;
    let ist = ist_stack_ranges();
    // SAFETY: see `CpuTables`: nothing else accesses the tables during init.
    unsafe {
        let tss = &mut *TABLES.tss.get();
        tss.privilege_stacks[0] = kernel_stack_top;
        tss.interrupt_stacks[(IST_NMI - 1) as usize] = ist[0].1;
        tss.interrupt_stacks[(IST_DOUBLE_FAULT - 1) as usize] = ist[1].1;
        tss.interrupt_stacks[(IST_MACHINE_CHECK - 1) as usize] = ist[2].1;

        let tss_limit = (size_of::<TaskStateSegment>() - 1) as u64;
        let gdt = &mut *TABLES.gdt.get();
        gdt[0] = 0;
        gdt[1] = 0x00af_9a00_0000_ffff; // kernel code: 64-bit, DPL 0
        gdt[2] = 0x00cf_9200_0000_ffff; // kernel data
        gdt[3] = 0x00cf_f200_0000_ffff; // user data, DPL 3
        gdt[4] = 0x00af_fa00_0000_ffff; // user code: 64-bit, DPL 3
                                        // 16-byte available 64-bit TSS descriptor (type 0x9, present).
        gdt[5] = (tss_limit & 0xffff)
            | ((tss_address & 0xff_ffff) << 16)
            | (0x89 << 40)
            | (((tss_limit >> 16) & 0xf) << 48)
            | (((tss_address >> 24) & 0xff) << 56);
        gdt[6] = tss_address >> 32;
    }

    let pointer = DescriptorPointer {
        limit: (size_of::<[u64; 7]>() - 1) as u16,
        base: TABLES.gdt.get() as u64,
    };
    // SAFETY: the GDT above is valid and 'static; the far return reloads CS with the
    // kernel code selector, which has the same attributes as the boot GDT's.
    unsafe {
        asm!(
            "lgdt [{pointer}]",
            "push {code}",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov ds, {data:x}",
            "mov es, {data:x}",
            "mov ss, {data:x}",
            "ltr {tss:x}",
            pointer = in(reg) &pointer,
            code = in(reg) u64::from(KERNEL_CODE_SELECTOR),
            data = in(reg) u64::from(KERNEL_DATA_SELECTOR),
            tss = in(reg) u64::from(TSS_SELECTOR),
            tmp = out(reg) _,
        );
    }
}
