//! The IPC fast path's observability, judged from the raw event stream: a client's
//! `SendReceive` and a server's `ReplyReceive` (memory or register messages) must leave the
//! same ten events per round trip on the fast path (one compact trace record per call) as on
//! the slow path (`ipc_fastpath=off`, each event recorded on its own) — the same kinds,
//! threads and arguments, in the same order.
//!
//! The stream is seen from reset (`from_reset`), so every round trip of `pingpong_client`
//! is in it; the check finds the client and the server by the first PING, keeps the IPC and
//! scheduling events (the other kinds — interrupts, for one — may fall anywhere) and counts
//! the round trips that are exactly the expected ten.

use vigil_abi::introspect::state_code;
use vigil_abi::trace::EventKind;
use vigil_abi::Endpoint;
use vigil_wire::{Event, KernelFrame};

use super::session::Observation;

/// `pingpong_client`'s round trips.
const ROUND_TRIPS: usize = 1000;
/// Round trips that may differ from the pattern: the first (the server's first receive is a
/// plain `Receive`, and the client's lookup precedes it).
const ALLOWED_OTHERS: usize = 2;
/// The message kinds of `vigil_programs::kinds`.
const PING: u64 = 0x100;
const PONG: u64 = 0x101;

/// The kinds a round trip's events have; the others are left out before matching.
const ROUND_TRIP_KINDS: [EventKind; 5] = [
    EventKind::IpcReceive,
    EventKind::IpcSend,
    EventKind::Unblock,
    EventKind::Block,
    EventKind::ContextSwitch,
];

/// One event as the check compares it: kind, thread, arguments.
type Shape = (u16, u64, [u64; 3]);

/// The ten events of one round trip between `client` and `server`, in the slow path's
/// order: the client's call delivers the PING (the server's `IpcReceive`, the client's
/// `IpcSend`), the server's receive finishes (`Unblock`, result 0), the client blocks
/// awaiting the reply and the CPU goes to the server; then the same for the PONG, with the
/// server blocking in its receive from ANY.
pub fn round_trip(client: Endpoint, server: Endpoint) -> [Shape; 10] {
    let (c, s) = (client.0, server.0);
    let awaiting = u64::from(state_code::AWAITING_REPLY);
    let receiving = u64::from(state_code::RECEIVING);
    let kind = |k: EventKind| k as u16;
    [
        (kind(EventKind::IpcReceive), s, [c, PING, 0]),
        (kind(EventKind::IpcSend), c, [s, PING, 0]),
        (kind(EventKind::Unblock), s, [0, 0, 0]),
        (kind(EventKind::Block), c, [awaiting, s, 0]),
        (kind(EventKind::ContextSwitch), s, [c, awaiting, 0]),
        (kind(EventKind::IpcReceive), c, [s, PONG, 0]),
        (kind(EventKind::IpcSend), s, [c, PONG, 0]),
        (kind(EventKind::Unblock), c, [0, 0, 0]),
        (kind(EventKind::Block), s, [receiving, Endpoint::ANY.0, 0]),
        (kind(EventKind::ContextSwitch), c, [s, receiving, 0]),
    ]
}

/// Which path the kernel was booted to take, told by the timestamps: a fast call's five
/// events are one compact record with one timestamp; the slow path records the delivery
/// pair, the `Unblock`, the `Block` and the `ContextSwitch` at separate instants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    Fast,
    Slow,
}

/// The check of a fast-path row (`Path::Fast`).
pub fn check_fast_round_trip_events(observation: &Observation) -> Result<String, String> {
    check_round_trip_events(observation, Path::Fast)
}

/// The check of a row booted with `ipc_fastpath=off` (`Path::Slow`).
pub fn check_slow_round_trip_events(observation: &Observation) -> Result<String, String> {
    check_round_trip_events(observation, Path::Slow)
}

/// The monitor check: every event from reset, none dropped, at least all but
/// [`ALLOWED_OTHERS`] of the client's round trips exactly [`round_trip`], and each of their
/// two calls taken on `path`.
fn check_round_trip_events(observation: &Observation, path: Path) -> Result<String, String> {
    let mut events: Vec<Event> = Vec::new();
    let mut dropped = 0;
    for frame in &observation.proxy.frames {
        match &frame.frame {
            KernelFrame::Events(batch) => events.extend(batch.iter().copied()),
            KernelFrame::Drops(drops) => dropped = dropped.max(drops.events_dropped),
            _ => {}
        }
    }
    if dropped != 0 {
        return Err(format!("the kernel dropped {dropped} events"));
    }
    verdict(&events, path)
}

