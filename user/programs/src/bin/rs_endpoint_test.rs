//! `rs_endpoint_test`: judges that a restarted service keeps its endpoint (scenario
//! `rs-keep-endpoint`; an operator of RS, with the `rs` kernel calls to try forged ones).
//!
//! It looks `hello_service` up once and never again: twice over, hello is ended by a null
//! dereference, a panic, an exit and a hang, and every time the fatal call fails with
//! `Restarted` while the next `ipc::call_service` at the same endpoint is answered by the
//! new instance (its counter back at 0). For the hang, a second request waits queued
//! behind the hung one and is answered by the replacement without a retry. Then a
//! request in flight (a `SLOW_GET` the instance is sleeping on) meets an operator's
//! `RESTART`: `call_service` sees `Restarted`, sends it again and gets the answer. Forged
//! arguments to `ServiceKeepEndpoint`, `ServiceTakeOver` and `ServiceRelease` are refused
//! with their errors and hello keeps serving. Last, the live-update swap: it spawns two
//! more hello instances it manages itself (an "old" one with a count and a "new" one),
//! sees `ServiceSwap` refused with a third one that holds a request, swaps the two so the
//! old endpoint answers with the new instance's counter, and swaps back (a rollback). The guest
//! time from each fatal request to the first answer at the kept endpoint is printed (not
//! asserted).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use vigil_programs::{context, expect_refusal, finish, lookup_with_retry};
use vigil_rt::abi::introspect::state_code;
use vigil_rt::abi::rs::{self, hello, pack_name, reason, RS_SERVER_NAME};
use vigil_rt::{introspect, ipc, pm, println, syscall, thread, time, Endpoint, Error, Message};

vigil_rt::entry!(main);

/// Rounds of the four ways to end hello.
const ROUNDS: u64 = 2;
/// Snapshots, 1 ms apart, to see a thread blocked where it must be (a bound, not timing).
const STATE_POLLS: u32 = 5000;
/// How long the in-flight request keeps the instance busy (below 3 heartbeat periods).
const SLOW_MS: u64 = hello::request::MAX_SLOW_MS;
/// Tries at catching the request in flight with the RESTART (on a loaded host the guest
/// clock may run out the sleep before the RESTART arrives; then it is tried again).
const IN_FLIGHT_TRIES: u32 = 5;

/// The reply's payload, or the server's refusal; `Restarted` as it came.
fn reply_of(message: &Message, reply_kind: u32) -> Result<[u64; 6], Error> {
    ipc::reply_payload(message, reply_kind)
}

/// One hello request by plain `send_receive` (no retry): the counter.
fn hello_once(server: Endpoint, kind: u32, argument: u64) -> Result<u64, Error> {
    let mut message = Message::with_payload(kind, [argument, 0, 0, 0, 0, 0]);
    ipc::send_receive(server, &mut message)?;
    reply_of(&message, hello::request::REPLY).map(|payload| payload[1])
}

/// One hello request through `call_service`: (counter, retries).
fn hello_service_call(server: Endpoint, kind: u32, argument: u64) -> Result<(u64, u32), Error> {
    let mut message = Message::with_payload(kind, [argument, 0, 0, 0, 0, 0]);
    let retries = ipc::call_service(server, &mut message)?;
    reply_of(&message, hello::request::REPLY).map(|payload| (payload[1], retries))
}

fn rs_call(kind: u32, payload: [u64; 6]) -> Result<[u64; 6], Error> {
    let server = ipc::lookup(RS_SERVER_NAME)?;
    let mut message = Message::with_payload(kind, payload);
    ipc::send_receive(server, &mut message)?;
    reply_of(&message, rs::request::REPLY)
}

/// Waits until thread `thread` is blocked awaiting `server`'s reply (its request is in
/// the instance's hands).
fn wait_in_flight(thread: Endpoint, server: Endpoint) -> Result<(), String> {
    for _ in 0..STATE_POLLS {
        let snapshot = context(introspect::snapshot(), "snapshot")?;
        if snapshot.threads.iter().any(|t| {
            t.endpoint == thread && t.state == state_code::AWAITING_REPLY && t.wait_target == server
        }) {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(1));
    }
    Err(format!("{thread} never waited for {server}'s reply"))
}

