//! `cargo xtask bench`: boots the benchmark programs, reads their results from the console
//! and prints a table of cycle counts (instruction counts under `-icount`).
//!
//! The guest reports `bench: <name> median_cycles=<n> min_cycles=<n> iterations=<n>` per
//! benchmark and `bench: done` at the end; the kernel banner gives `TSC <f> MHz`.
//!
//! The benchmarks run twice: with the NMI watchdog on (the default, whose table is printed)
//! and with `watchdog=off`; the difference of each median and the watchdog's NMI rate (from
//! the kernel's `watchdog: N NMIs … in T ms` line at shutdown) follow the table.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Result};

use crate::kernel::{self, Profile};
use crate::prereq;
use crate::qemu::{self, Accel, KernelExit, Outcome, QemuConfig};
use crate::symbolize::Symbolizer;
use crate::user;

/// The programs a benchmark run boots, in order.
pub const BENCH_PROGRAMS: &[&str] = &[
    "vm kcalls=vm",
    "pm kcalls=pm",
    "pm_child boot=pm",
    "bench_server",
    "bench_server name=bench_replyrecv -- reply-receive",
    "bench_server name=bench_regs -- reply-receive-registers",
    "bench_server name=bench_regs_timed -- reply-receive-registers-timed",
    "bench_client kcalls=shutdown+snapshot+tracemask",
    "bench_flood prio=12",
];

/// The programs of the restart benchmark's own boot: RS supervising hello (every failure
/// the first in a row, so every restart immediate), and the client that ends it.
pub const RESTART_BENCH_PROGRAMS: &[&str] = &[
    "vm kcalls=vm",
    "pm kcalls=pm",
    "rs kcalls=rs -- hello_service:stable=0",
    "hello_service boot=pm",
    "bench_restart kcalls=shutdown",
];

/// The programs of the live-update benchmark's own boot: DS (where hello's state crosses
/// an update), RS with `bench_update` as its operator supervising hello, the versions it
/// updates hello to (two good ones, one that crashes at its second request, one that never
/// initialises), and `bench_update`, whose client thread times what hello's clients see.
pub const UPDATE_BENCH_PROGRAMS: &[&str] = &[
    "vm kcalls=vm",
    "pm kcalls=pm",
    "ds kcalls=safecopy",
    "rs kcalls=rs -- operator=bench_update hello_service",
    "hello_service boot=pm",
    "hello_service name=hello_v2 boot=pm -- version=2",
    "hello_service name=hello_v3 boot=pm -- version=3",
    "hello_service name=hello_crashy boot=pm -- version=9 crash-after=2",
    "hello_service name=hello_failinit boot=pm -- version=8 fail-init",
    "bench_update kcalls=shutdown",
];

/// QEMU's icount option that makes idle guest time skip to the next timer deadline
/// (`sleep=off`; QEMU merges it with the configuration's `shift=0`). With QEMU's default
/// (`sleep=on`) idle guest time passes at the host's pace, so a host busy when a timer is
/// due delivers it late in guest time: the rows that wait for a tick moved between runs on
/// a loaded host (the restart rows' worst cases by 0.6 ms for a crash and 3.7 ms for a hang,
/// where a hang is 300 ms of an idle guest waiting for RS's ticks). With it every boot is
/// the same instruction for instruction, idle or not.
const SKIP_IDLE: [&str; 2] = ["-icount", "sleep=off"];

/// How long a benchmark run may take before it is killed.
pub const DEADLINE: Duration = Duration::from_secs(300);

/// Guest memory for benchmark runs (the snapshot benchmark runs 1000 threads, 64 KiB of
/// stack each).
const MEMORY: &str = "256M";

/// What `cargo xtask bench` was asked for.
#[derive(Clone, Debug, Default)]
pub struct BenchOptions {
    /// Use KVM when /dev/kvm works.
    pub kvm: bool,
    /// Plain TCG (wall clock) instead of `-icount shift=0`.
    pub wall: bool,
    /// Echo every guest console line.
    pub verbose: bool,
    /// A prebuilt kernel ELF to boot instead of building one.
    pub kernel: Option<PathBuf>,
    /// Boot only this set of benchmarks (all of them when `None`).
    pub only: Option<BenchSet>,
}

/// The boots of a benchmark run, for `--only`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchSet {
    /// `BENCH_PROGRAMS`, three times (watchdog on, off, `ipc_fastpath=off`).
    Main,
    /// `RESTART_BENCH_PROGRAMS`: the `restart_` rows.
    Restart,
    /// `UPDATE_BENCH_PROGRAMS`: the `update_` rows.
    Update,
}

impl BenchSet {
    /// Whether a run asked for `only` boots this set.
    fn wanted(self, only: Option<BenchSet>) -> bool {
        only.is_none_or(|only| only == self)
    }
}

/// How the figures were measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// TCG with `-icount shift=0`: one TSC tick per guest instruction.
    Icount,
    /// Plain TCG: the TSC follows the host's clock.
    Wall,
    /// Hardware virtualisation.
    Kvm,
}

impl Mode {
    /// The mode column of the table.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Icount => "icount (instructions)",
            Mode::Wall => "TCG wall clock",
            Mode::Kvm => "KVM",
        }
    }

    /// Picks the mode from the flags; `kvm_usable` is asked only when `--kvm` is given.
    /// Returns the mode and, for a fallback, the warning to print.
    pub fn choose(
        kvm: bool,
        wall: bool,
        kvm_usable: impl FnOnce() -> bool,
    ) -> (Mode, Option<&'static str>) {
        if kvm {
            if kvm_usable() {
                (Mode::Kvm, None)
            } else {
                (
                    Mode::Wall,
                    Some("warning: /dev/kvm is not usable here; falling back to TCG (wall clock)"),
                )
            }
        } else if wall {
            (Mode::Wall, None)
        } else {
            (Mode::Icount, None)
        }
    }

    fn accel(self) -> Accel {
        match self {
            Mode::Kvm => Accel::Kvm,
            Mode::Icount | Mode::Wall => Accel::Tcg,
        }
    }
}

/// One benchmark's figures, as the guest reported them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenchResult {
    pub name: String,
    pub median_cycles: u64,
    pub min_cycles: u64,
    pub iterations: u64,
    /// The worst sample, for rows that report it (`max_cycles=`).
    pub max_cycles: Option<u64>,
}

