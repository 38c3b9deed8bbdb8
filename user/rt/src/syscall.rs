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
use vigil_abi::message::RegisterMessage;
use vigil_abi::syscall::*;
use vigil_abi::user_memory::{UserPtr, UserSlice};
use vigil_abi::vm::{MapFlags, PageRange, Pid, ProcessPair, SharedRanges};
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

/// System call with one argument (RDI) whose result is two registers: (RAX, RDX).
///
/// # Safety
/// As for [`syscall0`].
#[inline(always)]
pub unsafe fn syscall1_pair(number: u64, a1: u64) -> (u64, u64) {
    let (rax, rdx): (u64, u64);
    // SAFETY: as in `syscall0`; the kernel writes RDX as a second result for the calls
    // whose ABI says so (RDX is declared an output, so no value of ours is lost).
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number => rax,
            in("rdi") a1,
            lateout("rdx") rdx,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    (rax, rdx)
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
    let r = DebugWriteArgs {
        text: UserSlice::from_slice(text),
    }
    .encode();
    // SAFETY: the kernel only reads `text.len()` bytes at `text`, which the slice keeps
    // alive and initialised for the duration of the call.
    decode(unsafe { syscall2(DebugWriteArgs::CALL as u64, r[0], r[1]) })
}

/// `Send`: blocks until `destination` receives `message`.
pub fn send(destination: Endpoint, message: &Message) -> Result<u64, Error> {
    let r = SendArgs {
        destination,
        message: UserPtr::from_ref(message),
    }
    .encode();
    // SAFETY: the kernel reads the 64-byte message, valid for the call through `message`.
    decode(unsafe { syscall2(SendArgs::CALL as u64, r[0], r[1]) })
}

/// `Receive`: blocks until a message or notification from `from` (or ANY) arrives and
/// writes it into `message`.
pub fn receive(from: Endpoint, message: &mut Message) -> Result<u64, Error> {
    let r = ReceiveArgs {
        source: from,
        message: UserPtr::from_ref(message),
    }
    .encode();
    // SAFETY: the kernel writes one `Message` (any bit pattern is a valid `Message`) into
    // the buffer, exclusively borrowed for the call.
    decode(unsafe { syscall2(ReceiveArgs::CALL as u64, r[0], r[1]) })
}

/// `SendReceive`: sends `message` to `destination`, then receives its reply into `message`.
pub fn send_receive(destination: Endpoint, message: &mut Message) -> Result<u64, Error> {
    let r = SendReceiveArgs {
        destination,
        message: UserPtr::from_ref(message),
    }
    .encode();
    // SAFETY: the kernel reads and then overwrites the exclusively borrowed message.
    decode(unsafe { syscall2(SendReceiveArgs::CALL as u64, r[0], r[1]) })
}

/// `ReplyReceive`: delivers `message` to `destination` (which must be waiting for the
/// caller's reply, else `NotReady` and nothing is received), then receives from `from` (or
/// ANY) into `message`.
pub fn reply_receive(
    destination: Endpoint,
    from: Endpoint,
    message: &mut Message,
) -> Result<u64, Error> {
    let r = ReplyReceiveArgs {
        destination,
        source: from,
        message: UserPtr::from_ref(message),
    }
    .encode();
    // SAFETY: the kernel reads and then overwrites the exclusively borrowed message.
    decode(unsafe { syscall3(ReplyReceiveArgs::CALL as u64, r[0], r[1], r[2]) })
}

/// A register-message call (`SendReceiveRegisters`, `ReplyReceiveRegisters`): RDI and RSI
/// as given, the message in RDX, R10, R8, R9; the message received comes back in the same
/// four registers with its sender in RDI (`RegisterMessage`). Public for tests that pass
/// what the typed wrappers never do (a nonzero reserved RSI).
#[inline(always)]
pub fn register_message_call(
    number: u64,
    destination: Endpoint,
    second: u64,
    message: &RegisterMessage,
) -> Result<(Endpoint, RegisterMessage), Error> {
    let [mut header, mut word0, mut word1, mut word2] = message.to_registers();
    let result: u64;
    let source: u64;
    // SAFETY: no memory is involved: the kernel reads and writes only these registers
    // (RCX and R11 are clobbered by SYSCALL/SYSRET, every other register is preserved).
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number => result,
            inlateout("rdi") destination.0 => source,
            in("rsi") second,
            inlateout("rdx") header,
            inlateout("r10") word0,
            inlateout("r8") word1,
            inlateout("r9") word2,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    register_call_outcome(result, source, [header, word0, word1, word2])
}

/// What a register IPC call's registers after SYSCALL say: its result (RAX), and on
/// success the sender (RDI) and the message received (RDX, R10, R8, R9).
#[inline(always)]
fn register_call_outcome(
    result: u64,
    source: u64,
    registers: [u64; 4],
) -> Result<(Endpoint, RegisterMessage), Error> {
    // A success is any value that is not an error code (the top bit clear): told inline, so
    // the IPC fast path's round trip pays one test here, not `decode`'s two calls.
    if (result as i64) < 0 {
        decode(result)?;
    }
    Ok((Endpoint(source), RegisterMessage::from_registers(registers)))
}