fn main(args: &str) -> i32 {
    match args.trim() {
        "init-timeout" => finish("rs_endpoint_test", init_timeout()),
        _ => finish("rs_endpoint_test", run()),
    }
}

/// `stally` (hello_service -- stall-on-start) never reaches its receive loop: its first
/// instance is caught by the heartbeats, every replacement by the init timeout, until RS
/// holds it down and releases the kept endpoint — where a client has been waiting since
/// the start, queued, and now fails with `DeadEndpoint`.
fn init_timeout() -> Result<String, String> {
    let name = "stally";
    let kept = lookup_with_retry(name)?;
    let index = context(
        rs_call(
            rs::request::SERVICE_INDEX,
            context(pack_name(name), "pack_name")?,
        ),
        "SERVICE_INDEX",
    )?[1];
    // Never received by the first instance; kept queued across its restarts.
    match hello_once(kept, hello::request::GET, 0) {
        Err(Error::DeadEndpoint) => {}
        other => {
            return Err(format!(
                "the waiting GET returned {other:?}, not DeadEndpoint"
            ))
        }
    }
    let record = context(
        rs_call(rs::request::SERVICE_STATUS, [index, 0, 0, 0, 0, 0]),
        "SERVICE_STATUS",
    )?;
    let state = rs::ServiceState::from_code(record[1]);
    if state != Some(rs::ServiceState::HeldDown) || record[3] != reason::INIT_TIMEOUT {
        return Err(format!(
            "RS says {:?}, last reason {}",
            state,
            reason::name(record[3])
        ));
    }
    println!(
        "init timeout: held down after {} restarts (last: {} after {} ms); the GET waiting at {kept} failed with EDEADSRCDST",
        record[2],
        reason::name(record[3]),
        record[4]
    );
    Ok(String::from(
        "a service that never initialises was held down by its init timeout and its waiting client released",
    ))
}

fn run() -> Result<String, String> {
    let name = hello::SERVICE_NAME;
    let server = lookup_with_retry(name)?;
    let index = context(
        rs_call(
            rs::request::SERVICE_INDEX,
            context(pack_name(name), "pack_name")?,
        ),
        "SERVICE_INDEX",
    )?[1];
    forged_kernel_calls(server)?;
    let kills = [
        (
            "null dereference",
            hello::request::CRASH,
            0,
            reason::EXCEPTION,
        ),
        ("panic", hello::request::PANIC, 0, reason::EXIT),
        ("exit 3", hello::request::EXIT, 3, reason::EXIT),
        ("hang", hello::request::HANG, 0, reason::HANG),
    ];
    let mut restarts = 0;
    // The counter of the instance serving now (each replacement's first INCREMENT makes 1).
    let mut served = 0;
    for round in 1..=ROUNDS {
        for (what, kind, argument, want_reason) in kills {
            for expected in served + 1..=served + 3 {
                let (counter, retries) = context(
                    hello_service_call(server, hello::request::INCREMENT, 0),
                    "INCREMENT",
                )?;
                if counter != expected || retries != 0 {
                    return Err(format!(
                        "round {round}, before the {what}: INCREMENT gave {counter} after {retries} retries, expected {expected}"
                    ));
                }
            }
            let before = time::now_ns();
            let (counter, retries) = if kind == hello::request::HANG {
                hang_with_a_queued_request(server)?
            } else {
                match hello_once(server, kind, argument) {
                    Err(Error::Restarted) => {}
                    other => return Err(format!("{what}: the fatal call returned {other:?}")),
                }
                context(
                    hello_service_call(server, hello::request::INCREMENT, 0),
                    "INCREMENT after the restart",
                )?
            };
            let latency_us = time::now_ns().saturating_sub(before) / 1000;
            restarts += 1;
            if counter != 1 || retries != 0 {
                return Err(format!(
                    "{what}: the first INCREMENT at the kept endpoint gave {counter} after {retries} retries"
                ));
            }
            served = 1;
            let record = context(
                rs_call(rs::request::SERVICE_STATUS, [index, 0, 0, 0, 0, 0]),
                "SERVICE_STATUS",
            )?;
            if record[2] != restarts || record[3] != want_reason {
                return Err(format!(
                    "{what}: RS says restarts {}, reason {}; expected {restarts}, {}",
                    record[2],
                    reason::name(record[3]),
                    reason::name(want_reason)
                ));
            }
            if ipc::lookup(name) != Ok(server) {
                return Err(format!("{what}: the name no longer names {server}"));
            }
            println!(
                "round {round}: {what}: restart {restarts}, answered at the same endpoint {server} (pid {}) {latency_us} us after the fatal request",
                record[5]
            );
        }
    }
    restarts += in_flight_retry(server, index)?;
    let record = context(
        rs_call(rs::request::SERVICE_STATUS, [index, 0, 0, 0, 0, 0]),
        "SERVICE_STATUS",
    )?;
    if record[2] != restarts {
        return Err(format!("RS counts {} restarts, not {restarts}", record[2]));
    }
    let snapshot = context(introspect::snapshot(), "snapshot")?;
    if let Some(tombstone) = snapshot
        .threads
        .iter()
        .find(|t| t.state == state_code::RESTARTING)
    {
        return Err(format!("a tombstone is left: {}", tombstone.endpoint));
    }
    live_swap(server)?;
    Ok(format!(
        "hello restarted {restarts} times, always answering at {server}; the request in flight was retried; two live instances swapped endpoints and back"
    ))
}

