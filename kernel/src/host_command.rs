//! Host commands for processes (stop, continue, kill, list the tree) and services (list,
//! up, down, restart, refresh, hold, release, update): the kernel does not carry them out itself but
//! forwards each to the server that owns the thing — the process manager, or the
//! reincarnation server for service commands — as a `KIND_HOST_COMMAND` message, and turns
//! the server's `PmHostReply` into the result frame (`ProcessResult`, or `ProcessTree` /
//! `ServiceList` for a list). Bounded: at most `host_command::MAX_OUTSTANDING` wait, each
//! for at most `TIMEOUT_NS`; without the server the kernel answers at once
//! (docs/protocol.md, "Process commands", "Service commands").

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::system::Kernel;
use vigil_abi::host_command::{
    Command, Outcome, KIND_HOST_COMMAND, MAX_OUTSTANDING, MAX_SERVICE_RECORDS, MAX_TEXT_BYTES,
    MAX_TREE_RECORDS, TIMEOUT_NS,
};
use vigil_abi::message::Message;
use vigil_abi::server_introspect::{
    text_of, ProcessTreeRecord, ServiceRecord, PROCESS_RECORD_BYTES, SERVICE_RECORD_BYTES,
};
use vigil_abi::Endpoint;
use vigil_kcore::host_commands::{HostCommands, Pending};
use vigil_kcore::slot::{ProcessSlot, ThreadSlot};
use vigil_wire::{
    KernelFrame, ProcessResult, ProcessTree, ProcessTreeEntry, ServiceEntry, ServiceList,
};

/// A process command as the monitor took it in from the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessRequest {
    pub request: u32,
    pub command: Command,
    pub pid: u32,
    /// Further payload words (a `ServiceUpdate`'s program name, checked by the monitor).
    pub argument: [u64; 3],
}

/// The commands waiting for PM's answer.
pub type HostCommandTable = HostCommands<MAX_OUTSTANDING>;

/// A result frame.
pub fn result(request: u32, outcome: Outcome, message: String) -> KernelFrame {
    KernelFrame::ProcessResult(ProcessResult {
        request,
        outcome: outcome as u8,
        message,
    })
}

/// The server a command goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Server {
    ProcessManager,
    ReincarnationServer,
}

impl Server {
    fn of(command: Command) -> Server {
        if command.is_service() {
            Server::ReincarnationServer
        } else {
            Server::ProcessManager
        }
    }

    fn name(self) -> &'static str {
        match self {
            Server::ProcessManager => "pm",
            Server::ReincarnationServer => "rs",
        }
    }

    /// The kernel's answer when the server does not run.
    fn absent(self) -> Outcome {
        match self {
            Server::ProcessManager => Outcome::NoProcessManager,
            Server::ReincarnationServer => Outcome::NoServiceManager,
        }
    }

    fn long_name(self) -> &'static str {
        match self {
            Server::ProcessManager => "process manager",
            Server::ReincarnationServer => "reincarnation server",
        }
    }
}

fn to_server(pending: &Pending) -> Message {
    let mut message = Message::with_payload(
        KIND_HOST_COMMAND,
        [
            u64::from(pending.request),
            pending.command as u64,
            u64::from(pending.pid),
            pending.argument[0],
            pending.argument[1],
            pending.argument[2],
        ],
    );
    message.source = Endpoint::KERNEL;
    message
}

impl Kernel {
    /// The main thread of `server`, if it runs.
    fn server_thread(&self, server: Server) -> Option<ThreadSlot> {
        match server {
            Server::ProcessManager => self.pm.thread(),
            Server::ReincarnationServer => self.rs.thread(),
        }
    }

    /// Whether `process` is the server `command` went to (the only one that may answer it).
    pub fn answers_host_command(&self, process: ProcessSlot, command: Command) -> bool {
        let server = match Server::of(command) {
            Server::ProcessManager => self.pm.process(),
            Server::ReincarnationServer => self.rs.process(),
        };
        server == Some(process)
    }

