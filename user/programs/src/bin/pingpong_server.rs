//! `pingpong_server`: answers every PING (from anyone) with a PONG carrying payload[0] + 1.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use vigil_programs::kinds;
use vigil_rt::{ipc, println, Endpoint, Message};

vigil_rt::entry!(main);

fn main(_args: &str) -> i32 {
    println!("pingpong server ready at {}", ipc::self_endpoint());
    loop {
        let request = match ipc::receive(Endpoint::ANY) {
            Ok(request) => request,
            Err(error) => {
                println!("pingpong server: receive failed: {error}");
                return 1;
            }
        };
        if request.kind != kinds::PING {
            println!(
                "pingpong server: ignoring kind {:#x} from {}",
                request.kind, request.source
            );
            continue;
        }
        let mut reply = Message::new(kinds::PONG);
        reply.payload[0] = request.payload[0].wrapping_add(1);
        if let Err(error) = ipc::send(request.source, &reply) {
            println!(
                "pingpong server: reply to {} failed: {error}",
                request.source
            );
        }
    }
}
