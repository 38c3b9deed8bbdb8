//! Program images as PM loads them: the ELF validated from the head of its boot module,
//! and the bytes of its loadable segments only — not the whole file, whose debug
//! information (megabytes for a Rust program) never has to fit in PM's heap.

use alloc::vec::Vec;
use core::fmt;

use vigil_kcore::elf::{ElfError, ElfImage};
use vigil_rt::abi::pm::{ImageFlags, MAX_COPY_BYTES};
use vigil_rt::abi::vm::{PageRange, Pid, MAX_PAGES_PER_CALL, PAGE_SIZE};
use vigil_rt::{syscall, Error};

/// How much of a module's start PM reads to find the ELF and program headers.
const HEAD_BYTES: usize = MAX_COPY_BYTES as usize;

/// A validated image, ready to load into any number of processes.
pub struct Image {
    pub elf: ElfImage,
    /// The module file's size.
    pub file_bytes: u64,
    /// Each segment's file bytes, in `elf.segments()` order.
    segments: Vec<Vec<u8>>,
}

/// Why a module cannot be an image.
pub enum ImageError {
    /// Reading the module failed, or its segments do not fit in PM's heap (`ENOMEM`).
    Read(Error),
    /// It is not a valid ELF executable.
    Elf(ElfError),
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageError::Read(error) => write!(f, "cannot read its file: {error}"),
            ImageError::Elf(reason) => write!(f, "{reason}"),
        }
    }
}

/// `len` bytes of module `index` from `offset`, into a buffer PM could allocate.
fn read_range(index: u64, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(len)
        .map_err(|_| Error::OutOfResources)?;
    bytes.resize(len, 0);
    let mut done = 0;
    while done < len {
        let read = syscall::pm_module_read(index, offset + done as u64, &mut bytes[done..])?;
        if read == 0 {
            return Err(Error::InvalidArgument);
        }
        done += read as usize;
    }
    Ok(bytes)
}

impl Image {
    /// Reads and validates boot module `index`.
    pub fn read(index: u64) -> Result<Image, ImageError> {
        let size = syscall::pm_module_read(index, 0, &mut []).map_err(ImageError::Read)?;
        let head_len = usize::try_from(size).map_or(HEAD_BYTES, |size| size.min(HEAD_BYTES));
        let head = read_range(index, 0, head_len).map_err(ImageError::Read)?;
        let elf = ElfImage::parse_head(&head, size).map_err(ImageError::Elf)?;
        let mut segments = Vec::new();
        for segment in elf.segments() {
            let bytes = read_range(index, segment.file_offset, segment.file_size as usize)
                .map_err(ImageError::Read)?;
            segments.push(bytes);
        }
        Ok(Image {
            elf,
            file_bytes: size,
            segments,
        })
    }

    /// Maps and fills every segment in the unstarted process `pid`.
    pub fn load(&self, pid: Pid) -> Result<(), Error> {
        for (segment, bytes) in self.elf.segments().zip(&self.segments) {
            let first_page = segment.virt & !(PAGE_SIZE - 1);
            let pages = (segment.virt + segment.mem_size - first_page).div_ceil(PAGE_SIZE);
            let flags = match (segment.flags.write, segment.flags.execute) {
                (true, _) => ImageFlags::WRITABLE,
                (false, true) => ImageFlags::EXECUTABLE,
                (false, false) => ImageFlags::READ_ONLY,
            };
            let mut done = 0;
            while done < pages {
                let count = (pages - done).min(MAX_PAGES_PER_CALL);
                let range = PageRange::new(first_page + done * PAGE_SIZE, count)?;
                syscall::pm_map_image(pid, range, flags)?;
                done += count;
            }
            for (i, chunk) in bytes.chunks(MAX_COPY_BYTES as usize).enumerate() {
                let address = segment.virt + (i as u64) * MAX_COPY_BYTES;
                syscall::pm_copy_to(pid, address, chunk)?;
            }
        }
        Ok(())
    }
}
