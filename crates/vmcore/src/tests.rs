//! Unit tests: one or a few per rule of the crate documentation.

use std::string::ToString;
use std::vec;

use vigil_abi::layout::{
    HEAP_BASE, HEAP_MAX, INITIAL_STACK_BYTES, MAPPING_AREA_END, MAPPING_AREA_START, STACK_AREA_TOP,
    STACK_REGION_SIZE, USER_END, USER_IMAGE_MIN,
};

use crate::*;

const P: Pid = 7;
const Q: Pid = 8;
const PAGE: u64 = PAGE_SIZE;

fn vm() -> Vm {
    let mut vm = Vm::new(64);
    vm.create_process(P).unwrap();
    vm.create_process(Q).unwrap();
    vm
}

/// Faults and commits: what a glue whose kernel always succeeds does.
fn touch(vm: &mut Vm, pid: Pid, address: u64, access: Access) -> Result<Decision, VmError> {
    let decision = vm.fault(pid, address, access)?;
    if let Decision::MapZero { page, .. }
    | Decision::MapZeroShared { page, .. }
    | Decision::MapShared { page, .. } = decision
    {
        vm.mapped(pid, page)?;
    }
    Ok(decision)
}

fn stats(vm: &Vm, pid: Pid) -> MemoryStats {
    vm.process(pid).unwrap().stats()
}

fn invalid(reason: InvalidReason) -> Result<Decision, VmError> {
    Ok(Decision::Invalid(reason))
}

#[test]
fn heap_is_demand_zero_up_to_its_size() {
    let mut vm = vm();
    assert_eq!(
        touch(&mut vm, P, HEAP_BASE, Access::Read),
        invalid(InvalidReason::NotMapped)
    );
    vm.set_heap_size(P, 2 * PAGE).unwrap();
    assert_eq!(
        touch(&mut vm, P, HEAP_BASE + PAGE + 5, Access::Write),
        Ok(Decision::MapZero {
            page: HEAP_BASE + PAGE,
            writable: true
        })
    );
    assert_eq!(
        touch(&mut vm, P, HEAP_BASE + 2 * PAGE, Access::Read),
        invalid(InvalidReason::NotMapped)
    );
    let stats = stats(&vm, P);
    assert_eq!(stats.resident_pages, 1);
    assert_eq!(stats.demand_zero_faults, 1);
    assert_eq!(stats.invalid_faults, 2);
    assert_eq!(stats.virtual_bytes, 2 * PAGE);
}

#[test]
fn shrinking_the_heap_releases_its_pages() {
    let mut vm = vm();
    vm.set_heap_size(P, 4 * PAGE).unwrap();
    touch(&mut vm, P, HEAP_BASE, Access::Write).unwrap();
    touch(&mut vm, P, HEAP_BASE + 3 * PAGE, Access::Write).unwrap();
    let released = vm.set_heap_size(P, PAGE).unwrap();
    assert_eq!(released.private_pages, vec![HEAP_BASE + 3 * PAGE]);
    assert_eq!(stats(&vm, P).resident_pages, 1);
    assert_eq!(
        vm.set_heap_size(P, HEAP_MAX + PAGE),
        Err(VmError::HeapTooLarge {
            bytes: HEAP_MAX + PAGE
        })
    );
    assert_eq!(
        vm.set_heap_size(P, 100),
        Err(VmError::Misaligned { value: 100 })
    );
    // Larger than the whole limit (64 pages): refused as out of memory.
    assert!(matches!(
        vm.set_heap_size(P, 65 * PAGE),
        Err(VmError::OutOfMemory { .. })
    ));
}

#[test]
fn a_started_thread_has_its_initial_stack_resident() {
    let mut vm = vm();
    vm.thread_started(P, 0).unwrap();
    let initial = INITIAL_STACK_BYTES / PAGE;
    assert_eq!(stats(&vm, P).resident_pages, initial);
    assert_eq!(stats(&vm, P).virtual_bytes, STACK_REGION_SIZE);
    assert_eq!(
        touch(&mut vm, P, STACK_AREA_TOP - 8, Access::Write),
        invalid(InvalidReason::Protection)
    );
    assert_eq!(
        vm.thread_started(P, 0),
        Err(VmError::ThreadExists { pid: P, thread: 0 })
    );
    assert_eq!(
        vm.thread_started(P, MAX_THREADS as u32),
        Err(VmError::ThreadOutOfRange {
            thread: MAX_THREADS as u32
        })
    );
}

