//! Fuzz target: the recording reader (`vigil::record`), which opens files a user hands to
//! `vigil replay` / `events --replay` / `export`. It must never panic or allocate without
//! bound on a hostile file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil::record::RecordReader;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = RecordReader::new(data) else {
        return;
    };
    let mut records = 0;
    while let Ok(Some(_record)) = reader.next_record() {
        records += 1;
        if records > 100_000 {
            break;
        }
    }
});
