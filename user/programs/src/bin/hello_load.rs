//! `hello_load`: the small client load of the default `cargo xtask run`. It increments
//! `hello_service` every 100 ms, exactly once (`vigil_rt::exactly_once::Client`: request
//! ids, and a request the dying instance held resent to the endpoint RS keeps), and prints
//! the counter every second with the increments acknowledged, those resent, and how far
//! the counter is from what it acknowledged since its first answer (lost, doubled: 0 and
//! 0 when hello keeps its state in DS; without DS a restart starts the counter at 0).
//!
//! With the argument `demo` (`cargo xtask run --demo`) the increments run in a second
//! thread and the main thread does one thing to hello every 5 s, in turn: crashes it by a
//! null dereference, by a panic, live-updates it to the next version (`hello_v2`, then
//! `hello_v3`, `hello_v2` …: two program names, so each update is to a program other
//! than the running one), ends it by an exit, live-updates it to `hello_crashy` (a
//! candidate that crashes in its grace period, so RS rolls the update back), and hangs it
//! (RS's heartbeats catch it). Someone watching `vigil top` sees RS restart hello, its
//! version change and the counter carry on. One plain line per step says what was done
//! and how it ended. `demo=MS` sets the period. The updates need the main thread to be
//! one of RS's operators (`operator=…+hello_load` on RS's boot line, which `--demo` sets)
//! and the versions booted as `boot=pm` modules; without them the update steps print
//! RS's refusal and the demo carries on.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use vigil_rt::abi::rs::{self, hello, pack_name, RS_SERVER_NAME};
use vigil_rt::abi::server_introspect::text_of;
use vigil_rt::exactly_once::Client;
use vigil_rt::{ipc, println, server_introspect, thread, Endpoint, Error, Message};

vigil_rt::entry!(main);

/// Between increments.
const PERIOD: Duration = Duration::from_millis(100);
/// Increments between two counter lines (one a second).
const REPORT_EVERY: u64 = 10;
/// Default time between two demo steps.
const DEMO_PERIOD_MS: u64 = 5000;
/// Shortest `demo=MS`.
const MIN_DEMO_PERIOD_MS: u64 = 100;

/// A program hello can be updated to: its `boot=pm` module name and the `version=N` it
/// answers GET with (`hello::reply::VERSION`), by which the demo sees who answers.
#[derive(Clone, Copy)]
struct Program {
    name: &'static str,
    label: u64,
}

/// hello as booted.
const FIRST: Program = Program {
    name: hello::SERVICE_NAME,
    label: 1,
};
/// The good versions the demo updates to in turn (`cargo xtask run --demo` boots them:
/// `hello_service name=hello_v2 boot=pm -- version=2`, `… hello_v3 … version=3`).
const VERSIONS: [Program; 2] = [
    Program {
        name: "hello_v2",
        label: 2,
    },
    Program {
        name: "hello_v3",
        label: 3,
    },
];
/// The broken version: `crash-after=2` makes it crash at its second request after the
/// swap, inside RS's grace period, so the update is rolled back.
const BROKEN: Program = Program {
    name: "hello_crashy",
    label: 9,
};

