//! The reincarnation server (RS, `user/servers/rs`) and the `hello` counter service it
//! supervises: request kinds, RS's service table syntax and restart policy, and the
//! states and failure reasons RS reports.
//!
//! Both answer one `SendReceive` each with their `REPLY` kind: `payload[0]` is 0 or an
//! `Error` code, results follow.
//!
//! A restarted service is a new process that keeps the service's endpoint (see
//! docs/architecture.md "The reincarnation server"): RS marks each service's main thread
//! (`ServiceKeepEndpoint`), the dead instance leaves a restart tombstone, and the
//! replacement takes it over once it waits in its receive loop (`ServiceTakeOver`).
//! Clients keep the endpoint they have; a call the dead instance had received fails with
//! `Restarted`, which `ipc::call_service` retries. Its state is kept only if it keeps it
//! in DS (`crate::ds`), as hello does, exactly once (`crate::exactly_once`).

use crate::error::Error;

/// The process name of RS (a system server of the boot table).
pub const RS_SERVER_NAME: &str = "rs";

/// Why RS refuses an operator action (restart, down, hold, update, …) on a system server,
/// in every console line, host answer and `service` message that says so.
pub const SYSTEM_SERVER_REFUSAL: &str =
    "system server: not restartable (its state lives only in its memory)";

/// Request kinds RS answers.
pub mod request {
    /// payload `[index]` → reply `[0, state, restarts, last_reason, last_detail, pid]`
    /// (`ServiceState`, restarts so far, `reason`, its detail, the running instance's pid
    /// or 0); `tag` is the failures in a row. `NotFound` past the last service;
    /// `SERVICE_INDEX` maps a name to its index.
    pub const SERVICE_STATUS: u32 = 0x0500_0001;
    /// payload `[name bytes 0..8, 8..16, 16..24, 24..32, length]` → reply `[0, index]`: the
    /// index of the service named so (`NotFound` if none, `InvalidArgument` for a length
    /// above 32 or a name that is not UTF-8).
    pub const SERVICE_INDEX: u32 = 0x0500_0002;
    /// payload `[index]` → reply `[0]`: kill and restart the service now (a held service
    /// is started again with its failure count cleared). Only from an operator (RS's
    /// `operator=` argument): `PermissionDenied` for anyone else.
    pub const RESTART: u32 = 0x0500_0003;
    /// payload `[index]` → reply `[0, name bytes 0..8, 8..16, 16..24, 24..32, length]`: the
    /// name of service `index` (`NotFound` past the last), so a client can list them by
    /// asking from 0 until `NotFound`. Anyone may ask.
    pub const SERVICE_NAME: u32 = 0x0500_0004;
    /// payload `[index, action]` → reply `[0]`: an operator's `ServiceAction` on service
    /// `index`. `PermissionDenied` for a sender that is not an operator, `NotFound` for no
    /// such service, `InvalidArgument` for an unknown action code, `NotReady` for an
    /// action the service's state does not allow (refresh of a service that does not
    /// run), `Exists` for `Up` of a service that is not down.
    pub const ACTION: u32 = 0x0500_0005;
    /// payload `[index, name bytes 0..8, 8..16, 16..24, length, timeout_ms]` → reply
    /// `[0, version]` once the update is done: live update of service `index` to the
    /// `boot=pm` program named (see `update`). Answered when it ends: `[0, new version]`
    /// after the grace period, or the error — PM's spawn error (`NotFound`: no such
    /// module, `InvalidArgument`: a malformed image), `Interrupted` (cancelled: the old
    /// version did not reach a quiescent point within `timeout_ms`, default
    /// `update::DEFAULT_PREPARE_MS`, or the candidate died first), `Restarted` (rolled
    /// back). `PermissionDenied` for a non-operator, `NotFound` for no such service,
    /// `InvalidArgument` for a bad name or a timeout above `MAX_POLICY_MS`, `NotReady` if
    /// the service does not run, `Busy` if an update of it is in progress, `Exists` for
    /// the program it already runs.
    pub const UPDATE: u32 = 0x0500_0006;
    /// RS → a service's main thread (an async-free `send_nonblocking`, so only when it
    /// waits in its receive loop): reach a quiescent point — everything committed, no
    /// request in progress — and answer `PREPARED` (a blocking send to RS).
    pub const PREPARE: u32 = 0x0500_0007;
    /// A service → RS: the answer to `PREPARE`.
    pub const PREPARED: u32 = 0x0500_0008;
    /// Every answer.
    pub const REPLY: u32 = 0x0500_00ff;
}

