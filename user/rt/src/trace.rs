//! Tracing another process through PM (`vigil_abi::ptrace::request`): attach or spawn
//! traced, continue to the next stop, wait for it, read and write registers and memory.
//!
//! `resume_and_wait` and `wait` for one pid try the kernel's direct path first
//! (`TraceResumeWait`, `vigil_abi::ptrace::direct`: the stop comes straight from the
//! kernel) and ask PM whenever it answers that PM must (or fails): the caller cannot tell
//! but by `TraceEvent::direct`.

use vigil_abi::ptrace::request::{self, mode, TRACE};
use vigil_abi::ptrace::{direct, Registers, ResumeMode, TraceFlags, REGISTER_WORDS};
use vigil_abi::syscall::TraceResumeWaitArgs;
use vigil_abi::user_memory::UserPtr;
use vigil_abi::vm::Pid;
use vigil_abi::{Endpoint, Error};

use crate::{ipc, pm};

/// A stop or the end of a tracee (`WAIT`'s answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    pub pid: u64,
    pub thread: Endpoint,
    /// `vigil_abi::ptrace::request::event::*`.
    pub kind: u64,
    pub rip: u64,
    /// The call's number (entry), its result (exit), the exit status (EXITED), the parent
    /// (ATTACHED of a followed child).
    pub value: u64,
    /// The kernel handed this stop straight to the caller (`TraceResumeWait`); false when
    /// it came from PM.
    pub direct: bool,
}

/// What one `TraceResumeWait` gave.
enum Direct {
    Stop(TraceEvent),
    /// Resumed (or running), then something PM knows of: PM's WAIT.
    AskManager,
    /// Nothing done (or the call refused): PM does it all.
    NotDone,
}

/// `TraceResumeWait` (system call 26) for tracee `pid` itself: `direct::STOPPED` with the
/// stop in `record`, `direct::ASK_MANAGER`, `direct::NOT_AT_STOP`, or the kernel's refusal
/// (`PermissionDenied` unless PM registered the caller as `pid`'s tracer, `NotFound` for no
/// such process). `resume_and_wait` and `wait` use it and fall back to PM; a test can tell
/// the results apart with it.
pub fn resume_wait_kernel(
    pid: u64,
    how: ResumeMode,
    record: &mut [u64; direct::RECORD_WORDS],
) -> Result<u64, Error> {
    let process = u32::try_from(pid).map(Pid).map_err(|_| Error::NotFound)?;
    let registers = TraceResumeWaitArgs {
        process,
        mode: how,
        out: UserPtr::from_ref(record),
    }
    .encode();
    // SAFETY: the kernel writes only the words of `record`, exclusively ours until the
    // call returns.
    let result = unsafe {
        crate::syscall::syscall3(
            TraceResumeWaitArgs::CALL as u64,
            registers[0],
            registers[1],
            registers[2],
        )
    };
    Error::from_return_value(result)
}

/// [`resume_wait_kernel`], its result sorted for the fallback to PM.
fn resume_wait_direct(pid: u64, how: ResumeMode) -> Direct {
    let mut record = [0u64; direct::RECORD_WORDS];
    match resume_wait_kernel(pid, how, &mut record) {
        Ok(direct::STOPPED) => Direct::Stop(TraceEvent {
            pid,
            thread: Endpoint(record[direct::THREAD]),
            kind: record[direct::KIND],
            rip: record[direct::RIP],
            value: record[direct::VALUE],
            direct: true,
        }),
        Ok(direct::ASK_MANAGER) => Direct::AskManager,
        _ => Direct::NotDone,
    }
}

/// The trace flags of a CONTINUE mode, if it is one.
fn flags_of(how: u64) -> Option<TraceFlags> {
    match how {
        mode::RUN => Some(TraceFlags::NONE),
        mode::SYSCALLS => Some(TraceFlags::SYSCALLS),
        mode::STEP => Some(TraceFlags::STEP),
        _ => None,
    }
}

fn trace(payload: [u64; 6]) -> Result<[u64; 6], Error> {
    pm::call(pm::server()?, TRACE, payload)
}

/// Traces `pid` from now on (it stops: an ATTACHED event comes).
pub fn attach(pid: u64, options: u64) -> Result<(), Error> {
    trace([request::ATTACH, pid, options, 0, 0, 0]).map(|_| ())
}

/// Spawns `text` (`PROGRAM [-- ARGUMENTS]`) as a child of the caller, traced from its first
/// instruction; returns its pid.
pub fn spawn(text: &str, options: u64) -> Result<u64, Error> {
    let server = pm::server()?;
    ipc::with_read_grant(server, text.as_bytes(), |grant| {
        pm::call(
            server,
            TRACE,
            [request::SPAWN, grant.0, text.len() as u64, options, 0, 0],
        )
    })?
    .map(|reply| reply[1])
}

