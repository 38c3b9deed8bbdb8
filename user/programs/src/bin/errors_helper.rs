//! `errors_helper`: an echo server for the `errors` program: answers every ECHO request with
//! ECHO_REPLY and ignores everything else. Booted twice: as itself, and as
//! `errors_forbidden` (a live process outside the `errors` ipc mask).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use vigil_programs::kinds;
use vigil_rt::{ipc, println, Endpoint, Message};

vigil_rt::entry!(main);

fn main(_args: &str) -> i32 {
    loop {
        let request = match ipc::receive(Endpoint::ANY) {
            Ok(request) => request,
            Err(error) => {
                println!("errors helper: receive failed: {error}");
                return 1;
            }
        };
        if request.kind != kinds::ECHO {
            continue;
        }
        if let Err(error) = ipc::send(request.source, &Message::new(kinds::ECHO_REPLY)) {
            println!("errors helper: reply to {} failed: {error}", request.source);
        }
    }
}
