//! Fuzz target: the kernel's decoder of host commands (what arrives on COM2 from any
//! client), the same code the kernel runs. It must never panic, and the statistics it
//! keeps must add up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_wire::HostFrameDecoder;

fuzz_target!(|data: &[u8]| {
    let mut decoder = HostFrameDecoder::new();
    let mut results = 0u64;
    for chunk in data.chunks(7) {
        decoder.push(chunk, |_frame| results += 1);
    }
    let stats = decoder.stats();
    assert!(stats.errors() <= results + 1, "{stats:?} for {results} results");
});
