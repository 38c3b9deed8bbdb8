//! Monitor scenarios: QEMU runs with COM2 on a TCP socket, the built host tool (`vigil`)
//! watches the kernel through the decoding [`proxy`](super::proxy), and the scenario is
//! judged on what the tool printed as well as on the console.
//!
//! - this file: the table ([`MONITOR_SCENARIOS`]) and the console side of each story;
//! - `session.rs`: runs QEMU, the proxy and the tool together, and judges the session;
//! - `checks.rs`: the host-tool checks, one per scenario, on an `Observation`;
//! - `view.rs`: reading the tool's JSON lines and the proxy's raw frames.
//!
//! Each check reads the tool's JSON lines (`vigil events --json --snapshots`: field names as
//! printed by the tool, see `vigil events --help`) and, where the tool's JSON leaves out a
//! raw field (state codes, wait targets, main-thread endpoints), compares them with the
//! frames the proxy decoded from the raw stream. Times are kernel times (`ts_ns`, `now_ns`,
//! `first_seen_ns`), so the checks do not depend on how fast the host is.

mod checks;
mod ipc_events;
mod process_commands;
mod prom;
mod service_commands;
pub mod session;
mod view;

use std::time::Duration;

use vigil_wire::HostFrame;

use super::console::Console;
use super::scenario::{millis, secs, Expected, Scenario};
pub use session::{Flood, Garbage, MonitorCheck};

/// Deadline of a monitor scenario beyond the tool's listening time: QEMU start, tool start,
/// and a slow host.
const SLACK: Duration = secs(20);

/// Garbage written towards the kernel in `monitor-garbage`.
const GARBAGE: Garbage = Garbage {
    at: millis(3000),
    bytes: 4096,
};

/// The flood of `monitor-garbage-flood`: 32 KiB/s for 2 s (almost 3 times what a real
/// 115,200-baud UART carries, and 2 to 10 times what the kernel took in when the tick polled
/// COM2), in 1 KiB chunks, with a command behind every eighth chunk. QEMU's 16550 passes at
/// most about 200 KB/s (14 bytes per refill of its FIFO), less on a loaded host: a command
/// waits for the chunk ahead of it.
const FLOOD: Flood = Flood {
    at: millis(1000),
    chunks: 64,
    chunk_bytes: 1024,
    interval: Duration::from_micros(31_250),
    command_every: 8,
};

/// The base row of a monitor scenario whose tool does `monitor`: the kernel keeps running
/// until the runner stops QEMU after the tool, within the tool's duration plus [`SLACK`].
const fn watched(monitor: MonitorCheck) -> Scenario {
    Scenario {
        deadline: monitor.duration.saturating_add(SLACK),
        expected: Expected::Running,
        monitor: Some(monitor),
        ..Scenario::DEFAULT
    }
}

/// The `monitor-ipc-events` rows' tool: `vigil events` from reset, so the stream holds
/// every round trip (1000 of them fit the trace ring even as separate events).
const IPC_EVENTS: MonitorCheck = MonitorCheck {
    duration: secs(3),
    from_reset: true,
    check: ipc_events::check_fast_round_trip_events,
    ..MonitorCheck::DEFAULT
};

/// `IPC_EVENTS` for the rows booted with `ipc_fastpath=off`.
const IPC_EVENTS_SLOW: MonitorCheck = MonitorCheck {
    check: ipc_events::check_slow_round_trip_events,
    ..IPC_EVENTS
};

/// 1000 memory-message round trips: `SendReceive` to a server on `ReplyReceive`.
const IPC_EVENTS_MEMORY: &[&str] = &[
    "pm kcalls=pm",
    "pingpong_server -- reply-receive",
    "pingpong_client",
];

/// The same with register messages (`SendReceiveRegisters`, `ReplyReceiveRegisters`).
const IPC_EVENTS_REGISTERS: &[&str] = &[
    "pm kcalls=pm",
    "pingpong_server -- registers",
    "pingpong_client -- registers",
];

