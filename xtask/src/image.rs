//! Checks that the kernel ELF is a Multiboot 1 image that QEMU's `-kernel` loader places correctly.
//!
//! With flag bit 16 ("address fields valid", the a.out kludge) QEMU ignores the ELF program
//! headers: it copies the file from `text_offset = header_offset - (header_addr - load_addr)`
//! to physical `load_addr`, `load_end_addr - load_addr` bytes long, zeroes memory up to
//! `bss_end_addr` and jumps to `entry_addr`. A linker-script mistake makes that copy disagree
//! with the ELF's PT_LOAD segments, and the kernel then dies in ways that are hard to read
//! from a triple fault. This module finds such mistakes at build time.
//! (QEMU's code: `load_multiboot` in `hw/i386/multiboot.c`.)

use std::fmt;

/// First word of a Multiboot 1 header.
pub const MULTIBOOT_MAGIC: u32 = 0x1BAD_B002;

/// Flag bit 16: the header's address fields (header_addr … entry_addr) are valid.
pub const FLAG_ADDRESS_FIELDS: u32 = 1 << 16;

/// QEMU scans 4-byte-aligned offsets `0 .. 8192 - 48` for the magic (the spec says the
/// header lies within the first 8192 bytes; QEMU leaves room for the longest header).
pub const HEADER_SEARCH_END: usize = 8192 - 48;

/// Size of the header fields this module reads: magic … entry_addr.
const HEADER_LEN: usize = 32;

/// The Multiboot 1 header as found in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MultibootHeader {
    /// File offset of the magic word.
    pub file_offset: usize,
    pub flags: u32,
    pub header_addr: u32,
    pub load_addr: u32,
    pub load_end_addr: u32,
    pub bss_end_addr: u32,
    pub entry_addr: u32,
}

/// One PT_LOAD program header of the kernel ELF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSegment {
    /// Index in the program header table, used to name the segment in errors.
    pub index: usize,
    pub offset: u64,
    pub vaddr: u64,
    pub paddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

/// Where QEMU puts the image, derived from the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    /// File offset copied to `load_addr`.
    pub text_offset: u64,
    pub load_addr: u64,
    /// End (exclusive) of the bytes copied from the file.
    pub load_end: u64,
    /// End (exclusive) of the zeroed region after the file bytes.
    pub bss_end: u64,
    pub entry: u64,
}

/// Everything found wrong with an image. Each variant names what to fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageError {
    NotElf64(String),
    NoLoadSegments,
    NoHeader,
    BadChecksum {
        file_offset: usize,
        flags: u32,
        checksum: u32,
    },
    NoAddressFields {
        file_offset: usize,
        flags: u32,
    },
    HeaderTruncated {
        file_offset: usize,
        file_len: usize,
    },
    HeaderBeforeLoadAddr {
        header_addr: u32,
        load_addr: u32,
    },
    HeaderAddrTooFar {
        header_addr: u32,
        load_addr: u32,
        file_offset: usize,
    },
    LoadEndBeforeLoadAddr {
        load_addr: u32,
        load_end_addr: u32,
    },
    BssEndBeforeLoadEnd {
        load_end: u64,
        bss_end_addr: u32,
    },
    LoadPastEndOfFile {
        text_offset: u64,
        load_size: u64,
        file_len: u64,
    },
    EntryOutsideLoad {
        entry: u32,
        load_addr: u64,
        load_end: u64,
    },
    SegmentBelowLoadAddr {
        segment: LoadSegment,
        load_addr: u64,
    },
    SegmentMisplaced {
        segment: LoadSegment,
        /// Physical address QEMU copies the segment's first file byte to, if it copies it at all.
        lands_at: Option<u64>,
    },
    SegmentBeyondLoadEnd {
        segment: LoadSegment,
        load_end: u64,
    },
    SegmentBeyondBssEnd {
        segment: LoadSegment,
        bss_end: u64,
    },
    SegmentBssNotZero {
        segment: LoadSegment,
        /// First physical address in the segment's zero-fill part that QEMU fills from a
        /// non-zero file byte.
        paddr: u64,
    },
}

