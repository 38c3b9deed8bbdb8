//! Trap dispatch: the Rust side of every exception and interrupt, and the fatal-fault report.

use super::{apic, cpu, debug_exit};
use crate::console;
use core::fmt;
use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicBool, Ordering};

/// Registers saved by the entry stub (general registers, vector, error code) followed by
/// the frame the CPU pushed. The general registers are pushed and popped by
/// `save_general_registers!`/`restore_general_registers!` below, which are generated from
/// the same list as the layout assertions; the assembly reaches the other fields through
/// the `FRAME_*` offsets.
#[derive(Clone, Copy, Debug)]
#[repr(C, align(16))]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

impl TrapFrame {
    /// The six system-call argument registers, in ABI order (RDI, RSI, RDX, R10, R8, R9).
    #[inline(always)]
    pub const fn syscall_arguments(&self) -> [u64; 6] {
        [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9]
    }

    pub const ZERO: TrapFrame = TrapFrame {
        r15: 0,
        r14: 0,
        r13: 0,
        r12: 0,
        r11: 0,
        r10: 0,
        r9: 0,
        r8: 0,
        rbp: 0,
        rdi: 0,
        rsi: 0,
        rdx: 0,
        rcx: 0,
        rbx: 0,
        rax: 0,
        vector: 0,
        error_code: 0,
        rip: 0,
        cs: 0,
        rflags: 0,
        rsp: 0,
        ss: 0,
    };
}

/// Calls `$then!` with the general registers in `TrapFrame` order (lowest address first).
/// The entry stubs push them in the reverse order, so the last push lands at offset 0.
macro_rules! with_general_registers {
    ($($then:tt)+) => {
        $($then)+! { r15 r14 r13 r12 r11 r10 r9 r8 rbp rdi rsi rdx rcx rbx rax }
    };
}

/// Assembly text (Intel syntax) pushing every general register so that RSP then points at
/// a `TrapFrame`'s first field; used by the trap stubs (`idt.rs`) and the SYSCALL entry
/// (`user_entry.rs`). A Rust macro expanding to a string literal rather than an assembler
/// `.macro`: each `global_asm!`/`asm!` is assembled on its own, possibly in another
/// codegen unit, so an assembler macro defined in one would not be visible in the other.
macro_rules! save_general_registers {
    () => {
        $crate::arch::x86_64::trap::with_general_registers!(
            $crate::arch::x86_64::trap::general_register_pushes
        )
    };
}

/// Assembly text popping every general register from a `TrapFrame` at RSP, leaving RSP at
/// its `vector` field; used by the kernel-mode trap return (`idt.rs`) and the return to
/// user mode (`user_entry.rs`).
macro_rules! restore_general_registers {
    () => {
        $crate::arch::x86_64::trap::with_general_registers!(
            $crate::arch::x86_64::trap::general_register_pops
        )
    };
}

/// `push` for each register, last one first (reverses the list by accumulation).
macro_rules! general_register_pushes {
    ($($register:ident)*) => {
        $crate::arch::x86_64::trap::general_register_pushes!(@reverse [$($register)*] [])
    };
    (@reverse [$first:ident $($rest:ident)*] [$($reversed:ident)*]) => {
        $crate::arch::x86_64::trap::general_register_pushes!(
            @reverse [$($rest)*] [$first $($reversed)*]
        )
    };
    (@reverse [] [$($register:ident)*]) => {
        concat!($("push ", stringify!($register), "\n"),*)
    };
}

/// `pop` for each register, in list order.
macro_rules! general_register_pops {
    ($($register:ident)*) => {
        concat!($("pop ", stringify!($register), "\n"),*)
    };
}

pub(super) use {
    general_register_pops, general_register_pushes, restore_general_registers,
    save_general_registers, with_general_registers,
};

/// Checks that the registers of `with_general_registers!` are `TrapFrame`'s first fields,
/// eight bytes apart, in that order: the push/pop sequences rely on it.
macro_rules! assert_general_register_offsets {
    ($($register:ident)*) => {
        const _: () = {
            let offsets = [$(offset_of!(TrapFrame, $register)),*];
            let mut index = 0;
            while index < offsets.len() {
                assert!(offsets[index] == index * 8);
                index += 1;
            }
            assert!(offsets.len() * 8 == FRAME_VECTOR);
        };
    };
}
with_general_registers!(assert_general_register_offsets);