/// A guest line about benchmarks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BenchLine {
    Result(BenchResult),
    Done,
}

/// The text after `bench: ` in `line`, where `bench` starts a word (so `my_bench: ` and
/// `bench_client: ` do not count).
fn after_bench_tag(line: &str) -> Option<&str> {
    const TAG: &str = "bench: ";
    let mut from = 0;
    while let Some(found) = line[from..].find(TAG) {
        let start = from + found;
        let word_start = line[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        if word_start {
            return Some(&line[start + TAG.len()..]);
        }
        from = start + TAG.len();
    }
    None
}

/// Parses a guest line: `None` if it is not a benchmark result or `bench: done` (other
/// `bench:` chatter included); an error for a result line with missing or bad figures.
pub fn parse_bench_line(line: &str) -> Option<Result<BenchLine, String>> {
    let rest = after_bench_tag(line)?.trim();
    if rest == "done" {
        return Some(Ok(BenchLine::Done));
    }
    let mut words = rest.split_whitespace();
    let name = words.next()?;
    let fields: Vec<(&str, &str)> = words.filter_map(|word| word.split_once('=')).collect();
    if !fields.iter().any(|(key, _)| *key == "median_cycles") {
        return None;
    }
    let field = |wanted: &str| -> Result<u64, String> {
        let (_, value) = fields
            .iter()
            .find(|(key, _)| *key == wanted)
            .ok_or_else(|| format!("benchmark line without {wanted}=: {line:?}"))?;
        value
            .parse()
            .map_err(|_| format!("benchmark line with a bad {wanted}={value}: {line:?}"))
    };
    let parsed = (|| {
        Ok(BenchLine::Result(BenchResult {
            name: name.to_string(),
            median_cycles: field("median_cycles")?,
            min_cycles: field("min_cycles")?,
            iterations: field("iterations")?,
            max_cycles: fields
                .iter()
                .any(|(key, _)| *key == "max_cycles")
                .then(|| field("max_cycles"))
                .transpose()?,
        }))
    })();
    Some(parsed)
}

/// The TSC frequency in MHz from a line such as the banner's `…, TSC 2993.1 MHz, …`.
pub fn parse_tsc_mhz(line: &str) -> Option<f64> {
    let start = line.find("TSC ")? + "TSC ".len();
    let (number, rest) = line[start..].split_once(' ')?;
    if !rest.starts_with("MHz") {
        return None;
    }
    number
        .parse::<f64>()
        .ok()
        .filter(|mhz| mhz.is_finite() && *mhz > 0.0)
}

/// The NMI watchdog's counters as the kernel logs them at shutdown:
/// `watchdog: N NMIs (M unclaimed) in T ms, L lockups`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchdogFigures {
    pub nmis: u64,
    pub unclaimed: u64,
    /// Kernel time since boot, in milliseconds.
    pub elapsed_ms: u64,
    pub lockups: u64,
}

/// Parses the kernel's watchdog counter line.
pub fn parse_watchdog_line(line: &str) -> Option<WatchdogFigures> {
    let rest = &line[line.find("watchdog: ")? + "watchdog: ".len()..];
    let (nmis, rest) = rest.split_once(" NMIs (")?;
    let (unclaimed, rest) = rest.split_once(" unclaimed) in ")?;
    let (elapsed_ms, rest) = rest.split_once(" ms, ")?;
    let (lockups, rest) = rest.split_once(' ')?;
    if !rest.starts_with("lockups") {
        return None;
    }
    Some(WatchdogFigures {
        nmis: nmis.parse().ok()?,
        unclaimed: unclaimed.parse().ok()?,
        elapsed_ms: elapsed_ms.parse().ok()?,
        lockups: lockups.parse().ok()?,
    })
}

/// The comparison printed after the table: each benchmark's median with the watchdog on
/// and off, the relative difference, and the watchdog's NMI rate in the "on" run.
pub fn watchdog_comparison(
    on: &[BenchResult],
    off: &[BenchResult],
    figures: Option<WatchdogFigures>,
) -> Vec<String> {
    let mut lines = vec!["NMI watchdog on (default) vs watchdog=off, median cycles:".to_string()];
    for result in on {
        let Some(other) = off.iter().find(|r| r.name == result.name) else {
            continue;
        };
        let change = if other.median_cycles == 0 {
            0.0
        } else {
            (result.median_cycles as f64 - other.median_cycles as f64) * 100.0
                / other.median_cycles as f64
        };
        lines.push(format!(
            "  {:<28} on {:>9}  off {:>9}  {change:+.2} %",
            result.name, result.median_cycles, other.median_cycles
        ));
    }
    match figures {
        Some(figures) if figures.elapsed_ms > 0 => lines.push(format!(
            "watchdog NMIs: {} in {} ms of guest time ({:.1} per second, {} unclaimed), {} lockups",
            figures.nmis,
            figures.elapsed_ms,
            figures.nmis as f64 * 1000.0 / figures.elapsed_ms as f64,
            figures.unclaimed,
            figures.lockups
        )),
        _ => lines.push("watchdog NMIs: the kernel did not report its counters".to_string()),
    }
    lines
}

/// What a run's console said about the benchmarks.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub results: Vec<BenchResult>,
    pub done: bool,
    pub tsc_mhz: Option<f64>,
    pub watchdog: Option<WatchdogFigures>,
    /// Result lines that could not be parsed.
    pub errors: Vec<String>,
}

impl Report {
    /// Reads the console lines.
    pub fn collect<'a>(lines: impl IntoIterator<Item = &'a str>) -> Report {
        let mut report = Report::default();
        for line in lines {
            if report.tsc_mhz.is_none() {
                report.tsc_mhz = parse_tsc_mhz(line);
            }
            if let Some(figures) = parse_watchdog_line(line) {
                report.watchdog = Some(figures);
            }
            match parse_bench_line(line) {
                Some(Ok(BenchLine::Result(result))) => report.results.push(result),
                Some(Ok(BenchLine::Done)) => report.done = true,
                Some(Err(error)) => report.errors.push(error),
                None => {}
            }
        }
        report
    }

    /// Why this report is not a complete benchmark run, if it is not.
    pub fn problem(&self) -> Option<String> {
        if !self.errors.is_empty() {
            return Some(self.errors.join("; "));
        }
        if !self.done {
            return Some("the guest never printed `bench: done`".to_string());
        }
        if self.results.is_empty() {
            return Some("the guest printed `bench: done` but no benchmark results".to_string());
        }
        None
    }
}

