//! Kernel tracing: records interesting transitions in a ring for the monitor channel.
//!
//! `emit` checks the enable mask (one load and one branch) before taking the ring's lock,
//! so a disabled kind costs almost nothing on hot paths. That mask is the only filter: the
//! ring itself records whatever it is given (and so is all zeros, in .bss).
//!
//! Events of one instant — a message's `IpcReceive` and `IpcSend`, a fast IPC call's
//! `Unblock` of the partner and `Block` of the caller — are recorded together
//! (`emit_together`): one lock and one clock read for all, so they carry the same
//! timestamp (their sequence numbers still order them), where separate `emit`s gave them
//! timestamps a few dozen nanoseconds apart. A register fast call's five events are one
//! compact record (`emit_fast_ipc`), which the ring's readers expand into those events.

use crate::lock;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use vigil_abi::trace::{EventKind, TraceEvent, DEFAULT_EVENT_MASK};
use vigil_abi::Endpoint;
use vigil_kcore::trace::TraceRing;

/// Events the ring holds before the oldest unread are overwritten (and counted).
pub const TRACE_RING_EVENTS: usize = 16384;

static MASK: AtomicU64 = AtomicU64::new(DEFAULT_EVENT_MASK);
/// `FastCallRecord::for_mask(MASK)`, kept by `set_mask`: the register fast path's one test.
static FAST_CALL_RECORD: AtomicU8 =
    AtomicU8::new(FastCallRecord::for_mask(DEFAULT_EVENT_MASK) as u8);

/// What a fast IPC call records under the current mask, of its six kinds (`Syscall` and
/// `vigil_kcore::trace::FAST_IPC_KINDS`): decided when the mask is set, so the call asks
/// one byte instead of masking and comparing the mask each time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FastCallRecord {
    /// None of the six is enabled.
    Nothing = 0,
    /// The five compact kinds and not `Syscall` (the default mask): one compact record.
    Compact = 1,
    /// Any other mix: each enabled event on its own (or compact after a `Syscall` event).
    EachEnabled = 2,
}

impl FastCallRecord {
    /// A fast call's six kinds: its `Syscall` event and the compact record's five.
    pub const SIX_KINDS: u64 = vigil_kcore::trace::FAST_IPC_KINDS | EventKind::Syscall.mask_bit();

    pub const fn for_mask(mask: u64) -> FastCallRecord {
        match mask & Self::SIX_KINDS {
            0 => FastCallRecord::Nothing,
            vigil_kcore::trace::FAST_IPC_KINDS => FastCallRecord::Compact,
            _ => FastCallRecord::EachEnabled,
        }
    }
}

// The mapping at its three corners: nothing of the six, the default mask, and the compact
// five with `Syscall` too.
const _: () = {
    use vigil_kcore::trace::FAST_IPC_KINDS;
    assert!(matches!(
        FastCallRecord::for_mask(0),
        FastCallRecord::Nothing
    ));
    assert!(matches!(
        FastCallRecord::for_mask(!FastCallRecord::SIX_KINDS),
        FastCallRecord::Nothing
    ));
    assert!(matches!(
        FastCallRecord::for_mask(DEFAULT_EVENT_MASK),
        FastCallRecord::Compact
    ));
    assert!(matches!(
        FastCallRecord::for_mask(FAST_IPC_KINDS),
        FastCallRecord::Compact
    ));
    assert!(matches!(
        FastCallRecord::for_mask(FastCallRecord::SIX_KINDS),
        FastCallRecord::EachEnabled
    ));
    assert!(matches!(
        FastCallRecord::for_mask(EventKind::Syscall.mask_bit()),
        FastCallRecord::EachEnabled
    ));
};

/// What a fast IPC call records now (`FastCallRecord`).
#[inline(always)]
pub fn fast_call_record() -> FastCallRecord {
    // The default first, in one compare: a `match` tested 0 first and then 1 again.
    let record = FAST_CALL_RECORD.load(Ordering::Relaxed);
    if record == FastCallRecord::Compact as u8 {
        FastCallRecord::Compact
    } else if record == FastCallRecord::Nothing as u8 {
        FastCallRecord::Nothing
    } else {
        FastCallRecord::EachEnabled
    }
}
static RING: lock::Mutex<TraceRing<TRACE_RING_EVENTS>> =
    lock::Mutex::new(lock::Level::TraceRing, TraceRing::new(u64::MAX));

