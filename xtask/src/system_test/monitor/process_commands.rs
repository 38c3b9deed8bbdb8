//! The host-command scenarios: a host client (the proxy, as one) sends process commands,
//! the kernel forwards them to PM, and the tool (`vigil events --json`) prints the answers.
//!
//! `monitor-pm-host-commands` boots VM, PM and `pm_parent`, whose child `pm_child sleep`
//! PM spawns; the commands of [`PM_COMMANDS`] list the tree, try stop, kill PM, VM and a
//! forged pid, send one garbage process command, kill the child and list the tree again.
//! `monitor-host-command-no-pm` boots without PM: the kernel answers by itself.
//! `monitor-host-command-silent-pm` boots a "pm" that never receives (a spinner named
//! pm): eight commands wait and time out after 2 s, a ninth is "busy", and the monitor keeps
//! streaming meanwhile.

use std::time::Duration;

use serde_json::Value;
use vigil_wire::{HostFrame, ProcessAction, ProcessCommand};

use super::super::scenario::millis;
use super::session::Observation;
use super::view::{array, expect_result, of_type, result, str_field, u64_field};

/// Pids of a boot with `vm`, `pm`, `pm_child boot=pm`, `pm_parent`, `pm_host_forge`: pids
/// go in start order (the kernel's vm 1 and pm 2, then PM's boot programs pm_parent 3 and
/// pm_host_forge 4), and PM's first spawn is 5.
/// The check confirms each from the tool's output before judging the answers.
pub const VM_PID: u32 = 1;
pub const PM_PID: u32 = 2;
pub const CHILD_PID: u32 = 5;
/// A pid no process has.
pub const FORGED_PID: u32 = 4000;
/// The exit status of a host kill (`vigil_abi::host_command::HOST_KILL_STATUS`).
const KILL_STATUS: u64 = vigil_abi::host_command::HOST_KILL_STATUS;

const fn command(request: u32, action: ProcessAction, pid: u32) -> HostFrame {
    HostFrame::ProcessCommand(ProcessCommand {
        request,
        action,
        pid,
    })
}

/// The commands of `monitor-pm-host-commands`, by request id (1 to 7).
pub const PM_COMMANDS: &[(Duration, HostFrame)] = &[
    (millis(1000), HostFrame::ProcessTreeNow { request: 1 }),
    (millis(1200), command(2, ProcessAction::Stop, CHILD_PID)),
    // Far enough after the stop for snapshots to show it (one every 100 ms).
    (millis(1650), command(8, ProcessAction::Continue, CHILD_PID)),
    (millis(1300), command(3, ProcessAction::Kill, PM_PID)),
    (millis(1400), command(4, ProcessAction::Kill, VM_PID)),
    (millis(1500), command(5, ProcessAction::Kill, FORGED_PID)),
    (millis(2000), command(6, ProcessAction::Kill, CHILD_PID)),
    (millis(2800), HostFrame::ProcessTreeNow { request: 7 }),
];

/// A process command with action index 7 (there are three): well framed, malformed.
pub const GARBAGE_COMMAND: &[(Duration, &[u8])] = &[(millis(1700), &[0x04, 0x09, 0x07, 0x05])];

/// The commands of `monitor-host-command-no-pm`.
pub const NO_PM_COMMANDS: &[(Duration, HostFrame)] = &[
    (millis(800), command(1, ProcessAction::Kill, 1)),
    (millis(900), HostFrame::ProcessTreeNow { request: 2 }),
    // A service command: no RS either, so the kernel answers it too.
    (millis(1000), HostFrame::ServiceListNow { request: 3 }),
];

/// The commands of `monitor-host-command-silent-pm`: eight kills that fill the table, then
/// a ninth while they wait.
pub const SILENT_PM_COMMANDS: &[(Duration, HostFrame)] = &[
    (millis(500), command(1, ProcessAction::Kill, 9)),
    (millis(500), command(2, ProcessAction::Kill, 9)),
    (millis(500), command(3, ProcessAction::Stop, 9)),
    (millis(500), command(4, ProcessAction::Continue, 9)),
    (millis(500), HostFrame::ProcessTreeNow { request: 5 }),
    (millis(500), command(6, ProcessAction::Kill, 9)),
    (millis(500), command(7, ProcessAction::Kill, 9)),
    (millis(500), command(8, ProcessAction::Kill, 9)),
    (millis(600), command(9, ProcessAction::Kill, 9)),
];

fn tree(lines: &[Value], request: u64) -> Result<(usize, &Value), String> {
    of_type(lines, "process_tree")
        .find(|(_, line)| u64_field(line, "request") == Some(request))
        .ok_or_else(|| format!("the tool printed no process_tree for request {request}"))
}

