//! `cargo xtask test`: host tests, kernel and user program builds, QEMU scenarios, and the
//! closing `N passed, M failed` line that CI reads.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Result};

use crate::host_tests::{self, Tally};
use crate::kernel::{self, Profile};
use crate::prereq;
use crate::symbolize::Symbolizer;
use crate::system_test::{self, Scenario};
use crate::tool;
use crate::user;

/// What `cargo xtask test` was asked for.
#[derive(Clone, Debug, Default)]
pub struct TestOptions {
    /// Run only scenarios whose name contains this (and skip the host tests).
    pub scenario: Option<String>,
    pub no_host: bool,
    /// Echo the guest console live.
    pub verbose: bool,
    /// A prebuilt kernel ELF to test instead of building one.
    pub kernel: Option<PathBuf>,
    /// List the scenarios and stop.
    pub list: bool,
}

pub fn run(options: TestOptions) -> Result<ExitCode> {
    if options.list {
        system_test::print_list();
        return Ok(ExitCode::SUCCESS);
    }
    let scenarios = system_test::select(options.scenario.as_deref());
    if scenarios.is_empty() {
        let names: Vec<&str> = system_test::all().map(|s| s.name).collect();
        bail!(
            "no scenario name contains {:?}; scenarios: {}",
            options.scenario.unwrap_or_default(),
            names.join(", ")
        );
    }
    prereq::ensure()?;

    let mut tally = Tally::default();
    if options.scenario.is_none() && !options.no_host {
        match host_tests::run() {
            Ok(host) => {
                println!("host tests: {} passed, {} failed", host.passed, host.failed);
                tally.add(host);
            }
            Err(error) => {
                println!("host tests: FAILED to run: {error:#}");
                tally.record(false);
            }
        }
    }

    let kernel = match &options.kernel {
        Some(elf) => kernel::verify(elf).map(|()| elf.clone()),
        None => kernel::build(Profile::Release),
    };
    // The full suite always builds the user programs (so a broken program fails CI); a
    // filtered run builds them only when a selected scenario boots one.
    let needs_programs = scenarios.iter().any(|s| !s.programs.is_empty());
    let programs = if options.scenario.is_none() || needs_programs {
        match user::build() {
            Ok(programs) => Some(programs),
            Err(error) => {
                println!("FAIL user programs build: {error:#}");
                tally.record(false);
                None
            }
        }
    } else {
        None
    };
    // Prometheus's tools, if the metrics scenario will run (its check names what is missing).
    if scenarios
        .iter()
        .any(|s| s.monitor.as_ref().is_some_and(|m| m.metrics))
    {
        if let Err(error) = prereq::ensure_prometheus() {
            println!("warning: {error:#}");
        }
    }
    // gdb, if the time-travel gdb scenario will run (its check names what is missing).
    if scenarios
        .iter()
        .any(|s| s.timetravel == Some(system_test::TimeTravel::Gdb))
    {
        if let Err(error) = prereq::ensure_gdb() {
            println!("warning: {error:#}");
        }
    }
    // The host tool, once, if a monitor scenario will run.
    let tool = if scenarios.iter().any(|s| s.monitor.is_some()) {
        match tool::build_tool() {
            Ok(tool) => Some(tool),
            Err(error) => {
                println!("FAIL host tool build: {error:#}");
                tally.record(false);
                None
            }
        }
    } else {
        None
    };
    match kernel {
        Err(error) => {
            println!("FAIL kernel build: {error:#}");
            println!(
                "skipping the {} QEMU scenarios: there is no kernel to boot",
                scenarios.len()
            );
            tally.record(false);
        }
        Ok(elf) => {
            let (runnable, skipped): (Vec<&Scenario>, Vec<&Scenario>) =
                scenarios.into_iter().partition(|s| {
                    (s.programs.is_empty() || programs.is_some())
                        && (s.monitor.is_none() || tool.is_some())
                });
            if !skipped.is_empty() {
                let names: Vec<&str> = skipped.iter().map(|s| s.name).collect();
                println!(
                    "skipping {} scenario{} (their user programs or the host tool did not \
                     build): {}",
                    skipped.len(),
                    if skipped.len() == 1 { "" } else { "s" },
                    names.join(", ")
                );
            }
            println!(
                "running {} QEMU scenario{} (TCG)",
                runnable.len(),
                if runnable.len() == 1 { "" } else { "s" }
            );
            let symbolizer = Symbolizer::load(&elf, &kernel::workspace_root());
            for scenario in runnable {
                let passed = system_test::run_scenario(
                    scenario,
                    &elf,
                    programs.as_ref(),
                    &symbolizer,
                    options.verbose,
                    tool.as_deref(),
                );
                tally.record(passed);
            }
        }
    }

    println!("{} passed, {} failed", tally.passed, tally.failed);
    Ok(if tally.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
