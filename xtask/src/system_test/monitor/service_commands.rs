//! The service-command scenario: a host client (the proxy, as one) sends service commands,
//! the kernel forwards them to RS, and the tool (`vigil events --json`) prints the answers.
//!
//! `monitor-rs-host-commands` boots VM, PM and RS supervising `hello_service` (index 0) and
//! `crashy` (index 1, crashes at every start: held down after 2 failures). The commands of
//! [`RS_COMMANDS`] list the services, hold hello, restart it (a new pid, the hold kept),
//! refresh the held-down crashy (refused), name a service RS does not have, release crashy
//! (its loop runs again), send one garbage service command, take hello down, list again,
//! bring hello up and list a last time. The host's live updates and the system servers
//! (vm 2, pm 3, rs 4 after the two services): an update of vm and a restart of rs are not
//! supported ("system server: not restartable"), an update of a forged index is no such
//! service, one of the down hello refused, a raw update frame with a NUL inside its
//! program name invalid (the kernel's own answer), a truncated one unanswered, one with a
//! 30-byte program cut to the frame's 24 (no such program: failed), and an update of the
//! running hello to `hello_v2` begun.

use std::time::Duration;

use serde_json::Value;
use vigil_wire::{HostFrame, ServiceAction, ServiceCommand, ServiceUpdate};

use super::super::scenario::millis;
use super::session::Observation;
use super::view::{array, expect_result, of_type, str_field, u64_field};

/// RS's pid in this boot: the kernel starts vm 1, pm 2, rs 3.
pub const RS_PID: u64 = 3;
/// An index RS's table does not have.
pub const FORGED_INDEX: u32 = 99;

const fn command(request: u32, action: ServiceAction, service: u32) -> HostFrame {
    HostFrame::ServiceCommand(ServiceCommand {
        request,
        action,
        service,
    })
}

/// The index of the system server vm in this boot's RS table (after hello and crashy), and
/// of RS itself.
pub const VM_INDEX: u32 = 2;
pub const RS_INDEX: u32 = 4;

const fn update(request: u32, service: u32, program: &str) -> HostFrame {
    let Some(program) = ServiceUpdate::padded_program(program) else {
        panic!("a program name the frame cannot carry")
    };
    HostFrame::ServiceUpdate(ServiceUpdate {
        request,
        service,
        program,
    })
}

/// The commands of `monitor-rs-host-commands`, by request id.
pub const RS_COMMANDS: &[(Duration, HostFrame)] = &[
    (millis(1000), HostFrame::ServiceListNow { request: 1 }),
    (millis(1150), command(2, ServiceAction::Hold, 0)),
    (millis(1250), command(3, ServiceAction::Restart, 0)),
    (millis(1300), update(21, VM_INDEX, "hello_v2")),
    (millis(1350), command(4, ServiceAction::Refresh, 1)),
    (millis(1400), command(22, ServiceAction::Restart, RS_INDEX)),
    (
        millis(1450),
        command(5, ServiceAction::Restart, FORGED_INDEX),
    ),
    (millis(1500), update(23, FORGED_INDEX, "hello_v2")),
    (millis(1550), command(6, ServiceAction::Release, 1)),
    (millis(1750), command(7, ServiceAction::Down, 0)),
    (millis(1900), update(24, 0, "hello_v2")),
    (millis(2200), HostFrame::ServiceListNow { request: 8 }),
    (millis(2400), command(9, ServiceAction::Up, 0)),
    (millis(2800), HostFrame::ServiceListNow { request: 10 }),
    (millis(2820), update(26, 0, "hello_v2")),
];

/// A service command with action index 9 (there are six): well framed, malformed. A
/// service update (variant 8) of hello whose program has a NUL between two letters: well
/// framed and decoded, refused by the kernel as invalid (request 25). One cut short after
/// two bytes of its program: malformed, unanswered (request 27).
pub const GARBAGE_SERVICE_COMMAND: &[(Duration, &[u8])] = &[
    (millis(1650), &[0x06, 0x0b, 0x09, 0x00]),
    (
        millis(1700),
        &[
            0x08, 0x19, 0x00, b'a', 0, b'b', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0,
        ],
    ),
    (millis(1720), &[0x08, 0x1b, 0x00, b'h', b'i']),
    (millis(2600), OVERSIZED_UPDATE),
];

/// A service update of hello (request 28) whose program is 30 bytes: the frame's field is
/// 24, so the decoder takes the first 24 and ignores the rest (as it ignores any bytes after
/// a frame's value); RS finds no such program and answers failed, hello serving on.
const OVERSIZED_UPDATE: &[u8] = b"\x08\x1c\x00abcdefghijklmnopqrstuvwxyz1234";

