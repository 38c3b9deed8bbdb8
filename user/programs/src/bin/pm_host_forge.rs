//! `pm_host_forge`: a process with PM's kernel calls (`kcalls=pm`) that is not PM tries to
//! answer host commands with `PmHostReply`, and with bad arguments; each is refused with a
//! clear error (the `monitor-pm-host-commands` scenario boots it next to PM).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use vigil_rt::abi::syscall::{KernelCall, KernelCallTrapArgs};
use vigil_rt::{println, syscall, Error};

vigil_rt::entry!(main);

/// `PmHostReply` with raw registers: (request, outcome, data address, data length).
fn host_reply(request: u64, outcome: u64, address: u64, len: u64) -> Result<u64, Error> {
    // SAFETY: the kernel only reads `len` bytes at `address` (this program's own buffer or
    // an address it refuses), and only after checking the caller and the arguments.
    let rax = unsafe {
        syscall::syscall6(
            KernelCallTrapArgs::CALL as u64,
            KernelCall::PmHostReply as u64,
            request,
            outcome,
            address,
            len,
            0,
        )
    };
    Error::from_return_value(rax)
}

fn main(_args: &str) -> i32 {
    let text = *b"killed pid 4";
    let own = text.as_ptr() as u64;
    let cases: [(&str, u64, u64, u64, u64, Error); 5] = [
        (
            "answer as pm",
            1,
            0,
            own,
            text.len() as u64,
            Error::PermissionDenied,
        ),
        (
            "kernel-only outcome busy",
            1,
            7,
            own,
            4,
            Error::InvalidArgument,
        ),
        (
            "unknown outcome 200",
            1,
            200,
            own,
            4,
            Error::InvalidArgument,
        ),
        (
            "request id over 32 bits",
            1 << 32,
            0,
            own,
            4,
            Error::InvalidArgument,
        ),
        (
            "data at a kernel address",
            1,
            0,
            0xffff_8000_0000_0000,
            16,
            Error::Fault,
        ),
    ];
    let mut failed = 0;
    for (what, request, outcome, address, len, expected) in cases {
        match host_reply(request, outcome, address, len) {
            Err(error) if error == expected => println!("refused as expected: {what}: {error}"),
            other => {
                println!("FAIL {what}: {other:?}, expected {expected}");
                failed += 1;
            }
        }
    }
    if failed == 0 {
        println!("PASS forged host replies refused");
    }
    failed
}
