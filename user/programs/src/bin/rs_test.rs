//! `rs_test`: judges the reincarnation server (scenarios `rs-restart`, `rs-crash-loop`,
//! `rs-bad-requests`). Its argument picks the part:
//! - `restart` (an operator of RS): increments `hello_service`, ends it by a null
//!   dereference, a panic and `EXIT(7)` (each fatal call fails with `Restarted`: the
//!   instance died holding it), and each time sees the new instance answer at the same
//!   endpoint, which the name still names (its counter back at 0: no state is kept yet),
//!   and RS's record say restart N with that reason; then `HANG`: RS's missed heartbeats
//!   end it; then an operator `RESTART`. The time from the fatal request to the new
//!   instance's first answer is printed (guest time, not asserted).
//! - `crash-loop`: `crashy` (hello_service -- crash-on-start) crashes at every start: RS backs off and holds it down
//!   after its limit with an alert; `RESTART` (as an operator) runs the loop once more;
//!   `hello_service` keeps serving meanwhile.
//! - `bad` (not an operator): every bad request to RS and to hello gets its own error and
//!   both keep serving.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::time::Duration;

use vigil_programs::{context, expect_refusal, finish, lookup_with_retry};
use vigil_rt::abi::rs::{self, hello, pack_name, reason, ServiceState, RS_SERVER_NAME};
use vigil_rt::{ipc, println, thread, time, Endpoint, Error, Message};

vigil_rt::entry!(main);

/// Attempts, 2 ms apart, to find a restarted service (a bound, not a timing assertion).
const RECONNECT_ATTEMPTS: u32 = 2500;

/// One request; the whole reply, or the server's refusal.
fn call(server: Endpoint, kind: u32, payload: [u64; 6], reply_kind: u32) -> Result<Message, Error> {
    let mut message = Message::with_payload(kind, payload);
    ipc::send_receive(server, &mut message)?;
    ipc::reply_payload(&message, reply_kind)?;
    Ok(message)
}

fn hello_call(server: Endpoint, kind: u32, argument: u64) -> Result<u64, Error> {
    call(
        server,
        kind,
        [argument, 0, 0, 0, 0, 0],
        hello::request::REPLY,
    )
    .map(|reply| reply.payload[1])
}

fn rs_call(kind: u32, payload: [u64; 6]) -> Result<Message, Error> {
    let server = ipc::lookup(RS_SERVER_NAME)?;
    call(server, kind, payload, rs::request::REPLY)
}

/// RS's record of a service.
struct Status {
    state: Option<ServiceState>,
    restarts: u64,
    reason: u64,
    detail: u64,
    pid: u64,
    in_a_row: u32,
}

fn status(index: u64) -> Result<Status, String> {
    let reply = context(
        rs_call(rs::request::SERVICE_STATUS, [index, 0, 0, 0, 0, 0]),
        "SERVICE_STATUS",
    )?;
    let [_, state, restarts, reason, detail, pid] = reply.payload;
    Ok(Status {
        state: ServiceState::from_code(state),
        restarts,
        reason,
        detail,
        pid,
        in_a_row: reply.tag,
    })
}

fn service_index(name: &str) -> Result<u64, String> {
    let payload = context(pack_name(name), "pack_name")?;
    context(
        rs_call(rs::request::SERVICE_INDEX, payload),
        "SERVICE_INDEX",
    )
    .map(|r| r.payload[1])
}

/// The restarted service named `name` answering at `kept`, the endpoint it had: the GET
/// waits queued on the restart tombstone until the replacement serves it, and then the
/// name names `kept` again. Its counter.
fn reconnect(name: &str, kept: Endpoint) -> Result<(Endpoint, u64), String> {
    let counter = context(
        hello_call(kept, hello::request::GET, 0),
        "GET at the kept endpoint",
    )?;
    let mut last = Error::NotFound;
    for _ in 0..RECONNECT_ATTEMPTS {
        match ipc::lookup(name) {
            Ok(endpoint) if endpoint == kept => return Ok((kept, counter)),
            Ok(endpoint) => {
                return Err(format!(
                    "'{name}' answered at {kept} but is named {endpoint}"
                ))
            }
            Err(error) => last = error,
        }
        thread::sleep(Duration::from_millis(2));
    }
    Err(format!("'{name}' is not named again (last: {last})"))
}

fn main(args: &str) -> i32 {
    match args.trim() {
        "restart" => finish("rs_test", restart()),
        "crash-loop" => finish("rs_test", crash_loop()),
        "bad" => finish("rs_test", bad_requests()),
        other => finish("rs_test", Err(format!("unknown part '{other}'"))),
    }
}

