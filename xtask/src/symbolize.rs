//! Rewrites backtrace frame lines of the console with function names and source lines.
//!
//! The kernel prints kernel frames as `  #0 pc  0xffffffff80104abc` (the faulting instruction)
//! or `  #1 ret 0xffffffff80102def` (a return address), and user frames the same way followed
//! by the process name: `  #0 pc  0x0000000000401234 (hello)`. Each frame line gets
//! ` <function> at <file>:<line>` appended, looked up in the DWARF of the kernel ELF or of the
//! process's program ELF; inlined frames follow as ` (inlined into <outer> at <file>:<line>)`.
//! Unknown addresses get ` ??`; a frame of a process we did not boot is left as it is. An
//! upper-half address in a user frame is the kernel's, so it is looked up in the kernel ELF.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use vigil_abi::layout::USER_END;

use crate::user::ProcessMap;

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

/// Resolves an address in the program of a named process. `None` when the process is not
/// one whose program we know (the line is then left alone); empty frames when the address
/// is unknown.
pub trait UserLookup {
    fn frames(&self, process: &str, address: u64) -> Option<Vec<SourceFrame>>;
}

/// A frame line: the frame, and for a user frame the process it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLine<'a> {
    pub frame: FrameRef,
    /// The `NAME` of a line that ends with `(NAME)` after the address: a user frame.
    pub process: Option<&'a str>,
}

/// Finds `#N pc 0x…` or `#N ret 0x…` (any whitespace between, 1 to 16 hex digits).
pub fn parse_frame(line: &str) -> Option<FrameRef> {
    parse_frame_line(line).map(|found| found.frame)
}

/// Like [`parse_frame`], and also finds the process name of a user frame.
pub fn parse_frame_line(line: &str) -> Option<FrameLine<'_>> {
    let bytes = line.as_bytes();
    let mut search_from = 0;
    while let Some(found) = line[search_from..].find('#') {
        let hash = search_from + found;
        search_from = hash + 1;
        if let Some((frame, length)) = parse_frame_at(&bytes[hash + 1..]) {
            let after_address = &line[hash + 1 + length..];
            return Some(FrameLine {
                frame,
                process: trailing_process_name(after_address),
            });
        }
    }
    None
}

/// `NAME` if `text` ends with `(NAME)` (trailing whitespace allowed; NAME non-empty, without
/// parentheses).
fn trailing_process_name(text: &str) -> Option<&str> {
    let inner = text.trim_end().strip_suffix(')')?;
    let open = inner.rfind('(')?;
    let name = &inner[open + 1..];
    (!name.is_empty() && !name.contains(')')).then_some(name)
}

