//! `bench_update`: the live-update benchmark of `cargo xtask bench` (its own boot: VM, PM,
//! DS, RS with this program as its operator, hello and the versions it is updated to).
//! The main thread is RS's operator: it asks RS to update hello (`UPDATE`, answered when
//! the update ends) while a second thread, the client, sends hello GETs back to back and
//! reads which version answered each (`hello::reply::VERSION`). Before each update the
//! operator increments hello once (exactly once, `exactly_once::Client`), so DS holds a
//! counter and a client record to hand over, and every GET must answer that counter: the
//! state crossed the update (or the rollback) whole. Times are the client's `rdtsc`
//! (instructions under `-icount shift=0`):
//! - `update_downtime`: updates alternating `hello_v2` and `hello_v3`, from the last reply
//!   of the old version to the first of the new one;
//! - `update_rollback_crash`: updates to `hello_crashy` (`crash-after=2`: it answers one
//!   GET, then crashes at the next), from sending the GET it crashes at to the old
//!   version's answer to it (the client's `call_service` retries it after `Restarted`);
//! - `update_rollback_init`: updates to `hello_failinit` (`fail-init`: it exits at its
//!   first message instead of initialising), the longest wait for any reply while the
//!   update runs (the client never sees the failed version, only the gap it leaves).
//!
//! Prints `bench: <name> median_cycles=… min_cycles=… iterations=… max_cycles=…` per row,
//! then `bench: done`, and shuts down; `bench: FAIL: …` if an update did not go as it must.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use vigil_programs::{lookup_with_retry, median_and_min};
use vigil_rt::abi::rs::{hello, pack_name, request, update, RS_SERVER_NAME};
use vigil_rt::exactly_once::Client;
use vigil_rt::{ipc, println, process, thread, tsc, Endpoint, Error, Message};

vigil_rt::entry!(main);

/// Updates timed per row.
const SAMPLES: u64 = 12;

/// The versions `update_downtime` alternates between (program, `version=`).
const GOOD_VERSIONS: [(&str, u64); 2] = [("hello_v2", 2), ("hello_v3", 3)];
/// The candidate that crashes at its second request, and its version.
const CRASHY: (&str, u64) = ("hello_crashy", 9);
/// The candidate that fails to initialise.
const FAIL_INIT: &str = "hello_failinit";

/// What the client measures in a round.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The old version's last reply to the new version's first.
    Downtime = 1,
    /// The request the candidate crashes at, to the old version's answer to it.
    CrashRollback = 2,
    /// The longest gap between two replies until the operator's UPDATE is answered.
    LongestGap = 3,
}

impl Kind {
    fn from_code(code: u64) -> Option<Kind> {
        [Kind::Downtime, Kind::CrashRollback, Kind::LongestGap]
            .into_iter()
            .find(|kind| *kind as u64 == code)
    }
}

/// What the two threads share: the operator starts round N (`round`, with its `kind`, the
/// candidate's `version` and hello's `counter` stored first), the client says it is
/// sending (`hammering`),
/// the operator says when RS answered (`answered`), the client leaves its figure in
/// `sample` (`FAILED` if the round went wrong, with `failure` saying how) and then sets
/// `measured`.
struct Rounds {
    round: AtomicU64,
    kind: AtomicU64,
    version: AtomicU64,
    counter: AtomicU64,
    hammering: AtomicU64,
    answered: AtomicU64,
    sample: AtomicU64,
    failure: AtomicU64,
    measured: AtomicU64,
}

static ROUNDS: Rounds = Rounds {
    round: AtomicU64::new(0),
    kind: AtomicU64::new(0),
    version: AtomicU64::new(0),
    counter: AtomicU64::new(0),
    hammering: AtomicU64::new(0),
    answered: AtomicU64::new(0),
    sample: AtomicU64::new(0),
    failure: AtomicU64::new(0),
    measured: AtomicU64::new(0),
};

/// A round's sample that is no figure.
const FAILED: u64 = u64::MAX;

/// How the client saw a round go wrong (`Rounds::failure`).
mod failure {
    pub const GET_FAILED: u64 = 1;
    pub const UNEXPECTED_VERSION: u64 = 2;
    pub const NO_NEW_VERSION: u64 = 3;
    pub const CRASH_NOT_RETRIED: u64 = 4;
    pub const NOT_ROLLED_BACK: u64 = 5;
    pub const COUNTER_LOST: u64 = 6;

    pub fn text(code: u64) -> &'static str {
        match code {
            GET_FAILED => "a GET failed",
            UNEXPECTED_VERSION => "a reply came from a version that should not serve",
            NO_NEW_VERSION => "RS answered before the client saw the new version",
            CRASH_NOT_RETRIED => "the request the candidate crashed at was not retried",
            NOT_ROLLED_BACK => "the old version did not answer after the candidate's crash",
            COUNTER_LOST => "a GET answered another counter than the operator's last increment",
            _ => "unknown",
        }
    }
}

