//! Shared helpers for the Vigil user programs in src/bin/: verdict lines, lookups, message
//! kinds of the scenario protocols, checksums, sample statistics and a deliberate fault.
//!
//! Every program starts with `#![cfg_attr(target_os = "none", no_std)]` and `#![no_main]`
//! and names its `main` with `vigil_rt::entry!` (see `vigil_rt::start`).
#![no_std]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::time::Duration;

use vigil_rt::{println, process, thread, Endpoint, Error};

/// Reads address 0, which is never mapped (the first 4 MiB of every address space are
/// not): the load takes a #PF, which goes to the process's signal manager (or kills it).
/// Returns only if the fault was handled by making the load succeed.
#[inline(never)]
pub fn read_address_zero() -> u64 {
    let address = core::hint::black_box(0u64);
    let value: u64;
    // SAFETY: deliberately faults: address 0 is never mapped, so the load takes a #PF and
    // nothing of this program's memory is touched; whoever handles the fault decides
    // what happens to the thread.
    unsafe {
        core::arch::asm!(
            "mov {value}, qword ptr [{address}]",
            address = in(reg) address,
            value = out(reg) value,
            options(nostack, readonly),
        );
    }
    value
}

/// Message kinds of the scenario protocols (the kernel never interprets them).
pub mod kinds {
    /// Ping-pong request/reply: payload[0] = a number, the reply carries it + 1.
    pub const PING: u32 = 0x100;
    pub const PONG: u32 = 0x101;
    /// ANY-receive clients: payload[0] = client number, payload[1] = sequence number.
    pub const ANY_REQUEST: u32 = 0x110;
    pub const ANY_REPLY: u32 = 0x111;
    /// Notify scenario: the sender's blocking "done" message after its notifications.
    pub const NOTIFY_DONE: u32 = 0x120;
    /// Senda scenario.
    pub const SENDA_BATCH: u32 = 0x130;
    pub const SENDA_BATCH_ACK: u32 = 0x131;
    pub const SENDA_NO_REPLY_REQUEST: u32 = 0x132;
    pub const SENDA_NO_REPLY_ASYNC: u32 = 0x133;
    pub const SENDA_NO_REPLY_REPLY: u32 = 0x134;
    pub const SENDA_ASYNC_REPLY_REQUEST: u32 = 0x135;
    pub const SENDA_ASYNC_REPLY: u32 = 0x136;
    pub const SENDA_FINISHED: u32 = 0x137;
    /// Grant scenario: payload[0] = grant id, payload[1] = length, payload[2] = seed.
    pub const GRANT_READ: u32 = 0x140;
    pub const GRANT_WRITE: u32 = 0x141;
    pub const GRANT_PROBE_REVOKED: u32 = 0x142;
    pub const GRANT_REPLY: u32 = 0x143;
    /// Error scenario helper: replies ECHO_REPLY to anything.
    pub const ECHO: u32 = 0x150;
    pub const ECHO_REPLY: u32 = 0x151;
    /// Benchmark: a null request answered with a null reply.
    pub const BENCH_NULL: u32 = 0x160;
    /// Error scenario: messages between threads of one process.
    pub const THREAD_MESSAGE: u32 = 0x170;
}

/// Reply layout of the grant scenario (`kinds::GRANT_REPLY` payload words and step ids).
pub mod grant_protocol {
    /// payload index: 0 = success, else the failing step's `Error` code.
    pub const STATUS: usize = 0;
    /// payload index: the checksum of a READ grant's contents.
    pub const CHECKSUM: usize = 1;
    /// payload index: which step failed.
    pub const FAILED_STEP: usize = 2;
    /// Steps: the copy itself, a read past the end, the wrong access, a revoked grant.
    pub const STEP_COPY: u64 = 1;
    pub const STEP_PAST_END: u64 = 2;
    pub const STEP_WRONG_ACCESS: u64 = 3;
    pub const STEP_REVOKED: u64 = 4;
}

/// Prints `<test>: PASS <detail>` or `<test>: FAIL: <reason>`; returns whether it passed.
pub fn report(test: &str, outcome: &Result<String, String>) -> bool {
    match outcome {
        Ok(detail) if detail.is_empty() => println!("{test}: PASS"),
        Ok(detail) => println!("{test}: PASS {detail}"),
        Err(reason) => println!("{test}: FAIL: {reason}"),
    }
    outcome.is_ok()
}

/// Reports the verdict and stops the machine with it (the judging program of a scenario).
pub fn finish(test: &str, outcome: Result<String, String>) -> ! {
    let passed = report(test, &outcome);
    process::shutdown(passed)
}

/// Looks up a boot process, retrying briefly while it is not (yet) known.
pub fn lookup_with_retry(name: &str) -> Result<Endpoint, String> {
    const ATTEMPTS: u32 = 50;
    let mut last_error = Error::NotFound;
    for _ in 0..ATTEMPTS {
        match vigil_rt::ipc::lookup(name) {
            Ok(endpoint) => return Ok(endpoint),
            Err(error) => last_error = error,
        }
        thread::sleep(Duration::from_millis(10));
    }
    Err(format!("lookup({name:?}) failed: {last_error}"))
}

/// Turns a system-call result into a `String` error naming the operation.
pub fn context<T>(result: Result<T, Error>, what: &str) -> Result<T, String> {
    result.map_err(|error| format!("{what}: {error} ({error:?})"))
}

