//! Multiboot 1 boot information parser: memory map, command line and modules, bounds-checked.

use crate::memmap::{MemoryRegion, PhysRange, RegionKind};

/// EAX value a Multiboot 1 loader passes to the kernel.
pub const BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
/// Most memory-map regions kept; more set `regions_truncated`.
pub const MAX_REGIONS: usize = 64;
/// Most modules kept; more set `modules_truncated`.
pub const MAX_MODULES: usize = 32;
/// Longest command line kept (bytes); longer sets `cmdline_truncated`.
pub const MAX_CMDLINE: usize = 256;
/// Longest module string kept (bytes): the path QEMU or the loader gives, then the
/// options (a service table for RS can be long). `BootInfo` with every module's string
/// lives on the 64 KiB boot stack: 32 × 256 bytes.
pub const MAX_MODULE_NAME: usize = 256;
/// Most memory-map entries examined, empty ones included. A map claiming more is garbage;
/// parsing stops there and sets `regions_truncated`.
pub const MAX_MAP_ENTRIES: usize = 1024;
/// Longest bootloader name kept (bytes), the size of `BootInfo::loader_name`.
pub const MAX_LOADER_NAME: usize = 32;

/// Info structure field offsets (Multiboot 1 specification, section 3.3).
mod offset {
    pub const FLAGS: u64 = 0;
    pub const MEM_LOWER: u64 = 4;
    pub const MEM_UPPER: u64 = 8;
    pub const CMDLINE: u64 = 16;
    pub const MODS_COUNT: u64 = 20;
    pub const MODS_ADDR: u64 = 24;
    pub const MMAP_LENGTH: u64 = 44;
    pub const MMAP_ADDR: u64 = 48;
    pub const BOOT_LOADER_NAME: u64 = 64;
}

/// Info `flags` bits.
mod flag {
    pub const MEM: u32 = 1 << 0;
    pub const CMDLINE: u32 = 1 << 2;
    pub const MODS: u32 = 1 << 3;
    pub const MMAP: u32 = 1 << 6;
    pub const BOOT_LOADER_NAME: u32 = 1 << 9;
}

/// Bytes of one module entry: mod_start, mod_end, string, reserved.
const MODULE_ENTRY_LEN: u64 = 16;
/// Bytes of a memory-map entry after its `size` field that the parser reads.
const MAP_ENTRY_MIN_SIZE: u32 = 20;
const MIB: u64 = 1 << 20;

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
///
/// A loader giving `mod_end < mod_start` gets `end` clamped to `start` (an empty module).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Module {
    pub start: u64,
    pub end: u64,
    name: [u8; MAX_MODULE_NAME],
    name_len: usize,
    name_truncated: bool,
}

impl Module {
    /// The module string, lossily cut at the first invalid UTF-8 byte.
    pub fn name(&self) -> &str {
        valid_utf8_prefix(&self.name[..self.name_len])
    }

    /// Whether the module string was longer than `MAX_MODULE_NAME` and cut.
    pub fn name_truncated(&self) -> bool {
        self.name_truncated
    }

    /// The module's physical range `[start, end)`.
    pub fn range(&self) -> PhysRange {
        PhysRange::new(self.start, self.end)
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
    /// How many modules the loader passed (more than `MAX_MODULES` when truncated).
    pub modules_given: u32,
    pub cmdline_truncated: bool,
    /// mem_lower / mem_upper in KiB when flags bit 0 was set.
    pub mem_lower_kib: Option<u32>,
    pub mem_upper_kib: Option<u32>,
    /// Bootloader name when flags bit 9 was set (e.g. "qemu").
    pub loader_name: Option<[u8; 32]>,
}

/// Reads a little-endian u32 at `base + offset`.
fn read_u32(mem: &impl PhysReader, base: u64, offset: u64) -> Result<u32, MultibootError> {
    let addr = base
        .checked_add(offset)
        .ok_or(MultibootError::Unreadable(base))?;
    let mut bytes = [0u8; 4];
    read_exact(mem, addr, &mut bytes)?;
    Ok(u32::from_le_bytes(bytes))
}

fn read_exact(mem: &impl PhysReader, addr: u64, buf: &mut [u8]) -> Result<(), MultibootError> {
    // A read running past the top of the address space is refused before asking the reader.
    let fits = addr.checked_add(buf.len() as u64).is_some();
    if fits && mem.read(addr, buf) {
        Ok(())
    } else {
        Err(MultibootError::Unreadable(addr))
    }
}

/// Copies the NUL-terminated string at `addr` into `out`, one byte at a time so nothing
/// past the terminator is touched. Returns its kept length and whether it was cut (no NUL
/// within `out.len()` bytes). Address 0 means "no string": empty, not read.
fn read_c_string(
    mem: &impl PhysReader,
    addr: u64,
    out: &mut [u8],
) -> Result<(usize, bool), MultibootError> {
    if addr == 0 {
        return Ok((0, false));
    }
    for index in 0..=out.len() {
        let byte_addr = addr
            .checked_add(index as u64)
            .ok_or(MultibootError::Unreadable(addr))?;
        let mut byte = [0u8; 1];
        read_exact(mem, byte_addr, &mut byte)?;
        if byte[0] == 0 {
            return Ok((index, false));
        }
        match out.get_mut(index) {
            Some(slot) => *slot = byte[0],
            None => return Ok((out.len(), true)),
        }
    }
    Ok((out.len(), true))
}

/// The longest valid UTF-8 prefix of `bytes` (the whole slice when it is valid).
fn valid_utf8_prefix(bytes: &[u8]) -> &str {
    match core::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(error) => core::str::from_utf8(&bytes[..error.valid_up_to()]).unwrap_or(""),
    }
}