/// The pid of the process named `name` in the last snapshot line.
fn pid_named(lines: &[Value], name: &str) -> Option<u64> {
    let (_, snapshot) = of_type(lines, "snapshot").last()?;
    array(snapshot, "processes")
        .iter()
        .find(|p| str_field(p, "name") == name)
        .and_then(|p| u64_field(p, "pid"))
}

/// `monitor-pm-host-commands`: the first tree names `pm_child` (pid [`CHILD_PID`], running)
/// as the child of `pm_parent`, with PM as manager; stop and continue are "ok" (SIGSTOP and
/// SIGCONT through PM), kills of PM and
/// VM are refused and of a forged pid "no such process"; the garbage command raised the
/// kernel's malformed count and got no answer; the kill of the child is "ok", its exit
/// (status 137) follows, the second tree no longer has it, and the last snapshot still has
/// vm, pm and pm_parent.
pub fn check_pm_host_commands(observation: &Observation) -> Result<String, String> {
    verdict(&observation.lines)
}

fn verdict(lines: &[Value]) -> Result<String, String> {
    for (name, pid) in [("vm", VM_PID), ("pm", PM_PID)] {
        if pid_named(lines, name) != Some(u64::from(pid)) {
            return Err(format!(
                "{name} is not pid {pid} in the last snapshot ({:?}): the commands assume it",
                pid_named(lines, name)
            ));
        }
    }
    let parent = pid_named(lines, "pm_parent").ok_or("no pm_parent in the last snapshot")?;
    let (_, first) = tree(lines, 1)?;
    if u64_field(first, "manager") != Some(u64::from(PM_PID)) {
        return Err(format!("the tree's manager is not pm: {first}"));
    }
    let child = array(first, "processes")
        .iter()
        .find(|p| str_field(p, "name") == "pm_child")
        .ok_or_else(|| format!("the first tree has no pm_child: {first}"))?;
    if u64_field(child, "pid") != Some(u64::from(CHILD_PID))
        || u64_field(child, "parent") != Some(parent)
        || u64_field(child, "state") != Some(1)
        || str_field(child, "arguments") != "sleep"
    {
        return Err(format!(
            "expected pm_child pid {CHILD_PID}, child of pm_parent (pid {parent}), running, \
             arguments \"sleep\"; the tree says {child}"
        ));
    }
    expect_result(lines, 2, 0, "stopped pm_child")?;
    expect_result(lines, 8, 0, "continued pm_child")?;
    expect_result(lines, 3, 2, "pm")?;
    expect_result(lines, 4, 2, "vm")?;
    expect_result(lines, 5, 1, &FORGED_PID.to_string())?;
    let killed = expect_result(lines, 6, 0, "pm_child")?;
    // Nothing answered the garbage; every answer is one of ours, once.
    let answered: Vec<u64> = of_type(lines, "process_result")
        .filter_map(|(_, line)| u64_field(line, "request"))
        .collect();
    if answered != [2, 3, 4, 5, 8, 6] {
        return Err(format!(
            "process results for requests {answered:?}, expected [2, 3, 4, 5, 8, 6]"
        ));
    }
    // The snapshots show the stop (stopped by PM) while it lasts, and not after.
    let (stopped, _) = result(lines, 2)?;
    let (continued, _) = result(lines, 8)?;
    let child_stopped_by = |(index, snapshot): (usize, &Value)| {
        let by = array(snapshot, "processes")
            .iter()
            .find(|p| u64_field(p, "pid") == Some(u64::from(CHILD_PID)))
            .and_then(|p| u64_field(p, "stopped_by"));
        (index, by)
    };
    let during: Vec<Option<u64>> = of_type(lines, "snapshot")
        .map(child_stopped_by)
        .filter(|(index, _)| (stopped..continued).contains(index))
        .map(|(_, by)| by)
        .collect();
    if !during.contains(&Some(u64::from(PM_PID))) {
        return Err(format!(
            "no snapshot between the stop and the continue shows pm_child stopped by pm              (pid {PM_PID}): stopped_by {during:?}"
        ));
    }
    let after_continue = of_type(lines, "snapshot")
        .map(child_stopped_by)
        .find(|(index, _)| (continued..killed).contains(index))
        .map(|(_, by)| by);
    if after_continue != Some(Some(0)) {
        return Err(format!(
            "the first snapshot after the continue shows pm_child stopped_by {after_continue:?}, \
             expected 0"
        ));
    }
    // The garbage went after request 5 (the tool's own Hello may have been counted before).
    let (before_garbage, _) = result(lines, 5)?;
    let counted = |(_, d): (usize, &Value)| u64_field(d, "malformed_commands");
    let baseline = of_type(lines, "drops")
        .filter(|(index, _)| *index < before_garbage)
        .filter_map(counted)
        .max()
        .unwrap_or(0);
    let malformed = of_type(lines, "drops")
        .filter_map(counted)
        .max()
        .unwrap_or(0);
    if malformed <= baseline {
        return Err(format!(
            "the kernel never counted the garbage process command as malformed \
             (malformed_commands {baseline} before it, {malformed} at the end)"
        ));
    }
    let exit = of_type(lines, "exit")
        .find(|(_, e)| u64_field(e, "pid") == Some(u64::from(CHILD_PID)))
        .ok_or("the tool printed no exit of the killed child")?;
    if u64_field(exit.1, "status") != Some(KILL_STATUS)
        || str_field(exit.1, "process") != "pm_child"
    {
        return Err(format!(
            "the child's exit is not pm_child with status {KILL_STATUS}: {}",
            exit.1
        ));
    }
    let (after, second) = tree(lines, 7)?;
    if array(second, "processes")
        .iter()
        .any(|p| u64_field(p, "pid") == Some(u64::from(CHILD_PID)))
    {
        return Err(format!(
            "the killed child is still in the second tree: {second}"
        ));
    }
    let last = of_type(lines, "snapshot")
        .filter(|(index, _)| *index > after.max(killed))
        .last()
        .ok_or("no snapshot after the second tree: the kernel stopped streaming")?;
    for name in ["vm", "pm", "pm_parent"] {
        if !array(last.1, "processes")
            .iter()
            .any(|p| str_field(p, "name") == name)
        {
            return Err(format!("{name} is gone from the last snapshot"));
        }
    }
    Ok(format!(
        "tree, 6 answers (stop and continue ok, the stop seen in snapshots), kill seen (exit status {KILL_STATUS}), {malformed} malformed counted"
    ))
}

