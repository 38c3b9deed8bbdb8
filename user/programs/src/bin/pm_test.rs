//! `pm_test`: judges the process manager (scenario `pm-processes`). It spawns `pm_child`
//! (a `boot=pm` module) through PM: exit statuses come back through wait and non-blocking
//! wait; a child blocked in receive, sleep or a mutex wait is killed; a three-deep tree
//! loses its middle and the orphan is reparented to PM; `SPAWNS` spawn+exit+wait rounds in
//! sequence leave the free frames where they were; and bad requests (forged pids, a child
//! that is not ours, killing PM, VM or oneself, missing programs, huge argument lists) each
//! get their own error while PM keeps serving.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::time::Duration;

use vigil_programs::{context, expect_refusal, finish};
use vigil_rt::abi::server_introspect::{process_state, text_of};
use vigil_rt::server_introspect::process_tree;
use vigil_rt::{introspect, pm, thread, Error};

vigil_rt::entry!(main);

/// Spawn+exit+wait rounds (the argument overrides it).
const SPAWNS: u64 = 1000;

fn main(args: &str) -> i32 {
    let spawns = args.trim().parse().unwrap_or(SPAWNS);
    finish("pm_test", run(spawns))
}

/// The pid of the live process named `name`, from a snapshot.
fn pid_named(name: &str) -> Result<u64, String> {
    let snapshot = introspect::snapshot().map_err(|e| format!("snapshot: {e}"))?;
    snapshot
        .processes
        .iter()
        .find(|process| process.name() == name)
        .map(|process| u64::from(process.pid))
        .ok_or_else(|| format!("no process named {name}"))
}

/// PM's INTROSPECT tree has running child `pid` of ours, named and with its arguments.
fn check_tree_record(pid: u64, arguments: &str) -> Result<(), String> {
    let server = context(pm::server(), "pm")?;
    let tree = context(process_tree(server), "INTROSPECT processes")?;
    let own = pid_named("pm_test")?;
    let record = tree
        .iter()
        .find(|record| u64::from(record.pid) == pid)
        .ok_or_else(|| format!("pid {pid} is not in PM's tree ({} records)", tree.len()))?;
    let fine = u64::from(record.parent) == own
        && record.state == process_state::RUNNING
        && text_of(&record.name) == b"pm_child"
        && text_of(&record.arguments) == arguments.as_bytes()
        && record.start_ns > 0;
    if !fine {
        return Err(format!("PM's record of pid {pid}: {record:?}"));
    }
    vigil_rt::println!(
        "tree record: pid {pid} parent {} name pm_child args {arguments:?} running",
        record.parent
    );
    Ok(())
}

fn free_frames() -> Result<u64, String> {
    introspect::snapshot()
        .map(|snapshot| snapshot.header.free_frames)
        .map_err(|e| format!("snapshot: {e}"))
}