fn describe(segment: &LoadSegment) -> String {
    format!(
        "PT_LOAD segment #{} (offset {:#x}, vaddr {:#x}, paddr {:#x}, filesz {:#x}, memsz {:#x})",
        segment.index, segment.offset, segment.vaddr, segment.paddr, segment.filesz, segment.memsz
    )
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::NotElf64(why) => write!(f, "not a 64-bit ELF file: {why}"),
            ImageError::NoLoadSegments => write!(f, "the ELF has no PT_LOAD segment"),
            ImageError::NoHeader => write!(
                f,
                "no Multiboot 1 header (magic {MULTIBOOT_MAGIC:#010x} with a valid checksum) at a \
                 4-byte-aligned offset below {HEADER_SEARCH_END:#x}; put the header section first \
                 in the linker script"
            ),
            ImageError::BadChecksum {
                file_offset,
                flags,
                checksum,
            } => write!(
                f,
                "Multiboot magic at file offset {file_offset:#x} but magic + flags ({flags:#x}) + \
                 checksum ({checksum:#x}) != 0 (mod 2^32)"
            ),
            ImageError::NoAddressFields { file_offset, flags } => write!(
                f,
                "Multiboot header at file offset {file_offset:#x} has flags {flags:#x} without bit \
                 16 (address fields); QEMU refuses to load a 64-bit ELF without them"
            ),
            ImageError::HeaderTruncated {
                file_offset,
                file_len,
            } => write!(
                f,
                "Multiboot header at file offset {file_offset:#x} runs past the end of the \
                 {file_len}-byte file"
            ),
            ImageError::HeaderBeforeLoadAddr {
                header_addr,
                load_addr,
            } => write!(
                f,
                "Multiboot header_addr {header_addr:#x} is below load_addr {load_addr:#x} \
                 (QEMU: invalid load_addr address)"
            ),
            ImageError::HeaderAddrTooFar {
                header_addr,
                load_addr,
                file_offset,
            } => write!(
                f,
                "Multiboot header_addr - load_addr = {:#x} exceeds the header's file offset \
                 {file_offset:#x}, so the load would start before the file (QEMU: invalid \
                 header_addr address)",
                header_addr - load_addr
            ),
            ImageError::LoadEndBeforeLoadAddr {
                load_addr,
                load_end_addr,
            } => write!(
                f,
                "Multiboot load_end_addr {load_end_addr:#x} is below load_addr {load_addr:#x}"
            ),
            ImageError::BssEndBeforeLoadEnd {
                load_end,
                bss_end_addr,
            } => write!(
                f,
                "Multiboot bss_end_addr {bss_end_addr:#x} is below the end of the loaded bytes \
                 {load_end:#x}"
            ),
            ImageError::LoadPastEndOfFile {
                text_offset,
                load_size,
                file_len,
            } => write!(
                f,
                "QEMU would copy {load_size:#x} bytes from file offset {text_offset:#x}, past the \
                 end of the {file_len:#x}-byte file"
            ),
            ImageError::EntryOutsideLoad {
                entry,
                load_addr,
                load_end,
            } => write!(
                f,
                "Multiboot entry_addr {entry:#x} is outside the loaded range \
                 [{load_addr:#x}, {load_end:#x})"
            ),
            ImageError::SegmentBelowLoadAddr { segment, load_addr } => write!(
                f,
                "{} starts below Multiboot load_addr {load_addr:#x}",
                describe(segment)
            ),
            ImageError::SegmentMisplaced { segment, lands_at } => match lands_at {
                Some(lands_at) => write!(
                    f,
                    "{}: QEMU copies its file bytes to physical {lands_at:#x}, not to its paddr \
                     (file offsets and physical addresses must advance together from the \
                     Multiboot header on)",
                    describe(segment)
                ),
                None => write!(
                    f,
                    "{}: its file bytes lie before the part of the file QEMU loads",
                    describe(segment)
                ),
            },
            ImageError::SegmentBeyondLoadEnd { segment, load_end } => write!(
                f,
                "{}: its file bytes end at physical {:#x}, past Multiboot load_end_addr \
                 {load_end:#x}",
                describe(segment),
                segment.paddr + segment.filesz
            ),
            ImageError::SegmentBeyondBssEnd { segment, bss_end } => write!(
                f,
                "{}: it ends at physical {:#x}, past Multiboot bss_end_addr {bss_end:#x}",
                describe(segment),
                segment.paddr + segment.memsz
            ),
            ImageError::SegmentBssNotZero { segment, paddr } => write!(
                f,
                "{}: its zero-initialised part is inside load_end_addr, and QEMU fills physical \
                 {paddr:#x} from a non-zero file byte (end load_end_addr at the start of .bss)",
                describe(segment)
            ),
        }
    }
}

