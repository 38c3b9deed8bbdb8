//! Makes sure the tools `run` and `test` need are present: the kernel's Rust target and QEMU.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::qemu::QEMU;

/// The Rust target the kernel is built for.
pub const KERNEL_TARGET: &str = "x86_64-unknown-none";

/// The exact message printed when QEMU is missing and cannot be installed from here.
pub const QEMU_MISSING_MESSAGE: &str =
    "qemu-system-x86_64 is missing; install it with: sudo apt-get install -y qemu-system-x86";

/// The Prometheus tools the metrics scenario runs (Debian package `prometheus`).
pub const PROMTOOL: &str = "promtool";
pub const PROMETHEUS: &str = "prometheus";

/// The exact message when Prometheus is missing and cannot be installed from here.
pub const PROMETHEUS_MISSING_MESSAGE: &str =
    "promtool/prometheus are missing; install them with: sudo apt-get install -y prometheus";

/// What to do about Prometheus: like QEMU, installed with apt-get as root, else asked for.
pub fn prometheus_plan(present: bool, running_as_root: bool) -> QemuPlan {
    package_plan("prometheus", present, running_as_root)
}

/// Makes sure `promtool` and `prometheus` are on PATH (installing them as root); the error
/// says how to install them otherwise. Only the metrics scenario needs them.
pub fn ensure_prometheus() -> Result<()> {
    ensure_package(
        prometheus_plan,
        &[PROMTOOL, PROMETHEUS],
        PROMETHEUS_MISSING_MESSAGE,
    )
}

/// The exact message when gdb is missing and cannot be installed from here.
pub const GDB_MISSING_MESSAGE: &str =
    "gdb is missing; install it with: sudo apt-get install -y gdb";

/// Makes sure `gdb` is on PATH (installing the Debian package as root), for the
/// `timetravel-gdb` scenario; the error says how to install it otherwise.
pub fn ensure_gdb() -> Result<()> {
    ensure_package(gdb_plan, &["gdb"], GDB_MISSING_MESSAGE)
}

/// What to do about gdb: like QEMU, installed with apt-get as root, else asked for.
pub fn gdb_plan(present: bool, running_as_root: bool) -> QemuPlan {
    package_plan("gdb", present, running_as_root)
}

