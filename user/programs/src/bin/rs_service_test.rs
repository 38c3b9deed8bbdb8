//! `rs_service_test`: judges the `service` program and RS's operator requests (scenario
//! `rs-service-program`). It runs `service` (an operator of RS) through PM with each
//! command and checks its exit status, then checks RS's INTROSPECT services topic says the
//! action happened: list; down (no instance, and none started after a while); up; up of a
//! running one (refused); refresh (a new pid, reason refresh); hold and a crash (held down,
//! not restarted); refresh of a held-down one (refused); release (running again); restart;
//! release of the crash-looping `crashy`. Then `intruder` (the same program, not an
//! operator) is refused and changes nothing, bad names and usage are refused, RS's
//! `SERVICE_NAME` lists the names, and bad `ACTION`s and INTROSPECTs get their errors.
//!
//! The system servers RS lists (vm, pm, rs here) refuse every action (exit 5, "system
//! server: not restartable") and RS serves a normal restart after those refusals; the
//! backtrace of crashy's last crash is in RS's service-backtraces topic and `service list`.
//!
//! With the argument `demo` (scenario `rs-demo-load`) it judges the default run's demo
//! instead: `hello_load -- demo=300` crashing and live-updating hello while RS restarts
//! it, updates it and rolls a broken update back; with `demo-refused` (scenario
//! `rs-demo-refused`) the same load without operator rights, its update refused. With
//! `system-crash` (scenario `rs-system-crash`) a system server (a program booted as `ds`)
//! crashes: RS records it (`system-failed`, reason exception, a backtrace), refuses to
//! restart it, and serves a restart of hello afterwards.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use vigil_programs::{context, expect_refusal, finish, lookup_with_retry};
use vigil_rt::abi::rs::{
    self, hello, reason, unpack_name_reply, ServiceAction, ServiceState, MAX_NAME_BYTES,
    RS_SERVER_NAME,
};
use vigil_rt::abi::server_introspect::{text_of, ServiceRecord, Topic, SERVICE_RECORD_BYTES};
use vigil_rt::{ipc, pm, println, server_introspect, thread, Endpoint, Error, Message};

vigil_rt::entry!(main);

/// Polls of RS's records, 2 ms apart, before a state is declared not reached (a bound, not
/// a timing assertion).
const ATTEMPTS: u32 = 2500;

const HELLO: &str = hello::SERVICE_NAME;

fn main(args: &str) -> i32 {
    match args.trim() {
        "" => finish("rs_service_test", judge()),
        "demo" => finish("rs_service_test", demo()),
        "demo-refused" => finish("rs_service_test", demo_refused()),
        "update" => finish("rs_service_test", update()),
        "system-crash" => finish("rs_service_test", system_crash()),
        other => finish("rs_service_test", Err(format!("unknown part '{other}'"))),
    }
}

/// Polls for the demo (a bound, not a timing assertion): 40 s of guest time.
const DEMO_ATTEMPTS: u32 = 20_000;

/// `demo` (scenario `rs-demo-load`): `hello_load -- demo=300` crashes hello four ways and
/// live-updates it twice a cycle (one update done, one rolled back); RS must have
/// restarted it at least four times and updated it twice (version 3: the second cycle's
/// update, after the first cycle's rollback and hang), and hello must serve again at the
/// endpoint looked up before the first update (the scenario's console check names each
/// step and RS's line for it).
fn demo() -> Result<String, String> {
    let hello = lookup_with_retry(HELLO)?;
    let mut updated_at_restarts = None;
    for _ in 0..DEMO_ATTEMPTS {
        let record = record(HELLO)?;
        if record.version >= 3 {
            // The load prints its update line before its next step (an exit RS restarts):
            // a restart after version 3 means the line is on the console.
            let at = *updated_at_restarts.get_or_insert(record.restarts);
            if record.restarts > at && record.restarts >= 4 && running(&record) {
                let counter = hello_get_at(hello)?;
                return Ok(format!(
                    "RS restarted hello_service {} times and updated it to version {} under \
                     the demo load, and it serves (counter {counter})",
                    record.restarts, record.version
                ));
            }
        }
        thread::sleep(Duration::from_millis(2));
    }
    Err(format!(
        "hello was not restarted 4 times, updated twice and restarted after that: {:?}",
        record(HELLO)?
    ))
}