#[test]
fn stacks_grow_down_to_the_guard_page() {
    let mut vm = vm();
    vm.thread_started(P, 1).unwrap();
    let base = STACK_AREA_TOP - 2 * STACK_REGION_SIZE;
    let below_initial = STACK_AREA_TOP - STACK_REGION_SIZE - INITIAL_STACK_BYTES - 1;
    assert_eq!(
        touch(&mut vm, P, below_initial, Access::Write),
        Ok(Decision::MapZero {
            page: below_initial & !(PAGE - 1),
            writable: true
        })
    );
    assert_eq!(
        touch(&mut vm, P, base + PAGE, Access::Read),
        Ok(Decision::MapZero {
            page: base + PAGE,
            writable: true
        })
    );
    let overflow = InvalidReason::StackOverflow {
        thread: 1,
        lowest_address: base + PAGE,
    };
    assert_eq!(
        touch(&mut vm, P, base + PAGE - 1, Access::Write),
        invalid(overflow)
    );
    assert_eq!(touch(&mut vm, P, base, Access::Write), invalid(overflow));
    // Below the guard page, in the unused slot 2: the same overflow.
    assert_eq!(
        touch(&mut vm, P, base - 3 * PAGE, Access::Write),
        invalid(overflow)
    );
    assert!(overflow
        .to_string()
        .contains(&std::format!("{:#x}", base + PAGE)));
    // Slot 0, unused and with no stack above it: nothing there.
    assert_eq!(
        touch(&mut vm, P, STACK_AREA_TOP - 8, Access::Write),
        invalid(InvalidReason::NotMapped)
    );
}

#[test]
fn an_exited_thread_releases_its_stack() {
    let mut vm = vm();
    vm.thread_started(P, 3).unwrap();
    let released = vm.thread_exited(P, 3).unwrap();
    assert_eq!(
        released.private_pages.len() as u64,
        INITIAL_STACK_BYTES / PAGE
    );
    assert_eq!(stats(&vm, P).resident_pages, 0);
    assert_eq!(stats(&vm, P).virtual_bytes, 0);
    assert_eq!(
        vm.thread_exited(P, 3),
        Err(VmError::UnknownThread { pid: P, thread: 3 })
    );
}

#[test]
fn faults_outside_regions_say_where_they_are() {
    let mut vm = vm();
    let cases = [
        (0, InvalidReason::NotMapped),
        (USER_IMAGE_MIN - 1, InvalidReason::NotMapped),
        (USER_IMAGE_MIN, InvalidReason::Image),
        (MAPPING_AREA_START, InvalidReason::NotMapped),
        (USER_END, InvalidReason::NonCanonical),
        (0xffff_7fff_ffff_ffff, InvalidReason::NonCanonical),
        (0xffff_8000_0000_0000, InvalidReason::KernelAddress),
        (u64::MAX, InvalidReason::KernelAddress),
    ];
    for (address, reason) in cases {
        assert_eq!(
            touch(&mut vm, P, address, Access::Read),
            invalid(reason),
            "{address:#x}"
        );
    }
    assert_eq!(stats(&vm, P).invalid_faults, cases.len() as u64);
}

#[test]
fn vm_never_maps_executable_memory() {
    let mut vm = vm();
    vm.set_heap_size(P, PAGE).unwrap();
    assert_eq!(
        touch(&mut vm, P, HEAP_BASE, Access::Execute),
        invalid(InvalidReason::Execute)
    );
    assert_eq!(stats(&vm, P).resident_pages, 0);
}