fn read_u32(bytes: &[u8], offset: usize) -> Option<u32> {
    let word = bytes.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_le_bytes(word.try_into().ok()?))
}

/// Finds the Multiboot 1 header the way QEMU does: the first aligned magic whose checksum holds.
pub fn find_multiboot_header(file: &[u8]) -> Result<MultibootHeader, ImageError> {
    let mut bad_checksum = None;
    for offset in (0..HEADER_SEARCH_END).step_by(4) {
        let Some(magic) = read_u32(file, offset) else {
            break;
        };
        if magic != MULTIBOOT_MAGIC {
            continue;
        }
        let (Some(flags), Some(checksum)) =
            (read_u32(file, offset + 4), read_u32(file, offset + 8))
        else {
            return Err(ImageError::HeaderTruncated {
                file_offset: offset,
                file_len: file.len(),
            });
        };
        if magic.wrapping_add(flags).wrapping_add(checksum) != 0 {
            bad_checksum.get_or_insert(ImageError::BadChecksum {
                file_offset: offset,
                flags,
                checksum,
            });
            continue;
        }
        if flags & FLAG_ADDRESS_FIELDS == 0 {
            return Err(ImageError::NoAddressFields {
                file_offset: offset,
                flags,
            });
        }
        if offset + HEADER_LEN > file.len() {
            return Err(ImageError::HeaderTruncated {
                file_offset: offset,
                file_len: file.len(),
            });
        }
        let field = |index: usize| read_u32(file, offset + 12 + 4 * index).unwrap_or_default();
        return Ok(MultibootHeader {
            file_offset: offset,
            flags,
            header_addr: field(0),
            load_addr: field(1),
            load_end_addr: field(2),
            bss_end_addr: field(3),
            entry_addr: field(4),
        });
    }
    Err(bad_checksum.unwrap_or(ImageError::NoHeader))
}

