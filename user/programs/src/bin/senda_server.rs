//! `senda_server`: the other side of `senda_client`: receives the async batch and checks its
//! order, answers with async messages (NO_REPLY and plain), and checks its own tables.
//! Boot with `kcalls=shutdown`: it stops the machine with failure if the protocol breaks.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use vigil_programs::{context, finish, kinds};
use vigil_rt::abi::async_message::async_flags;
use vigil_rt::ipc::{self, AsyncTable};
use vigil_rt::{println, Endpoint, Message};

vigil_rt::entry!(main);

const BATCH: u64 = 10;

fn main(_args: &str) -> i32 {
    match serve() {
        Ok(()) => 0,
        Err(reason) => finish("senda_server", Err(reason)),
    }
}

fn serve() -> Result<(), String> {
    let mut next_in_batch = 0;
    let mut no_reply_table: Option<AsyncTable> = None;
    let mut reply_table: Option<AsyncTable> = None;
    loop {
        let request = context(ipc::receive(Endpoint::ANY), "receive(ANY)")?;
        let client = request.source;
        match request.kind {
            kinds::SENDA_BATCH => {
                if request.payload[0] != next_in_batch {
                    return Err(format!(
                        "batch message {} arrived when {next_in_batch} was due",
                        request.payload[0]
                    ));
                }
                next_in_batch += 1;
                if next_in_batch == BATCH {
                    let mut ack = Message::new(kinds::SENDA_BATCH_ACK);
                    ack.payload[0] = BATCH;
                    context(ipc::send(client, &ack), "acknowledging the batch")?;
                }
            }
            kinds::SENDA_NO_REPLY_REQUEST => {
                let table = AsyncTable::new(1);
                let message = Message::new(kinds::SENDA_NO_REPLY_ASYNC);
                context(
                    table.set(0, client, &message, async_flags::NO_REPLY),
                    "filling the NO_REPLY entry",
                )?;
                context(table.submit(), "send_async NO_REPLY")?;
                if table.status(0).is_some() {
                    return Err(format!(
                        "the NO_REPLY entry was done at once (flags {:#x}) although the \
                         client awaits a reply",
                        table.flags(0)
                    ));
                }
                context(
                    ipc::send(client, &Message::new(kinds::SENDA_NO_REPLY_REPLY)),
                    "the real reply",
                )?;
                no_reply_table = Some(table);
            }
            kinds::SENDA_ASYNC_REPLY_REQUEST => {
                expect_done(no_reply_table.as_ref(), "NO_REPLY")?;
                let table = AsyncTable::new(1);
                context(
                    table.set(0, client, &Message::new(kinds::SENDA_ASYNC_REPLY), 0),
                    "filling the reply entry",
                )?;
                context(table.submit(), "send_async reply")?;
                reply_table = Some(table);
            }
            kinds::SENDA_FINISHED => {
                expect_done(reply_table.as_ref(), "async reply")?;
                let mut reply = Message::new(kinds::SENDA_FINISHED);
                reply.payload[0] = 1;
                context(ipc::send(client, &reply), "the final reply")?;
                println!("senda server: all async entries DONE");
                return Ok(());
            }
            other => println!("senda server: ignoring kind {other:#x} from {client}"),
        }
    }
}

fn expect_done(table: Option<&AsyncTable>, what: &str) -> Result<(), String> {
    let table = table.ok_or_else(|| format!("the {what} step never ran"))?;
    match table.status(0) {
        Some(Ok(())) => Ok(()),
        other => Err(format!(
            "the {what} entry is not DONE: flags {:#x}, status {other:?}",
            table.flags(0)
        )),
    }
}
