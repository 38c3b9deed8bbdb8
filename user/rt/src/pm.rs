//! Requests to the process manager (PM): spawn a boot module as a child, wait for a child,
//! kill a process.
//!
//! PM is the boot process named `pm`; each call is one `SendReceive` with a
//! `vigil_abi::pm::request` message, answered with `REPLY` (outcome in `payload[0]`).

use vigil_abi::pm::{request, spawn_flags, wait_flags, ANY_CHILD};
use vigil_abi::{Endpoint, Error};

use crate::ipc;

/// PM's endpoint (`NotFound` if there is none).
pub fn server() -> Result<Endpoint, Error> {
    ipc::lookup(vigil_abi::pm::PM_SERVER_NAME)
}

/// Sends `kind` with `payload` to PM and returns the reply's payload, or PM's refusal.
pub(crate) fn call(server: Endpoint, kind: u32, payload: [u64; 6]) -> Result<[u64; 6], Error> {
    ipc::request(server, kind, payload, request::REPLY)
}

/// Starts boot module `program` (a `boot=pm` module's name) as a child of the caller,
/// with `arguments` (empty: the module's own); returns the child's pid. `NotFound` for no
/// such module, `InvalidArgument` for a malformed image or text that is too long.
pub fn spawn(program: &str, arguments: &str) -> Result<u64, Error> {
    spawn_with(program, arguments, 0)
}

/// `spawn`, and the caller becomes the child's signal manager (`spawn_flags::CALLER_MANAGES`:
/// its exceptions are events for the caller, collected with `PmNextEvent`).
pub fn spawn_managed(program: &str, arguments: &str) -> Result<u64, Error> {
    spawn_with(program, arguments, spawn_flags::CALLER_MANAGES)
}

/// `spawn_managed` with `arguments` appended to the module's own (`APPEND_ARGUMENTS`).
pub fn spawn_managed_appending(program: &str, arguments: &str) -> Result<u64, Error> {
    spawn_with(
        program,
        arguments,
        spawn_flags::CALLER_MANAGES | spawn_flags::APPEND_ARGUMENTS,
    )
}

fn spawn_with(program: &str, arguments: &str, flags: u64) -> Result<u64, Error> {
    let mut text = alloc::string::String::with_capacity(program.len() + 4 + arguments.len());
    text.push_str(program);
    if !arguments.is_empty() {
        text.push_str(" -- ");
        text.push_str(arguments);
    }
    spawn_text_with(text.as_bytes(), flags)
}

/// `spawn` with the raw request text (`PROGRAM [-- ARGUMENTS]`).
pub fn spawn_text(text: &[u8]) -> Result<u64, Error> {
    spawn_text_with(text, 0)
}

/// `spawn_text` with `spawn_flags` (unknown ones are `InvalidArgument`).
pub fn spawn_text_with(text: &[u8], flags: u64) -> Result<u64, Error> {
    let server = server()?;
    ipc::with_read_grant(server, text, |grant| {
        call(
            server,
            request::SPAWN,
            [grant.0, text.len() as u64, flags, 0, 0, 0],
        )
    })?
    .map(|reply| reply[1])
}

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exited {
    pub pid: u64,
    pub status: u64,
}

/// Waits for child `pid` (or any child with `None`) to exit and collects it. `NotFound`
/// if the caller has no such child.
pub fn wait(pid: Option<u64>) -> Result<Exited, Error> {
    wait_with(pid, 0).map(|exited| exited.unwrap_or(Exited { pid: 0, status: 0 }))
}

/// `wait` that answers at once: None if the child (or no child) has exited yet.
pub fn try_wait(pid: Option<u64>) -> Result<Option<Exited>, Error> {
    wait_with(pid, wait_flags::NO_HANG)
}

fn wait_with(pid: Option<u64>, flags: u64) -> Result<Option<Exited>, Error> {
    let reply = call(
        server()?,
        request::WAIT,
        [pid.unwrap_or(ANY_CHILD), flags, 0, 0, 0, 0],
    )?;
    Ok((reply[1] != 0).then_some(Exited {
        pid: reply[1],
        status: reply[2],
    }))
}

/// Ends process `pid` with exit status `status`.
pub fn kill(pid: u64, status: u64) -> Result<(), Error> {
    call(server()?, request::KILL, [pid, status, 0, 0, 0, 0]).map(|_| ())
}