/// `demo-refused` (scenario `rs-demo-refused`): `hello_load -- demo=500` is not one of
/// RS's operators, so its update is refused (the console check reads the load's line and
/// RS's) and the demo goes on crashing hello: RS must have restarted it three times (the
/// exit after the refused update) with version 1 still serving.
fn demo_refused() -> Result<String, String> {
    let hello = lookup_with_retry(HELLO)?;
    for _ in 0..DEMO_ATTEMPTS {
        let record = record(HELLO)?;
        if record.version != 1 {
            return Err(format!("a refused update changed the version: {record:?}"));
        }
        if record.restarts >= 3 && running(&record) {
            let counter = hello_get_at(hello)?;
            return Ok(format!(
                "RS refused the load's update and restarted hello_service {} times, version 1 \
                 serving (counter {counter})",
                record.restarts
            ));
        }
        thread::sleep(Duration::from_millis(2));
    }
    Err(format!(
        "hello was not restarted 3 times after the refused update: {:?}",
        record(HELLO)?
    ))
}

/// `update` (scenario `rs-live-update`, under hello_load's increments): updates to a
/// missing and a malformed program are refused, to `hello_v2` done (version 2, the counter
/// kept), to `hello_deaf` (stops answering heartbeats), `hello_failinit` (never
/// initialises) and `hello_crashy` (crashes during the grace period) rolled back with
/// version 2 serving; from `hello_stubborn` (never answers PREPARE) cancelled after the
/// update's bound, with it serving on. After each step the version named in GET's reply
/// says which program answers at the endpoint looked up before the first update.
fn update() -> Result<String, String> {
    // Looked up once: clients keep their endpoint across the update and the rollback
    // (after it, the name finds nothing: the process is hello_v2's).
    let hello = lookup_with_retry(HELLO)?;
    let hello_get = || hello_get_at(hello);
    // Which program answers at the kept endpoint: GET's reply names its `version=N`.
    let answering = |wanted: u64, when: &str| match hello_version_at(hello) {
        Ok(version) if version == wanted => Ok(()),
        Ok(version) => Err(format!(
            "{when}: version {version} answered, not version {wanted}"
        )),
        Err(error) => Err(format!("{when}: {error}")),
    };
    answering(1, "before the updates")?;
    let before = hello_get()?;
    service("update hello_service hello_missing", 4)?;
    service("update hello_service hello_broken", 4)?;
    if record(HELLO)?.version != 1 {
        return Err(String::from("a refused update changed the version"));
    }
    service("update hello_service hello_v2", 0)?;
    let updated = record(HELLO)?;
    answering(2, "after the update to hello_v2")?;
    let after = hello_get()?;
    if updated.version != 2 || after < before {
        return Err(format!(
            "after the update: version {}, counter {after} (was {before})",
            updated.version
        ));
    }
    // Back-to-back GETs while the three rolled-back updates run: one queued at the old
    // instance when it answers PREPARE reaches it before the swap (RS retries the swap
    // while it serves), which once used up its "read DS anew" flag, so after the rollback
    // it served the counter from before the candidate's commits (hello_load's increments in
    // the grace period: acknowledged, then lost). The scenario's tally check sees a loss.
    static HAMMERING: AtomicBool = AtomicBool::new(true);
    let hammer = thread::spawn(move || {
        while HAMMERING.load(Ordering::Relaxed) {
            let _ = hello_get_at(hello);
        }
    });
    let rollbacks = rollbacks(hello, &answering, after);
    HAMMERING.store(false, Ordering::Relaxed);
    let _ = hammer.join();
    let (last, after_rollbacks) = rollbacks?;
    // A running version that never answers PREPARE: the update away from it is cancelled
    // after its bound (300 ms here) and it serves on. (RS's version counts the updates
    // done: 1, then 2 with hello_v2, 3 with hello_stubborn.)
    service("update hello_service hello_stubborn", 0)?;
    service("update hello_service hello_v2 timeout=300", 4)?;
    let stubborn = record(HELLO)?;
    // hello_stubborn's own `version=4` (RS's count of updates done is 3).
    answering(4, "after the cancelled update away from hello_stubborn")?;
    let final_counter = hello_get()?;
    if stubborn.version != 3 || final_counter < after_rollbacks {
        return Err(format!(
            "after the cancelled update: version {}, counter {final_counter} (was {after_rollbacks})",
            stubborn.version
        ));
    }
    // hello_load prints its tally every second: let it print one after all of them (the
    // check requires 0 lost, 0 doubled in every tally).
    thread::sleep(Duration::from_millis(1500));
    Ok(format!(
        "updated to version 2 (counter {before} -> {after}), rolled back a deaf version (counter {last}), a failing and a crashing one (counter {after_rollbacks}), cancelled an update from a version deaf to PREPARE (counter {final_counter})"
    ))
}

