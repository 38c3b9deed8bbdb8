//! IPC message copies through each thread's remembered buffer translation
//! (`vigil_kcore::buffer_translation`): a round trip between threads whose buffers stay put
//! copies its messages straight through the direct map, without a page walk.
//!
//! A miss (first use, another buffer, a buffer across a page boundary, a space that changed)
//! copies through `usercopy` as before — so a missing page fails the same way, is recorded
//! the same way and still ends in the VM server — and then remembers the page.

use crate::arch::paging::{phys_to_virt, AddressSpace, PAGE_SIZE};
use crate::usercopy::{self, Access};
use vigil_abi::user_memory::UserPtr;
use vigil_abi::{Error, Message};
use vigil_kcore::buffer_translation::BufferTranslation;

const MESSAGE_BYTES: usize = core::mem::size_of::<Message>();

/// Reads the message at `address` in `space`; with `Access::Write` the buffer must also
/// be writable (a `SendReceive` buffer, where the reply lands).
#[inline]
pub fn read(
    space: &AddressSpace,
    remembered: &mut BufferTranslation,
    address: UserPtr<Message>,
    access: Access,
) -> Result<Message, Error> {
    let at = address.address();
    if let Some(phys) = remembered.lookup(space.generation(), at, MESSAGE_BYTES, access) {
        // SAFETY: `phys` is the physical address of a user page of `space` that allowed
        // `access` (and every byte of the message lies in it), unchanged since then
        // (same generation); the direct map covers all physical memory, and any bit
        // pattern is a valid `Message`.
        return Ok(unsafe { (phys_to_virt(phys.get()) as *const Message).read_unaligned() });
    }
    let message = match access {
        Access::Write => usercopy::read_value_writable(space, address)?,
        Access::Read | Access::Fill => usercopy::read_value(space, address)?,
    };
    remember(space, remembered, at);
    Ok(message)
}

/// Writes `message` at `address` in `space` (a writable user buffer).
#[inline]
pub fn write(
    space: &AddressSpace,
    remembered: &mut BufferTranslation,
    address: UserPtr<Message>,
    message: &Message,
) -> Result<(), Error> {
    let at = address.address();
    if let Some(phys) = remembered.lookup(space.generation(), at, MESSAGE_BYTES, Access::Write) {
        // SAFETY: as in `read`, for a page that allowed writes.
        unsafe { (phys_to_virt(phys.get()) as *mut Message).write_unaligned(*message) };
        return Ok(());
    }
    usercopy::write_value(space, address, message)?;
    remember(space, remembered, at);
    Ok(())
}

/// Checks that the buffer at `address` is writable, without copying.
#[inline]
pub fn check_writable(
    space: &AddressSpace,
    remembered: &mut BufferTranslation,
    address: UserPtr<Message>,
) -> Result<(), Error> {
    let at = address.address();
    if remembered
        .lookup(space.generation(), at, MESSAGE_BYTES, Access::Write)
        .is_some()
    {
        return Ok(());
    }
    usercopy::check(space, address.as_bytes(), Access::Write)?;
    remember(space, remembered, at);
    Ok(())
}

/// Remembers the page of `at` after a successful copy (one walk, on a miss only).
#[cold]
fn remember(space: &AddressSpace, remembered: &mut BufferTranslation, at: u64) {
    if let Some(translation) = space.translate(at & !(PAGE_SIZE - 1)) {
        remembered.remember(space.generation(), at, &translation);
    }
}
