//! Live update with rollback (`vigil_abi::rs::request::UPDATE`, protocol in
//! `vigil_abi::rs::update` and docs/architecture.md "Live update"): the candidate is
//! spawned beside the running instance, the old one is asked to reach a quiescent point
//! (`PREPARE` → `PREPARED`), the two main threads are swapped (`ServiceSwap`), the new
//! version initialises from DS at its first message and must answer its pings through a
//! grace period. A failure after the swap kills the candidate and lets the old instance —
//! kept quiescent at the candidate's former endpoint — take the kept endpoint back
//! (`ServiceTakeOver` of the candidate's tombstone): the rollback. Every step is bounded;
//! the operator's request is answered when the update ends.

use alloc::format;
use alloc::string::String;

use vigil_rt::abi::rs::update::{unpack_name, CANDIDATE_ARGUMENT};
use vigil_rt::abi::rs::update::{DEFAULT_GRACE_MS, DEFAULT_PREPARE_MS};
use vigil_rt::abi::rs::{reason, request, RestartPolicy, ServiceState};
use vigil_rt::abi::rs::{MAX_NAME_BYTES, MAX_POLICY_MS, MISSED_HEARTBEATS};
use vigil_rt::abi::signal::{status, Signal};
use vigil_rt::{ipc, pm, println, syscall, thread, time, Endpoint, Error, Message};

use super::{describe, reply, retry_while_busy, Failure, Rs, TAKEOVER_YIELDS};

/// Where an update is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// `PREPARE` not delivered yet (the old instance was busy) or not answered yet.
    Preparing { sent: bool },
    /// `PREPARED` came: the swap waits for both to be quiescent.
    Swapping,
    /// Swapped: the new version has not answered its first ping yet.
    Initialising,
    /// Initialised: it must answer every ping until the grace period ends.
    Grace,
}

/// A live update in progress.
pub struct Update {
    /// The program updated to, and who asked (answered at the end).
    pub program: String,
    client: Endpoint,
    /// The candidate's pid and its own main thread (the old instance's after the swap).
    candidate_pid: u64,
    candidate: Endpoint,
    phase: Phase,
    /// When the current phase is over: the PREPARE bound, the initialisation bound, the
    /// end of the grace period.
    deadline_ns: u64,
    prepare_ms: u64,
    /// Kernel time of the swap (the new version's downtime starts before it).
    swapped_ns: u64,
}

/// How an update ended.
enum Outcome {
    Done,
    /// Before the swap: the old version never stopped serving.
    Cancelled(String),
    /// After the swap: the old version serves again.
    RolledBack(String),
}

fn grace_ping_ms(policy: &RestartPolicy) -> u64 {
    if policy.heartbeat_ms == 0 {
        RestartPolicy::DEFAULT.heartbeat_ms
    } else {
        policy.heartbeat_ms
    }
}

impl Rs {
    /// `UPDATE` from `client`: `Ok(())` when the update has begun (answered when it ends),
    /// or the refusal to answer now.
    pub(crate) fn begin_update(
        &mut self,
        client: Endpoint,
        payload: &[u64; 6],
    ) -> Result<(), Error> {
        if !self.is_operator(client) {
            println!("UPDATE from {client} refused: not an operator");
            return Err(Error::PermissionDenied);
        }
        self.start_update(client, payload)
    }

