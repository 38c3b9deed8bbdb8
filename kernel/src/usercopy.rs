//! Copying to and from user memory by walking the owner's page tables through the direct map.
//!
//! Addresses arrive as `UserPtr` / `UserSlice`, already checked for alignment, overflow
//! and the user range at the system-call boundary. What can change between calls is
//! checked on every access (`vigil_kcore::usercopy`): that each page is mapped, belongs to
//! user space and (for writes) is writable, failing with `Error::Fault` otherwise. Because
//! the copy goes through the direct map, the kernel can reach any process's memory — the
//! address space need not be loaded — and never touches user addresses directly, so SMAP
//! stays on and a bad pointer can never fault inside the kernel.
//!
//! A copy that fails on a page that is simply not there yet (a demand-zero heap page, a
//! stack page VM has not grown) records it as the [`MissingPage`] of the current system
//! call, so the system-call layer can suspend the call, ask the VM server for the page and
//! run the call again (`Kernel::suspend_for_vm`). Only the last failure counts: it is the one
//! whose `Fault` the call returns. The record lives in two atomics, not in `Kernel`, because
//! the copies only see an address space; the kernel runs on one CPU under its lock, so no
//! two calls ever share it.

use crate::arch::paging::{phys_to_virt, AddressSpace, PAGE_SIZE};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use vigil_abi::user_memory::{Pod, UserPtr, UserSlice};
use vigil_abi::Error;
pub use vigil_kcore::usercopy::Access;
use vigil_kcore::usercopy::UserFault;

/// A page a copy needed that is not mapped at all (not one mapped without the access).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MissingPage {
    /// The address space it is missing from (compare with `core::ptr::eq`).
    space: *const AddressSpace,
    /// The page's address.
    pub page: u64,
    /// Whether the copy would have written it.
    pub write: bool,
}

impl MissingPage {
    /// Whether the page is missing from `space`.
    pub fn is_in(&self, space: &AddressSpace) -> bool {
        core::ptr::eq(self.space, space)
    }
}

/// The address space of the last failed copy (0: none, or the failure was not a missing
/// page) and its page, with bit 0 set for a write.
static MISSING_SPACE: AtomicUsize = AtomicUsize::new(0);
static MISSING_PAGE: AtomicU64 = AtomicU64::new(0);

/// Forgets the last failure: called when a system call starts.
#[inline(always)]
pub fn forget_missing_page() {
    MISSING_SPACE.store(0, Ordering::Relaxed);
}

/// The page whose absence made the last failed copy fail, if that was the reason.
pub fn missing_page() -> Option<MissingPage> {
    let space = MISSING_SPACE.load(Ordering::Relaxed);
    if space == 0 {
        return None;
    }
    let word = MISSING_PAGE.load(Ordering::Relaxed);
    Some(MissingPage {
        space: space as *const AddressSpace,
        page: word & !(PAGE_SIZE - 1),
        write: word & 1 != 0,
    })
}

/// Records why a copy in `space` as `access` failed (the missing page, if that was why)
/// and returns the caller's error.
#[cold]
fn note_failure(space: &AddressSpace, fault: UserFault, access: Access) -> Error {
    match fault {
        UserFault::Missing(page) => {
            MISSING_PAGE.store(page | u64::from(access == Access::Write), Ordering::Relaxed);
            MISSING_SPACE.store(space as *const AddressSpace as usize, Ordering::Relaxed);
        }
        UserFault::NotUser | UserFault::Denied(_) => forget_missing_page(),
    }
    Error::from(fault)
}

/// Checks that `[address, address + len)` is user memory and returns the kernel (direct
/// map) address of each piece, page by page, to `visit(kernel_address, offset, piece_len)`.
/// The check (every page before any piece, one walk per page for the first four) is
/// `vigil_kcore::usercopy::for_each_piece`; this only moves its physical addresses into
/// the direct map.
fn for_each_piece(
    space: &AddressSpace,
    address: u64,
    len: usize,
    access: Access,
    mut visit: impl FnMut(u64, usize, usize),
) -> Result<(), Error> {
    vigil_kcore::usercopy::for_each_piece(
        space,
        address,
        len,
        access,
        move |phys, offset, piece| visit(phys_to_virt(phys.get()), offset, piece),
    )
    .map_err(|fault| note_failure(space, fault, access))
}

/// Copies `source` (exactly `out.len()` bytes) from user memory in `space` into `out`.
pub fn read(space: &AddressSpace, source: UserSlice<u8>, out: &mut [u8]) -> Result<(), Error> {
    read_checked(space, source, out, Access::Read)
}