/// The reference figures of ARCHITECTURE.md for a benchmark (measured under `-icount
/// shift=0` like ours), if there are any.
pub fn reference(name: &str) -> Option<&'static str> {
    match name {
        "ipc_roundtrip" => {
            Some("seL4 fast path 415, Linux eventfd 10,556 instructions; Vigil aims ≤ 400")
        }
        "ipc_call_replyrecv" => Some(
            "seL4 fast path 415 (Call 194 + ReplyRecv 221), slow path 1,406; Linux eventfd 10,556; Vigil aims ≤ 400",
        ),
        "ipc_call_replyrecv_64" => Some(
            "seL4 fast path 415 (a register-sized message); Linux eventfd 10,556 (8 bytes)",
        ),
        "ipc_call_replyrecv_untraced" => Some(
            "seL4 fast path 415; Linux eventfd 10,556; the default mask may add ≤ 10 %",
        ),
        "ipc_call_replyrecv_regs" => Some(
            "round trip timed by the client, the server's loop inside: seL4 fast path 415 (Call 194 + ReplyRecv 221), slow path 1,406; Linux eventfd 10,556; Vigil aims ≤ 400",
        ),
        "tsc_read_overhead" => Some(
            "two back-to-back tsc() reads (sel4bench's counter overhead), subtracted from each one-way sample",
        ),
        "ipc_regs_call_oneway" => Some(
            "one way as sel4bench times it, client's read before the call to the server's after its receive, less the counter overhead: seL4 fast path Call 194",
        ),
        "ipc_regs_replyrecv_oneway" => Some(
            "one way as sel4bench times it, server's read before its reply to the client's after its call, less the counter overhead: seL4 fast path ReplyRecv 221",
        ),
        "ipc_regs_oneway_sum" => Some(
            "the two one-way figures summed per sample, sel4bench's method (no loop inside): seL4 fast path 415 (Call 194 + ReplyRecv 221); Vigil aims ≤ 400",
        ),
        "ipc_regs_oneway_sum_untraced" => Some(
            "ipc_regs_oneway_sum with tracing off: seL4 fast path 415 (Call 194 + ReplyRecv 221)",
        ),
        "ipc_call_replyrecv_regs_untraced" => Some(
            "seL4 fast path 415; Linux eventfd 10,556; the default mask may add ≤ 10 %",
        ),
        "ipc_roundtrip_slowpath"
        | "ipc_call_replyrecv_slowpath"
        | "ipc_call_replyrecv_regs_slowpath" => Some(
            "seL4 slow path 1,406; Linux eventfd 10,556; Vigil's slow path stays ≤ 3,828",
        ),
        "vm_fault_demand_zero" => Some(
            "Linux in-kernel demand-zero fault 8,667 instructions; Vigil aims ≤ 8,667 (slow IPC path)",
        ),
        "vm_map_touch_unmap" => Some("Linux mmap+touch+munmap 27,213 instructions"),
        "spawn_exit_wait" => Some(
            "Linux posix_spawn+exec+exit+wait of a static binary 672,649, fork+exit+wait 347,900 instructions; Vigil aims ≤ 336,324",
        ),
        "thread_create_join" => Some("Linux 71,043 instructions; Vigil aims ≤ 35,521"),
        "signal_self_handler" => Some("Linux 4,249 instructions; Vigil aims ≤ 2,124"),
        "signal_self_handler_via_pm" => Some("the same through PM's SIGNAL (kill before SignalRaise)"),
        "traced_syscall" => Some(
            "Linux ptrace (PTRACE_SYSCALL + waitpid at entry and exit) 22,187 instructions; Vigil aims ≤ 11,093",
        ),
        "restart_crash_to_serving" => Some(
            "from the fatal request to the replacement's first answer at the kept endpoint; issue 10 aims ≤ 1 ms (1,000,000 under icount)",
        ),
        "restart_exit_to_serving" => Some(
            "the same for an exit, which PM's exit notice tells RS at once; issue 10 aims ≤ 1 ms",
        ),
        "restart_hang_to_serving" => Some(
            "the same for a hang: silent for 3 of RS's 100 ms heartbeat periods, then the kill and restart",
        ),
        "hang_detected" => Some(
            "from the HANG request to its failure (RS's verdict and kill); issue 10 aims ≤ 300 ms (300,000,000) at the default period",
        ),
        "update_downtime" => Some(
            "live update under a client's GETs: the old version's last reply to the new one's first; issue 10 aims ≤ 2 ms (2,000,000), median and max",
        ),
        "update_rollback_crash" => Some(
            "update to a version crashing at its 2nd request: that request sent to the old version's answer; issue 10 aims ≤ 10 ms (10,000,000), median and max",
        ),
        "update_rollback_init" => Some(
            "update to a version that exits instead of initialising: the client's longest wait; issue 10 aims ≤ 10 ms (10,000,000), median and max",
        ),
        _ => None,
    }
}

/// The signal-to-self-with-a-handler target: half of Linux's 4,249 instructions.
const SIGNAL_SELF_TARGET: u64 = 2_124;

/// The traced-system-call target: half of Linux's 22,187 instructions.
const TRACED_SYSCALL_TARGET: u64 = 11_093;

/// The IPC round-trip target (instructions per round trip).
const IPC_ROUNDTRIP_TARGET: u64 = 400;

/// What the slow path, forced with `ipc_fastpath=off`, may cost at most (issue 12: the
/// figure before the fast path).
const IPC_SLOW_PATH_LIMIT: u64 = 3_828;

/// Most the default trace mask may add to the fast round trip (as a ratio).
const FAST_PATH_TRACING_LIMIT: f64 = 1.10;

/// Live-update downtime target, in instructions (2 ms at icount's nominal 1 GHz).
const UPDATE_DOWNTIME_TARGET: u64 = 2_000_000;

/// Rollback target (10 ms).
const UPDATE_ROLLBACK_TARGET: u64 = 10_000_000;