    /// One tick of host commands: admits `requests` (or answers them at once: no server,
    /// busy), offers each server the commands it has not taken yet, and answers those left
    /// too long. Returns the frames to send.
    pub fn forward_host_commands(
        &mut self,
        requests: Vec<ProcessRequest>,
        now_ns: u64,
    ) -> Vec<KernelFrame> {
        let mut answers = Vec::new();
        let mut table = core::mem::take(&mut self.host_commands);
        let pm = self.server_thread(Server::ProcessManager);
        let rs = self.server_thread(Server::ReincarnationServer);
        let thread_of = |command: Command| match Server::of(command) {
            Server::ProcessManager => pm,
            Server::ReincarnationServer => rs,
        };
        table.drop_where(
            |pending| thread_of(pending.command).is_none(),
            |pending| {
                let server = Server::of(pending.command);
                answers.push(result(
                    pending.request,
                    server.absent(),
                    format!("the {} exited before it answered", server.long_name()),
                ))
            },
        );
        for request in requests {
            let server = Server::of(request.command);
            if thread_of(request.command).is_none() {
                answers.push(result(
                    request.request,
                    server.absent(),
                    format!(
                        "no {}: the system runs without {}",
                        server.long_name(),
                        server.name()
                    ),
                ));
                continue;
            }
            if let Err(outcome) = table.admit(
                request.request,
                request.command,
                request.pid,
                request.argument,
                now_ns,
            ) {
                answers.push(result(
                    request.request,
                    outcome,
                    format!(
                        "busy: {} commands already wait for pm and rs, or request {} does",
                        MAX_OUTSTANDING, request.request
                    ),
                ));
            }
        }
        table.deliver(|pending| {
            let Some(thread) = thread_of(pending.command) else {
                return false;
            };
            let (ipc, mut env) = self.ipc_parts();
            ipc.deliver_from_kernel(&mut env, thread, &to_server(pending))
        });
        table.expire(now_ns, |pending| {
            answers.push(result(
                pending.request,
                Outcome::TimedOut,
                format!(
                    "{} did not answer {} {} within {} s",
                    Server::of(pending.command).name(),
                    pending.command.name(),
                    pending.pid,
                    TIMEOUT_NS / 1_000_000_000
                ),
            ))
        });
        self.host_commands = table;
        answers
    }
}

/// What the server (PM or RS, its pid `manager`) may answer to `pending` with `data`: the
/// result frame, or `InvalidArgument`.
pub fn answer(
    pending: &Pending,
    outcome: Outcome,
    data: &[u8],
    manager: u32,
    now_ns: u64,
) -> Result<KernelFrame, vigil_abi::Error> {
    if pending.command == Command::List && outcome == Outcome::Ok {
        if !data.len().is_multiple_of(PROCESS_RECORD_BYTES)
            || data.len() > MAX_TREE_RECORDS * PROCESS_RECORD_BYTES
        {
            return Err(vigil_abi::Error::InvalidArgument);
        }
        let processes = data
            .chunks_exact(PROCESS_RECORD_BYTES)
            .map(|bytes| {
                let mut record = [0u8; PROCESS_RECORD_BYTES];
                record.copy_from_slice(bytes);
                let record = ProcessTreeRecord::from_bytes(&record);
                ProcessTreeEntry {
                    pid: record.pid,
                    parent: record.parent,
                    state: record.state,
                    exit_status: record.exit_status,
                    start_ns: record.start_ns,
                    name: String::from_utf8_lossy(text_of(&record.name)).into_owned(),
                    arguments: String::from_utf8_lossy(text_of(&record.arguments)).into_owned(),
                }
            })
            .collect();
        return Ok(KernelFrame::ProcessTree(ProcessTree {
            request: pending.request,
            timestamp_ns: now_ns,
            manager,
            processes,
        }));
    }
    if pending.command == Command::ServiceList && outcome == Outcome::Ok {
        return service_list(pending, data, manager, now_ns);
    }
    if data.len() > MAX_TEXT_BYTES {
        return Err(vigil_abi::Error::InvalidArgument);
    }
    let text = core::str::from_utf8(data).map_err(|_| vigil_abi::Error::InvalidArgument)?;
    Ok(result(pending.request, outcome, String::from(text)))
}

/// RS's service records as a `ServiceList` frame (`InvalidArgument` for anything but whole
/// records, at most `MAX_SERVICE_RECORDS`, names that are not UTF-8 shown lossily).
fn service_list(
    pending: &Pending,
    data: &[u8],
    supervisor: u32,
    now_ns: u64,
) -> Result<KernelFrame, vigil_abi::Error> {
    if !data.len().is_multiple_of(SERVICE_RECORD_BYTES)
        || data.len() > MAX_SERVICE_RECORDS * SERVICE_RECORD_BYTES
    {
        return Err(vigil_abi::Error::InvalidArgument);
    }
    let services = data
        .chunks_exact(SERVICE_RECORD_BYTES)
        .map(|bytes| {
            let mut record = [0u8; SERVICE_RECORD_BYTES];
            record.copy_from_slice(bytes);
            let record = ServiceRecord::from_bytes(&record);
            ServiceEntry {
                index: record.index,
                name: String::from_utf8_lossy(text_of(&record.name)).into_owned(),
                program: String::from_utf8_lossy(text_of(&record.program)).into_owned(),
                version: record.version,
                state: u8::try_from(record.state).unwrap_or(u8::MAX),
                held: record.held != 0,
                pid: record.pid,
                restarts: record.restarts,
                failures_in_a_row: record.failures_in_a_row,
                last_reason: record.last_reason,
                last_detail: record.last_detail,
                last_failure_ns: record.last_failure_ns,
                started_ns: record.started_ns,
            }
        })
        .collect();
    Ok(KernelFrame::ServiceList(ServiceList {
        request: pending.request,
        timestamp_ns: now_ns,
        supervisor,
        services,
    }))
}
