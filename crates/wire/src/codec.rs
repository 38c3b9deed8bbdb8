//! Framing: postcard + CRC-32 + COBS encoders, and the resynchronising stream decoder.
//!
//! A frame on the wire is `COBS(postcard(frame) ‖ crc32_ieee(postcard bytes) as 4 LE bytes)`
//! followed by one 0x00. The encoder streams postcard's output through the checksum and the
//! COBS encoder straight into the caller's buffer (no temporary copy of the frame). The
//! decoder buffers the bytes of one frame up to its 0x00, so any damage costs at most the
//! frames it touches: the next 0x00 always starts a fresh frame.

use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{HostFrame, KernelFrame, MAX_FRAME_BYTES};

/// Size of the checksum that follows the postcard bytes of every frame.
const CRC_BYTES: usize = 4;

/// Longest COBS-encoded frame (terminator not included) that can carry [`MAX_FRAME_BYTES`]
/// of payload: COBS adds one byte per started run of 254 bytes.
pub const MAX_ENCODED_FRAME_BYTES: usize = cobs::max_encoding_length(MAX_FRAME_BYTES);

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/// Why a frame was not encoded. Nothing is appended to the output in either case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// postcard bytes plus checksum would exceed [`MAX_FRAME_BYTES`]; every decoder would
    /// refuse the frame, so it is not produced.
    Oversized,
    /// The serializer refused the value. Cannot happen for [`KernelFrame`] and [`HostFrame`];
    /// only a hand-written `Serialize` impl (unknown sequence length, failing `collect_str`)
    /// can cause it.
    Serialize,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncodeError::Oversized => "frame larger than MAX_FRAME_BYTES not encoded",
            EncodeError::Serialize => "value cannot be serialized with postcard",
        })
    }
}

impl core::error::Error for EncodeError {}

/// A postcard flavor that feeds every byte through CRC-32 and a streaming COBS encoder,
/// appending the encoded bytes to `out`.
struct FrameWriter<'a> {
    out: &'a mut Vec<u8>,
    /// Index in `out` where this frame starts (the first COBS code byte).
    start: usize,
    cobs: cobs::EncoderState,
    /// A run of 254 non-zero bytes just ended: the next byte needs a new code byte first.
    /// Deferred so that a frame ending exactly on a full run gets no extra 0x01 (canonical
    /// COBS, identical to `cobs::encode`).
    code_pending: bool,
    crc: crc32fast::Hasher,
    /// postcard bytes seen so far.
    body_len: usize,
    /// Most postcard bytes allowed.
    body_limit: usize,
    /// Called after every [`PROGRESS_BYTES`] of body, if set.
    on_progress: Option<fn()>,
    /// `body_len` at which `on_progress` is next called.
    next_progress: usize,
}

/// How often (in postcard bytes) a long encoding reports progress: the kernel's watchdog
/// counts it, so a 256 KiB snapshot encoded with interrupts off is not mistaken for a lockup.
pub const PROGRESS_BYTES: usize = 16 * 1024;

impl<'a> FrameWriter<'a> {
    fn new(out: &'a mut Vec<u8>, body_limit: usize) -> Self {
        let start = out.len();
        // Placeholder for the first code byte, as `cobs::EncoderState` expects.
        out.push(0);
        FrameWriter {
            out,
            start,
            cobs: cobs::EncoderState::default(),
            code_pending: false,
            crc: crc32fast::Hasher::new(),
            body_len: 0,
            body_limit,
            on_progress: None,
            next_progress: PROGRESS_BYTES,
        }
    }

    fn set_code(&mut self, index: usize, code: u8) {
        if let Some(slot) = self.out.get_mut(self.start + index) {
            *slot = code;
        }
    }

    fn cobs_push(&mut self, byte: u8) {
        if core::mem::take(&mut self.code_pending) {
            self.out.push(0);
        }
        match self.cobs.push(byte) {
            cobs::PushResult::AddSingle(b) => self.out.push(b),
            cobs::PushResult::ModifyFromStartAndSkip((index, code)) => {
                self.set_code(index, code);
                self.out.push(0);
            }
            cobs::PushResult::ModifyFromStartAndPushAndSkip((index, code, b)) => {
                self.set_code(index, code);
                self.out.push(b);
                self.code_pending = true;
            }
        }
    }