/// Monitor scenarios, run after the user scenarios.
pub const MONITOR_SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "monitor-boot-processes",
        check: check_boot_console,
        programs: &[
            "pm kcalls=pm",
            "spinner prio=12",
            "pingpong_server",
            "chain_link name=chain_a -- chain_b",
            "chain_link name=chain_b -- chain_c",
            "chain_link name=chain_c -- none",
        ],
        ..watched(MonitorCheck {
            duration: secs(3),
            check: checks::check_boot_processes,
            ..MonitorCheck::DEFAULT
        })
    },
    Scenario {
        name: "monitor-cpu-hog",
        check: check_spinner_console,
        programs: &["pm kcalls=pm", "spinner prio=12"],
        ..watched(MonitorCheck {
            duration: secs(4),
            check: checks::check_cpu_hog,
            ..MonitorCheck::DEFAULT
        })
    },
    Scenario {
        name: "monitor-deadlock",
        check: check_deadlock_console,
        programs: &["pm kcalls=pm", "deadlock_mutex"],
        ..watched(MonitorCheck {
            duration: secs(2),
            check: checks::check_deadlock,
            ..MonitorCheck::DEFAULT
        })
    },
    Scenario {
        name: "monitor-blocked-chain",
        check: check_chain_console,
        programs: &[
            "pm kcalls=pm",
            "chain_link name=chain_a -- chain_b",
            "chain_link name=chain_b -- chain_c",
            "chain_link name=chain_c -- none",
        ],
        ..watched(MonitorCheck {
            duration: secs(8),
            check: checks::check_blocked_chain,
            ..MonitorCheck::DEFAULT
        })
    },
    Scenario {
        name: "monitor-garbage",
        check: check_spinner_console,
        programs: &["pm kcalls=pm", "spinner prio=12", "pingpong_server"],
        ..watched(MonitorCheck {
            duration: secs(6),
            garbage: Some(GARBAGE),
            check: checks::check_garbage,
            ..MonitorCheck::DEFAULT
        })
    },
    Scenario {
        name: "monitor-garbage-flood",
        check: require_quiet_run,
        // No PM here: with `pm` in the boot list, 2 of 5 runs answered a command during the
        // flood after 152 and 191 ms (≤ 29 ms in 10 runs without it, here and before PM
        // started the programs). Not understood yet (PM is idle in receive meanwhile); the
        // scenario is about the monitor's input path, so it boots what it did before.
        programs: &["pm kcalls=pm", "pingpong_server"],
        ..watched(MonitorCheck {
            // The kernel sends its loss counters once a second: one must follow the last
            // answer (at about 3 s).
            duration: secs(5),
            flood: Some(FLOOD),
            check: checks::check_garbage_flood,
            ..MonitorCheck::DEFAULT
        })
    },
    Scenario {
        name: "monitor-exit-history",
        check: check_exit_history_console,
        programs: &["pm kcalls=pm", "crash_null", "hello", "spinner prio=12"],
        ..watched(MonitorCheck {
            duration: secs(3),
            // A client attaching after both ends.
            commands: &[(
                millis(1500),
                HostFrame::Hello {
                    protocol_version: vigil_wire::PROTOCOL_VERSION,
                },
            )],
            check: checks::check_exit_history,
            ..MonitorCheck::DEFAULT
        })
    },
    Scenario {
        name: "monitor-session-defaults",
        check: check_spinner_console,
        // Another client (the proxy, as one) turns events off; a later Hello — a new
        // client's session — must bring the default mask back.
        programs: &[
            "pm kcalls=pm",
            "spinner prio=12",
            "spinner name=spinner2 prio=12",
        ],
        ..watched(MonitorCheck {
            duration: secs(4),
            commands: &[
                (millis(1200), HostFrame::SetEventMask(0)),
                (
                    millis(2400),
                    HostFrame::Hello {
                        protocol_version: vigil_wire::PROTOCOL_VERSION,
                    },
                ),
            ],
            check: checks::check_session_defaults,
            ..MonitorCheck::DEFAULT
        })
    },
    Scenario {
        name: "monitor-record-replay",
        check: check_record_console,
        // A burst of IPC at boot (1000 round trips; the client may not shut down, so it
        // exits), then a spinner that logs once a second.
        programs: &[
            "pm kcalls=pm",
            "pingpong_server",
            "pingpong_client",
            "spinner prio=12",
        ],
        ..watched(MonitorCheck {
            duration: secs(3),
            record: true,
            check: checks::check_record_replay,
            ..MonitorCheck::DEFAULT
        })
    },
    Scenario {
        name: "monitor-boot-recording",
        check: check_record_console,
        // `--wait-monitor`: the recording starts at reset, and the boot burst of 1000 round
        // trips fits the trace ring, so nothing is lost.
        programs: &["pm kcalls=pm", "pingpong_server", "pingpong_client"],
        ..watched(MonitorCheck {
            duration: secs(3),
            record: true,
            from_reset: true,
            check: checks::check_boot_recording,
            ..MonitorCheck::DEFAULT
        })
    },
    // The IPC fast path's events, exactly the slow path's: the same check on the same
    // round trips with the fast path on and forced off, memory and register messages.
    Scenario {
        name: "monitor-ipc-events",
        check: check_ipc_events_console,
        programs: IPC_EVENTS_MEMORY,
        ..watched(IPC_EVENTS)
    },
    Scenario {
        name: "monitor-ipc-events-slowpath",
        check: check_ipc_events_console,
        cmdline: "ipc_fastpath=off",
        programs: IPC_EVENTS_MEMORY,
        ..watched(IPC_EVENTS_SLOW)
    },
    Scenario {
        name: "monitor-ipc-events-registers",
        check: check_ipc_events_registers_console,
        programs: IPC_EVENTS_REGISTERS,
        ..watched(IPC_EVENTS)
    },
    Scenario {
        name: "monitor-ipc-events-registers-slowpath",
        check: check_ipc_events_registers_console,
        cmdline: "ipc_fastpath=off",
        programs: IPC_EVENTS_REGISTERS,
        ..watched(IPC_EVENTS_SLOW)
    },
    Scenario {
        name: "monitor-lockup-epitaph",
        // The tick locks up under the kernel lock 2 s after boot while spinner runs; in report
        // mode the machine stays up, so the tool listens to the end.
        cmdline: "watchdog=report test=lockup-tick",
        check: check_lockup_console,
        programs: &["pm kcalls=pm", "spinner"],
        ..watched(MonitorCheck {
            duration: secs(4),
            check: checks::check_lockup_epitaph,
            ..MonitorCheck::DEFAULT
        })
    },
    Scenario {
        name: "monitor-hub",
        check: check_spinner_console,
        programs: &["pm kcalls=pm", "spinner prio=12", "pingpong_server"],
        ..watched(MonitorCheck {
            duration: secs(3),
            hub_clients: checks::HUB_CLIENTS,
            check: checks::check_hub_clients,
            ..MonitorCheck::DEFAULT
        })
    },
    Scenario {
        name: "monitor-memory",
        // The tool sees each process's memory figures: the idler's through VM (resident,
        // peak, VmSetVirtual's virtual size, faults by kind), VM's own as the kernel maps it.
        check: check_memory_console,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "vm_introspect name=idler -- idle",
        ],
        ..watched(MonitorCheck {
            duration: secs(3),
            check: checks::check_memory_figures,
            ..MonitorCheck::DEFAULT
        })
    },
    Scenario {
        name: "monitor-metrics",
        check: check_spinner_console,
        programs: &["pm kcalls=pm", "spinner prio=12", "pingpong_server"],
        ..watched(MonitorCheck {
            duration: secs(10),
            metrics: true,
            check: checks::check_metrics,
            ..MonitorCheck::DEFAULT
        })
    },
    Scenario {
        name: "monitor-pm-host-commands",
        // A host client kills a process PM spawned; PM refuses PM, VM and a forged pid.
        check: check_pm_host_commands_console,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "pm_child boot=pm",
            "pm_parent",
            "pm_host_forge kcalls=pm",
        ],
        ..watched(MonitorCheck {
            duration: secs(4),
            commands: process_commands::PM_COMMANDS,
            raw_commands: process_commands::GARBAGE_COMMAND,
            check: process_commands::check_pm_host_commands,
            ..MonitorCheck::DEFAULT
        })
    },
    Scenario {
        name: "monitor-host-command-no-pm",
        // VM alone: no process manager, so the kernel answers the process commands.
        check: check_vm_alone_console,
        programs: &["vm kcalls=vm"],
        ..watched(MonitorCheck {
            duration: secs(2),
            commands: process_commands::NO_PM_COMMANDS,
            check: process_commands::check_no_pm,
            ..MonitorCheck::DEFAULT
        })
    },
    Scenario {
        name: "monitor-rs-host-commands",
        // A host client lists, holds, restarts, releases, takes down and brings up services
        // and updates hello; the kernel forwards each to RS, which refuses a held-down
        // refresh, a forged index, an update of a service that is down and every action on
        // a system server; garbage update frames are invalid or unanswered.
        check: check_rs_host_commands_console,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "rs kcalls=rs -- hello_service crashy:base=10,limit=2",
            "hello_service boot=pm",
            "hello_service name=crashy boot=pm -- crash-on-start",
            "hello_service name=hello_v2 boot=pm -- version=2",
        ],
        ..watched(MonitorCheck {
            duration: secs(3),
            commands: service_commands::RS_COMMANDS,
            raw_commands: service_commands::GARBAGE_SERVICE_COMMAND,
            check: service_commands::check_rs_host_commands,
            ..MonitorCheck::DEFAULT
        })
    },
    Scenario {
        name: "monitor-host-command-silent-pm",
        // A "pm" that never receives: commands wait their 2 s, then time out.
        check: check_silent_pm_console,
        programs: &["spinner name=pm kcalls=pm prio=12"],
        ..watched(MonitorCheck {
            duration: secs(4),
            commands: process_commands::SILENT_PM_COMMANDS,
            check: process_commands::check_silent_pm,
            ..MonitorCheck::DEFAULT
        })
    },
];

