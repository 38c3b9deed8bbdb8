//! In-memory ring of kernel log records, overwriting the oldest, so a monitor can read the log later.

use vigil_abi::log::LogLevel;

/// One record read back from the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogRecord<'a> {
    /// Sequence number, starting at 0 and never reused.
    pub seq: u64,
    /// Nanoseconds since boot.
    pub timestamp_ns: u64,
    pub level: LogLevel,
    pub text: &'a str,
}

/// Ring of variable-length records in a fixed buffer of `N` bytes. When full, whole oldest
/// records are evicted; evictions are counted. Text longer than `MAX_TEXT` is truncated at
/// a UTF-8 character boundary and the record marked truncated (count kept).
pub struct LogRing<const N: usize> {
    _buf: [u8; N],
}

impl<const N: usize> LogRing<N> {
    /// Longest text stored for one record, in bytes.
    pub const MAX_TEXT: usize = 240;

    pub const fn new() -> Self {
        todo!()
    }

    /// Appends a record; returns its sequence number.
    pub fn push(&mut self, timestamp_ns: u64, level: LogLevel, text: &str) -> u64 {
        todo!()
    }

    /// Sequence number the next `push` will get.
    pub fn next_seq(&self) -> u64 {
        todo!()
    }

    /// Sequence number of the oldest record still held (== next_seq when empty).
    pub fn oldest_seq(&self) -> u64 {
        todo!()
    }

    /// Number of records evicted to make room so far.
    pub fn evicted(&self) -> u64 {
        todo!()
    }

    /// Number of records whose text was truncated.
    pub fn truncated(&self) -> u64 {
        todo!()
    }

    /// Calls `f` for every record with `seq >= from_seq` still held, oldest first.
    /// Returns the sequence number to pass next time (== next_seq).
    pub fn read_from(&self, from_seq: u64, f: impl FnMut(LogRecord<'_>)) -> u64 {
        todo!()
    }
}

impl<const N: usize> Default for LogRing<N> {
    fn default() -> Self {
        Self::new()
    }
}
