//! `cargo xtask`: builds the kernel, boots it in QEMU, runs the tests.

mod host_tests;
mod image;
mod kernel;
mod lint;
mod prereq;
mod qemu;
mod run;
mod scenario;
mod scenarios_user;
mod symbolize;
mod test_suite;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::kernel::Profile;
use crate::qemu::Com2;

/// Vigil's build, run and test driver.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build the kernel and verify that QEMU can load its Multiboot image.
    Build {
        /// Build with the debug profile instead of release.
        #[arg(long)]
        debug: bool,
    },
    /// Build the kernel and boot it in QEMU; the console is this terminal.
    Run(RunArgs),
    /// Run the host tests and the QEMU scenarios; ends with `N passed, M failed`.
    Test(TestArgs),
    /// Check formatting and run clippy exactly as CI does.
    Lint,
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
    /// Start paused and wait for gdb on 127.0.0.1:1234 (QEMU's -s -S, on loopback only).
    #[arg(long)]
    gdb: bool,
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
    /// Hand FILE to the kernel as a Multiboot module (repeatable, in order).
    #[arg(long = "module", value_name = "FILE")]
    modules: Vec<PathBuf>,
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
        Command::Build { debug } => kernel::build(Profile::from_debug_flag(debug)).map(|elf| {
            println!("kernel: {}", kernel::display_relative(&elf));
            ExitCode::SUCCESS
        }),
        Command::Run(args) => run::run(run::RunOptions {
            profile: Profile::from_debug_flag(args.debug),
            kvm: args.kvm,
            memory: args.memory,
            cmdline: args.cmdline,
            gdb: args.gdb,
            monitor: args.monitor,
            kernel: args.kernel,
            modules: args.modules,
        }),
        Command::Test(args) => test_suite::run(test_suite::TestOptions {
            scenario: args.scenario,
            no_host: args.no_host,
            verbose: args.verbose,
            kernel: args.kernel,
            list: args.list,
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
        assert!(args.kvm && args.gdb);
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
        assert!(Cli::try_parse_from(["xtask", "run", "--monitor", "tcp:8.8.8.8:1"]).is_err());
    }
}
