//! `any_client`: sends 50 numbered requests to `any_server` with send_receive and checks the
//! replies. Booted several times (`name=clientN -- N`); the argument is the client number.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use vigil_programs::{context, kinds, lookup_with_retry, report};
use vigil_rt::{ipc, Message};

vigil_rt::entry!(main);

const REQUESTS: u64 = 50;

fn main(args: &str) -> i32 {
    let Ok(number) = args.parse::<u64>() else {
        return i32::from(!report(
            "any_client",
            &Err(format!(
                "expected the client number as argument, got {args:?}"
            )),
        ));
    };
    let outcome = run(number);
    i32::from(!report("any_client", &outcome))
}

fn run(number: u64) -> Result<String, String> {
    let server = lookup_with_retry("any_server")?;
    for sequence in 0..REQUESTS {
        let mut message = Message::new(kinds::ANY_REQUEST);
        message.payload[0] = number;
        message.payload[1] = sequence;
        context(
            ipc::send_receive(server, &mut message),
            &format!("request {sequence}"),
        )?;
        if message.kind != kinds::ANY_REPLY || message.payload[0] != sequence {
            return Err(format!(
                "request {sequence}: reply of kind {:#x} with payload {}",
                message.kind, message.payload[0]
            ));
        }
    }
    Ok(format!("client {number}: {REQUESTS} requests answered"))
}