// ---------------------------------------------------------------------------------------------
// Console checks (the guest's side of each story)
// ---------------------------------------------------------------------------------------------

/// No panic, no fault, no FAIL line (monitor scenarios never shut down).
fn require_quiet_run(console: &Console) -> Result<(), String> {
    console.forbid(": FAIL")?;
    console.forbid("panic:")?;
    console.forbid("user fault:")?;
    console.require("monitor: streaming on COM2")
}

fn check_boot_console(console: &Console) -> Result<(), String> {
    require_quiet_run(console)?;
    console.require("pm: boot: 5 of 5 programs started by pm")?;
    console.require("chain_c: chain_link: end of the chain")
}

fn check_spinner_console(console: &Console) -> Result<(), String> {
    require_quiet_run(console)?;
    console.require("spinner: spinner: spinning")
}

fn check_vm_alone_console(console: &Console) -> Result<(), String> {
    require_quiet_run(console)?;
    console.require("vm: serving page faults at ")?;
    console.require("boot: no process manager ('pm') started")
}

fn check_memory_console(console: &Console) -> Result<(), String> {
    require_quiet_run(console)?;
    console.require("vm: serving page faults at ")?;
    console.forbid("could not report pid")
}

fn check_exit_history_console(console: &Console) -> Result<(), String> {
    console.forbid(": FAIL")?;
    console.forbid("panic:")?;
    console.require("monitor: streaming on COM2")?;
    console.require("process 'crash_null' (pid ")?;
    console.require("process 'hello' (pid ")
}

