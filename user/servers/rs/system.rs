//! RS and the system servers of the boot table (VM, PM, DS and RS itself): the kernel
//! starts them, not RS. RS lists them (state `system`) and refuses every operator action on
//! them: they are not restartable, their state lives only in their memory — DS's store
//! too, so not even DS is safe to restart. When one takes an exception the kernel ends it
//! as always and queues the crash for RS (`ServiceSystemCrash`, with a `KIND_PROCESS_EVENT`
//! notice): RS records it in the entry's history with the backtrace (state
//! `system-failed`) and raises an `ALERT` that says it cannot restart it.

use vigil_rt::abi::pm::SYSTEM_SERVERS;
use vigil_rt::abi::rs::{reason, RestartPolicy, ServiceState, SYSTEM_SERVER_REFUSAL};
use vigil_rt::abi::signal::{
    event, exception_mnemonic, system_crash, SystemCrash, BACKTRACE_FRAMES,
};
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
            println!("system server '{name}' at {endpoint}: listed, not restartable");
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

    /// Takes every system-server crash the kernel queued for RS (it has ended each): RS
    /// records it (reason, time, backtrace) and says plainly that it cannot restart it.
    pub(crate) fn system_server_crashes(&mut self) {
        loop {
            match syscall::service_system_crash() {
                Ok(Some(crash)) => self.system_server_crashed(&crash),
                Ok(None) => break,
                Err(error) => {
                    println!("collecting system-server crashes failed: {error}");
                    break;
                }
            }
        }
    }

    fn system_server_crashed(&mut self, crash: &SystemCrash) {
        let event = &crash[system_crash::EVENT..system_crash::EVENT + 8];
        let pid = event[event::PID];
        let vector = event[event::VECTOR];
        let frames = (crash[system_crash::FRAMES] as usize).min(BACKTRACE_FRAMES);
        let backtrace = crash[system_crash::BACKTRACE..system_crash::BACKTRACE + frames].to_vec();
        let mut name = [0u8; 32];
        let Some(name) = system_crash::name(crash, &mut name) else {
            println!(
                "ALERT: a system server (pid {pid}, its name unreadable) crashed: {} at {:#x}; the kernel ended it",
                exception_mnemonic(vector),
                event[event::RIP]
            );
            return;
        };
        // One that crashed before RS listed it (before RS ever ran) is listed now.
        let index = match self
            .services
            .iter()
            .position(|s| s.system && s.name == name)
        {
            Some(index) => index,
            None => {
                self.services.push(Service::new(
                    name,
                    RestartPolicy::DEFAULT,
                    ServiceState::SystemFailed,
                ));
                self.services.len() - 1
            }
        };
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
            "ALERT: system server '{}' (pid {pid}) crashed: {} at {:#x} (address {:#x}); the kernel ended it and RS cannot restart it: {SYSTEM_SERVER_REFUSAL}",
            service.name,
            describe(failure),
            event[event::RIP],
            event[event::FAULT_ADDRESS],
        );
        print_backtrace(&service.program, &service.backtrace);
    }
}
