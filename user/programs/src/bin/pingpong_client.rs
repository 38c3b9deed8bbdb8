//! `pingpong_client`: 1000 send_receive round trips with `pingpong_server`, checking every
//! reply; prints the verdict and shuts the machine down (boot with `kcalls=shutdown`).
//! With `-- registers` the round trips are `SendReceiveRegisters` (for a
//! `pingpong_server -- registers`); the checks are the same.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use vigil_programs::{context, finish, kinds, lookup_with_retry};
use vigil_rt::abi::message::RegisterMessage;
use vigil_rt::{ipc, Endpoint, Message};

vigil_rt::entry!(main);

const ROUND_TRIPS: u64 = 1000;

fn main(args: &str) -> i32 {
    let registers = match args.trim() {
        "" => false,
        "registers" => true,
        other => {
            let error = format!("unknown mode {other:?} (none or registers)");
            finish("pingpong", Err(error))
        }
    };
    finish("pingpong", run(registers))
}

/// One round trip to `server` carrying `value`: the reply's sender, kind and first word.
fn round_trip(
    server: Endpoint,
    value: u64,
    registers: bool,
) -> Result<(Endpoint, u32, u64), String> {
    if registers {
        let mut message = RegisterMessage::new(kinds::PING);
        message.payload[0] = value;
        let (source, reply) = context(
            ipc::send_receive_registers(server, &message),
            "send_receive_registers",
        )?;
        return Ok((source, reply.kind, reply.payload[0]));
    }
    let mut message = Message::new(kinds::PING);
    message.payload[0] = value;
    context(ipc::send_receive(server, &mut message), "send_receive")?;
    Ok((message.source, message.kind, message.payload[0]))
}

fn run(registers: bool) -> Result<String, String> {
    let server = lookup_with_retry("pingpong_server")?;
    for round in 0..ROUND_TRIPS {
        let value = round * 7 + 3;
        let (source, kind, answer) = round_trip(server, value, registers)
            .map_err(|error| format!("round trip {round}: {error}"))?;
        if source != server || kind != kinds::PONG {
            return Err(format!(
                "round trip {round}: reply from {source} of kind {kind:#x}, expected a PONG from {server}"
            ));
        }
        if answer != value + 1 {
            return Err(format!(
                "round trip {round}: sent {value}, got {answer} back (expected {})",
                value + 1
            ));
        }
    }
    let calls = if registers {
        " (register messages)"
    } else {
        ""
    };
    Ok(format!("{ROUND_TRIPS} round trips{calls}"))
}
