//! Threads: `spawn` a closure, `join` it, and the calling thread's identity, sleep and yield.

use alloc::boxed::Box;
use core::time::Duration;

use vigil_abi::layout::{thread_info_address, ThreadInfo};
use vigil_abi::{Endpoint, Error};

use crate::syscall;

/// The boxed closure a new thread runs; its address is the thread's start argument.
type ThreadBody = Box<dyn FnOnce() + Send + 'static>;

/// The `ThreadInfo` the kernel keeps at the top of the calling thread's stack region.
pub fn info() -> ThreadInfo {
    let stack_pointer: u64;
    // SAFETY: reading RSP has no side effects.
    unsafe {
        core::arch::asm!(
            "mov {}, rsp",
            out(reg) stack_pointer,
            options(nomem, nostack, preserves_flags),
        );
    }
    let address = thread_info_address(stack_pointer);
    // SAFETY: by the layout ABI every thread runs on a stack region whose top 64 bytes hold
    // its `ThreadInfo`, written by the kernel before the thread starts and mapped for as
    // long as the thread runs; the address is 64-byte aligned.
    unsafe { core::ptr::read_volatile(address as *const ThreadInfo) }
}

/// The calling thread's endpoint, read from its `ThreadInfo` (no system call).
pub fn current() -> Endpoint {
    Endpoint(info().endpoint)
}

/// How many times a service takeover or swap moved the calling thread to another endpoint
/// (`ThreadInfo::moves`): a service that sees it change between two messages knows that
/// another instance may have served its endpoint meanwhile (a live update rolled back).
pub fn moves() -> u64 {
    info().moves
}

/// Index of the calling thread within its process (0 = main thread).
pub fn index_in_process() -> u64 {
    info().index_in_process
}

/// Gives up the rest of the calling thread's quantum.
pub fn yield_now() {
    let _ = syscall::yield_now();
}

/// Sleeps at least `duration`.
pub fn sleep(duration: Duration) {
    let nanoseconds = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
    let _ = syscall::sleep_ns(nanoseconds);
}

/// Owns a thread started by [`spawn`]; `join` waits for it.
#[derive(Debug)]
#[must_use = "a thread that is never joined stays Dead in the thread table"]
pub struct JoinHandle {
    endpoint: Endpoint,
}

impl JoinHandle {
    /// The thread's endpoint (for IPC with it).
    pub fn endpoint(&self) -> Endpoint {
        self.endpoint
    }

    /// Waits for the thread to exit and returns its exit code (0 after its closure returned).
    pub fn join(self) -> Result<u64, Error> {
        syscall::thread_join(self.endpoint)
    }
}

/// Starts a thread running `body`; panics if the kernel refuses (see [`try_spawn`]).
pub fn spawn<F>(body: F) -> JoinHandle
where
    F: FnOnce() + Send + 'static,
{
    match try_spawn(body) {
        Ok(handle) => handle,
        Err(error) => panic!("thread::spawn: ThreadCreate failed: {error}"),
    }
}

/// Starts a thread running `body`, or returns the kernel's error (e.g. OutOfResources).
pub fn try_spawn<F>(body: F) -> Result<JoinHandle, Error>
where
    F: FnOnce() + Send + 'static,
{
    let body: Box<ThreadBody> = Box::new(Box::new(body));
    let argument = Box::into_raw(body);
    // SAFETY: `thread_entry` is an entry point for a fresh stack (it aligns the stack and
    // never returns), and `argument` is a leaked `Box<ThreadBody>` that it takes over.
    match unsafe { syscall::thread_create(thread_entry as *const () as u64, argument as u64) } {
        Ok(endpoint) => Ok(JoinHandle {
            endpoint: Endpoint(endpoint),
        }),
        Err(error) => {
            // SAFETY: the thread was not created, so the box is still ours alone.
            drop(unsafe { Box::from_raw(argument) });
            Err(error)
        }
    }
}

/// Where a new thread starts: RDI = the `Box<ThreadBody>` pointer, RSI = its endpoint.
/// Clears RBP (so backtraces end here), aligns the stack and calls [`run_thread`].
#[unsafe(naked)]
extern "C" fn thread_entry() -> ! {
    core::arch::naked_asm!(
        "xor ebp, ebp",
        "and rsp, -16",
        "call {run}",
        "ud2",
        run = sym run_thread,
    )
}

/// Runs the thread's closure, then ends the thread with exit code 0.
extern "C" fn run_thread(argument: *mut ThreadBody, _endpoint: u64) -> ! {
    // SAFETY: `try_spawn` passed a pointer from `Box::into_raw` and gave up ownership; this
    // thread is the only one that reconstructs it, once.
    let body = unsafe { Box::from_raw(argument) };
    body();
    syscall::thread_exit(0)
}
