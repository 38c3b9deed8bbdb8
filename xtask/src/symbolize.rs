//! Rewrites backtrace frame lines of the kernel console with function names and source lines.
//!
//! The kernel prints frames as `  #0 pc  0xffffffff80104abc` (the faulting instruction) or
//! `  #1 ret 0xffffffff80102def` (a return address). Each such line gets
//! ` <function> at <file>:<line>` appended, looked up in the kernel ELF's DWARF; inlined
//! frames follow as ` (inlined into <outer> at <file>:<line>)`. Unknown addresses get ` ??`.

use std::path::{Path, PathBuf};

/// Whether a frame's address is the faulting instruction or a return address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// The exact address of the instruction that faulted.
    Pc,
    /// A return address: the call instruction is just before it.
    Ret,
}

/// A backtrace frame found in a console line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRef {
    pub kind: FrameKind,
    pub address: u64,
}

impl FrameRef {
    /// The address to look up: a return address minus one lands inside the call instruction,
    /// so the line reported is the call's, even when the call is the last instruction of a
    /// function or of an inlined block.
    pub fn lookup_address(&self) -> u64 {
        match self.kind {
            FrameKind::Pc => self.address,
            FrameKind::Ret => self.address.wrapping_sub(1),
        }
    }
}

/// One function in the (possibly inlined) chain at an address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceFrame {
    /// Demangled path without the hash, e.g. `vigil_kernel::selftest::page_fault`.
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
}

/// Resolves an address to its frames, innermost (inlined) first. Empty when unknown.
pub trait AddressLookup {
    fn frames(&self, address: u64) -> Vec<SourceFrame>;
}

/// Finds `#N pc 0x…` or `#N ret 0x…` (any whitespace between, 1 to 16 hex digits).
pub fn parse_frame(line: &str) -> Option<FrameRef> {
    let bytes = line.as_bytes();
    let mut search_from = 0;
    while let Some(found) = line[search_from..].find('#') {
        let hash = search_from + found;
        search_from = hash + 1;
        if let Some(frame) = parse_frame_at(&bytes[hash + 1..]) {
            return Some(frame);
        }
    }
    None
}