/// Computes where QEMU loads the file, with QEMU's own sanity checks
/// (a zero `load_end_addr` means "to the end of the file", a zero `bss_end_addr` "no bss").
pub fn load_plan(header: &MultibootHeader, file_len: u64) -> Result<LoadPlan, ImageError> {
    if header.header_addr < header.load_addr {
        return Err(ImageError::HeaderBeforeLoadAddr {
            header_addr: header.header_addr,
            load_addr: header.load_addr,
        });
    }
    let header_distance = u64::from(header.header_addr - header.load_addr);
    if header_distance > header.file_offset as u64 {
        return Err(ImageError::HeaderAddrTooFar {
            header_addr: header.header_addr,
            load_addr: header.load_addr,
            file_offset: header.file_offset,
        });
    }
    let text_offset = header.file_offset as u64 - header_distance;
    let load_addr = u64::from(header.load_addr);
    let load_size = if header.load_end_addr != 0 {
        if header.load_end_addr < header.load_addr {
            return Err(ImageError::LoadEndBeforeLoadAddr {
                load_addr: header.load_addr,
                load_end_addr: header.load_end_addr,
            });
        }
        u64::from(header.load_end_addr - header.load_addr)
    } else {
        file_len.saturating_sub(text_offset)
    };
    if text_offset + load_size > file_len {
        return Err(ImageError::LoadPastEndOfFile {
            text_offset,
            load_size,
            file_len,
        });
    }
    let load_end = load_addr + load_size;
    let bss_end = if header.bss_end_addr != 0 {
        if u64::from(header.bss_end_addr) < load_end {
            return Err(ImageError::BssEndBeforeLoadEnd {
                load_end,
                bss_end_addr: header.bss_end_addr,
            });
        }
        u64::from(header.bss_end_addr)
    } else {
        load_end
    };
    let entry = u64::from(header.entry_addr);
    if entry < load_addr || entry >= load_end {
        return Err(ImageError::EntryOutsideLoad {
            entry: header.entry_addr,
            load_addr,
            load_end,
        });
    }
    Ok(LoadPlan {
        text_offset,
        load_addr,
        load_end,
        bss_end,
        entry,
    })
}

/// Checks every PT_LOAD segment against the plan; returns every violation found.
pub fn check_segments(plan: &LoadPlan, segments: &[LoadSegment], file: &[u8]) -> Vec<ImageError> {
    let mut errors = Vec::new();
    for segment in segments.iter().filter(|s| s.memsz > 0 || s.filesz > 0) {
        let segment = *segment;
        if segment.paddr < plan.load_addr {
            errors.push(ImageError::SegmentBelowLoadAddr {
                segment,
                load_addr: plan.load_addr,
            });
            continue;
        }
        if segment.filesz > 0 {
            let lands_at = segment
                .offset
                .checked_sub(plan.text_offset)
                .map(|distance| plan.load_addr + distance);
            if lands_at != Some(segment.paddr) {
                errors.push(ImageError::SegmentMisplaced { segment, lands_at });
                continue;
            }
            if segment.paddr + segment.filesz > plan.load_end {
                errors.push(ImageError::SegmentBeyondLoadEnd {
                    segment,
                    load_end: plan.load_end,
                });
                continue;
            }
        }
        if segment.paddr + segment.memsz > plan.bss_end {
            errors.push(ImageError::SegmentBeyondBssEnd {
                segment,
                bss_end: plan.bss_end,
            });
            continue;
        }
        // The zero-fill part of the segment that still lies below load_end is filled from the
        // file by QEMU, not zeroed: those file bytes must be zero.
        let zero_start = segment.paddr + segment.filesz;
        let zero_end = (segment.paddr + segment.memsz).min(plan.load_end);
        if zero_start < zero_end {
            let to_file_offset =
                |paddr: u64| (plan.text_offset + (paddr - plan.load_addr)) as usize;
            let filled_from = file
                .get(to_file_offset(zero_start)..to_file_offset(zero_end))
                .unwrap_or_default();
            if let Some(position) = filled_from.iter().position(|&byte| byte != 0) {
                let paddr = zero_start + position as u64;
                errors.push(ImageError::SegmentBssNotZero { segment, paddr });
            }
        }
    }
    errors
}

/// Reads the PT_LOAD program headers of a 64-bit little-endian ELF file.
pub fn elf_load_segments(file: &[u8]) -> Result<Vec<LoadSegment>, ImageError> {
    use object::elf::{FileHeader64, PT_LOAD};
    use object::read::elf::{FileHeader, ProgramHeader};
    use object::Endianness;

    let not_elf = |error: object::read::Error| ImageError::NotElf64(error.to_string());
    let header = FileHeader64::<Endianness>::parse(file).map_err(not_elf)?;
    let endian = header.endian().map_err(not_elf)?;
    let program_headers = header.program_headers(endian, file).map_err(not_elf)?;
    let segments: Vec<LoadSegment> = program_headers
        .iter()
        .enumerate()
        .filter(|(_, ph)| ph.p_type(endian) == PT_LOAD)
        .map(|(index, ph)| LoadSegment {
            index,
            offset: ph.p_offset(endian),
            vaddr: ph.p_vaddr(endian),
            paddr: ph.p_paddr(endian),
            filesz: ph.p_filesz(endian),
            memsz: ph.p_memsz(endian),
        })
        .collect();
    if segments.is_empty() {
        return Err(ImageError::NoLoadSegments);
    }
    Ok(segments)
}