/// `system-crash` (scenario `rs-system-crash`): the kernel booted a program that reads
/// address 0 as the system server `ds`; RS, its signal manager, must record the crash with
/// a backtrace and keep the entry (`system-failed`), refuse to restart it, and serve a
/// normal restart of hello afterwards.
fn system_crash() -> Result<String, String> {
    let ds = wait_for("ds", "system-failed", |r| {
        state_of(r) == Some(ServiceState::SystemFailed)
    })?;
    if ds.last_reason != reason::EXCEPTION || ds.last_detail != 14 {
        return Err(format!("ds's crash recorded as {ds:?}"));
    }
    let backtrace = system_backtrace(ds.index)?;
    if backtrace.is_empty() {
        return Err(String::from("ds's crash has no backtrace"));
    }
    service("list", 0)?;
    service("restart ds", 5)?;
    service("down pm", 5)?;
    let hello = wait_for(HELLO, "running", running)?;
    service("restart hello_service", 0)?;
    let restarted = wait_for(HELLO, "restarted", |r| running(r) && r.pid != hello.pid)?;
    hello_get()?;
    Ok(format!(
        "RS recorded the crash of system server ds ({} frames, pc {:#x}), refused to restart it, and restarted hello_service (pid {} -> {})",
        backtrace.len(),
        backtrace[0],
        hello.pid,
        restarted.pid
    ))
}

/// The backtrace RS recorded for service `index` (its services-backtraces topic).
fn system_backtrace(index: u32) -> Result<Vec<u64>, String> {
    let records = context(
        server_introspect::service_backtraces(rs_server()?),
        "INTROSPECT service-backtraces",
    )?;
    let record = records
        .iter()
        .find(|record| record.index == index)
        .ok_or_else(|| format!("no backtrace record for index {index}"))?;
    Ok(record.frames().to_vec())
}

/// Runs `program` (`service` or `intruder`) with `arguments`; its exit status.
fn run(program: &str, arguments: &str) -> Result<u64, String> {
    let pid = context(pm::spawn(program, arguments), "spawn")?;
    let exited = context(pm::wait(Some(pid)), "wait")?;
    Ok(exited.status)
}

/// `service ARGUMENTS` must exit with `expected`.
fn service(arguments: &str, expected: u64) -> Result<(), String> {
    let status = run("service", arguments)?;
    if status != expected {
        return Err(format!(
            "'service {arguments}' exited {status}, expected {expected}"
        ));
    }
    println!("'service {arguments}' exited {status} as expected");
    Ok(())
}

fn rs_server() -> Result<Endpoint, String> {
    context(ipc::lookup(RS_SERVER_NAME), "lookup rs")
}

fn records() -> Result<Vec<ServiceRecord>, String> {
    context(
        server_introspect::services(rs_server()?),
        "INTROSPECT services",
    )
}

fn record(name: &str) -> Result<ServiceRecord, String> {
    records()?
        .into_iter()
        .find(|record| text_of(&record.name) == name.as_bytes())
        .ok_or_else(|| format!("no record for '{name}'"))
}

fn state_of(record: &ServiceRecord) -> Option<ServiceState> {
    ServiceState::from_code(u64::from(record.state))
}

/// RS's record of `name` once `done` holds for it.
fn wait_for(
    name: &str,
    what: &str,
    done: impl Fn(&ServiceRecord) -> bool,
) -> Result<ServiceRecord, String> {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let record = record(name)?;
        if done(&record) {
            return Ok(record);
        }
        last = Some(record);
        thread::sleep(Duration::from_millis(2));
    }
    Err(format!("'{name}' never became {what} (last: {last:?})"))
}

fn running(record: &ServiceRecord) -> bool {
    state_of(record) == Some(ServiceState::Running) && record.pid != 0
}

/// `name` is still `state` with no instance after a while (RS did not restart it).
fn stays(name: &str, state: ServiceState) -> Result<ServiceRecord, String> {
    thread::sleep(Duration::from_millis(300));
    let record = record(name)?;
    if state_of(&record) != Some(state) || record.pid != 0 {
        return Err(format!(
            "'{name}' did not stay {} with no instance: {record:?}",
            state.name()
        ));
    }
    Ok(record)
}

fn hello_get() -> Result<u64, String> {
    hello_get_at(lookup_with_retry(HELLO)?)
}

