//! What operators ask RS: a service's name by index (anyone), the actions up, down,
//! restart, refresh, hold and release (`vigil_abi::rs::ServiceAction`; only RS's operators,
//! or the host through the kernel's forwarded service commands), and the host's service
//! list. Every request is checked here once: a non-operator gets `PermissionDenied`, an
//! unknown index `NotFound`, an unknown action `InvalidArgument`, an action the state does
//! not allow `NotReady` or `Exists`, any action on a system server `PermissionDenied` (the
//! host's answer says "system server: not restartable"); RS keeps serving after each.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use vigil_rt::abi::host_command::{
    unpack_program, Command, Outcome, MAX_SERVICE_RECORDS, MAX_TEXT_BYTES, MAX_UPDATE_PROGRAM_BYTES,
};
use vigil_rt::abi::rs::update as rs_update;
use vigil_rt::abi::rs::{
    pack_name_reply, reason, ServiceAction, ServiceState, SYSTEM_SERVER_REFUSAL,
};
use vigil_rt::abi::signal::{status, Signal};
use vigil_rt::{println, syscall, time, Endpoint, Error, Message};

use super::{describe, introspect, Failure, Rs};

impl Rs {
    /// `SERVICE_NAME`: the name of service `index`.
    pub(crate) fn service_name(&self, index: u64) -> Result<([u64; 6], u32), Error> {
        let index = self.index(index)?;
        pack_name_reply(&self.services[index].name).map(|payload| (payload, 0))
    }

    /// `ACTION` from `client`: `payload` = `[index, action code, …]`.
    pub(crate) fn operator_action(
        &mut self,
        client: Endpoint,
        payload: &[u64; 6],
    ) -> Result<([u64; 6], u32), Error> {
        if !self.is_operator(client) {
            println!("ACTION from {client} refused: not an operator");
            return Err(Error::PermissionDenied);
        }
        let index = self.index(payload[0])?;
        let action = ServiceAction::from_code(payload[1]).ok_or(Error::InvalidArgument)?;
        self.act(index, action).map(|()| ([0; 6], 0))
    }

    /// Carries out `action` on service `index` (the sender already checked).
    pub(crate) fn act(&mut self, index: usize, action: ServiceAction) -> Result<(), Error> {
        self.refuse_system_server(index, action.name())?;
        let service = &mut self.services[index];
        if let Some(update) = &service.update {
            println!(
                "service '{}': {} refused: an update to '{}' is in progress",
                service.name,
                action.name(),
                update.program
            );
            return Err(Error::Busy);
        }
        println!(
            "service '{}': {} requested (state {}{})",
            service.name,
            action.name(),
            service.state.name(),
            if service.held { ", held" } else { "" }
        );
        match action {
            ServiceAction::Up => {
                if service.state != ServiceState::Down {
                    return Err(Error::Exists);
                }
                service.failures_in_a_row = 0;
                self.start(index);
            }
            ServiceAction::Down => {
                if service.pid != 0 {
                    self.end_for_operator(index, reason::DOWN);
                } else {
                    service.state = ServiceState::Down;
                    println!("service '{}' is down (up starts it)", service.name);
                }
            }
            ServiceAction::Restart => self.restart(index),
            ServiceAction::Refresh => {
                if service.pid == 0 || service.state != ServiceState::Running {
                    return Err(Error::NotReady);
                }
                self.end_for_operator(index, reason::REFRESH);
            }
            ServiceAction::Hold => service.held = true,
            ServiceAction::Release => {
                service.held = false;
                if service.state == ServiceState::HeldDown {
                    service.failures_in_a_row = 0;
                    self.start(index);
                }
            }
        }
        Ok(())
    }

    /// Ends service `index`'s running instance for an operator's `why` (down, refresh);
    /// `failed` then keeps it down or starts the fresh instance.
    fn end_for_operator(&mut self, index: usize, why: u64) {
        let service = &mut self.services[index];
        service.ending = Some(Failure {
            reason: why,
            detail: 0,
        });
        service.ended_ns = time::now_ns();
        let pid = service.pid;
        self.end_instance(pid, status::killed_by(Signal::TERM, false));
    }

    /// Called by `failed` once the failure is recorded: whether an operator keeps service
    /// `index` from being restarted (it was taken down, or it is held).
    pub(crate) fn kept_down_by_operator(&mut self, index: usize, failure: Failure) -> bool {
        let service = &mut self.services[index];
        if failure.reason == reason::DOWN {
            service.state = ServiceState::Down;
            println!("service '{}' is down (up starts it)", service.name);
            return true;
        }
        let asked_for_a_new_instance =
            matches!(failure.reason, reason::REQUESTED | reason::REFRESH);
        if service.held && !asked_for_a_new_instance {
            service.state = ServiceState::HeldDown;
            println!(
                "service '{}' is held by an operator: not restarted after {}; release starts it again",
                service.name,
                describe(failure)
            );
            return true;
        }
        false
    }

