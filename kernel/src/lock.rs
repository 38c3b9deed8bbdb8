//! The kernel's global spin locks and the one order they are taken in.
//!
//! Every global lock is a [`Mutex`] with a [`Level`]; a lock may be taken only while every
//! lock already held has a lower level (the order is in `docs/architecture.md`, "Locks").
//! Debug builds check this on every acquisition and panic naming both locks — before
//! spinning, so taking a lock twice is a report instead of a silent hang. Release builds
//! keep only the spin lock: the wrapper and its guard compile to `spin::Mutex`'s.
//!
//! Vigil runs on one CPU and the kernel runs with interrupts off (the idle loop, the only
//! place they are on, holds no lock), so the record of held locks is a single word that
//! nothing else changes between a check and its update: per CPU by construction.
//!
//! Once the machine is stopping (`console::enter_fatal_mode`, on a panic or kernel fault)
//! the check is off: the report may take locks out of order, or steal a lock the failed
//! code held, on purpose.

use core::ops::{Deref, DerefMut};

/// A global lock's place in the lock order, outermost first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Level {
    /// `system::KERNEL`: the kernel tables; held for a whole system call or interrupt.
    Kernel = 0,
    /// `monitor::MONITOR`: the monitor channel's state; taken on the tick, under KERNEL.
    Monitor = 1,
    /// `console::CONSOLE`: the log ring and COM1.
    Console = 2,
    /// `trace::RING`: the trace event ring.
    TraceRing = 3,
    /// `memory::FRAMES`: the physical frame allocator.
    Frames = 4,
    /// The kernel heap (`heap::KERNEL_HEAP`): any code may allocate.
    Heap = 5,
    /// `watchdog::STATE`: the watchdog's detector and epitaph buffers; taken at boot and,
    /// with `try_lock` only, by the NMI handler (which may interrupt any holder of the
    /// others). Innermost.
    Watchdog = 6,
}

// Release builds do not check the order, so only the levels themselves are used there.
#[cfg_attr(not(debug_assertions), allow(dead_code))]
impl Level {
    /// Every level, outermost first.
    pub const ALL: [Level; 7] = [
        Level::Kernel,
        Level::Monitor,
        Level::Console,
        Level::TraceRing,
        Level::Frames,
        Level::Heap,
        Level::Watchdog,
    ];

    /// The static the level belongs to, for reports.
    pub const fn lock_name(self) -> &'static str {
        match self {
            Level::Kernel => "system::KERNEL",
            Level::Monitor => "monitor::MONITOR",
            Level::Console => "console::CONSOLE",
            Level::TraceRing => "trace::RING",
            Level::Frames => "memory::FRAMES",
            Level::Heap => "heap::KERNEL_HEAP",
            Level::Watchdog => "watchdog::STATE",
        }
    }
}

// `ALL` lists the levels in order (it maps a level number back to its lock), and the
// held-lock record has room for them.
const _: () = {
    let mut index = 0;
    while index < Level::ALL.len() {
        assert!(Level::ALL[index] as usize == index);
        index += 1;
    }
    assert!(Level::ALL.len() <= vigil_kcore::lock_order::HeldLevels::MAX_LEVELS as usize);
};

/// A spin lock with a place in the lock order.
pub struct Mutex<T> {
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    level: Level,
    inner: spin::mutex::SpinMutex<T>,
}

/// `Mutex::lock` found the lock held: a pause before it tries again, off the common way.
/// Takes no argument, so the lock's address is not loaded into a register for it: the
/// common way keeps addressing the lock (and its neighbours in the static) from RIP.
#[cold]
#[inline(never)]
fn wait_while_held() {
    core::hint::spin_loop();
}

/// Holds a [`Mutex`] until dropped.
pub struct MutexGuard<'a, T> {
    inner: spin::mutex::SpinMutexGuard<'a, T>,
    #[cfg(debug_assertions)]
    level: Level,
}

impl<T> Mutex<T> {
    pub const fn new(level: Level, value: T) -> Mutex<T> {
        Mutex {
            level,
            inner: spin::mutex::SpinMutex::new(value),
        }
    }

