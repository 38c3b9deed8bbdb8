//! `bench_server`: the partner of `bench_client`: answers every request (send_receive) with
//! a null reply, and every notification with a notification back; with `-- reply-receive`
//! it answers with `ReplyReceive` (reply and next receive in one call), echoing the request;
//! with `-- reply-receive-registers` it answers register-message requests
//! (`SendReceiveRegisters`) with `ReplyReceiveRegisters`, echoing them.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use vigil_rt::abi::message::{RegisterMessage, KIND_NOTIFY};
use vigil_rt::{ipc, println, Endpoint, Message};

vigil_rt::entry!(main);

fn main(args: &str) -> i32 {
    match args.trim() {
        "reply-receive" => return reply_receive_loop(),
        "reply-receive-registers" => return reply_receive_registers_loop(),
        _ => {}
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

/// `-- reply-receive-registers`: the same loop with register messages both ways
/// (`ReplyReceiveRegisters`, the IPC fast path's call); the reply echoes the request.
fn reply_receive_registers_loop() -> i32 {
    let first = ipc::receive(Endpoint::ANY).map(|m| (m.source, RegisterMessage::from_message(&m)));
    let (mut client, mut message) = match first {
        Ok(received) => received,
        Err(error) => {
            println!("bench server: receive failed: {error}");
            return 1;
        }
    };
    loop {
        let answered = if message.kind == KIND_NOTIFY {
            ipc::notify(client).and_then(|()| {
                ipc::receive(Endpoint::ANY).map(|m| (m.source, RegisterMessage::from_message(&m)))
            })
        } else {
            ipc::reply_receive_registers(client, Endpoint::ANY, &message)
        };
        match answered {
            Ok(next) => (client, message) = next,
            Err(error) => {
                println!("bench server: answering {client} failed: {error}");
                match ipc::receive(Endpoint::ANY) {
                    Ok(m) => (client, message) = (m.source, RegisterMessage::from_message(&m)),
                    Err(error) => {
                        println!("bench server: receive failed: {error}");
                        return 1;
                    }
                }
            }
        }
    }
}