/// One GET through `call_service`: the version that answered and the retries it took;
/// the counter it answered must be the round's.
fn get(hello: Endpoint) -> Result<(u64, u32), u64> {
    let mut message = Message::with_payload(hello::request::GET, [0; 6]);
    match ipc::call_service(hello, &mut message) {
        Ok(retries)
            if message.kind == hello::request::REPLY
                && message.payload[hello::reply::STATUS] == 0 =>
        {
            if message.payload[hello::reply::COUNTER] == ROUNDS.counter.load(Ordering::Acquire) {
                Ok((message.payload[hello::reply::VERSION], retries))
            } else {
                Err(failure::COUNTER_LOST)
            }
        }
        _ => Err(failure::GET_FAILED),
    }
}

/// Whether RS has answered the operator's UPDATE of `round` (the update is over).
fn answered(round: u64) -> bool {
    ROUNDS.answered.load(Ordering::Acquire) >= round
}

/// `Downtime`: GETs until the new version answers; the old one's last reply to its first.
fn measure_downtime(hello: Endpoint, round: u64, old: u64, new: u64) -> Result<u64, u64> {
    let mut last_old = tsc();
    loop {
        let (version, _) = get(hello)?;
        let now = tsc();
        if version == new {
            return Ok(now.wrapping_sub(last_old));
        }
        if version != old {
            return Err(failure::UNEXPECTED_VERSION);
        }
        if answered(round) {
            return Err(failure::NO_NEW_VERSION);
        }
        last_old = now;
    }
}

/// `CrashRollback`: GETs until the candidate answers one; the next is the one it crashes
/// at, retried after `Restarted` and answered by the old version.
fn measure_crash_rollback(hello: Endpoint, round: u64, old: u64, new: u64) -> Result<u64, u64> {
    loop {
        let (version, _) = get(hello)?;
        if version == new {
            break;
        }
        if version != old {
            return Err(failure::UNEXPECTED_VERSION);
        }
        if answered(round) {
            return Err(failure::NO_NEW_VERSION);
        }
    }
    let sent = tsc();
    let (version, retries) = get(hello)?;
    let elapsed = tsc().wrapping_sub(sent);
    if retries == 0 {
        return Err(failure::CRASH_NOT_RETRIED);
    }
    if version != old {
        return Err(failure::NOT_ROLLED_BACK);
    }
    Ok(elapsed)
}

/// `LongestGap`: GETs until the operator's UPDATE is answered, every one answered by the
/// old version; the longest time between two replies.
fn measure_longest_gap(hello: Endpoint, round: u64, old: u64) -> Result<u64, u64> {
    let mut last = tsc();
    let mut longest = 0;
    while !answered(round) {
        let (version, _) = get(hello)?;
        let now = tsc();
        if version != old {
            return Err(failure::UNEXPECTED_VERSION);
        }
        longest = longest.max(now.wrapping_sub(last));
        last = now;
    }
    Ok(longest)
}

/// The client thread: waits for each round, sends GETs through it, leaves its figure.
fn client(hello: Endpoint) {
    let mut done = 0;
    loop {
        let round = ROUNDS.round.load(Ordering::Acquire);
        if round == done {
            thread::sleep(Duration::from_millis(1));
            continue;
        }
        let kind = Kind::from_code(ROUNDS.kind.load(Ordering::Acquire));
        let new = ROUNDS.version.load(Ordering::Acquire);
        let result = get(hello).and_then(|(old, _)| {
            ROUNDS.hammering.store(round, Ordering::Release);
            match kind {
                Some(Kind::Downtime) => measure_downtime(hello, round, old, new),
                Some(Kind::CrashRollback) => measure_crash_rollback(hello, round, old, new),
                Some(Kind::LongestGap) => measure_longest_gap(hello, round, old),
                None => Err(failure::UNEXPECTED_VERSION),
            }
        });
        // Tell the operator even when the first GET failed (it waits for `hammering`).
        ROUNDS.hammering.store(round, Ordering::Release);
        match result {
            Ok(sample) => ROUNDS.sample.store(sample, Ordering::Relaxed),
            Err(code) => {
                ROUNDS.failure.store(code, Ordering::Relaxed);
                ROUNDS.sample.store(FAILED, Ordering::Relaxed);
            }
        }
        ROUNDS.measured.store(round, Ordering::Release);
        done = round;
    }
}

/// Sleeps until `counter` reaches `round`.
fn wait_for(counter: &AtomicU64, round: u64) {
    while counter.load(Ordering::Acquire) < round {
        thread::sleep(Duration::from_millis(1));
    }
}

