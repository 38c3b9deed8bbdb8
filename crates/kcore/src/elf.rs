//! ELF64 loader validation: turns an untrusted program image into a checked list of segments.
//!
//! Accepts only what Vigil can run: little-endian ELF64, ET_EXEC, x86-64, PT_LOAD segments
//! inside the user image range, not overlapping, never both writable and executable, file
//! bytes inside the file, and an entry point inside an executable segment. Everything else
//! is refused with a reason the kernel logs.

use vigil_abi::layout::{USER_IMAGE_END, USER_IMAGE_MIN};

/// Page size the overlap and alignment rules use.
const PAGE_SIZE: u64 = 4096;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const ELF_MAGIC: [u8; 4] = [0x7f, b'E', b'L', b'F'];
const EI_CLASS: usize = 4;
const EI_DATA: usize = 5;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const ET_EXEC: u16 = 2;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const PF_R: u32 = 4;

/// Segment permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentFlags {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

/// One loadable segment, checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Virtual address and size in memory (`mem_size >= file_size`).
    pub virt: u64,
    pub mem_size: u64,
    /// Bytes `[file_offset, file_offset + file_size)` of the image are copied to `virt`;
    /// the rest up to `mem_size` is zero.
    pub file_offset: u64,
    pub file_size: u64,
    pub flags: SegmentFlags,
}

/// Most PT_LOAD segments accepted.
pub const MAX_SEGMENTS: usize = 8;

/// Why an image was refused. Every variant names what was wrong so the log says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Shorter than an ELF header.
    TooShort,
    /// Not `\x7fELF`.
    BadMagic,
    /// Not ELF64 (class byte).
    NotElf64,
    /// Not little-endian.
    NotLittleEndian,
    /// e_type is not ET_EXEC (the value found).
    NotExecutable(u16),
    /// e_machine is not x86-64 (the value found).
    WrongMachine(u16),
    /// Program-header table outside the file or with a wrong entry size.
    BadProgramHeaders,
    /// No PT_LOAD segment.
    NoSegments,
    /// More than MAX_SEGMENTS PT_LOAD segments.
    TooManySegments,
    /// Segment `index`'s file bytes lie outside the file.
    SegmentOutsideFile { index: usize },
    /// Segment `index` has file_size > mem_size.
    FileSizeExceedsMemSize { index: usize },
    /// Segment `index` is (partly) outside [layout::USER_IMAGE_MIN, layout::USER_IMAGE_END).
    SegmentOutsideUserRange { index: usize },
    /// Segment `index` is writable and executable.
    WritableAndExecutable { index: usize },
    /// Segments `first` and `second` overlap (at page granularity).
    SegmentsOverlap { first: usize, second: usize },
    /// Segment `index`'s vaddr and offset disagree modulo the page size.
    Misaligned { index: usize },
    /// The entry point is not inside an executable segment.
    BadEntryPoint(u64),
}

/// A validated image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElfImage {
    pub entry: u64,
    segments: [Option<Segment>; MAX_SEGMENTS],
}

impl ElfImage {
    /// Validates `bytes` (the whole file).
    ///
    /// Checks, in this order (the first failure is reported): header length, magic, class,
    /// data encoding, e_type, e_machine; then the program-header table (none at all is
    /// `NoSegments`; otherwise the entry size must be 56 and the whole table inside the
    /// file). Non-PT_LOAD headers (PT_GNU_STACK, PT_NOTE, …) are ignored. For each PT_LOAD,
    /// in table order: file size ≤ memory size; a zero memory size is then skipped (it
    /// loads nothing); file bytes inside the file (checked even for an empty file part, so
    /// `file_offset..file_offset + file_size` is always a valid range of `bytes`); not
    /// writable and executable; inside the user image range; vaddr ≡ offset (mod 4096);
    /// at most `MAX_SEGMENTS` so far; no 4 KiB page shared with an earlier segment.
    /// Finally there must be a segment and the entry point must be inside an executable
    /// one.
    ///
    /// Segment indices in errors are program-header indices (as `readelf -l` numbers
    /// them), not positions among the loadable segments. Segments are kept in table order.
    pub fn parse(bytes: &[u8]) -> Result<ElfImage, ElfError> {
        Self::parse_head(bytes, bytes.len() as u64)
    }

