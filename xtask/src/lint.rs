//! `cargo xtask lint`: the formatting and clippy checks CI runs (`.ci/run`), for local use.

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::kernel::cargo;
use crate::prereq::KERNEL_TARGET;
use crate::user::{
    PROGRAMS_PACKAGE, RUNTIME_PACKAGE, RUSTFLAGS_VAR, USER_RUSTFLAGS, USER_TARGET_DIR,
};

/// One lint command: cargo arguments, and an environment variable to set for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LintCommand {
    pub args: Vec<&'static str>,
    pub env: Option<(&'static str, &'static str)>,
}

impl LintCommand {
    /// The command as a shell line, as `.ci/run` spells it.
    pub fn shell_line(&self) -> String {
        let command = format!("cargo {}", self.args.join(" "));
        match self.env {
            Some((name, value)) => format!("{name}=\"{value}\" {command}"),
            None => command,
        }
    }
}

/// The lint commands in the order `.ci/run` runs them.
pub fn lint_commands() -> Vec<LintCommand> {
    let plain = |args: Vec<&'static str>| LintCommand { args, env: None };
    vec![
        plain(vec!["fmt", "--all", "--check"]),
        // Host crates: everything but the kernel and the no_std user crates, which only
        // build for the kernel target.
        plain(vec![
            "clippy",
            "--workspace",
            "--exclude",
            "vigil-kernel",
            "--exclude",
            RUNTIME_PACKAGE,
            "--exclude",
            PROGRAMS_PACKAGE,
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
        plain(vec![
            "clippy",
            "-p",
            "vigil-kernel",
            "--target",
            KERNEL_TARGET,
            "--",
            "-D",
            "warnings",
        ]),
        // User crates: with the user build's flags and target directory, so this neither
        // rebuilds nor invalidates the kernel's or the programs' artifacts.
        LintCommand {
            args: vec![
                "clippy",
                "-p",
                RUNTIME_PACKAGE,
                "-p",
                PROGRAMS_PACKAGE,
                "--target",
                KERNEL_TARGET,
                "--target-dir",
                USER_TARGET_DIR,
                "--",
                "-D",
                "warnings",
            ],
            env: Some((RUSTFLAGS_VAR, USER_RUSTFLAGS)),
        },
    ]
}

/// Runs every lint command (all of them, even after a failure) and reports which failed.
pub fn run() -> Result<ExitCode> {
    let mut failed = Vec::new();
    for command in lint_commands() {
        let shown = command.shell_line();
        println!("+ {shown}");
        let mut process = cargo();
        process.args(&command.args);
        if let Some((name, value)) = command.env {
            process.env(name, value);
        }
        let status = process
            .status()
            .with_context(|| format!("failed to start `{shown}`"))?;
        if !status.success() {
            failed.push(shown);
        }
    }
    if failed.is_empty() {
        println!("lint: clean");
        Ok(ExitCode::SUCCESS)
    } else {
        for shown in &failed {
            println!("lint: FAILED: {shown}");
        }
        Ok(ExitCode::FAILURE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_ci_script() {
        let ci = std::fs::read_to_string(crate::kernel::workspace_root().join(".ci/run"))
            .expect(".ci/run exists");
        let mut last = 0;
        for command in lint_commands() {
            let line = command.shell_line();
            let at = ci
                .find(&line)
                .unwrap_or_else(|| panic!(".ci/run lacks `{line}`"));
            assert!(at >= last, ".ci/run runs `{line}` out of order");
            last = at;
        }
        let test = ci
            .find("cargo xtask test")
            .expect(".ci/run runs cargo xtask test");
        assert!(test > last, "cargo xtask test must come last");
        assert_eq!(
            ci.lines().rev().find(|line| !line.trim().is_empty()),
            Some("cargo xtask test")
        );
    }

    #[test]
    fn the_user_crates_are_linted_with_the_user_build_flags() {
        let commands = lint_commands();
        let host = commands[1].shell_line();
        assert!(
            host.contains("--exclude vigil-rt --exclude vigil-programs"),
            "{host}"
        );
        assert_eq!(
            commands[3].shell_line(),
            "CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS=\"-C force-frame-pointers=yes -C \
             relocation-model=static -C code-model=small\" cargo clippy -p vigil-rt -p \
             vigil-programs --target x86_64-unknown-none --target-dir target/user -- -D warnings"
        );
    }
}
