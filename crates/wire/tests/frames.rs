//! Fixed-input tests of the wire protocol: round trips, exact bytes, limits, resynchronisation.

mod common;

use common::{decode_all, every_host_frame, every_kernel_frame};
use serde::{Deserialize, Serialize};
use vigil_abi::endpoint::Endpoint;
use vigil_abi::introspect::{encode_state, ProcessRecord, SnapshotHeader, ThreadRecord};
use vigil_abi::trace::{EventKind, TraceEvent};
use vigil_abi::wait::ThreadState;
use vigil_wire::*;

#[test]
fn every_kernel_frame_kind_round_trips() {
    let frames = every_kernel_frame();
    let mut stream = Vec::new();
    for frame in &frames {
        let before = stream.len();
        encode_kernel_frame(frame, &mut stream);
        assert_eq!(stream.last(), Some(&0), "{frame:?} not terminated");
        let encoded = &stream[before..];
        assert_eq!(encoded.iter().filter(|&&b| b == 0).count(), 1);
        assert_eq!(decode_frame::<KernelFrame>(encoded).as_ref(), Ok(frame));
    }
    let mut decoder = KernelFrameDecoder::new();
    let decoded: Vec<_> = decode_all(&mut decoder, &stream)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(decoded, frames);
    let stats = decoder.stats();
    assert_eq!(stats.frames, frames.len() as u64);
    assert_eq!(stats.errors(), 0);
    assert_eq!(stats.discarded_bytes, 0);
    assert_eq!(decoder.pending_bytes(), 0);
}

#[test]
fn every_host_frame_kind_round_trips() {
    let frames = every_host_frame();
    let mut stream = Vec::new();
    for frame in &frames {
        encode_host_frame(frame, &mut stream);
    }
    let mut decoder = HostFrameDecoder::new();
    let decoded: Vec<_> = decode_all(&mut decoder, &stream)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(decoded, frames);
    assert_eq!(decoder.stats().frames, frames.len() as u64);
}

#[test]
fn byte_at_a_time_decoding_matches() {
    let frames = every_kernel_frame();
    let mut stream = Vec::new();
    for frame in &frames {
        encode_kernel_frame(frame, &mut stream);
    }
    let mut decoder = KernelFrameDecoder::new();
    let mut decoded = Vec::new();
    for byte in &stream {
        decoder.push(core::slice::from_ref(byte), |r| decoded.push(r.unwrap()));
    }
    assert_eq!(decoded, frames);
}

/// The variant indices written in docs/protocol.md and in the enum docs.
#[test]
fn variant_indices_are_stable() {
    for (index, frame) in every_kernel_frame().iter().enumerate() {
        let body = postcard::to_allocvec(frame).unwrap();
        assert_eq!(body[0] as usize, index, "{}", frame.kind_name());
    }
    for (index, frame) in every_host_frame().iter().enumerate() {
        let body = postcard::to_allocvec(frame).unwrap();
        assert_eq!(body[0] as usize, index, "{}", frame.kind_name());
    }
    for (index, kind) in [
        CrashKind::KernelPanic,
        CrashKind::KernelFault,
        CrashKind::UserFault,
        CrashKind::KernelLockup,
        CrashKind::UserPanic,
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(postcard::to_allocvec(kind).unwrap(), [index as u8]);
    }
}