/// The three rollbacks of `update` (from a version deaf to pings, one that never
/// initialises, one that crashes at its second request in the grace period), each leaving
/// version 2 serving: returns the counter after the first and after all three.
fn rollbacks(
    hello: Endpoint,
    answering: &dyn Fn(u64, &str) -> Result<(), String>,
    after: u64,
) -> Result<(u64, u64), String> {
    let hello_get = || hello_get_at(hello);
    service("update hello_service hello_deaf", 4)?;
    let rolled_back = record(HELLO)?;
    answering(2, "after the rollback from hello_deaf")?;
    let last = hello_get()?;
    if rolled_back.version != 2 || last < after {
        return Err(format!(
            "after the rollback: version {}, counter {last} (was {after})",
            rolled_back.version
        ));
    }
    // The other rollback paths: a version that never initialises, and one that crashes
    // at its second request during the grace period; version 2 serves on after each.
    for broken in ["hello_failinit", "hello_crashy"] {
        service(&format!("update hello_service {broken}"), 4)?;
        let record = record(HELLO)?;
        answering(2, &format!("after the rollback from {broken}"))?;
        if record.version != 2 {
            return Err(format!(
                "after the rollback from {broken}: version {}",
                record.version
            ));
        }
    }
    let after_rollbacks = hello_get()?;
    if after_rollbacks < last {
        return Err(format!(
            "after the rollbacks: counter {after_rollbacks} (was {last})"
        ));
    }
    Ok((last, after_rollbacks))
}

/// GET at `server` (an endpoint looked up once: a live update keeps it).
fn hello_get_at(server: Endpoint) -> Result<u64, String> {
    let mut message = Message::new(hello::request::GET);
    context(ipc::send_receive(server, &mut message), "hello GET")?;
    Ok(message.payload[1])
}

/// The version that answers a GET at `server` (`hello::reply::VERSION`).
fn hello_version_at(server: Endpoint) -> Result<u64, String> {
    let mut message = Message::new(hello::request::GET);
    context(ipc::send_receive(server, &mut message), "hello GET")?;
    Ok(message.payload[hello::reply::VERSION])
}

fn rs_call(payload: [u64; 6], kind: u32) -> Result<[u64; 6], Error> {
    ipc::request(
        ipc::lookup(RS_SERVER_NAME)?,
        kind,
        payload,
        vigil_rt::abi::rs::request::REPLY,
    )
}

