//! The QEMU test scenarios: a table of (name, memory, command line, deadline, expected exit,
//! console check, optional host-tool check), and the runner that boots each one and judges it.
//!
//! To add a scenario, add a row to [`BOOT_SCENARIOS`] (kernel-only), to
//! `scenarios_user::USER_SCENARIOS` (user programs) or to
//! `scenarios_monitor::MONITOR_SCENARIOS` (judged on what the host tool `vigil` observes on
//! the monitor channel; see `monitor.rs`); its check gets the symbolised console.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::monitor::{self, MonitorCheck};
use crate::qemu::{
    self, BootModule, ConsoleLine, Exit, KernelExit, Outcome, QemuConfig, SupervisedRun,
};
use crate::symbolize::{self, Symbolizer};
use crate::user::{self, ProcessMap, UserPrograms};

/// How the scenario must end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// The kernel exits QEMU with `qemu_exit::SUCCESS`.
    Success,
    /// The kernel exits QEMU with `qemu_exit::FAILURE`.
    Failure,
    /// The kernel never exits: the runner must kill QEMU at the deadline.
    TimedOut,
    /// The kernel keeps running until the runner stops QEMU because the host tool has
    /// finished (monitor scenarios).
    Running,
}

/// One QEMU scenario.
pub struct Scenario {
    pub name: &'static str,
    /// QEMU `-m` value.
    pub memory: &'static str,
    /// Kernel command line.
    pub cmdline: &'static str,
    pub deadline: Duration,
    pub expected: Expected,
    /// Judges the (symbolised) console output.
    pub check: fn(&Console) -> Result<(), String>,
    /// Print the time from QEMU start to the banner line.
    pub report_banner_time: bool,
    /// Multiboot modules to hand the kernel: (file name, size in bytes). The runner writes
    /// each file (a byte pattern) under target/xtask-modules/ before booting.
    pub modules: &'static [(&'static str, usize)],
    /// User programs to boot, in order, as Multiboot modules: each entry is the program
    /// (binary) name followed by its boot options, e.g. `"ipc_client prio=6 kcalls=shutdown"`.
    /// The runner replaces the name with the built ELF's path.
    pub programs: &'static [&'static str],
    /// Watch the kernel with the host tool through the monitor channel and judge what it
    /// reports as well (`None`: COM2 is discarded).
    pub monitor: Option<MonitorCheck>,
}

const fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

/// Kernel-only scenarios (no user programs), run first.
pub const BOOT_SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "boot-128m",
        memory: "128M",
        cmdline: "test=boot",
        deadline: secs(20),
        expected: Expected::Success,
        check: check_boot_128m,
        report_banner_time: true,
        modules: &[],
        programs: &[],
        monitor: None,
    },
    Scenario {
        name: "boot-modules",
        memory: "128M",
        cmdline: "test=boot",
        deadline: secs(20),
        expected: Expected::Success,
        check: check_boot_modules,
        report_banner_time: false,
        modules: &[
            ("boot-module-small.bin", 6),
            ("boot-module-large.bin", 300_000),
        ],
        programs: &[],
        monitor: None,
    },
    Scenario {
        name: "boot-5g",
        memory: "5G",
        cmdline: "test=boot",
        deadline: secs(30),
        expected: Expected::Success,
        check: check_boot_5g,
        report_banner_time: true,
        modules: &[],
        programs: &[],
        monitor: None,
    },
    Scenario {
        name: "fault-page",
        memory: "128M",
        cmdline: "test=pagefault",
        deadline: secs(20),
        expected: Expected::Failure,
        check: check_fault_page,
        report_banner_time: false,
        modules: &[],
        programs: &[],
        monitor: None,
    },
    Scenario {
        name: "fault-divide",
        memory: "128M",
        cmdline: "test=divide",
        deadline: secs(20),
        expected: Expected::Failure,
        check: check_fault_divide,
        report_banner_time: false,
        modules: &[],
        programs: &[],
        monitor: None,
    },
    Scenario {
        name: "fault-stack-overflow",
        memory: "128M",
        cmdline: "test=stackoverflow",
        deadline: secs(20),
        expected: Expected::Failure,
        check: check_fault_stack_overflow,
        report_banner_time: false,
        modules: &[],
        programs: &[],
        monitor: None,
    },
    Scenario {
        name: "panic",
        memory: "128M",
        cmdline: "test=panic",
        deadline: secs(20),
        expected: Expected::Failure,
        check: check_panic,
        report_banner_time: false,
        modules: &[],
        programs: &[],
        monitor: None,
    },
    Scenario {
        name: "bad-test-name",
        memory: "128M",
        cmdline: "test=no-such-test",
        deadline: secs(20),
        expected: Expected::Failure,
        check: check_bad_test_name,
        report_banner_time: false,
        modules: &[],
        programs: &[],
        monitor: None,
    },
    Scenario {
        name: "hang-is-killed",
        memory: "128M",
        cmdline: "test=hang",
        deadline: secs(3),
        expected: Expected::TimedOut,
        check: check_nothing,
        report_banner_time: false,
        modules: &[],
        programs: &[],
        monitor: None,
    },
];