fn run(spawns: u64) -> Result<String, String> {
    vigil_programs::lookup_with_retry("pm")?;
    // Statuses come back through wait.
    let pid = context(pm::spawn("pm_child", "exit 7"), "spawn exit 7")?;
    let exited = context(pm::wait(Some(pid)), "wait")?;
    if exited != (pm::Exited { pid, status: 7 }) {
        return Err(format!("wait gave {exited:?}, not pid {pid} status 7"));
    }
    // Non-blocking wait: nothing yet, then the kill's status.
    for how in ["receive", "sleep", "mutex"] {
        let pid = context(pm::spawn("pm_child", how), how)?;
        thread::sleep(Duration::from_millis(50));
        match context(pm::try_wait(Some(pid)), "try_wait")? {
            None => {}
            Some(exited) => return Err(format!("{how}: try_wait says it exited: {exited:?}")),
        }
        if how == "sleep" {
            check_tree_record(pid, how)?;
        }
        context(pm::kill(pid, 137), "kill")?;
        let exited = context(pm::wait(Some(pid)), "wait after kill")?;
        if exited.status != 137 {
            return Err(format!("{how}: killed child's status {}", exited.status));
        }
        vigil_rt::println!("killed a child blocked in {how}: status {}", exited.status);
    }
    // Any-child wait.
    let a = context(pm::spawn("pm_child", "exit 1"), "spawn a")?;
    let b = context(pm::spawn("pm_child", "exit 2"), "spawn b")?;
    let first = context(pm::wait(None), "wait any")?;
    let second = context(pm::wait(None), "wait any")?;
    let mut seen = [first.pid, second.pid];
    seen.sort_unstable();
    if seen != [a.min(b), a.max(b)] || first.status + second.status != 3 {
        return Err(format!("wait(any) gave {first:?} and {second:?}"));
    }
    expect_refusal("wait with no children", pm::wait(None), Error::NotFound)?;
    // A three-deep tree: the middle exits with its child's pid; that child is PM's now.
    let baseline = free_frames()?;
    let top = context(pm::spawn("pm_child", "tree 2"), "spawn tree")?;
    let middle = context(pm::wait(Some(top)), "wait tree")?;
    let orphan = middle.status;
    expect_refusal(
        "wait for an orphan PM adopted",
        pm::wait(Some(orphan)),
        Error::NotFound,
    )?;
    expect_refusal(
        "wait for a forged pid",
        pm::wait(Some(999_999)),
        Error::NotFound,
    )?;
    // The rest of the tree ends by itself (the leaf sleeps 200 ms).
    thread::sleep(Duration::from_millis(600));
    let after_tree = free_frames()?;
    if after_tree != baseline {
        return Err(format!(
            "after the tree {after_tree} free frames, {baseline} before"
        ));
    }
    // Bad requests.
    let pm_pid = pid_named("pm")?;
    expect_refusal("kill PM", pm::kill(pm_pid, 9), Error::PermissionDenied)?;
    expect_refusal("wait for PM", pm::wait(Some(pm_pid)), Error::NotFound)?;
    expect_refusal(
        "kill VM",
        pm::kill(pid_named("vm")?, 9),
        Error::PermissionDenied,
    )?;
    let own = pid_named("pm_test")?;
    expect_refusal("kill oneself", pm::kill(own, 9), Error::SelfTarget)?;
    expect_refusal("kill a forged pid", pm::kill(999_999, 9), Error::NotFound)?;
    expect_refusal(
        "spawn a missing program",
        pm::spawn("no_such_program", ""),
        Error::NotFound,
    )?;
    expect_refusal(
        "spawn a module that is not boot=pm",
        pm::spawn("pm_test", ""),
        Error::NotFound,
    )?;
    let huge = "x".repeat(3000);
    expect_refusal(
        "spawn with huge arguments",
        pm::spawn("pm_child", &huge),
        Error::InvalidArgument,
    )?;
    let oversized = "y".repeat(5000);
    expect_refusal(
        "spawn text over the limit",
        pm::spawn_text(oversized.as_bytes()),
        Error::InvalidArgument,
    )?;
    // Sequential spawn+exit+wait: every frame comes back.
    let baseline = free_frames()?;
    let started = vigil_rt::time::now_ns();
    for round in 0..spawns {
        let pid = context(pm::spawn("pm_child", "exit 0"), "spawn round")?;
        let exited = context(pm::wait(Some(pid)), "wait round")?;
        if exited.status != 0 {
            return Err(format!("round {round}: status {}", exited.status));
        }
    }
    let elapsed_ms = (vigil_rt::time::now_ns() - started) / 1_000_000;
    let after = free_frames()?;
    if after != baseline {
        return Err(format!(
            "after {spawns} spawns {after} free frames, {baseline} before"
        ));
    }
    // PM still serves after all of it.
    let pid = context(pm::spawn("pm_child", "exit 3"), "spawn after")?;
    let last = context(pm::wait(Some(pid)), "wait after")?;
    if last.status != 3 {
        return Err(format!("last child's status {}", last.status));
    }
    Ok(format!(
        "{spawns} spawn+exit+wait rounds in {elapsed_ms} ms, free frames {after} = {baseline}; tree orphan {orphan} reparented"
    ))
}
