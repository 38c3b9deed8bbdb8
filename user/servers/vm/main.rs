//! `vm`: the VM server — resolves page faults of every other process as messages from the
//! kernel: demand-zero heap pages and stack growth down to the guard page; anything else
//! is an invalid access, failed back to the kernel (which reports it and kills the
//! process). Memory policy lives here; the kernel only maps what this server asks for.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use vigil_rt::abi::layout::{
    HEAP_BASE, RUNTIME_HEAP_BYTES, STACK_AREA_TOP, STACK_REGION_SIZE, USER_END,
};
use vigil_rt::abi::vm::{
    FaultAccess, MapFlags, PageFault, PageRange, Pid, KIND_PROCESS_EXIT, PAGE_SIZE,
};
use vigil_rt::{ipc, println, syscall, Endpoint, Error, Message};

vigil_rt::entry!(main);

/// Threads per process whose stack regions VM knows (the kernel's thread table size).
const MAX_STACK_REGIONS: u64 = 1024;

/// What a fault means under this server's policy.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// Map a fresh zeroed page here.
    MapZero(u64),
    /// Not a valid access; the reason is logged.
    Invalid(&'static str),
}

/// The policy: heap pages and stack pages above a stack region's guard page are demand-zero
/// and writable; nothing VM maps is executable; a fault on a present page is a protection
/// violation.
fn decide(fault: &PageFault) -> Decision {
    let page = fault.address & !(PAGE_SIZE - 1);
    if fault.address >= USER_END {
        return Decision::Invalid("kernel address");
    }
    if fault.present {
        return Decision::Invalid("protection violation on a mapped page");
    }
    if fault.access == FaultAccess::Execute {
        return Decision::Invalid("execute outside the program image");
    }
    if (HEAP_BASE..HEAP_BASE + RUNTIME_HEAP_BYTES).contains(&fault.address) {
        return Decision::MapZero(page);
    }
    let stack_bottom = STACK_AREA_TOP - MAX_STACK_REGIONS * STACK_REGION_SIZE;
    if (stack_bottom..STACK_AREA_TOP).contains(&fault.address) {
        let guard = fault.address & !(STACK_REGION_SIZE - 1);
        if page == guard {
            return Decision::Invalid("stack overflow (the guard page below the stack limit)");
        }
        return Decision::MapZero(page);
    }
    Decision::Invalid("no memory region there")
}

/// Handles one fault: map and resume, or fail.
fn handle(fault: &PageFault, faults: &mut u64) {
    *faults += 1;
    let result = match decide(fault) {
        Decision::MapZero(page) => {
            let range = PageRange::new(page, 1).expect("a user page");
            match syscall::vm_map(Pid(fault.pid), range, MapFlags::WRITABLE) {
                // Exists: another thread of the process faulted on the page first.
                Ok(_) | Err(Error::Exists) => syscall::vm_resume(fault.thread),
                Err(error) => {
                    println!(
                        "out of memory for pid {} at {:#x}: {error}",
                        fault.pid, fault.address
                    );
                    syscall::vm_fail(fault.thread)
                }
            }
        }
        Decision::Invalid(reason) => {
            println!(
                "vm: pid {} thread {}: invalid {} at {:#x} (instruction {:#x}): {reason}",
                fault.pid,
                fault.thread,
                fault.access.name(),
                fault.address,
                fault.instruction
            );
            syscall::vm_fail(fault.thread)
        }
    };
    if let Err(error) = result {
        // The thread may have been killed meanwhile (its process exited).
        println!(
            "vm: could not answer the fault of {}: {error}",
            fault.thread
        );
    }
}

fn main(_args: &str) -> i32 {
    println!("serving page faults at {}", ipc::self_endpoint());
    let mut faults = 0u64;
    loop {
        let message: Message = match ipc::receive(Endpoint::ANY) {
            Ok(message) => message,
            Err(error) => {
                println!("receive failed: {error}");
                continue;
            }
        };
        if let Some(fault) = PageFault::from_message(&message) {
            handle(&fault, &mut faults);
        } else if message.kind == KIND_PROCESS_EXIT && message.source == Endpoint::KERNEL {
            // Nothing kept per process yet: the kernel frees the address space.
        } else {
            println!(
                "vm: ignoring message kind {:#x} from {}",
                message.kind, message.source
            );
        }
    }
}
