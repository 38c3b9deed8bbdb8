//! System call numbers and their register conventions.
//!
//! `syscall` with RAX = number, arguments in RDI, RSI, RDX, R10, R8, R9. The result comes
//! back in RAX: a non-negative value on success, `-(Error as i64)` on failure
//! (see `Error::from_return_value`). RCX and R11 are clobbered (SYSCALL/SYSRET use them);
//! every other register is preserved.

/// System call numbers.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syscall {
    /// (ptr, len) → len. Writes UTF-8 text (at most 4096 bytes; an invalid UTF-8 tail is
    /// cut) to the kernel console, one line per `\n`, prefixed with the caller's process
    /// name. Until a tty server exists this is how programs print.
    DebugWrite = 0,
    /// (dest, msg_ptr) → 0. Blocks until `dest` receives the message.
    Send = 1,
    /// (src or ANY, msg_ptr) → 0. Blocks until a message or notification arrives; the
    /// kernel writes it (with `source` filled in) to msg_ptr.
    Receive = 2,
    /// (dest, msg_ptr) → 0. Send, then receive the reply from `dest` into the same buffer.
    SendReceive = 3,
    /// (dest) → 0. Raises a notification at `dest`; never blocks; repeated notifications
    /// from one source coalesce until received.
    Notify = 4,
    /// (dest, msg_ptr) → 0 or NotReady. Delivers only if `dest` is already waiting for it.
    SendNonBlocking = 5,
    /// (table_ptr, count) → 0. Asynchronous sends from a table of `AsyncMessage` in the
    /// caller's memory; the kernel updates each entry's flags and result as it delivers.
    /// The table must stay valid until every entry is DONE or the thread calls SendAsync
    /// again: a thread has one table, and a new call replaces the previous one (MINIX).
    SendAsync = 6,
    /// (entry, arg) → endpoint of the new thread in the caller's process. The thread starts
    /// at `entry` with RDI = arg, RSI = its endpoint, on a fresh stack (see `layout`).
    ThreadCreate = 7,
    /// (code) → never returns. Ends the calling thread; the last thread ends the process.
    ThreadExit = 8,
    /// (endpoint) → exit code. Waits for a thread of the caller's process to exit.
    ThreadJoin = 9,
    /// (status) → never returns. Ends every thread of the calling process.
    ProcessExit = 10,
    /// () → 0. Gives up the rest of the quantum.
    Yield = 11,
    /// (ns) → 0. Sleeps at least `ns` nanoseconds.
    Sleep = 12,
    /// (period_ns) → 0. Periodic notification from `Endpoint::CLOCK` to the calling thread;
    /// setting it again replaces the period; 0 cancels.
    AlarmSet = 13,
    /// (addr, expected) → 0. Blocks while the u32 at `addr` (4-byte aligned) equals
    /// `expected`; returns 0 at once if it differs. Lock-word format (see `mutex_word`):
    /// the owner's slot + 1 in the low 16 bits (0 = unlocked), `WAITERS` when contended —
    /// so the kernel knows whom the caller waits for.
    MutexWait = 14,
    /// (addr) → number woken (0 or 1). Wakes the longest waiter on `addr`.
    MutexWake = 15,
    /// (grantee, addr, len, access) → grant id. Lets `grantee`'s process (any of its
    /// threads) copy from/to this memory with the safe-copy kernel calls.
    GrantCreate = 16,
    /// (grant id) → 0.
    GrantRevoke = 17,
    /// () → the caller's endpoint.
    SelfEndpoint = 18,
    /// () → nanoseconds since boot.
    ClockNs = 19,
    /// (name_ptr, name_len) → endpoint of the main thread of the boot process with that name
    /// (names are at most 32 bytes; NotFound otherwise).
    Lookup = 20,
    /// (kernel call number, args…) → depends on the call. Privileged: each process has a
    /// mask of the kernel calls it may make; others fail with PermissionDenied.
    KernelCall = 21,
}

impl Syscall {
    pub const COUNT: u64 = 22;