    fn body(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.body_len = self.body_len.saturating_add(data.len());
        if self.body_len > self.body_limit {
            return Err(postcard::Error::SerializeBufferFull);
        }
        self.crc.update(data);
        for &b in data {
            self.cobs_push(b);
        }
        while self.body_len >= self.next_progress {
            self.next_progress += PROGRESS_BYTES;
            if let Some(progress) = self.on_progress {
                progress();
            }
        }
        Ok(())
    }
}

impl postcard::ser_flavors::Flavor for FrameWriter<'_> {
    /// Payload bytes (postcard + checksum).
    type Output = usize;

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.body(&[data])
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.body(data)
    }

    fn finalize(mut self) -> postcard::Result<usize> {
        let crc = core::mem::take(&mut self.crc).finalize();
        for b in crc.to_le_bytes() {
            self.cobs_push(b);
        }
        let (index, code) = core::mem::take(&mut self.cobs).finalize();
        if !self.code_pending {
            self.set_code(index, code);
        }
        self.out.push(0);
        Ok(self.body_len + CRC_BYTES)
    }
}

/// Appends one complete encoded frame (COBS bytes and the 0x00 terminator) to `out` and
/// returns the number of bytes appended. On error nothing is appended.
///
/// Works for any serde type; the protocol's frames are [`KernelFrame`] and [`HostFrame`].
pub fn encode_frame<T: Serialize + ?Sized>(
    frame: &T,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    encode_frame_reporting(frame, out, None)
}

/// [`encode_frame`], calling `on_progress` after every [`PROGRESS_BYTES`] of payload.
fn encode_frame_reporting<T: Serialize + ?Sized>(
    frame: &T,
    out: &mut Vec<u8>,
    on_progress: Option<fn()>,
) -> Result<usize, EncodeError> {
    let start = out.len();
    let mut writer = FrameWriter::new(out, MAX_FRAME_BYTES - CRC_BYTES);
    writer.on_progress = on_progress;
    match postcard::serialize_with_flavor(frame, writer) {
        Ok(_) => Ok(out.len() - start),
        Err(error) => {
            out.truncate(start);
            Err(match error {
                postcard::Error::SerializeBufferFull => EncodeError::Oversized,
                _ => EncodeError::Serialize,
            })
        }
    }
}

/// Appends one complete encoded kernel frame (ending in 0x00) to `out`.
///
/// A frame whose payload would exceed [`MAX_FRAME_BYTES`] (only a snapshot of a huge system
/// could) is not appended at all, since every decoder would refuse it: compare `out.len()`
/// before and after, or use [`try_encode_kernel_frame`], to count it as dropped.
pub fn encode_kernel_frame(frame: &KernelFrame, out: &mut Vec<u8>) {
    let _ = try_encode_kernel_frame(frame, out);
}

/// Appends one complete encoded host frame (ending in 0x00) to `out`. Host frames are a few
/// bytes long and always fit.
pub fn encode_host_frame(frame: &HostFrame, out: &mut Vec<u8>) {
    let _ = try_encode_host_frame(frame, out);
}

/// [`encode_kernel_frame`], reporting the bytes appended or why nothing was.
pub fn try_encode_kernel_frame(
    frame: &KernelFrame,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    encode_frame(frame, out)
}

/// [`try_encode_kernel_frame`], calling `on_progress` after every [`PROGRESS_BYTES`] of
/// payload: the kernel's watchdog counts those calls as progress.
pub fn try_encode_kernel_frame_reporting(
    frame: &KernelFrame,
    out: &mut Vec<u8>,
    on_progress: fn(),
) -> Result<usize, EncodeError> {
    encode_frame_reporting(frame, out, Some(on_progress))
}

/// [`encode_host_frame`], reporting the bytes appended or why nothing was.
pub fn try_encode_host_frame(frame: &HostFrame, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
    encode_frame(frame, out)
}