/// The console output of one run, as the checks see it.
pub struct Console {
    pub lines: Vec<ConsoleLine>,
}

#[cfg(test)]
impl Console {
    /// A console of `texts`, all arriving at time zero (for checks in unit tests).
    pub fn from_texts(texts: &[&str]) -> Console {
        Console {
            lines: texts
                .iter()
                .map(|text| crate::qemu::ConsoleLine {
                    at: Duration::ZERO,
                    text: text.to_string(),
                })
                .collect(),
        }
    }
}

impl Console {
    /// The first line that contains `needle`.
    pub fn find(&self, needle: &str) -> Option<&ConsoleLine> {
        self.lines.iter().find(|line| line.text.contains(needle))
    }

    /// Ok if some line contains `needle`.
    pub fn require(&self, needle: &str) -> Result<(), String> {
        match self.find(needle) {
            Some(_) => Ok(()),
            None => Err(format!("the console never showed {needle:?}")),
        }
    }

    /// The banner: the first line containing `Vigil ` and ` up: `.
    pub fn banner(&self) -> Option<&ConsoleLine> {
        self.lines
            .iter()
            .find(|line| line.text.contains("Vigil ") && line.text.contains(" up: "))
    }

    /// Ok if the banner is present and contains `needle`.
    pub fn require_banner_with(&self, needle: &str) -> Result<(), String> {
        match self.banner() {
            None => Err("no banner line (`Vigil … up: …`) on the console".to_string()),
            Some(banner) if banner.text.contains(needle) => Ok(()),
            Some(banner) => Err(format!(
                "the banner does not say {needle:?}: {:?}",
                banner.text
            )),
        }
    }

    /// Ok if some backtrace frame line contains every one of `needles` (after symbolisation).
    pub fn require_frame_with(&self, needles: &[&str]) -> Result<(), String> {
        let mut frames = self
            .lines
            .iter()
            .filter(|line| symbolize::parse_frame(&line.text).is_some())
            .peekable();
        if frames.peek().is_none() {
            return Err("no backtrace frame lines (`#N pc|ret 0x…`) on the console".to_string());
        }
        if frames.any(|line| needles.iter().all(|needle| line.text.contains(needle))) {
            Ok(())
        } else {
            Err(format!(
                "no backtrace frame line mentions all of {needles:?}"
            ))
        }
    }
}

/// Every scenario, in the order they run.
pub fn all() -> impl Iterator<Item = &'static Scenario> {
    BOOT_SCENARIOS
        .iter()
        .chain(crate::scenarios_user::USER_SCENARIOS.iter())
        .chain(crate::scenarios_monitor::MONITOR_SCENARIOS.iter())
}

fn check_nothing(_: &Console) -> Result<(), String> {
    Ok(())
}