#[test]
fn anonymous_mappings_are_first_fit_and_keep_their_permission() {
    let mut vm = vm();
    let a = vm.map_anonymous(P, 2 * PAGE, true).unwrap();
    let b = vm.map_anonymous(P, PAGE, false).unwrap();
    assert_eq!(a, MAPPING_AREA_START);
    assert_eq!(b, MAPPING_AREA_START + 2 * PAGE);
    // Each process has its own mapping area.
    assert_eq!(vm.map_anonymous(Q, PAGE, true), Ok(MAPPING_AREA_START));
    assert_eq!(
        touch(&mut vm, P, b, Access::Write),
        invalid(InvalidReason::WriteToReadOnly)
    );
    assert_eq!(
        touch(&mut vm, P, b, Access::Read),
        Ok(Decision::MapZero {
            page: b,
            writable: false
        })
    );
    vm.unmap(P, a, 2 * PAGE).unwrap();
    // The hole is reused by a mapping that fits, skipped by one that does not.
    assert_eq!(vm.map_anonymous(P, 3 * PAGE, true), Ok(b + PAGE));
    assert_eq!(vm.map_anonymous(P, PAGE, true), Ok(a));
    assert_eq!(stats(&vm, P).virtual_bytes, 5 * PAGE);
}

#[test]
fn unmapping_the_middle_splits_a_mapping() {
    let mut vm = vm();
    let base = vm.map_anonymous(P, 4 * PAGE, true).unwrap();
    for page in 0..4 {
        touch(&mut vm, P, base + page * PAGE, Access::Write).unwrap();
    }
    let released = vm.unmap(P, base + PAGE, 2 * PAGE).unwrap();
    assert_eq!(released.private_pages, vec![base + PAGE, base + 2 * PAGE]);
    let mappings: std::vec::Vec<(u64, u64)> = vm
        .process(P)
        .unwrap()
        .mappings()
        .map(|m| (m.base, m.bytes))
        .collect();
    assert_eq!(mappings, vec![(base, PAGE), (base + 3 * PAGE, PAGE)]);
    assert_eq!(
        touch(&mut vm, P, base + PAGE, Access::Read),
        invalid(InvalidReason::NotMapped)
    );
    assert_eq!(stats(&vm, P).resident_pages, 2);
    // A range crossing the hole is not covered by one mapping.
    assert_eq!(
        vm.unmap(P, base, 4 * PAGE),
        Err(VmError::NotMapped {
            address: base,
            length: 4 * PAGE
        })
    );
}

#[test]
fn bad_ranges_are_refused() {
    let mut vm = vm();
    let base = vm.map_anonymous(P, PAGE, true).unwrap();
    let cases = [
        (base + 1, PAGE, VmError::Misaligned { value: base + 1 }),
        (base, 0, VmError::ZeroLength),
        (base, 10, VmError::Misaligned { value: 10 }),
        (
            u64::MAX - PAGE + 1,
            PAGE,
            VmError::WrapAround {
                address: u64::MAX - PAGE + 1,
                length: PAGE,
            },
        ),
        (
            USER_END - PAGE,
            2 * PAGE,
            VmError::KernelSpace {
                address: USER_END - PAGE,
                length: 2 * PAGE,
            },
        ),
        (
            HEAP_BASE,
            PAGE,
            VmError::OutsideMappingArea {
                address: HEAP_BASE,
                length: PAGE,
            },
        ),
        (
            MAPPING_AREA_END - PAGE,
            2 * PAGE,
            VmError::OutsideMappingArea {
                address: MAPPING_AREA_END - PAGE,
                length: 2 * PAGE,
            },
        ),
        (
            base + PAGE,
            PAGE,
            VmError::NotMapped {
                address: base + PAGE,
                length: PAGE,
            },
        ),
    ];
    for (address, length, error) in cases {
        assert_eq!(vm.unmap(P, address, length), Err(error));
    }
    assert_eq!(vm.unmap(99, base, PAGE), Err(VmError::UnknownProcess(99)));
    assert_eq!(vm.map_anonymous(P, 0, true), Err(VmError::ZeroLength));
    assert_eq!(
        vm.map_anonymous(P, 5, true),
        Err(VmError::Misaligned { value: 5 })
    );
    assert_eq!(vm.process(P).unwrap().mappings().count(), 1);
}

