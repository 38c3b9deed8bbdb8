//! Fuzz target: the kernel's ELF validator (`kcore::elf`), which every boot module goes
//! through. It must never panic, and an accepted image must keep the promises the loader
//! relies on: segments inside the file and the user image range, entry in code.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_abi::layout::{USER_IMAGE_END, USER_IMAGE_MIN};
use vigil_kcore::elf::ElfImage;

fuzz_target!(|data: &[u8]| {
    let Ok(image) = ElfImage::parse(data) else {
        return;
    };
    for segment in image.segments() {
        assert!(segment.virt >= USER_IMAGE_MIN);
        assert!(segment.virt + segment.mem_size <= USER_IMAGE_END);
        assert!(segment.file_size <= segment.mem_size);
        assert!(segment.file_offset + segment.file_size <= data.len() as u64);
        assert!(!(segment.flags.write && segment.flags.execute));
    }
});
