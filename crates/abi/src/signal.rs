//! Signals: their numbers and default actions, the exit status of a process a signal
//! ended, the process events the kernel reports to a signal manager, and the signal frame
//! the kernel pushes on a user stack (seed 002's signal managers; MINIX's model).
//!
//! The process manager holds all signal state (pending set, mask, action per signal) and
//! decides; the kernel only delivers: `PmSignal` interrupts the target's waits and, with a
//! handler entry, diverts one thread into it at its next return to user mode, with a
//! [`frame`] on its stack that `SignalReturn` (system call 24) restores.
//!
//! One shortcut keeps the manager's semantics: the manager mirrors into the kernel, per
//! process, the signals that process catches and has not masked (`PmSignalDirect`, a
//! [`CatchableSet`] and the handler entry), and a process signalling itself with one of
//! them (`SignalRaise`, system call 25) gets the frame pushed by the kernel at once, with
//! no message to the manager. Any other signal to oneself is `NotReady` there, and the
//! runtime asks the manager as before.

use crate::error::Error;
use crate::syscall::Argument;

/// A signal number, 1 ..= `MAX`: anything else is `InvalidArgument` at the boundary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Signal(u8);

impl Signal {
    pub const HUP: Signal = Signal(1);
    pub const INT: Signal = Signal(2);
    pub const QUIT: Signal = Signal(3);
    pub const ILL: Signal = Signal(4);
    pub const TRAP: Signal = Signal(5);
    pub const ABRT: Signal = Signal(6);
    pub const BUS: Signal = Signal(7);
    pub const FPE: Signal = Signal(8);
    pub const KILL: Signal = Signal(9);
    pub const USR1: Signal = Signal(10);
    pub const SEGV: Signal = Signal(11);
    pub const USR2: Signal = Signal(12);
    pub const PIPE: Signal = Signal(13);
    pub const ALRM: Signal = Signal(14);
    pub const TERM: Signal = Signal(15);
    pub const CHLD: Signal = Signal(17);
    pub const CONT: Signal = Signal(18);
    pub const STOP: Signal = Signal(19);
    pub const TSTP: Signal = Signal(20);

    /// The highest signal number (a signal set is one `u64`, bit `n` for signal `n`).
    pub const MAX: u64 = 63;

    /// Signal `number`: `InvalidArgument` for 0 or above `MAX`.
    pub const fn new(number: u64) -> Result<Signal, Error> {
        if number == 0 || number > Self::MAX {
            return Err(Error::InvalidArgument);
        }
        Ok(Signal(number as u8))
    }

    pub const fn number(self) -> u64 {
        self.0 as u64
    }

    /// Its bit in a signal set.
    pub const fn bit(self) -> u64 {
        1 << self.0
    }

    /// Whether a handler, an ignore or a mask may change what it does (not KILL or STOP).
    pub const fn catchable(self) -> bool {
        self.0 != Self::KILL.0 && self.0 != Self::STOP.0
    }

    /// The conventional name ("SIGSEGV"), or "SIG?" for a number without one.
    pub const fn name(self) -> &'static str {
        match self.0 {
            1 => "SIGHUP",
            2 => "SIGINT",
            3 => "SIGQUIT",
            4 => "SIGILL",
            5 => "SIGTRAP",
            6 => "SIGABRT",
            7 => "SIGBUS",
            8 => "SIGFPE",
            9 => "SIGKILL",
            10 => "SIGUSR1",
            11 => "SIGSEGV",
            12 => "SIGUSR2",
            13 => "SIGPIPE",
            14 => "SIGALRM",
            15 => "SIGTERM",
            17 => "SIGCHLD",
            18 => "SIGCONT",
            19 => "SIGSTOP",
            20 => "SIGTSTP",
            _ => "SIG?",
        }
    }

    /// What happens when the signal arrives and no handler or ignore is set.
    pub const fn default_action(self) -> DefaultAction {
        match self.0 {
            3..=8 | 11 => DefaultAction::TerminateWithReport,
            17 => DefaultAction::Ignore,
            18 => DefaultAction::Continue,
            19 | 20 => DefaultAction::Stop,
            _ => DefaultAction::Terminate,
        }
    }

    /// The signal a CPU exception `vector` becomes for its process (#DE → SIGFPE, #UD →
    /// SIGILL, #PF/#GP → SIGSEGV, …).
    pub const fn for_exception(vector: u64) -> Signal {
        // (see `exception_mnemonic` for the names)
        match vector {
            0 | 16 | 19 => Signal::FPE,
            1 | 3 => Signal::TRAP,
            6 => Signal::ILL,
            17 => Signal::BUS,
            _ => Signal::SEGV,
        }
    }
}