#[test]
fn the_mapping_area_can_fill_up() {
    let mut vm = Vm::new(u64::MAX);
    vm.create_process(P).unwrap();
    let area = MAPPING_AREA_END - MAPPING_AREA_START;
    assert_eq!(vm.map_anonymous(P, area, true), Ok(MAPPING_AREA_START));
    assert_eq!(
        vm.map_anonymous(P, PAGE, true),
        Err(VmError::NoSpace { length: PAGE })
    );
    let huge = !(PAGE - 1);
    assert_eq!(
        vm.map_anonymous(Q, huge, true),
        Err(VmError::UnknownProcess(Q))
    );
    vm.create_process(Q).unwrap();
    assert_eq!(
        vm.map_anonymous(Q, huge, true),
        Err(VmError::NoSpace { length: huge })
    );
}

#[test]
fn a_process_has_a_bounded_number_of_mappings() {
    let mut vm = vm();
    for _ in 0..MAX_MAPPINGS_PER_PROCESS {
        vm.map_anonymous(P, 3 * PAGE, true).unwrap();
    }
    assert_eq!(
        vm.map_anonymous(P, PAGE, true),
        Err(VmError::TooManyMappings { pid: P })
    );
    // Splitting would add one more: refused, and nothing changed.
    let first = MAPPING_AREA_START;
    assert_eq!(
        vm.unmap(P, first + PAGE, PAGE),
        Err(VmError::TooManyMappings { pid: P })
    );
    assert_eq!(
        vm.process(P).unwrap().mappings().next().map(|m| m.bytes),
        Some(3 * PAGE)
    );
    // Trimming an end does not add one.
    assert!(vm.unmap(P, first, PAGE).is_ok());
    assert_eq!(
        vm.process(P).unwrap().mappings().count(),
        MAX_MAPPINGS_PER_PROCESS
    );
}

#[test]
fn a_resident_page_is_never_mapped_twice() {
    let mut vm = vm();
    let base = vm.map_anonymous(P, PAGE, true).unwrap();
    touch(&mut vm, P, base, Access::Read).unwrap();
    assert_eq!(
        touch(&mut vm, P, base + 8, Access::Write),
        invalid(InvalidReason::Protection)
    );
    assert_eq!(stats(&vm, P).resident_pages, 1);
}

#[test]
fn only_pages_the_kernel_mapped_are_counted() {
    let mut vm = vm();
    let base = vm.map_anonymous(P, 2 * PAGE, true).unwrap();
    assert_eq!(
        vm.fault(P, base, Access::Write),
        Ok(Decision::MapZero {
            page: base,
            writable: true
        })
    );
    assert_eq!(stats(&vm, P).resident_pages, 0);
    // One decision at a time.
    assert_eq!(
        vm.fault(Q, base, Access::Write),
        Err(VmError::DecisionOutstanding { pid: P, page: base })
    );
    assert_eq!(
        vm.mapped(P, base + PAGE),
        Err(VmError::NoOutstandingDecision {
            pid: P,
            page: base + PAGE
        })
    );
    vm.map_failed(P, base).unwrap();
    assert_eq!(stats(&vm, P).resident_pages, 0);
    assert_eq!(stats(&vm, P).map_failures, 1);
    assert_eq!(
        vm.mapped(P, base),
        Err(VmError::NoOutstandingDecision { pid: P, page: base })
    );
    // The page can be faulted again.
    assert!(touch(&mut vm, P, base, Access::Write).is_ok());
    assert_eq!(stats(&vm, P).resident_pages, 1);
    assert_eq!(stats(&vm, P).demand_zero_faults, 1);
}

