//! Tracing another process (kernel calls `PmGetRegisters`..`PmPoke`, 38..=41): the user
//! register set a tracer reads and writes, and the rules a written set must follow.
//!
//! The kernel hands these calls only to a process's signal manager (PM), so a tracer goes
//! through PM; tracing oneself, PM or VM is refused by construction (none of them is managed
//! by its caller).

use crate::error::Error;
use crate::layout::USER_END;

/// Words in a register set as the kernel calls copy it: [`Registers::to_words`]' order.
pub const REGISTER_WORDS: usize = 18;

/// The general registers, instruction pointer and flags of a user thread, as saved when it
/// last entered the kernel (system call, interrupt or exception).
///
/// A thread stopped in a system call entered it with `SYSCALL`, which keeps the return
/// address in RCX and the flags in R11: the kernel returns with `SYSRET` from `rip` and
/// `rflags`, so values written to `rcx` and `r11` of such a thread are not seen by it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Registers {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub rsp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rflags: u64,
}

/// The RFLAGS bits a tracer may change: the arithmetic flags and the direction flag. The
/// others (interrupts, I/O privilege, trap flag, …) are the kernel's: a written set must
/// leave them as they are (single-step is a trace flag, not a register write).
pub const WRITABLE_FLAGS: u64 = CARRY | PARITY | ADJUST | ZERO | SIGN | DIRECTION | OVERFLOW;

const CARRY: u64 = 1 << 0;
const PARITY: u64 = 1 << 2;
const ADJUST: u64 = 1 << 4;
const ZERO: u64 = 1 << 6;
const SIGN: u64 = 1 << 7;
const DIRECTION: u64 = 1 << 10;
const OVERFLOW: u64 = 1 << 11;

impl Registers {
    /// The set in the kernel calls' word order (RAX, RBX, RCX, RDX, RSI, RDI, RBP, RSP,
    /// R8..R15, RIP, RFLAGS).
    pub const fn to_words(&self) -> [u64; REGISTER_WORDS] {
        [
            self.rax,
            self.rbx,
            self.rcx,
            self.rdx,
            self.rsi,
            self.rdi,
            self.rbp,
            self.rsp,
            self.r8,
            self.r9,
            self.r10,
            self.r11,
            self.r12,
            self.r13,
            self.r14,
            self.r15,
            self.rip,
            self.rflags,
        ]
    }

    /// The inverse of [`Registers::to_words`].
    pub const fn from_words(words: &[u64; REGISTER_WORDS]) -> Registers {
        Registers {
            rax: words[0],
            rbx: words[1],
            rcx: words[2],
            rdx: words[3],
            rsi: words[4],
            rdi: words[5],
            rbp: words[6],
            rsp: words[7],
            r8: words[8],
            r9: words[9],
            r10: words[10],
            r11: words[11],
            r12: words[12],
            r13: words[13],
            r14: words[14],
            r15: words[15],
            rip: words[16],
            rflags: words[17],
        }
    }

    /// Checks a set a tracer wants to write over a thread whose flags are now `current`:
    /// `rip` must be a user address (below `USER_END`, so always canonical: a kernel or
    /// non-canonical return address is refused, never returned to), and `rflags` may differ
    /// from `current` only in [`WRITABLE_FLAGS`]. `InvalidArgument` otherwise.
    pub const fn check_write(&self, current_rflags: u64) -> Result<(), Error> {
        if self.rip >= USER_END {
            return Err(Error::InvalidArgument);
        }
        if (self.rflags ^ current_rflags) & !WRITABLE_FLAGS != 0 {
            return Err(Error::InvalidArgument);
        }
        Ok(())
    }
}

/// Trace flags of a thread (`PmTraceFlags`, kernel call 42).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceFlags(u64);

impl TraceFlags {
    pub const NONE: TraceFlags = TraceFlags(0);
    /// Stop at every system call's entry (before it runs, arguments in the registers) and
    /// exit (after it finished, result in RAX).
    pub const SYSCALLS: TraceFlags = TraceFlags(1);
    /// Stop after the next instruction the thread runs in user mode (one shot). A
    /// `SYSCALL` instruction is stepped over as a whole: the stop comes when the call has
    /// finished, at the instruction after it (the kernel never lets a thread enter it with
    /// the trap flag set).
    pub const STEP: TraceFlags = TraceFlags(2);

