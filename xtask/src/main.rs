//! `cargo xtask`: builds the kernel and user programs, boots them in QEMU, runs the tests and
//! the benchmarks.

mod bench;
mod fuzz;
mod gdb;
mod host_tests;
mod image;
mod kernel;
mod lint;
mod monitor_tee;
mod prereq;
mod qcow2;
mod qemu;
mod recording;
mod replay;
mod run;
mod symbolize;
mod system_test;
mod test_suite;
mod tool;
mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::kernel::Profile;
use crate::qemu::Com2;
use crate::user::ProgramSpec;

/// Vigil's build, run and test driver.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build the kernel (verifying its Multiboot image) and the user programs.
    Build {
        /// Build the kernel with the debug profile instead of release.
        #[arg(long)]
        debug: bool,
    },
    /// Build the kernel and user programs and boot them in QEMU; the console is this terminal.
    Run(RunArgs),
    /// Run the host tests, build kernel and user programs, run the QEMU scenarios; ends with
    /// `N passed, M failed`.
    Test(TestArgs),
    /// Boot the benchmark programs and print a table of their cycle (or instruction) counts.
    Bench(BenchArgs),
    /// Replay a recording of `run --record DIR`: console and monitor stream byte-identical.
    Replay(ReplayArgs),
    /// Check formatting and run clippy exactly as CI does.
    Lint,
    /// Run the system-call fuzzer for N calls (its oracles and a frame-leak check judge it).
    Fuzz(FuzzArgs),
}

