//! `rs`: the reincarnation server (issue 10: supervision, endpoints kept across restarts,
//! operator actions and introspection). A system server of the boot table
//! (the kernel starts it after VM and PM, booted as `rs kcalls=rs -- [operator=A+B]
//! SERVICE…`); each SERVICE is `PROGRAM[:base=MS,cap=MS,limit=N,stable=MS]`
//! (`vigil_abi::rs::ServiceSpec`), PROGRAM a `boot=pm` module.
//!
//! RS spawns every service through PM as its child *and* its signal manager
//! (`spawn_flags::CALLER_MANAGES`), so it learns of a crash from the kernel's exception
//! event (`KIND_PROCESS_EVENT`, `PmNextEvent`) and kills the held process through PM, and of
//! an exit (a panic is status 101) from PM's exit notice (a notification from PM the moment
//! the child exits; RS then collects it with `WAIT NO_HANG`). A failed
//! service is restarted by its policy: the first failure at once, then after `base`,
//! doubling up to `cap`; after `limit` failures in a row (an instance that ran `stable` ms
//! or more resets the run) it is held down with an `ALERT` line until an operator's
//! `RESTART`. Every `hb` ms (default 100, 0: off) RS pings each running service (a
//! notification; the service's receive loop answers with one); a service silent for
//! `MISSED_HEARTBEATS` (3) periods since its last sign of life, pinged at every period
//! meanwhile, is hung (the rule: `vigil_abi::heartbeat`): killed and restarted like a
//! crash.
//!
//! A restart keeps the service's endpoint: RS marks the first instance's main thread
//! (`ServiceKeepEndpoint`), so when an instance dies its endpoint becomes a restart
//! tombstone that clients keep sending to (they wait queued; a request the instance had
//! already received fails with `Restarted`, which `ipc::call_service` retries). The
//! replacement is `initialising` until its main thread waits in its receive loop, when
//! RS makes it take the tombstone over (`ServiceTakeOver`; `Busy` before): RS polls right
//! after the spawn, yielding to it up to `TAKEOVER_YIELDS` times, then at every tick; a
//! replacement that has not got there `init` ms (default 1000) after its spawn has failed
//! to initialise and is killed and restarted by the policy. A service held down, or one
//! whose first instance could not be marked, has its tombstone released
//! (`ServiceRelease`): its waiting clients fail with `DeadEndpoint`, and a later start
//! is a new endpoint again. Requests (`vigil_abi::rs::request`) are checked at the
//! boundary; a bad one gets its error and RS keeps serving.
//!
//! The restart history keeps, per service, the restart count, the last reason and its
//! time, and for an exception the backtrace of the held thread (`ServiceBacktrace`),
//! printed in the kernel's frame format and answered in INTROSPECT topic 7. The system
//! servers (VM, PM, DS, RS) are listed after the services and refuse every action; their
//! crashes, which the kernel reports to RS as it ends them, are recorded with an `ALERT`
//! (`system.rs`).
//!
//! Operators (and the host, through the kernel's forwarded service commands) act on
//! services by index: up, down, restart, refresh, hold, release, update (`operator.rs`);
//! anyone may list them (`SERVICE_NAME`, `SERVICE_STATUS`) or read RS's INTROSPECT services
//! and service-backtraces topics (`introspect.rs`).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use vigil_rt::abi::heartbeat::{self, Beat, Pings};
use vigil_rt::abi::host_command::KIND_HOST_COMMAND;
use vigil_rt::abi::rs::{reason, request, unpack_name, RestartPolicy, ServiceSpec, ServiceState};
use vigil_rt::abi::rs::{FailureText, MAX_NAME_BYTES, MISSED_HEARTBEATS};
use vigil_rt::abi::server_introspect::INTROSPECT;
use vigil_rt::abi::signal::{event, exception_mnemonic, status, Signal, KIND_PROCESS_EVENT};
use vigil_rt::{alarm, ipc, pm, println, syscall, thread, time, Endpoint, Error, Message};