/// Live update (`request::UPDATE`), MINIX 3 style: RS spawns the candidate beside the old
/// instance with `CANDIDATE_ARGUMENT` appended to its module's arguments (it must not take
/// any state or serve before its first message), sends the old one `PREPARE`, and on
/// `PREPARED` exchanges the two main threads (`ServiceSwap`: the clients' endpoint now
/// reaches the candidate). The candidate's first message — RS's ping or a client's request
/// — makes it read its state (in DS) and serve; its first answered ping ends its
/// initialisation, and it must answer every ping during `DEFAULT_GRACE_MS`. If it dies,
/// misses its initialisation bound (the policy's `init_ms`) or `MISSED_HEARTBEATS` pings,
/// it is killed and the old instance, kept quiescent at the candidate's former endpoint,
/// takes the kept endpoint back (`ServiceTakeOver`): rolled back. After the grace period
/// the old instance is killed and the service's version counts one more.
pub mod update {
    /// The word RS appends to a candidate's module arguments.
    pub const CANDIDATE_ARGUMENT: &str = "update-candidate";
    /// How long the old version has to answer `PREPARE` and be swapped (per-request
    /// override: `UPDATE`'s `payload[5]`).
    pub const DEFAULT_PREPARE_MS: u64 = 2000;
    /// How long the new version must keep answering its heartbeats before the old one is
    /// let go.
    pub const DEFAULT_GRACE_MS: u64 = 500;
    /// `UPDATE`'s payload for service `index`, program `name`, `timeout_ms` (0: default).
    pub fn pack(index: u64, name: &str, timeout_ms: u64) -> Result<[u64; 6], crate::Error> {
        let name = super::pack_name(name)?;
        Ok([index, name[0], name[1], name[2], name[4], timeout_ms])
    }
    /// The program name of an `UPDATE` payload into `out` (checked like `unpack_name`,
    /// the name is at most 24 bytes here); returns its length.
    pub fn unpack_name(
        payload: &[u64; 6],
        out: &mut [u8; super::MAX_NAME_BYTES],
    ) -> Result<usize, crate::Error> {
        if payload[4] > 24 {
            return Err(crate::Error::InvalidArgument);
        }
        super::unpack_name(&[payload[1], payload[2], payload[3], 0, payload[4], 0], out)
    }
}

/// What an operator asks RS to do to a service (`request::ACTION`'s `payload[1]`, and the
/// host's service commands forwarded by the kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum ServiceAction {
    /// Start a service that is down (`Exists` if it is not).
    Up = 1,
    /// End its instance and do not start it again until `Up`.
    Down = 2,
    /// End its instance if one runs and start a new one now; a held-down service is
    /// started with its failure run cleared (the same as `request::RESTART`).
    Restart = 3,
    /// Replace the running, healthy instance with a fresh one (`NotReady` if none runs).
    Refresh = 4,
    /// Stop restarting it: the instance keeps running, but when it ends RS holds it down.
    Hold = 5,
    /// Clear a hold, and start the service again if it is held down (by a hold or a
    /// crash loop) with its failure run cleared.
    Release = 6,
}

impl ServiceAction {
    /// Every action, by code.
    pub const ALL: [ServiceAction; 6] = [
        ServiceAction::Up,
        ServiceAction::Down,
        ServiceAction::Restart,
        ServiceAction::Refresh,
        ServiceAction::Hold,
        ServiceAction::Release,
    ];