fn region_kind(kind: u32) -> RegionKind {
    match kind {
        1 => RegionKind::Available,
        2 => RegionKind::Reserved,
        3 => RegionKind::AcpiReclaimable,
        4 => RegionKind::AcpiNvs,
        5 => RegionKind::BadRam,
        other => RegionKind::Other(other),
    }
}

impl BootInfo {
    fn empty() -> Self {
        BootInfo {
            regions: [None; MAX_REGIONS],
            modules: [None; MAX_MODULES],
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
            regions_truncated: false,
            modules_truncated: false,
            modules_given: 0,
            cmdline_truncated: false,
            mem_lower_kib: None,
            mem_upper_kib: None,
            loader_name: None,
        }
    }

    /// Parses the Multiboot 1 info at `info_addr`. `magic` is the value the loader left in EAX.
    /// Without a memory map but with mem_lower/mem_upper, synthesises two Available regions
    /// `[0, lower)` and `[1 MiB, 1 MiB + upper)`.
    ///
    /// Details of the contract:
    /// - Pointers are 32-bit physical addresses; a string pointer of 0 means "no string".
    /// - Any unreadable byte the parser needs (info fields, map entries, module entries,
    ///   strings up to their bound) gives `Unreadable` with that address.
    /// - Memory map: zero-length entries are skipped; a `size` below 20 is `BadMapEntry`;
    ///   a trailing partial entry (fewer than 24 bytes left in `mmap_length`) is ignored;
    ///   `base + length` past 2^64 is clamped to `u64::MAX`; after `MAX_MAP_ENTRIES`
    ///   entries parsing stops with `regions_truncated` set.
    /// - A map (bit 6) that yields no region falls back to mem_lower/mem_upper if bit 0 is
    ///   set. Synthesised regions that would be empty (a 0 KiB field) are left out.
    /// - Modules with `end < start` are kept with `end = start`.
    /// - Strings are cut at their `MAX_*` bound (the loader name at 32 bytes, silently).
    pub fn parse(
        mem: &impl PhysReader,
        magic: u32,
        info_addr: u64,
    ) -> Result<BootInfo, MultibootError> {
        if magic != BOOTLOADER_MAGIC {
            return Err(MultibootError::BadMagic(magic));
        }
        let flags = read_u32(mem, info_addr, offset::FLAGS)?;
        if flags & (flag::MEM | flag::MMAP) == 0 {
            return Err(MultibootError::NoMemoryInfo);
        }
        let mut info = BootInfo::empty();

        if flags & flag::MEM != 0 {
            info.mem_lower_kib = Some(read_u32(mem, info_addr, offset::MEM_LOWER)?);
            info.mem_upper_kib = Some(read_u32(mem, info_addr, offset::MEM_UPPER)?);
        }
        if flags & flag::CMDLINE != 0 {
            let addr = u64::from(read_u32(mem, info_addr, offset::CMDLINE)?);
            let (len, truncated) = read_c_string(mem, addr, &mut info.cmdline)?;
            info.cmdline_len = len;
            info.cmdline_truncated = truncated;
        }
        if flags & flag::MODS != 0 {
            let count = read_u32(mem, info_addr, offset::MODS_COUNT)?;
            let addr = u64::from(read_u32(mem, info_addr, offset::MODS_ADDR)?);
            info.parse_modules(mem, addr, count)?;
        }
        if flags & flag::MMAP != 0 {
            let length = read_u32(mem, info_addr, offset::MMAP_LENGTH)?;
            let addr = u64::from(read_u32(mem, info_addr, offset::MMAP_ADDR)?);
            info.parse_memory_map(mem, addr, length)?;
        }
        if info.regions[0].is_none() {
            if let (Some(lower), Some(upper)) = (info.mem_lower_kib, info.mem_upper_kib) {
                let lower = PhysRange::new(0, u64::from(lower) * 1024);
                let upper = PhysRange::new(MIB, MIB + u64::from(upper) * 1024);
                for range in [lower, upper] {
                    if !range.is_empty() {
                        info.push_region(MemoryRegion {
                            range,
                            kind: RegionKind::Available,
                        });
                    }
                }
            }
        }
        if flags & flag::BOOT_LOADER_NAME != 0 {
            let addr = u64::from(read_u32(mem, info_addr, offset::BOOT_LOADER_NAME)?);
            let mut name = [0u8; MAX_LOADER_NAME];
            read_c_string(mem, addr, &mut name)?;
            info.loader_name = Some(name);
        }
        Ok(info)
    }

