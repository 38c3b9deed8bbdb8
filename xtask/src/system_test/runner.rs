//! The runner: boots one scenario in QEMU (its programs and generated modules as Multiboot
//! modules), supervises it to its deadline and judges the run — first how it ended, then
//! the row's console check. Monitor rows go on to `monitor::session`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::console::Console;
use super::monitor::session;
use super::scenario::{Expected, Scenario, KILL_SLACK};
use crate::qemu::{self, BootModule, Exit, KernelExit, Outcome, QemuConfig, SupervisedRun};
use crate::symbolize::Symbolizer;
use crate::user::{self, ProcessMap, UserPrograms};

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
                deadline,
                killed_at,
                reaped,
                still_running,
            },
        ) => {
            if *still_running {
                return Err(format!(
                    "timed out as expected, but QEMU is still running after kill and wait \
                     (wait said {reaped:?})"
                ));
            }
            if *reaped != Exit::Signal(libc::SIGKILL) {
                return Err(format!(
                    "timed out, but QEMU was not ended by the runner's SIGKILL: wait said \
                     {reaped:?} (it exited by itself just then?)"
                ));
            }
            if *killed_at < *deadline || *killed_at > *deadline + KILL_SLACK {
                return Err(format!(
                    "timed out, but the runner killed QEMU after {:.2} s, not at the {:.1} s \
                     deadline",
                    killed_at.as_secs_f64(),
                    deadline.as_secs_f64()
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

/// [`judge_outcome`], and for a scenario that must hang, that the run was the scenario's:
/// killed at its deadline, QEMU's process gone, and the run over soon after the kill
/// (QEMU reaped, its console drained).
pub fn judge_run(scenario: &Scenario, run: &SupervisedRun) -> Result<(), String> {
    judge_outcome(scenario.expected, &run.outcome)?;
    if let Outcome::TimedOut {
        deadline,
        killed_at,
        ..
    } = run.outcome
    {
        if deadline != scenario.deadline {
            return Err(format!(
                "timed out after {:.1} s, but the scenario's deadline is {:.1} s",
                deadline.as_secs_f64(),
                scenario.deadline.as_secs_f64()
            ));
        }
        if qemu::process_exists(run.pid) {
            return Err(format!(
                "QEMU (pid {}) can still be seen after the run was judged over",
                run.pid
            ));
        }
        if run.elapsed < killed_at || run.elapsed > killed_at + KILL_SLACK {
            return Err(format!(
                "QEMU was killed after {:.2} s, but the run took {:.2} s",
                killed_at.as_secs_f64(),
                run.elapsed.as_secs_f64()
            ));
        }
    }
    Ok(())
}

/// What the PASS line says about how the run ended, beyond its duration.
fn outcome_note(outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::TimedOut {
            deadline,
            killed_at,
            reaped,
            ..
        } => Some(format!(
            "hung: killed at {:.2} s for the {:.1} s deadline, reaped ({reaped:?}), gone",
            killed_at.as_secs_f64(),
            deadline.as_secs_f64()
        )),
        _ => None,
    }
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
    let outcome = judge_run(scenario, run);
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
            if let Some(note) = outcome_note(&run.outcome) {
                timing.push_str("; ");
                timing.push_str(&note);
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
pub const TAIL_LINES: usize = 40;

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
        return session::run_scenario(scenario, check, kernel, programs, symbolizer, verbose, tool);
    }
    if let Some(kind) = scenario.timetravel {
        return super::timetravel::run_scenario(scenario, kind, kernel, programs, verbose);
    }
    let mut config = QemuConfig::for_test(kernel, scenario.memory, scenario.cmdline);
    config.icount = scenario.icount;
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
        qemu::print_failure_details(&run, TAIL_LINES);
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
    for (path, options) in write_modules(scenario).context("writing its modules")? {
        modules.push(BootModule::program(path, options)?);
    }
    Ok((modules, processes))
}

/// Writes the scenario's module files (byte pattern `i % 251`) and returns their paths,
/// each with the options that followed its file name (`"x.bin boot=pm"`).
fn write_modules(scenario: &Scenario) -> Result<Vec<(PathBuf, &'static str)>> {
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
            let (file, options) = name.split_once(' ').unwrap_or((name, ""));
            let path = dir.join(file);
            let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
            Ok((path, options))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::scenario::{secs, NO_CHECK};
    use super::super::tests::scenario;
    use super::*;
    use crate::qemu::ConsoleLine;
    use std::time::Duration;
    use vigil_abi::qemu_exit::{host_status, FAILURE, SUCCESS};

    fn check_nothing(_: &Console) -> Result<(), String> {
        Ok(())
    }

    fn exited(code: u32) -> Outcome {
        Outcome::Exited(Exit::Code(host_status(code)))
    }

    /// A timeout at `deadline`, killed on time by SIGKILL and reaped.
    fn timed_out(deadline: Duration) -> Outcome {
        Outcome::TimedOut {
            deadline,
            killed_at: deadline + Duration::from_millis(20),
            reaped: Exit::Signal(libc::SIGKILL),
            still_running: false,
        }
    }

    pub(in super::super) fn run_with(outcome: Outcome, texts: &[(f64, &str)]) -> SupervisedRun {
        SupervisedRun {
            pid: 0,
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
    const WATCHDOG_LINE: &str = "[    0.020000] INFO  watchdog: NMI source PIT channel 0 via \
                                 8259 IRQ 0 to local APIC LINT0 (NMI), every 49999 us; lockup = \
                                 no tick or console output across 10 NMIs (~500 ms); then report \
                                 and stop (watchdog=panic)";

    #[test]
    fn judges_outcomes_against_expectations() {
        assert!(judge_outcome(Expected::Success, &exited(SUCCESS)).is_ok());
        assert!(judge_outcome(Expected::Failure, &exited(FAILURE)).is_ok());
        let error = judge_outcome(Expected::Success, &exited(FAILURE)).unwrap_err();
        assert!(error.contains("kernel exited: FAILURE"), "{error}");
        let error = judge_outcome(Expected::Failure, &Outcome::Exited(Exit::Code(1))).unwrap_err();
        assert!(error.contains("status 1"), "{error}");
        let timed_out = timed_out(secs(20));
        let error = judge_outcome(Expected::Success, &timed_out).unwrap_err();
        assert!(error.contains("timed out after 20.0 s"), "{error}");
        assert!(judge_outcome(Expected::TimedOut, &timed_out).is_ok());
        let error = judge_outcome(Expected::TimedOut, &exited(SUCCESS)).unwrap_err();
        assert!(error.contains("hang until the deadline"), "{error}");
        let zombie = Outcome::TimedOut {
            deadline: secs(3),
            killed_at: secs(3),
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
    fn a_hang_must_end_by_the_runner_s_kill_at_the_deadline() {
        let timeout = |killed_at: Duration, reaped: Exit| Outcome::TimedOut {
            deadline: secs(3),
            killed_at,
            reaped,
            still_running: false,
        };
        let sigkill = Exit::Signal(libc::SIGKILL);
        let on_time = timeout(Duration::from_millis(3020), sigkill);
        assert_eq!(judge_outcome(Expected::TimedOut, &on_time), Ok(()));
        // QEMU ended by itself as the deadline passed: wait returned its own status.
        let exited_itself = timeout(secs(3), Exit::Code(host_status(SUCCESS)));
        let error = judge_outcome(Expected::TimedOut, &exited_itself).unwrap_err();
        assert!(
            error.contains("not ended by the runner's SIGKILL"),
            "{error}"
        );
        let other_signal = timeout(secs(3), Exit::Signal(libc::SIGTERM));
        assert!(judge_outcome(Expected::TimedOut, &other_signal).is_err());
        // The kill came late, or (impossibly) early.
        for killed_at in [secs(5), Duration::from_millis(2900)] {
            let error =
                judge_outcome(Expected::TimedOut, &timeout(killed_at, sigkill)).unwrap_err();
            assert!(error.contains("not at the 3.0 s deadline"), "{error}");
        }
    }

    #[test]
    fn boot_passes_and_reports_the_banner_time() {
        let run = run_with(
            exited(SUCCESS),
            &[
                (0.1, "[    0.001000] INFO  boot: hello"),
                (0.4, WATCHDOG_LINE),
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
        let run = run_with(exited(SUCCESS), &[(0.3, WATCHDOG_LINE), (0.4, BANNER_128)]);
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

    /// The console of a kernel that reached the hang selftest and then said nothing more.
    pub(in super::super) const HANG_CONSOLE: [(f64, &str); 4] = [
        (0.3, "[    0.030000] INFO  watchdog: off (watchdog=off)"),
        (0.4, BANNER_128),
        (0.45, "[    0.040000] INFO  selftest: running 'hang'"),
        (
            0.46,
            "[    0.040100] INFO  selftest hang: spinning with interrupts off",
        ),
    ];

    #[test]
    fn a_timeout_fails_a_normal_scenario_and_passes_the_hang_scenario() {
        let run = run_with(timed_out(secs(20)), &[(0.4, BANNER_128)]);
        let verdict = judge(scenario("boot-128m"), &run);
        assert!(!verdict.passed);
        assert!(verdict.summary.contains("timed out"), "{}", verdict.summary);
        assert!(
            verdict.summary.contains("also"),
            "both problems: {}",
            verdict.summary
        );

        let hang = scenario("hang-is-killed");
        let mut run = run_with(timed_out(hang.deadline), &HANG_CONSOLE);
        run.elapsed = hang.deadline + Duration::from_millis(30);
        let verdict = judge(hang, &run);
        assert_eq!(
            verdict.summary,
            "PASS hang-is-killed (3.03 s; hung: killed at 3.02 s for the 3.0 s deadline, \
             reaped (Signal(9)), gone)"
        );
        // A timeout at some other deadline is not this scenario's run.
        let mut other = run_with(timed_out(secs(20)), &HANG_CONSOLE);
        other.elapsed = secs(20) + Duration::from_millis(30);
        let verdict = judge(hang, &other);
        assert!(
            verdict.summary.contains("the scenario's deadline is 3.0 s"),
            "{}",
            verdict.summary
        );
        // The run went on long after the kill (QEMU not reaped, the console not closed).
        let mut lingering = run.clone();
        lingering.elapsed = hang.deadline + secs(5);
        let verdict = judge(hang, &lingering);
        assert!(
            verdict.summary.contains("but the run took 8.00 s"),
            "{}",
            verdict.summary
        );
        // A kernel that hung before it reached the hang selftest.
        let mut early = run.clone();
        early.lines.truncate(1);
        let verdict = judge(hang, &early);
        assert!(
            verdict.summary.contains("selftest: running 'hang'"),
            "{}",
            verdict.summary
        );
    }

    #[test]
    fn a_real_timeout_fails_a_scenario_that_expects_an_exit() {
        let expects_success = Scenario {
            name: "fake-boot",
            cmdline: "test=boot",
            deadline: secs(1),
            check: check_nothing,
            report_banner_time: true,
            ..Scenario::DEFAULT
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

    /// True if no process has the id `pid` (it was killed and reaped, not left a zombie).
    fn gone(pid: u32) -> bool {
        // SAFETY: signal 0 only checks that the process exists; nothing is delivered.
        let result = unsafe { libc::kill(pid as libc::pid_t, 0) };
        result == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    }

    #[test]
    fn hang_is_killed_passes_a_real_hang_only() {
        // The row itself, with a shorter deadline: a "kernel" that prints the hang selftest's
        // lines and then spins (sleeps) until it is killed.
        let hang = Scenario {
            deadline: secs(1),
            ..*scenario("hang-is-killed")
        };
        let script = "echo '[ 0.03] INFO  watchdog: off (watchdog=off)'; \
                      echo \"[ 0.04] INFO  selftest: running 'hang'\"; \
                      echo '[ 0.04] INFO  selftest hang: spinning with interrupts off'; \
                      exec sleep 30";
        let mut child = std::process::Command::new("sh");
        child.args(["-c", script]);
        let run = qemu::supervise(child, hang.deadline, &mut |line| line.to_string()).unwrap();
        let verdict = judge(&hang, &run);
        assert!(verdict.passed, "{}", verdict.summary);
        assert!(
            verdict.summary.contains("hung: killed at 1.0")
                && verdict
                    .summary
                    .contains("for the 1.0 s deadline, reaped (Signal(9)), gone"),
            "{}",
            verdict.summary
        );
        assert!(gone(run.pid), "process {} is still there", run.pid);
        assert!(run.elapsed >= secs(1) && run.elapsed < secs(2), "{run:?}");

        // The same lines from a kernel that then exits by itself: not a hang.
        let mut child = std::process::Command::new("sh");
        child.args(["-c", &script.replace("exec sleep 30", "exit 33")]);
        let run = qemu::supervise(child, hang.deadline, &mut |line| line.to_string()).unwrap();
        let verdict = judge(&hang, &run);
        assert_eq!(
            verdict.summary,
            "FAIL hang-is-killed: expected the kernel to hang until the deadline, but kernel \
             exited: success (QEMU status 33)"
        );
        // Output after the hang began: something ran that should not have.
        let mut child = std::process::Command::new("sh");
        child.args([
            "-c",
            &script.replace("exec sleep 30", "echo '[ 0.5] INFO  tick'; exec sleep 30"),
        ]);
        let run = qemu::supervise(child, hang.deadline, &mut |line| line.to_string()).unwrap();
        let verdict = judge(&hang, &run);
        assert!(
            verdict.summary.contains("after the hang began"),
            "{}",
            verdict.summary
        );
    }

    #[test]
    fn a_row_without_a_check_fails() {
        let unchecked = Scenario {
            name: "unchecked",
            ..Scenario::DEFAULT
        };
        let verdict = judge(&unchecked, &run_with(exited(SUCCESS), &[]));
        assert_eq!(verdict.summary, format!("FAIL unchecked: {NO_CHECK}"));
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
            deadline: secs(1),
            check: check_nothing,
            modules: &[
                ("fake-programs-data.bin", 3),
                ("fake-programs-image.bin name=img boot=pm", 3),
            ],
            programs: &["server name=pm prio=2", "client kcalls=shutdown -- x"],
            ..Scenario::DEFAULT
        };
        let (modules, processes) = boot_modules(&with_programs, Some(&programs)).unwrap();
        let lines: Vec<String> = modules.iter().map(BootModule::command_line).collect();
        assert_eq!(lines.len(), 4);
        // Words after a generated module's file name are its options.
        assert!(
            lines[3].ends_with(
                "target/xtask-modules/fake-programs/fake-programs-image.bin name=img boot=pm"
            ),
            "{}",
            lines[3]
        );
        assert_eq!(
            lines[0],
            format!("{} name=pm prio=2", dir.join("server").display())
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
        assert_eq!(processes.elf("pm"), Some(dir.join("server").as_path()));
        assert_eq!(processes.elf("client"), Some(dir.join("client").as_path()));

        let error = boot_modules(&with_programs, None).unwrap_err();
        assert!(
            format!("{error:#}").contains("the user programs were not built"),
            "{error:#}"
        );
        let missing = Scenario {
            programs: &["server name=pm", "nosuch"],
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
}
