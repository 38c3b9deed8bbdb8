//! The kernel's side of the reincarnation server (RS): which process is RS, so that the
//! host's service commands (`crate::host_command`) have somewhere to go and only RS may
//! answer them, and the crashes of the other system servers (VM, PM, DS), reported to RS
//! before the kernel ends them so they reach RS's restart history. The kernel knows
//! nothing else of services: RS keeps its own table.
//!
//! The system servers have no signal manager: none can be restarted (each keeps its whole
//! state in its own memory), and holding one for RS could wait forever — RS itself calls PM
//! and has its page faults resolved by VM. So the kernel ends a crashed one exactly as
//! before (status 128 + vector) and queues its crash for RS: the event words, its name and
//! the backtrace it printed, collected with `ServiceSystemCrash`.

use crate::system::Kernel;
use vigil_abi::signal::{event, system_crash, SystemCrash, BACKTRACE_FRAMES};
use vigil_kcore::slot::{ProcessSlot, ThreadSlot};

/// Most system-server crashes waiting for RS (there are three other system servers, and
/// each crashes once).
pub const SYSTEM_CRASHES_KEPT: usize = 4;

/// RS's main thread and process, once the boot module named `rs` has started, and the
/// system-server crashes it has not collected yet (oldest first).
pub struct RsLink {
    server: Option<(ThreadSlot, ProcessSlot)>,
    crashes: [Option<SystemCrash>; SYSTEM_CRASHES_KEPT],
}

impl RsLink {
    pub const fn new() -> RsLink {
        RsLink {
            server: None,
            crashes: [None; SYSTEM_CRASHES_KEPT],
        }
    }

    /// RS's process, if RS runs.
    pub fn process(&self) -> Option<ProcessSlot> {
        self.server.map(|(_, process)| process)
    }

    /// RS's main thread, if RS runs (where service commands go).
    pub fn thread(&self) -> Option<ThreadSlot> {
        self.server.map(|(thread, _)| thread)
    }

    /// The oldest system-server crash RS has not collected, taken from the queue.
    pub fn take_system_crash(&mut self) -> Option<SystemCrash> {
        let crash = self.crashes[0].take()?;
        self.crashes.rotate_left(1);
        Some(crash)
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

    /// Thread `slot` of a process took a CPU exception (already reported, with
    /// `backtrace`): if its process is a system server other than RS with no signal
    /// manager (so the kernel is about to end it) and RS runs, the crash is queued for RS
    /// and RS gets a `KIND_PROCESS_EVENT` notice. The kernel's end of the process is not
    /// changed.
    pub fn report_system_server_crash(
        &mut self,
        slot: ThreadSlot,
        fault_address: u64,
        backtrace: &[u64],
    ) {
        let process = self.threads[slot].process();
        let Some((rs_thread, rs_process)) = self.rs.server else {
            return;
        };
        let record = &self.processes[process];
        // One a manager was named for (PM's `MANAGE`) is that manager's to decide about.
        if process == rs_process || !record.is_system_server() || record.signal_manager().is_some()
        {
            return;
        }
        let context = self.threads[slot].context();
        let mut crash = [0u64; system_crash::WORDS];
        crash[system_crash::EVENT + event::PID] = u64::from(record.pid());
        crash[system_crash::EVENT + event::THREAD] = self.table.endpoint(slot).0;
        crash[system_crash::EVENT + event::KIND] = event::EXCEPTION;
        crash[system_crash::EVENT + event::VECTOR] = context.vector;
        crash[system_crash::EVENT + event::ERROR_CODE] = context.error_code;
        crash[system_crash::EVENT + event::FAULT_ADDRESS] = fault_address;
        crash[system_crash::EVENT + event::RIP] = context.rip;
        system_crash::pack_name(record.name().as_bytes(), &mut crash);
        let frames = backtrace.len().min(BACKTRACE_FRAMES);
        crash[system_crash::FRAMES] = frames as u64;
        crash[system_crash::BACKTRACE..system_crash::BACKTRACE + frames]
            .copy_from_slice(&backtrace[..frames]);
        let Some(free) = self.rs.crashes.iter_mut().find(|entry| entry.is_none()) else {
            crate::error!(
                "rs: crash of system server '{}' (pid {}) not reported: {SYSTEM_CRASHES_KEPT} wait for rs already",
                record.name(),
                record.pid()
            );
            return;
        };
        *free = Some(crash);
        crate::info!(
            "rs: crash of system server '{}' (pid {}) reported to the reincarnation server",
            record.name(),
            record.pid()
        );
        self.send_process_event_notice(rs_thread);
    }

    /// RS itself has exited: service commands are answered by the kernel from now on.
    pub fn rs_server_exited(&mut self, process: ProcessSlot) {
        if self.rs.process() == Some(process) {
            self.rs.server = None;
            self.rs.crashes = [None; SYSTEM_CRASHES_KEPT];
            crate::error!("rs: the reincarnation server exited; service commands are refused");
        }
    }
}