/// Checks that `result` is exactly `Err(expected)`; describes the mismatch otherwise.
pub fn expect_error<T: core::fmt::Debug>(
    case: &str,
    result: Result<T, Error>,
    expected: Error,
) -> Result<(), String> {
    match result {
        Err(error) if error == expected => Ok(()),
        Err(error) => Err(format!(
            "{case}: expected {expected} ({expected:?}), got {error} ({error:?})"
        )),
        Ok(value) => Err(format!(
            "{case}: expected {expected} ({expected:?}), but it succeeded with {value:?}"
        )),
    }
}

/// [`expect_error`], and on success says so on the console (`refused as expected: CASE:
/// ERROR`), so a scenario's check can see each bad request got its own error.
pub fn expect_refusal<T: core::fmt::Debug>(
    case: &str,
    result: Result<T, Error>,
    expected: Error,
) -> Result<(), String> {
    expect_error(case, result, expected)?;
    vigil_rt::println!("refused as expected: {case}: {expected}");
    Ok(())
}

/// FNV-1a over `bytes`, continuing from `state` (start with [`CHECKSUM_START`]).
pub fn checksum_update(mut state: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        state ^= u64::from(byte);
        state = state.wrapping_mul(0x0000_0100_0000_01b3);
    }
    state
}

/// The FNV-1a offset basis.
pub const CHECKSUM_START: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a of `bytes`.
pub fn checksum(bytes: &[u8]) -> u64 {
    checksum_update(CHECKSUM_START, bytes)
}

/// Byte `index` of the test pattern with `seed`: not periodic at page or chunk sizes, so a
/// chunk copied to the wrong offset changes the checksum.
pub fn pattern_byte(seed: u64, index: usize) -> u8 {
    let index = index as u64;
    let mixed = (index ^ seed)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .rotate_left(17)
        ^ (index >> 12);
    (mixed >> 24) as u8
}

/// Fills `buffer` with the pattern for `seed`, starting at pattern offset `start`.
pub fn fill_pattern(buffer: &mut [u8], seed: u64, start: usize) {
    for (i, byte) in buffer.iter_mut().enumerate() {
        *byte = pattern_byte(seed, start + i);
    }
}

/// Median and minimum of `samples` (sorts them); `None` when empty. For an even count the
/// median is the lower middle sample.
pub fn median_and_min(samples: &mut [u64]) -> Option<(u64, u64)> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    Some((samples[(samples.len() - 1) / 2], samples[0]))
}

/// `numerator / denominator` as a decimal with three places (no floating-point formatting
/// needed), e.g. `ratio_text(987, 1000)` = `"0.987"`.
pub fn ratio_text(numerator: u64, denominator: u64) -> String {
    if denominator == 0 {
        return String::from("inf");
    }
    let thousandths = (u128::from(numerator) * 1000 / u128::from(denominator)) as u64;
    format!("{}.{:03}", thousandths / 1000, thousandths % 1000)
}

/// Nanoseconds as milliseconds with three decimals, e.g. `"12.345 ms"`.
pub fn ms_text(nanoseconds: u64) -> String {
    format!(
        "{}.{:03} ms",
        nanoseconds / 1_000_000,
        (nanoseconds / 1000) % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_fnv1a() {
        assert_eq!(checksum(b""), CHECKSUM_START);
        assert_eq!(checksum(b"a"), 0xaf63_dc4c_8601_ec8c);
        let whole = checksum(b"hello world");
        let split = checksum_update(checksum(b"hello "), b"world");
        assert_eq!(whole, split);
    }

    #[test]
    fn pattern_differs_between_pages_and_seeds() {
        let page = |seed, start| {
            let mut bytes = [0u8; 4096];
            fill_pattern(&mut bytes, seed, start);
            bytes
        };
        assert_ne!(page(1, 0), page(1, 4096));
        assert_ne!(page(1, 0), page(2, 0));
        assert_eq!(page(7, 8192), page(7, 8192));
    }

    #[test]
    fn median_and_min_of_samples() {
        assert_eq!(median_and_min(&mut []), None);
        assert_eq!(median_and_min(&mut [5]), Some((5, 5)));
        assert_eq!(median_and_min(&mut [9, 1, 5]), Some((5, 1)));
        assert_eq!(median_and_min(&mut [4, 3, 2, 1]), Some((2, 1)));
    }

    #[test]
    fn ratio_and_millisecond_text() {
        assert_eq!(ratio_text(987, 1000), "0.987");
        assert_eq!(ratio_text(3, 2), "1.500");
        assert_eq!(ratio_text(1, 0), "inf");
        assert_eq!(ms_text(12_345_678), "12.345 ms");
    }

    #[test]
    fn expect_error_describes_mismatches() {
        assert_eq!(
            expect_error::<u64>("x", Err(Error::Fault), Error::Fault),
            Ok(())
        );
        let wrong = expect_error::<u64>("x", Err(Error::NotReady), Error::Fault).unwrap_err();
        assert!(wrong.contains("got ENOTREADY"), "{wrong}");
        let succeeded = expect_error("x", Ok(3u64), Error::Fault).unwrap_err();
        assert!(succeeded.contains("succeeded with 3"), "{succeeded}");
    }
}
