//! `print!` and `println!`: format into a fixed stack buffer and write it to the kernel
//! console with one `DebugWrite` (no heap needed, so they work in the panic handler too).

use core::fmt::{self, Write};

use crate::syscall;

/// Bytes formatted before the buffer is written out. A longer line is written in pieces
/// (each piece ends on a character boundary).
pub const LINE_BUFFER_SIZE: usize = 512;

/// Collects formatted text and writes it to the console when full or finished.
struct ConsoleWriter {
    buffer: [u8; LINE_BUFFER_SIZE],
    len: usize,
}

impl ConsoleWriter {
    const fn new() -> ConsoleWriter {
        ConsoleWriter {
            buffer: [0; LINE_BUFFER_SIZE],
            len: 0,
        }
    }

    fn flush(&mut self) {
        // The kernel prints a bounded part per call and says how much: write the rest.
        // Printing has nowhere to report a failure; a refused write drops what is left.
        let mut written = 0;
        while written < self.len {
            match syscall::debug_write(&self.buffer[written..self.len]) {
                Ok(0) | Err(_) => break,
                Ok(taken) => written += taken as usize,
            }
        }
        self.len = 0;
    }
}

impl Write for ConsoleWriter {
    fn write_str(&mut self, mut text: &str) -> fmt::Result {
        while !text.is_empty() {
            let room = LINE_BUFFER_SIZE - self.len;
            if text.len() <= room {
                self.buffer[self.len..self.len + text.len()].copy_from_slice(text.as_bytes());
                self.len += text.len();
                return Ok(());
            }
            // Take as much as fits, cut on a character boundary, and write the buffer out.
            let mut cut = room;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            self.buffer[self.len..self.len + cut].copy_from_slice(&text.as_bytes()[..cut]);
            self.len += cut;
            text = &text[cut..];
            self.flush();
        }
        Ok(())
    }
}

/// Writes `args` to the console. Used by `print!`.
#[doc(hidden)]
pub fn print_args(args: fmt::Arguments<'_>) {
    let mut writer = ConsoleWriter::new();
    let _ = writer.write_fmt(args);
    writer.flush();
}

/// Writes `args` and a newline to the console with one system call. Used by `println!`.
#[doc(hidden)]
pub fn print_line_args(args: fmt::Arguments<'_>) {
    let mut writer = ConsoleWriter::new();
    let _ = writer.write_fmt(args);
    let _ = writer.write_str("\n");
    writer.flush();
}

/// Prints to the kernel console (no newline).
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::print::print_args(::core::format_args!($($arg)*))
    };
}

/// Prints a line to the kernel console: one `DebugWrite` per line.
#[macro_export]
macro_rules! println {
    () => {
        $crate::print::print_line_args(::core::format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::print::print_line_args(::core::format_args!($($arg)*))
    };
}