fn judge() -> Result<String, String> {
    let hello = wait_for(HELLO, "running", running)?;
    let crashy = wait_for("crashy", "held down", |r| {
        state_of(r) == Some(ServiceState::HeldDown)
    })?;
    // crashy's last failure is its null dereference: its backtrace is recorded.
    if system_backtrace(crashy.index)?.is_empty() {
        return Err(String::from("crashy's crash has no recorded backtrace"));
    }
    service("list", 0)?;

    service("down hello_service", 0)?;
    let down = stays(HELLO, ServiceState::Down)?;
    if down.last_reason != reason::DOWN {
        return Err(format!("down's reason is {}", down.last_reason));
    }

    service("up hello_service", 0)?;
    let up = wait_for(HELLO, "running again", running)?;
    if up.pid == hello.pid {
        return Err(format!("up kept pid {}", up.pid));
    }
    hello_get()?;
    service("up hello_service", 4)?;

    service("refresh hello_service", 0)?;
    let refreshed = wait_for(HELLO, "refreshed", |r| running(r) && r.pid != up.pid)?;
    if refreshed.last_reason != reason::REFRESH || refreshed.restarts != up.restarts + 1 {
        return Err(format!("refresh not recorded: {refreshed:?}"));
    }

    service("hold hello_service", 0)?;
    let held = record(HELLO)?;
    if held.held != 1 || !running(&held) {
        return Err(format!("hold changed more than the hold: {held:?}"));
    }
    let server = lookup_with_retry(HELLO)?;
    let mut crash = Message::new(hello::request::CRASH);
    let _ = ipc::send_receive(server, &mut crash);
    let crashed = stays(HELLO, ServiceState::HeldDown)?;
    if crashed.last_reason != reason::EXCEPTION {
        return Err(format!("held crash recorded as {}", crashed.last_reason));
    }
    // Its backtrace is in the history (RS does not print it: the kernel's report did), and
    // `service list` prints it under hello's row.
    if system_backtrace(crashed.index)?.is_empty() {
        return Err(String::from("hello's held crash has no recorded backtrace"));
    }
    service("list", 0)?;
    service("refresh hello_service", 4)?;

    service("release hello_service", 0)?;
    let released = wait_for(HELLO, "released", running)?;
    if released.held != 0 {
        return Err(String::from("release left the hold"));
    }
    hello_get()?;

    service("restart hello_service", 0)?;
    let restarted = wait_for(HELLO, "restarted", |r| running(r) && r.pid != released.pid)?;
    if restarted.last_reason != reason::REQUESTED {
        return Err(format!("restart recorded as {}", restarted.last_reason));
    }

    let crashy = record("crashy")?;
    service("release crashy", 0)?;
    wait_for("crashy", "held down again after more restarts", |r| {
        state_of(r) == Some(ServiceState::HeldDown) && r.restarts > crashy.restarts
    })?;

    let status = run("intruder", "restart hello_service")?;
    if status != 2 {
        return Err(format!("intruder's restart exited {status}, expected 2"));
    }
    let after = record(HELLO)?;
    if after.pid != restarted.pid || after.restarts != restarted.restarts {
        return Err(format!("a non-operator's restart acted: {after:?}"));
    }
    println!("intruder's restart refused as expected");

    service("restart no_such_service", 3)?;
    service("down aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 3)?;
    service("frobnicate hello_service", 1)?;
    service("", 1)?;
    service("list everything", 1)?;
    // An update to the program the service already runs: RS refuses it (EEXIST).
    service("update hello_service hello_service", 4)?;
    service("update hello_service hello_v2 timeout=x", 1)?;

    // The system servers: listed, and every action on one refused as not restartable;
    // RS serves a normal restart after those refusals.
    for system in ["vm", "pm", "rs"] {
        if state_of(&record(system)?) != Some(ServiceState::System) {
            return Err(format!("'{system}' is not listed as a system server"));
        }
    }
    for refused in [
        "restart rs",
        "restart pm",
        "restart vm",
        "down pm",
        "hold vm",
        "refresh rs",
        "update rs hello_v2",
        "update pm hello_v2",
    ] {
        service(refused, 5)?;
    }
    service("restart ds", 3)?;
    let before = record(HELLO)?;
    service("restart hello_service", 0)?;
    wait_for(HELLO, "restarted after the refusals", |r| {
        running(r) && r.pid != before.pid
    })?;

    let mut names = Vec::new();
    for index in 0.. {
        match rs_call([index, 0, 0, 0, 0, 0], rs::request::SERVICE_NAME) {
            Ok(reply) => {
                let mut name = [0u8; MAX_NAME_BYTES];
                let len = context(unpack_name_reply(&reply, &mut name), "SERVICE_NAME reply")?;
                names.push(String::from_utf8_lossy(&name[..len]).into_owned());
            }
            Err(Error::NotFound) => break,
            Err(error) => return Err(format!("SERVICE_NAME {index}: {error}")),
        }
    }
    if names != ["hello_service", "crashy", "vm", "pm", "rs"] {
        return Err(format!("SERVICE_NAME listed {names:?}"));
    }
    expect_refusal(
        "ACTION with an unknown action code",
        rs_call([0, 0, 0, 0, 0, 0], rs::request::ACTION),
        Error::InvalidArgument,
    )?;
    expect_refusal(
        "ACTION on service 99",
        rs_call(
            [99, ServiceAction::Restart as u64, 0, 0, 0, 0],
            rs::request::ACTION,
        ),
        Error::NotFound,
    )?;
    let rs = rs_server()?;
    expect_refusal(
        "INTROSPECT of a topic RS does not have",
        server_introspect::introspect(rs, Topic::Memory, &mut [0; 256], 0),
        Error::NoSuchCall,
    )?;
    expect_refusal(
        "INTROSPECT into a buffer smaller than a record",
        server_introspect::introspect(rs, Topic::Services, &mut [0; SERVICE_RECORD_BYTES - 1], 0),
        Error::InvalidArgument,
    )?;
    let counted = context(
        server_introspect::introspect(rs, Topic::Services, &mut [], 0),
        "INTROSPECT count",
    )?;
    if counted.available != 5 || counted.written != 0 {
        return Err(format!("INTROSPECT counted {counted:?}"));
    }
    let final_record = record(HELLO)?;
    if !running(&final_record) {
        return Err(format!(
            "hello_service is not serving at the end: {final_record:?}"
        ));
    }
    hello_get()?;
    Ok(format!(
        "service listed, took down, brought up, refreshed, held, released and restarted hello_service ({} restarts), and every bad request was refused",
        final_record.restarts
    ))
}