mod introspect;
mod operator;
mod system;
mod update;

vigil_rt::entry!(main);

/// The version of a service's first program (`ServiceRecord::version`).
const FIRST_VERSION: u32 = 1;

/// How often RS checks its deadlines (heartbeats, backoffs, initialisation, updates).
const TICK: Duration = Duration::from_nanos(heartbeat::TICK_NS);

/// Takeover attempts right after a replacement's spawn, each after a yield to the threads
/// of RS's priority (the replacement among them); then one attempt per tick.
const TAKEOVER_YIELDS: u32 = 200;

/// Makes a service-endpoint kernel call (`ServiceTakeOver`, `ServiceSwap`) until it is
/// not refused with `Busy` — a side not yet in its receive loop — yielding to the others
/// (the service's instances run at RS's priority) up to `yields` times in between.
fn retry_while_busy(
    yields: u32,
    mut call: impl FnMut() -> Result<u64, Error>,
) -> Result<u64, Error> {
    let mut attempts = 0;
    loop {
        match call() {
            Err(Error::Busy) if attempts < yields => {
                attempts += 1;
                thread::yield_now();
            }
            other => return other,
        }
    }
}

/// Why an instance ended, as RS reports it.
#[derive(Clone, Copy)]
struct Failure {
    reason: u64,
    detail: u64,
}

/// One supervised service.
struct Service {
    /// The service's name (the first program's, for good: `SERVICE_INDEX`, console lines).
    name: String,
    /// The `boot=pm` program its instances run (another after a live update).
    program: String,
    /// 1 for the first program, one more per completed live update.
    version: u32,
    /// The live update in progress (`update.rs`).
    update: Option<update::Update>,
    policy: RestartPolicy,
    state: ServiceState,
    /// The running instance's pid (0 when none runs).
    pid: u64,
    started_ns: u64,
    /// Instances started after the first.
    restarts: u64,
    failures_in_a_row: u32,
    last: Failure,
    last_failure_ns: u64,
    /// When a backing-off service is due to start again.
    restart_at_ns: u64,
    /// What RS already knows of the instance that is ending (an exception event, or its
    /// own kill for `RESTART`), taken when its exit is collected.
    ending: Option<Failure>,
    /// Kernel time of the event that ended the last instance (for the restart latency).
    ended_ns: u64,
    /// The running instance's main thread (where pings go, whence pongs come): the kept
    /// endpoint once the instance serves it.
    endpoint: Endpoint,
    /// The service's endpoint, kept across restarts (`Endpoint::NONE` until the first
    /// instance is marked, and after a release).
    kept: Endpoint,
    /// While `Initialising`: the replacement's own main thread, and when its time to reach
    /// its receive loop is up.
    replacement: Endpoint,
    init_deadline_ns: u64,
    /// When RS last pinged it (or, before the first ping, its last sign of life: the next
    /// ping is due a period after this), and how many pings in a row it left unanswered.
    last_ping_ns: u64,
    unanswered: u32,
    /// Its last sign of life, dated to RS's tick (its start or takeover, or an answer),
    /// and when RS sent the first of the pings it has left unanswered (`Pings`).
    alive_ns: u64,
    first_unanswered_ns: u64,
    /// An operator's hold: when the instance ends, RS holds it down instead of restarting.
    held: bool,
    /// A system server of the boot table (state `System`): the kernel started it, and RS
    /// never starts, restarts or acts on it; it only records its crash (`system.rs`).
    system: bool,
    /// The backtrace of the last failure by an exception (pc first), as the kernel walked
    /// the held thread's stack (`ServiceBacktrace`; for a system server, the one the kernel
    /// reported with its crash); empty if the last failure was none.
    backtrace: Vec<u64>,
    /// That exception's vector.
    backtrace_vector: u64,
}

struct Rs {
    services: Vec<Service>,
    /// When RS's last tick began (`time::now_ns` then): the date RS gives a service's sign
    /// of life, so heartbeat deadlines fall on its ticks.
    tick_ns: u64,
    /// Process names whose main thread may send `RESTART`.
    operators: Vec<String>,
}