fn restart() -> Result<String, String> {
    let name = hello::SERVICE_NAME;
    let mut server = lookup_with_retry(name)?;
    let index = service_index(name)?;
    let first = status(index)?;
    if first.state != Some(ServiceState::Running) || first.restarts != 0 {
        return Err(format!("not running at first: restarts {}", first.restarts));
    }
    for expected in 1..=5 {
        let counter = context(
            hello_call(server, hello::request::INCREMENT, 0),
            "INCREMENT",
        )?;
        if counter != expected {
            return Err(format!("INCREMENT gave {counter}, expected {expected}"));
        }
    }
    let added = context(hello_call(server, hello::request::ADD, 10), "ADD")?;
    if added != 15 {
        return Err(format!("ADD(10) gave {added}, expected 15"));
    }
    let kills = [
        (
            "null dereference",
            hello::request::CRASH,
            0,
            reason::EXCEPTION,
            14,
        ),
        ("panic", hello::request::PANIC, 0, reason::EXIT, 101),
        ("exit 7", hello::request::EXIT, 7, reason::EXIT, 7),
        // Never answered: RS's missed heartbeats end it, and this call with it.
        ("hang", hello::request::HANG, 0, reason::HANG, 3),
    ];
    for (round, (what, kind, argument, want_reason, want_detail)) in kills.into_iter().enumerate() {
        let before = time::now_ns();
        match hello_call(server, kind, argument) {
            Err(error @ Error::Restarted) => println!("{what}: the call failed with {error}"),
            other => return Err(format!("{what}: the call returned {other:?}")),
        }
        let (kept, counter) = reconnect(name, server)?;
        let latency_us = time::now_ns().saturating_sub(before) / 1000;
        if counter != 0 {
            return Err(format!(
                "{what}: the new instance's counter is {counter}, not 0"
            ));
        }
        server = kept;
        let record = status(index)?;
        let restarts = round as u64 + 1;
        if record.restarts != restarts
            || record.reason != want_reason
            || record.detail != want_detail
            || record.state != Some(ServiceState::Running)
        {
            return Err(format!(
                "{what}: RS says restarts {}, reason {} detail {}, expected {restarts}, {} {want_detail}",
                record.restarts,
                reason::name(record.reason),
                record.detail,
                reason::name(want_reason)
            ));
        }
        let counter = context(
            hello_call(server, hello::request::INCREMENT, 0),
            "INCREMENT",
        )?;
        if counter != 1 {
            return Err(format!(
                "{what}: INCREMENT after the restart gave {counter}"
            ));
        }
        println!(
            "{what}: restart {restarts} ({} {}), serving again at {server} (pid {}) {latency_us} us after the request",
            reason::name(record.reason),
            record.detail,
            record.pid
        );
    }
    // An operator's restart.
    context(
        rs_call(rs::request::RESTART, [index, 0, 0, 0, 0, 0]),
        "RESTART",
    )?;
    let (_, counter) = reconnect(name, server)?;
    let record = status(index)?;
    if record.restarts != 5 || record.reason != reason::REQUESTED || record.in_a_row != 0 {
        return Err(format!(
            "RESTART: RS says restarts {}, reason {}, {} in a row",
            record.restarts,
            reason::name(record.reason),
            record.in_a_row
        ));
    }
    println!("RESTART: restart 5 (requested), counter {counter}");
    Ok(String::from(
        "hello restarted after a null dereference, a panic, an exit, a hang and a RESTART, answering each time at the same endpoint",
    ))
}

fn crash_loop() -> Result<String, String> {
    let hello_server = lookup_with_retry(hello::SERVICE_NAME)?;
    let index = service_index("crashy")?;
    let held = wait_held(index)?;
    if held.restarts != 4 || held.in_a_row != 5 || held.reason != reason::EXCEPTION {
        return Err(format!(
            "held with restarts {}, {} in a row, reason {}; expected 4, 5, exception",
            held.restarts,
            held.in_a_row,
            reason::name(held.reason)
        ));
    }
    println!("crashy held down after 5 failures (4 restarts)");
    // Held means held: it stays down.
    thread::sleep(Duration::from_millis(200));
    let still = status(index)?;
    if still.state != Some(ServiceState::HeldDown) || still.restarts != 4 || still.pid != 0 {
        return Err(format!("no longer held: restarts {}", still.restarts));
    }
    // Another service is not disturbed by the loop.
    let counter = context(
        hello_call(hello_server, hello::request::INCREMENT, 0),
        "INCREMENT",
    )?;
    if counter != 1 {
        return Err(format!("hello_service's INCREMENT gave {counter}"));
    }
    context(
        rs_call(rs::request::RESTART, [index, 0, 0, 0, 0, 0]),
        "RESTART of a held service",
    )?;
    let again = wait_held(index)?;
    if again.restarts != 9 || again.in_a_row != 5 {
        return Err(format!(
            "after RESTART held with restarts {}, {} in a row; expected 9, 5",
            again.restarts, again.in_a_row
        ));
    }
    println!("after RESTART: held again with 9 restarts");
    Ok(String::from(
        "crash loop backed off, held down with an alert, RESTART ran it once more; hello_service served throughout",
    ))
}

