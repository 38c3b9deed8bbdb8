//! Property tests: random frames, random chunking, garbage and corruption never panic and
//! lose at most the frames they touch.

mod common;

use common::{host_frame, kernel_frame};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use vigil_wire::*;

/// Feeds `stream` to a fresh decoder in chunks cut at `cuts`, returning the results and the
/// decoder.
fn decode_chunked<F: serde::de::DeserializeOwned>(
    stream: &[u8],
    cuts: &[Index],
) -> (Vec<Result<F, DecodeError>>, FrameDecoder<F>) {
    let mut positions: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
    positions.push(0);
    positions.push(stream.len());
    positions.sort_unstable();
    positions.dedup();
    let mut decoder = FrameDecoder::<F>::new();
    let mut results = Vec::new();
    for pair in positions.windows(2) {
        decoder.push(&stream[pair[0]..pair[1]], |r| results.push(r));
    }
    (results, decoder)
}

/// Number of non-empty, terminated segments: how many callbacks a decoder must make.
fn terminated_segments(stream: &[u8]) -> usize {
    let mut segments = stream.split(|&b| b == 0).collect::<Vec<_>>();
    segments.pop(); // after the last 0x00: not terminated
    segments.iter().filter(|s| !s.is_empty()).count()
}

/// Checks the accounting every decoder must keep, whatever it was fed.
fn check_accounting<F: serde::de::DeserializeOwned>(
    stream: &[u8],
    results: &[Result<F, DecodeError>],
    decoder: &FrameDecoder<F>,
    ok_bytes: u64,
) {
    let stats = decoder.stats();
    let ok = results.iter().filter(|r| r.is_ok()).count() as u64;
    assert_eq!(results.len(), terminated_segments(stream));
    assert_eq!(stats.frames, ok);
    assert_eq!(stats.errors(), results.len() as u64 - ok);
    let nonzero = stream.iter().filter(|&&b| b != 0).count() as u64;
    assert_eq!(
        ok_bytes + stats.discarded_bytes + decoder.pending_bytes() as u64,
        nonzero
    );
}

fn encoded(frame: &KernelFrame) -> Vec<u8> {
    let mut out = Vec::new();
    encode_kernel_frame(frame, &mut out);
    out
}

/// A position inside one encoded frame: drawn by proptest, or fixed by a regression test.
#[derive(Clone, Copy, Debug)]
enum At {
    Random(Index),
    /// This index (clamped to the frame).
    Exact(usize),
}

impl At {
    fn index(self, len: usize) -> usize {
        match self {
            At::Random(index) => index.index(len),
            At::Exact(index) => index.min(len - 1),
        }
    }
}

fn at() -> impl Strategy<Value = At> {
    any::<Index>().prop_map(At::Random)
}

/// What is done to one frame on its way.
#[derive(Clone, Debug)]
enum Damage {
    None,
    /// Random bytes (may contain 0x00) inserted before the frame.
    GarbageBefore(Vec<u8>),
    /// One encoded byte (terminator included) XORed with a non-zero value.
    Flip(At, u8),
    /// The encoded frame cut short: it always loses its terminator, and possibly more. A cut
    /// right before the terminator loses nothing else, so the frame still arrives whole if
    /// the next byte on the wire happens to be a 0x00.
    Truncate(At),
    /// Random bytes inserted inside the frame, before its terminator.
    Insert(At, Vec<u8>),
    /// One bit of the payload flipped and the frame re-encoded: framing intact, checksum wrong.
    CorruptPayload(At, u8),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        6 => Just(Damage::None),
        1 => vec(any::<u8>(), 1..40).prop_map(Damage::GarbageBefore),
        1 => (at(), 1..=255u8).prop_map(|(i, x)| Damage::Flip(i, x)),
        1 => at().prop_map(Damage::Truncate),
        1 => (at(), vec(any::<u8>(), 1..12)).prop_map(|(i, b)| Damage::Insert(i, b)),
        1 => (at(), 0..8u8).prop_map(|(i, bit)| Damage::CorruptPayload(i, bit)),
    ]
}