    pub fn from_code(code: u64) -> Option<ServiceAction> {
        Self::ALL.into_iter().find(|action| *action as u64 == code)
    }

    /// The word the `service` program and `vigil top` use.
    pub const fn name(self) -> &'static str {
        match self {
            ServiceAction::Up => "up",
            ServiceAction::Down => "down",
            ServiceAction::Restart => "restart",
            ServiceAction::Refresh => "refresh",
            ServiceAction::Hold => "hold",
            ServiceAction::Release => "release",
        }
    }

    pub fn from_name(name: &str) -> Option<ServiceAction> {
        Self::ALL.into_iter().find(|action| action.name() == name)
    }
}

/// Longest service name `SERVICE_INDEX` carries (the kernel's process-name limit).
pub const MAX_NAME_BYTES: usize = 32;

/// A name packed into `SERVICE_INDEX`'s payload.
pub fn pack_name(name: &str) -> Result<[u64; 6], Error> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_NAME_BYTES {
        return Err(Error::InvalidArgument);
    }
    let mut payload = [0u64; 6];
    for (index, byte) in bytes.iter().enumerate() {
        payload[index / 8] |= u64::from(*byte) << ((index % 8) * 8);
    }
    payload[4] = bytes.len() as u64;
    Ok(payload)
}

/// Service `name`'s reply payload for `SERVICE_NAME`: `[0, name words, length]`.
pub fn pack_name_reply(name: &str) -> Result<[u64; 6], Error> {
    let packed = pack_name(name)?;
    Ok([0, packed[0], packed[1], packed[2], packed[3], packed[4]])
}

/// The name in a `SERVICE_NAME` reply payload (checked like `unpack_name`).
pub fn unpack_name_reply(
    payload: &[u64; 6],
    out: &mut [u8; MAX_NAME_BYTES],
) -> Result<usize, Error> {
    unpack_name(
        &[
            payload[1], payload[2], payload[3], payload[4], payload[5], 0,
        ],
        out,
    )
}

/// The bytes `pack_name` packed (its length checked) into `out`; returns the length.
pub fn unpack_name(payload: &[u64; 6], out: &mut [u8; MAX_NAME_BYTES]) -> Result<usize, Error> {
    let len = usize::try_from(payload[4]).map_err(|_| Error::InvalidArgument)?;
    if len == 0 || len > MAX_NAME_BYTES {
        return Err(Error::InvalidArgument);
    }
    for (index, byte) in out.iter_mut().enumerate().take(len) {
        *byte = (payload[index / 8] >> ((index % 8) * 8)) as u8;
    }
    core::str::from_utf8(&out[..len]).map_err(|_| Error::InvalidArgument)?;
    Ok(len)
}

/// A service's state (`SERVICE_STATUS`'s `state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum ServiceState {
    /// Its process runs.
    Running = 1,
    /// It failed and waits for its restart (the backoff delay).
    BackingOff = 2,
    /// It failed too often in a row: RS will not start it again until an operator's
    /// `RESTART`.
    HeldDown = 3,
    /// It could not be spawned at all (e.g. no such `boot=pm` module); retried like a
    /// failure.
    SpawnFailed = 4,
    /// An operator took it down (`ServiceAction::Down`): not started until `Up`.
    Down = 5,
    /// A replacement runs but has not reached its receive loop yet: the service's kept
    /// endpoint is a tombstone its clients wait on until the replacement takes it over
    /// (or fails to within the policy's `init_ms`).
    Initialising = 6,
    /// A live update is in progress (`request::UPDATE`): the old instance serves until
    /// the swap, the candidate after it, through the grace period.
    Updating = 7,
    /// A system server of the boot table (VM, PM, DS, RS itself): the kernel started it and
    /// RS is only its signal manager. It runs and is not restartable — its state lives only
    /// in its memory — so every operator action on it is refused (`PermissionDenied`, "system
    /// server: not restartable").
    System = 8,
    /// A system server that crashed: RS recorded the failure (reason, backtrace), raised an
    /// alert and had the kernel end it. Not restartable either.
    SystemFailed = 9,
}

