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
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use core::time::Duration;

use vigil_rt::abi::exactly_once::Verdict;
use vigil_rt::abi::rs::hello::{flags, request, word, SERVICE_NAME, STATE_KEY};
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
/// before the answer.
fn counter_request(ledger: &mut Ledger, counter: &mut u64, message: &Message) {
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
        request::GET => return answer(client, Ok(*counter)),
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

fn main(args: &str) -> i32 {
    if args.trim() == "crash-on-start" {
        println!("crashing before serving (crash-on-start)");
        let _ = crash();
        return 1;
    }
    if args.trim() == "stall-on-start" {
        println!("stalling before serving (stall-on-start)");
        loop {
            thread::sleep(Duration::from_secs(1));
        }
    }
    let mut ledger = open_ledger();
    let mut counter = counter_of(&ledger);
    let rs = ipc::lookup(vigil_rt::abi::rs::RS_SERVER_NAME).ok();
    if ledger.is_stored() {
        println!(
            "serving at {} (counter {counter} from DS, {} clients recorded)",
            ipc::self_endpoint(),
            ledger.clients()
        );
    } else {
        println!("serving at {} (counter {counter})", ipc::self_endpoint());
    }
    loop {
        let message = match ipc::receive(Endpoint::ANY) {
            Ok(message) => message,
            Err(error) => {
                println!("receive failed: {error}");
                continue;
            }
        };
        if message.is_notification() {
            // RS's heartbeat ping: answer it from here, the receive loop, so a hang
            // (anything that keeps the loop from coming back) leaves it unanswered.
            if let Some(rs) = rs.filter(|rs| *rs == message.source) {
                let _ = ipc::notify(rs);
            }
            continue;
        }
        if !message.source.is_thread() {
            continue;
        }
        let client = message.source;
        let result = match message.kind {
            request::GET | request::INCREMENT | request::ADD => {
                counter_request(&mut ledger, &mut counter, &message);
                continue;
            }
            request::SLOW_GET if message.payload[0] <= request::MAX_SLOW_MS => {
                thread::sleep(Duration::from_millis(message.payload[0]));
                Ok(counter)
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
