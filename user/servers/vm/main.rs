//! `vm`: the VM server. Every other process's page faults arrive here as messages from the
//! kernel; the policy crate `vigil-vmcore` decides what each one means (demand-zero heap,
//! stack growth to the guard page, anonymous mappings, or an invalid access), and this glue
//! makes the kernel calls it names: `VmMap` and `VmResume`, or `VmFail` with the reason
//! logged. Programs ask for anonymous memory and their own figures with `vm::request`
//! messages. The kernel only maps what this server asks for.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

mod account;
mod introspect;

use vigil_rt::abi::layout::{RUNTIME_HEAP_BYTES, STACK_AREA_TOP, STACK_REGION_SIZE};
use vigil_rt::abi::server_introspect::INTROSPECT;
use vigil_rt::abi::vm::{
    request, FaultAccess, MapFlags, PageFault, PageRange, Pid, KIND_PROCESS_EXIT,
    MAX_PAGES_PER_CALL, PAGE_SIZE,
};
use vigil_rt::{ipc, println, syscall, Endpoint, Error, Message};
use vigil_vmcore::{Access, Decision, Released, Vm, VmError};

vigil_rt::entry!(main);

/// A process's memory limit unless its boot options say otherwise: 128 MiB.
const DEFAULT_LIMIT_PAGES: u64 = (128 << 20) / PAGE_SIZE;
/// Processes an out-of-memory report names.
const REPORTED_USERS: usize = 3;

/// The server's state: the policy's records of every process it has seen.
struct Server {
    vm: Vm,
    /// The virtual sizes reported to the kernel (`account`).
    reported: account::VirtualReports,
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
        VmError::UnknownProcess(_) | VmError::UnknownObject(_) | VmError::NotMapped { .. } => {
            Error::NotFound
        }
        VmError::NameTaken { .. } | VmError::ProcessExists(_) => Error::Exists,
        _ => Error::InvalidArgument,
    }
}

impl Server {
    /// The process `pid` as the policy knows it: created (with the runtime's heap) the first
    /// time VM hears of it.
    fn know(&mut self, pid: u32) {
        if self.vm.process(pid).is_none() && self.vm.create_process(pid).is_ok() {
            let _ = self.vm.set_heap_size(pid, RUNTIME_HEAP_BYTES);
            self.reported.update(&self.vm, pid);
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

    /// One fault: map and resume, or fail it with the reason logged.
    fn handle_fault(&mut self, fault: &PageFault) {
        let refusal = match self.decide(fault) {
            Ok(Decision::MapZero { page, writable }) => {
                match self.map_page(fault, page, writable) {
                    Ok(()) => None,
                    Err(error) => Some(alloc::format!(
                        "the kernel could not map {page:#x}: {error}"
                    )),
                }
            }
            Ok(Decision::Invalid(reason)) => Some(alloc::format!("{reason}")),
            Ok(Decision::MapZeroShared { .. } | Decision::MapShared { .. }) => {
                Some("shared memory is not served yet".into())
            }
            Err(error @ VmError::OutOfMemory { .. }) => {
                self.report_out_of_memory(fault.pid);
                Some(alloc::format!("{error}"))
            }
            Err(error) => Some(alloc::format!("{error}")),
        };
        let answer = match refusal {
            None => syscall::vm_resume(fault.thread),
            Some(reason) => {
                println!(
                    "pid {} thread {}: invalid {} at {:#x} (instruction {:#x}): {reason}",
                    fault.pid,
                    fault.thread,
                    fault.access.name(),
                    fault.address,
                    fault.instruction
                );
                syscall::vm_fail(fault.thread)
            }
        };
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
            Err(error) => {
                let _ = self.vm.map_failed(fault.pid, page);
                if error == Error::OutOfResources {
                    self.report_out_of_memory(fault.pid);
                }
                Err(error)
            }
        }
    }

    /// Unmaps what the policy released: each run of consecutive pages in one kernel call
    /// (at most `MAX_PAGES_PER_CALL` pages).
    fn release(&self, pid: u32, released: &Released) {
        for pages in [&released.private_pages, &released.shared_pages] {
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
                    let _ = syscall::vm_unmap(Pid(pid), range);
                }
                i += count as usize;
            }
        }
    }

    /// Logs who uses the most memory.
    fn report_out_of_memory(&self, pid: u32) {
        println!("out of memory serving pid {pid}; the largest users:");
        for (user, stats) in self.vm.largest_users(REPORTED_USERS) {
            println!(
                "  pid {user}: {} pages resident (peak {}), limit {}",
                stats.resident_pages, stats.peak_resident_pages, stats.limit_pages
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
        let outcome: Result<[u64; 5], VmError> = match message.kind {
            request::MAP_ANONYMOUS => {
                let writable = match p[1] {
                    0 => false,
                    1 => true,
                    _ => {
                        reply.payload[0] = Error::InvalidArgument as u64;
                        return reply;
                    }
                };
                self.vm
                    .map_anonymous(pid, p[0], writable)
                    .map(|base| [base, 0, 0, 0, 0])
            }
            request::UNMAP => self.vm.unmap(pid, p[0], p[1]).map(|released| {
                self.release(pid, &released);
                [0; 5]
            }),
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
                None => Err(VmError::UnknownProcess(pid)),
            },
            _ => {
                reply.payload[0] = Error::NoSuchCall as u64;
                return reply;
            }
        };
        self.reported.update(&self.vm, pid);
        match outcome {
            Ok(values) => reply.payload[1..].copy_from_slice(&values),
            Err(error) => {
                println!("pid {pid}: request {:#x} refused: {error}", message.kind);
                reply.payload[0] = client_error(&error) as u64;
            }
        }
        reply
    }
}

fn main(_args: &str) -> i32 {
    println!("serving page faults at {}", ipc::self_endpoint());
    let mut server = Server {
        vm: Vm::new(DEFAULT_LIMIT_PAGES),
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
        if let Some(fault) = PageFault::from_message(&message) {
            server.handle_fault(&fault);
        } else if message.kind == KIND_PROCESS_EXIT && message.source == Endpoint::KERNEL {
            // The kernel freed the address space; only the records go.
            let pid = message.payload[0] as u32;
            let _ = server.vm.process_exited(pid);
            server.reported.forget(pid);
        } else if message.source.is_thread() {
            let reply = server.handle_request(&message);
            if let Err(error) = ipc::send(message.source, &reply) {
                println!("reply to {} failed: {error}", message.source);
            }
        } else {
            println!(
                "ignoring message kind {:#x} from {}",
                message.kind, message.source
            );
        }
    }
}
