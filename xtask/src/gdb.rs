//! The gdb script `cargo xtask run --gdb` writes: the kernel's symbols, Rust's source paths,
//! the remote target, and one command per user program that loads its symbols.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where rustc's own sources are: the `/rustc/<commit>` prefix its debug info names, and
/// the `rust-src` component's copy of them (which may not be installed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToolchainSources {
    pub commit: String,
    pub sources: PathBuf,
}

impl ToolchainSources {
    /// From `rustc -vV` and `rustc --print sysroot`; `None` if rustc does not say.
    pub fn detect() -> Option<ToolchainSources> {
        let version = Command::new("rustc").arg("-vV").output().ok()?;
        let version = String::from_utf8(version.stdout).ok()?;
        let commit = version
            .lines()
            .find_map(|line| line.strip_prefix("commit-hash: "))?
            .trim()
            .to_string();
        let sysroot = Command::new("rustc")
            .args(["--print", "sysroot"])
            .output()
            .ok()?;
        let sysroot = String::from_utf8(sysroot.stdout).ok()?;
        Some(ToolchainSources {
            commit,
            sources: Path::new(sysroot.trim()).join("lib/rustlib/src/rust"),
        })
    }
}

/// A gdb command name for program `name`: `vigil-user-` and the name with anything but
/// letters, digits, `_` and `-` replaced by `_`.
pub fn user_command(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("vigil-user-{clean}")
}

/// The script. `programs` are (process name, ELF) in boot order.
pub fn script(
    kernel: &Path,
    programs: &[(String, PathBuf)],
    port: u16,
    toolchain: Option<&ToolchainSources>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Written by `cargo xtask run --gdb`: gdb -x THIS-FILE");
    let _ = writeln!(s, "set pagination off");
    let _ = writeln!(s, "set confirm off");
    let _ = writeln!(s, "file {}", kernel.display());
    match toolchain {
        Some(toolchain) => {
            let _ = writeln!(
                s,
                "# The standard library's sources (from the rust-src component{}).",
                if toolchain.sources.is_dir() {
                    ""
                } else {
                    ", not installed: rustup component add rust-src"
                }
            );
            let _ = writeln!(
                s,
                "set substitute-path /rustc/{} {}",
                toolchain.commit,
                toolchain.sources.display()
            );
        }
        None => {
            let _ = writeln!(s, "# rustc did not say its commit: no source path mapping");
        }
    }
    let _ = writeln!(s, "target remote 127.0.0.1:{port}");
    let _ = writeln!(
        s,
        "# User programs run at the addresses they are linked at, each in its own address\n\
         # space, so their symbols overlap: load the one you are looking at, e.g. when a\n\
         # breakpoint stops in user mode (remove-symbol-file PATH drops it again)."
    );
    for (name, elf) in programs {
        let command = user_command(name);
        let _ = writeln!(s, "define {command}");
        let _ = writeln!(s, "  add-symbol-file {} -o 0", elf.display());
        let _ = writeln!(s, "end");
        let _ = writeln!(s, "document {command}");
        let _ = writeln!(
            s,
            "Load the symbols of user process '{name}' ({}).",
            elf.display()
        );
        let _ = writeln!(s, "end");
    }
    let _ = writeln!(
        s,
        "echo Vigil: kernel symbols loaded; QEMU is paused at reset: 'continue' to boot.\\n"
    );
    if !programs.is_empty() {
        let names: Vec<String> = programs.iter().map(|(n, _)| user_command(n)).collect();
        let _ = writeln!(s, "echo User symbols: {}\\n", names.join(", "));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_loads_the_kernel_maps_sources_and_defines_user_commands() {
        let toolchain = ToolchainSources {
            commit: "abc123".into(),
            sources: PathBuf::from("/nowhere/rust"),
        };
        let text = script(
            Path::new("/k/vigil-kernel"),
            &[
                ("vm".into(), PathBuf::from("/u/vm")),
                ("my prog".into(), PathBuf::from("/u/hello")),
            ],
            4321,
            Some(&toolchain),
        );
        assert!(text.contains("\nfile /k/vigil-kernel\n"), "{text}");
        assert!(text.contains("set substitute-path /rustc/abc123 /nowhere/rust\n"));
        assert!(text.contains("rustup component add rust-src"));
        assert!(text.contains("target remote 127.0.0.1:4321\n"));
        assert!(text.contains("define vigil-user-vm\n  add-symbol-file /u/vm -o 0\nend\n"));
        assert!(text.contains("define vigil-user-my_prog\n"));
        assert!(text.contains("echo User symbols: vigil-user-vm, vigil-user-my_prog\\n"));
        // `file` comes before `target remote`, so gdb knows the architecture when it connects.
        assert!(text.find("\nfile ").unwrap() < text.find("target remote").unwrap());
    }

    #[test]
    fn the_toolchain_is_detected() {
        let toolchain = ToolchainSources::detect().expect("rustc -vV names its commit");
        assert_eq!(toolchain.commit.len(), 40, "{toolchain:?}");
    }
}
