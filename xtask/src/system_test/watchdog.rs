//! NMI watchdog scenarios: a locked-up kernel is caught within a second and explains
//! itself, and nothing else is taken for a lockup. Each runs a kernel self-test
//! (`test=NAME`, kernel/src/selftest.rs), some with user programs; the host tool's view of
//! the epitaph is `monitor-lockup-epitaph` in `monitor/mod.rs`.
//!
//! Detection time is measured in kernel time on the console: from the line the hook prints
//! just before it locks up (the last progress the watchdog sees) to the `KERNEL LOCKUP`
//! line. At the default 50 ms period it is 500–550 ms.

use std::time::Duration;

use super::console::Console;
use super::scenario::{secs, Expected, Scenario};

/// The base row of this table: 128 MiB, 20 s, kernel only.
const WATCHDOG: Scenario = Scenario {
    deadline: secs(20),
    ..Scenario::DEFAULT
};

/// The bound: a lockup is reported within this much of its start.
pub const DETECTED_WITHIN: Duration = Duration::from_millis(1000);
/// Faster than this would mean a criterion much weaker than ten quiet NMIs 50 ms apart
/// (with room for the host delivering a late PIT's edges in a burst).
pub const NOT_BEFORE: Duration = Duration::from_millis(250);

/// What the boot log says when the PIT source runs (TCG has no PMU).
const PIT_SOURCE_LINE: &str =
    "watchdog: NMI source PIT channel 0 via 8259 IRQ 0 to local APIC LINT0";
const LOCKUP_LINE: &str = "KERNEL LOCKUP: no timer tick for";

/// Watchdog scenarios, run after the user scenarios.
pub const WATCHDOG_SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "watchdog-lockup",
        cmdline: "test=lockup",
        expected: Expected::Failure,
        check: check_lockup,
        ..WATCHDOG
    },
    Scenario {
        name: "watchdog-lockup-locked",
        cmdline: "test=lockup-locked",
        expected: Expected::Failure,
        check: check_lockup_locked,
        ..WATCHDOG
    },
    Scenario {
        name: "watchdog-lockup-in-tick",
        cmdline: "test=lockup-tick",
        expected: Expected::Failure,
        check: check_lockup_in_tick,
        programs: &["pm kcalls=pm", "spinner"],
        ..WATCHDOG
    },
    Scenario {
        name: "watchdog-report-mode",
        cmdline: "watchdog=report test=lockup-brief",
        check: check_report_mode,
        ..WATCHDOG
    },
    Scenario {
        name: "watchdog-idle",
        cmdline: "test=watchdog-idle",
        check: check_idle,
        ..WATCHDOG
    },
    Scenario {
        name: "watchdog-user-spin",
        cmdline: "test=watchdog-busy",
        check: check_user_spin,
        programs: &["pm kcalls=pm", "spinner"],
        ..WATCHDOG
    },
    Scenario {
        name: "watchdog-serial-flood",
        cmdline: "test=serial-flood",
        check: check_serial_flood,
        ..WATCHDOG
    },
    Scenario {
        name: "watchdog-bad-option",
        cmdline: "watchdog=sometimes test=boot",
        check: check_bad_option,
        ..WATCHDOG
    },
];

/// The kernel time of a console line: `[    1.234567] LEVEL …`.
pub fn kernel_time(text: &str) -> Option<Duration> {
    let inside = text.strip_prefix('[')?.split_once(']')?.0.trim();
    let (seconds, micros) = inside.split_once('.')?;
    if micros.len() != 6 {
        return None;
    }
    Some(Duration::from_secs(seconds.parse().ok()?) + Duration::from_micros(micros.parse().ok()?))
}

/// Kernel time from the first line containing `start` to the first `KERNEL LOCKUP` line.
pub fn detection_time(console: &Console, start: &str) -> Result<Duration, String> {
    let time_of = |needle: &str| {
        let line = console
            .find(needle)
            .ok_or_else(|| format!("the console never showed {needle:?}"))?;
        kernel_time(&line.text).ok_or_else(|| format!("no kernel time on {:?}", line.text))
    };
    let began = time_of(start)?;
    let reported = time_of(LOCKUP_LINE)?;
    reported
        .checked_sub(began)
        .ok_or_else(|| "the lockup was reported before it began".to_string())
}

/// Detection time within [`NOT_BEFORE`, `DETECTED_WITHIN`).
fn require_detected_in_time(console: &Console, start: &str) -> Result<(), String> {
    let took = detection_time(console, start)?;
    if took < NOT_BEFORE || took >= DETECTED_WITHIN {
        return Err(format!(
            "lockup reported {} ms after it began; expected {}..{} ms",
            took.as_millis(),
            NOT_BEFORE.as_millis(),
            DETECTED_WITHIN.as_millis()
        ));
    }
    Ok(())
}

