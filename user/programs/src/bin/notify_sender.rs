//! `notify_sender`: notifies `notify_receiver` 5 times, then sends it a blocking "done"
//! message carrying how many notifications succeeded.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use vigil_programs::{kinds, lookup_with_retry};
use vigil_rt::{ipc, println, Message};

vigil_rt::entry!(main);

const NOTIFICATIONS: u64 = 5;

fn main(_args: &str) -> i32 {
    let receiver = match lookup_with_retry("notify_receiver") {
        Ok(receiver) => receiver,
        Err(error) => {
            println!("notify_sender: FAIL: {error}");
            return 1;
        }
    };
    let mut succeeded = 0;
    for attempt in 0..NOTIFICATIONS {
        match ipc::notify(receiver) {
            Ok(()) => succeeded += 1,
            Err(error) => println!("notify {attempt} failed: {error}"),
        }
    }
    println!("notified {receiver} {succeeded} times; sending done");
    let mut done = Message::new(kinds::NOTIFY_DONE);
    done.payload[0] = succeeded;
    match ipc::send(receiver, &done) {
        Ok(()) => 0,
        Err(error) => {
            println!("notify_sender: FAIL: sending done: {error}");
            1
        }
    }
}