#[test]
fn a_decision_gone_stale_is_not_counted() {
    let mut vm = vm();
    let base = vm.map_anonymous(P, PAGE, true).unwrap();
    vm.fault(P, base, Access::Write).unwrap();
    vm.unmap(P, base, PAGE).unwrap();
    assert_eq!(
        vm.mapped(P, base),
        Err(VmError::StaleDecision { pid: P, page: base })
    );
    assert_eq!(stats(&vm, P).resident_pages, 0);
    // The stale decision is over: faults are decided again.
    assert_eq!(
        vm.fault(P, base, Access::Read),
        invalid(InvalidReason::NotMapped)
    );
}

#[test]
fn the_limit_caps_resident_pages() {
    let mut vm = vm();
    vm.set_limit(P, 2).unwrap();
    let base = vm.map_anonymous(P, 2 * PAGE, true).unwrap();
    vm.set_heap_size(P, PAGE).unwrap();
    touch(&mut vm, P, base, Access::Write).unwrap();
    touch(&mut vm, P, base + PAGE, Access::Write).unwrap();
    assert_eq!(
        touch(&mut vm, P, HEAP_BASE, Access::Write),
        Err(VmError::OutOfMemory {
            pid: P,
            limit_pages: 2,
            resident_pages: 2,
            requested_pages: 1
        })
    );
    assert_eq!(
        vm.set_limit(P, 1),
        Err(VmError::LimitBelowResident {
            pid: P,
            limit_pages: 1,
            resident_pages: 2
        })
    );
    assert!(matches!(
        vm.thread_started(P, 0),
        Err(VmError::OutOfMemory { .. })
    ));
    assert_eq!(vm.process(P).unwrap().threads().count(), 0);
    assert!(matches!(
        vm.map_anonymous(P, 3 * PAGE, true),
        Err(VmError::OutOfMemory { .. })
    ));
    let stats = stats(&vm, P);
    assert_eq!(
        (
            stats.resident_pages,
            stats.peak_resident_pages,
            stats.out_of_memory
        ),
        (2, 2, 3)
    );
    assert!(VmError::OutOfMemory {
        pid: P,
        limit_pages: 2,
        resident_pages: 2,
        requested_pages: 1
    }
    .to_string()
    .starts_with("out of memory: process 7"));
}

#[test]
fn largest_users_are_the_most_resident_first() {
    let mut vm = vm();
    vm.create_process(9).unwrap();
    vm.thread_started(Q, 0).unwrap();
    vm.thread_started(9, 0).unwrap();
    vm.set_heap_size(9, PAGE).unwrap();
    touch(&mut vm, 9, HEAP_BASE, Access::Write).unwrap();
    let users: std::vec::Vec<(Pid, u64)> = vm
        .largest_users(2)
        .into_iter()
        .map(|(pid, stats)| (pid, stats.resident_pages))
        .collect();
    let initial = INITIAL_STACK_BYTES / PAGE;
    assert_eq!(users, vec![(9, initial + 1), (Q, initial)]);
    assert_eq!(vm.largest_users(10).len(), 3);
}

#[test]
fn peak_resident_survives_releases() {
    let mut vm = vm();
    vm.set_heap_size(P, 3 * PAGE).unwrap();
    for page in 0..3 {
        touch(&mut vm, P, HEAP_BASE + page * PAGE, Access::Write).unwrap();
    }
    vm.set_heap_size(P, 0).unwrap();
    assert_eq!(
        (
            stats(&vm, P).resident_pages,
            stats(&vm, P).peak_resident_pages
        ),
        (0, 3)
    );
}

