//! Host commands for processes (stop, continue, kill, list the tree): the kernel does not
//! carry them out itself but forwards each to the process manager as a
//! `KIND_HOST_COMMAND` message and turns PM's `PmHostReply` into the result frame
//! (`ProcessResult`, or `ProcessTree` for a list). Bounded: at most
//! `host_command::MAX_OUTSTANDING` wait for PM, each for at most `TIMEOUT_NS`; without a
//! PM the kernel answers at once (docs/protocol.md, "Process commands").

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::system::Kernel;
use vigil_abi::host_command::{
    Command, Outcome, KIND_HOST_COMMAND, MAX_OUTSTANDING, MAX_TEXT_BYTES, MAX_TREE_RECORDS,
    TIMEOUT_NS,
};
use vigil_abi::message::Message;
use vigil_abi::server_introspect::{text_of, ProcessTreeRecord, PROCESS_RECORD_BYTES};
use vigil_abi::Endpoint;
use vigil_kcore::host_commands::{HostCommands, Pending};
use vigil_wire::{KernelFrame, ProcessResult, ProcessTree, ProcessTreeEntry};

/// A process command as the monitor took it in from the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessRequest {
    pub request: u32,
    pub command: Command,
    pub pid: u32,
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

fn to_pm(pending: &Pending) -> Message {
    let mut message = Message::with_payload(
        KIND_HOST_COMMAND,
        [
            u64::from(pending.request),
            pending.command as u64,
            u64::from(pending.pid),
            0,
            0,
            0,
        ],
    );
    message.source = Endpoint::KERNEL;
    message
}

impl Kernel {
    /// One tick of host commands: admits `requests` (or answers them at once: no PM,
    /// busy), offers PM those it has not taken yet, and answers those PM left too long.
    /// Returns the frames to send.
    pub fn forward_host_commands(
        &mut self,
        requests: Vec<ProcessRequest>,
        now_ns: u64,
    ) -> Vec<KernelFrame> {
        let mut answers = Vec::new();
        let mut table = core::mem::take(&mut self.host_commands);
        let Some(pm) = self.pm.thread() else {
            for request in requests {
                answers.push(result(
                    request.request,
                    Outcome::NoProcessManager,
                    String::from("no process manager: the system runs without pm"),
                ));
            }
            table.clear(|pending| {
                answers.push(result(
                    pending.request,
                    Outcome::NoProcessManager,
                    String::from("the process manager exited before it answered"),
                ))
            });
            self.host_commands = table;
            return answers;
        };
        for request in requests {
            if let Err(outcome) = table.admit(request.request, request.command, request.pid, now_ns)
            {
                answers.push(result(
                    request.request,
                    outcome,
                    format!(
                        "busy: {} commands already wait for pm, or request {} does",
                        MAX_OUTSTANDING, request.request
                    ),
                ));
            }
        }
        table.deliver(|pending| {
            let (ipc, mut env) = self.ipc_parts();
            ipc.deliver_from_kernel(&mut env, pm, &to_pm(pending))
        });
        table.expire(now_ns, |pending| {
            answers.push(result(
                pending.request,
                Outcome::TimedOut,
                format!(
                    "pm did not answer {} {} within {} s",
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

/// What PM may answer to `pending` with `data`: the result frame, or `InvalidArgument`.
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
    if data.len() > MAX_TEXT_BYTES {
        return Err(vigil_abi::Error::InvalidArgument);
    }
    let text = core::str::from_utf8(data).map_err(|_| vigil_abi::Error::InvalidArgument)?;
    Ok(result(pending.request, outcome, String::from(text)))
}
