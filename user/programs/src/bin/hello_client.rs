//! `hello_client`: judges exactly-once requests to `hello_service` across its restarts
//! (scenarios `hello-exactly-once`, `rs-thousand-crashes`). Every counter request carries
//! a request id (`vigil_rt::exactly_once::Client`: a retry after the service died resends
//! the same id to the instance found by name next). Its argument picks the part:
//! - `exactly-once`: the counter survives a crash of each kind (null dereference, panic,
//!   exit, hang); a request whose reply was lost — hello crashes after recording it, before
//!   replying (`flags::CRASH_AFTER_COMMIT`) — is answered from the record on the retry, not
//!   executed twice; a stale id is refused; then a short load under crashes (`load` below).
//! - `load CRASHES`: one thread increments as fast as it can and counts the acknowledged
//!   increments while another crashes hello CRASHES times (exceptions, panics, exits, and
//!   a hang every 250th); at the end hello's GET must equal the start plus the
//!   acknowledged increments: 0 lost, 0 doubled.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use core::time::Duration;

use vigil_programs::{context, finish};
use vigil_rt::abi::rs::hello::{flags, request, word, SERVICE_NAME};
use vigil_rt::exactly_once::Client;
use vigil_rt::{ipc, println, thread, time, Endpoint, Error, Message};

vigil_rt::entry!(main);

/// Attempts, 1 ms apart, to find a new instance (a bound, not a timing assertion).
const FIND_ATTEMPTS: u32 = 20_000;

/// The counter (or the service's refusal) of a reply.
fn counter_of(reply: &Message) -> Result<u64, Error> {
    Ok(ipc::reply_payload(reply, request::REPLY)?[1])
}

fn counter_call(client: &mut Client, kind: u32, argument: u64, flags: u64) -> Result<u64, Error> {
    let mut payload = [0; 6];
    payload[word::ARGUMENT] = argument;
    payload[word::FLAGS] = flags;
    counter_of(&client.call(kind, payload)?)
}

/// A request without an id, straight to `server`.
fn raw_call(server: Endpoint, kind: u32, payload: [u64; 6]) -> Result<Message, Error> {
    let mut message = Message::with_payload(kind, payload);
    ipc::send_receive(server, &mut message)?;
    Ok(message)
}

/// The instance serving after `old` ended (`Endpoint::NONE`: whichever serves now), once
/// it answers a GET (without an id). RS keeps hello's endpoint across a restart, so a GET
/// sent to `old` after its instance died waits on the endpoint's tombstone and is answered
/// by the replacement; a name look-up finds it when the endpoint was not kept.
fn instance_other_than(old: Endpoint) -> Result<Endpoint, String> {
    let mut last = Error::NotFound;
    for _ in 0..FIND_ATTEMPTS {
        let server = if old.is_thread() {
            Ok(old)
        } else {
            ipc::lookup(SERVICE_NAME)
        };
        match server {
            Ok(server) => {
                let mut message = Message::with_payload(request::GET, [0; 6]);
                match ipc::call_service(server, &mut message).and_then(|_| counter_of(&message)) {
                    Ok(_) => return Ok(server),
                    Err(error) => last = error,
                }
            }
            Err(error) => last = error,
        }
        thread::sleep(Duration::from_millis(1));
    }
    Err(format!(
        "no new instance of {SERVICE_NAME} answered (last: {last})"
    ))
}

/// The ways to end hello, in the order the crasher uses them.
#[derive(Clone, Copy)]
enum Crash {
    NullDereference,
    Panic,
    Exit,
    Hang,
}

impl Crash {
    fn name(self) -> &'static str {
        match self {
            Crash::NullDereference => "null dereference",
            Crash::Panic => "panic",
            Crash::Exit => "exit",
            Crash::Hang => "hang",
        }
    }
}

/// Ends instance `server` by `crash` and waits until its call fails (it died).
fn crash_instance(server: Endpoint, crash: Crash) -> Result<(), String> {
    let (kind, argument) = match crash {
        Crash::NullDereference => (request::CRASH, 0),
        Crash::Panic => (request::PANIC, 0),
        Crash::Exit => (request::EXIT, 3),
        Crash::Hang => (request::HANG, 0),
    };
    match raw_call(server, kind, [argument, 0, 0, 0, 0, 0]) {
        // `Restarted`: it died holding the request and RS keeps its endpoint; the other
        // two: it died and its endpoint with it.
        Err(Error::Restarted | Error::PartnerDied | Error::DeadEndpoint) => Ok(()),
        Ok(reply) => Err(format!(
            "{}: hello answered {:?} instead of ending",
            crash.name(),
            counter_of(&reply)
        )),
        Err(error) => Err(format!("{}: {error}", crash.name())),
    }
}