#[test]
fn shared_pages_have_one_frame_for_all_mappers() {
    let mut vm = vm();
    let object = vm
        .create_shared(P, b"frames", 2 * PAGE, OthersMay::ReadWrite)
        .unwrap();
    let at_p = vm.map_shared(P, object, true).unwrap();
    let at_q = vm.map_shared(Q, object, false).unwrap();
    assert_eq!(
        touch(&mut vm, Q, at_q + PAGE, Access::Read),
        Ok(Decision::MapZeroShared {
            object,
            object_page: 1,
            page: at_q + PAGE,
            writable: false
        })
    );
    assert_eq!(
        touch(&mut vm, P, at_p + PAGE + 16, Access::Write),
        Ok(Decision::MapShared {
            object,
            object_page: 1,
            page: at_p + PAGE,
            writable: true
        })
    );
    assert_eq!(
        touch(&mut vm, Q, at_q, Access::Write),
        invalid(InvalidReason::WriteToReadOnly)
    );
    let info = vm.object(object).unwrap();
    assert_eq!(
        (info.owner, info.bytes, info.resident_pages),
        (P, 2 * PAGE, 1)
    );
    assert_eq!(
        info.mappers,
        vec![
            Mapper {
                pid: P,
                base: at_p,
                writable: true,
                resident_pages: 1
            },
            Mapper {
                pid: Q,
                base: at_q,
                writable: false,
                resident_pages: 1
            },
        ]
    );
    assert_eq!(
        (
            stats(&vm, Q).shared_resident_pages,
            stats(&vm, Q).shared_faults
        ),
        (1, 1)
    );
    assert_eq!(stats(&vm, P).virtual_bytes, 2 * PAGE);
}

#[test]
fn shared_object_names_and_sizes_are_checked() {
    let mut vm = vm();
    let long = [b'x'; SHARED_NAME_MAX + 1];
    assert_eq!(
        vm.create_shared(P, &long, PAGE, OthersMay::Read),
        Err(VmError::NameTooLong { length: 33 })
    );
    assert_eq!(
        vm.create_shared(P, b"", PAGE, OthersMay::Read),
        Err(VmError::NameEmpty)
    );
    assert_eq!(
        vm.create_shared(P, b"a", 0, OthersMay::Read),
        Err(VmError::ZeroLength)
    );
    assert_eq!(
        vm.create_shared(P, b"a", 100, OthersMay::Read),
        Err(VmError::Misaligned { value: 100 })
    );
    let too_big = SHARED_OBJECT_MAX_BYTES + PAGE;
    assert_eq!(
        vm.create_shared(P, b"a", too_big, OthersMay::Read),
        Err(VmError::ObjectTooLarge { bytes: too_big })
    );
    assert_eq!(
        vm.create_shared(99, b"a", PAGE, OthersMay::Read),
        Err(VmError::UnknownProcess(99))
    );
    let object = vm
        .create_shared(P, &long[..SHARED_NAME_MAX], PAGE, OthersMay::Read)
        .unwrap();
    assert_eq!(
        vm.create_shared(Q, &long[..SHARED_NAME_MAX], PAGE, OthersMay::Read),
        Err(VmError::NameTaken { object })
    );
    assert_eq!(vm.find_shared(&long[..SHARED_NAME_MAX]), Some(object));
    assert_eq!(vm.objects().len(), 1);
}

#[test]
fn others_map_writable_only_if_the_owner_allows() {
    let mut vm = vm();
    let object = vm.create_shared(P, b"ro", PAGE, OthersMay::Read).unwrap();
    assert_eq!(
        vm.map_shared(Q, object, true),
        Err(VmError::ReadOnlyObject { pid: Q, object })
    );
    assert!(vm.map_shared(Q, object, false).is_ok());
    assert!(vm.map_shared(P, object, true).is_ok());
    assert_eq!(
        vm.map_shared(P, ObjectId(999), false),
        Err(VmError::UnknownObject(ObjectId(999)))
    );
}

#[test]
fn shared_mappings_are_unmapped_whole() {
    let mut vm = vm();
    let object = vm
        .create_shared(P, b"whole", 2 * PAGE, OthersMay::Read)
        .unwrap();
    let base = vm.map_shared(Q, object, false).unwrap();
    touch(&mut vm, Q, base, Access::Read).unwrap();
    assert_eq!(
        vm.unmap(Q, base, PAGE),
        Err(VmError::PartialSharedUnmap {
            base,
            length: 2 * PAGE
        })
    );
    let released = vm.unmap(Q, base, 2 * PAGE).unwrap();
    assert_eq!(
        (released.shared_pages, released.private_pages),
        (vec![base], vec![])
    );
    assert!(vm.object(object).unwrap().mappers.is_empty());
    // The object keeps its frame: it is not destroyed.
    assert_eq!(vm.object(object).unwrap().resident_pages, 1);
    assert_eq!(stats(&vm, Q).shared_resident_pages, 0);
}