fn reply(client: Endpoint, result: Result<([u64; 6], u32), Error>) {
    let mut message = match result {
        Ok((payload, tag)) => {
            let mut message = Message::with_payload(request::REPLY, payload);
            message.tag = tag;
            message
        }
        Err(error) => Message::with_payload(request::REPLY, [error as u64, 0, 0, 0, 0, 0]),
    };
    message.kind = request::REPLY;
    if let Err(error) = ipc::send_nonblocking(client, &message) {
        println!("reply to {client} dropped: {error} (it did not wait for the answer)");
    }
}

impl Service {
    /// Its heartbeat state, for the rule (`vigil_abi::heartbeat`).
    fn pings(&self) -> Pings {
        Pings {
            alive_ns: self.alive_ns,
            last_ping_ns: self.last_ping_ns,
            first_unanswered_ns: self.first_unanswered_ns,
            unanswered: self.unanswered,
        }
    }

    fn set_pings(&mut self, pings: Pings) {
        self.alive_ns = pings.alive_ns;
        self.last_ping_ns = pings.last_ping_ns;
        self.first_unanswered_ns = pings.first_unanswered_ns;
        self.unanswered = pings.unanswered;
    }

    /// A sign of life at RS's tick `tick_ns` (its start, its takeover, an answer to a
    /// ping): the heartbeat schedule starts again from it.
    fn alive_at(&mut self, tick_ns: u64) {
        self.set_pings(Pings::alive_since(tick_ns));
    }
}

/// The backtrace of `thread`, held after an exception (empty if the kernel refused it:
/// said on the console, the failure is recorded without it).
fn held_backtrace(thread: Endpoint) -> Vec<u64> {
    match syscall::service_backtrace(thread) {
        Ok((frames, count)) => frames[..count].to_vec(),
        Err(error) => {
            println!("backtrace of {thread} refused: {error}");
            Vec::new()
        }
    }
}

/// Prints a recorded backtrace in the kernel's frame format (`  #0 pc  0x… (PROGRAM)`),
/// one frame a line, so the host's symbolizer names each frame in PROGRAM's ELF.
fn print_backtrace(program: &str, backtrace: &[u64]) {
    println!(
        "backtrace of '{program}' recorded ({} frames):",
        backtrace.len()
    );
    for (index, address) in backtrace.iter().enumerate() {
        let kind = if index == 0 { "pc " } else { "ret" };
        println!("  #{index} {kind} {address:#018x} ({program})");
    }
}

fn describe(failure: Failure) -> String {
    alloc::format!(
        "{}",
        FailureText {
            reason: failure.reason,
            detail: failure.detail
        }
    )
}

impl Rs {
    fn by_pid(&mut self, pid: u64) -> Option<&mut Service> {
        self.services
            .iter_mut()
            .find(|service| service.pid == pid && pid != 0)
    }

