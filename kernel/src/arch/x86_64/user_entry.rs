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
use super::trap::{
    restore_general_registers, save_general_registers, TrapFrame, FRAME_RFLAGS, FRAME_RIP,
    FRAME_RSP, FRAME_VECTOR,
};
use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::mem::{offset_of, size_of};

/// `TrapFrame::vector` value marking a frame saved by the SYSCALL stub (not an interrupt),
/// so the return path may use SYSRET.
pub const SYSCALL_FRAME_MARKER: u64 = 0x100;

/// RFLAGS bits cleared on SYSCALL: TF, IF, DF, IOPL, NT, AC.
const SYSCALL_FLAG_MASK: u64 = 0x4_7700;
/// RFLAGS of a new user thread: IF set, reserved bit 1 set.
pub const USER_INITIAL_RFLAGS: u64 = 0x202;

/// Per-CPU data, reached through GS while in the kernel. The entry stubs address its
/// fields through the `PER_CPU_*` offsets below.
#[repr(C)]
pub struct PerCpu {
    /// Top of the kernel stack.
    kernel_stack_top: u64,
    /// End of the current thread's saved `TrapFrame`.
    context_top: u64,
    /// Scratch for the user RSP during SYSCALL entry.
    user_rsp_scratch: u64,
}

/// GS-relative offsets of the `PerCpu` fields, for the assembly (here and in `idt.rs`).
pub const PER_CPU_KERNEL_STACK_TOP: usize = offset_of!(PerCpu, kernel_stack_top);
const PER_CPU_CONTEXT_TOP: usize = offset_of!(PerCpu, context_top);
const PER_CPU_USER_RSP_SCRATCH: usize = offset_of!(PerCpu, user_rsp_scratch);

// The layout the offsets above describe, stated once more so a reordering of the fields
// shows up here as well as in the (offset-driven) assembly.
const _: () = {
    assert!(PER_CPU_KERNEL_STACK_TOP == 0);
    assert!(PER_CPU_CONTEXT_TOP == 8);
    assert!(PER_CPU_USER_RSP_SCRATCH == 16);
    assert!(size_of::<PerCpu>() == 24);
};

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
            "cmp qword ptr [rsp + {vector}], {marker}",
            restore_general_registers!(),
            // RSP is at `vector` now.
            "je 2f",
            // Interrupt frame: skip vector and error code, return with IRETQ.
            "add rsp, {rip}",
            "swapgs",
            "iretq",
            "2:",
            // System-call frame: SYSRET takes RIP from RCX, RFLAGS from R11.
            "mov rcx, [rsp + {rip}]",
            "mov r11, [rsp + {rflags}]",
            "mov rsp, [rsp + {rsp}]",
            "swapgs",
            "sysretq",
            frame = in(reg) frame,
            marker = const SYSCALL_FRAME_MARKER,
            vector = const FRAME_VECTOR,
            rip = const FRAME_RIP - FRAME_VECTOR,
            rflags = const FRAME_RFLAGS - FRAME_VECTOR,
            rsp = const FRAME_RSP - FRAME_VECTOR,
            options(noreturn),
        )
    }
}

