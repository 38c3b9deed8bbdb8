//! `grant_client`: judges memory grants and safe copies with `grant_server`:
//! it grants 1 MiB READ and the server safe-copies and checksums it (and checks that reads
//! past the end and writes through a READ grant are refused); after revocation the old
//! grant is refused; then it grants 256 KiB WRITE and the server fills it with a pattern
//! that the client verifies. Boot with `kcalls=shutdown`.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;

use vigil_programs::{checksum, context, fill_pattern, finish, kinds, lookup_with_retry};
use vigil_programs::{grant_protocol as protocol, pattern_byte};
use vigil_rt::ipc::{self, GrantId};
use vigil_rt::{println, Endpoint, Message};

vigil_rt::entry!(main);

const READ_LEN: usize = 1 << 20;
const WRITE_LEN: usize = 256 << 10;
const READ_SEED: u64 = 0x5eed_0001;
const WRITE_SEED: u64 = 0x5eed_0002;

fn main(_args: &str) -> i32 {
    finish("grant", run())
}

fn exchange(server: Endpoint, kind: u32, grant: GrantId, len: usize, seed: u64) -> Message {
    let mut message = Message::new(kind);
    message.payload[0] = grant.0;
    message.payload[1] = len as u64;
    message.payload[2] = seed;
    let result = ipc::send_receive(server, &mut message);
    if let Err(error) = result {
        message.payload[protocol::STATUS] = u64::MAX;
        println!("send_receive to the grant server failed: {error}");
    }
    message
}

fn check_reply(reply: &Message, step: &str) -> Result<(), String> {
    if reply.payload[protocol::STATUS] == u64::MAX {
        return Err(format!("{step}: the exchange failed"));
    }
    if reply.kind != kinds::GRANT_REPLY {
        return Err(format!("{step}: reply of kind {:#x}", reply.kind));
    }
    match reply.payload[protocol::STATUS] {
        0 => Ok(()),
        code => Err(format!(
            "{step}: the server failed: {} at its step {}",
            ipc::error_from_code(code as u32),
            reply.payload[protocol::FAILED_STEP]
        )),
    }
}

fn run() -> Result<String, String> {
    let server = lookup_with_retry("grant_server")?;

    // READ grant: the server copies 1 MiB out of our memory and checksums it.
    let mut data = vec![0u8; READ_LEN];
    fill_pattern(&mut data, READ_SEED, 0);
    let expected_sum = checksum(&data);
    let (grant, reply) = context(
        ipc::with_read_grant(server, &data, |grant| {
            (
                grant,
                exchange(server, kinds::GRANT_READ, grant, READ_LEN, 0),
            )
        }),
        "creating the READ grant",
    )?;
    check_reply(&reply, "READ grant")?;
    let server_sum = reply.payload[protocol::CHECKSUM];
    if server_sum != expected_sum {
        return Err(format!(
            "READ grant: the server's checksum {server_sum:#018x} differs from ours \
             {expected_sum:#018x}"
        ));
    }
    println!(
        "READ grant {}: server copied {READ_LEN} bytes, checksum {server_sum:#018x} matches; \
         out-of-range read and write through READ grant refused",
        grant.0
    );

    // The grant is revoked now: the server must be refused.
    let reply = exchange(server, kinds::GRANT_PROBE_REVOKED, grant, READ_LEN, 0);
    check_reply(&reply, "revoked grant")?;
    println!("revoked grant {} refused with EBADGRANT", grant.0);

    // WRITE grant: the server fills our buffer with a pattern.
    let mut target = vec![0u8; WRITE_LEN];
    let reply = context(
        ipc::with_write_grant(server, &mut target, |grant| {
            exchange(server, kinds::GRANT_WRITE, grant, WRITE_LEN, WRITE_SEED)
        }),
        "creating the WRITE grant",
    )?;
    check_reply(&reply, "WRITE grant")?;
    if let Some(index) = (0..WRITE_LEN).find(|&i| target[i] != pattern_byte(WRITE_SEED, i)) {
        return Err(format!(
            "WRITE grant: byte {index} is {:#04x}, the pattern says {:#04x}",
            target[index],
            pattern_byte(WRITE_SEED, index)
        ));
    }
    println!("WRITE grant: server wrote {WRITE_LEN} bytes, verified; read through it refused");
    Ok(format!(
        "read {READ_LEN} bytes checksum={expected_sum:#018x}, wrote {WRITE_LEN} bytes verified"
    ))
}