fn check_boot_128m(console: &Console) -> Result<(), String> {
    console.require_banner_with("memory 128 MiB")?;
    console.require("selftest boot: ok")
}

fn check_boot_modules(console: &Console) -> Result<(), String> {
    console.require("boot: module '")?;
    console.require("boot-module-small.bin")?;
    console.require("boot-module-large.bin")?;
    console.require("selftest boot: frames ok (2 modules reserved)")?;
    console.require("selftest boot: ok")
}

fn check_boot_5g(console: &Console) -> Result<(), String> {
    console.require_banner_with("memory 5120 MiB")?;
    console.require("selftest boot: ok")
}

fn check_fault_page(console: &Console) -> Result<(), String> {
    console.require("fault: #PF")?;
    console.require("(vector 14)")?;
    console.require("cr2=0x00000000deadb000")?;
    console.require_frame_with(&["selftest::", "kernel/src/selftest.rs:"])
}

fn check_fault_divide(console: &Console) -> Result<(), String> {
    console.require("fault: #DE")?;
    console.require("(vector 0)")?;
    console.require_frame_with(&["selftest::"])
}

fn check_fault_stack_overflow(console: &Console) -> Result<(), String> {
    console.require("fault: #DF")?;
    console.require("(vector 8)")
}

fn check_panic(console: &Console) -> Result<(), String> {
    console.require("panic: ")?;
    console.require("selftest panic: value=42")?;
    console.require("kernel/src/selftest.rs:")?;
    console.require("backtrace:")?;
    console.require_frame_with(&["selftest::"])
}

fn check_bad_test_name(console: &Console) -> Result<(), String> {
    console.require("unknown test")?;
    console.require("no-such-test")
}

/// Checks the way the run ended against what the scenario expects.
pub fn judge_outcome(expected: Expected, outcome: &Outcome) -> Result<(), String> {
    let matches = match (expected, outcome) {
        (Expected::Success, Outcome::Exited(exit)) => {
            KernelExit::from_exit(*exit) == KernelExit::Success
        }
        (Expected::Failure, Outcome::Exited(exit)) => {
            KernelExit::from_exit(*exit) == KernelExit::Failure
        }
        (
            Expected::TimedOut,
            Outcome::TimedOut {
                reaped,
                still_running,
                ..
            },
        ) => {
            if *still_running {
                return Err(format!(
                    "timed out as expected, but QEMU is still running after kill and wait \
                     (wait said {reaped:?})"
                ));
            }
            true
        }
        (Expected::Running, Outcome::Stopped { still_running, .. }) => {
            if *still_running {
                return Err(
                    "QEMU is still running after it was stopped, killed and waited for".to_string(),
                );
            }
            true
        }
        _ => false,
    };
    if matches {
        return Ok(());
    }
    let wanted = match expected {
        Expected::Success => "the kernel to exit with SUCCESS",
        Expected::Failure => "the kernel to exit with FAILURE",
        Expected::TimedOut => "the kernel to hang until the deadline",
        Expected::Running => "the kernel to keep running until the host tool had finished",
    };
    Err(format!("expected {wanted}, but {outcome}"))
}

/// The verdict on one scenario run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub passed: bool,
    /// The line printed for it: `PASS name (…)` or `FAIL name: reason`.
    pub summary: String,
}

/// Judges a finished run: outcome first, then the console check.
pub fn judge(scenario: &Scenario, run: &SupervisedRun) -> Verdict {
    let console = Console {
        lines: run.lines.clone(),
    };
    let outcome = judge_outcome(scenario.expected, &run.outcome);
    let check = (scenario.check)(&console);
    let problem = match (outcome, check) {
        (Ok(()), Ok(())) => None,
        (Err(outcome), Ok(())) => Some(outcome),
        (Ok(()), Err(check)) => Some(check),
        (Err(outcome), Err(check)) => Some(format!("{outcome}; also {check}")),
    };
    match problem {
        None => {
            let mut timing = format!("{:.2} s", run.elapsed.as_secs_f64());
            if scenario.report_banner_time {
                match console.banner() {
                    Some(banner) => {
                        timing.push_str(&format!("; banner after {:.2} s", banner.at.as_secs_f64()))
                    }
                    None => timing.push_str("; no banner"),
                }
            }
            Verdict {
                passed: true,
                summary: format!("PASS {} ({timing})", scenario.name),
            }
        }
        Some(reason) => Verdict {
            passed: false,
            summary: format!("FAIL {}: {reason}", scenario.name),
        },
    }
}

