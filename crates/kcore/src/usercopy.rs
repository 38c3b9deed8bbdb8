//! The usercopy range and permission check: may the kernel access this user range, and where is it?
//!
//! `for_each_piece` checks `[address, address + len)` against `USER_END` (with overflow) and
//! then every page it touches — mapped, a USER page, and writable for `Access::Write` —
//! before reporting any piece, so a failing copy has no partial effect. It then hands the
//! physical address of each piece (at most one page) to the caller, which does the copy.
//! The translations of the first `CACHED_PAGES` pages are kept from the check, so a small
//! copy (every IPC message) walks the tables once per page; longer ones walk again for the
//! pages after those. `check` is the first half alone, for a range the kernel checks before
//! copying to it piecemeal. Generic over the translator, so the kernel's page walk is inlined.

use crate::paging::{Translation, PAGE_SIZE};
use crate::phys::{Frame, PhysAddr};
use vigil_abi::layout::USER_END;
use vigil_abi::Error;

/// Why a user range failed the check; every one is `Error::Fault` to the caller, but the
/// kernel suspends a system call for VM on a `Missing` page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserFault {
    /// The range is not user memory: past `USER_END`, or its end wraps.
    NotUser,
    /// The first failing page of the range is not mapped at all.
    Missing(u64),
    /// The first failing page is mapped, but not as a user page allowing the access.
    Denied(u64),
}

impl From<UserFault> for Error {
    fn from(_: UserFault) -> Error {
        Error::Fault
    }
}

/// Access the kernel needs on a user page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    /// The kernel filling a process's pages whatever their write permission (loading a
    /// program's read-only segments); the pages must still be user pages.
    Fill,
}

/// An address space as the check sees it: one page walk per call.
pub trait Translate {
    fn translate(&self, virt: u64) -> Option<Translation>;
}

/// Pages whose translation the check keeps for the copy.
pub const CACHED_PAGES: usize = 4;

/// Whether a page translated as `translation` allows `access`.
#[inline]
pub fn allows(translation: &Translation, access: Access) -> bool {
    translation.user() && (access != Access::Write || translation.writable())
}

/// Checks that `[address, address + len)` is user memory allowing `access`, one walk per
/// page, without copying: the first failure otherwise. The same check as `for_each_piece`
/// makes before its first piece.
#[inline]
pub fn check<T: Translate + ?Sized>(
    space: &T,
    address: u64,
    len: usize,
    access: Access,
) -> Result<(), UserFault> {
    let end = address.checked_add(len as u64).ok_or(UserFault::NotUser)?;
    if end > USER_END {
        return Err(UserFault::NotUser);
    }
    let mut page = address & !(PAGE_SIZE - 1);
    // An empty range touches no page (see `for_each_piece`).
    while page < end && len > 0 {
        let translation = space.translate(page).ok_or(UserFault::Missing(page))?;
        if !allows(&translation, access) {
            return Err(UserFault::Denied(page));
        }
        page += PAGE_SIZE;
    }
    Ok(())
}