/// Parses `N <ws> (pc|ret) <ws> 0xHEX` at the start of `rest` (the text after a `#`).
fn parse_frame_at(rest: &[u8]) -> Option<FrameRef> {
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let rest = skip_whitespace(&rest[digits..])?;
    let (kind, rest) = if let Some(rest) = rest.strip_prefix(b"pc") {
        (FrameKind::Pc, rest)
    } else if let Some(rest) = rest.strip_prefix(b"ret") {
        (FrameKind::Ret, rest)
    } else {
        return None;
    };
    let rest = skip_whitespace(rest)?;
    let rest = rest.strip_prefix(b"0x")?;
    let hex_len = rest.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if hex_len == 0 || hex_len > 16 {
        return None;
    }
    if rest.get(hex_len).is_some_and(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let hex = std::str::from_utf8(&rest[..hex_len]).ok()?;
    let address = u64::from_str_radix(hex, 16).ok()?;
    Some(FrameRef { kind, address })
}

/// Skips at least one whitespace byte; `None` if there is none.
fn skip_whitespace(bytes: &[u8]) -> Option<&[u8]> {
    let count = bytes.iter().take_while(|b| b.is_ascii_whitespace()).count();
    (count > 0).then_some(&bytes[count..])
}

fn describe_frame(frame: &SourceFrame) -> String {
    let function = frame.function.as_deref().unwrap_or("??");
    match (&frame.file, frame.line) {
        (Some(file), Some(line)) => format!("{function} at {file}:{line}"),
        (Some(file), None) => format!("{function} at {file}"),
        (None, _) => function.to_string(),
    }
}

/// The text appended to a frame line: ` f at file:line (inlined into g at file:line)` or ` ??`.
pub fn describe_frames(frames: &[SourceFrame]) -> String {
    let Some((innermost, outer)) = frames.split_first() else {
        return " ??".to_string();
    };
    let mut text = format!(" {}", describe_frame(innermost));
    for frame in outer {
        text.push_str(&format!(" (inlined into {})", describe_frame(frame)));
    }
    text
}

/// Returns the line with symbol information appended if it is a frame line, else unchanged.
pub fn rewrite_line(line: &str, lookup: &dyn AddressLookup) -> String {
    match parse_frame(line) {
        Some(frame) => {
            let frames = lookup.frames(frame.lookup_address());
            format!("{}{}", line.trim_end(), describe_frames(&frames))
        }
        None => line.to_string(),
    }
}

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
    pub fn load(elf: &Path, workspace_root: &Path) -> anyhow::Result<ElfLookup> {
        let loader = addr2line::Loader::new(elf).map_err(|error| {
            anyhow::anyhow!(
                "cannot read debug information of {}: {error}",
                elf.display()
            )
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

/// The console symboliser used by `run` and `test`: loads the ELF once, never fails.
pub struct Symbolizer {
    lookup: Option<ElfLookup>,
}

impl Symbolizer {
    /// Loads `elf`; on failure prints one warning and leaves lines unchanged from then on.
    pub fn load(elf: &Path, workspace_root: &Path) -> Symbolizer {
        match ElfLookup::load(elf, workspace_root) {
            Ok(lookup) => Symbolizer {
                lookup: Some(lookup),
            },
            Err(error) => {
                eprintln!("warning: backtraces will not be symbolised: {error:#}");
                Symbolizer { lookup: None }
            }
        }
    }

    /// Symbolises a frame line; any other line comes back unchanged.
    pub fn rewrite(&self, line: &str) -> String {
        match &self.lookup {
            Some(lookup) => rewrite_line(line, lookup),
            None => line.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    #[derive(Default)]
    struct FakeLookup {
        known: HashMap<u64, Vec<SourceFrame>>,
        asked: RefCell<Vec<u64>>,
    }

    impl AddressLookup for FakeLookup {
        fn frames(&self, address: u64) -> Vec<SourceFrame> {
            self.asked.borrow_mut().push(address);
            self.known.get(&address).cloned().unwrap_or_default()
        }
    }

    fn frame(function: &str, file: &str, line: u32) -> SourceFrame {
        SourceFrame {
            function: Some(function.to_string()),
            file: Some(file.to_string()),
            line: Some(line),
        }
    }

    #[test]
    fn parses_pc_and_ret_frames() {
        assert_eq!(
            parse_frame("  #0 pc  0xffffffff80104abc"),
            Some(FrameRef {
                kind: FrameKind::Pc,
                address: 0xffff_ffff_8010_4abc
            })
        );
        assert_eq!(
            parse_frame("  #12 ret 0xFFFFFFFF80102DEF"),
            Some(FrameRef {
                kind: FrameKind::Ret,
                address: 0xffff_ffff_8010_2def
            })
        );
        assert_eq!(
            parse_frame("[    1.000000] ERROR   #3\tret\t0x0000000000001000 trailing"),
            Some(FrameRef {
                kind: FrameKind::Ret,
                address: 0x1000
            })
        );
    }

    #[test]
    fn ignores_lines_that_are_not_frames() {
        for line in [
            "",
            "backtrace:",
            "[    0.012345] INFO  boot: hello",
            "  #0 pc",
            "  # pc 0xffffffff80104abc",
            "  #0pc 0xffffffff80104abc",
            "  #0 pc0xffffffff80104abc",
            "  #0 pcx 0xffffffff80104abc",
            "  #0 pc  ffffffff80104abc",
            "  #0 pc  0x",
            "  #0 pc  0x1ffffffff80104abc",
            "  #0 pc  0xffffffff80104abcz",
            "issue #5 ret 0xnothex",
            "rip=0xffffffff80104abc",
        ] {
            assert_eq!(parse_frame(line), None, "{line:?}");
        }
    }

    #[test]
    fn finds_a_frame_after_an_unrelated_hash() {
        assert_eq!(
            parse_frame("#x #1 ret 0x10"),
            Some(FrameRef {
                kind: FrameKind::Ret,
                address: 0x10
            })
        );
    }

    #[test]
    fn looks_up_pc_exactly_and_ret_minus_one() {
        let lookup = FakeLookup::default();
        rewrite_line("  #0 pc  0xffffffff80104abc", &lookup);
        rewrite_line("  #1 ret 0xffffffff80102def", &lookup);
        assert_eq!(
            *lookup.asked.borrow(),
            vec![0xffff_ffff_8010_4abc, 0xffff_ffff_8010_2dee]
        );
    }

    #[test]
    fn appends_function_and_location() {
        let mut lookup = FakeLookup::default();
        lookup.known.insert(
            0xffff_ffff_8010_4abc,
            vec![frame(
                "vigil_kernel::selftest::page_fault",
                "kernel/src/selftest.rs",
                42,
            )],
        );
        assert_eq!(
            rewrite_line("  #0 pc  0xffffffff80104abc", &lookup),
            "  #0 pc  0xffffffff80104abc vigil_kernel::selftest::page_fault at \
             kernel/src/selftest.rs:42"
        );
    }

    #[test]
    fn chains_inlined_frames_innermost_first() {
        let mut lookup = FakeLookup::default();
        lookup.known.insert(
            0x1fff,
            vec![
                frame("core::ptr::write_volatile", "/rustc/abc/ptr/mod.rs", 7),
                frame("vigil_kernel::selftest::run", "kernel/src/selftest.rs", 10),
            ],
        );
        assert_eq!(
            rewrite_line("  #1 ret 0x2000", &lookup),
            "  #1 ret 0x2000 core::ptr::write_volatile at /rustc/abc/ptr/mod.rs:7 \
             (inlined into vigil_kernel::selftest::run at kernel/src/selftest.rs:10)"
        );
    }

    #[test]
    fn marks_unknown_addresses_and_partial_information() {
        let mut lookup = FakeLookup::default();
        assert_eq!(rewrite_line("  #2 ret 0x10", &lookup), "  #2 ret 0x10 ??");
        lookup.known.insert(
            0x20,
            vec![SourceFrame {
                function: Some("kmain".to_string()),
                ..SourceFrame::default()
            }],
        );
        assert_eq!(rewrite_line("  #0 pc 0x20", &lookup), "  #0 pc 0x20 kmain");
        lookup.known.insert(
            0x30,
            vec![SourceFrame {
                file: Some("kernel/src/main.rs".to_string()),
                line: Some(3),
                ..SourceFrame::default()
            }],
        );
        assert_eq!(
            rewrite_line("  #0 pc 0x30", &lookup),
            "  #0 pc 0x30 ?? at kernel/src/main.rs:3"
        );
    }

    #[test]
    fn leaves_other_lines_alone() {
        let lookup = FakeLookup::default();
        let line = "[    0.021000] INFO  Vigil 0.1.0 up: memory 128 MiB";
        assert_eq!(rewrite_line(line, &lookup), line);
        assert!(lookup.asked.borrow().is_empty());
    }

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
    fn a_missing_elf_leaves_lines_unchanged() {
        let symbolizer = Symbolizer::load(Path::new("/nonexistent/vigil-kernel"), Path::new("/"));
        assert_eq!(symbolizer.rewrite("  #0 pc 0x10"), "  #0 pc 0x10");
    }

    /// A function whose address the test below looks up in this very test binary.
    #[inline(never)]
    fn marker_function_for_lookup() -> u64 {
        std::hint::black_box(0x5eed)
    }

    #[test]
    fn resolves_a_real_function_in_this_test_binary() {
        use object::{Object, ObjectSymbol};

        assert_eq!(marker_function_for_lookup(), 0x5eed);
        let exe = std::env::current_exe().unwrap();
        let bytes = std::fs::read(&exe).unwrap();
        let file = object::File::parse(&*bytes).unwrap();
        let address = file
            .symbols()
            .find(|symbol| {
                symbol.name().is_ok_and(|name| {
                    format!("{:#}", rustc_demangle::demangle(name))
                        .ends_with("symbolize::tests::marker_function_for_lookup")
                })
            })
            .expect("marker function in the symbol table")
            .address();
        let workspace_root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let lookup = ElfLookup::load(&exe, workspace_root).unwrap();

        let line = format!("  #0 pc  {address:#018x}");
        let rewritten = rewrite_line(&line, &lookup);
        assert!(
            rewritten.contains(" xtask::symbolize::tests::marker_function_for_lookup at "),
            "{rewritten}"
        );
        assert!(
            rewritten.contains(" at xtask/src/symbolize.rs:"),
            "{rewritten}"
        );
        // A return address just past the function start resolves into the same function.
        let line = format!("  #1 ret {:#018x}", address + 1);
        assert!(rewrite_line(&line, &lookup).contains("marker_function_for_lookup"));
    }
}
