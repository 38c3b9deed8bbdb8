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

/// Bytes of the header stored in front of each record's text:
/// `seq: u64 | timestamp_ns: u64 | level: u8 | flags: u8 | text_len: u16`, little-endian.
pub const RECORD_HEADER_LEN: usize = 20;

const SEQ_AT: usize = 0;
const TIMESTAMP_AT: usize = 8;
const LEVEL_AT: usize = 16;
const FLAGS_AT: usize = 17;
const TEXT_LEN_AT: usize = 18;
/// `LogRing::MAX_TEXT`, outside the generic impl so it can size arrays.
const MAX_TEXT_BYTES: usize = 240;
/// Flags bit: the text was cut to fit.
const FLAG_TRUNCATED: u8 = 1;

/// Ring of variable-length records in a fixed buffer of `N` bytes. When full, whole oldest
/// records are evicted; evictions are counted. Text longer than `MAX_TEXT` is truncated at
/// a UTF-8 character boundary and the record marked truncated (count kept).
///
/// Layout: each record is a `RECORD_HEADER_LEN`-byte header followed by its text, stored
/// back to back in a circular byte buffer; a record may wrap around the buffer end (it is
/// reassembled when read). A record is only ever visible whole: `push` takes `&mut self`,
/// evicts before writing, and publishes the record (moves `next_seq`) after writing it.
/// A ring holds exactly the newest records whose total size fits in `N` bytes.
///
/// `N` must be at least `MIN_BYTES` (checked at compile time). When `N` is smaller than a
/// maximal record, texts are cut to `TEXT_CAPACITY` bytes instead of `MAX_TEXT`.
pub struct LogRing<const N: usize> {
    buf: [u8; N],
    /// Offset of the oldest record's header.
    head: usize,
    /// Bytes held by records (the next record is written at `(head + used) % N`).
    used: usize,
    oldest_seq: u64,
    next_seq: u64,
    evicted: u64,
    truncated: u64,
}

impl<const N: usize> LogRing<N> {
    /// Longest text stored for one record, in bytes.
    pub const MAX_TEXT: usize = MAX_TEXT_BYTES;

    /// Smallest buffer accepted: one header plus one byte of text.
    pub const MIN_BYTES: usize = RECORD_HEADER_LEN + 1;

    /// Longest text this ring stores for one record: `MAX_TEXT`, or less if `N` is small.
    pub const TEXT_CAPACITY: usize = if N.saturating_sub(RECORD_HEADER_LEN) < Self::MAX_TEXT {
        N.saturating_sub(RECORD_HEADER_LEN)
    } else {
        Self::MAX_TEXT
    };

    pub const fn new() -> Self {
        const {
            assert!(
                N >= Self::MIN_BYTES,
                "LogRing<N>: N too small for one record"
            )
        };
        LogRing {
            buf: [0; N],
            head: 0,
            used: 0,
            oldest_seq: 0,
            next_seq: 0,
            evicted: 0,
            truncated: 0,
        }
    }

    /// Appends a record; returns its sequence number.
    pub fn push(&mut self, timestamp_ns: u64, level: LogLevel, text: &str) -> u64 {
        let text_len = floor_char_boundary(text, Self::TEXT_CAPACITY);
        let was_cut = text_len < text.len();
        let record_len = RECORD_HEADER_LEN + text_len;

        while N - self.used < record_len {
            self.evict_oldest();
        }

        let seq = self.next_seq;
        let mut header = [0u8; RECORD_HEADER_LEN];
        header[SEQ_AT..SEQ_AT + 8].copy_from_slice(&seq.to_le_bytes());
        header[TIMESTAMP_AT..TIMESTAMP_AT + 8].copy_from_slice(&timestamp_ns.to_le_bytes());
        header[LEVEL_AT] = level as u8;
        header[FLAGS_AT] = if was_cut { FLAG_TRUNCATED } else { 0 };
        // text_len <= MAX_TEXT, which fits in a u16.
        header[TEXT_LEN_AT..TEXT_LEN_AT + 2].copy_from_slice(&(text_len as u16).to_le_bytes());

        let at = (self.head + self.used) % N;
        self.write_wrapping(at, &header);
        self.write_wrapping((at + RECORD_HEADER_LEN) % N, &text.as_bytes()[..text_len]);

        self.used += record_len;
        self.next_seq = seq.wrapping_add(1);
        if was_cut {
            self.truncated += 1;
        }
        seq
    }