fn check_pm_host_commands_console(console: &Console) -> Result<(), String> {
    require_quiet_run(console)?;
    console.require("pm: host: killed pm_child (pid 5), status 137")?;
    console.require("pm_parent: child 5 exited with status 137")?;
    console.require("pm_host_forge: PASS forged host replies refused")
}

fn check_rs_host_commands_console(console: &Console) -> Result<(), String> {
    console.forbid(": FAIL")?;
    console.forbid("panic:")?;
    console.require("monitor: streaming on COM2")?;
    console.require("rs: 'rs' answers the host's service commands")?;
    console.require("rs: service 'hello_service': hold requested (state running)")?;
    console.require("rs: service 'hello_service' is down (up starts it)")?;
    console.require("rs: service 'crashy': release requested (state held-down)")?;
    console.require(
        "rs: service 'vm': update refused: system server: not restartable (its state lives only in its memory)",
    )?;
    console.require("rs: service 'hello_service': update from 'hello_service' (version 1) to 'hello_v2' requested")
}

fn check_silent_pm_console(console: &Console) -> Result<(), String> {
    require_quiet_run(console)?;
    console.require("pm: 'pm' manages the processes it starts")?;
    console.require("pm: spinner: spinning")
}

fn check_deadlock_console(console: &Console) -> Result<(), String> {
    require_quiet_run(console)?;
    console.require_line_with(&["deadlock_mutex: left (", "holds 0x", "now wants 0x"])?;
    console.require_line_with(&["deadlock_mutex: right (", "holds 0x", "now wants 0x"])?;
    console.forbid("there was no deadlock")
}

fn check_chain_console(console: &Console) -> Result<(), String> {
    require_quiet_run(console)?;
    console.require("chain_a: chain_link: send_receive to chain_b")?;
    console.require("chain_b: chain_link: send_receive to chain_c")?;
    console.require("chain_c: chain_link: end of the chain")?;
    console.forbid("the chain was not blocked")
}