/// Service `name` in the `service_list` answering `request`.
fn service<'a>(lines: &'a [Value], request: u64, name: &str) -> Result<&'a Value, String> {
    let (_, list) = of_type(lines, "service_list")
        .find(|(_, line)| u64_field(line, "request") == Some(request))
        .ok_or_else(|| format!("the tool printed no service_list for request {request}"))?;
    if u64_field(list, "supervisor") != Some(RS_PID) {
        return Err(format!(
            "list {request} is not from rs (pid {RS_PID}): {list}"
        ));
    }
    array(list, "services")
        .iter()
        .find(|s| str_field(s, "name") == name)
        .ok_or_else(|| format!("list {request} has no {name}: {list}"))
}

/// `monitor-rs-host-commands`: the first list has hello running (no restarts, version 1)
/// and crashy held down after a #PF; hold, restart, release, down and up are "ok", the
/// refresh of a held-down service is refused and a forged index is "no such service"; the
/// garbage got no answer; the second list has hello down and held, restarted once, its last
/// end "taken down", and crashy restarted more; the last has hello running again.
pub fn check_rs_host_commands(observation: &Observation) -> Result<String, String> {
    verdict(&observation.lines)
}

fn verdict(lines: &[Value]) -> Result<String, String> {
    let hello = service(lines, 1, "hello_service")?;
    let crashy = service(lines, 1, "crashy")?;
    let field = |s: &Value, f: &str| u64_field(s, f).unwrap_or(u64::MAX);
    if str_field(hello, "state_name") != "running"
        || field(hello, "pid") == 0
        || field(hello, "restarts") != 0
        || field(hello, "version") != 1
        || field(hello, "index") != 0
    {
        return Err(format!("hello is not running fresh at first: {hello}"));
    }
    if str_field(crashy, "state_name") != "held-down"
        || !str_field(crashy, "last_failure").contains("#PF")
    {
        return Err(format!("crashy is not held down after a #PF: {crashy}"));
    }
    expect_result(lines, 2, 0, "hold hello_service: done")?;
    expect_result(
        lines,
        3,
        0,
        "restart hello_service: done (state running (held)",
    )?;
    expect_result(lines, 4, 2, "refresh crashy refused")?;
    expect_result(lines, 5, 1, &format!("no service has index {FORGED_INDEX}"))?;
    expect_result(lines, 6, 0, "release crashy: done")?;
    expect_result(
        lines,
        7,
        0,
        "down hello_service: done (state down (held), pid 0",
    )?;
    expect_result(lines, 9, 0, "up hello_service: done (state running")?;
    // Not supported (3): the system servers; no such service (1); refused (2); invalid (5).
    const NOT_RESTARTABLE: &str =
        "refused: system server: not restartable (its state lives only in its memory)";
    expect_result(lines, 21, 3, &format!("update vm {NOT_RESTARTABLE}"))?;
    expect_result(lines, 22, 3, &format!("restart rs {NOT_RESTARTABLE}"))?;
    expect_result(
        lines,
        23,
        1,
        &format!("no service has index {FORGED_INDEX}"),
    )?;
    expect_result(
        lines,
        24,
        2,
        "update hello_service to hello_v2 refused: ENOTREADY",
    )?;
    expect_result(lines, 25, 5, "service update: the program name is not")?;
    expect_result(lines, 26, 0, "update hello_service to hello_v2: begun")?;
    expect_result(
        lines,
        28,
        4,
        "update hello_service to abcdefghijklmnopqrstuvwx failed: ",
    )?;
    let mut answered: Vec<u64> = of_type(lines, "process_result")
        .filter_map(|(_, line)| u64_field(line, "request"))
        .collect();
    answered.sort_unstable();
    let expected = [2, 3, 4, 5, 6, 7, 9, 21, 22, 23, 24, 25, 26, 28];
    if answered != expected {
        return Err(format!(
            "results for requests {answered:?}, expected {expected:?} (the garbage answered?)"
        ));
    }
    let down = service(lines, 8, "hello_service")?;
    if str_field(down, "state_name") != "down"
        || down["held"] != Value::Bool(true)
        || field(down, "pid") != 0
        || field(down, "restarts") != 1
        || str_field(down, "last_failure") != "taken down"
    {
        return Err(format!(
            "after hold, restart and down, hello is not down, held, restarted once: {down}"
        ));
    }
    let looped = service(lines, 8, "crashy")?;
    if field(looped, "restarts") <= field(crashy, "restarts") {
        return Err(format!(
            "release did not run crashy's loop again: {crashy} then {looped}"
        ));
    }
    let up = service(lines, 10, "hello_service")?;
    if str_field(up, "state_name") != "running" || field(up, "pid") == 0 {
        return Err(format!("up did not bring hello back: {up}"));
    }
    Ok(format!(
        "3 lists, 14 answers (hold, restart, release, down, up ok; refresh refused; index {FORGED_INDEX} unknown; system servers not restartable; updates: begun, refused, unknown, invalid, failed), garbage unanswered"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn good() -> Vec<Value> {
        let entry = |name: &str,
                     index: u64,
                     state: &str,
                     held: bool,
                     pid: u64,
                     restarts: u64,
                     last: &str| {
            json!({"name": name, "index": index, "state_name": state, "held": held, "pid": pid,
                "restarts": restarts, "version": 1, "last_failure": last})
        };
        let list = |request: u64, services: Vec<Value>| json!({"type": "service_list", "request": request, "supervisor": 3, "services": services});
        let answer = |request: u64, outcome: u64, message: &str| json!({"type": "process_result", "request": request, "outcome": outcome, "message": message});
        vec![
            list(
                1,
                vec![
                    entry("hello_service", 0, "running", false, 4, 0, "none"),
                    entry(
                        "crashy",
                        1,
                        "held-down",
                        false,
                        0,
                        1,
                        "exception #PF (vector 14)",
                    ),
                ],
            ),
            answer(
                2,
                0,
                "hold hello_service: done (state running (held), pid 4, 0 restarts)",
            ),
            answer(
                3,
                0,
                "restart hello_service: done (state running (held), pid 6, 1 restarts)",
            ),
            answer(
                4,
                2,
                "refresh crashy refused: ENOTREADY (state held-down, pid 0, 1 restarts)",
            ),
            answer(5, 1, "no service has index 99 (rs has 2)"),
            answer(
                6,
                0,
                "release crashy: done (state running, pid 7, 2 restarts)",
            ),
            answer(
                7,
                0,
                "down hello_service: done (state down (held), pid 0, 1 restarts)",
            ),
            list(
                8,
                vec![
                    entry("hello_service", 0, "down", true, 0, 1, "taken down"),
                    entry(
                        "crashy",
                        1,
                        "held-down",
                        false,
                        0,
                        3,
                        "exception #PF (vector 14)",
                    ),
                ],
            ),
            answer(
                9,
                0,
                "up hello_service: done (state running (held), pid 9, 2 restarts)",
            ),
            answer(21, 3, "update vm refused: system server: not restartable (its state lives only in its memory)"),
            answer(22, 3, "restart rs refused: system server: not restartable (its state lives only in its memory) (state system, pid 0, 0 restarts)"),
            answer(23, 1, "no service has index 99 (rs has 5)"),
            answer(24, 2, "update hello_service to hello_v2 refused: ENOTREADY"),
            answer(25, 5, "service update: the program name is not 1 to 24 bytes of UTF-8 without NUL"),
            answer(26, 0, "update hello_service to hello_v2: begun (version 1 serves until the swap; the service list shows the end)"),
            answer(28, 4, "update hello_service to abcdefghijklmnopqrstuvwx failed: ESRCH"),
            list(
                10,
                vec![
                    entry("hello_service", 0, "running", true, 9, 2, "taken down"),
                    entry(
                        "crashy",
                        1,
                        "held-down",
                        false,
                        0,
                        3,
                        "exception #PF (vector 14)",
                    ),
                ],
            ),
        ]
    }

    #[test]
    fn the_verdict_needs_every_answer_and_effect() {
        assert!(verdict(&good()).is_ok(), "{:?}", verdict(&good()));
        let mut unanswered = good();
        unanswered.remove(3);
        assert!(verdict(&unanswered).unwrap_err().contains("request 4"));
        let mut restartable = good();
        let at = restartable
            .iter()
            .position(|line| {
                line["request"] == json!(22) && line["type"] == json!("process_result")
            })
            .unwrap();
        restartable[at]["outcome"] = json!(0);
        assert!(verdict(&restartable).unwrap_err().contains("request 22"));
        let mut not_down = good();
        not_down[7]["services"][0]["state_name"] = json!("running");
        assert!(verdict(&not_down).unwrap_err().contains("not down"));
        let mut no_loop = good();
        no_loop[7]["services"][1]["restarts"] = json!(1);
        assert!(verdict(&no_loop).unwrap_err().contains("loop"));
        let mut garbage_answered = good();
        garbage_answered.push(answer_extra());
        assert!(verdict(&garbage_answered).unwrap_err().contains("garbage"));
        let mut from_pm = good();
        from_pm[0]["supervisor"] = json!(2);
        assert!(verdict(&from_pm).unwrap_err().contains("not from rs"));
    }

    fn answer_extra() -> Value {
        json!({"type": "process_result", "request": 27, "outcome": 5, "message": "invalid"})
    }
}
