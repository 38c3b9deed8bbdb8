//! Raw system calls (`syscall0`..`syscall6`) and thin typed wrappers, one per `Syscall`.
//!
//! Register convention (see `vigil_abi::syscall`): RAX = number, arguments in RDI, RSI, RDX,
//! R10, R8, R9; the result comes back in RAX, negative for `-Error`; RCX and R11 are
//! clobbered by SYSCALL/SYSRET, everything else is preserved.
//!
//! The typed wrappers return `Result<u64, Error>` decoded with `Error::from_return_value`.
//! Those that only hand the kernel references (which the borrow checker keeps valid for the
//! call) are safe; those that hand it raw addresses the kernel keeps using after the call
//! (thread entry points, grants, async tables) are `unsafe`.

use core::arch::asm;
use core::sync::atomic::AtomicU32;

use vigil_abi::async_message::AsyncMessage;
use vigil_abi::syscall::{KernelCall, Syscall};
use vigil_abi::{Endpoint, Error, Message};

/// System call with no arguments.
///
/// # Safety
/// The call must be one whose effects (on memory and on this thread) the caller has made
/// sound; see the typed wrappers.
#[inline(always)]
pub unsafe fn syscall0(number: u64) -> u64 {
    let result: u64;
    // SAFETY: SYSCALL enters the kernel, which preserves every register but RAX (the
    // result), RCX and R11 (declared clobbered) and does not touch the user stack; the
    // caller vouches for the call's effects.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number => result,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    result
}

/// System call with one argument (RDI).
///
/// # Safety
/// As for [`syscall0`].
#[inline(always)]
pub unsafe fn syscall1(number: u64, a1: u64) -> u64 {
    let result: u64;
    // SAFETY: as in `syscall0`; RDI is an input the kernel preserves.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number => result,
            in("rdi") a1,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    result
}

/// System call with two arguments (RDI, RSI).
///
/// # Safety
/// As for [`syscall0`].
#[inline(always)]
pub unsafe fn syscall2(number: u64, a1: u64, a2: u64) -> u64 {
    let result: u64;
    // SAFETY: as in `syscall0`; the argument registers are inputs the kernel preserves.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number => result,
            in("rdi") a1,
            in("rsi") a2,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    result
}

/// System call with three arguments (RDI, RSI, RDX).
///
/// # Safety
/// As for [`syscall0`].
#[inline(always)]
pub unsafe fn syscall3(number: u64, a1: u64, a2: u64, a3: u64) -> u64 {
    let result: u64;
    // SAFETY: as in `syscall0`; the argument registers are inputs the kernel preserves.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number => result,
            in("rdi") a1,
            in("rsi") a2,
            in("rdx") a3,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    result
}

/// System call with four arguments (RDI, RSI, RDX, R10).
///
/// # Safety
/// As for [`syscall0`].
#[inline(always)]
pub unsafe fn syscall4(number: u64, a1: u64, a2: u64, a3: u64, a4: u64) -> u64 {
    let result: u64;
    // SAFETY: as in `syscall0`; the argument registers are inputs the kernel preserves.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number => result,
            in("rdi") a1,
            in("rsi") a2,
            in("rdx") a3,
            in("r10") a4,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    result
}