    /// `begin_update` once the sender may ask: `client` is answered when the update ends
    /// (`Endpoint::NONE`: nobody, for the host's update, answered when it begins).
    pub(crate) fn start_update(
        &mut self,
        client: Endpoint,
        payload: &[u64; 6],
    ) -> Result<(), Error> {
        let index = self.index(payload[0])?;
        let mut name = [0u8; MAX_NAME_BYTES];
        let len = unpack_name(payload, &mut name)?;
        let program = core::str::from_utf8(&name[..len]).map_err(|_| Error::InvalidArgument)?;
        let prepare_ms = match payload[5] {
            0 => DEFAULT_PREPARE_MS,
            ms if ms <= MAX_POLICY_MS => ms,
            _ => return Err(Error::InvalidArgument),
        };
        // The candidate is found by its process name: it must be no supervised program.
        if self
            .services
            .iter()
            .any(|service| service.program == program)
        {
            return Err(Error::Exists);
        }
        let service = &mut self.services[index];
        if service.update.is_some() {
            return Err(Error::Busy);
        }
        if service.state != ServiceState::Running || !service.endpoint.is_thread() {
            return Err(Error::NotReady);
        }
        println!(
            "service '{}': update from '{}' (version {}) to '{program}' requested ({prepare_ms} ms to prepare)",
            service.name, service.program, service.version
        );
        let candidate_pid = match pm::spawn_managed_appending(program, CANDIDATE_ARGUMENT) {
            Ok(pid) => pid,
            Err(error) => {
                println!(
                    "service '{}': update to '{program}' refused: spawn failed ({error}); version {} serves on",
                    service.name, service.version
                );
                return Err(error);
            }
        };
        let candidate = ipc::lookup(program).unwrap_or(Endpoint::NONE);
        let now = time::now_ns();
        service.update = Some(Update {
            program: String::from(program),
            client,
            candidate_pid,
            candidate,
            phase: Phase::Preparing { sent: false },
            deadline_ns: now.saturating_add(prepare_ms.saturating_mul(1_000_000)),
            prepare_ms,
            swapped_ns: 0,
        });
        service.state = ServiceState::Updating;
        println!(
            "service '{}': candidate '{program}' is pid {candidate_pid} at {candidate}",
            service.name
        );
        if !candidate.is_thread() {
            self.end_update(
                index,
                Outcome::Cancelled(String::from("the candidate has no main thread")),
            );
            return Ok(());
        }
        self.send_prepare(index);
        Ok(())
    }

    /// Delivers `PREPARE` to the old instance if it waits in its receive loop (it is not
    /// queued behind clients: a busy instance gets it at a later tick).
    fn send_prepare(&mut self, index: usize) {
        let service = &mut self.services[index];
        let Some(update) = service.update.as_mut() else {
            return;
        };
        if update.phase != (Phase::Preparing { sent: false }) {
            return;
        }
        let message = Message::with_payload(request::PREPARE, [0; 6]);
        for _ in 0..TAKEOVER_YIELDS {
            if ipc::send_nonblocking(service.endpoint, &message).is_ok() {
                update.phase = Phase::Preparing { sent: true };
                return;
            }
            thread::yield_now();
        }
    }

    /// `PREPARED` from `source`: the old instance of the service updating is quiescent
    /// (between two requests, everything committed); swap it with the candidate.
    pub(crate) fn prepared(&mut self, source: Endpoint) -> Result<([u64; 6], u32), Error> {
        let index = self
            .services
            .iter()
            .position(|service| {
                service.endpoint == source
                    && service
                        .update
                        .as_ref()
                        .is_some_and(|update| update.phase == Phase::Preparing { sent: true })
            })
            .ok_or(Error::NotReady)?;
        if let Some(update) = self.services[index].update.as_mut() {
            update.phase = Phase::Swapping;
        }
        self.try_swap(index, TAKEOVER_YIELDS);
        Ok(([0; 6], 0))
    }

    /// Tries `ServiceSwap` of the old instance and the candidate, yielding to them up to
    /// `yields` times while either is not quiescent (`Busy`).
    fn try_swap(&mut self, index: usize, yields: u32) {
        let service = &mut self.services[index];
        let Some(update) = service.update.as_mut() else {
            return;
        };
        let result = retry_while_busy(yields, || {
            syscall::service_swap(service.endpoint, update.candidate)
        });
        match result {
            Ok(_) => {
                let now = time::now_ns();
                update.phase = Phase::Initialising;
                update.swapped_ns = now;
                update.deadline_ns =
                    now.saturating_add(service.policy.init_ms.saturating_mul(1_000_000));
                println!(
                    "service '{}': swapped: '{}' (pid {}) serves {}, version {} (pid {}) waits at {}",
                    service.name,
                    update.program,
                    update.candidate_pid,
                    service.endpoint,
                    service.version,
                    service.pid,
                    update.candidate
                );
                // The first ping is its first message: it initialises and answers.
                service.unanswered = 1;
                service.last_ping_ns = now;
                let _ = ipc::notify(service.endpoint);
            }
            Err(Error::Busy) => {}
            Err(error) => {
                let why = format!("the swap failed ({error})");
                self.end_update(index, Outcome::Cancelled(why));
            }
        }
    }

