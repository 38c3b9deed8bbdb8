//! `hello_service`: the counter service RS supervises (like MINIX's /dev/hello), a
//! `boot=pm` image RS spawns through PM. It answers `vigil_abi::rs::hello::request`: GET,
//! INCREMENT and ADD(n) with the counter, SLOW_GET (a GET after a sleep, for a request in
//! flight when the instance is killed), RS's heartbeat pings (a notification from RS,
//! answered with one from its receive loop), and for tests CRASH (a null dereference, which
//! RS sees as the signal manager), PANIC (status 101), EXIT(status) and HANG (it stops
//! answering).
//!
//! Its counter lives in DS (key `hello.state`) with its clients' last completed requests
//! (`vigil_rt::exactly_once::Ledger`): a new instance reads both back, and a request
//! whose id was already completed — a client's retry after a crash — is answered from the
//! record, not executed again. INCREMENT and ADD store the new counter and the reply in one
//! DS publish before answering. Without DS (or if DS refuses it) the counter lives in
//! memory and starts at 0 in every instance.
//!
//! With the argument `crash-on-start` it dereferences null before serving: a service that
//! always crashes, for RS's crash-loop policy. With `stall-on-start` it sleeps forever
//! before serving: a service that never initialises, for RS's init timeout.
//!
//! Live update (`vigil_abi::rs::update`): `version=N` names its version (GET's reply
//! carries it, `hello::reply::VERSION`, so a client sees which version answered); RS appends
//! `update-candidate` to a candidate's arguments, which then reads its state only at its
//! first message after the swap (through the DS identity of the endpoint it was swapped
//! into). It answers RS's `PREPARE` at once (every request commits before its reply).
//! Broken candidates for rollback: `fail-init`, `crash-after=N`, `deaf`, and
//! `ignore-prepare` for a version that never answers `PREPARE`.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use core::time::Duration;

use vigil_rt::abi::exactly_once::Verdict;
use vigil_rt::abi::rs::hello::{flags, reply, request, word, SERVICE_NAME, STATE_KEY};
use vigil_rt::abi::rs::request as rs_request;
use vigil_rt::abi::rs::update::CANDIDATE_ARGUMENT;
use vigil_rt::exactly_once::Ledger;
use vigil_rt::{ipc, println, thread, Endpoint, Error, Message};

vigil_rt::entry!(main);

fn reply_payload(result: Result<u64, Error>) -> [u64; 6] {
    match result {
        Ok(counter) => [0, counter, 0, 0, 0, 0],
        Err(error) => [error as u64, 0, 0, 0, 0, 0],
    }
}

fn send_reply(client: Endpoint, payload: [u64; 6]) {
    if let Err(error) =
        ipc::send_nonblocking(client, &Message::with_payload(request::REPLY, payload))
    {
        println!("reply to {client} dropped: {error}");
    }
}

fn answer(client: Endpoint, result: Result<u64, Error>) {
    send_reply(client, reply_payload(result));
}

fn crash() -> Result<u64, Error> {
    let value = vigil_programs::read_address_zero();
    println!("survived a null dereference ({value:#x})");
    Err(Error::Fault)
}

/// The ledger in DS, or in memory if DS is absent or refuses this process.
fn open_ledger() -> Ledger {
    let initial = 0u64.to_le_bytes();
    // DS knows this process by its name: hello's, unless it runs under another one.
    if ipc::lookup(SERVICE_NAME) != Ok(ipc::self_endpoint()) {
        println!("not running as '{SERVICE_NAME}': the counter lives in memory only");
        return Ledger::in_memory(&initial);
    }
    match Ledger::open(SERVICE_NAME, STATE_KEY, &initial) {
        Ok(ledger) => ledger,
        Err(error) => {
            println!("DS refused the state ({error}): the counter lives in memory only");
            Ledger::in_memory(&initial)
        }
    }
}

fn counter_of(ledger: &Ledger) -> u64 {
    match <[u8; 8]>::try_from(ledger.state()) {
        Ok(bytes) => u64::from_le_bytes(bytes),
        Err(_) => {
            println!(
                "stored state of {} bytes is not a counter: starting at 0",
                ledger.state().len()
            );
            0
        }
    }
}

