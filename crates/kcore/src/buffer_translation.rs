//! A thread's message buffer, translated once: the frame behind the page its last IPC
//! message buffer lay in, kept with the address space's generation so a round trip walks no
//! page tables while nothing was remapped.
//!
//! The kernel keeps one [`BufferTranslation`] per thread. A copy asks it first
//! ([`BufferTranslation::lookup`]): it answers only for a range inside the remembered page,
//! for an access the page allowed, while the space's generation (which changes with every
//! map, protect and unmap, and is never the same for two spaces) is the one it was
//! remembered under. Anything else is a miss, and the copy walks the tables as before and
//! remembers the page it found ([`BufferTranslation::remember`]) — so a missing page still
//! fails through the walk and still ends in the VM server.

use crate::paging::{Translation, PAGE_SIZE};
use crate::phys::{Frame, PhysAddr};
use crate::usercopy::{allows, Access};

/// One remembered page translation (none at first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferTranslation {
    /// The user page (0: nothing remembered; page 0 is never a user page).
    page: u64,
    frame: Frame,
    generation: u64,
    writable: bool,
}

impl BufferTranslation {
    pub const NONE: BufferTranslation = BufferTranslation {
        page: 0,
        frame: Frame::FIRST,
        generation: 0,
        writable: false,
    };

    /// The physical address of `[address, address + len)` if it lies in the remembered page,
    /// the page allowed `access` and the space is still at `generation`.
    #[inline]
    pub fn lookup(
        &self,
        generation: u64,
        address: u64,
        len: usize,
        access: Access,
    ) -> Option<PhysAddr> {
        let page = address & !(PAGE_SIZE - 1);
        let fits = (address - page) + len as u64 <= PAGE_SIZE;
        let allowed = match access {
            Access::Read => true,
            Access::Write => self.writable,
            Access::Fill => false,
        };
        (self.page != 0 && page == self.page && fits && allowed && generation == self.generation)
            .then(|| self.frame.with_offset(address))
    }

    /// Remembers `translation`, the walk of the page holding `address` (made at the page's
    /// first address) in a space at `generation`, if it is a user page (the kind of page a
    /// lookup may answer for).
    pub fn remember(&mut self, generation: u64, address: u64, translation: &Translation) {
        if !allows(translation, Access::Read) {
            return;
        }
        let page = address & !(PAGE_SIZE - 1);
        *self = BufferTranslation {
            page,
            frame: translation.phys.frame(),
            generation,
            writable: translation.writable(),
        };
    }
}

impl Default for BufferTranslation {
    fn default() -> Self {
        Self::NONE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::{flags, PageSize};

    fn translation(frame: u64, flags: u64) -> Translation {
        Translation {
            phys: PhysAddr::new(frame).unwrap(),
            flags,
            size: PageSize::Size4K,
        }
    }

    #[test]
    fn answers_only_inside_the_page_for_an_allowed_access_at_the_same_generation() {
        let mut cache = BufferTranslation::NONE;
        assert_eq!(cache.lookup(0, 0x40_0000, 64, Access::Read), None);
        let writable = translation(0x12_3000, flags::USER | flags::WRITABLE);
        cache.remember(7, 0x40_0f00, &writable);
        let phys = |a| Some(PhysAddr::new(a).unwrap());
        assert_eq!(
            cache.lookup(7, 0x40_0f00, 64, Access::Read),
            phys(0x12_3f00)
        );
        assert_eq!(
            cache.lookup(7, 0x40_0fc0, 64, Access::Write),
            phys(0x12_3fc0)
        );
        // Crosses into the next page, another page, another generation, a fill.
        assert_eq!(cache.lookup(7, 0x40_0fc8, 64, Access::Read), None);
        assert_eq!(cache.lookup(7, 0x40_1000, 64, Access::Read), None);
        assert_eq!(cache.lookup(8, 0x40_0f00, 64, Access::Read), None);
        assert_eq!(cache.lookup(7, 0x40_0f00, 64, Access::Fill), None);
    }

    #[test]
    fn a_read_only_page_answers_reads_only_and_a_kernel_page_is_never_remembered() {
        let mut cache = BufferTranslation::NONE;
        cache.remember(3, 0x50_0010, &translation(0x9000, flags::USER));
        assert!(cache.lookup(3, 0x50_0010, 64, Access::Read).is_some());
        assert_eq!(cache.lookup(3, 0x50_0010, 64, Access::Write), None);
        let before = cache;
        cache.remember(3, 0x60_0000, &translation(0xa000, flags::WRITABLE));
        assert_eq!(cache, before, "a supervisor page replaced the entry");
    }
}