    /// A service command the kernel forwarded from the host (`KIND_HOST_COMMAND`,
    /// `[request, command, service index, …]`; a `ServiceUpdate`'s program name in the last
    /// three words), answered with `PmHostReply`.
    pub(crate) fn host_command(&mut self, message: &Message) {
        let [request, command, index, ..] = message.payload;
        let Ok(request) = u32::try_from(request) else {
            println!("host command with a bad request id {request:#x} ignored");
            return;
        };
        let (outcome, data) = match Command::from_code(command) {
            Some(Command::ServiceList) => {
                let records: Vec<u8> = introspect::service_records(self)
                    .take(MAX_SERVICE_RECORDS)
                    .flatten()
                    .collect();
                (Outcome::Ok, records)
            }
            Some(Command::ServiceUpdate) => match self.index(index) {
                Ok(index) => {
                    let words = [message.payload[3], message.payload[4], message.payload[5]];
                    self.host_update(index, &words)
                }
                Err(_) => (
                    Outcome::NoSuchProcess,
                    text(format!(
                        "no service has index {index} (rs has {})",
                        self.services.len()
                    )),
                ),
            },
            Some(command) => match (command.service_action(), self.index(index)) {
                (None, _) => (
                    Outcome::Invalid,
                    text(format!("{} is not a service command", command.name())),
                ),
                (Some(_), Err(_)) => (
                    Outcome::NoSuchProcess,
                    text(format!(
                        "no service has index {index} (rs has {})",
                        self.services.len()
                    )),
                ),
                (Some(action), Ok(index)) => self.host_action(index, action),
            },
            None => (
                Outcome::Invalid,
                text(format!("unknown host command {command}")),
            ),
        };
        if let Err(error) = syscall::pm_host_reply(request, outcome, &data) {
            println!("answer to host command {request} refused: {error}");
        }
    }

    /// The host's live update of service `index` to the program in `words`
    /// (`host_command::pack_program`, checked again here): answered when it has begun —
    /// its end is on the console and in the service list — or with the refusal.
    fn host_update(&mut self, index: usize, words: &[u64; 3]) -> (Outcome, Vec<u8>) {
        let name = self.services[index].name.clone();
        let mut program = [0u8; MAX_UPDATE_PROGRAM_BYTES];
        let Ok(len) = unpack_program(words, &mut program) else {
            return (
                Outcome::Invalid,
                text(format!("update {name}: the program name is not readable")),
            );
        };
        let program = core::str::from_utf8(&program[..len]).unwrap_or("?");
        if self.refuse_system_server(index, "update").is_err() {
            return (
                Outcome::NotSupported,
                text(format!("update {name} refused: {SYSTEM_SERVER_REFUSAL}")),
            );
        }
        let payload = match rs_update::pack(index as u64, program, 0) {
            Ok(payload) => payload,
            Err(error) => {
                return (
                    Outcome::Invalid,
                    text(format!("update {name} to {program}: {error}")),
                )
            }
        };
        let version = self.services[index].version;
        match self.start_update(Endpoint::NONE, &payload) {
            Ok(()) => (
                Outcome::Ok,
                text(format!(
                    "update {name} to {program}: begun (version {version} serves until the swap; the service list shows the end)"
                )),
            ),
            Err(error @ (Error::Exists | Error::Busy | Error::NotReady)) => (
                Outcome::Refused,
                text(format!("update {name} to {program} refused: {error}")),
            ),
            Err(error) => (
                Outcome::Failed,
                text(format!("update {name} to {program} failed: {error}")),
            ),
        }
    }

    /// The host's `action` on service `index`: the outcome and the status line's text.
    fn host_action(&mut self, index: usize, action: ServiceAction) -> (Outcome, Vec<u8>) {
        let result = self.act(index, action);
        let service = &self.services[index];
        let state = format!(
            "state {}{}, pid {}, {} restarts",
            service.state.name(),
            if service.held { " (held)" } else { "" },
            service.pid,
            service.restarts
        );
        match result {
            Ok(()) => (
                Outcome::Ok,
                text(format!(
                    "{} {}: done ({state})",
                    action.name(),
                    service.name
                )),
            ),
            Err(Error::PermissionDenied) if service.system => (
                Outcome::NotSupported,
                text(format!(
                    "{} {} refused: {SYSTEM_SERVER_REFUSAL} ({state})",
                    action.name(),
                    service.name
                )),
            ),
            Err(error @ (Error::NotReady | Error::Exists)) => (
                Outcome::Refused,
                text(format!(
                    "{} {} refused: {error} ({state})",
                    action.name(),
                    service.name
                )),
            ),
            Err(error) => (
                Outcome::Failed,
                text(format!(
                    "{} {} failed: {error}",
                    action.name(),
                    service.name
                )),
            ),
        }
    }
}

/// `message` as result text, cut to what the kernel takes (at a character boundary).
fn text(mut message: String) -> Vec<u8> {
    if message.len() > MAX_TEXT_BYTES {
        let mut end = MAX_TEXT_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message.into_bytes()
}
