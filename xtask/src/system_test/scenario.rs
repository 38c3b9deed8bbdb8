//! The scenario row: what one QEMU run boots, how long it may take and how it is judged.
//! [`Scenario::DEFAULT`] fills every field, so a row names only what differs from it (or
//! from its table's base row, e.g. `boot::BOOT`).

use std::time::Duration;

use super::console::Console;
use super::monitor::MonitorCheck;
use super::timetravel::TimeTravel;

/// How the scenario must end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// The kernel exits QEMU with `qemu_exit::SUCCESS`.
    Success,
    /// The kernel exits QEMU with `qemu_exit::FAILURE`.
    Failure,
    /// The kernel never exits: the runner must kill QEMU at the deadline (with SIGKILL,
    /// within [`KILL_SLACK`] of it) and reap it.
    TimedOut,
    /// The kernel keeps running until the runner stops QEMU because the host tool has
    /// finished (monitor scenarios).
    Running,
}

/// How late after the deadline the runner may send the kill (it polls every 50 ms), and how
/// much longer than that the run may take to end after it (reaping, the console's last
/// lines).
pub const KILL_SLACK: Duration = Duration::from_secs(1);

/// One QEMU scenario (a row of one of the tables in `boot.rs`, `user.rs`, `monitor/mod.rs`).
#[derive(Clone, Copy)]
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
    /// each file (a byte pattern) under target/xtask-modules/ before booting. Words after
    /// the file name are the module's options (`"broken.bin name=broken boot=pm"`).
    pub modules: &'static [(&'static str, usize)],
    /// User programs to boot, in order, as Multiboot modules: each entry is the program
    /// (binary) name followed by its boot options, e.g. `"ipc_client prio=6 kcalls=shutdown"`.
    /// The runner replaces the name with the built ELF's path.
    pub programs: &'static [&'static str],
    /// Watch the kernel with the host tool through the monitor channel and judge what it
    /// reports as well (`None`: COM2 is discarded).
    pub monitor: Option<MonitorCheck>,
    /// Record the run under QEMU record/replay and replay it (`None`: an ordinary run).
    pub timetravel: Option<TimeTravel>,
    /// Run under `-icount shift=0`: guest time is the guest's instruction count, so what the
    /// guest measures in time does not depend on how busy the host is (a scenario that
    /// compares how much work threads did in equal time needs it). Ordinary runs only.
    pub icount: bool,
}

/// What [`no_check`] says: a row without a console check fails instead of passing silently.
pub const NO_CHECK: &str = "the scenario names no console check (`check: …`)";

/// The console check of a row that names none: it always fails.
pub fn no_check(_: &Console) -> Result<(), String> {
    Err(NO_CHECK.to_string())
}

impl Scenario {
    /// Every field's default: 128 MiB, an empty command line, 30 s, the kernel exits with
    /// SUCCESS, no modules, programs or host tool, plain TCG (no icount). `name` and `check` have none: a row must
    /// give them (the table tests check `name`; [`no_check`] fails the run).
    pub const DEFAULT: Scenario = Scenario {
        name: "",
        memory: "128M",
        cmdline: "",
        deadline: secs(30),
        expected: Expected::Success,
        check: no_check,
        report_banner_time: false,
        modules: &[],
        programs: &[],
        monitor: None,
        timetravel: None,
        icount: false,
    };
}

impl Default for Scenario {
    fn default() -> Scenario {
        Scenario::DEFAULT
    }
}

pub const fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

pub const fn millis(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_documented_ones() {
        let row = Scenario::default();
        assert_eq!(
            (
                row.name,
                row.memory,
                row.cmdline,
                row.deadline,
                row.expected
            ),
            ("", "128M", "", secs(30), Expected::Success)
        );
        assert!(!row.report_banner_time);
        assert!(row.modules.is_empty() && row.programs.is_empty() && row.monitor.is_none());
        assert!(!row.icount && row.timetravel.is_none());
        assert_eq!((row.check)(&Console::from_texts(&[])), Err(NO_CHECK.into()));
    }
}
