//! The process manager's kernel calls (`kcalls=pm`): read the boot modules, create an
//! empty process, map and fill its image, start it (with its `ipc=` limit), kill a
//! process, collect exits.
//!
//! Mechanism only: PM validates the ELF (`kcore::elf`) and decides what to map where; the
//! kernel parses no ELF for a process PM starts. Each call checks everything before it
//! changes anything, and its work is bounded (`MAX_PAGES_PER_CALL` pages,
//! `pm::MAX_COPY_BYTES` bytes, one reaped exit).

use alloc::vec;

use crate::memory;
use crate::process::{IpcTargets, ProcessConfig};
use crate::syscall::Next;
use crate::system::Kernel;
use crate::thread::frames_to_map;
use crate::usercopy;
use vigil_abi::layout::{USER_IMAGE_END, USER_IMAGE_MIN};
use vigil_abi::pm::{IpcAllow, MAX_ARGUMENT_BYTES, MAX_COPY_BYTES};
use vigil_abi::syscall::{
    PmCopyToArgs, PmCreateArgs, PmKillArgs, PmMapImageArgs, PmModuleNameArgs, PmModuleReadArgs,
    PmReapArgs, PmStartArgs,
};
use vigil_abi::user_memory::UserSlice;
use vigil_abi::vm::Pid;
use vigil_abi::Error;
use vigil_kcore::boot_options::MAX_NAME;
use vigil_kcore::slot::{ProcessSlot, ThreadSlot};

/// The caller's pid.
fn caller_pid(kernel: &Kernel, caller: ThreadSlot) -> u32 {
    kernel.process_of(caller).pid()
}

/// A live process the caller created with `PmCreate` and has not started yet (its
/// reaper; its signal manager may already be another, `spawn_flags::CALLER_MANAGES`).
fn unstarted_child(kernel: &Kernel, caller: ThreadSlot, pid: Pid) -> Result<ProcessSlot, Error> {
    let slot = kernel.processes.by_pid(pid.0).ok_or(Error::NotFound)?;
    let process = &kernel.processes[slot];
    if process.reaper() != Some(caller_pid(kernel, caller)) {
        return Err(Error::PermissionDenied);
    }
    if process.started() {
        return Err(Error::Exists);
    }
    Ok(slot)
}

/// PmModuleName: boot module `index`'s string, as much as fits; returns its length.
pub fn module_name(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: PmModuleNameArgs,
) -> Result<Next, Error> {
    let module = kernel.pm.module(args.index).ok_or(Error::NotFound)?;
    let bytes = module.string.as_bytes();
    let len = bytes.len().min(args.buffer.len());
    usercopy::write(
        kernel.space_of(caller),
        args.buffer.truncate(len),
        &bytes[..len],
    )?;
    Ok(Next::Return(bytes.len() as u64))
}

/// PmModuleRead: bytes of boot module `index` from `offset`; returns how many (0 at the end).
pub fn module_read(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: PmModuleReadArgs,
) -> Result<Next, Error> {
    let module = kernel.pm.module(args.index).ok_or(Error::NotFound)?;
    let file = module.file;
    if args.buffer.is_empty() {
        return Ok(Next::Return(file.len() as u64));
    }
    let start = usize::try_from(args.offset)
        .unwrap_or(usize::MAX)
        .min(file.len());
    let len = (file.len() - start)
        .min(args.buffer.len())
        .min(MAX_COPY_BYTES as usize);
    usercopy::write(
        kernel.space_of(caller),
        args.buffer.truncate(len),
        &file[start..start + len],
    )?;
    Ok(Next::Return(len as u64))
}

/// PmCreate: an empty process managed by the caller; returns its pid.
pub fn create(kernel: &mut Kernel, caller: ThreadSlot, args: PmCreateArgs) -> Result<Next, Error> {
    if args.name.is_empty() || args.name.len() > MAX_NAME {
        return Err(Error::InvalidArgument);
    }
    let mut buffer = [0u8; MAX_NAME];
    let name = &mut buffer[..args.name.len()];
    usercopy::read(kernel.space_of(caller), args.name, name)?;
    let name = core::str::from_utf8(name).map_err(|_| Error::InvalidArgument)?;
    if name.contains('/') {
        return Err(Error::InvalidArgument);
    }
    let config = ProcessConfig {
        name,
        priority: args.priority.get(),
        kernel_calls: args.kernel_calls,
        ipc_targets: IpcTargets::All,
        memory_limit_pages: args.memory_limit_pages,
    };
    let manager = caller_pid(kernel, caller);
    let slot = kernel.create_empty_process(&config, manager)?;
    Ok(Next::Return(u64::from(kernel.processes[slot].pid())))
}