/// The worked examples in docs/protocol.md, byte for byte.
#[test]
fn documented_examples_are_exact() {
    let mut out = Vec::new();
    encode_host_frame(
        &HostFrame::Hello {
            protocol_version: 1,
        },
        &mut out,
    );
    assert_eq!(out, [0x01, 0x06, 0x01, 0x69, 0x22, 0xde, 0x36, 0x00]);
    out.clear();
    encode_host_frame(
        &HostFrame::Hello {
            protocol_version: 2,
        },
        &mut out,
    );
    assert_eq!(out, [0x01, 0x06, 0x02, 0xd3, 0x73, 0xd7, 0xaf, 0x00]);

    let drops = KernelFrame::Drops(DropReport {
        events_dropped: 300,
        frames_dropped: 0,
        malformed_commands: 2,
    });
    assert_eq!(
        postcard::to_allocvec(&drops).unwrap(),
        [0x03, 0xac, 0x02, 0x00, 0x02]
    );
    out.clear();
    encode_kernel_frame(&drops, &mut out);
    assert_eq!(
        out,
        [0x04, 0x03, 0xac, 0x02, 0x06, 0x02, 0x32, 0x9e, 0xb5, 0x6b, 0x00]
    );

    let events = KernelFrame::Events(vec![Event {
        seq: 1,
        timestamp_ns: 1000,
        kind: EventKind::IpcSend as u16,
        thread: 0x1_0005,
        args: [0x1_0002, 7, 0],
    }]);
    out.clear();
    encode_kernel_frame(&events, &mut out);
    assert_eq!(
        out,
        [
            0x0e, 0x01, 0x01, 0x01, 0xe8, 0x07, 0x03, 0x85, 0x80, 0x04, 0x82, 0x80, 0x04, 0x07,
            0x05, 0x8d, 0x20, 0x4b, 0x2a, 0x00
        ]
    );
}

/// `ThreadInfo` embeds `vigil_abi::introspect::ThreadCounters`; postcard writes the nested
/// struct as its fields in order, so the bytes are those of the flat field list in
/// docs/protocol.md. The expected bytes were taken from the encoder before the counters
/// became one struct.
#[test]
fn thread_counters_encode_flat() {
    let info = ThreadInfo {
        endpoint: 0x1_0002,
        pid: 2,
        state: 4,
        priority: 3,
        wait_target: u64::MAX,
        wait_argument: 0x1234,
        counters: ThreadCounters {
            cpu_ns: 12345,
            voluntary_switches: 1,
            involuntary_switches: 2,
            syscalls: 300,
            messages_sent: 4,
            messages_received: 5,
            notifications_received: 6,
            page_faults: 7,
            kernel_calls: 8,
        },
    };
    let c = info.counters;
    let flat = (
        (
            info.endpoint,
            info.pid,
            info.state,
            info.priority,
            info.wait_target,
            info.wait_argument,
        ),
        (
            c.cpu_ns,
            c.voluntary_switches,
            c.involuntary_switches,
            c.syscalls,
            c.messages_sent,
            c.messages_received,
            c.notifications_received,
            c.page_faults,
            c.kernel_calls,
        ),
    );
    let body = postcard::to_allocvec(&info).unwrap();
    assert_eq!(body, postcard::to_allocvec(&flat).unwrap());
    assert_eq!(
        body,
        [
            0x82, 0x80, 0x04, 0x02, 0x04, 0x03, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0x01, 0xb4, 0x24, 0xb9, 0x60, 0x01, 0x02, 0xac, 0x02, 0x04, 0x05, 0x06, 0x07,
            0x08
        ]
    );
    assert_eq!(postcard::from_bytes::<ThreadInfo>(&body), Ok(info));

    let mut out = Vec::new();
    encode_kernel_frame(
        &KernelFrame::Snapshot(Snapshot {
            generation: 7,
            timestamp_ns: 99,
            idle_ns: 50,
            threads: vec![info],
            processes: vec![],
        }),
        &mut out,
    );
    assert_eq!(
        out,
        [
            0x23, 0x02, 0x07, 0x63, 0x32, 0x01, 0x82, 0x80, 0x04, 0x02, 0x04, 0x03, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0xb4, 0x24, 0xb9, 0x60, 0x01, 0x02,
            0xac, 0x02, 0x04, 0x05, 0x06, 0x07, 0x08, 0x05, 0x22, 0x75, 0x5d, 0xd2, 0x00
        ]
    );
}

#[test]
fn checksum_is_crc32_ieee() {
    // The standard check value of CRC-32/ISO-HDLC (zlib, Ethernet).
    assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
}

#[test]
fn versions() {
    assert!(compatible(PROTOCOL_VERSION));
    assert!(!compatible(PROTOCOL_VERSION + 1));
    assert!(!compatible(0));
}

