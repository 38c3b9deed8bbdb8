//! The kernel log: leveled, timestamped lines on COM1, also kept in an in-memory ring.
//!
//! Each `info!`/`warn!`/… call formats one line into a fixed buffer (no heap), stores it
//! in the log ring (so a monitor can fetch the log later) and writes it to COM1 as
//! `[    0.012345] INFO  text`. Dump lines that belong to the previous line (registers,
//! backtrace frames) use `continuation`, which omits the prefix on the console.

use crate::arch::uart::{SerialPort, COM1, COM2};
use crate::{lock, time};
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use vigil_abi::log::LogLevel;
use vigil_kcore::log_ring::LogRing;

/// Size of the in-memory log ring.
pub const LOG_RING_BYTES: usize = 32 * 1024;
/// Longest line formatted; longer lines are cut and end in "…".
const LINE_BYTES: usize = 256;

struct Console {
    ring: LogRing<LOG_RING_BYTES>,
    com1: Option<SerialPort>,
}

static CONSOLE: lock::Mutex<Console> = lock::Mutex::new(
    lock::Level::Console,
    Console {
        ring: LogRing::new(),
        com1: None,
    },
);
static MAX_LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);
static FATAL_MODE: AtomicBool = AtomicBool::new(false);
/// Set while the NMI watchdog writes its report (see `enter_nmi_mode`).
static NMI_MODE: AtomicBool = AtomicBool::new(false);
/// Lines written to the console outside NMI mode: the watchdog counts them as progress, so
/// a long report on a slow serial line (written with interrupts off, so no tick) is not a
/// lockup.
static LINES_WRITTEN: AtomicU64 = AtomicU64::new(0);
static COM2_PRESENT: AtomicBool = AtomicBool::new(false);

/// Initialises COM1 (console) and COM2 (reserved for the monitor protocol).
pub fn init() {
    let com1_ok = COM1.init();
    COM2_PRESENT.store(COM2.init(), Ordering::Relaxed);
    CONSOLE.lock().com1 = com1_ok.then_some(COM1);
}

/// Whether a UART answered on COM2.
pub fn monitor_port_present() -> bool {
    COM2_PRESENT.load(Ordering::Relaxed)
}

/// Sets the most verbose level printed and kept.
pub fn set_max_level(level: LogLevel) {
    MAX_LEVEL.store(level as u8, Ordering::Relaxed);
}

pub fn max_level() -> LogLevel {
    LogLevel::from_u8(MAX_LEVEL.load(Ordering::Relaxed)).unwrap_or(LogLevel::Info)
}

/// Parses a level name as given on the command line (`loglevel=debug`).
pub fn parse_level(name: &str) -> Option<LogLevel> {
    LogLevel::ALL
        .into_iter()
        .find(|level| level.label().trim_end().eq_ignore_ascii_case(name))
}

/// A fixed-capacity line that silently truncates (marking the cut with "…").
struct LineBuffer {
    bytes: [u8; LINE_BYTES],
    len: usize,
    truncated: bool,
}

impl LineBuffer {
    const fn new() -> Self {
        LineBuffer {
            bytes: [0; LINE_BYTES],
            len: 0,
            truncated: false,
        }
    }

    fn as_str(&self) -> &str {
        // Only whole UTF-8 characters are ever appended.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("<invalid utf-8>")
    }
}

impl Write for LineBuffer {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        const ELLIPSIS: &str = "…";
        for ch in text.chars() {
            if self.truncated {
                break;
            }
            let room = LINE_BYTES - self.len;
            if ch.len_utf8() + ELLIPSIS.len() > room {
                self.bytes[self.len..self.len + ELLIPSIS.len()]
                    .copy_from_slice(ELLIPSIS.as_bytes());
                self.len += ELLIPSIS.len();
                self.truncated = true;
                break;
            }
            ch.encode_utf8(&mut self.bytes[self.len..]);
            self.len += ch.len_utf8();
        }
        Ok(())
    }
}

fn lock_console() -> lock::MutexGuard<'static, Console> {
    if in_fatal_mode() {
        if let Some(guard) = CONSOLE.try_lock() {
            return guard;
        }
        // SAFETY: in fatal mode the machine is about to stop and interrupts are off; the
        // holder of the lock was interrupted by the fault and never runs again.
        unsafe { CONSOLE.force_unlock() };
    }
    CONSOLE.lock()
}