#[test]
fn destroy_is_the_owners_and_waits_for_the_last_mapper() {
    let mut vm = vm();
    let object = vm.create_shared(P, b"d", PAGE, OthersMay::Read).unwrap();
    let base = vm.map_shared(Q, object, false).unwrap();
    touch(&mut vm, Q, base, Access::Read).unwrap();
    assert_eq!(
        vm.destroy_shared(Q, object),
        Err(VmError::NotOwner {
            pid: Q,
            object,
            owner: P
        })
    );
    assert_eq!(vm.destroy_shared(P, object), Ok(Released::default()));
    assert_eq!(
        vm.destroy_shared(P, object),
        Err(VmError::ObjectBeingDestroyed(object))
    );
    // The name is free again; the object can no longer be mapped.
    assert_eq!(vm.find_shared(b"d"), None);
    assert!(vm.create_shared(Q, b"d", PAGE, OthersMay::Read).is_ok());
    assert_eq!(
        vm.map_shared(P, object, false),
        Err(VmError::ObjectBeingDestroyed(object))
    );
    assert!(vm.object(object).unwrap().destroy_pending);
    let released = vm.unmap(Q, base, PAGE).unwrap();
    assert_eq!(
        released.destroyed_objects,
        vec![DestroyedObject {
            object,
            resident_pages: vec![0]
        }]
    );
    assert_eq!(vm.object(object), None);
}

#[test]
fn an_exiting_process_releases_everything() {
    let mut vm = vm();
    vm.thread_started(P, 0).unwrap();
    let mine = vm.create_shared(P, b"mine", PAGE, OthersMay::Read).unwrap();
    let kept = vm.create_shared(P, b"kept", PAGE, OthersMay::Read).unwrap();
    let theirs = vm
        .create_shared(Q, b"theirs", PAGE, OthersMay::Read)
        .unwrap();
    let mine_at = vm.map_shared(P, mine, true).unwrap();
    vm.map_shared(Q, kept, false).unwrap();
    let theirs_at = vm.map_shared(P, theirs, false).unwrap();
    touch(&mut vm, P, mine_at, Access::Write).unwrap();
    touch(&mut vm, P, theirs_at, Access::Read).unwrap();
    vm.fault(P, STACK_AREA_TOP - STACK_REGION_SIZE + PAGE, Access::Write)
        .unwrap();
    let released = vm.process_exited(P).unwrap();
    assert_eq!(
        released.private_pages.len() as u64,
        INITIAL_STACK_BYTES / PAGE
    );
    assert_eq!(released.shared_pages, vec![mine_at, theirs_at]);
    // Its own object nobody else maps goes now; the one Q maps waits for Q; Q's stays.
    assert_eq!(
        released.destroyed_objects,
        vec![DestroyedObject {
            object: mine,
            resident_pages: vec![0]
        }]
    );
    assert!(vm.object(kept).unwrap().destroy_pending);
    let theirs_info = vm.object(theirs).unwrap();
    assert!(!theirs_info.destroy_pending && theirs_info.mappers.is_empty());
    assert_eq!(vm.process(P).map(|_| ()), None);
    // Its outstanding decision went with it.
    assert!(vm.fault(Q, HEAP_BASE, Access::Read).is_ok());
    assert_eq!(vm.process_exited(P), Err(VmError::UnknownProcess(P)));
    let released = vm.process_exited(Q).unwrap();
    let gone: std::vec::Vec<ObjectId> = released
        .destroyed_objects
        .iter()
        .map(|d| d.object)
        .collect();
    assert_eq!(gone, vec![theirs, kept]);
    assert!(vm.objects().is_empty());
}

#[test]
fn processes_are_created_once() {
    let mut vm = vm();
    assert_eq!(vm.create_process(P), Err(VmError::ProcessExists(P)));
    assert_eq!(vm.pids().collect::<std::vec::Vec<_>>(), vec![P, Q]);
    assert_eq!(
        vm.fault(99, HEAP_BASE, Access::Read),
        Err(VmError::UnknownProcess(99))
    );
    assert_eq!(stats(&vm, P).limit_pages, 64);
}