    /// A ping answered at `source` while service `index` updates: the new version's
    /// first ends its initialisation. Returns whether it was the updating service's.
    pub(crate) fn update_pong(&mut self, source: Endpoint) -> bool {
        let Some(service) = self.services.iter_mut().find(|service| {
            service.endpoint == source
                && service.update.as_ref().is_some_and(|update| {
                    matches!(update.phase, Phase::Initialising | Phase::Grace)
                })
        }) else {
            return false;
        };
        let grace_ms = DEFAULT_GRACE_MS;
        service.unanswered = 0;
        if let Some(update) = service.update.as_mut() {
            if update.phase == Phase::Initialising {
                let now = time::now_ns();
                update.phase = Phase::Grace;
                update.deadline_ns = now.saturating_add(grace_ms * 1_000_000);
                println!(
                    "service '{}': '{}' initialised {} us after the swap; grace period {grace_ms} ms",
                    service.name,
                    update.program,
                    now.saturating_sub(update.swapped_ns) / 1000
                );
            }
        }
        true
    }

    /// At each tick: PREPARE delivered, swaps retried, bounds and heartbeats checked.
    pub(crate) fn update_tick(&mut self) {
        let now = time::now_ns();
        for index in 0..self.services.len() {
            let Some(phase) = self.services[index].update.as_ref().map(|u| u.phase) else {
                continue;
            };
            match phase {
                Phase::Preparing { sent: false } => self.send_prepare(index),
                Phase::Swapping => self.try_swap(index, 0),
                _ => {}
            }
            let service = &mut self.services[index];
            let Some(update) = service.update.as_ref() else {
                continue;
            };
            let overdue = now >= update.deadline_ns;
            let outcome = match update.phase {
                Phase::Preparing { .. } | Phase::Swapping if overdue => {
                    Some(Outcome::Cancelled(format!(
                        "version {} did not reach a quiescent point within {} ms",
                        service.version, update.prepare_ms
                    )))
                }
                Phase::Initialising if overdue => Some(Outcome::RolledBack(format!(
                    "not initialised within {} ms",
                    service.policy.init_ms
                ))),
                Phase::Grace if service.unanswered >= MISSED_HEARTBEATS => {
                    Some(Outcome::RolledBack(format!(
                        "{} heartbeats unanswered in the grace period",
                        service.unanswered
                    )))
                }
                Phase::Grace if overdue => Some(Outcome::Done),
                Phase::Grace => {
                    let period_ns = grace_ping_ms(&service.policy) * 1_000_000;
                    if now.saturating_sub(service.last_ping_ns) >= period_ns {
                        let _ = ipc::notify(service.endpoint);
                        service.unanswered += 1;
                        service.last_ping_ns = now;
                    }
                    None
                }
                _ => None,
            };
            if let Some(outcome) = outcome {
                self.end_update(index, outcome);
            }
        }
    }

    /// The updating service whose candidate is `pid`.
    pub(crate) fn candidate_of(&self, pid: u64) -> Option<usize> {
        self.services.iter().position(|service| {
            pid != 0
                && service
                    .update
                    .as_ref()
                    .is_some_and(|update| update.candidate_pid == pid)
        })
    }

    /// The candidate of service `index` ended (`failure`; already collected): before the
    /// swap the update is cancelled, after it rolled back.
    pub(crate) fn candidate_ended(&mut self, index: usize, failure: Failure) {
        let Some(update) = self.services[index].update.as_mut() else {
            return;
        };
        update.candidate_pid = 0;
        let why = format!("the new version ended: {}", describe(failure));
        let outcome = match update.phase {
            Phase::Preparing { .. } | Phase::Swapping => Outcome::Cancelled(why),
            Phase::Initialising | Phase::Grace => Outcome::RolledBack(why),
        };
        self.end_update(index, outcome);
    }

