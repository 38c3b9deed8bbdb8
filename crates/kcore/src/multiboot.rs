//! Multiboot 1 boot information parser: memory map, command line and modules, bounds-checked.

use crate::memmap::MemoryRegion;

/// EAX value a Multiboot 1 loader passes to the kernel.
pub const BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
/// Most memory-map regions kept; more set `regions_truncated`.
pub const MAX_REGIONS: usize = 64;
/// Most modules kept; more set `modules_truncated`.
pub const MAX_MODULES: usize = 32;
/// Longest command line kept (bytes); longer sets `cmdline_truncated`.
pub const MAX_CMDLINE: usize = 256;
/// Longest module string kept (bytes).
pub const MAX_MODULE_NAME: usize = 64;

/// Reads physical memory for the parser. The kernel reads through its direct map; tests
/// use a byte image. Returns false if any byte of `[addr, addr+buf.len())` is not readable.
pub trait PhysReader {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MultibootError {
    /// EAX did not hold BOOTLOADER_MAGIC (the value found).
    BadMagic(u32),
    /// The info structure (or something it points to) could not be read at this address.
    Unreadable(u64),
    /// The loader gave no memory map (flags bit 6 clear) and no mem_lower/mem_upper (bit 0).
    NoMemoryInfo,
    /// A memory-map entry has a size field smaller than 20 bytes, at this address.
    BadMapEntry(u64),
}

/// A boot module: physical range and its string (usually its name / command line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module {
    pub start: u64,
    pub end: u64,
    name: [u8; MAX_MODULE_NAME],
    name_len: usize,
}

impl Module {
    /// The module string, lossily cut at the first invalid UTF-8 byte.
    pub fn name(&self) -> &str {
        todo!()
    }
}

/// Everything the kernel takes from the Multiboot info, copied out of loader memory.
#[derive(Clone, Debug)]
pub struct BootInfo {
    regions: [Option<MemoryRegion>; MAX_REGIONS],
    modules: [Option<Module>; MAX_MODULES],
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    /// More memory-map regions than MAX_REGIONS: the rest were dropped.
    pub regions_truncated: bool,
    pub modules_truncated: bool,
    pub cmdline_truncated: bool,
    /// mem_lower / mem_upper in KiB when flags bit 0 was set.
    pub mem_lower_kib: Option<u32>,
    pub mem_upper_kib: Option<u32>,
    /// Bootloader name when flags bit 9 was set (e.g. "qemu").
    pub loader_name: Option<[u8; 32]>,
}

impl BootInfo {
    /// Parses the Multiboot 1 info at `info_addr`. `magic` is the value the loader left in EAX.
    /// Without a memory map but with mem_lower/mem_upper, synthesises two Available regions
    /// `[0, lower)` and `[1 MiB, 1 MiB + upper)`.
    pub fn parse(
        mem: &impl PhysReader,
        magic: u32,
        info_addr: u64,
    ) -> Result<BootInfo, MultibootError> {
        todo!()
    }

    pub fn regions(&self) -> impl Iterator<Item = MemoryRegion> + '_ {
        core::iter::empty()
    }

    pub fn modules(&self) -> impl Iterator<Item = &Module> + '_ {
        core::iter::empty()
    }

    /// The kernel command line, lossily cut at the first invalid UTF-8 byte ("" if none).
    pub fn cmdline(&self) -> &str {
        todo!()
    }

    /// Value of `key=value` in the command line (whitespace-separated words), if present.
    /// A bare word `key` yields `Some("")`.
    pub fn cmdline_arg(&self, key: &str) -> Option<&str> {
        todo!()
    }
}
