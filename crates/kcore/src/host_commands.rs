//! The kernel's table of host commands forwarded to the process manager (process commands)
//! or the reincarnation server (service commands): bounded, each with a deadline, so a
//! server that never answers costs a place for `TIMEOUT_NS` and never wedges the monitor
//! (docs/protocol.md, "Process commands", "Service commands").
//!
//! Pure bookkeeping (no IPC): the kernel admits a command, offers the undelivered ones to
//! PM each tick, completes one when PM answers (`PmHostReply`) and expires the rest.

use vigil_abi::host_command::{Command, Outcome, TIMEOUT_NS};

/// One command waiting for PM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    pub request: u32,
    pub command: Command,
    pub pid: u32,
    /// The command's further payload words (a `ServiceUpdate`'s program name; else 0).
    pub argument: [u64; 3],
    /// Kernel time by which PM must have answered.
    pub deadline_ns: u64,
    /// The message has reached PM (only then may PM answer it).
    pub delivered: bool,
}

/// At most `N` commands waiting for PM.
pub struct HostCommands<const N: usize> {
    slots: [Option<Pending>; N],
}

impl<const N: usize> HostCommands<N> {
    pub const fn new() -> HostCommands<N> {
        HostCommands { slots: [None; N] }
    }

    /// Takes in a command at `now_ns`; `Busy` when `N` wait already or `request` does.
    pub fn admit(
        &mut self,
        request: u32,
        command: Command,
        pid: u32,
        argument: [u64; 3],
        now_ns: u64,
    ) -> Result<(), Outcome> {
        if self.slots.iter().flatten().any(|p| p.request == request) {
            return Err(Outcome::Busy);
        }
        let free = self
            .slots
            .iter_mut()
            .find(|slot| slot.is_none())
            .ok_or(Outcome::Busy)?;
        *free = Some(Pending {
            request,
            command,
            pid,
            argument,
            deadline_ns: now_ns.saturating_add(TIMEOUT_NS),
            delivered: false,
        });
        Ok(())
    }

    /// Offers each command not yet delivered to PM (in slot order) to `deliver`, which
    /// returns whether PM took it.
    pub fn deliver(&mut self, mut deliver: impl FnMut(&Pending) -> bool) {
        for pending in self.slots.iter_mut().flatten() {
            if !pending.delivered && deliver(pending) {
                pending.delivered = true;
            }
        }
    }

    /// The command `request`, if it was delivered to PM and still waits (PM may answer it).
    pub fn waiting(&self, request: u32) -> Option<Pending> {
        self.slots
            .iter()
            .flatten()
            .find(|p| p.request == request && p.delivered)
            .copied()
    }

    /// PM answered `request`: the command, if it was delivered and still waits.
    pub fn complete(&mut self, request: u32) -> Option<Pending> {
        let slot = self
            .slots
            .iter_mut()
            .find(|slot| slot.is_some_and(|p| p.request == request && p.delivered))?;
        slot.take()
    }

    /// Forgets every command whose deadline has passed at `now_ns`, handing each to
    /// `expired`.
    pub fn expire(&mut self, now_ns: u64, mut expired: impl FnMut(Pending)) {
        for slot in self.slots.iter_mut() {
            if let Some(pending) = slot.filter(|p| p.deadline_ns <= now_ns) {
                *slot = None;
                expired(pending);
            }
        }
    }

    /// Forgets every command (its servers have exited), handing each to `dropped`.
    pub fn clear(&mut self, dropped: impl FnMut(Pending)) {
        self.drop_where(|_| true, dropped);
    }

    /// Forgets every command `gone` says has no server any more (it has exited), handing
    /// each to `dropped`.
    pub fn drop_where(
        &mut self,
        gone: impl Fn(&Pending) -> bool,
        mut dropped: impl FnMut(Pending),
    ) {
        for slot in self.slots.iter_mut() {
            if let Some(pending) = slot.filter(|pending| gone(pending)) {
                *slot = None;
                dropped(pending);
            }
        }
    }