/// The x86 mnemonic of CPU exception `vector` (`#PF`), as the kernel's reports name it.
pub const fn exception_mnemonic(vector: u64) -> &'static str {
    match vector {
        0 => "#DE",
        1 => "#DB",
        3 => "#BP",
        4 => "#OF",
        5 => "#BR",
        6 => "#UD",
        7 => "#NM",
        8 => "#DF",
        10 => "#TS",
        11 => "#NP",
        12 => "#SS",
        13 => "#GP",
        14 => "#PF",
        16 => "#MF",
        17 => "#AC",
        18 => "#MC",
        19 => "#XM",
        20 => "#VE",
        21 => "#CP",
        _ => "#??",
    }
}

impl Argument for Signal {
    const REGISTERS: usize = 1;
    #[inline(always)]
    fn decode(registers: &[u64]) -> Result<Self, Error> {
        Signal::new(registers[0])
    }
    #[inline(always)]
    fn encode(&self, registers: &mut [u64]) {
        registers[0] = self.number();
    }
}

/// A set of signals that may be caught (bit `n` for signal `n`): neither bit 0 (no signal)
/// nor KILL or STOP, which no handler ever runs for. `PmSignalDirect`'s set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct CatchableSet(u64);

impl CatchableSet {
    pub const EMPTY: CatchableSet = CatchableSet(0);
    /// Bits no catchable set may have.
    const NEVER: u64 = 1 | Signal::KILL.bit() | Signal::STOP.bit();

    /// Checks raw bits: `InvalidArgument` for bit 0, KILL or STOP.
    pub const fn new(bits: u64) -> Result<CatchableSet, Error> {
        if bits & Self::NEVER != 0 {
            return Err(Error::InvalidArgument);
        }
        Ok(CatchableSet(bits))
    }

    pub const fn bits(self) -> u64 {
        self.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn contains(self, signal: Signal) -> bool {
        self.0 & signal.bit() != 0
    }
}

impl Argument for CatchableSet {
    const REGISTERS: usize = 1;
    #[inline(always)]
    fn decode(registers: &[u64]) -> Result<Self, Error> {
        CatchableSet::new(registers[0])
    }
    #[inline(always)]
    fn encode(&self, registers: &mut [u64]) {
        registers[0] = self.0;
    }
}

/// A signal's default action (POSIX's; "terminate with report" is the core dump's place:
/// the report is the one the kernel printed when the exception happened).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    Terminate,
    TerminateWithReport,
    Ignore,
    Stop,
    Continue,
}

/// Exit statuses of processes a signal ended: `SIGNALED | number`, plus `REPORTED` when the
/// default action was "terminate with report" (the crash report is on the console and the
/// monitor). A process's own `exit(n)` status is `n`; statuses with `SIGNALED` set are
/// never ones a program passes by convention (they are above 2^32).
pub mod status {
    use super::Signal;

    /// Set in the status of a process a signal ended.
    pub const SIGNALED: u64 = 1 << 32;
    /// Set with `SIGNALED` when the kernel's crash report stands for a core dump.
    pub const REPORTED: u64 = 1 << 33;

    /// The status of a process `signal` ended.
    pub const fn killed_by(signal: Signal, reported: bool) -> u64 {
        SIGNALED | signal.number() | if reported { REPORTED } else { 0 }
    }

    /// The signal that ended a process with `status`, if one did.
    pub const fn signal_of(status: u64) -> Option<Signal> {
        if status & SIGNALED == 0 || status & !(SIGNALED | REPORTED | 0xff) != 0 {
            return None;
        }
        match Signal::new(status & 0xff) {
            Ok(signal) => Some(signal),
            Err(_) => None,
        }
    }
}

/// The kernel's message to a signal manager: events about processes it manages wait to be
/// collected with `PmNextEvent` (notices coalesce: one may stand for several events).
pub const KIND_PROCESS_EVENT: u32 = 0xffff_0005;

/// What `PmNextEvent` writes: `[pid, thread, kind, vector, error_code, fault_address, rip,
/// 0]` (the `event` word indices).
pub type ProcessEvent = [u64; 8];

/// Most addresses a backtrace of a held thread has (`KernelCall::ServiceBacktrace`): the
/// faulting RIP, then the return addresses of the user frame-pointer chain.
pub const BACKTRACE_FRAMES: usize = 16;

