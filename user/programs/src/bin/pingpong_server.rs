//! `pingpong_server`: answers every PING (from anyone) with a PONG carrying payload[0] + 1.
//!
//! Its loop is chosen by its argument: none, `Receive` then `Send` (the slow path's reply);
//! `-- reply-receive`, `ReplyReceive` (a reply and the next receive in one call, the fast
//! path's server loop); `-- registers`, `ReplyReceiveRegisters` (register messages both
//! ways, for a `pingpong_client -- registers`). The answers are the same in every mode.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use vigil_programs::kinds;
use vigil_rt::abi::message::RegisterMessage;
use vigil_rt::{ipc, println, Endpoint, Message};

vigil_rt::entry!(main);

fn main(args: &str) -> i32 {
    let mode = args.trim();
    println!(
        "pingpong server ready at {} ({})",
        ipc::self_endpoint(),
        match mode {
            "" => "receive and send",
            "reply-receive" => "reply-receive",
            "registers" => "reply-receive with register messages",
            _ => {
                println!(
                    "pingpong server: unknown mode {mode:?} (none, reply-receive or registers)"
                );
                return 2;
            }
        }
    );
    match mode {
        "reply-receive" => reply_receive_loop(),
        "registers" => register_loop(),
        _ => receive_send_loop(),
    }
}

/// The PONG answering `request`, or `None` (and a line saying so) if it is no PING.
fn answer(source: Endpoint, kind: u32, value: u64) -> Option<(u32, u64)> {
    if kind != kinds::PING {
        println!("pingpong server: ignoring kind {kind:#x} from {source}");
        return None;
    }
    Some((kinds::PONG, value.wrapping_add(1)))
}

/// Receives a request (from anyone), after a failure or a request that was not a PING.
fn receive_request() -> Option<Message> {
    match ipc::receive(Endpoint::ANY) {
        Ok(request) => Some(request),
        Err(error) => {
            println!("pingpong server: receive failed: {error}");
            None
        }
    }
}

fn receive_send_loop() -> i32 {
    loop {
        let Some(request) = receive_request() else {
            return 1;
        };
        let Some((kind, value)) = answer(request.source, request.kind, request.payload[0]) else {
            continue;
        };
        let mut reply = Message::new(kind);
        reply.payload[0] = value;
        if let Err(error) = ipc::send(request.source, &reply) {
            println!(
                "pingpong server: reply to {} failed: {error}",
                request.source
            );
        }
    }
}

fn reply_receive_loop() -> i32 {
    let Some(mut message) = receive_request() else {
        return 1;
    };
    loop {
        let client = message.source;
        let Some((kind, value)) = answer(client, message.kind, message.payload[0]) else {
            let Some(next) = receive_request() else {
                return 1;
            };
            message = next;
            continue;
        };
        message = Message::new(kind);
        message.payload[0] = value;
        if let Err(error) = ipc::reply_receive(client, Endpoint::ANY, &mut message) {
            println!("pingpong server: reply to {client} failed: {error}");
            let Some(next) = receive_request() else {
                return 1;
            };
            message = next;
        }
    }
}

fn register_loop() -> i32 {
    let Some(first) = receive_request() else {
        return 1;
    };
    let (mut client, mut message) = (first.source, RegisterMessage::from_message(&first));
    loop {
        let Some((kind, value)) = answer(client, message.kind, message.payload[0]) else {
            let Some(next) = receive_request() else {
                return 1;
            };
            (client, message) = (next.source, RegisterMessage::from_message(&next));
            continue;
        };
        let mut reply = RegisterMessage::new(kind);
        reply.payload[0] = value;
        match ipc::reply_receive_registers(client, Endpoint::ANY, &reply) {
            Ok(next) => (client, message) = next,
            Err(error) => {
                println!("pingpong server: reply to {client} failed: {error}");
                let Some(next) = receive_request() else {
                    return 1;
                };
                (client, message) = (next.source, RegisterMessage::from_message(&next));
            }
        }
    }
}