/// Stops tracing `pid`; it runs on.
pub fn detach(pid: u64) -> Result<(), Error> {
    trace([request::DETACH, pid, 0, 0, 0, 0]).map(|_| ())
}

/// Lets the stopped `pid` run to its next stop (`request::mode::*`).
pub fn resume(pid: u64, mode: u64) -> Result<(), Error> {
    trace([request::CONTINUE, pid, mode, 0, 0, 0]).map(|_| ())
}

/// `resume` then `wait(pid)` in one call: the kernel's direct path when the tracee is held
/// at a trace stop, else PM's RESUME_WAIT.
pub fn resume_and_wait(pid: u64, how: u64) -> Result<TraceEvent, Error> {
    if let Some(flags) = flags_of(how) {
        match resume_wait_direct(pid, ResumeMode::Resume(flags)) {
            Direct::Stop(event) => return Ok(event),
            Direct::AskManager => return pm_wait(pid, 0).map(event_of),
            Direct::NotDone => {}
        }
    }
    let reply = trace([request::RESUME_WAIT, pid, how, 0, 0, 0])?;
    Ok(event_of(reply))
}

fn event_of(reply: [u64; 6]) -> TraceEvent {
    TraceEvent {
        pid: reply[1],
        thread: Endpoint(reply[2]),
        kind: reply[3],
        rip: reply[4],
        value: reply[5],
        direct: false,
    }
}

/// PM's WAIT.
fn pm_wait(pid: u64, flags: u64) -> Result<[u64; 6], Error> {
    trace([request::WAIT, pid, flags, 0, 0, 0])
}

/// The next event of tracee `pid` (0: any), waiting for it; None only with `no_hang`. For
/// one running tracee the kernel's direct path waits; PM answers everything else.
pub fn wait(pid: u64, no_hang: bool) -> Result<Option<TraceEvent>, Error> {
    if pid != 0 && !no_hang {
        if let Direct::Stop(event) = resume_wait_direct(pid, ResumeMode::WaitOnly) {
            return Ok(Some(event));
        }
    }
    let flags = if no_hang { request::NO_HANG } else { 0 };
    let reply = pm_wait(pid, flags)?;
    Ok((reply[1] != 0).then(|| event_of(reply)))
}

/// The registers of a tracee's thread.
pub fn get_registers(thread: Endpoint) -> Result<Registers, Error> {
    let server = pm::server()?;
    let mut bytes = [0u8; REGISTER_WORDS * 8];
    ipc::with_write_grant(server, &mut bytes, |grant| {
        pm::call(
            server,
            TRACE,
            [request::GET_REGISTERS, thread.0, grant.0, 0, 0, 0],
        )
    })??;
    let mut words = [0u64; REGISTER_WORDS];
    for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        *word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
    }
    Ok(Registers::from_words(&words))
}

/// Replaces the registers of a tracee's thread.
pub fn set_registers(thread: Endpoint, registers: &Registers) -> Result<(), Error> {
    let server = pm::server()?;
    let mut bytes = [0u8; REGISTER_WORDS * 8];
    for (chunk, word) in bytes.chunks_exact_mut(8).zip(registers.to_words()) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    ipc::with_read_grant(server, &bytes, |grant| {
        pm::call(
            server,
            TRACE,
            [request::SET_REGISTERS, thread.0, grant.0, 0, 0, 0],
        )
    })?
    .map(|_| ())
}

/// Reads `buffer.len()` (1 ..= `MAX_PEEK_BYTES`) bytes of tracee `pid` at `address`.
pub fn peek(pid: u64, address: u64, buffer: &mut [u8]) -> Result<(), Error> {
    let server = pm::server()?;
    let len = buffer.len() as u64;
    ipc::with_write_grant(server, buffer, |grant| {
        pm::call(
            server,
            TRACE,
            [request::PEEK, pid, address, grant.0, len, 0],
        )
    })?
    .map(|_| ())
}

/// Writes `data` (1 ..= `MAX_PEEK_BYTES` bytes) into tracee `pid` at `address`.
pub fn poke(pid: u64, address: u64, data: &[u8]) -> Result<(), Error> {
    let server = pm::server()?;
    ipc::with_read_grant(server, data, |grant| {
        pm::call(
            server,
            TRACE,
            [request::POKE, pid, address, grant.0, data.len() as u64, 0],
        )
    })?
    .map(|_| ())
}