/// [`check_round_trip_events`] on the decoded events.
fn verdict(events: &[Event], path: Path) -> Result<String, String> {
    let mut seen: Vec<&Event> = events.iter().collect();
    seen.sort_by_key(|event| event.seq);
    seen.dedup_by_key(|event| event.seq);
    if let Some(gap) = seen.windows(2).find(|pair| pair[1].seq != pair[0].seq + 1) {
        return Err(format!(
            "events #{} to #{} are missing from the stream",
            gap[0].seq + 1,
            gap[1].seq - 1
        ));
    }
    let first_ping = seen
        .iter()
        .find(|e| e.kind == EventKind::IpcSend as u16 && e.args[1] == PING)
        .ok_or("no PING was sent (no IpcSend of kind 0x100)")?;
    let (client, server) = (Endpoint(first_ping.thread), Endpoint(first_ping.args[0]));
    let wanted: Vec<u16> = ROUND_TRIP_KINDS.iter().map(|&k| k as u16).collect();
    let kept_events: Vec<&&Event> = seen.iter().filter(|e| wanted.contains(&e.kind)).collect();
    let kept: Vec<Shape> = kept_events
        .iter()
        .map(|e| (e.kind, e.thread, e.args))
        .collect();
    let pattern = round_trip(client, server);
    let pings = kept
        .iter()
        .filter(|&&(kind, thread, args)| {
            kind == EventKind::IpcSend as u16 && thread == client.0 && args[1] == PING
        })
        .count();
    // Each exact round trip starts with the server's IpcReceive of a PING.
    let mut exact = 0;
    // Calls of exact round trips whose five events share one timestamp.
    let mut one_instant = 0;
    let mut first_other = None;
    for (at, shape) in kept.iter().enumerate() {
        if !(shape.0 == EventKind::IpcReceive as u16 && shape.1 == server.0 && shape.2[1] == PING) {
            continue;
        }
        match kept.get(at..at + pattern.len()) {
            Some(window) if window == pattern => {
                exact += 1;
                // The two calls: events 0..5 and 5..10 of the round trip.
                for call in [at..at + 5, at + 5..at + 10] {
                    let stamps = &kept_events[call];
                    if stamps
                        .iter()
                        .all(|e| e.timestamp_ns == stamps[0].timestamp_ns)
                    {
                        one_instant += 1;
                    }
                }
            }
            window if first_other.is_none() => {
                first_other = Some(window.unwrap_or(&kept[at..]).to_vec())
            }
            _ => {}
        }
    }
    if pings != ROUND_TRIPS {
        return Err(format!(
            "{pings} PINGs from {client} to {server} in the stream, expected {ROUND_TRIPS}"
        ));
    }
    if exact + ALLOWED_OTHERS < ROUND_TRIPS {
        return Err(format!(
            "only {exact} of {ROUND_TRIPS} round trips between {client} and {server} are the \
             slow path's ten events; the first that is not: {:?}, expected {pattern:?}",
            first_other.unwrap_or_default()
        ));
    }
    let calls = 2 * exact;
    // A fast call may fall back when something else became ready meanwhile (a timer tick),
    // and two separate instants may read the same clock: 1 % either way.
    let taken = match path {
        // The calls of the exact round trips went fast (a compact record each).
        Path::Fast if one_instant * 100 < calls * 99 => Err(format!(
            "only {one_instant} of the {calls} calls of those round trips have their five \
             events at one instant: the fast path was not taken for the others"
        )),
        // They did not (the slow path's instants differ).
        Path::Slow if one_instant * 100 > calls => Err(format!(
            "{one_instant} of the {calls} calls of those round trips have their five events \
             at one instant, as a compact record gives them, with the fast path off"
        )),
        Path::Fast | Path::Slow => Ok(format!(
            "{one_instant} of their {calls} calls at one instant ({path:?} path)"
        )),
    }?;
    Ok(format!(
        "{exact} of {ROUND_TRIPS} round trips between {client} and {server} exactly the ten \
         events, {taken}, {} events from #0, none dropped",
        seen.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: Endpoint = Endpoint(0x1_0007);
    const SERVER: Endpoint = Endpoint(0x1_0006);

    /// A stream of `rounds` exact round trips with an interrupt between each, numbered
    /// from 0; on `Path::Fast` each call's five events have one timestamp.
    fn stream_on(rounds: usize, path: Path) -> Vec<Event> {
        let mut events = Vec::new();
        for _ in 0..rounds {
            for (kind, thread, args) in round_trip(CLIENT, SERVER) {
                events.push((kind, thread, args));
            }
            events.push((EventKind::Interrupt as u16, CLIENT.0, [32, 0, 0]));
        }
        events
            .into_iter()
            .enumerate()
            .map(|(seq, (kind, thread, args))| Event {
                seq: seq as u64,
                timestamp_ns: match path {
                    Path::Fast => (seq / 11 * 2 + usize::from(seq % 11 >= 5)) as u64,
                    Path::Slow => seq as u64,
                },
                kind,
                thread,
                args,
            })
            .collect()
    }

    fn stream(rounds: usize) -> Vec<Event> {
        stream_on(rounds, Path::Slow)
    }

    #[test]
    fn exact_round_trips_pass_with_other_kinds_between() {
        for path in [Path::Fast, Path::Slow] {
            let verdict = verdict(&stream_on(ROUND_TRIPS, path), path).unwrap();
            assert!(verdict.starts_with("1000 of 1000 round trips"), "{verdict}");
        }
    }

    #[test]
    fn the_timestamps_tell_which_path_ran() {
        let error = verdict(&stream_on(ROUND_TRIPS, Path::Slow), Path::Fast).unwrap_err();
        assert!(error.starts_with("only 0 of the 2000 calls"), "{error}");
        let error = verdict(&stream_on(ROUND_TRIPS, Path::Fast), Path::Slow).unwrap_err();
        assert!(error.starts_with("2000 of the 2000 calls"), "{error}");
        // 20 calls taken slowly among fast ones pass; 21 do not.
        let mut events = stream_on(ROUND_TRIPS, Path::Fast);
        for round in 0..20 {
            events[11 * round + 3].timestamp_ns += 1;
        }
        assert!(verdict(&events, Path::Fast).is_ok());
        events[11 * 20 + 8].timestamp_ns += 1;
        let error = verdict(&events, Path::Fast).unwrap_err();
        assert!(error.starts_with("only 1979 of the 2000 calls"), "{error}");
    }

    #[test]
    fn a_reordered_event_fails_every_round_it_is_in() {
        let mut events = stream(ROUND_TRIPS);
        // Swap Unblock and Block in the first 3 round trips (11 events each): 997 left.
        for round in 0..3 {
            let (unblock, block) = (round * 11 + 2, round * 11 + 3);
            let (a, b) = (events[unblock], events[block]);
            (
                events[unblock].kind,
                events[unblock].thread,
                events[unblock].args,
            ) = (b.kind, b.thread, b.args);
            (events[block].kind, events[block].thread, events[block].args) =
                (a.kind, a.thread, a.args);
        }
        let error = verdict(&events, Path::Slow).unwrap_err();
        assert!(error.starts_with("only 997 of 1000"), "{error}");
    }

    #[test]
    fn a_wrong_argument_or_a_missing_round_fails() {
        let mut events = stream(ROUND_TRIPS);
        for round in 0..ROUND_TRIPS {
            // The ContextSwitch names a state other than AwaitingReply.
            events[round * 11 + 4].args[1] = u64::from(state_code::READY);
        }
        assert!(verdict(&events, Path::Slow)
            .unwrap_err()
            .starts_with("only 0 of 1000"));
        let error = verdict(&stream(ROUND_TRIPS - 1), Path::Slow).unwrap_err();
        assert!(error.contains("999 PINGs"), "{error}");
    }

    #[test]
    fn a_gap_in_the_sequence_fails() {
        let mut events = stream(ROUND_TRIPS);
        events.remove(500);
        let error = verdict(&events, Path::Slow).unwrap_err();
        assert_eq!(error, "events #500 to #500 are missing from the stream");
    }
}