/// `monitor-host-command-silent-pm`: request 9 is answered "busy" before any timeout,
/// requests 1 to 8 "timed out" (outcome 8) at least 1.2 s of kernel time (by the snapshots
/// around the answers) after the busy one, and snapshots keep coming after the timeouts (the
/// monitor was never wedged).
pub fn check_silent_pm(observation: &Observation) -> Result<String, String> {
    silent_pm_verdict(&observation.lines)
}

/// The kernel time of the last snapshot line before line `index`.
fn time_before(lines: &[Value], index: usize) -> Option<u64> {
    of_type(lines, "snapshot")
        .filter(|(at, _)| *at < index)
        .filter_map(|(_, s)| u64_field(s, "ts_ns"))
        .last()
}

fn silent_pm_verdict(lines: &[Value]) -> Result<String, String> {
    let busy = expect_result(lines, 9, 7, "busy")?;
    let mut first_timeout = usize::MAX;
    for request in 1..=8 {
        let index = expect_result(lines, request, 8, "did not answer")?;
        first_timeout = first_timeout.min(index);
    }
    if busy > first_timeout {
        return Err(
            "the ninth command was answered after a timeout: it was not refused while \
                    eight waited"
                .into(),
        );
    }
    let waited = time_before(lines, first_timeout)
        .zip(time_before(lines, busy))
        .map(|(late, early)| late.saturating_sub(early))
        .ok_or("no snapshots around the answers")?;
    if waited < 1_200_000_000 {
        return Err(format!(
            "the first timeout came {:.2} s (kernel time) after the busy answer; expected about 2 s",
            waited as f64 / 1e9
        ));
    }
    let after = of_type(lines, "snapshot")
        .filter(|(index, _)| *index > first_timeout)
        .count();
    if after < 3 {
        return Err(format!(
            "only {after} snapshots after the timeouts: the monitor stalled"
        ));
    }
    Ok(format!(
        "8 timed out after {:.1} s, the 9th busy, {after} snapshots after",
        waited as f64 / 1e9
    ))
}

/// `monitor-host-command-no-pm`: without PM both process commands are answered by the
/// kernel with outcome 6 (no process manager), and without RS the service list with outcome
/// 9 (no reincarnation server).
pub fn check_no_pm(observation: &Observation) -> Result<String, String> {
    no_pm_verdict(&observation.lines)
}