/// The main thread of process `pid` once it waits in its receive loop.
fn serving_main_thread(pid: u64) -> Result<Endpoint, String> {
    for _ in 0..STATE_POLLS {
        let snapshot = context(introspect::snapshot(), "snapshot")?;
        if let Some(process) = snapshot.processes.iter().find(|p| u64::from(p.pid) == pid) {
            let main = process.main_thread;
            if snapshot.threads.iter().any(|t| {
                t.endpoint == main
                    && t.state == state_code::RECEIVING
                    && t.wait_target == Endpoint::ANY
            }) {
                return Ok(main);
            }
        }
        thread::sleep(Duration::from_millis(1));
    }
    Err(format!("pid {pid} never waited in its receive loop"))
}

/// Whose main thread process `pid` has now (after a swap).
fn main_thread_of(pid: u64) -> Result<Endpoint, String> {
    let snapshot = context(introspect::snapshot(), "snapshot")?;
    snapshot
        .processes
        .iter()
        .find(|p| u64::from(p.pid) == pid)
        .map(|p| p.main_thread)
        .ok_or_else(|| format!("pid {pid} is gone"))
}

/// Two instances this program manages swap endpoints (live update) and swap back.
fn live_swap(supervised: Endpoint) -> Result<(), String> {
    let name = hello::SERVICE_NAME;
    let old_pid = context(pm::spawn_managed(name, ""), "spawn the old version")?;
    let new_pid = context(pm::spawn_managed(name, ""), "spawn the new version")?;
    let old = serving_main_thread(old_pid)?;
    let new = serving_main_thread(new_pid)?;
    for _ in 0..5 {
        context(
            hello_once(old, hello::request::INCREMENT, 0),
            "INCREMENT old",
        )?;
    }
    expect_refusal(
        "swap an endpoint with itself",
        syscall::service_swap(old, old),
        Error::InvalidArgument,
    )?;
    expect_refusal(
        "swap with a service RS manages",
        syscall::service_swap(old, supervised),
        Error::PermissionDenied,
    )?;
    expect_refusal(
        "swap with ANY",
        syscall::service_swap(Endpoint::ANY, new),
        Error::BadEndpoint,
    )?;
    // A third instance that holds a request forever (HANG; nobody pings it): not a safe
    // state, whatever the clock does.
    let stuck_pid = context(pm::spawn_managed(name, ""), "spawn a third instance")?;
    let stuck = serving_main_thread(stuck_pid)?;
    let hanger = thread::spawn(move || {
        let _ = hello_once(stuck, hello::request::HANG, 0);
    });
    wait_in_flight(hanger.endpoint(), stuck)?;
    expect_refusal(
        "swap while one is busy with a request",
        syscall::service_swap(old, stuck),
        Error::Busy,
    )?;
    context(pm::kill(stuck_pid, 9), "kill the third instance")?;
    context(pm::wait(Some(stuck_pid)), "wait")?;
    context(hanger.join(), "join")?;
    context(syscall::service_swap(old, new), "ServiceSwap")?;
    let at_old = context(
        hello_once(old, hello::request::GET, 0),
        "GET at the old endpoint",
    )?;
    let at_new = context(
        hello_once(new, hello::request::GET, 0),
        "GET at the new endpoint",
    )?;
    if at_old != 0 || at_new != 5 || main_thread_of(new_pid)? != old {
        return Err(format!(
            "after the swap: {at_old} at {old}, {at_new} at {new}, the new version's main thread {:?}",
            main_thread_of(new_pid)
        ));
    }
    serving_main_thread(old_pid)?;
    serving_main_thread(new_pid)?;
    context(syscall::service_swap(old, new), "ServiceSwap back")?;
    let at_old = context(
        hello_once(old, hello::request::GET, 0),
        "GET after the rollback",
    )?;
    if at_old != 5 || main_thread_of(old_pid)? != old {
        return Err(format!("after the swap back: {at_old} at {old}"));
    }
    println!("live swap: {old} served by pid {new_pid} (counter 0), then by pid {old_pid} again (counter 5)");
    for pid in [old_pid, new_pid] {
        context(pm::kill(pid, 9), "kill")?;
        context(pm::wait(Some(pid)), "wait")?;
    }
    Ok(())
}

