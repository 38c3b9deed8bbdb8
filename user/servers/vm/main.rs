//! `vm`: the VM server. Every other process's page faults arrive here as messages from the
//! kernel; the policy crate `vigil-vmcore` decides what each one means (demand-zero heap,
//! stack growth to the guard page, anonymous and shared-memory mappings, or an invalid
//! access), and this glue makes the kernel calls it names: `VmMap` / `VmMapShared` and
//! `VmResume`, or `VmFail` with the reason logged. Programs ask for anonymous memory,
//! shared-memory objects and their own figures with `vm::request` messages. The kernel only
//! maps what this server asks for.
//!
//! **Shared memory.** Each object's frames live in VM's own address space, at the object's
//! backing slot: `[BACKING_START + slot × SHARED_OBJECT_MAX_BYTES, … + object bytes)` in
//! VM's mapping area, which VM never uses otherwise (VM is not served by itself, so nothing
//! else of its own is ever placed there). The first touch of an object page by any mapper
//! maps a fresh frame there (`VmMap` into VM) and then a view of it into the mapper
//! (`VmMapShared`); later touches map views only. When the object is gone (destroyed and
//! unmapped by its last mapper) VM unmaps its backing pages; the kernel's per-frame holder
//! counts keep every frame alive while any process still maps it, so even a wrong release
//! here could not free memory someone uses. Slots are reused lowest first.
//!
//! **Limits.** A process's limit is the boot table's `mem=` (read with `VmLimitOf` when VM
//! first hears of the process), else [`DEFAULT_LIMIT_PAGES`]. A fault or a populated
//! mapping past it, or past the kernel's free memory, is refused as out of memory and VM
//! logs the largest users.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

mod account;
mod introspect;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use vigil_rt::abi::layout::{
    MAPPING_AREA_END, MAPPING_AREA_START, RUNTIME_HEAP_BYTES, STACK_AREA_TOP, STACK_REGION_SIZE,
};
use vigil_rt::abi::server_introspect::INTROSPECT;
use vigil_rt::abi::vm::{
    map_flags, request, shm_flags, FaultAccess, MapFlags, PageFault, PageRange, Pid, SharedRanges,
    ShmName, KIND_PROCESS_EXIT, MAX_PAGES_PER_CALL, PAGE_SIZE,
};
use vigil_rt::{ipc, println, syscall, Endpoint, Error, Message};
use vigil_vmcore::{
    Access, Decision, ObjectId, OthersMay, Released, Vm, VmError, MAX_SHARED_OBJECTS,
    SHARED_OBJECT_MAX_BYTES,
};

vigil_rt::entry!(main);

/// A process's memory limit unless its boot options say otherwise: 128 MiB.
const DEFAULT_LIMIT_PAGES: u64 = (128 << 20) / PAGE_SIZE;
/// Refused system-call accesses logged one by one; after that one line per
/// `REFUSAL_REPORT_EVERY`.
const QUIET_AFTER_REFUSALS: u64 = 16;
const REFUSAL_REPORT_EVERY: u64 = 1000;
/// Processes an out-of-memory report names.
const REPORTED_USERS: usize = 3;

/// Where shared objects' frames live in VM's own address space: one
/// `SHARED_OBJECT_MAX_BYTES` slot per object.
const BACKING_START: u64 = MAPPING_AREA_START;
const _: () = assert!(
    BACKING_START + MAX_SHARED_OBJECTS as u64 * SHARED_OBJECT_MAX_BYTES <= MAPPING_AREA_END
);

/// The server's state: the policy's records of every process it has seen, and where each
/// shared object's frames are in VM's own address space.
struct Server {
    vm: Vm,
    /// When VM handled the last fault (`request::FAULT_TIMES`).
    fault_times: [u64; 4],
    /// System-call accesses VM refused so far (each became an EFAULT).
    refused_system_call_accesses: u64,
    /// VM's own pid (the backing of shared objects is in its address space).
    own_pid: u32,
    /// The backing slot of every object VM keeps.
    backing: BTreeMap<ObjectId, usize>,
    /// Slot `i` in use.
    slots_used: Vec<bool>,
    /// The virtual sizes reported to the kernel (`account`).
    reported: account::VirtualReports,
}

/// Reads a flag word: bits outside `known` → `InvalidArgument`.
fn flags(value: u64, known: u64) -> Result<u64, Error> {
    if value & !known != 0 {
        Err(Error::InvalidArgument)
    } else {
        Ok(value)
    }
}

