//! Fuzz target: the Multiboot information parser (`kcore::multiboot`), reading a made-up
//! physical memory: the information structure, maps, modules and strings are all outside
//! bytes. It must never panic, read out of bounds, or return more than its limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_kcore::multiboot::{BootInfo, PhysReader, BOOTLOADER_MAGIC, MAX_MODULES};

/// Physical memory: `data` at address 0x1000; everything else is unreadable.
struct Memory<'a>(&'a [u8]);

const BASE: u64 = 0x1000;

impl PhysReader for Memory<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let Some(start) = addr.checked_sub(BASE) else {
            return false;
        };
        let Ok(start) = usize::try_from(start) else {
            return false;
        };
        match start
            .checked_add(buf.len())
            .and_then(|end| self.0.get(start..end))
        {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = BootInfo::parse(&Memory(data), BOOTLOADER_MAGIC, BASE) {
        assert!(info.modules().count() <= MAX_MODULES);
        for module in info.modules() {
            assert!(module.end >= module.start);
        }
        let _ = info.regions().count();
    }
});