impl ServiceState {
    pub const fn name(self) -> &'static str {
        match self {
            ServiceState::Running => "running",
            ServiceState::BackingOff => "backing-off",
            ServiceState::HeldDown => "held-down",
            ServiceState::SpawnFailed => "spawn-failed",
            ServiceState::Down => "down",
            ServiceState::Initialising => "initialising",
            ServiceState::Updating => "updating",
            ServiceState::System => "system",
            ServiceState::SystemFailed => "system-failed",
        }
    }

    /// Whether it is a system server's (never restarted by RS).
    pub const fn is_system(self) -> bool {
        matches!(self, ServiceState::System | ServiceState::SystemFailed)
    }

    pub fn from_code(code: u64) -> Option<ServiceState> {
        [
            ServiceState::Running,
            ServiceState::BackingOff,
            ServiceState::HeldDown,
            ServiceState::SpawnFailed,
            ServiceState::Down,
            ServiceState::Initialising,
            ServiceState::Updating,
            ServiceState::System,
            ServiceState::SystemFailed,
        ]
        .into_iter()
        .find(|state| *state as u64 == code)
    }
}

/// Why a service's last instance ended (`SERVICE_STATUS`'s `last_reason`; `last_detail`
/// is the exception vector, the exit status, or 0).
pub mod reason {
    /// It never failed.
    pub const NONE: u64 = 0;
    /// A CPU exception (detail: the vector) RS saw as its signal manager.
    pub const EXCEPTION: u64 = 1;
    /// It exited by itself (detail: the status; 101 is a panic).
    pub const EXIT: u64 = 2;
    /// An operator's `RESTART`.
    pub const REQUESTED: u64 = 3;
    /// PM refused to spawn it (detail: the `Error` code).
    pub const SPAWN: u64 = 4;
    /// It missed its heartbeats (detail: the heartbeat periods it stayed silent): RS
    /// killed it.
    pub const HANG: u64 = 5;
    /// An operator's `Down` ended it.
    pub const DOWN: u64 = 6;
    /// An operator's `Refresh` replaced it with a fresh instance.
    pub const REFRESH: u64 = 7;
    /// A replacement did not reach its receive loop (to take over the kept endpoint)
    /// within `init_ms` (detail: the milliseconds it had): RS killed it.
    pub const INIT_TIMEOUT: u64 = 8;
    /// A live update replaced it with the new version (detail: the new version).
    pub const UPDATED: u64 = 9;

    pub const fn name(reason: u64) -> &'static str {
        match reason {
            NONE => "none",
            EXCEPTION => "exception",
            EXIT => "exit",
            REQUESTED => "requested",
            SPAWN => "spawn",
            HANG => "hang",
            DOWN => "down",
            REFRESH => "refresh",
            INIT_TIMEOUT => "init-timeout",
            UPDATED => "updated",
            _ => "?",
        }
    }
}

/// A failure as people read it ("exception #PF (vector 14)", "panic (status 101)", …):
/// RS's console lines, the `service` program and `vigil top` say it the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureText {
    pub reason: u64,
    pub detail: u64,
}

impl core::fmt::Display for FailureText {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let detail = self.detail;
        match self.reason {
            reason::NONE => f.write_str("none"),
            reason::EXCEPTION => write!(
                f,
                "exception {} (vector {detail})",
                crate::signal::exception_mnemonic(detail)
            ),
            reason::EXIT if detail == 101 => f.write_str("panic (status 101)"),
            reason::EXIT => write!(f, "exit (status {})", detail as i64),
            reason::REQUESTED => f.write_str("restart requested"),
            reason::HANG => write!(f, "hang (no heartbeat for {detail} periods)"),
            reason::SPAWN => write!(
                f,
                "spawn refused ({})",
                Error::from_code(detail).map_or("?", Error::name)
            ),
            reason::DOWN => f.write_str("taken down"),
            reason::REFRESH => f.write_str("refreshed"),
            reason::INIT_TIMEOUT => {
                write!(
                    f,
                    "init timeout (not in its receive loop after {detail} ms)"
                )
            }
            reason::UPDATED => write!(f, "updated to version {detail}"),
            other => write!(f, "reason {other} (detail {detail})"),
        }
    }
}

