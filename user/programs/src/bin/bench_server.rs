//! `bench_server`: the partner of `bench_client`: answers every request (send_receive) with
//! a null reply, and every notification with a notification back.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use vigil_rt::{ipc, println, Endpoint, Message};

vigil_rt::entry!(main);

fn main(_args: &str) -> i32 {
    let reply = Message::default();
    loop {
        let request = match ipc::receive(Endpoint::ANY) {
            Ok(request) => request,
            Err(error) => {
                println!("bench server: receive failed: {error}");
                return 1;
            }
        };
        let answered = if request.is_notification() {
            ipc::notify(request.source)
        } else {
            ipc::send(request.source, &reply)
        };
        if let Err(error) = answered {
            println!("bench server: answering {} failed: {error}", request.source);
        }
    }
}