    /// Unknown bits are `InvalidArgument`.
    pub const fn new(bits: u64) -> Result<TraceFlags, Error> {
        if bits & !3 != 0 {
            return Err(Error::InvalidArgument);
        }
        Ok(TraceFlags(bits))
    }

    pub const fn bits(self) -> u64 {
        self.0
    }

    pub const fn syscalls(self) -> bool {
        self.0 & Self::SYSCALLS.0 != 0
    }

    pub const fn step(self) -> bool {
        self.0 & Self::STEP.0 != 0
    }
}

impl crate::syscall::Argument for TraceFlags {
    const REGISTERS: usize = 1;
    #[inline(always)]
    fn decode(registers: &[u64]) -> Result<Self, Error> {
        TraceFlags::new(registers[0])
    }
    #[inline(always)]
    fn encode(&self, registers: &mut [u64]) {
        registers[0] = self.0;
    }
}

/// `PmTraceFlags`' result bit beside the previous flags: the thread is held at a trace
/// stop right now. PM asks the kernel instead of trusting its own record, because a stop
/// handed straight to the tracer (`TraceResumeWait`) never reaches PM.
pub const HELD_AT_STOP: u64 = 1 << 8;

/// What `TraceResumeWait` (system call 26) does before it waits: resume the tracee's thread
/// held at a trace stop with these flags, or only wait (the tracee runs already).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeMode {
    Resume(TraceFlags),
    WaitOnly,
}

impl ResumeMode {
    /// The raw value of `WaitOnly` (every other value is `TraceFlags`' bits).
    pub const WAIT_ONLY_BITS: u64 = 0x100;

    /// `WAIT_ONLY_BITS` or trace-flag bits; anything else is `InvalidArgument`.
    pub const fn new(bits: u64) -> Result<ResumeMode, Error> {
        if bits == Self::WAIT_ONLY_BITS {
            return Ok(ResumeMode::WaitOnly);
        }
        match TraceFlags::new(bits) {
            Ok(flags) => Ok(ResumeMode::Resume(flags)),
            Err(error) => Err(error),
        }
    }

    pub const fn bits(self) -> u64 {
        match self {
            ResumeMode::Resume(flags) => flags.bits(),
            ResumeMode::WaitOnly => Self::WAIT_ONLY_BITS,
        }
    }
}

impl crate::syscall::Argument for ResumeMode {
    const REGISTERS: usize = 1;
    #[inline(always)]
    fn decode(registers: &[u64]) -> Result<Self, Error> {
        ResumeMode::new(registers[0])
    }
    #[inline(always)]
    fn encode(&self, registers: &mut [u64]) {
        registers[0] = self.bits();
    }
}

/// The direct trace path (`TraceResumeWait`, system call 26): the tracer PM registered
/// with the kernel (`PmSetTracer`, kernel call 45) resumes its stopped tracee and waits for
/// the next trace stop, which the kernel hands it without PM. Everything else is
/// [`direct::NOT_AT_STOP`] (nothing done) or [`direct::ASK_MANAGER`] (resumed, then the
/// tracee ended or the tracer was signalled): the tracer asks PM, whose events and rules are
/// unchanged.
pub mod direct {
    /// Words of the stop record the kernel writes to the caller's `out`.
    pub const RECORD_WORDS: usize = 4;
    /// Record word: the stop's event kind (`request::event::SYSCALL_ENTRY`, ..._EXIT, STEP).
    pub const KIND: usize = 0;
    /// Record word: the stopped thread's endpoint.
    pub const THREAD: usize = 1;
    /// Record word: its RIP.
    pub const RIP: usize = 2;
    /// Record word: RAX (the call's number at entry, its result at exit).
    pub const VALUE: usize = 3;

    /// Result: the stop record is in `out`.
    pub const STOPPED: u64 = 0;
    /// Result: the tracee was resumed (or was running), but what came next is not a plain
    /// trace stop (it ended; the caller was signalled): PM's WAIT for this pid has it.
    pub const ASK_MANAGER: u64 = 1;
    /// Result at once, nothing done: the tracee is not where the mode expects it (stopped
    /// by PM after ATTACH or SIGSTOP, held for an exception, not held at a trace stop): PM's
    /// RESUME_WAIT (or WAIT, for `WaitOnly`) is the way.
    pub const NOT_AT_STOP: u64 = 2;
}

