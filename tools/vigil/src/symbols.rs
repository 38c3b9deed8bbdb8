//! Symbolised crash backtraces (`--kernel-elf`, `--programs`): the raw addresses of a crash
//! report looked up in the kernel ELF or the crashed process's program ELF.
//!
//! Frame 0 of a fault (kernel or user) is the faulting instruction; every other address,
//! and every address of a kernel panic, is a return address (looked up one byte earlier, in
//! the call). A user fault's frames are looked up in `DIR/<process name>`; an upper-half
//! address in them is the kernel's. Source paths under the current directory are shown
//! relative to it.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use vigil_symbolize::{
    describe_frames, format_frame_line, ElfLookup, FrameKind, FrameRef, NoPrograms, ProgramDir,
    SourceFrame, Symbolizer,
};
use vigil_wire::{CrashKind, CrashReport};

/// One backtrace frame of a crash report, with what was found at its address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashFrame {
    pub index: usize,
    pub frame: FrameRef,
    /// The process of a user fault's frame.
    pub process: Option<String>,
    /// Innermost (inlined) first; empty when the address is unknown; `None` when there was
    /// no ELF to look it up in.
    pub symbols: Option<Vec<SourceFrame>>,
}

impl CrashFrame {
    /// The frame as the kernel's console prints it, with the symbols appended as the xtask
    /// does: `  #0 pc  0x0000000000401234 (hello) hello::main at user/…/hello.rs:7`.
    pub fn text(&self) -> String {
        let mut text = format_frame_line(self.index, self.frame, self.process.as_deref());
        if let Some(symbols) = &self.symbols {
            text.push_str(&describe_frames(symbols));
        }
        text
    }

    /// `{"index", "kind": "pc"|"ret", "address": "0x…", "symbols": [{"function", "file",
    /// "line"}, …] or null}`.
    pub fn to_json(&self) -> Value {
        json!({
            "index": self.index,
            "kind": self.frame.kind.name(),
            "address": format!("{:#x}", self.frame.address),
            "symbols": self.symbols.as_ref().map(|symbols| {
                symbols
                    .iter()
                    .map(|s| json!({ "function": s.function, "file": s.file, "line": s.line }))
                    .collect::<Vec<_>>()
            }),
        })
    }
}

/// The frames of a crash report: the kind of each address and the process it belongs to.
pub fn crash_frames(crash: &CrashReport) -> Vec<(FrameRef, Option<&str>)> {
    let first_is_pc = matches!(
        crash.kind,
        CrashKind::KernelFault | CrashKind::UserFault | CrashKind::KernelLockup
    );
    // A panic's first address is where its `Panic` call returns to, like every other frame.
    // A lockup names the process that was current, but its frames are the kernel's.
    let process = match crash.kind {
        CrashKind::UserFault | CrashKind::UserPanic => {
            crash.process.as_ref().map(|(name, _)| name.as_str())
        }
        CrashKind::KernelPanic | CrashKind::KernelFault | CrashKind::KernelLockup => None,
    };
    crash
        .backtrace
        .iter()
        .enumerate()
        .map(|(index, &address)| {
            let kind = if index == 0 && first_is_pc {
                FrameKind::Pc
            } else {
                FrameKind::Ret
            };
            (FrameRef { kind, address }, process)
        })
        .collect()
}

fn warn(message: &str) {
    eprintln!("vigil: warning: {message}");
}

/// The ELFs crash backtraces are looked up in.
pub struct CrashSymbols {
    symbolizer: Symbolizer,
    programs: Option<ProgramDir>,
}

impl CrashSymbols {
    /// Loads the kernel ELF and checks the program directory; `None` when neither is given
    /// (backtraces stay raw). Source paths under `source_root` are shown relative to it.
    pub fn load(
        kernel_elf: Option<&Path>,
        programs: Option<&Path>,
        source_root: &Path,
    ) -> Result<Option<CrashSymbols>> {
        if kernel_elf.is_none() && programs.is_none() {
            return Ok(None);
        }
        let kernel = kernel_elf
            .map(|elf| ElfLookup::load(elf, source_root))
            .transpose()
            .context("--kernel-elf")?;
        if let Some(dir) = programs {
            if !dir.is_dir() {
                bail!("--programs {}: not a directory", dir.display());
            }
        }
        Ok(Some(CrashSymbols {
            symbolizer: Symbolizer::new(kernel, source_root).with_warnings(warn),
            programs: programs.map(ProgramDir::new),
        }))
    }