    /// Starts service `index`: a new instance, which takes over the kept endpoint if there
    /// is one, else whose endpoint is kept from now on.
    fn start(&mut self, index: usize) {
        let now = time::now_ns();
        let tick_ns = self.tick_ns;
        let service = &mut self.services[index];
        let first =
            service.started_ns == 0 && service.restarts == 0 && service.last_failure_ns == 0;
        match pm::spawn_managed(&service.program, "") {
            Ok(pid) => {
                service.pid = pid;
                // Its process name is the program's (PM matched the module by it).
                let instance = ipc::lookup(&service.program).unwrap_or(Endpoint::NONE);
                service.alive_at(tick_ns);
                service.started_ns = time::now_ns();
                if service.kept.is_thread() {
                    service.state = ServiceState::Initialising;
                    service.replacement = instance;
                    service.endpoint = Endpoint::NONE;
                    service.init_deadline_ns =
                        now.saturating_add(service.policy.init_ms.saturating_mul(1_000_000));
                } else {
                    service.state = ServiceState::Running;
                    service.endpoint = instance;
                    match syscall::service_keep_endpoint(instance) {
                        Ok(_) => service.kept = instance,
                        Err(error) => println!(
                            "service '{}': endpoint {instance} not kept ({error}): its restarts get new endpoints",
                            service.name
                        ),
                    }
                }
                if first {
                    println!("service '{}' started (pid {pid})", service.name);
                } else {
                    service.restarts += 1;
                    let latency_us = now.saturating_sub(service.ended_ns) / 1000;
                    println!(
                        "service '{}' restarted as pid {pid} (restart {}, {latency_us} us after its end)",
                        service.name, service.restarts
                    );
                }
                if service.state == ServiceState::Initialising {
                    self.take_over(index, TAKEOVER_YIELDS);
                }
            }
            Err(error) => {
                println!("service '{}' could not be spawned: {error}", service.name);
                service.pid = 0;
                service.endpoint = Endpoint::NONE;
                service.replacement = Endpoint::NONE;
                service.started_ns = now;
                service.ended_ns = now;
                self.failed(
                    index,
                    Failure {
                        reason: reason::SPAWN,
                        detail: error as u64,
                    },
                );
            }
        }
    }

    /// Tries to make the initialising replacement of service `index` take over the kept
    /// endpoint, yielding to it up to `yields` times while it is not yet in its receive
    /// loop (`Busy`). Once it has, the service runs at the kept endpoint.
    fn take_over(&mut self, index: usize, yields: u32) {
        let tick_ns = self.tick_ns;
        let service = &mut self.services[index];
        let result = retry_while_busy(yields, || {
            syscall::service_take_over(service.kept, service.replacement)
        });
        match result {
            Ok(_) => {
                let now = time::now_ns();
                let latency_us = now.saturating_sub(service.ended_ns) / 1000;
                println!(
                    "service '{}' (pid {}) serves {} again (its own {} is gone), {latency_us} us after its end",
                    service.name, service.pid, service.kept, service.replacement
                );
                service.endpoint = service.kept;
                service.replacement = Endpoint::NONE;
                service.state = ServiceState::Running;
                service.alive_at(tick_ns);
            }
            // Not in its receive loop yet: the next tick tries again.
            Err(Error::Busy) => {}
            // It died before getting there: its exit or exception event ends it.
            Err(error) => println!(
                "service '{}' (pid {}): taking over {} failed: {error}",
                service.name, service.pid, service.kept
            ),
        }
    }

    /// At each tick: the initialising replacements try their takeover again; one whose
    /// `init` time is up has failed to initialise and is killed.
    fn initialising(&mut self) {
        let now = time::now_ns();
        for index in 0..self.services.len() {
            if self.services[index].state != ServiceState::Initialising
                || self.services[index].pid == 0
            {
                continue;
            }
            self.take_over(index, 0);
            let service = &mut self.services[index];
            if service.state != ServiceState::Initialising || now < service.init_deadline_ns {
                continue;
            }
            println!(
                "service '{}' (pid {}) did not reach its receive loop within {} ms",
                service.name, service.pid, service.policy.init_ms
            );
            service.ending = Some(Failure {
                reason: reason::INIT_TIMEOUT,
                detail: service.policy.init_ms,
            });
            service.ended_ns = now;
            let pid = service.pid;
            self.end_instance(pid, status::killed_by(Signal::KILL, false));
        }
    }

    /// Gives the kept endpoint of service `index` up: its waiting clients fail with
    /// `DeadEndpoint`, and the next start is a new endpoint.
    fn release_endpoint(&mut self, index: usize) {
        let service = &mut self.services[index];
        if !service.kept.is_thread() {
            return;
        }
        match syscall::service_release(service.kept) {
            Ok(_) => println!(
                "service '{}': endpoint {} released",
                service.name, service.kept
            ),
            Err(error) => println!(
                "service '{}': releasing endpoint {} failed: {error}",
                service.name, service.kept
            ),
        }
        service.kept = Endpoint::NONE;
    }

