//! RS and the system servers of the boot table (VM, PM, DS and RS itself): the kernel
//! starts them, not RS, and makes RS the signal manager of the others once it is up, so
//! their crashes reach RS's restart history. RS lists them (state `system`), refuses every
//! operator action on them (they are not restartable: their state lives only in their
//! memory — DS's store too, so not even DS is safe to restart), and when one takes an
//! exception RS records it with its backtrace, raises an `ALERT` and has the kernel end it
//! as it would have without a manager (`ServiceEndSystem`).

use alloc::vec::Vec;

use vigil_rt::abi::pm::SYSTEM_SERVERS;
use vigil_rt::abi::rs::{reason, RestartPolicy, ServiceState, SYSTEM_SERVER_REFUSAL};
use vigil_rt::abi::signal::{event, ProcessEvent};
use vigil_rt::abi::vm::Pid;
use vigil_rt::{ipc, println, syscall, time, Endpoint, Error};

use super::{describe, print_backtrace, Failure, Rs, Service};

impl Rs {
    /// Adds an entry (state `system`) for each system server that runs, RS's own last,
    /// after the supervised services (whose indices stay what RS's table made them).
    pub(crate) fn add_system_servers(&mut self) {
        for &name in SYSTEM_SERVERS {
            let endpoint = if name == vigil_rt::abi::rs::RS_SERVER_NAME {
                ipc::self_endpoint()
            } else {
                match ipc::lookup(name) {
                    Ok(endpoint) => endpoint,
                    Err(_) => continue,
                }
            };
            if self.services.iter().any(|service| service.name == name) {
                println!("system server '{name}' is also in the service table: listed once, as a service");
                continue;
            }
            let mut service = Service::new(name, RestartPolicy::DEFAULT, ServiceState::System);
            service.endpoint = endpoint;
            service.started_ns = time::now_ns();
            println!(
                "system server '{name}' at {endpoint}: listed, not restartable (RS is its signal manager)"
            );
            self.services.push(service);
        }
    }

    /// `PermissionDenied` (with a console line) if service `index` is a system server:
    /// no operator action applies to one.
    pub(crate) fn refuse_system_server(&self, index: usize, action: &str) -> Result<(), Error> {
        let service = &self.services[index];
        if !service.system {
            return Ok(());
        }
        println!(
            "service '{}': {action} refused: {SYSTEM_SERVER_REFUSAL}",
            service.name
        );
        Err(Error::PermissionDenied)
    }

    /// `UPDATE`'s refusal for a system server (`payload[0]` its index); any other index,
    /// valid or not, is `begin_update`'s to judge.
    pub(crate) fn refuse_system_update(&self, index: u64) -> Result<(), Error> {
        match self.index(index) {
            Ok(index) => self.refuse_system_server(index, "update"),
            Err(_) => Ok(()),
        }
    }

    /// The system server whose main thread is `thread` (the one a crash event names).
    pub(crate) fn system_server_of(&self, thread: Endpoint) -> Option<usize> {
        self.services
            .iter()
            .position(|service| service.system && service.endpoint == thread)
    }

    /// System server `index` took the exception of event `record`: RS records it (reason,
    /// time, backtrace), says plainly that it cannot restart it, and has the kernel end it.
    pub(crate) fn system_server_crashed(
        &mut self,
        index: usize,
        record: &ProcessEvent,
        backtrace: Vec<u64>,
    ) {
        let pid = record[event::PID];
        let vector = record[event::VECTOR];
        let service = &mut self.services[index];
        let failure = Failure {
            reason: reason::EXCEPTION,
            detail: vector,
        };
        service.last = failure;
        service.last_failure_ns = time::now_ns();
        service.failures_in_a_row = service.failures_in_a_row.saturating_add(1);
        service.backtrace = backtrace;
        service.backtrace_vector = vector;
        service.state = ServiceState::SystemFailed;
        service.endpoint = Endpoint::NONE;
        println!(
            "ALERT: system server '{}' (pid {pid}) crashed: {} at {:#x} (address {:#x}); RS cannot restart it: {SYSTEM_SERVER_REFUSAL}",
            service.name,
            describe(failure),
            record[event::RIP],
            record[event::FAULT_ADDRESS],
        );
        print_backtrace(&service.program, &service.backtrace);
        match syscall::service_end_system(Pid(pid as u32)) {
            Ok(_) => println!(
                "system server '{}' (pid {pid}) ended; the rest of the system runs on without it",
                service.name
            ),
            Err(error) => println!(
                "system server '{}' (pid {pid}): ending it failed: {error}",
                service.name
            ),
        }
    }
}