/// Trace stops: a thread held for its manager (`HeldForManager`) by tracing rather than a
/// CPU exception. Its state's `vector` names the stop, and the manager's event
/// (`PmNextEvent`) says which kind.
pub mod stop {
    use crate::signal::event;

    /// Stopped at a system call's entry: the call has not run; RAX holds its number and
    /// RDI, RSI, RDX, R10, R8, R9 its arguments (a tracer may change them).
    pub const SYSCALL_ENTRY_VECTOR: u64 = 0x200;
    /// Stopped at a system call's exit: RAX holds its result.
    pub const SYSCALL_EXIT_VECTOR: u64 = 0x201;
    /// Stopped after one instruction (the kernel turns the debug trap, #DB, of a thread it
    /// was stepping into this stop; any other #DB is an exception).
    pub const STEP_VECTOR: u64 = 0x202;

    /// The event kind of a hold at `vector` (for a vector that is not a trace stop,
    /// `event::EXCEPTION`).
    pub const fn event_kind(vector: u64) -> u64 {
        match vector {
            SYSCALL_ENTRY_VECTOR => event::SYSCALL_ENTRY,
            SYSCALL_EXIT_VECTOR => event::SYSCALL_EXIT,
            STEP_VECTOR => event::STEP,
            _ => event::EXCEPTION,
        }
    }

    /// What a snapshot shows for a thread held at `vector`.
    pub const fn describe(vector: u64) -> Option<&'static str> {
        match vector {
            SYSCALL_ENTRY_VECTOR => Some("stopped by tracer at system call entry"),
            SYSCALL_EXIT_VECTOR => Some("stopped by tracer at system call exit"),
            STEP_VECTOR => Some("stopped by tracer after a single step"),
            _ => None,
        }
    }
}

/// PM's tracing request (`vigil_rt::trace`): one `SendReceive` of kind [`request::TRACE`]
/// with the verb in `payload[0]`, answered with `pm::request::REPLY` (`payload[0]` = 0 or
/// an error code, results after it). The tracer is the caller; every verb but `ATTACH` and
/// `SPAWN` acts only on a process the caller traces (`PermissionDenied` otherwise).
pub mod request {
    /// The request kind.
    pub const TRACE: u32 = 0x0300_0010;

    /// `[ATTACH, pid, options]` → `[0]`: the caller traces `pid`, which stops (an
    /// `event::ATTACHED` is queued). `PermissionDenied` for PM, VM or a process PM cannot
    /// manage, `SelfTarget` for the caller itself, `Exists` if someone traces it already,
    /// `NotFound` for no such process. A system process is adopted (PM becomes its signal
    /// manager) first.
    pub const ATTACH: u64 = 1;
    /// `[DETACH, pid]` → `[0]`: no more stops; the process runs on.
    pub const DETACH: u64 = 2;
    /// `[CONTINUE, pid, mode]` → `[0]`: the stopped tracee runs until its next stop:
    /// `mode::RUN` (none but exit), `mode::SYSCALLS` (each call's entry and exit) or
    /// `mode::STEP` (one instruction).
    pub const CONTINUE: u64 = 3;
    /// `[WAIT, pid or 0, flags]` → `[0, pid, thread, kind, rip, value]`: the next event of a
    /// tracee (`event`), deferred until there is one; with `flags` = `NO_HANG`,
    /// `[0, 0, …]` if there is none. `NotFound` if the caller traces nothing (that pid).
    pub const WAIT: u64 = 4;
    /// `[GET_REGISTERS, thread, grant]` → `[0]`: the thread's registers
    /// (`Registers::to_words`, 144 bytes) into the caller's write grant.
    pub const GET_REGISTERS: u64 = 5;
    /// `[SET_REGISTERS, thread, grant]` → `[0]`: the registers from the caller's read grant
    /// (`Registers::check_write` applies).
    pub const SET_REGISTERS: u64 = 6;
    /// `[PEEK, pid, address, grant, len]` → `[0]`: `len` (≤ `MAX_PEEK_BYTES`) bytes of the
    /// tracee's memory into the caller's write grant.
    pub const PEEK: u64 = 7;
    /// `[POKE, pid, address, grant, len]` → `[0]`: `len` bytes from the caller's read grant
    /// into the tracee's memory.
    pub const POKE: u64 = 8;
    /// `[SPAWN, grant, len, options]` → `[0, pid]`: PM's SPAWN (the text in a read grant),
    /// traced by the caller from its first instruction (stopped, `event::ATTACHED`).
    pub const SPAWN: u64 = 9;
    /// `[RESUME_WAIT, pid, mode]` → `WAIT`'s answer for `pid`: `CONTINUE` and `WAIT` in one
    /// round trip (a tracer's loop: `strace` does PTRACE_SYSCALL then waitpid).
    pub const RESUME_WAIT: u64 = 10;