/// One request to RS: the reply's payload, or RS's refusal.
fn call_rs(rs: Endpoint, kind: u32, payload: [u64; 6]) -> Result<[u64; 6], Error> {
    ipc::request(rs, kind, payload, request::REPLY)
}

/// The operator's side of the benchmark.
struct Operator {
    rs: Endpoint,
    index: u64,
    round: u64,
    /// Its exactly-once increments of hello.
    hello: Client,
}

impl Operator {
    /// One round: the client starts sending, RS updates hello to `program` (a candidate of
    /// `version`), the client's figure. `expected` is what RS's answer must be.
    fn round(
        &mut self,
        kind: Kind,
        program: &str,
        version: u64,
        expected: Result<(), Error>,
    ) -> Result<u64, String> {
        self.round += 1;
        let round = self.round;
        let reply = self
            .hello
            .call(hello::request::INCREMENT, [0; 6])
            .map_err(|error| format!("INCREMENT before round {round}: {error}"))?;
        if reply.payload[hello::reply::STATUS] != 0 {
            return Err(format!("INCREMENT before round {round} refused"));
        }
        ROUNDS
            .counter
            .store(reply.payload[hello::reply::COUNTER], Ordering::Release);
        ROUNDS.kind.store(kind as u64, Ordering::Release);
        ROUNDS.version.store(version, Ordering::Release);
        ROUNDS.round.store(round, Ordering::Release);
        wait_for(&ROUNDS.hammering, round);
        let payload = update::pack(self.index, program, 0)
            .map_err(|error| format!("packing '{program}': {error}"))?;
        let answer = call_rs(self.rs, request::UPDATE, payload).map(|_| ());
        ROUNDS.answered.store(round, Ordering::Release);
        wait_for(&ROUNDS.measured, round);
        if answer != expected {
            return Err(format!(
                "the update to '{program}' answered {answer:?}, not {expected:?}"
            ));
        }
        match ROUNDS.sample.load(Ordering::Relaxed) {
            FAILED => Err(format!(
                "round {round} (update to '{program}'): {}",
                failure::text(ROUNDS.failure.load(Ordering::Relaxed))
            )),
            sample => Ok(sample),
        }
    }

    /// `SAMPLES` rounds; prints the row.
    fn row(
        &mut self,
        name: &str,
        kind: Kind,
        candidate: impl Fn(u64) -> (&'static str, u64),
        expected: Result<(), Error>,
    ) -> Result<(), String> {
        let mut samples: Vec<u64> = Vec::new();
        for sample in 0..SAMPLES {
            let (program, version) = candidate(sample);
            samples.push(self.round(kind, program, version, expected)?);
        }
        let max = samples.iter().copied().max().unwrap_or(0);
        let (median, min) = median_and_min(&mut samples).unwrap_or((0, 0));
        println!(
            "bench: {name} median_cycles={median} min_cycles={min} iterations={} max_cycles={max}",
            samples.len()
        );
        Ok(())
    }
}

fn run() -> Result<(), String> {
    let rs = lookup_with_retry(RS_SERVER_NAME)?;
    let hello = lookup_with_retry(hello::SERVICE_NAME)?;
    let packed = pack_name(hello::SERVICE_NAME).map_err(|error| format!("{error}"))?;
    let index = call_rs(rs, request::SERVICE_INDEX, packed)
        .map_err(|error| format!("RS does not know '{}': {error}", hello::SERVICE_NAME))?[1];
    let mut operator = Operator {
        rs,
        index,
        round: 0,
        hello: Client::new(hello::SERVICE_NAME),
    };
    match get(hello) {
        Ok((1, _)) => {}
        Ok((version, _)) => return Err(format!("hello answers as version {version}, not 1")),
        Err(code) => return Err(String::from(failure::text(code))),
    }
    // The client runs until the machine shuts down.
    let _client = thread::try_spawn(move || client(hello))
        .map_err(|error| format!("the client thread: {error}"))?;
    operator.row(
        "update_downtime",
        Kind::Downtime,
        |sample| GOOD_VERSIONS[(sample % 2) as usize],
        Ok(()),
    )?;
    operator.row(
        "update_rollback_crash",
        Kind::CrashRollback,
        |_| CRASHY,
        Err(Error::Restarted),
    )?;
    operator.row(
        "update_rollback_init",
        Kind::LongestGap,
        |_| (FAIL_INIT, 0),
        Err(Error::Restarted),
    )
}

fn main(_args: &str) -> i32 {
    match run() {
        Ok(()) => {
            println!("bench: done");
            process::shutdown(true)
        }
        Err(why) => {
            println!("bench: FAIL: {why}");
            process::shutdown(false)
        }
    }
}