    /// `parse` from the first bytes of a file of `file_len` bytes: `head` must hold the ELF
    /// header and the program-header table (`BadProgramHeaders` otherwise), and segments
    /// are checked against `file_len`. A loader that reads only the segments' bytes (PM)
    /// validates with this before it reads them.
    pub fn parse_head(bytes: &[u8], file_len: u64) -> Result<ElfImage, ElfError> {
        if bytes.len() < EHDR_SIZE {
            return Err(ElfError::TooShort);
        }
        if bytes[..4] != ELF_MAGIC {
            return Err(ElfError::BadMagic);
        }
        if bytes[EI_CLASS] != ELFCLASS64 {
            return Err(ElfError::NotElf64);
        }
        if bytes[EI_DATA] != ELFDATA2LSB {
            return Err(ElfError::NotLittleEndian);
        }
        // The header is 64 bytes long, so the fixed-offset reads below cannot fail; a
        // failure would still be reported as TooShort rather than a panic.
        let e_type = read_u16(bytes, 16).ok_or(ElfError::TooShort)?;
        if e_type != ET_EXEC {
            return Err(ElfError::NotExecutable(e_type));
        }
        let e_machine = read_u16(bytes, 18).ok_or(ElfError::TooShort)?;
        if e_machine != EM_X86_64 {
            return Err(ElfError::WrongMachine(e_machine));
        }
        let entry = read_u64(bytes, 24).ok_or(ElfError::TooShort)?;
        let ph_offset = read_u64(bytes, 32).ok_or(ElfError::TooShort)?;
        let ph_entry_size = read_u16(bytes, 54).ok_or(ElfError::TooShort)?;
        let ph_count = read_u16(bytes, 56).ok_or(ElfError::TooShort)?;

        if ph_count == 0 {
            return Err(ElfError::NoSegments);
        }
        if usize::from(ph_entry_size) != PHDR_SIZE {
            return Err(ElfError::BadProgramHeaders);
        }
        let table = usize::try_from(ph_offset)
            .ok()
            .and_then(|start| {
                let end = start.checked_add(usize::from(ph_count).checked_mul(PHDR_SIZE)?)?;
                bytes.get(start..end)
            })
            .ok_or(ElfError::BadProgramHeaders)?;

        let mut segments = [None; MAX_SEGMENTS];
        // Program-header index of each accepted segment, for overlap reports.
        let mut indices = [0usize; MAX_SEGMENTS];
        let mut count = 0;
        for (index, header) in table.chunks_exact(PHDR_SIZE).enumerate() {
            let Some(header) = ProgramHeader::read(header) else {
                return Err(ElfError::BadProgramHeaders);
            };
            if header.p_type != PT_LOAD {
                continue;
            }
            let Some(segment) = check_segment(file_len, index, &header)? else {
                continue;
            };
            if count == MAX_SEGMENTS {
                return Err(ElfError::TooManySegments);
            }
            for (earlier, &first) in segments[..count].iter().flatten().zip(&indices[..count]) {
                if pages_overlap(earlier, &segment) {
                    return Err(ElfError::SegmentsOverlap {
                        first,
                        second: index,
                    });
                }
            }
            segments[count] = Some(segment);
            indices[count] = index;
            count += 1;
        }
        if count == 0 {
            return Err(ElfError::NoSegments);
        }
        let entry_ok = segments.iter().flatten().any(|segment| {
            segment.flags.execute
                && entry >= segment.virt
                && entry - segment.virt < segment.mem_size
        });
        if !entry_ok {
            return Err(ElfError::BadEntryPoint(entry));
        }
        Ok(ElfImage { entry, segments })
    }

    pub fn segments(&self) -> impl Iterator<Item = &Segment> + '_ {
        self.segments.iter().flatten()
    }
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            ElfError::TooShort => write!(
                f,
                "file is shorter than an ELF64 header ({EHDR_SIZE} bytes)"
            ),
            ElfError::BadMagic => f.write_str("not an ELF file (bad magic bytes)"),
            ElfError::NotElf64 => f.write_str("not a 64-bit ELF file (class is not ELFCLASS64)"),
            ElfError::NotLittleEndian => f.write_str("not a little-endian ELF file"),
            ElfError::NotExecutable(e_type) => write!(
                f,
                "not an executable: e_type is {e_type}, expected {ET_EXEC} (ET_EXEC)"
            ),
            ElfError::WrongMachine(machine) => write!(
                f,
                "not an x86-64 program: e_machine is {machine}, expected {EM_X86_64}"
            ),
            ElfError::BadProgramHeaders => {
                f.write_str("program-header table lies outside the file or has a wrong entry size")
            }
            ElfError::NoSegments => f.write_str("no loadable (PT_LOAD) segment"),
            ElfError::TooManySegments => {
                write!(f, "more than {MAX_SEGMENTS} loadable (PT_LOAD) segments")
            }
            ElfError::SegmentOutsideFile { index } => {
                write!(f, "segment {index}'s file bytes lie outside the file")
            }
            ElfError::FileSizeExceedsMemSize { index } => {
                write!(f, "segment {index}'s file size exceeds its memory size")
            }
            ElfError::SegmentOutsideUserRange { index } => write!(
                f,
                "segment {index} is not inside the user image range \
                 [{USER_IMAGE_MIN:#x}, {USER_IMAGE_END:#x})"
            ),
            ElfError::WritableAndExecutable { index } => {
                write!(f, "segment {index} is both writable and executable")
            }
            ElfError::SegmentsOverlap { first, second } => write!(
                f,
                "segments {first} and {second} overlap (they share a {PAGE_SIZE}-byte page)"
            ),
            ElfError::Misaligned { index } => write!(
                f,
                "segment {index}'s virtual address and file offset differ modulo the page \
                 size ({PAGE_SIZE})"
            ),
            ElfError::BadEntryPoint(entry) => {
                write!(
                    f,
                    "entry point {entry:#x} is not inside an executable segment"
                )
            }
        }
    }
}

fn read_bytes<const W: usize>(bytes: &[u8], at: usize) -> Option<[u8; W]> {
    bytes.get(at..at.checked_add(W)?)?.try_into().ok()
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    read_bytes(bytes, at).map(u16::from_le_bytes)
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    read_bytes(bytes, at).map(u32::from_le_bytes)
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    read_bytes(bytes, at).map(u64::from_le_bytes)
}