/// `read`, with every page also checked writable (`Access::Write`): one walk for a buffer
/// the kernel reads now and writes later.
#[inline(always)]
fn read_checked(
    space: &AddressSpace,
    source: UserSlice<u8>,
    out: &mut [u8],
    access: Access,
) -> Result<(), Error> {
    debug_assert_eq!(source.len(), out.len());
    let len = source.len().min(out.len());
    for_each_piece(
        space,
        source.address(),
        len,
        access,
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

/// Copies `data` into `destination` (exactly `data.len()` bytes) in `space`.
pub fn write(space: &AddressSpace, destination: UserSlice<u8>, data: &[u8]) -> Result<(), Error> {
    copy_in(space, destination, data, Access::Write)
}

/// Copies `data` to `destination` in `space` even into read-only pages (program loading).
pub fn fill(space: &AddressSpace, destination: UserSlice<u8>, data: &[u8]) -> Result<(), Error> {
    copy_in(space, destination, data, Access::Fill)
}

#[inline(always)]
fn copy_in(
    space: &AddressSpace,
    destination: UserSlice<u8>,
    data: &[u8],
    access: Access,
) -> Result<(), Error> {
    debug_assert_eq!(destination.len(), data.len());
    let len = destination.len().min(data.len());
    for_each_piece(
        space,
        destination.address(),
        len,
        access,
        |kernel, offset, piece| {
            // SAFETY: as in `read`, with the page checked writable (or, for `Fill`, a user
            // page of `space` reached through the direct map, so its read-only user mapping
            // does not apply to the kernel).
            unsafe {
                core::ptr::copy_nonoverlapping(data.as_ptr().add(offset), kernel as *mut u8, piece)
            }
        },
    )
}

/// Checks that `range` is accessible as `access`, without copying.
pub fn check(space: &AddressSpace, range: UserSlice<u8>, access: Access) -> Result<(), Error> {
    vigil_kcore::usercopy::check(space, range.address(), range.len(), access)
        .map_err(|fault| note_failure(space, fault, access))
}

/// Reads one plain-old-data value.
pub fn read_value<T: Pod>(space: &AddressSpace, source: UserPtr<T>) -> Result<T, Error> {
    read_value_as(space, source, Access::Read)
}

/// Reads one plain-old-data value from memory that must also be writable.
pub fn read_value_writable<T: Pod>(space: &AddressSpace, source: UserPtr<T>) -> Result<T, Error> {
    read_value_as(space, source, Access::Write)
}

#[inline(always)]
fn read_value_as<T: Pod>(
    space: &AddressSpace,
    source: UserPtr<T>,
    access: Access,
) -> Result<T, Error> {
    let mut value = core::mem::MaybeUninit::<T>::zeroed();
    // SAFETY: the zeroed bytes of a `Pod` value (no padding) are initialised `u8`s; the
    // slice covers exactly the value and lives no longer than `value`.
    let bytes = unsafe {
        core::slice::from_raw_parts_mut(value.as_mut_ptr() as *mut u8, core::mem::size_of::<T>())
    };
    read_checked(space, source.as_bytes(), bytes, access)?;
    // SAFETY: `Pod` types are valid for every bit pattern, and every byte is initialised.
    Ok(unsafe { value.assume_init() })
}

/// Writes one plain-old-data value.
pub fn write_value<T: Pod>(
    space: &AddressSpace,
    destination: UserPtr<T>,
    value: &T,
) -> Result<(), Error> {
    write(space, destination.as_bytes(), pod_bytes(value))
}

/// The bytes of a plain-old-data value.
#[inline(always)]
pub fn pod_bytes<T: Pod>(value: &T) -> &[u8] {
    // SAFETY: `Pod` types have no padding (checked in crates/abi), so every byte of the
    // value is initialised; the slice borrows `value`.
    unsafe {
        core::slice::from_raw_parts(value as *const T as *const u8, core::mem::size_of::<T>())
    }
}

/// Copies between two address spaces (grants), through a small bounce buffer; both ranges
/// have the same length.
pub fn copy_between(
    from: &AddressSpace,
    source: UserSlice<u8>,
    to: &AddressSpace,
    destination: UserSlice<u8>,
) -> Result<(), Error> {
    debug_assert_eq!(source.len(), destination.len());
    let len = source.len().min(destination.len());
    check(from, source, Access::Read)?;
    check(to, destination, Access::Write)?;
    let mut buffer = [0u8; 512];
    let mut done = 0;
    while done < len {
        let chunk = buffer.len().min(len - done);
        let (Some(piece_from), Some(piece_to)) =
            (source.sub(done, chunk), destination.sub(done, chunk))
        else {
            return Err(Error::Fault);
        };
        read(from, piece_from, &mut buffer[..chunk])?;
        write(to, piece_to, &buffer[..chunk])?;
        done += chunk;
    }
    Ok(())
}
