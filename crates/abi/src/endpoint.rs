//! Endpoints: how threads name each other in IPC — a thread-table slot plus a generation.
//!
//! The generation changes every time a slot is reused, so an endpoint kept after its thread
//! died is detected as stale instead of reaching the slot's next occupant.

/// An IPC endpoint. Bits 0..16 are the slot, bits 16..48 the generation; values with any of
/// bits 48..64 set are reserved for the special endpoints below.
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint(pub u64);

impl Endpoint {
    /// Receive from anyone.
    pub const ANY: Endpoint = Endpoint(u64::MAX);
    /// No endpoint (e.g. "not waiting for anyone").
    pub const NONE: Endpoint = Endpoint(u64::MAX - 1);
    /// Source of notifications raised by the kernel's timers (alarms).
    pub const CLOCK: Endpoint = Endpoint(u64::MAX - 2);
    /// Source of messages the kernel itself sends.
    pub const KERNEL: Endpoint = Endpoint(u64::MAX - 3);

    pub const SLOT_BITS: u32 = 16;
    pub const GENERATION_BITS: u32 = 32;
    const SLOT_MASK: u64 = (1 << Self::SLOT_BITS) - 1;
    const GENERATION_MASK: u64 = (1 << Self::GENERATION_BITS) - 1;

    pub const fn new(slot: u16, generation: u32) -> Endpoint {
        Endpoint(slot as u64 | ((generation as u64 & Self::GENERATION_MASK) << Self::SLOT_BITS))
    }

    /// Slot index, for a thread endpoint.
    pub const fn slot(self) -> u16 {
        (self.0 & Self::SLOT_MASK) as u16
    }

    pub const fn generation(self) -> u32 {
        ((self.0 >> Self::SLOT_BITS) & Self::GENERATION_MASK) as u32
    }

    /// Whether this is one of the special endpoints (ANY, NONE, CLOCK, KERNEL).
    pub const fn is_special(self) -> bool {
        self.0 >> (Self::SLOT_BITS + Self::GENERATION_BITS) != 0
    }

    /// Whether this could name a thread at all (not special, no reserved bits set).
    pub const fn is_thread(self) -> bool {
        !self.is_special()
    }
}

impl core::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Endpoint::ANY => write!(f, "ANY"),
            Endpoint::NONE => write!(f, "NONE"),
            Endpoint::CLOCK => write!(f, "CLOCK"),
            Endpoint::KERNEL => write!(f, "KERNEL"),
            e if e.is_special() => write!(f, "Endpoint({:#x})", e.0),
            e => write!(f, "{}.{}", e.slot(), e.generation()),
        }
    }
}

impl core::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_and_generation_round_trip() {
        let e = Endpoint::new(1023, 0xdead_beef);
        assert_eq!(e.slot(), 1023);
        assert_eq!(e.generation(), 0xdead_beef);
        assert!(e.is_thread());
        assert_ne!(Endpoint::new(5, 1), Endpoint::new(5, 2));
    }

    #[test]
    fn special_endpoints_are_not_threads() {
        for e in [
            Endpoint::ANY,
            Endpoint::NONE,
            Endpoint::CLOCK,
            Endpoint::KERNEL,
        ] {
            assert!(e.is_special(), "{e:?}");
            assert!(!e.is_thread());
        }
        assert!(Endpoint(1 << 48).is_special());
    }
}