/// A damaged stream and what a decoder must make of it.
struct DamagedStream {
    stream: Vec<u8>,
    /// The frames that arrived whole, in order: exactly these must be decoded.
    whole: Vec<KernelFrame>,
    /// Their encoded bytes, terminators not included.
    whole_bytes: u64,
    /// Frames with a corrupted payload but intact framing: each must be a checksum error.
    corrupted_payloads: u64,
}

/// Whether the COBS bytes `body` of a frame (terminator not included) are one whole frame of
/// `stream` at `at`: preceded by the start of the stream or a 0x00, and followed by a 0x00.
///
/// That is all a decoder can see (protocol 2.3: any 0x00 ends the frame), so it is what
/// "arrived whole" means. The 0x00 after the frame need not be its own terminator: after a
/// cut that removed only the terminator, the next 0x00 on the wire (garbage before the next
/// frame, a byte inserted into it, the tail) ends the frame just as well.
fn whole_at(stream: &[u8], at: usize, body: &[u8]) -> bool {
    stream.get(at..at + body.len()) == Some(body)
        && (at == 0 || stream[at - 1] == 0)
        && stream.get(at + body.len()) == Some(&0)
}

/// Encodes every frame, damages it as told and appends `tail`. A frame arrived whole iff
/// its exact encoding (without terminator) is one whole frame of the final stream
/// ([`whole_at`]) somewhere among the bytes sent for it: any damage to those bytes, or to the
/// 0x00 on either side of them, loses it.
fn damaged_stream(items: &[(KernelFrame, Damage)], tail: &[u8]) -> DamagedStream {
    let mut stream: Vec<u8> = Vec::new();
    let mut corrupted_payloads = 0u64;
    // Each frame, its encoding, and where the bytes sent for it (after any garbage) start
    // and end in `stream`.
    let mut sent = Vec::new();
    for (frame, damage) in items {
        let original = encoded(frame);
        let mut bytes = original.clone();
        match damage {
            Damage::None => {}
            Damage::GarbageBefore(garbage) => stream.extend_from_slice(garbage),
            Damage::Flip(at, xor) => bytes[at.index(original.len())] ^= xor,
            Damage::Truncate(at) => bytes.truncate(at.index(original.len())),
            Damage::Insert(at, extra) => {
                let at = at.index(original.len());
                bytes.splice(at..at, extra.iter().copied());
            }
            Damage::CorruptPayload(at, bit) => {
                let mut payload = cobs::decode_vec(&original[..original.len() - 1]).unwrap();
                let at = at.index(payload.len());
                payload[at] ^= 1 << bit;
                bytes = cobs::encode_vec(&payload);
                bytes.push(0);
                if stream.last().is_none_or(|&b| b == 0) {
                    corrupted_payloads += 1;
                }
            }
        }
        let start = stream.len();
        stream.extend_from_slice(&bytes);
        sent.push((frame, original, start, stream.len()));
    }
    stream.extend_from_slice(tail);

    let mut whole = Vec::new();
    let mut whole_bytes = 0u64;
    for (frame, original, start, end) in sent {
        let body = &original[..original.len() - 1];
        // Usually at `start`; later if bytes ending in 0x00 were inserted at the front.
        let last_start = end.saturating_sub(body.len());
        if (start..=last_start).any(|at| whole_at(&stream, at, body)) {
            whole.push(frame.clone());
            whole_bytes += body.len() as u64;
        }
    }
    DamagedStream {
        stream,
        whole,
        whole_bytes,
        corrupted_payloads,
    }
}

/// Damage costs exactly the frames it touches: the frames that arrived whole are decoded, in
/// order, and nothing else is; every other byte is accounted for as discarded or pending.
fn check_damage(
    items: &[(KernelFrame, Damage)],
    tail: &[u8],
    cuts: &[Index],
) -> Result<(), TestCaseError> {
    let damaged = damaged_stream(items, tail);
    let (results, decoder) = decode_chunked::<KernelFrame>(&damaged.stream, cuts);
    let decoded: Vec<KernelFrame> = results.iter().filter_map(|r| r.clone().ok()).collect();
    prop_assert_eq!(&decoded, &damaged.whole);
    check_accounting(&damaged.stream, &results, &decoder, damaged.whole_bytes);
    prop_assert!(decoder.stats().checksum_errors >= damaged.corrupted_payloads);
    Ok(())
}