/// `SendReceiveRegisters`: sends the register message to `destination` and waits for its
/// reply: `(the reply's sender, the reply)`. No buffer in memory; the IPC fast path's call.
#[inline]
pub fn send_receive_registers(
    destination: Endpoint,
    message: &RegisterMessage,
) -> Result<(Endpoint, RegisterMessage), Error> {
    register_message_call(
        SendReceiveRegistersArgs::CALL as u64,
        destination,
        0,
        message,
    )
}

/// `ReplyReceiveRegisters`: delivers the register message to `destination` (which must be
/// waiting for the caller's reply, else `NotReady` and nothing is received), then receives
/// from `from` (or ANY): `(the sender, the message)`.
#[inline]
pub fn reply_receive_registers(
    destination: Endpoint,
    from: Endpoint,
    message: &RegisterMessage,
) -> Result<(Endpoint, RegisterMessage), Error> {
    register_message_call(
        ReplyReceiveRegistersArgs::CALL as u64,
        destination,
        from.0,
        message,
    )
}

/// `ReplyReceiveRegisters` with the TSC read at both edges of the call, for one-way IPC
/// benchmarks (sel4bench's method: the partner reads the counter on its side). The counter
/// is read as in [`crate::tsc`] (`lfence; rdtsc`) twice in one asm block:
///
/// - last before SYSCALL: that reading replaces `message.payload[1]` (R8) in the reply, so
///   the partner gets the time the reply left; only the reading's combination into one
///   word and the call number and header moved into RAX and RDX follow it;
/// - first after SYSCALL returns: after RAX and RDX (which RDTSC overwrites) are saved,
///   the counter is read again; that reading is the second value returned, the time the
///   next message arrived.
///
/// Otherwise as [`reply_receive_registers`]: the first value is the call's result.
#[inline(always)]
pub fn reply_receive_registers_stamped(
    destination: Endpoint,
    from: Endpoint,
    message: &RegisterMessage,
) -> (Result<(Endpoint, RegisterMessage), Error>, u64) {
    let [header, mut word0, _, mut word2] = message.to_registers();
    let (result, received_header, source, word1, arrived): (u64, u64, u64, u64, u64);
    // SAFETY: no memory is involved: LFENCE and RDTSC only read the counter (user mode may:
    // the kernel leaves CR4.TSD clear), the kernel reads and writes only the registers of
    // `register_message_call`. RAX, RDX and R8 are written before the inputs in registers
    // are read, so they are early-clobber outputs (`out`), never shared with an input; RCX
    // and R11 are clobbered by SYSCALL/SYSRET after every input has been read.
    unsafe {
        asm!(
            "lfence",
            "rdtsc",
            "shl rdx, 32",
            "lea r8, [rdx + rax]",
            "mov eax, {number}",
            "mov rdx, {header}",
            "syscall",
            "mov {result}, rax",
            "mov {received_header}, rdx",
            "lfence",
            "rdtsc",
            "shl rdx, 32",
            "or rax, rdx",
            number = const ReplyReceiveRegistersArgs::CALL as u32,
            header = in(reg) header,
            result = out(reg) result,
            received_header = out(reg) received_header,
            inlateout("rdi") destination.0 => source,
            in("rsi") from.0,
            inlateout("r10") word0,
            out("r8") word1,
            inlateout("r9") word2,
            out("rax") arrived,
            out("rdx") _,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    let outcome = register_call_outcome(result, source, [received_header, word0, word1, word2]);
    (outcome, arrived)
}

/// `SendReceiveRegisters` with the TSC read at both edges of the call, the client's side of
/// [`reply_receive_registers_stamped`]: the counter is read (`lfence; rdtsc`, as
/// [`crate::tsc`]) last before SYSCALL and first after it returns, in one asm block, so no
/// code the compiler schedules around the call (the reply's unpacking, the request's
/// registers) falls between a reading and the call. Returns the call's result, the reading
/// before and the reading after; the message is sent unchanged.
#[inline(always)]
pub fn send_receive_registers_stamped(
    destination: Endpoint,
    message: &RegisterMessage,
) -> (Result<(Endpoint, RegisterMessage), Error>, u64, u64) {
    let [header, mut word0, mut word1, mut word2] = message.to_registers();
    let (result, received_header, source, sent, arrived): (u64, u64, u64, u64, u64);
    // SAFETY: as in `reply_receive_registers_stamped`: no memory is involved; RAX, RDX and
    // `sent` are written before the inputs in registers are read, so they are
    // early-clobber outputs (`out`), never shared with an input.
    unsafe {
        asm!(
            "lfence",
            "rdtsc",
            "shl rdx, 32",
            "lea {sent}, [rdx + rax]",
            "mov eax, {number}",
            "mov rdx, {header}",
            "syscall",
            "mov {result}, rax",
            "mov {received_header}, rdx",
            "lfence",
            "rdtsc",
            "shl rdx, 32",
            "or rax, rdx",
            number = const SendReceiveRegistersArgs::CALL as u32,
            header = in(reg) header,
            sent = out(reg) sent,
            result = out(reg) result,
            received_header = out(reg) received_header,
            inlateout("rdi") destination.0 => source,
            in("rsi") 0u64,
            inlateout("r10") word0,
            inlateout("r8") word1,
            inlateout("r9") word2,
            out("rax") arrived,
            out("rdx") _,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    let outcome = register_call_outcome(result, source, [received_header, word0, word1, word2]);
    (outcome, sent, arrived)
}

/// `Notify`: raises a notification at `destination`; never blocks.
pub fn notify(destination: Endpoint) -> Result<u64, Error> {
    let r = NotifyArgs { destination }.encode();
    // SAFETY: no memory is involved.
    decode(unsafe { syscall1(NotifyArgs::CALL as u64, r[0]) })
}

/// `SendNonBlocking`: delivers only if `destination` is waiting for it now (else NotReady).
pub fn send_nonblocking(destination: Endpoint, message: &Message) -> Result<u64, Error> {
    let r = SendNonBlockingArgs {
        destination,
        message: UserPtr::from_ref(message),
    }
    .encode();
    // SAFETY: the kernel reads the message, valid for the call through `message`.
    decode(unsafe { syscall2(SendNonBlockingArgs::CALL as u64, r[0], r[1]) })
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
    // The raw registers: the table is not borrowed (the kernel keeps using it).
    // SAFETY: the caller guarantees the table outlives its use by the kernel.
    decode(unsafe { syscall2(SendAsyncArgs::CALL as u64, table as u64, count as u64) })
}

/// `ThreadCreate`: starts a thread of this process at `entry` with RDI = `arg`,
/// RSI = its endpoint; returns the endpoint.
///
/// # Safety
/// `entry` must be the address of code that is sound to run on a fresh stack with that
/// argument, and must end with `ThreadExit` (it has no return address).
pub unsafe fn thread_create(entry: u64, arg: u64) -> Result<u64, Error> {
    let r = ThreadCreateArgs {
        entry,
        argument: arg,
    }
    .encode();
    // SAFETY: the caller vouches for the entry point and its argument.
    decode(unsafe { syscall2(ThreadCreateArgs::CALL as u64, r[0], r[1]) })
}

/// `ThreadExit`: ends the calling thread (the last thread ends the process).
pub fn thread_exit(code: u64) -> ! {
    let r = ThreadExitArgs { code }.encode();
    // SAFETY: ThreadExit never returns to this thread.
    unsafe { syscall1_noreturn(ThreadExitArgs::CALL as u64, r[0]) }
}

/// `ThreadJoin`: waits for a thread of this process to exit; returns its exit code (any
/// `u64`: the kernel returns 0 in RAX and the code in RDX, so large codes are not errors).
pub fn thread_join(thread: Endpoint) -> Result<u64, Error> {
    let r = ThreadJoinArgs { thread }.encode();
    // SAFETY: no memory is involved.
    let (status, exit_code) = unsafe { syscall1_pair(ThreadJoinArgs::CALL as u64, r[0]) };
    decode(status).map(|_| exit_code)
}

/// `Panic`: reports a panic with `text` and ends the process with status 101. (Should the
/// kernel refuse the call, the process exits with 101 anyway.)
pub fn panic(text: &[u8]) -> ! {
    let r = PanicArgs {
        text: UserSlice::from_slice(text),
    }
    .encode();
    // SAFETY: the kernel only reads `text.len()` bytes of the borrowed slice.
    let _ = unsafe { syscall2(PanicArgs::CALL as u64, r[0], r[1]) };
    process_exit(101)
}

/// `ProcessExit`: ends every thread of this process with `status`.
pub fn process_exit(status: u64) -> ! {
    let r = ProcessExitArgs { status }.encode();
    // SAFETY: ProcessExit never returns.
    unsafe { syscall1_noreturn(ProcessExitArgs::CALL as u64, r[0]) }
}

/// `Yield`: gives up the rest of the quantum.
pub fn yield_now() -> Result<u64, Error> {
    // SAFETY: no memory is involved.
    decode(unsafe { syscall0(YieldArgs::CALL as u64) })
}

/// `Sleep`: sleeps at least `nanoseconds`.
pub fn sleep_ns(nanoseconds: u64) -> Result<u64, Error> {
    let r = SleepArgs {
        duration_ns: nanoseconds,
    }
    .encode();
    // SAFETY: no memory is involved.
    decode(unsafe { syscall1(SleepArgs::CALL as u64, r[0]) })
}

/// `AlarmSet`: periodic notification from `Endpoint::CLOCK` every `period_ns`; 0 cancels.
pub fn alarm_set_ns(period_ns: u64) -> Result<u64, Error> {
    let r = AlarmSetArgs { period_ns }.encode();
    // SAFETY: no memory is involved.
    decode(unsafe { syscall1(AlarmSetArgs::CALL as u64, r[0]) })
}

/// The lock word as a user pointer (an `AtomicU32` has the layout of a `u32`).
fn lock_word_pointer(word: &AtomicU32) -> UserPtr<u32> {
    // SAFETY: `AtomicU32` has the same size, alignment and bit validity as `u32`; the
    // reference is only turned into an address for the kernel, never read through here.
    UserPtr::from_ref(unsafe { &*word.as_ptr() })
}

/// `MutexWait`: blocks while `word` equals `expected`; returns at once if it differs.
pub fn mutex_wait(word: &AtomicU32, expected: u32) -> Result<u64, Error> {
    let r = MutexWaitArgs {
        word: lock_word_pointer(word),
        expected: u64::from(expected),
    }
    .encode();
    // SAFETY: the kernel only reads the (4-byte aligned) atomic word, which the reference
    // keeps valid for the call.
    decode(unsafe { syscall2(MutexWaitArgs::CALL as u64, r[0], r[1]) })
}

/// `MutexWake`: wakes the longest waiter on `word`; returns how many were woken (0 or 1).
pub fn mutex_wake(word: &AtomicU32) -> Result<u64, Error> {
    let r = MutexWakeArgs {
        word: lock_word_pointer(word),
    }
    .encode();
    // SAFETY: the address only identifies the wait queue; the kernel does not write it.
    decode(unsafe { syscall1(MutexWakeArgs::CALL as u64, r[0]) })
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
    // The raw registers: the memory is not borrowed (the grant outlives the call), and the
    // kernel is the one to check the access bits.
    // SAFETY: the caller upholds the lifetime and aliasing rules above.
    decode(unsafe {
        syscall4(
            GrantCreateArgs::CALL as u64,
            grantee.0,
            address,
            len,
            access,
        )
    })
}

/// `GrantRevoke`: withdraws a grant.
pub fn grant_revoke(grant: u64) -> Result<u64, Error> {
    let r = GrantRevokeArgs { grant }.encode();
    // SAFETY: revoking only narrows what others may access.
    decode(unsafe { syscall1(GrantRevokeArgs::CALL as u64, r[0]) })
}

/// `SelfEndpoint`: the caller's endpoint, asked of the kernel (cheaper: `ThreadInfo`, see
/// [`crate::ipc::self_endpoint`]).
pub fn self_endpoint() -> Result<u64, Error> {
    // SAFETY: no memory is involved.
    decode(unsafe { syscall0(SelfEndpointArgs::CALL as u64) })
}

/// `ClockNs`: nanoseconds since boot.
pub fn clock_ns() -> Result<u64, Error> {
    // SAFETY: no memory is involved.
    decode(unsafe { syscall0(ClockNsArgs::CALL as u64) })
}

/// `Lookup`: the main-thread endpoint of the boot process called `name`.
pub fn lookup(name: &str) -> Result<u64, Error> {
    let r = LookupArgs {
        name: UserSlice::from_slice(name.as_bytes()),
    }
    .encode();
    // SAFETY: the kernel reads `name.len()` bytes of the borrowed string.
    decode(unsafe { syscall2(LookupArgs::CALL as u64, r[0], r[1]) })
}

/// The registers of `Syscall::KernelCall` for kernel call `call` with its own registers.
fn kernel_call_registers(call: KernelCall, arguments: [u64; 5]) -> [u64; 6] {
    KernelCallTrapArgs {
        call: call as u64,
        arguments: KernelCallRegisters(arguments),
    }
    .encode()
}

/// `KernelCall SafeCopyFrom`: copies `buffer.len()` bytes at `offset` of `granter`'s grant
/// into `buffer`.
pub fn safe_copy_from(
    granter: Endpoint,
    grant: u64,
    offset: u64,
    buffer: &mut [u8],
) -> Result<u64, Error> {
    let arguments = SafeCopyFromArgs {
        granter,
        grant,
        offset,
        local: UserSlice::from_slice(buffer),
    };
    let r = kernel_call_registers(SafeCopyFromArgs::CALL, arguments.encode());
    // SAFETY: the kernel writes at most `buffer.len()` bytes into the exclusively borrowed
    // buffer (any bytes are valid `u8`s).
    decode(unsafe {
        syscall6(
            KernelCallTrapArgs::CALL as u64,
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
        )
    })
}

/// `KernelCall SafeCopyTo`: copies `data` to `offset` of `granter`'s grant.
pub fn safe_copy_to(granter: Endpoint, grant: u64, offset: u64, data: &[u8]) -> Result<u64, Error> {
    let arguments = SafeCopyToArgs {
        granter,
        grant,
        offset,
        local: UserSlice::from_slice(data),
    };
    let r = kernel_call_registers(SafeCopyToArgs::CALL, arguments.encode());
    // SAFETY: the kernel only reads the borrowed `data`.
    decode(unsafe {
        syscall6(
            KernelCallTrapArgs::CALL as u64,
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
        )
    })
}

/// `KernelCall Shutdown`: stops the machine with `status` (0 success, else failure).
/// Returns only if the kernel refuses (e.g. PermissionDenied).
pub fn shutdown(status: u64) -> Result<u64, Error> {
    let r = kernel_call_registers(ShutdownArgs::CALL, ShutdownArgs { status }.encode());
    // SAFETY: no memory is involved.
    decode(unsafe { syscall2(KernelCallTrapArgs::CALL as u64, r[0], r[1]) })
}

/// `KernelCall Snapshot`: fills `buffer` with a snapshot (header + records); returns the
/// bytes written, or InvalidArgument after writing only the header if `buffer` is too small.
pub fn snapshot(buffer: &mut [u8]) -> Result<u64, Error> {
    let arguments = SnapshotArgs {
        buffer: UserSlice::from_slice(buffer),
    };
    let r = kernel_call_registers(SnapshotArgs::CALL, arguments.encode());
    // SAFETY: the kernel writes at most `buffer.len()` bytes into the exclusively borrowed
    // buffer (any bytes are valid `u8`s).
    decode(unsafe { syscall3(KernelCallTrapArgs::CALL as u64, r[0], r[1], r[2]) })
}

/// `KernelCall TraceMask`: sets the trace event mask; returns the previous mask.
pub fn trace_mask(mask: u64) -> Result<u64, Error> {
    let r = kernel_call_registers(TraceMaskArgs::CALL, TraceMaskArgs { mask }.encode());
    // SAFETY: no memory is involved.
    decode(unsafe { syscall2(KernelCallTrapArgs::CALL as u64, r[0], r[1]) })
}

/// A kernel call that touches no memory of the caller: all six registers, decoded result.
fn memory_call(call: KernelCall, arguments: [u64; 5]) -> Result<u64, Error> {
    let r = kernel_call_registers(call, arguments);
    // SAFETY: the VM kernel calls read and write only page tables, never the caller's
    // memory through these registers.
    decode(unsafe {
        syscall6(
            KernelCallTrapArgs::CALL as u64,
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
        )
    })
}

/// `KernelCall VmMap` (VM only): fresh zeroed frames at every page of `range` in `pid`.
pub fn vm_map(pid: Pid, range: PageRange, flags: MapFlags) -> Result<u64, Error> {
    let arguments = VmMapArgs {
        process: pid,
        range,
        flags,
    };
    memory_call(VmMapArgs::CALL, arguments.encode())
}

/// `KernelCall VmUnmap` (VM only): unmaps `range` in `pid`; returns the pages unmapped.
pub fn vm_unmap(pid: Pid, range: PageRange) -> Result<u64, Error> {
    memory_call(
        VmUnmapArgs::CALL,
        VmUnmapArgs {
            process: pid,
            range,
        }
        .encode(),
    )
}

/// `KernelCall VmProtect` (VM only): new access for the mapped pages of `range`.
pub fn vm_protect(pid: Pid, range: PageRange, flags: MapFlags) -> Result<u64, Error> {
    let arguments = VmProtectArgs {
        process: pid,
        range,
        flags,
    };
    memory_call(VmProtectArgs::CALL, arguments.encode())
}

/// `KernelCall VmQuery` (VM only): the number of mapped pages in `range` of `pid`.
pub fn vm_query(pid: Pid, range: PageRange) -> Result<u64, Error> {
    memory_call(
        VmQueryArgs::CALL,
        VmQueryArgs {
            process: pid,
            range,
        }
        .encode(),
    )
}

/// `KernelCall VmResume` (VM only): `thread`'s fault is handled.
pub fn vm_resume(thread: Endpoint) -> Result<u64, Error> {
    memory_call(VmResumeArgs::CALL, VmResumeArgs { thread }.encode())
}

/// `KernelCall VmFail` (VM only): `thread`'s fault is invalid.
pub fn vm_fail(thread: Endpoint) -> Result<u64, Error> {
    memory_call(VmFailArgs::CALL, VmFailArgs { thread }.encode())
}

/// `KernelCall VmProcessOf` (VM only): the pid of `thread`'s process.
pub fn vm_process_of(thread: Endpoint) -> Result<u64, Error> {
    memory_call(VmProcessOfArgs::CALL, VmProcessOfArgs { thread }.encode())
}

/// `KernelCall VmMapShared` (VM only): maps the frames at `ranges.source()` of `source` at
/// `ranges.target()` of `target` too (read-only or writable as `flags` say).
pub fn vm_map_shared(
    source: Pid,
    target: Pid,
    ranges: SharedRanges,
    flags: MapFlags,
) -> Result<u64, Error> {
    let arguments = VmMapSharedArgs {
        processes: ProcessPair { source, target },
        ranges,
        flags,
    };
    memory_call(VmMapSharedArgs::CALL, arguments.encode())
}

/// `KernelCall VmLimitOf` (VM only): the boot table's memory limit of `pid` in pages (0
/// for none).
pub fn vm_limit_of(pid: Pid) -> Result<u64, Error> {
    memory_call(VmLimitOfArgs::CALL, VmLimitOfArgs { process: pid }.encode())
}

/// `KernelCall VmSetVirtual` (VM only): `pid`'s virtual size (the regions VM placed) is
/// now `bytes`.
pub fn vm_set_virtual(pid: Pid, bytes: u64) -> Result<u64, Error> {
    memory_call(
        VmSetVirtualArgs::CALL,
        VmSetVirtualArgs {
            process: pid,
            bytes,
        }
        .encode(),
    )
}

/// A kernel call whose arguments are all in registers (any memory they name is described
/// by `UserSlice`/`UserPtr` arguments the caller derived from borrows it holds).
///
/// # Safety
/// Every buffer the arguments name must be valid for the access the call makes: read for
/// data PM hands to the kernel, exclusively borrowed for output the kernel writes.
pub(crate) unsafe fn pm_call(call: KernelCall, arguments: [u64; 5]) -> Result<u64, Error> {
    let r = kernel_call_registers(call, arguments);
    // SAFETY: the caller guarantees the memory the registers name (see above).
    decode(unsafe {
        syscall6(
            KernelCallTrapArgs::CALL as u64,
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
        )
    })
}

/// `KernelCall PmModuleName` (PM only): boot module `index`'s string into `buffer` (as
/// much as fits); returns the string's full length. `NotFound` past the last module.
pub fn pm_module_name(index: u64, buffer: &mut [u8]) -> Result<u64, Error> {
    let arguments = PmModuleNameArgs {
        index,
        buffer: UserSlice::from_slice(buffer),
    };
    // SAFETY: the kernel writes at most `buffer.len()` bytes into the exclusive borrow.
    unsafe { pm_call(PmModuleNameArgs::CALL, arguments.encode()) }
}

/// `KernelCall PmModuleRead` (PM only): bytes of boot module `index` from `offset` into
/// `buffer`; returns how many (0 at the end), or for an empty `buffer` the file's size.
pub fn pm_module_read(index: u64, offset: u64, buffer: &mut [u8]) -> Result<u64, Error> {
    let arguments = PmModuleReadArgs {
        index,
        offset,
        buffer: UserSlice::from_slice(buffer),
    };
    // SAFETY: the kernel writes at most `buffer.len()` bytes into the exclusive borrow.
    unsafe { pm_call(PmModuleReadArgs::CALL, arguments.encode()) }
}

/// `KernelCall PmCreate` (PM only): an empty process the caller manages; returns its pid.
pub fn pm_create(
    name: &str,
    priority: vigil_abi::pm::Priority,
    kernel_calls: u64,
    memory_limit_pages: u64,
) -> Result<u64, Error> {
    let arguments = PmCreateArgs {
        name: UserSlice::from_slice(name.as_bytes()),
        priority,
        kernel_calls,
        memory_limit_pages,
    };
    // SAFETY: the kernel only reads the borrowed name.
    unsafe { pm_call(PmCreateArgs::CALL, arguments.encode()) }
}

/// `KernelCall PmMapImage` (PM only): fresh zeroed image pages in an unstarted process.
pub fn pm_map_image(
    pid: Pid,
    range: PageRange,
    flags: vigil_abi::pm::ImageFlags,
) -> Result<u64, Error> {
    let arguments = PmMapImageArgs {
        process: pid,
        range,
        flags,
    };
    // SAFETY: no memory of the caller is involved.
    unsafe { pm_call(PmMapImageArgs::CALL, arguments.encode()) }
}

/// `KernelCall PmCopyTo` (PM only): `data` into the mapped image of an unstarted process.
pub fn pm_copy_to(pid: Pid, address: u64, data: &[u8]) -> Result<u64, Error> {
    let arguments = PmCopyToArgs {
        process: pid,
        address,
        data: UserSlice::from_slice(data),
    };
    // SAFETY: the kernel only reads the borrowed data.
    unsafe { pm_call(PmCopyToArgs::CALL, arguments.encode()) }
}

/// `KernelCall PmStart` (PM only): starts the main thread at `entry` with `arguments`;
/// returns its endpoint.
pub fn pm_start(pid: Pid, entry: u64, arguments: &[u8]) -> Result<Endpoint, Error> {
    pm_start_limited(pid, entry, arguments, None)
}

/// `pm_start`, and with `ipc` Some the process may send only to the live processes whose
/// pids it lists (at most `pm::MAX_IPC_PIDS`; `InvalidArgument` for more).
pub fn pm_start_limited(
    pid: Pid,
    entry: u64,
    arguments: &[u8],
    ipc: Option<&[u32]>,
) -> Result<Endpoint, Error> {
    use vigil_abi::pm::{IpcAllow, IpcPidList, MAX_IPC_PIDS};
    let mut list: IpcPidList = [0; MAX_IPC_PIDS + 1];
    let ipc = match ipc {
        None => IpcAllow::All,
        Some(pids) => {
            if pids.len() > MAX_IPC_PIDS {
                return Err(Error::InvalidArgument);
            }
            list[0] = pids.len() as u32;
            list[1..=pids.len()].copy_from_slice(pids);
            IpcAllow::Only(UserPtr::from_ref(&list))
        }
    };
    // An empty slice's dangling address is not page aligned: the kernel would check the
    // page it lies in (page 0), so no arguments travel as the empty slice at 0.
    let arguments = if arguments.is_empty() {
        UserSlice::EMPTY
    } else {
        UserSlice::from_slice(arguments)
    };
    let call = PmStartArgs {
        process: pid,
        entry,
        arguments,
        ipc,
    };
    // SAFETY: the kernel only reads the borrowed arguments and pid list, both alive
    // until the call returns.
    unsafe { pm_call(PmStartArgs::CALL, call.encode()) }.map(Endpoint)
}

/// `KernelCall PmKill` (PM only): ends process `pid` with `status`.
pub fn pm_kill(pid: Pid, status: u64) -> Result<u64, Error> {
    let arguments = PmKillArgs {
        process: pid,
        status,
    };
    // SAFETY: no memory of the caller is involved.
    unsafe { pm_call(PmKillArgs::CALL, arguments.encode()) }
}

/// `KernelCall PmReap` (PM only): one exit of a process the caller manages, as
/// `(pid, status)`, or None if there is none.
pub fn pm_reap() -> Result<Option<(u64, u64)>, Error> {
    let mut out = [0u64; 2];
    let buffer: &mut [u64; 2] = &mut out;
    let arguments = PmReapArgs {
        out: UserPtr::from_ref(buffer),
    };
    // SAFETY: the kernel writes the two words of `out`, exclusively ours until it returns.
    let collected = unsafe { pm_call(PmReapArgs::CALL, arguments.encode()) }?;
    Ok((collected == 1).then_some((out[0], out[1])))
}

/// `KernelCall PmHostReply` (PM only): the answer to host command `request` — an outcome
/// and text, or for a tree listing the process-tree records.
pub fn pm_host_reply(
    request: u32,
    outcome: vigil_abi::host_command::Outcome,
    data: &[u8],
) -> Result<u64, Error> {
    // An empty list (no process) still needs a user address: a dangling one is `Fault`.
    let anchor = [0u8; 1];
    let data = if data.is_empty() { &anchor[..0] } else { data };
    let arguments = PmHostReplyArgs {
        request: vigil_abi::host_command::RequestId(request),
        outcome,
        data: UserSlice::from_slice(data),
    };
    // SAFETY: the kernel only reads the borrowed data.
    unsafe { pm_call(PmHostReplyArgs::CALL, arguments.encode()) }
}

// ----- Signals (signal managers: PM) -----

/// `KernelCall PmNextEvent` (signal manager): one event about a process the caller
/// manages (`vigil_abi::signal::event`), or None if there is none.
pub fn pm_next_event() -> Result<Option<vigil_abi::signal::ProcessEvent>, Error> {
    let mut out = [0u64; 8];
    let buffer: &mut [u64; 8] = &mut out;
    let arguments = PmNextEventArgs {
        out: UserPtr::from_ref(buffer),
    };
    // SAFETY: the kernel writes the eight words of `out`, exclusively ours until it returns.
    let collected = unsafe { pm_call(PmNextEventArgs::CALL, arguments.encode()) }?;
    Ok((collected == 1).then_some(out))
}

/// `KernelCall ServiceKeepEndpoint` (RS): `thread`, the main thread of a process the
/// caller manages, leaves a restart tombstone with its endpoint when it dies.
pub fn service_keep_endpoint(thread: Endpoint) -> Result<u64, Error> {
    let arguments = ServiceKeepEndpointArgs { thread };
    // SAFETY: no memory of the caller is involved.
    unsafe { pm_call(ServiceKeepEndpointArgs::CALL, arguments.encode()) }
}

/// `KernelCall ServiceTakeOver` (RS): the replacement's main thread takes over the
/// tombstone's endpoint; `Busy` until it waits in its receive loop.
pub fn service_take_over(tombstone: Endpoint, replacement: Endpoint) -> Result<u64, Error> {
    let arguments = ServiceTakeOverArgs {
        tombstone,
        replacement,
    };
    // SAFETY: no memory of the caller is involved.
    unsafe { pm_call(ServiceTakeOverArgs::CALL, arguments.encode()) }
}

/// `KernelCall ServiceRelease` (RS): gives a tombstone up; its senders fail.
pub fn service_release(tombstone: Endpoint) -> Result<u64, Error> {
    let arguments = ServiceReleaseArgs { tombstone };
    // SAFETY: no memory of the caller is involved.
    unsafe { pm_call(ServiceReleaseArgs::CALL, arguments.encode()) }
}

/// `KernelCall ServiceSwap` (RS, live update): two quiescent main threads exchange their
/// endpoints; `Busy` unless both wait in their receive loops.
pub fn service_swap(a: Endpoint, b: Endpoint) -> Result<u64, Error> {
    let arguments = ServiceSwapArgs { a, b };
    // SAFETY: no memory of the caller is involved.
    unsafe { pm_call(ServiceSwapArgs::CALL, arguments.encode()) }
}

/// `KernelCall ServiceBacktrace` (RS): the backtrace of `thread`, held after a CPU
/// exception: its pc, then its return addresses (`vigil_abi::signal::BACKTRACE_FRAMES` at
/// most), and how many there are.
pub fn service_backtrace(thread: Endpoint) -> Result<(vigil_abi::signal::Backtrace, usize), Error> {
    let mut out: vigil_abi::signal::Backtrace = [0; vigil_abi::signal::BACKTRACE_FRAMES];
    let buffer: &mut vigil_abi::signal::Backtrace = &mut out;
    let arguments = ServiceBacktraceArgs {
        thread,
        out: UserPtr::from_ref(buffer),
    };
    // SAFETY: the kernel writes the words of `out`, exclusively ours until it returns.
    let count = unsafe { pm_call(ServiceBacktraceArgs::CALL, arguments.encode()) }?;
    Ok((
        out,
        (count as usize).min(vigil_abi::signal::BACKTRACE_FRAMES),
    ))
}

/// `KernelCall ServiceSystemCrash` (RS): the oldest crash of a system server the kernel
/// reported before ending it (`vigil_abi::signal::system_crash`), or None.
pub fn service_system_crash() -> Result<Option<vigil_abi::signal::SystemCrash>, Error> {
    let mut out: vigil_abi::signal::SystemCrash = [0; vigil_abi::signal::system_crash::WORDS];
    let buffer: &mut vigil_abi::signal::SystemCrash = &mut out;
    let arguments = ServiceSystemCrashArgs {
        out: UserPtr::from_ref(buffer),
    };
    // SAFETY: the kernel writes the words of `out`, exclusively ours until it returns.
    let collected = unsafe { pm_call(ServiceSystemCrashArgs::CALL, arguments.encode()) }?;
    Ok((collected == 1).then_some(out))
}

/// `KernelCall PmResumeThread` (signal manager): a held thread runs again.
pub fn pm_resume_thread(thread: Endpoint) -> Result<u64, Error> {
    let arguments = PmResumeThreadArgs { thread };
    // SAFETY: no memory of the caller is involved.
    unsafe { pm_call(PmResumeThreadArgs::CALL, arguments.encode()) }
}

/// `KernelCall PmSetSignalManager` (PM): process `manager` manages `pid` from now on.
pub fn pm_set_signal_manager(pid: Pid, manager: Pid) -> Result<u64, Error> {
    let arguments = PmSetSignalManagerArgs {
        process: pid,
        manager,
    };
    // SAFETY: no memory of the caller is involved.
    unsafe { pm_call(PmSetSignalManagerArgs::CALL, arguments.encode()) }
}

/// `KernelCall PmSignal` (signal manager): interrupts `pid`'s waits and, with a non-zero
/// `handler`, delivers `signal` into it; returns the number of waits interrupted.
pub fn pm_signal(pid: Pid, signal: vigil_abi::signal::Signal, handler: u64) -> Result<u64, Error> {
    let arguments = PmSignalArgs {
        process: pid,
        signal,
        handler,
    };
    // SAFETY: no memory of the caller is involved.
    unsafe { pm_call(PmSignalArgs::CALL, arguments.encode()) }
}

/// `KernelCall PmStop` (signal manager): `pid`'s threads stop running.
pub fn pm_stop(pid: Pid) -> Result<u64, Error> {
    let arguments = PmStopArgs { process: pid };
    // SAFETY: no memory of the caller is involved.
    unsafe { pm_call(PmStopArgs::CALL, arguments.encode()) }
}

/// `KernelCall PmResume` (signal manager): a stopped `pid` runs again.
pub fn pm_resume(pid: Pid) -> Result<u64, Error> {
    let arguments = PmResumeArgs { process: pid };
    // SAFETY: no memory of the caller is involved.
    unsafe { pm_call(PmResumeArgs::CALL, arguments.encode()) }
}

/// `KernelCall PmSignalDirect` (signal manager): the signals of `set` are the ones `pid`
/// may raise itself (`SignalRaise`), into `handler`.
pub fn pm_signal_direct(
    pid: Pid,
    set: vigil_abi::signal::CatchableSet,
    handler: u64,
) -> Result<u64, Error> {
    let arguments = PmSignalDirectArgs {
        process: pid,
        set,
        handler,
    };
    // SAFETY: no memory of the caller is involved.
    unsafe { pm_call(PmSignalDirectArgs::CALL, arguments.encode()) }
}

/// `SignalRaise`: the caller's process signals itself with `signal`, if its manager lets
/// it do so directly; the handler has run when this returns `Ok`. `NotReady`: ask the
/// manager (`signal::kill` does).
pub fn signal_raise(signal: vigil_abi::signal::Signal) -> Result<u64, Error> {
    signal_raise_raw(signal.number())
}

/// `SignalRaise` with a raw number (for tests of the kernel's checks).
pub fn signal_raise_raw(number: u64) -> Result<u64, Error> {
    // SAFETY: the kernel may run a signal handler before the call returns; the frame it
    // pushes lies below the red zone and every register comes back as it was (RAX = the
    // result), so to this code it is a call that may change memory, as any asm! here.
    let rax = unsafe { syscall1(Syscall::SignalRaise as u64, number) };
    Error::from_return_value(rax)
}

/// `SignalReturn`: ends a signal handler by restoring the frame at `frame`. Returns only
/// if the kernel refused the frame (with why).
///
/// # Safety
/// `frame` must be the frame the kernel passed to this thread's handler, and the handler
/// must be done with everything on the stack above it: the thread continues where the
/// signal interrupted it.
pub unsafe fn signal_return(frame: u64) -> Error {
    // SAFETY: the caller guarantees the frame is this thread's; on success the kernel
    // replaces every register, so nothing after the instruction runs.
    let rax = unsafe { syscall1(Syscall::SignalReturn as u64, frame) };
    Error::from_return_value(rax)
        .err()
        .unwrap_or(Error::InvalidArgument)
}
