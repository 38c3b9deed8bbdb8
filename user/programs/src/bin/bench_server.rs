//! `bench_server`: the partner of `bench_client`: answers every request (send_receive) with
//! a null reply, and every notification with a notification back; with `-- reply-receive`
//! it answers with `ReplyReceive` (reply and next receive in one call), echoing the request;
//! with `-- reply-receive-registers` it answers register-message requests
//! (`SendReceiveRegisters`) with `ReplyReceiveRegisters`, echoing them; with
//! `-- reply-receive-registers-timed` it answers them the same way with timestamps for the
//! one-way rows (see `reply_receive_registers_timed_loop`).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use vigil_rt::abi::message::{RegisterMessage, KIND_NOTIFY};
use vigil_rt::{ipc, println, tsc, Endpoint, Message};

vigil_rt::entry!(main);

fn main(args: &str) -> i32 {
    match args.trim() {
        "reply-receive" => return reply_receive_loop(),
        "reply-receive-registers" => return reply_receive_registers_loop(),
        "reply-receive-registers-timed" => return reply_receive_registers_timed_loop(),
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

/// A register request received with plain `receive` (the first one, or the next one after
/// a failed answer) and the TSC read just after it arrived.
fn receive_registers() -> Result<(Endpoint, RegisterMessage, u64), vigil_rt::Error> {
    let message = ipc::receive(Endpoint::ANY)?;
    let arrived = tsc();
    Ok((
        message.source,
        RegisterMessage::from_message(&message),
        arrived,
    ))
}

/// `-- reply-receive-registers-timed`: the register loop for the one-way rows, timed the way
/// sel4bench times seL4's Call and ReplyRecv. Each request is answered with its kind, tag
/// and `payload[2]` echoed, `payload[0]` = t1, the TSC read first after the call that
/// received the request returned, and `payload[1]` = t2, the TSC read last before the
/// `ReplyReceiveRegisters` that carries the reply entered the kernel (both reads are in
/// `ipc::reply_receive_registers_stamped`'s one asm block, so nothing of this loop falls
/// between them and the call). The client's own reads around its call then give
/// Call = t1 − t0 and ReplyRecv = t3 − t2. A notification is answered with one and a failed
/// answer is reported and followed by a plain receive, as in the untimed loop; their t1 is
/// read after that receive.
fn reply_receive_registers_timed_loop() -> i32 {
    let (mut client, mut message, mut arrived) = match receive_registers() {
        Ok(received) => received,
        Err(error) => {
            println!("bench server: receive failed: {error}");
            return 1;
        }
    };
    loop {
        let answered = if message.kind == KIND_NOTIFY {
            ipc::notify(client).and_then(|()| receive_registers())
        } else {
            let reply = RegisterMessage {
                payload: [arrived, 0, message.payload[2]],
                ..message
            };
            let (answered, next_arrived) =
                ipc::reply_receive_registers_stamped(client, Endpoint::ANY, &reply);
            answered.map(|(source, next)| (source, next, next_arrived))
        };
        match answered {
            Ok(next) => (client, message, arrived) = next,
            Err(error) => {
                println!("bench server: answering {client} failed: {error}");
                match receive_registers() {
                    Ok(next) => (client, message, arrived) = next,
                    Err(error) => {
                        println!("bench server: receive failed: {error}");
                        return 1;
                    }
                }
            }
        }
    }
}
