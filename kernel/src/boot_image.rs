//! The boot image: every Multiboot module is a program; its string names it and its
//! privileges (`kcore::boot_options`). The kernel starts only the system servers of the
//! boot table ([`SYSTEM_SERVERS`]: VM, PM, DS, RS); PM starts every other module, and a `boot=pm`
//! module is an image PM spawns on request (docs/decisions.md, "The boot table"). Without
//! a process manager nothing else runs: the kernel says so on the console, with the
//! modules it leaves. A server module is validated first; one that is malformed is refused
//! with a logged reason and the rest still boot. Every module stays readable for the
//! process manager (`crate::pm`).

use crate::arch::paging::phys_to_virt;
use crate::process::{IpcTargets, ProcessConfig};
use crate::system::{Kernel, KERNEL};
use crate::{error, info, warn};
use vigil_abi::pm::PM_SERVER_NAME;
use vigil_kcore::boot_options::{self, IpcTargetNames};
use vigil_kcore::elf::ElfImage;
use vigil_kcore::multiboot::{BootInfo, MAX_MODULES};
use vigil_kcore::slot::ProcessSlot;

// The boot table is shared with PM and the xtask.
pub use vigil_abi::pm::SYSTEM_SERVERS;

/// Keeps every module readable for PM, then starts the boot table's servers. Returns how
/// many processes the kernel started.
pub fn start_all(boot: &BootInfo) -> usize {
    let mut kernel = KERNEL.lock();
    for (index, module) in boot.modules().enumerate() {
        if module.name_truncated() {
            warn!(
                "boot: module {index} '{}': its string is cut at {} bytes",
                module.name(),
                module.name().len()
            );
        }
        kernel.pm.add_module(crate::pm::BootModule {
            string: alloc::string::String::from(module.name()),
            file: module_file(module.start, module.end),
        });
    }
    // Pending `ipc=` lists, resolved once every server exists: (process slot, list).
    let mut ipc_lists: [Option<(ProcessSlot, &str)>; MAX_MODULES] = [None; MAX_MODULES];
    let Started { started, left } = start_servers(&mut kernel, boot, &mut ipc_lists);
    resolve_ipc_lists(&mut kernel, &ipc_lists);
    if kernel.pm.process().is_none() {
        if left > 0 {
            error!(
                "boot: no process manager ('{PM_SERVER_NAME}') started: {left} other module(s) \
                 not started (the kernel starts only {SYSTEM_SERVERS:?})"
            );
        } else {
            info!("boot: no process manager ('{PM_SERVER_NAME}') started: only the servers run");
        }
    }
    started
}

/// The file of the module at physical `[start, end)`.
fn module_file(start: u64, end: u64) -> &'static [u8] {
    let len = (end - start) as usize;
    // SAFETY: the module's physical range is reserved in the frame allocator (never
    // reused) and covered by the direct map; nothing writes to it.
    unsafe { core::slice::from_raw_parts(phys_to_virt(start) as *const u8, len) }
}

/// What one pass over the modules did.
struct Started {
    /// Servers the kernel started.
    started: usize,
    /// Modules that are not the boot table's servers (PM's to start or to spawn, or
    /// malformed: PM reports them).
    left: usize,
}

/// Starts the boot table's servers, in module order.
fn start_servers<'a>(
    kernel: &mut Kernel,
    boot: &'a BootInfo,
    ipc_lists: &mut [Option<(ProcessSlot, &'a str)>; MAX_MODULES],
) -> Started {
    let mut started = 0;
    let mut left = 0;
    for (index, module) in boot.modules().enumerate() {
        let text = module.name();
        let file = module_file(module.start, module.end);
        let len = file.len();
        // PM reports a module whose options do not parse: it is PM's to start.
        let Ok(options) = boot_options::parse(text) else {
            left += 1;
            continue;
        };
        let server = SYSTEM_SERVERS.contains(&options.name);
        if !server {
            left += 1;
        }
        if options.spawned_by_pm {
            info!(
                "boot: module {index} '{}' is an image for the process manager",
                options.name
            );
            continue;
        }
        if !server {
            info!(
                "boot: module {index} '{}' is the process manager's to start",
                options.name
            );
            continue;
        }
        if kernel.process_named(options.name).is_some() {
            error!(
                "boot: module '{}' refused: a process with that name already exists",
                options.name
            );
            continue;
        }
        let image = match ElfImage::parse(file) {
            Ok(image) => image,
            Err(reason) => {
                error!("boot: module '{}' refused: {reason}", options.name);
                continue;
            }
        };
        let ipc_targets = match options.ipc {
            IpcTargetNames::All => IpcTargets::All,
            IpcTargetNames::None | IpcTargetNames::Only(_) => IpcTargets::Only(0),
        };
        let config = ProcessConfig {
            name: options.name,
            priority: options.priority,
            kernel_calls: options.kernel_calls,
            ipc_targets,
            memory_limit_pages: options.memory_limit_pages.unwrap_or(0),
        };
        let arguments = keep_forever(options.arguments);
        match kernel.create_process(&config, &image, file, arguments) {
            Ok(slot) => {
                kernel.processes[slot].mark_system_server();
                if options.name == crate::vm::VM_SERVER_NAME {
                    kernel.register_vm_server(slot);
                }
                if options.name == PM_SERVER_NAME {
                    kernel.register_pm_server(slot);
                }
                if options.name == vigil_abi::rs::RS_SERVER_NAME {
                    kernel.register_rs_server(slot);
                }
                let process = &kernel.processes[slot];
                info!(
                    "boot: started '{}' (pid {}, priority {}, {} KiB image, entry {:#x})",
                    process.name(),
                    process.pid(),
                    process.priority(),
                    len / 1024,
                    image.entry
                );
                if let IpcTargetNames::Only(list) = options.ipc {
                    ipc_lists[index] = Some((slot, list));
                }
                started += 1;
            }
            Err(reason) => error!(
                "boot: module '{}' refused: cannot create the process: {reason}",
                options.name
            ),
        }
    }
    Started { started, left }
}

/// A copy of a module's argument string that outlives boot: the `BootInfo` holding the
/// module strings lives on the boot stack, which the first entry from user mode reuses.
fn keep_forever(arguments: &str) -> &'static [u8] {
    alloc::vec::Vec::leak(arguments.as_bytes().to_vec())
}

/// Turns each `ipc=a+b` list into a mask of process slots. Unknown names are logged and
/// grant nothing (fail closed).
fn resolve_ipc_lists(kernel: &mut Kernel, lists: &[Option<(ProcessSlot, &str)>]) {
    for &(slot, list) in lists.iter().flatten() {
        let mut mask = 0u64;
        for name in list.split('+') {
            match kernel.process_named(name) {
                Some(target) => mask |= 1 << target.get(),
                None => warn!(
                    "boot: '{}' may send to '{name}', but no boot process has that name",
                    kernel.processes[slot].name()
                ),
            }
        }
        kernel.processes[slot].set_ipc_targets(IpcTargets::Only(mask));
    }
}