fn command_result(ok: bool, message: &str) -> KernelFrame {
    KernelFrame::CommandResult(CommandResult {
        ok,
        message: message.into(),
    })
}

/// The case proptest found (`Truncate` of a 9-byte frame at index 8, tail `[0]`): the cut
/// removed only the terminator and the tail's 0x00 ended the frame instead, so it arrived
/// whole and must be decoded. The old model called every truncated frame lost.
#[test]
fn a_frame_cut_only_at_its_terminator_survives_the_next_zero() {
    let frame = command_result(false, "");
    let original = encoded(&frame);
    // body 06 00 00, CRC-32 0xFBCCA5A0.
    assert_eq!(
        original,
        [0x02, 0x06, 0x01, 0x05, 0xa0, 0xa5, 0xcc, 0xfb, 0x00]
    );
    let cut = At::Exact(original.len() - 1);

    let damaged = damaged_stream(&[(frame.clone(), Damage::Truncate(cut))], &[0]);
    assert_eq!(damaged.stream, original);
    assert_eq!(damaged.whole, std::slice::from_ref(&frame));
    check_damage(&[(frame.clone(), Damage::Truncate(cut))], &[0], &[]).unwrap();

    // Without a 0x00 after it, the frame stays pending.
    let damaged = damaged_stream(&[(frame.clone(), Damage::Truncate(cut))], &[]);
    assert!(damaged.whole.is_empty());
    check_damage(&[(frame.clone(), Damage::Truncate(cut))], &[], &[]).unwrap();
    check_damage(&[(frame.clone(), Damage::Truncate(cut))], &[7], &[]).unwrap();

    // The 0x00 can come from whatever follows: garbage before the next frame, a byte
    // inserted at the front of the next frame, or a flip that zeroes its first code byte.
    let next = command_result(true, "ok");
    let first_code = encoded(&next)[0];
    for follow in [
        Damage::GarbageBefore(vec![0, 0x55]),
        Damage::Insert(At::Exact(0), vec![0]),
        Damage::Flip(At::Exact(0), first_code),
    ] {
        let items = [
            (frame.clone(), Damage::Truncate(cut)),
            (next.clone(), follow),
        ];
        let damaged = damaged_stream(&items, &[]);
        assert_eq!(damaged.whole.first(), Some(&frame), "{:?}", items[1].1);
        check_damage(&items, &[], &[]).unwrap();
    }
}

/// The same thing from the other side: a 0x00 inserted right before the terminator ends the
/// frame early but after all of its bytes, so it arrives whole (the rest is a damaged
/// frame of its own).
#[test]
fn a_zero_inserted_before_the_terminator_leaves_the_frame_whole() {
    let frame = command_result(false, "");
    let len = encoded(&frame).len();
    let items = [(
        frame.clone(),
        Damage::Insert(At::Exact(len - 1), vec![0, 0x55]),
    )];
    let damaged = damaged_stream(&items, &[]);
    assert_eq!(damaged.whole, [frame]);
    check_damage(&items, &[], &[]).unwrap();
}

/// No codec weakness behind the failure: cutting a frame anywhere short of its terminator and
/// ending it there never yields a frame (the COBS code bytes or the CRC-32 catch it); only
/// the cut that removes nothing but the terminator decodes, to the original frame.
#[test]
fn no_shorter_cut_of_a_frame_decodes() {
    let mut frames = common::every_kernel_frame();
    frames.extend([
        command_result(false, ""),
        command_result(true, ""),
        KernelFrame::Drops(DropReport {
            events_dropped: 0,
            frames_dropped: 0,
            malformed_commands: 0,
        }),
        KernelFrame::Events(Vec::new()),
    ]);
    for frame in &frames {
        let original = encoded(frame);
        let body = &original[..original.len() - 1];
        for cut in 1..body.len() {
            let result = decode_frame::<KernelFrame>(&body[..cut]);
            assert!(
                matches!(result, Err(DecodeError::Cobs | DecodeError::Checksum)),
                "{frame:?} cut to {cut} of {} bytes: {result:?}",
                body.len()
            );
        }
        assert_eq!(decode_frame::<KernelFrame>(body).as_ref(), Ok(frame));
    }
}