/// GET, INCREMENT or ADD, exactly once: a completed id is answered from the record; a new
/// INCREMENT or ADD is executed and its new counter and reply stored in one DS publish
/// before the answer. GET's reply names this instance's `version`.
fn counter_request(ledger: &mut Ledger, counter: &mut u64, version: u64, message: &Message) {
    let client = message.source;
    let id = Ledger::request_id(message);
    let request_flags = message.payload[word::FLAGS];
    if request_flags & !flags::ALL != 0 {
        return answer(client, Err(Error::InvalidArgument));
    }
    match ledger.verdict(id) {
        Verdict::Replay(reply) => {
            if let Some(id) = id {
                println!(
                    "request {:#x}:{} answered from the record (not executed again)",
                    id.client, id.sequence
                );
            }
            return send_reply(client, reply);
        }
        Verdict::Stale => {
            if let Some(id) = id {
                println!(
                    "request {:#x}:{} is older than its client's last: refused",
                    id.client, id.sequence
                );
            }
            return answer(client, Err(Error::InvalidArgument));
        }
        Verdict::Execute => {}
    }
    let new = match message.kind {
        request::GET => {
            let mut payload = reply_payload(Ok(*counter));
            payload[reply::VERSION] = version;
            return send_reply(client, payload);
        }
        request::INCREMENT => counter.wrapping_add(1),
        _ => match counter.checked_add(message.payload[word::ARGUMENT]) {
            Some(sum) => sum,
            None => return answer(client, Err(Error::InvalidArgument)),
        },
    };
    let reply = reply_payload(Ok(new));
    if let Err(error) = ledger.commit(id, &new.to_le_bytes(), reply) {
        println!("storing counter {new} failed: {error} (the request is not executed)");
        return answer(client, Err(error));
    }
    *counter = new;
    if request_flags & flags::CRASH_AFTER_COMMIT != 0 {
        println!("crashing after recording counter {new}, before replying (on request)");
        let _ = crash();
    }
    send_reply(client, reply);
}

/// hello's arguments (words, any order).
#[derive(Default)]
struct Options {
    crash_on_start: bool,
    stall_on_start: bool,
    /// Shown in its console lines (`version=N`; 1 if absent).
    version: u64,
    /// Appended by RS to a live-update candidate's arguments: read no state and serve
    /// nothing until the first message after the swap.
    candidate: bool,
    /// Broken candidates, for RS's rollback: exit at the first message instead of
    /// initialising (`fail-init`), crash at the Nth request after initialising
    /// (`crash-after=N`), stop answering pings after the first (`deaf`), never answer
    /// `PREPARE` (`ignore-prepare`).
    fail_init: bool,
    crash_after: Option<u64>,
    deaf: bool,
    ignore_prepare: bool,
}

fn parse_options(args: &str) -> Options {
    let mut options = Options {
        version: 1,
        ..Options::default()
    };
    for word in args.split_ascii_whitespace() {
        match word {
            "crash-on-start" => options.crash_on_start = true,
            "stall-on-start" => options.stall_on_start = true,
            "fail-init" => options.fail_init = true,
            "deaf" => options.deaf = true,
            "ignore-prepare" => options.ignore_prepare = true,
            CANDIDATE_ARGUMENT => options.candidate = true,
            _ => match word.split_once('=') {
                Some(("version", n)) if n.parse::<u64>().is_ok() => {
                    options.version = n.parse().unwrap_or(1)
                }
                Some(("crash-after", n)) if n.parse::<u64>().is_ok() => {
                    options.crash_after = n.parse().ok()
                }
                _ => println!("unknown argument '{word}' ignored"),
            },
        }
    }
    options
}

/// The ledger and counter, opened when the instance starts serving.
fn initialise(inherited: bool) -> (Ledger, u64) {
    let ledger = if inherited {
        // Swapped into the service's endpoint, which DS knows as hello already.
        Ledger::open_inherited(STATE_KEY, &0u64.to_le_bytes()).unwrap_or_else(|error| {
            println!("DS refused the inherited state ({error}): the counter lives in memory only");
            Ledger::in_memory(&0u64.to_le_bytes())
        })
    } else {
        open_ledger()
    };
    let counter = counter_of(&ledger);
    (ledger, counter)
}

