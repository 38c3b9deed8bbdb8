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

/// What is done to one frame on its way.
#[derive(Clone, Debug)]
enum Damage {
    None,
    /// Random bytes (may contain 0x00) inserted before the frame.
    GarbageBefore(Vec<u8>),
    /// One encoded byte (terminator included) XORed with a non-zero value.
    Flip(Index, u8),
    /// The encoded frame cut short (always loses its terminator).
    Truncate(Index),
    /// Random bytes inserted inside the frame, before its terminator.
    Insert(Index, Vec<u8>),
    /// One bit of the payload flipped and the frame re-encoded: framing intact, checksum wrong.
    CorruptPayload(Index, u8),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        6 => Just(Damage::None),
        1 => vec(any::<u8>(), 1..40).prop_map(Damage::GarbageBefore),
        1 => (any::<Index>(), 1..=255u8).prop_map(|(i, x)| Damage::Flip(i, x)),
        1 => any::<Index>().prop_map(Damage::Truncate),
        1 => (any::<Index>(), vec(any::<u8>(), 1..12)).prop_map(|(i, b)| Damage::Insert(i, b)),
        1 => (any::<Index>(), 0..8u8).prop_map(|(i, bit)| Damage::CorruptPayload(i, bit)),
    ]
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

    /// Damage costs exactly the frames it touches: every frame whose bytes arrive intact and
    /// start right after a 0x00 is decoded, in order, and nothing else is.
    #[test]
    fn damage_loses_only_the_damaged_frames(
        items in vec((kernel_frame(), damage()), 0..20),
        tail in vec(any::<u8>(), 0..8),
        cuts in vec(any::<Index>(), 0..30),
    ) {
        let mut stream: Vec<u8> = Vec::new();
        let mut expected = Vec::new();
        let mut expected_ok_bytes = 0u64;
        let mut corrupted_payloads = 0u64;
        for (frame, damage) in &items {
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
                }
            }
            if stream.last().is_none_or(|&b| b == 0) && matches!(damage, Damage::CorruptPayload(..)) {
                corrupted_payloads += 1;
            }
            stream.extend_from_slice(&bytes);
            // Intact iff the frame's exact encoding ends the stream and starts right after a
            // 0x00 (or at the very start). Covers garbage or insertions that end in 0x00.
            let start = stream.len().wrapping_sub(original.len());
            if stream.ends_with(&original) && (start == 0 || stream[start - 1] == 0) {
                expected.push(frame.clone());
                expected_ok_bytes += original.len() as u64 - 1;
            }
        }
        stream.extend_from_slice(&tail);

        let (results, decoder) = decode_chunked::<KernelFrame>(&stream, &cuts);
        let decoded: Vec<KernelFrame> = results.iter().filter_map(|r| r.clone().ok()).collect();
        prop_assert_eq!(&decoded, &expected);
        check_accounting(&stream, &results, &decoder, expected_ok_bytes);
        prop_assert!(decoder.stats().checksum_errors >= corrupted_payloads);
    }
}
