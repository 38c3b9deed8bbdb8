//! `cargo xtask lint`: the formatting and clippy checks CI runs (`.ci/run`), for local use.

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::kernel::cargo;
use crate::prereq::KERNEL_TARGET;

/// The lint commands, as cargo arguments, in the order `.ci/run` runs them.
pub fn lint_commands() -> Vec<Vec<&'static str>> {
    vec![
        vec!["fmt", "--all", "--check"],
        vec![
            "clippy",
            "--workspace",
            "--exclude",
            "vigil-kernel",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        vec![
            "clippy",
            "-p",
            "vigil-kernel",
            "--target",
            KERNEL_TARGET,
            "--",
            "-D",
            "warnings",
        ],
    ]
}

/// Runs every lint command (all of them, even after a failure) and reports which failed.
pub fn run() -> Result<ExitCode> {
    let mut failed = Vec::new();
    for args in lint_commands() {
        let shown = format!("cargo {}", args.join(" "));
        println!("+ {shown}");
        let status = cargo()
            .args(&args)
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
        for args in lint_commands() {
            let command = format!("cargo {}", args.join(" "));
            assert!(ci.contains(&command), ".ci/run lacks `{command}`");
        }
        assert!(ci.contains("cargo xtask test"));
    }
}
