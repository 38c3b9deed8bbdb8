//! `hello_service`: the counter service RS supervises (like MINIX's /dev/hello), a
//! `boot=pm` image RS spawns through PM. It answers `vigil_abi::rs::hello::request`: GET,
//! INCREMENT and ADD(n) with the counter, SLOW_GET (a GET after a sleep, for a request in
//! flight when the instance is killed), RS's heartbeat pings (a notification from RS,
//! answered with one from its receive loop), and for tests CRASH (a null dereference, which
//! RS sees as the signal manager), PANIC (status 101), EXIT(status) and HANG (it stops
//! answering). Its counter starts at 0 in every instance: phase 1 keeps no state across a
//! restart (that is DS's job, issue 10).
//!
//! With the argument `crash-on-start` it dereferences null before serving: a service that
//! always crashes, for RS's crash-loop policy. With `stall-on-start` it sleeps forever
//! before serving: a service that never initialises, for RS's init timeout.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use core::time::Duration;

use vigil_rt::abi::rs::hello::request;
use vigil_rt::{ipc, println, thread, Endpoint, Error, Message};

vigil_rt::entry!(main);

fn answer(client: Endpoint, result: Result<u64, Error>) {
    let payload = match result {
        Ok(counter) => [0, counter, 0, 0, 0, 0],
        Err(error) => [error as u64, 0, 0, 0, 0, 0],
    };
    if let Err(error) =
        ipc::send_nonblocking(client, &Message::with_payload(request::REPLY, payload))
    {
        println!("reply to {client} dropped: {error}");
    }
}

fn main(args: &str) -> i32 {
    if args.trim() == "crash-on-start" {
        println!("crashing before serving (crash-on-start)");
        let value = vigil_programs::read_address_zero();
        println!("survived a null dereference ({value:#x})");
        return 1;
    }
    if args.trim() == "stall-on-start" {
        println!("stalling before serving (stall-on-start)");
        loop {
            thread::sleep(Duration::from_secs(1));
        }
    }
    let mut counter: u64 = 0;
    let rs = ipc::lookup(vigil_rt::abi::rs::RS_SERVER_NAME).ok();
    println!("serving at {} (counter 0)", ipc::self_endpoint());
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
            request::GET => Ok(counter),
            request::INCREMENT => {
                counter = counter.wrapping_add(1);
                Ok(counter)
            }
            request::SLOW_GET if message.payload[0] <= request::MAX_SLOW_MS => {
                thread::sleep(Duration::from_millis(message.payload[0]));
                Ok(counter)
            }
            request::SLOW_GET => Err(Error::InvalidArgument),
            request::ADD => match counter.checked_add(message.payload[0]) {
                Some(sum) => {
                    counter = sum;
                    Ok(counter)
                }
                None => Err(Error::InvalidArgument),
            },
            request::CRASH => {
                println!("crashing on request (null dereference)");
                let value = vigil_programs::read_address_zero();
                println!("survived a null dereference ({value:#x})");
                Err(Error::Fault)
            }
            request::PANIC => panic!("panicking on request"),
            request::EXIT => match i32::try_from(message.payload[0]) {
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