    /// Service `index`'s instance ended with `failure`: restart it by its policy.
    fn failed(&mut self, index: usize, failure: Failure) {
        let now = time::now_ns();
        let service = &mut self.services[index];
        service.pid = 0;
        service.endpoint = Endpoint::NONE;
        service.replacement = Endpoint::NONE;
        service.last = failure;
        service.last_failure_ns = now;
        // The history's backtrace is the last failure's: only an exception has one.
        if failure.reason != reason::EXCEPTION {
            service.backtrace.clear();
        }
        if self.kept_down_by_operator(index, failure) {
            // Nothing will take the tombstone over until an operator acts: clients
            // waiting there fail now instead of waiting for that.
            self.release_endpoint(index);
            return;
        }
        let service = &mut self.services[index];
        if matches!(failure.reason, reason::REQUESTED | reason::REFRESH) {
            service.failures_in_a_row = 0;
            self.start(index);
            return;
        }
        let ran_ms = now.saturating_sub(service.started_ns) / 1_000_000;
        if ran_ms >= service.policy.stable_ms {
            service.failures_in_a_row = 0;
        }
        service.failures_in_a_row = service.failures_in_a_row.saturating_add(1);
        let in_a_row = service.failures_in_a_row;
        if in_a_row >= service.policy.limit {
            service.state = ServiceState::HeldDown;
            println!(
                "ALERT: service '{}' held down after {in_a_row} failures in a row (last: {}); RESTART starts it again",
                service.name,
                describe(failure)
            );
            self.release_endpoint(index);
            return;
        }
        let delay_ms = service.policy.delay_ms(in_a_row);
        println!(
            "service '{}' failed: {}; failure {in_a_row} in a row, restart in {delay_ms} ms",
            service.name,
            describe(failure)
        );
        service.state = if failure.reason == reason::SPAWN {
            ServiceState::SpawnFailed
        } else {
            ServiceState::BackingOff
        };
        service.restart_at_ns = now.saturating_add(delay_ms.saturating_mul(1_000_000));
        if delay_ms == 0 {
            self.start(index);
        }
    }

    /// A child of RS exited with `status` (collected from PM).
    fn exited(&mut self, pid: u64, status: u64) {
        if let Some(index) = self.candidate_of(pid) {
            let failure = Failure {
                reason: reason::EXIT,
                detail: status,
            };
            self.candidate_ended(index, failure);
            return;
        }
        let Some(index) = self.services.iter().position(|s| s.pid == pid && pid != 0) else {
            println!("pid {pid} (not a running service) exited with status {status:#x}");
            return;
        };
        if !self.old_ended_during_update(index) {
            return;
        }
        let service = &mut self.services[index];
        let failure = service.ending.take().unwrap_or(Failure {
            reason: reason::EXIT,
            detail: status,
        });
        if failure.reason == reason::EXIT {
            service.ended_ns = time::now_ns();
        }
        self.failed(index, failure);
    }

    /// PM's exit notice: collects every exit of RS's children that PM holds (none when a
    /// `WAIT(pid)` of RS's took it first).
    fn collect_exits(&mut self) {
        loop {
            match pm::try_wait(None) {
                Ok(Some(exited)) => {
                    println!(
                        "pid {} exited (status {:#x}): collected on PM's exit notice",
                        exited.pid, exited.status
                    );
                    self.exited(exited.pid, exited.status);
                }
                Ok(None) | Err(Error::NotFound) => break,
                Err(error) => {
                    println!("collecting exits failed: {error}");
                    break;
                }
            }
        }
    }

    /// Ends running instance `pid` (its failure already recorded in `ending`) and collects
    /// it at once (its `WAIT(pid)`), so its restart does not wait for PM's exit notice.
    fn end_instance(&mut self, pid: u64, status: u64) {
        if let Err(error) = pm::kill(pid, status) {
            println!("killing pid {pid} failed: {error}");
        }
        match pm::wait(Some(pid)) {
            Ok(exited) => self.exited(exited.pid, exited.status),
            Err(error) => println!("collecting pid {pid} failed: {error}"),
        }
    }