/// One thing the demo does to hello.
#[derive(Clone, Copy)]
enum Step {
    /// A request that ends the instance (`how`, the request kind, its argument).
    Crash(&'static str, u32, u64),
    /// A live update to the next of `VERSIONS`.
    Update,
    /// A live update to `BROKEN`, which RS must roll back.
    BrokenUpdate,
}

/// The demo's cycle, one step per period.
const STEPS: [Step; 6] = [
    Step::Crash("a null dereference", hello::request::CRASH, 0),
    Step::Crash("a panic", hello::request::PANIC, 0),
    Step::Update,
    Step::Crash("exit status 3", hello::request::EXIT, 3),
    Step::BrokenUpdate,
    Step::Crash("a hang (RS's heartbeats catch it)", hello::request::HANG, 0),
];

/// The counter of the load's last acknowledged increment (0 before the first), for the
/// demo's "counter kept" check.
static ACKNOWLEDGED_COUNTER: AtomicU64 = AtomicU64::new(0);

fn main(args: &str) -> i32 {
    let demo_ms = match args.trim() {
        "" => None,
        "demo" => Some(DEMO_PERIOD_MS),
        other => match other
            .strip_prefix("demo=")
            .and_then(|ms| ms.parse::<u64>().ok())
        {
            Some(ms) if ms >= MIN_DEMO_PERIOD_MS => Some(ms),
            _ => {
                println!(
                    "usage: hello_load [demo | demo=MS (at least {MIN_DEMO_PERIOD_MS})]; got '{other}'"
                );
                return 1;
            }
        },
    };
    let Some(ms) = demo_ms else {
        run_load();
    };
    println!(
        "demo: every {ms} ms, in turn: crash {} by a null dereference, a panic, update it to \
         the next version, exit status 3, an update that is rolled back, a hang",
        hello::SERVICE_NAME
    );
    // The endpoint RS keeps across restarts and updates: after an update the process
    // at it is named after the new program, so the name would find nothing.
    let hello = match vigil_programs::lookup_with_retry(hello::SERVICE_NAME) {
        Ok(endpoint) => endpoint,
        Err(error) => {
            println!("demo: {error}");
            return 1;
        }
    };
    // The main thread is RS's operator (RS knows operators by their main endpoint), so
    // the increments go on in another thread while it waits for an update's end.
    if let Err(error) = thread::try_spawn(|| run_load()) {
        println!("demo: could not start the load thread: {error}");
        return 1;
    }
    let mut demo = Demo {
        hello,
        running: FIRST,
        updates: 0,
        may_update: true,
    };
    for step in STEPS.iter().cycle() {
        thread::sleep(Duration::from_millis(ms));
        demo.step(*step);
    }
    0
}

/// Increments hello every `PERIOD`, forever.
fn run_load() -> ! {
    let mut load = Load {
        client: Client::new(hello::SERVICE_NAME),
        acknowledged: 0,
        failed: 0,
        base: None,
    };
    loop {
        load.increment();
        thread::sleep(PERIOD);
    }
}

struct Load {
    client: Client,
    acknowledged: u64,
    failed: u64,
    /// The counter before this load's first acknowledged increment.
    base: Option<u64>,
}

impl Load {
    fn increment(&mut self) {
        let answer = self
            .client
            .call(hello::request::INCREMENT, [0; 6])
            .and_then(|reply| Ok(ipc::reply_payload(&reply, hello::request::REPLY)?[1]));
        match answer {
            Ok(counter) => {
                self.acknowledged += 1;
                ACKNOWLEDGED_COUNTER.store(counter, Ordering::Relaxed);
                let base = *self.base.get_or_insert(counter.saturating_sub(1));
                if self.acknowledged.is_multiple_of(REPORT_EVERY) {
                    let moved = counter.saturating_sub(base);
                    println!(
                        "counter {counter} ({} increments acknowledged, {} resent, {} failed; lost {}, doubled {})",
                        self.acknowledged,
                        self.client.retries,
                        self.failed,
                        self.acknowledged.saturating_sub(moved),
                        moved.saturating_sub(self.acknowledged)
                    );
                }
            }
            Err(error) => {
                self.failed += 1;
                println!("increment failed: {error}");
            }
        }
    }
}

/// The demo's side: what it does to hello at the endpoint RS keeps.
struct Demo {
    hello: Endpoint,
    /// The program serving hello now (as far as the demo's updates went).
    running: Program,
    /// Updates done (which of `VERSIONS` is next).
    updates: usize,
    /// Cleared when RS refuses this program as an operator: no more update steps.
    may_update: bool,
}

impl Demo {
    fn step(&mut self, step: Step) {
        match step {
            Step::Crash(how, kind, argument) => self.crash(how, kind, argument),
            Step::Update => {
                let next = VERSIONS[self.updates % VERSIONS.len()];
                // Never to the program running (RS refuses that): the other one.
                let next = if next.name == self.running.name {
                    VERSIONS[(self.updates + 1) % VERSIONS.len()]
                } else {
                    next
                };
                self.update(next, "")
            }
            Step::BrokenUpdate => self.update(BROKEN, " (it crashes in its grace period)"),
        }
    }

    /// Ends hello by `how`: the call does not come back until the instance is gone.
    fn crash(&mut self, how: &str, kind: u32, argument: u64) {
        println!(
            "demo: crashing {} by {how} (counter {})",
            hello::SERVICE_NAME,
            ACKNOWLEDGED_COUNTER.load(Ordering::Relaxed)
        );
        let mut message = Message::with_payload(kind, [argument, 0, 0, 0, 0, 0]);
        // The instance never answers: the call ends with its death (`Restarted`).
        let _ = ipc::send_receive(self.hello, &mut message);
    }

