//! `vigil service`: the host's operator tool for the reincarnation server, the counterpart
//! of the guest's `service` program: `list`, `ACTION NAME` (up, down, restart, refresh,
//! hold, release) and `update NAME PROGRAM`, sent to the kernel as service commands it
//! forwards to RS (docs/protocol.md section 4.4). The name is looked up in RS's list
//! (`ServiceListNow`) first; RS's answer is printed, and anything but `ok` is an error.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use vigil_abi::host_command::Outcome;
use vigil_wire::{
    HostFrame, KernelFrame, KernelFrameDecoder, ServiceAction, ServiceCommand, ServiceEntry,
    ServiceList, ServiceUpdate, UPDATE_PROGRAM_BYTES,
};

use crate::source::{Source, SourceMsg};

/// The request ids of the two frames a run sends.
const LIST_REQUEST: u32 = 1;
const COMMAND_REQUEST: u32 = 2;

/// What to ask RS, checked before anything is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    List,
    Action(ServiceAction, String),
    Update(String, [u8; UPDATE_PROGRAM_BYTES]),
}

impl Request {
    /// The command line's words: a clear error for an unknown action, a missing name or a
    /// program name the frame cannot carry.
    pub fn parse(words: &[String]) -> Result<Request> {
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        Ok(match words.as_slice() {
            ["list"] => Request::List,
            ["update", name, program] => match ServiceUpdate::padded_program(program) {
                Some(padded) => Request::Update(name.to_string(), padded),
                None => bail!(
                    "update {name}: the program name must be 1 to {UPDATE_PROGRAM_BYTES} bytes, not {}",
                    program.len()
                ),
            },
            [action, name] => match action_named(action) {
                Some(action) => Request::Action(action, name.to_string()),
                None => bail!(
                    "unknown service action '{action}' (list, up, down, restart, refresh, hold, release, update)"
                ),
            },
            _ => bail!(
                "usage: vigil service list | up|down|restart|refresh|hold|release NAME | update NAME PROGRAM"
            ),
        })
    }

    /// The frame for the service at `index`.
    fn frame(&self, index: u32) -> Option<HostFrame> {
        match self {
            Request::List => None,
            Request::Action(action, _) => Some(HostFrame::ServiceCommand(ServiceCommand {
                request: COMMAND_REQUEST,
                action: *action,
                service: index,
            })),
            Request::Update(_, program) => Some(HostFrame::ServiceUpdate(ServiceUpdate {
                request: COMMAND_REQUEST,
                service: index,
                program: *program,
            })),
        }
    }

    fn name(&self) -> Option<&str> {
        match self {
            Request::List => None,
            Request::Action(_, name) | Request::Update(name, _) => Some(name),
        }
    }
}

fn action_named(word: &str) -> Option<ServiceAction> {
    [
        ServiceAction::Up,
        ServiceAction::Down,
        ServiceAction::Restart,
        ServiceAction::Refresh,
        ServiceAction::Hold,
        ServiceAction::Release,
    ]
    .into_iter()
    .find(|action| action.label() == word)
}

/// One line per service, as `service list` prints them.
pub fn list_text(list: &ServiceList) -> String {
    let mut text = format!(
        "{:<5} {:<16} {:<13} {:>5} {:>8} {:>7}  LAST FAILURE\n",
        "INDEX", "NAME", "STATE", "PID", "RESTARTS", "VERSION"
    );
    for service in &list.services {
        text.push_str(&format!(
            "{:<5} {:<16} {:<13} {:>5} {:>8} {:>7}  {}\n",
            service.index,
            service.name,
            crate::model::service_state_name(service.state),
            service.pid,
            service.restarts,
            service.version,
            crate::model::failure_text(service)
        ));
    }
    text
}

/// Runs `request` against the kernel `source` is connected to, within `timeout`; returns
/// what to print.
pub fn run(source: Source, request: &Request, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    let mut decoder = KernelFrameDecoder::new();
    let mut list: Option<ServiceList> = None;
    let mut sent_list = false;
    let mut sent_command = false;
    let mut answer: Option<vigil_wire::ProcessResult> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "no answer from {} within {} s",
                source.description(),
                timeout.as_secs_f64()
            );
        }
        let message = match source.rx.recv_timeout(left) {
            Ok(message) => message,
            Err(_) => continue,
        };
        let bytes = match message {
            SourceMsg::Connected { .. } => {
                if !sent_list {
                    sent_list = source.send(HostFrame::ServiceListNow {
                        request: LIST_REQUEST,
                    });
                }
                continue;
            }
            SourceMsg::Data { bytes, .. } => bytes,
            _ => continue,
        };
        let mut frames = Vec::new();
        decoder.push(&bytes, |frame| {
            if let Ok(frame) = frame {
                frames.push(frame)
            }
        });
        for frame in frames {
            match frame {
                KernelFrame::ServiceList(received) if received.request == LIST_REQUEST => {
                    list = Some(received)
                }
                KernelFrame::ProcessResult(result)
                    if result.request == LIST_REQUEST && list.is_none() =>
                {
                    bail!(
                        "service list: {} — {}",
                        outcome_name(result.outcome),
                        result.message
                    )
                }
                KernelFrame::ProcessResult(result) if result.request == COMMAND_REQUEST => {
                    answer = Some(result)
                }
                _ => {}
            }
        }
        let Some(services) = &list else {
            continue;
        };
        let Some(name) = request.name() else {
            return Ok(list_text(services));
        };
        if !sent_command {
            let Some(service) = find(&services.services, name) else {
                bail!(
                    "no service named '{name}' (rs lists {})",
                    services
                        .services
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            };
            if let Some(frame) = request.frame(service.index) {
                sent_command = source.send(frame);
            }
        }
        // An answer may be in the same bytes as the list (a scripted peer): taken either way.
        if let (true, Some(result)) = (sent_command, &answer) {
            let text = format!("{}: {}", outcome_name(result.outcome), result.message);
            if result.outcome != Outcome::Ok as u8 {
                bail!("{text}");
            }
            return Ok(text);
        }
    }
}

fn find<'a>(services: &'a [ServiceEntry], name: &str) -> Option<&'a ServiceEntry> {
    services.iter().find(|service| service.name == name)
}

fn outcome_name(code: u8) -> &'static str {
    Outcome::from_code(u64::from(code)).map_or("unknown outcome", Outcome::name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn requests_parse_and_bad_ones_are_refused_before_anything_is_sent() {
        assert_eq!(Request::parse(&words("list")).unwrap(), Request::List);
        assert_eq!(
            Request::parse(&words("restart hello_service")).unwrap(),
            Request::Action(ServiceAction::Restart, "hello_service".into())
        );
        let Request::Update(name, program) =
            Request::parse(&words("update hello_service hello_v2")).unwrap()
        else {
            panic!("not an update")
        };
        assert_eq!(name, "hello_service");
        assert_eq!(&program[..8], b"hello_v2");
        let long = Request::parse(&words("update hello a_program_name_far_too_long_for_it"));
        assert!(long.unwrap_err().to_string().contains("1 to 24 bytes"));
        let unknown = Request::parse(&words("frobnicate hello"));
        assert!(unknown
            .unwrap_err()
            .to_string()
            .contains("unknown service action"));
        assert!(Request::parse(&words("")).is_err());
        assert!(Request::parse(&words("update hello")).is_err());
    }
}
