//! `pm_boot`: judges the boot through PM (scenario `pm-boot`). PM, not the kernel, starts
//! both roles from their module strings:
//!
//! - `pm_boot name=pm_probe kcalls=none ipc=pm_judge -- probe alpha beta`
//!   checks its privileges from the inside: its arguments arrived, a kernel call is
//!   refused (`kcalls=none`), a send to VM or PM is refused (`ipc=` names only the judge,
//!   a module later in the list), a send to the judge goes through; it tells the judge and
//!   waits for the verdict before it exits;
//! - `pm_boot name=pm_judge kcalls=snapshot+shutdown -- judge gamma` waits for the
//!   probe, then checks PM's INTROSPECT tree (both are PM's children, named, with their
//!   arguments) against the kernel's snapshot (the same pids and names), waits until the
//!   other boot programs have ended, asks PM to spawn a `boot=pm` image that is not an
//!   ELF (refused, PM keeps serving) and shuts down with the verdict;
//! - `pm_boot name=pm_kcalls kcalls=pm -- kcalls` makes `PmStart` calls with bad `ipc`
//!   lists into an empty process it created (a pid that is not live, pid 0, a count over
//!   the limit, a wild and a misaligned pointer): each gets its own error (and a lookup of
//!   it finds nothing while it has not started), the process is still unstarted after
//!   them, and it kills it (its exit is not PM's to keep).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::time::Duration;

use vigil_programs::{context, expect_refusal, finish, lookup_with_retry, report};
use vigil_rt::abi::server_introspect::{process_state, text_of};
use vigil_rt::server_introspect::process_tree;
use vigil_rt::{introspect, ipc, pm, thread, Endpoint, Error, Message};

vigil_rt::entry!(main);

/// Probe → judge: payload `[1 if every check passed]`; the judge answers with `VERDICT`.
const PROBED: u32 = 0x5042_0001;
const VERDICT: u32 = 0x5042_0002;
/// What the probe sends where `ipc=` forbids it.
const FORBIDDEN: u32 = 0x5042_0003;

const PROBE_ARGUMENTS: &str = "probe alpha beta";
const JUDGE_ARGUMENTS: &str = "judge gamma";
/// Boot programs the judge waits for before it shuts down (they end by themselves).
const OTHERS: &[&str] = &["crash_null", "hello_args", "pm_kcalls"];

fn main(args: &str) -> i32 {
    if args.starts_with("probe") {
        let outcome = probe(args);
        let passed = report("pm_probe", &outcome);
        // The verdict: the judge answers once it has seen this process in PM's tree.
        let judge = lookup_with_retry("pm_judge");
        let mut message = Message::with_payload(PROBED, [u64::from(passed), 0, 0, 0, 0, 0]);
        match judge.map(|judge| ipc::send_receive(judge, &mut message)) {
            Ok(Ok(())) if message.kind == VERDICT => {}
            other => {
                vigil_rt::println!("pm_probe: FAIL: no verdict from the judge: {other:?}")
            }
        }
        return i32::from(!passed);
    }
    if args == "kcalls" {
        let outcome = bad_ipc_lists();
        return i32::from(!report("pm_kcalls", &outcome));
    }
    finish("pm_boot", judge(args))
}

/// `PmStart` on pid `pid` with the raw `ipc` register (no image: it must never start).
fn raw_start(pid: u64, ipc: u64) -> Result<u64, Error> {
    use vigil_rt::abi::syscall::{KernelCall, Syscall};
    // SAFETY: the kernel only reads user memory the registers name, and checks it; no
    // arguments (the empty slice at 0).
    let rax = unsafe {
        vigil_rt::syscall::syscall6(
            Syscall::KernelCall as u64,
            KernelCall::PmStart as u64,
            pid,
            0x40_0000,
            0,
            0,
            ipc,
        )
    };
    Error::from_return_value(rax)
}

/// Bad `ipc` lists for `PmStart`, each refused at the boundary.
fn bad_ipc_lists() -> Result<String, String> {
    use vigil_rt::abi::pm::{IpcPidList, Priority, MAX_IPC_PIDS};
    use vigil_rt::abi::vm::Pid;
    use vigil_rt::syscall;
    let priority = context(Priority::new(8), "priority")?;
    let pid = context(syscall::pm_create("victim", priority, 0, 0), "PmCreate")?;
    // Created, not started: it has no main thread to look up yet.
    expect_refusal(
        "lookup of a process created and not started",
        ipc::lookup("victim"),
        Error::NotFound,
    )?;
    let own = context(syscall::vm_process_of(ipc::self_endpoint()), "own pid")?;
    let mut list: IpcPidList = [0; MAX_IPC_PIDS + 1];
    list[..3].copy_from_slice(&[2, own as u32, 999_999]);
    expect_refusal(
        "ipc list with a pid that is not live",
        raw_start(pid, list.as_ptr() as u64),
        Error::NotFound,
    )?;
    list[2] = 0;
    expect_refusal(
        "ipc list with pid 0",
        raw_start(pid, list.as_ptr() as u64),
        Error::InvalidArgument,
    )?;
    list[0] = MAX_IPC_PIDS as u32 + 1;
    expect_refusal(
        "ipc list over the limit",
        raw_start(pid, list.as_ptr() as u64),
        Error::InvalidArgument,
    )?;
    expect_refusal(
        "ipc list at a wild pointer",
        raw_start(pid, 0x1000),
        Error::Fault,
    )?;
    expect_refusal(
        "ipc list misaligned",
        raw_start(pid, list.as_ptr() as u64 + 1),
        Error::InvalidArgument,
    )?;
    expect_refusal(
        "ipc list of 16 pids through the runtime",
        syscall::pm_start_limited(Pid(pid as u32), 0x40_0000, b"", Some(&[own as u32; 16])),
        Error::InvalidArgument,
    )?;
    // None of them started it: it is still an empty process of ours. Only PM's own
    // processes leave an exit to reap; this one is simply gone.
    context(syscall::pm_kill(Pid(pid as u32), 9), "PmKill")?;
    expect_refusal(
        "kill of the killed victim",
        syscall::pm_kill(Pid(pid as u32), 9),
        Error::NotFound,
    )?;
    let reaped = context(syscall::pm_reap(), "PmReap")?;
    if reaped.is_some() {
        return Err(format!("reaped {reaped:?}: the exit was not PM's to keep"));
    }
    Ok(format!(
        "bad ipc lists refused; pid {pid} never started, killed"
    ))
}