    /// The kernel holds threads of services after an exception: RS reads the held thread's
    /// backtrace into the restart history, then each instance ends. The kernel also queues
    /// the crashes of the system servers it ended (`system.rs`).
    fn exception_events(&mut self) {
        self.system_server_crashes();
        loop {
            let record = match syscall::pm_next_event() {
                Ok(Some(record)) => record,
                Ok(None) => break,
                Err(error) => {
                    println!("collecting process events failed: {error}");
                    break;
                }
            };
            let pid = record[event::PID];
            let vector = record[event::VECTOR];
            if record[event::KIND] != event::EXCEPTION {
                println!("pid {pid}: unexpected event kind {}", record[event::KIND]);
                continue;
            }
            let thread = Endpoint(record[event::THREAD]);
            let now = time::now_ns();
            if let Some(index) = self.candidate_of(pid) {
                println!(
                    "service '{}': update candidate (pid {pid}) crashed: {} at {:#x}",
                    self.services[index].name,
                    exception_mnemonic(vector),
                    record[event::RIP]
                );
                let status = status::killed_by(Signal::for_exception(vector), true);
                if let Err(error) = pm::kill(pid, status) {
                    println!("killing pid {pid} failed: {error}");
                }
                if let Err(error) = pm::wait(Some(pid)) {
                    println!("collecting pid {pid} failed: {error}");
                }
                let failure = Failure {
                    reason: reason::EXCEPTION,
                    detail: vector,
                };
                self.candidate_ended(index, failure);
                continue;
            }
            // The history keeps the backtrace (INTROSPECT, `service list`, `vigil top`);
            // the console has it already, symbolised, in the kernel's fault report.
            let name = match self.by_pid(pid) {
                Some(service) => {
                    service.ending = Some(Failure {
                        reason: reason::EXCEPTION,
                        detail: vector,
                    });
                    service.ended_ns = now;
                    service.backtrace = held_backtrace(thread);
                    service.backtrace_vector = vector;
                    service.name.clone()
                }
                None => String::from("?"),
            };
            println!(
                "service '{name}' (pid {pid}) crashed: {} at {:#x} (address {:#x})",
                exception_mnemonic(vector),
                record[event::RIP],
                record[event::FAULT_ADDRESS]
            );
            let status = status::killed_by(Signal::for_exception(vector), true);
            self.end_instance(pid, status);
        }
    }

    /// Pings every running service when its next ping is due and declares hung one
    /// silent for `MISSED_HEARTBEATS` periods since its last sign of life, by the rule of
    /// `vigil_abi::heartbeat` (which keeps RS's own lateness off the service): at the
    /// default 100 ms period, ≤ 300 ms after its last answer.
    fn heartbeats(&mut self) {
        let now = time::now_ns();
        for index in 0..self.services.len() {
            let service = &mut self.services[index];
            let period_ns = service.policy.heartbeat_ms.saturating_mul(1_000_000);
            if service.state != ServiceState::Running
                || period_ns == 0
                || !service.endpoint.is_thread()
            {
                continue;
            }
            let mut pings = service.pings();
            let beat = pings.at_tick(now, period_ns);
            service.set_pings(pings);
            match beat {
                Beat::Wait => {}
                // A dead endpoint means it has just exited: PM's exit notice ends it.
                Beat::Ping => {
                    let _ = ipc::notify(service.endpoint);
                }
                Beat::Hung { silent_ns } => {
                    println!(
                        "service '{}' (pid {}) silent for {} us since its last sign of life ({} ms period, {} pings unanswered): hung",
                        service.name,
                        service.pid,
                        silent_ns / 1000,
                        service.policy.heartbeat_ms,
                        service.unanswered
                    );
                    service.ending = Some(Failure {
                        reason: reason::HANG,
                        detail: u64::from(MISSED_HEARTBEATS),
                    });
                    service.ended_ns = now;
                    let pid = service.pid;
                    self.end_instance(pid, status::killed_by(Signal::KILL, false));
                }
            }
        }
    }

