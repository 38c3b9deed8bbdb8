//! `bench_server`: the partner of `bench_client`: answers every request (send_receive) with
//! a null reply, and every notification with a notification back; with `-- reply-receive`
//! it answers with `ReplyReceive` (reply and next receive in one call), echoing the request.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use vigil_rt::{ipc, println, Endpoint, Message};

vigil_rt::entry!(main);

fn main(args: &str) -> i32 {
    if args.trim() == "reply-receive" {
        return reply_receive_loop();
    }
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

/// `-- reply-receive`: the server loop of seL4's shape, each reply and the next receive
/// one `ReplyReceive` call; the reply echoes the request.
fn reply_receive_loop() -> i32 {
    let mut message = match ipc::receive(Endpoint::ANY) {
        Ok(message) => message,
        Err(error) => {
            println!("bench server: receive failed: {error}");
            return 1;
        }
    };
    loop {
        let client = message.source;
        let answered = if message.is_notification() {
            ipc::notify(client).and_then(|()| ipc::receive(Endpoint::ANY).map(|m| message = m))
        } else {
            ipc::reply_receive(client, Endpoint::ANY, &mut message)
        };
        if let Err(error) = answered {
            println!("bench server: answering {client} failed: {error}");
            message = match ipc::receive(Endpoint::ANY) {
                Ok(message) => message,
                Err(error) => {
                    println!("bench server: receive failed: {error}");
                    return 1;
                }
            };
        }
    }
}