/// The probe's checks of its own privileges.
fn probe(args: &str) -> Result<String, String> {
    if args != PROBE_ARGUMENTS {
        return Err(format!("arguments {args:?}, not {PROBE_ARGUMENTS:?}"));
    }
    expect_refusal(
        "a kernel call with kcalls=none",
        introspect::snapshot().map(|snapshot| snapshot.processes.len()),
        Error::PermissionDenied,
    )?;
    for server in ["vm", "pm"] {
        let endpoint = lookup_with_retry(server)?;
        expect_refusal(
            &format!("a send to {server} outside ipc="),
            ipc::send_nonblocking(endpoint, &Message::new(FORBIDDEN)),
            Error::PermissionDenied,
        )?;
    }
    Ok(format!(
        "arguments {args:?}, kernel calls and sends outside ipc= refused"
    ))
}

/// The pid of the live process named `name`, from the kernel's snapshot.
fn snapshot_pid(name: &str) -> Result<Option<u32>, String> {
    let snapshot = context(introspect::snapshot(), "snapshot")?;
    Ok(snapshot
        .processes
        .iter()
        .find(|process| process.name() == name)
        .map(|process| process.pid))
}

fn judge(args: &str) -> Result<String, String> {
    if args != JUDGE_ARGUMENTS {
        return Err(format!("arguments {args:?}, not {JUDGE_ARGUMENTS:?}"));
    }
    let probed = context(ipc::receive(Endpoint::ANY), "receive from the probe")?;
    if probed.kind != PROBED {
        return Err(format!(
            "expected the probe's message, got kind {:#x}",
            probed.kind
        ));
    }
    let verdict = tree_check();
    // The probe waits for this before it exits (so it is in the tree above).
    let answer = Message::new(VERDICT);
    context(ipc::send(probed.source, &answer), "verdict to the probe")?;
    let tree = verdict?;
    if probed.payload[0] != 1 {
        return Err(String::from("the probe failed (its log says why)"));
    }
    // A `boot=pm` image that is not an ELF: refused, and PM still serves.
    expect_refusal(
        "spawn of a malformed image",
        pm::spawn("broken", ""),
        Error::InvalidArgument,
    )?;
    expect_refusal(
        "spawn of a missing program after it",
        pm::spawn("no_such_program", ""),
        Error::NotFound,
    )?;
    // The others end by themselves (one by crashing); wait for them.
    for name in OTHERS {
        let mut waited = 0;
        while snapshot_pid(name)?.is_some() {
            if waited == 1000 {
                return Err(format!("{name} still runs after 10 s"));
            }
            thread::sleep(Duration::from_millis(10));
            waited += 1;
        }
    }
    Ok(format!(
        "{tree}; probe refused as expected; {} ended",
        OTHERS.join(", ")
    ))
}

/// PM's tree has both roles as PM's running children with their arguments, under the
/// pids the kernel's snapshot gives those names.
fn tree_check() -> Result<String, String> {
    let server = context(pm::server(), "pm")?;
    let pm_pid = snapshot_pid("pm")?.ok_or("no process named pm in the snapshot")?;
    let tree = context(process_tree(server), "INTROSPECT processes")?;
    for (name, arguments) in [("pm_probe", PROBE_ARGUMENTS), ("pm_judge", JUDGE_ARGUMENTS)] {
        let pid = snapshot_pid(name)?.ok_or_else(|| format!("no {name} in the snapshot"))?;
        let record = tree
            .iter()
            .find(|record| text_of(&record.name) == name.as_bytes())
            .ok_or_else(|| format!("{name} is not in PM's tree ({} records)", tree.len()))?;
        let fine = record.pid == pid
            && record.parent == pm_pid
            && record.state == process_state::RUNNING
            && text_of(&record.arguments) == arguments.as_bytes()
            && record.start_ns > 0;
        if !fine {
            return Err(format!(
                "PM's record of {name} (snapshot pid {pid}, pm pid {pm_pid}): {record:?}"
            ));
        }
        vigil_rt::println!(
            "tree record: {name} pid {pid} parent {pm_pid} (pm) args {arguments:?} running"
        );
    }
    Ok(format!(
        "both roles are children of pm (pid {pm_pid}) with their arguments"
    ))
}