/// System call with five arguments (RDI, RSI, RDX, R10, R8).
///
/// # Safety
/// As for [`syscall0`].
#[inline(always)]
pub unsafe fn syscall5(number: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> u64 {
    let result: u64;
    // SAFETY: as in `syscall0`; the argument registers are inputs the kernel preserves.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number => result,
            in("rdi") a1,
            in("rsi") a2,
            in("rdx") a3,
            in("r10") a4,
            in("r8") a5,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    result
}

/// System call with six arguments (RDI, RSI, RDX, R10, R8, R9).
///
/// # Safety
/// As for [`syscall0`].
#[inline(always)]
pub unsafe fn syscall6(number: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64, a6: u64) -> u64 {
    let result: u64;
    // SAFETY: as in `syscall0`; the argument registers are inputs the kernel preserves.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number => result,
            in("rdi") a1,
            in("rsi") a2,
            in("rdx") a3,
            in("r10") a4,
            in("r8") a5,
            in("r9") a6,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    result
}

/// A system call with one argument that does not return (ThreadExit, ProcessExit).
///
/// # Safety
/// `number` must be a call that never returns to this thread.
#[inline(always)]
unsafe fn syscall1_noreturn(number: u64, a1: u64) -> ! {
    // SAFETY: the caller guarantees the kernel never resumes this thread after the call,
    // so no register or memory state after it matters.
    unsafe {
        asm!(
            "syscall",
            in("rax") number,
            in("rdi") a1,
            options(noreturn, nostack),
        );
    }
}

fn decode(rax: u64) -> Result<u64, Error> {
    Error::from_return_value(rax)
}

/// `DebugWrite`: writes UTF-8 text to the kernel console (prefixed with the process name).
pub fn debug_write(text: &[u8]) -> Result<u64, Error> {
    // SAFETY: the kernel only reads `text.len()` bytes at `text`, which the slice keeps
    // alive and initialised for the duration of the call.
    decode(unsafe {
        syscall2(
            Syscall::DebugWrite as u64,
            text.as_ptr() as u64,
            text.len() as u64,
        )
    })
}

/// `Send`: blocks until `destination` receives `message`.
pub fn send(destination: Endpoint, message: &Message) -> Result<u64, Error> {
    // SAFETY: the kernel reads the 64-byte message, valid for the call through `message`.
    decode(unsafe {
        syscall2(
            Syscall::Send as u64,
            destination.0,
            message as *const Message as u64,
        )
    })
}

/// `Receive`: blocks until a message or notification from `from` (or ANY) arrives and
/// writes it into `message`.
pub fn receive(from: Endpoint, message: &mut Message) -> Result<u64, Error> {
    // SAFETY: the kernel writes one `Message` (any bit pattern is a valid `Message`) into
    // the buffer, exclusively borrowed for the call.
    decode(unsafe {
        syscall2(
            Syscall::Receive as u64,
            from.0,
            message as *mut Message as u64,
        )
    })
}

/// `SendReceive`: sends `message` to `destination`, then receives its reply into `message`.
pub fn send_receive(destination: Endpoint, message: &mut Message) -> Result<u64, Error> {
    // SAFETY: the kernel reads and then overwrites the exclusively borrowed message.
    decode(unsafe {
        syscall2(
            Syscall::SendReceive as u64,
            destination.0,
            message as *mut Message as u64,
        )
    })
}

/// `Notify`: raises a notification at `destination`; never blocks.
pub fn notify(destination: Endpoint) -> Result<u64, Error> {
    // SAFETY: no memory is involved.
    decode(unsafe { syscall1(Syscall::Notify as u64, destination.0) })
}

/// `SendNonBlocking`: delivers only if `destination` is waiting for it now (else NotReady).
pub fn send_nonblocking(destination: Endpoint, message: &Message) -> Result<u64, Error> {
    // SAFETY: the kernel reads the message, valid for the call through `message`.
    decode(unsafe {
        syscall2(
            Syscall::SendNonBlocking as u64,
            destination.0,
            message as *const Message as u64,
        )
    })
}

/// `SendAsync`: registers a table of `count` asynchronous messages at `table`.
///
/// # Safety
/// The kernel reads the entries and writes their `flags`/`result` fields after this call
/// returns, whenever it delivers them: the `count` entries at `table` must stay valid (not
/// freed, not moved) until every VALID entry is DONE or the table is replaced by another
/// `SendAsync`, and the program must not hold references to them meanwhile (read them with
/// volatile accesses). [`crate::ipc::AsyncTable`] does this safely.
pub unsafe fn send_async(table: *mut AsyncMessage, count: usize) -> Result<u64, Error> {
    // SAFETY: the caller guarantees the table outlives its use by the kernel.
    decode(unsafe { syscall2(Syscall::SendAsync as u64, table as u64, count as u64) })
}

/// `ThreadCreate`: starts a thread of this process at `entry` with RDI = `arg`,
/// RSI = its endpoint; returns the endpoint.
///
/// # Safety
/// `entry` must be the address of code that is sound to run on a fresh stack with that
/// argument, and must end with `ThreadExit` (it has no return address).
pub unsafe fn thread_create(entry: u64, arg: u64) -> Result<u64, Error> {
    // SAFETY: the caller vouches for the entry point and its argument.
    decode(unsafe { syscall2(Syscall::ThreadCreate as u64, entry, arg) })
}

/// `ThreadExit`: ends the calling thread (the last thread ends the process).
pub fn thread_exit(code: u64) -> ! {
    // SAFETY: ThreadExit never returns to this thread.
    unsafe { syscall1_noreturn(Syscall::ThreadExit as u64, code) }
}

/// `ThreadJoin`: waits for a thread of this process to exit; returns its exit code.
pub fn thread_join(thread: Endpoint) -> Result<u64, Error> {
    // SAFETY: no memory is involved.
    decode(unsafe { syscall1(Syscall::ThreadJoin as u64, thread.0) })
}

/// `ProcessExit`: ends every thread of this process with `status`.
pub fn process_exit(status: u64) -> ! {
    // SAFETY: ProcessExit never returns.
    unsafe { syscall1_noreturn(Syscall::ProcessExit as u64, status) }
}

/// `Yield`: gives up the rest of the quantum.
pub fn yield_now() -> Result<u64, Error> {
    // SAFETY: no memory is involved.
    decode(unsafe { syscall0(Syscall::Yield as u64) })
}

/// `Sleep`: sleeps at least `nanoseconds`.
pub fn sleep_ns(nanoseconds: u64) -> Result<u64, Error> {
    // SAFETY: no memory is involved.
    decode(unsafe { syscall1(Syscall::Sleep as u64, nanoseconds) })
}

/// `AlarmSet`: periodic notification from `Endpoint::CLOCK` every `period_ns`; 0 cancels.
pub fn alarm_set_ns(period_ns: u64) -> Result<u64, Error> {
    // SAFETY: no memory is involved.
    decode(unsafe { syscall1(Syscall::AlarmSet as u64, period_ns) })
}

/// `MutexWait`: blocks while `word` equals `expected`; returns at once if it differs.
pub fn mutex_wait(word: &AtomicU32, expected: u32) -> Result<u64, Error> {
    // SAFETY: the kernel only reads the (4-byte aligned) atomic word, which the reference
    // keeps valid for the call.
    decode(unsafe {
        syscall2(
            Syscall::MutexWait as u64,
            word.as_ptr() as u64,
            u64::from(expected),
        )
    })
}

/// `MutexWake`: wakes the longest waiter on `word`; returns how many were woken (0 or 1).
pub fn mutex_wake(word: &AtomicU32) -> Result<u64, Error> {
    // SAFETY: the address only identifies the wait queue; the kernel does not write it.
    decode(unsafe { syscall1(Syscall::MutexWake as u64, word.as_ptr() as u64) })
}

/// `GrantCreate`: lets `grantee` copy from/to `len` bytes at `address` (per `access`, see
/// `vigil_abi::syscall::grant_access`) with the safe-copy kernel calls; returns the grant id.
///
/// # Safety
/// Until the grant is revoked, the grantee may read (READ) or write (WRITE) that memory at
/// any time: it must stay allocated, and with WRITE access nothing may hold a reference to
/// it while the grantee may be writing. [`crate::ipc::with_read_grant`] and
/// [`crate::ipc::with_write_grant`] are safe scoped forms.
pub unsafe fn grant_create(
    grantee: Endpoint,
    address: u64,
    len: u64,
    access: u64,
) -> Result<u64, Error> {
    // SAFETY: the caller upholds the lifetime and aliasing rules above.
    decode(unsafe { syscall4(Syscall::GrantCreate as u64, grantee.0, address, len, access) })
}

/// `GrantRevoke`: withdraws a grant.
pub fn grant_revoke(grant: u64) -> Result<u64, Error> {
    // SAFETY: revoking only narrows what others may access.
    decode(unsafe { syscall1(Syscall::GrantRevoke as u64, grant) })
}

/// `SelfEndpoint`: the caller's endpoint, asked of the kernel (cheaper: `ThreadInfo`, see
/// [`crate::ipc::self_endpoint`]).
pub fn self_endpoint() -> Result<u64, Error> {
    // SAFETY: no memory is involved.
    decode(unsafe { syscall0(Syscall::SelfEndpoint as u64) })
}

/// `ClockNs`: nanoseconds since boot.
pub fn clock_ns() -> Result<u64, Error> {
    // SAFETY: no memory is involved.
    decode(unsafe { syscall0(Syscall::ClockNs as u64) })
}

/// `Lookup`: the main-thread endpoint of the boot process called `name`.
pub fn lookup(name: &str) -> Result<u64, Error> {
    // SAFETY: the kernel reads `name.len()` bytes of the borrowed string.
    decode(unsafe {
        syscall2(
            Syscall::Lookup as u64,
            name.as_ptr() as u64,
            name.len() as u64,
        )
    })
}

/// `KernelCall SafeCopyFrom`: copies `buffer.len()` bytes at `offset` of `granter`'s grant
/// into `buffer`.
pub fn safe_copy_from(
    granter: Endpoint,
    grant: u64,
    offset: u64,
    buffer: &mut [u8],
) -> Result<u64, Error> {
    // SAFETY: the kernel writes at most `buffer.len()` bytes into the exclusively borrowed
    // buffer (any bytes are valid `u8`s).
    decode(unsafe {
        syscall6(
            Syscall::KernelCall as u64,
            KernelCall::SafeCopyFrom as u64,
            granter.0,
            grant,
            offset,
            buffer.as_mut_ptr() as u64,
            buffer.len() as u64,
        )
    })
}

/// `KernelCall SafeCopyTo`: copies `data` to `offset` of `granter`'s grant.
pub fn safe_copy_to(granter: Endpoint, grant: u64, offset: u64, data: &[u8]) -> Result<u64, Error> {
    // SAFETY: the kernel only reads the borrowed `data`.
    decode(unsafe {
        syscall6(
            Syscall::KernelCall as u64,
            KernelCall::SafeCopyTo as u64,
            granter.0,
            grant,
            offset,
            data.as_ptr() as u64,
            data.len() as u64,
        )
    })
}

/// `KernelCall Shutdown`: stops the machine with `status` (0 success, else failure).
/// Returns only if the kernel refuses (e.g. PermissionDenied).
pub fn shutdown(status: u64) -> Result<u64, Error> {
    // SAFETY: no memory is involved.
    decode(unsafe {
        syscall2(
            Syscall::KernelCall as u64,
            KernelCall::Shutdown as u64,
            status,
        )
    })
}

/// `KernelCall Snapshot`: fills `buffer` with a snapshot (header + records); returns the
/// bytes written, or InvalidArgument after writing only the header if `buffer` is too small.
pub fn snapshot(buffer: &mut [u8]) -> Result<u64, Error> {
    // SAFETY: the kernel writes at most `buffer.len()` bytes into the exclusively borrowed
    // buffer (any bytes are valid `u8`s).
    decode(unsafe {
        syscall3(
            Syscall::KernelCall as u64,
            KernelCall::Snapshot as u64,
            buffer.as_mut_ptr() as u64,
            buffer.len() as u64,
        )
    })
}

/// `KernelCall TraceMask`: sets the trace event mask; returns the previous mask.
pub fn trace_mask(mask: u64) -> Result<u64, Error> {
    // SAFETY: no memory is involved.
    decode(unsafe {
        syscall2(
            Syscall::KernelCall as u64,
            KernelCall::TraceMask as u64,
            mask,
        )
    })
}