#[test]
fn empty_frames_are_ignored() {
    let mut stream = vec![0, 0, 0];
    encode_host_frame(&HostFrame::SnapshotNow, &mut stream);
    stream.extend([0, 0]);
    let mut decoder = HostFrameDecoder::new();
    let results = decode_all(&mut decoder, &stream);
    assert_eq!(results, [Ok(HostFrame::SnapshotNow)]);
    assert_eq!(decoder.stats().errors(), 0);
    assert_eq!(decoder.stats().discarded_bytes, 0);
}

#[test]
fn resynchronises_after_garbage_without_zero() {
    let frames = every_kernel_frame();
    let garbage: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 255 + 1) as u8).collect();
    assert!(!garbage.contains(&0));

    // Garbage glued to the first frame costs exactly that frame.
    let mut stream = garbage.clone();
    for frame in &frames {
        encode_kernel_frame(frame, &mut stream);
    }
    let mut decoder = KernelFrameDecoder::new();
    let results = decode_all(&mut decoder, &stream);
    assert_eq!(results.len(), frames.len());
    assert!(results[0].is_err());
    let rest: Vec<_> = results[1..].iter().cloned().map(Result::unwrap).collect();
    assert_eq!(rest, frames[1..]);
    assert_eq!(decoder.stats().errors(), 1);

    // A 0x00 after the garbage (what a sender does before its first frame) costs nothing.
    let mut stream = garbage.clone();
    stream.push(0);
    for frame in &frames {
        encode_kernel_frame(frame, &mut stream);
    }
    let mut decoder = KernelFrameDecoder::new();
    let results = decode_all(&mut decoder, &stream);
    let ok: Vec<_> = results.iter().filter_map(|r| r.clone().ok()).collect();
    assert_eq!(ok, frames);
    assert_eq!(results.len(), frames.len() + 1);
    assert_eq!(decoder.stats().discarded_bytes, garbage.len() as u64);
}

#[test]
fn corrupted_payload_is_a_checksum_error() {
    let mut good = Vec::new();
    encode_host_frame(&HostFrame::SetEventMask(0xffff), &mut good);
    let mut payload = cobs::decode_vec(&good[..good.len() - 1]).unwrap();
    payload[2] ^= 0x10;
    let mut bad = cobs::encode_vec(&payload);
    bad.push(0);

    let mut stream = bad.clone();
    stream.extend_from_slice(&good);
    let mut decoder = HostFrameDecoder::new();
    let results = decode_all(&mut decoder, &stream);
    assert_eq!(
        results,
        [
            Err(DecodeError::Checksum),
            Ok(HostFrame::SetEventMask(0xffff))
        ]
    );
    assert_eq!(decoder.stats().checksum_errors, 1);
    assert_eq!(decoder.stats().discarded_bytes, bad.len() as u64 - 1);

    // Invalid COBS: a code byte pointing past the end of the frame.
    let results = decode_all(&mut decoder, &[0x09, 0x01, 0x02, 0x00]);
    assert_eq!(results, [Err(DecodeError::Cobs)]);
    assert_eq!(decoder.stats().checksum_errors, 2);

    // Too short to carry a checksum.
    let results = decode_all(&mut decoder, &[0x03, 0x01, 0x02, 0x00]);
    assert_eq!(results, [Err(DecodeError::Checksum)]);
}

