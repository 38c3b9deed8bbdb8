//! `notify_receiver`: judges notification coalescing. It sleeps while `notify_sender`
//! notifies it 5 times and then blocks sending a "done" message. Its first receive must be
//! exactly one notification from the sender (payload[0] == 1: the five coalesced), its
//! second the "done" message — had the notifications not coalesced, another notification
//! would come first (pending notifications are delivered before queued senders).
//! Boot with `kcalls=shutdown`.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::time::Duration;

use vigil_programs::{context, finish, kinds, lookup_with_retry};
use vigil_rt::abi::message::KIND_NOTIFY;
use vigil_rt::{ipc, println, thread, Endpoint};

vigil_rt::entry!(main);

/// Notifications the sender raises (must match `notify_sender`).
const NOTIFICATIONS: u64 = 5;

fn main(_args: &str) -> i32 {
    finish("notify", run())
}

fn run() -> Result<String, String> {
    let sender = lookup_with_retry("notify_sender")?;
    println!("sleeping while {sender} notifies");
    thread::sleep(Duration::from_millis(300));

    let first = context(ipc::receive(Endpoint::ANY), "first receive")?;
    if first.kind != KIND_NOTIFY || first.source != sender {
        return Err(format!(
            "first receive: expected a notification from {sender}, got kind {:#x} from {}",
            first.kind, first.source
        ));
    }
    if first.payload[0] != 1 {
        return Err(format!(
            "the notification says payload[0] = {} (expected 1: one delivery for a thread \
             source)",
            first.payload[0]
        ));
    }
    println!(
        "first receive: one notification from {sender} (payload[0] = 1, time {} ns)",
        first.payload[1]
    );

    let second = context(ipc::receive(Endpoint::ANY), "second receive")?;
    if second.is_notification() {
        return Err(format!(
            "second receive: another notification from {} — the {NOTIFICATIONS} did not \
             coalesce",
            second.source
        ));
    }
    if second.kind != kinds::NOTIFY_DONE || second.source != sender {
        return Err(format!(
            "second receive: expected the done message from {sender}, got kind {:#x} from {}",
            second.kind, second.source
        ));
    }
    if second.payload[0] != NOTIFICATIONS {
        return Err(format!(
            "the sender reports {} successful notifications, expected {NOTIFICATIONS}",
            second.payload[0]
        ));
    }
    Ok(format!(
        "{NOTIFICATIONS} notifications coalesced into 1, then the done message"
    ))
}