    /// Like [`CrashSymbols::load`], with paths shown relative to the current directory.
    pub fn from_options(
        kernel_elf: Option<&Path>,
        programs: Option<&Path>,
    ) -> Result<Option<CrashSymbols>> {
        let root = std::env::current_dir().unwrap_or_default();
        Self::load(kernel_elf, programs, &root)
    }

    /// Every frame of `crash`, looked up.
    pub fn frames(&self, crash: &CrashReport) -> Vec<CrashFrame> {
        crash_frames(crash)
            .into_iter()
            .enumerate()
            .map(|(index, (frame, process))| {
                let symbols = match &self.programs {
                    Some(programs) => self.symbolizer.frames(frame, process, programs),
                    None => self.symbolizer.frames(frame, process, &NoPrograms),
                };
                CrashFrame {
                    index,
                    frame,
                    process: process.map(str::to_string),
                    symbols,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crash(kind: CrashKind, process: Option<&str>, backtrace: Vec<u64>) -> CrashReport {
        CrashReport {
            kind,
            timestamp_ns: 1,
            process: process.map(|name| (name.to_string(), 9)),
            message: "boom".into(),
            backtrace,
        }
    }

    #[test]
    fn frame_zero_is_the_pc_of_faults_only() {
        fn kinds(crash: &CrashReport) -> Vec<(FrameKind, Option<&str>)> {
            crash_frames(crash)
                .iter()
                .map(|(frame, process)| (frame.kind, *process))
                .collect()
        }
        let user = crash(CrashKind::UserFault, Some("hello"), vec![1, 2]);
        assert_eq!(
            kinds(&user),
            vec![
                (FrameKind::Pc, Some("hello")),
                (FrameKind::Ret, Some("hello"))
            ]
        );
        let fault = crash(CrashKind::KernelFault, None, vec![1, 2]);
        assert_eq!(
            kinds(&fault),
            vec![(FrameKind::Pc, None), (FrameKind::Ret, None)]
        );
        let lockup = crash(CrashKind::KernelLockup, Some("spinner"), vec![1, 2]);
        assert_eq!(
            kinds(&lockup),
            vec![(FrameKind::Pc, None), (FrameKind::Ret, None)],
            "a lockup's frames are kernel frames, whatever process was current"
        );
        let panic = crash(CrashKind::KernelPanic, None, vec![1, 2]);
        assert_eq!(
            kinds(&panic),
            vec![(FrameKind::Ret, None), (FrameKind::Ret, None)]
        );
        let user_panic = crash(CrashKind::UserPanic, Some("crash_panic"), vec![1, 2]);
        assert_eq!(
            kinds(&user_panic),
            vec![
                (FrameKind::Ret, Some("crash_panic")),
                (FrameKind::Ret, Some("crash_panic"))
            ],
            "a user panic's frames are the program's, each a return address"
        );
        assert!(crash_frames(&crash(CrashKind::KernelPanic, None, vec![])).is_empty());
    }

    #[test]
    fn frames_without_an_elf_stay_raw() {
        let symbols = CrashSymbols {
            symbolizer: Symbolizer::new(None, Path::new("/")),
            programs: None,
        };
        let frames = symbols.frames(&crash(CrashKind::UserFault, Some("hello"), vec![0x401000]));
        assert_eq!(frames[0].symbols, None);
        assert_eq!(frames[0].text(), "  #0 pc  0x0000000000401000 (hello)");
        assert_eq!(
            frames[0].to_json(),
            json!({ "index": 0, "kind": "pc", "address": "0x401000", "symbols": null })
        );
        let described = CrashFrame {
            symbols: Some(vec![SourceFrame {
                function: Some("hello::main".into()),
                file: Some("hello.rs".into()),
                line: Some(7),
            }]),
            ..frames[0].clone()
        };
        assert_eq!(
            described.text(),
            "  #0 pc  0x0000000000401000 (hello) hello::main at hello.rs:7"
        );
        assert_eq!(
            described.to_json()["symbols"],
            json!([{ "function": "hello::main", "file": "hello.rs", "line": 7 }])
        );
    }

    #[test]
    fn bad_options_are_errors_and_no_options_mean_raw() {
        assert!(CrashSymbols::load(None, None, Path::new("/"))
            .unwrap()
            .is_none());
        let error =
            CrashSymbols::load(Some(Path::new("/nonexistent/kernel")), None, Path::new("/"))
                .err()
                .unwrap();
        assert!(
            format!("{error:#}").contains("/nonexistent/kernel"),
            "{error:#}"
        );
        let error = CrashSymbols::load(None, Some(Path::new("/nonexistent/dir")), Path::new("/"))
            .err()
            .unwrap();
        assert!(
            format!("{error:#}").contains("not a directory"),
            "{error:#}"
        );
    }
}
