//! Host commands for processes and services: what `vigil top` asks (stop, continue, kill a
//! process, list the process tree; list the services, act on one), forwarded by the kernel
//! to the process manager (process commands) or the reincarnation server (service
//! commands, [`Command::is_service`]), and that server's answer.
//!
//! Service commands travel exactly like process commands: the same message (the `pid` word
//! carries the service's index in RS's table), the same table of waiting commands, the same
//! answer kernel call (`PmHostReply`, which the kernel takes only from the server the
//! command went to), the same result frame; [`Command::ServiceList`]'s answer is INTROSPECT
//! topic 3 records (`ServiceRecord`). Without RS the kernel answers
//! [`Outcome::NoServiceManager`] itself.
//!
//! The host sends a `ProcessCommand` or `ProcessTreeNow` frame on the monitor channel
//! (`crates/wire`, docs/protocol.md); the kernel does not carry these out itself: it sends
//! PM one [`KIND_HOST_COMMAND`] message from `Endpoint::KERNEL` with payload
//! `[request, command code, pid, 0, 0, 0]`, and PM answers with the `PmHostReply` kernel
//! call (`request`, an [`Outcome`], and text — or, for [`Command::List`], process-tree
//! records), which the kernel sends to the host as the result frame. The kernel answers
//! by itself when there is no PM ([`Outcome::NoProcessManager`]), when
//! [`MAX_OUTSTANDING`] commands already wait for PM ([`Outcome::Busy`]) and when PM has
//! not answered within [`TIMEOUT_NS`] ([`Outcome::TimedOut`]).

use crate::error::Error;
use crate::syscall::Argument;

/// The kernel's message to PM: a host command (payload `[request, command, pid, 0, 0, 0]`).
pub const KIND_HOST_COMMAND: u32 = 0xffff_0006;

/// Commands forwarded to PM waiting for its answer at once; one more is answered `Busy`.
pub const MAX_OUTSTANDING: usize = 8;
/// How long the kernel waits for PM's answer before it answers `TimedOut` itself.
pub const TIMEOUT_NS: u64 = 2_000_000_000;
/// Longest result text (bytes of UTF-8) the kernel takes from PM.
pub const MAX_TEXT_BYTES: usize = 160;
/// Most process-tree records one `List` answer carries (the kernel copies at most this).
pub const MAX_TREE_RECORDS: usize = 256;
/// Most service records one `ServiceList` answer carries.
pub const MAX_SERVICE_RECORDS: usize = 64;
/// Exit status of a process killed by a host command (128 + 9, as a shell shows SIGKILL).
pub const HOST_KILL_STATUS: u64 = 137;

/// What the host asks (payload word 1 of [`KIND_HOST_COMMAND`]).
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Stop the process (MINIX sys_runctl stop).
    Stop = 1,
    /// Let a stopped process run again.
    Continue = 2,
    /// End the process with [`HOST_KILL_STATUS`].
    Kill = 3,
    /// Answer with PM's process tree (INTROSPECT topic 5 records; the pid is ignored).
    List = 4,
    /// RS: answer with the services (INTROSPECT topic 3 records; the index is ignored).
    ServiceList = 5,
    /// RS: `ServiceAction::Up` of service `index` (and so on, in `ServiceAction` order).
    ServiceUp = 6,
    ServiceDown = 7,
    ServiceRestart = 8,
    ServiceRefresh = 9,
    ServiceHold = 10,
    ServiceRelease = 11,
    /// RS: live update of service `index` to the `boot=pm` program whose name is in payload
    /// words 3..=5 ([`pack_program`]). RS answers when the update has begun (the update
    /// itself may outlast [`TIMEOUT_NS`]: its end is on RS's console and in the services
    /// list), or with its refusal.
    ServiceUpdate = 12,
}

/// Longest program name a [`Command::ServiceUpdate`] carries (three payload words).
pub const MAX_UPDATE_PROGRAM_BYTES: usize = 24;

/// `program` as the three payload words of a [`Command::ServiceUpdate`] (zero-padded
/// little-endian bytes): `InvalidArgument` for an empty name, one longer than
/// [`MAX_UPDATE_PROGRAM_BYTES`], or one with a NUL byte (it would end the name early).
pub fn pack_program(program: &str) -> Result<[u64; 3], Error> {
    let bytes = program.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_UPDATE_PROGRAM_BYTES || bytes.contains(&0) {
        return Err(Error::InvalidArgument);
    }
    let mut words = [0u64; 3];
    for (index, byte) in bytes.iter().enumerate() {
        words[index / 8] |= u64::from(*byte) << ((index % 8) * 8);
    }
    Ok(words)
}

