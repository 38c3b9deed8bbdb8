//! `pingpong_client`: 1000 send_receive round trips with `pingpong_server`, checking every
//! reply; prints the verdict and shuts the machine down (boot with `kcalls=shutdown`).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use vigil_programs::{context, finish, kinds, lookup_with_retry};
use vigil_rt::{ipc, Message};

vigil_rt::entry!(main);

const ROUND_TRIPS: u64 = 1000;

fn main(_args: &str) -> i32 {
    finish("pingpong", run())
}

fn run() -> Result<String, String> {
    let server = lookup_with_retry("pingpong_server")?;
    for round in 0..ROUND_TRIPS {
        let value = round * 7 + 3;
        let mut message = Message::new(kinds::PING);
        message.payload[0] = value;
        context(
            ipc::send_receive(server, &mut message),
            &format!("round trip {round}: send_receive"),
        )?;
        if message.source != server || message.kind != kinds::PONG {
            return Err(format!(
                "round trip {round}: reply from {} of kind {:#x}, expected a PONG from {server}",
                message.source, message.kind
            ));
        }
        if message.payload[0] != value + 1 {
            return Err(format!(
                "round trip {round}: sent {value}, got {} back (expected {})",
                message.payload[0],
                value + 1
            ));
        }
    }
    Ok(format!("{ROUND_TRIPS} round trips"))
}
