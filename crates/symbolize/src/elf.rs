//! Address lookup in one ELF file: its DWARF (inlined frames and line tables) through
//! addr2line, with the symbol table as a fallback.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::lookup::{AddressLookup, SourceFrame};

/// An ELF whose debug information could not be read.
#[derive(Debug)]
pub struct LoadError {
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot read debug information of {}: {}",
            self.path.display(),
            self.reason
        )
    }
}

impl std::error::Error for LoadError {}

/// Makes `path` relative to `root` when it lies under it.
fn relative_to(path: &str, root: &Path) -> String {
    match Path::new(path).strip_prefix(root) {
        Ok(relative) => relative.display().to_string(),
        Err(_) => path.to_string(),
    }
}

/// Address lookup in an ELF file's DWARF (and its symbol table as a fallback).
pub struct ElfLookup {
    loader: addr2line::Loader,
    workspace_root: PathBuf,
}

impl ElfLookup {
    /// Loads the debug information of `elf`; paths under `workspace_root` are shown relative.
    pub fn load(elf: &Path, workspace_root: &Path) -> Result<ElfLookup, LoadError> {
        let loader = addr2line::Loader::new(elf).map_err(|error| LoadError {
            path: elf.to_path_buf(),
            reason: error.to_string(),
        })?;
        Ok(ElfLookup {
            loader,
            workspace_root: workspace_root.to_path_buf(),
        })
    }

    fn symbol_table_frame(&self, address: u64) -> Option<SourceFrame> {
        let symbol = self.loader.find_symbol(address)?;
        let location = self.loader.find_location(address).ok().flatten();
        Some(SourceFrame {
            function: Some(format!("{:#}", rustc_demangle::demangle(symbol))),
            file: location
                .as_ref()
                .and_then(|l| l.file)
                .map(|file| relative_to(file, &self.workspace_root)),
            line: location.and_then(|l| l.line),
        })
    }
}

impl AddressLookup for ElfLookup {
    fn frames(&self, address: u64) -> Vec<SourceFrame> {
        let mut frames = Vec::new();
        if let Ok(mut iter) = self.loader.find_frames(address) {
            while let Ok(Some(frame)) = iter.next() {
                let function = frame
                    .function
                    .as_ref()
                    .and_then(|name| name.demangle().ok())
                    .map(|name| name.into_owned());
                let location = frame.location.as_ref();
                frames.push(SourceFrame {
                    function,
                    file: location
                        .and_then(|l| l.file)
                        .map(|file| relative_to(file, &self.workspace_root)),
                    line: location.and_then(|l| l.line),
                });
            }
        }
        if frames.iter().all(|frame| frame.function.is_none()) {
            if let Some(frame) = self.symbol_table_frame(address) {
                return vec![frame];
            }
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lookup::rewrite_line_with;
    use crate::symbolizer::NoPrograms;
    use crate::test_support::{marker_address, this_binary, workspace_root};

    #[test]
    fn shortens_paths_under_the_workspace() {
        let root = Path::new("/work/main");
        assert_eq!(
            relative_to("/work/main/kernel/src/selftest.rs", root),
            "kernel/src/selftest.rs"
        );
        assert_eq!(
            relative_to("/rustc/abc/library/core/src/ptr.rs", root),
            "/rustc/abc/library/core/src/ptr.rs"
        );
        assert_eq!(
            relative_to("/work/mainline/x.rs", root),
            "/work/mainline/x.rs"
        );
    }

    #[test]
    fn a_missing_elf_is_an_error_naming_it() {
        let error = ElfLookup::load(Path::new("/nonexistent/vigil-kernel"), Path::new("/"))
            .err()
            .expect("no such file");
        assert_eq!(error.path, Path::new("/nonexistent/vigil-kernel"));
        assert!(
            error
                .to_string()
                .starts_with("cannot read debug information of /nonexistent/vigil-kernel: "),
            "{error}"
        );
    }

    #[test]
    fn resolves_a_real_function_in_this_test_binary() {
        let address = marker_address();
        let lookup = ElfLookup::load(&this_binary(), workspace_root()).unwrap();

        let frames = lookup.frames(address);
        let innermost = frames.first().expect("a frame");
        assert_eq!(
            innermost.function.as_deref(),
            Some("vigil_symbolize::test_support::marker_function_for_lookup")
        );
        assert_eq!(
            innermost.file.as_deref(),
            Some("crates/symbolize/src/lib.rs")
        );
        assert!(innermost.line.is_some_and(|line| line > 0), "{innermost:?}");

        let line = format!("  #0 pc  {address:#018x}");
        let rewritten = rewrite_line_with(&line, Some(&lookup), &NoPrograms);
        assert!(
            rewritten.contains(
                " vigil_symbolize::test_support::marker_function_for_lookup at \
                 crates/symbolize/src/lib.rs:"
            ),
            "{rewritten}"
        );
        // A return address just past the function start resolves into the same function.
        let line = format!("  #1 ret {:#018x}", address + 1);
        assert!(rewrite_line_with(&line, Some(&lookup), &NoPrograms)
            .contains("marker_function_for_lookup"));
    }
}
