//! `cargo xtask fuzz`: the system-call fuzzer (`user/programs/src/bin/fuzz_syscalls.rs`) for
//! as many calls as asked, judged by its own oracles and by `fuzz_judge`'s frame count.
//!
//! Boots the VM server, the judge, an idle control copy and one fuzzer (unprivileged, or with
//! every kernel call but Shutdown with `--privileged`), prints the fuzzer's progress lines
//! as they come, and exits non-zero on a violation, a leak, a crash, a hang or a timeout.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use crate::kernel::{self, Profile};
use crate::prereq;
use crate::qemu::{self, KernelExit, Outcome, QemuConfig};
use crate::symbolize::Symbolizer;
use crate::user;

/// How the fuzzer is run.
#[derive(Clone, Copy, Debug)]
pub struct FuzzOptions {
    pub calls: u64,
    pub seed: u64,
    pub privileged: bool,
    pub verbose: bool,
}

/// Calls per second the deadline assumes (measured: about 18,000 a second under
/// TCG on a loaded 2-core machine), with a margin.
const ASSUMED_CALLS_PER_SECOND: u64 = 2000;

/// The boot modules of a run.
pub fn programs(options: &FuzzOptions) -> Vec<String> {
    let (name, kcalls) = if options.privileged {
        ("fuzz_privileged", " kcalls=all")
    } else {
        ("fuzz_user", "")
    };
    vec![
        "vm kcalls=vm".to_string(),
        "pm kcalls=pm".to_string(),
        "fuzz_judge prio=0 kcalls=snapshot+shutdown -- 1".to_string(),
        "fuzz_syscalls name=fuzz_control -- calls=0".to_string(),
        format!(
            "fuzz_syscalls name={name}{kcalls} -- seed={} calls={}",
            options.seed, options.calls
        ),
    ]
}

