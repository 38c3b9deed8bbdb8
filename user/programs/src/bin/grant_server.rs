//! `grant_server`: the other side of `grant_client`: safe-copies from READ grants (in 16 KiB
//! chunks) and checksums, writes a pattern through WRITE grants (in 12 KiB chunks, so copies
//! straddle pages), and checks that out-of-range, wrong-access and revoked uses are refused
//! with BadGrant. Boot with `kcalls=safecopy`.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::vec;

use vigil_programs::grant_protocol as protocol;
use vigil_programs::{checksum_update, fill_pattern, kinds, CHECKSUM_START};
use vigil_rt::ipc::{self, GrantId};
use vigil_rt::{println, Endpoint, Error, Message};

vigil_rt::entry!(main);

const READ_CHUNK: usize = 16 << 10;
const WRITE_CHUNK: usize = 12 << 10;

/// A failed step: which one, and the error (BadGrant-expected steps that succeeded report
/// InvalidArgument).
struct Failure {
    step: u64,
    error: Error,
}

fn fail(step: u64, error: Error) -> Failure {
    Failure { step, error }
}

/// Ok if `result` is the BadGrant refusal the step expects.
fn expect_bad_grant(step: u64, result: Result<(), Error>) -> Result<(), Failure> {
    match result {
        Err(Error::BadGrant) => Ok(()),
        Err(error) => Err(fail(step, error)),
        Ok(()) => Err(fail(step, Error::InvalidArgument)),
    }
}

fn main(_args: &str) -> i32 {
    println!("grant server ready at {}", ipc::self_endpoint());
    loop {
        let request = match ipc::receive(Endpoint::ANY) {
            Ok(request) => request,
            Err(error) => {
                println!("grant server: receive failed: {error}");
                return 1;
            }
        };
        let client = request.source;
        let grant = GrantId(request.payload[0]);
        let len = request.payload[1] as usize;
        let mut reply = Message::new(kinds::GRANT_REPLY);
        let outcome = match request.kind {
            kinds::GRANT_READ => read_grant(client, grant, len).map(|sum| {
                reply.payload[protocol::CHECKSUM] = sum;
            }),
            kinds::GRANT_WRITE => write_grant(client, grant, len, request.payload[2]),
            kinds::GRANT_PROBE_REVOKED => {
                let mut probe = [0u8; 16];
                expect_bad_grant(
                    protocol::STEP_REVOKED,
                    ipc::safe_copy_from(client, grant, 0, &mut probe),
                )
            }
            other => {
                println!("grant server: ignoring kind {other:#x} from {client}");
                continue;
            }
        };
        if let Err(failure) = outcome {
            println!(
                "grant server: step {} failed: {}",
                failure.step, failure.error
            );
            reply.payload[protocol::STATUS] = u64::from(failure.error as u32);
            reply.payload[protocol::FAILED_STEP] = failure.step;
        }
        if let Err(error) = ipc::send(client, &reply) {
            println!("grant server: reply to {client} failed: {error}");
        }
    }
}

/// Copies the whole grant in chunks and returns its checksum; then checks the refusals.
fn read_grant(client: Endpoint, grant: GrantId, len: usize) -> Result<u64, Failure> {
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut sum = CHECKSUM_START;
    let mut offset = 0;
    while offset < len {
        let part = &mut chunk[..READ_CHUNK.min(len - offset)];
        ipc::safe_copy_from(client, grant, offset, part)
            .map_err(|error| fail(protocol::STEP_COPY, error))?;
        sum = checksum_update(sum, part);
        offset += part.len();
    }
    let mut probe = [0u8; 16];
    expect_bad_grant(
        protocol::STEP_PAST_END,
        ipc::safe_copy_from(client, grant, len - 8, &mut probe),
    )?;
    expect_bad_grant(
        protocol::STEP_WRONG_ACCESS,
        ipc::safe_copy_to(client, grant, 0, &probe),
    )?;
    Ok(sum)
}

/// Writes the pattern for `seed` through the grant in chunks; then checks that reading
/// through a WRITE-only grant is refused.
fn write_grant(client: Endpoint, grant: GrantId, len: usize, seed: u64) -> Result<(), Failure> {
    let mut chunk = vec![0u8; WRITE_CHUNK];
    let mut offset = 0;
    while offset < len {
        let part = &mut chunk[..WRITE_CHUNK.min(len - offset)];
        fill_pattern(part, seed, offset);
        ipc::safe_copy_to(client, grant, offset, part)
            .map_err(|error| fail(protocol::STEP_COPY, error))?;
        offset += part.len();
    }
    let mut probe = [0u8; 16];
    expect_bad_grant(
        protocol::STEP_WRONG_ACCESS,
        ipc::safe_copy_from(client, grant, 0, &mut probe),
    )
}