/// Frames raw `body` bytes as if they were a postcard value: appends COBS(body ‖ CRC-32) and
/// the 0x00 terminator, returning the bytes appended. No size limit is applied. Meant for
/// tests and tools (e.g. to produce frames of unknown kinds or oversized frames).
pub fn encode_payload(body: &[u8], out: &mut Vec<u8>) -> usize {
    use postcard::ser_flavors::Flavor;

    let start = out.len();
    let mut writer = FrameWriter::new(out, usize::MAX);
    // Cannot fail: the limit is usize::MAX and pushing to a Vec is infallible.
    let _ = writer.body(body);
    let _ = writer.finalize();
    out.len() - start
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// Why one frame was dropped by a decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DecodeError {
    /// The CRC-32 did not match (or the frame was too short to hold one): the frame was
    /// damaged in transit.
    Checksum,
    /// Checksum fine but the bytes are not a frame this decoder knows: a frame kind (variant)
    /// from a newer protocol revision, or a peer speaking another version.
    Malformed,
    /// More than [`MAX_FRAME_BYTES`] (or the decoder's own smaller limit) before a 0x00.
    Oversized,
    /// Invalid COBS structure (a code byte pointing past the end of the frame): the frame was
    /// damaged in transit.
    Cobs,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DecodeError::Checksum => "frame dropped: CRC-32 checksum mismatch (damaged in transit)",
            DecodeError::Malformed => {
                "frame dropped: checksum valid but not a known frame (newer protocol revision?)"
            }
            DecodeError::Oversized => "frame dropped: larger than the maximum frame size",
            DecodeError::Cobs => "frame dropped: invalid COBS encoding (damaged in transit)",
        })
    }
}

impl core::error::Error for DecodeError {}

/// What a decoder has seen since it was created. Loss is counted, never silent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecoderStats {
    /// Frames decoded successfully.
    pub frames: u64,
    /// Frames damaged in transit: CRC mismatch, too short for a CRC, or invalid COBS
    /// ([`DecodeError::Checksum`] and [`DecodeError::Cobs`]).
    pub checksum_errors: u64,
    /// Frames with a valid checksum that did not decode ([`DecodeError::Malformed`]).
    pub malformed: u64,
    /// Frames refused for their size ([`DecodeError::Oversized`]).
    pub oversized: u64,
    /// Bytes (0x00 terminators not included) that were not part of a decoded frame.
    pub discarded_bytes: u64,
}

impl DecoderStats {
    /// Frames dropped for any reason.
    pub const fn errors(&self) -> u64 {
        self.checksum_errors + self.malformed + self.oversized
    }
}

/// Turns a byte stream into frames of type `F`, resynchronising at every 0x00.
///
/// Feed it whatever arrives, in chunks of any size; it calls back once per complete frame
/// with the frame or the reason it was dropped. An empty frame (two 0x00 in a row) is
/// ignored. Bytes beyond the size limit are discarded as they arrive and reported as one
/// [`DecodeError::Oversized`] when the 0x00 comes, so memory stays bounded by the limit. It
/// never panics, whatever the input.
pub struct FrameDecoder<F> {
    /// COBS bytes of the frame being received (no 0x00 in it).
    buf: Vec<u8>,
    /// Largest payload accepted.
    max_frame_bytes: usize,
    /// The current frame passed the limit; `buf` is empty and `overflow_bytes` counts it.
    overflowing: bool,
    overflow_bytes: usize,
    stats: DecoderStats,
    _frame: PhantomData<fn() -> F>,
}

/// Decodes what the kernel sends (host side).
pub type KernelFrameDecoder = FrameDecoder<KernelFrame>;
/// Decodes what a host sends (kernel side).
pub type HostFrameDecoder = FrameDecoder<HostFrame>;

impl<F> FrameDecoder<F> {
    /// A decoder accepting frames up to [`MAX_FRAME_BYTES`].
    pub const fn new() -> Self {
        Self::with_max_frame_bytes(MAX_FRAME_BYTES)
    }

    /// A decoder accepting payloads (postcard bytes + checksum) of at most `max_frame_bytes`
    /// (capped at [`MAX_FRAME_BYTES`]); it buffers at most the COBS encoding of that. The
    /// kernel can use a small limit for host frames to bound its receive buffer.
    pub const fn with_max_frame_bytes(max_frame_bytes: usize) -> Self {
        let max_frame_bytes = if max_frame_bytes < MAX_FRAME_BYTES {
            max_frame_bytes
        } else {
            MAX_FRAME_BYTES
        };
        FrameDecoder {
            buf: Vec::new(),
            max_frame_bytes,
            overflowing: false,
            overflow_bytes: 0,
            stats: DecoderStats {
                frames: 0,
                checksum_errors: 0,
                malformed: 0,
                oversized: 0,
                discarded_bytes: 0,
            },
            _frame: PhantomData,
        }
    }

    /// Counters since creation.
    pub fn stats(&self) -> DecoderStats {
        self.stats
    }

    /// Bytes received of a frame whose 0x00 has not arrived yet.
    pub fn pending_bytes(&self) -> usize {
        if self.overflowing {
            self.overflow_bytes
        } else {
            self.buf.len()
        }
    }