    /// The old instance of service `index` ended during its update: before the swap the
    /// update is cancelled (the failure is handled as any); after it the new version
    /// simply carries on. Returns whether the failure is still to be handled.
    pub(crate) fn old_ended_during_update(&mut self, index: usize) -> bool {
        let Some(phase) = self.services[index].update.as_ref().map(|u| u.phase) else {
            return true;
        };
        let service = &mut self.services[index];
        match phase {
            Phase::Preparing { .. } | Phase::Swapping => {
                service.state = ServiceState::Running;
                self.end_update(
                    index,
                    Outcome::Cancelled(String::from("the old version ended first")),
                );
                true
            }
            Phase::Initialising | Phase::Grace => {
                println!(
                    "service '{}': the old version (pid {}) ended during the grace period",
                    service.name, service.pid
                );
                service.pid = 0;
                self.end_update(index, Outcome::Done);
                false
            }
        }
    }

    /// Kills and collects `pid` (a candidate or an old instance RS lets go).
    fn kill_and_collect(pid: u64, signal: Signal) {
        if pid == 0 {
            return;
        }
        if let Err(error) = pm::kill(pid, status::killed_by(signal, false)) {
            println!("killing pid {pid} failed: {error}");
        }
        if let Err(error) = pm::wait(Some(pid)) {
            println!("collecting pid {pid} failed: {error}");
        }
    }

    /// Ends the update of service `index` with `outcome` and answers its operator.
    fn end_update(&mut self, index: usize, outcome: Outcome) {
        let Some(update) = self.services[index].update.take() else {
            return;
        };
        let answer = match outcome {
            Outcome::Done => {
                let service = &mut self.services[index];
                let old_pid = service.pid;
                Self::kill_and_collect(old_pid, Signal::TERM);
                let service = &mut self.services[index];
                service.version += 1;
                service.pid = update.candidate_pid;
                service.program = update.program;
                service.state = ServiceState::Running;
                service.started_ns = update.swapped_ns;
                service.unanswered = 0;
                println!(
                    "service '{}': updated to '{}', version {} (pid {}); the old pid {old_pid} is gone",
                    service.name, service.program, service.version, service.pid
                );
                Ok(([0, u64::from(service.version), 0, 0, 0, 0], 0))
            }
            Outcome::Cancelled(why) => {
                Self::kill_and_collect(update.candidate_pid, Signal::KILL);
                let service = &mut self.services[index];
                if service.state == ServiceState::Updating {
                    service.state = ServiceState::Running;
                }
                service.last_ping_ns = time::now_ns();
                service.unanswered = 0;
                println!(
                    "service '{}': update to '{}' cancelled: {why}; version {} serves on",
                    service.name, update.program, service.version
                );
                Err(Error::Interrupted)
            }
            Outcome::RolledBack(why) => {
                let failed_ns = time::now_ns();
                Self::kill_and_collect(update.candidate_pid, Signal::KILL);
                self.roll_back(index, &update, &why, failed_ns);
                Err(Error::Restarted)
            }
        };
        let client = update.client;
        if client.is_thread() {
            reply(client, answer);
        }
    }

    /// The candidate is dead: its endpoint (the kept one) is a tombstone the old
    /// instance, quiescent at the candidate's former endpoint, takes back.
    fn roll_back(&mut self, index: usize, update: &Update, why: &str, failed_ns: u64) {
        let service = &mut self.services[index];
        let result = retry_while_busy(TAKEOVER_YIELDS, || {
            syscall::service_take_over(service.endpoint, update.candidate)
        });
        let now = time::now_ns();
        service.last_ping_ns = now;
        service.unanswered = 0;
        service.state = ServiceState::Running;
        match result {
            Ok(_) => println!(
                "service '{}': update to '{}' rolled back: {why}; version {} (pid {}) serves {} again, {} us after the failure",
                service.name,
                update.program,
                service.version,
                service.pid,
                service.endpoint,
                now.saturating_sub(failed_ns) / 1000
            ),
            Err(error) => {
                // The old instance cannot take it back: restart the service from its
                // tombstone like any failure.
                println!(
                    "service '{}': update to '{}' rolled back: {why}; the old version could not take {} back ({error}): restarting",
                    service.name, update.program, service.endpoint
                );
                let pid = service.pid;
                Self::kill_and_collect(pid, Signal::KILL);
                service.ended_ns = now;
                self.failed(
                    index,
                    Failure {
                        reason: reason::REQUESTED,
                        detail: 0,
                    },
                );
            }
        }
    }
}