/// RS's record of service `index` once it is held down (polled 10 ms apart, bounded).
fn wait_held(index: u64) -> Result<Status, String> {
    for _ in 0..1000 {
        let record = status(index)?;
        if record.state == Some(ServiceState::HeldDown) {
            return Ok(record);
        }
        thread::sleep(Duration::from_millis(10));
    }
    Err(String::from("the crash loop was never held down"))
}

fn bad_requests() -> Result<String, String> {
    let rs_server = lookup_with_retry(RS_SERVER_NAME)?;
    let hello_server = lookup_with_retry(hello::SERVICE_NAME)?;
    let index = service_index(hello::SERVICE_NAME)?;
    let rs_reply = rs::request::REPLY;
    expect_refusal(
        "unknown RS request",
        call(rs_server, 0x0500_0077, [0; 6], rs_reply),
        Error::NoSuchCall,
    )?;
    expect_refusal(
        "status of service 99",
        rs_call(rs::request::SERVICE_STATUS, [99, 0, 0, 0, 0, 0]),
        Error::NotFound,
    )?;
    expect_refusal(
        "status of a forged index",
        rs_call(rs::request::SERVICE_STATUS, [u64::MAX, 0, 0, 0, 0, 0]),
        Error::NotFound,
    )?;
    expect_refusal(
        "index with a forged name length",
        rs_call(rs::request::SERVICE_INDEX, [0, 0, 0, 0, u64::MAX, 0]),
        Error::InvalidArgument,
    )?;
    expect_refusal(
        "index with a name that is not UTF-8",
        rs_call(rs::request::SERVICE_INDEX, [u64::MAX, 0, 0, 0, 8, 0]),
        Error::InvalidArgument,
    )?;
    expect_refusal(
        "index of an unknown service",
        rs_call(
            rs::request::SERVICE_INDEX,
            context(pack_name("nobody"), "pack_name")?,
        ),
        Error::NotFound,
    )?;
    expect_refusal(
        "restart by a non-operator",
        rs_call(rs::request::RESTART, [index, 0, 0, 0, 0, 0]),
        Error::PermissionDenied,
    )?;
    expect_refusal(
        "a kernel kind sent to RS",
        call(
            rs_server,
            vigil_rt::abi::signal::KIND_PROCESS_EVENT,
            [0; 6],
            rs_reply,
        ),
        Error::InvalidArgument,
    )?;
    let hello_reply = hello::request::REPLY;
    expect_refusal(
        "unknown hello request",
        call(hello_server, 0x0510_0077, [0; 6], hello_reply),
        Error::NoSuchCall,
    )?;
    let counter = context(
        hello_call(hello_server, hello::request::INCREMENT, 0),
        "INCREMENT",
    )?;
    if counter != 1 {
        return Err(format!("INCREMENT gave {counter}"));
    }
    expect_refusal(
        "ADD that overflows",
        hello_call(hello_server, hello::request::ADD, u64::MAX),
        Error::InvalidArgument,
    )?;
    expect_refusal(
        "EXIT with status 999",
        hello_call(hello_server, hello::request::EXIT, 999),
        Error::InvalidArgument,
    )?;
    // The service-endpoint kernel calls are RS's alone.
    expect_refusal(
        "ServiceTakeOver without the rs kernel calls",
        vigil_rt::syscall::service_take_over(hello_server, ipc::self_endpoint()),
        Error::PermissionDenied,
    )?;
    expect_refusal(
        "ServiceRelease without the rs kernel calls",
        vigil_rt::syscall::service_release(hello_server),
        Error::PermissionDenied,
    )?;
    let record = status(index)?;
    if record.state != Some(ServiceState::Running) || record.restarts != 0 {
        return Err(format!(
            "hello is not untouched: restarts {}",
            record.restarts
        ));
    }
    let counter = context(hello_call(hello_server, hello::request::GET, 0), "GET")?;
    if counter != 1 {
        return Err(format!(
            "GET gave {counter} after the refused requests, not 1"
        ));
    }
    Ok(String::from(
        "RS and hello refused every bad request and kept serving",
    ))
}
