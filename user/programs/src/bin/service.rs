//! `service`: the operator's tool for the reincarnation server (MINIX's `service`). A
//! `boot=pm` program, run as `service -- list` or `service -- ACTION NAME`:
//! - `list`: a table of RS's services and the system servers (RS's INTROSPECT services
//!   topic): name, state, pid, restarts, version and the last failure with its time, and
//!   under a failure by an exception its backtrace (the services-backtraces topic), one
//!   frame a line in the kernel's format (`#0 pc  0x… (PROGRAM)`, which the host's
//!   symbolizer names);
//! - `up|down|restart|refresh|hold|release NAME`: RS's `ACTION` on the service named NAME
//!   (only RS's operators may: `operator=service` on RS's boot line).
//!
//! Bad usage prints the help; RS's refusals are said plainly (not an operator, no such
//! service, not allowed in its state, a system server). Exit status: 0 done, 1 bad usage,
//! 2 not an operator, 3 no such service, 4 refused or failed otherwise, 5 a system server
//! (not restartable).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use vigil_rt::abi::rs::{
    pack_name, request, FailureText, ServiceAction, ServiceState, RS_SERVER_NAME,
    SYSTEM_SERVER_REFUSAL,
};
use vigil_rt::abi::server_introspect::{text_of, ServiceRecord};
use vigil_rt::{ipc, println, server_introspect, Endpoint, Error};

vigil_rt::entry!(main);

const USAGE: &str = "usage: service list
       service up|down|restart|refresh|hold|release NAME
       service update NAME PROGRAM [timeout=MS]
  list      every service RS supervises: state, pid, restarts, version, last failure
  up        start a service that is down
  down      stop it; RS does not restart it until 'up'
  restart   end it if it runs and start a new instance now (a held-down one too)
  refresh   replace a running, healthy instance with a fresh one
  hold      keep it running but do not restart it when it ends
  release   clear a hold (or a crash-loop hold) and start it again if it is held down
  update    live update to the boot=pm PROGRAM, rolled back if it fails its grace period
            (timeout: how long the old version has to reach a quiescent point)";

/// Exit statuses.
const DONE: i32 = 0;
const BAD_USAGE: i32 = 1;
const NOT_AN_OPERATOR: i32 = 2;
const NO_SUCH_SERVICE: i32 = 3;
const REFUSED: i32 = 4;
const SYSTEM_SERVER: i32 = 5;

/// After a `PermissionDenied`: whether service `index` is a system server (RS refuses every
/// action on one with that error, as it refuses a non-operator).
fn is_system_server(rs: Endpoint, index: u64) -> bool {
    call(rs, request::SERVICE_STATUS, [index, 0, 0, 0, 0, 0])
        .ok()
        .and_then(|reply| ServiceState::from_code(reply[1]))
        .is_some_and(ServiceState::is_system)
}

fn main(args: &str) -> i32 {
    let words: Vec<&str> = args.split_ascii_whitespace().collect();
    let rs = match ipc::lookup(RS_SERVER_NAME) {
        Ok(rs) => rs,
        Err(error) => {
            println!("service: no reincarnation server ('{RS_SERVER_NAME}': {error})");
            return REFUSED;
        }
    };
    match words.as_slice() {
        ["list"] => list(rs),
        ["update", name, program] => update(rs, name, program, 0),
        ["update", name, program, timeout] => match timeout
            .strip_prefix("timeout=")
            .and_then(|ms| ms.parse::<u64>().ok())
        {
            Some(ms) if ms > 0 => update(rs, name, program, ms),
            _ => usage(&alloc::format!("bad timeout '{timeout}' (timeout=MS)")),
        },
        [word, name] => match ServiceAction::from_name(word) {
            Some(action) => act(rs, action, name),
            None => usage(&alloc::format!("unknown action '{word}'")),
        },
        [] => usage("no command"),
        _ => usage(&alloc::format!("cannot read '{}'", args.trim())),
    }
}

fn usage(problem: &str) -> i32 {
    println!("service: {problem}");
    // One line per print: the console cuts very long writes.
    for line in USAGE.lines() {
        println!("{line}");
    }
    BAD_USAGE
}

/// One request to RS: the reply's payload, or RS's refusal.
fn call(rs: Endpoint, kind: u32, payload: [u64; 6]) -> Result<[u64; 6], Error> {
    ipc::request(rs, kind, payload, request::REPLY)
}