/// A service's restart policy: the first restart after a failure is immediate, the next
/// wait `base_ms`, then twice as long each time up to `cap_ms`; after `limit` failures in a
/// row (a failure counts as "in a row" when the instance ran less than `stable_ms`) the
/// service is held down and RS raises an alert. Every `heartbeat_ms` (0: never) RS pings
/// the service; one silent for `MISSED_HEARTBEATS` periods while pinged is hung. A
/// replacement that has not reached its receive loop `init_ms` after its spawn has failed
/// to initialise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    pub base_ms: u64,
    pub cap_ms: u64,
    pub limit: u32,
    pub stable_ms: u64,
    pub heartbeat_ms: u64,
    pub init_ms: u64,
}

/// Heartbeat periods of silence after which RS declares a service hung: counted from its
/// last sign of life (its start or takeover, its last answer), with a ping at each period
/// in between, so the hang is declared when the `MISSED_HEARTBEATS`th ping would be due,
/// `MISSED_HEARTBEATS - 1` of them unanswered.
///
/// The heartbeat protocol: RS raises a notification at the service's main thread (the
/// ping); the service's receive loop answers with a notification to RS (the pong).
/// Notifications never block and are never lost (one pending bit per source), so neither
/// side can wedge the other; a service that does not come back to its receive loop
/// leaves the pings unanswered.
pub const MISSED_HEARTBEATS: u32 = 3;

impl RestartPolicy {
    /// MINIX 3's shape, at Vigil's time scale.
    pub const DEFAULT: RestartPolicy = RestartPolicy {
        base_ms: 20,
        cap_ms: 1000,
        limit: 8,
        stable_ms: 1000,
        heartbeat_ms: 100,
        init_ms: 1000,
    };

    /// The delay before restart number `failures_in_a_row` (1 = the first failure): 0,
    /// then `base_ms`, `2 × base_ms`, … at most `cap_ms`.
    pub fn delay_ms(&self, failures_in_a_row: u32) -> u64 {
        match failures_in_a_row {
            0 | 1 => 0,
            n => {
                let doublings = (n - 2).min(63);
                self.base_ms
                    .saturating_mul(1u64 << doublings)
                    .min(self.cap_ms)
            }
        }
    }
}

/// One entry of RS's service table: `PROGRAM[:key=value,…]` where PROGRAM is a `boot=pm`
/// module's process name and the keys are `base`, `cap`, `stable`, `hb` (the heartbeat
/// period; 0 turns heartbeats off), `init` (the time a replacement has to reach its
/// receive loop; milliseconds) and `limit` (failures in a row, 1 ..= 1000). Example:
/// `hello:base=10,cap=80,limit=5,hb=50,init=500`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceSpec<'a> {
    pub program: &'a str,
    pub policy: RestartPolicy,
}

/// Why a service table entry was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpecError<'a> {
    BadName(&'a str),
    UnknownKey(&'a str),
    BadValue(&'a str),
    /// `base` above `cap`.
    BaseAboveCap,
}

impl core::fmt::Display for SpecError<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SpecError::BadName(name) => write!(f, "bad program name '{name}'"),
            SpecError::UnknownKey(key) => {
                write!(
                    f,
                    "unknown key '{key}' (base, cap, limit, stable, hb, init)"
                )
            }
            SpecError::BadValue(value) => write!(f, "bad value '{value}'"),
            SpecError::BaseAboveCap => f.write_str("base is above cap"),
        }
    }
}

/// Most milliseconds a `base`, `cap` or `stable` may be (one hour).
pub const MAX_POLICY_MS: u64 = 3_600_000;
/// Most failures in a row `limit` may allow.
pub const MAX_LIMIT: u32 = 1000;