fn main(args: &str) -> i32 {
    let mut words = args.split_ascii_whitespace();
    match (words.next(), words.next().map(str::parse::<u64>)) {
        (Some("exactly-once"), None) => finish("hello_client", exactly_once()),
        (Some("load"), Some(Ok(crashes))) => finish(
            "hello_client",
            load(&mut Client::new(SERVICE_NAME), crashes),
        ),
        _ => finish(
            "hello_client",
            Err(format!(
                "unknown arguments '{args}' (exactly-once | load CRASHES)"
            )),
        ),
    }
}

fn expect_counter(what: &str, got: Result<u64, Error>, expected: u64) -> Result<(), String> {
    match got {
        Ok(counter) if counter == expected => Ok(()),
        Ok(counter) => Err(format!("{what}: counter {counter}, expected {expected}")),
        Err(error) => Err(format!("{what}: {error}")),
    }
}

fn exactly_once() -> Result<String, String> {
    let mut client = Client::new(SERVICE_NAME);
    let start = context(counter_call(&mut client, request::GET, 0, 0), "first GET")?;
    println!(
        "counter {start} at the start (client id {:#x})",
        client.client_id()
    );
    let mut expected = start;
    for _ in 0..10 {
        expected += 1;
        expect_counter(
            "INCREMENT",
            counter_call(&mut client, request::INCREMENT, 0, 0),
            expected,
        )?;
    }
    expected += 5;
    expect_counter(
        "ADD(5)",
        counter_call(&mut client, request::ADD, 5, 0),
        expected,
    )?;

    // The counter survives each kind of end: the new instance reads it back from DS.
    let mut server = context(ipc::lookup(SERVICE_NAME), "lookup")?;
    for crash in [
        Crash::NullDereference,
        Crash::Panic,
        Crash::Exit,
        Crash::Hang,
    ] {
        crash_instance(server, crash)?;
        server = instance_other_than(server)?;
        expect_counter(
            crash.name(),
            counter_call(&mut client, request::GET, 0, 0),
            expected,
        )?;
        expected += 1;
        expect_counter(
            crash.name(),
            counter_call(&mut client, request::INCREMENT, 0, 0),
            expected,
        )?;
        println!(
            "{}: counter kept ({expected}) by the new instance {server}",
            crash.name()
        );
    }

    // A reply lost in a crash: hello records INCREMENT's new counter and its reply in DS,
    // then crashes before replying; the client's retry (same id) is answered from the
    // record, and the counter went up once.
    let lost = client.next_id();
    let retries_before = client.retries;
    expected += 1;
    expect_counter(
        "INCREMENT whose reply was lost",
        counter_call(
            &mut client,
            request::INCREMENT,
            0,
            flags::CRASH_AFTER_COMMIT,
        ),
        expected,
    )?;
    if client.retries == retries_before {
        return Err("the lost reply's request was not retried: hello did not crash".into());
    }
    expect_counter(
        "GET after the lost reply",
        counter_call(&mut client, request::GET, 0, 0),
        expected,
    )?;
    println!(
        "lost reply: request {:#x}:{} answered from the record after {} retries; counter {expected}, not {}",
        lost.client,
        lost.sequence,
        client.retries - retries_before,
        expected + 1
    );

    // A stale id (older than the client's last completed request) is refused, and an
    // unknown flag too; hello keeps serving.
    server = instance_other_than(Endpoint::NONE)?;
    let mut stale = [0u64; 6];
    stale[word::CLIENT] = client.client_id();
    stale[word::SEQUENCE] = 1;
    match raw_call(server, request::INCREMENT, stale).and_then(|r| counter_of(&r)) {
        Err(Error::InvalidArgument) => println!("refused as expected: a stale request id: EINVAL"),
        other => return Err(format!("a stale request id: {other:?}")),
    }
    match counter_call(&mut client, request::INCREMENT, 0, 1 << 9) {
        Err(Error::InvalidArgument) => println!("refused as expected: an unknown flag: EINVAL"),
        other => return Err(format!("an unknown flag: {other:?}")),
    }
    expect_counter(
        "GET after the refusals",
        counter_call(&mut client, request::GET, 0, 0),
        expected,
    )?;
    load(&mut client, 12)?;
    Ok(String::from(
        "counter kept across a null dereference, a panic, an exit and a hang; a lost reply answered from the record; 0 lost, 0 doubled under crashes",
    ))
}