fn main(args: &str) -> i32 {
    let options = parse_options(args);
    if options.crash_on_start {
        println!("crashing before serving (crash-on-start)");
        let _ = crash();
        return 1;
    }
    if options.stall_on_start {
        println!("stalling before serving (stall-on-start)");
        loop {
            thread::sleep(Duration::from_secs(1));
        }
    }
    let version = options.version;
    let rs = ipc::lookup(vigil_rt::abi::rs::RS_SERVER_NAME).ok();
    // A candidate takes no state before the swap: the old version still changes it.
    // Under another program name (a later version) it serves hello's state through the
    // DS identity of the kept endpoint, which it holds only from its first message on
    // (after RS's swap or takeover), so it opens its ledger then.
    let inherits = options.candidate || ipc::lookup(SERVICE_NAME) != Ok(ipc::self_endpoint());
    let mut opened = if options.candidate {
        println!(
            "version {version}: update candidate at {}, waiting for the swap",
            ipc::self_endpoint()
        );
        None
    } else if inherits {
        println!(
            "version {version} at {}: taking hello's state at its first message",
            ipc::self_endpoint()
        );
        None
    } else {
        let (ledger, counter) = initialise(false);
        if ledger.is_stored() {
            println!(
                "serving at {} (counter {counter} from DS, {} clients recorded; version {version})",
                ipc::self_endpoint(),
                ledger.clients()
            );
        } else {
            println!(
                "serving at {} (counter {counter}; version {version})",
                ipc::self_endpoint()
            );
        }
        Some((ledger, counter))
    };
    let mut served = 0u64;
    let mut prepared = false;
    let mut moves = thread::moves();
    let mut pings = 0u64;
    loop {
        let message = match ipc::receive(Endpoint::ANY) {
            Ok(message) => message,
            Err(error) => {
                println!("receive failed: {error}");
                continue;
            }
        };
        // Once it has answered PREPARE, the kernel moves it when its update swaps it away
        // and again when a rollback takes the kept endpoint back: only then can another
        // version have committed, so after a move its state is read anew. Not "at the
        // next message after PREPARE": a request that reaches it between its PREPARED and
        // the swap would spend that, and after the rollback it would serve the state from
        // before the new version's commits (increments acknowledged, then lost). Nor by
        // comparing endpoints: the rollback gives it back the very endpoint it had.
        let now_moves = thread::moves();
        let moved = now_moves != moves;
        moves = now_moves;
        if prepared && moved {
            let (ledger, counter) = initialise(true);
            println!("version {version}: counter {counter} read back from DS after a move");
            opened = Some((ledger, counter));
        }
        if opened.is_none() {
            // A candidate's first message comes after the swap: the old version is
            // quiescent with everything committed, so DS holds the whole state.
            if options.fail_init && options.candidate {
                println!("version {version}: failing to initialise (fail-init)");
                vigil_rt::process::exit(3);
            }
            let (ledger, counter) = initialise(inherits);
            println!(
                "serving at {} (counter {counter} taken over, {} clients recorded; version {version})",
                ipc::self_endpoint(),
                ledger.clients()
            );
            opened = Some((ledger, counter));
        }
        let Some((ledger, counter)) = opened.as_mut() else {
            continue;
        };
        if message.is_notification() {
            // RS's heartbeat ping: answer it from here, the receive loop, so a hang
            // (anything that keeps the loop from coming back) leaves it unanswered.
            if let Some(rs) = rs.filter(|rs| *rs == message.source) {
                pings += 1;
                if options.deaf && pings > 1 {
                    continue;
                }
                let _ = ipc::notify(rs);
            }
            continue;
        }
        if !message.source.is_thread() {
            continue;
        }
        let client = message.source;
        if message.kind == rs_request::PREPARE && Some(client) == rs {
            // Every request commits before its reply: between two requests is quiescent.
            if options.ignore_prepare {
                println!("version {version}: ignoring PREPARE (ignore-prepare)");
            } else if let Err(error) =
                ipc::send(client, &Message::with_payload(rs_request::PREPARED, [0; 6]))
            {
                println!("answering PREPARE failed: {error}");
            } else {
                // If the new version serves for a while and is rolled back, this instance
                // serves again with what it committed: the first message after the
                // rollback's move reads DS anew.
                prepared = true;
            }
            continue;
        }
        let result = match message.kind {
            request::GET | request::INCREMENT | request::ADD => {
                served += 1;
                if options.crash_after.is_some_and(|n| served >= n) {
                    println!("version {version}: crashing at request {served} (crash-after)");
                    let _ = crash();
                }
                counter_request(ledger, counter, version, &message);
                continue;
            }
            request::SLOW_GET if message.payload[0] <= request::MAX_SLOW_MS => {
                thread::sleep(Duration::from_millis(message.payload[0]));
                Ok(*counter)
            }
            request::SLOW_GET => Err(Error::InvalidArgument),
            request::CRASH => {
                println!("crashing on request (null dereference)");
                crash()
            }
            request::PANIC => panic!("panicking on request"),
            request::EXIT => match i32::try_from(message.payload[word::ARGUMENT]) {
                Ok(status @ 0..=255) => {
                    println!("exiting with status {status} on request");
                    vigil_rt::process::exit(status)
                }
                _ => Err(Error::InvalidArgument),
            },
            request::HANG => {
                println!("hanging on request (answering nothing from now on)");
                loop {
                    thread::sleep(Duration::from_secs(1));
                }
            }
            _ => Err(Error::NoSuchCall),
        };
        answer(client, result);
    }
}