fn no_pm_verdict(lines: &[Value]) -> Result<String, String> {
    for request in [1, 2] {
        expect_result(lines, request, 6, "no process manager")?;
    }
    expect_result(lines, 3, 9, "no reincarnation server")?;
    if of_type(lines, "process_tree").next().is_some() {
        return Err("a process tree arrived from a system without pm".into());
    }
    Ok("both answered \"no process manager\" and the service list \"no reincarnation server\" by the kernel".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Vec<Value> {
        let snapshot = |child_stopped_by: Option<u64>| {
            let mut processes = vec![
                json!({"name": "vm", "pid": 1}),
                json!({"name": "pm", "pid": 2}),
                json!({"name": "pm_parent", "pid": 3}),
            ];
            if let Some(by) = child_stopped_by {
                processes.push(json!({"name": "pm_child", "pid": 5, "stopped_by": by}));
            }
            json!({"type": "snapshot", "processes": processes})
        };
        let answer = |request: u64, outcome: u64, message: &str| json!({"type": "process_result", "request": request, "outcome": outcome, "message": message});
        vec![
            snapshot(Some(0)),
            json!({"type": "drops", "malformed_commands": 1}),
            json!({"type": "process_tree", "request": 1, "manager": 2, "processes": [
                {"pid": 5, "parent": 3, "state": 1, "name": "pm_child", "arguments": "sleep"}
            ]}),
            answer(2, 0, "stopped pm_child (pid 5) with SIGSTOP"),
            snapshot(Some(2)),
            answer(3, 2, "pm (pid 2) manages the processes: not killed"),
            answer(4, 2, "vm (pid 1) serves page faults: not killed"),
            answer(5, 1, "no process has pid 4000"),
            answer(8, 0, "continued pm_child (pid 5) with SIGCONT"),
            snapshot(Some(0)),
            json!({"type": "drops", "malformed_commands": 2}),
            answer(6, 0, "killed pm_child (pid 5), exit status 137"),
            json!({"type": "exit", "pid": 5, "process": "pm_child", "status": 137}),
            json!({"type": "process_tree", "request": 7, "manager": 2, "processes": []}),
            snapshot(None),
        ]
    }

    #[test]
    fn the_verdict_needs_every_answer() {
        assert!(verdict(&good()).is_ok(), "{:?}", verdict(&good()));
        let mut no_kill = good();
        no_kill.remove(11);
        assert!(verdict(&no_kill).unwrap_err().contains("request 6"));
        let mut survived = good();
        survived[13] = json!({"type": "process_tree", "request": 7, "manager": 2,
            "processes": [{"pid": 5, "parent": 3, "state": 1, "name": "pm_child"}]});
        assert!(verdict(&survived)
            .unwrap_err()
            .contains("still in the second tree"));
        let mut uncounted = good();
        uncounted.remove(10);
        assert!(verdict(&uncounted).unwrap_err().contains("malformed"));
        let mut pm_killed = good();
        pm_killed[5] =
            json!({"type": "process_result", "request": 3, "outcome": 0, "message": "killed pm"});
        assert!(verdict(&pm_killed).is_err());
    }

    #[test]
    fn the_stop_must_show_in_the_snapshots_and_go_with_the_continue() {
        let mut unseen = good();
        unseen[4]["processes"][3]["stopped_by"] = json!(0);
        assert!(verdict(&unseen)
            .unwrap_err()
            .contains("no snapshot between the stop and the continue"));
        let mut stays = good();
        stays[9]["processes"][3]["stopped_by"] = json!(2);
        assert!(verdict(&stays).unwrap_err().contains("expected 0"));
    }

    #[test]
    fn a_silent_pm_times_out_and_a_full_table_is_busy() {
        let snapshot = |ts_ns: u64| json!({"type": "snapshot", "ts_ns": ts_ns});
        let answer = |request: u64, outcome: u64, message: &str| json!({"type": "process_result", "request": request, "outcome": outcome, "message": message});
        let mut lines = vec![
            snapshot(500_000_000),
            answer(9, 7, "busy: 8 commands already wait"),
        ];
        lines.push(snapshot(2_600_000_000));
        for request in 1..=8 {
            lines.push(answer(request, 8, "pm did not answer kill 9 within 2 s"));
        }
        lines.extend([
            snapshot(2_700_000_000),
            snapshot(2_800_000_000),
            snapshot(2_900_000_000),
        ]);
        assert!(
            silent_pm_verdict(&lines).is_ok(),
            "{:?}",
            silent_pm_verdict(&lines)
        );
        let mut quick = lines.clone();
        quick[2] = snapshot(600_000_000);
        assert!(silent_pm_verdict(&quick)
            .unwrap_err()
            .contains("expected about 2 s"));
        let mut stalled = lines.clone();
        stalled.truncate(lines.len() - 2);
        assert!(silent_pm_verdict(&stalled).unwrap_err().contains("stalled"));
        let mut answered = lines;
        answered[5] = answer(3, 0, "ok");
        assert!(silent_pm_verdict(&answered).is_err());
    }

    #[test]
    fn without_pm_the_kernel_answers() {
        let answer = |request: u64| {
            json!({"type": "process_result", "request": request, "outcome": 6,
                "message": "no process manager: the system runs without pm"})
        };
        let no_rs = json!({"type": "process_result", "request": 3, "outcome": 9,
            "message": "no reincarnation server: the system runs without rs"});
        assert!(no_pm_verdict(&[answer(1), answer(2), no_rs.clone()]).is_ok());
        assert!(no_pm_verdict(&[answer(1), answer(2)]).is_err());
        assert!(no_pm_verdict(&[answer(1), no_rs]).is_err());
    }
}