/// A verified image: what to tell the developer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedImage {
    pub header: MultibootHeader,
    pub plan: LoadPlan,
    pub segments: Vec<LoadSegment>,
}

impl fmt::Display for VerifiedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Multiboot header at file offset {:#x}; QEMU loads file {:#x}.. to {:#x}..{:#x}, \
             zeroes to {:#x}, enters at {:#x}; {} PT_LOAD segments agree",
            self.header.file_offset,
            self.plan.text_offset,
            self.plan.load_addr,
            self.plan.load_end,
            self.plan.bss_end,
            self.plan.entry,
            self.segments.len()
        )
    }
}

/// Verifies a kernel file: Multiboot header, QEMU's load plan, and every PT_LOAD segment.
pub fn verify_kernel_image(file: &[u8]) -> Result<VerifiedImage, Vec<ImageError>> {
    let segments = elf_load_segments(file).map_err(|e| vec![e])?;
    let header = find_multiboot_header(file).map_err(|e| vec![e])?;
    let plan = load_plan(&header, file.len() as u64).map_err(|e| vec![e])?;
    let errors = check_segments(&plan, &segments, file);
    if errors.is_empty() {
        Ok(VerifiedImage {
            header,
            plan,
            segments,
        })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOAD_ADDR: u32 = 0x10_0000;

    fn put_u32(buf: &mut [u8], offset: usize, value: u32) {
        buf[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }

    fn put_u64(buf: &mut [u8], offset: usize, value: u64) {
        buf[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
    }

    /// Writes a Multiboot header with address fields at `offset`.
    fn put_header(buf: &mut [u8], offset: usize, fields: [u32; 5]) {
        let flags = FLAG_ADDRESS_FIELDS | 0b11;
        put_u32(buf, offset, MULTIBOOT_MAGIC);
        put_u32(buf, offset + 4, flags);
        put_u32(
            buf,
            offset + 8,
            0u32.wrapping_sub(MULTIBOOT_MAGIC.wrapping_add(flags)),
        );
        for (i, value) in fields.into_iter().enumerate() {
            put_u32(buf, offset + 12 + 4 * i, value);
        }
    }

    /// A file laid out like the kernel: text at 0x1000 (header first) loaded at 1 MiB,
    /// a data segment with bss behind it.
    fn good_header_fields() -> [u32; 5] {
        // header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr
        [
            LOAD_ADDR,
            LOAD_ADDR,
            LOAD_ADDR + 0x2000,
            LOAD_ADDR + 0x4000,
            LOAD_ADDR + 0x40,
        ]
    }

    fn good_segments() -> Vec<LoadSegment> {
        vec![
            LoadSegment {
                index: 0,
                offset: 0x1000,
                vaddr: 0xffff_ffff_8010_0000,
                paddr: u64::from(LOAD_ADDR),
                filesz: 0x1000,
                memsz: 0x1000,
            },
            LoadSegment {
                index: 1,
                offset: 0x2000,
                vaddr: 0xffff_ffff_8010_1000,
                paddr: u64::from(LOAD_ADDR) + 0x1000,
                filesz: 0x1000,
                memsz: 0x3000,
            },
        ]
    }

    /// A synthetic ELF64 file: ELF header, program headers, header at 0x1000, 0x3000 bytes.
    fn synthetic_elf(segments: &[LoadSegment], header_fields: [u32; 5]) -> Vec<u8> {
        let mut file = vec![0u8; 0x3000];
        file[0..4].copy_from_slice(b"\x7fELF");
        file[4] = 2; // ELFCLASS64
        file[5] = 1; // little endian
        file[6] = 1; // EV_CURRENT
        put_u32(&mut file, 16, 2 | (62 << 16)); // e_type EXEC, e_machine x86-64
        put_u32(&mut file, 20, 1); // e_version
        put_u64(&mut file, 24, u64::from(header_fields[4])); // e_entry
        put_u64(&mut file, 32, 64); // e_phoff
        file[52] = 64; // e_ehsize
        file[54] = 56; // e_phentsize
        file[56] = segments.len() as u8; // e_phnum
        for (i, segment) in segments.iter().enumerate() {
            let ph = 64 + 56 * i;
            put_u32(&mut file, ph, 1); // PT_LOAD
            put_u32(&mut file, ph + 4, 5); // R+X
            put_u64(&mut file, ph + 8, segment.offset);
            put_u64(&mut file, ph + 16, segment.vaddr);
            put_u64(&mut file, ph + 24, segment.paddr);
            put_u64(&mut file, ph + 32, segment.filesz);
            put_u64(&mut file, ph + 40, segment.memsz);
            put_u64(&mut file, ph + 48, 0x1000);
        }
        put_header(&mut file, 0x1000, header_fields);
        file
    }

    fn errors_of(file: &[u8]) -> Vec<ImageError> {
        verify_kernel_image(file).expect_err("image should be rejected")
    }

    #[test]
    fn accepts_a_well_linked_image() {
        let file = synthetic_elf(&good_segments(), good_header_fields());
        let image = verify_kernel_image(&file).expect("good image");
        assert_eq!(image.header.file_offset, 0x1000);
        assert_eq!(
            image.plan,
            LoadPlan {
                text_offset: 0x1000,
                load_addr: 0x10_0000,
                load_end: 0x10_2000,
                bss_end: 0x10_4000,
                entry: 0x10_0040,
            }
        );
        assert_eq!(image.segments, good_segments());
        assert!(image.to_string().contains("2 PT_LOAD segments agree"));
    }

    #[test]
    fn header_may_sit_inside_the_loaded_text() {
        // Header at file offset 0x1010 describing itself as load_addr + 0x10.
        let mut file = synthetic_elf(&good_segments(), good_header_fields());
        file[0x1000..0x1020].fill(0);
        let mut fields = good_header_fields();
        fields[0] = LOAD_ADDR + 0x10;
        put_header(&mut file, 0x1010, fields);
        let image = verify_kernel_image(&file).expect("good image");
        assert_eq!(image.plan.text_offset, 0x1000);
    }

    #[test]
    fn zero_load_end_and_bss_end_follow_qemu() {
        let header = MultibootHeader {
            file_offset: 0x1000,
            flags: FLAG_ADDRESS_FIELDS,
            header_addr: LOAD_ADDR,
            load_addr: LOAD_ADDR,
            load_end_addr: 0,
            bss_end_addr: 0,
            entry_addr: LOAD_ADDR,
        };
        let plan = load_plan(&header, 0x3000).unwrap();
        assert_eq!(plan.load_end, u64::from(LOAD_ADDR) + 0x2000);
        assert_eq!(plan.bss_end, plan.load_end);
    }

    #[test]
    fn rejects_a_file_without_header() {
        let mut file = synthetic_elf(&good_segments(), good_header_fields());
        file[0x1000..0x1020].fill(0);
        assert_eq!(errors_of(&file), vec![ImageError::NoHeader]);
    }

    #[test]
    fn ignores_a_header_beyond_qemus_search_window() {
        let mut file = vec![0u8; 0x3000];
        put_header(&mut file, HEADER_SEARCH_END, good_header_fields());
        assert_eq!(find_multiboot_header(&file), Err(ImageError::NoHeader));
        put_header(&mut file, HEADER_SEARCH_END - 4, good_header_fields());
        assert!(find_multiboot_header(&file).is_ok());
    }

    #[test]
    fn ignores_a_misaligned_magic() {
        let mut file = vec![0u8; 0x100];
        put_header(&mut file, 0x22, good_header_fields());
        assert_eq!(find_multiboot_header(&file), Err(ImageError::NoHeader));
    }

    #[test]
    fn rejects_a_bad_checksum() {
        let mut file = synthetic_elf(&good_segments(), good_header_fields());
        put_u32(&mut file, 0x1008, 0x1234);
        assert!(matches!(
            errors_of(&file).as_slice(),
            [ImageError::BadChecksum {
                file_offset: 0x1000,
                checksum: 0x1234,
                ..
            }]
        ));
    }

    #[test]
    fn rejects_a_header_without_address_fields() {
        let mut file = synthetic_elf(&good_segments(), good_header_fields());
        let flags = 0b11;
        put_u32(&mut file, 0x1004, flags);
        put_u32(
            &mut file,
            0x1008,
            0u32.wrapping_sub(MULTIBOOT_MAGIC.wrapping_add(flags)),
        );
        assert_eq!(
            errors_of(&file),
            vec![ImageError::NoAddressFields {
                file_offset: 0x1000,
                flags
            }]
        );
    }

    #[test]
    fn rejects_a_truncated_header() {
        let mut file = vec![0u8; 0x20];
        put_header(&mut file, 0, good_header_fields());
        file.truncate(0x10);
        assert!(matches!(
            find_multiboot_header(&file),
            Err(ImageError::HeaderTruncated { .. })
        ));
    }

    #[test]
    fn rejects_inconsistent_header_addresses() {
        let header = |fields: [u32; 5]| MultibootHeader {
            file_offset: 0x1000,
            flags: FLAG_ADDRESS_FIELDS,
            header_addr: fields[0],
            load_addr: fields[1],
            load_end_addr: fields[2],
            bss_end_addr: fields[3],
            entry_addr: fields[4],
        };
        let mut fields = good_header_fields();
        fields[0] = LOAD_ADDR - 4;
        assert!(matches!(
            load_plan(&header(fields), 0x3000),
            Err(ImageError::HeaderBeforeLoadAddr { .. })
        ));

        let mut fields = good_header_fields();
        fields[0] = LOAD_ADDR + 0x2000;
        assert!(matches!(
            load_plan(&header(fields), 0x3000),
            Err(ImageError::HeaderAddrTooFar { .. })
        ));

        let mut fields = good_header_fields();
        fields[2] = LOAD_ADDR - 1;
        assert!(matches!(
            load_plan(&header(fields), 0x3000),
            Err(ImageError::LoadEndBeforeLoadAddr { .. })
        ));

        let mut fields = good_header_fields();
        fields[3] = LOAD_ADDR + 0x1000;
        assert!(matches!(
            load_plan(&header(fields), 0x3000),
            Err(ImageError::BssEndBeforeLoadEnd { .. })
        ));

        let mut fields = good_header_fields();
        fields[2] = LOAD_ADDR + 0x4000;
        fields[3] = LOAD_ADDR + 0x4000;
        assert!(matches!(
            load_plan(&header(fields), 0x3000),
            Err(ImageError::LoadPastEndOfFile {
                text_offset: 0x1000,
                load_size: 0x4000,
                file_len: 0x3000
            })
        ));

        for entry in [LOAD_ADDR - 1, LOAD_ADDR + 0x2000] {
            let mut fields = good_header_fields();
            fields[4] = entry;
            assert!(matches!(
                load_plan(&header(fields), 0x3000),
                Err(ImageError::EntryOutsideLoad { .. })
            ));
        }
    }

    #[test]
    fn names_a_segment_whose_file_offset_disagrees_with_its_paddr() {
        let mut segments = good_segments();
        segments[1].offset = 0x2800; // linker aligned the file offset differently
        let file = synthetic_elf(&segments, good_header_fields());
        let errors = errors_of(&file);
        assert_eq!(
            errors,
            vec![ImageError::SegmentMisplaced {
                segment: segments[1],
                lands_at: Some(u64::from(LOAD_ADDR) + 0x1800),
            }]
        );
        let message = errors[0].to_string();
        assert!(message.contains("PT_LOAD segment #1"), "{message}");
        assert!(message.contains("0x101800"), "{message}");
    }

    #[test]
    fn names_a_segment_before_the_loaded_part_of_the_file() {
        let mut segments = good_segments();
        segments[0].offset = 0x800;
        let file = synthetic_elf(&segments, good_header_fields());
        assert_eq!(
            errors_of(&file),
            vec![ImageError::SegmentMisplaced {
                segment: segments[0],
                lands_at: None,
            }]
        );
    }

    #[test]
    fn names_a_segment_below_load_addr() {
        let mut segments = good_segments();
        segments.push(LoadSegment {
            index: 2,
            offset: 0,
            vaddr: 0x8000,
            paddr: 0x8000,
            filesz: 0,
            memsz: 0x100,
        });
        let file = synthetic_elf(&segments, good_header_fields());
        assert!(matches!(
            errors_of(&file).as_slice(),
            [ImageError::SegmentBelowLoadAddr {
                segment: LoadSegment { index: 2, .. },
                ..
            }]
        ));
    }

    #[test]
    fn names_a_segment_past_load_end() {
        let mut fields = good_header_fields();
        fields[2] = LOAD_ADDR + 0x1800; // load_end cuts the data segment short
        let file = synthetic_elf(&good_segments(), fields);
        assert!(matches!(
            errors_of(&file).as_slice(),
            [ImageError::SegmentBeyondLoadEnd {
                segment: LoadSegment { index: 1, .. },
                load_end: 0x10_1800,
            }]
        ));
    }

    #[test]
    fn names_a_segment_past_bss_end() {
        let mut fields = good_header_fields();
        fields[3] = LOAD_ADDR + 0x3000; // bss_end short of the data segment's memsz
        let file = synthetic_elf(&good_segments(), fields);
        let errors = errors_of(&file);
        assert!(matches!(
            errors.as_slice(),
            [ImageError::SegmentBeyondBssEnd {
                segment: LoadSegment { index: 1, .. },
                bss_end: 0x10_3000,
            }]
        ));
        assert!(errors[0].to_string().contains("0x104000"));
    }

    #[test]
    fn names_a_segment_whose_bss_qemu_fills_from_the_file() {
        let mut fields = good_header_fields();
        fields[2] = LOAD_ADDR + 0x3000; // load_end past the data segment's file bytes
        fields[3] = LOAD_ADDR + 0x4000;
        let mut file = synthetic_elf(&good_segments(), fields);
        file.resize(0x4000, 0);
        assert!(verify_kernel_image(&file).is_ok(), "zero bytes are fine");
        file[0x3010] = 0xaa;
        assert_eq!(
            errors_of(&file),
            vec![ImageError::SegmentBssNotZero {
                segment: good_segments()[1],
                paddr: 0x10_2010,
            }]
        );
    }

    #[test]
    fn reports_every_bad_segment() {
        let mut segments = good_segments();
        segments[0].offset = 0x1800;
        segments[1].offset = 0x2800;
        let file = synthetic_elf(&segments, good_header_fields());
        assert_eq!(errors_of(&file).len(), 2);
    }

    #[test]
    fn rejects_non_elf_and_elf_without_load_segments() {
        let mut file = vec![0u8; 0x3000];
        put_header(&mut file, 0x1000, good_header_fields());
        assert!(matches!(
            errors_of(&file).as_slice(),
            [ImageError::NotElf64(_)]
        ));
        let file = synthetic_elf(&[], good_header_fields());
        assert_eq!(errors_of(&file), vec![ImageError::NoLoadSegments]);
    }
}
