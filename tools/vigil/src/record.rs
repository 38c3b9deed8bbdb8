//! The recording container: raw monitor-channel bytes with their arrival times.
//!
//! A recording stores exactly the bytes read from the socket, so replaying it feeds the same
//! decoder with the same input and yields the same frames as the live session did.
//!
//! # Format (all integers little-endian)
//!
//! ```text
//! header:  magic   8 bytes  "VIGILREC"
//!          version u32      1
//! records: at_ns   u64      host nanoseconds since the recording started
//!          length  u32      number of bytes that follow
//!          bytes   [u8; length]
//! ```
//!
//! A record with `length == 0` is a connection marker: a new connection to the kernel began
//! at `at_ns` (the decoder starts afresh, as it did live). Every recording starts with one.
//! Records follow in arrival order; `at_ns` never decreases. A truncated final record (the
//! recorder was killed mid-write) is ignored on reading.

use std::io::{self, Read, Write};

use anyhow::{bail, Result};

/// First eight bytes of every recording.
pub const MAGIC: &[u8; 8] = b"VIGILREC";
/// Container version written by this tool.
pub const VERSION: u32 = 1;
/// Largest record accepted on reading (a guard against reading garbage as a length).
pub const MAX_RECORD_BYTES: u32 = 16 * 1024 * 1024;

/// One record of a recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Connected { at_ns: u64 },
    Data { at_ns: u64, bytes: Vec<u8> },
}

impl Record {
    pub fn at_ns(&self) -> u64 {
        match self {
            Record::Connected { at_ns } | Record::Data { at_ns, .. } => *at_ns,
        }
    }
}

/// Writes a recording. Each record is flushed at once so an interrupted recorder leaves a
/// readable file.
pub struct RecordWriter<W: Write> {
    out: W,
    pub bytes_written: u64,
}

impl<W: Write> RecordWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        out.write_all(&VERSION.to_le_bytes())?;
        out.flush()?;
        Ok(RecordWriter {
            out,
            bytes_written: 12,
        })
    }

    /// Marks the start of a new connection.
    pub fn connected(&mut self, at_ns: u64) -> io::Result<()> {
        self.write_record(at_ns, &[])
    }

    /// Stores received bytes (an empty chunk is skipped: it would read back as a marker).
    pub fn data(&mut self, at_ns: u64, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        for chunk in bytes.chunks(MAX_RECORD_BYTES as usize) {
            self.write_record(at_ns, chunk)?;
        }
        Ok(())
    }

    fn write_record(&mut self, at_ns: u64, bytes: &[u8]) -> io::Result<()> {
        let mut head = [0u8; 12];
        head[..8].copy_from_slice(&at_ns.to_le_bytes());
        head[8..].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
        self.out.write_all(&head)?;
        self.out.write_all(bytes)?;
        self.out.flush()?;
        self.bytes_written += 12 + bytes.len() as u64;
        Ok(())
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Reads a recording record by record.
pub struct RecordReader<R: Read> {
    input: R,
}

impl<R: Read> RecordReader<R> {
    /// Checks the header.
    pub fn new(mut input: R) -> Result<Self> {
        let mut header = [0u8; 12];
        if read_full(&mut input, &mut header)? < header.len() || &header[..8] != MAGIC {
            bail!("missing the VIGILREC header");
        }
        let version = u32::from_le_bytes(header[8..12].try_into().unwrap());
        if version != VERSION {
            bail!("recording format version {version} is not supported (this vigil reads version {VERSION})");
        }
        Ok(RecordReader { input })
    }

    /// The next record, or `None` at the end (including a truncated final record).
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        let mut head = [0u8; 12];
        if read_full(&mut self.input, &mut head)? < head.len() {
            return Ok(None);
        }
        let at_ns = u64::from_le_bytes(head[..8].try_into().unwrap());
        let length = u32::from_le_bytes(head[8..].try_into().unwrap());
        if length == 0 {
            return Ok(Some(Record::Connected { at_ns }));
        }
        if length > MAX_RECORD_BYTES {
            bail!("corrupt recording: a record claims {length} bytes");
        }
        let mut bytes = vec![0u8; length as usize];
        if read_full(&mut self.input, &mut bytes)? < bytes.len() {
            return Ok(None);
        }
        Ok(Some(Record::Data { at_ns, bytes }))
    }
}