    /// Sequence number the next `push` will get.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Sequence number of the oldest record still held (== next_seq when empty).
    pub fn oldest_seq(&self) -> u64 {
        self.oldest_seq
    }

    /// Number of records evicted to make room so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Number of records whose text was truncated.
    pub fn truncated(&self) -> u64 {
        self.truncated
    }

    /// Calls `f` for every record with `seq >= from_seq` still held, oldest first.
    /// Returns the sequence number to pass next time (== next_seq).
    pub fn read_from(&self, from_seq: u64, mut f: impl FnMut(LogRecord<'_>)) -> u64 {
        self.read_from_flagged(from_seq, |record, _| f(record))
    }

    /// Like `read_from`, also telling for each record whether its text was truncated.
    pub fn read_from_flagged(&self, from_seq: u64, f: impl FnMut(LogRecord<'_>, bool)) -> u64 {
        self.read_some_flagged(from_seq, usize::MAX, f)
    }

    /// Calls `f` for at most `limit` records with `seq >= from_seq`, oldest first, and
    /// stops there: returns the sequence number to pass next time (after the last record
    /// given, or `next_seq` when none is left). The records past the limit cost nothing —
    /// neither their UTF-8 check nor a call — so a reader that takes a few lines per tick
    /// pays for those, not for the backlog behind them.
    pub fn read_some(&self, from_seq: u64, limit: usize, mut f: impl FnMut(LogRecord<'_>)) -> u64 {
        self.read_some_flagged(from_seq, limit, |record, _| f(record))
    }

    fn read_some_flagged(
        &self,
        from_seq: u64,
        limit: usize,
        mut f: impl FnMut(LogRecord<'_>, bool),
    ) -> u64 {
        if from_seq >= self.next_seq {
            return self.next_seq;
        }
        let mut given = 0;
        let mut offset = self.head;
        let mut remaining = self.used;
        let mut text_copy = [0u8; MAX_TEXT_BYTES];
        while remaining >= RECORD_HEADER_LEN {
            let header = self.read_header(offset);
            let seq = u64::from_le_bytes(header_field(&header, SEQ_AT));
            let timestamp_ns = u64::from_le_bytes(header_field(&header, TIMESTAMP_AT));
            let level = LogLevel::from_u8(header[LEVEL_AT]).unwrap_or(LogLevel::Error);
            let was_cut = header[FLAGS_AT] & FLAG_TRUNCATED != 0;
            let text_len = usize::from(u16::from_le_bytes(header_field(&header, TEXT_LEN_AT)))
                .min(Self::TEXT_CAPACITY);
            let record_len = RECORD_HEADER_LEN + text_len;
            if seq >= from_seq {
                if given == limit {
                    return seq;
                }
                given += 1;
                let text_at = (offset + RECORD_HEADER_LEN) % N;
                let text_bytes = if text_at + text_len <= N {
                    &self.buf[text_at..text_at + text_len]
                } else {
                    self.read_wrapping(text_at, &mut text_copy[..text_len]);
                    &text_copy[..text_len]
                };
                let record = LogRecord {
                    seq,
                    timestamp_ns,
                    level,
                    text: valid_utf8_prefix(text_bytes),
                };
                f(record, was_cut);
            }
            offset = (offset + record_len) % N;
            remaining = remaining.saturating_sub(record_len);
        }
        self.next_seq
    }

    fn evict_oldest(&mut self) {
        let header = self.read_header(self.head);
        let text_len = usize::from(u16::from_le_bytes(header_field(&header, TEXT_LEN_AT)));
        let record_len = RECORD_HEADER_LEN + text_len;
        self.head = (self.head + record_len) % N;
        self.used -= record_len;
        self.oldest_seq = self.oldest_seq.wrapping_add(1);
        self.evicted += 1;
    }

    fn read_header(&self, offset: usize) -> [u8; RECORD_HEADER_LEN] {
        let mut header = [0u8; RECORD_HEADER_LEN];
        self.read_wrapping(offset, &mut header);
        header
    }

    /// Copies `out.len()` (<= N) bytes starting at `offset`, wrapping at the buffer end.
    fn read_wrapping(&self, offset: usize, out: &mut [u8]) {
        let first = out.len().min(N - offset);
        out[..first].copy_from_slice(&self.buf[offset..offset + first]);
        let rest = out.len() - first;
        out[first..].copy_from_slice(&self.buf[..rest]);
    }

    /// Writes `bytes` (<= N of them) starting at `offset`, wrapping at the buffer end.
    fn write_wrapping(&mut self, offset: usize, bytes: &[u8]) {
        let first = bytes.len().min(N - offset);
        self.buf[offset..offset + first].copy_from_slice(&bytes[..first]);
        let rest = bytes.len() - first;
        self.buf[..rest].copy_from_slice(&bytes[first..]);
    }
}

impl<const N: usize> Default for LogRing<N> {
    fn default() -> Self {
        Self::new()
    }
}

fn header_field<const W: usize>(header: &[u8; RECORD_HEADER_LEN], at: usize) -> [u8; W] {
    let mut field = [0u8; W];
    field.copy_from_slice(&header[at..at + W]);
    field
}

/// Largest `len <= max` such that `text[..len]` ends on a character boundary.
fn floor_char_boundary(text: &str, max: usize) -> usize {
    if text.len() <= max {
        return text.len();
    }
    (0..=max)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

/// The longest valid UTF-8 prefix of `bytes` (the whole slice when it is valid).
fn valid_utf8_prefix(bytes: &[u8]) -> &str {
    match core::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => core::str::from_utf8(&bytes[..error.valid_up_to()]).unwrap_or(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::string::String;
    use std::vec::Vec;

    /// An owned copy of a record, for comparisons.
    #[derive(Clone, Debug, PartialEq, Eq)]
    struct Owned {
        seq: u64,
        timestamp_ns: u64,
        level: LogLevel,
        text: String,
        truncated: bool,
    }

    fn read_all<const N: usize>(ring: &LogRing<N>, from_seq: u64) -> (Vec<Owned>, u64) {
        let mut records = Vec::new();
        let next = ring.read_from_flagged(from_seq, |record, truncated| {
            records.push(Owned {
                seq: record.seq,
                timestamp_ns: record.timestamp_ns,
                level: record.level,
                text: record.text.into(),
                truncated,
            })
        });
        (records, next)
    }

    fn texts<const N: usize>(ring: &LogRing<N>, from_seq: u64) -> Vec<String> {
        read_all(ring, from_seq)
            .0
            .into_iter()
            .map(|r| r.text)
            .collect()
    }

    /// The kernel keeps its ring in a static, so `new` must work in a const context.
    static STATIC_RING: LogRing<4096> = LogRing::new();

    #[test]
    fn new_ring_is_empty() {
        let ring = LogRing::<64>::new();
        assert_eq!(ring.next_seq(), 0);
        assert_eq!(ring.oldest_seq(), 0);
        assert_eq!(ring.evicted(), 0);
        assert_eq!(ring.truncated(), 0);
        assert_eq!(read_all(&ring, 0), (Vec::new(), 0));
        assert_eq!(STATIC_RING.next_seq(), 0);
        assert_eq!(LogRing::<64>::default().next_seq(), 0);
    }

    #[test]
    fn read_some_stops_at_its_limit_and_resumes_where_it_stopped() {
        let mut ring = LogRing::<4096>::new();
        for line in 0..10u64 {
            ring.push(line, LogLevel::Info, &std::format!("line {line}"));
        }
        let mut taken = Vec::new();
        let mut cursor = 2;
        let mut rounds = 0;
        while cursor < ring.next_seq() {
            let before = taken.len();
            cursor = ring.read_some(cursor, 3, |record| taken.push(record.seq));
            assert!(taken.len() - before <= 3, "more than the limit in one read");
            rounds += 1;
        }
        assert_eq!(taken, (2..10).collect::<Vec<u64>>());
        assert_eq!(rounds, 3);
        assert_eq!(cursor, 10);
        // Nothing new: nothing given, the cursor stays.
        assert_eq!(
            ring.read_some(cursor, 3, |_| panic!("no record is left")),
            10
        );
        // Limit 0 gives nothing and does not move the cursor.
        assert_eq!(ring.read_some(4, 0, |_| panic!("limit 0")), 4);
        // Evicted records are skipped: a cursor older than the ring starts at the oldest.
        let mut small = LogRing::<256>::new();
        for line in 0..40u64 {
            small.push(
                line,
                LogLevel::Info,
                "a line long enough to evict older ones",
            );
        }
        let oldest = small.oldest_seq();
        assert!(oldest > 0);
        let mut first = None;
        let next = small.read_some(0, 1, |record| first = Some(record.seq));
        assert_eq!(first, Some(oldest));
        assert_eq!(next, oldest + 1);
    }

    #[test]
    fn records_come_back_in_order_with_all_fields() {
        let mut ring = LogRing::<1024>::new();
        assert_eq!(ring.push(100, LogLevel::Info, "booting"), 0);
        assert_eq!(ring.push(200, LogLevel::Error, "oops: ünïcødé ✓"), 1);
        assert_eq!(ring.push(u64::MAX, LogLevel::Trace, ""), 2);
        assert_eq!(ring.next_seq(), 3);
        let (records, next) = read_all(&ring, 0);
        assert_eq!(next, 3);
        assert_eq!(
            records,
            [
                Owned {
                    seq: 0,
                    timestamp_ns: 100,
                    level: LogLevel::Info,
                    text: "booting".into(),
                    truncated: false
                },
                Owned {
                    seq: 1,
                    timestamp_ns: 200,
                    level: LogLevel::Error,
                    text: "oops: ünïcødé ✓".into(),
                    truncated: false
                },
                Owned {
                    seq: 2,
                    timestamp_ns: u64::MAX,
                    level: LogLevel::Trace,
                    text: "".into(),
                    truncated: false
                },
            ]
        );
        for level in LogLevel::ALL {
            let seq = ring.push(0, level, "x");
            let mut seen = None;
            ring.read_from(seq, |r| seen = Some(r.level));
            assert_eq!(seen, Some(level));
        }
    }

    #[test]
    fn read_from_resumes_where_it_left_off() {
        let mut ring = LogRing::<1024>::new();
        ring.push(0, LogLevel::Info, "a");
        ring.push(0, LogLevel::Info, "b");
        let (first, next) = read_all(&ring, 0);
        assert_eq!(first.len(), 2);
        assert_eq!(next, 2);
        ring.push(0, LogLevel::Info, "c");
        assert_eq!(texts(&ring, next), ["c"]);
        assert_eq!(texts(&ring, 1), ["b", "c"]);
        assert_eq!(read_all(&ring, 3), (Vec::new(), 3));
        assert_eq!(read_all(&ring, u64::MAX), (Vec::new(), 3));
    }

    #[test]
    fn oldest_records_are_evicted_whole() {
        // Each record with a 10-byte text takes 30 bytes: two fit in 64.
        let mut ring = LogRing::<64>::new();
        ring.push(1, LogLevel::Info, "record-000");
        ring.push(2, LogLevel::Info, "record-001");
        assert_eq!(ring.evicted(), 0);
        ring.push(3, LogLevel::Info, "record-002");
        assert_eq!(ring.evicted(), 1);
        assert_eq!(ring.oldest_seq(), 1);
        assert_eq!(ring.next_seq(), 3);
        // Asking for evicted records starts at the oldest held.
        assert_eq!(texts(&ring, 0), ["record-001", "record-002"]);
        // A short record fits in the 4 spare bytes plus nothing else: evicts one more.
        ring.push(
            4,
            LogLevel::Info,
            "0123456789abcdefghijklmnopqrstuvwxyz0123",
        );
        assert_eq!(ring.evicted(), 3);
        assert_eq!(ring.oldest_seq(), 3);
        assert_eq!(
            texts(&ring, 0),
            ["0123456789abcdefghijklmnopqrstuvwxyz0123"]
        );
    }

    #[test]
    fn records_wrapping_the_buffer_end_read_back_intact() {
        let mut ring = LogRing::<64>::new();
        // 7-byte texts make 27-byte records, so their positions drift through every
        // offset of the buffer, splitting headers and texts at the end in turn.
        for i in 0..200u64 {
            let text = std::format!("msg{:04}", i % 10000);
            let seq = ring.push(i * 10, LogLevel::Debug, &text);
            assert_eq!(seq, i);
            let (records, next) = read_all(&ring, 0);
            assert_eq!(next, i + 1);
            let expected_count = (i + 1).min(2);
            assert_eq!(records.len() as u64, expected_count);
            for (k, record) in records.iter().enumerate() {
                let seq = i + 1 - expected_count + k as u64;
                assert_eq!(record.seq, seq);
                assert_eq!(record.timestamp_ns, seq * 10);
                assert_eq!(record.text, std::format!("msg{:04}", seq));
                assert_eq!(record.level, LogLevel::Debug);
            }
        }
        assert_eq!(ring.evicted(), 198);
    }

    #[test]
    fn long_text_is_truncated_at_a_char_boundary() {
        let mut ring = LogRing::<4096>::new();
        let long = "x".repeat(500);
        ring.push(0, LogLevel::Warn, &long);
        // 239 ASCII bytes then a 2-byte char: the char does not fit in 240 bytes.
        let mut split = "y".repeat(239);
        split.push('é');
        split.push_str("tail");
        ring.push(0, LogLevel::Warn, &split);
        // Exactly MAX_TEXT bytes is not truncated.
        let exact = "z".repeat(LogRing::<4096>::MAX_TEXT);
        ring.push(0, LogLevel::Warn, &exact);
        let (records, _) = read_all(&ring, 0);
        assert_eq!(records[0].text, "x".repeat(240));
        assert!(records[0].truncated);
        assert_eq!(records[1].text, "y".repeat(239));
        assert!(records[1].truncated);
        assert_eq!(records[2].text, exact);
        assert!(!records[2].truncated);
        assert_eq!(ring.truncated(), 2);
    }

    #[test]
    fn a_small_ring_cuts_texts_to_its_capacity() {
        assert_eq!(LogRing::<64>::TEXT_CAPACITY, 44);
        assert_eq!(LogRing::<4096>::TEXT_CAPACITY, 240);
        assert_eq!(LogRing::<260>::TEXT_CAPACITY, 240);
        let mut ring = LogRing::<64>::new();
        ring.push(0, LogLevel::Info, &"a".repeat(100));
        assert_eq!(texts(&ring, 0), ["a".repeat(44)]);
        assert_eq!(ring.truncated(), 1);
        // A full-size record fills the ring: each push evicts the previous one.
        ring.push(0, LogLevel::Info, &"b".repeat(100));
        assert_eq!(texts(&ring, 0), ["b".repeat(44)]);
        assert_eq!(ring.evicted(), 1);
    }

    #[test]
    fn the_smallest_ring_works() {
        let mut ring = LogRing::<{ RECORD_HEADER_LEN + 1 }>::new();
        ring.push(0, LogLevel::Info, "ab");
        ring.push(0, LogLevel::Info, "é"); // 2-byte char does not fit: empty text
        ring.push(0, LogLevel::Info, "c");
        assert_eq!(texts(&ring, 0), ["c"]);
        assert_eq!(ring.truncated(), 2);
        assert_eq!(ring.oldest_seq(), 2);
        assert_eq!(ring.evicted(), 2);
    }

    /// Records kept by a ring of `N` bytes after pushing `texts`: the newest ones whose
    /// total size fits, with their stored (possibly truncated) texts.
    fn model_tail(texts: &[String], capacity: usize, n: usize) -> Vec<(u64, String, bool)> {
        let mut kept = Vec::new();
        let mut used = 0;
        for (seq, text) in texts.iter().enumerate().rev() {
            let len = floor_char_boundary(text, capacity);
            if used + RECORD_HEADER_LEN + len > n {
                break;
            }
            used += RECORD_HEADER_LEN + len;
            kept.push((seq as u64, String::from(&text[..len]), len < text.len()));
        }
        kept.reverse();
        kept
    }

    fn check_ring<const N: usize>(
        pushes: &[(u64, u8, String)],
        from_seq: u64,
    ) -> Result<(), TestCaseError> {
        let mut ring = LogRing::<N>::new();
        for (i, (timestamp, level, text)) in pushes.iter().enumerate() {
            let level = LogLevel::ALL[usize::from(*level) % LogLevel::ALL.len()];
            prop_assert_eq!(ring.push(*timestamp, level, text), i as u64);
        }
        let all_texts: Vec<String> = pushes.iter().map(|p| p.2.clone()).collect();
        let expected = model_tail(&all_texts, LogRing::<N>::TEXT_CAPACITY, N);
        let (records, next) = read_all(&ring, 0);
        prop_assert_eq!(next, pushes.len() as u64);
        prop_assert_eq!(records.len(), expected.len());
        for (record, (seq, text, truncated)) in records.iter().zip(&expected) {
            prop_assert_eq!(record.seq, *seq);
            prop_assert_eq!(&record.text, text);
            prop_assert_eq!(record.truncated, *truncated);
            let (timestamp, level, _) = &pushes[*seq as usize];
            prop_assert_eq!(record.timestamp_ns, *timestamp);
            prop_assert_eq!(record.level as u8, *level % 5);
        }
        // Contiguous sequence numbers ending at next_seq - 1.
        for pair in records.windows(2) {
            prop_assert_eq!(pair[0].seq + 1, pair[1].seq);
        }
        let oldest = expected.first().map_or(pushes.len() as u64, |r| r.0);
        prop_assert_eq!(ring.oldest_seq(), oldest);
        prop_assert_eq!(ring.evicted(), oldest);
        let truncated = all_texts
            .iter()
            .filter(|t| floor_char_boundary(t, LogRing::<N>::TEXT_CAPACITY) < t.len())
            .count();
        prop_assert_eq!(ring.truncated(), truncated as u64);
        // Reading from any point yields the matching suffix.
        let (from, _) = read_all(&ring, from_seq);
        let suffix: Vec<_> = records.into_iter().filter(|r| r.seq >= from_seq).collect();
        prop_assert_eq!(from, suffix);
        Ok(())
    }

    fn pushes_strategy() -> impl Strategy<Value = Vec<(u64, u8, String)>> {
        let text = prop_oneof!["[a-z ]{0,12}", "[a-zé✓😀]{0,70}", ".{0,300}",];
        prop::collection::vec((any::<u64>(), any::<u8>(), text), 0..60)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// After random pushes the ring returns exactly the newest records that fit, in
        /// order, with contiguous sequence numbers and intact texts.
        #[test]
        fn ring_keeps_exactly_the_newest_records_that_fit(
            pushes in pushes_strategy(),
            from_seq in 0u64..70,
        ) {
            check_ring::<64>(&pushes, from_seq)?;
            check_ring::<100>(&pushes, from_seq)?;
            check_ring::<300>(&pushes, from_seq)?;
            check_ring::<1024>(&pushes, from_seq)?;
        }
    }
}