    fn parse_modules(
        &mut self,
        mem: &impl PhysReader,
        table: u64,
        count: u32,
    ) -> Result<(), MultibootError> {
        let kept = (count as usize).min(MAX_MODULES);
        self.modules_truncated = count as usize > MAX_MODULES;
        self.modules_given = count;
        for index in 0..kept {
            // index < 32, so this cannot overflow; the add to `table` is checked.
            let entry = table
                .checked_add(index as u64 * MODULE_ENTRY_LEN)
                .ok_or(MultibootError::Unreadable(table))?;
            let mut raw = [0u8; MODULE_ENTRY_LEN as usize];
            read_exact(mem, entry, &mut raw)?;
            let field =
                |at: usize| u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
            let start = u64::from(field(0));
            let end = u64::from(field(4)).max(start);
            let mut name = [0u8; MAX_MODULE_NAME];
            let (name_len, name_truncated) = read_c_string(mem, u64::from(field(8)), &mut name)?;
            self.modules[index] = Some(Module {
                start,
                end,
                name,
                name_len,
                name_truncated,
            });
        }
        Ok(())
    }

    fn parse_memory_map(
        &mut self,
        mem: &impl PhysReader,
        map: u64,
        length: u32,
    ) -> Result<(), MultibootError> {
        let length = u64::from(length);
        let mut offset = 0u64;
        let mut entries = 0;
        // Each pass consumes at least 24 bytes of `length`, and passes are capped.
        while offset + 4 + u64::from(MAP_ENTRY_MIN_SIZE) <= length {
            if entries == MAX_MAP_ENTRIES {
                self.regions_truncated = true;
                break;
            }
            entries += 1;
            let entry = map
                .checked_add(offset)
                .ok_or(MultibootError::Unreadable(map))?;
            let mut raw = [0u8; 24];
            read_exact(mem, entry, &mut raw)?;
            let size = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
            if size < MAP_ENTRY_MIN_SIZE {
                return Err(MultibootError::BadMapEntry(entry));
            }
            let mut u64_at = [0u8; 8];
            u64_at.copy_from_slice(&raw[4..12]);
            let base = u64::from_le_bytes(u64_at);
            u64_at.copy_from_slice(&raw[12..20]);
            let region_length = u64::from_le_bytes(u64_at);
            let kind = u32::from_le_bytes([raw[20], raw[21], raw[22], raw[23]]);
            if region_length != 0 {
                let range = PhysRange::new(base, base.saturating_add(region_length));
                if !self.push_region(MemoryRegion {
                    range,
                    kind: region_kind(kind),
                }) {
                    self.regions_truncated = true;
                    break;
                }
            }
            offset += 4 + u64::from(size);
        }
        Ok(())
    }

