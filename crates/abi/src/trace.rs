//! Trace event kinds: what the kernel can record in its trace ring and stream to the monitor.
//!
//! Every event is fixed-size: a sequence number, a timestamp, a kind, the thread it concerns
//! and three kind-specific arguments (documented per kind below).

/// Kinds of trace events. Bit `kind as u32` of the event mask enables a kind.
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// thread = the thread now on the CPU (NONE = idle); args: [previous thread, previous
    /// state code, 0].
    ContextSwitch = 0,
    /// thread blocked; args: [state code, wait target, wait argument].
    Block = 1,
    /// thread made ready again; args: [result (RAX), 0, 0].
    Unblock = 2,
    /// thread sent a message; args: [destination, message kind, 0].
    IpcSend = 3,
    /// thread received a message; args: [source, message kind, 0].
    IpcReceive = 4,
    /// thread raised a notification; args: [destination, 0, 0].
    IpcNotify = 5,
    /// thread made a system call; args: [number, first argument, 0].
    Syscall = 6,
    /// thread made a kernel call; args: [kernel call number, result, 0].
    KernelCall = 7,
    /// hardware interrupt; thread = the interrupted thread; args: [vector, 0, 0].
    Interrupt = 8,
    /// a process started; thread = its main thread; args: [pid, 0, 0].
    ProcessCreate = 9,
    /// a process ended; args: [pid, exit status, 0].
    ProcessExit = 10,
    /// a thread started; args: [pid, 0, 0].
    ThreadCreate = 11,
    /// a thread ended; args: [pid, exit code, 0].
    ThreadExit = 12,
    /// a user thread faulted and its process was killed; args: [pid, vector, rip].
    Crash = 13,
    /// the kernel logged a line; args: [log sequence number, level, 0].
    Log = 14,
}

impl EventKind {
    pub const COUNT: u16 = 15;

    pub const ALL: [EventKind; 15] = [
        EventKind::ContextSwitch,
        EventKind::Block,
        EventKind::Unblock,
        EventKind::IpcSend,
        EventKind::IpcReceive,
        EventKind::IpcNotify,
        EventKind::Syscall,
        EventKind::KernelCall,
        EventKind::Interrupt,
        EventKind::ProcessCreate,
        EventKind::ProcessExit,
        EventKind::ThreadCreate,
        EventKind::ThreadExit,
        EventKind::Crash,
        EventKind::Log,
    ];

    pub const fn from_u16(value: u16) -> Option<EventKind> {
        if value < Self::COUNT {
            Some(Self::ALL[value as usize])
        } else {
            None
        }
    }

    /// Short lower-case name used in text output and JSON.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::ContextSwitch => "switch",
            EventKind::Block => "block",
            EventKind::Unblock => "unblock",
            EventKind::IpcSend => "send",
            EventKind::IpcReceive => "receive",
            EventKind::IpcNotify => "notify",
            EventKind::Syscall => "syscall",
            EventKind::KernelCall => "kcall",
            EventKind::Interrupt => "interrupt",
            EventKind::ProcessCreate => "process-create",
            EventKind::ProcessExit => "process-exit",
            EventKind::ThreadCreate => "thread-create",
            EventKind::ThreadExit => "thread-exit",
            EventKind::Crash => "crash",
            EventKind::Log => "log",
        }
    }

    pub const fn mask_bit(self) -> u64 {
        1 << (self as u16)
    }
}

/// Event mask enabling every kind except the very frequent `Syscall` and `Interrupt`.
pub const DEFAULT_EVENT_MASK: u64 = !(EventKind::Syscall.mask_bit()
    | EventKind::Interrupt.mask_bit())
    & ((1 << EventKind::COUNT) - 1);

/// One trace event as stored in the kernel ring and carried on the wire.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceEvent {
    /// Sequence number: consecutive; a gap means events were dropped.
    pub seq: u64,
    pub timestamp_ns: u64,
    /// `EventKind as u16`.
    pub kind: u16,
    pub reserved: [u16; 3],
    /// Endpoint of the thread concerned (`Endpoint::NONE` for none).
    pub thread: u64,
    pub args: [u64; 3],
}

const _: () = assert!(core::mem::size_of::<TraceEvent>() == 56);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_have_unique_names() {
        for (index, kind) in EventKind::ALL.iter().enumerate() {
            assert_eq!(EventKind::from_u16(index as u16), Some(*kind));
            for other in &EventKind::ALL[..index] {
                assert_ne!(other.name(), kind.name());
            }
        }
        assert_eq!(EventKind::from_u16(EventKind::COUNT), None);
        assert_eq!(DEFAULT_EVENT_MASK & EventKind::Syscall.mask_bit(), 0);
        assert_ne!(DEFAULT_EVENT_MASK & EventKind::ContextSwitch.mask_bit(), 0);
    }
}