/// Issue 10's restart target: 1 ms of guest time (instructions under icount).
const RESTART_TARGET: u64 = 1_000_000;

/// Issue 10's hang-detection target at the default 100 ms heartbeat period: 300 ms.
const HANG_DETECTED_TARGET: u64 = 300_000_000;

/// The target a row is judged by, if it has one (its median, and its worst case when the
/// row reports one).
fn target_of(name: &str) -> Option<u64> {
    match name {
        "restart_crash_to_serving" | "restart_exit_to_serving" => Some(RESTART_TARGET),
        "hang_detected" => Some(HANG_DETECTED_TARGET),
        "update_downtime" => Some(UPDATE_DOWNTIME_TARGET),
        "update_rollback_crash" | "update_rollback_init" => Some(UPDATE_ROLLBACK_TARGET),
        "ipc_roundtrip"
        | "ipc_call_replyrecv"
        | "ipc_call_replyrecv_regs"
        | "ipc_regs_oneway_sum" => Some(IPC_ROUNDTRIP_TARGET),
        "ipc_roundtrip_slowpath"
        | "ipc_call_replyrecv_slowpath"
        | "ipc_call_replyrecv_regs_slowpath" => Some(IPC_SLOW_PATH_LIMIT),
        "signal_self_handler" => Some(SIGNAL_SELF_TARGET),
        "traced_syscall" => Some(TRACED_SYSCALL_TARGET),
        _ => None,
    }
}

/// The IPC rows of the run with `ipc_fastpath=off`, renamed `<name>_slowpath`, for the
/// table beside the fast-path ones.
pub fn slow_path_rows(results: &[BenchResult]) -> Vec<BenchResult> {
    results
        .iter()
        .filter(|r| {
            r.name == "ipc_roundtrip"
                || r.name == "ipc_call_replyrecv"
                || r.name == "ipc_call_replyrecv_regs"
        })
        .map(|r| BenchResult {
            name: format!("{}_slowpath", r.name),
            ..r.clone()
        })
        .collect()
}

/// `cycles` in nanoseconds at `tsc_mhz`.
pub fn nanoseconds(cycles: u64, tsc_mhz: f64) -> f64 {
    cycles as f64 / tsc_mhz * 1000.0
}

/// The results table; under icount with the reference figures and a note that nanoseconds
/// are nominal.
/// The timer tick, the wake-up lateness target.
const TICK_NS: f64 = 10_000_000.0;

/// Snapshot cost target, per thread (ARCHITECTURE.md).
const SNAPSHOT_PER_THREAD_TARGET: u64 = 150;

/// Figures derived from pairs of measurements: the cost of one trace event, the tracing
/// overhead on IPC as a ratio, and the snapshot cost per thread.
pub fn derived_figures(results: &[BenchResult], tsc_mhz: Option<f64>) -> Vec<String> {
    let median = |name: &str| {
        results
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.median_cycles)
    };
    let mut lines = Vec::new();
    if let (Some(plain), Some(traced)) = (median("null_syscall"), median("null_syscall_traced")) {
        lines.push(format!(
            "trace event: {} cycles each (null_syscall traced {traced} − untraced {plain})",
            traced.saturating_sub(plain)
        ));
    }
    if let (Some(traced), Some(untraced)) =
        (median("ipc_roundtrip"), median("ipc_roundtrip_untraced"))
    {
        if untraced > 0 {
            lines.push(format!(
                "tracing overhead on the IPC round trip: {:.3}× ({traced} with the default mask / {untraced} with tracing off)",
                traced as f64 / untraced as f64
            ));
        }
    }
    for (what, traced_row, untraced_row) in [
        (
            "the fast-path round trip",
            "ipc_call_replyrecv",
            "ipc_call_replyrecv_untraced",
        ),
        (
            "the register round trip",
            "ipc_call_replyrecv_regs",
            "ipc_call_replyrecv_regs_untraced",
        ),
    ] {
        let (Some(traced), Some(untraced)) = (median(traced_row), median(untraced_row)) else {
            continue;
        };
        if untraced > 0 {
            let ratio = traced as f64 / untraced as f64;
            let verdict = if ratio <= FAST_PATH_TRACING_LIMIT {
                "target met"
            } else {
                "target missed"
            };
            lines.push(format!(
                "tracing overhead on {what}: {ratio:.3}× ({traced} with the default mask / {untraced} with tracing off; target ≤ {FAST_PATH_TRACING_LIMIT:.2}×: {verdict})"
            ));
        }
    }
    if let (Some(round_trip), Some(call), Some(reply_receive), Some(sum)) = (
        median("ipc_call_replyrecv_regs"),
        median("ipc_regs_call_oneway"),
        median("ipc_regs_replyrecv_oneway"),
        median("ipc_regs_oneway_sum"),
    ) {
        lines.push(format!(
            "register IPC one way (sel4bench's method), medians: Call {call}, ReplyRecv {reply_receive}, their sum per sample {sum} (seL4 194 + 221 = 415); the client-timed round trip {round_trip} is {} more (it also holds the server's loop between its receive and its reply, and no counter overhead is subtracted from it)",
            round_trip as i64 - sum as i64
        ));
    }
    let worst = |name: &str| results.iter().find(|r| r.name == name)?.max_cycles;
    if let (Some(quiet), Some(flood)) = (worst("wake_lateness_quiet"), worst("wake_lateness_flood"))
    {
        let extra = flood.saturating_sub(quiet);
        let verdict = match tsc_mhz {
            Some(mhz) if nanoseconds(extra, mhz) <= TICK_NS => "target met",
            Some(_) => "target missed",
            None => "no TSC frequency to judge by",
        };
        lines.push(format!(
            "wake-up lateness of a priority-8 thread, worst case: {quiet} cycles quiet, {flood} under a priority-12 DebugWrite flood (+{extra}; target ≤ one 10 ms tick more: {verdict})"
        ));
    }
    let phases = ["to_vm", "decide", "map", "resume", "back"]
        .map(|phase| median(&format!("vm_fault_phase_{phase}")));
    if let [Some(to_vm), Some(decide), Some(map), Some(resume), Some(back)] = phases {
        lines.push(format!(
            "demand-zero fault, where the instructions go (medians): kernel entry and message to VM {to_vm} + VM's decision {decide} + VmMap {map} + VmResume {resume} + back to the faulting instruction {back} = {}",
            to_vm + decide + map + resume + back
        ));
    }
    for threads in [10u64, 100, 1000] {
        if let Some(total) = median(&format!("snapshot_{threads}_threads")) {
            let per_thread = total / threads;
            let verdict = if per_thread <= SNAPSHOT_PER_THREAD_TARGET {
                "target met"
            } else {
                "target missed"
            };
            lines.push(format!(
                "snapshot with {threads} threads: {per_thread} cycles per thread (target ≤ {SNAPSHOT_PER_THREAD_TARGET}: {verdict})"
            ));
        }
    }
    lines
}