impl<'a> ServiceSpec<'a> {
    pub fn parse(text: &'a str) -> Result<ServiceSpec<'a>, SpecError<'a>> {
        let (program, options) = match text.split_once(':') {
            Some((program, options)) => (program, Some(options)),
            None => (text, None),
        };
        if program.is_empty() || program.len() > MAX_NAME_BYTES || program.contains('/') {
            return Err(SpecError::BadName(program));
        }
        let mut policy = RestartPolicy::DEFAULT;
        for option in options.into_iter().flat_map(|o| o.split(',')) {
            let (key, value) = option.split_once('=').ok_or(SpecError::BadValue(option))?;
            let number = value
                .parse::<u64>()
                .map_err(|_| SpecError::BadValue(value))?;
            let ms = || {
                if number <= MAX_POLICY_MS {
                    Ok(number)
                } else {
                    Err(SpecError::BadValue(value))
                }
            };
            match key {
                "base" => policy.base_ms = ms()?,
                "cap" => policy.cap_ms = ms()?,
                "stable" => policy.stable_ms = ms()?,
                "hb" => policy.heartbeat_ms = ms()?,
                "init" => policy.init_ms = ms()?,
                "limit" => {
                    policy.limit = u32::try_from(number)
                        .ok()
                        .filter(|limit| (1..=MAX_LIMIT).contains(limit))
                        .ok_or(SpecError::BadValue(value))?;
                }
                _ => return Err(SpecError::UnknownKey(key)),
            }
        }
        if policy.base_ms > policy.cap_ms {
            return Err(SpecError::BaseAboveCap);
        }
        Ok(ServiceSpec { program, policy })
    }
}

/// The `hello` counter service (`user/programs/src/bin/hello_service.rs`).
pub mod hello {
    /// The process name RS tables and clients use.
    pub const SERVICE_NAME: &str = "hello_service";

    /// The DS key under which hello keeps its counter and its exactly-once records.
    pub const STATE_KEY: &str = "hello.state";

    /// Where a request's words go: `payload[ARGUMENT]` (ADD's n, EXIT's status), the
    /// request id (`payload[CLIENT]`, `payload[SEQUENCE]`, `vigil_abi::exactly_once`;
    /// sequence 0: no id, executed every time) and `payload[FLAGS]` (`flags`; other bits
    /// are `InvalidArgument`).
    pub mod word {
        pub const ARGUMENT: usize = 0;
        pub const CLIENT: usize = crate::exactly_once::CLIENT_WORD;
        pub const SEQUENCE: usize = crate::exactly_once::SEQUENCE_WORD;
        pub const FLAGS: usize = 3;
    }

    /// Request flags (for tests).
    pub mod flags {
        /// Crash (a null dereference) after the request's new state and reply are recorded
        /// in DS, before replying: the retry must be answered from the record.
        pub const CRASH_AFTER_COMMIT: u64 = 1;
        pub const ALL: u64 = CRASH_AFTER_COMMIT;
    }

    /// Where a reply's words go: `payload[STATUS]` 0 or the error code, `payload[COUNTER]`
    /// the counter, and in GET's reply `payload[VERSION]` the version of the instance that
    /// answered (its `version=N`, 1 if absent), so a client sees a live update happen.
    pub mod reply {
        pub const STATUS: usize = 0;
        pub const COUNTER: usize = 1;
        pub const VERSION: usize = 2;
    }