/// How many console lines to show after a failure.
const TAIL_LINES: usize = 40;

/// Boots one scenario, prints its verdict (and on failure the console tail), returns pass/fail.
/// `programs` are the built user programs (`None`: not built, fine for kernel-only scenarios);
/// `tool` is the built host tool, needed by monitor scenarios.
pub fn run_scenario(
    scenario: &Scenario,
    kernel: &Path,
    programs: Option<&UserPrograms>,
    symbolizer: &Symbolizer,
    verbose: bool,
    tool: Option<&Path>,
) -> bool {
    if let Some(check) = &scenario.monitor {
        let Some(tool) = tool else {
            println!(
                "FAIL {}: the host tool (vigil) was not built",
                scenario.name
            );
            return false;
        };
        return monitor::run_scenario(scenario, check, kernel, programs, symbolizer, verbose, tool);
    }
    let mut config = QemuConfig::for_test(kernel, scenario.memory, scenario.cmdline);
    let processes = match boot_modules(scenario, programs) {
        Ok((modules, processes)) => {
            config.modules = modules;
            processes
        }
        Err(error) => {
            println!("FAIL {}: {error:#}", scenario.name);
            return false;
        }
    };
    if verbose {
        println!("---- {}: {}", scenario.name, config.display_command());
    }
    let mut process_line = |line: &str| {
        let line = symbolizer.rewrite(line, &processes);
        if verbose {
            println!("{line}");
        }
        line
    };
    let run = match qemu::supervise(config.command(), scenario.deadline, &mut process_line) {
        Ok(run) => run,
        Err(error) => {
            println!("FAIL {}: {error:#}", scenario.name);
            return false;
        }
    };
    let verdict = judge(scenario, &run);
    println!("{}", verdict.summary);
    if !verdict.passed {
        print_failure_details(&run, TAIL_LINES);
    }
    verdict.passed
}

/// The scenario's Multiboot modules — its user programs first, then its generated files —
/// and the process map for symbolising user backtraces.
pub fn boot_modules(
    scenario: &Scenario,
    programs: Option<&UserPrograms>,
) -> Result<(Vec<BootModule>, ProcessMap)> {
    let (mut modules, processes) = if scenario.programs.is_empty() {
        (Vec::new(), ProcessMap::default())
    } else {
        let specs = user::parse_specs(scenario.programs)?;
        let programs = programs.context("the user programs were not built")?;
        programs.resolve(&specs)?
    };
    for path in write_modules(scenario).context("writing its modules")? {
        modules.push(BootModule::file(path)?);
    }
    Ok((modules, processes))
}