/// What `ServiceBacktrace` writes: the addresses, pc first; its result says how many.
pub type Backtrace = [u64; BACKTRACE_FRAMES];

/// A system server's crash as the kernel reports it to RS (`ServiceSystemCrash`) before it
/// ends the server (system servers have no signal manager: RS cannot restart them, but
/// keeps the failure in its history): the [`ProcessEvent`] words, then the word indices
/// of [`system_crash`].
pub type SystemCrash = [u64; system_crash::WORDS];

/// Word indices of a [`SystemCrash`] after its event words.
pub mod system_crash {
    /// `[EVENT, EVENT + 8)`: the crash as a `ProcessEvent` (kind `event::EXCEPTION`).
    pub const EVENT: usize = 0;
    /// `[NAME, NAME + 4)`: the process name, little-endian bytes, zero-padded (RS names its
    /// entry by it: the server is gone when RS reads this, perhaps before RS ever saw it).
    pub const NAME: usize = 8;
    pub const NAME_WORDS: usize = 4;
    /// How many bytes of the name are valid (at most 32).
    pub const NAME_BYTES: usize = 12;
    /// How many of the backtrace words are valid (at most `BACKTRACE_FRAMES`).
    pub const FRAMES: usize = 13;
    /// `[BACKTRACE, WORDS)`: the faulting RIP, then the return addresses.
    pub const BACKTRACE: usize = 14;
    pub const WORDS: usize = BACKTRACE + super::BACKTRACE_FRAMES;

    /// The name in `crash`'s name words, into `out`: its bytes (checked: at most 32, UTF-8),
    /// or None.
    pub fn name<'a>(crash: &[u64; WORDS], out: &'a mut [u8; 8 * NAME_WORDS]) -> Option<&'a str> {
        let len = usize::try_from(crash[NAME_BYTES])
            .ok()
            .filter(|&len| len <= out.len())?;
        for (index, byte) in out.iter_mut().enumerate() {
            *byte = (crash[NAME + index / 8] >> ((index % 8) * 8)) as u8;
        }
        core::str::from_utf8(&out[..len]).ok()
    }

    /// `name` (cut at 32 bytes) as the name words and byte count of a crash record.
    pub fn pack_name(name: &[u8], crash: &mut [u64; WORDS]) {
        let len = name.len().min(8 * NAME_WORDS);
        for (index, byte) in name[..len].iter().enumerate() {
            crash[NAME + index / 8] |= u64::from(*byte) << ((index % 8) * 8);
        }
        crash[NAME_BYTES] = len as u64;
    }
}

/// Word indices of a [`ProcessEvent`], and its kinds.
pub mod event {
    pub const PID: usize = 0;
    pub const THREAD: usize = 1;
    pub const KIND: usize = 2;
    pub const VECTOR: usize = 3;
    pub const ERROR_CODE: usize = 4;
    pub const FAULT_ADDRESS: usize = 5;
    pub const RIP: usize = 6;
    /// RAX when the thread stopped: at a system call's entry its number, at its exit its
    /// result (so a tracer needs no register read for either).
    pub const VALUE: usize = 7;
    /// A thread took a CPU exception and is held (`HeldForManager`): resume it with
    /// `PmResumeThread` or kill its process with `PmKill`.
    pub const EXCEPTION: u64 = 1;
    /// A traced thread stopped at a system call's entry (`ptrace::stop`).
    pub const SYSCALL_ENTRY: u64 = 2;
    /// A traced thread stopped at a system call's exit.
    pub const SYSCALL_EXIT: u64 = 3;
    /// A traced thread stopped after one instruction (`PmTraceFlags` STEP).
    pub const STEP: u64 = 4;
}