/// An event to record: its kind, the thread it is about, its arguments.
pub type Event = (EventKind, Endpoint, [u64; 3]);

/// Records an event about `thread` if its kind is enabled.
#[inline(always)]
pub fn emit(kind: EventKind, thread: Endpoint, args: [u64; 3]) {
    if MASK.load(Ordering::Relaxed) & kind.mask_bit() == 0 {
        return;
    }
    RING.lock()
        .record_unfiltered(crate::time::now_ns(), kind, thread.0, args);
}

/// Records the enabled ones of `events` (kind, thread, arguments), in order, as one
/// instant: under one lock and with one timestamp.
#[inline]
pub fn emit_together<const N: usize>(events: [Event; N]) {
    let mask = MASK.load(Ordering::Relaxed);
    if events
        .iter()
        .all(|(kind, _, _)| mask & kind.mask_bit() == 0)
    {
        return;
    }
    let mut ring = RING.lock();
    let now = crate::time::now_ns();
    for (kind, thread, args) in events {
        if mask & kind.mask_bit() != 0 {
            ring.record_unfiltered(now, kind, thread.0, args);
        }
    }
}

/// Records a fast IPC call's five events as one compact record (`TraceRing::record_fast_ipc`),
/// after its `syscall` event if that kind is enabled, under one lock and timestamped with
/// the TSC value `tsc` the caller read (the one clock read of the call, shared with its CPU
/// accounting). The compact record keeps `tsc` itself: the readers (`drain`,
/// `recent_from_nmi`) convert it, so the fast path does no clock arithmetic. The caller has
/// checked that the mask enables every kind of `vigil_kcore::trace::FAST_IPC_KINDS`.
#[inline(always)]
pub fn emit_fast_ipc(tsc: u64, syscall: Option<Event>, call: &vigil_kcore::trace::FastIpc) {
    // Tried first, so the writer's way is one compare-and-swap with the waiting loop out of
    // line (a system call never finds the ring held: nothing else runs while one does).
    let mut ring = match RING.try_lock() {
        Some(ring) => ring,
        None => RING.lock(),
    };
    if let Some((kind, thread, args)) = syscall {
        ring.record_unfiltered(crate::time::ns_at(tsc), kind, thread.0, args);
    }
    ring.record_fast_ipc(tsc, call);
}

#[inline]
pub fn mask() -> u64 {
    MASK.load(Ordering::Relaxed)
}

/// Sets which kinds are recorded.
pub fn set_mask(mask: u64) {
    MASK.store(mask, Ordering::Relaxed);
    FAST_CALL_RECORD.store(FastCallRecord::for_mask(mask) as u8, Ordering::Relaxed);
}

/// Takes up to `max` unread events, oldest first.
pub fn drain(max: usize, take: impl FnMut(&TraceEvent)) -> usize {
    RING.lock().drain(max, crate::time::ns_at, take)
}

/// (events recorded, events dropped) since boot.
pub fn counters() -> (u64, u64) {
    let ring = RING.lock();
    (ring.recorded(), ring.dropped())
}

/// Calls `take` with the last `max` events recorded, oldest first, from NMI context: with
/// the ring's lock if it is free, else without it. Returns whether the lock was held.
pub fn recent_from_nmi(max: usize, take: impl FnMut(&TraceEvent)) -> bool {
    if let Some(ring) = RING.try_lock() {
        ring.recent(max, crate::time::ns_at, take);
        return false;
    }
    // SAFETY: only the NMI handler calls this, and the ring's holder (the interrupted code)
    // cannot run under it, so nothing writes while we read. The ring holds only integers:
    // an event caught half-recorded shows wrong numbers, never invalid values.
    let ring = unsafe { &*RING.data_while_held() };
    ring.recent(max, crate::time::ns_at, take);
    true
}

/// Takes the lock and returns its guard, for the `lockup-locked` self-test only.
pub fn hold_for_selftest() -> impl Sized {
    RING.lock()
}