    /// Takes the lock, spinning while it is held. In debug builds, panics if a lock of
    /// this level or a later one is already held.
    #[inline]
    #[cfg_attr(debug_assertions, track_caller)]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(debug_assertions)]
        order::check(self.level);
        // One compare-and-swap on the common way (the lock is free: on this one CPU it is
        // held only while interrupts are off); the waiting loop is out of line.
        let inner = loop {
            if let Some(inner) = self.inner.try_lock() {
                break inner;
            }
            wait_while_held();
        };
        #[cfg(debug_assertions)]
        order::acquired(self.level);
        MutexGuard {
            inner,
            #[cfg(debug_assertions)]
            level: self.level,
        }
    }

    /// Takes the lock if it is free. Cannot deadlock, so it is not checked against the
    /// order, but it is recorded as held.
    #[inline]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        let inner = self.inner.try_lock()?;
        #[cfg(debug_assertions)]
        order::acquired(self.level);
        Some(MutexGuard {
            inner,
            #[cfg(debug_assertions)]
            level: self.level,
        })
    }

    /// Whether the lock is held (by anyone).
    pub fn is_locked(&self) -> bool {
        self.inner.is_locked()
    }

    /// The protected value, reached without taking the lock: for the NMI watchdog's report,
    /// which must never wait for a lock (its holder may be the code the NMI interrupted).
    ///
    /// # Safety
    /// Only for reading, from a context that nothing else can run under while it reads
    /// (NMI on the one CPU: the holder, if any, is frozen beneath it). The value may be in
    /// the middle of an update, so the reader must treat every field as possibly stale and
    /// bounds-check every index it takes from it; only types valid for any bit pattern
    /// (integers, byte arrays) or whose torn states are still valid may be read.
    pub unsafe fn data_while_held(&self) -> *const T {
        self.inner.as_mut_ptr()
    }

    /// Releases the lock without its guard.
    ///
    /// # Safety
    /// The holder must never touch the protected value again (its guard is abandoned, e.g.
    /// the code holding it faulted and the machine is stopping).
    pub unsafe fn force_unlock(&self) {
        #[cfg(debug_assertions)]
        order::released(self.level);
        // SAFETY: guaranteed by the caller.
        unsafe { self.inner.force_unlock() }
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

#[cfg(debug_assertions)]
impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        // The spin lock itself is released right after, when `inner` drops.
        order::released(self.level);
    }
}

/// The debug-build record of held locks and the order check (`kcore::lock_order`).
#[cfg(debug_assertions)]
mod order {
    use super::Level;
    use core::sync::atomic::{AtomicU32, Ordering};
    use vigil_kcore::lock_order::{HeldLevels, OrderViolation};

    /// The `HeldLevels` of this CPU (see the module comment for why one word serves as
    /// the per-CPU record).
    static HELD: AtomicU32 = AtomicU32::new(0);

    /// Panics unless every held lock comes before `level` in the order; the report names
    /// the caller of `Mutex::lock`.
    #[track_caller]
    pub fn check(level: Level) {
        let held = HeldLevels(HELD.load(Ordering::Relaxed));
        let Err(violation) = held.may_take(level as u8) else {
            return;
        };
        if crate::console::in_fatal_mode() {
            return;
        }
        match violation {
            OrderViolation::AlreadyHeld => {
                panic!("lock order: {} taken while already held", level.lock_name())
            }
            OrderViolation::Holding(latest) => {
                let latest = Level::ALL[usize::from(latest)];
                panic!(
                    "lock order: {} (level {}) taken while holding {} (level {}); see Locks \
                     in docs/architecture.md",
                    level.lock_name(),
                    level as u8,
                    latest.lock_name(),
                    latest as u8
                )
            }
        }
    }

    pub fn acquired(level: Level) {
        HELD.fetch_or(HeldLevels::NONE.with(level as u8).0, Ordering::Relaxed);
    }

    pub fn released(level: Level) {
        HELD.fetch_and(!HeldLevels::NONE.with(level as u8).0, Ordering::Relaxed);
    }
}
