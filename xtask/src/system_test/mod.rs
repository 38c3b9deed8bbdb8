//! System tests: the QEMU scenarios of `cargo xtask test`, the runner that boots and judges
//! them, and the monitor scenarios' host-tool session and decoding proxy. Building the
//! kernel, the user programs and the host tool is not in this tree (`crate::kernel`,
//! `crate::user`, `crate::tool`); starting and supervising QEMU is shared with `run` and
//! `bench` (`crate::qemu`); `crate::test_suite` builds everything and hands the scenarios here.
//!
//! - `scenario.rs`: the row type [`Scenario`] and its defaults ([`Scenario::DEFAULT`]);
//! - `console.rs`: the console as checks see it, and their vocabulary (`require`, `forbid`…);
//! - `boot.rs`, `user.rs`, `watchdog.rs`, `monitor/mod.rs`: the four tables, each with its
//!   checks;
//! - `runner.rs`: boots a row, supervises it to its deadline, judges the run;
//! - `monitor/`: QEMU + proxy + `vigil` sessions and their checks; `proxy.rs`: the proxy.
//!
//! To add a scenario, add a row to a table — [`boot::BOOT_SCENARIOS`] (kernel only, a
//! `test=NAME` self-test), [`user::USER_SCENARIOS`] (user programs),
//! [`watchdog::WATCHDOG_SCENARIOS`] (the NMI watchdog) or
//! [`monitor::MONITOR_SCENARIOS`] (judged on what the host tool sees as well) — naming only
//! what differs from the table's base row, and write its console check next to it:
//!
//! ```text
//! Scenario {
//!     name: "ipc-pingpong",
//!     check: check_pingpong,
//!     programs: &["pm kcalls=pm", "pingpong_server", "pingpong_client kcalls=shutdown"],
//!     ..USER
//! },
//! ```

mod boot;
mod console;
mod monitor;
mod proxy;
mod runner;
mod scenario;
mod timetravel;
mod user;
mod watchdog;

pub use runner::run_scenario;
pub use scenario::Scenario;
pub use timetravel::TimeTravel;

/// Every scenario, in the order they run.
pub fn all() -> impl Iterator<Item = &'static Scenario> {
    boot::BOOT_SCENARIOS
        .iter()
        .chain(user::USER_SCENARIOS.iter())
        .chain(user::slow_path_scenarios().iter())
        .chain(watchdog::WATCHDOG_SCENARIOS.iter())
        .chain(monitor::MONITOR_SCENARIOS.iter())
        .chain(timetravel::TIMETRAVEL_SCENARIOS.iter())
}

/// The scenarios whose name contains `filter` (all of them without one).
pub fn select(filter: Option<&str>) -> Vec<&'static Scenario> {
    all()
        .filter(|scenario| filter.is_none_or(|f| scenario.name.contains(f)))
        .collect()
}

/// `cargo xtask test --list`: one line per scenario, then its programs and host-tool run.
pub fn print_list() {
    for scenario in all() {
        println!(
            "{:<24} -m {:<5} {:<24} deadline {:>3} s  expect {:?}",
            scenario.name,
            scenario.memory,
            scenario.cmdline,
            scenario.deadline.as_secs(),
            scenario.expected
        );
        for program in scenario.programs {
            println!("{:<24} program {program}", "");
        }
        if let Some(check) = &scenario.monitor {
            println!(
                "{:<24} host tool: vigil {} for {:.1} s{}",
                "",
                if check.record {
                    "record, then events --replay"
                } else {
                    "events --json --snapshots"
                },
                check.duration.as_secs_f64(),
                match check.garbage {
                    Some(garbage) => format!(
                        ", {} bytes of garbage to the kernel at {:.1} s",
                        garbage.bytes,
                        garbage.at.as_secs_f64()
                    ),
                    None => String::new(),
                }
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::console::Console;
    use super::monitor::session::{Observation, NO_TOOL_CHECK};
    use super::scenario::{secs, NO_CHECK};
    use super::*;

    /// The scenario called `name`.
    pub fn scenario(name: &str) -> &'static Scenario {
        all()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no scenario {name}"))
    }

    #[test]
    fn scenario_names_are_unique_and_cover_the_contract() {
        let names: Vec<&str> = all().map(|s| s.name).collect();
        for name in [
            "boot-128m",
            "boot-modules",
            "boot-5g",
            "fault-page",
            "fault-divide",
            "fault-stack-overflow",
            "panic",
            "bad-test-name",
            "hang-is-killed",
        ] {
            assert!(names.contains(&name), "{name}");
        }
        assert!(names.iter().all(|name| !name.is_empty()), "{names:?}");
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        assert_eq!(scenario("hang-is-killed").deadline, secs(3));
        assert_eq!(
            scenario("hang-is-killed").expected,
            scenario::Expected::TimedOut
        );
        assert_eq!(scenario("boot-5g").memory, "5G");
        // Every IPC scenario also runs with the fast path off.
        for name in names.iter().filter(|name| name.starts_with("ipc-")) {
            if name.ends_with("-slowpath") {
                continue;
            }
            let slow = scenario(&format!("{name}-slowpath"));
            assert!(
                slow.cmdline.contains("ipc_fastpath=off"),
                "{}",
                slow.cmdline
            );
            assert_eq!(slow.programs, scenario(name).programs);
        }
    }

    #[test]
    fn every_row_names_its_checks() {
        let empty = Console::from_texts(&[]);
        for scenario in all() {
            assert_ne!(
                (scenario.check)(&empty),
                Err(NO_CHECK.to_string()),
                "{}",
                scenario.name
            );
            if let Some(monitor) = &scenario.monitor {
                let observation = Observation {
                    lines: Vec::new(),
                    clients: Vec::new(),
                    metrics: None,
                    replay: None,
                    recording: None,
                    proxy: Default::default(),
                    console: Console::from_texts(&[]),
                };
                assert_ne!(
                    (monitor.check)(&observation),
                    Err(NO_TOOL_CHECK.to_string()),
                    "{}",
                    scenario.name
                );
                assert!(monitor.duration > secs(0), "{}", scenario.name);
            }
        }
    }

    #[test]
    fn icount_rows_are_ordinary_runs() {
        // The monitor and time-travel runners build their own QEMU configuration (record
        // mode sets its own -icount): a row asking for icount there would not get it.
        let icount: Vec<&str> = all().filter(|s| s.icount).map(|s| s.name).collect();
        assert!(icount.contains(&"sched-fair"), "{icount:?}");
        for scenario in all().filter(|s| s.icount) {
            assert!(
                scenario.monitor.is_none() && scenario.timetravel.is_none(),
                "{}",
                scenario.name
            );
        }
    }

    #[test]
    fn selects_scenarios_by_substring() {
        assert_eq!(select(None).len(), all().count());
        let faults: Vec<&str> = select(Some("fault-")).iter().map(|s| s.name).collect();
        assert_eq!(
            faults,
            ["fault-page", "fault-divide", "fault-stack-overflow"]
        );
        assert!(select(Some("nothing-like-this")).is_empty());
    }

    #[test]
    fn every_scenario_has_well_formed_program_specifications() {
        for scenario in all() {
            let specs = crate::user::parse_specs(scenario.programs)
                .unwrap_or_else(|error| panic!("scenario {}: {error:#}", scenario.name));
            if let Err(error) = crate::user::require_process_manager(&specs) {
                panic!("scenario {}: {error:#}", scenario.name);
            }
        }
    }
}