/// The fields of one program header that matter here.
struct ProgramHeader {
    p_type: u32,
    p_flags: u32,
    p_offset: u64,
    p_vaddr: u64,
    p_filesz: u64,
    p_memsz: u64,
}

impl ProgramHeader {
    /// Reads a 56-byte program header (`None` if `raw` is shorter).
    fn read(raw: &[u8]) -> Option<ProgramHeader> {
        Some(ProgramHeader {
            p_type: read_u32(raw, 0)?,
            p_flags: read_u32(raw, 4)?,
            p_offset: read_u64(raw, 8)?,
            p_vaddr: read_u64(raw, 16)?,
            p_filesz: read_u64(raw, 32)?,
            p_memsz: read_u64(raw, 40)?,
        })
    }
}

/// Checks one PT_LOAD header on its own; `Ok(None)` for a segment that loads nothing.
fn check_segment(
    file_len: u64,
    index: usize,
    header: &ProgramHeader,
) -> Result<Option<Segment>, ElfError> {
    if header.p_filesz > header.p_memsz {
        return Err(ElfError::FileSizeExceedsMemSize { index });
    }
    if header.p_memsz == 0 {
        return Ok(None);
    }
    let file_end = header.p_offset.checked_add(header.p_filesz);
    if file_end.is_none_or(|end| end > file_len) {
        return Err(ElfError::SegmentOutsideFile { index });
    }
    let flags = SegmentFlags {
        read: header.p_flags & PF_R != 0,
        write: header.p_flags & PF_W != 0,
        execute: header.p_flags & PF_X != 0,
    };
    if flags.write && flags.execute {
        return Err(ElfError::WritableAndExecutable { index });
    }
    let in_range = header
        .p_vaddr
        .checked_add(header.p_memsz)
        .is_some_and(|end| header.p_vaddr >= USER_IMAGE_MIN && end <= USER_IMAGE_END);
    if !in_range {
        return Err(ElfError::SegmentOutsideUserRange { index });
    }
    if header.p_vaddr % PAGE_SIZE != header.p_offset % PAGE_SIZE {
        return Err(ElfError::Misaligned { index });
    }
    Ok(Some(Segment {
        virt: header.p_vaddr,
        mem_size: header.p_memsz,
        file_offset: header.p_offset,
        file_size: header.p_filesz,
        flags,
    }))
}

/// Page-number range `[first, end)` a checked segment touches (its end is at most
/// `USER_IMAGE_END`, so nothing overflows).
fn page_span(segment: &Segment) -> (u64, u64) {
    let end = segment.virt + segment.mem_size;
    (segment.virt / PAGE_SIZE, end.div_ceil(PAGE_SIZE))
}