// 256 cases per property by default; PROPTEST_CASES=N runs more.
proptest! {
    #[test]
    fn kernel_frames_survive_any_chunking(
        frames in vec(kernel_frame(), 0..24),
        cuts in vec(any::<Index>(), 0..40),
    ) {
        let mut stream = Vec::new();
        for frame in &frames {
            encode_kernel_frame(frame, &mut stream);
        }
        let (results, decoder) = decode_chunked::<KernelFrame>(&stream, &cuts);
        let decoded: Vec<_> = results.into_iter().map(Result::unwrap).collect();
        prop_assert_eq!(&decoded, &frames);
        let stats = decoder.stats();
        prop_assert_eq!(stats.frames, frames.len() as u64);
        prop_assert_eq!(stats.errors(), 0);
        prop_assert_eq!(stats.discarded_bytes, 0);
        prop_assert_eq!(decoder.pending_bytes(), 0);
    }

    #[test]
    fn host_frames_survive_any_chunking(
        frames in vec(host_frame(), 0..40),
        cuts in vec(any::<Index>(), 0..40),
    ) {
        let mut stream = Vec::new();
        for frame in &frames {
            encode_host_frame(frame, &mut stream);
        }
        let (results, _) = decode_chunked::<HostFrame>(&stream, &cuts);
        let decoded: Vec<_> = results.into_iter().map(Result::unwrap).collect();
        prop_assert_eq!(decoded, frames);
    }

    /// The streaming encoder produces exactly `COBS(postcard ‖ crc) ‖ 0x00`, as specified.
    #[test]
    fn encoding_matches_the_specification(frame in kernel_frame()) {
        let mut payload = postcard::to_allocvec(&frame).unwrap();
        let crc = crc32fast::hash(&payload);
        payload.extend_from_slice(&crc.to_le_bytes());
        let mut expected = cobs::encode_vec(&payload);
        expected.push(0);
        prop_assert_eq!(encoded(&frame), expected);
    }

    /// COBS edge cases: long runs of non-zero bytes (multiples of 254) and zeros.
    #[test]
    fn payload_framing_matches_cobs(
        body in prop_oneof![
            vec(any::<u8>(), 0..2000),
            vec(1..=255u8, 0..1100),
            // Payload (body + 4 CRC bytes) lengths around multiples of 254.
            (0usize..6, 0usize..8)
                .prop_map(|(runs, extra)| vec![7u8; (runs * 254 + extra).saturating_sub(6)]),
            vec(0..2u8, 0..600),
        ],
    ) {
        let mut out = Vec::new();
        let appended = encode_payload(&body, &mut out);
        prop_assert_eq!(appended, out.len());
        let mut payload = body.clone();
        payload.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        let mut expected = cobs::encode_vec(&payload);
        expected.push(0);
        prop_assert_eq!(&out, &expected);
        prop_assert_eq!(out.iter().filter(|&&b| b == 0).count(), 1);
        prop_assert_eq!(cobs::decode_vec(&out[..out.len() - 1]).unwrap(), payload);
    }

    #[test]
    fn random_bytes_never_panic(
        bytes in vec(any::<u8>(), 0..3000),
        cuts in vec(any::<Index>(), 0..20),
    ) {
        let (results, decoder) = decode_chunked::<KernelFrame>(&bytes, &cuts);
        // Random bytes essentially never carry a valid CRC-32.
        prop_assert!(results.iter().all(|r| r.is_err()));
        check_accounting(&bytes, &results, &decoder, 0);
        let (results, decoder) = decode_chunked::<HostFrame>(&bytes, &cuts);
        prop_assert!(results.iter().all(|r| r.is_err()));
        check_accounting(&bytes, &results, &decoder, 0);
    }

    /// Damage costs exactly the frames it touches (see [`check_damage`]; "arrived whole" is
    /// defined by [`whole_at`]).
    #[test]
    fn damage_loses_only_the_damaged_frames(
        items in vec((kernel_frame(), damage()), 0..20),
        tail in vec(any::<u8>(), 0..8),
        cuts in vec(any::<Index>(), 0..30),
    ) {
        check_damage(&items, &tail, &cuts)?;
    }
}