/// The program name `pack_program` packed, into `out`: its length, or `InvalidArgument` for
/// no name, a NUL followed by more bytes, or bytes that are not UTF-8.
pub fn unpack_program(
    words: &[u64; 3],
    out: &mut [u8; MAX_UPDATE_PROGRAM_BYTES],
) -> Result<usize, Error> {
    for (index, byte) in out.iter_mut().enumerate() {
        *byte = (words[index / 8] >> ((index % 8) * 8)) as u8;
    }
    let len = out.iter().position(|&b| b == 0).unwrap_or(out.len());
    if len == 0 || out[len..].iter().any(|&b| b != 0) {
        return Err(Error::InvalidArgument);
    }
    core::str::from_utf8(&out[..len]).map_err(|_| Error::InvalidArgument)?;
    Ok(len)
}

impl Command {
    pub const fn from_code(code: u64) -> Option<Command> {
        match code {
            1 => Some(Command::Stop),
            2 => Some(Command::Continue),
            3 => Some(Command::Kill),
            4 => Some(Command::List),
            5 => Some(Command::ServiceList),
            6 => Some(Command::ServiceUp),
            7 => Some(Command::ServiceDown),
            8 => Some(Command::ServiceRestart),
            9 => Some(Command::ServiceRefresh),
            10 => Some(Command::ServiceHold),
            11 => Some(Command::ServiceRelease),
            12 => Some(Command::ServiceUpdate),
            _ => None,
        }
    }

    /// Whether the reincarnation server answers it (else the process manager).
    pub const fn is_service(self) -> bool {
        self as u64 >= Command::ServiceList as u64
    }

    /// The service command doing `action`.
    pub const fn for_service_action(action: crate::rs::ServiceAction) -> Command {
        use crate::rs::ServiceAction;
        match action {
            ServiceAction::Up => Command::ServiceUp,
            ServiceAction::Down => Command::ServiceDown,
            ServiceAction::Restart => Command::ServiceRestart,
            ServiceAction::Refresh => Command::ServiceRefresh,
            ServiceAction::Hold => Command::ServiceHold,
            ServiceAction::Release => Command::ServiceRelease,
        }
    }

    /// The action of a service command other than `ServiceList`.
    pub const fn service_action(self) -> Option<crate::rs::ServiceAction> {
        use crate::rs::ServiceAction;
        Some(match self {
            Command::ServiceUp => ServiceAction::Up,
            Command::ServiceDown => ServiceAction::Down,
            Command::ServiceRestart => ServiceAction::Restart,
            Command::ServiceRefresh => ServiceAction::Refresh,
            Command::ServiceHold => ServiceAction::Hold,
            Command::ServiceRelease => ServiceAction::Release,
            _ => return None,
        })
    }

    pub const fn name(self) -> &'static str {
        match self {
            Command::Stop => "stop",
            Command::Continue => "continue",
            Command::Kill => "kill",
            Command::List => "list",
            Command::ServiceList => "service list",
            Command::ServiceUp => "service up",
            Command::ServiceDown => "service down",
            Command::ServiceRestart => "service restart",
            Command::ServiceRefresh => "service refresh",
            Command::ServiceHold => "service hold",
            Command::ServiceRelease => "service release",
            Command::ServiceUpdate => "service update",
        }
    }
}

/// How a host command ended (the result frame's `outcome` code).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Ok = 0,
    /// No process has that pid.
    NoSuchProcess = 1,
    /// The target may not be touched (PM itself, VM).
    Refused = 2,
    /// PM cannot do this yet.
    NotSupported = 3,
    /// Tried and failed (the text says why).
    Failed = 4,
    /// A malformed command (unknown command code).
    Invalid = 5,
    /// Kernel only: no process manager runs.
    NoProcessManager = 6,
    /// Kernel only: [`MAX_OUTSTANDING`] commands already wait for PM, or the request id is
    /// already waiting.
    Busy = 7,
    /// Kernel only: PM (or RS) did not answer within [`TIMEOUT_NS`].
    TimedOut = 8,
    /// Kernel only: a service command, and no reincarnation server runs.
    NoServiceManager = 9,
}

impl Outcome {
    /// Every outcome, by code.
    pub const ALL: [Outcome; 10] = [
        Outcome::Ok,
        Outcome::NoSuchProcess,
        Outcome::Refused,
        Outcome::NotSupported,
        Outcome::Failed,
        Outcome::Invalid,
        Outcome::NoProcessManager,
        Outcome::Busy,
        Outcome::TimedOut,
        Outcome::NoServiceManager,
    ];

    pub const fn from_code(code: u64) -> Option<Outcome> {
        if code < Self::ALL.len() as u64 {
            Some(Self::ALL[code as usize])
        } else {
            None
        }
    }