/// The verdict on a row with `target`: by its median, and by its worst case if it has one.
fn verdict(result: &BenchResult, target: u64) -> &'static str {
    match (result.median_cycles <= target, result.max_cycles) {
        (false, _) => "target missed",
        (true, Some(max)) if max > target => "median met, worst case missed",
        (true, _) => "target met",
    }
}

pub fn format_table(results: &[BenchResult], mode: Mode, tsc_mhz: Option<f64>) -> String {
    let icount = mode == Mode::Icount;
    // The worst-case column only when a row has one.
    let worst = results.iter().any(|r| r.max_cycles.is_some());
    let mut header = vec!["benchmark", "median cycles", "min cycles"];
    if worst {
        header.push("max cycles");
    }
    header.extend([
        if icount {
            "median ns (nominal)"
        } else {
            "median ns"
        },
        "iterations",
        "mode",
    ]);
    if icount {
        header.push("reference");
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    for result in results {
        let ns = match tsc_mhz {
            Some(mhz) => format!("{:.1}", nanoseconds(result.median_cycles, mhz)),
            None => "?".to_string(),
        };
        let mut row = vec![
            result.name.clone(),
            result.median_cycles.to_string(),
            result.min_cycles.to_string(),
        ];
        if worst {
            row.push(
                result
                    .max_cycles
                    .map_or(String::new(), |max| max.to_string()),
            );
        }
        row.extend([ns, result.iterations.to_string(), mode.label().to_string()]);
        if icount {
            let mut reference_text = reference(&result.name).unwrap_or("").to_string();
            if let Some(target) = target_of(&result.name) {
                reference_text.push_str(&format!(" ({})", verdict(result, target)));
            }
            row.push(reference_text);
        }
        rows.push(row);
    }
    // Right-align the numeric columns (all but the name, mode and reference), left-align
    // the rest.
    let last_numeric = if worst { 5 } else { 4 };
    let numeric = |column: usize| (1..=last_numeric).contains(&column);
    let widths: Vec<usize> = (0..header.len())
        .map(|column| {
            rows.iter()
                .map(|row| row[column].chars().count())
                .chain([header[column].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let render = |cells: &[&str]| -> String {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(column, cell)| {
                if numeric(column) {
                    format!("{cell:>width$}", width = widths[column])
                } else {
                    format!("{cell:<width$}", width = widths[column])
                }
            })
            .collect();
        padded.join(" | ").trim_end().to_string()
    };
    let mut lines = vec![render(&header)];
    lines.push(
        widths
            .iter()
            .map(|width| "-".repeat(*width))
            .collect::<Vec<_>>()
            .join("-|-"),
    );
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        lines.push(render(&cells));
    }
    lines.extend(derived_figures(results, tsc_mhz));
    match (mode, tsc_mhz) {
        (_, None) => lines.push("ns: unknown (no `TSC … MHz` in the kernel banner)".to_string()),
        (Mode::Icount, Some(mhz)) => lines.push(format!(
            "cycles are guest instructions (-icount shift=0); ns are nominal, at the guest's \
             TSC of {mhz} MHz"
        )),
        (_, Some(mhz)) => lines.push(format!("ns at the guest's TSC of {mhz} MHz")),
    }
    lines.join("\n")
}

/// How many console lines to show when a run fails.
const TAIL_LINES: usize = 40;

/// Builds kernel and programs, boots the benchmarks, prints the table.
pub fn run(options: BenchOptions) -> Result<ExitCode> {
    prereq::ensure()?;
    let (mode, warning) = Mode::choose(options.kvm, options.wall, qemu::kvm_usable);
    if let Some(warning) = warning {
        eprintln!("{warning}");
    }
    let elf = match &options.kernel {
        Some(elf) => {
            kernel::verify(elf)?;
            elf.clone()
        }
        None => kernel::build(Profile::Release)?,
    };
    let built = user::build()?;
    let (modules, processes) = built.resolve(&user::parse_specs(BENCH_PROGRAMS)?)?;
    let restart_set = built.resolve(&user::parse_specs(RESTART_BENCH_PROGRAMS)?)?;
    let update_set = built.resolve(&user::parse_specs(UPDATE_BENCH_PROGRAMS)?)?;
    let symbolizer = Symbolizer::load(&elf, &kernel::workspace_root());
    let boot_programs = |programs: &[&str], set: &(_, _), cmdline: &str| -> Result<Report> {
        let (modules, processes) = set;
        let mut config = QemuConfig::for_test(&elf, MEMORY, cmdline);
        config.accel = mode.accel();
        config.icount = mode == Mode::Icount;
        config.modules = Clone::clone(modules);
        println!(
            "bench: booting {} under {} with '{cmdline}' (deadline {} s)",
            programs.join(", "),
            mode.label(),
            DEADLINE.as_secs()
        );
        if options.verbose {
            let skip_idle = if config.icount {
                " -icount sleep=off"
            } else {
                ""
            };
            println!("qemu: {}{skip_idle}", config.display_command());
        }
        let mut process_line = |line: &str| {
            let line = symbolizer.rewrite(line, processes);
            if options.verbose || parse_bench_line(&line).is_some() {
                println!("  | {line}");
            }
            line
        };
        let mut command = config.command();
        if config.icount {
            command.args(SKIP_IDLE);
        }
        let run = qemu::supervise(command, DEADLINE, &mut process_line)?;
        let report = Report::collect(run.lines.iter().map(|line| line.text.as_str()));
        let exit_problem = match run.outcome {
            Outcome::Exited(exit) if KernelExit::from_exit(exit) == KernelExit::Success => None,
            outcome => Some(format!(
                "the run did not end with a kernel success exit: {outcome}"
            )),
        };
        let problem = match (report.problem(), exit_problem) {
            (None, None) => None,
            (Some(report), None) => Some(report),
            (None, Some(exit)) => Some(exit),
            (Some(report), Some(exit)) => Some(format!("{report}; {exit}")),
        };
        if let Some(problem) = problem {
            qemu::print_failure_details(&run, TAIL_LINES);
            bail!("the benchmark run with '{cmdline}' failed: {problem}");
        }
        Ok(report)
    };
    let main_set = (modules, processes);
    let boot = |cmdline: &str| boot_programs(BENCH_PROGRAMS, &main_set, cmdline);
    let mut table = Vec::new();
    let mut tsc_mhz = None;
    let mut comparison = Vec::new();
    if BenchSet::Main.wanted(options.only) {
        let on = boot("")?;
        let off = boot("watchdog=off")?;
        let slow = boot("ipc_fastpath=off")?;
        table.extend(on.results.iter().cloned());
        table.extend(slow_path_rows(&slow.results));
        tsc_mhz = on.tsc_mhz;
        comparison = watchdog_comparison(&on.results, &off.results, on.watchdog);
    }
    for (set, programs, resolved) in [
        (BenchSet::Restart, RESTART_BENCH_PROGRAMS, &restart_set),
        (BenchSet::Update, UPDATE_BENCH_PROGRAMS, &update_set),
    ] {
        if set.wanted(options.only) {
            let report = boot_programs(programs, resolved, "")?;
            tsc_mhz = tsc_mhz.or(report.tsc_mhz);
            table.extend(report.results);
        }
    }
    println!();
    println!("{}", format_table(&table, mode, tsc_mhz));
    for line in comparison {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_line_and_comparison() {
        let line = "[    9.123456] INFO  watchdog: 181 NMIs (2 unclaimed) in 9123 ms, 0 lockups";
        let figures = parse_watchdog_line(line).unwrap();
        assert_eq!(
            figures,
            WatchdogFigures {
                nmis: 181,
                unclaimed: 2,
                elapsed_ms: 9123,
                lockups: 0
            }
        );
        assert_eq!(parse_watchdog_line("watchdog: off (watchdog=off)"), None);
        assert_eq!(
            parse_watchdog_line("watchdog: x NMIs (2 unclaimed) in 9 ms, 0 lockups"),
            None
        );
        let report = Report::collect([line]);
        assert_eq!(report.watchdog, Some(figures));

        let result = |name: &str, median_cycles| BenchResult {
            name: name.to_string(),
            median_cycles,
            min_cycles: median_cycles,
            iterations: 10,
            max_cycles: None,
        };
        let lines = watchdog_comparison(
            &[result("ipc_roundtrip", 3719), result("only_on", 5)],
            &[result("ipc_roundtrip", 3700)],
            Some(figures),
        );
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines[1].contains("ipc_roundtrip") && lines[1].ends_with("+0.51 %"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains("(19.8 per second, 2 unclaimed)"),
            "{}",
            lines[2]
        );
        let unreported = watchdog_comparison(&[], &[], None);
        assert!(unreported[1].contains("did not report"), "{unreported:?}");
    }

    #[test]
    fn derived_figures_compare_pairs_of_measurements() {
        let result = |name: &str, median_cycles| BenchResult {
            name: name.to_string(),
            median_cycles,
            min_cycles: median_cycles,
            iterations: 10,
            max_cycles: None,
        };
        let lines = derived_figures(
            &[
                result("null_syscall", 300),
                result("null_syscall_traced", 380),
                result("ipc_roundtrip", 4400),
                result("ipc_roundtrip_untraced", 4000),
                result("snapshot_1000_threads", 129_000),
                result("snapshot_10_threads", 15_000),
            ],
            None,
        );
        assert_eq!(
            lines[0],
            "trace event: 80 cycles each (null_syscall traced 380 − untraced 300)"
        );
        assert!(
            lines[1].starts_with("tracing overhead on the IPC round trip: 1.100×"),
            "{}",
            lines[1]
        );
        assert_eq!(
            lines[2],
            "snapshot with 10 threads: 1500 cycles per thread (target ≤ 150: target missed)"
        );
        assert_eq!(
            lines[3],
            "snapshot with 1000 threads: 129 cycles per thread (target ≤ 150: target met)"
        );
        assert!(derived_figures(&[result("null_syscall", 1)], None).is_empty());

        let worst = |name: &str, max| BenchResult {
            max_cycles: Some(max),
            ..result(name, 1)
        };
        let judge = |flood| {
            derived_figures(
                &[
                    worst("wake_lateness_quiet", 50_000),
                    worst("wake_lateness_flood", flood),
                ],
                Some(1000.0),
            )
        };
        assert!(
            judge(9_000_000)[0].ends_with("(+8950000; target ≤ one 10 ms tick more: target met)")
        );
        assert!(
            judge(20_000_000)[0].ends_with("target missed)"),
            "{:?}",
            judge(20_000_000)
        );
    }

    fn result(name: &str, median: u64, min: u64, iterations: u64) -> BenchResult {
        BenchResult {
            name: name.to_string(),
            median_cycles: median,
            min_cycles: min,
            iterations,
            max_cycles: None,
        }
    }

    #[test]
    fn parses_a_worst_case_when_a_line_has_one() {
        let line =
            "bench: wake_lateness_flood median_cycles=10 min_cycles=5 iterations=30 max_cycles=99";
        let Some(Ok(BenchLine::Result(result))) = parse_bench_line(line) else {
            panic!("not parsed");
        };
        assert_eq!(result.max_cycles, Some(99));
        let bad = "bench: x median_cycles=10 min_cycles=5 iterations=30 max_cycles=many";
        assert!(matches!(parse_bench_line(bad), Some(Err(_))));
    }

    #[test]
    fn parses_result_and_done_lines() {
        assert_eq!(
            parse_bench_line(
                "bench: ipc_roundtrip median_cycles=812 min_cycles=790 iterations=10000"
            ),
            Some(Ok(BenchLine::Result(result(
                "ipc_roundtrip",
                812,
                790,
                10000
            ))))
        );
        // A log prefix, other key order, extra keys and trailing spaces are fine.
        assert_eq!(
            parse_bench_line(
                "[    1.250000] INFO  bench: null_syscall iterations=5 extra=x min_cycles=1 \
                 median_cycles=2  "
            ),
            Some(Ok(BenchLine::Result(result("null_syscall", 2, 1, 5))))
        );
        assert_eq!(parse_bench_line("bench: done"), Some(Ok(BenchLine::Done)));
        assert_eq!(
            parse_bench_line("bench_client: bench: done\r"),
            Some(Ok(BenchLine::Done))
        );
    }

    #[test]
    fn ignores_other_lines() {
        for line in [
            "",
            "bench:",
            "bench: starting 3 benchmarks",
            "bench_client: ready",
            "my_bench: x median_cycles=1 min_cycles=1 iterations=1",
            "benchmark: done",
            "[    0.021000] INFO  Vigil 0.1.0 up: memory 128 MiB, TSC 1000.0 MHz",
        ] {
            assert_eq!(parse_bench_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn reports_malformed_result_lines() {
        let error = parse_bench_line("bench: x median_cycles=12 iterations=3")
            .unwrap()
            .unwrap_err();
        assert!(error.contains("without min_cycles="), "{error}");
        let error = parse_bench_line("bench: x median_cycles=-1 min_cycles=1 iterations=3")
            .unwrap()
            .unwrap_err();
        assert!(error.contains("bad median_cycles=-1"), "{error}");
    }

    #[test]
    fn reads_the_tsc_frequency_from_the_banner() {
        assert_eq!(
            parse_tsc_mhz(
                "[    0.021000] INFO  Vigil 0.1.0 up: memory 128 MiB (126 MiB usable), TSC \
                 2993.1 MHz, timer 100 Hz, boot 20000 us"
            ),
            Some(2993.1)
        );
        assert_eq!(parse_tsc_mhz("TSC 1000 MHz"), Some(1000.0));
        assert_eq!(parse_tsc_mhz("TSC 0.0 MHz"), None);
        assert_eq!(parse_tsc_mhz("TSC fast MHz"), None);
        assert_eq!(parse_tsc_mhz("TSC 1000 kHz"), None);
        assert_eq!(parse_tsc_mhz("no tsc here"), None);
    }

    #[test]
    fn collects_a_report_and_judges_it() {
        let lines = [
            "[    0.02] INFO  Vigil 0.1.0 up: memory 128 MiB, TSC 1000.0 MHz, timer 100 Hz",
            "bench: ipc_roundtrip median_cycles=812 min_cycles=790 iterations=10000",
            "hello",
            "bench: null_syscall median_cycles=120 min_cycles=118 iterations=10000",
            "bench: done",
        ];
        let report = Report::collect(lines);
        assert_eq!(report.tsc_mhz, Some(1000.0));
        assert_eq!(report.results.len(), 2);
        assert!(report.done);
        assert_eq!(report.problem(), None);

        let unfinished = Report::collect(lines[..3].iter().copied());
        assert!(unfinished
            .problem()
            .unwrap()
            .contains("never printed `bench: done`"));
        let empty = Report::collect(["bench: done"]);
        assert!(empty.problem().unwrap().contains("no benchmark results"));
        let broken = Report::collect(["bench: x median_cycles=1", "bench: done"]);
        assert!(broken.problem().unwrap().contains("without min_cycles="));
    }

    #[test]
    fn chooses_the_mode() {
        assert_eq!(
            Mode::choose(false, false, || panic!("not asked")),
            (Mode::Icount, None)
        );
        assert_eq!(
            Mode::choose(false, true, || panic!("not asked")),
            (Mode::Wall, None)
        );
        assert_eq!(Mode::choose(true, false, || true), (Mode::Kvm, None));
        let (mode, warning) = Mode::choose(true, false, || false);
        assert_eq!(mode, Mode::Wall);
        assert!(warning.unwrap().contains("falling back to TCG"));
        assert_eq!(Mode::Icount.accel(), Accel::Tcg);
        assert_eq!(Mode::Kvm.accel(), Accel::Kvm);
    }

    #[test]
    fn formats_the_icount_table_with_references() {
        let results = [
            result("ipc_roundtrip", 812, 790, 10000),
            result("null_syscall", 120, 118, 10000),
        ];
        let table = format_table(&results, Mode::Icount, Some(1000.0));
        let expected = "\
benchmark     | median cycles | min cycles | median ns (nominal) | iterations | mode                  | reference
--------------|---------------|------------|---------------------|------------|-----------------------|----------------------------------------------------------------------------------------
ipc_roundtrip |           812 |        790 |               812.0 |      10000 | icount (instructions) | seL4 fast path 415, Linux eventfd 10,556 instructions; Vigil aims ≤ 400 (target missed)
null_syscall  |           120 |        118 |               120.0 |      10000 | icount (instructions) |
cycles are guest instructions (-icount shift=0); ns are nominal, at the guest's TSC of 1000 MHz";
        assert_eq!(table, expected, "\n{table}");
        let met = format_table(&[result("ipc_roundtrip", 400, 390, 10)], Mode::Icount, None);
        assert!(met.contains("(target met)"), "{met}");
        assert!(met.contains("ns: unknown"), "{met}");
    }

    #[test]
    fn judges_the_update_rows_on_their_median_and_their_worst_sample() {
        let row = |name: &str, median, max| BenchResult {
            max_cycles: Some(max),
            ..result(name, median, median, 12)
        };
        let table = format_table(
            &[
                row("update_downtime", 400_000, 1_900_000),
                row("update_rollback_crash", 900_000, 10_000_001),
                row("update_rollback_init", 11_000_000, 12_000_000),
            ],
            Mode::Icount,
            Some(1000.0),
        );
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[2].ends_with("(target met)"), "{}", lines[2]);
        assert!(
            lines[3].ends_with("(median met, worst case missed)"),
            "{}",
            lines[3]
        );
        assert!(lines[4].ends_with("(target missed)"), "{}", lines[4]);
        // Without a worst sample the median alone is judged.
        let median_only = format_table(
            &[result("update_downtime", 2_000_001, 1, 12)],
            Mode::Icount,
            None,
        );
        assert!(median_only.contains("(target missed)"), "{median_only}");
    }

    #[test]
    fn one_way_rows_name_their_method_and_the_sum_is_judged_like_the_round_trip() {
        let results = [
            result("ipc_call_replyrecv_regs", 503, 503, 10000),
            result("tsc_read_overhead", 4, 4, 10000),
            result("ipc_regs_call_oneway", 220, 220, 10000),
            result("ipc_regs_replyrecv_oneway", 250, 250, 10000),
            result("ipc_regs_oneway_sum", 470, 470, 10000),
            result("ipc_regs_oneway_sum_untraced", 400, 400, 10000),
        ];
        let table = format_table(&results, Mode::Icount, Some(1000.0));
        let line = |name: &str| {
            table
                .lines()
                .find(|line| line.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no {name} row in\n{table}"))
        };
        assert!(
            line("ipc_call_replyrecv_regs").contains("round trip timed by the client"),
            "{table}"
        );
        assert!(
            line("ipc_call_replyrecv_regs").ends_with("(target missed)"),
            "{table}"
        );
        assert!(
            line("ipc_regs_call_oneway").ends_with("seL4 fast path Call 194"),
            "{table}"
        );
        assert!(
            line("ipc_regs_replyrecv_oneway").ends_with("seL4 fast path ReplyRecv 221"),
            "{table}"
        );
        assert!(
            line("ipc_regs_oneway_sum").contains("sel4bench's method"),
            "{table}"
        );
        assert!(
            line("ipc_regs_oneway_sum").ends_with("Vigil aims ≤ 400 (target missed)"),
            "{table}"
        );
        // The one-way halves and the untraced sum have no target of their own.
        for name in [
            "tsc_read_overhead",
            "ipc_regs_call_oneway",
            "ipc_regs_replyrecv_oneway",
            "ipc_regs_oneway_sum_untraced",
        ] {
            assert!(!line(name).contains("(target"), "{table}");
        }
        assert!(
            table.contains(
                "register IPC one way (sel4bench's method), medians: Call 220, ReplyRecv 250, \
                 their sum per sample 470 (seL4 194 + 221 = 415); the client-timed round trip \
                 503 is 33 more (it also holds the server's loop between its receive and its \
                 reply, and no counter overhead is subtracted from it)"
            ),
            "{table}"
        );
        let met = format_table(
            &[result("ipc_regs_oneway_sum", 400, 390, 10000)],
            Mode::Icount,
            None,
        );
        assert!(met.contains("(target met)"), "{met}");
        // The table's rows are the guest's and the fast-path boot's: the one-way rows are
        // not taken from the `ipc_fastpath=off` boot.
        assert!(slow_path_rows(&results)
            .iter()
            .all(|r| r.name == "ipc_call_replyrecv_regs_slowpath"));
        assert!(BENCH_PROGRAMS
            .contains(&"bench_server name=bench_regs_timed -- reply-receive-registers-timed"));
    }

    #[test]
    fn only_boots_the_set_asked_for() {
        assert!(BenchSet::Update.wanted(None));
        assert!(BenchSet::Update.wanted(Some(BenchSet::Update)));
        assert!(!BenchSet::Main.wanted(Some(BenchSet::Update)));
        assert!(!BenchSet::Update.wanted(Some(BenchSet::Restart)));
    }

    #[test]
    fn restart_rows_show_their_worst_case_and_are_judged_by_it() {
        let with_max = |name: &str, median, max| BenchResult {
            max_cycles: Some(max),
            ..result(name, median, median, 20)
        };
        let results = [
            with_max("restart_crash_to_serving", 450_000, 1_100_000),
            with_max("restart_exit_to_serving", 440_000, 460_000),
            with_max("hang_detected", 299_000_000, 299_600_000),
            with_max("restart_hang_to_serving", 299_500_000, 300_100_000),
            result("null_syscall", 120, 118, 10000),
        ];
        let table = format_table(&results, Mode::Icount, Some(1000.0));
        let line = |name: &str| {
            table
                .lines()
                .find(|line| line.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no {name} row in\n{table}"))
        };
        assert!(
            table.lines().next().unwrap().contains("| max cycles |"),
            "{table}"
        );
        assert!(
            line("restart_crash_to_serving").contains("|    1100000 |"),
            "{table}"
        );
        assert!(
            line("restart_crash_to_serving").ends_with("(median met, worst case missed)"),
            "{table}"
        );
        assert!(
            line("restart_exit_to_serving").ends_with("(target met)"),
            "{table}"
        );
        assert!(line("hang_detected").ends_with("(target met)"), "{table}");
        // No target of its own (the detection row has it); a row with no worst case
        // leaves the column empty.
        assert!(
            !line("restart_hang_to_serving").contains("(target"),
            "{table}"
        );
        assert!(
            line("null_syscall").contains("|        118 |            |"),
            "{table}"
        );
        let missed = format_table(
            &[with_max("hang_detected", 310_000_000, 320_000_000)],
            Mode::Icount,
            None,
        );
        assert!(missed.contains("(target missed)"), "{missed}");
    }

    #[test]
    fn formats_wall_clock_and_kvm_tables_without_references() {
        let results = [result("ipc_roundtrip", 3000, 2500, 100)];
        let table = format_table(&results, Mode::Kvm, Some(3000.0));
        let expected = "\
benchmark     | median cycles | min cycles | median ns | iterations | mode
--------------|---------------|------------|-----------|------------|-----
ipc_roundtrip |          3000 |       2500 |    1000.0 |        100 | KVM
ns at the guest's TSC of 3000 MHz";
        assert_eq!(table, expected, "\n{table}");
        let table = format_table(&results, Mode::Wall, Some(2993.1));
        assert!(table.contains("| TCG wall clock"), "{table}");
        assert!(table.contains("|    1002.3 |"), "{table}");
        assert!(!table.contains("seL4"), "{table}");
    }

    #[test]
    fn converts_cycles_to_nanoseconds() {
        assert_eq!(nanoseconds(1000, 1000.0), 1000.0);
        assert_eq!(nanoseconds(3000, 3000.0), 1000.0);
        assert!((nanoseconds(812, 2993.1) - 271.29).abs() < 0.01);
    }
}