#[test]
fn errors_read_as_sentences() {
    let messages = [
        VmError::ZeroLength.to_string(),
        VmError::KernelSpace {
            address: USER_END,
            length: PAGE,
        }
        .to_string(),
        VmError::NotOwner {
            pid: 2,
            object: ObjectId(5),
            owner: 1,
        }
        .to_string(),
        InvalidReason::Execute.to_string(),
    ];
    assert_eq!(messages[0], "length is zero");
    assert!(messages[1].contains("kernel space"), "{}", messages[1]);
    assert!(
        messages[2].starts_with("permission denied"),
        "{}",
        messages[2]
    );
    assert!(messages[3].contains("never executable"), "{}", messages[3]);
}

#[test]
fn populate_makes_a_whole_anonymous_mapping_resident_or_nothing() {
    let mut vm = vm();
    let base = vm.map_anonymous(P, 16 * PAGE, true).unwrap();
    assert_eq!(vm.populate(P, base), Ok(16));
    assert_eq!(
        stats(&vm, P).resident_pages,
        0,
        "counted only once the kernel mapped them"
    );
    vm.populated(P, base).unwrap();
    assert_eq!(stats(&vm, P).resident_pages, 16);
    assert!(vm.process(P).unwrap().is_resident(base + 15 * PAGE));
    // A populated page is resident: touching it again is a protection fault, not a map.
    assert_eq!(
        touch(&mut vm, P, base, Access::Write),
        invalid(InvalidReason::Protection)
    );
    // Twice, inside a mapping, or of no mapping at all: refused, nothing changes.
    assert!(matches!(
        vm.populate(P, base),
        Err(VmError::NotMapped { .. })
    ));
    assert!(matches!(
        vm.populate(P, base + PAGE),
        Err(VmError::NotMapped { .. })
    ));
    assert_eq!(vm.populate(99, base), Err(VmError::UnknownProcess(99)));
    // Past the limit (64 pages): refused as out of memory, with nothing counted.
    let big = vm.map_anonymous(P, 49 * PAGE, true).unwrap();
    assert_eq!(
        vm.populate(P, big),
        Err(VmError::OutOfMemory {
            pid: P,
            limit_pages: 64,
            resident_pages: 16,
            requested_pages: 49,
        })
    );
    assert_eq!(stats(&vm, P).resident_pages, 16);
    assert_eq!(stats(&vm, P).out_of_memory, 1);
    // What fits, fits exactly up to the limit.
    let rest = vm.map_anonymous(P, 48 * PAGE, true).unwrap();
    assert_eq!(vm.populate(P, rest), Ok(48));
    // If the memory changed in between (here: a fault filled the headroom), nothing counts.
    let other = vm.map_anonymous(P, PAGE, true).unwrap();
    touch(&mut vm, P, other, Access::Write).unwrap();
    assert_eq!(
        vm.populated(P, rest),
        Err(VmError::StaleDecision { pid: P, page: rest })
    );
    assert_eq!(stats(&vm, P).resident_pages, 17);
    vm.unmap(P, other, PAGE).unwrap();
    vm.populated(P, rest).unwrap();
    assert_eq!(stats(&vm, P).resident_pages, 64);
    assert_eq!(stats(&vm, P).peak_resident_pages, 64);
    // Unmapping releases every populated page as private.
    let released = vm.unmap(P, base, 16 * PAGE).unwrap();
    assert_eq!(released.private_pages.len(), 16);
    assert_eq!(stats(&vm, P).resident_pages, 48);
    // A shared mapping cannot be populated.
    let object = vm
        .create_shared(Q, b"obj", 2 * PAGE, OthersMay::Read)
        .unwrap();
    let shared = vm.map_shared(Q, object, true).unwrap();
    assert!(matches!(
        vm.populate(Q, shared),
        Err(VmError::NotMapped { .. })
    ));
}
