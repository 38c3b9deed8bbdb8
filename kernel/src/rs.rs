//! The kernel's side of the reincarnation server (RS): which process is RS, so that the
//! host's service commands (`crate::host_command`) have somewhere to go and only RS may
//! answer them. The kernel knows nothing else of services: RS keeps its own table.

use crate::system::Kernel;
use vigil_kcore::slot::{ProcessSlot, ThreadSlot};

/// RS's main thread and process, once the boot module named `rs` has started.
pub struct RsLink {
    server: Option<(ThreadSlot, ProcessSlot)>,
}

impl RsLink {
    pub const fn new() -> RsLink {
        RsLink { server: None }
    }

    /// RS's process, if RS runs.
    pub fn process(&self) -> Option<ProcessSlot> {
        self.server.map(|(_, process)| process)
    }

    /// RS's main thread, if RS runs (where service commands go).
    pub fn thread(&self) -> Option<ThreadSlot> {
        self.server.map(|(thread, _)| thread)
    }
}

impl Kernel {
    /// Makes process `process` (just started from the boot module named `rs`) the
    /// reincarnation server.
    pub fn register_rs_server(&mut self, process: ProcessSlot) {
        let endpoint = self.processes[process].main_thread();
        let Some(thread) = ThreadSlot::new(endpoint.slot()) else {
            return;
        };
        self.rs.server = Some((thread, process));
        crate::info!(
            "rs: '{}' answers the host's service commands",
            self.processes[process].name()
        );
    }

    /// RS itself has exited: service commands are answered by the kernel from now on.
    pub fn rs_server_exited(&mut self, process: ProcessSlot) {
        if self.rs.process() == Some(process) {
            self.rs.server = None;
            crate::error!("rs: the reincarnation server exited; service commands are refused");
        }
    }
}