    /// Forgets a partly received frame (e.g. after reconnecting), counting its bytes as
    /// discarded. Statistics are kept.
    pub fn reset(&mut self) {
        self.stats.discarded_bytes += self.pending_bytes() as u64;
        self.buf.clear();
        self.overflowing = false;
        self.overflow_bytes = 0;
    }

    fn max_encoded_bytes(&self) -> usize {
        cobs::max_encoding_length(self.max_frame_bytes)
    }

    /// Adds bytes (none of them 0x00) to the current frame.
    fn absorb(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            return;
        }
        if self.overflowing {
            self.overflow_bytes = self.overflow_bytes.saturating_add(chunk.len());
        } else if self.buf.len() + chunk.len() > self.max_encoded_bytes() {
            self.overflowing = true;
            self.overflow_bytes = self.buf.len() + chunk.len();
            self.buf.clear();
        } else {
            self.buf.extend_from_slice(chunk);
        }
    }
}

impl<F: DeserializeOwned> FrameDecoder<F> {
    /// Feeds received bytes; `on_frame` is called for every frame they complete, in order.
    pub fn push(&mut self, bytes: &[u8], mut on_frame: impl FnMut(Result<F, DecodeError>)) {
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == 0) {
            self.absorb(&rest[..end]);
            if let Some(result) = self.finish_frame() {
                on_frame(result);
            }
            rest = &rest[end + 1..];
        }
        self.absorb(rest);
    }

    /// The terminator arrived: decode the buffered frame, if any.
    fn finish_frame(&mut self) -> Option<Result<F, DecodeError>> {
        if self.overflowing {
            self.stats.oversized += 1;
            self.stats.discarded_bytes += self.overflow_bytes as u64;
            self.overflowing = false;
            self.overflow_bytes = 0;
            return Some(Err(DecodeError::Oversized));
        }
        if self.buf.is_empty() {
            return None;
        }
        let len = self.buf.len();
        let result = decode_in_place(&mut self.buf, self.max_frame_bytes);
        self.buf.clear();
        // Do not keep a big buffer around after a big frame.
        if self.buf.capacity() > 64 * 1024 {
            self.buf.shrink_to(4096);
        }
        match result {
            Ok(_) => self.stats.frames += 1,
            Err(error) => {
                self.stats.discarded_bytes += len as u64;
                match error {
                    DecodeError::Checksum | DecodeError::Cobs => self.stats.checksum_errors += 1,
                    DecodeError::Malformed => self.stats.malformed += 1,
                    DecodeError::Oversized => self.stats.oversized += 1,
                }
            }
        }
        Some(result)
    }
}

impl<F> Default for FrameDecoder<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F> fmt::Debug for FrameDecoder<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameDecoder")
            .field("pending_bytes", &self.pending_bytes())
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("stats", &self.stats)
            .finish()
    }
}

/// Decodes one COBS frame (bytes without any 0x00) in place.
fn decode_in_place<F: DeserializeOwned>(
    buf: &mut [u8],
    max_frame_bytes: usize,
) -> Result<F, DecodeError> {
    let len = cobs::decode_in_place(buf).map_err(|_| DecodeError::Cobs)?;
    let payload = buf.get(..len).ok_or(DecodeError::Cobs)?;
    if payload.len() > max_frame_bytes {
        return Err(DecodeError::Oversized);
    }
    if payload.len() < CRC_BYTES {
        return Err(DecodeError::Checksum);
    }
    let (body, crc) = payload.split_at(payload.len() - CRC_BYTES);
    if crc32fast::hash(body).to_le_bytes() != crc {
        return Err(DecodeError::Checksum);
    }
    // Bytes after the value are ignored (reserved for future extension).
    postcard::take_from_bytes::<F>(body)
        .map(|(frame, _rest)| frame)
        .map_err(|_| DecodeError::Malformed)
}

/// Decodes a single frame from its encoded bytes, with or without the final 0x00 (e.g. one
/// entry of a recording). Any other 0x00 in `encoded` makes it [`DecodeError::Cobs`].
pub fn decode_frame<F: DeserializeOwned>(encoded: &[u8]) -> Result<F, DecodeError> {
    let encoded = encoded.strip_suffix(&[0]).unwrap_or(encoded);
    if encoded.is_empty() || encoded.contains(&0) {
        return Err(DecodeError::Cobs);
    }
    if encoded.len() > MAX_ENCODED_FRAME_BYTES {
        return Err(DecodeError::Oversized);
    }
    let mut buf = encoded.to_vec();
    decode_in_place(&mut buf, MAX_FRAME_BYTES)
}