/// Shared between the incrementing thread and the crasher.
struct Load {
    stop: AtomicBool,
    acknowledged: AtomicU64,
    retries: AtomicU64,
    failed: AtomicU64,
}

/// The load under `crashes` crashes; `client` (this thread's) reads the counter before and
/// after.
fn load(client: &mut Client, crashes: u64) -> Result<String, String> {
    let start = context(counter_call(client, request::GET, 0, 0), "GET")?;
    let shared = Arc::new(Load {
        stop: AtomicBool::new(false),
        acknowledged: AtomicU64::new(0),
        retries: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let load = Arc::clone(&shared);
    let incrementer = thread::spawn(move || {
        let mut client = Client::new(SERVICE_NAME);
        let mut last = None;
        while !load.stop.load(Ordering::Acquire) {
            match counter_call(&mut client, request::INCREMENT, 0, 0) {
                Ok(counter) => {
                    if last.is_some_and(|last| counter <= last) {
                        println!("FAIL: counter went from {last:?} to {counter}");
                        load.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    last = Some(counter);
                    load.acknowledged.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    println!("FAIL: INCREMENT failed for good: {error}");
                    load.failed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
        load.retries.store(client.retries, Ordering::Relaxed);
    });
    let began_ns = time::now_ns();
    let mut counts = [0u64; 4];
    let mut server = Endpoint::NONE;
    let mut outcome = Ok(());
    for number in 0..crashes {
        let crash = if number % 250 == 249 {
            Crash::Hang
        } else {
            [Crash::NullDereference, Crash::Panic, Crash::Exit][(number % 3) as usize]
        };
        // A fresh instance each time (never the one just ended), after a few increments.
        server = match instance_other_than(server) {
            Ok(server) => server,
            Err(reason) => {
                outcome = Err(reason);
                break;
            }
        };
        thread::sleep(Duration::from_millis(1));
        if let Err(reason) = crash_instance(server, crash) {
            outcome = Err(reason);
            break;
        }
        counts[crash as usize] += 1;
        if (number + 1) % 100 == 0 {
            println!(
                "{} crashes, {} increments acknowledged",
                number + 1,
                shared.acknowledged.load(Ordering::Relaxed)
            );
        }
    }
    // Let the load run into the last instance, then stop it.
    let _ = instance_other_than(server);
    shared.stop.store(true, Ordering::Release);
    context(incrementer.join(), "joining the incrementer")?;
    outcome?;
    let elapsed_ns = time::now_ns() - began_ns;
    let acknowledged = shared.acknowledged.load(Ordering::Relaxed);
    let end = context(counter_call(client, request::GET, 0, 0), "final GET")?;
    let made = end.wrapping_sub(start);
    println!(
        "load: {} crashes ({} null dereferences, {} panics, {} exits, {} hangs) in {} ms; {acknowledged} increments acknowledged, {} retries; counter {start} -> {end}",
        counts.iter().sum::<u64>(),
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        elapsed_ns / 1_000_000,
        shared.retries.load(Ordering::Relaxed)
    );
    if shared.failed.load(Ordering::Relaxed) != 0 {
        return Err("the incrementer saw a failure".into());
    }
    if made != acknowledged {
        let (lost, doubled) = if made < acknowledged {
            (acknowledged - made, 0)
        } else {
            (0, made - acknowledged)
        };
        return Err(format!(
            "counter moved by {made} for {acknowledged} acknowledged increments: {lost} lost, {doubled} doubled"
        ));
    }
    println!(
        "load: {crashes} crashes, {acknowledged} acknowledged increments, counter +{made}: 0 lost, 0 doubled"
    );
    Ok(format!("{crashes} crashes: 0 lost, 0 doubled"))
}