/// Offsets into `TrapFrame` used by the entry and return assembly.
pub const FRAME_VECTOR: usize = offset_of!(TrapFrame, vector);
pub const FRAME_RIP: usize = offset_of!(TrapFrame, rip);
pub const FRAME_CS: usize = offset_of!(TrapFrame, cs);
pub const FRAME_RFLAGS: usize = offset_of!(TrapFrame, rflags);
pub const FRAME_RSP: usize = offset_of!(TrapFrame, rsp);

// The stub pushes the error code and vector directly below the frame the CPU pushes on an
// interrupt (RIP, CS, RFLAGS, RSP, SS, in that order); SYSCALL entry builds the same shape.
const _: () = {
    assert!(offset_of!(TrapFrame, error_code) == FRAME_VECTOR + 8);
    assert!(FRAME_RIP == FRAME_VECTOR + 16);
    assert!(FRAME_CS == FRAME_RIP + 8);
    assert!(FRAME_RFLAGS == FRAME_RIP + 16);
    assert!(FRAME_RSP == FRAME_RIP + 24);
    assert!(offset_of!(TrapFrame, ss) == FRAME_RIP + 32);
    // The CPU's pushes end at the frame's end (TSS.rsp0 / `context_top` point there), and
    // it aligns that end to 16 bytes.
    assert!(size_of::<TrapFrame>() == offset_of!(TrapFrame, ss) + 8);
    assert!(size_of::<TrapFrame>().is_multiple_of(16));
};

/// Mnemonic and name of each architectural exception vector.
pub fn exception_name(vector: u64) -> (&'static str, &'static str) {
    match vector {
        0 => ("#DE", "divide error"),
        1 => ("#DB", "debug"),
        2 => ("NMI", "non-maskable interrupt"),
        3 => ("#BP", "breakpoint"),
        4 => ("#OF", "overflow"),
        5 => ("#BR", "bound range exceeded"),
        6 => ("#UD", "invalid opcode"),
        7 => ("#NM", "device not available"),
        8 => ("#DF", "double fault"),
        9 => ("#CSO", "coprocessor segment overrun"),
        10 => ("#TS", "invalid TSS"),
        11 => ("#NP", "segment not present"),
        12 => ("#SS", "stack-segment fault"),
        13 => ("#GP", "general protection fault"),
        14 => ("#PF", "page fault"),
        16 => ("#MF", "x87 floating-point error"),
        17 => ("#AC", "alignment check"),
        18 => ("#MC", "machine check"),
        19 => ("#XM", "SIMD floating-point error"),
        20 => ("#VE", "virtualization exception"),
        21 => ("#CP", "control protection"),
        28 => ("#HV", "hypervisor injection"),
        29 => ("#VC", "VMM communication"),
        30 => ("#SX", "security exception"),
        _ => ("#??", "reserved exception"),
    }
}

/// What a trap vector is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrapKind {
    /// A CPU exception caused by the interrupted code (divide error, page fault, …).
    Exception,
    /// NMI or machine check: about the machine, not the interrupted code.
    MachineEvent,
    Timer,
    /// COM2 has received bytes (the monitor channel's host commands).
    MonitorReceive,
    /// APIC spurious vector or a (masked, remapped) legacy PIC line: nothing to do.
    Spurious,
    Unexpected,
}

pub fn classify(vector: u64) -> TrapKind {
    match vector {
        2 | 18 => TrapKind::MachineEvent,
        0..=31 => TrapKind::Exception,
        v if v == u64::from(apic::TIMER_VECTOR) => TrapKind::Timer,
        v if v == u64::from(apic::MONITOR_RECEIVE_VECTOR) => TrapKind::MonitorReceive,
        v if v == u64::from(apic::SPURIOUS_VECTOR) => TrapKind::Spurious,
        0x20..=0x2f => TrapKind::Spurious,
        _ => TrapKind::Unexpected,
    }
}

/// Entry from `trap_common` for traps taken in kernel mode (the idle loop, or a kernel
/// fault), with interrupts disabled. Traps from user mode go to `entry::interrupt_from_user`.
pub extern "C" fn dispatch(frame: &mut TrapFrame) {
    match classify(frame.vector) {
        TrapKind::Exception | TrapKind::MachineEvent => fatal_exception(frame),
        kind => device_interrupt(kind, frame.vector, &mut crate::system::KERNEL.lock()),
    }
}