    /// Asks RS to live-update hello to `to` and says how it ended: the version RS serves,
    /// which program answers GET at the kept endpoint, and whether the counter was kept.
    fn update(&mut self, to: Program, note: &str) {
        if !self.may_update {
            return;
        }
        let doing = update_line(to.name, note);
        let before = ACKNOWLEDGED_COUNTER.load(Ordering::Relaxed);
        let answer = rs_update(to.name);
        let (outcome, expected) = match answer {
            Ok(_) => {
                self.updates += 1;
                self.running = to;
                (UpdateEnd::Done, to)
            }
            Err(Error::Restarted) => (UpdateEnd::RolledBack, self.running),
            Err(Error::Interrupted) => (UpdateEnd::Cancelled, self.running),
            Err(Error::PermissionDenied) => {
                self.may_update = false;
                println!(
                    "{doing} refused: hello_load is not one of RS's operators (RS's boot line \
                     needs operator=service+hello_load); the demo goes on without updates"
                );
                return;
            }
            Err(Error::Exists) => {
                // An operator (`vigil top`'s P, `service update`) updated hello meanwhile.
                self.running = to;
                println!(
                    "{doing} refused: EEXIST ('{}' is already the running program); the demo goes on",
                    to.name
                );
                return;
            }
            Err(error) => {
                println!(
                    "{doing} refused: {error} (is '{}' a boot=pm module?); the demo goes on",
                    to.name
                );
                return;
            }
        };
        let serving = match serving_version() {
            Ok(version) => version,
            Err(error) => {
                println!("{doing} {outcome}, but RS's record could not be read: {error}");
                return;
            }
        };
        let (counter, label) = match get(self.hello) {
            Ok(answer) => answer,
            Err(error) => {
                println!("{doing} {outcome}, version {serving} serving, but GET failed: {error}");
                return;
            }
        };
        // What answers is what runs, whatever the demo expected (an operator may have
        // updated hello between two steps): the next step starts from it.
        if let Some(program) = [FIRST, VERSIONS[0], VERSIONS[1], BROKEN]
            .into_iter()
            .find(|program| program.label == label)
        {
            self.running = program;
        }
        let answers = if label == expected.label {
            format!("{} answers", expected.name)
        } else {
            format!(
                "but version={label} answers, not {} (version={})",
                expected.name, expected.label
            )
        };
        let kept = if counter >= before {
            format!("counter kept at {counter}")
        } else {
            format!("counter went back from {before} to {counter}")
        };
        println!("{doing} {outcome}, version {serving} serving ({answers}), {kept}");
    }
}

/// How an update ended, as the demo's line says it.
enum UpdateEnd {
    Done,
    RolledBack,
    Cancelled,
}

impl core::fmt::Display for UpdateEnd {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            UpdateEnd::Done => write!(f, "done"),
            UpdateEnd::RolledBack => write!(f, "rolled back (RS's console says why)"),
            UpdateEnd::Cancelled => write!(f, "cancelled before the swap"),
        }
    }
}

/// The start of an update step's line.
fn update_line(program: &str, note: &str) -> String {
    format!(
        "demo: updating {} to {program}{note} ...",
        hello::SERVICE_NAME
    )
}

/// One request to RS: the reply's payload, or its refusal.
fn rs_call(kind: u32, payload: [u64; 6]) -> Result<[u64; 6], Error> {
    ipc::request(
        ipc::lookup(RS_SERVER_NAME)?,
        kind,
        payload,
        rs::request::REPLY,
    )
}

/// RS's `UPDATE` of hello to `program`, answered when the update ends (with the new
/// version, which the demo reads from RS's record instead, as for a rollback).
fn rs_update(program: &str) -> Result<u64, Error> {
    let index = rs_call(rs::request::SERVICE_INDEX, pack_name(hello::SERVICE_NAME)?)?[1];
    let payload = rs::update::pack(index, program, 0)?;
    Ok(rs_call(rs::request::UPDATE, payload)?[1])
}

/// The version RS's record says hello runs (its INTROSPECT services topic).
fn serving_version() -> Result<u32, Error> {
    let rs = ipc::lookup(RS_SERVER_NAME)?;
    server_introspect::services(rs)?
        .into_iter()
        .find(|record| text_of(&record.name) == hello::SERVICE_NAME.as_bytes())
        .map(|record| record.version)
        .ok_or(Error::NotFound)
}

/// GET at the kept endpoint: the counter and the answering version's label. A GET the
/// instance died holding (`Restarted`) is asked again, a few times.
fn get(hello: Endpoint) -> Result<(u64, u64), Error> {
    let mut last = Error::Restarted;
    for _ in 0..3 {
        let mut message = Message::new(hello::request::GET);
        match ipc::send_receive(hello, &mut message) {
            Ok(_) => {
                let reply = ipc::reply_payload(&message, hello::request::REPLY)?;
                return Ok((reply[hello::reply::COUNTER], reply[hello::reply::VERSION]));
            }
            Err(Error::Restarted) => last = Error::Restarted,
            Err(error) => return Err(error),
        }
    }
    Err(last)
}
