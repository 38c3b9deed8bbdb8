//! The kernel's side of the reincarnation server (RS): which process is RS, so that the
//! host's service commands (`crate::host_command`) have somewhere to go and only RS may
//! answer them, and RS as the signal manager of the other system servers (VM, PM, DS), so
//! their crashes reach RS's restart history. The kernel knows nothing else of services:
//! RS keeps its own table.

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

    /// Once the boot table's servers are created: RS (if it runs) becomes the signal
    /// manager of every other system server, so a CPU exception of VM, PM or DS is held for
    /// RS, which records it (backtrace included) and ends it (`ServiceEndSystem`) instead of
    /// the kernel killing it unseen. RS has none of PM's signal or trace calls, so managing
    /// them gives it no way to stop, signal or trace them.
    pub fn adopt_system_servers(&mut self) {
        let Some(rs) = self.rs.process() else {
            return;
        };
        let rs_pid = self.processes[rs].pid();
        for slot in ProcessSlot::all() {
            let process = &mut self.processes[slot];
            if slot == rs || !process.is_system_server() || process.signal_manager().is_some() {
                continue;
            }
            process.set_signal_manager(rs_pid);
            crate::info!(
                "rs: signal manager of system server '{}' (pid {})",
                process.name(),
                process.pid()
            );
        }
    }

    /// RS itself has exited: service commands are answered by the kernel from now on.
    pub fn rs_server_exited(&mut self, process: ProcessSlot) {
        if self.rs.process() == Some(process) {
            self.rs.server = None;
            crate::error!("rs: the reincarnation server exited; service commands are refused");
        }
    }
}