/// A frame kind from a newer revision (variant appended) is Malformed and skipped cleanly.
#[test]
fn unknown_frame_kind_is_malformed_and_skipped() {
    #[derive(Serialize, Deserialize)]
    enum FutureHostFrame {
        Hello { protocol_version: u16 },
        SetEventMask(u64),
        SetSnapshotPeriod { period_ms: u32 },
        SnapshotNow,
        ProcessCommand(ProcessCommand),
        ProcessTreeNow { request: u32 },
        KillProcess { pid: u32 },
    }
    let mut stream = Vec::new();
    encode_frame(&FutureHostFrame::KillProcess { pid: 7 }, &mut stream).unwrap();
    encode_frame(&FutureHostFrame::SnapshotNow, &mut stream).unwrap();
    // Same bytes as today's encoder for a frame both know.
    let mut today = Vec::new();
    encode_host_frame(&HostFrame::SnapshotNow, &mut today);
    assert!(stream.ends_with(&today));
    let _ = FutureHostFrame::Hello {
        protocol_version: 1,
    };
    let _ = FutureHostFrame::SetEventMask(0);
    let _ = FutureHostFrame::SetSnapshotPeriod { period_ms: 0 };
    let _ = FutureHostFrame::ProcessTreeNow { request: 0 };
    let _ = FutureHostFrame::ProcessCommand(ProcessCommand {
        request: 0,
        action: ProcessAction::Stop,
        pid: 0,
    });

    let mut decoder = HostFrameDecoder::new();
    let results = decode_all(&mut decoder, &stream);
    assert_eq!(
        results,
        [Err(DecodeError::Malformed), Ok(HostFrame::SnapshotNow)]
    );
    assert_eq!(decoder.stats().malformed, 1);

    // A valid checksum around an empty or truncated value is Malformed too.
    let mut stream = Vec::new();
    encode_payload(&[], &mut stream);
    encode_payload(&[0x02, 0xff], &mut stream);
    let results = decode_all(&mut decoder, &stream);
    assert_eq!(
        results,
        [Err(DecodeError::Malformed), Err(DecodeError::Malformed)]
    );
}

#[test]
fn trailing_bytes_after_the_value_are_ignored() {
    let mut body = postcard::to_allocvec(&HostFrame::SetEventMask(5)).unwrap();
    body.extend([1, 2, 3]);
    let mut stream = Vec::new();
    encode_payload(&body, &mut stream);
    let mut decoder = HostFrameDecoder::new();
    assert_eq!(
        decode_all(&mut decoder, &stream),
        [Ok(HostFrame::SetEventMask(5))]
    );
}

/// A log frame whose payload (postcard + CRC) is exactly `payload` bytes.
fn log_frame_of_size(payload: usize) -> KernelFrame {
    let frame = |len: usize| {
        KernelFrame::Log(LogLine {
            seq: 1,
            timestamp_ns: 2,
            level: 3,
            text: "x".repeat(len),
        })
    };
    let overhead = postcard::to_allocvec(&frame(payload)).unwrap().len() + 4 - payload;
    let f = frame(payload - overhead);
    assert_eq!(postcard::to_allocvec(&f).unwrap().len() + 4, payload);
    f
}

#[test]
fn largest_frame_passes_and_one_byte_more_is_refused() {
    let biggest = log_frame_of_size(MAX_FRAME_BYTES);
    let mut stream = Vec::new();
    let appended = try_encode_kernel_frame(&biggest, &mut stream).unwrap();
    assert_eq!(appended, stream.len());
    assert!(stream.len() <= MAX_ENCODED_FRAME_BYTES + 1);

    let too_big = log_frame_of_size(MAX_FRAME_BYTES + 1);
    let mut out = vec![0xaa];
    assert_eq!(
        try_encode_kernel_frame(&too_big, &mut out),
        Err(EncodeError::Oversized)
    );
    encode_kernel_frame(&too_big, &mut out);
    assert_eq!(out, [0xaa], "nothing appended for a refused frame");

    // Forced onto the wire anyway, the decoder refuses it and carries on.
    encode_payload(&postcard::to_allocvec(&too_big).unwrap(), &mut stream);
    encode_kernel_frame(&every_kernel_frame()[3], &mut stream);
    let mut decoder = KernelFrameDecoder::new();
    let results = decode_all(&mut decoder, &stream);
    assert_eq!(results.len(), 3);
    assert_eq!(results[0].as_ref(), Ok(&biggest));
    assert_eq!(results[1], Err(DecodeError::Oversized));
    assert_eq!(results[2].as_ref(), Ok(&every_kernel_frame()[3]));
    assert_eq!(decoder.stats().oversized, 1);
}

