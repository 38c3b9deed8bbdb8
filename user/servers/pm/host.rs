//! PM's side of host commands: the kernel forwards what `vigil top` asks (stop, continue,
//! kill a process, list the tree) as a `KIND_HOST_COMMAND` message, and PM answers each
//! with `PmHostReply` (docs/protocol.md, "Process commands").
//!
//! Kill ends the process with `HOST_KILL_STATUS` through `PmKill`, as the `KILL` request
//! does (its parent's wait gets the status); PM itself, VM and pids no process has are
//! refused with a clear outcome. Stop and continue are SIGSTOP and SIGCONT, sent as a
//! program's SIGNAL request would (`signal.rs`: PmStop and PmResume underneath).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use vigil_rt::abi::host_command::{Command, Outcome, HOST_KILL_STATUS, MAX_TREE_RECORDS};
use vigil_rt::abi::signal::Signal;
use vigil_rt::abi::vm::Pid;
use vigil_rt::{println, syscall, Error, Message};

use super::{record, Pm};

impl Pm {
    /// Carries out the host command in `message` (from the kernel) and answers it.
    pub(crate) fn host_command(&mut self, message: &Message) {
        let [request, command, pid, ..] = message.payload;
        let Ok(request) = u32::try_from(request) else {
            println!("host command with a bad request id {request:#x} ignored");
            return;
        };
        let pid = u32::try_from(pid).ok();
        let (outcome, data) = match (Command::from_code(command), pid) {
            (Some(Command::List), _) => (Outcome::Ok, self.tree_records()),
            (Some(_), None) => (
                Outcome::NoSuchProcess,
                text(format!("no process has pid {}", message.payload[2])),
            ),
            (Some(Command::Kill), Some(pid)) => self.host_kill(pid),
            (Some(Command::Stop), Some(pid)) => self.host_signal(pid, Signal::STOP, "stopped"),
            (Some(Command::Continue), Some(pid)) => {
                self.host_signal(pid, Signal::CONT, "continued")
            }
            // The kernel sends service commands to RS; one here is misrouted.
            (Some(command), Some(_)) => (
                Outcome::Invalid,
                text(format!("{} is for rs, not pm", command.name())),
            ),
            (None, _) => (
                Outcome::Invalid,
                text(format!("unknown host command {command}")),
            ),
        };
        if let Err(error) = syscall::pm_host_reply(request, outcome, &data) {
            println!("answer to host command {request} refused: {error}");
        }
    }

    /// Kill `pid` for the host: never PM or VM.
    fn host_kill(&mut self, pid: u32) -> (Outcome, Vec<u8>) {
        let name = self.name_of(pid);
        if u64::from(pid) == self.own_pid {
            return (
                Outcome::Refused,
                text(format!("pm (pid {pid}) manages the processes: not killed")),
            );
        }
        if self.vm_pid != 0 && u64::from(pid) == self.vm_pid {
            return (
                Outcome::Refused,
                text(format!("vm (pid {pid}) serves page faults: not killed")),
            );
        }
        match syscall::pm_kill(Pid(pid), HOST_KILL_STATUS) {
            Ok(_) => {
                println!("host: killed {name} (pid {pid}), status {HOST_KILL_STATUS}");
                (
                    Outcome::Ok,
                    text(format!(
                        "killed {name} (pid {pid}), exit status {HOST_KILL_STATUS}"
                    )),
                )
            }
            Err(Error::NotFound) => (
                Outcome::NoSuchProcess,
                text(format!("no process has pid {pid}")),
            ),
            Err(Error::PermissionDenied) => (
                Outcome::Refused,
                text(format!("pid {pid} may not be killed")),
            ),
            Err(error) => (
                Outcome::Failed,
                text(format!("kill of pid {pid} failed: {error}")),
            ),
        }
    }

    /// SIGSTOP or SIGCONT to `pid` for the host: never PM or VM.
    fn host_signal(&mut self, pid: u32, signal: Signal, done: &str) -> (Outcome, Vec<u8>) {
        let name = self.name_of(pid);
        let wide = u64::from(pid);
        if wide == self.own_pid || (self.vm_pid != 0 && wide == self.vm_pid) {
            return (
                Outcome::Refused,
                text(format!("{name} (pid {pid}) is a system server: not {done}")),
            );
        }
        let known = self
            .processes
            .get(&wide)
            .is_some_and(|entry| entry.exit_status.is_none())
            || self.signals.adopted(wide);
        match self.signals.send(wide, signal.number(), known) {
            Ok(()) => {
                println!("host: {done} {name} (pid {pid}) with {}", signal.name());
                (
                    Outcome::Ok,
                    text(format!("{done} {name} (pid {pid}) with {}", signal.name())),
                )
            }
            Err(Error::NotFound) => (
                Outcome::NoSuchProcess,
                text(format!("no process has pid {pid}")),
            ),
            Err(Error::PermissionDenied) => (
                Outcome::Refused,
                text(format!("pid {pid} is not pm's to signal")),
            ),
            Err(error) => (
                Outcome::Failed,
                text(format!("{} to pid {pid} failed: {error}", signal.name())),
            ),
        }
    }

    /// "NAME" for a process PM started, else "process".
    fn name_of(&self, pid: u32) -> String {
        self.processes
            .get(&u64::from(pid))
            .map_or_else(|| String::from("process"), |entry| entry.name.clone())
    }

    /// The process tree as INTROSPECT topic 5 records (at most `MAX_TREE_RECORDS`).
    fn tree_records(&self) -> Vec<u8> {
        self.processes
            .iter()
            .take(MAX_TREE_RECORDS)
            .flat_map(|(&pid, entry)| record(pid, entry).to_bytes())
            .collect()
    }
}

fn text(message: String) -> Vec<u8> {
    message.into_bytes()
}
