//! Address lookups as traits, and what a frame line becomes once its address is looked up:
//! ` <function> at <file>:<line>` with inlined frames, or ` ??`.

use vigil_abi::layout::USER_END;

use crate::frame::{parse_frame_line, FrameRef};

/// One function in the (possibly inlined) chain at an address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SourceFrame {
    /// Demangled path without the hash, e.g. `vigil_kernel::selftest::page_fault`.
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
}

impl SourceFrame {
    /// `f at file:line`, `f at file`, `f`, or `?? at file:line` when the function is unknown.
    pub fn describe(&self) -> String {
        let function = self.function.as_deref().unwrap_or("??");
        match (&self.file, self.line) {
            (Some(file), Some(line)) => format!("{function} at {file}:{line}"),
            (Some(file), None) => format!("{function} at {file}"),
            (None, _) => function.to_string(),
        }
    }
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

/// The text appended to a frame line: ` f at file:line (inlined into g at file:line)` or ` ??`.
pub fn describe_frames(frames: &[SourceFrame]) -> String {
    let Some((innermost, outer)) = frames.split_first() else {
        return " ??".to_string();
    };
    let mut text = format!(" {}", innermost.describe());
    for frame in outer {
        text.push_str(&format!(" (inlined into {})", frame.describe()));
    }
    text
}

/// Looks `frame` up: in the program of `process` for a user frame, else in `kernel`. `None`
/// when there is nothing to look it up in (a process `users` does not know, or a kernel
/// frame without a kernel lookup).
pub fn lookup_frame(
    frame: FrameRef,
    process: Option<&str>,
    kernel: Option<&dyn AddressLookup>,
    users: &dyn UserLookup,
) -> Option<Vec<SourceFrame>> {
    let address = frame.lookup_address();
    // User space is the lower half: an upper-half address in a process's backtrace (the
    // kernel's fault report of a bad jump, say) can only be found in the kernel ELF.
    match process {
        Some(process) if frame.address < USER_END => users.frames(process, address),
        _ => kernel.map(|kernel| kernel.frames(address)),
    }
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
    match lookup_frame(found.frame, found.process, kernel, users) {
        Some(frames) => format!("{}{}", line.trim_end(), describe_frames(&frames)),
        None => line.to_string(),
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
        let file_only = SourceFrame {
            function: Some("f".to_string()),
            file: Some("a.rs".to_string()),
            line: None,
        };
        assert_eq!(file_only.describe(), "f at a.rs");
    }

    #[test]
    fn leaves_other_lines_alone() {
        let lookup = FakeLookup::default();
        let line = "[    0.021000] INFO  Vigil 0.1.0 up: memory 128 MiB";
        assert_eq!(rewrite_line(line, &lookup), line);
        assert!(lookup.asked.borrow().is_empty());
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
}