#[test]
fn oversized_payload_that_encodes_short_is_refused() {
    // Zeros encode one-to-one plus one, so this frame fits the COBS buffer limit and is
    // refused on its decoded size.
    let body = vec![0u8; MAX_FRAME_BYTES - 4 + 1];
    let mut stream = Vec::new();
    encode_payload(&body, &mut stream);
    assert!(stream.len() - 1 <= MAX_ENCODED_FRAME_BYTES);
    encode_host_frame(&HostFrame::SnapshotNow, &mut stream);
    let mut decoder = HostFrameDecoder::new();
    assert_eq!(
        decode_all(&mut decoder, &stream),
        [Err(DecodeError::Oversized), Ok(HostFrame::SnapshotNow)]
    );
}

#[test]
fn endless_frame_is_discarded_with_bounded_memory() {
    let mut decoder = HostFrameDecoder::new();
    let chunk = vec![0x5a; 64 * 1024];
    let mut total = 0;
    for _ in 0..64 {
        decoder.push(&chunk, |_| panic!("no frame yet"));
        total += chunk.len();
        assert_eq!(decoder.pending_bytes(), total);
    }
    let mut stream = vec![0];
    encode_host_frame(&HostFrame::SnapshotNow, &mut stream);
    let results = decode_all(&mut decoder, &stream);
    assert_eq!(
        results,
        [Err(DecodeError::Oversized), Ok(HostFrame::SnapshotNow)]
    );
    let stats = decoder.stats();
    assert_eq!(stats.oversized, 1);
    assert_eq!(stats.discarded_bytes, total as u64);
    assert_eq!(stats.frames, 1);
}

#[test]
fn small_limit_decoder_refuses_big_frames() {
    let mut decoder = KernelFrameDecoder::with_max_frame_bytes(16);
    let mut stream = Vec::new();
    encode_kernel_frame(&every_kernel_frame()[0], &mut stream); // Hello: > 16 bytes
    encode_kernel_frame(&every_kernel_frame()[3], &mut stream); // Drops: 9 bytes
    let results = decode_all(&mut decoder, &stream);
    assert_eq!(results.len(), 2);
    assert_eq!(results[0], Err(DecodeError::Oversized));
    assert_eq!(results[1].as_ref(), Ok(&every_kernel_frame()[3]));
}

#[test]
fn reset_forgets_a_partial_frame() {
    let mut stream = Vec::new();
    encode_host_frame(&HostFrame::SetEventMask(3), &mut stream);
    let mut decoder = HostFrameDecoder::new();
    decoder.push(&stream[..3], |_| panic!("incomplete"));
    assert_eq!(decoder.pending_bytes(), 3);
    decoder.reset();
    assert_eq!(decoder.pending_bytes(), 0);
    assert_eq!(decoder.stats().discarded_bytes, 3);
    assert_eq!(
        decode_all(&mut decoder, &stream),
        [Ok(HostFrame::SetEventMask(3))]
    );
}

#[test]
fn decode_frame_rejects_bad_input() {
    assert_eq!(decode_frame::<HostFrame>(&[]), Err(DecodeError::Cobs));
    assert_eq!(decode_frame::<HostFrame>(&[0]), Err(DecodeError::Cobs));
    assert_eq!(
        decode_frame::<HostFrame>(&[1, 0, 1, 0]),
        Err(DecodeError::Cobs)
    );
    let mut frame = Vec::new();
    encode_host_frame(&HostFrame::SnapshotNow, &mut frame);
    assert_eq!(decode_frame(&frame), Ok(HostFrame::SnapshotNow));
    assert_eq!(
        decode_frame(&frame[..frame.len() - 1]),
        Ok(HostFrame::SnapshotNow)
    );
}

#[test]
fn errors_display_clearly() {
    for (error, word) in [
        (DecodeError::Checksum, "checksum"),
        (DecodeError::Malformed, "not a known frame"),
        (DecodeError::Oversized, "larger"),
        (DecodeError::Cobs, "COBS"),
    ] {
        assert!(error.to_string().contains(word), "{error}");
    }
    assert!(EncodeError::Oversized
        .to_string()
        .contains("MAX_FRAME_BYTES"));
}