/// Writes the scenario's module files (byte pattern `i % 251`) and returns their paths.
fn write_modules(scenario: &Scenario) -> Result<Vec<PathBuf>> {
    let dir = crate::kernel::workspace_root()
        .join("target/xtask-modules")
        .join(scenario.name);
    if !scenario.modules.is_empty() {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    scenario
        .modules
        .iter()
        .map(|&(name, size)| {
            let path = dir.join(name);
            let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        })
        .collect()
}

/// Prints the last `tail` console lines, QEMU's stderr, and a note on a foreign exit status.
pub fn print_failure_details(run: &SupervisedRun, tail: usize) {
    if !run.lines.is_empty() {
        let skipped = run.lines.len().saturating_sub(tail);
        println!(
            "  console ({} lines{}):",
            run.lines.len(),
            if skipped > 0 {
                format!(", last {tail}")
            } else {
                String::new()
            }
        );
        for line in &run.lines[skipped..] {
            println!("  | {}", line.text);
        }
    } else {
        println!("  console: (nothing)");
    }
    let stderr = run.stderr.trim_end();
    if !stderr.is_empty() {
        println!("  QEMU stderr:");
        for line in stderr.lines() {
            println!("  ! {line}");
        }
    }
    if let Outcome::Exited(Exit::Code(code)) = run.outcome {
        if KernelExit::from_exit(Exit::Code(code)) == KernelExit::Other(Exit::Code(code)) {
            println!("  (QEMU status {code} did not come from the kernel's isa-debug-exit)");
        }
    }
}

/// The scenarios whose name contains `filter` (all of them without one).
pub fn select(filter: Option<&str>) -> Vec<&'static Scenario> {
    all()
        .filter(|scenario| filter.is_none_or(|f| scenario.name.contains(f)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_abi::qemu_exit::{host_status, FAILURE, SUCCESS};

    fn scenario(name: &str) -> &'static Scenario {
        all().find(|s| s.name == name).unwrap()
    }

    fn exited(code: u32) -> Outcome {
        Outcome::Exited(Exit::Code(host_status(code)))
    }

    fn run_with(outcome: Outcome, texts: &[(f64, &str)]) -> SupervisedRun {
        SupervisedRun {
            outcome,
            lines: texts
                .iter()
                .map(|(at, text)| ConsoleLine {
                    at: Duration::from_secs_f64(*at),
                    text: text.to_string(),
                })
                .collect(),
            stderr: String::new(),
            elapsed: Duration::from_millis(1234),
        }
    }

    const BANNER_128: &str = "[    0.021000] INFO  Vigil 0.1.0 up: memory 128 MiB (126 MiB \
                              usable), TSC 2993.1 MHz, timer 100 Hz";

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
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
        assert_eq!(scenario("hang-is-killed").deadline, secs(3));
        assert_eq!(scenario("boot-5g").memory, "5G");
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
    fn judges_outcomes_against_expectations() {
        assert!(judge_outcome(Expected::Success, &exited(SUCCESS)).is_ok());
        assert!(judge_outcome(Expected::Failure, &exited(FAILURE)).is_ok());
        let error = judge_outcome(Expected::Success, &exited(FAILURE)).unwrap_err();
        assert!(error.contains("kernel exited: FAILURE"), "{error}");
        let error = judge_outcome(Expected::Failure, &Outcome::Exited(Exit::Code(1))).unwrap_err();
        assert!(error.contains("status 1"), "{error}");
        let timed_out = Outcome::TimedOut {
            deadline: secs(20),
            reaped: Exit::Signal(9),
            still_running: false,
        };
        let error = judge_outcome(Expected::Success, &timed_out).unwrap_err();
        assert!(error.contains("timed out after 20.0 s"), "{error}");
        assert!(judge_outcome(Expected::TimedOut, &timed_out).is_ok());
        let error = judge_outcome(Expected::TimedOut, &exited(SUCCESS)).unwrap_err();
        assert!(error.contains("hang until the deadline"), "{error}");
        let zombie = Outcome::TimedOut {
            deadline: secs(3),
            reaped: Exit::Signal(9),
            still_running: true,
        };
        assert!(judge_outcome(Expected::TimedOut, &zombie).is_err());

        // Monitor scenarios: QEMU runs until the runner stops it after the host tool.
        let stopped = Outcome::Stopped {
            reaped: Exit::Signal(9),
            still_running: false,
        };
        assert!(judge_outcome(Expected::Running, &stopped).is_ok());
        assert!(judge_outcome(Expected::TimedOut, &stopped).is_err());
        let error = judge_outcome(Expected::Running, &exited(FAILURE)).unwrap_err();
        assert!(
            error.contains("keep running until the host tool had finished"),
            "{error}"
        );
        assert!(judge_outcome(Expected::Running, &timed_out).is_err());
        let lingering = Outcome::Stopped {
            reaped: Exit::Signal(9),
            still_running: true,
        };
        assert!(judge_outcome(Expected::Running, &lingering).is_err());
    }

    #[test]
    fn boot_passes_and_reports_the_banner_time() {
        let run = run_with(
            exited(SUCCESS),
            &[
                (0.1, "[    0.001000] INFO  boot: hello"),
                (0.41, BANNER_128),
                (0.5, "selftest boot: ok"),
            ],
        );
        let verdict = judge(scenario("boot-128m"), &run);
        assert_eq!(
            verdict,
            Verdict {
                passed: true,
                summary: "PASS boot-128m (1.23 s; banner after 0.41 s)".to_string()
            }
        );
    }

    #[test]
    fn boot_fails_on_wrong_memory_or_missing_selftest() {
        let run = run_with(exited(SUCCESS), &[(0.4, BANNER_128)]);
        let verdict = judge(scenario("boot-128m"), &run);
        assert!(!verdict.passed);
        assert!(
            verdict.summary.contains("selftest boot: ok"),
            "{}",
            verdict.summary
        );
        let verdict = judge(scenario("boot-5g"), &run);
        assert!(
            verdict
                .summary
                .starts_with("FAIL boot-5g: the banner does not say"),
            "{}",
            verdict.summary
        );
    }

    #[test]
    fn a_timeout_fails_a_normal_scenario_and_passes_the_hang_scenario() {
        let timed_out = Outcome::TimedOut {
            deadline: secs(20),
            reaped: Exit::Signal(9),
            still_running: false,
        };
        let run = run_with(timed_out, &[(0.4, BANNER_128)]);
        let verdict = judge(scenario("boot-128m"), &run);
        assert!(!verdict.passed);
        assert!(verdict.summary.contains("timed out"), "{}", verdict.summary);
        assert!(
            verdict.summary.contains("also"),
            "both problems: {}",
            verdict.summary
        );
        assert!(judge(scenario("hang-is-killed"), &run).passed);
    }

    #[test]
    fn a_real_timeout_fails_a_scenario_that_expects_an_exit() {
        let expects_success = Scenario {
            name: "fake-boot",
            memory: "128M",
            cmdline: "test=boot",
            deadline: secs(1),
            expected: Expected::Success,
            check: check_nothing,
            report_banner_time: true,
            modules: &[],
            programs: &[],
            monitor: None,
        };
        let mut child = std::process::Command::new("sh");
        child.args(["-c", "echo hi; exec sleep 30"]);
        let run = qemu::supervise(child, expects_success.deadline, &mut |line| {
            line.to_string()
        })
        .unwrap();
        let verdict = judge(&expects_success, &run);
        assert_eq!(
            verdict.summary,
            "FAIL fake-boot: expected the kernel to exit with SUCCESS, but timed out after \
             1.0 s and was killed"
        );
        let expects_hang = Scenario {
            expected: Expected::TimedOut,
            ..expects_success
        };
        assert!(judge(&expects_hang, &run).passed);
    }

    #[test]
    fn every_scenario_has_well_formed_program_specifications() {
        for scenario in all() {
            if let Err(error) = user::parse_specs(scenario.programs) {
                panic!("scenario {}: {error:#}", scenario.name);
            }
        }
    }

    #[test]
    fn programs_come_before_generated_modules() {
        let dir = std::env::temp_dir().join(format!("xtask-scenario-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("server"), b"\x7fELF").unwrap();
        std::fs::write(dir.join("client"), b"\x7fELF").unwrap();
        let programs = UserPrograms {
            elf_dir: dir.clone(),
            names: vec!["client".into(), "server".into()],
        };
        let with_programs = Scenario {
            name: "fake-programs",
            memory: "128M",
            cmdline: "",
            deadline: secs(1),
            expected: Expected::Success,
            check: check_nothing,
            report_banner_time: false,
            modules: &[("fake-programs-data.bin", 3)],
            programs: &["server name=srv prio=2", "client kcalls=shutdown -- x"],
            monitor: None,
        };
        let (modules, processes) = boot_modules(&with_programs, Some(&programs)).unwrap();
        let lines: Vec<String> = modules.iter().map(BootModule::command_line).collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[0],
            format!("{} name=srv prio=2", dir.join("server").display())
        );
        assert_eq!(
            lines[1],
            format!("{} kcalls=shutdown -- x", dir.join("client").display())
        );
        assert!(
            lines[2].ends_with("target/xtask-modules/fake-programs/fake-programs-data.bin"),
            "{}",
            lines[2]
        );
        assert_eq!(processes.elf("srv"), Some(dir.join("server").as_path()));
        assert_eq!(processes.elf("client"), Some(dir.join("client").as_path()));

        let error = boot_modules(&with_programs, None).unwrap_err();
        assert!(
            format!("{error:#}").contains("the user programs were not built"),
            "{error:#}"
        );
        let missing = Scenario {
            programs: &["server", "nosuch"],
            modules: &[],
            ..with_programs
        };
        let error = boot_modules(&missing, Some(&programs)).unwrap_err();
        assert!(
            format!("{error:#}").contains("there is no user program `nosuch`"),
            "{error:#}"
        );
        let kernel_only = scenario("boot-128m");
        let (modules, processes) = boot_modules(kernel_only, None).unwrap();
        assert!(modules.is_empty());
        assert_eq!(processes, ProcessMap::default());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn page_fault_needs_a_symbolised_selftest_frame() {
        let lines = [
            "[    0.030000] ERROR fault: #PF page fault (vector 14) error=0x2",
            "  cr2=0x00000000deadb000 rip=0xffffffff80104abc",
            "backtrace:",
            "  #0 pc  0xffffffff80104abc vigil_kernel::selftest::page_fault at \
             kernel/src/selftest.rs:42",
            "  #1 ret 0xffffffff80102def vigil_kernel::kmain at kernel/src/main.rs:10",
        ];
        let console = Console::from_texts(&lines);
        assert_eq!(check_fault_page(&console), Ok(()));

        let unsymbolised = Console::from_texts(&[
            lines[0],
            lines[1],
            lines[2],
            "  #0 pc  0xffffffff80104abc ??",
        ]);
        let error = check_fault_page(&unsymbolised).unwrap_err();
        assert!(error.contains("no backtrace frame line"), "{error}");

        let no_frames = Console::from_texts(&lines[..3]);
        let error = check_fault_page(&no_frames).unwrap_err();
        assert!(error.contains("no backtrace frame lines"), "{error}");
    }

    #[test]
    fn divide_accepts_selftest_in_any_frame() {
        let console = Console::from_texts(&[
            "[    0.030000] ERROR fault: #DE divide error (vector 0)",
            "backtrace:",
            "  #0 pc  0xffffffff80100010 vigil_kernel::arch::x86_64::cpu::divide at \
             kernel/src/arch/x86_64/cpu.rs:5",
            "  #1 ret 0xffffffff80100020 vigil_kernel::selftest::divide at \
             kernel/src/selftest.rs:50",
        ]);
        assert_eq!(check_fault_divide(&console), Ok(()));
    }

    #[test]
    fn panic_and_bad_name_and_double_fault_checks() {
        let console = Console::from_texts(&[
            "[    0.030000] ERROR panic: selftest panic: value=42 at kernel/src/selftest.rs:60:5",
            "backtrace:",
            "  #0 ret 0xffffffff80100020 vigil_kernel::selftest::panic at \
             kernel/src/selftest.rs:60",
        ]);
        assert_eq!(check_panic(&console), Ok(()));
        assert!(check_bad_test_name(&console).is_err());

        let console = Console::from_texts(&[
            "[    0.010000] ERROR unknown test \"no-such-test\"; known: boot, panic",
        ]);
        assert_eq!(check_bad_test_name(&console), Ok(()));

        let console = Console::from_texts(&["[    0.010000] ERROR fault: #DF (vector 8)"]);
        assert_eq!(check_fault_stack_overflow(&console), Ok(()));
    }
}
