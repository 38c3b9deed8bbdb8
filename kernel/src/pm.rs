//! The kernel's side of the process manager (PM): which process is PM, the boot modules it
//! may read, and the child-exit notice the kernel owes it.
//!
//! The kernel starts the system servers of the boot table (`boot_image::SYSTEM_SERVERS`)
//! and PM starts every other module; every module stays readable for PM (`PmModuleName`,
//! `PmModuleRead`), never writable. A process PM
//! creates (`PmCreate`) names PM as its signal manager; when it exits its slot stays
//! reserved with the exit status until PM collects it (`PmReap`), and PM gets one
//! `KIND_CHILD_EXITED` message (held until PM receives, coalescing with any already held).

use alloc::string::String;
use alloc::vec::Vec;

use crate::system::Kernel;
use vigil_abi::message::Message;
use vigil_abi::pm::KIND_CHILD_EXITED;
use vigil_abi::Endpoint;
use vigil_kcore::slot::{ProcessSlot, ThreadSlot};

/// A boot module as PM sees it: its string and its file (the frames are reserved for the
/// life of the system and only ever read).
pub struct BootModule {
    pub string: String,
    pub file: &'static [u8],
}

/// The process manager, the modules it may read, and whether a child-exit notice waits.
pub struct PmLink {
    /// PM's main thread and process, once the boot module named `pm` has started.
    server: Option<(ThreadSlot, ProcessSlot)>,
    modules: Vec<BootModule>,
    /// An exit happened while PM was not receiving: the next receive gets the notice.
    exit_pending: bool,
}

impl PmLink {
    pub const fn new() -> PmLink {
        PmLink {
            server: None,
            modules: Vec::new(),
            exit_pending: false,
        }
    }

    /// Keeps boot module `module` readable for PM.
    pub fn add_module(&mut self, module: BootModule) {
        self.modules.push(module);
    }

    /// Boot module `index`, if there is one.
    pub fn module(&self, index: u64) -> Option<&BootModule> {
        self.modules.get(usize::try_from(index).ok()?)
    }

    /// PM's process, if PM runs.
    pub fn process(&self) -> Option<ProcessSlot> {
        self.server.map(|(_, process)| process)
    }

    /// PM's main thread, if PM runs (where host commands go).
    pub fn thread(&self) -> Option<ThreadSlot> {
        self.server.map(|(thread, _)| thread)
    }

    /// Whether `receiver` is PM with a child-exit notice held: the notice.
    #[inline]
    pub fn peek(&self, receiver: ThreadSlot) -> Option<Message> {
        self.holds_notice_for(receiver).then(child_exited)
    }

    /// Whether `peek(receiver)` has the notice, without building it.
    #[inline(always)]
    pub fn holds_notice_for(&self, receiver: ThreadSlot) -> bool {
        self.exit_pending && self.server.map(|(thread, _)| thread) == Some(receiver)
    }

    /// The notice `peek` returned was delivered.
    pub fn consume(&mut self, receiver: ThreadSlot) {
        if self.server.map(|(thread, _)| thread) == Some(receiver) {
            self.exit_pending = false;
        }
    }
}

fn child_exited() -> Message {
    let mut message = Message::new(KIND_CHILD_EXITED);
    message.source = Endpoint::KERNEL;
    message
}

impl Kernel {
    /// Makes process `process` (just started from the boot module named `pm`) the process
    /// manager.
    pub fn register_pm_server(&mut self, process: ProcessSlot) {
        let endpoint = self.processes[process].main_thread();
        let Some(thread) = ThreadSlot::new(endpoint.slot()) else {
            return;
        };
        self.pm.server = Some((thread, process));
        crate::info!(
            "pm: '{}' manages the processes it starts",
            self.processes[process].name()
        );
    }

    /// A process PM manages has exited: tell PM now if it is receiving, else hold the
    /// notice for its next receive.
    pub fn notify_pm_of_exit(&mut self) {
        let Some((thread, _)) = self.pm.server else {
            return;
        };
        let delivered = {
            let (table, mut env) = self.ipc_parts();
            table.deliver_from_kernel(&mut env, thread, &child_exited())
        };
        if !delivered {
            self.pm.exit_pending = true;
        }
    }

    /// PM itself has exited: nobody collects exits any more.
    pub fn pm_server_exited(&mut self, process: ProcessSlot) {
        if self.pm.process() == Some(process) {
            self.pm.server = None;
            self.pm.exit_pending = false;
            let pid = self.processes[process].pid();
            self.processes.forget_exits_managed_by(pid);
            crate::error!(
                "pm: the process manager exited; exits of its processes are not collected"
            );
        }
    }
}
