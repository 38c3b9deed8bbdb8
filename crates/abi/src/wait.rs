//! Why a thread is not running: the wait reasons introspection and deadlock detection read.

use crate::endpoint::Endpoint;
use crate::vm::FaultAccess;

/// Scheduling state of a thread, with the target of any wait. Every blocked state names
/// what the thread waits for and, where there is one, on whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadState {
    /// Slot unused.
    Free,
    /// On a run queue.
    Ready,
    /// On the CPU.
    Running,
    /// Blocked in Send (or the send half of SendReceive) until `to` receives.
    Sending { to: Endpoint },
    /// Blocked in Receive from `from` (a thread, or ANY).
    Receiving { from: Endpoint },
    /// Blocked in the receive half of SendReceive: the request was delivered, waiting for
    /// `from` to reply.
    AwaitingReply { from: Endpoint },
    /// Blocked in MutexWait on the lock word at `address`, owned by `owner`.
    Mutex { address: u64, owner: Endpoint },
    /// Sleeping until the kernel clock reaches `until_ns`.
    Sleeping { until_ns: u64 },
    /// Waiting in ThreadJoin for `thread` to exit.
    Joining { thread: Endpoint },
    /// Waiting for the VM server `vm` to resolve a page fault at `address`.
    WaitingForVm {
        vm: Endpoint,
        address: u64,
        access: FaultAccess,
    },
    /// Took CPU exception `vector` and is held for its process's signal manager, whose
    /// main thread is `manager`, to resume (`PmResumeThread`) or kill it.
    HeldForManager { manager: Endpoint, vector: u64 },
    /// A tracer in `TraceResumeWait`: waiting for the next trace stop of process `pid`,
    /// whose traced thread is `tracee` (the kernel hands the stop straight to it).
    WaitingForTracee { tracee: Endpoint, pid: u64 },
    /// Exited; the slot is kept until joined (or reaped with its process).
    Dead { exit_code: u64 },
    /// The main thread of a service RS supervises died: its slot and endpoint are kept
    /// (a restart tombstone) for the replacement, which takes them over
    /// (`KernelCall::ServiceTakeOver`); senders to it wait queued meanwhile.
    Restarting,
}

impl ThreadState {
    /// The thread this one waits on, if the wait has a single partner (the wait-for edge).
    pub const fn waits_on(&self) -> Option<Endpoint> {
        match *self {
            ThreadState::Sending { to } => Some(to),
            ThreadState::Receiving { from } | ThreadState::AwaitingReply { from } => {
                if from.is_thread() {
                    Some(from)
                } else {
                    None
                }
            }
            ThreadState::Mutex { owner, .. } => Some(owner),
            ThreadState::Joining { thread } => Some(thread),
            ThreadState::WaitingForVm { vm, .. } => Some(vm),
            ThreadState::HeldForManager { manager, .. } => Some(manager),
            ThreadState::WaitingForTracee { tracee, .. } => Some(tracee),
            _ => None,
        }
    }

    /// Whether the thread is blocked (not free, ready, running or dead).
    pub const fn is_blocked(&self) -> bool {
        !matches!(
            self,
            ThreadState::Free
                | ThreadState::Ready
                | ThreadState::Running
                | ThreadState::Dead { .. }
                | ThreadState::Restarting
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_edges_name_the_partner() {
        let t = Endpoint::new(3, 1);
        assert_eq!(ThreadState::Sending { to: t }.waits_on(), Some(t));
        assert_eq!(ThreadState::AwaitingReply { from: t }.waits_on(), Some(t));
        assert_eq!(
            ThreadState::Receiving {
                from: Endpoint::ANY
            }
            .waits_on(),
            None
        );
        assert_eq!(
            ThreadState::Mutex {
                address: 0x1000,
                owner: t
            }
            .waits_on(),
            Some(t)
        );
        assert!(ThreadState::Sleeping { until_ns: 5 }.is_blocked());
        assert!(!ThreadState::Ready.is_blocked());
        assert!(!ThreadState::Dead { exit_code: 0 }.is_blocked());
        assert!(!ThreadState::Restarting.is_blocked());
        assert_eq!(ThreadState::Restarting.waits_on(), None);
    }
}