/// The signal frame the kernel pushes below the interrupted stack pointer (past the
/// 128-byte red zone, 16-byte aligned) before it enters the handler with RDI = signal,
/// RSI = the frame's address and RSP = that address − 8 (as after a call). `SignalReturn`
/// reads it back as hostile input: the magic must match, RIP and RSP must be user
/// addresses, only the arithmetic flags and DF of RFLAGS are taken, and MXCSR must have no
/// reserved bit; anything else is `InvalidArgument` and nothing changes.
pub mod frame {
    /// `[u64; WORDS]`: 672 bytes.
    pub const WORDS: usize = 84;
    pub const MAGIC: usize = 0;
    pub const SIGNAL: usize = 1;
    /// R15, R14, R13, R12, R11, R10, R9, R8, RBP, RDI, RSI, RDX, RCX, RBX, RAX, in order.
    pub const GENERAL: usize = 2;
    pub const GENERAL_COUNT: usize = 15;
    pub const RIP: usize = 17;
    pub const RFLAGS: usize = 18;
    pub const RSP: usize = 19;
    /// The 512-byte FXSAVE image (x87, MMX, SSE) from word 20 (byte 160, 16-aligned).
    pub const FPU: usize = 20;
    pub const FPU_WORDS: usize = 64;
    /// "VSIGFRM1".
    pub const MAGIC_VALUE: u64 = 0x314d_5246_4749_5356;
    /// RFLAGS bits a frame may change: CF PF AF ZF SF DF OF.
    pub const USER_FLAGS: u64 = 0x0cd5;
    /// Bytes below the interrupted RSP the kernel leaves alone (the System V red zone).
    pub const RED_ZONE: u64 = 128;
    const _: () = assert!(FPU + FPU_WORDS == WORDS);
    const _: () = assert!(GENERAL + GENERAL_COUNT == RIP);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catchable_set_has_no_kill_stop_or_zero() {
        assert_eq!(CatchableSet::new(0), Ok(CatchableSet::EMPTY));
        let usr = CatchableSet::new(Signal::USR1.bit() | Signal::USR2.bit()).unwrap();
        assert!(usr.contains(Signal::USR1) && !usr.contains(Signal::SEGV));
        assert_eq!(CatchableSet::new(1), Err(Error::InvalidArgument));
        assert_eq!(
            CatchableSet::new(Signal::KILL.bit()),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            CatchableSet::new(Signal::STOP.bit() | Signal::USR1.bit()),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            CatchableSet::new(1 << 63).map(CatchableSet::bits),
            Ok(1 << 63)
        );
    }

    #[test]
    fn numbers_outside_one_to_sixty_three_are_refused() {
        assert_eq!(Signal::new(0), Err(Error::InvalidArgument));
        assert_eq!(Signal::new(64), Err(Error::InvalidArgument));
        assert_eq!(Signal::new(u64::MAX), Err(Error::InvalidArgument));
        assert_eq!(Signal::new(11), Ok(Signal::SEGV));
        assert!(!Signal::KILL.catchable() && !Signal::STOP.catchable());
        assert!(Signal::USR1.catchable());
    }

    #[test]
    fn statuses_name_the_signal() {
        let status = status::killed_by(Signal::SEGV, true);
        assert_eq!(status::signal_of(status), Some(Signal::SEGV));
        assert_eq!(status::signal_of(137), None);
        assert_eq!(status::signal_of(0), None);
        assert_eq!(status::signal_of(status::SIGNALED), None);
        assert_eq!(
            status::signal_of(status::killed_by(Signal::TERM, false)),
            Some(Signal::TERM)
        );
    }

    #[test]
    fn system_crash_names_round_trip_and_forged_lengths_are_refused() {
        let mut crash = [0u64; system_crash::WORDS];
        system_crash::pack_name(b"ds", &mut crash);
        let mut out = [0u8; 32];
        assert_eq!(system_crash::name(&crash, &mut out), Some("ds"));
        crash[system_crash::NAME_BYTES] = 33;
        assert_eq!(system_crash::name(&crash, &mut out), None);
        crash[system_crash::NAME_BYTES] = u64::MAX;
        assert_eq!(system_crash::name(&crash, &mut out), None);
        let mut bad = [0u64; system_crash::WORDS];
        bad[system_crash::NAME] = 0xff;
        bad[system_crash::NAME_BYTES] = 1;
        assert_eq!(system_crash::name(&bad, &mut out), None);
        let mut long = [0u64; system_crash::WORDS];
        system_crash::pack_name(&[b'a'; 40], &mut long);
        assert_eq!(long[system_crash::NAME_BYTES], 32);
        assert_eq!(system_crash::WORDS, 30);
    }

    #[test]
    fn exceptions_become_their_signals() {
        assert_eq!(Signal::for_exception(0), Signal::FPE);
        assert_eq!(Signal::for_exception(6), Signal::ILL);
        assert_eq!(Signal::for_exception(13), Signal::SEGV);
        assert_eq!(Signal::for_exception(14), Signal::SEGV);
        assert_eq!(
            Signal::SEGV.default_action(),
            DefaultAction::TerminateWithReport
        );
        assert_eq!(Signal::CHLD.default_action(), DefaultAction::Ignore);
        assert_eq!(Signal::TSTP.default_action(), DefaultAction::Stop);
    }
}