    /// Request kinds; every answer is `REPLY` with `[0, counter]` or `[error]`.
    pub mod request {
        /// → `[0, counter, version]`.
        pub const GET: u32 = 0x0510_0001;
        /// → `[0, counter + 1]` (the new value).
        pub const INCREMENT: u32 = 0x0510_0002;
        /// payload `[n]` → `[0, counter + n]`; `InvalidArgument` if it would overflow.
        pub const ADD: u32 = 0x0510_0003;
        /// For tests: payload `[ms]` (at most `MAX_SLOW_MS`): sleeps that long with the
        /// request in hand, then answers `[0, counter]` (a request in flight when the
        /// instance is killed; harmless to retry).
        pub const SLOW_GET: u32 = 0x0510_0004;
        /// Longest `SLOW_GET` sleep (below the default hang detection's 3 × 100 ms).
        pub const MAX_SLOW_MS: u64 = 200;
        /// For tests: dereferences a null pointer (a #PF RS sees as its signal manager);
        /// never answers.
        pub const CRASH: u32 = 0x0510_0010;
        /// For tests: panics (the runtime ends it with status 101); never answers.
        pub const PANIC: u32 = 0x0510_0011;
        /// For tests: payload `[status]`: exits with `status` (0 ..= 255); never answers.
        pub const EXIT: u32 = 0x0510_0012;
        /// For tests: stops answering anything, forever (a hang).
        pub const HANG: u32 = 0x0510_0013;
        pub const REPLY: u32 = 0x0510_00ff;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_immediate_then_doubles_up_to_the_cap() {
        let policy = RestartPolicy {
            base_ms: 10,
            cap_ms: 50,
            limit: 9,
            stable_ms: 1000,
            heartbeat_ms: 0,
            init_ms: 1000,
        };
        let delays: [u64; 7] = core::array::from_fn(|i| policy.delay_ms(i as u32 + 1));
        assert_eq!(delays, [0, 10, 20, 40, 50, 50, 50]);
        assert_eq!(policy.delay_ms(u32::MAX), 50);
        let huge = RestartPolicy {
            base_ms: MAX_POLICY_MS,
            cap_ms: MAX_POLICY_MS,
            ..policy
        };
        assert_eq!(huge.delay_ms(200), MAX_POLICY_MS);
    }

    #[test]
    fn service_specs_parse_and_bad_ones_are_refused() {
        let spec = ServiceSpec::parse("hello_service:base=10,cap=80,limit=5").unwrap();
        assert_eq!(spec.program, "hello_service");
        assert_eq!(spec.policy.base_ms, 10);
        assert_eq!(spec.policy.cap_ms, 80);
        assert_eq!(spec.policy.limit, 5);
        assert_eq!(spec.policy.stable_ms, RestartPolicy::DEFAULT.stable_ms);
        assert_eq!(spec.policy.heartbeat_ms, 100);
        assert_eq!(spec.policy.init_ms, 1000);
        assert_eq!(
            ServiceSpec::parse("hello:init=250").unwrap().policy.init_ms,
            250
        );
        assert_eq!(
            ServiceSpec::parse("hello:hb=0")
                .unwrap()
                .policy
                .heartbeat_ms,
            0
        );
        assert_eq!(
            ServiceSpec::parse("hello").unwrap().policy,
            RestartPolicy::DEFAULT
        );
        assert_eq!(
            ServiceSpec::parse("hello:speed=3"),
            Err(SpecError::UnknownKey("speed"))
        );
        assert_eq!(
            ServiceSpec::parse("hello:limit=0"),
            Err(SpecError::BadValue("0"))
        );
        assert_eq!(
            ServiceSpec::parse("hello:base=x"),
            Err(SpecError::BadValue("x"))
        );
        assert_eq!(
            ServiceSpec::parse("hello:base=100,cap=10"),
            Err(SpecError::BaseAboveCap)
        );
        assert_eq!(ServiceSpec::parse(""), Err(SpecError::BadName("")));
        assert_eq!(ServiceSpec::parse("a/b"), Err(SpecError::BadName("a/b")));
        assert_eq!(
            ServiceSpec::parse("hello:cap=99999999999"),
            Err(SpecError::BadValue("99999999999"))
        );
    }

