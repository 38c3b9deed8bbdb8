//! Signals: catch, ignore or restore the default action of a signal (`action`), block and
//! unblock them (`mask`), and send one to a process (`kill`).
//!
//! The process manager keeps every process's signal state and decides; this runtime keeps
//! only the table of handler functions and the trampoline the kernel enters: PM's
//! `PmSignal` names the trampoline, the kernel pushes a signal frame on the interrupted
//! thread's stack and starts the trampoline with the signal number and the frame's
//! address; the trampoline calls the handler and returns through `SignalReturn`, which
//! restores the interrupted registers (x87/SSE state included). A handler runs on the
//! interrupted thread's stack, so it must not take a lock that thread may hold.
//!
//! A signal to the caller's own process first tries `SignalRaise`: PM mirrors into the
//! kernel the signals this process catches and has not masked (`PmSignalDirect`), and for
//! those the kernel enters the handler at once, with no message to PM. Every other signal
//! to oneself (`NotReady` there) is PM's `SIGNAL` as before. The runtime learns its own
//! pid from PM's answer to `SIGACTION`, so a process that never set a handler never makes
//! the extra call.
//!
//! ```ignore
//! fn on_usr1(_: Signal) { COUNT.fetch_add(1, Ordering::Relaxed); }
//! signal::action(Signal::USR1, Action::Handler(on_usr1))?;
//! signal::kill(own_pid, Signal::USR1)?; // on_usr1 has run when this returns
//! ```

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use vigil_abi::pm::{mask_how, request, signal_action};
use vigil_abi::signal::Signal;
use vigil_abi::Error;

use crate::ipc;

/// What a process does with a signal.
#[derive(Clone, Copy, Debug)]
pub enum Action {
    /// The signal's default action (`Signal::default_action`).
    Default,
    /// Nothing.
    Ignore,
    /// This function runs (in the thread the signal interrupted).
    Handler(fn(Signal)),
}

/// Handlers by signal number (a `fn(Signal)` as usize; 0 = none).
static HANDLERS: [AtomicUsize; 64] = [const { AtomicUsize::new(0) }; 64];

/// PM's endpoint, once looked up (0 before).
static PM: AtomicU64 = AtomicU64::new(0);

/// This process's pid, from PM's answer to `SIGACTION` (0 before the first one).
static OWN_PID: AtomicU64 = AtomicU64::new(0);

/// This process's pid, once a `SIGACTION` answer has told it (`action`); None before.
pub fn own_pid() -> Option<u64> {
    match OWN_PID.load(Ordering::Relaxed) {
        0 => None,
        pid => Some(pid),
    }
}

/// Sends `kind` with `payload` to PM; the reply's payload or PM's refusal.
fn call(kind: u32, payload: [u64; 6]) -> Result<[u64; 6], Error> {
    let server = match PM.load(Ordering::Relaxed) {
        0 => {
            let server = crate::pm::server()?;
            PM.store(server.0, Ordering::Relaxed);
            server
        }
        known => vigil_abi::Endpoint(known),
    };
    ipc::request(server, kind, payload, request::REPLY)
}

/// Sets what the caller's process does with `signal`. `InvalidArgument` for KILL and STOP.
pub fn action(signal: Signal, action: Action) -> Result<(), Error> {
    if !signal.catchable() {
        return Err(Error::InvalidArgument);
    }
    let (kind, entry) = match action {
        Action::Default => (signal_action::DEFAULT, 0),
        Action::Ignore => (signal_action::IGNORE, 0),
        Action::Handler(handler) => {
            HANDLERS[signal.number() as usize].store(handler as usize, Ordering::Release);
            (
                signal_action::CATCH,
                trampoline as *const () as usize as u64,
            )
        }
    };
    let reply = call(request::SIGACTION, [signal.number(), kind, entry, 0, 0, 0])?;
    OWN_PID.store(reply[2], Ordering::Relaxed);
    Ok(())
}

/// Changes the caller's signal mask (`how`: `mask_how::SET`, `BLOCK` or `UNBLOCK`; bit
/// `n` of `set` for signal `n`) and returns the previous mask. Pending signals it unblocks
/// are delivered before it returns.
pub fn mask(how: u64, set: u64) -> Result<u64, Error> {
    call(request::SIGMASK, [how, set, 0, 0, 0, 0]).map(|reply| reply[1])
}

/// Blocks the signals of `set` (see `mask`).
pub fn block(set: u64) -> Result<u64, Error> {
    mask(mask_how::BLOCK, set)
}

/// Unblocks the signals of `set` (see `mask`).
pub fn unblock(set: u64) -> Result<u64, Error> {
    mask(mask_how::UNBLOCK, set)
}

/// Sends `signal` to process `pid` (the caller's own too: a caught signal's handler has
/// run when this returns).
pub fn kill(pid: u64, signal: Signal) -> Result<(), Error> {
    if pid != 0 && pid == OWN_PID.load(Ordering::Relaxed) {
        match crate::syscall::signal_raise(signal) {
            Ok(_) => return Ok(()),
            // Not one the kernel may deliver itself: PM decides.
            Err(Error::NotReady) => {}
            Err(error) => return Err(error),
        }
    }
    call(request::SIGNAL, [pid, signal.number(), 0, 0, 0, 0]).map(|_| ())
}

/// Where the kernel enters a handler: RDI = the signal, RSI = the signal frame.
extern "C" fn trampoline(number: u64, frame: u64) -> ! {
    let handler = HANDLERS
        .get(number as usize)
        .map_or(0, |slot| slot.load(Ordering::Acquire));
    if let (Ok(signal), true) = (Signal::new(number), handler != 0) {
        // SAFETY: only `action` stores into HANDLERS, and only `fn(Signal)` values.
        let handler: fn(Signal) = unsafe { core::mem::transmute::<usize, fn(Signal)>(handler) };
        handler(signal);
    }
    // SAFETY: `frame` is the frame the kernel built for this entry, and nothing of the
    // handler's stays in use above it.
    let error = unsafe { crate::syscall::signal_return(frame) };
    panic!("SignalReturn refused the kernel's own frame: {error}");
}
