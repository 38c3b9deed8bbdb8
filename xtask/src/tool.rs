//! The host tool (`vigil`, in tools/vigil): built for `cargo xtask run --top` and for the
//! monitor scenarios of `cargo xtask test`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::kernel::{self, cargo};

/// The host tool's package and binary name.
pub const TOOL_PACKAGE: &str = "vigil";

/// Builds the host tool (`cargo build -p vigil`) and returns the binary's path.
pub fn build_tool() -> Result<PathBuf> {
    println!("building the host tool: cargo build -p {TOOL_PACKAGE}");
    let status = cargo()
        .args(["build", "-p", TOOL_PACKAGE])
        .status()
        .context("failed to run cargo build for the host tool")?;
    if !status.success() {
        bail!("cargo build -p {TOOL_PACKAGE} failed ({status})");
    }
    let binary = tool_path();
    if !binary.is_file() {
        bail!(
            "the host tool was built but {} is missing",
            binary.display()
        );
    }
    Ok(binary)
}

/// Where `cargo build -p vigil` puts the binary.
pub fn tool_path() -> PathBuf {
    kernel::target_dir().join("debug").join(TOOL_PACKAGE)
}