#[derive(Args, Debug)]
struct FuzzArgs {
    /// System calls to make.
    #[arg(long, default_value_t = 1_000_000)]
    calls: u64,
    /// Seed of the fuzzer's generator (a failure repeats with the same seed).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Allow every kernel call but Shutdown (kcalls=all).
    #[arg(long)]
    privileged: bool,
    /// Echo every guest console line.
    #[arg(long)]
    verbose: bool,
    /// Instead: coverage-guided fuzzing of a host-side parser with cargo fuzz (libFuzzer,
    /// nightly; installed when missing): wire_kernel_frames, wire_host_frames, elf,
    /// multiboot, boot_options or recording.
    #[arg(long, value_name = "TARGET", conflicts_with = "privileged")]
    host: Option<String>,
    /// With --host: how long to fuzz.
    #[arg(long, value_name = "SECONDS", default_value_t = 60, requires = "host")]
    seconds: u64,
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Use KVM (`-accel kvm -cpu host`) when /dev/kvm is usable; TCG otherwise.
    #[arg(long)]
    kvm: bool,
    /// Guest memory, as QEMU's -m takes it.
    #[arg(long, default_value = "256M")]
    memory: String,
    /// Kernel command line, e.g. "test=boot".
    #[arg(long, default_value = "")]
    cmdline: String,
    /// Start paused and wait for gdb on 127.0.0.1:PORT (default 1234; QEMU's -s -S, on
    /// loopback only), and write target/vigil.gdb: kernel and user symbols, source paths.
    #[arg(long, value_name = "PORT", num_args = 0..=1, require_equals = true, default_missing_value = "1234")]
    gdb: Option<u16>,
    /// Where COM2, the monitor channel, listens: tcp:127.0.0.1:PORT or unix:PATH
    /// [default: a free TCP port on 127.0.0.1].
    #[arg(long, value_name = "tcp:127.0.0.1:PORT|unix:PATH", value_parser = run::parse_monitor)]
    monitor: Option<Com2>,
    /// Build with the debug profile instead of release.
    #[arg(long)]
    debug: bool,
    /// Boot this kernel ELF instead of building one.
    #[arg(long, value_name = "ELF")]
    kernel: Option<PathBuf>,
    /// Boot the user program NAME with boot options (repeatable, in order), e.g.
    /// --program "hello name=greeter prio=3 -- arg"
    /// [default: RS supervising hello_service, hello_load incrementing it, "service
    /// boot=pm", and hello, pm_parent, "pm_child boot=pm"].
    #[arg(long = "program", value_name = "NAME [OPTIONS]", value_parser = run::parse_program)]
    programs: Vec<ProgramSpec>,
    /// With the default programs: every 5 s hello_load also crashes hello_service or
    /// live-updates it (a null dereference, a panic, an update to the next version, an
    /// exit, an update RS rolls back, a hang in turn), so `vigil top` shows RS restarting
    /// it and its version changing while the load carries on.
    #[arg(long, conflicts_with_all = ["programs", "no_programs"])]
    demo: bool,
    /// Boot no user program (not even the default programs, nor the VM or PM server): the
    /// kernel alone.
    #[arg(long, conflicts_with = "programs")]
    no_programs: bool,
    /// Do not start the VM server first: every process then gets its heap and stack mapped
    /// by the kernel up front, and a page fault kills it.
    #[arg(long)]
    no_vm: bool,
    /// Hand FILE to the kernel as a raw Multiboot module, after the programs (repeatable,
    /// in order).
    #[arg(long = "module", value_name = "FILE")]
    modules: Vec<PathBuf>,
    /// Build the host tool and run its task manager (`vigil top`) on this terminal; the
    /// console goes to target/vigil-console.log. Quitting the task manager stops QEMU.
    #[arg(long)]
    top: bool,
    /// Let clients attach to QEMU's COM2 socket directly (one at a time) instead of through
    /// a `vigil hub`, which `run` otherwise starts so that several tools can watch at once.
    #[arg(long)]
    no_hub: bool,
    /// Start the guest only when a client connects to COM2 (QEMU `wait=on`), so a
    /// `vigil record` begins at reset and misses nothing of the boot. Clients attach to
    /// QEMU directly (no hub: the first client is the one that starts the machine).
    #[arg(long)]
    wait_monitor: bool,
    /// Record the whole machine (QEMU record/replay, TCG) into DIR: kernel, programs, replay
    /// log, snapshot, console and monitor stream; `cargo xtask replay DIR` replays it.
    #[arg(long, value_name = "DIR")]
    record: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ReplayArgs {
    /// The recording directory.
    dir: PathBuf,
    /// Start halted and wait for gdb on 127.0.0.1:PORT (default 1234); writes
    /// DIR/replay/vigil.gdb, with which reverse-stepi, reverse-next, reverse-continue work.
    #[arg(long, value_name = "PORT", num_args = 0..=1, require_equals = true, default_missing_value = "1234")]
    gdb: Option<u16>,
    /// Where host tools attach to the replayed monitor stream: 127.0.0.1:PORT or unix:PATH
    /// [default: a free port].
    #[arg(
        long,
        value_name = "127.0.0.1:PORT|unix:PATH",
        default_value = "127.0.0.1:0"
    )]
    listen: String,
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Measure under KVM when /dev/kvm works (else TCG wall clock, with a warning).
    #[arg(long, conflicts_with = "wall")]
    kvm: bool,
    /// Measure under plain TCG (wall clock) instead of `-icount shift=0` (instructions).
    #[arg(long)]
    wall: bool,
    /// Echo every guest console line.
    #[arg(long)]
    verbose: bool,
    /// Boot this kernel ELF instead of building one.
    #[arg(long, value_name = "ELF")]
    kernel: Option<PathBuf>,
    /// Boot only one set of benchmarks: main (three boots), restart or update.
    #[arg(long, value_enum, value_name = "SET")]
    only: Option<bench::BenchSet>,
}