/// Checks that `[address, address + len)` is user memory allowing `access` and returns the
/// physical address of each piece, page by page, to `visit(phys, offset, piece_len)`;
/// the first failure (and no visit) otherwise.
///
/// A zero-length range still has its first page checked when `address` is not page
/// aligned (the page `address` lies in), and none when it is.
pub fn for_each_piece<T: Translate + ?Sized>(
    space: &T,
    address: u64,
    len: usize,
    access: Access,
    mut visit: impl FnMut(PhysAddr, usize, usize),
) -> Result<(), UserFault> {
    let end = address.checked_add(len as u64).ok_or(UserFault::NotUser)?;
    if end > USER_END {
        return Err(UserFault::NotUser);
    }
    if len == 0 {
        // Nothing to copy touches no page: an empty slice (Rust's are often dangling, at
        // address 1) is never a fault.
        return Ok(());
    }
    // Check every page before touching any, keeping the first few translations for the
    // copy (the same loop as `check`).
    let mut cached = [Frame::FIRST; CACHED_PAGES];
    let first_page = address & !(PAGE_SIZE - 1);
    let mut page = first_page;
    let mut index = 0;
    while page < end {
        let translation = space.translate(page).ok_or(UserFault::Missing(page))?;
        if !allows(&translation, access) {
            return Err(UserFault::Denied(page));
        }
        if index < CACHED_PAGES {
            cached[index] = translation.phys.frame();
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
            // Checked above, so never `None`; were it, pieces were already visited, so it
            // must not read as a page to fetch and retry (`Denied`, not `Missing`).
            None => space
                .translate(current)
                .ok_or(UserFault::Denied(current & !(PAGE_SIZE - 1)))?
                .phys
                .frame(),
        };
        visit(frame.with_offset(current), offset, piece);
        offset += piece;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::fake::FakeMemory;
    use crate::paging::{flags, PageSize, PageTables};
    use core::cell::Cell;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    /// The real page tables over the fake memory, counting walks.
    struct Space<'a> {
        tables: &'a PageTables,
        memory: &'a FakeMemory,
        walks: Cell<usize>,
    }

    impl Translate for Space<'_> {
        fn translate(&self, virt: u64) -> Option<Translation> {
            self.walks.set(self.walks.get() + 1);
            self.tables.translate(&self.memory, virt)
        }
    }

    /// A space built from `pages` (virtual page → leaf flags), and the frame of each page.
    fn build(fake: &FakeMemory, pages: &BTreeMap<u64, u64>) -> (PageTables, BTreeMap<u64, u64>) {
        let mut tables = PageTables::new(&mut &*fake, &mut || fake.alloc()).unwrap();
        let mut frames = BTreeMap::new();
        for (&virt, &leaf) in pages {
            let frame = fake.alloc().unwrap();
            tables
                .map(
                    &mut &*fake,
                    virt,
                    frame.start(),
                    PageSize::Size4K,
                    leaf,
                    &mut || fake.alloc(),
                )
                .unwrap();
            frames.insert(virt, frame.address());
        }
        (tables, frames)
    }

    type Pieces = Vec<(u64, usize, usize)>;

    fn run(
        space: &Space<'_>,
        address: u64,
        len: usize,
        access: Access,
    ) -> (Result<(), Error>, Pieces) {
        let mut pieces = Vec::new();
        let result = for_each_piece(space, address, len, access, |phys, offset, piece| {
            pieces.push((phys.get(), offset, piece))
        });
        (result.map_err(Error::from), pieces)
    }

    const RW: u64 = flags::USER | flags::WRITABLE;
    const BASE: u64 = 0x40_0000;

    fn fixture(fake: &FakeMemory, pages: &[(u64, u64)]) -> (PageTables, BTreeMap<u64, u64>) {
        build(fake, &pages.iter().copied().collect())
    }

    #[test]
    fn a_copy_within_one_page_is_one_piece_and_one_walk() {
        let fake = FakeMemory::new();
        let (tables, frames) = fixture(&fake, &[(BASE, RW)]);
        let space = Space {
            tables: &tables,
            memory: &fake,
            walks: Cell::new(0),
        };
        let (result, pieces) = run(&space, BASE + 0x10, 64, Access::Write);
        assert_eq!(result, Ok(()));
        assert_eq!(pieces, [(frames[&BASE] + 0x10, 0, 64)]);
        assert_eq!(space.walks.get(), 1);
    }

    #[test]
    fn an_empty_copy_at_an_unmapped_address_touches_no_page() {
        // Rust's empty slices are dangling (address 1, on an unmapped page): copying
        // nothing from one must not fault, and must not walk the page tables.
        let fake = FakeMemory::new();
        let (tables, _) = fixture(&fake, &[(BASE, RW)]);
        let space = Space {
            tables: &tables,
            memory: &fake,
            walks: Cell::new(0),
        };
        let (result, pieces) = run(&space, 1, 0, Access::Write);
        assert_eq!(result, Ok(()));
        assert!(pieces.is_empty());
        assert_eq!(check(&space, 1, 0, Access::Read), Ok(()));
        assert_eq!(check(&space, BASE + 0x1000 + 1, 0, Access::Write), Ok(()));
        assert_eq!(space.walks.get(), 0);
        // One byte there is still a fault.
        assert!(check(&space, 1, 1, Access::Read).is_err());
    }

    #[test]
    fn a_copy_across_pages_is_split_at_each_boundary() {
        let fake = FakeMemory::new();
        let pages: Vec<(u64, u64)> = (0..3).map(|i| (BASE + i * PAGE_SIZE, RW)).collect();
        let (tables, frames) = fixture(&fake, &pages);
        let space = Space {
            tables: &tables,
            memory: &fake,
            walks: Cell::new(0),
        };
        let (result, pieces) = run(&space, BASE + 0xff0, 0x1020, Access::Read);
        assert_eq!(result, Ok(()));
        assert_eq!(
            pieces,
            [
                (frames[&BASE] + 0xff0, 0, 0x10),
                (frames[&(BASE + PAGE_SIZE)], 0x10, 0x1000),
                (frames[&(BASE + 2 * PAGE_SIZE)], 0x1010, 0x10),
            ]
        );
        assert_eq!(space.walks.get(), 3, "one walk per page");
    }

    #[test]
    fn pages_after_the_cached_ones_are_walked_again_for_the_copy() {
        let fake = FakeMemory::new();
        let pages: Vec<(u64, u64)> = (0..6).map(|i| (BASE + i * PAGE_SIZE, RW)).collect();
        let (tables, frames) = fixture(&fake, &pages);
        let space = Space {
            tables: &tables,
            memory: &fake,
            walks: Cell::new(0),
        };
        let (result, pieces) = run(&space, BASE, 6 * PAGE_SIZE as usize, Access::Read);
        assert_eq!(result, Ok(()));
        assert_eq!(pieces.len(), 6);
        for (i, &(phys, offset, piece)) in pieces.iter().enumerate() {
            assert_eq!(phys, frames[&(BASE + i as u64 * PAGE_SIZE)]);
            assert_eq!((offset, piece), (i * 4096, 4096));
        }
        assert_eq!(space.walks.get(), 6 + 2);
    }

    #[test]
    fn permissions_per_access() {
        let fake = FakeMemory::new();
        let read_only = BASE;
        let writable = BASE + PAGE_SIZE;
        let kernel = BASE + 2 * PAGE_SIZE;
        let (tables, _) = fixture(
            &fake,
            &[
                (read_only, flags::USER),
                (writable, RW),
                (kernel, flags::WRITABLE),
            ],
        );
        let space = Space {
            tables: &tables,
            memory: &fake,
            walks: Cell::new(0),
        };
        let ok = |address, access| run(&space, address, 8, access).0.is_ok();
        assert!(ok(read_only, Access::Read));
        assert!(!ok(read_only, Access::Write));
        assert!(
            ok(read_only, Access::Fill),
            "fill ignores the write permission"
        );
        assert!(ok(writable, Access::Write));
        for access in [Access::Read, Access::Write, Access::Fill] {
            assert!(!ok(kernel, access), "{access:?} on a supervisor page");
            assert!(
                !ok(BASE + 3 * PAGE_SIZE, access),
                "{access:?} on an unmapped page"
            );
        }
    }

    #[test]
    fn every_page_is_checked_before_any_piece_is_visited() {
        let fake = FakeMemory::new();
        let (tables, _) = fixture(&fake, &[(BASE, RW), (BASE + PAGE_SIZE, flags::USER)]);
        let space = Space {
            tables: &tables,
            memory: &fake,
            walks: Cell::new(0),
        };
        let (result, pieces) = run(&space, BASE, 2 * PAGE_SIZE as usize, Access::Write);
        assert_eq!(result, Err(Error::Fault));
        assert!(pieces.is_empty());
    }

    #[test]
    fn ranges_past_user_end_or_wrapping_fault_without_a_walk() {
        let fake = FakeMemory::new();
        let last = USER_END - PAGE_SIZE;
        let (tables, frames) = fixture(&fake, &[(last, RW)]);
        let space = Space {
            tables: &tables,
            memory: &fake,
            walks: Cell::new(0),
        };
        // Ending exactly at USER_END is fine.
        let (result, pieces) = run(&space, last, PAGE_SIZE as usize, Access::Write);
        assert_eq!(result, Ok(()));
        assert_eq!(pieces, [(frames[&last], 0, 4096)]);
        space.walks.set(0);
        for (address, len) in [
            (last, 4097),
            (USER_END, 1),
            (u64::MAX, 1),
            (u64::MAX - 4, usize::MAX),
            (0xffff_8000_0000_0000, 16),
        ] {
            assert_eq!(
                run(&space, address, len, Access::Read),
                (Err(Error::Fault), Vec::new())
            );
        }
        assert_eq!(space.walks.get(), 0);
        // Empty at USER_END is still within the user range.
        assert_eq!(run(&space, USER_END, 0, Access::Read), (Ok(()), Vec::new()));
    }

    #[test]
    fn a_failure_names_the_first_failing_page_and_why() {
        let fake = FakeMemory::new();
        let (tables, _) = fixture(&fake, &[(BASE, RW), (BASE + 2 * PAGE_SIZE, flags::USER)]);
        let space = Space {
            tables: &tables,
            memory: &fake,
            walks: Cell::new(0),
        };
        let len = 3 * PAGE_SIZE as usize;
        assert_eq!(
            check(&space, BASE, len, Access::Read),
            Err(UserFault::Missing(BASE + PAGE_SIZE))
        );
        assert_eq!(
            for_each_piece(&space, BASE + 2 * PAGE_SIZE, 8, Access::Write, |_, _, _| {}),
            Err(UserFault::Denied(BASE + 2 * PAGE_SIZE))
        );
        assert_eq!(
            check(&space, USER_END - 8, 16, Access::Read),
            Err(UserFault::NotUser)
        );
        assert_eq!(Error::from(UserFault::Missing(0)), Error::Fault);
    }

    #[test]
    fn zero_length_checks_no_page_aligned_or_not() {
        let fake = FakeMemory::new();
        let (tables, _) = fixture(&fake, &[]);
        let space = Space {
            tables: &tables,
            memory: &fake,
            walks: Cell::new(0),
        };
        assert_eq!(run(&space, BASE, 0, Access::Read), (Ok(()), Vec::new()));
        assert_eq!(run(&space, BASE + 1, 0, Access::Read), (Ok(()), Vec::new()));
        assert_eq!(
            run(&space, USER_END, 0, Access::Read).0,
            Ok(()),
            "the end of the user half itself is allowed for an empty range"
        );
        assert_eq!(
            run(&space, USER_END + 1, 0, Access::Read).0,
            Err(Error::Fault),
            "an empty range past the user half is still not user memory"
        );
    }

    // Property test: random spaces and ranges against a model of the page flags.

    /// Windows of pages the spaces are made of: low memory and the top of the user half.
    const WINDOWS: [u64; 2] = [BASE, USER_END - 8 * PAGE_SIZE];

    fn page_flags() -> impl Strategy<Value = Option<u64>> {
        prop_oneof![
            1 => Just(None),
            1 => Just(Some(0)),
            2 => Just(Some(flags::USER)),
            4 => Just(Some(RW)),
            1 => Just(Some(flags::WRITABLE)),
        ]
    }

    fn access() -> impl Strategy<Value = Access> {
        prop_oneof![Just(Access::Read), Just(Access::Write), Just(Access::Fill)]
    }

    /// (address, len): mostly around the windows, some at the very top of the address
    /// space (so `address + len` wraps) or straddling `USER_END`.
    fn range() -> impl Strategy<Value = (u64, usize)> {
        let len = prop_oneof![4 => 0usize..9000, 1 => 0usize..8 * 4096];
        prop_oneof![
            6 => (0..WINDOWS.len(), -4096i64..9 * 4096, len.clone())
                .prop_map(|(w, offset, len)| (WINDOWS[w].wrapping_add_signed(offset), len)),
            1 => (0u64..8192, len.clone()).prop_map(|(back, len)| (u64::MAX - back, len)),
            1 => (0u64..8192, any::<usize>()).prop_map(|(back, len)| (u64::MAX - back, len)),
            1 => (0u64..8192, len).prop_map(|(back, len)| (USER_END - back, len)),
        ]
    }

    /// What `for_each_piece` should do, from the flags alone.
    fn expected(
        pages: &BTreeMap<u64, u64>,
        frames: &BTreeMap<u64, u64>,
        address: u64,
        len: usize,
        access: Access,
    ) -> (Result<(), Error>, Pieces) {
        let Some(end) = address.checked_add(len as u64) else {
            return (Err(Error::Fault), Vec::new());
        };
        if end > USER_END {
            return (Err(Error::Fault), Vec::new());
        }
        if len == 0 {
            // Nothing to copy touches no page.
            return (Ok(()), Vec::new());
        }
        let first = address & !(PAGE_SIZE - 1);
        let allowed = (first..end).step_by(PAGE_SIZE as usize).all(|page| {
            pages.get(&page).is_some_and(|&leaf| {
                leaf & flags::USER != 0 && (access != Access::Write || leaf & flags::WRITABLE != 0)
            })
        });
        if !allowed {
            return (Err(Error::Fault), Vec::new());
        }
        // Byte by byte, merged into runs of consecutive physical addresses within a page.
        let mut pieces: Pieces = Vec::new();
        for offset in 0..len {
            let virt = address + offset as u64;
            let page = virt & !(PAGE_SIZE - 1);
            let phys = frames[&page] + (virt - page);
            match pieces.last_mut() {
                Some((start, _, n))
                    if virt & (PAGE_SIZE - 1) != 0 && *start + *n as u64 == phys =>
                {
                    *n += 1
                }
                _ => pieces.push((phys, offset, 1)),
            }
        }
        (Ok(()), pieces)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn range_checks_match_a_model(
            layout in proptest::collection::vec(page_flags(), 2 * 9),
            ranges in proptest::collection::vec((range(), access()), 1..16),
        ) {
            let mut pages = BTreeMap::new();
            for (i, leaf) in layout.iter().enumerate() {
                let window = WINDOWS[i / 9];
                let virt = window + (i % 9) as u64 * PAGE_SIZE;
                if let (Some(leaf), true) = (leaf, virt < USER_END) {
                    pages.insert(virt, *leaf);
                }
            }
            let fake = FakeMemory::new();
            let (tables, frames) = build(&fake, &pages);
            let space = Space { tables: &tables, memory: &fake, walks: Cell::new(0) };
            for ((address, len), access) in ranges {
                // Keep the byte-by-byte model cheap: huge lengths only where they fault early.
                let len = if address.checked_add(len as u64).is_some_and(|end| end <= USER_END) {
                    len.min(16 * 4096)
                } else {
                    len
                };
                space.walks.set(0);
                let actual = run(&space, address, len, access);
                let model = expected(&pages, &frames, address, len, access);
                prop_assert_eq!(&actual, &model, "{:#x}+{:#x} {:?}", address, len, access);
                let touched = match address.checked_add(len as u64) {
                    Some(_) if len == 0 => 0,
                    Some(end) => end.div_ceil(PAGE_SIZE) - address / PAGE_SIZE,
                    None => 0,
                };
                if actual.0.is_ok() {
                    let rewalks = actual.1.len().saturating_sub(CACHED_PAGES) as u64;
                    prop_assert_eq!(space.walks.get() as u64, touched + rewalks);
                }
                // `check` agrees, walking each page once.
                space.walks.set(0);
                prop_assert_eq!(check(&space, address, len, access).map_err(Error::from), model.0);
                if model.0.is_ok() {
                    prop_assert_eq!(space.walks.get() as u64, touched);
                }
            }
        }
    }
}