    /// Commands waiting now.
    pub fn len(&self) -> usize {
        self.slots.iter().flatten().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<const N: usize> Default for HostCommands<N> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn at_most_n_wait_and_each_request_id_once() {
        let mut table = HostCommands::<2>::new();
        assert_eq!(table.admit(1, Command::Kill, 5, [0; 3], 0), Ok(()));
        assert_eq!(
            table.admit(1, Command::Stop, 6, [0; 3], 0),
            Err(Outcome::Busy)
        );
        assert_eq!(table.admit(2, Command::List, 0, [0; 3], 0), Ok(()));
        assert_eq!(
            table.admit(3, Command::Kill, 7, [0; 3], 0),
            Err(Outcome::Busy)
        );
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn only_a_delivered_command_can_be_answered() {
        let mut table = HostCommands::<4>::new();
        table.admit(1, Command::Kill, 5, [0; 3], 0).unwrap();
        table.admit(2, Command::Kill, 6, [0; 3], 0).unwrap();
        // PM was not receiving: nothing delivered, so no answer can match (a forged one).
        table.deliver(|_| false);
        assert_eq!(table.waiting(1), None);
        assert_eq!(table.complete(1), None);
        let mut offered = Vec::new();
        table.deliver(|p| {
            offered.push(p.request);
            p.request == 1
        });
        assert_eq!(offered, [1, 2]);
        assert_eq!(table.waiting(1).map(|p| p.pid), Some(5));
        assert_eq!(table.waiting(2), None);
        let done = table.complete(1).expect("delivered");
        assert_eq!((done.command, done.pid), (Command::Kill, 5));
        // Answered once only; a second answer is refused.
        assert_eq!(table.complete(1), None);
        // The undelivered one is offered again, the delivered one not.
        let mut offered = Vec::new();
        table.deliver(|p| {
            offered.push(p.request);
            true
        });
        assert_eq!(offered, [2]);
        assert!(table.complete(2).is_some());
        assert!(table.is_empty());
    }

    #[test]
    fn a_silent_pm_costs_a_place_for_the_timeout_only() {
        let mut table = HostCommands::<1>::new();
        table.admit(1, Command::Kill, 5, [0; 3], 1_000).unwrap();
        table.deliver(|_| true);
        let mut expired = Vec::new();
        table.expire(1_000 + TIMEOUT_NS - 1, |p| expired.push(p.request));
        assert!(expired.is_empty());
        assert_eq!(
            table.admit(2, Command::Kill, 5, [0; 3], 0),
            Err(Outcome::Busy)
        );
        table.expire(1_000 + TIMEOUT_NS, |p| expired.push(p.request));
        assert_eq!(expired, [1]);
        // A late answer finds nothing; the place is free again.
        assert_eq!(table.complete(1), None);
        assert_eq!(table.admit(2, Command::Kill, 5, [0; 3], 0), Ok(()));
        let mut dropped = Vec::new();
        table.clear(|p| dropped.push(p.request));
        assert_eq!(dropped, [2]);
        assert!(table.is_empty());
    }

    #[test]
    fn only_the_commands_of_a_server_that_exited_are_dropped() {
        let mut table = HostCommands::<4>::new();
        table.admit(1, Command::Kill, 5, [0; 3], 0).unwrap();
        table
            .admit(2, Command::ServiceRestart, 0, [0; 3], 0)
            .unwrap();
        table.admit(3, Command::ServiceList, 0, [0; 3], 0).unwrap();
        let mut dropped = Vec::new();
        table.drop_where(|p| p.command.is_service(), |p| dropped.push(p.request));
        assert_eq!(dropped, [2, 3]);
        assert_eq!(table.len(), 1);
        table.deliver(|_| true);
        assert_eq!(table.complete(1).map(|p| p.command), Some(Command::Kill));
    }
}