/// A thread's HANG request hangs the instance; the caller's INCREMENT waits queued behind
/// it until RS's missed heartbeats end the instance and the replacement answers it. The
/// hung request fails with `Restarted`. Returns the INCREMENT's (counter, retries).
fn hang_with_a_queued_request(server: Endpoint) -> Result<(u64, u32), String> {
    static HANG_RESULT: AtomicU64 = AtomicU64::new(0);
    let hanger = thread::spawn(move || {
        let code = match hello_once(server, hello::request::HANG, 0) {
            Err(error) => error as u64,
            Ok(_) => 0,
        };
        HANG_RESULT.store(code, Ordering::SeqCst);
    });
    wait_in_flight(hanger.endpoint(), server)?;
    let queued = context(
        hello_service_call(server, hello::request::INCREMENT, 0),
        "INCREMENT queued behind the hang",
    )?;
    context(hanger.join(), "join")?;
    let hang_result = HANG_RESULT.load(Ordering::SeqCst);
    if hang_result != Error::Restarted as u64 {
        return Err(format!(
            "the hung call ended with {:?}, not Restarted",
            Error::from_code(hang_result)
        ));
    }
    Ok(queued)
}

/// A SLOW_GET the instance is sleeping on meets an operator's RESTART: `call_service`
/// retries it once at the same endpoint and gets the new instance's answer. Returns the
/// RESTARTs it took.
fn in_flight_retry(server: Endpoint, index: u64) -> Result<u64, String> {
    for attempt in 1..=IN_FLIGHT_TRIES {
        if in_flight_attempt(server, index)? {
            return Ok(u64::from(attempt));
        }
        println!("in flight: the SLOW_GET was answered before the RESTART reached it; again");
    }
    Err(format!(
        "the RESTART never caught the request in flight in {IN_FLIGHT_TRIES} tries"
    ))
}