/// Parses `N <ws> (pc|ret) <ws> 0xHEX` at the start of `rest` (the text after a `#`);
/// returns the frame and the number of bytes it took.
fn parse_frame_at(rest: &[u8]) -> Option<(FrameRef, usize)> {
    let total = rest.len();
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
    let consumed = total - rest.len() + hex_len;
    Some((FrameRef { kind, address }, consumed))
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

/// Returns the line with symbol information appended if it is a frame line: user frames are
/// looked up in `users`, kernel frames in `kernel`. A frame of a process `users` does not
/// know, or a kernel frame without a kernel lookup, comes back unchanged, as do other lines.
pub fn rewrite_line_with(
    line: &str,
    kernel: Option<&dyn AddressLookup>,
    users: &dyn UserLookup,
) -> String {
    let Some(found) = parse_frame_line(line) else {
        return line.to_string();
    };
    let address = found.frame.lookup_address();
    // User space is the lower half: an upper-half address in a process's backtrace (the
    // kernel's fault report of a bad jump, say) can only be found in the kernel ELF.
    let frames = match found.process {
        Some(process) if found.frame.address < USER_END => users.frames(process, address),
        _ => kernel.map(|kernel| kernel.frames(address)),
    };
    match frames {
        Some(frames) => format!("{}{}", line.trim_end(), describe_frames(&frames)),
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

/// The console symboliser used by `run`, `test` and `bench`: loads the kernel ELF once and
/// each user program ELF the first time one of its frames appears; never fails.
pub struct Symbolizer {
    kernel: Option<ElfLookup>,
    workspace_root: PathBuf,
    /// User program ELFs by path; `None` once loading one failed (warned about once).
    user_elves: RefCell<HashMap<PathBuf, Option<Rc<ElfLookup>>>>,
}

impl Symbolizer {
    /// Loads `elf`; on failure prints one warning and leaves kernel frames unchanged.
    pub fn load(elf: &Path, workspace_root: &Path) -> Symbolizer {
        let kernel = match ElfLookup::load(elf, workspace_root) {
            Ok(lookup) => Some(lookup),
            Err(error) => {
                eprintln!("warning: kernel backtraces will not be symbolised: {error:#}");
                None
            }
        };
        Symbolizer {
            kernel,
            workspace_root: workspace_root.to_path_buf(),
            user_elves: RefCell::new(HashMap::new()),
        }
    }

    /// Symbolises a frame line (user frames of the processes in `processes`); any other line
    /// comes back unchanged.
    pub fn rewrite(&self, line: &str, processes: &ProcessMap) -> String {
        let users = UserElves {
            symbolizer: self,
            processes,
        };
        rewrite_line_with(
            line,
            self.kernel.as_ref().map(|k| k as &dyn AddressLookup),
            &users,
        )
    }

    /// The lookup for the user ELF at `elf`, loaded on first use.
    fn user_elf(&self, elf: &Path) -> Option<Rc<ElfLookup>> {
        let mut elves = self.user_elves.borrow_mut();
        elves
            .entry(elf.to_path_buf())
            .or_insert_with(|| match ElfLookup::load(elf, &self.workspace_root) {
                Ok(lookup) => Some(Rc::new(lookup)),
                Err(error) => {
                    eprintln!("warning: user backtraces will not be symbolised: {error:#}");
                    None
                }
            })
            .clone()
    }
}

/// The user programs of one run, as a [`UserLookup`].
struct UserElves<'a> {
    symbolizer: &'a Symbolizer,
    processes: &'a ProcessMap,
}

impl UserLookup for UserElves<'_> {
    fn frames(&self, process: &str, address: u64) -> Option<Vec<SourceFrame>> {
        let elf = self.processes.elf(process)?;
        let lookup = self.symbolizer.user_elf(elf)?;
        Some(lookup.frames(address))
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

    /// A [`UserLookup`] that knows no process.
    struct NoUserPrograms;

    impl UserLookup for NoUserPrograms {
        fn frames(&self, _process: &str, _address: u64) -> Option<Vec<SourceFrame>> {
            None
        }
    }

    /// Kernel-only rewriting: user frame lines come back unchanged.
    fn rewrite_line(line: &str, kernel: &dyn AddressLookup) -> String {
        rewrite_line_with(line, Some(kernel), &NoUserPrograms)
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
        let none = ProcessMap::default();
        assert_eq!(symbolizer.rewrite("  #0 pc 0x10", &none), "  #0 pc 0x10");
        let mut processes = ProcessMap::default();
        processes.insert("hello".into(), "/nonexistent/hello".into());
        let line = "  #0 pc  0x0000000000401234 (hello)";
        assert_eq!(symbolizer.rewrite(line, &processes), line);
        // The failed load is remembered, not retried for every frame.
        assert_eq!(symbolizer.rewrite(line, &processes), line);
        assert_eq!(symbolizer.user_elves.borrow().len(), 1);
    }

    /// Fake user programs: process name → its lookup.
    #[derive(Default)]
    struct FakeUsers {
        processes: HashMap<String, FakeLookup>,
        asked: RefCell<Vec<(String, u64)>>,
    }

    impl UserLookup for FakeUsers {
        fn frames(&self, process: &str, address: u64) -> Option<Vec<SourceFrame>> {
            self.asked.borrow_mut().push((process.to_string(), address));
            self.processes
                .get(process)
                .map(|lookup| lookup.frames(address))
        }
    }

    #[test]
    fn finds_the_process_of_user_frames() {
        let process = |line| parse_frame_line(line).and_then(|found| found.process);
        assert_eq!(
            process("  #0 pc  0x0000000000401234 (hello)"),
            Some("hello")
        );
        assert_eq!(
            process("  #1 ret 0x401234 (bench_client)  "),
            Some("bench_client")
        );
        assert_eq!(
            process("[ 1.0 ] ERROR   #2 ret 0x401234 in (a b)"),
            Some("a b")
        );
        assert_eq!(process("  #0 pc  0xffffffff80104abc"), None);
        assert_eq!(process("  #0 pc  0x401234 ()"), None);
        assert_eq!(process("  #0 pc  0x401234 (hello) x"), None);
        assert_eq!(process("  #0 pc  0x401234 hello)"), None);
        assert_eq!(process("  #0 pc  0x401234 (a)b)"), None);
        assert_eq!(process("(hello) #0 pc 0x401234"), None);
        assert_eq!(process("backtrace: (hello)"), None);
        assert_eq!(
            parse_frame("  #1 ret 0x0000000000401234 (hello)"),
            Some(FrameRef {
                kind: FrameKind::Ret,
                address: 0x40_1234
            })
        );
    }

    #[test]
    fn symbolises_user_frames_in_their_program() {
        let mut users = FakeUsers::default();
        let mut hello = FakeLookup::default();
        hello.known.insert(
            0x40_1234,
            vec![frame("hello::main", "user/programs/src/bin/hello.rs", 7)],
        );
        users.processes.insert("greeter".to_string(), hello);
        users
            .processes
            .insert("other".to_string(), FakeLookup::default());
        let kernel = FakeLookup::default();

        assert_eq!(
            rewrite_line_with(
                "  #0 pc  0x0000000000401234 (greeter)",
                Some(&kernel),
                &users
            ),
            "  #0 pc  0x0000000000401234 (greeter) hello::main at \
             user/programs/src/bin/hello.rs:7"
        );
        // A return address is looked up one byte earlier, in the process's own program.
        rewrite_line_with("  #1 ret 0x401235 (other)", Some(&kernel), &users);
        assert_eq!(users.asked.borrow()[1], ("other".to_string(), 0x40_1234));
        assert_eq!(
            rewrite_line_with("  #1 ret 0x401235 (other)", Some(&kernel), &users),
            "  #1 ret 0x401235 (other) ??"
        );
        // An unknown process: the line is left exactly as it is.
        let line = "  #0 pc  0x0000000000401234 (stranger)  ";
        assert_eq!(rewrite_line_with(line, Some(&kernel), &users), line);
        // User frames never reach the kernel lookup; kernel frames never reach the users.
        assert!(kernel.asked.borrow().is_empty());
        let asked_before = users.asked.borrow().len();
        rewrite_line_with("  #0 pc 0xffffffff80100000", Some(&kernel), &users);
        assert_eq!(*kernel.asked.borrow(), vec![0xffff_ffff_8010_0000]);
        assert_eq!(users.asked.borrow().len(), asked_before);
        // Without a kernel lookup, kernel frames stay as they are but user frames do not.
        assert_eq!(
            rewrite_line_with("  #0 pc 0xffffffff80100000", None, &users),
            "  #0 pc 0xffffffff80100000"
        );
        assert!(
            rewrite_line_with("  #0 pc 0x401234 (greeter)", None, &users)
                .ends_with("hello::main at user/programs/src/bin/hello.rs:7")
        );
        // An upper-half address in a user backtrace belongs to the kernel.
        let mut kernel = FakeLookup::default();
        kernel.known.insert(
            0xffff_ffff_8011_1fe9,
            vec![frame("vigil_kernel::ipc::send", "kernel/src/ipc.rs", 9)],
        );
        assert_eq!(
            rewrite_line_with(
                "  #0 pc  0xffffffff80111fe9 (greeter)",
                Some(&kernel),
                &users
            ),
            "  #0 pc  0xffffffff80111fe9 (greeter) vigil_kernel::ipc::send at kernel/src/ipc.rs:9"
        );
        assert_eq!(
            rewrite_line_with("  #0 pc  0xffffffff80111fe9 (stranger)", None, &users),
            "  #0 pc  0xffffffff80111fe9 (stranger)"
        );
        assert!(!users
            .asked
            .borrow()
            .iter()
            .any(|(_, address)| *address >= USER_END));
        // The kernel-only rewrite leaves user frames alone.
        assert_eq!(
            rewrite_line("  #0 pc 0x401234 (greeter)", &kernel),
            "  #0 pc 0x401234 (greeter)"
        );
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

        // The same binary as a user program named `marker`, loaded lazily by the Symbolizer.
        let symbolizer = Symbolizer::load(Path::new("/nonexistent/vigil-kernel"), workspace_root);
        let mut processes = ProcessMap::default();
        processes.insert("marker".into(), exe.clone());
        assert!(symbolizer.user_elves.borrow().is_empty());
        let line = format!("  #0 pc  {address:#018x} (marker)");
        let rewritten = symbolizer.rewrite(&line, &processes);
        assert!(
            rewritten.contains("(marker) xtask::symbolize::tests::marker_function_for_lookup at "),
            "{rewritten}"
        );
        symbolizer.rewrite(&line, &processes);
        assert_eq!(symbolizer.user_elves.borrow().len(), 1);
    }
}