#[derive(Args, Debug)]
struct TestArgs {
    /// Run only the scenarios whose name contains NAME (skips the host tests).
    #[arg(long, value_name = "NAME")]
    scenario: Option<String>,
    /// Skip the host tests (`cargo test`).
    #[arg(long)]
    no_host: bool,
    /// Echo each guest console line as it arrives.
    #[arg(long)]
    verbose: bool,
    /// Test this kernel ELF instead of building one.
    #[arg(long, value_name = "ELF")]
    kernel: Option<PathBuf>,
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build { debug } => build(Profile::from_debug_flag(debug)),
        Command::Run(args) => run::run(run::RunOptions {
            profile: Profile::from_debug_flag(args.debug),
            kvm: args.kvm,
            memory: args.memory,
            cmdline: args.cmdline,
            gdb: args.gdb,
            monitor: args.monitor,
            kernel: args.kernel,
            programs: run::programs_to_boot(
                args.programs,
                args.no_programs,
                !args.no_vm,
                args.demo,
            ),
            modules: args.modules,
            top: args.top,
            hub: !args.no_hub && !args.wait_monitor,
            wait_for_monitor: args.wait_monitor,
            record: args.record,
        }),
        Command::Replay(args) => replay::run(replay::ReplayOptions {
            dir: args.dir,
            gdb: args.gdb,
            listen: args.listen,
        }),
        Command::Test(args) => test_suite::run(test_suite::TestOptions {
            scenario: args.scenario,
            no_host: args.no_host,
            verbose: args.verbose,
            kernel: args.kernel,
            list: args.list,
        }),
        Command::Fuzz(FuzzArgs {
            host: Some(target),
            seconds,
            ..
        }) => fuzz::run_host(&target, seconds),
        Command::Fuzz(args) => fuzz::run(fuzz::FuzzOptions {
            calls: args.calls,
            seed: args.seed,
            privileged: args.privileged,
            verbose: args.verbose,
        }),
        Command::Bench(args) => bench::run(bench::BenchOptions {
            kvm: args.kvm,
            wall: args.wall,
            verbose: args.verbose,
            kernel: args.kernel,
            only: args.only,
        }),
        Command::Lint => lint::run(),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask build`: the kernel, then the user programs.
fn build(profile: Profile) -> anyhow::Result<ExitCode> {
    let elf = kernel::build(profile)?;
    let programs = user::build()?;
    println!("kernel: {}", kernel::display_relative(&elf));
    println!(
        "user programs ({}): {}",
        kernel::display_relative(&programs.elf_dir),
        if programs.names.is_empty() {
            "none".to_string()
        } else {
            programs.names.join(", ")
        }
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_the_documented_invocations() {
        let cli = Cli::try_parse_from([
            "xtask",
            "run",
            "--kvm",
            "--memory",
            "5G",
            "--cmdline",
            "test=boot",
            "--gdb",
            "--monitor",
            "unix:/tmp/m.sock",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert!(args.kvm && args.gdb == Some(1234));
        assert_eq!(args.memory, "5G");
        assert_eq!(args.monitor, Some(Com2::Unix("/tmp/m.sock".into())));

        let cli =
            Cli::try_parse_from(["xtask", "test", "--scenario", "fault", "--verbose"]).unwrap();
        let Command::Test(args) = cli.command else {
            panic!("not test")
        };
        assert_eq!(args.scenario.as_deref(), Some("fault"));
        assert!(args.verbose && !args.no_host);

        assert!(Cli::try_parse_from(["xtask", "build", "--debug"]).is_ok());

        let cli = Cli::try_parse_from([
            "xtask",
            "run",
            "--program",
            "ipc_server name=srv prio=2",
            "--program",
            "ipc_client kcalls=shutdown -- 3",
            "--module",
            "data.bin",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        let programs: Vec<String> = args.programs.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            programs,
            [
                "ipc_server name=srv prio=2",
                "ipc_client kcalls=shutdown -- 3"
            ]
        );
        assert_eq!(args.modules, [PathBuf::from("data.bin")]);
        assert!(Cli::try_parse_from(["xtask", "run", "--program", "/bin/sh"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "run", "--program", "a", "--no-programs"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "run", "--no-programs"]).is_ok());
        let cli = Cli::try_parse_from(["xtask", "run", "--gdb=4321"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert_eq!(args.gdb, Some(4321));
        assert!(Cli::try_parse_from(["xtask", "run", "--gdb=port"]).is_err());
        let cli = Cli::try_parse_from(["xtask", "run", "--top"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("not run")
        };
        assert!(args.top);

        let cli = Cli::try_parse_from(["xtask", "bench", "--wall"]).unwrap();
        let Command::Bench(args) = cli.command else {
            panic!("not bench")
        };
        assert!(args.wall && !args.kvm);
        assert!(Cli::try_parse_from(["xtask", "bench", "--kvm"]).is_ok());
        assert!(Cli::try_parse_from(["xtask", "bench", "--kvm", "--wall"]).is_err());
        let cli = Cli::try_parse_from(["xtask", "bench", "--only", "update"]).unwrap();
        let Command::Bench(args) = cli.command else {
            panic!("not bench")
        };
        assert_eq!(args.only, Some(bench::BenchSet::Update));
        assert!(Cli::try_parse_from(["xtask", "bench", "--only", "everything"]).is_err());
        assert!(Cli::try_parse_from(["xtask", "run", "--monitor", "tcp:8.8.8.8:1"]).is_err());
    }
}