    /// Appends a region; false when `MAX_REGIONS` are already held.
    fn push_region(&mut self, region: MemoryRegion) -> bool {
        match self.regions.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => {
                *slot = Some(region);
                true
            }
            None => false,
        }
    }

    /// Memory-map regions in the order the loader gave them (or the synthesised ones).
    pub fn regions(&self) -> impl Iterator<Item = MemoryRegion> + '_ {
        self.regions.iter().map_while(|region| *region)
    }

    pub fn modules(&self) -> impl Iterator<Item = &Module> + '_ {
        self.modules.iter().map_while(Option::as_ref)
    }

    /// The kernel command line, lossily cut at the first invalid UTF-8 byte ("" if none).
    pub fn cmdline(&self) -> &str {
        valid_utf8_prefix(&self.cmdline[..self.cmdline_len])
    }

    /// Value of `key=value` in the command line (whitespace-separated words), if present.
    /// A bare word `key` yields `Some("")`.
    ///
    /// The first matching word wins; the value runs to the next whitespace (everything
    /// after the first `=`). An empty `key` never matches.
    pub fn cmdline_arg(&self, key: &str) -> Option<&str> {
        if key.is_empty() {
            return None;
        }
        self.cmdline()
            .split_ascii_whitespace()
            .find_map(|word| match word.split_once('=') {
                Some((name, value)) if name == key => Some(value),
                None if word == key => Some(""),
                _ => None,
            })
    }

    /// The bootloader name as text, cut at its NUL and at the first invalid UTF-8 byte.
    pub fn loader_name_str(&self) -> Option<&str> {
        let name = self.loader_name.as_ref()?;
        let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        Some(valid_utf8_prefix(&name[..len]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memmap::{installed_bytes, usable_bytes};
    use proptest::prelude::*;
    use std::string::String;
    use std::vec;
    use std::vec::Vec;

    /// Physical memory for tests: `bytes` mapped at `base`, nothing else readable.
    struct Image {
        base: u64,
        bytes: Vec<u8>,
    }

    impl PhysReader for Image {
        fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
            let Some(start) = addr.checked_sub(self.base) else {
                return false;
            };
            let Some(end) = start.checked_add(buf.len() as u64) else {
                return false;
            };
            if end > self.bytes.len() as u64 {
                return false;
            }
            buf.copy_from_slice(&self.bytes[start as usize..end as usize]);
            true
        }
    }

    const BASE: u64 = 0x9000;
    const INFO_LEN: usize = 88;
    const ALL_FLAGS: u32 =
        flag::MEM | flag::CMDLINE | flag::MODS | flag::MMAP | flag::BOOT_LOADER_NAME;

    /// Builds an image with the info structure at `BASE` and data appended after it.
    struct Builder {
        image: Image,
    }

    impl Builder {
        fn new(flags: u32) -> Self {
            let mut builder = Builder {
                image: Image {
                    base: BASE,
                    bytes: vec![0; INFO_LEN],
                },
            };
            builder.field(offset::FLAGS, flags);
            builder
        }

        fn field(&mut self, offset: u64, value: u32) -> &mut Self {
            let at = offset as usize;
            self.image.bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
            self
        }

        /// Appends bytes (4-byte aligned) and returns their physical address.
        fn append(&mut self, bytes: &[u8]) -> u32 {
            while !self.image.bytes.len().is_multiple_of(4) {
                self.image.bytes.push(0);
            }
            let addr = BASE + self.image.bytes.len() as u64;
            self.image.bytes.extend_from_slice(bytes);
            addr as u32
        }

        fn append_str(&mut self, text: &str) -> u32 {
            let mut bytes = Vec::from(text.as_bytes());
            bytes.push(0);
            self.append(&bytes)
        }

        fn cmdline(&mut self, text: &str) -> &mut Self {
            let addr = self.append_str(text);
            self.field(offset::CMDLINE, addr)
        }

        fn mem(&mut self, lower_kib: u32, upper_kib: u32) -> &mut Self {
            self.field(offset::MEM_LOWER, lower_kib)
                .field(offset::MEM_UPPER, upper_kib)
        }

        fn mmap(&mut self, entries: &[(u64, u64, u32)]) -> &mut Self {
            let raw: Vec<u8> = entries.iter().flat_map(|&e| map_entry(20, e)).collect();
            self.mmap_raw(&raw)
        }

        fn mmap_raw(&mut self, raw: &[u8]) -> &mut Self {
            let addr = self.append(raw);
            self.field(offset::MMAP_LENGTH, raw.len() as u32)
                .field(offset::MMAP_ADDR, addr)
        }

        fn modules(&mut self, modules: &[(u32, u32, &str)]) -> &mut Self {
            let names: Vec<u32> = modules.iter().map(|m| self.append_str(m.2)).collect();
            let mut table = Vec::new();
            for (&(start, end, _), name) in modules.iter().zip(names) {
                for value in [start, end, name, 0] {
                    table.extend_from_slice(&value.to_le_bytes());
                }
            }
            let addr = self.append(&table);
            self.field(offset::MODS_COUNT, modules.len() as u32)
                .field(offset::MODS_ADDR, addr)
        }

        fn loader_name(&mut self, name: &str) -> &mut Self {
            let addr = self.append_str(name);
            self.field(offset::BOOT_LOADER_NAME, addr)
        }

        fn parse(&self) -> Result<BootInfo, MultibootError> {
            BootInfo::parse(&self.image, BOOTLOADER_MAGIC, BASE)
        }
    }

    fn map_entry(size: u32, (base, length, kind): (u64, u64, u32)) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&size.to_le_bytes());
        bytes.extend_from_slice(&base.to_le_bytes());
        bytes.extend_from_slice(&length.to_le_bytes());
        bytes.extend_from_slice(&kind.to_le_bytes());
        bytes.resize(4 + size.max(20) as usize, 0xee);
        bytes
    }

    fn available(start: u64, end: u64) -> MemoryRegion {
        MemoryRegion {
            range: PhysRange::new(start, end),
            kind: RegionKind::Available,
        }
    }

    fn region(start: u64, end: u64, kind: RegionKind) -> MemoryRegion {
        MemoryRegion {
            range: PhysRange::new(start, end),
            kind,
        }
    }

    /// What QEMU's multiboot loader gives for `-m 128` with two modules.
    fn qemu_like() -> Builder {
        let mut builder = Builder::new(ALL_FLAGS);
        builder
            .mem(639, 129_664)
            .cmdline("vigil.elf test=pagefault quiet log=debug")
            .modules(&[
                (0x200000, 0x2345a0, "init.elf arg1"),
                (0x235000, 0x236000, "ramdisk"),
            ])
            .mmap(&[
                (0, 0x9fc00, 1),
                (0x9fc00, 0x400, 2),
                (0xf0000, 0x10000, 2),
                (0x100000, 0x7ee0000, 1),
                (0x7fe0000, 0x20000, 2),
                (0xfffc0000, 0x40000, 2),
            ])
            .loader_name("qemu");
        builder
    }

    #[test]
    fn parses_a_qemu_like_info() {
        let info = qemu_like().parse().unwrap();
        let regions: Vec<_> = info.regions().collect();
        assert_eq!(
            regions,
            [
                available(0, 0x9fc00),
                region(0x9fc00, 0xa0000, RegionKind::Reserved),
                region(0xf0000, 0x100000, RegionKind::Reserved),
                available(0x100000, 0x7fe0000),
                region(0x7fe0000, 0x8000000, RegionKind::Reserved),
                region(0xfffc0000, 0x1_0000_0000, RegionKind::Reserved),
            ]
        );
        assert!(!info.regions_truncated);
        assert_eq!(installed_bytes(&regions), 128 << 20);
        assert_eq!(usable_bytes(&regions), 0x9fc00 + 0x7ee0000);

        let modules: Vec<_> = info.modules().collect();
        assert_eq!(modules.len(), 2);
        assert_eq!((modules[0].start, modules[0].end), (0x200000, 0x2345a0));
        assert_eq!(modules[0].name(), "init.elf arg1");
        assert_eq!(modules[0].range(), PhysRange::new(0x200000, 0x2345a0));
        assert_eq!((modules[1].start, modules[1].end), (0x235000, 0x236000));
        assert_eq!(modules[1].name(), "ramdisk");
        assert!(!modules[1].name_truncated());
        assert!(!info.modules_truncated);

        assert_eq!(info.cmdline(), "vigil.elf test=pagefault quiet log=debug");
        assert!(!info.cmdline_truncated);
        assert_eq!(info.cmdline_arg("test"), Some("pagefault"));
        assert_eq!(info.cmdline_arg("log"), Some("debug"));
        assert_eq!(info.cmdline_arg("quiet"), Some(""));
        assert_eq!(info.cmdline_arg("vigil.elf"), Some(""));
        assert_eq!(info.cmdline_arg("tes"), None);
        assert_eq!(info.cmdline_arg("pagefault"), None);
        assert_eq!(info.cmdline_arg(""), None);
        assert_eq!(info.mem_lower_kib, Some(639));
        assert_eq!(info.mem_upper_kib, Some(129_664));
        assert_eq!(info.loader_name_str(), Some("qemu"));
        let mut expected_name = [0u8; 32];
        expected_name[..4].copy_from_slice(b"qemu");
        assert_eq!(info.loader_name, Some(expected_name));
    }

    #[test]
    fn cmdline_arg_edge_cases() {
        let mut builder = Builder::new(flag::MEM);
        builder
            .field(offset::FLAGS, flag::MEM | flag::CMDLINE)
            .cmdline("  a=1\tb==2 c= a=shadowed =x d\n");
        let info = builder.parse().unwrap();
        assert_eq!(info.cmdline_arg("a"), Some("1"), "first match wins");
        assert_eq!(info.cmdline_arg("b"), Some("=2"));
        assert_eq!(info.cmdline_arg("c"), Some(""));
        assert_eq!(info.cmdline_arg("d"), Some(""));
        assert_eq!(info.cmdline_arg("x"), None);
    }

    #[test]
    fn absent_fields_are_empty() {
        let mut builder = Builder::new(flag::MMAP);
        builder.mmap(&[(0, 0x9fc00, 1)]);
        let info = builder.parse().unwrap();
        assert_eq!(info.regions().count(), 1);
        assert_eq!(info.modules().count(), 0);
        assert_eq!(info.cmdline(), "");
        assert_eq!(info.cmdline_arg("test"), None);
        assert_eq!(info.mem_lower_kib, None);
        assert_eq!(info.mem_upper_kib, None);
        assert_eq!(info.loader_name, None);
        assert_eq!(info.loader_name_str(), None);
    }

    #[test]
    fn null_string_pointers_mean_no_string() {
        let mut builder =
            Builder::new(flag::MEM | flag::CMDLINE | flag::MODS | flag::BOOT_LOADER_NAME);
        builder.mem(639, 1024).modules(&[(0x1000, 0x2000, "m")]);
        // Patch the module's string pointer (table entry word 2) to 0.
        let table = (u32::from_le_bytes(builder.image.bytes[24..28].try_into().unwrap()) as u64
            - BASE) as usize;
        builder.image.bytes[table + 8..table + 12].fill(0);
        let info = builder.parse().unwrap();
        assert_eq!(info.cmdline(), "");
        assert_eq!(info.modules().next().unwrap().name(), "");
        assert_eq!(info.loader_name_str(), Some(""));
    }

    #[test]
    fn falls_back_to_mem_lower_upper_without_a_map() {
        let mut builder = Builder::new(flag::MEM);
        builder.mem(639, 129_664);
        let info = builder.parse().unwrap();
        let regions: Vec<_> = info.regions().collect();
        assert_eq!(
            regions,
            [
                available(0, 639 * 1024),
                available(0x100000, 0x100000 + 129_664 * 1024)
            ]
        );
        assert_eq!(installed_bytes(&regions), 128 << 20);

        // A 0 KiB lower memory gives no empty region.
        let mut builder = Builder::new(flag::MEM);
        builder.mem(0, 1024);
        let regions: Vec<_> = builder.parse().unwrap().regions().collect();
        assert_eq!(regions, [available(0x100000, 0x200000)]);

        // Largest values do not overflow.
        let mut builder = Builder::new(flag::MEM);
        builder.mem(u32::MAX, u32::MAX);
        let regions: Vec<_> = builder.parse().unwrap().regions().collect();
        assert_eq!(
            regions[1],
            available(0x100000, 0x100000 + u64::from(u32::MAX) * 1024)
        );
    }

    #[test]
    fn an_empty_map_falls_back_to_mem_lower_upper() {
        let mut builder = Builder::new(flag::MEM | flag::MMAP);
        builder.mem(639, 1024).mmap(&[(0x1000, 0, 1)]);
        let regions: Vec<_> = builder.parse().unwrap().regions().collect();
        assert_eq!(
            regions,
            [available(0, 639 * 1024), available(0x100000, 0x200000)]
        );

        // With only the map flag, an empty map is an empty result.
        let mut builder = Builder::new(flag::MMAP);
        builder.mmap(&[]);
        let info = builder.parse().unwrap();
        assert_eq!(info.regions().count(), 0);
        assert!(!info.regions_truncated);
    }

    #[test]
    fn the_map_wins_over_mem_lower_upper() {
        let mut builder = Builder::new(flag::MEM | flag::MMAP);
        builder.mem(1, 1).mmap(&[(0x100000, 0x100000, 1)]);
        let regions: Vec<_> = builder.parse().unwrap().regions().collect();
        assert_eq!(regions, [available(0x100000, 0x200000)]);
    }

    #[test]
    fn rejects_bad_magic_and_missing_memory_info() {
        let builder = qemu_like();
        assert_eq!(
            BootInfo::parse(&builder.image, 0x36d7_6289, BASE).unwrap_err(),
            MultibootError::BadMagic(0x36d7_6289)
        );
        assert_eq!(
            BootInfo::parse(&builder.image, 0, BASE).unwrap_err(),
            MultibootError::BadMagic(0)
        );
        let mut builder = Builder::new(flag::CMDLINE | flag::MODS);
        builder.cmdline("x");
        assert_eq!(builder.parse().unwrap_err(), MultibootError::NoMemoryInfo);
    }

    #[test]
    fn unreadable_info_structure() {
        let builder = qemu_like();
        let end = BASE + builder.image.bytes.len() as u64;
        for addr in [0, BASE - 4, end, end - 2, u64::MAX, u64::MAX - 3] {
            assert_eq!(
                BootInfo::parse(&builder.image, BOOTLOADER_MAGIC, addr).unwrap_err(),
                MultibootError::Unreadable(addr),
                "info at {addr:#x}"
            );
        }
        // Flags readable but the structure is cut short before mem_upper.
        let image = Image {
            base: BASE,
            bytes: Vec::from(&builder.image.bytes[..10]),
        };
        assert_eq!(
            BootInfo::parse(&image, BOOTLOADER_MAGIC, BASE).unwrap_err(),
            MultibootError::Unreadable(BASE + 8)
        );
    }

    #[test]
    fn unreadable_pointers() {
        const NOWHERE: u32 = 0xdead_0000;
        let cases = [
            (offset::CMDLINE, "cmdline"),
            (offset::MODS_ADDR, "module table"),
            (offset::MMAP_ADDR, "memory map"),
            (offset::BOOT_LOADER_NAME, "loader name"),
        ];
        for (field, what) in cases {
            let mut builder = qemu_like();
            builder.field(field, NOWHERE);
            assert_eq!(
                builder.parse().unwrap_err(),
                MultibootError::Unreadable(u64::from(NOWHERE)),
                "{what}"
            );
        }
        // A module name pointing nowhere.
        let mut builder = Builder::new(flag::MEM | flag::MODS);
        builder.mem(639, 1024).modules(&[(0x1000, 0x2000, "m")]);
        let table = (u32::from_le_bytes(builder.image.bytes[24..28].try_into().unwrap()) as u64
            - BASE) as usize;
        builder.image.bytes[table + 8..table + 12].copy_from_slice(&NOWHERE.to_le_bytes());
        assert_eq!(
            builder.parse().unwrap_err(),
            MultibootError::Unreadable(u64::from(NOWHERE))
        );
        // More modules claimed than the table holds: the entry past the image end.
        let mut builder = Builder::new(flag::MEM | flag::MODS);
        builder.mem(639, 1024).modules(&[(0x1000, 0x2000, "m")]);
        builder.field(offset::MODS_COUNT, 2);
        let table = u64::from(u32::from_le_bytes(
            builder.image.bytes[24..28].try_into().unwrap(),
        ));
        assert_eq!(
            builder.parse().unwrap_err(),
            MultibootError::Unreadable(table + 16)
        );
    }

    #[test]
    fn a_map_running_off_readable_memory_is_unreadable() {
        let mut builder = Builder::new(flag::MMAP);
        builder.mmap(&[(0, 0x1000, 1), (0x100000, 0x100000, 1)]);
        let map = u64::from(u32::from_le_bytes(
            builder.image.bytes[48..52].try_into().unwrap(),
        ));
        builder.field(offset::MMAP_LENGTH, 3 * 24);
        assert_eq!(
            builder.parse().unwrap_err(),
            MultibootError::Unreadable(map + 48)
        );
        // Even a length of 4 GiB stops at the first unreadable entry.
        builder.field(offset::MMAP_LENGTH, u32::MAX);
        assert_eq!(
            builder.parse().unwrap_err(),
            MultibootError::Unreadable(map + 48)
        );
    }

    #[test]
    fn rejects_a_map_entry_smaller_than_20_bytes() {
        let mut raw = map_entry(20, (0, 0x9fc00, 1));
        let bad_at = raw.len() as u64;
        let mut bad = map_entry(20, (0x100000, 0x100000, 1));
        bad[..4].copy_from_slice(&19u32.to_le_bytes());
        raw.extend_from_slice(&bad);
        let mut builder = Builder::new(flag::MMAP);
        builder.mmap_raw(&raw);
        let map = u64::from(u32::from_le_bytes(
            builder.image.bytes[48..52].try_into().unwrap(),
        ));
        assert_eq!(
            builder.parse().unwrap_err(),
            MultibootError::BadMapEntry(map + bad_at)
        );

        let mut builder = Builder::new(flag::MMAP);
        let mut zero = map_entry(20, (0, 0x1000, 1));
        zero[..4].fill(0);
        builder.mmap_raw(&zero);
        assert!(matches!(
            builder.parse(),
            Err(MultibootError::BadMapEntry(_))
        ));
    }

    #[test]
    fn map_entries_larger_than_20_bytes_are_stepped_over() {
        let mut raw = map_entry(24, (0, 0x9fc00, 1));
        raw.extend(map_entry(32, (0x100000, 0x100000, 3)));
        raw.extend(map_entry(20, (0x200000, 0x1000, 4)));
        raw.extend([0xaa; 10]); // trailing partial entry, ignored
        let mut builder = Builder::new(flag::MMAP);
        builder.mmap_raw(&raw);
        let regions: Vec<_> = builder.parse().unwrap().regions().collect();
        assert_eq!(
            regions,
            [
                available(0, 0x9fc00),
                region(0x100000, 0x200000, RegionKind::AcpiReclaimable),
                region(0x200000, 0x201000, RegionKind::AcpiNvs),
            ]
        );
    }

    #[test]
    fn map_types_zero_lengths_and_overflowing_ends() {
        let mut builder = Builder::new(flag::MMAP);
        builder.mmap(&[
            (0x1000, 0x1000, 5),
            (0x2000, 0, 1), // skipped
            (0x3000, 0x1000, 0),
            (0x4000, 0x1000, 7),
            (u64::MAX - 0xfff, 0x10000, 1), // end clamped
        ]);
        let regions: Vec<_> = builder.parse().unwrap().regions().collect();
        assert_eq!(
            regions,
            [
                region(0x1000, 0x2000, RegionKind::BadRam),
                region(0x3000, 0x4000, RegionKind::Other(0)),
                region(0x4000, 0x5000, RegionKind::Other(7)),
                available(u64::MAX - 0xfff, u64::MAX),
            ]
        );
    }

    #[test]
    fn too_many_regions_are_truncated() {
        let entries = |count: u64| -> Vec<(u64, u64, u32)> {
            (0..count).map(|i| (i * 0x10000, 0x1000, 1)).collect()
        };
        let mut builder = Builder::new(flag::MMAP);
        builder.mmap(&entries(70));
        let info = builder.parse().unwrap();
        assert!(info.regions_truncated);
        let regions: Vec<_> = info.regions().collect();
        assert_eq!(regions.len(), MAX_REGIONS);
        assert_eq!(regions[63], available(63 * 0x10000, 63 * 0x10000 + 0x1000));

        // Exactly MAX_REGIONS, followed by empty entries only, is not truncated.
        let mut exact = entries(64);
        exact.extend([(0, 0, 1), (0x5000, 0, 2)]);
        let mut builder = Builder::new(flag::MMAP);
        builder.mmap(&exact);
        let info = builder.parse().unwrap();
        assert!(!info.regions_truncated);
        assert_eq!(info.regions().count(), MAX_REGIONS);
    }

    #[test]
    fn an_endless_map_of_empty_entries_stops() {
        let entries: Vec<_> = (0..MAX_MAP_ENTRIES as u64 + 10)
            .map(|i| (i, 0, 1))
            .collect();
        let mut builder = Builder::new(flag::MMAP);
        builder.mmap(&entries);
        let info = builder.parse().unwrap();
        assert!(info.regions_truncated);
        assert_eq!(info.regions().count(), 0);
    }

    #[test]
    fn overlong_cmdline_is_truncated() {
        let long: String = (0..300)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let mut builder = Builder::new(flag::MEM | flag::CMDLINE);
        builder.mem(639, 1024).cmdline(&long);
        let info = builder.parse().unwrap();
        assert!(info.cmdline_truncated);
        assert_eq!(info.cmdline(), &long[..MAX_CMDLINE]);

        // Exactly MAX_CMDLINE bytes fit without truncation.
        let mut builder = Builder::new(flag::MEM | flag::CMDLINE);
        builder.mem(639, 1024).cmdline(&long[..MAX_CMDLINE]);
        let info = builder.parse().unwrap();
        assert!(!info.cmdline_truncated);
        assert_eq!(info.cmdline(), &long[..MAX_CMDLINE]);

        // A long unterminated cmdline at the very end of memory: only the bound is read.
        let mut builder = Builder::new(flag::MEM | flag::CMDLINE);
        builder.mem(639, 1024);
        let addr = builder.append(&long.as_bytes()[..MAX_CMDLINE + 1]);
        builder.field(offset::CMDLINE, addr);
        let info = builder.parse().unwrap();
        assert!(info.cmdline_truncated);
        assert_eq!(info.cmdline().len(), MAX_CMDLINE);

        // An unterminated cmdline that runs off memory before the bound is unreadable.
        let mut builder = Builder::new(flag::MEM | flag::CMDLINE);
        builder.mem(639, 1024);
        let addr = builder.append(b"abc");
        builder.field(offset::CMDLINE, addr);
        assert_eq!(
            builder.parse().unwrap_err(),
            MultibootError::Unreadable(u64::from(addr) + 3)
        );
    }

    #[test]
    fn cmdline_cut_mid_character_or_invalid_utf8() {
        let mut text = "x".repeat(MAX_CMDLINE - 1);
        text.push('é'); // straddles the bound
        let mut builder = Builder::new(flag::MEM | flag::CMDLINE);
        builder.mem(639, 1024).cmdline(&text);
        let info = builder.parse().unwrap();
        assert!(info.cmdline_truncated);
        assert_eq!(info.cmdline(), "x".repeat(MAX_CMDLINE - 1));

        let mut builder = Builder::new(flag::MEM | flag::CMDLINE);
        builder.mem(639, 1024);
        let addr = builder.append(b"ok=1 \xff bad\0");
        builder.field(offset::CMDLINE, addr);
        let info = builder.parse().unwrap();
        assert_eq!(info.cmdline(), "ok=1 ");
        assert_eq!(info.cmdline_arg("ok"), Some("1"));
    }

    #[test]
    fn too_many_modules_are_truncated() {
        let names: Vec<String> = (0..40).map(|i| std::format!("mod{i}")).collect();
        let modules: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, name)| (i as u32 * 0x1000, i as u32 * 0x1000 + 0x800, name.as_str()))
            .collect();
        let mut builder = Builder::new(flag::MEM | flag::MODS);
        builder.mem(639, 1024).modules(&modules);
        let info = builder.parse().unwrap();
        assert!(info.modules_truncated);
        assert_eq!(info.modules_given, 40);
        let parsed: Vec<_> = info.modules().collect();
        assert_eq!(parsed.len(), MAX_MODULES);
        assert_eq!(parsed[31].name(), "mod31");
        assert_eq!(parsed[31].start, 31 * 0x1000);

        // A huge count reads only MAX_MODULES entries (all of which exist here).
        builder.field(offset::MODS_COUNT, u32::MAX);
        let info = builder.parse().unwrap();
        assert!(info.modules_truncated);
        assert_eq!(info.modules().count(), MAX_MODULES);
    }

    #[test]
    fn module_end_before_start_is_clamped() {
        let mut builder = Builder::new(flag::MEM | flag::MODS);
        builder.mem(639, 1024).modules(&[
            (0x300000, 0x200000, "backwards"),
            (0x400000, 0x400000, "empty"),
        ]);
        let info = builder.parse().unwrap();
        let modules: Vec<_> = info.modules().collect();
        assert_eq!((modules[0].start, modules[0].end), (0x300000, 0x300000));
        assert!(modules[0].range().is_empty());
        assert_eq!((modules[1].start, modules[1].end), (0x400000, 0x400000));
    }

    #[test]
    fn long_module_and_loader_names_are_cut() {
        let long_name = "n".repeat(MAX_MODULE_NAME + 36);
        let long_loader = "GNU GRUB 2.12-with-a-very-long-version-suffix";
        let mut builder = Builder::new(flag::MEM | flag::MODS | flag::BOOT_LOADER_NAME);
        builder
            .mem(639, 1024)
            .modules(&[
                (0x1000, 0x2000, &long_name),
                (0x2000, 0x3000, &long_name[..MAX_MODULE_NAME]),
            ])
            .loader_name(long_loader);
        let info = builder.parse().unwrap();
        let modules: Vec<_> = info.modules().collect();
        assert_eq!(modules[0].name(), &long_name[..MAX_MODULE_NAME]);
        assert!(modules[0].name_truncated());
        assert_eq!(modules[1].name(), &long_name[..MAX_MODULE_NAME]);
        assert!(!modules[1].name_truncated());
        assert_eq!(info.loader_name_str(), Some(&long_loader[..32]));
    }

    /// Small deterministic generator for the fuzz loops.
    struct Lcg(u64);

    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    #[test]
    fn garbage_images_never_panic() {
        let mut rng = Lcg(0x5eed);
        for round in 0..2000 {
            let len = (rng.next() % 600) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Half the time, point the pointer fields back into the image.
            if round % 2 == 0 && len >= INFO_LEN {
                for field in [
                    offset::CMDLINE,
                    offset::MODS_ADDR,
                    offset::MMAP_ADDR,
                    offset::BOOT_LOADER_NAME,
                ] {
                    let target = (BASE + rng.next() % len as u64) as u32;
                    bytes[field as usize..field as usize + 4]
                        .copy_from_slice(&target.to_le_bytes());
                }
            }
            let image = Image { base: BASE, bytes };
            let info_addr = BASE + rng.next() % (len as u64 + 8);
            let _ = BootInfo::parse(&image, BOOTLOADER_MAGIC, info_addr);
        }
    }

    fn patched_image(mut bytes: Vec<u8>, pointers: [u16; 4], patch: bool) -> Image {
        if patch && bytes.len() >= INFO_LEN {
            let fields = [
                offset::CMDLINE,
                offset::MODS_ADDR,
                offset::MMAP_ADDR,
                offset::BOOT_LOADER_NAME,
            ];
            for (field, pointer) in fields.into_iter().zip(pointers) {
                let target = (BASE + u64::from(pointer) % bytes.len() as u64) as u32;
                bytes[field as usize..field as usize + 4].copy_from_slice(&target.to_le_bytes());
            }
        }
        Image { base: BASE, bytes }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Parsing random bytes as a Multiboot image never panics, and whatever it returns
        /// respects the bounds.
        #[test]
        fn random_images_never_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..1024),
            info_offset in 0u64..64,
            pointers in any::<[u16; 4]>(),
            patch in any::<bool>(),
            magic_ok in prop::bool::weighted(0.95),
        ) {
            let image = patched_image(bytes, pointers, patch);
            let magic = if magic_ok { BOOTLOADER_MAGIC } else { 0x1234 };
            if let Ok(info) = BootInfo::parse(&image, magic, BASE + info_offset) {
                prop_assert!(info.regions().count() <= MAX_REGIONS);
                prop_assert!(info.modules().count() <= MAX_MODULES);
                prop_assert!(info.cmdline().len() <= MAX_CMDLINE);
                for module in info.modules() {
                    prop_assert!(module.start <= module.end);
                    prop_assert!(module.name().len() <= MAX_MODULE_NAME);
                }
                for region in info.regions() {
                    prop_assert!(!region.range.is_empty());
                }
                let _ = info.cmdline_arg("test");
            }
        }
    }
}
