//! PM's part of the boot: it starts every boot module that is neither a system server of
//! the boot table (`SYSTEM_SERVERS`, which the kernel started) nor a `boot=pm` image, in
//! module order, as its own children, with the module string's privileges (name, prio=,
//! kcalls=, ipc=, mem=, arguments). A module whose options do not parse, whose file is
//! not a valid ELF, or that cannot be built is refused with a console line; the rest still
//! boot.
//!
//! Two passes, so `ipc=` may name a program later in the list: every program is created
//! and loaded first (none runs yet), then each is started with its `ipc=` names resolved
//! to pids.

use alloc::string::String;
use alloc::vec::Vec;

use vigil_kcore::boot_options::{self, IpcTargetNames};
use vigil_rt::abi::pm::{Priority, MAX_IPC_PIDS, SYSTEM_SERVERS};
use vigil_rt::abi::vm::Pid;
use vigil_rt::{println, syscall, Endpoint, Error};

use crate::{Entry, Pm, MODULE_STRING_BYTES};

/// A boot program built (created and loaded) and not yet started.
struct Built {
    pid: u64,
    name: String,
    arguments: String,
    priority: u8,
    /// `None`: may send to anyone; else the names of `ipc=`.
    ipc: Option<Vec<String>>,
    entry: u64,
    image_kib: usize,
}

impl Pm {
    /// Starts the boot programs (called once, before PM serves requests). Returns how
    /// many started.
    pub fn start_boot_programs(&mut self) -> usize {
        let mut built = Vec::new();
        let mut buffer = [0u8; MODULE_STRING_BYTES];
        for index in 0.. {
            let len = match syscall::pm_module_name(index, &mut buffer) {
                Ok(len) => len as usize,
                Err(Error::NotFound) => break,
                Err(error) => {
                    println!("boot: reading module {index} failed: {error}");
                    break;
                }
            };
            if len > MODULE_STRING_BYTES {
                println!(
                    "boot: module {index} refused: its string is over {MODULE_STRING_BYTES} bytes"
                );
                continue;
            }
            let Ok(text) = core::str::from_utf8(&buffer[..len]) else {
                println!("boot: module {index} refused: its string is not UTF-8");
                continue;
            };
            let text = String::from(text);
            match self.build(index, &text, &built) {
                Ok(Some(program)) => built.push(program),
                Ok(None) => {}
                Err(reason) => println!("boot: module {index} '{text}' refused: {reason}"),
            }
        }
        // Boot images are read once; the heap is for the processes' bookkeeping now.
        self.images.clear();
        let mut started = 0;
        for program in &built {
            if self.start(program, &built) {
                started += 1;
            }
        }
        println!("boot: {started} of {} programs started by pm", built.len());
        started
    }

    /// Creates and loads the program of module `index` (string `text`) if it is PM's to
    /// start at boot: `Ok(None)` if it is not, `Err` with the reason it is refused.
    fn build(&mut self, index: u64, text: &str, built: &[Built]) -> Result<Option<Built>, String> {
        let options = boot_options::parse(text).map_err(|reason| alloc::format!("{reason}"))?;
        if options.spawned_by_pm || SYSTEM_SERVERS.contains(&options.name) {
            return Ok(None);
        }
        if built.iter().any(|program| program.name == options.name) {
            return Err(String::from("a process with that name already exists"));
        }
        let priority =
            Priority::new(u64::from(options.priority)).map_err(|e| alloc::format!("{e}"))?;
        let ipc = match options.ipc {
            IpcTargetNames::All => None,
            IpcTargetNames::None => Some(Vec::new()),
            IpcTargetNames::Only(list) => Some(list.split('+').map(String::from).collect()),
        };
        if ipc.as_ref().is_some_and(|names| names.len() > MAX_IPC_PIDS) {
            return Err(alloc::format!(
                "ipc= names more than {MAX_IPC_PIDS} processes"
            ));
        }
        let name = String::from(options.name);
        let arguments = String::from(options.arguments);
        let kernel_calls = options.kernel_calls;
        let memory_limit = options.memory_limit_pages.unwrap_or(0);
        let image = self
            .image(index)
            .map_err(|reason| alloc::format!("{reason}"))?;
        let image_kib = (image.file_bytes / 1024) as usize;
        let entry = image.elf.entry;
        let pid = syscall::pm_create(&name, priority, kernel_calls, memory_limit)
            .map_err(|e| alloc::format!("cannot create the process: {e}"))?;
        if let Err(error) = self.images[&index].load(Pid(pid as u32)) {
            // The half-built process goes; its exit is collected like any other.
            let _ = syscall::pm_kill(Pid(pid as u32), 127);
            return Err(alloc::format!("cannot load pid {pid}: {error}"));
        }
        Ok(Some(Built {
            pid,
            name,
            arguments,
            priority: options.priority,
            ipc,
            entry,
            image_kib,
        }))
    }

    /// Starts built program `program`, its `ipc=` names resolved among the boot
    /// processes; whether it started.
    fn start(&mut self, program: &Built, built: &[Built]) -> bool {
        let pid = Pid(program.pid as u32);
        let mut pids = Vec::new();
        if let Some(names) = &program.ipc {
            for name in names {
                let target = built
                    .iter()
                    .find(|other| other.name == *name)
                    .map(|other| other.pid)
                    .or_else(|| self.server_pid(name));
                match target {
                    Some(target) => pids.push(target as u32),
                    // Fail closed, as the kernel does for the servers' lists.
                    None => println!(
                        "boot: '{}' may send to '{name}', but no boot process has that name",
                        program.name
                    ),
                }
            }
        }
        let ipc = program.ipc.as_ref().map(|_| pids.as_slice());
        match syscall::pm_start_limited(pid, program.entry, program.arguments.as_bytes(), ipc) {
            Ok(main_thread) => {
                println!(
                    "boot: started '{}' (pid {}, priority {}, {} KiB image, entry {:#x}, by pm)",
                    program.name, program.pid, program.priority, program.image_kib, program.entry
                );
                self.processes.insert(
                    program.pid,
                    Entry {
                        parent: self.own_pid,
                        exit_status: None,
                        name: program.name.clone(),
                        arguments: program.arguments.clone(),
                        start_ns: vigil_rt::time::now_ns(),
                        main_thread,
                        managed_by_parent: false,
                        exit_notice_to: Endpoint::NONE,
                    },
                );
                true
            }
            Err(error) => {
                println!(
                    "boot: module '{}' refused: cannot start pid {}: {error}",
                    program.name, program.pid
                );
                let _ = syscall::pm_kill(pid, 127);
                false
            }
        }
    }

    /// The pid of system server `name` (which the kernel started), if it runs.
    fn server_pid(&self, name: &str) -> Option<u64> {
        if name == vigil_rt::abi::pm::PM_SERVER_NAME {
            return Some(self.own_pid);
        }
        if !SYSTEM_SERVERS.contains(&name) {
            return None;
        }
        let endpoint = vigil_rt::ipc::lookup(name).ok()?;
        Pm::pid_of(endpoint).ok()
    }
}
