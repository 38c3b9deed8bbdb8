//! Per-thread x87/MMX/SSE state: turning the FPU and SSE on for user code, and saving and
//! restoring a thread's registers with FXSAVE/FXRSTOR.
//!
//! The kernel itself never touches these registers (it is built for a soft-float target),
//! so they hold user state only. They are switched lazily (`Kernel::switch_fpu`,
//! `Kernel::fpu_first_use`): a thread whose state is not the loaded one runs with CR0.TS
//! set, so its first x87/MMX/SSE instruction raises #NM, and only then is the loaded state
//! saved and the thread's own restored. Threads that never use these registers never pay
//! for them. AVX and later (XSAVE state) stay off: CR4.OSXSAVE is clear, so those
//! instructions fault with #UD and the 512-byte FXSAVE image is all of a thread's extra
//! state.

use core::arch::asm;

use super::cpu;

/// CR0 bits: MP (monitor coprocessor), EM (emulation), TS (task switched), NE (native x87
/// errors: #MF instead of the legacy external interrupt).
const CR0_MP: u64 = 1 << 1;
const CR0_EM: u64 = 1 << 2;
const CR0_TS: u64 = 1 << 3;
const CR0_NE: u64 = 1 << 5;
/// CR4 bits: OSFXSR (FXSAVE/FXRSTOR and SSE), OSXMMEXCPT (SIMD exceptions as #XM).
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;

/// A thread's FXSAVE image: x87 control/status/tags, ST0–7/MM0–7, MXCSR, XMM0–15.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
pub struct FpuState([u8; 512]);

impl FpuState {
    /// The state a new thread starts with, as after FNINIT with SSE's defaults: x87 control
    /// word 0x37f (all exceptions masked, 64-bit precision), every register empty and zero,
    /// MXCSR 0x1f80 (all SIMD exceptions masked, round to nearest).
    pub const INITIAL: FpuState = {
        let mut image = [0u8; 512];
        image[0] = 0x7f;
        image[1] = 0x03;
        image[24] = 0x80;
        image[25] = 0x1f;
        FpuState(image)
    };
}

impl FpuState {
    /// The image as 64 words (for a signal frame).
    pub fn words(&self) -> [u64; 64] {
        let mut words = [0u64; 64];
        for (word, bytes) in words.iter_mut().zip(self.0.chunks_exact(8)) {
            let mut eight = [0u8; 8];
            eight.copy_from_slice(bytes);
            *word = u64::from_le_bytes(eight);
        }
        words
    }

    /// An image from user memory (a signal frame), if FXRSTOR can load it without
    /// faulting: MXCSR (bytes 24..28) has no bit outside `MXCSR_VALID` set. Everything else
    /// in the image is data the instruction takes as it is.
    pub fn from_words(words: [u64; 64]) -> Option<FpuState> {
        let mut image = [0u8; 512];
        for (bytes, word) in image.chunks_exact_mut(8).zip(words) {
            bytes.copy_from_slice(&word.to_le_bytes());
        }
        let mxcsr = u32::from_le_bytes([image[24], image[25], image[26], image[27]]);
        (mxcsr & !MXCSR_VALID == 0).then_some(FpuState(image))
    }
}

/// MXCSR bits every x86-64 CPU accepts (DAZ, bit 6, is left out: not all have it).
const MXCSR_VALID: u32 = 0xffbf;

/// Turns on x87 and SSE for user code with native error reporting.
pub fn enable() {
    let cr0 = (cpu::read_cr0() & !(CR0_EM | CR0_TS)) | CR0_MP | CR0_NE;
    // SAFETY: clearing EM/TS and setting MP/NE only changes how x87/SSE instructions
    // behave; the kernel executes none of them.
    unsafe { asm!("mov cr0, {}", in(reg) cr0, options(nostack, preserves_flags)) };
    // SAFETY: FXSR and SSE are architectural on x86-64, so both bits are supported.
    unsafe { cpu::set_cr4_bits(CR4_OSFXSR | CR4_OSXMMEXCPT) };
    restore(&FpuState::INITIAL);
}

/// The #NM vector: an x87/MMX/SSE instruction while CR0.TS is set.
pub const DEVICE_NOT_AVAILABLE_VECTOR: u64 = 7;

/// Sets CR0.TS: the next x87/MMX/SSE instruction raises #NM.
#[inline]
pub fn trap_next_use() {
    let cr0 = cpu::read_cr0() | CR0_TS;
    // SAFETY: TS only makes x87/MMX/SSE instructions fault with #NM, which the kernel
    // handles (`Kernel::fpu_first_use`); the kernel executes none itself.
    unsafe { asm!("mov cr0, {}", in(reg) cr0, options(nostack, preserves_flags)) };
}

/// Clears CR0.TS: x87/MMX/SSE instructions run.
#[inline]
pub fn allow_use() {
    // SAFETY: CLTS only clears CR0.TS.
    unsafe { asm!("clts", options(nomem, nostack, preserves_flags)) };
}

/// Saves the loaded x87/MMX/SSE state into `state`.
#[inline]
pub fn save(state: &mut FpuState) {
    // SAFETY: `state` is a writable, 16-byte aligned 512-byte area (the type guarantees
    // both); FXSAVE writes exactly that and is enabled by `enable`.
    unsafe {
        asm!("fxsave64 [{}]", in(reg) state.0.as_mut_ptr(), options(nostack, preserves_flags))
    };
}

/// Loads the x87/MMX/SSE state in `state`.
#[inline]
pub fn restore(state: &FpuState) {
    // SAFETY: `state` is a 16-byte aligned 512-byte image, either `INITIAL` (valid) or
    // written by FXSAVE, whose MXCSR has no reserved bit set (user code cannot set one:
    // LDMXCSR faults first), so FXRSTOR cannot fault.
    unsafe {
        asm!("fxrstor64 [{}]", in(reg) state.0.as_ptr(), options(nostack, preserves_flags, readonly))
    };
}