/// Runs `write` with the ring (None when bypassed) and the port to write to. In NMI mode
/// the console is never waited for: if the interrupted code holds it, the line goes
/// straight to COM1 and not into the ring (it may land in the middle of the interrupted
/// line; the ring is left alone because its holder may be half-way through a push).
fn with_console(write: impl FnOnce(Option<&mut LogRing<LOG_RING_BYTES>>, Option<SerialPort>)) {
    if NMI_MODE.load(Ordering::Relaxed) {
        match CONSOLE.try_lock() {
            Some(mut console) => {
                let port = console.com1;
                write(Some(&mut console.ring), port);
            }
            None => write(None, Some(COM1)),
        }
        return;
    }
    LINES_WRITTEN.fetch_add(1, Ordering::Relaxed);
    let mut console = lock_console();
    let port = console.com1;
    write(Some(&mut console.ring), port);
}

/// Logs one line at `level`. Use the `error!`…`trace!` macros.
pub fn log(level: LogLevel, args: fmt::Arguments<'_>) {
    if level > max_level() {
        return;
    }
    let mut line = LineBuffer::new();
    let _ = line.write_fmt(args);
    let now = time::now_ns();
    let mut seq = 0;
    with_console(|ring, port| {
        if let Some(ring) = ring {
            seq = ring.push(now, level, line.as_str());
        }
        if let Some(port) = port {
            let mut prefix = LineBuffer::new();
            let _ = write!(
                prefix,
                "[{:5}.{:06}] {} ",
                now / 1_000_000_000,
                (now / 1000) % 1_000_000,
                level.label()
            );
            port.write_text(prefix.as_str());
            port.write_text(line.as_str());
            port.write_text("\n");
        }
    });
    if !FATAL_MODE.load(Ordering::Relaxed) && !NMI_MODE.load(Ordering::Relaxed) {
        crate::trace::emit(
            vigil_abi::trace::EventKind::Log,
            vigil_abi::Endpoint::NONE,
            [seq, level as u64, 0],
        );
    }
}

/// Logs a line that continues the previous ERROR line (dumps): kept in the ring at ERROR
/// level, printed on the console without the timestamp prefix.
pub fn continuation(args: fmt::Arguments<'_>) {
    let mut line = LineBuffer::new();
    let _ = line.write_fmt(args);
    let now = time::now_ns();
    with_console(|ring, port| {
        if let Some(ring) = ring {
            ring.push(now, LogLevel::Error, line.as_str());
        }
        if let Some(port) = port {
            port.write_text(line.as_str());
            port.write_text("\n");
        }
    });
}

/// From now on the console may steal its own lock: used once the machine is stopping
/// because of a fault or panic that may have interrupted a holder.
pub fn enter_fatal_mode() {
    FATAL_MODE.store(true, Ordering::Relaxed);
}

/// Whether `enter_fatal_mode` has been called: the machine is stopping.
pub fn in_fatal_mode() -> bool {
    FATAL_MODE.load(Ordering::Relaxed)
}

/// The NMI watchdog's report is being written: until `leave_nmi_mode`, log lines never wait
/// for the console lock (see `with_console`), record no trace event (the trace ring's lock
/// may be held too) and do not count as progress. Only the NMI handler calls this; nothing
/// else runs on the CPU until it returns.
pub fn enter_nmi_mode() {
    NMI_MODE.store(true, Ordering::Relaxed);
}

pub fn leave_nmi_mode() {
    NMI_MODE.store(false, Ordering::Relaxed);
}

/// Console lines written since boot (not counting the watchdog's own).
pub fn lines_written() -> u64 {
    LINES_WRITTEN.load(Ordering::Relaxed)
}

/// Writes straight to COM1, bypassing lock and ring: the last resort for nested faults.
pub fn emergency_write(text: &str) {
    COM1.write_text(text);
}

/// Calls `f` with every ring record from `from_seq` on; returns the next sequence number.
pub fn read_log(from_seq: u64, f: impl FnMut(vigil_kcore::log_ring::LogRecord<'_>)) -> u64 {
    lock_console().ring.read_from(from_seq, f)
}

/// Like `read_log` for at most `limit` records: returns where to continue (`read_some`).
pub fn read_some_log(
    from_seq: u64,
    limit: usize,
    f: impl FnMut(vigil_kcore::log_ring::LogRecord<'_>),
) -> u64 {
    lock_console().ring.read_some(from_seq, limit, f)
}

#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::console::log(vigil_abi::log::LogLevel::Error, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::console::log(vigil_abi::log::LogLevel::Warn, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::console::log(vigil_abi::log::LogLevel::Info, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::console::log(vigil_abi::log::LogLevel::Debug, format_args!($($arg)*)) };
}
#[macro_export]
macro_rules! trace {
    ($($arg:tt)*) => { $crate::console::log(vigil_abi::log::LogLevel::Trace, format_args!($($arg)*)) };
}

/// Takes the lock and returns its guard, for the `lockup-locked` self-test only.
pub fn hold_for_selftest() -> impl Sized {
    CONSOLE.lock()
}
