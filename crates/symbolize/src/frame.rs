//! Backtrace frame lines: finding `#N pc|ret 0x…` (and a trailing `(PROCESS)`) in console
//! text, and printing a frame the way the kernel does.

/// Whether a frame's address is the faulting instruction or a return address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FrameKind {
    /// The exact address of the instruction that faulted.
    Pc,
    /// A return address: the call instruction is just before it.
    Ret,
}

impl FrameKind {
    /// `"pc"` or `"ret"`, as the kernel prints it.
    pub fn name(self) -> &'static str {
        match self {
            FrameKind::Pc => "pc",
            FrameKind::Ret => "ret",
        }
    }
}

/// A backtrace frame: its kind and raw address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// The frame as the kernel's console prints it: `  #0 pc  0x0000000000401234 (hello)` for a
/// user frame, `  #1 ret 0xffffffff80102def` for a kernel one.
pub fn format_frame_line(index: usize, frame: FrameRef, process: Option<&str>) -> String {
    let kind = match frame.kind {
        FrameKind::Pc => "pc ",
        FrameKind::Ret => "ret",
    };
    let mut line = format!("  #{index} {kind} {:#018x}", frame.address);
    if let Some(process) = process {
        line.push_str(&format!(" ({process})"));
    }
    line
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn formats_frames_like_the_kernel_and_parses_them_back() {
        let pc = FrameRef {
            kind: FrameKind::Pc,
            address: 0x40_1234,
        };
        let ret = FrameRef {
            kind: FrameKind::Ret,
            address: 0xffff_ffff_8010_2def,
        };
        assert_eq!(
            format_frame_line(0, pc, Some("hello")),
            "  #0 pc  0x0000000000401234 (hello)"
        );
        assert_eq!(
            format_frame_line(11, ret, None),
            "  #11 ret 0xffffffff80102def"
        );
        let line = format_frame_line(3, pc, Some("bench client"));
        assert_eq!(
            parse_frame_line(&line),
            Some(FrameLine {
                frame: pc,
                process: Some("bench client")
            })
        );
        assert_eq!(
            parse_frame_line(&format_frame_line(1, ret, None)),
            Some(FrameLine {
                frame: ret,
                process: None
            })
        );
        assert_eq!((FrameKind::Pc.name(), FrameKind::Ret.name()), ("pc", "ret"));
    }
}