/// Entry from the NMI stub (any mode, on the NMI's IST stack, NMIs blocked until its IRETQ).
/// Returns to the interrupted code unless the watchdog stops the machine. An NMI that no
/// watchdog source claims is fatal while the watchdog is off, as every NMI was before it.
pub extern "C" fn nmi(frame: &mut TrapFrame) {
    if !crate::watchdog::on_nmi(frame) {
        fatal_exception(frame);
    }
}

/// Handles a device interrupt (timer, spurious, unexpected vector), whichever mode it
/// interrupted.
pub fn device_interrupt(kind: TrapKind, vector: u64, kernel: &mut crate::system::Kernel) {
    match kind {
        TrapKind::Timer => {
            kernel.on_tick();
            apic::end_of_interrupt();
        }
        TrapKind::MonitorReceive => {
            crate::monitor::on_receive_interrupt();
            apic::end_of_interrupt();
        }
        TrapKind::Unexpected => {
            crate::warn!("trap: unexpected interrupt vector {vector}");
            apic::end_of_interrupt();
        }
        TrapKind::Spurious | TrapKind::Exception | TrapKind::MachineEvent => {}
    }
}

static HANDLING_FATAL_FAULT: AtomicBool = AtomicBool::new(false);

/// Decodes a page-fault error code into words.
pub struct PageFaultCause(pub u64);

impl fmt::Display for PageFaultCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.0;
        let presence = if code & 1 != 0 {
            "protection"
        } else {
            "not-present"
        };
        let access = if code & (1 << 4) != 0 {
            "instruction-fetch"
        } else if code & 2 != 0 {
            "write"
        } else {
            "read"
        };
        let mode = if code & 4 != 0 { "user" } else { "supervisor" };
        write!(f, "{presence} {access} {mode}")?;
        if code & 8 != 0 {
            write!(f, " reserved-bit")?;
        }
        Ok(())
    }
}

/// Reports an exception the kernel cannot handle (vector, error code, CR2, registers,
/// backtrace) and stops the machine with a failure status.
pub fn fatal_exception(frame: &TrapFrame) -> ! {
    if HANDLING_FATAL_FAULT.swap(true, Ordering::SeqCst) {
        // A fault while reporting a fault: say so as simply as possible and stop.
        console::emergency_write("\nfault: nested fault while reporting a fault; stopping\n");
        debug_exit::exit(debug_exit::ExitStatus::Failure);
    }
    console::enter_fatal_mode();
    let report = crate::fault::FaultReport {
        frame,
        place: crate::fault::FaultPlace::Kernel,
        fault_address: super::cpu::read_cr2(),
    };
    report.print();
    let (addresses, count) = crate::backtrace::print(Some(frame.rip), frame.rbp);
    crate::monitor::emergency_crash(
        vigil_wire::CrashKind::KernelFault,
        &report.summary(),
        &addresses[..count],
    );
    debug_exit::exit(debug_exit::ExitStatus::Failure)
}

pub fn print_registers(f: &TrapFrame) {
    let rows: [[(&str, u64); 4]; 5] = [
        [
            ("rax", f.rax),
            ("rbx", f.rbx),
            ("rcx", f.rcx),
            ("rdx", f.rdx),
        ],
        [
            ("rsi", f.rsi),
            ("rdi", f.rdi),
            ("rbp", f.rbp),
            ("rsp", f.rsp),
        ],
        [("r8 ", f.r8), ("r9 ", f.r9), ("r10", f.r10), ("r11", f.r11)],
        [
            ("r12", f.r12),
            ("r13", f.r13),
            ("r14", f.r14),
            ("r15", f.r15),
        ],
        [
            ("rip", f.rip),
            ("rfl", f.rflags),
            ("cs ", f.cs),
            ("ss ", f.ss),
        ],
    ];
    for [(n0, v0), (n1, v1), (n2, v2), (n3, v3)] in rows {
        console::continuation(format_args!(
            "  {n0}={v0:#018x} {n1}={v1:#018x} {n2}={v2:#018x} {n3}={v3:#018x}"
        ));
    }
    console::continuation(format_args!(
        "  cr0={:#x} cr3={:#x} cr4={:#x}",
        cpu::read_cr0(),
        cpu::read_cr3(),
        cpu::read_cr4()
    ));
}