    /// `WAIT`'s flag: answer at once.
    pub const NO_HANG: u64 = 1;
    /// Most bytes one PEEK or POKE moves.
    pub const MAX_PEEK_BYTES: u64 = 4096;

    /// `ATTACH`/`SPAWN` options.
    pub mod options {
        /// Children the tracee spawns are traced too (stopped, with their own
        /// `event::ATTACHED`).
        pub const FOLLOW_CHILDREN: u64 = 1;
    }

    /// `CONTINUE` modes.
    pub mod mode {
        pub const RUN: u64 = 0;
        pub const SYSCALLS: u64 = 1;
        pub const STEP: u64 = 2;
    }

    /// `WAIT` event kinds (`payload[3]`). The stops are `signal::event`'s kinds.
    pub mod event {
        /// Stopped by ATTACH or SPAWN (value 0) or as a followed child (value = its
        /// parent's pid).
        pub const ATTACHED: u64 = 10;
        /// At a system call's entry: value = the call's number.
        pub const SYSCALL_ENTRY: u64 = crate::signal::event::SYSCALL_ENTRY;
        /// At a system call's exit: value = its result (RAX).
        pub const SYSCALL_EXIT: u64 = crate::signal::event::SYSCALL_EXIT;
        /// After one instruction.
        pub const STEP: u64 = crate::signal::event::STEP;
        /// The tracee ended: value = its exit status. It is no longer traced.
        pub const EXITED: u64 = 11;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Registers {
        let mut words = [0u64; REGISTER_WORDS];
        for (index, word) in words.iter_mut().enumerate() {
            *word = 0x1000 + index as u64;
        }
        Registers::from_words(&words)
    }

    #[test]
    fn words_round_trip_in_the_documented_order() {
        let registers = sample();
        assert_eq!(Registers::from_words(&registers.to_words()), registers);
        assert_eq!(registers.rax, 0x1000);
        assert_eq!(registers.rsp, 0x1007);
        assert_eq!(registers.r8, 0x1008);
        assert_eq!(registers.rip, 0x1010);
        assert_eq!(registers.rflags, 0x1011);
    }

    #[test]
    fn a_kernel_or_noncanonical_rip_is_refused() {
        let mut registers = sample();
        registers.rflags = 0x202;
        registers.rip = 0x40_0000;
        assert_eq!(registers.check_write(0x202), Ok(()));
        registers.rip = USER_END;
        assert_eq!(registers.check_write(0x202), Err(Error::InvalidArgument));
        registers.rip = 0x8000_0000_0000_0000;
        assert_eq!(registers.check_write(0x202), Err(Error::InvalidArgument));
        registers.rip = 0xffff_ffff_8010_0000;
        assert_eq!(registers.check_write(0x202), Err(Error::InvalidArgument));
    }

    #[test]
    fn only_arithmetic_and_direction_flags_may_change() {
        let mut registers = sample();
        registers.rip = 0x40_0000;
        let current = 0x202; // IF and the reserved bit 1
        registers.rflags = current | CARRY | ZERO | SIGN | OVERFLOW | DIRECTION;
        assert_eq!(registers.check_write(current), Ok(()));
        for kernel_bit in [
            1 << 8,  /* TF */
            1 << 9,  /* IF */
            3 << 12, /* IOPL */
            1 << 17, /* VM */
        ] {
            registers.rflags = current ^ kernel_bit;
            assert_eq!(
                registers.check_write(current),
                Err(Error::InvalidArgument),
                "flag {kernel_bit:#x}"
            );
        }
    }
}