/// `update NAME PROGRAM`: answered when RS's update ends.
fn update(rs: Endpoint, name: &str, program: &str, timeout_ms: u64) -> i32 {
    let index = match pack_name(name).and_then(|packed| call(rs, request::SERVICE_INDEX, packed)) {
        Ok(reply) => reply[1],
        Err(error) => {
            println!("service: no such service '{name}' ({error})");
            return NO_SUCH_SERVICE;
        }
    };
    let payload = match vigil_rt::abi::rs::update::pack(index, program, timeout_ms) {
        Ok(payload) if program.len() <= 24 => payload,
        _ => {
            return usage(&alloc::format!(
                "bad program name '{program}' (1 to 24 bytes)"
            ))
        }
    };
    match call(rs, request::UPDATE, payload) {
        Ok(reply) => {
            println!(
                "service: update {name} to {program}: done, version {}",
                reply[1]
            );
            DONE
        }
        Err(Error::PermissionDenied) if is_system_server(rs, index) => {
            println!("service: update {name} refused: {SYSTEM_SERVER_REFUSAL}");
            SYSTEM_SERVER
        }
        Err(Error::PermissionDenied) => {
            println!("service: update {name} refused: not an operator (RS's operator= list)");
            NOT_AN_OPERATOR
        }
        Err(Error::Restarted) => {
            println!("service: update {name} to {program}: rolled back (RS's console says why)");
            REFUSED
        }
        Err(Error::Interrupted) => {
            println!("service: update {name} to {program}: cancelled, the old version serves on");
            REFUSED
        }
        Err(error) => {
            println!("service: update {name} to {program} refused: {error}");
            REFUSED
        }
    }
}

fn act(rs: Endpoint, action: ServiceAction, name: &str) -> i32 {
    let index = match pack_name(name).and_then(|packed| call(rs, request::SERVICE_INDEX, packed)) {
        Ok(reply) => reply[1],
        Err(Error::NotFound) => {
            println!("service: no such service '{name}' (service list shows them)");
            return NO_SUCH_SERVICE;
        }
        Err(error) => {
            println!("service: bad service name '{name}': {error}");
            return NO_SUCH_SERVICE;
        }
    };
    match call(rs, request::ACTION, [index, action as u64, 0, 0, 0, 0]) {
        Ok(_) => {
            println!("service: {} {name}: done", action.name());
            DONE
        }
        Err(Error::PermissionDenied) if is_system_server(rs, index) => {
            println!(
                "service: {} {name} refused: {SYSTEM_SERVER_REFUSAL}",
                action.name()
            );
            SYSTEM_SERVER
        }
        Err(Error::PermissionDenied) => {
            println!(
                "service: {} {name} refused: not an operator (RS's operator= list)",
                action.name()
            );
            NOT_AN_OPERATOR
        }
        Err(Error::NotFound) => {
            println!("service: no such service '{name}' (it went away)");
            NO_SUCH_SERVICE
        }
        Err(Error::NotReady) => {
            println!(
                "service: {} {name} refused: it is not running (use restart or up)",
                action.name()
            );
            REFUSED
        }
        Err(Error::Exists) => {
            println!("service: {} {name} refused: it is not down", action.name());
            REFUSED
        }
        Err(error) => {
            println!("service: {} {name} failed: {error}", action.name());
            REFUSED
        }
    }
}

fn list(rs: Endpoint) -> i32 {
    let services = match server_introspect::services(rs) {
        Ok(services) => services,
        Err(error) => {
            println!("service: RS's services could not be read: {error}");
            return REFUSED;
        }
    };
    println!(
        "{:<5} {:<16} {:<13} {:>5} {:>8} {:>7}  LAST FAILURE",
        "INDEX", "NAME", "STATE", "PID", "RESTARTS", "VERSION"
    );
    // Without the backtraces (an older RS) the table is still printed.
    let backtraces = server_introspect::service_backtraces(rs).unwrap_or_default();
    for service in &services {
        println!("{}", row(service));
        let Some(backtrace) = backtraces.iter().find(|b| b.index == service.index) else {
            continue;
        };
        let program = core::str::from_utf8(text_of(&service.program)).unwrap_or("?");
        for (index, address) in backtrace.frames().iter().enumerate() {
            let kind = if index == 0 { "pc " } else { "ret" };
            println!("      #{index} {kind} {address:#018x} ({program})");
        }
    }
    println!("service: {} services", services.len());
    DONE
}

fn row(service: &ServiceRecord) -> alloc::string::String {
    let name = core::str::from_utf8(text_of(&service.name)).unwrap_or("?");
    let state = ServiceState::from_code(u64::from(service.state)).map_or("?", ServiceState::name);
    let state = if service.held != 0 {
        alloc::format!("{state}+held")
    } else {
        alloc::string::String::from(state)
    };
    let failure = FailureText {
        reason: service.last_reason,
        detail: service.last_detail,
    };
    let when = if service.last_failure_ns == 0 {
        alloc::string::String::new()
    } else {
        let ms = service.last_failure_ns / 1_000_000;
        alloc::format!(" at {}.{:03} s", ms / 1000, ms % 1000)
    };
    alloc::format!(
        "{:<5} {:<16} {:<13} {:>5} {:>8} {:>7}  {failure}{when}",
        service.index,
        name,
        state,
        service.pid,
        service.restarts,
        service.version
    )
}
