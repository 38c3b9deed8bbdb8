//! Entering and leaving user mode: SYSCALL entry, the per-CPU block reached through GS, and
//! the return paths (SYSRET for system calls, IRETQ otherwise).
//!
//! A thread's user registers are saved straight into its thread control block: TSS.rsp0 and
//! the per-CPU `context_top` point at the end of the current thread's `TrapFrame`, so the
//! CPU (for interrupts) and the SYSCALL stub push the frame there. The stubs then switch to
//! the single kernel stack and call Rust, which never returns to the stub: it picks a thread
//! and leaves through `return_to_user` with that thread's frame.

use super::cpu::{self, Msr};
use super::gdt::{self, KERNEL_CODE_SELECTOR, USER_CODE_SELECTOR, USER_DATA_SELECTOR};
use super::trap::TrapFrame;
use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;

/// `TrapFrame::vector` value marking a frame saved by the SYSCALL stub (not an interrupt),
/// so the return path may use SYSRET.
pub const SYSCALL_FRAME_MARKER: u64 = 0x100;

/// RFLAGS bits cleared on SYSCALL: TF, IF, DF, IOPL, NT, AC.
const SYSCALL_FLAG_MASK: u64 = 0x4_7700;
/// RFLAGS of a new user thread: IF set, reserved bit 1 set.
pub const USER_INITIAL_RFLAGS: u64 = 0x202;

/// Per-CPU data, reached through GS while in the kernel. Offsets are used by the stubs.
#[repr(C)]
pub struct PerCpu {
    /// Top of the kernel stack (offset 0).
    kernel_stack_top: u64,
    /// End of the current thread's saved `TrapFrame` (offset 8).
    context_top: u64,
    /// Scratch for the user RSP during SYSCALL entry (offset 16).
    user_rsp_scratch: u64,
}

struct PerCpuCell(UnsafeCell<PerCpu>);

// SAFETY: one CPU; the fields are written by the kernel with interrupts off and read by
// the entry stubs of that same CPU.
unsafe impl Sync for PerCpuCell {}

static PER_CPU: PerCpuCell = PerCpuCell(UnsafeCell::new(PerCpu {
    kernel_stack_top: 0,
    context_top: 0,
    user_rsp_scratch: 0,
}));

const EFER_SCE: u64 = 1;

unsafe extern "C" {
    fn syscall_entry();
}

/// Enables SYSCALL/SYSRET and points GS at the per-CPU block.
pub fn init(kernel_stack_top: u64) {
    // SAFETY: only this CPU touches PER_CPU, and not concurrently with this write.
    unsafe { (*PER_CPU.0.get()).kernel_stack_top = kernel_stack_top };
    let star =
        (u64::from(USER_DATA_SELECTOR & !3) - 8) << 48 | u64::from(KERNEL_CODE_SELECTOR) << 32;
    // SAFETY: STAR/LSTAR/FMASK describe the GDT layout and entry point set up in this
    // module; GS_BASE points at a static that lives forever; KERNEL_GS_BASE holds the
    // user's GS base (0) until the first SWAPGS.
    unsafe {
        cpu::wrmsr(Msr::Star, star);
        cpu::wrmsr(Msr::Lstar, syscall_entry as *const () as u64);
        cpu::wrmsr(Msr::SyscallFlagMask, SYSCALL_FLAG_MASK);
        cpu::wrmsr(Msr::GsBase, PER_CPU.0.get() as u64);
        cpu::wrmsr(Msr::KernelGsBase, 0);
        cpu::wrmsr(Msr::Efer, cpu::rdmsr(Msr::Efer) | EFER_SCE);
    }
}

/// Makes `frame` the place the next user→kernel entry saves registers to.
pub fn set_current_context(frame: *const TrapFrame) {
    let top = frame as u64 + core::mem::size_of::<TrapFrame>() as u64;
    debug_assert!(
        top.is_multiple_of(16),
        "the CPU aligns the interrupt frame to 16 bytes"
    );
    // SAFETY: see `PerCpuCell`.
    unsafe { (*PER_CPU.0.get()).context_top = top };
    gdt::set_kernel_entry_stack(top);
}

/// A fresh user frame that starts at `rip` with stack `rsp`.
pub fn new_user_frame(rip: u64, rsp: u64) -> TrapFrame {
    TrapFrame {
        rip,
        rsp,
        cs: u64::from(USER_CODE_SELECTOR),
        ss: u64::from(USER_DATA_SELECTOR),
        rflags: USER_INITIAL_RFLAGS,
        ..TrapFrame::ZERO
    }
}

/// Leaves the kernel into user mode with the registers in `frame` (which must be the
/// current context set with `set_current_context`).
///
/// # Safety
/// `frame` must hold a user-mode frame (user CS/SS, canonical lower-half RIP) of the thread
/// whose address space is loaded in CR3; it must stay valid while the thread runs.
pub unsafe fn return_to_user(frame: *const TrapFrame) -> ! {
    // SAFETY: guaranteed by the caller; the asm below never returns.
    unsafe {
        asm!(
            "mov rsp, {frame}",
            "cmp qword ptr [rsp + 15*8], {marker}",
            "pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9", "pop r8",
            "pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rbx", "pop rax",
            "je 2f",
            // Interrupt frame: skip vector and error code, return with IRETQ.
            "add rsp, 16",
            "swapgs",
            "iretq",
            "2:",
            // System-call frame: SYSRET takes RIP from RCX, RFLAGS from R11.
            "mov rcx, [rsp + 16]",
            "mov r11, [rsp + 32]",
            "mov rsp, [rsp + 40]",
            "swapgs",
            "sysretq",
            frame = in(reg) frame,
            marker = const SYSCALL_FRAME_MARKER,
            options(noreturn),
        )
    }
}

global_asm!(
    r#"
    .section .text.syscall_entry, "ax"
    .global syscall_entry
syscall_entry:
    swapgs
    mov gs:[16], rsp
    mov rsp, gs:[8]
    push {user_ss}
    push qword ptr gs:[16]
    push r11
    push {user_cs}
    push rcx
    push 0
    push {marker}
    push rax
    push rbx
    push rcx
    push rdx
    push rsi
    push rdi
    push rbp
    push r8
    push r9
    push r10
    push r11
    push r12
    push r13
    push r14
    push r15
    mov rdi, rsp
    mov rsp, gs:[0]
    xor ebp, ebp
    call {handler}
    ud2
    "#,
    user_ss = const USER_DATA_SELECTOR as u64,
    user_cs = const USER_CODE_SELECTOR as u64,
    marker = const SYSCALL_FRAME_MARKER,
    handler = sym crate::entry::syscall_from_user,
);