fn check_lockup_console(console: &Console) -> Result<(), String> {
    console.require("monitor: streaming on COM2")?;
    console.require("selftest lockup-tick: spinning in the timer tick")?;
    console.require("KERNEL LOCKUP: no timer tick for")?;
    console.require("epitaph: a kernel-lockup crash frame with")
}

fn check_record_console(console: &Console) -> Result<(), String> {
    console.forbid("panic:")?;
    console.forbid("user fault:")?;
    console.require("pingpong_client: pingpong: PASS 1000 round trips")?;
    // pingpong_client may not shut the machine down: the refusal is expected.
    require_clean_run_except_shutdown(console)
}

fn check_ipc_events_console(console: &Console) -> Result<(), String> {
    console.require("pingpong server ready at ")?;
    console.require("(reply-receive)")?;
    check_record_console(console)
}

fn check_ipc_events_registers_console(console: &Console) -> Result<(), String> {
    console.require("(reply-receive with register messages)")?;
    console.require("pingpong_client: pingpong: PASS 1000 round trips (register messages)")?;
    check_record_console(console)
}

fn require_clean_run_except_shutdown(console: &Console) -> Result<(), String> {
    match console.require_clean_run() {
        Err(error) if error.contains("shutdown refused") => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::view::fixtures::console;
    use super::*;

    #[test]
    fn scenario_table_is_consistent() {
        let names: Vec<&str> = MONITOR_SCENARIOS.iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "monitor-boot-processes",
                "monitor-cpu-hog",
                "monitor-deadlock",
                "monitor-blocked-chain",
                "monitor-garbage",
                "monitor-garbage-flood",
                "monitor-exit-history",
                "monitor-session-defaults",
                "monitor-record-replay",
                "monitor-boot-recording",
                "monitor-ipc-events",
                "monitor-ipc-events-slowpath",
                "monitor-ipc-events-registers",
                "monitor-ipc-events-registers-slowpath",
                "monitor-lockup-epitaph",
                "monitor-hub",
                "monitor-memory",
                "monitor-metrics",
                "monitor-pm-host-commands",
                "monitor-host-command-no-pm",
                "monitor-rs-host-commands",
                "monitor-host-command-silent-pm"
            ]
        );
        let mut total = Duration::ZERO;
        for scenario in MONITOR_SCENARIOS {
            let check = scenario.monitor.as_ref().expect("a monitor check");
            assert_eq!(scenario.expected, Expected::Running, "{}", scenario.name);
            assert!(
                scenario.deadline >= check.duration + secs(10),
                "{}",
                scenario.name
            );
            if let Some(garbage) = check.garbage {
                assert!(garbage.at < check.duration, "{}", scenario.name);
            }
            for (at, _) in check.commands {
                assert!(*at < check.duration, "{}", scenario.name);
            }
            total += check.duration;
        }
        // CI time: the listening adds up to about a minute and a half
        // (monitor-rs-host-commands added 3 s to the 71 before it, the four
        // monitor-ipc-events rows 12 s).
        assert!(total <= secs(86), "{total:?}");
        assert_eq!(checks::record_duration(), secs(3));
        assert!(check_blocked_chain_duration_covers_the_detector());
    }

    fn check_blocked_chain_duration_covers_the_detector() -> bool {
        let chain = MONITOR_SCENARIOS
            .iter()
            .find(|s| s.name == "monitor-blocked-chain")
            .and_then(|s| s.monitor.as_ref())
            .unwrap();
        chain.duration >= Duration::from_nanos(checks::HUNG_AFTER_NS) + secs(1)
    }

    #[test]
    fn console_checks() {
        let ok = [
            "[    0.04] INFO  monitor: streaming on COM2 (protocol v1)",
            "[    0.15] INFO  pm: boot: 5 of 5 programs started by pm",
            "[    0.17] INFO  chain_c: chain_link: end of the chain, sleeping instead of receiving",
        ];
        assert_eq!(check_boot_console(&console(&ok)), Ok(()));
        let mut panicked = ok.to_vec();
        panicked.push("[    0.2] ERROR panic: oops");
        assert!(check_boot_console(&console(&panicked)).is_err());
        let record = [
            "[    0.04] INFO  monitor: streaming on COM2 (protocol v1)",
            "[    0.3] INFO  pingpong_client: pingpong: PASS 1000 round trips",
            "[    0.3] INFO  pingpong_client: shutdown refused: EPERM; exiting the process instead",
        ];
        assert_eq!(check_record_console(&console(&record)), Ok(()));
    }
}