/// `return_to_user` for a frame the SYSCALL stub saved (`vector` is
/// `SYSCALL_FRAME_MARKER`), as a thread blocked in a system call has: straight to SYSRET,
/// each register loaded from the frame once. RCX and R11 are not: SYSRET sets them to the
/// RIP and RFLAGS it returns with, which is all `return_to_user`'s SYSRET leaves in them too.
///
/// # Safety
/// As for `return_to_user`, and `frame` must be a SYSCALL stub's frame.
#[inline(always)]
pub unsafe fn return_to_user_from_syscall(frame: *const TrapFrame) -> ! {
    // SAFETY: the caller guarantees `frame` is a valid syscall frame.
    debug_assert_eq!(unsafe { (*frame).vector }, SYSCALL_FRAME_MARKER);
    // SAFETY: guaranteed by the caller; RDI is loaded last, after RSP, so the frame's
    // address is at hand until then; the asm never returns.
    unsafe {
        asm!(
            "mov r15, [rdi + {r15}]",
            "mov r14, [rdi + {r14}]",
            "mov r13, [rdi + {r13}]",
            "mov r12, [rdi + {r12}]",
            "mov r10, [rdi + {r10}]",
            "mov r9, [rdi + {r9}]",
            "mov r8, [rdi + {r8}]",
            "mov rbp, [rdi + {rbp}]",
            "mov rsi, [rdi + {rsi}]",
            "mov rdx, [rdi + {rdx}]",
            "mov rbx, [rdi + {rbx}]",
            "mov rax, [rdi + {rax}]",
            // SYSRET takes RIP from RCX, RFLAGS from R11.
            "mov rcx, [rdi + {rip}]",
            "mov r11, [rdi + {rflags}]",
            "mov rsp, [rdi + {rsp}]",
            "mov rdi, [rdi + {rdi}]",
            "swapgs",
            "sysretq",
            in("rdi") frame,
            r15 = const offset_of!(TrapFrame, r15),
            r14 = const offset_of!(TrapFrame, r14),
            r13 = const offset_of!(TrapFrame, r13),
            r12 = const offset_of!(TrapFrame, r12),
            r10 = const offset_of!(TrapFrame, r10),
            r9 = const offset_of!(TrapFrame, r9),
            r8 = const offset_of!(TrapFrame, r8),
            rbp = const offset_of!(TrapFrame, rbp),
            rsi = const offset_of!(TrapFrame, rsi),
            rdx = const offset_of!(TrapFrame, rdx),
            rbx = const offset_of!(TrapFrame, rbx),
            rax = const offset_of!(TrapFrame, rax),
            rdi = const offset_of!(TrapFrame, rdi),
            rip = const FRAME_RIP,
            rflags = const FRAME_RFLAGS,
            rsp = const FRAME_RSP,
            options(noreturn),
        )
    }
}

global_asm!(
    r#"
    .section .text.syscall_entry, "ax"
    .global syscall_entry
syscall_entry:
    /* The outermost frame of a system call: tell debuggers there is no caller to unwind
       to (RBP is zeroed below too), so gdb's `bt` ends here. */
    .cfi_startproc
    .cfi_undefined rip
    swapgs
    mov gs:[{user_rsp_scratch}], rsp
    mov rsp, gs:[{context_top}]
    /* The frame an interrupt from user mode would have: SS, RSP, RFLAGS (in R11), CS,
       RIP (in RCX), then error code 0 and the marker in place of a vector. */
    push {user_ss}
    push qword ptr gs:[{user_rsp_scratch}]
    push r11
    push {user_cs}
    push rcx
    push 0
    push {marker}
    "#,
    save_general_registers!(),
    r#"
    mov rdi, rsp
    mov rsp, gs:[{kernel_stack_top}]
    xor ebp, ebp
    /* RAX still holds the call number: each register IPC call goes straight to its own
       entry, without the general dispatch. */
    cmp rax, {send_receive_registers}
    je 2f
    cmp rax, {reply_receive_registers}
    je 3f
    call {handler}
    ud2
2:
    call {send_receive_registers_handler}
    ud2
3:
    call {reply_receive_registers_handler}
    ud2
    .cfi_endproc
    "#,
    user_ss = const USER_DATA_SELECTOR as u64,
    user_cs = const USER_CODE_SELECTOR as u64,
    marker = const SYSCALL_FRAME_MARKER,
    user_rsp_scratch = const PER_CPU_USER_RSP_SCRATCH,
    context_top = const PER_CPU_CONTEXT_TOP,
    kernel_stack_top = const PER_CPU_KERNEL_STACK_TOP,
    handler = sym crate::entry::syscall_from_user,
    send_receive_registers_handler = sym crate::entry::send_receive_registers_from_user,
    reply_receive_registers_handler = sym crate::entry::reply_receive_registers_from_user,
    send_receive_registers = const vigil_abi::syscall::Syscall::SendReceiveRegisters as u64,
    reply_receive_registers = const vigil_abi::syscall::Syscall::ReplyReceiveRegisters as u64,
);
