//! `Mutex<T>`: a user-space lock whose contended path sleeps in the kernel.
//!
//! The lock word follows `vigil_abi::syscall::mutex_word`: 0 when unlocked, otherwise the
//! owner's thread slot + 1, with `WAITERS` set once some thread had to wait. That tells the
//! kernel whom a waiter waits for, so mutex wait chains show up in introspection and
//! deadlock detection like IPC wait chains.
//!
//! - Fast path: compare-and-swap 0 → `locked_by(own slot)`; no system call.
//! - Contended: make sure `WAITERS` is set, then `MutexWait(word, observed)`. The kernel
//!   blocks only while the word still equals `observed`, so a release that races with the
//!   wait cannot be lost; on wake-up, retry. A thread that took the lock after waiting
//!   keeps `WAITERS` set (others may still wait), as in Drepper's "futexes are tricky".
//! - Unlock: swap the word to 0; if `WAITERS` was set, `MutexWake` one waiter.
//!
//! Preemption at any point is fine: every decision is made on a value read atomically,
//! and the kernel re-checks the word before sleeping.

use core::cell::UnsafeCell;
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, Ordering};

use vigil_abi::syscall::mutex_word;

use crate::syscall;
use crate::thread;

/// A mutual-exclusion lock protecting a `T`.
pub struct Mutex<T: ?Sized> {
    word: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `T` to one thread at a time, so sharing the mutex
// between threads only requires that `T` may move between threads.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}
// SAFETY: moving the mutex moves the `T`.
unsafe impl<T: ?Sized + Send> Send for Mutex<T> {}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            word: AtomicU32::new(0),
            value: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex and returns the value.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// The lock word for the calling thread.
    fn own_word() -> u32 {
        mutex_word::locked_by(thread::current().slot())
    }

    /// Takes the lock, sleeping in the kernel while another thread holds it.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        let own = Self::own_word();
        if self
            .word
            .compare_exchange(0, own, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended(own);
        }
        MutexGuard::new(self)
    }

    #[cold]
    fn lock_contended(&self, own: u32) {
        loop {
            let observed = self.word.load(Ordering::Relaxed);
            if observed == 0 {
                // Free again: take it, and keep WAITERS set in case others are waiting.
                if self
                    .word
                    .compare_exchange(
                        0,
                        own | mutex_word::WAITERS,
                        Ordering::Acquire,
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    return;
                }
                continue;
            }
            let waiting_word = observed | mutex_word::WAITERS;
            if observed != waiting_word
                && self
                    .word
                    .compare_exchange(observed, waiting_word, Ordering::Relaxed, Ordering::Relaxed)
                    .is_err()
            {
                continue;
            }
            // Returns at once if the word changed since we looked; either way, look again.
            // An error here (e.g. the kernel refusing the address) would make this loop
            // spin, which is still correct, only slower.
            let _ = syscall::mutex_wait(&self.word, waiting_word);
        }
    }

    /// Takes the lock if it is free; never waits.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        self.word
            .compare_exchange(0, Self::own_word(), Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| MutexGuard::new(self))
    }

    /// Access without locking, through an exclusive reference (no other thread can hold it).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    fn unlock(&self) {
        let previous = self.word.swap(0, Ordering::Release);
        if previous & mutex_word::WAITERS != 0 {
            let _ = syscall::mutex_wake(&self.word);
        }
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Mutex::new(T::default())
    }
}

impl<T: ?Sized> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = self.word.load(Ordering::Relaxed);
        f.debug_struct("Mutex")
            .field("owner_slot", &mutex_word::owner(word))
            .field("waiters", &(word & mutex_word::WAITERS != 0))
            .finish_non_exhaustive()
    }
}

/// Access to the value of a locked [`Mutex`]; unlocks when dropped. Not `Send`: the lock
/// word names the locking thread, so the guard stays on it.
pub struct MutexGuard<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    _not_send: PhantomData<*const ()>,
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    fn new(mutex: &'a Mutex<T>) -> Self {
        MutexGuard {
            mutex,
            _not_send: PhantomData,
        }
    }
}

// SAFETY: a shared guard only gives `&T`, so it may be shared when `T` may be.
unsafe impl<T: ?Sized + Sync> Sync for MutexGuard<'_, T> {}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the lock, so no other
        // reference to the value is live.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` makes this the only access via the guard.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}
