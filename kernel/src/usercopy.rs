//! Copying to and from user memory by walking the owner's page tables through the direct map.
//!
//! User pointers are allegations: every access checks that each page is mapped, belongs to
//! user space and (for writes) is writable, and fails with `Error::Fault` otherwise. Because
//! the copy goes through the direct map, the kernel can reach any process's memory — the
//! address space need not be loaded — and never touches user addresses directly, so SMAP
//! stays on and a bad pointer can never fault inside the kernel.

use crate::arch::paging::{flags, phys_to_virt, AddressSpace, PAGE_SIZE};
use vigil_abi::layout::USER_END;
use vigil_abi::Error;

/// Access the kernel needs on a user page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    /// The kernel filling a process's pages whatever their write permission (loading a
    /// program's read-only segments); the pages must still be user pages.
    Fill,
}

/// Checks that `[address, address + len)` is user memory and returns the kernel (direct
/// map) address of each piece, page by page, to `visit(kernel_address, offset, piece_len)`.
fn for_each_piece(
    space: &AddressSpace,
    address: u64,
    len: usize,
    access: Access,
    mut visit: impl FnMut(u64, usize, usize),
) -> Result<(), Error> {
    let end = address.checked_add(len as u64).ok_or(Error::Fault)?;
    if end > USER_END {
        return Err(Error::Fault);
    }
    // Check every page before touching any, so a failing copy has no partial effect. The
    // translations of the first few pages are kept for the copy (every IPC message fits),
    // so a small copy walks the tables once per page, not twice.
    const CACHED_PAGES: usize = 4;
    let mut cached = [0u64; CACHED_PAGES];
    let first_page = address & !(PAGE_SIZE - 1);
    let mut page = first_page;
    let mut index = 0;
    while page < end {
        let translation = space.translate(page).ok_or(Error::Fault)?;
        if translation.flags & flags::USER == 0
            || (access == Access::Write && !translation.writable())
        {
            return Err(Error::Fault);
        }
        if index < CACHED_PAGES {
            cached[index] = translation.phys & !(PAGE_SIZE - 1);
        }
        page += PAGE_SIZE;
        index += 1;
    }
    let mut offset = 0usize;
    while offset < len {
        let current = address + offset as u64;
        let in_page = (PAGE_SIZE - (current & (PAGE_SIZE - 1))) as usize;
        let piece = in_page.min(len - offset);
        let page_index = ((current - first_page) / PAGE_SIZE) as usize;
        let frame = match cached.get(page_index) {
            Some(&frame) => frame,
            None => space.translate(current).ok_or(Error::Fault)?.phys & !(PAGE_SIZE - 1),
        };
        visit(
            phys_to_virt(frame + (current & (PAGE_SIZE - 1))),
            offset,
            piece,
        );
        offset += piece;
    }
    Ok(())
}

/// Copies `out.len()` bytes from user `address` in `space`.
pub fn read(space: &AddressSpace, address: u64, out: &mut [u8]) -> Result<(), Error> {
    for_each_piece(
        space,
        address,
        out.len(),
        Access::Read,
        |kernel, offset, piece| {
            // SAFETY: `kernel` is the direct-map address of `piece` bytes of a mapped user page
            // (checked above); `out[offset..offset + piece]` is in bounds.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    kernel as *const u8,
                    out.as_mut_ptr().add(offset),
                    piece,
                )
            }
        },
    )
}

/// Copies `data` to user `address` in `space`.
pub fn write(space: &AddressSpace, address: u64, data: &[u8]) -> Result<(), Error> {
    for_each_piece(
        space,
        address,
        data.len(),
        Access::Write,
        |kernel, offset, piece| {
            // SAFETY: as in `read`, with the page checked writable.
            unsafe {
                core::ptr::copy_nonoverlapping(data.as_ptr().add(offset), kernel as *mut u8, piece)
            }
        },
    )
}

/// Copies `data` to user `address` in `space` even into read-only pages (program loading).
pub fn fill(space: &AddressSpace, address: u64, data: &[u8]) -> Result<(), Error> {
    for_each_piece(
        space,
        address,
        data.len(),
        Access::Fill,
        |kernel, offset, piece| {
            // SAFETY: as in `read`; the pages are user pages of `space`, reached through the
            // direct map, so their read-only user mapping does not apply to the kernel.
            unsafe {
                core::ptr::copy_nonoverlapping(data.as_ptr().add(offset), kernel as *mut u8, piece)
            }
        },
    )
}

/// Checks that `[address, address + len)` is accessible as `access`, without copying.
pub fn check(space: &AddressSpace, address: u64, len: usize, access: Access) -> Result<(), Error> {
    for_each_piece(space, address, len, access, |_, _, _| {})
}

/// Reads a plain-old-data value (`T` must be valid for any bit pattern: integers, the ABI's
/// `#[repr(C)]` structs of integers).
pub fn read_value<T: Copy + Default>(space: &AddressSpace, address: u64) -> Result<T, Error> {
    let mut value = T::default();
    // SAFETY: `value` is a plain `T`, viewed as its bytes for the copy; callers only use
    // types valid for every bit pattern.
    let bytes = unsafe {
        core::slice::from_raw_parts_mut(&mut value as *mut T as *mut u8, core::mem::size_of::<T>())
    };
    read(space, address, bytes)?;
    Ok(value)
}

/// Writes a plain-old-data value.
pub fn write_value<T: Copy>(space: &AddressSpace, address: u64, value: &T) -> Result<(), Error> {
    // SAFETY: viewing a `Copy` value as bytes for the copy.
    let bytes = unsafe {
        core::slice::from_raw_parts(value as *const T as *const u8, core::mem::size_of::<T>())
    };
    write(space, address, bytes)
}

/// Copies `len` bytes between two address spaces (grants), through a small bounce buffer.
pub fn copy_between(
    from: &AddressSpace,
    from_address: u64,
    to: &AddressSpace,
    to_address: u64,
    len: usize,
) -> Result<(), Error> {
    check(from, from_address, len, Access::Read)?;
    check(to, to_address, len, Access::Write)?;
    let mut buffer = [0u8; 512];
    let mut done = 0;
    while done < len {
        let chunk = buffer.len().min(len - done);
        read(from, from_address + done as u64, &mut buffer[..chunk])?;
        write(to, to_address + done as u64, &buffer[..chunk])?;
        done += chunk;
    }
    Ok(())
}
