//! `senda_client`: judges asynchronous sends (`SendAsync`, MINIX's senda) with `senda_server`:
//! (a) 10 messages in one table arrive in order and every entry ends DONE, and an entry for
//!     a dead endpoint ends DONE|FAILED with DeadEndpoint;
//! (b) an async message flagged NO_REPLY does not satisfy a pending send_receive: the real
//!     reply does, and a later receive gets the NO_REPLY message;
//! (c) an async message without NO_REPLY does satisfy a pending send_receive.
//! Boot with `kcalls=shutdown`.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use vigil_programs::{context, finish, kinds, lookup_with_retry};
use vigil_rt::ipc::{self, AsyncTable};
use vigil_rt::{println, thread, Endpoint, Error, Message};

vigil_rt::entry!(main);

const BATCH: usize = 10;

fn main(_args: &str) -> i32 {
    finish("senda", run())
}

fn run() -> Result<String, String> {
    let server = lookup_with_retry("senda_server")?;
    batch_in_order(server)?;
    failed_entry()?;
    no_reply_waits_for_receive(server)?;
    async_message_can_reply(server)?;

    let mut finished = Message::new(kinds::SENDA_FINISHED);
    context(ipc::send_receive(server, &mut finished), "final exchange")?;
    if finished.payload[0] != 1 {
        return Err("the server found its own async entries not DONE".into());
    }
    Ok(format!(
        "batch of {BATCH} in order, failed entry reported, NO_REPLY waited for receive, \
         async reply satisfied send_receive"
    ))
}

/// (a) One table of 10 messages: the server acknowledges all 10 in order; all end DONE.
fn batch_in_order(server: Endpoint) -> Result<(), String> {
    let table = AsyncTable::new(BATCH);
    for index in 0..BATCH {
        let mut message = Message::new(kinds::SENDA_BATCH);
        message.payload[0] = index as u64;
        context(table.set(index, server, &message, 0), "filling the table")?;
    }
    context(table.submit(), "send_async of the batch")?;
    let ack = context(ipc::receive(server), "receiving the batch ack")?;
    if ack.kind != kinds::SENDA_BATCH_ACK || ack.payload[0] != BATCH as u64 {
        return Err(format!(
            "batch: the server acknowledged kind {:#x} with {} messages in order",
            ack.kind, ack.payload[0]
        ));
    }
    for index in 0..BATCH {
        match table.status(index) {
            Some(Ok(())) => {}
            other => {
                return Err(format!(
                    "batch entry {index}: flags {:#x}, status {other:?} (expected DONE)",
                    table.flags(index)
                ))
            }
        }
    }
    println!("(a) {BATCH} async messages received in order; all entries DONE");
    Ok(())
}

/// (a) An entry for a thread that has exited ends DONE|FAILED with DeadEndpoint.
fn failed_entry() -> Result<(), String> {
    let short_lived = thread::spawn(|| {});
    let dead = short_lived.endpoint();
    context(short_lived.join(), "joining the short-lived thread")?;
    let table = AsyncTable::new(1);
    context(
        table.set(0, dead, &Message::new(kinds::SENDA_BATCH), 0),
        "filling the table",
    )?;
    context(table.submit(), "send_async to a dead endpoint")?;
    match table.status(0) {
        Some(Err(Error::DeadEndpoint)) => {
            println!("(a) async message to dead endpoint {dead}: DONE|FAILED with EDEADSRCDST");
            Ok(())
        }
        other => Err(format!(
            "async message to dead endpoint {dead}: flags {:#x}, status {other:?} \
             (expected DONE|FAILED with DeadEndpoint)",
            table.flags(0)
        )),
    }
}

/// (b) NO_REPLY: the server send_async's a NO_REPLY message to us while we await its reply,
/// then replies; the reply must be the real one, and a later receive gets the async one.
fn no_reply_waits_for_receive(server: Endpoint) -> Result<(), String> {
    let mut message = Message::new(kinds::SENDA_NO_REPLY_REQUEST);
    context(ipc::send_receive(server, &mut message), "NO_REPLY exchange")?;
    if message.kind != kinds::SENDA_NO_REPLY_REPLY {
        return Err(format!(
            "NO_REPLY: send_receive returned kind {:#x} from {} (expected the real reply {:#x}; \
             {:#x} is the NO_REPLY async message)",
            message.kind,
            message.source,
            kinds::SENDA_NO_REPLY_REPLY,
            kinds::SENDA_NO_REPLY_ASYNC
        ));
    }
    let later = context(ipc::receive(server), "receiving the NO_REPLY message")?;
    if later.kind != kinds::SENDA_NO_REPLY_ASYNC || later.source != server {
        return Err(format!(
            "NO_REPLY: the receive after the reply got kind {:#x} from {}",
            later.kind, later.source
        ));
    }
    println!("(b) NO_REPLY async message waited for a plain receive");
    Ok(())
}

/// (c) Without NO_REPLY an async message from the server is the reply to send_receive.
fn async_message_can_reply(server: Endpoint) -> Result<(), String> {
    let mut message = Message::new(kinds::SENDA_ASYNC_REPLY_REQUEST);
    context(
        ipc::send_receive(server, &mut message),
        "async-reply exchange",
    )?;
    if message.kind != kinds::SENDA_ASYNC_REPLY || message.source != server {
        return Err(format!(
            "async reply: send_receive returned kind {:#x} from {}",
            message.kind, message.source
        ));
    }
    println!("(c) an async message without NO_REPLY satisfied send_receive");
    Ok(())
}