/// What to do about a tool from a Debian package: nothing if it is there, install the
/// package with apt-get as root, else ask the user to.
fn package_plan(package: &'static str, present: bool, running_as_root: bool) -> QemuPlan {
    match (present, running_as_root) {
        (true, _) => QemuPlan::Present,
        (false, true) => QemuPlan::Install(vec![
            vec!["apt-get", "update"],
            vec!["apt-get", "install", "-y", package],
        ]),
        (false, false) => QemuPlan::AskUser,
    }
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Makes sure every one of `tools` is on PATH, as `plan` says (installing its package as
/// root); otherwise fails with `missing_message` (how to install it).
fn ensure_package(
    plan: fn(bool, bool) -> QemuPlan,
    tools: &[&str],
    missing_message: &str,
) -> Result<()> {
    let present = tools.iter().all(|tool| find_on_path(tool).is_some());
    match plan(present, running_as_root()) {
        QemuPlan::Present => Ok(()),
        QemuPlan::AskUser => bail!("{missing_message}"),
        QemuPlan::Install(commands) => install_package(tools, commands),
    }
}

/// Runs the install `commands` (the last word of the last one names the package), then
/// checks `tools` are on PATH.
fn install_package(tools: &[&str], commands: Vec<Vec<&'static str>>) -> Result<()> {
    let package = commands
        .last()
        .and_then(|command| command.last())
        .copied()
        .unwrap_or("its package");
    println!("{} missing; installing {package}", tools.join("/"));
    for words in commands {
        let mut command = Command::new(words[0]);
        command
            .args(&words[1..])
            .env("DEBIAN_FRONTEND", "noninteractive");
        run_printed(&mut command)?;
    }
    if let Some(tool) = tools.iter().find(|tool| find_on_path(tool).is_none()) {
        bail!("installed {package} but {tool} is still not on PATH");
    }
    Ok(())
}

/// Installs what is missing, or exits with status 1 saying how to install QEMU.
pub fn ensure() -> Result<()> {
    ensure_kernel_target()?;
    ensure_qemu()
}

/// True if `rustup target list --installed` output names `target`.
pub fn target_listed(installed: &str, target: &str) -> bool {
    installed.lines().any(|line| line.trim() == target)
}

fn ensure_kernel_target() -> Result<()> {
    let listing = match Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    {
        Ok(output) if output.status.success() => output,
        Ok(output) => bail!(
            "`rustup target list --installed` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(error) => {
            eprintln!(
                "warning: cannot run rustup ({error}); assuming target {KERNEL_TARGET} is installed"
            );
            return Ok(());
        }
    };
    if target_listed(&String::from_utf8_lossy(&listing.stdout), KERNEL_TARGET) {
        return Ok(());
    }
    run_printed(Command::new("rustup").args(["target", "add", KERNEL_TARGET]))
}

/// What to do about QEMU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QemuPlan {
    Present,
    /// Install with these commands (program, arguments).
    Install(Vec<Vec<&'static str>>),
    /// Tell the user how to install it and stop.
    AskUser,
}

/// Decides how to get QEMU: as root, install it with apt-get; otherwise ask.
pub fn qemu_plan(qemu_on_path: bool, running_as_root: bool) -> QemuPlan {
    package_plan("qemu-system-x86", qemu_on_path, running_as_root)
}

fn ensure_qemu() -> Result<()> {
    match qemu_plan(find_on_path(QEMU).is_some(), running_as_root()) {
        QemuPlan::Present => Ok(()),
        QemuPlan::AskUser => {
            eprintln!("{QEMU_MISSING_MESSAGE}");
            std::process::exit(1);
        }
        QemuPlan::Install(commands) => install_package(&[QEMU], commands),
    }
}

/// Prints a command, runs it with inherited stdio, and fails if it fails.
fn run_printed(command: &mut Command) -> Result<()> {
    let shown = std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|word| word.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ");
    println!("+ {shown}");
    let status = command
        .status()
        .with_context(|| format!("failed to start `{shown}`"))?;
    if !status.success() {
        bail!("`{shown}` failed ({status})");
    }
    Ok(())
}

/// The first executable file called `program` in a PATH directory.
pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_installed_target_list() {
        let listing = "x86_64-unknown-linux-gnu\nx86_64-unknown-none\n";
        assert!(target_listed(listing, KERNEL_TARGET));
        assert!(!target_listed("x86_64-unknown-linux-gnu\n", KERNEL_TARGET));
        assert!(!target_listed(
            "x86_64-unknown-none-softfloat\n",
            KERNEL_TARGET
        ));
    }

    #[test]
    fn installs_prometheus_only_as_root() {
        assert_eq!(prometheus_plan(true, false), QemuPlan::Present);
        assert_eq!(prometheus_plan(false, false), QemuPlan::AskUser);
        let QemuPlan::Install(commands) = prometheus_plan(false, true) else {
            panic!("root installs");
        };
        assert_eq!(commands[1], ["apt-get", "install", "-y", "prometheus"]);
        assert!(PROMETHEUS_MISSING_MESSAGE.contains("apt-get install -y prometheus"));
    }

    #[test]
    fn installs_gdb_only_as_root() {
        assert_eq!(gdb_plan(true, false), QemuPlan::Present);
        assert_eq!(gdb_plan(false, false), QemuPlan::AskUser);
        let QemuPlan::Install(commands) = gdb_plan(false, true) else {
            panic!("root installs");
        };
        assert_eq!(commands[1], ["apt-get", "install", "-y", "gdb"]);
        assert!(GDB_MISSING_MESSAGE.contains("apt-get install -y gdb"));
    }

    #[test]
    fn installs_qemu_only_as_root() {
        assert_eq!(qemu_plan(true, false), QemuPlan::Present);
        assert_eq!(qemu_plan(true, true), QemuPlan::Present);
        assert_eq!(qemu_plan(false, false), QemuPlan::AskUser);
        assert_eq!(
            qemu_plan(false, true),
            QemuPlan::Install(vec![
                vec!["apt-get", "update"],
                vec!["apt-get", "install", "-y", "qemu-system-x86"],
            ])
        );
    }

    #[test]
    fn finds_programs_on_path() {
        assert!(find_on_path("sh").is_some());
        assert!(find_on_path("surely-no-such-program-here").is_none());
    }
}