    pub const fn from_number(number: u64) -> Option<Syscall> {
        Some(match number {
            0 => Syscall::DebugWrite,
            1 => Syscall::Send,
            2 => Syscall::Receive,
            3 => Syscall::SendReceive,
            4 => Syscall::Notify,
            5 => Syscall::SendNonBlocking,
            6 => Syscall::SendAsync,
            7 => Syscall::ThreadCreate,
            8 => Syscall::ThreadExit,
            9 => Syscall::ThreadJoin,
            10 => Syscall::ProcessExit,
            11 => Syscall::Yield,
            12 => Syscall::Sleep,
            13 => Syscall::AlarmSet,
            14 => Syscall::MutexWait,
            15 => Syscall::MutexWake,
            16 => Syscall::GrantCreate,
            17 => Syscall::GrantRevoke,
            18 => Syscall::SelfEndpoint,
            19 => Syscall::ClockNs,
            20 => Syscall::Lookup,
            21 => Syscall::KernelCall,
            _ => return None,
        })
    }
}

/// Kernel call numbers (RDI of `Syscall::KernelCall`; its arguments follow in RSI, RDX,
/// R10, R8, R9). Bit `n` of a process's kernel-call mask allows call `n`. An unknown number
/// fails with NoSuchCall before the mask is consulted.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelCall {
    /// (granter, grant, offset, local_addr, len) → 0. Copies from a grant into the caller.
    SafeCopyFrom = 0,
    /// (granter, grant, offset, local_addr, len) → 0. Copies from the caller into a grant.
    SafeCopyTo = 1,
    /// (status: 0 success, else failure) → never returns. Stops the machine (QEMU exit);
    /// used by test and benchmark programs to end a run.
    Shutdown = 2,
    /// (buffer, len) → bytes written. Fills the buffer with a consistent snapshot: a
    /// `SnapshotHeader`, then one `ThreadRecord` per live thread and one `ProcessRecord`
    /// per process (crates/abi `introspect`). A buffer too small for the whole snapshot
    /// gets nothing but the required size: the call fails with `InvalidArgument` after
    /// writing just the header, whose counts say how big it must be.
    Snapshot = 3,
    /// (mask) → the previous mask. Sets which trace event kinds are recorded (bit
    /// `EventKind as u16`); unknown bits are ignored.
    TraceMask = 4,
}

impl KernelCall {
    pub const COUNT: u64 = 5;

    pub const fn from_number(number: u64) -> Option<KernelCall> {
        Some(match number {
            0 => KernelCall::SafeCopyFrom,
            1 => KernelCall::SafeCopyTo,
            2 => KernelCall::Shutdown,
            3 => KernelCall::Snapshot,
            4 => KernelCall::TraceMask,
            _ => return None,
        })
    }

    /// The mask bit allowing this call.
    pub const fn mask_bit(self) -> u64 {
        1 << (self as u64)
    }
}

/// The user-space mutex lock word shared with the kernel's wait path.
pub mod mutex_word {
    /// Low bits: owner thread slot + 1; 0 means unlocked.
    pub const OWNER_MASK: u32 = 0xffff;
    /// Set while some thread waits (the owner must call MutexWake when unlocking).
    pub const WAITERS: u32 = 1 << 31;

    /// The lock word for `slot` owning the lock with no waiters.
    pub const fn locked_by(slot: u16) -> u32 {
        slot as u32 + 1
    }

    /// The owner slot recorded in `word`, if locked.
    pub const fn owner(word: u32) -> Option<u16> {
        match word & OWNER_MASK {
            0 => None,
            owner_plus_one => Some((owner_plus_one - 1) as u16),
        }
    }
}

/// Access rights of a memory grant (`GrantCreate`'s `access`).
pub mod grant_access {
    /// The grantee may copy from the granted memory.
    pub const READ: u64 = 1;
    /// The grantee may copy into the granted memory.
    pub const WRITE: u64 = 2;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_numbers_round_trip() {
        for n in 0..Syscall::COUNT {
            let call = Syscall::from_number(n).expect("every number below COUNT is a call");
            assert_eq!(call as u64, n);
        }
        assert_eq!(Syscall::from_number(Syscall::COUNT), None);
        for n in 0..KernelCall::COUNT {
            assert_eq!(KernelCall::from_number(n).map(|c| c as u64), Some(n));
        }
        assert_eq!(KernelCall::from_number(KernelCall::COUNT), None);
    }
}