    /// A notification from `source`: a service's answer to its ping, a sign of life.
    fn heartbeat_answered(&mut self, source: Endpoint) {
        if self.update_pong(source) {
            return;
        }
        let tick_ns = self.tick_ns;
        if let Some(service) = self
            .services
            .iter_mut()
            .find(|service| service.endpoint == source && service.pid != 0)
        {
            service.alive_at(tick_ns);
        }
    }

    /// Starts the services whose backoff delay has passed.
    fn start_due(&mut self) {
        let now = time::now_ns();
        for index in 0..self.services.len() {
            let service = &self.services[index];
            let waiting = matches!(
                service.state,
                ServiceState::BackingOff | ServiceState::SpawnFailed
            );
            if waiting && service.pid == 0 && now >= service.restart_at_ns {
                self.start(index);
            }
        }
    }

    fn is_operator(&self, client: Endpoint) -> bool {
        self.operators
            .iter()
            .any(|name| ipc::lookup(name).is_ok_and(|endpoint| endpoint == client))
    }

    /// The service a request's `payload[0]` names (`NotFound` past the last).
    fn index(&self, value: u64) -> Result<usize, Error> {
        usize::try_from(value)
            .ok()
            .filter(|&index| index < self.services.len())
            .ok_or(Error::NotFound)
    }

    fn handle(&mut self, message: &Message) {
        let client = message.source;
        let answer = match message.kind {
            request::SERVICE_STATUS => self.index(message.payload[0]).map(|index| {
                let service = &self.services[index];
                (
                    [
                        0,
                        service.state as u64,
                        service.restarts,
                        service.last.reason,
                        service.last.detail,
                        service.pid,
                    ],
                    service.failures_in_a_row,
                )
            }),
            request::SERVICE_INDEX => {
                let mut name = [0u8; MAX_NAME_BYTES];
                unpack_name(&message.payload, &mut name).and_then(|len| {
                    self.services
                        .iter()
                        .position(|service| service.name.as_bytes() == &name[..len])
                        .map(|index| ([0, index as u64, 0, 0, 0, 0], 0))
                        .ok_or(Error::NotFound)
                })
            }
            request::RESTART => {
                if !self.is_operator(client) {
                    println!("RESTART from {client} refused: not an operator");
                    Err(Error::PermissionDenied)
                } else {
                    self.index(message.payload[0]).and_then(|index| {
                        self.refuse_system_server(index, "restart")?;
                        self.restart(index);
                        Ok(([0; 6], 0))
                    })
                }
            }
            request::SERVICE_NAME => self.service_name(message.payload[0]),
            request::UPDATE => match self
                .refuse_system_update(message.payload[0])
                .and_then(|()| self.begin_update(client, &message.payload))
            {
                // Answered when the update ends.
                Ok(()) => return,
                Err(error) => Err(error),
            },
            // A blocking send, not a call: nothing to answer.
            request::PREPARED => {
                if let Err(error) = self.prepared(client) {
                    println!("PREPARED from {client} ignored: {error} (no update waits for it)");
                }
                return;
            }
            request::ACTION => self.operator_action(client, &message.payload),
            INTROSPECT => {
                let answer = introspect::answer(self, message);
                if let Err(error) = ipc::send_nonblocking(client, &answer) {
                    println!("INTROSPECT reply to {client} dropped: {error}");
                }
                return;
            }
            _ => Err(Error::NoSuchCall),
        };
        reply(client, answer);
    }

    /// An operator's RESTART of service `index`.
    fn restart(&mut self, index: usize) {
        let service = &mut self.services[index];
        println!(
            "service '{}': restart requested (state {})",
            service.name,
            service.state.name()
        );
        service.ended_ns = time::now_ns();
        if service.pid != 0 {
            service.ending = Some(Failure {
                reason: reason::REQUESTED,
                detail: 0,
            });
            let pid = service.pid;
            self.end_instance(pid, status::killed_by(Signal::TERM, false));
        } else {
            service.failures_in_a_row = 0;
            self.start(index);
        }
    }
}