/// A refusal of a request: the policy's, or one of the glue's own checks.
enum Refusal {
    Policy(VmError),
    Request(Error, &'static str),
    /// The kernel refused (e.g. no free frames): its error.
    Kernel(Error, &'static str),
}

impl From<VmError> for Refusal {
    fn from(error: VmError) -> Refusal {
        Refusal::Policy(error)
    }
}

/// The stack region index `address` lies in, if it is in the stack area.
fn stack_thread(address: u64) -> Option<u32> {
    let below_top = STACK_AREA_TOP.checked_sub(address + 1)?;
    let thread = below_top / STACK_REGION_SIZE;
    u32::try_from(thread)
        .ok()
        .filter(|&t| (t as usize) < vigil_vmcore::MAX_THREADS)
}

/// The error a client sees for a refusal of the policy.
fn client_error(error: &VmError) -> Error {
    match error {
        VmError::OutOfMemory { .. } | VmError::NoSpace { .. } | VmError::TooManyMappings { .. } => {
            Error::OutOfResources
        }
        VmError::KernelSpace { .. }
        | VmError::WrapAround { .. }
        | VmError::OutsideMappingArea { .. } => Error::Fault,
        VmError::NotOwner { .. } | VmError::ReadOnlyObject { .. } => Error::PermissionDenied,
        VmError::UnknownProcess(_)
        | VmError::UnknownObject(_)
        | VmError::ObjectBeingDestroyed(_)
        | VmError::NotMapped { .. } => Error::NotFound,
        VmError::TooManyObjects => Error::OutOfResources,
        VmError::NameTaken { .. } | VmError::ProcessExists(_) => Error::Exists,
        _ => Error::InvalidArgument,
    }
}

impl Server {
    /// The process `pid` as the policy knows it: created (with the runtime's heap, and the
    /// boot table's memory limit if it set one) the first time VM hears of it.
    fn know(&mut self, pid: u32) {
        if self.vm.process(pid).is_none() && self.vm.create_process(pid).is_ok() {
            let _ = self.vm.set_heap_size(pid, RUNTIME_HEAP_BYTES);
            self.reported.update(&self.vm, pid);
            match syscall::vm_limit_of(Pid(pid)) {
                Ok(0) => {}
                Ok(pages) => {
                    if let Err(error) = self.vm.set_limit(pid, pages) {
                        println!("pid {pid}: boot limit of {pages} pages not applied: {error}");
                    }
                }
                Err(error) => println!("pid {pid}: no limit from the kernel: {error}"),
            }
        }
    }

    /// Address of `object_page` of `object` in VM's own address space.
    fn backing_page(&self, object: ObjectId, object_page: u64) -> Option<u64> {
        let slot = *self.backing.get(&object)?;
        Some(BACKING_START + slot as u64 * SHARED_OBJECT_MAX_BYTES + object_page * PAGE_SIZE)
    }

    /// Gives a new object the lowest free backing slot.
    fn assign_slot(&mut self, object: ObjectId) -> bool {
        match self.slots_used.iter().position(|used| !used) {
            Some(slot) => {
                self.slots_used[slot] = true;
                self.backing.insert(object, slot);
                true
            }
            None => false,
        }
    }

    /// The policy's decision, learning of a thread's stack the first time it faults in it
    /// (the kernel mapped its top `INITIAL_STACK_BYTES` when it created the thread).
    fn decide(&mut self, fault: &PageFault) -> Result<Decision, VmError> {
        self.know(fault.pid);
        if let Some(thread) = stack_thread(fault.address) {
            let known = self
                .vm
                .process(fault.pid)
                .is_some_and(|p| p.threads().any(|t| t == thread));
            if !known {
                self.vm.thread_started(fault.pid, thread)?;
                self.reported.update(&self.vm, fault.pid);
            }
        }
        let access = match fault.access {
            FaultAccess::Read => Access::Read,
            FaultAccess::Write => Access::Write,
            FaultAccess::Execute => Access::Execute,
        };
        self.vm.fault(fault.pid, fault.address, access)
    }

    /// One fault: map and resume, or fail it with the reason logged. `received` is the TSC
    /// when its message arrived.
    fn handle_fault(&mut self, fault: &PageFault, received: u64) {
        self.fault_times = [received, 0, 0, 0];
        let decision = self.decide(fault);
        self.fault_times[1] = vigil_rt::tsc();
        let refusal = match decision {
            Ok(Decision::MapZero { page, writable }) => {
                match self.map_page(fault, page, writable) {
                    Ok(()) => None,
                    Err(error) => Some(alloc::format!(
                        "the kernel could not map {page:#x}: {error}"
                    )),
                }
            }
            Ok(Decision::Invalid(reason)) => Some(alloc::format!("{reason}")),
            Ok(Decision::MapZeroShared {
                object,
                object_page,
                page,
                writable,
            }) => self
                .map_shared_page(fault, object, object_page, page, writable, true)
                .err()
                .map(|error| alloc::format!("the kernel could not map {page:#x}: {error}")),
            Ok(Decision::MapShared {
                object,
                object_page,
                page,
                writable,
            }) => self
                .map_shared_page(fault, object, object_page, page, writable, false)
                .err()
                .map(|error| alloc::format!("the kernel could not map {page:#x}: {error}")),
            Err(error @ VmError::OutOfMemory { .. }) => {
                self.report_out_of_memory(fault.pid);
                Some(alloc::format!("{error}"))
            }
            Err(error) => Some(alloc::format!("{error}")),
        };
        self.fault_times[2] = vigil_rt::tsc();
        let answer = match refusal {
            None => syscall::vm_resume(fault.thread),
            Some(reason) => {
                // A refused CPU fault kills its process: always said. A refused system-call
                // access is only an EFAULT for the caller: said for the first few, then
                // counted, so a program probing bad pointers cannot flood the console.
                let refused_calls = &mut self.refused_system_call_accesses;
                if fault.system_call {
                    *refused_calls += 1;
                }
                if !fault.system_call || *refused_calls <= QUIET_AFTER_REFUSALS {
                    println!(
                        "pid {} thread {}: invalid {} at {:#x} ({} {:#x}): {reason}",
                        fault.pid,
                        fault.thread,
                        fault.access.name(),
                        fault.address,
                        if fault.system_call {
                            "system call at"
                        } else {
                            "instruction"
                        },
                        fault.instruction
                    );
                } else if refused_calls.is_multiple_of(REFUSAL_REPORT_EVERY) {
                    println!(
                        "{refused_calls} system-call accesses refused (EFAULT) so far; the \
                         latest: pid {} at {:#x}: {reason}",
                        fault.pid, fault.address
                    );
                }
                syscall::vm_fail(fault.thread)
            }
        };
        self.fault_times[3] = vigil_rt::tsc();
        if let Err(error) = answer {
            // The thread may have been killed meanwhile (its process exited).
            println!("could not answer the fault of {}: {error}", fault.thread);
        }
    }

    /// Maps a zeroed page and tells the policy the kernel's answer.
    fn map_page(&mut self, fault: &PageFault, page: u64, writable: bool) -> Result<(), Error> {
        let range = PageRange::new(page, 1)?;
        let flags = if writable {
            MapFlags::WRITABLE
        } else {
            MapFlags::READ_ONLY
        };
        match syscall::vm_map(Pid(fault.pid), range, flags) {
            Ok(_) => {
                if self.vm.mapped(fault.pid, page).is_err() {
                    // The policy no longer wants it: take it back.
                    let _ = syscall::vm_unmap(Pid(fault.pid), range);
                }
                Ok(())
            }
            Err(error) => Err(self.map_refused(fault.pid, page, error)),
        }
    }

    /// The kernel refused to map `page` for `pid`: the policy forgets the decision, and an
    /// out-of-memory refusal gets VM's report. Returns the error.
    fn map_refused(&mut self, pid: u32, page: u64, error: Error) -> Error {
        let _ = self.vm.map_failed(pid, page);
        if error == Error::OutOfResources {
            self.report_out_of_memory(pid);
        }
        error
    }

    /// Maps `object_page` of `object` at `page` of the faulting process: first (when
    /// `fresh`) a zeroed frame at the object's backing in VM's own space, then a view of
    /// it. Tells the policy the kernel's answer; on a failure nothing stays mapped.
    fn map_shared_page(
        &mut self,
        fault: &PageFault,
        object: ObjectId,
        object_page: u64,
        page: u64,
        writable: bool,
        fresh: bool,
    ) -> Result<(), Error> {
        let result = self.map_view(fault.pid, object, object_page, page, writable, fresh);
        match result {
            Ok(backing) => {
                if self.vm.mapped(fault.pid, page).is_err() {
                    // The policy no longer wants it: take it back.
                    if let Ok(range) = PageRange::new(page, 1) {
                        let _ = syscall::vm_unmap(Pid(fault.pid), range);
                    }
                    if let (true, Ok(range)) = (fresh, PageRange::new(backing, 1)) {
                        let _ = syscall::vm_unmap(Pid(self.own_pid), range);
                    }
                }
                Ok(())
            }
            Err(error) => Err(self.map_refused(fault.pid, page, error)),
        }
    }

    /// The kernel calls of `map_shared_page`; returns the backing page.
    fn map_view(
        &self,
        pid: u32,
        object: ObjectId,
        object_page: u64,
        page: u64,
        writable: bool,
        fresh: bool,
    ) -> Result<u64, Error> {
        let backing = self
            .backing_page(object, object_page)
            .ok_or(Error::NotFound)?;
        let backing_range = PageRange::new(backing, 1)?;
        if fresh {
            syscall::vm_map(Pid(self.own_pid), backing_range, MapFlags::WRITABLE)?;
        }
        let flags = if writable {
            MapFlags::WRITABLE
        } else {
            MapFlags::READ_ONLY
        };
        let ranges = SharedRanges::new(backing, page, 1)?;
        if let Err(error) = syscall::vm_map_shared(Pid(self.own_pid), Pid(pid), ranges, flags) {
            if fresh {
                let _ = syscall::vm_unmap(Pid(self.own_pid), backing_range);
            }
            return Err(error);
        }
        Ok(backing)
    }

    /// Unmaps what the policy released from the process `pid` (unless it is gone, when the
    /// kernel has taken its address space apart already), and the backing of every object
    /// that ceased to exist (the kernel frees each frame no one else maps).
    fn release(&mut self, pid: Option<u32>, released: &Released) {
        if let Some(pid) = pid {
            unmap_pages(pid, &released.private_pages);
            unmap_pages(pid, &released.shared_pages);
        }
        for destroyed in &released.destroyed_objects {
            let pages: Vec<u64> = destroyed
                .resident_pages
                .iter()
                .filter_map(|&object_page| self.backing_page(destroyed.object, object_page))
                .collect();
            unmap_pages(self.own_pid, &pages);
            if let Some(slot) = self.backing.remove(&destroyed.object) {
                self.slots_used[slot] = false;
            }
        }
    }

    /// MAP_ANONYMOUS: a new mapping; with `POPULATE`, every page mapped now or none.
    fn map_anonymous(&mut self, pid: u32, bytes: u64, raw_flags: u64) -> Result<u64, Refusal> {
        let bits = flags(raw_flags, map_flags::WRITABLE | map_flags::POPULATE)
            .map_err(|error| Refusal::Request(error, "unknown MAP_ANONYMOUS flag bits"))?;
        let writable = bits & map_flags::WRITABLE != 0;
        let base = self.vm.map_anonymous(pid, bytes, writable)?;
        if bits & map_flags::POPULATE == 0 {
            return Ok(base);
        }
        if let Err(error) = self.vm.populate(pid, base) {
            let _ = self.vm.unmap(pid, base, bytes);
            if matches!(error, VmError::OutOfMemory { .. }) {
                self.report_out_of_memory(pid);
            }
            return Err(error.into());
        }
        // Map everything, then count it (only what the kernel mapped is counted).
        let flags = if writable {
            MapFlags::WRITABLE
        } else {
            MapFlags::READ_ONLY
        };
        let pages = bytes / PAGE_SIZE;
        let mut done = 0;
        while done < pages {
            let count = (pages - done).min(MAX_PAGES_PER_CALL);
            let mapped = PageRange::new(base + done * PAGE_SIZE, count)
                .and_then(|range| syscall::vm_map(Pid(pid), range, flags));
            if let Err(error) = mapped {
                // Give back what was mapped (none of it was counted) and the mapping.
                self.unpopulate(pid, base, bytes, done);
                if error == Error::OutOfResources {
                    self.report_out_of_memory(pid);
                }
                return Err(Refusal::Kernel(
                    error,
                    "the kernel could not populate the mapping",
                ));
            }
            done += count;
        }
        if let Err(error) = self.vm.populated(pid, base) {
            self.unpopulate(pid, base, bytes, pages);
            return Err(error.into());
        }
        Ok(base)
    }

    /// Undoes a populate that did not complete: unmaps the first `mapped` pages (mapped by
    /// the kernel, not counted by the policy) and removes the mapping of `bytes` at `base`.
    fn unpopulate(&mut self, pid: u32, base: u64, bytes: u64, mapped: u64) {
        let pages: Vec<u64> = (0..mapped).map(|i| base + i * PAGE_SIZE).collect();
        unmap_pages(pid, &pages);
        let _ = self.vm.unmap(pid, base, bytes);
    }

    /// SHM_CREATE: a new object owned by `pid`.
    fn shm_create(&mut self, pid: u32, p: &[u64; 6]) -> Result<u64, Refusal> {
        let name = ShmName::from_words(&[p[0], p[1], p[2], p[3]])
            .map_err(|error| Refusal::Request(error, "bad shared-object name"))?;
        let bits = flags(p[5], shm_flags::OTHERS_WRITABLE)
            .map_err(|error| Refusal::Request(error, "unknown SHM_CREATE flag bits"))?;
        let others_may = if bits & shm_flags::OTHERS_WRITABLE != 0 {
            OthersMay::ReadWrite
        } else {
            OthersMay::Read
        };
        let object = self
            .vm
            .create_shared(pid, name.as_bytes(), p[4], others_may)?;
        if !self.assign_slot(object) {
            // Cannot happen (the policy keeps at most MAX_SHARED_OBJECTS), but never
            // leave an object without a backing.
            if let Ok(released) = self.vm.destroy_shared(pid, object) {
                self.release(Some(pid), &released);
            }
            return Err(Refusal::Request(
                Error::OutOfResources,
                "no backing slot left for a shared object",
            ));
        }
        Ok(u64::from(object.0))
    }

    /// SHM_MAP: the whole object `name` mapped into `pid`; → (base, bytes, id).
    fn shm_map(&mut self, pid: u32, p: &[u64; 6]) -> Result<[u64; 3], Refusal> {
        let name = ShmName::from_words(&[p[0], p[1], p[2], p[3]])
            .map_err(|error| Refusal::Request(error, "bad shared-object name"))?;
        let bits = flags(p[4], map_flags::WRITABLE)
            .map_err(|error| Refusal::Request(error, "unknown SHM_MAP flag bits"))?;
        let object = self
            .vm
            .find_shared(name.as_bytes())
            .ok_or(Refusal::Request(
                Error::NotFound,
                "no shared object has that name",
            ))?;
        let base = self
            .vm
            .map_shared(pid, object, bits & map_flags::WRITABLE != 0)?;
        let bytes = self.vm.object(object).map_or(0, |info| info.bytes);
        Ok([base, bytes, u64::from(object.0)])
    }

    /// SHM_DESTROY: the owner destroys an object.
    fn shm_destroy(&mut self, pid: u32, id: u64) -> Result<(), Refusal> {
        let object = u32::try_from(id)
            .map(ObjectId)
            .map_err(|_| Refusal::Policy(VmError::UnknownObject(ObjectId(u32::MAX))))?;
        let released = self.vm.destroy_shared(pid, object)?;
        self.release(Some(pid), &released);
        Ok(())
    }

    /// Logs who uses the most memory.
    fn report_out_of_memory(&self, pid: u32) {
        println!("out of memory serving pid {pid}; the largest users:");
        for (user, stats) in self.vm.largest_users(REPORTED_USERS) {
            println!(
                "  pid {user}: {} pages resident (peak {}, {} shared), limit {}",
                stats.resident_pages,
                stats.peak_resident_pages,
                stats.shared_resident_pages,
                stats.limit_pages
            );
        }
    }

    /// A program's request; the reply's `payload[0]` is 0 or the refusal's error code.
    fn handle_request(&mut self, message: &Message) -> Message {
        if message.kind == INTROSPECT {
            return introspect::answer(&self.vm, message);
        }
        let mut reply = Message::new(request::REPLY);
        let pid = match syscall::vm_process_of(message.source).map(u32::try_from) {
            Ok(Ok(pid)) => pid,
            _ => {
                reply.payload[0] = Error::DeadEndpoint as u64;
                return reply;
            }
        };
        self.know(pid);
        let p = message.payload;
        let outcome: Result<[u64; 5], Refusal> = match message.kind {
            request::MAP_ANONYMOUS => self
                .map_anonymous(pid, p[0], p[1])
                .map(|base| [base, 0, 0, 0, 0]),
            request::UNMAP => match self.vm.unmap(pid, p[0], p[1]) {
                Ok(released) => {
                    self.release(Some(pid), &released);
                    Ok([0; 5])
                }
                Err(error) => Err(error.into()),
            },
            request::SHM_CREATE => self.shm_create(pid, &p).map(|id| [id, 0, 0, 0, 0]),
            request::SHM_MAP => self
                .shm_map(pid, &p)
                .map(|[base, bytes, id]| [base, bytes, id, 0, 0]),
            request::SHM_DESTROY => self.shm_destroy(pid, p[0]).map(|()| [0; 5]),
            request::FAULT_TIMES => {
                let [received, decided, mapped, resumed] = self.fault_times;
                Ok([received, decided, mapped, resumed, 0])
            }
            request::STATS => match self.vm.process(pid) {
                Some(process) => {
                    let stats = process.stats();
                    Ok([
                        stats.resident_pages,
                        stats.virtual_bytes,
                        stats.shared_resident_pages,
                        stats.peak_resident_pages,
                        stats.demand_zero_faults,
                    ])
                }
                None => Err(VmError::UnknownProcess(pid).into()),
            },
            _ => {
                reply.payload[0] = Error::NoSuchCall as u64;
                return reply;
            }
        };
        self.reported.update(&self.vm, pid);
        match outcome {
            Ok(values) => reply.payload[1..].copy_from_slice(&values),
            Err(Refusal::Policy(error)) => {
                println!("pid {pid}: request {:#x} refused: {error}", message.kind);
                reply.payload[0] = client_error(&error) as u64;
            }
            Err(Refusal::Request(error, why) | Refusal::Kernel(error, why)) => {
                println!(
                    "pid {pid}: request {:#x} refused: {why} ({error})",
                    message.kind
                );
                reply.payload[0] = error as u64;
            }
        }
        reply
    }

    /// The kernel says `pid` exited (its address space is gone): VM drops its records and
    /// destroys the objects it owned; objects nobody maps any more lose their backing.
    fn process_exited(&mut self, pid: u32) {
        if let Ok(released) = self.vm.process_exited(pid) {
            self.release(None, &released);
        }
    }
}

/// Unmaps `pages` (ascending) of `pid`: each run of consecutive pages in one kernel call
/// (at most `MAX_PAGES_PER_CALL` pages).
fn unmap_pages(pid: u32, pages: &[u64]) {
    let mut i = 0;
    while i < pages.len() {
        let start = pages[i];
        let mut count = 1;
        while i + (count as usize) < pages.len()
            && count < MAX_PAGES_PER_CALL
            && pages[i + count as usize] == start + count * PAGE_SIZE
        {
            count += 1;
        }
        if let Ok(range) = PageRange::new(start, count) {
            if let Err(error) = syscall::vm_unmap(Pid(pid), range) {
                println!("could not unmap {start:#x} (+{count} pages) of pid {pid}: {error}");
            }
        }
        i += count as usize;
    }
}

fn main(_args: &str) -> i32 {
    println!("serving page faults at {}", ipc::self_endpoint());
    let own_pid = match syscall::vm_process_of(ipc::self_endpoint()).map(u32::try_from) {
        Ok(Ok(pid)) => pid,
        _ => {
            println!("cannot learn VM's own pid; shared memory will not be served");
            0
        }
    };
    let mut server = Server {
        vm: Vm::new(DEFAULT_LIMIT_PAGES),
        fault_times: [0; 4],
        refused_system_call_accesses: 0,
        own_pid,
        backing: BTreeMap::new(),
        slots_used: alloc::vec![false; MAX_SHARED_OBJECTS],
        reported: Default::default(),
    };
    loop {
        let message = match ipc::receive(Endpoint::ANY) {
            Ok(message) => message,
            Err(error) => {
                println!("receive failed: {error}");
                continue;
            }
        };
        let received = vigil_rt::tsc();
        if let Some(fault) = PageFault::from_message(&message) {
            server.handle_fault(&fault, received);
        } else if message.kind == KIND_PROCESS_EXIT && message.source == Endpoint::KERNEL {
            // The kernel freed the address space; the records go, and the backing of
            // objects that died with it.
            let pid = message.payload[0] as u32;
            server.process_exited(pid);
            server.reported.forget(pid);
        } else if message.source.is_thread() {
            let reply = server.handle_request(&message);
            // Never a blocking send: a client that sent without waiting for the answer
            // (Send or SendAsync instead of SendReceive) would hold VM — and with it every
            // page fault in the system — for as long as it does not receive.
            if let Err(error) = ipc::send_nonblocking(message.source, &reply) {
                println!(
                    "reply to {} dropped: {error} (it did not wait for the answer)",
                    message.source
                );
            }
        } else {
            println!(
                "ignoring message kind {:#x} from {}",
                message.kind, message.source
            );
        }
    }
}
