//! Error codes returned by system calls and kernel calls (as negative values in RAX).

/// Why a system call failed. Returned in RAX as `-(code as i64)`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// A user pointer is not mapped, not user memory, or lacks the needed access.
    Fault = 1,
    /// The caller's privileges forbid this target or kernel call.
    PermissionDenied = 2,
    /// The endpoint names an empty slot or a previous occupant (stale generation).
    DeadEndpoint = 3,
    /// The endpoint value is malformed (special where a thread is needed, slot out of range).
    BadEndpoint = 4,
    /// Sending would close a cycle of threads blocked sending to each other.
    Deadlock = 5,
    /// Non-blocking send: the destination is not waiting for this message.
    NotReady = 6,
    /// Unknown system call or kernel call number.
    NoSuchCall = 7,
    /// An argument is out of range or inconsistent.
    InvalidArgument = 8,
    /// A kernel table or memory is exhausted.
    OutOfResources = 9,
    /// The grant does not exist, is not for the caller, or does not cover the range/access.
    BadGrant = 10,
    /// No boot process has that name.
    NotFound = 11,
    /// The partner died while the caller was blocked on it.
    PartnerDied = 12,
    /// The operation is not allowed on oneself (send to self, join self).
    SelfTarget = 13,
    /// Something is already there: a page already mapped, a name already taken.
    Exists = 14,
    /// A signal interrupted the wait (send, receive, mutex wait, sleep) before it ended;
    /// nothing was transferred. Code 24, clear of the codes other branches add after 14.
    Interrupted = 24,
    /// The service the caller's request went to died after receiving it and before
    /// answering; its endpoint is kept for the replacement RS starts (a restart
    /// tombstone), so the same request may be sent again to the same endpoint
    /// (`ipc::call_service` retries it). Codes 30 and 31 stay clear of other branches'.
    Restarted = 30,
    /// The object is not in a state that allows the operation now (a service takeover
    /// whose replacement is not yet waiting in its receive loop); try again later.
    Busy = 31,
}

impl Error {
    pub const ALL: [Error; 17] = [
        Error::Fault,
        Error::PermissionDenied,
        Error::DeadEndpoint,
        Error::BadEndpoint,
        Error::Deadlock,
        Error::NotReady,
        Error::NoSuchCall,
        Error::InvalidArgument,
        Error::OutOfResources,
        Error::BadGrant,
        Error::NotFound,
        Error::PartnerDied,
        Error::SelfTarget,
        Error::Exists,
        Error::Interrupted,
        Error::Restarted,
        Error::Busy,
    ];

    /// Conventional short name (as in MINIX/POSIX where one exists).
    pub const fn name(self) -> &'static str {
        match self {
            Error::Fault => "EFAULT",
            Error::PermissionDenied => "EPERM",
            Error::DeadEndpoint => "EDEADSRCDST",
            Error::BadEndpoint => "EBADEPT",
            Error::Deadlock => "ELOCKED",
            Error::NotReady => "ENOTREADY",
            Error::NoSuchCall => "ENOSYS",
            Error::InvalidArgument => "EINVAL",
            Error::OutOfResources => "ENOMEM",
            Error::BadGrant => "EBADGRANT",
            Error::NotFound => "ESRCH",
            Error::PartnerDied => "EDEADPARTNER",
            Error::SelfTarget => "ESELF",
            Error::Exists => "EEXIST",
            Error::Interrupted => "EINTR",
            Error::Restarted => "ERESTARTED",
            Error::Busy => "EBUSY",
        }
    }

    /// The RAX value a failing call returns.
    pub const fn to_return_value(self) -> u64 {
        (-(self as i64)) as u64
    }

    /// The error with this code (`Error as u64`), as servers put it in a reply.
    pub fn from_code(code: u64) -> Option<Error> {
        Error::ALL.into_iter().find(|e| *e as u64 == code)
    }

    /// Decodes a RAX value: `Ok(value)` for a success (non-negative as i64).
    pub fn from_return_value(rax: u64) -> Result<u64, Error> {
        let signed = rax as i64;
        if signed >= 0 {
            return Ok(rax);
        }
        let code = signed.unsigned_abs();
        Err(Error::ALL
            .into_iter()
            .find(|e| *e as u64 == code)
            .unwrap_or(Error::InvalidArgument))
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_round_trip_through_rax() {
        for e in Error::ALL {
            assert_eq!(Error::from_return_value(e.to_return_value()), Err(e));
        }
        assert_eq!(Error::from_return_value(0), Ok(0));
        for e in Error::ALL {
            assert_eq!(Error::from_code(e as u64), Some(e));
        }
        assert_eq!(Error::from_code(0), None);
        assert_eq!(Error::from_code(999), None);
        assert_eq!(Error::from_return_value(42), Ok(42));
    }
}