#[test]
fn conversions_from_abi_records() {
    let me = Endpoint::new(5, 1);
    let owner = Endpoint::new(9, 2);
    let (state, wait_target, wait_argument) = encode_state(&ThreadState::Mutex {
        address: 0x1234,
        owner,
    });
    let record = ThreadRecord {
        endpoint: me,
        pid: 4,
        state,
        priority: 2,
        reserved: 0,
        wait_target,
        wait_argument,
        counters: ThreadCounters {
            cpu_ns: 1,
            voluntary_switches: 2,
            involuntary_switches: 3,
            syscalls: 4,
            messages_sent: 5,
            messages_received: 6,
            notifications_received: 7,
            page_faults: 8,
            kernel_calls: 9,
        },
        reserved2: [0; 3],
    };
    let info = ThreadInfo::from(&record);
    assert_eq!(info.endpoint, me.0);
    assert_eq!(info.thread(), me);
    assert_eq!(info.wait_target, owner.0);
    assert_eq!(info.counters, record.counters);
    assert_eq!(
        (
            info.counters.cpu_ns,
            info.counters.syscalls,
            info.counters.kernel_calls
        ),
        (1, 4, 9)
    );
    assert_eq!(
        info.state(),
        Some(ThreadState::Mutex {
            address: 0x1234,
            owner
        })
    );
    assert_eq!(ThreadInfo { state: 200, ..info }.state(), None);

    let mut name = [0u8; 32];
    name[..4].copy_from_slice(b"init");
    let process = ProcessRecord {
        pid: 1,
        threads: 2,
        name,
        main_thread: me,
        memory_pages: 10,
        priority: 1,
        reserved: [0; 7],
        grants: 3,
        stopped_by: 0,
        cpu_ns: 77,
        peak_pages: 12,
        virtual_bytes: 0x50_0000,
        shared_pages: 4,
        faults_not_present: 6,
        faults_protection: 1,
        reserved3: 0,
    };
    let info = ProcessInfo::from_record(&process);
    assert_eq!(info.name, "init");
    assert_eq!(
        (
            info.memory_pages,
            info.peak_pages,
            info.virtual_bytes,
            info.shared_pages,
            info.faults_not_present,
            info.faults_protection,
            info.page_faults()
        ),
        (10, 12, 0x50_0000, 4, 6, 1, 7)
    );
    assert_eq!(
        (
            info.pid,
            info.threads,
            info.main_thread,
            info.grants,
            info.cpu_ns
        ),
        (1, 2, me.0, 3, 77)
    );
    assert_eq!(ProcessInfo::from(&process), info);

    let header = SnapshotHeader {
        generation: 3,
        timestamp_ns: 4,
        idle_ns: 5,
        ..SnapshotHeader::default()
    };
    let snapshot = Snapshot::from_records(&header, &[record], &[process]);
    assert_eq!(
        (snapshot.generation, snapshot.timestamp_ns, snapshot.idle_ns),
        (3, 4, 5)
    );
    assert_eq!(snapshot.threads, [ThreadInfo::from(&record)]);
    assert_eq!(snapshot.processes, [info]);

    let trace = TraceEvent {
        seq: 10,
        timestamp_ns: 11,
        kind: EventKind::Block as u16,
        reserved: [0; 3],
        thread: me.0,
        args: [1, 2, 3],
    };
    let event = Event::from(&trace);
    assert_eq!(event.event_kind(), Some(EventKind::Block));
    assert_eq!(
        (event.seq, event.timestamp_ns, event.args),
        (10, 11, [1, 2, 3])
    );
    assert_eq!(TraceEvent::from(&event), trace);

    let line = LogLine {
        seq: 0,
        timestamp_ns: 0,
        level: 1,
        text: String::new(),
    };
    assert_eq!(line.log_level(), Some(vigil_abi::log::LogLevel::Warn));
}