/// PmMapImage: fresh zeroed image pages in a process the caller has not started.
pub fn map_image(
    kernel: &mut Kernel,
    caller: ThreadSlot,
    args: PmMapImageArgs,
) -> Result<Next, Error> {
    let slot = unstarted_child(kernel, caller, args.process)?;
    if args.range.start() < USER_IMAGE_MIN || args.range.end() > USER_IMAGE_END {
        return Err(Error::InvalidArgument);
    }
    let target = &kernel.processes[slot];
    if target.any_mapped(args.range) {
        return Err(Error::Exists);
    }
    if (memory::free_frames() as u64) < frames_to_map(args.range.pages()) {
        return Err(Error::OutOfResources);
    }
    kernel.processes[slot].map_image(args.range, args.flags);
    Ok(Next::Return(0))
}

/// PmCopyTo: the caller's bytes into mapped image pages of a process it has not started.
pub fn copy_to(kernel: &mut Kernel, caller: ThreadSlot, args: PmCopyToArgs) -> Result<Next, Error> {
    let slot = unstarted_child(kernel, caller, args.process)?;
    if args.data.len() as u64 > MAX_COPY_BYTES {
        return Err(Error::InvalidArgument);
    }
    let destination = UserSlice::<u8>::new(args.address, args.data.len() as u64)?;
    if destination.address() < USER_IMAGE_MIN
        || destination.address() + destination.len() as u64 > USER_IMAGE_END
    {
        return Err(Error::InvalidArgument);
    }
    let mut bytes = vec![0u8; args.data.len()];
    usercopy::read(kernel.space_of(caller), args.data, &mut bytes)?;
    let filled = usercopy::fill(kernel.processes[slot].space(), destination, &bytes);
    if filled.is_err() {
        // The target's page is missing, not the caller's: nothing for VM to serve.
        usercopy::forget_missing_page();
        return Err(Error::Fault);
    }
    Ok(Next::Return(0))
}

/// PmStart: the main thread of a process the caller created, with its arguments.
pub fn start(kernel: &mut Kernel, caller: ThreadSlot, args: PmStartArgs) -> Result<Next, Error> {
    let slot = unstarted_child(kernel, caller, args.process)?;
    if args.arguments.len() as u64 > MAX_ARGUMENT_BYTES {
        return Err(Error::InvalidArgument);
    }
    let mut arguments = vec![0u8; args.arguments.len()];
    usercopy::read(kernel.space_of(caller), args.arguments, &mut arguments)?;
    let targets = ipc_targets(kernel, caller, args.ipc)?;
    let endpoint = kernel.start_created_process(slot, args.entry, &arguments)?;
    kernel.processes[slot].set_ipc_targets(targets);
    Ok(Next::Return(endpoint.0))
}

/// `PmStart`'s `ipc`: every process, or a mask of the slots of the live processes the
/// caller's pid list names (`NotFound` for a pid that is not live).
fn ipc_targets(kernel: &Kernel, caller: ThreadSlot, ipc: IpcAllow) -> Result<IpcTargets, Error> {
    let IpcAllow::Only(list) = ipc else {
        return Ok(IpcTargets::All);
    };
    let list = usercopy::read_value(kernel.space_of(caller), list)?;
    let mut mask = 0u64;
    for &pid in IpcAllow::pids(&list)? {
        let slot = kernel.processes.by_pid(pid).ok_or(Error::NotFound)?;
        mask |= 1 << slot.get();
    }
    Ok(IpcTargets::Only(mask))
}

/// PmKill: ends a process in any state. Never the caller's own process or VM.
pub fn kill(kernel: &mut Kernel, caller: ThreadSlot, args: PmKillArgs) -> Result<Next, Error> {
    let slot = kernel
        .processes
        .by_pid(args.process.0)
        .ok_or(Error::NotFound)?;
    if slot == kernel.threads[caller].process() || Some(slot) == kernel.vm_server_process() {
        return Err(Error::PermissionDenied);
    }
    kernel.exit_process(slot, args.status);
    Ok(Next::Return(0))
}

/// PmReap: one exit of a process the caller manages, written as `[pid, status]`.
pub fn reap(kernel: &mut Kernel, caller: ThreadSlot, args: PmReapArgs) -> Result<Next, Error> {
    let manager = caller_pid(kernel, caller);
    // Check the buffer first, so a bad one loses no exit.
    usercopy::write_value(kernel.space_of(caller), args.out, &[0u64; 2])?;
    let Some((pid, status)) = kernel.processes.reap(manager) else {
        return Ok(Next::Return(0));
    };
    let written =
        usercopy::write_value(kernel.space_of(caller), args.out, &[u64::from(pid), status]);
    debug_assert!(written.is_ok(), "the buffer was just written");
    Ok(Next::Return(1))
}
