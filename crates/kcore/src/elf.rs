//! ELF64 loader validation: turns an untrusted program image into a checked list of segments.
//!
//! Accepts only what Vigil can run: little-endian ELF64, ET_EXEC, x86-64, PT_LOAD segments
//! inside the user image range, not overlapping, never both writable and executable, file
//! bytes inside the file, and an entry point inside an executable segment. Everything else
//! is refused with a reason the kernel logs.

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
    pub fn parse(bytes: &[u8]) -> Result<ElfImage, ElfError> {
        todo!()
    }

    pub fn segments(&self) -> impl Iterator<Item = &Segment> + '_ {
        self.segments.iter().flatten()
    }
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        todo!()
    }
}
