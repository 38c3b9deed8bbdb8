//! Builds the kernel ELF with cargo and verifies that QEMU can load it (see `image`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::image;
use crate::prereq::KERNEL_TARGET;

/// The kernel's package and binary name.
pub const KERNEL_PACKAGE: &str = "vigil-kernel";

/// Cargo profile to build the kernel with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    Release,
    Debug,
}

impl Profile {
    pub fn from_debug_flag(debug: bool) -> Profile {
        if debug {
            Profile::Debug
        } else {
            Profile::Release
        }
    }

    /// The directory cargo puts this profile's artifacts in.
    fn directory(self) -> &'static str {
        match self {
            Profile::Release => "release",
            Profile::Debug => "debug",
        }
    }
}

/// The workspace root (the parent of this crate). `cargo xtask` (`cargo run`) sets
/// CARGO_MANIFEST_DIR for the run, so a copied checkout uses its own tree even when its
/// `target/` holds an xtask built in the original; the path compiled in is the fallback.
pub fn workspace_root() -> PathBuf {
    workspace_root_of(
        std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from),
        Path::new(env!("CARGO_MANIFEST_DIR")),
    )
}

/// The workspace root for xtask's manifest directory as cargo gives it for this run
/// (`run_dir`), else as compiled in: the run's wins whenever it holds a manifest.
fn workspace_root_of(run_dir: Option<PathBuf>, compiled_dir: &Path) -> PathBuf {
    let manifest_dir = run_dir
        .filter(|dir| dir.join("Cargo.toml").is_file())
        .unwrap_or_else(|| compiled_dir.to_path_buf());
    manifest_dir
        .parent()
        .map(Path::to_path_buf)
        .expect("xtask lives inside the workspace")
}

/// The cargo executable that started us (so the pinned toolchain is used), or `cargo`.
pub fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(workspace_root());
    command
}

/// Cargo's target directory for host and kernel builds (`CARGO_TARGET_DIR` or `target`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// Where cargo writes the kernel ELF for `profile`.
pub fn kernel_elf_path(profile: Profile) -> PathBuf {
    target_dir()
        .join(KERNEL_TARGET)
        .join(profile.directory())
        .join(KERNEL_PACKAGE)
}

/// Builds the kernel, verifies the image, and returns the ELF's path.
pub fn build(profile: Profile) -> Result<PathBuf> {
    let mut command = cargo();
    command.args(["build", "-p", KERNEL_PACKAGE, "--target", KERNEL_TARGET]);
    // The kernel's flags come from .cargo/config.toml; the user programs' flags (a lower-half
    // code model), if exported in this environment, would override them and break the link.
    command.env_remove(crate::user::RUSTFLAGS_VAR);
    if profile == Profile::Release {
        command.arg("--release");
    }
    println!(
        "building the kernel: cargo build -p {KERNEL_PACKAGE} --target {KERNEL_TARGET}{}",
        if profile == Profile::Release {
            " --release"
        } else {
            ""
        }
    );
    let status = command
        .status()
        .context("failed to start cargo to build the kernel")?;
    if !status.success() {
        bail!("building the kernel failed ({status})");
    }
    let elf = kernel_elf_path(profile);
    verify(&elf)?;
    Ok(elf)
}

/// Verifies the Multiboot image at `elf` and prints a one-line summary.
pub fn verify(elf: &Path) -> Result<()> {
    let bytes = std::fs::read(elf)
        .with_context(|| format!("cannot read the kernel ELF {}", elf.display()))?;
    match image::verify_kernel_image(&bytes) {
        Ok(verified) => {
            println!("image {}: {verified}", display_relative(elf));
            Ok(())
        }
        Err(errors) => {
            let list: String = errors.iter().map(|e| format!("\n  - {e}")).collect();
            bail!(
                "the kernel image {} is not loadable by QEMU's Multiboot loader \
                 (check the linker script):{list}",
                elf.display()
            )
        }
    }
}

/// `path` relative to the workspace root when it is under it (for messages).
pub fn display_relative(path: &Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_elf_lives_under_the_target_triple_and_profile() {
        if std::env::var_os("CARGO_TARGET_DIR").is_some() {
            return;
        }
        let root = workspace_root();
        assert!(root.join("Cargo.toml").exists());
        assert_eq!(
            kernel_elf_path(Profile::Release),
            root.join("target/x86_64-unknown-none/release/vigil-kernel")
        );
        assert_eq!(
            kernel_elf_path(Profile::Debug),
            root.join("target/x86_64-unknown-none/debug/vigil-kernel")
        );
    }

    #[test]
    fn a_copied_checkout_uses_its_own_tree_not_the_compiled_in_one() {
        let copy = std::env::temp_dir().join(format!("vigil-copy-{}", std::process::id()));
        let xtask_dir = copy.join("xtask");
        std::fs::create_dir_all(&xtask_dir).unwrap();
        std::fs::write(xtask_dir.join("Cargo.toml"), "[package]\n").unwrap();
        let original = Path::new("/original/checkout/xtask");
        assert_eq!(workspace_root_of(Some(xtask_dir.clone()), original), copy);
        // No run directory, or one without a manifest: the compiled-in tree.
        assert_eq!(
            workspace_root_of(None, original),
            Path::new("/original/checkout")
        );
        assert_eq!(
            workspace_root_of(Some(copy.join("nowhere")), original),
            Path::new("/original/checkout")
        );
        std::fs::remove_dir_all(&copy).unwrap();
    }

    #[test]
    fn a_missing_elf_is_a_clear_error() {
        let error = verify(Path::new("/nonexistent/vigil-kernel")).unwrap_err();
        assert!(
            format!("{error:#}").contains("cannot read the kernel ELF /nonexistent/vigil-kernel"),
            "{error:#}"
        );
    }
}