fn pages_overlap(a: &Segment, b: &Segment) -> bool {
    let (a_first, a_end) = page_span(a);
    let (b_first, b_end) = page_span(b);
    a_first < b_end && b_first < a_end
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::string::ToString;
    use std::vec;
    use std::vec::Vec;

    const PT_NOTE: u32 = 4;
    const PT_PHDR: u32 = 6;
    const PT_GNU_STACK: u32 = 0x6474_e551;
    const R: u32 = PF_R;
    const RX: u32 = PF_R | PF_X;
    const RW: u32 = PF_R | PF_W;
    const RWX: u32 = PF_R | PF_W | PF_X;
    const MIN: u64 = USER_IMAGE_MIN;

    /// A program header as the test writer emits it.
    #[derive(Clone, Copy, Debug)]
    struct Ph {
        p_type: u32,
        flags: u32,
        offset: u64,
        vaddr: u64,
        filesz: u64,
        memsz: u64,
    }

    fn load(flags: u32, offset: u64, vaddr: u64, filesz: u64, memsz: u64) -> Ph {
        Ph {
            p_type: PT_LOAD,
            flags,
            offset,
            vaddr,
            filesz,
            memsz,
        }
    }

    fn other(p_type: u32) -> Ph {
        Ph {
            p_type,
            flags: RW,
            offset: 0,
            vaddr: 0,
            filesz: 0,
            memsz: 0,
        }
    }

    fn put(bytes: &mut [u8], at: usize, value: &[u8]) {
        bytes[at..at + value.len()].copy_from_slice(value);
    }

    /// A tiny ELF writer: header at 0, program headers at 64, file `len` bytes long (at
    /// least enough for the headers); everything else is a byte pattern.
    fn write_elf(entry: u64, phs: &[Ph], len: usize) -> Vec<u8> {
        let len = len.max(EHDR_SIZE + PHDR_SIZE * phs.len());
        let mut b: Vec<u8> = (0..len).map(|i| (i as u8) ^ 0x5a).collect();
        b[..EHDR_SIZE].fill(0);
        put(&mut b, 0, &ELF_MAGIC);
        b[EI_CLASS] = ELFCLASS64;
        b[EI_DATA] = ELFDATA2LSB;
        b[6] = 1; // EI_VERSION
        put(&mut b, 16, &ET_EXEC.to_le_bytes());
        put(&mut b, 18, &EM_X86_64.to_le_bytes());
        put(&mut b, 20, &1u32.to_le_bytes());
        put(&mut b, 24, &entry.to_le_bytes());
        put(&mut b, 32, &(EHDR_SIZE as u64).to_le_bytes());
        put(&mut b, 52, &(EHDR_SIZE as u16).to_le_bytes());
        put(&mut b, 54, &(PHDR_SIZE as u16).to_le_bytes());
        put(&mut b, 56, &(phs.len() as u16).to_le_bytes());
        put(&mut b, 58, &64u16.to_le_bytes());
        for (i, ph) in phs.iter().enumerate() {
            let at = EHDR_SIZE + PHDR_SIZE * i;
            put(&mut b, at, &ph.p_type.to_le_bytes());
            put(&mut b, at + 4, &ph.flags.to_le_bytes());
            put(&mut b, at + 8, &ph.offset.to_le_bytes());
            put(&mut b, at + 16, &ph.vaddr.to_le_bytes());
            put(&mut b, at + 24, &ph.vaddr.to_le_bytes());
            put(&mut b, at + 32, &ph.filesz.to_le_bytes());
            put(&mut b, at + 40, &ph.memsz.to_le_bytes());
            put(&mut b, at + 48, &PAGE_SIZE.to_le_bytes());
        }
        b
    }

    const SMALL_ENTRY: u64 = MIN + 0x100;
    const SMALL_LEN: usize = 0x2c0;

    /// A small valid image: code (with the headers), read-only data, data + bss, and a
    /// PT_GNU_STACK. Its last segment's file bytes end at the end of the file.
    fn small_phs() -> Vec<Ph> {
        vec![
            load(RX, 0, MIN, 0x200, 0x200),
            load(R, 0x200, MIN + 0x1200, 0x80, 0x80),
            load(RW, 0x280, MIN + 0x2280, 0x40, 0x3000),
            other(PT_GNU_STACK),
        ]
    }

    fn small() -> Vec<u8> {
        write_elf(SMALL_ENTRY, &small_phs(), SMALL_LEN)
    }

    /// `small()` with program header `index` replaced.
    fn small_with(index: usize, ph: Ph) -> Vec<u8> {
        let mut phs = small_phs();
        phs[index] = ph;
        write_elf(SMALL_ENTRY, &phs, SMALL_LEN)
    }

    fn err(bytes: &[u8]) -> ElfError {
        ElfImage::parse(bytes).expect_err("image should be refused")
    }

    /// Everything `parse` promises about an accepted image, re-checked independently.
    fn assert_valid(bytes: &[u8], image: &ElfImage) {
        let segments: Vec<Segment> = image.segments().copied().collect();
        assert!(!segments.is_empty() && segments.len() <= MAX_SEGMENTS);
        for s in &segments {
            assert!(s.mem_size > 0);
            assert!(s.file_size <= s.mem_size);
            let file_end = u128::from(s.file_offset) + u128::from(s.file_size);
            assert!(file_end <= bytes.len() as u128);
            assert!(s.virt >= USER_IMAGE_MIN);
            assert!(u128::from(s.virt) + u128::from(s.mem_size) <= u128::from(USER_IMAGE_END));
            assert!(!(s.flags.write && s.flags.execute));
            assert_eq!(s.virt % PAGE_SIZE, s.file_offset % PAGE_SIZE);
        }
        for (i, a) in segments.iter().enumerate() {
            for b in &segments[i + 1..] {
                let a_pages = (
                    a.virt / PAGE_SIZE,
                    (a.virt + a.mem_size).div_ceil(PAGE_SIZE),
                );
                let b_pages = (
                    b.virt / PAGE_SIZE,
                    (b.virt + b.mem_size).div_ceil(PAGE_SIZE),
                );
                assert!(
                    a_pages.1 <= b_pages.0 || b_pages.1 <= a_pages.0,
                    "{a:?} / {b:?}"
                );
            }
        }
        assert!(segments.iter().any(|s| s.flags.execute
            && image.entry >= s.virt
            && u128::from(image.entry) < u128::from(s.virt) + u128::from(s.mem_size)));
    }

    #[test]
    fn accepts_the_small_image() {
        let bytes = small();
        let image = ElfImage::parse(&bytes).unwrap();
        assert_valid(&bytes, &image);
        assert_eq!(image.entry, SMALL_ENTRY);
        let segments: Vec<Segment> = image.segments().copied().collect();
        assert_eq!(segments.len(), 3);
        assert_eq!(
            segments[2],
            Segment {
                virt: MIN + 0x2280,
                mem_size: 0x3000,
                file_offset: 0x280,
                file_size: 0x40,
                flags: SegmentFlags {
                    read: true,
                    write: true,
                    execute: false
                },
            }
        );
    }

    #[test]
    fn the_head_of_a_file_is_judged_like_the_whole_file() {
        let bytes = small();
        let head = &bytes[..EHDR_SIZE + PHDR_SIZE * small_phs().len()];
        let whole = ElfImage::parse(&bytes).unwrap();
        let from_head = ElfImage::parse_head(head, bytes.len() as u64).unwrap();
        assert_eq!(from_head, whole);
        // A segment reaching past the file's length is refused from the head too.
        assert_eq!(
            ElfImage::parse_head(head, bytes.len() as u64 - 1),
            ElfImage::parse(&bytes[..bytes.len() - 1])
        );
        assert!(ElfImage::parse_head(head, bytes.len() as u64 - 1).is_err());
        // A head without the whole program-header table cannot be judged.
        assert_eq!(
            ElfImage::parse_head(&head[..head.len() - 1], bytes.len() as u64),
            Err(ElfError::BadProgramHeaders)
        );
    }

    #[test]
    fn accepts_a_real_world_like_image() {
        // As a linker lays out a static program: PT_PHDR, read-only data with the headers,
        // text, data + bss, PT_GNU_STACK, a note.
        let phs = [
            Ph {
                p_type: PT_PHDR,
                flags: R,
                offset: 64,
                vaddr: MIN + 64,
                filesz: 6 * 56,
                memsz: 6 * 56,
            },
            load(R, 0, MIN, 0x5e0, 0x5e0),
            load(RX, 0x5e0, MIN + 0x15e0, 0x2a31, 0x2a31),
            load(RW, 0x4018, MIN + 0x5018, 0x120, 0x1250),
            other(PT_GNU_STACK),
            Ph {
                p_type: PT_NOTE,
                flags: R,
                offset: 0x200,
                vaddr: MIN + 0x200,
                filesz: 0x24,
                memsz: 0x24,
            },
        ];
        let entry = MIN + 0x15f0;
        let bytes = write_elf(entry, &phs, 0x4138);
        let image = ElfImage::parse(&bytes).unwrap();
        assert_valid(&bytes, &image);
        assert_eq!(image.entry, entry);
        let flags = |read, write, execute| SegmentFlags {
            read,
            write,
            execute,
        };
        let expected = [
            Segment {
                virt: MIN,
                mem_size: 0x5e0,
                file_offset: 0,
                file_size: 0x5e0,
                flags: flags(true, false, false),
            },
            Segment {
                virt: MIN + 0x15e0,
                mem_size: 0x2a31,
                file_offset: 0x5e0,
                file_size: 0x2a31,
                flags: flags(true, false, true),
            },
            Segment {
                virt: MIN + 0x5018,
                mem_size: 0x1250,
                file_offset: 0x4018,
                file_size: 0x120,
                flags: flags(true, true, false),
            },
        ];
        assert!(image.segments().eq(expected.iter()));
    }

    #[test]
    fn gnu_stack_and_other_headers_are_ignored() {
        // PT_GNU_STACK is RWX in some toolchains' output and has no address: irrelevant.
        let mut stack = other(PT_GNU_STACK);
        stack.flags = RWX;
        stack.memsz = 0x10_0000;
        let bytes = small_with(3, stack);
        assert!(ElfImage::parse(&bytes).is_ok());
        let bytes = small_with(3, other(PT_NOTE));
        assert!(ElfImage::parse(&bytes).is_ok());
    }

    #[test]
    fn zero_memsz_load_segments_are_skipped() {
        // Even one that would break every other rule.
        let bytes = small_with(3, load(RWX, u64::MAX, 0, 0, 0));
        let image = ElfImage::parse(&bytes).unwrap();
        assert_eq!(image.segments().count(), 3);
    }

    #[test]
    fn segments_may_touch_without_sharing_a_page() {
        let bytes = write_elf(
            MIN,
            &[
                load(RX, 0, MIN, 0x1000, 0x1000),
                load(R, 0x1000, MIN + 0x1000, 0x10, 0x10),
            ],
            0x1010,
        );
        assert!(ElfImage::parse(&bytes).is_ok());
    }

    #[test]
    fn a_segment_may_end_exactly_at_the_end_of_the_user_range() {
        let top = USER_IMAGE_END - PAGE_SIZE;
        let bytes = write_elf(top, &[load(RX, 0, top, 0x100, PAGE_SIZE)], 0x100);
        assert!(ElfImage::parse(&bytes).is_ok());
    }

    #[test]
    fn a_bss_only_segment_may_point_at_the_end_of_the_file() {
        let bytes = small_with(
            3,
            load(
                RW,
                SMALL_LEN as u64,
                MIN + 0x6000 + SMALL_LEN as u64,
                0,
                0x10,
            ),
        );
        assert!(ElfImage::parse(&bytes).is_ok());
    }

    #[test]
    fn too_short() {
        assert_eq!(err(&[]), ElfError::TooShort);
        assert_eq!(err(&small()[..EHDR_SIZE - 1]), ElfError::TooShort);
        assert_eq!(err(&ELF_MAGIC), ElfError::TooShort);
    }

    #[test]
    fn bad_magic() {
        let mut bytes = small();
        bytes[3] = b'f';
        assert_eq!(err(&bytes), ElfError::BadMagic);
        assert_eq!(err(&[0; 64]), ElfError::BadMagic);
    }

    #[test]
    fn not_elf64() {
        let mut bytes = small();
        bytes[EI_CLASS] = 1;
        assert_eq!(err(&bytes), ElfError::NotElf64);
    }

    #[test]
    fn not_little_endian() {
        let mut bytes = small();
        bytes[EI_DATA] = 2;
        assert_eq!(err(&bytes), ElfError::NotLittleEndian);
    }

    #[test]
    fn not_executable() {
        let mut bytes = small();
        put(&mut bytes, 16, &3u16.to_le_bytes()); // ET_DYN
        assert_eq!(err(&bytes), ElfError::NotExecutable(3));
    }

    #[test]
    fn wrong_machine() {
        let mut bytes = small();
        put(&mut bytes, 18, &183u16.to_le_bytes()); // AArch64
        assert_eq!(err(&bytes), ElfError::WrongMachine(183));
    }

    #[test]
    fn bad_program_headers() {
        let mut bytes = small();
        put(&mut bytes, 54, &32u16.to_le_bytes());
        assert_eq!(err(&bytes), ElfError::BadProgramHeaders);
        for phoff in [
            SMALL_LEN as u64,
            SMALL_LEN as u64 - 100,
            u64::MAX,
            u64::MAX - 10,
        ] {
            let mut bytes = small();
            put(&mut bytes, 32, &phoff.to_le_bytes());
            assert_eq!(err(&bytes), ElfError::BadProgramHeaders, "phoff {phoff:#x}");
        }
        let mut bytes = small();
        put(&mut bytes, 56, &u16::MAX.to_le_bytes());
        assert_eq!(err(&bytes), ElfError::BadProgramHeaders);
    }

    #[test]
    fn no_segments() {
        let bytes = write_elf(MIN, &[], 0x100);
        assert_eq!(err(&bytes), ElfError::NoSegments);
        let bytes = write_elf(MIN, &[other(PT_GNU_STACK), load(RX, 0, MIN, 0, 0)], 0x100);
        assert_eq!(err(&bytes), ElfError::NoSegments);
    }

    #[test]
    fn too_many_segments() {
        let phs: Vec<Ph> = (0..MAX_SEGMENTS as u64 + 1)
            .map(|i| load(RX, 0, MIN + i * PAGE_SIZE, 0x10, 0x10))
            .collect();
        assert_eq!(err(&write_elf(MIN, &phs, 0x300)), ElfError::TooManySegments);
        // Exactly MAX_SEGMENTS is fine.
        let bytes = write_elf(MIN, &phs[..MAX_SEGMENTS], 0x300);
        assert_eq!(
            ElfImage::parse(&bytes).unwrap().segments().count(),
            MAX_SEGMENTS
        );
    }

    #[test]
    fn segment_outside_file() {
        let past_end = load(R, 0x2c0, MIN + 0x62c0, 1, 1);
        assert_eq!(
            err(&small_with(3, past_end)),
            ElfError::SegmentOutsideFile { index: 3 }
        );
        let empty_but_past_end = load(R, 0x2c1, MIN + 0x62c1, 0, 1);
        assert_eq!(
            err(&small_with(1, empty_but_past_end)),
            ElfError::SegmentOutsideFile { index: 1 }
        );
        let overflowing = load(R, u64::MAX - 1, MIN + 0x6ffe, 2, 2);
        assert_eq!(
            err(&small_with(0, overflowing)),
            ElfError::SegmentOutsideFile { index: 0 }
        );
    }

    #[test]
    fn file_size_exceeds_mem_size() {
        let ph = load(RW, 0x280, MIN + 0x2280, 0x40, 0x3f);
        assert_eq!(
            err(&small_with(2, ph)),
            ElfError::FileSizeExceedsMemSize { index: 2 }
        );
        // Also for a segment with no memory at all.
        let ph = load(RW, 0x280, MIN + 0x2280, 0x40, 0);
        assert_eq!(
            err(&small_with(3, ph)),
            ElfError::FileSizeExceedsMemSize { index: 3 }
        );
    }

    #[test]
    fn segment_outside_user_range() {
        for (vaddr, memsz) in [
            (0, 0x100),
            (MIN - PAGE_SIZE, 0x100),
            (MIN - PAGE_SIZE + 0x280, 0x2000), // straddles the bottom
            (USER_IMAGE_END - PAGE_SIZE + 0x280, PAGE_SIZE), // straddles the top
            (USER_IMAGE_END + 0x280, 0x100),
            (u64::MAX - 0xfff + 0x280, 0x100), // vaddr + memsz overflows
        ] {
            let ph = load(R, 0x280, vaddr, 0x40, memsz);
            assert_eq!(
                err(&small_with(3, ph)),
                ElfError::SegmentOutsideUserRange { index: 3 },
                "vaddr {vaddr:#x} memsz {memsz:#x}"
            );
        }
    }

    #[test]
    fn writable_and_executable() {
        let ph = load(RWX, 0x200, MIN + 0x1200, 0x80, 0x80);
        assert_eq!(
            err(&small_with(1, ph)),
            ElfError::WritableAndExecutable { index: 1 }
        );
        let ph = load(PF_W | PF_X, 0x200, MIN + 0x1200, 0x80, 0x80);
        assert_eq!(
            err(&small_with(1, ph)),
            ElfError::WritableAndExecutable { index: 1 }
        );
    }

    #[test]
    fn segments_overlap() {
        // Sharing a page (different bytes of it) with segment 0, with a non-LOAD between.
        let mut phs = small_phs();
        phs.swap(1, 3);
        phs[3] = load(R, 0x200, MIN + 0x200, 0x80, 0x80);
        let bytes = write_elf(SMALL_ENTRY, &phs, SMALL_LEN);
        assert_eq!(
            err(&bytes),
            ElfError::SegmentsOverlap {
                first: 0,
                second: 3
            }
        );
        // bss running into the next segment's page.
        let mut phs = small_phs();
        phs[1].memsz = 0x1000;
        let bytes = write_elf(SMALL_ENTRY, &phs, SMALL_LEN);
        assert_eq!(
            err(&bytes),
            ElfError::SegmentsOverlap {
                first: 1,
                second: 2
            }
        );
        // One segment inside another.
        let ph = load(R, 0x80, MIN + 0x3080, 0x10, 0x10);
        assert_eq!(
            err(&small_with(3, ph)),
            ElfError::SegmentsOverlap {
                first: 2,
                second: 3
            }
        );
    }

    #[test]
    fn misaligned() {
        let ph = load(R, 0x200, MIN + 0x1000, 0x80, 0x80);
        assert_eq!(err(&small_with(1, ph)), ElfError::Misaligned { index: 1 });
    }

    #[test]
    fn bad_entry_point() {
        for entry in [
            0,
            MIN - 1,
            MIN + 0x200,
            MIN + 0x1200,
            MIN + 0x2280,
            u64::MAX,
        ] {
            let bytes = write_elf(entry, &small_phs(), SMALL_LEN);
            assert_eq!(
                err(&bytes),
                ElfError::BadEntryPoint(entry),
                "entry {entry:#x}"
            );
        }
        for entry in [MIN, MIN + 0x1ff] {
            assert!(ElfImage::parse(&write_elf(entry, &small_phs(), SMALL_LEN)).is_ok());
        }
    }

    #[test]
    fn every_truncation_is_refused_without_panicking() {
        let bytes = small();
        for len in 0..bytes.len() {
            let error = err(&bytes[..len]);
            if len < EHDR_SIZE {
                assert_eq!(error, ElfError::TooShort);
            }
        }
        assert!(ElfImage::parse(&bytes).is_ok());
    }

    #[test]
    fn display_names_the_problem_on_one_line() {
        let all = [
            ElfError::TooShort,
            ElfError::BadMagic,
            ElfError::NotElf64,
            ElfError::NotLittleEndian,
            ElfError::NotExecutable(3),
            ElfError::WrongMachine(183),
            ElfError::BadProgramHeaders,
            ElfError::NoSegments,
            ElfError::TooManySegments,
            ElfError::SegmentOutsideFile { index: 1 },
            ElfError::FileSizeExceedsMemSize { index: 1 },
            ElfError::SegmentOutsideUserRange { index: 1 },
            ElfError::WritableAndExecutable { index: 2 },
            ElfError::SegmentsOverlap {
                first: 0,
                second: 3,
            },
            ElfError::Misaligned { index: 1 },
            ElfError::BadEntryPoint(0x1234),
        ];
        let messages: Vec<std::string::String> = all.iter().map(ToString::to_string).collect();
        for message in &messages {
            assert!(
                !message.is_empty() && !message.contains('\n'),
                "{message:?}"
            );
            assert!(!message.contains("  "), "{message:?}");
        }
        let mut unique = messages.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), all.len());
        assert_eq!(
            ElfError::WritableAndExecutable { index: 2 }.to_string(),
            "segment 2 is both writable and executable"
        );
        assert_eq!(
            ElfError::SegmentOutsideUserRange { index: 1 }.to_string(),
            "segment 1 is not inside the user image range [0x400000, 0x100000000000)"
        );
        assert_eq!(
            ElfError::BadEntryPoint(0x1234).to_string(),
            "entry point 0x1234 is not inside an executable segment"
        );
        assert_eq!(
            ElfError::NotExecutable(3).to_string(),
            "not an executable: e_type is 3, expected 2 (ET_EXEC)"
        );
    }

    /// (Byte offset, width) of the ELF-header fields worth mutating as whole words.
    const HEADER_FIELDS: [(usize, usize); 4] = [(24, 8), (32, 8), (54, 2), (56, 2)];
    /// (Offset inside a program header, width) of its fields.
    const PHDR_FIELDS: [(usize, usize); 6] = [(0, 4), (4, 4), (8, 8), (16, 8), (32, 8), (40, 8)];

    fn phdr_field(index: usize, at: usize) -> usize {
        EHDR_SIZE + PHDR_SIZE * index + at
    }

    #[derive(Clone, Debug)]
    enum Mutation {
        Byte(usize, u8),
        /// Overwrite `width` bytes at an offset with the low bytes of a value.
        Word(usize, usize, u64),
        Truncate(usize),
    }

    fn interesting_u64() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..0x3000,
            Just(MIN),
            (MIN - 0x1000)..(MIN + 0x4000),
            Just(USER_IMAGE_END - PAGE_SIZE),
            (u64::MAX - 0x1000)..=u64::MAX,
            any::<u64>(),
        ]
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        let field = prop_oneof![
            proptest::sample::select(HEADER_FIELDS.to_vec()),
            (0..4usize, proptest::sample::select(PHDR_FIELDS.to_vec()))
                .prop_map(|(i, (at, width))| (phdr_field(i, at), width)),
        ];
        prop_oneof![
            3 => (prop_oneof![0..EHDR_SIZE + 4 * PHDR_SIZE, 0..SMALL_LEN], any::<u8>())
                .prop_map(|(at, v)| Mutation::Byte(at, v)),
            3 => (field, interesting_u64())
                .prop_map(|((at, width), v)| Mutation::Word(at, width, v)),
            1 => (0..=SMALL_LEN).prop_map(Mutation::Truncate),
        ]
    }

    fn apply(bytes: &mut Vec<u8>, mutation: &Mutation) {
        match *mutation {
            Mutation::Byte(at, value) => {
                if let Some(b) = bytes.get_mut(at) {
                    *b = value;
                }
            }
            Mutation::Word(at, width, value) => {
                let value = value.to_le_bytes();
                for (i, v) in value.iter().take(width).enumerate() {
                    if let Some(b) = bytes.get_mut(at + i) {
                        *b = *v;
                    }
                }
            }
            Mutation::Truncate(len) => bytes.truncate(len),
        }
    }

    /// A loose reference for structured images: is the image acceptable? (u128 arithmetic,
    /// written independently of `parse`.)
    fn model_accepts(entry: u64, phs: &[Ph], len: usize) -> bool {
        let loads: Vec<&Ph> = phs.iter().filter(|p| p.p_type == PT_LOAD).collect();
        if loads.iter().any(|p| p.filesz > p.memsz) {
            return false;
        }
        let loads: Vec<&Ph> = loads.into_iter().filter(|p| p.memsz > 0).collect();
        if loads.is_empty() || loads.len() > MAX_SEGMENTS {
            return false;
        }
        let wide = |v: u64| u128::from(v);
        for p in &loads {
            let ok = wide(p.offset) + wide(p.filesz) <= len as u128
                && p.flags & (PF_W | PF_X) != (PF_W | PF_X)
                && p.vaddr >= USER_IMAGE_MIN
                && wide(p.vaddr) + wide(p.memsz) <= wide(USER_IMAGE_END)
                && p.vaddr % PAGE_SIZE == p.offset % PAGE_SIZE;
            if !ok {
                return false;
            }
        }
        let pages = |p: &Ph| {
            (
                wide(p.vaddr) / 4096,
                (wide(p.vaddr) + wide(p.memsz)).div_ceil(4096),
            )
        };
        for (i, a) in loads.iter().enumerate() {
            for b in &loads[i + 1..] {
                let (a, b) = (pages(a), pages(b));
                if a.0 < b.1 && b.0 < a.1 {
                    return false;
                }
            }
        }
        loads.iter().any(|p| {
            p.flags & PF_X != 0 && entry >= p.vaddr && wide(entry) < wide(p.vaddr) + wide(p.memsz)
        })
    }

    fn structured_ph() -> impl Strategy<Value = Ph> {
        let addr = prop_oneof![
            4 => (0u64..8).prop_map(|page| MIN + page * PAGE_SIZE),
            1 => interesting_u64(),
        ];
        let size = prop_oneof![4 => 0u64..0x1800, 1 => interesting_u64()];
        (
            prop_oneof![6 => Just(PT_LOAD), 1 => Just(PT_GNU_STACK), 1 => any::<u32>()],
            0u32..8,
            prop_oneof![4 => 0u64..0x600, 1 => interesting_u64()],
            addr,
            prop_oneof![Just(0u64), 0u64..0x600, interesting_u64()],
            size,
        )
            .prop_map(|(p_type, flags, offset, base, filesz, memsz)| Ph {
                p_type,
                flags,
                offset,
                // Mostly congruent with the offset, like a linker's output.
                vaddr: if base % PAGE_SIZE == 0 {
                    base + offset % PAGE_SIZE
                } else {
                    base
                },
                filesz,
                memsz: memsz.max(filesz.min(0x1800)),
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(image) = ElfImage::parse(&bytes) {
                assert_valid(&bytes, &image);
            }
        }

        #[test]
        fn random_program_headers_never_panic(
            entry in prop_oneof![(MIN..MIN + 0x8000), interesting_u64()],
            table in proptest::collection::vec(any::<u8>(), 0..(PHDR_SIZE * 10)),
            phnum in 0u16..12,
        ) {
            let mut bytes = write_elf(entry, &[], 0);
            put(&mut bytes, 56, &phnum.to_le_bytes());
            bytes.extend_from_slice(&table);
            if let Ok(image) = ElfImage::parse(&bytes) {
                assert_valid(&bytes, &image);
            }
        }

        #[test]
        fn mutated_valid_images_never_panic(
            mutations in proptest::collection::vec(mutation(), 1..6),
        ) {
            let mut bytes = small();
            for m in &mutations {
                apply(&mut bytes, m);
            }
            if let Ok(image) = ElfImage::parse(&bytes) {
                assert_valid(&bytes, &image);
            }
        }

        #[test]
        fn structured_images_match_a_reference(
            entry in prop_oneof![(MIN..MIN + 0x8000), interesting_u64()],
            phs in proptest::collection::vec(structured_ph(), 0..10),
            len in 0x230usize..0x1000,
        ) {
            let bytes = write_elf(entry, &phs, len);
            let len = bytes.len();
            match ElfImage::parse(&bytes) {
                Ok(image) => {
                    assert_valid(&bytes, &image);
                    prop_assert!(model_accepts(entry, &phs, len));
                    let loads = phs.iter().filter(|p| p.p_type == PT_LOAD && p.memsz > 0);
                    prop_assert!(image.segments().map(|s| (s.virt, s.mem_size, s.file_offset, s.file_size))
                        .eq(loads.map(|p| (p.vaddr, p.memsz, p.offset, p.filesz))));
                }
                Err(error) => {
                    prop_assert!(!model_accepts(entry, &phs, len), "refused: {}", error);
                }
            }
        }
    }
}