pub fn run(options: FuzzOptions) -> Result<ExitCode> {
    prereq::ensure()?;
    let elf = kernel::build(Profile::Release)?;
    let programs = programs(&options);
    let specs = user::parse_specs(&programs.iter().map(String::as_str).collect::<Vec<_>>())?;
    let (modules, processes) = user::build()?.resolve(&specs)?;
    let symbolizer = Symbolizer::load(&elf, &kernel::workspace_root());
    let mut config = QemuConfig::for_test(&elf, "256M", "");
    config.modules = modules;
    let deadline = Duration::from_secs(120 + options.calls / ASSUMED_CALLS_PER_SECOND);
    println!(
        "fuzz: {} calls, seed {}, {}; deadline {} s",
        options.calls,
        options.seed,
        if options.privileged {
            "with every kernel call but Shutdown"
        } else {
            "unprivileged"
        },
        deadline.as_secs()
    );
    let started = Instant::now();
    let mut process_line = |line: &str| {
        let line = symbolizer.rewrite(line, &processes);
        if options.verbose
            || line.contains("fuzz_syscalls:")
            || line.contains("fuzz_judge:")
            || line.contains("killed by")
            || line.contains("panic")
        {
            println!("  | {line}");
        }
        line
    };
    let run = qemu::supervise(config.command(), deadline, &mut process_line)?;
    let console: Vec<&str> = run.lines.iter().map(|line| line.text.as_str()).collect();
    let verdict = judge(&console, &run.outcome);
    let elapsed = started.elapsed().as_secs_f64();
    match verdict {
        Ok(()) => {
            println!(
                "fuzz: PASS {} calls in {elapsed:.1} s ({:.0} calls/s), seed {}",
                options.calls,
                options.calls as f64 / elapsed,
                options.seed
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(problem) => {
            qemu::print_failure_details(&run, 40);
            bail!("fuzz: FAIL after {elapsed:.1} s: {problem}")
        }
    }
}

/// The host-side parsers with a cargo-fuzz target in `fuzz/`.
pub const HOST_TARGETS: [&str; 6] = [
    "wire_kernel_frames",
    "wire_host_frames",
    "elf",
    "multiboot",
    "boot_options",
    "recording",
];

/// `cargo xtask fuzz --host TARGET --seconds N`: libFuzzer on one parser for N seconds,
/// starting from the committed seeds (`fuzz/seeds/TARGET`) and the working corpus
/// (`fuzz/corpus/TARGET`, not committed, which grows with every input that reaches new
/// code). Installs the nightly toolchain and cargo-fuzz when missing.
pub fn run_host(target: &str, seconds: u64) -> Result<ExitCode> {
    if !HOST_TARGETS.contains(&target) {
        bail!(
            "no fuzz target '{target}'; the targets are: {}",
            HOST_TARGETS.join(", ")
        );
    }
    let root = kernel::workspace_root();
    ensure_cargo_fuzz()?;
    let corpus = root.join("fuzz/corpus").join(target);
    let seeds = root.join("fuzz/seeds").join(target);
    std::fs::create_dir_all(&corpus)?;
    println!(
        "fuzz: {target} for {seconds} s (libFuzzer, corpus {})",
        corpus.display()
    );
    let status = std::process::Command::new("cargo")
        .args(["+nightly", "fuzz", "run", target])
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1")
        .current_dir(root.join("fuzz"))
        .status()?;
    if status.success() {
        println!("fuzz: PASS {target}: {seconds} s without a crash");
        Ok(ExitCode::SUCCESS)
    } else {
        bail!("fuzz: {target} found a crash (artifacts under fuzz/artifacts/{target}/): {status}")
    }
}

/// The nightly toolchain and cargo-fuzz, installed if missing.
fn ensure_cargo_fuzz() -> Result<()> {
    let has_nightly = std::process::Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !has_nightly {
        println!("fuzz: installing the nightly toolchain (libFuzzer needs it)");
        let status = std::process::Command::new("rustup")
            .args(["toolchain", "install", "nightly", "--profile", "minimal"])
            .status()?;
        if !status.success() {
            bail!("could not install the nightly toolchain: rustup toolchain install nightly");
        }
    }
    let has_cargo_fuzz = std::process::Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !has_cargo_fuzz {
        println!("fuzz: installing cargo-fuzz");
        let status = std::process::Command::new("cargo")
            .args(["install", "cargo-fuzz", "--locked"])
            .status()?;
        if !status.success() {
            bail!("could not install cargo-fuzz: cargo install cargo-fuzz --locked");
        }
    }
    Ok(())
}

/// The verdict on a run's console and outcome.
pub fn judge(console: &[&str], outcome: &Outcome) -> Result<(), String> {
    if let Some(line) = console
        .iter()
        .find(|l| l.contains("fuzz_syscalls: VIOLATION"))
    {
        return Err(format!("the fuzzer's oracle failed: {line}"));
    }
    if let Some(line) = console
        .iter()
        .find(|l| l.contains("killed by") || l.contains("panicked"))
    {
        return Err(format!("a process crashed: {line}"));
    }
    if !console.iter().any(|l| l.contains("fuzz_syscalls: PASS")) {
        return Err("the fuzzer never finished".into());
    }
    if let Some(line) = console.iter().find(|l| l.contains("fuzz_judge: FAIL")) {
        return Err(format!("frames leaked: {line}"));
    }
    if !console.iter().any(|l| l.contains("fuzz_judge: PASS")) {
        return Err("the judge never gave its verdict".into());
    }
    match outcome {
        Outcome::Exited(exit) if KernelExit::from_exit(*exit) == KernelExit::Success => Ok(()),
        other => Err(format!("the kernel did not exit with success: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_run_boots_one_fuzzer_beside_the_judge_and_the_control() {
        let options = FuzzOptions {
            calls: 10_000_000,
            seed: 7,
            privileged: true,
            verbose: false,
        };
        let programs = programs(&options);
        assert_eq!(programs.len(), 5);
        assert_eq!(programs[1], "pm kcalls=pm", "PM starts the fuzzers");
        assert_eq!(
            programs[4],
            "fuzz_syscalls name=fuzz_privileged kcalls=all -- seed=7 calls=10000000"
        );
        let specs =
            user::parse_specs(&programs.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
        assert!(user::require_process_manager(&specs).is_ok());
    }

    #[test]
    fn every_host_target_has_a_binary_and_a_seed_corpus() {
        let root = kernel::workspace_root();
        let manifest = std::fs::read_to_string(root.join("fuzz/Cargo.toml")).unwrap();
        for target in HOST_TARGETS {
            assert!(
                manifest.contains(&format!("name = \"{target}\"")),
                "fuzz/Cargo.toml has no [[bin]] {target}"
            );
            assert!(root
                .join(format!("fuzz/fuzz_targets/{target}.rs"))
                .is_file());
            let seeds = std::fs::read_dir(root.join("fuzz/seeds").join(target))
                .map(|dir| dir.count())
                .unwrap_or(0);
            assert!(seeds > 0, "no seed corpus for {target}");
        }
    }

    #[test]
    fn a_violation_a_crash_or_a_leak_fails_the_run() {
        let good = [
            "fuzz_syscalls: PASS seed 1",
            "fuzz_judge: PASS 1 fuzzers exited",
        ];
        let success = Outcome::Exited(crate::qemu::Exit::Code(vigil_abi::qemu_exit::host_status(
            vigil_abi::qemu_exit::SUCCESS,
        )));
        assert_eq!(judge(&good, &success), Ok(()));
        let violation = ["fuzz_syscalls: VIOLATION call 3", "fuzz_judge: PASS"];
        assert!(judge(&violation, &success).is_err());
        let leak = ["fuzz_syscalls: PASS", "fuzz_judge: FAIL 3 frames leaked"];
        assert!(judge(&leak, &success).is_err());
        let crash = [
            "process 'x' (pid 3) killed by #GP",
            "fuzz_syscalls: PASS",
            "fuzz_judge: PASS",
        ];
        assert!(judge(&crash, &success).is_err());
    }
}
