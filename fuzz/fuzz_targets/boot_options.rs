//! Fuzz target: the boot-module option parser (`kcore::boot_options`), which reads every
//! module string the loader passes. It must never panic, and what it accepts must be within
//! the documented bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_kcore::boot_options::{parse, LOWEST_PRIORITY};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    if let Ok(options) = parse(text) {
        assert!(options.priority <= LOWEST_PRIORITY);
        assert!(!options.name.is_empty() && options.name.len() <= 32);
        assert!(!options.name.contains('/'));
    }
});