/// One try of `in_flight_retry`: whether the request was caught in flight (and then
/// retried once and answered by the new instance).
fn in_flight_attempt(server: Endpoint, index: u64) -> Result<bool, String> {
    static OUTCOME: AtomicU64 = AtomicU64::new(u64::MAX);
    OUTCOME.store(u64::MAX, Ordering::SeqCst);
    let client = thread::spawn(move || {
        let outcome = match hello_service_call(server, hello::request::SLOW_GET, SLOW_MS) {
            Ok((counter, retries)) => (u64::from(retries) << 32) | counter,
            Err(error) => (1 << 63) | error as u64,
        };
        OUTCOME.store(outcome, Ordering::SeqCst);
    });
    wait_in_flight(client.endpoint(), server)?;
    context(
        rs_call(rs::request::RESTART, [index, 0, 0, 0, 0, 0]),
        "RESTART",
    )?;
    context(client.join(), "join")?;
    let outcome = OUTCOME.load(Ordering::SeqCst);
    if outcome & (1 << 63) != 0 {
        return Err(format!(
            "the request in flight failed: {:?}",
            Error::from_code(outcome & 0xffff)
        ));
    }
    let (retries, counter) = (outcome >> 32, outcome & 0xffff_ffff);
    if retries == 0 {
        return Ok(false);
    }
    if retries != 1 || counter != 0 {
        return Err(format!(
            "the request in flight: {retries} retries, counter {counter} (expected 1 retry, counter 0)"
        ));
    }
    println!("in flight: SLOW_GET failed with Restarted during a RESTART and was retried once at {server}: answered");
    Ok(true)
}

/// Every forged argument to the service-endpoint kernel calls is refused; hello serves on.
fn forged_kernel_calls(server: Endpoint) -> Result<(), String> {
    let me = ipc::self_endpoint();
    let stale = Endpoint::new(server.slot(), server.generation().wrapping_add(1));
    let outside = Endpoint::new(u16::MAX, 1);
    let cases: [(&str, Result<u64, Error>, Error); 12] = [
        (
            "keep the endpoint of a service it does not manage",
            syscall::service_keep_endpoint(server),
            Error::PermissionDenied,
        ),
        (
            "keep its own endpoint",
            syscall::service_keep_endpoint(me),
            Error::PermissionDenied,
        ),
        (
            "keep ANY",
            syscall::service_keep_endpoint(Endpoint::ANY),
            Error::BadEndpoint,
        ),
        (
            "keep a slot outside the table",
            syscall::service_keep_endpoint(outside),
            Error::BadEndpoint,
        ),
        (
            "keep a stale endpoint",
            syscall::service_keep_endpoint(stale),
            Error::DeadEndpoint,
        ),
        (
            "take over with itself as the replacement",
            syscall::service_take_over(server, me),
            Error::PermissionDenied,
        ),
        (
            "take over with a replacement it does not manage",
            syscall::service_take_over(stale, server),
            Error::PermissionDenied,
        ),
        (
            "take over with NONE as the replacement",
            syscall::service_take_over(server, Endpoint::NONE),
            Error::BadEndpoint,
        ),
        (
            "take over with a stale replacement",
            syscall::service_take_over(server, stale),
            Error::DeadEndpoint,
        ),
        (
            "release a live service",
            syscall::service_release(server),
            Error::InvalidArgument,
        ),
        (
            "release ANY",
            syscall::service_release(Endpoint::ANY),
            Error::BadEndpoint,
        ),
        (
            "release a stale endpoint",
            syscall::service_release(stale),
            Error::DeadEndpoint,
        ),
    ];
    for (case, result, expected) in cases {
        expect_refusal(case, result, expected)?;
    }
    let counter = context(hello_once(server, hello::request::GET, 0), "GET")?;
    if counter != 0 {
        return Err(format!("GET after the forged calls gave {counter}"));
    }
    expect_refusal(
        "SLOW_GET longer than its limit",
        hello_once(
            server,
            hello::request::SLOW_GET,
            hello::request::MAX_SLOW_MS + 1,
        ),
        Error::InvalidArgument,
    )
}