/// A payload ending exactly on a 254-byte COBS run: the canonical frame has no final 0x01
/// code byte, and decoders accept it with one too (docs/protocol.md, 2.2).
#[test]
fn cobs_full_run_at_end_in_both_forms() {
    // A Vec<u8> of 248 bytes: 2 length bytes + 248 = 250 body bytes, + 4 CRC = 254.
    let value = (0u8..=255)
        .map(|seed| vec![seed.max(1); 248])
        .find(|v| {
            let body = postcard::to_allocvec(v).unwrap();
            !body.contains(&0) && !crc32fast::hash(&body).to_le_bytes().contains(&0)
        })
        .unwrap();
    let mut canonical = Vec::new();
    encode_frame(&value, &mut canonical).unwrap();
    assert_eq!(canonical.len(), 1 + 254 + 1);
    assert_eq!(canonical[0], 0xff);
    let mut long_form = canonical[..255].to_vec();
    long_form.extend([0x01, 0x00]);
    assert_eq!(decode_frame::<Vec<u8>>(&canonical), Ok(value.clone()));
    assert_eq!(decode_frame::<Vec<u8>>(&long_form), Ok(value));
}

/// docs/protocol.md states the event kinds, state codes, frame indices and example bytes that
/// the code uses.
#[test]
fn protocol_doc_matches_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/protocol.md");
    let doc = std::fs::read_to_string(path).expect("docs/protocol.md");
    let hex = |bytes: &[u8]| {
        bytes
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(" ")
    };

    for kind in EventKind::ALL {
        let row = format!("| {} | `{}` |", kind as u16, kind.name());
        assert!(doc.contains(&row), "missing event kind row {row}");
    }
    assert!(
        doc.contains(&format!("({:#X})", vigil_abi::trace::DEFAULT_EVENT_MASK).replace("0X", "0x"))
    );
    use vigil_abi::introspect::state_code::*;
    for (code, name) in [
        (FREE, "free"),
        (READY, "ready"),
        (RUNNING, "running"),
        (SENDING, "sending"),
        (RECEIVING, "receiving"),
        (AWAITING_REPLY, "awaiting reply"),
        (MUTEX, "mutex"),
        (SLEEPING, "sleeping"),
        (JOINING, "joining"),
        (DEAD, "dead"),
    ] {
        let row = format!("| {code} | {name}");
        assert!(doc.contains(&row), "missing state row {row}");
    }
    for (index, frame) in every_kernel_frame().iter().enumerate() {
        let name = format!("{:?}", frame);
        let variant = name.split('(').next().unwrap();
        let row = format!("| {index} | `{variant}` |");
        assert!(doc.contains(&row), "missing kernel frame row {row}");
    }
    for (index, variant) in [
        "Hello",
        "SetEventMask",
        "SetSnapshotPeriod",
        "SnapshotNow",
        "ProcessCommand",
        "ProcessTreeNow",
        "ServiceCommand",
        "ServiceListNow",
    ]
    .iter()
    .enumerate()
    {
        let row = format!("| {index} | `{variant}");
        assert!(doc.contains(&row), "missing host frame row {row}");
    }
    assert!(doc.contains(&format!("{MAX_FRAME_BYTES}").replace("262144", "262,144")));
    assert!(doc.contains(&format!("= {}", MAX_ENCODED_FRAME_BYTES).replace("263177", "263,177")));
    assert!(doc.contains(&format!("`PROTOCOL_VERSION` is {PROTOCOL_VERSION}.")));
    for outcome in vigil_abi::host_command::Outcome::ALL {
        let row = format!("| {} | `{}` |", outcome as u8, outcome.name());
        assert!(doc.contains(&row), "missing outcome row {row}");
    }
    assert!(doc.contains("frame   09 04 01 02 05 71 B4 B8 ED 00"));
    assert!(doc.contains("frame   03 09 03 08 02 6F 6B 6D 91 EC EA 00"));

    let mut frame = Vec::new();
    encode_host_frame(
        &HostFrame::Hello {
            protocol_version: PROTOCOL_VERSION,
        },
        &mut frame,
    );
    assert!(doc.contains(&format!("frame   {}", hex(&frame))));
    assert!(doc.contains(&format!("`00 {}`", hex(&frame))));
    frame.clear();
    encode_kernel_frame(&every_kernel_frame()[3], &mut frame);
    assert!(doc.contains(&format!("frame   {}", hex(&frame))));
}