    /// Whether PM (or RS) may give it (the last four only the kernel does).
    pub const fn from_pm(self) -> bool {
        (self as u8) < Outcome::NoProcessManager as u8
    }

    /// Short lower-case name, as shown by the host tool.
    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NoSuchProcess => "no such process",
            Outcome::Refused => "refused",
            Outcome::NotSupported => "not supported",
            Outcome::Failed => "failed",
            Outcome::Invalid => "invalid",
            Outcome::NoProcessManager => "no process manager",
            Outcome::Busy => "busy",
            Outcome::TimedOut => "timed out",
            Outcome::NoServiceManager => "no reincarnation server",
        }
    }
}

/// `PmHostReply`'s outcome: one PM may give (`Outcome::from_pm`), else `InvalidArgument`.
impl Argument for Outcome {
    const REGISTERS: usize = 1;
    #[inline(always)]
    fn decode(registers: &[u64]) -> Result<Self, Error> {
        match Outcome::from_code(registers[0]) {
            Some(outcome) if outcome.from_pm() => Ok(outcome),
            _ => Err(Error::InvalidArgument),
        }
    }
    #[inline(always)]
    fn encode(&self, registers: &mut [u64]) {
        registers[0] = *self as u64;
    }
}

/// A host-chosen request id (32 bits; anything wider is `InvalidArgument`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestId(pub u32);

impl Argument for RequestId {
    const REGISTERS: usize = 1;
    #[inline(always)]
    fn decode(registers: &[u64]) -> Result<Self, Error> {
        u32::try_from(registers[0])
            .map(RequestId)
            .map_err(|_| Error::InvalidArgument)
    }
    #[inline(always)]
    fn encode(&self, registers: &mut [u64]) {
        registers[0] = u64::from(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for command in [
            Command::Stop,
            Command::Continue,
            Command::Kill,
            Command::List,
        ] {
            assert_eq!(Command::from_code(command as u64), Some(command));
            assert!(!command.is_service());
        }
        for action in crate::rs::ServiceAction::ALL {
            let command = Command::for_service_action(action);
            assert!(command.is_service());
            assert_eq!(Command::from_code(command as u64), Some(command));
            assert_eq!(command.service_action(), Some(action));
        }
        assert!(Command::ServiceList.is_service());
        assert_eq!(Command::ServiceList.service_action(), None);
        assert_eq!(Command::Kill.service_action(), None);
        assert_eq!(Command::from_code(0), None);
        assert_eq!(Command::from_code(12), Some(Command::ServiceUpdate));
        assert!(Command::ServiceUpdate.is_service());
        assert_eq!(Command::ServiceUpdate.service_action(), None);
        assert_eq!(Command::from_code(13), None);
        for (code, outcome) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*outcome as usize, code);
            assert_eq!(Outcome::from_code(code as u64), Some(*outcome));
        }
        assert_eq!(Outcome::from_code(10), None);
    }

    #[test]
    fn update_programs_round_trip_and_bad_ones_are_refused() {
        let mut out = [0u8; MAX_UPDATE_PROGRAM_BYTES];
        let words = pack_program("hello_v2").unwrap();
        let len = unpack_program(&words, &mut out).unwrap();
        assert_eq!(&out[..len], b"hello_v2");
        let longest = "abcdefghijklmnopqrstuvwx";
        let len = unpack_program(&pack_program(longest).unwrap(), &mut out).unwrap();
        assert_eq!(&out[..len], longest.as_bytes());
        assert_eq!(pack_program(""), Err(Error::InvalidArgument));
        assert_eq!(
            pack_program("abcdefghijklmnopqrstuvwxy"),
            Err(Error::InvalidArgument)
        );
        assert_eq!(pack_program("a\0b"), Err(Error::InvalidArgument));
        assert_eq!(
            unpack_program(&[0; 3], &mut out),
            Err(Error::InvalidArgument)
        );
        // A NUL inside the name with bytes after it, and bytes that are not UTF-8.
        assert_eq!(
            unpack_program(&[0x41_00_41, 0, 0], &mut out),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            unpack_program(&[0xff, 0, 0], &mut out),
            Err(Error::InvalidArgument)
        );
    }

    #[test]
    fn pm_may_not_claim_the_kernel_s_outcomes() {
        assert_eq!(Outcome::decode(&[0]), Ok(Outcome::Ok));
        assert_eq!(Outcome::decode(&[5]), Ok(Outcome::Invalid));
        for code in [6, 7, 8, 9, 10, u64::MAX] {
            assert_eq!(Outcome::decode(&[code]), Err(Error::InvalidArgument));
        }
        assert_eq!(RequestId::decode(&[7]), Ok(RequestId(7)));
        assert_eq!(RequestId::decode(&[1 << 32]), Err(Error::InvalidArgument));
    }
}