/// The service table and operators from RS's arguments; bad entries are refused with a
/// console line and the rest are supervised.
fn parse_arguments(args: &str) -> Rs {
    let mut rs = Rs {
        services: Vec::new(),
        tick_ns: time::now_ns(),
        operators: Vec::new(),
    };
    for word in args.split_ascii_whitespace() {
        if let Some(names) = word.strip_prefix("operator=") {
            rs.operators
                .extend(names.split('+').filter(|n| !n.is_empty()).map(String::from));
            continue;
        }
        match ServiceSpec::parse(word) {
            Ok(spec) if rs.services.iter().any(|s| s.name == spec.program) => {
                println!("service '{}' refused: listed twice", spec.program);
            }
            Ok(spec) => rs.services.push(Service::new(
                spec.program,
                spec.policy,
                ServiceState::BackingOff,
            )),
            Err(reason) => println!("service '{word}' refused: {reason}"),
        }
    }
    rs
}

impl Service {
    /// A service named `name` (its first program too) that has not run yet.
    fn new(name: &str, policy: RestartPolicy, state: ServiceState) -> Service {
        Service {
            name: String::from(name),
            program: String::from(name),
            version: FIRST_VERSION,
            update: None,
            policy,
            state,
            pid: 0,
            started_ns: 0,
            restarts: 0,
            failures_in_a_row: 0,
            last: Failure {
                reason: reason::NONE,
                detail: 0,
            },
            last_failure_ns: 0,
            restart_at_ns: 0,
            ending: None,
            ended_ns: 0,
            endpoint: Endpoint::NONE,
            kept: Endpoint::NONE,
            replacement: Endpoint::NONE,
            init_deadline_ns: 0,
            last_ping_ns: 0,
            unanswered: 0,
            alive_ns: 0,
            first_unanswered_ns: 0,
            held: false,
            system: state.is_system(),
            backtrace: Vec::new(),
            backtrace_vector: 0,
        }
    }
}

fn main(args: &str) -> i32 {
    let mut rs = parse_arguments(args);
    println!(
        "supervising {} services at {} (operators: {:?})",
        rs.services.len(),
        ipc::self_endpoint(),
        rs.operators
    );
    for (index, service) in rs.services.iter().enumerate() {
        let policy = service.policy;
        println!(
            "service {index} '{}': backoff 0, then {} ms doubling to {} ms; held after {} failures in a row (stable after {} ms); heartbeat every {} ms; {} ms to initialise",
            service.name, policy.base_ms, policy.cap_ms, policy.limit, policy.stable_ms, policy.heartbeat_ms, policy.init_ms
        );
    }
    for index in 0..rs.services.len() {
        rs.start(index);
    }
    rs.add_system_servers();
    if let Err(error) = alarm::set(TICK) {
        println!("no alarm ({error}): no heartbeats, backoffs or deadlines");
    }
    let pm_server = pm::server().unwrap_or(Endpoint::NONE);
    loop {
        let message = match ipc::receive(Endpoint::ANY) {
            Ok(message) => message,
            Err(error) => {
                println!("receive failed: {error}");
                continue;
            }
        };
        if message.source == Endpoint::CLOCK {
            rs.tick_ns = time::now_ns();
            rs.update_tick();
            rs.initialising();
            rs.heartbeats();
            rs.start_due();
        } else if message.is_notification() && message.source == pm_server {
            rs.collect_exits();
        } else if message.is_notification() && message.source.is_thread() {
            rs.heartbeat_answered(message.source);
        } else if message.kind == KIND_PROCESS_EVENT && message.source == Endpoint::KERNEL {
            rs.exception_events();
        } else if message.kind == KIND_HOST_COMMAND && message.source == Endpoint::KERNEL {
            rs.host_command(&message);
        } else if message.source.is_thread() {
            rs.handle(&message);
        }
    }
}