impl<R: Read> Iterator for RecordReader<R> {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_full<R: Read>(input: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Runs `vigil record`: stores everything the source delivers until the duration passes (or
/// forever, until interrupted: every record is flushed as it is written).
pub fn record(
    source: crate::source::Source,
    path: &std::path::Path,
    duration: Option<std::time::Duration>,
    once: bool,
    quiet: bool,
) -> Result<()> {
    use crate::source::SourceMsg;
    use anyhow::Context;
    use std::time::{Duration, Instant};

    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut writer = RecordWriter::new(io::BufWriter::new(file))
        .with_context(|| format!("writing {}", path.display()))?;
    let mut link = crate::link::Link::new();
    let started = Instant::now();
    let deadline = duration.map(|d| started + d);
    loop {
        let wait = match deadline {
            Some(deadline) => match deadline.checked_duration_since(Instant::now()) {
                Some(left) => left.min(Duration::from_millis(200)),
                None => break,
            },
            None => Duration::from_millis(200),
        };
        let msg = match source.rx.recv_timeout(wait) {
            Ok(msg) => msg,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
        };
        if !quiet {
            if let Some(text) =
                crate::events::link_message(&msg, source.description(), source.is_live())
            {
                eprintln!("vigil: {text}");
            }
        }
        let written = match &msg {
            SourceMsg::Connected { at_ns } => writer.connected(*at_ns),
            SourceMsg::Data { at_ns, bytes } => writer.data(*at_ns, bytes),
            SourceMsg::End => break,
            SourceMsg::Waiting { .. } | SourceMsg::Disconnected { .. } => Ok(()),
        };
        written.with_context(|| format!("writing {}", path.display()))?;
        let closed = matches!(msg, SourceMsg::Disconnected { .. });
        link.handle(msg, |_| {});
        if closed && once {
            break;
        }
    }
    if !quiet {
        eprintln!(
            "vigil: recorded {} bytes ({} frames) in {:.1} s to {}",
            link.bytes,
            link.counters().frames,
            started.elapsed().as_secs_f64(),
            path.display()
        );
        eprintln!("vigil: {}", link.summary());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let mut writer = RecordWriter::new(Vec::new()).unwrap();
        writer.connected(5).unwrap();
        writer.data(7, b"abc").unwrap();
        writer.data(8, b"").unwrap();
        writer.connected(9).unwrap();
        writer.data(10, &[0, 1, 2]).unwrap();
        let bytes = writer.into_inner();
        assert_eq!(&bytes[..8], b"VIGILREC");
        let records: Vec<Record> = RecordReader::new(&bytes[..])
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            records,
            vec![
                Record::Connected { at_ns: 5 },
                Record::Data {
                    at_ns: 7,
                    bytes: b"abc".to_vec()
                },
                Record::Connected { at_ns: 9 },
                Record::Data {
                    at_ns: 10,
                    bytes: vec![0, 1, 2]
                },
            ]
        );
    }

    #[test]
    fn truncated_tail_is_ignored_and_bad_headers_refused() {
        let mut writer = RecordWriter::new(Vec::new()).unwrap();
        writer.data(1, b"hello").unwrap();
        writer.data(2, b"world").unwrap();
        let mut bytes = writer.into_inner();
        bytes.truncate(bytes.len() - 2);
        let records: Vec<Record> = RecordReader::new(&bytes[..])
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            records,
            vec![Record::Data {
                at_ns: 1,
                bytes: b"hello".to_vec()
            }]
        );

        assert!(RecordReader::new(&b"NOTAREC\0\x01\0\0\0"[..]).is_err());
        assert!(RecordReader::new(&b"VIGILREC\x02\0\0\0"[..]).is_err());
        assert!(RecordReader::new(&b"VIGIL"[..]).is_err());
    }
}