    #[test]
    fn names_round_trip_through_a_payload() {
        let payload = pack_name("hello_service").unwrap();
        let mut out = [0u8; MAX_NAME_BYTES];
        let len = unpack_name(&payload, &mut out).unwrap();
        assert_eq!(&out[..len], b"hello_service");
        assert_eq!(pack_name(""), Err(Error::InvalidArgument));
        assert_eq!(
            pack_name(core::str::from_utf8(&[b'a'; 33]).unwrap()),
            Err(Error::InvalidArgument)
        );
        let mut forged = payload;
        forged[4] = 33;
        assert_eq!(unpack_name(&forged, &mut out), Err(Error::InvalidArgument));
        forged[4] = u64::MAX;
        assert_eq!(unpack_name(&forged, &mut out), Err(Error::InvalidArgument));
        forged = [u64::MAX, 0, 0, 0, 8, 0];
        assert_eq!(unpack_name(&forged, &mut out), Err(Error::InvalidArgument));
        let reply = pack_name_reply("rs_demo").unwrap();
        assert_eq!(reply[0], 0);
        let len = unpack_name_reply(&reply, &mut out).unwrap();
        assert_eq!(&out[..len], b"rs_demo");
        assert_eq!(
            unpack_name_reply(&[0, 0, 0, 0, 0, 0], &mut out),
            Err(Error::InvalidArgument)
        );
    }

    #[test]
    fn actions_and_states_round_trip_by_code_and_name() {
        for action in ServiceAction::ALL {
            assert_eq!(ServiceAction::from_code(action as u64), Some(action));
            assert_eq!(ServiceAction::from_name(action.name()), Some(action));
        }
        assert_eq!(ServiceAction::from_code(0), None);
        assert_eq!(ServiceAction::from_code(7), None);
        assert_eq!(ServiceAction::from_name("update"), None);
        assert_eq!(ServiceState::from_code(5), Some(ServiceState::Down));
        assert_eq!(ServiceState::Down.name(), "down");
        assert_eq!(ServiceState::from_code(6), Some(ServiceState::Initialising));
        assert_eq!(ServiceState::from_code(7), Some(ServiceState::Updating));
        assert_eq!(ServiceState::from_code(8), Some(ServiceState::System));
        assert_eq!(ServiceState::System.name(), "system");
        assert_eq!(ServiceState::from_code(9), Some(ServiceState::SystemFailed));
        assert_eq!(ServiceState::from_code(10), None);
        assert!(ServiceState::SystemFailed.is_system() && !ServiceState::Running.is_system());
        assert_eq!(reason::name(reason::REFRESH), "refresh");
    }

    #[test]
    fn update_requests_round_trip_and_bad_names_are_refused() {
        let payload = update::pack(2, "hello_v2", 750).unwrap();
        assert_eq!(payload[0], 2);
        assert_eq!(payload[5], 750);
        let mut out = [0u8; MAX_NAME_BYTES];
        let len = update::unpack_name(&payload, &mut out).unwrap();
        assert_eq!(&out[..len], b"hello_v2");
        let mut forged = payload;
        forged[4] = 25;
        assert_eq!(
            update::unpack_name(&forged, &mut out),
            Err(Error::InvalidArgument)
        );
        forged[4] = 0;
        assert_eq!(
            update::unpack_name(&forged, &mut out),
            Err(Error::InvalidArgument)
        );
        forged = [0, u64::MAX, 0, 0, 8, 0];
        assert_eq!(
            update::unpack_name(&forged, &mut out),
            Err(Error::InvalidArgument)
        );
    }

    #[test]
    fn failures_read_the_same_everywhere() {
        extern crate std;
        use std::string::ToString;
        let text = |reason, detail| FailureText { reason, detail }.to_string();
        assert_eq!(text(reason::EXCEPTION, 14), "exception #PF (vector 14)");
        assert_eq!(text(reason::EXIT, 101), "panic (status 101)");
        assert_eq!(text(reason::EXIT, 7), "exit (status 7)");
        assert_eq!(text(reason::HANG, 3), "hang (no heartbeat for 3 periods)");
        assert_eq!(text(reason::DOWN, 0), "taken down");
        assert_eq!(text(reason::NONE, 0), "none");
        assert_eq!(text(99, 1), "reason 99 (detail 1)");
    }
}