static PROGRESS_CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn count_progress() {
    PROGRESS_CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

#[test]
fn a_long_encoding_reports_progress_every_16_kib_and_encodes_the_same_bytes() {
    let events: Vec<Event> = (0..4000u64)
        .map(|i| Event {
            seq: i,
            timestamp_ns: i * 1_000_003,
            kind: 1,
            thread: i,
            args: [i, i * 7, u64::MAX - i],
        })
        .collect();
    let frame = KernelFrame::Events(events);
    let mut plain = Vec::new();
    let length = try_encode_kernel_frame(&frame, &mut plain).unwrap();
    let mut reported = Vec::new();
    assert_eq!(
        try_encode_kernel_frame_reporting(&frame, &mut reported, count_progress),
        Ok(length)
    );
    assert_eq!(
        reported, plain,
        "progress reports change nothing in the bytes"
    );
    let body = postcard::to_allocvec(&frame).unwrap().len();
    assert!(
        body > 3 * PROGRESS_BYTES,
        "the frame spans several intervals"
    );
    assert_eq!(
        PROGRESS_CALLS.load(std::sync::atomic::Ordering::SeqCst),
        body / PROGRESS_BYTES
    );
}

/// The process-command examples of docs/protocol.md (section 9.4), byte for byte.
#[test]
fn process_command_examples_are_exact() {
    let mut out = Vec::new();
    encode_host_frame(
        &HostFrame::ProcessCommand(ProcessCommand {
            request: 1,
            action: ProcessAction::Kill,
            pid: 5,
        }),
        &mut out,
    );
    assert_eq!(
        out,
        [0x09, 0x04, 0x01, 0x02, 0x05, 0x71, 0xB4, 0xB8, 0xED, 0x00]
    );
    let mut out = Vec::new();
    encode_kernel_frame(
        &KernelFrame::ProcessResult(ProcessResult {
            request: 3,
            outcome: 0,
            message: "ok".into(),
        }),
        &mut out,
    );
    assert_eq!(
        out,
        [0x03, 0x09, 0x03, 0x08, 0x02, 0x6F, 0x6B, 0x6D, 0x91, 0xEC, 0xEA, 0x00]
    );
}

/// A process command with an action this crate does not know (index 3 and up), or cut
/// short, is Malformed: the kernel counts it and carries on with the next frame.
#[test]
fn a_process_command_with_an_unknown_action_is_malformed() {
    let mut stream = Vec::new();
    encode_payload(&[0x04, 0x01, 0x03, 0x05], &mut stream);
    encode_payload(&[0x04, 0x01], &mut stream);
    encode_payload(&[0x05], &mut stream);
    encode_host_frame(&HostFrame::ProcessTreeNow { request: 9 }, &mut stream);
    let mut decoder = HostFrameDecoder::new();
    let results = decode_all(&mut decoder, &stream);
    assert_eq!(
        results,
        [
            Err(DecodeError::Malformed),
            Err(DecodeError::Malformed),
            Err(DecodeError::Malformed),
            Ok(HostFrame::ProcessTreeNow { request: 9 })
        ]
    );
    assert_eq!(decoder.stats().malformed, 3);
}

#[test]
fn process_results_name_their_outcome() {
    let result = |outcome| ProcessResult {
        request: 1,
        outcome,
        message: String::new(),
    };
    assert!(result(0).ok());
    assert_eq!(result(0).outcome_name(), Some("ok"));
    assert_eq!(result(2).outcome_name(), Some("refused"));
    assert_eq!(result(6).outcome_name(), Some("no process manager"));
    assert!(!result(8).ok());
    assert_eq!(result(200).outcome_name(), None);
}