/// Everything a lockup report must say, whatever locked up.
fn require_report(console: &Console) -> Result<(), String> {
    console.require(PIT_SOURCE_LINE)?;
    console.require_line_with(&[LOCKUP_LINE, "watchdog NMIs", "kernel mode, interrupts off"])?;
    console.require_line_with(&["rip=0x", "rfl=0x", "cs =0x0000000000000008"])?;
    console.require("  current thread: ")?;
    console.require("backtrace:")?;
    console.require("trace events before the lockup (oldest first):")?;
    console.require("epitaph: a kernel-lockup crash frame with")?;
    console.require("watchdog: stopping the machine (watchdog=panic)")
}

fn check_lockup(console: &Console) -> Result<(), String> {
    require_report(console)?;
    console.require("current thread: none")?;
    console.require_frame_with(&["#0 pc", "selftest::spin_forever"])?;
    console.require_frame_with(&["selftest::lockup at kernel/src/selftest.rs:"])?;
    require_detected_in_time(console, "selftest lockup: spinning with interrupts off")
}

fn check_lockup_locked(console: &Console) -> Result<(), String> {
    require_report(console)?;
    console.require("[kernel lock held by the interrupted code; read without it]")?;
    console.require("[trace ring lock held by the interrupted code; read without it]")?;
    console.require_frame_with(&["selftest::lockup_locked"])?;
    require_detected_in_time(console, "selftest lockup-locked: holding")
}

fn check_lockup_in_tick(console: &Console) -> Result<(), String> {
    require_report(console)?;
    console.require("spinner: spinner: spinning")?;
    console.require_line_with(&[
        "current thread: spinner#",
        "of process 'spinner' (pid 2)",
        "[kernel lock held by the interrupted code",
    ])?;
    console.require_frame_with(&["selftest::lockup_in_tick"])?;
    console.require_frame_with(&["interrupt_from_user"])?;
    require_detected_in_time(console, "selftest lockup-tick: spinning in the timer tick")
}

fn check_report_mode(console: &Console) -> Result<(), String> {
    console.require("then report and keep running (watchdog=report)")?;
    console.require(LOCKUP_LINE)?;
    console.require_frame_with(&["selftest::lockup_brief"])?;
    console.require("watchdog: kernel still locked up: no progress for")?;
    console.require("watchdog: the kernel made progress again after about")?;
    console.require("selftest lockup-brief: ok (1 lockup, reported and survived)")?;
    console.forbid("stopping the machine")?;
    require_detected_in_time(console, "selftest lockup-brief: spinning")
}

fn check_idle(console: &Console) -> Result<(), String> {
    console.require(PIT_SOURCE_LINE)?;
    console.require("selftest watchdog-idle: ok (")?;
    console.forbid("KERNEL LOCKUP")
}

fn check_user_spin(console: &Console) -> Result<(), String> {
    console.require("spinner: spinner: spinning")?;
    console.require("selftest watchdog-busy: ok (")?;
    console.forbid("KERNEL LOCKUP")
}

fn check_serial_flood(console: &Console) -> Result<(), String> {
    console.require("selftest serial-flood: line 50 of a long report")?;
    console.require("selftest serial-flood: ok (")?;
    console.forbid("KERNEL LOCKUP")
}

fn check_bad_option(console: &Console) -> Result<(), String> {
    console.require("watchdog: bad watchdog= value: unknown item 'sometimes'")?;
    console.require(PIT_SOURCE_LINE)?;
    console.require("selftest boot: ok")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_times_are_read_from_the_prefix() {
        assert_eq!(
            kernel_time("[    1.234567] INFO  x"),
            Some(Duration::from_micros(1_234_567))
        );
        assert_eq!(kernel_time("  rip=0x1"), None);
        assert_eq!(kernel_time("[ 1.2] INFO"), None);
    }

    #[test]
    fn detection_must_take_between_a_quarter_and_one_second() {
        let console = |reported: &str| {
            Console::from_texts(&[
                "[    0.051954] INFO  selftest lockup: spinning with interrupts off",
                &format!("[{reported}] ERROR {LOCKUP_LINE} 599 ms and no progress"),
            ])
        };
        let start = "selftest lockup: spinning";
        assert_eq!(
            detection_time(&console("    0.600499"), start),
            Ok(Duration::from_micros(548_545))
        );
        assert!(require_detected_in_time(&console("    0.600499"), start).is_ok());
        let late = require_detected_in_time(&console("    1.100000"), start).unwrap_err();
        assert!(late.contains("1048 ms after it began"), "{late}");
        assert!(require_detected_in_time(&console("    0.100000"), start).is_err());
        assert!(detection_time(&Console::from_texts(&[]), start).is_err());
    }

    #[test]
    fn every_row_names_a_check_and_a_test_hook() {
        for row in WATCHDOG_SCENARIOS {
            assert!(row.name.starts_with("watchdog-"), "{}", row.name);
            assert!(row.cmdline.contains("test="), "{}", row.name);
            let console = Console::from_texts(&[]);
            assert!(
                (row.check)(&console).is_err(),
                "{} passes an empty console",
                row.name
            );
        }
    }
}
