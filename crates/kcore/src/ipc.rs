//! The thread table and MINIX-style IPC state machine: every transition of every wait.
//!
//! This is the kernel's IPC logic with the hardware abstracted away: user memory is reached
//! through [`IpcEnvironment`], which the kernel implements with page-table walks and the
//! host tests implement with plain buffers. Each operation either completes at once
//! ([`Outcome::Complete`]) or leaves the caller blocked ([`Outcome::Blocked`]) with its wait
//! recorded in its [`ThreadState`]; a blocked thread is later finished by a partner's
//! operation through [`IpcEnvironment::unblock`]. The kernel owns scheduling: it marks
//! threads Ready/Running here and keeps the run queues itself.
//!
//! Semantics (MINIX 3, with threads as endpoints):
//! - `send` delivers if the destination is `Receiving` from ANY or from the caller, or is
//!   `AwaitingReply` from the caller (that is a reply); otherwise the caller blocks
//!   `Sending { to }` on the destination's FIFO of senders. Before blocking, the chain of
//!   `Sending` edges from the destination is followed: reaching the caller means the send
//!   would close a cycle of blocked senders → `Error::Deadlock` (ELOCKED), nothing changed.
//! - `send_receive` = send, then `AwaitingReply { from: dest }` on the same buffer. While
//!   awaiting a reply only a message from `dest` completes it — not notifications, and not
//!   async messages flagged `NO_REPLY`.
//! - `receive(from)` takes, in this order: a pending notification from a matching source
//!   (kernel sources such as CLOCK included when `from` is ANY or that source); the first
//!   matching queued sender (FIFO); a pending asynchronous message from a matching sender;
//!   otherwise it blocks `Receiving { from }`. A taken sender that was in `send_receive`
//!   moves to `AwaitingReply { from: receiver }`; a plain sender is unblocked with Ok(0).
//! - `notify` never blocks: it delivers at once to a matching receiver, else sets one
//!   pending bit per source (repeats coalesce). A delivered notification is a message with
//!   `source` = notifier, `kind` = KIND_NOTIFY, payload[0] = coalesced count (1 for thread
//!   sources; the number of raises for kernel sources), payload[1] = env.now_ns().
//! - `send_nonblocking` delivers only if the destination is waiting for the caller now,
//!   else `Error::NotReady`.
//! - `send_async` records the caller's table, delivers what can be delivered now, marks
//!   the rest pending at their destinations; entries are marked DONE (or DONE|FAILED with
//!   the error code in `result`) as they are delivered or refused.
//! - Destination checks, in order: special endpoint or slot ≥ N → BadEndpoint; free slot,
//!   generation mismatch or Dead → DeadEndpoint; the caller itself → SelfTarget;
//!   `env.may_send` false → PermissionDenied.
//! - Message `source` fields are always written by the table (the sender's endpoint), never
//!   taken from the sender's buffer.
//! - The caller's buffer is checked before blocking (readable for sends, writable for
//!   receives) so a bad pointer fails at once with Fault and changes nothing.
//!
//! Details this implementation fixes:
//! - Order of checks: destination/source endpoint first, then the caller's buffer.
//!   `send_receive` needs a buffer that is both readable and writable. `receive(from)`
//!   accepts ANY, CLOCK, KERNEL (messages the kernel composes, such as page faults for the
//!   VM server) or a live thread other than the caller (NONE/other special → BadEndpoint,
//!   self → SelfTarget); `may_send` is not consulted for receiving.
//! - A queued sender's message is read when the receiver takes it. If a partner's buffer
//!   faults at that moment (it was unmapped while the partner waited), the partner's call
//!   fails with Fault and the operation goes on as if the partner had not been waiting:
//!   a receive looks at the next sender; a send/notify/async entry stays undelivered
//!   (queued, pending) for the receiver's next receive.
//! - Among pending notifications, kernel sources (CLOCK) come first, then the lowest
//!   thread slot. Among pending async senders, the lowest slot first; within a table, the
//!   lowest index. `send_async` rewrites every entry's status unchanged before doing
//!   anything, so a read-only table also fails with Fault and changes nothing; entries
//!   of a replaced table are no longer considered.
//! - `exit` also marks the entries of other threads' async tables still pending for the
//!   exiting thread DONE|FAILED with DeadEndpoint. Every joiner gets the exit code.

use vigil_abi::async_message::{async_flags, AsyncMessage, MAX_ASYNC_ENTRIES};
// Thread states are stored as the ABI's introspection codes (`Free` is 0, so an all-zero
// slot is a free slot), with `Slot::arg0`/`arg1` holding the wait target and argument as
// `introspect::encode_state` lays them out. `Slot::state`/`set_state` match on the codes
// directly rather than call `decode_state`/`encode_state`: the shared functions' `Option`
// and special-endpoint handling cost ~20 instructions per system call on this hot path
// (measured with `cargo xtask bench`); a test keeps the two encodings identical.
use vigil_abi::introspect::state_code as kind;
use vigil_abi::introspect::VM_ACCESS_SHIFT;
use vigil_abi::message::{user_may_send, KIND_NOTIFY};
use vigil_abi::ptrace::direct;
use vigil_abi::user_memory::{UserPtr, UserSlice};
use vigil_abi::vm::FaultAccess;
use vigil_abi::wait::ThreadState;
use vigil_abi::{Endpoint, Error, Message};

pub use crate::slot::{ProcessSlot, ThreadSlot, MAX_THREADS};

mod fast;
pub use fast::{FastPathOption, Handoff, RegisterCallFacts};
mod service;

/// What the kernel provides to the IPC logic. `thread` arguments are slots.
pub trait IpcEnvironment {
    /// Reads the 64-byte message at `address` in `thread`'s address space.
    fn read_message(
        &mut self,
        thread: ThreadSlot,
        address: UserPtr<Message>,
    ) -> Result<Message, Error>;
    /// Writes a message at `address` in `thread`'s address space.
    fn write_message(
        &mut self,
        thread: ThreadSlot,
        address: UserPtr<Message>,
        message: &Message,
    ) -> Result<(), Error>;
    /// Checks that a message buffer at `address` is writable by the kernel on `thread`'s behalf.
    fn check_message_buffer(
        &mut self,
        thread: ThreadSlot,
        address: UserPtr<Message>,
    ) -> Result<(), Error>;
    /// Reads the message at `address` and checks that the buffer is also writable (a
    /// `send_receive`'s reply lands there): `Fault` if either fails. The kernel does both in
    /// one page walk; the default does them one after the other.
    fn read_message_writable(
        &mut self,
        thread: ThreadSlot,
        address: UserPtr<Message>,
    ) -> Result<Message, Error> {
        let message = self.read_message(thread, address)?;
        self.check_message_buffer(thread, address)?;
        Ok(message)
    }
    /// Reads entry `index` of the async table at `table` in `thread`'s address space.
    fn read_async_entry(
        &mut self,
        thread: ThreadSlot,
        table: UserSlice<AsyncMessage>,
        index: usize,
    ) -> Result<AsyncMessage, Error>;
    /// Writes the `flags` and `result` fields of that entry.
    fn write_async_status(
        &mut self,
        thread: ThreadSlot,
        table: UserSlice<AsyncMessage>,
        index: usize,
        flags: u32,
        result: u32,
    ) -> Result<(), Error>;
    /// A blocked `thread` finished its system call with `result`: the kernel stores the
    /// result in its saved registers and makes it runnable. Called after the table has set
    /// the thread's state to Ready.
    fn unblock(&mut self, thread: ThreadSlot, result: Result<u64, Error>);
    /// A message the kernel itself has for `receiver` (page faults and process exits for
    /// the VM server), if any: looked at by `receive` after pending notifications, and
    /// taken with `consume_kernel_message` once it is delivered. The default has none.
    fn peek_kernel_message(&mut self, receiver: ThreadSlot) -> Option<Message> {
        let _ = receiver;
        None
    }
    /// The message `peek_kernel_message` returned was delivered.
    fn consume_kernel_message(&mut self, receiver: ThreadSlot) {
        let _ = receiver;
    }
    /// Whether `from`'s process may send to `to`'s process (privilege mask).
    fn may_send(&self, from: ThreadSlot, to: ThreadSlot) -> bool;
    /// Kernel time, for notification payloads.
    fn now_ns(&self) -> u64;
}

/// Result of an operation for the calling thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The call is finished; return this to the caller.
    Complete(Result<u64, Error>),
    /// The caller is blocked (its state says on what); it will be finished by `unblock`.
    Blocked,
}

/// Kernel-side notification sources (not threads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelSource {
    Clock,
}

impl KernelSource {
    pub const fn endpoint(self) -> Endpoint {
        match self {
            KernelSource::Clock => Endpoint::CLOCK,
        }
    }
}

/// Words of a per-slot bitmap with one bit per thread slot.
const BITMAP_WORDS: usize = MAX_THREADS / 64;

/// One bit per thread slot, with a summary word (`occupied`): bit `w` is set whenever
/// `words[w]` is nonzero (it may also be set for a word an exit emptied, see
/// `bit_clear_in_exit`), so "is any bit set" is one test in the common case (`is_empty`):
/// the IPC fast path's "nothing to receive first" asks it of two bitmaps on every receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct SlotBitmap {
    words: [u64; BITMAP_WORDS],
    /// Bit `w` set at least when `words[w]` is nonzero.
    occupied: u64,
}

const _: () = assert!(BITMAP_WORDS <= 64);

impl SlotBitmap {
    const EMPTY: SlotBitmap = SlotBitmap {
        words: [0; BITMAP_WORDS],
        occupied: 0,
    };

    /// Whether no bit is set: exact; one test when the summary is clear, else the words
    /// it names are read.
    #[inline(always)]
    fn is_empty(&self) -> bool {
        self.occupied == 0 || self.summarised_words_clear()
    }

    /// Whether every word the summary names is zero (the summary outlived an exit's clear).
    /// Cold: the fast paths' callers then keep their registers' spills for this call off
    /// their common way (hot, the compiler spilled three registers before every test).
    #[cold]
    #[inline(never)]
    fn summarised_words_clear(&self) -> bool {
        let mut words = self.occupied;
        while words != 0 {
            if self.words[words.trailing_zeros() as usize] != 0 {
                return false;
            }
            words &= words - 1;
        }
        true
    }

    /// The summary recomputed from the words (for the invariant checks).
    #[cfg(test)]
    fn occupied_from_words(&self) -> u64 {
        self.words
            .iter()
            .enumerate()
            .filter(|(_, word)| **word != 0)
            .fold(0, |bits, (w, _)| bits | 1 << w)
    }
}

/// `Slot::flags`: the thread is blocked in the send half of `send_receive`.
const FLAG_SEND_RECEIVE: u8 = 1;

/// Queue links are stored as `slot + 1`; 0 means "none", so an all-zero slot has no links.
const NO_LINK: u16 = 0;

const fn link(slot: ThreadSlot) -> u16 {
    slot.get() + 1
}

const fn unlink(link: u16) -> Option<ThreadSlot> {
    match link.checked_sub(1) {
        Some(index) => Some(ThreadSlot::at(index as usize)),
        None => None,
    }
}

/// The slot a thread endpoint names, if it is inside the table (special endpoints are not).
/// Bits of a slot index below `MAX_THREADS`.
const INDEX_BITS: u32 = MAX_THREADS.trailing_zeros();
const _: () = assert!(MAX_THREADS.is_power_of_two() && INDEX_BITS <= Endpoint::SLOT_BITS);

/// What `resolve_slot` compares a slot's `live_key` with: the endpoint's bits above the
/// table index, complemented. For a live thread's endpoint (index below `MAX_THREADS`, the
/// slot bits above it 0, no special bits) that is `live_key` of its generation; for any
/// other value it differs from every live key (a special endpoint's high bits, or slot bits
/// at or above `MAX_THREADS`, survive the shift and clear high bits every live key has set)
/// and from 0 (the shift leaves the top bits 0, so the complement has them set).
#[inline(always)]
fn endpoint_key(endpoint: Endpoint) -> u64 {
    !(endpoint.0 >> INDEX_BITS)
}

/// The `live_key` of a live slot of `generation`: `endpoint_key` of its endpoint.
#[inline(always)]
fn live_key(generation: u32) -> u64 {
    !(u64::from(generation) << (Endpoint::SLOT_BITS - INDEX_BITS))
}

fn slot_of(endpoint: Endpoint) -> Option<ThreadSlot> {
    if endpoint.is_special() {
        None
    } else {
        ThreadSlot::new(endpoint.slot())
    }
}

/// Per-thread state. `repr(C)` with explicit reserved bytes so that there is no padding:
/// every byte of the table is initialised and `ThreadTable::new()` is all zeros.
#[repr(C)]
#[cfg_attr(test, derive(Clone, Copy, PartialEq, Eq, Debug))]
struct Slot {
    /// Wait target of the state (`encode_state`): `to`/`from`/mutex `owner`/`thread`.
    arg0: u64,
    /// Wait argument of the state: mutex `address`/`until_ns`/`exit_code`.
    arg1: u64,
    /// Message buffer of a blocked send/receive (address 0 otherwise).
    buffer: UserPtr<Message>,
    /// The last `send_async` table (≤ MAX_ASYNC_ENTRIES entries).
    async_table: UserSlice<AsyncMessage>,
    /// Sequence number of the current mutex wait (FIFO among waiters).
    wait_seq: u64,
    /// `live_key(generation)` while the thread is live, 0 otherwise (kept by `set_state`,
    /// which every change of liveness passes): the fast paths' endpoint check is one
    /// compare with `endpoint_key` (`resolve_slot`).
    live_key: u64,
    generation: u32,
    process: ProcessSlot,
    /// Next link while this thread is on some destination's queue.
    queue_next: u16,
    // The next three are one aligned 8-byte word, 0 exactly when no clock notification is
    // pending and no sender queued (`nothing_pending_for` tests them as one).
    /// Pending (not yet received) clock notifications, coalesced into one delivery.
    clock_pending: u32,
    /// FIFO of threads blocked sending to this one: first and last link (both `NO_LINK`
    /// or neither).
    queue_head: u16,
    queue_tail: u16,
    /// `kind::*` of the thread state.
    kind: u8,
    flags: u8,
    /// `KEEP_ENDPOINT`: a supervised service's main thread, which becomes a restart
    /// tombstone instead of Dead when it exits (`service.rs`). Survives every wait (unlike
    /// `flags`); only `exit` of an unmarked thread, `release_tombstone` and `create` clear it.
    keep_endpoint: u8,
    _reserved: [u8; 5],
    /// Thread sources with a pending notification for this thread (by slot).
    pending_notify: SlotBitmap,
    /// Threads whose async table may hold a message for this thread (by slot).
    pending_async: SlotBitmap,
}

const SLOT_BYTES: usize = 7 * 8 + 2 * 4 + 4 * 2 + 2 + 6 + 2 * (BITMAP_WORDS + 1) * 8;
const _: () = assert!(core::mem::size_of::<Slot>() == SLOT_BYTES);
// `Slot::nothing_queued`'s word: `clock_pending`, `queue_head`, `queue_tail`, 8-aligned.
const _: () = {
    let word = core::mem::offset_of!(Slot, clock_pending);
    assert!(word.is_multiple_of(8));
    assert!(core::mem::offset_of!(Slot, queue_head) == word + 4);
    assert!(core::mem::offset_of!(Slot, queue_tail) == word + 6);
};
const _: () = assert!(core::mem::align_of::<Slot>() == 8);
const _: () = assert!(MAX_ASYNC_ENTRIES <= u8::MAX as usize);
const _: () = assert!(MAX_THREADS < u16::MAX as usize);
const _: () = assert!(MAX_THREADS.is_multiple_of(64));

impl Slot {
    const EMPTY: Slot = Slot {
        arg0: 0,
        arg1: 0,
        buffer: UserPtr::NULL,
        async_table: UserSlice::EMPTY,
        wait_seq: 0,
        live_key: 0,
        generation: 0,
        clock_pending: 0,
        process: ProcessSlot::FIRST,
        queue_head: NO_LINK,
        queue_tail: NO_LINK,
        queue_next: NO_LINK,
        kind: kind::FREE,
        flags: 0,
        keep_endpoint: 0,
        _reserved: [0; 5],
        pending_notify: SlotBitmap::EMPTY,
        pending_async: SlotBitmap::EMPTY,
    };

    fn state(&self) -> ThreadState {
        let target = Endpoint(self.arg0);
        match self.kind {
            kind::READY => ThreadState::Ready,
            kind::RUNNING => ThreadState::Running,
            kind::SENDING => ThreadState::Sending { to: target },
            kind::RECEIVING => ThreadState::Receiving { from: target },
            kind::AWAITING_REPLY => ThreadState::AwaitingReply { from: target },
            kind::MUTEX => ThreadState::Mutex {
                address: self.arg1,
                owner: target,
            },
            kind::SLEEPING => ThreadState::Sleeping {
                until_ns: self.arg1,
            },
            kind::JOINING => ThreadState::Joining { thread: target },
            kind::DEAD => ThreadState::Dead {
                exit_code: self.arg1,
            },
            kind::RESTARTING => ThreadState::Restarting,
            kind::HELD_FOR_MANAGER => ThreadState::HeldForManager {
                manager: target,
                vector: self.arg1,
            },
            kind::WAITING_FOR_TRACEE => ThreadState::WaitingForTracee {
                tracee: target,
                pid: self.arg1,
            },
            kind::WAITING_FOR_VM => ThreadState::WaitingForVm {
                vm: target,
                address: self.arg1 & ((1 << VM_ACCESS_SHIFT) - 1),
                // Only `set_state` writes the bits, from a `FaultAccess`.
                access: match FaultAccess::from_u8((self.arg1 >> VM_ACCESS_SHIFT) as u8) {
                    Some(access) => access,
                    None => FaultAccess::Read,
                },
            },
            _ => ThreadState::Free,
        }
    }

    // Always inlined: a constant state folds its encoding and its liveness away.
    #[inline(always)]
    fn set_state(&mut self, state: ThreadState) {
        let (code, target, argument) = match state {
            ThreadState::Free => (kind::FREE, 0, 0),
            ThreadState::Ready => (kind::READY, 0, 0),
            ThreadState::Running => (kind::RUNNING, 0, 0),
            ThreadState::Sending { to } => (kind::SENDING, to.0, 0),
            ThreadState::Receiving { from } => (kind::RECEIVING, from.0, 0),
            ThreadState::AwaitingReply { from } => (kind::AWAITING_REPLY, from.0, 0),
            ThreadState::Mutex { address, owner } => (kind::MUTEX, owner.0, address),
            ThreadState::Sleeping { until_ns } => (kind::SLEEPING, 0, until_ns),
            ThreadState::Joining { thread } => (kind::JOINING, thread.0, 0),
            ThreadState::Dead { exit_code } => (kind::DEAD, 0, exit_code),
            ThreadState::Restarting => (kind::RESTARTING, 0, 0),
            ThreadState::HeldForManager { manager, vector } => {
                (kind::HELD_FOR_MANAGER, manager.0, vector)
            }
            ThreadState::WaitingForTracee { tracee, pid } => {
                (kind::WAITING_FOR_TRACEE, tracee.0, pid)
            }
            ThreadState::WaitingForVm {
                vm,
                address,
                access,
            } => (
                kind::WAITING_FOR_VM,
                vm.0,
                address | ((access as u64) << VM_ACCESS_SHIFT),
            ),
        };
        self.kind = code;
        self.arg0 = target;
        self.arg1 = argument;
        // Without a branch: all ones while live, else 0, masking the generation's key.
        self.live_key = live_key(self.generation) & u64::from(self.is_live()).wrapping_neg();
    }

    /// `set_state(Ready)` or `set_state(Running)` (`code`) of a thread that is Ready or
    /// Running: the scheduler's moves, which change neither its liveness nor its generation,
    /// so `live_key` stays as it is and only the code is stored (the two states have no
    /// target or argument, and a thread in either has none left: `check_invariants`).
    #[inline(always)]
    fn set_ready_or_running(&mut self, code: u8) {
        debug_assert!(matches!(self.kind, kind::READY | kind::RUNNING));
        debug_assert!(matches!(code, kind::READY | kind::RUNNING));
        debug_assert_eq!((self.arg0, self.arg1), (0, 0));
        self.kind = code;
    }

    /// The state as `introspect::encode_state` lays it out, straight from the stored codes
    /// (no decoding: the snapshot and the context-switch trace read it for every thread).
    fn encoded(&self) -> (u8, Endpoint, u64) {
        let target = match self.kind {
            kind::SENDING
            | kind::RECEIVING
            | kind::AWAITING_REPLY
            | kind::MUTEX
            | kind::JOINING
            | kind::WAITING_FOR_VM
            | kind::HELD_FOR_MANAGER
            | kind::WAITING_FOR_TRACEE => Endpoint(self.arg0),
            _ => Endpoint::NONE,
        };
        (self.kind, target, self.arg1)
    }

    /// Not Free, not Dead and not a restart tombstone.
    fn is_live(&self) -> bool {
        self.kind != kind::FREE && self.kind != kind::DEAD && self.kind != kind::RESTARTING
    }

    fn endpoint(&self, slot: ThreadSlot) -> Endpoint {
        Endpoint::new(slot.get(), self.generation)
    }

    /// No clock notification pending and no sender queued: the three fields as the one
    /// 8-byte word they make (the compiler reads it in one load). A queue's tail is
    /// `NO_LINK` exactly when its head is, so the tail adds nothing but the word's width.
    #[inline(always)]
    fn nothing_queued(&self) -> bool {
        let word = u64::from(self.clock_pending)
            | u64::from(self.queue_head) << 32
            | u64::from(self.queue_tail) << 48;
        word == 0
    }

    /// Whether thread `sender`'s async table may hold a message for this one: with none
    /// pending at all, the summary word alone answers (one test, not the bitmap's word).
    #[inline(always)]
    fn async_pending_from(&self, sender: ThreadSlot) -> bool {
        self.pending_async.occupied != 0 && bit_test(&self.pending_async, sender)
    }

    /// No notification and no async message pending: both bitmaps' summaries in one test
    /// (`SlotBitmap::is_empty` when one is set).
    #[inline(always)]
    fn nothing_signalled(&self) -> bool {
        self.pending_notify.occupied | self.pending_async.occupied == 0
            || self.summaries_outlived_their_words()
    }

    /// `nothing_signalled` when a summary is set: both bitmaps asked in full. Cold and out
    /// of line, so the common test keeps no summary in a register for it.
    #[cold]
    #[inline(never)]
    fn summaries_outlived_their_words(&self) -> bool {
        self.pending_notify.is_empty() && self.pending_async.is_empty()
    }
}

fn bit_test(map: &SlotBitmap, slot: ThreadSlot) -> bool {
    let i = slot.index();
    map.words[i / 64] & (1 << (i % 64)) != 0
}

fn bit_set(map: &mut SlotBitmap, slot: ThreadSlot) {
    let i = slot.index();
    map.words[i / 64] |= 1 << (i % 64);
    map.occupied |= 1 << (i / 64);
}

fn bit_clear(map: &mut SlotBitmap, slot: ThreadSlot) {
    let i = slot.index();
    let word = &mut map.words[i / 64];
    *word &= !(1 << (i % 64));
    if *word == 0 {
        map.occupied &= !(1 << (i / 64));
    }
}

/// `bit_clear` for an exit's loop over every slot's bitmaps: the word only, one
/// instruction, leaving the summary bit set if the word became empty (which `is_empty`
/// allows for; the next `bit_clear` of that word, or none, keeps it correct).
fn bit_clear_in_exit(map: &mut SlotBitmap, slot: ThreadSlot) {
    let i = slot.index();
    map.words[i / 64] &= !(1 << (i % 64));
}

/// Lowest set bit at or after `start`.
fn bit_next(map: &SlotBitmap, start: usize) -> Option<ThreadSlot> {
    let mut word = start / 64;
    if word >= BITMAP_WORDS {
        return None;
    }
    let mut bits = map.words[word] & (u64::MAX << (start % 64));
    loop {
        if bits != 0 {
            // Fits: word < 16 and trailing_zeros < 64.
            return Some(ThreadSlot::at(word * 64 + bits.trailing_zeros() as usize));
        }
        word += 1;
        if word >= BITMAP_WORDS {
            return None;
        }
        bits = map.words[word];
    }
}

fn bit_count(map: &SlotBitmap) -> usize {
    map.words.iter().map(|w| w.count_ones() as usize).sum()
}

/// Whether a receive filter `from` accepts a message from `source`.
fn matches(from: Endpoint, source: Endpoint) -> bool {
    from == Endpoint::ANY || from == source
}

/// A notification message as `receive` delivers it.
fn notification(source: Endpoint, count: u64, now_ns: u64) -> Message {
    let mut message = Message::new(KIND_NOTIFY);
    message.source = source;
    message.payload[0] = count;
    message.payload[1] = now_ns;
    message
}

/// A pending notification found for a receiver.
#[derive(Clone, Copy)]
enum NotifySource {
    Clock,
    Thread(ThreadSlot),
}

/// Which flavour of send `send_common` performs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SendMode {
    Send,
    SendReceive,
    NonBlocking,
}

/// [`ThreadTable::encoded_threads`]: stops after the last slot in use, so its cost follows
/// the number of threads, not the size of the table.
pub struct EncodedThreads<'a> {
    slots: &'a [Slot; MAX_THREADS],
    next: usize,
    /// Slots in use not yet returned: at 0 the scan is over.
    remaining: u64,
}

impl Iterator for EncodedThreads<'_> {
    type Item = (ThreadSlot, (u8, Endpoint, u64));

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        while self.next < MAX_THREADS {
            let index = self.next;
            self.next += 1;
            let slot = &self.slots[index];
            if slot.kind != kind::FREE {
                self.remaining -= 1;
                return Some((ThreadSlot::at(index), slot.encoded()));
            }
        }
        None
    }
}

/// The thread table.
#[repr(C)]
#[cfg_attr(test, derive(Clone, PartialEq, Eq))]
pub struct ThreadTable {
    slots: [Slot; MAX_THREADS],
    /// Source of `Slot::wait_seq` (monotonic).
    wait_sequence: u64,
    /// Slots that are not Free: the scans of the table stop once they have seen them all
    /// (slots are handed out lowest first, so a system of 10 threads scans about 10).
    in_use: u64,
}

const _: () =
    assert!(core::mem::size_of::<ThreadTable>() == MAX_THREADS * core::mem::size_of::<Slot>() + 16);

impl ThreadTable {
    /// The first slot whose pending bitmaps' summary words miss a nonzero word (the
    /// invariant `SlotBitmap::is_empty` relies on) or whose `is_empty` disagrees with the
    /// bits, for the property tests.
    #[cfg(test)]
    fn inexact_pending_summary(&self) -> Option<ThreadSlot> {
        let wrong = |map: &SlotBitmap| {
            map.occupied_from_words() & !map.occupied != 0
                || map.is_empty() != (map.occupied_from_words() == 0)
        };
        ThreadSlot::all().find(|slot| {
            let s = &self.slots[slot.index()];
            wrong(&s.pending_notify) || wrong(&s.pending_async)
        })
    }

    /// An empty table, all slots Free with generation 0. The kernel keeps it in a `static`,
    /// so this is `const` and should produce all-zero bytes (then it costs nothing in the
    /// image: it lands in .bss) — e.g. links as `Option<ThreadSlot>`/0-sentinels, Free first.
    pub const fn new() -> Self {
        ThreadTable {
            slots: [Slot::EMPTY; MAX_THREADS],
            wait_sequence: 0,
            in_use: 0,
        }
    }

    /// Slots that are not Free (live or Dead threads).
    pub fn slots_in_use(&self) -> usize {
        self.in_use as usize
    }

    /// Allocates the lowest free slot for a new thread of `process`, bumps its generation,
    /// sets it Ready, and returns its endpoint. `OutOfResources` when full.
    /// Whether `create` would find a free slot.
    pub fn has_free_slot(&self) -> bool {
        self.in_use < MAX_THREADS as u64
    }

    pub fn create(&mut self, process: ProcessSlot) -> Result<Endpoint, Error> {
        let index = self
            .slots
            .iter()
            .position(|s| s.kind == kind::FREE)
            .ok_or(Error::OutOfResources)?;
        let slot = &mut self.slots[index];
        let generation = slot.generation.wrapping_add(1);
        *slot = Slot::EMPTY;
        slot.generation = generation;
        slot.process = process;
        slot.set_state(ThreadState::Ready);
        let endpoint = slot.endpoint(ThreadSlot::at(index));
        self.in_use += 1;
        Ok(endpoint)
    }

    /// Current state of `slot`.
    pub fn state(&self, slot: ThreadSlot) -> ThreadState {
        self.slots[slot.index()].state()
    }

    /// Current state of `slot` as `introspect::encode_state` would encode it.
    pub fn encoded_state(&self, slot: ThreadSlot) -> (u8, Endpoint, u64) {
        self.slots[slot.index()].encoded()
    }

    /// Whether `slot` is the thread on the CPU (Running).
    pub fn is_running(&self, slot: ThreadSlot) -> bool {
        self.slots[slot.index()].kind == kind::RUNNING
    }

    /// Every slot that is not Free with its state encoded as `encoded_state`, lowest first.
    pub fn encoded_threads(&self) -> EncodedThreads<'_> {
        EncodedThreads {
            slots: &self.slots,
            next: 0,
            remaining: self.in_use,
        }
    }

    /// Current endpoint of `slot` (its generation), whatever its state.
    pub fn endpoint(&self, slot: ThreadSlot) -> Endpoint {
        self.slots[slot.index()].endpoint(slot)
    }

    /// Owning process of `slot` (the first process slot for a free slot).
    pub fn process(&self, slot: ThreadSlot) -> ProcessSlot {
        self.slots[slot.index()].process
    }

    /// Resolves a thread endpoint to its slot if it names a live (not Free, not Dead)
    /// thread with the current generation. Errors as for a send destination.
    #[inline]
    pub fn resolve(&self, endpoint: Endpoint) -> Result<ThreadSlot, Error> {
        match self.resolve_slot(endpoint) {
            Some((index, _)) => Ok(index),
            // Not a thread endpoint at all, or one whose thread is gone.
            None if slot_of(endpoint).is_none() => Err(Error::BadEndpoint),
            None => Err(Error::DeadEndpoint),
        }
    }

    /// `resolve` for the fast paths, with the slot's state it looked up (so the caller's
    /// checks read the same entry instead of indexing the table again); `None` for either
    /// error.
    #[inline(always)]
    fn resolve_slot(&self, endpoint: Endpoint) -> Option<(ThreadSlot, &Slot)> {
        // One compare: the key says live, this generation, a thread endpoint in range.
        let index = ThreadSlot::at(endpoint.0 as usize % MAX_THREADS);
        let slot = &self.slots[index.index()];
        (slot.live_key == endpoint_key(endpoint)).then_some((index, slot))
    }

    /// The scheduler put `slot` on the CPU (it must be Ready). Ignored (debug assertion)
    /// for a slot that is not Ready or Running.
    pub fn mark_running(&mut self, slot: ThreadSlot) {
        let s = &mut self.slots[slot.index()];
        debug_assert!(s.kind == kind::READY, "mark_running of {:?}", s.state());
        if s.kind == kind::READY || s.kind == kind::RUNNING {
            s.set_ready_or_running(kind::RUNNING);
        }
    }

    /// The scheduler took `slot` off the CPU without it blocking (preempted or yielded).
    /// Ignored (debug assertion) for a slot that is not Running or Ready.
    pub fn mark_ready(&mut self, slot: ThreadSlot) {
        let s = &mut self.slots[slot.index()];
        debug_assert!(
            s.kind == kind::RUNNING || s.kind == kind::READY,
            "mark_ready of {:?}",
            s.state()
        );
        if s.kind == kind::RUNNING || s.kind == kind::READY {
            s.set_ready_or_running(kind::READY);
        }
    }

    pub fn send(
        &mut self,
        env: &mut impl IpcEnvironment,
        caller: ThreadSlot,
        destination: Endpoint,
        buffer: UserPtr<Message>,
    ) -> Outcome {
        self.send_common(env, caller, destination, buffer, SendMode::Send)
    }

    pub fn send_receive(
        &mut self,
        env: &mut impl IpcEnvironment,
        caller: ThreadSlot,
        destination: Endpoint,
        buffer: UserPtr<Message>,
    ) -> Outcome {
        self.send_common(env, caller, destination, buffer, SendMode::SendReceive)
    }

    pub fn receive(
        &mut self,
        env: &mut impl IpcEnvironment,
        caller: ThreadSlot,
        from: Endpoint,
        buffer: UserPtr<Message>,
    ) -> Outcome {
        self.debug_check_caller(caller);
        if let Err(e) = self.check_source(caller, from) {
            return Outcome::Complete(Err(e));
        }
        if let Err(e) = env.check_message_buffer(caller, buffer) {
            return Outcome::Complete(Err(e));
        }
        // 1. Pending notifications.
        if let Some(source) = self.pending_notification(caller, from) {
            let message = match source {
                NotifySource::Clock => notification(
                    Endpoint::CLOCK,
                    u64::from(self.slots[caller.index()].clock_pending),
                    env.now_ns(),
                ),
                NotifySource::Thread(s) => notification(self.endpoint(s), 1, env.now_ns()),
            };
            if let Err(e) = env.write_message(caller, buffer, &message) {
                return Outcome::Complete(Err(e));
            }
            let slot = &mut self.slots[caller.index()];
            match source {
                NotifySource::Clock => slot.clock_pending = 0,
                NotifySource::Thread(s) => bit_clear(&mut slot.pending_notify, s),
            }
            return Outcome::Complete(Ok(0));
        }

        // 2. Messages from the kernel itself (source KERNEL).
        if matches(from, Endpoint::KERNEL) {
            if let Some(message) = env.peek_kernel_message(caller) {
                if let Err(e) = env.write_message(caller, buffer, &message) {
                    return Outcome::Complete(Err(e));
                }
                env.consume_kernel_message(caller);
                return Outcome::Complete(Ok(0));
            }
        }

        // 3. Queued senders, FIFO.
        let mut cursor = unlink(self.slots[caller.index()].queue_head);
        let mut steps = 0;
        while let Some(sender) = cursor {
            steps += 1;
            if steps > MAX_THREADS {
                debug_assert!(false, "send queue of {caller} is cyclic");
                break;
            }
            let next = unlink(self.slots[sender.index()].queue_next);
            let sender_endpoint = self.endpoint(sender);
            if matches(from, sender_endpoint) {
                let sender_buffer = self.slots[sender.index()].buffer;
                let read = env.read_message(sender, sender_buffer).and_then(|message| {
                    if user_may_send(message.kind) {
                        Ok(message)
                    } else {
                        Err(Error::InvalidArgument)
                    }
                });
                match read {
                    Err(e) => {
                        // The sender's buffer went bad while it waited (or now holds a
                        // kernel kind): its send fails and the receiver keeps looking.
                        self.queue_remove(caller, sender);
                        self.wake(env, sender, Err(e));
                    }
                    Ok(mut message) => {
                        message.source = sender_endpoint;
                        if let Err(e) = env.write_message(caller, buffer, &message) {
                            return Outcome::Complete(Err(e));
                        }
                        self.queue_remove(caller, sender);
                        if self.slots[sender.index()].flags & FLAG_SEND_RECEIVE != 0 {
                            self.sender_await_reply(env, sender, caller);
                        } else {
                            self.wake(env, sender, Ok(0));
                        }
                        return Outcome::Complete(Ok(0));
                    }
                }
            }
            cursor = next;
        }

        // 4. Pending asynchronous messages.
        if let Some(result) = self.take_async(env, caller, buffer, from, false) {
            return Outcome::Complete(result.map(|()| 0));
        }

        // 5. Block.
        let slot = &mut self.slots[caller.index()];
        slot.set_state(ThreadState::Receiving { from });
        slot.buffer = buffer;
        slot.flags = 0;
        Outcome::Blocked
    }

    /// A server's reply and its next receive in one call: checks `from` (as `receive`),
    /// the destination (as `send`) and the buffer (readable and writable), delivers the
    /// reply only if the destination is waiting for the caller now (else `NotReady`,
    /// nothing received; a destination whose buffer faults gets the fault and the caller
    /// `NotReady`, as `send_nonblocking`), then receives into the same buffer.
    pub fn reply_receive(
        &mut self,
        env: &mut impl IpcEnvironment,
        caller: ThreadSlot,
        destination: Endpoint,
        from: Endpoint,
        buffer: UserPtr<Message>,
    ) -> Outcome {
        self.debug_check_caller(caller);
        if let Err(e) = self.check_source(caller, from) {
            return Outcome::Complete(Err(e));
        }
        let d = match self.check_destination(env, caller, destination) {
            Ok(d) => d,
            Err(e) => return Outcome::Complete(Err(e)),
        };
        let mut message = match env.read_message_writable(caller, buffer) {
            Ok(m) if user_may_send(m.kind) => m,
            Ok(_) => return Outcome::Complete(Err(Error::InvalidArgument)),
            Err(e) => return Outcome::Complete(Err(e)),
        };
        let me = self.endpoint(caller);
        message.source = me;
        if !(self.accepts_message(d, me, true) && self.deliver(env, d, &message)) {
            return Outcome::Complete(Err(Error::NotReady));
        }
        self.receive(env, caller, from, buffer)
    }

    pub fn notify(
        &mut self,
        env: &mut impl IpcEnvironment,
        caller: ThreadSlot,
        destination: Endpoint,
    ) -> Result<u64, Error> {
        self.debug_check_caller(caller);
        let d = self.check_destination(env, caller, destination)?;
        let me = self.endpoint(caller);
        if let ThreadState::Receiving { from } = self.slots[d.index()].state() {
            if matches(from, me) {
                let message = notification(me, 1, env.now_ns());
                if self.deliver(env, d, &message) {
                    return Ok(0);
                }
            }
        }
        bit_set(&mut self.slots[d.index()].pending_notify, caller);
        Ok(0)
    }

    /// A kernel source (timer alarm) notifies `destination` (a slot known to be live).
    /// Ignored if the slot is not live.
    pub fn notify_from_kernel(
        &mut self,
        env: &mut impl IpcEnvironment,
        source: KernelSource,
        destination: ThreadSlot,
    ) {
        let slot = &self.slots[destination.index()];
        if !slot.is_live() {
            return;
        }
        let source_endpoint = source.endpoint();
        let count = slot.clock_pending.saturating_add(1);
        if let ThreadState::Receiving { from } = slot.state() {
            if matches(from, source_endpoint) {
                let message = notification(source_endpoint, u64::from(count), env.now_ns());
                if self.deliver(env, destination, &message) {
                    self.slots[destination.index()].clock_pending = 0;
                    return;
                }
            }
        }
        self.slots[destination.index()].clock_pending = count;
    }

    pub fn send_nonblocking(
        &mut self,
        env: &mut impl IpcEnvironment,
        caller: ThreadSlot,
        destination: Endpoint,
        buffer: UserPtr<Message>,
    ) -> Result<u64, Error> {
        match self.send_common(env, caller, destination, buffer, SendMode::NonBlocking) {
            Outcome::Complete(result) => result,
            Outcome::Blocked => {
                debug_assert!(false, "non-blocking send blocked");
                Err(Error::NotReady)
            }
        }
    }

    /// `count` > MAX_ASYNC_ENTRIES → InvalidArgument. A table that cannot be read → Fault.
    ///
    /// Every entry's status is first rewritten unchanged, so a table that is readable but
    /// not writable also fails with Fault before anything changes.
    pub fn send_async(
        &mut self,
        env: &mut impl IpcEnvironment,
        caller: ThreadSlot,
        table: UserSlice<AsyncMessage>,
    ) -> Result<u64, Error> {
        self.debug_check_caller(caller);
        let count = table.len();
        if count > MAX_ASYNC_ENTRIES {
            return Err(Error::InvalidArgument);
        }
        // Pass 1: the whole table must be readable and its status fields writable.
        for index in 0..count {
            let entry = env.read_async_entry(caller, table, index)?;
            env.write_async_status(caller, table, index, entry.flags, entry.result)?;
        }
        {
            let slot = &mut self.slots[caller.index()];
            slot.async_table = table;
        }
        let me = self.endpoint(caller);
        // Pass 2: deliver, refuse, or mark pending.
        for index in 0..count {
            let entry = env.read_async_entry(caller, table, index)?;
            if entry.flags & async_flags::VALID == 0 || entry.flags & async_flags::DONE != 0 {
                continue;
            }
            let checked = if user_may_send(entry.message.kind) {
                self.check_destination(env, caller, entry.destination)
            } else {
                Err(Error::InvalidArgument)
            };
            let d = match checked {
                Ok(d) => d,
                Err(e) => {
                    env.write_async_status(
                        caller,
                        table,
                        index,
                        entry.flags | async_flags::DONE | async_flags::FAILED,
                        e as u32,
                    )?;
                    continue;
                }
            };
            let reply_ok = entry.flags & async_flags::NO_REPLY == 0;
            let mut message = entry.message;
            message.source = me;
            if self.accepts_message(d, me, reply_ok) {
                // Mark DONE before waking the receiver: the status write cannot fault after
                // pass 1, and if it somehow does nothing has been delivered.
                env.write_async_status(caller, table, index, entry.flags | async_flags::DONE, 0)?;
                if self.deliver(env, d, &message) {
                    continue;
                }
                // The receiver's buffer faulted (it was failed with Fault): keep the entry.
                env.write_async_status(caller, table, index, entry.flags, entry.result)?;
            }
            bit_set(&mut self.slots[d.index()].pending_async, caller);
        }
        Ok(0)
    }

    /// Blocks `caller` in `Mutex { address, owner }` (the kernel has checked the lock word
    /// and derived `owner` from it). Waiters on one (process, address) wake in FIFO order.
    pub fn mutex_wait(
        &mut self,
        caller: ThreadSlot,
        word: UserPtr<u32>,
        owner: Endpoint,
    ) -> Outcome {
        let address = word.address();
        self.debug_check_caller(caller);
        self.wait_sequence = self.wait_sequence.wrapping_add(1);
        let sequence = self.wait_sequence;
        let slot = &mut self.slots[caller.index()];
        slot.wait_seq = sequence;
        slot.set_state(ThreadState::Mutex { address, owner });
        Outcome::Blocked
    }

    /// Wakes the longest-waiting thread of `caller`'s process blocked on `address`
    /// (unblocked with Ok(0)); returns how many were woken (0 or 1).
    pub fn mutex_wake(
        &mut self,
        env: &mut impl IpcEnvironment,
        caller: ThreadSlot,
        word: UserPtr<u32>,
    ) -> u64 {
        let address = word.address();
        let process = self.process(caller);
        let longest = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.kind == kind::MUTEX && s.arg1 == address && s.process == process)
            .min_by_key(|(_, s)| s.wait_seq)
            .map(|(i, _)| ThreadSlot::at(i));
        match longest {
            Some(slot) => {
                self.wake(env, slot, Ok(0));
                1
            }
            None => 0,
        }
    }

    /// Blocks `caller` in `Sleeping { until_ns }` (the kernel arms the timer).
    pub fn sleep(&mut self, caller: ThreadSlot, until_ns: u64) -> Outcome {
        self.debug_check_caller(caller);
        self.slots[caller.index()].set_state(ThreadState::Sleeping { until_ns });
        Outcome::Blocked
    }

    /// The sleep timer of `slot` expired: unblock it with Ok(0) if it is still sleeping.
    pub fn wake_sleeper(&mut self, env: &mut impl IpcEnvironment, slot: ThreadSlot) {
        if self.slots[slot.index()].kind == kind::SLEEPING {
            self.wake(env, slot, Ok(0));
        }
    }

    /// Blocks `caller` waiting for the VM server `vm` to resolve a fault at `address` (the
    /// kernel then tells VM). The thread is on no queue; only `release_from_vm` or `exit`
    /// ends the wait.
    pub fn wait_for_vm(
        &mut self,
        caller: ThreadSlot,
        vm: Endpoint,
        address: u64,
        access: FaultAccess,
    ) -> Outcome {
        self.debug_check_caller(caller);
        self.slots[caller.index()].set_state(ThreadState::WaitingForVm {
            vm,
            address,
            access,
        });
        Outcome::Blocked
    }

    /// Ends `thread`'s wait for VM: it is Ready again, its registers untouched (the
    /// faulting instruction runs again; the kernel requeues it). `false` if it was not
    /// waiting for VM.
    pub fn release_from_vm(&mut self, thread: ThreadSlot) -> bool {
        let slot = &mut self.slots[thread.index()];
        if slot.kind != kind::WAITING_FOR_VM {
            return false;
        }
        slot.set_state(ThreadState::Ready);
        true
    }

    /// Holds `caller` after CPU exception `vector` for its signal manager (main thread
    /// `manager`). Like a VM wait the thread is on no queue; only `release_held` or `exit`
    /// ends the hold.
    pub fn hold_for_manager(&mut self, caller: ThreadSlot, manager: Endpoint, vector: u64) {
        self.debug_check_caller(caller);
        self.slots[caller.index()].set_state(ThreadState::HeldForManager { manager, vector });
    }

    /// Ends `thread`'s hold: it is Ready again, its registers untouched (the kernel
    /// requeues it). `false` if it was not held.
    pub fn release_held(&mut self, thread: ThreadSlot) -> bool {
        let slot = &mut self.slots[thread.index()];
        if slot.kind != kind::HELD_FOR_MANAGER {
            return false;
        }
        slot.set_state(ThreadState::Ready);
        true
    }

    /// Blocks `caller`, a tracer, until the next trace stop of process `pid`, whose traced
    /// thread is `tracee` (`TraceResumeWait`). On no queue: `end_tracee_wait` ends it with
    /// the stop; the tracee's exit and a signal end it with `direct::ASK_MANAGER`.
    pub fn wait_for_tracee(&mut self, caller: ThreadSlot, tracee: Endpoint, pid: u64) -> Outcome {
        self.debug_check_caller(caller);
        self.slots[caller.index()].set_state(ThreadState::WaitingForTracee { tracee, pid });
        Outcome::Blocked
    }

    /// Ends `thread`'s wait for a tracee of pid `pid` with `result`; `false` (nothing
    /// changed) if it is not waiting for that process.
    pub fn end_tracee_wait(
        &mut self,
        env: &mut impl IpcEnvironment,
        thread: ThreadSlot,
        pid: u64,
        result: Result<u64, Error>,
    ) -> bool {
        match self.slots[thread.index()].state() {
            ThreadState::WaitingForTracee { pid: waited, .. } if waited == pid => {
                self.wake(env, thread, result);
                true
            }
            _ => false,
        }
    }

    /// A signal for `thread`: if it is blocked in an interruptible wait — sending,
    /// receiving, awaiting a reply, a mutex wait or a sleep — the wait is cancelled (off
    /// its destination's queue, nothing transferred) and its call returns `Interrupted`.
    /// A wait on `spare` (the caller of the signal, whose own reply will end it) and every
    /// other state are left alone. Returns whether the wait was cancelled; a sleeper's
    /// timer is the kernel's to cancel.
    pub fn interrupt(
        &mut self,
        env: &mut impl IpcEnvironment,
        thread: ThreadSlot,
        spare: Endpoint,
    ) -> bool {
        match self.slots[thread.index()].state() {
            ThreadState::Sending { to } if to != spare => {
                let removed = slot_of(to).is_some_and(|to| self.queue_remove(to, thread));
                debug_assert!(removed, "sender {thread} not on the queue of {to:?}");
            }
            ThreadState::Receiving { from } | ThreadState::AwaitingReply { from }
                if from != spare => {}
            ThreadState::Mutex { .. } | ThreadState::Sleeping { .. } => {}
            ThreadState::WaitingForTracee { .. } => {
                // The tracee goes on; its next stop reaches the tracer through PM.
                self.wake(env, thread, Ok(direct::ASK_MANAGER));
                return true;
            }
            _ => return false,
        }
        self.slots[thread.index()].flags = 0;
        self.wake(env, thread, Err(Error::Interrupted));
        true
    }

    /// A message from the kernel (source KERNEL) for `destination`, delivered now if it is
    /// receiving from ANY or KERNEL: `true` if it was (the receiver is unblocked); `false`
    /// and nothing changed otherwise, and the kernel keeps the message for the receiver's
    /// next `receive` (`IpcEnvironment::peek_kernel_message`).
    pub fn deliver_from_kernel(
        &mut self,
        env: &mut impl IpcEnvironment,
        destination: ThreadSlot,
        message: &Message,
    ) -> bool {
        match self.slots[destination.index()].state() {
            ThreadState::Receiving { from } if matches(from, Endpoint::KERNEL) => {
                self.deliver(env, destination, message)
            }
            _ => false,
        }
    }

    /// Waits for `target` (a thread of the same process — the kernel checks) to exit.
    /// Already Dead → Complete(Ok(exit code)) and the slot is freed. Itself → SelfTarget.
    pub fn join(&mut self, caller: ThreadSlot, target: Endpoint) -> Outcome {
        self.debug_check_caller(caller);
        let Some(t) = slot_of(target) else {
            return Outcome::Complete(Err(Error::BadEndpoint));
        };
        if target == self.endpoint(caller) {
            return Outcome::Complete(Err(Error::SelfTarget));
        }
        let slot = &self.slots[t.index()];
        if slot.kind == kind::FREE
            || slot.kind == kind::RESTARTING
            || slot.generation != target.generation()
        {
            return Outcome::Complete(Err(Error::DeadEndpoint));
        }
        if let ThreadState::Dead { exit_code } = slot.state() {
            self.free(t);
            return Outcome::Complete(Ok(exit_code));
        }
        self.slots[caller.index()].set_state(ThreadState::Joining { thread: target });
        Outcome::Blocked
    }

    /// Ends thread `slot`: takes it off every queue, fails the calls of threads blocked on
    /// it (senders to it → DeadEndpoint; receivers from it / awaiting its reply →
    /// PartnerDied; mutex waiters whose owner it is are left waiting — the lock is the
    /// process's business — but their `owner` stays the dead endpoint), drops its pending
    /// notifications and async messages everywhere, then sets it Dead. A joiner is
    /// unblocked with Ok(exit_code) and the slot is freed; otherwise it stays Dead until
    /// joined or `free`d.
    ///
    /// Also: entries of other threads' async tables that were pending for it are marked
    /// DONE|FAILED with DeadEndpoint; every joiner (if several) gets the exit code.
    /// Ignored for a slot that is Free or already Dead.
    ///
    /// A thread marked `keep_endpoint` (a supervised service's main thread) becomes a
    /// restart tombstone instead (`ThreadState::Restarting`, `service.rs`): its senders stay
    /// queued, async messages and notifications pending for it stay pending, the threads
    /// awaiting its reply or receiving from it get `Restarted`, and the slot is not freed
    /// when joined.
    pub fn exit(&mut self, env: &mut impl IpcEnvironment, slot: ThreadSlot, exit_code: u64) {
        let s = &self.slots[slot.index()];
        if !s.is_live() {
            return;
        }
        let me = s.endpoint(slot);
        let keep = s.keep_endpoint != 0;
        let partner_error = if keep {
            Error::Restarted
        } else {
            Error::PartnerDied
        };

        // Cancel its own wait.
        if let ThreadState::Sending { to } = s.state() {
            let removed = slot_of(to).is_some_and(|to| self.queue_remove(to, slot));
            debug_assert!(removed, "sender {slot} not on the queue of {to:?}");
        }

        // Senders to it fail (a tombstone keeps them for its replacement).
        if !keep {
            while let Some(sender) = self.queue_pop(slot) {
                self.wake(env, sender, Err(Error::DeadEndpoint));
            }
        }

        // Receivers from it and threads awaiting its reply fail; its notifications and
        // async messages pending anywhere are dropped.
        for other in ThreadSlot::all() {
            if other == slot {
                continue;
            }
            let o = &mut self.slots[other.index()];
            bit_clear_in_exit(&mut o.pending_notify, slot);
            bit_clear_in_exit(&mut o.pending_async, slot);
            match o.state() {
                ThreadState::Receiving { from } | ThreadState::AwaitingReply { from }
                    if from == me =>
                {
                    self.wake(env, other, Err(partner_error));
                }
                // A tracer waiting for its stop asks PM, which has the exit.
                ThreadState::WaitingForTracee { tracee, .. } if tracee == me => {
                    self.wake(env, other, Ok(direct::ASK_MANAGER));
                }
                _ => {}
            }
        }

        if keep {
            self.make_tombstone(slot);
        } else {
            // Async messages pending for it can never be delivered: fail them at their
            // senders.
            let pending_async = self.slots[slot.index()].pending_async;
            let mut next = 0;
            while let Some(sender) = bit_next(&pending_async, next) {
                next = sender.index() + 1;
                self.fail_async_entries_to(env, sender, me, Error::DeadEndpoint);
            }
            // Clear everything it was doing and set it Dead.
            let s = &mut self.slots[slot.index()];
            let (generation, process) = (s.generation, s.process);
            *s = Slot::EMPTY;
            s.generation = generation;
            s.process = process;
            s.set_state(ThreadState::Dead { exit_code });
        }

        // Joiners get the exit code; the slot is then freed.
        let mut joined = false;
        for other in ThreadSlot::all() {
            if self.slots[other.index()].state() == (ThreadState::Joining { thread: me }) {
                self.wake(env, other, Ok(exit_code));
                joined = true;
            }
        }
        if joined && !keep {
            self.free(slot);
        }
    }

    /// Frees a Dead slot (process teardown). Panics in debug if the slot is not Dead;
    /// ignored in release.
    pub fn free(&mut self, slot: ThreadSlot) {
        let s = &mut self.slots[slot.index()];
        debug_assert!(s.kind == kind::DEAD, "free of {:?}", s.state());
        if s.kind != kind::DEAD {
            return;
        }
        let generation = s.generation;
        *s = Slot::EMPTY;
        s.generation = generation;
        self.in_use -= 1;
    }

    /// Slots of `process` that are not Free, lowest first (for process exit). A restart
    /// tombstone belongs to no process any more (its process slot may be reused).
    pub fn threads_of(&self, process: ProcessSlot) -> impl Iterator<Item = ThreadSlot> + '_ {
        self.threads()
            .filter(move |&(slot, state)| {
                self.slots[slot.index()].process == process && state != ThreadState::Restarting
            })
            .map(|(slot, _)| slot)
    }

    // ----- Introspection accessors -----

    /// Every slot that is not Free, with its state, lowest first.
    pub fn threads(&self) -> impl Iterator<Item = (ThreadSlot, ThreadState)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.kind != kind::FREE)
            .map(|(i, s)| (ThreadSlot::at(i), s.state()))
    }

    /// The threads blocked sending to `slot`, in the order `receive` takes them.
    pub fn senders(&self, slot: ThreadSlot) -> impl Iterator<Item = ThreadSlot> + '_ {
        let head = self.slots[slot.index()].queue_head;
        core::iter::successors(unlink(head), move |&s| {
            unlink(self.slots[s.index()].queue_next)
        })
        .take(MAX_THREADS)
    }

    /// Number of notification sources pending for `slot` (threads, plus one if the clock
    /// has raised notifications).
    pub fn pending_notifications(&self, slot: ThreadSlot) -> usize {
        let s = &self.slots[slot.index()];
        bit_count(&s.pending_notify) + usize::from(s.clock_pending > 0)
    }

    /// Notifications from `source` pending for `slot` (coalesced into one delivery).
    pub fn pending_kernel_notifications(&self, slot: ThreadSlot, source: KernelSource) -> u32 {
        match source {
            KernelSource::Clock => self.slots[slot.index()].clock_pending,
        }
    }

    /// Number of threads whose async table may still hold a message for `slot`.
    pub fn pending_async_senders(&self, slot: ThreadSlot) -> usize {
        bit_count(&self.slots[slot.index()].pending_async)
    }

    /// `slot`'s last `send_async` table (empty at address 0 if none).
    pub fn async_table(&self, slot: ThreadSlot) -> UserSlice<AsyncMessage> {
        self.slots[slot.index()].async_table
    }

    // ----- Internals -----

    fn debug_check_caller(&self, caller: ThreadSlot) {
        debug_assert!(
            matches!(self.slots[caller.index()].kind, kind::READY | kind::RUNNING),
            "caller {caller} is not runnable: {:?}",
            self.state(caller)
        );
    }

    /// Destination checks, in the documented order.
    fn check_destination(
        &self,
        env: &impl IpcEnvironment,
        caller: ThreadSlot,
        destination: Endpoint,
    ) -> Result<ThreadSlot, Error> {
        let d = match self.resolve(destination) {
            Ok(d) => d,
            // A restart tombstone keeps its endpoint: senders queue on it (`service.rs`).
            Err(Error::DeadEndpoint) => self.tombstone(destination)?,
            Err(error) => return Err(error),
        };
        if d == caller {
            return Err(Error::SelfTarget);
        }
        if !env.may_send(caller, d) {
            return Err(Error::PermissionDenied);
        }
        Ok(d)
    }

    /// Checks a receive filter: ANY, a kernel source, or a live thread other than the caller.
    fn check_source(&self, caller: ThreadSlot, from: Endpoint) -> Result<(), Error> {
        if from == Endpoint::ANY || from == Endpoint::CLOCK || from == Endpoint::KERNEL {
            return Ok(());
        }
        if self.resolve(from)? == caller {
            return Err(Error::SelfTarget);
        }
        Ok(())
    }

    /// Whether `d` is blocked waiting for a message from `sender` now: receiving from it
    /// (or ANY), or — if `reply_ok` — awaiting its reply.
    fn accepts_message(&self, d: ThreadSlot, sender: Endpoint, reply_ok: bool) -> bool {
        match self.slots[d.index()].state() {
            ThreadState::Receiving { from } => matches(from, sender),
            ThreadState::AwaitingReply { from } => reply_ok && from == sender,
            _ => false,
        }
    }

    /// Sets a blocked thread Ready and finishes its call with `result`.
    fn wake(
        &mut self,
        env: &mut impl IpcEnvironment,
        slot: ThreadSlot,
        result: Result<u64, Error>,
    ) {
        let s = &mut self.slots[slot.index()];
        debug_assert!(s.state().is_blocked(), "wake of {:?}", s.state());
        debug_assert!(s.queue_next == NO_LINK, "woken thread {slot} still queued");
        s.set_state(ThreadState::Ready);
        s.buffer = UserPtr::NULL;
        s.flags = 0;
        s.wait_seq = 0;
        env.unblock(slot, result);
    }

    /// Writes `message` into the buffer of `d`, which is blocked receiving, and wakes it
    /// with Ok(0). If the buffer faults, `d` is woken with the fault instead and the
    /// message is not delivered (false).
    fn deliver(&mut self, env: &mut impl IpcEnvironment, d: ThreadSlot, message: &Message) -> bool {
        let buffer = self.slots[d.index()].buffer;
        match env.write_message(d, buffer, message) {
            Ok(()) => {
                self.wake(env, d, Ok(0));
                true
            }
            Err(e) => {
                self.wake(env, d, Err(e));
                false
            }
        }
    }

    fn send_common(
        &mut self,
        env: &mut impl IpcEnvironment,
        caller: ThreadSlot,
        destination: Endpoint,
        buffer: UserPtr<Message>,
        mode: SendMode,
    ) -> Outcome {
        self.debug_check_caller(caller);
        let d = match self.check_destination(env, caller, destination) {
            Ok(d) => d,
            Err(e) => return Outcome::Complete(Err(e)),
        };
        let read = if mode == SendMode::SendReceive {
            env.read_message_writable(caller, buffer)
        } else {
            env.read_message(caller, buffer)
        };
        let mut message = match read {
            Ok(m) if user_may_send(m.kind) => m,
            Ok(_) => return Outcome::Complete(Err(Error::InvalidArgument)),
            Err(e) => return Outcome::Complete(Err(e)),
        };
        let me = self.endpoint(caller);
        message.source = me;
        // `destination` is now known to be `d`'s current endpoint.
        if self.accepts_message(d, me, true) && self.deliver(env, d, &message) {
            return match mode {
                SendMode::SendReceive => self.caller_await_reply(env, caller, d, buffer),
                SendMode::Send | SendMode::NonBlocking => Outcome::Complete(Ok(0)),
            };
        }
        if mode == SendMode::NonBlocking {
            return Outcome::Complete(Err(Error::NotReady));
        }
        if self.would_deadlock(caller, d) {
            return Outcome::Complete(Err(Error::Deadlock));
        }
        let slot = &mut self.slots[caller.index()];
        slot.set_state(ThreadState::Sending { to: destination });
        slot.buffer = buffer;
        slot.flags = if mode == SendMode::SendReceive {
            FLAG_SEND_RECEIVE
        } else {
            0
        };
        self.queue_push(d, caller);
        Outcome::Blocked
    }

    /// Whether `caller` blocking on `d` would close a cycle of `Sending` edges.
    fn would_deadlock(&self, caller: ThreadSlot, d: ThreadSlot) -> bool {
        let mut current = d;
        for _ in 0..MAX_THREADS {
            if current == caller {
                return true;
            }
            match self.slots[current.index()].state() {
                ThreadState::Sending { to } => match slot_of(to) {
                    Some(to) => current = to,
                    None => return false,
                },
                _ => return false,
            }
        }
        false
    }

    /// The caller's request was delivered by `send_receive`: wait for `partner`'s reply,
    /// unless an async reply from it is already pending.
    fn caller_await_reply(
        &mut self,
        env: &mut impl IpcEnvironment,
        caller: ThreadSlot,
        partner: ThreadSlot,
        buffer: UserPtr<Message>,
    ) -> Outcome {
        let partner_endpoint = self.endpoint(partner);
        if let Some(result) = self.take_async(env, caller, buffer, partner_endpoint, true) {
            return Outcome::Complete(result.map(|()| 0));
        }
        let slot = &mut self.slots[caller.index()];
        slot.set_state(ThreadState::AwaitingReply {
            from: partner_endpoint,
        });
        slot.buffer = buffer;
        slot.flags = 0;
        Outcome::Blocked
    }

    /// A queued `send_receive` sender's request was taken by `receiver`: it now waits for
    /// the reply (or takes a pending async reply at once).
    fn sender_await_reply(
        &mut self,
        env: &mut impl IpcEnvironment,
        sender: ThreadSlot,
        receiver: ThreadSlot,
    ) {
        let buffer = self.slots[sender.index()].buffer;
        let receiver_endpoint = self.endpoint(receiver);
        match self.take_async(env, sender, buffer, receiver_endpoint, true) {
            Some(result) => self.wake(env, sender, result.map(|()| 0)),
            None => {
                let slot = &mut self.slots[sender.index()];
                slot.set_state(ThreadState::AwaitingReply {
                    from: receiver_endpoint,
                });
                slot.flags = 0;
            }
        }
    }

    /// Looks for a pending async message for `receiver` from a sender matching `from`
    /// (lowest sender slot first, then the sender's lowest entry). If one is found it is
    /// written to `buffer` (Some(Ok)), or the write faults (Some(Err), nothing changed).
    /// While `in_reply`, entries flagged NO_REPLY are skipped (and stay pending).
    /// Senders with nothing left for the receiver lose their pending bit.
    fn take_async(
        &mut self,
        env: &mut impl IpcEnvironment,
        receiver: ThreadSlot,
        buffer: UserPtr<Message>,
        from: Endpoint,
        in_reply: bool,
    ) -> Option<Result<(), Error>> {
        let receiver_endpoint = self.endpoint(receiver);
        let mut next = 0;
        loop {
            let sender = bit_next(&self.slots[receiver.index()].pending_async, next)?;
            next = sender.index() + 1;
            let sender_slot = &self.slots[sender.index()];
            let sender_endpoint = sender_slot.endpoint(sender);
            if !matches(from, sender_endpoint) {
                continue;
            }
            let table = sender_slot.async_table;
            let count = table.len();
            let mut any_left = false;
            let mut found = None;
            for index in 0..count {
                let Ok(entry) = env.read_async_entry(sender, table, index) else {
                    // Unreadable: nothing more can be taken from this table.
                    any_left = false;
                    break;
                };
                if entry.flags & async_flags::VALID == 0
                    || entry.flags & async_flags::DONE != 0
                    || entry.destination != receiver_endpoint
                {
                    continue;
                }
                if !user_may_send(entry.message.kind) {
                    // Rewritten to a kernel kind after SendAsync checked it: refused, done.
                    let flags = entry.flags | async_flags::DONE | async_flags::FAILED;
                    let refused = Error::InvalidArgument as u32;
                    if env
                        .write_async_status(sender, table, index, flags, refused)
                        .is_err()
                    {
                        break;
                    }
                    continue;
                }
                any_left = true;
                if in_reply && entry.flags & async_flags::NO_REPLY != 0 {
                    continue;
                }
                found = Some((index, entry));
                break;
            }
            let Some((index, entry)) = found else {
                if !any_left {
                    bit_clear(&mut self.slots[receiver.index()].pending_async, sender);
                }
                continue;
            };
            let mut message = entry.message;
            message.source = sender_endpoint;
            if let Err(e) = env.write_message(receiver, buffer, &message) {
                return Some(Err(e));
            }
            if env
                .write_async_status(sender, table, index, entry.flags | async_flags::DONE, 0)
                .is_err()
            {
                // The entry cannot be marked: drop the sender's pending bit so it is not
                // delivered twice.
                bit_clear(&mut self.slots[receiver.index()].pending_async, sender);
            }
            return Some(Ok(()));
        }
    }

    /// Marks every VALID, !DONE entry of `sender`'s table addressed to `dead` as
    /// DONE|FAILED with `error` (faults are ignored).
    fn fail_async_entries_to(
        &mut self,
        env: &mut impl IpcEnvironment,
        sender: ThreadSlot,
        dead: Endpoint,
        error: Error,
    ) {
        let s = &self.slots[sender.index()];
        let table = s.async_table;
        let count = table.len();
        for index in 0..count {
            let Ok(entry) = env.read_async_entry(sender, table, index) else {
                return;
            };
            if entry.flags & async_flags::VALID != 0
                && entry.flags & async_flags::DONE == 0
                && entry.destination == dead
            {
                let flags = entry.flags | async_flags::DONE | async_flags::FAILED;
                if env
                    .write_async_status(sender, table, index, flags, error as u32)
                    .is_err()
                {
                    return;
                }
            }
        }
    }

    /// The pending notification `receive(from)` takes first: kernel sources, then the
    /// lowest thread slot.
    fn pending_notification(&self, receiver: ThreadSlot, from: Endpoint) -> Option<NotifySource> {
        let slot = &self.slots[receiver.index()];
        if from == Endpoint::ANY || from == Endpoint::CLOCK {
            if slot.clock_pending > 0 {
                return Some(NotifySource::Clock);
            }
            if from == Endpoint::CLOCK {
                return None;
            }
            return bit_next(&slot.pending_notify, 0).map(NotifySource::Thread);
        }
        // A validated thread endpoint: pending bits always belong to the current generation
        // (exit clears them).
        let source = slot_of(from)?;
        if bit_test(&slot.pending_notify, source) {
            Some(NotifySource::Thread(source))
        } else {
            None
        }
    }

    /// Appends `sender` to the FIFO of threads sending to `d`.
    fn queue_push(&mut self, d: ThreadSlot, sender: ThreadSlot) {
        debug_assert!(self.slots[sender.index()].queue_next == NO_LINK);
        self.slots[sender.index()].queue_next = NO_LINK;
        match unlink(self.slots[d.index()].queue_tail) {
            Some(tail) => self.slots[tail.index()].queue_next = link(sender),
            None => self.slots[d.index()].queue_head = link(sender),
        }
        self.slots[d.index()].queue_tail = link(sender);
    }

    /// Removes and returns the first sender queued on `d`.
    fn queue_pop(&mut self, d: ThreadSlot) -> Option<ThreadSlot> {
        let head = unlink(self.slots[d.index()].queue_head)?;
        self.queue_remove(d, head);
        Some(head)
    }

    /// Removes `sender` from the queue of `d`; whether it was there.
    fn queue_remove(&mut self, d: ThreadSlot, sender: ThreadSlot) -> bool {
        if d.index() >= MAX_THREADS {
            return false;
        }
        let mut previous: Option<ThreadSlot> = None;
        let mut cursor = unlink(self.slots[d.index()].queue_head);
        for _ in 0..MAX_THREADS {
            let Some(current) = cursor else {
                return false;
            };
            let next_link = self.slots[current.index()].queue_next;
            if current == sender {
                match previous {
                    Some(p) => self.slots[p.index()].queue_next = next_link,
                    None => self.slots[d.index()].queue_head = next_link,
                }
                if self.slots[d.index()].queue_tail == link(sender) {
                    self.slots[d.index()].queue_tail = previous.map_or(NO_LINK, link);
                }
                self.slots[sender.index()].queue_next = NO_LINK;
                return true;
            }
            previous = Some(current);
            cursor = unlink(next_link);
        }
        debug_assert!(false, "send queue of {d} is cyclic");
        false
    }
}

impl Default for ThreadTable {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_state_encoding_is_the_abi_introspection_encoding() {
        let t = Endpoint::new(7, 3);
        for state in [
            ThreadState::Free,
            ThreadState::Ready,
            ThreadState::Running,
            ThreadState::Sending { to: t },
            ThreadState::Receiving {
                from: Endpoint::ANY,
            },
            ThreadState::AwaitingReply { from: t },
            ThreadState::Mutex {
                address: 0x4010,
                owner: t,
            },
            ThreadState::Sleeping { until_ns: 99 },
            ThreadState::Joining { thread: t },
            ThreadState::Dead { exit_code: 3 },
            ThreadState::HeldForManager {
                manager: t,
                vector: 14,
            },
            ThreadState::WaitingForTracee { tracee: t, pid: 12 },
            ThreadState::WaitingForVm {
                vm: t,
                address: 0x2000_0000_0ff8,
                access: FaultAccess::Write,
            },
        ] {
            let mut slot = ThreadTable::new().slots[0];
            slot.set_state(state);
            assert_eq!(slot.state(), state);
            let (code, target, argument) = vigil_abi::introspect::encode_state(&state);
            // The stored codes are the encoding, target included, with no decoding.
            assert_eq!(slot.encoded(), (code, target, argument), "{state:?}");
            assert_eq!((slot.kind, slot.arg1), (code, argument), "{state:?}");
            if target != Endpoint::NONE {
                assert_eq!(slot.arg0, target.0, "{state:?}");
            }
            assert_eq!(
                vigil_abi::introspect::decode_state(slot.kind, Endpoint(slot.arg0), slot.arg1),
                Some(state)
            );
        }
    }
    use proptest::prelude::*;
    use std::boxed::Box;

    /// Thread slot `n` (the tests name slots by number).
    pub(in crate::ipc) fn ts(n: u16) -> ThreadSlot {
        ThreadSlot::new(n).expect("a thread slot inside the table")
    }

    /// Process slot `n`.
    pub(in crate::ipc) fn ps(n: u16) -> ProcessSlot {
        ProcessSlot::new(n).expect("a process slot inside the table")
    }
    use std::collections::{HashMap, HashSet};
    use std::vec;
    use std::vec::Vec;
    use vigil_abi::async_message::async_flags::{DONE, FAILED, NO_REPLY, VALID};

    /// Every thread's default message buffer is `BUF + slot * 0x100`.
    pub(in crate::ipc) const BUF: u64 = 0x1000;
    /// Faults on any access, for every thread.
    pub(in crate::ipc) const BAD: UserPtr<Message> = message_at(0xbad_0000);
    /// Readable but not writable, for every thread.
    pub(in crate::ipc) const RO: UserPtr<Message> = message_at(0x70_0000);
    /// Every thread's default async table is `TABLE + slot * 0x1000`.
    pub(in crate::ipc) const TABLE: u64 = 0x10_0000;

    pub(in crate::ipc) const fn message_at(address: u64) -> UserPtr<Message> {
        match UserPtr::new(address) {
            Ok(pointer) => pointer,
            Err(_) => panic!("test message addresses are aligned user addresses"),
        }
    }

    pub(in crate::ipc) fn buf(slot: ThreadSlot) -> UserPtr<Message> {
        message_at(BUF + u64::from(slot.get()) * 0x100)
    }

    fn word(address: u64) -> UserPtr<u32> {
        UserPtr::new(address).expect("test lock words are aligned")
    }

    pub(in crate::ipc) fn table(slot: ThreadSlot, count: usize) -> UserSlice<AsyncMessage> {
        UserSlice::new(table_of(slot), count as u64).expect("test tables are in range")
    }

    /// `(address, entries)` of a thread's registered async table.
    fn registered(table: UserSlice<AsyncMessage>) -> (u64, usize) {
        (table.address(), table.len())
    }

    pub(in crate::ipc) fn table_of(slot: ThreadSlot) -> u64 {
        TABLE + u64::from(slot.get()) * 0x1000
    }

    /// Fake per-thread memories and a record of what the kernel was asked to do.
    #[derive(Default)]
    pub(in crate::ipc) struct TestEnv {
        pub(in crate::ipc) memory: HashMap<(ThreadSlot, u64), Message>,
        pub(in crate::ipc) tables: HashMap<(ThreadSlot, u64), Vec<AsyncMessage>>,
        pub(in crate::ipc) bad: HashSet<(ThreadSlot, u64)>,
        pub(in crate::ipc) read_only: HashSet<(ThreadSlot, u64)>,
        pub(in crate::ipc) denied: HashSet<(ThreadSlot, ThreadSlot)>,
        pub(in crate::ipc) unblocks: Vec<(ThreadSlot, Result<u64, Error>)>,
        pub(in crate::ipc) now: u64,
        /// Messages the "kernel" holds for a receiver, oldest first.
        pub(in crate::ipc) kernel_messages:
            HashMap<ThreadSlot, std::collections::VecDeque<Message>>,
    }

    impl TestEnv {
        fn faults(&self, thread: ThreadSlot, address: u64) -> bool {
            address == BAD.address() || self.bad.contains(&(thread, address))
        }

        fn write_faults(&self, thread: ThreadSlot, address: u64) -> bool {
            self.faults(thread, address)
                || address == RO.address()
                || self.read_only.contains(&(thread, address))
        }

        pub(in crate::ipc) fn message(&self, thread: ThreadSlot, at: UserPtr<Message>) -> Message {
            self.memory
                .get(&(thread, at.address()))
                .copied()
                .unwrap_or_default()
        }

        pub(in crate::ipc) fn put(
            &mut self,
            thread: ThreadSlot,
            at: UserPtr<Message>,
            message: Message,
        ) {
            self.memory.insert((thread, at.address()), message);
        }

        pub(in crate::ipc) fn entries(&self, thread: ThreadSlot, table: u64) -> &[AsyncMessage] {
            self.tables
                .get(&(thread, table))
                .map_or(&[][..], |v| &v[..])
        }

        pub(in crate::ipc) fn take_unblocks(&mut self) -> Vec<(ThreadSlot, Result<u64, Error>)> {
            core::mem::take(&mut self.unblocks)
        }

        /// What the kernel does for a takeover or a swap: the memory and privileges of the
        /// thread at `from` are the thread at `to`'s from now on (and, with `swap`, the other
        /// way round); without `swap`, `to`'s are dropped.
        pub(in crate::ipc) fn move_thread_memory(
            &mut self,
            from: ThreadSlot,
            to: ThreadSlot,
            swap: bool,
        ) {
            let rename = |slot: ThreadSlot| {
                if slot == from {
                    Some(to)
                } else if slot == to {
                    swap.then_some(from)
                } else {
                    Some(slot)
                }
            };
            self.memory = core::mem::take(&mut self.memory)
                .into_iter()
                .filter_map(|((slot, address), m)| Some(((rename(slot)?, address), m)))
                .collect();
            self.tables = core::mem::take(&mut self.tables)
                .into_iter()
                .filter_map(|((slot, address), m)| Some(((rename(slot)?, address), m)))
                .collect();
            for set in [&mut self.bad, &mut self.read_only] {
                *set = core::mem::take(set)
                    .into_iter()
                    .filter_map(|(slot, address)| Some((rename(slot)?, address)))
                    .collect();
            }
            self.denied = core::mem::take(&mut self.denied)
                .into_iter()
                .filter_map(|(a, b)| Some((rename(a)?, rename(b)?)))
                .collect();
        }
    }

    impl IpcEnvironment for TestEnv {
        fn read_message(
            &mut self,
            thread: ThreadSlot,
            address: UserPtr<Message>,
        ) -> Result<Message, Error> {
            if self.faults(thread, address.address()) {
                return Err(Error::Fault);
            }
            Ok(self.message(thread, address))
        }

        fn write_message(
            &mut self,
            thread: ThreadSlot,
            address: UserPtr<Message>,
            message: &Message,
        ) -> Result<(), Error> {
            let address = address.address();
            if self.write_faults(thread, address) {
                return Err(Error::Fault);
            }
            self.memory.insert((thread, address), *message);
            Ok(())
        }

        fn check_message_buffer(
            &mut self,
            thread: ThreadSlot,
            address: UserPtr<Message>,
        ) -> Result<(), Error> {
            let address = address.address();
            if self.write_faults(thread, address) {
                return Err(Error::Fault);
            }
            Ok(())
        }

        fn read_async_entry(
            &mut self,
            thread: ThreadSlot,
            table: UserSlice<AsyncMessage>,
            index: usize,
        ) -> Result<AsyncMessage, Error> {
            let table = table.address();
            if self.faults(thread, table) {
                return Err(Error::Fault);
            }
            self.tables
                .get(&(thread, table))
                .and_then(|v| v.get(index))
                .copied()
                .ok_or(Error::Fault)
        }

        fn write_async_status(
            &mut self,
            thread: ThreadSlot,
            table: UserSlice<AsyncMessage>,
            index: usize,
            flags: u32,
            result: u32,
        ) -> Result<(), Error> {
            let table = table.address();
            if self.write_faults(thread, table) {
                return Err(Error::Fault);
            }
            let entry = self
                .tables
                .get_mut(&(thread, table))
                .and_then(|v| v.get_mut(index))
                .ok_or(Error::Fault)?;
            entry.flags = flags;
            entry.result = result;
            Ok(())
        }

        fn unblock(&mut self, thread: ThreadSlot, result: Result<u64, Error>) {
            self.unblocks.push((thread, result));
        }

        fn may_send(&self, from: ThreadSlot, to: ThreadSlot) -> bool {
            !self.denied.contains(&(from, to))
        }

        fn peek_kernel_message(&mut self, receiver: ThreadSlot) -> Option<Message> {
            self.kernel_messages.get(&receiver)?.front().copied()
        }

        fn consume_kernel_message(&mut self, receiver: ThreadSlot) {
            if let Some(queue) = self.kernel_messages.get_mut(&receiver) {
                queue.pop_front();
            }
        }

        fn now_ns(&self) -> u64 {
            self.now
        }
    }

    /// The register fast path's facts, from the same tables as the environment's answers.
    impl super::RegisterCallFacts for TestEnv {
        fn may_send(&self, from: ThreadSlot, to: ThreadSlot) -> bool {
            IpcEnvironment::may_send(self, from, to)
        }

        fn kernel_message_waiting(&self, receiver: ThreadSlot) -> bool {
            self.kernel_messages
                .get(&receiver)
                .is_some_and(|queue| !queue.is_empty())
        }
    }

    struct World {
        t: Box<ThreadTable>,
        env: TestEnv,
    }

    impl World {
        fn new() -> World {
            World {
                t: Box::new(ThreadTable::new()),
                env: TestEnv {
                    now: 1_000,
                    ..TestEnv::default()
                },
            }
        }

        /// Creates a thread of `process`, returns (slot, endpoint).
        fn spawn(&mut self, process: u16) -> (ThreadSlot, Endpoint) {
            let e = self.t.create(ps(process)).unwrap();
            (ts(e.slot()), e)
        }

        fn spawn_n<const N: usize>(&mut self) -> [(ThreadSlot, Endpoint); N] {
            core::array::from_fn(|_| self.spawn(1))
        }

        /// Puts a message in `slot`'s default buffer.
        fn load(&mut self, slot: ThreadSlot, kind: u32, word: u64) {
            let mut m = Message::with_payload(kind, [word, 0, 0, 0, 0, 0]);
            // A forged source the kernel must overwrite.
            m.source = Endpoint::new(999, 999);
            self.env.put(slot, buf(slot), m);
        }

        fn inbox(&self, slot: ThreadSlot) -> Message {
            self.env.message(slot, buf(slot))
        }

        fn send(&mut self, slot: ThreadSlot, to: Endpoint) -> Outcome {
            self.t.send(&mut self.env, slot, to, buf(slot))
        }

        fn sendrec(&mut self, slot: ThreadSlot, to: Endpoint) -> Outcome {
            self.t.send_receive(&mut self.env, slot, to, buf(slot))
        }

        fn recv(&mut self, slot: ThreadSlot, from: Endpoint) -> Outcome {
            self.t.receive(&mut self.env, slot, from, buf(slot))
        }

        fn set_table(&mut self, slot: ThreadSlot, entries: &[AsyncMessage]) {
            self.env
                .tables
                .insert((slot, table_of(slot)), entries.to_vec());
        }

        fn send_async(&mut self, slot: ThreadSlot, count: usize) -> Result<u64, Error> {
            self.t.send_async(&mut self.env, slot, table(slot, count))
        }

        fn entry(&self, slot: ThreadSlot, index: usize) -> AsyncMessage {
            self.env.entries(slot, table_of(slot))[index]
        }

        fn unblocks(&mut self) -> Vec<(ThreadSlot, Result<u64, Error>)> {
            self.env.take_unblocks()
        }
    }

    fn async_entry(destination: Endpoint, flags: u32, kind: u32) -> AsyncMessage {
        AsyncMessage {
            flags,
            result: 0,
            destination,
            message: Message::with_payload(kind, [kind as u64, 0, 0, 0, 0, 0]),
        }
    }

    const DONE_OK: Outcome = Outcome::Complete(Ok(0));

    fn err(e: Error) -> Outcome {
        Outcome::Complete(Err(e))
    }

    // ----- Table basics -----

    #[test]
    fn bitmap_iteration() {
        let mut map = SlotBitmap::EMPTY;
        for slot in [0, 63, 64, 700, 1023] {
            bit_set(&mut map, ts(slot));
        }
        bit_set(&mut map, ts(5));
        bit_clear(&mut map, ts(5));
        let mut found = Vec::new();
        let mut next = 0;
        while let Some(slot) = bit_next(&map, next) {
            found.push(slot);
            next = slot.index() + 1;
        }
        assert_eq!(found, [0, 63, 64, 700, 1023].map(ts));
        assert_eq!(bit_count(&map), 5);
        assert!(bit_test(&map, ts(700)) && !bit_test(&map, ts(701)));
        assert_eq!(bit_next(&map, MAX_THREADS), None);
    }

    #[test]
    fn a_bitmap_is_empty_exactly_when_no_bit_is_set() {
        let mut map = SlotBitmap::EMPTY;
        assert!(map.is_empty());
        bit_set(&mut map, ts(70));
        bit_set(&mut map, ts(71));
        assert!(!map.is_empty());
        bit_clear(&mut map, ts(70));
        assert!(!map.is_empty(), "bit 71 is still set");
        bit_clear(&mut map, ts(71));
        assert!(map.is_empty());
        assert_eq!(
            map.occupied, 0,
            "the ordinary clear keeps the summary exact"
        );
        // An exit's clear leaves the summary bit: still exactly empty, and a later set
        // and clear of that word make the summary exact again.
        bit_set(&mut map, ts(700));
        bit_clear_in_exit(&mut map, ts(700));
        assert_ne!(map.occupied, 0);
        assert!(map.is_empty());
        bit_set(&mut map, ts(5));
        assert!(!map.is_empty());
        bit_clear(&mut map, ts(5));
        assert!(map.is_empty());
    }

    static STATIC_TABLE: ThreadTable = ThreadTable::new();

    #[test]
    fn new_table_is_all_zero_bytes() {
        let table = Box::new(ThreadTable::new());
        let size = core::mem::size_of::<ThreadTable>();
        // SAFETY: `ThreadTable` and `Slot` are `repr(C)` and the const assertions next to
        // them prove there is no padding (the size equals the sum of the field sizes), so
        // every byte of the value is initialised and may be read as a `u8`; the slice
        // borrows `table`, which outlives it.
        let bytes = unsafe {
            core::slice::from_raw_parts((&*table as *const ThreadTable).cast::<u8>(), size)
        };
        assert_eq!(bytes.len(), MAX_THREADS * 352 + 16);
        assert!(bytes.iter().all(|&b| b == 0));
        assert_eq!(STATIC_TABLE.state(ts(0)), ThreadState::Free);
        assert_eq!(STATIC_TABLE.endpoint(ts(5)), Endpoint::new(5, 0));
    }

    #[test]
    fn create_takes_lowest_free_slot_and_bumps_generation() {
        let mut w = World::new();
        let (a, ea) = w.spawn(7);
        let (b, _) = w.spawn(7);
        let (c, _) = w.spawn(8);
        assert_eq!((a, b, c), (ts(0), ts(1), ts(2)));
        assert_eq!(ea, Endpoint::new(0, 1));
        assert_eq!(w.t.state(a), ThreadState::Ready);
        assert_eq!(w.t.process(c), ps(8));
        assert_eq!(w.t.threads_of(ps(7)).collect::<Vec<_>>(), [ts(0), ts(1)]);
        assert_eq!(w.t.threads_of(ps(8)).collect::<Vec<_>>(), [ts(2)]);
        assert_eq!(w.t.resolve(ea), Ok(ts(0)));

        w.t.exit(&mut w.env, b, 3);
        assert_eq!(w.t.state(b), ThreadState::Dead { exit_code: 3 });
        assert_eq!(
            w.t.threads_of(ps(7)).collect::<Vec<_>>(),
            [ts(0), ts(1)],
            "Dead is listed"
        );
        w.t.free(b);
        assert_eq!(w.t.state(b), ThreadState::Free);
        assert_eq!(
            w.t.endpoint(b),
            Endpoint::new(1, 1),
            "free keeps the generation"
        );
        let (b2, eb2) = w.spawn(9);
        assert_eq!((b2, eb2), (ts(1), Endpoint::new(1, 2)));
        assert_eq!(
            w.t.threads().collect::<Vec<_>>(),
            [
                (ts(0), ThreadState::Ready),
                (ts(1), ThreadState::Ready),
                (ts(2), ThreadState::Ready)
            ]
        );
    }

    #[test]
    fn create_fails_when_full_and_generation_wraps() {
        let mut w = World::new();
        for i in 0..MAX_THREADS {
            assert!(w.t.has_free_slot());
            assert_eq!(w.t.create(ps(1)).map(|e| e.slot()), Ok(i as u16));
        }
        assert!(!w.t.has_free_slot());
        assert_eq!(w.t.create(ps(1)), Err(Error::OutOfResources));
        w.t.exit(&mut w.env, ts(10), 0);
        assert!(!w.t.has_free_slot(), "Dead is not free");
        assert_eq!(
            w.t.create(ps(1)),
            Err(Error::OutOfResources),
            "Dead is not free"
        );
        w.t.free(ts(10));
        assert!(w.t.has_free_slot());
        w.t.slots[10].generation = u32::MAX;
        assert_eq!(w.t.create(ps(1)), Ok(Endpoint::new(10, 0)));
    }

    #[test]
    fn accessors_of_free_slots_are_empty() {
        // A slot outside the table cannot be named at all (`ThreadSlot::new` refuses it);
        // a free slot answers every accessor with "nothing".
        assert_eq!(ThreadSlot::new(MAX_THREADS as u16), None);
        let mut w = World::new();
        let last = ts(MAX_THREADS as u16 - 1);
        assert_eq!(w.t.state(last), ThreadState::Free);
        assert_eq!(w.t.endpoint(last), Endpoint::new(last.get(), 0));
        assert_eq!(w.t.process(last), ps(0));
        assert_eq!(w.t.senders(last).count(), 0);
        assert_eq!(w.t.pending_notifications(last), 0);
        assert_eq!(w.t.pending_async_senders(last), 0);
        assert_eq!(registered(w.t.async_table(last)), (0, 0));
        w.t.notify_from_kernel(&mut w.env, KernelSource::Clock, ts(3)); // Free: ignored
        assert_eq!(w.t.pending_notifications(ts(3)), 0);
        w.t.exit(&mut w.env, last, 0);
        w.t.wake_sleeper(&mut w.env, last);
        assert_eq!(w.t.state(last), ThreadState::Free);
        assert!(w.unblocks().is_empty());
    }

    #[test]
    fn resolve_reports_each_endpoint_error() {
        let mut w = World::new();
        let [(a, ea), (b, eb)] = w.spawn_n();
        assert_eq!(w.t.resolve(Endpoint::ANY), Err(Error::BadEndpoint));
        assert_eq!(w.t.resolve(Endpoint(1 << 50)), Err(Error::BadEndpoint));
        assert_eq!(
            w.t.resolve(Endpoint::new(MAX_THREADS as u16, 1)),
            Err(Error::BadEndpoint)
        );
        assert_eq!(w.t.resolve(Endpoint::new(9, 0)), Err(Error::DeadEndpoint));
        assert_eq!(
            w.t.resolve(Endpoint::new(a.get(), 2)),
            Err(Error::DeadEndpoint)
        );
        w.t.exit(&mut w.env, b, 0);
        assert_eq!(w.t.resolve(eb), Err(Error::DeadEndpoint));
        assert_eq!(w.t.resolve(ea), Ok(a));
    }

    #[test]
    fn mark_running_and_ready() {
        let mut w = World::new();
        let (a, _) = w.spawn(1);
        w.t.mark_running(a);
        assert_eq!(w.t.state(a), ThreadState::Running);
        w.t.mark_ready(a);
        assert_eq!(w.t.state(a), ThreadState::Ready);
        w.t.mark_running(a);
        // A completed call leaves a running caller running.
        w.load(a, 1, 0);
        let (_, eb) = w.spawn(1);
        assert_eq!(
            w.t.send_nonblocking(&mut w.env, a, eb, buf(a)),
            Err(Error::NotReady)
        );
        assert_eq!(w.t.state(a), ThreadState::Running);
        assert_eq!(w.send(a, eb), Outcome::Blocked);
        assert_eq!(w.t.state(a), ThreadState::Sending { to: eb });
    }

    // ----- send / receive -----

    #[test]
    fn receive_first_then_send() {
        let mut w = World::new();
        let [(a, ea), (b, eb)] = w.spawn_n();
        assert_eq!(w.recv(b, Endpoint::ANY), Outcome::Blocked);
        assert_eq!(
            w.t.state(b),
            ThreadState::Receiving {
                from: Endpoint::ANY
            }
        );
        w.load(a, 42, 7);
        assert_eq!(w.send(a, eb), DONE_OK);
        assert_eq!(w.unblocks(), [(b, Ok(0))]);
        assert_eq!(w.t.state(b), ThreadState::Ready);
        assert_eq!(w.t.state(a), ThreadState::Ready);
        let got = w.inbox(b);
        assert_eq!((got.source, got.kind, got.payload[0]), (ea, 42, 7));
    }

    #[test]
    fn send_first_then_receive() {
        let mut w = World::new();
        let [(a, ea), (b, eb)] = w.spawn_n();
        w.load(a, 42, 7);
        assert_eq!(w.send(a, eb), Outcome::Blocked);
        assert_eq!(w.t.state(a), ThreadState::Sending { to: eb });
        assert_eq!(w.t.senders(b).collect::<Vec<_>>(), [a]);
        assert!(w.unblocks().is_empty());
        assert_eq!(w.recv(b, Endpoint::ANY), DONE_OK);
        assert_eq!(w.unblocks(), [(a, Ok(0))]);
        assert_eq!(w.t.state(a), ThreadState::Ready);
        assert_eq!(w.t.senders(b).count(), 0);
        let got = w.inbox(b);
        assert_eq!((got.source, got.kind, got.payload[0]), (ea, 42, 7));
        // Nothing left: the next receive blocks.
        assert_eq!(w.recv(b, ea), Outcome::Blocked);
        assert_eq!(w.t.state(b), ThreadState::Receiving { from: ea });
    }

    #[test]
    fn message_read_at_delivery_time_for_a_queued_sender() {
        let mut w = World::new();
        let [(a, _), (b, eb)] = w.spawn_n();
        w.load(a, 1, 1);
        assert_eq!(w.send(a, eb), Outcome::Blocked);
        assert_eq!(w.recv(b, Endpoint::ANY), DONE_OK);
        assert_eq!(w.inbox(b).kind, 1);
    }

    #[test]
    fn send_receive_then_reply() {
        let mut w = World::new();
        let [(client, ec), (server, es)] = w.spawn_n();
        // Server waiting first.
        assert_eq!(w.recv(server, Endpoint::ANY), Outcome::Blocked);
        w.load(client, 10, 5);
        assert_eq!(w.sendrec(client, es), Outcome::Blocked);
        assert_eq!(w.t.state(client), ThreadState::AwaitingReply { from: es });
        assert_eq!(w.unblocks(), [(server, Ok(0))]);
        assert_eq!(w.inbox(server).source, ec);
        // A notification or another thread's message does not complete the wait.
        let (other, _) = w.spawn(1);
        assert_eq!(w.t.notify(&mut w.env, server, ec), Ok(0));
        assert_eq!(w.t.state(client), ThreadState::AwaitingReply { from: es });
        w.load(other, 99, 0);
        assert_eq!(w.send(other, ec), Outcome::Blocked);
        assert_eq!(w.t.state(client), ThreadState::AwaitingReply { from: es });
        // The reply.
        w.load(server, 11, 6);
        assert_eq!(w.send(server, ec), DONE_OK);
        assert_eq!(w.unblocks(), [(client, Ok(0))]);
        assert_eq!(w.t.state(client), ThreadState::Ready);
        let got = w.inbox(client);
        assert_eq!((got.source, got.kind, got.payload[0]), (es, 11, 6));
        // What was held back is received later, notification first.
        assert_eq!(w.recv(client, Endpoint::ANY), DONE_OK);
        assert!(w.inbox(client).is_notification());
        assert_eq!(w.recv(client, Endpoint::ANY), DONE_OK);
        assert_eq!(w.inbox(client).kind, 99);
    }

    #[test]
    fn queued_send_receive_moves_to_awaiting_reply() {
        let mut w = World::new();
        let [(client, ec), (server, es)] = w.spawn_n();
        w.load(client, 10, 5);
        assert_eq!(w.sendrec(client, es), Outcome::Blocked);
        assert_eq!(w.t.state(client), ThreadState::Sending { to: es });
        assert_eq!(w.recv(server, Endpoint::ANY), DONE_OK);
        assert!(
            w.unblocks().is_empty(),
            "the client still waits for its reply"
        );
        assert_eq!(w.t.state(client), ThreadState::AwaitingReply { from: es });
        assert_eq!(w.inbox(server).kind, 10);
        w.load(server, 11, 0);
        assert_eq!(
            w.t.send_nonblocking(&mut w.env, server, ec, buf(server)),
            Ok(0),
            "a non-blocking reply is delivered"
        );
        assert_eq!(w.unblocks(), [(client, Ok(0))]);
        assert_eq!(w.inbox(client).kind, 11);
    }

    #[test]
    fn receive_any_takes_senders_in_fifo_order() {
        let mut w = World::new();
        let [(r, er), (s1, e1), (s2, e2), (s3, e3)] = w.spawn_n();
        for (s, k) in [(s2, 2), (s3, 3), (s1, 1)] {
            w.load(s, k, 0);
            assert_eq!(w.send(s, er), Outcome::Blocked);
        }
        assert_eq!(w.t.senders(r).collect::<Vec<_>>(), [s2, s3, s1]);
        for (s, e, k) in [(s2, e2, 2), (s3, e3, 3), (s1, e1, 1)] {
            assert_eq!(w.recv(r, Endpoint::ANY), DONE_OK);
            assert_eq!((w.inbox(r).source, w.inbox(r).kind), (e, k));
            assert_eq!(w.unblocks(), [(s, Ok(0))]);
        }
        assert_eq!(w.t.senders(r).count(), 0);
    }

    #[test]
    fn receive_from_specific_source_skips_others() {
        let mut w = World::new();
        let [(r, er), (s1, e1), (s2, e2), (s3, _)] = w.spawn_n();
        for s in [s1, s2, s3] {
            w.load(s, s.get().into(), 0);
            assert_eq!(w.send(s, er), Outcome::Blocked);
        }
        assert_eq!(w.recv(r, e2), DONE_OK);
        assert_eq!(w.inbox(r).source, e2);
        assert_eq!(w.unblocks(), [(s2, Ok(0))]);
        assert_eq!(w.t.senders(r).collect::<Vec<_>>(), [s1, s3]);
        assert_eq!(w.recv(r, e2), Outcome::Blocked, "nothing from s2 left");
        assert_eq!(w.t.state(r), ThreadState::Receiving { from: e2 });
        // s1 cannot get through to a receiver waiting for s2: already queued, stays.
        assert_eq!(w.t.state(s1), ThreadState::Sending { to: er });
        // A new sender that is not s2 queues behind.
        let (s4, _) = w.spawn(1);
        w.load(s4, 4, 0);
        assert_eq!(w.send(s4, er), Outcome::Blocked);
        assert_eq!(w.t.senders(r).collect::<Vec<_>>(), [s1, s3, s4]);
        // s2 sends again: delivered at once.
        w.load(s2, 22, 0);
        assert_eq!(w.send(s2, er), DONE_OK);
        assert_eq!(w.unblocks(), [(r, Ok(0))]);
        assert_eq!(w.recv(r, e1), DONE_OK);
        assert_eq!(w.inbox(r).source, e1);
    }

    #[test]
    fn receive_source_errors() {
        let mut w = World::new();
        let [(r, er), (s, es)] = w.spawn_n();
        assert_eq!(w.recv(r, Endpoint::NONE), err(Error::BadEndpoint));
        assert_eq!(
            w.recv(r, Endpoint::new(MAX_THREADS as u16, 1)),
            err(Error::BadEndpoint)
        );
        assert_eq!(w.recv(r, er), err(Error::SelfTarget));
        assert_eq!(
            w.recv(r, Endpoint::new(s.get(), 7)),
            err(Error::DeadEndpoint)
        );
        assert_eq!(w.recv(r, Endpoint::new(20, 0)), err(Error::DeadEndpoint));
        w.t.exit(&mut w.env, s, 0);
        assert_eq!(w.recv(r, es), err(Error::DeadEndpoint));
        assert_eq!(w.t.state(r), ThreadState::Ready);
    }

    // ----- Destination checks -----

    #[test]
    fn every_destination_error_for_every_send_flavour() {
        let mut w = World::new();
        let [(a, ea), (b, eb), (dead, edead), (_, _)] = w.spawn_n();
        w.t.exit(&mut w.env, dead, 0);
        w.env.denied.insert((a, b));
        let cases = [
            (Endpoint::ANY, Error::BadEndpoint),
            (Endpoint::CLOCK, Error::BadEndpoint),
            (Endpoint::KERNEL, Error::BadEndpoint),
            (Endpoint(1 << 60), Error::BadEndpoint),
            (Endpoint::new(MAX_THREADS as u16, 1), Error::BadEndpoint),
            (Endpoint::new(u16::MAX, 1), Error::BadEndpoint),
            (Endpoint::new(50, 0), Error::DeadEndpoint),
            (Endpoint::new(50, 1), Error::DeadEndpoint),
            (
                Endpoint::new(b.get(), eb.generation() + 1),
                Error::DeadEndpoint,
            ),
            (edead, Error::DeadEndpoint),
            (ea, Error::SelfTarget),
            (eb, Error::PermissionDenied),
        ];
        w.load(a, 1, 0);
        w.set_table(a, &[]);
        for (destination, error) in cases {
            let before = w.t.clone();
            assert_eq!(w.send(a, destination), err(error), "{destination:?}");
            assert_eq!(w.sendrec(a, destination), err(error), "{destination:?}");
            assert_eq!(
                w.t.send_nonblocking(&mut w.env, a, destination, buf(a)),
                Err(error)
            );
            assert_eq!(w.t.notify(&mut w.env, a, destination), Err(error));
            assert!(w.t == before, "state changed for {destination:?}");
            w.set_table(a, &[async_entry(destination, VALID, 5)]);
            assert_eq!(w.send_async(a, 1), Ok(0));
            assert_eq!(
                w.entry(a, 0).flags,
                VALID | DONE | FAILED,
                "{destination:?}"
            );
            assert_eq!(w.entry(a, 0).result, error as u32);
        }
        assert!(w.unblocks().is_empty());
    }

    // ----- Faults -----

    #[test]
    fn bad_buffers_fault_and_change_nothing() {
        let mut w = World::new();
        let [(a, _), (b, eb), (c, ec)] = w.spawn_n();
        // Some state to preserve: c is queued on b, b has a pending notification.
        w.load(c, 1, 0);
        assert_eq!(w.send(c, eb), Outcome::Blocked);
        w.t.notify_from_kernel(&mut w.env, KernelSource::Clock, b);
        w.t.notify_from_kernel(&mut w.env, KernelSource::Clock, a);
        let before = w.t.clone();
        assert_eq!(w.t.send(&mut w.env, a, eb, BAD), err(Error::Fault));
        assert_eq!(w.t.send_receive(&mut w.env, a, eb, BAD), err(Error::Fault));
        assert_eq!(
            w.t.send_receive(&mut w.env, a, eb, RO),
            err(Error::Fault),
            "send_receive needs a writable buffer"
        );
        assert_eq!(
            w.t.send_nonblocking(&mut w.env, a, eb, BAD),
            Err(Error::Fault)
        );
        assert_eq!(
            w.t.receive(&mut w.env, b, Endpoint::ANY, BAD),
            err(Error::Fault)
        );
        assert_eq!(w.t.receive(&mut w.env, b, ec, RO), err(Error::Fault));
        assert_eq!(w.t.receive(&mut w.env, a, ec, RO), err(Error::Fault));
        assert!(w.t == before);
        assert!(w.unblocks().is_empty());
        // A read-only buffer is fine for a plain send.
        w.env.put(a, RO, Message::new(3));
        assert_eq!(w.t.send(&mut w.env, a, ec, RO), Outcome::Blocked);
    }

    #[test]
    fn receiver_buffer_fault_at_delivery_fails_the_receiver_only() {
        let mut w = World::new();
        let [(a, ea), (b, eb)] = w.spawn_n();
        assert_eq!(w.recv(b, Endpoint::ANY), Outcome::Blocked);
        // The receiver's buffer becomes unwritable while it waits.
        w.env.read_only.insert((b, buf(b).address()));
        w.load(a, 5, 0);
        assert_eq!(
            w.send(a, eb),
            Outcome::Blocked,
            "not delivered: the sender queues"
        );
        assert_eq!(w.unblocks(), [(b, Err(Error::Fault))]);
        assert_eq!(w.t.state(b), ThreadState::Ready);
        assert_eq!(w.t.senders(b).collect::<Vec<_>>(), [a]);
        w.env.read_only.clear();
        assert_eq!(w.recv(b, ea), DONE_OK);
        assert_eq!(w.inbox(b).kind, 5);
    }

    #[test]
    fn sender_buffer_fault_at_receive_fails_that_sender() {
        let mut w = World::new();
        let [(r, er), (s1, _), (s2, e2)] = w.spawn_n();
        w.load(s1, 1, 0);
        w.load(s2, 2, 0);
        assert_eq!(w.send(s1, er), Outcome::Blocked);
        assert_eq!(w.send(s2, er), Outcome::Blocked);
        w.env.bad.insert((s1, buf(s1).address()));
        assert_eq!(w.recv(r, Endpoint::ANY), DONE_OK);
        assert_eq!(w.inbox(r).source, e2);
        assert_eq!(w.unblocks(), [(s1, Err(Error::Fault)), (s2, Ok(0))]);
        assert_eq!(w.t.state(s1), ThreadState::Ready);
    }

    // ----- Waiting for VM and messages from the kernel -----

    fn kernel_message(word: u64) -> Message {
        let mut m = Message::with_payload(0xffff_0002, [word, 0, 0, 0, 0, 0]);
        m.source = Endpoint::KERNEL;
        m
    }

    #[test]
    fn a_thread_waits_for_vm_until_released_with_its_registers_untouched() {
        let mut w = World::new();
        let [(t, _), (_, vm)] = w.spawn_n();
        let access = FaultAccess::Write;
        assert_eq!(
            w.t.wait_for_vm(t, vm, 0x2000_0000_0010, access),
            Outcome::Blocked
        );
        let state = w.t.state(t);
        assert_eq!(
            state,
            ThreadState::WaitingForVm {
                vm,
                address: 0x2000_0000_0010,
                access
            }
        );
        assert_eq!(state.waits_on(), Some(vm));
        assert!(w.t.release_from_vm(t));
        assert_eq!(w.t.state(t), ThreadState::Ready);
        // Released threads are not unblocked through the environment: no result is written.
        assert!(w.unblocks().is_empty());
        assert!(!w.t.release_from_vm(t), "a second release finds no wait");
    }

    #[test]
    fn a_thread_waiting_for_vm_can_exit() {
        let mut w = World::new();
        let [(t, _), (_, vm)] = w.spawn_n();
        w.t.wait_for_vm(t, vm, 0x5000, FaultAccess::Read);
        w.t.exit(&mut w.env, t, 9);
        assert_eq!(w.t.state(t), ThreadState::Dead { exit_code: 9 });
        assert!(!w.t.release_from_vm(t));
    }

    #[test]
    fn kernel_messages_reach_a_receiver_of_any_or_kernel_only() {
        let mut w = World::new();
        let [(r, _), (other, eo)] = w.spawn_n();
        // Receiving from a specific thread: not delivered, nothing changes.
        assert_eq!(w.recv(r, eo), Outcome::Blocked);
        assert!(!w.t.deliver_from_kernel(&mut w.env, r, &kernel_message(1)));
        assert_eq!(w.t.state(r), ThreadState::Receiving { from: eo });
        w.t.exit(&mut w.env, other, 0);
        w.unblocks();
        // Receiving from KERNEL: delivered at once.
        let mut w = World::new();
        let [(r, _)] = w.spawn_n();
        assert_eq!(w.recv(r, Endpoint::KERNEL), Outcome::Blocked);
        assert!(w.t.deliver_from_kernel(&mut w.env, r, &kernel_message(2)));
        assert_eq!(w.unblocks(), [(r, Ok(0))]);
        assert_eq!(w.inbox(r).payload[0], 2);
        assert_eq!(w.inbox(r).source, Endpoint::KERNEL);
    }

    #[test]
    fn receive_takes_a_held_kernel_message_after_notifications_and_before_senders() {
        let mut w = World::new();
        let [(r, er), (s, _), (n, _)] = w.spawn_n();
        w.env
            .kernel_messages
            .entry(r)
            .or_default()
            .extend([kernel_message(7), kernel_message(8)]);
        w.load(s, 5, 55);
        assert_eq!(w.send(s, er), Outcome::Blocked);
        assert_eq!(w.t.notify(&mut w.env, n, er), Ok(0));
        assert_eq!(w.recv(r, Endpoint::ANY), DONE_OK);
        assert!(w.inbox(r).is_notification());
        assert_eq!(w.recv(r, Endpoint::ANY), DONE_OK);
        assert_eq!(w.inbox(r).payload[0], 7);
        assert_eq!(w.recv(r, Endpoint::KERNEL), DONE_OK);
        assert_eq!(w.inbox(r).payload[0], 8);
        // The queue is empty now: the sender's message comes next.
        assert_eq!(w.recv(r, Endpoint::ANY), DONE_OK);
        assert_eq!(w.inbox(r).payload[0], 55);
        // A receive from one thread does not take kernel messages.
        w.env
            .kernel_messages
            .entry(r)
            .or_default()
            .push_back(kernel_message(9));
        assert_eq!(w.recv(r, Endpoint::new(s.get(), 1)), Outcome::Blocked);
        assert_eq!(w.env.kernel_messages[&r].len(), 1);
    }

    // ----- Notifications -----

    #[test]
    fn notifications_coalesce() {
        let mut w = World::new();
        let [(n, en), (r, er)] = w.spawn_n();
        for _ in 0..5 {
            assert_eq!(w.t.notify(&mut w.env, n, er), Ok(0));
        }
        assert_eq!(w.t.state(n), ThreadState::Ready, "notify never blocks");
        assert_eq!(w.t.pending_notifications(r), 1);
        w.env.now = 77;
        assert_eq!(w.recv(r, Endpoint::ANY), DONE_OK);
        let got = w.inbox(r);
        assert_eq!(got.source, en);
        assert_eq!(got.kind, KIND_NOTIFY);
        assert_eq!(got.payload[0], 1);
        assert_eq!(got.payload[1], 77);
        assert_eq!(w.t.pending_notifications(r), 0);
        assert_eq!(w.recv(r, Endpoint::ANY), Outcome::Blocked);
        assert!(w.unblocks().is_empty());
    }

    #[test]
    fn notify_wakes_a_matching_receiver() {
        let mut w = World::new();
        let [(n, en), (r, er), (_, eo)] = w.spawn_n();
        assert_eq!(w.recv(r, en), Outcome::Blocked);
        w.env.now = 5;
        assert_eq!(w.t.notify(&mut w.env, n, er), Ok(0));
        assert_eq!(w.unblocks(), [(r, Ok(0))]);
        let got = w.inbox(r);
        assert_eq!(
            (got.source, got.kind, got.payload[0], got.payload[1]),
            (en, KIND_NOTIFY, 1, 5)
        );
        assert_eq!(w.t.pending_notifications(r), 0);
        // A receiver waiting for someone else only gets a pending bit.
        assert_eq!(w.recv(r, eo), Outcome::Blocked);
        assert_eq!(w.t.notify(&mut w.env, n, er), Ok(0));
        assert!(w.unblocks().is_empty());
        assert_eq!(w.t.state(r), ThreadState::Receiving { from: eo });
        assert_eq!(w.t.pending_notifications(r), 1);
    }

    #[test]
    fn clock_notifications_count_raises() {
        let mut w = World::new();
        let [(r, _), (n, er)] = w.spawn_n();
        let _ = er;
        for _ in 0..3 {
            w.t.notify_from_kernel(&mut w.env, KernelSource::Clock, r);
        }
        assert_eq!(w.t.pending_kernel_notifications(r, KernelSource::Clock), 3);
        // Receiving from a thread does not take the clock's notifications.
        let en = w.t.endpoint(n);
        assert_eq!(w.recv(r, en), Outcome::Blocked);
        w.t.notify_from_kernel(&mut w.env, KernelSource::Clock, r);
        assert!(w.unblocks().is_empty());
        assert_eq!(w.t.pending_kernel_notifications(r, KernelSource::Clock), 4);
        // Make r runnable again: n sends to it.
        w.load(n, 1, 0);
        assert_eq!(w.send(n, w.t.endpoint(r)), DONE_OK);
        w.unblocks();
        assert_eq!(w.recv(r, Endpoint::CLOCK), DONE_OK);
        let got = w.inbox(r);
        assert_eq!(
            (got.source, got.kind, got.payload[0]),
            (Endpoint::CLOCK, KIND_NOTIFY, 4)
        );
        assert_eq!(w.t.pending_notifications(r), 0);
        // Waiting for the clock: delivered at once, count 1.
        assert_eq!(w.recv(r, Endpoint::CLOCK), Outcome::Blocked);
        w.env.now = 9;
        w.t.notify_from_kernel(&mut w.env, KernelSource::Clock, r);
        assert_eq!(w.unblocks(), [(r, Ok(0))]);
        let got = w.inbox(r);
        assert_eq!(
            (got.source, got.payload[0], got.payload[1]),
            (Endpoint::CLOCK, 1, 9)
        );
        // The clock does not complete a reply wait.
        let en = w.t.endpoint(n);
        assert_eq!(w.recv(n, Endpoint::ANY), Outcome::Blocked);
        w.load(r, 3, 0);
        assert_eq!(w.sendrec(r, en), Outcome::Blocked);
        w.t.notify_from_kernel(&mut w.env, KernelSource::Clock, r);
        assert_eq!(w.unblocks(), [(n, Ok(0))]);
        assert_eq!(w.t.state(r), ThreadState::AwaitingReply { from: en });
    }

    #[test]
    fn notifications_take_priority_over_queued_messages() {
        let mut w = World::new();
        let [(r, er), (s, es), (n, en)] = w.spawn_n();
        w.load(s, 1, 0);
        assert_eq!(w.send(s, er), Outcome::Blocked);
        assert_eq!(w.t.notify(&mut w.env, n, er), Ok(0));
        w.t.notify_from_kernel(&mut w.env, KernelSource::Clock, r);
        assert_eq!(w.recv(r, Endpoint::ANY), DONE_OK);
        assert_eq!(w.inbox(r).source, Endpoint::CLOCK, "kernel sources first");
        assert_eq!(w.recv(r, Endpoint::ANY), DONE_OK);
        assert_eq!(w.inbox(r).source, en);
        assert!(w.unblocks().is_empty());
        assert_eq!(w.recv(r, Endpoint::ANY), DONE_OK);
        assert_eq!(w.inbox(r).source, es);
        assert_eq!(w.unblocks(), [(s, Ok(0))]);
    }

    #[test]
    fn notifications_from_several_sources_lowest_slot_first() {
        let mut w = World::new();
        let [(r, er), (a, ea), (b, eb)] = w.spawn_n();
        assert_eq!(w.t.notify(&mut w.env, b, er), Ok(0));
        assert_eq!(w.t.notify(&mut w.env, a, er), Ok(0));
        assert_eq!(w.t.pending_notifications(r), 2);
        assert_eq!(w.recv(r, eb), DONE_OK);
        assert_eq!(w.inbox(r).source, eb);
        assert_eq!(w.recv(r, Endpoint::ANY), DONE_OK);
        assert_eq!(w.inbox(r).source, ea);
        let _ = (a, b);
    }

    // ----- Non-blocking send -----

    #[test]
    fn send_nonblocking_ready_and_not_ready() {
        let mut w = World::new();
        let [(a, _), (b, eb), (_, ec)] = w.spawn_n();
        w.load(a, 8, 0);
        assert_eq!(
            w.t.send_nonblocking(&mut w.env, a, eb, buf(a)),
            Err(Error::NotReady)
        );
        assert_eq!(w.recv(b, ec), Outcome::Blocked);
        assert_eq!(
            w.t.send_nonblocking(&mut w.env, a, eb, buf(a)),
            Err(Error::NotReady)
        );
        assert_eq!(w.t.state(a), ThreadState::Ready);
        assert_eq!(w.t.senders(b).count(), 0);
        assert!(w.unblocks().is_empty());
    }

    #[test]
    fn send_nonblocking_to_waiting_receiver() {
        let mut w = World::new();
        let [(a, ea), (b, eb)] = w.spawn_n();
        assert_eq!(w.recv(b, ea), Outcome::Blocked);
        w.load(a, 8, 0);
        assert_eq!(w.t.send_nonblocking(&mut w.env, a, eb, buf(a)), Ok(0));
        assert_eq!(w.unblocks(), [(b, Ok(0))]);
        assert_eq!((w.inbox(b).source, w.inbox(b).kind), (ea, 8));
    }

    // ----- Async -----

    // ----- Kernel message kinds cannot be sent by user code -----

    #[test]
    fn a_send_of_a_kernel_kind_is_refused_and_changes_nothing() {
        let mut w = World::new();
        let [(a, _), (b, eb)] = w.spawn_n();
        assert_eq!(w.recv(b, Endpoint::ANY), Outcome::Blocked);
        for kind in [
            KIND_NOTIFY,
            vigil_abi::message::KERNEL_KINDS_START,
            u32::MAX,
        ] {
            w.load(a, kind, 1);
            assert_eq!(w.send(a, eb), err(Error::InvalidArgument), "{kind:#x}");
            assert_eq!(w.sendrec(a, eb), err(Error::InvalidArgument), "{kind:#x}");
            assert_eq!(
                w.t.send_nonblocking(&mut w.env, a, eb, buf(a)),
                Err(Error::InvalidArgument)
            );
        }
        assert_eq!(
            w.t.state(b),
            ThreadState::Receiving {
                from: Endpoint::ANY
            }
        );
        assert!(w.unblocks().is_empty());
        // The largest user kind still goes through.
        w.load(a, vigil_abi::message::KERNEL_KINDS_START - 1, 2);
        assert_eq!(w.send(a, eb), DONE_OK);
        assert_eq!(w.inbox(b).kind, 0xfffe_ffff);
    }

    #[test]
    fn a_queued_sender_that_rewrites_its_message_to_a_kernel_kind_fails() {
        let mut w = World::new();
        let [(a, _), (b, eb), (c, ec)] = w.spawn_n();
        w.load(a, 5, 1);
        assert_eq!(w.send(a, eb), Outcome::Blocked);
        w.load(c, 6, 2);
        assert_eq!(w.send(c, eb), Outcome::Blocked);
        // While it waits, the sender turns its message into a forged notification.
        w.load(a, KIND_NOTIFY, 1);
        assert_eq!(w.recv(b, Endpoint::ANY), DONE_OK);
        assert_eq!((w.inbox(b).source, w.inbox(b).kind), (ec, 6));
        let mut unblocks = w.unblocks();
        unblocks.sort_by_key(|(slot, _)| *slot);
        assert_eq!(unblocks, [(a, Err(Error::InvalidArgument)), (c, Ok(0))]);
    }

    #[test]
    fn async_entries_of_a_kernel_kind_are_refused() {
        let mut w = World::new();
        let [(a, _), (b, eb)] = w.spawn_n();
        w.set_table(
            a,
            &[
                async_entry(eb, VALID, KIND_NOTIFY),
                async_entry(eb, VALID, 7),
            ],
        );
        assert_eq!(w.send_async(a, 2), Ok(0));
        assert_eq!(w.entry(a, 0).flags, VALID | DONE | FAILED);
        assert_eq!(w.entry(a, 0).result, Error::InvalidArgument as u32);
        // Rewritten after SendAsync checked it: refused when the receiver takes it.
        let mut table = w.env.entries(a, table_of(a)).to_vec();
        table[1].message.kind = vigil_abi::vm::KIND_PAGE_FAULT;
        w.set_table(a, &table);
        assert_eq!(w.recv(b, Endpoint::ANY), Outcome::Blocked);
        assert_eq!(w.entry(a, 1).flags, VALID | DONE | FAILED);
        assert_eq!(w.entry(a, 1).result, Error::InvalidArgument as u32);
        assert_eq!(w.t.pending_async_senders(b), 0);
    }

    #[test]
    fn send_async_delivers_to_a_waiting_receiver() {
        let mut w = World::new();
        let [(a, ea), (b, eb)] = w.spawn_n();
        assert_eq!(w.recv(b, Endpoint::ANY), Outcome::Blocked);
        w.set_table(a, &[async_entry(eb, VALID, 31)]);
        assert_eq!(w.send_async(a, 1), Ok(0));
        assert_eq!(w.unblocks(), [(b, Ok(0))]);
        assert_eq!(w.entry(a, 0).flags, VALID | DONE);
        assert_eq!(w.entry(a, 0).result, 0);
        assert_eq!((w.inbox(b).source, w.inbox(b).kind), (ea, 31));
        assert_eq!(w.t.pending_async_senders(b), 0);
        assert_eq!(registered(w.t.async_table(a)), (table_of(a), 1));
    }

    #[test]
    fn send_async_pending_then_received_in_table_order() {
        let mut w = World::new();
        let [(a, ea), (b, eb), (c, ec)] = w.spawn_n();
        w.set_table(
            a,
            &[
                async_entry(eb, VALID, 1),
                async_entry(ec, 0, 2), // not VALID: ignored
                async_entry(eb, VALID | NO_REPLY, 3),
                async_entry(eb, VALID | DONE, 4), // already DONE: ignored
                async_entry(ec, VALID, 5),
            ],
        );
        assert_eq!(w.send_async(a, 5), Ok(0));
        assert_eq!(w.t.state(a), ThreadState::Ready, "send_async never blocks");
        assert!(w.unblocks().is_empty());
        assert_eq!(w.t.pending_async_senders(b), 1);
        assert_eq!(w.t.pending_async_senders(c), 1);
        assert_eq!(w.recv(b, Endpoint::ANY), DONE_OK);
        assert_eq!((w.inbox(b).source, w.inbox(b).kind), (ea, 1));
        assert_eq!(w.entry(a, 0).flags, VALID | DONE);
        assert_eq!(w.recv(b, ea), DONE_OK, "from a specific sender too");
        assert_eq!(
            w.inbox(b).kind,
            3,
            "NO_REPLY is received by a plain receive"
        );
        assert_eq!(w.entry(a, 2).flags, VALID | NO_REPLY | DONE);
        assert_eq!(w.recv(b, Endpoint::ANY), Outcome::Blocked);
        assert_eq!(
            w.t.pending_async_senders(b),
            0,
            "exhausted table clears the bit"
        );
        assert_eq!(w.entry(a, 1).flags, 0);
        assert_eq!(w.entry(a, 3).flags, VALID | DONE);
        // Async messages come after notifications and queued senders.
        let (d, _) = w.spawn(1);
        w.load(d, 6, 0);
        assert_eq!(w.t.notify(&mut w.env, d, ec), Ok(0));
        assert_eq!(w.send(d, ec), Outcome::Blocked);
        assert_eq!(w.recv(c, Endpoint::ANY), DONE_OK);
        assert!(w.inbox(c).is_notification());
        assert_eq!(w.recv(c, Endpoint::ANY), DONE_OK);
        assert_eq!(w.inbox(c).kind, 6);
        assert_eq!(w.recv(c, Endpoint::ANY), DONE_OK);
        assert_eq!(w.inbox(c).kind, 5);
        assert_eq!(w.entry(a, 4).flags, VALID | DONE);
    }

    #[test]
    fn async_no_reply_does_not_satisfy_awaiting_reply() {
        let mut w = World::new();
        let [(client, ec), (server, es)] = w.spawn_n();
        // The client's request is taken, then the server answers asynchronously.
        w.load(client, 1, 0);
        assert_eq!(w.sendrec(client, es), Outcome::Blocked);
        assert_eq!(w.recv(server, Endpoint::ANY), DONE_OK);
        assert_eq!(w.t.state(client), ThreadState::AwaitingReply { from: es });
        w.set_table(server, &[async_entry(ec, VALID | NO_REPLY, 50)]);
        assert_eq!(w.send_async(server, 1), Ok(0));
        assert!(w.unblocks().is_empty());
        assert_eq!(w.t.state(client), ThreadState::AwaitingReply { from: es });
        assert_eq!(w.entry(server, 0).flags, VALID | NO_REPLY);
        assert_eq!(w.t.pending_async_senders(client), 1);
        // Now a real reply, also async and in a new table (the old one is replaced).
        w.set_table(
            server,
            &[
                async_entry(ec, VALID | NO_REPLY, 50),
                async_entry(ec, VALID, 51),
            ],
        );
        assert_eq!(w.send_async(server, 2), Ok(0));
        assert_eq!(w.unblocks(), [(client, Ok(0))]);
        assert_eq!(w.inbox(client).kind, 51);
        assert_eq!(w.entry(server, 0).flags, VALID | NO_REPLY);
        assert_eq!(w.entry(server, 1).flags, VALID | DONE);
        // The NO_REPLY message is received by a later receive.
        assert_eq!(w.recv(client, Endpoint::ANY), DONE_OK);
        assert_eq!((w.inbox(client).source, w.inbox(client).kind), (es, 50));
        assert_eq!(w.entry(server, 0).flags, VALID | NO_REPLY | DONE);
    }

    #[test]
    fn pending_async_reply_is_taken_when_entering_awaiting_reply() {
        // Immediate send_receive: the partner's async reply is already pending.
        let mut w = World::new();
        let [(client, ec), (server, es)] = w.spawn_n();
        w.set_table(
            server,
            &[
                async_entry(ec, VALID | NO_REPLY, 60),
                async_entry(ec, VALID, 61),
            ],
        );
        assert_eq!(w.send_async(server, 2), Ok(0));
        assert_eq!(w.recv(server, Endpoint::ANY), Outcome::Blocked);
        w.load(client, 1, 0);
        assert_eq!(w.sendrec(client, es), DONE_OK);
        assert_eq!(w.unblocks(), [(server, Ok(0))]);
        assert_eq!(w.inbox(client).kind, 61);
        assert_eq!(w.t.state(client), ThreadState::Ready);
        assert_eq!(w.entry(server, 0).flags, VALID | NO_REPLY);

        // Queued send_receive: the receiver itself has an async reply pending for it.
        let mut w = World::new();
        let [(client, ec), (server, es)] = w.spawn_n();
        w.load(client, 1, 0);
        assert_eq!(w.sendrec(client, es), Outcome::Blocked);
        w.set_table(server, &[async_entry(ec, VALID, 62)]);
        assert_eq!(w.send_async(server, 1), Ok(0));
        assert!(w.unblocks().is_empty(), "client is sending, not receiving");
        assert_eq!(w.recv(server, Endpoint::ANY), DONE_OK);
        assert_eq!(w.unblocks(), [(client, Ok(0))]);
        assert_eq!(w.inbox(client).kind, 62);
        assert_eq!(w.t.state(client), ThreadState::Ready);
    }

    #[test]
    fn async_without_no_reply_satisfies_awaiting_reply() {
        let mut w = World::new();
        let [(client, ec), (server, es)] = w.spawn_n();
        assert_eq!(w.recv(server, Endpoint::ANY), Outcome::Blocked);
        w.load(client, 1, 0);
        assert_eq!(w.sendrec(client, es), Outcome::Blocked);
        w.unblocks();
        w.set_table(server, &[async_entry(ec, VALID, 70)]);
        assert_eq!(w.send_async(server, 1), Ok(0));
        assert_eq!(w.unblocks(), [(client, Ok(0))]);
        assert_eq!((w.inbox(client).source, w.inbox(client).kind), (es, 70));
        assert_eq!(w.entry(server, 0).flags, VALID | DONE);
    }

    #[test]
    fn send_async_argument_and_table_errors() {
        let mut w = World::new();
        let [(a, _), (b, eb)] = w.spawn_n();
        assert_eq!(
            w.send_async(a, MAX_ASYNC_ENTRIES + 1),
            Err(Error::InvalidArgument)
        );
        assert_eq!(
            w.t.send_async(&mut w.env, a, UserSlice::new(BAD.address(), 1).unwrap()),
            Err(Error::Fault)
        );
        // Table shorter than count: reading past its end faults.
        w.set_table(a, &[async_entry(eb, VALID, 1)]);
        assert_eq!(w.recv(b, Endpoint::ANY), Outcome::Blocked);
        let before = w.t.clone();
        assert_eq!(w.send_async(a, 2), Err(Error::Fault));
        assert!(w.t == before);
        assert_eq!(w.entry(a, 0).flags, VALID);
        // Read-only table: Fault before anything is delivered.
        w.env.read_only.insert((a, table_of(a)));
        assert_eq!(w.send_async(a, 1), Err(Error::Fault));
        assert!(w.t == before);
        assert!(w.unblocks().is_empty());
        w.env.read_only.clear();
        assert_eq!(w.send_async(a, 1), Ok(0));
        assert_eq!(w.unblocks(), [(b, Ok(0))]);
        // count 0 records an empty table.
        assert_eq!(w.send_async(a, 0), Ok(0));
        assert_eq!(registered(w.t.async_table(a)), (table_of(a), 0));
        // A full table is fine.
        let full: Vec<_> = (0..MAX_ASYNC_ENTRIES)
            .map(|i| async_entry(eb, VALID, i as u32))
            .collect();
        w.set_table(a, &full);
        assert_eq!(w.send_async(a, MAX_ASYNC_ENTRIES), Ok(0));
        for i in 0..MAX_ASYNC_ENTRIES {
            assert_eq!(w.recv(b, Endpoint::ANY), DONE_OK);
            assert_eq!(w.inbox(b).kind, i as u32);
        }
        assert_eq!(w.recv(b, Endpoint::ANY), Outcome::Blocked);
    }

    #[test]
    fn async_table_that_faults_later_is_dropped() {
        let mut w = World::new();
        let [(a, _), (b, eb)] = w.spawn_n();
        w.set_table(a, &[async_entry(eb, VALID, 1)]);
        assert_eq!(w.send_async(a, 1), Ok(0));
        assert_eq!(w.t.pending_async_senders(b), 1);
        w.env.bad.insert((a, table_of(a)));
        assert_eq!(w.recv(b, Endpoint::ANY), Outcome::Blocked);
        assert_eq!(w.t.pending_async_senders(b), 0);
        assert!(w.unblocks().is_empty());
    }

    #[test]
    fn async_receiver_buffer_fault_keeps_the_entry() {
        let mut w = World::new();
        let [(a, _), (b, eb)] = w.spawn_n();
        w.set_table(a, &[async_entry(eb, VALID, 1)]);
        assert_eq!(w.send_async(a, 1), Ok(0));
        assert_eq!(
            w.t.receive(&mut w.env, b, Endpoint::ANY, RO),
            err(Error::Fault)
        );
        assert_eq!(w.entry(a, 0).flags, VALID);
        assert_eq!(w.recv(b, Endpoint::ANY), DONE_OK);
        assert_eq!(w.entry(a, 0).flags, VALID | DONE);
    }

    // ----- Deadlock -----

    #[test]
    fn two_cycle_of_senders_is_refused() {
        let mut w = World::new();
        let [(a, ea), (b, eb)] = w.spawn_n();
        w.load(a, 1, 0);
        w.load(b, 2, 0);
        assert_eq!(w.send(a, eb), Outcome::Blocked);
        let before = w.t.clone();
        assert_eq!(w.send(b, ea), err(Error::Deadlock));
        assert_eq!(w.sendrec(b, ea), err(Error::Deadlock));
        assert!(w.t == before);
        assert_eq!(w.t.state(b), ThreadState::Ready);
        assert_eq!(Error::Deadlock.name(), "ELOCKED");
    }

    #[test]
    fn three_cycle_of_senders_is_refused() {
        let mut w = World::new();
        let [(a, ea), (b, eb), (c, ec)] = w.spawn_n();
        w.load(a, 1, 0);
        w.load(b, 1, 0);
        w.load(c, 1, 0);
        assert_eq!(w.send(a, eb), Outcome::Blocked);
        assert_eq!(w.sendrec(b, ec), Outcome::Blocked);
        let before = w.t.clone();
        assert_eq!(w.send(c, ea), err(Error::Deadlock));
        assert!(w.t == before);
    }

    #[test]
    fn chain_of_senders_is_not_a_deadlock() {
        let mut w = World::new();
        let [(a, _), (b, eb), (c, ec), (d, ed)] = w.spawn_n();
        for s in [a, b, c, d] {
            w.load(s, 1, 0);
        }
        assert_eq!(w.send(a, eb), Outcome::Blocked);
        assert_eq!(w.send(b, ec), Outcome::Blocked);
        assert_eq!(w.send(d, ec), Outcome::Blocked);
        // c sends to someone outside the chain: fine.
        let (e, ee) = w.spawn(1);
        assert_eq!(w.send(c, ee), Outcome::Blocked);
        // e sending to d (who sends to c, who sends to e) would be a cycle.
        w.load(e, 1, 0);
        assert_eq!(w.send(e, ed), err(Error::Deadlock));
        // A receiver-side wait is not a sending edge: no false positive.
        let (f, ef) = w.spawn(1);
        assert_eq!(w.recv(f, ee), Outcome::Blocked);
        let _ = ef;
        let (g, _) = w.spawn(1);
        w.load(g, 1, 0);
        assert_eq!(w.send(g, eb), Outcome::Blocked);
    }

    // ----- Exit and join -----

    #[test]
    fn exit_fails_partners_and_cleans_up() {
        let mut w = World::new();
        let [(x, ex), (s1, _), (s2, _), (r1, _), (r2, _), (client, _), (m, _), (y, ey)] =
            w.spawn_n();
        for s in [s1, s2, client, x] {
            w.load(s, 1, 0);
        }
        // client awaits x's reply.
        assert_eq!(w.recv(x, Endpoint::ANY), Outcome::Blocked);
        assert_eq!(w.sendrec(client, ex), Outcome::Blocked);
        assert_eq!(w.unblocks(), [(x, Ok(0))]);
        assert_eq!(w.send(s1, ex), Outcome::Blocked);
        assert_eq!(w.sendrec(s2, ex), Outcome::Blocked);
        assert_eq!(w.recv(r1, ex), Outcome::Blocked);
        assert_eq!(w.recv(r2, Endpoint::ANY), Outcome::Blocked);
        assert_eq!(w.t.mutex_wait(m, word(0x40), ex), Outcome::Blocked);
        // x is itself queued on y behind another sender; it has notifications pending at y
        // and notifications pending for it.
        assert_eq!(w.t.notify(&mut w.env, x, ey), Ok(0));
        assert_eq!(w.t.notify(&mut w.env, y, ex), Ok(0));
        w.t.notify_from_kernel(&mut w.env, KernelSource::Clock, x);
        let (z, _) = w.spawn(1);
        w.load(z, 1, 0);
        assert_eq!(w.send(z, ey), Outcome::Blocked);
        assert_eq!(w.send(x, ey), Outcome::Blocked);
        let (z2, _) = w.spawn(1);
        w.load(z2, 1, 0);
        assert_eq!(w.send(z2, ey), Outcome::Blocked);
        assert_eq!(w.t.senders(y).collect::<Vec<_>>(), [z, x, z2]);

        w.t.exit(&mut w.env, x, 17);
        let mut got = w.unblocks();
        got.sort_by_key(|&(s, _)| s);
        assert_eq!(
            got,
            [
                (s1, Err(Error::DeadEndpoint)),
                (s2, Err(Error::DeadEndpoint)),
                (r1, Err(Error::PartnerDied)),
                (client, Err(Error::PartnerDied)),
            ]
        );
        for s in [s1, s2, r1, client] {
            assert_eq!(w.t.state(s), ThreadState::Ready);
        }
        assert_eq!(
            w.t.state(r2),
            ThreadState::Receiving {
                from: Endpoint::ANY
            }
        );
        assert_eq!(
            w.t.state(m),
            ThreadState::Mutex {
                address: 0x40,
                owner: ex
            }
        );
        assert_eq!(w.t.state(x), ThreadState::Dead { exit_code: 17 });
        assert_eq!(w.t.senders(x).count(), 0);
        assert_eq!(w.t.senders(y).collect::<Vec<_>>(), [z, z2]);
        assert_eq!(w.t.pending_notifications(y), 0, "x's notification dropped");
        assert_eq!(w.t.pending_notifications(x), 0);
        // Dead endpoints are refused.
        assert_eq!(w.send(s1, ex), err(Error::DeadEndpoint));
        assert_eq!(w.t.notify(&mut w.env, s1, ex), Err(Error::DeadEndpoint));
        // Exiting twice is ignored.
        w.t.exit(&mut w.env, x, 99);
        assert_eq!(w.t.state(x), ThreadState::Dead { exit_code: 17 });
    }

    #[test]
    fn exit_drops_async_messages_both_ways() {
        let mut w = World::new();
        let [(x, ex), (a, _), (b, eb)] = w.spawn_n();
        // x has an async message pending at b; a has one pending at x.
        w.set_table(x, &[async_entry(eb, VALID, 1)]);
        assert_eq!(w.send_async(x, 1), Ok(0));
        w.set_table(a, &[async_entry(ex, VALID, 2), async_entry(eb, VALID, 3)]);
        assert_eq!(w.send_async(a, 2), Ok(0));
        assert_eq!(w.t.pending_async_senders(b), 2);
        w.t.exit(&mut w.env, x, 0);
        assert_eq!(w.t.pending_async_senders(b), 1);
        assert_eq!(w.t.pending_async_senders(x), 0);
        assert_eq!(registered(w.t.async_table(x)), (0, 0));
        assert_eq!(w.entry(a, 0).flags, VALID | DONE | FAILED);
        assert_eq!(w.entry(a, 0).result, Error::DeadEndpoint as u32);
        assert_eq!(w.recv(b, Endpoint::ANY), DONE_OK);
        assert_eq!(w.inbox(b).kind, 3);
    }

    #[test]
    fn join_before_exit() {
        let mut w = World::new();
        let [(j, _), (t, et)] = w.spawn_n();
        assert_eq!(w.t.join(j, et), Outcome::Blocked);
        assert_eq!(w.t.state(j), ThreadState::Joining { thread: et });
        w.t.exit(&mut w.env, t, 5);
        assert_eq!(w.unblocks(), [(j, Ok(5))]);
        assert_eq!(w.t.state(j), ThreadState::Ready);
        assert_eq!(w.t.state(t), ThreadState::Free, "joined: freed");
        assert_eq!(w.t.join(j, et), err(Error::DeadEndpoint));
    }

    #[test]
    fn join_after_exit_and_join_errors() {
        let mut w = World::new();
        let [(j, ej), (t, et)] = w.spawn_n();
        w.t.exit(&mut w.env, t, 6);
        assert!(w.unblocks().is_empty());
        assert_eq!(w.t.join(j, et), Outcome::Complete(Ok(6)));
        assert_eq!(w.t.state(t), ThreadState::Free);
        assert_eq!(w.t.join(j, et), err(Error::DeadEndpoint));
        assert_eq!(w.t.join(j, ej), err(Error::SelfTarget));
        assert_eq!(w.t.join(j, Endpoint::ANY), err(Error::BadEndpoint));
        assert_eq!(
            w.t.join(j, Endpoint::new(MAX_THREADS as u16, 0)),
            err(Error::BadEndpoint)
        );
        assert_eq!(w.t.join(j, Endpoint::new(30, 0)), err(Error::DeadEndpoint));
        assert_eq!(w.t.state(j), ThreadState::Ready);
    }

    #[test]
    fn several_joiners_all_get_the_exit_code() {
        let mut w = World::new();
        let [(j1, _), (j2, _), (t, et)] = w.spawn_n();
        assert_eq!(w.t.join(j1, et), Outcome::Blocked);
        assert_eq!(w.t.join(j2, et), Outcome::Blocked);
        w.t.exit(&mut w.env, t, 8);
        assert_eq!(w.unblocks(), [(j1, Ok(8)), (j2, Ok(8))]);
        assert_eq!(w.t.state(t), ThreadState::Free);
    }

    #[test]
    fn stale_endpoints_after_slot_reuse() {
        let mut w = World::new();
        let [(a, _), (b, eb)] = w.spawn_n();
        w.t.exit(&mut w.env, b, 0);
        w.t.free(b);
        let (b2, eb2) = w.spawn(1);
        assert_eq!(b2, b);
        assert_ne!(eb2, eb);
        w.load(a, 1, 0);
        assert_eq!(w.send(a, eb), err(Error::DeadEndpoint));
        assert_eq!(w.t.notify(&mut w.env, a, eb), Err(Error::DeadEndpoint));
        assert_eq!(w.recv(a, eb), err(Error::DeadEndpoint));
        assert_eq!(w.t.join(a, eb), err(Error::DeadEndpoint));
        assert_eq!(w.t.resolve(eb), Err(Error::DeadEndpoint));
        assert_eq!(w.send(a, eb2), Outcome::Blocked);
    }

    #[test]
    #[should_panic]
    fn free_of_a_live_slot_panics_in_debug() {
        let mut w = World::new();
        let (a, _) = w.spawn(1);
        w.t.free(a);
    }

    // ----- Mutex and sleep -----

    #[test]
    fn mutex_waiters_wake_in_fifo_order() {
        let mut w = World::new();
        let (owner, eo) = w.spawn(1);
        let (w1, _) = w.spawn(1);
        let (w2, _) = w.spawn(1);
        let (w3, _) = w.spawn(1);
        let (other_address, _) = w.spawn(1);
        let (other_process, _) = w.spawn(2);
        for s in [w2, w1, w3] {
            assert_eq!(w.t.mutex_wait(s, word(0x100), eo), Outcome::Blocked);
        }
        assert_eq!(
            w.t.mutex_wait(other_address, word(0x200), eo),
            Outcome::Blocked
        );
        assert_eq!(
            w.t.mutex_wait(other_process, word(0x100), eo),
            Outcome::Blocked
        );
        assert_eq!(
            w.t.state(w1),
            ThreadState::Mutex {
                address: 0x100,
                owner: eo
            }
        );
        for s in [w2, w1, w3] {
            assert_eq!(w.t.mutex_wake(&mut w.env, owner, word(0x100)), 1);
            assert_eq!(w.unblocks(), [(s, Ok(0))]);
            assert_eq!(w.t.state(s), ThreadState::Ready);
        }
        assert_eq!(w.t.mutex_wake(&mut w.env, owner, word(0x100)), 0);
        assert!(w.unblocks().is_empty());
        // A re-wait goes to the back.
        assert_eq!(w.t.mutex_wait(w1, word(0x200), eo), Outcome::Blocked);
        assert_eq!(w.t.mutex_wake(&mut w.env, w2, word(0x200)), 1);
        assert_eq!(w.unblocks(), [(other_address, Ok(0))]);
        assert_eq!(w.t.mutex_wake(&mut w.env, other_process, word(0x100)), 1);
        assert_eq!(w.unblocks(), [(other_process, Ok(0))]);
    }

    #[test]
    fn interrupt_cancels_interruptible_waits_and_spares_the_signaller() {
        let mut w = World::new();
        let [(server, es), (sender, _), (client, _), (receiver, _), (m, _), (sleeper, _), (pm, epm)] =
            w.spawn_n();
        for s in [sender, client] {
            w.load(s, 1, 0);
        }
        assert_eq!(w.send(sender, es), Outcome::Blocked);
        assert_eq!(w.sendrec(client, epm), Outcome::Blocked);
        assert_eq!(w.recv(receiver, Endpoint::ANY), Outcome::Blocked);
        assert_eq!(w.t.mutex_wait(m, word(0x40), es), Outcome::Blocked);
        assert_eq!(w.t.sleep(sleeper, 1000), Outcome::Blocked);
        // A wait on the signaller itself is spared: its reply ends it.
        assert!(!w.t.interrupt(&mut w.env, client, epm));
        assert_eq!(w.t.state(client), ThreadState::Sending { to: epm });
        for t in [sender, receiver, m, sleeper] {
            assert!(w.t.interrupt(&mut w.env, t, epm));
            assert_eq!(w.t.state(t), ThreadState::Ready);
        }
        assert_eq!(
            w.unblocks(),
            [
                (sender, Err(Error::Interrupted)),
                (receiver, Err(Error::Interrupted)),
                (m, Err(Error::Interrupted)),
                (sleeper, Err(Error::Interrupted)),
            ]
        );
        // The cancelled sender left the server's queue: the server's receive blocks.
        assert_eq!(w.t.senders(server).count(), 0);
        assert_eq!(w.recv(server, Endpoint::ANY), Outcome::Blocked);
        // Ready, running or server threads are not interrupted.
        assert!(!w.t.interrupt(&mut w.env, sender, epm));
        assert!(!w.t.interrupt(&mut w.env, pm, Endpoint::NONE));
    }

    #[test]
    fn a_tracer_waits_for_its_tracee_until_a_stop_its_exit_or_a_signal() {
        let mut w = World::new();
        let [(tracer, _), (tracee, et), (other, _)] = w.spawn_n();
        // A stop of that pid ends the wait with the stop's result; another pid's does not.
        assert_eq!(w.t.wait_for_tracee(tracer, et, 7), Outcome::Blocked);
        assert_eq!(
            w.t.state(tracer),
            ThreadState::WaitingForTracee { tracee: et, pid: 7 }
        );
        assert_eq!(w.t.state(tracer).waits_on(), Some(et));
        assert!(!w.t.end_tracee_wait(&mut w.env, tracer, 8, Ok(0)));
        assert!(!w.t.end_tracee_wait(&mut w.env, other, 7, Ok(0)));
        assert!(w
            .t
            .end_tracee_wait(&mut w.env, tracer, 7, Ok(direct::STOPPED)));
        assert!(!w.t.end_tracee_wait(&mut w.env, tracer, 7, Ok(0)));
        // A signal: the tracer asks PM.
        assert_eq!(w.t.wait_for_tracee(tracer, et, 7), Outcome::Blocked);
        assert!(w.t.interrupt(&mut w.env, tracer, Endpoint::NONE));
        // The tracee's exit: likewise; it leaves no wait behind.
        assert_eq!(w.t.wait_for_tracee(tracer, et, 7), Outcome::Blocked);
        w.t.exit(&mut w.env, tracee, 0);
        assert_eq!(w.t.state(tracer), ThreadState::Ready);
        assert_eq!(
            w.unblocks(),
            [
                (tracer, Ok(direct::STOPPED)),
                (tracer, Ok(direct::ASK_MANAGER)),
                (tracer, Ok(direct::ASK_MANAGER)),
            ]
        );
    }

    #[test]
    fn a_held_thread_waits_only_for_release() {
        let mut w = World::new();
        let [(t, _), (_, manager)] = w.spawn_n();
        w.t.hold_for_manager(t, manager, 13);
        assert_eq!(
            w.t.state(t),
            ThreadState::HeldForManager {
                manager,
                vector: 13
            }
        );
        assert!(!w.t.interrupt(&mut w.env, t, Endpoint::NONE));
        assert!(w.t.release_held(t));
        assert_eq!(w.t.state(t), ThreadState::Ready);
        assert!(!w.t.release_held(t));
    }

    #[test]
    fn sleep_and_wake_sleeper() {
        let mut w = World::new();
        let [(a, _), (b, _)] = w.spawn_n();
        assert_eq!(w.t.sleep(a, 500), Outcome::Blocked);
        assert_eq!(w.t.state(a), ThreadState::Sleeping { until_ns: 500 });
        w.t.wake_sleeper(&mut w.env, a);
        assert_eq!(w.unblocks(), [(a, Ok(0))]);
        assert_eq!(w.t.state(a), ThreadState::Ready);
        // Not sleeping: ignored.
        w.t.wake_sleeper(&mut w.env, a);
        assert_eq!(w.recv(b, Endpoint::ANY), Outcome::Blocked);
        w.t.wake_sleeper(&mut w.env, b);
        assert!(w.unblocks().is_empty());
        w.t.wake_sleeper(&mut w.env, ts(40));
        assert!(w.unblocks().is_empty());
    }

    // ----- Property tests -----

    /// Threads used by the property tests.
    const THREADS: u8 = 6;

    #[derive(Clone, Copy, Debug)]
    enum Target {
        Thread(u8),
        Stale(u8),
        Any,
        Clock,
        Kernel,
        OutOfRange,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Buf {
        Good,
        Bad,
        ReadOnly,
    }

    #[derive(Clone, Debug)]
    enum Op {
        Create(u16),
        Send(u8, Target, Buf),
        SendReceive(u8, Target, Buf),
        SendNonBlocking(u8, Target, Buf),
        Receive(u8, Target, Buf),
        Notify(u8, Target),
        Clock(u8),
        Async(u8, Vec<(Target, bool, bool)>, bool),
        MutexWait(u8, u8),
        MutexWake(u8, u8),
        Sleep(u8),
        WakeSleeper(u8),
        Join(u8, Target),
        Exit(u8, u8),
        Free(u8),
        Run(u8),
        Yield(u8),
        /// RS's service-endpoint calls (`service.rs`): not made by a thread of the table.
        Keep(u8),
        TakeOver(Target, Target),
        Release(Target),
        Swap(Target, Target),
        /// A takeover of the `n`-th tombstone by the `m`-th thread receiving from ANY,
        /// and a swap of two such threads: the calls that can succeed, which random
        /// targets rarely name.
        TakeOverLikely(u8, u8),
        SwapLikely(u8, u8),
    }

    fn target() -> impl Strategy<Value = Target> {
        prop_oneof![
            8 => (0..THREADS).prop_map(Target::Thread),
            1 => (0..THREADS).prop_map(Target::Stale),
            3 => Just(Target::Any),
            1 => Just(Target::Clock),
            1 => Just(Target::Kernel),
            1 => Just(Target::OutOfRange),
        ]
    }

    fn buffer() -> impl Strategy<Value = Buf> {
        prop_oneof![10 => Just(Buf::Good), 1 => Just(Buf::Bad), 1 => Just(Buf::ReadOnly)]
    }

    fn op() -> impl Strategy<Value = Op> {
        let t = || 0..THREADS;
        prop_oneof![
            2 => (1u16..3).prop_map(Op::Create),
            6 => (t(), target(), buffer()).prop_map(|(a, b, c)| Op::Send(a, b, c)),
            4 => (t(), target(), buffer()).prop_map(|(a, b, c)| Op::SendReceive(a, b, c)),
            2 => (t(), target(), buffer()).prop_map(|(a, b, c)| Op::SendNonBlocking(a, b, c)),
            10 => (t(), target(), buffer()).prop_map(|(a, b, c)| Op::Receive(a, b, c)),
            3 => (t(), target()).prop_map(|(a, b)| Op::Notify(a, b)),
            3 => t().prop_map(Op::Clock),
            3 => (
                t(),
                proptest::collection::vec((target(), any::<bool>(), any::<bool>()), 0..4),
                proptest::bool::weighted(0.1),
            )
                .prop_map(|(a, b, c)| Op::Async(a, b, c)),
            1 => (t(), 0u8..2).prop_map(|(a, b)| Op::MutexWait(a, b)),
            3 => (t(), 0u8..2).prop_map(|(a, b)| Op::MutexWake(a, b)),
            1 => t().prop_map(Op::Sleep),
            3 => t().prop_map(Op::WakeSleeper),
            1 => (t(), target()).prop_map(|(a, b)| Op::Join(a, b)),
            1 => (t(), any::<u8>()).prop_map(|(a, b)| Op::Exit(a, b)),
            1 => t().prop_map(Op::Free),
            2 => t().prop_map(Op::Run),
            1 => t().prop_map(Op::Yield),
            2 => t().prop_map(Op::Keep),
            3 => (target(), target()).prop_map(|(a, b)| Op::TakeOver(a, b)),
            1 => target().prop_map(Op::Release),
            1 => (target(), target()).prop_map(|(a, b)| Op::Swap(a, b)),
            3 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::TakeOverLikely(a, b)),
            1 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::SwapLikely(a, b)),
        ]
    }

    fn service_op() -> impl Strategy<Value = Op> {
        let t = || 0..THREADS;
        prop_oneof![
            8 => op(),
            2 => t().prop_map(Op::Keep),
            2 => (t(), any::<u8>()).prop_map(|(a, b)| Op::Exit(a, b)),
            1 => (1u16..3).prop_map(Op::Create),
            3 => t().prop_map(|a| Op::Receive(a, Target::Any, Buf::Good)),
            3 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::TakeOverLikely(a, b)),
            1 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::SwapLikely(a, b)),
            1 => t().prop_map(|a| Op::Release(Target::Thread(a))),
        ]
    }

    fn endpoint_of(t: &ThreadTable, target: Target) -> Endpoint {
        match target {
            Target::Thread(i) => t.endpoint(ts(u16::from(i))),
            Target::Stale(i) => {
                let e = t.endpoint(ts(u16::from(i)));
                Endpoint::new(e.slot(), e.generation().wrapping_sub(1))
            }
            Target::Any => Endpoint::ANY,
            Target::Clock => Endpoint::CLOCK,
            Target::Kernel => Endpoint::KERNEL,
            Target::OutOfRange => Endpoint::new(MAX_THREADS as u16 + 2, 1),
        }
    }

    fn address(b: Buf, slot: ThreadSlot) -> UserPtr<Message> {
        match b {
            Buf::Good => buf(slot),
            Buf::Bad => BAD,
            Buf::ReadOnly => RO,
        }
    }

    /// A pending async message `sender` → `receiver` that is deliverable now (VALID,
    /// !DONE, addressed to its current endpoint, and not NO_REPLY if `in_reply`).
    fn deliverable_async(
        t: &ThreadTable,
        env: &TestEnv,
        sender: ThreadSlot,
        receiver: ThreadSlot,
        in_reply: bool,
    ) -> bool {
        let (table, count) = registered(t.async_table(sender));
        env.entries(sender, table).iter().take(count).any(|e| {
            e.flags & VALID != 0
                && e.flags & DONE == 0
                && e.destination == t.endpoint(receiver)
                && !(in_reply && e.flags & NO_REPLY != 0)
        })
    }

    fn check_invariants(t: &ThreadTable, env: &TestEnv) {
        // The pending bitmaps' summaries are exact after every step.
        assert_eq!(t.inexact_pending_summary(), None);
        // The count of slots in use is exact, and the encoded scan sees every one of them.
        let in_use = t.slots.iter().filter(|s| s.kind != kind::FREE).count();
        assert_eq!(t.slots_in_use(), in_use);
        let encoded: Vec<ThreadSlot> = t.encoded_threads().map(|(slot, _)| slot).collect();
        let listed: Vec<ThreadSlot> = t.threads().map(|(slot, _)| slot).collect();
        assert_eq!(encoded, listed);
        let mut queued = [0u32; MAX_THREADS];
        for d in ThreadSlot::all() {
            let slot = &t.slots[d.index()];
            let senders: Vec<ThreadSlot> = t.senders(d).collect();
            assert!(senders.len() < MAX_THREADS, "queue of {d} is cyclic");
            assert_eq!(
                unlink(slot.queue_tail),
                senders.last().copied(),
                "tail of {d}"
            );
            // The fast paths' one-word test agrees with the fields it stands for.
            assert_eq!(
                slot.nothing_queued(),
                slot.clock_pending == 0 && senders.is_empty(),
                "nothing_queued of {d}"
            );
            for &s in &senders {
                queued[s.index()] += 1;
                assert_eq!(
                    t.state(s),
                    ThreadState::Sending { to: t.endpoint(d) },
                    "{s} queued on {d}"
                );
            }
            if slot.kind == kind::RESTARTING {
                // A restart tombstone keeps its queue and what is pending for it, nothing
                // of its own.
                assert_ne!(slot.keep_endpoint, 0, "unmarked tombstone {d}");
                assert_eq!(slot.clock_pending, 0);
                assert_eq!(slot.async_table.len(), 0);
            } else if !slot.is_live() {
                assert!(senders.is_empty(), "queue on non-live {d}");
                assert_eq!(slot.pending_notify, SlotBitmap::EMPTY);
                assert_eq!(slot.pending_async, SlotBitmap::EMPTY);
                assert_eq!(slot.clock_pending, 0);
                assert_eq!(slot.async_table.len(), 0);
                continue;
            }
            let mut next = 0;
            while let Some(src) = bit_next(&slot.pending_notify, next) {
                next = src.index() + 1;
                assert!(t.slots[src.index()].is_live(), "notify bit of dead {src}");
                assert_ne!(src, d);
            }
            let mut next = 0;
            while let Some(src) = bit_next(&slot.pending_async, next) {
                next = src.index() + 1;
                assert!(t.slots[src.index()].is_live(), "async bit of dead {src}");
                assert_ne!(src, d);
            }
            // Every undelivered async entry of d is pending at a live destination.
            let (table, count) = registered(t.async_table(d));
            for e in env.entries(d, table).iter().take(count) {
                if e.flags & VALID != 0 && e.flags & DONE == 0 {
                    let r = t
                        .resolve(e.destination)
                        .or_else(|_| t.tombstone(e.destination))
                        .expect("undelivered entry to a dead thread");
                    assert!(
                        bit_test(&t.slots[r.index()].pending_async, d),
                        "entry {d} → {r} not pending"
                    );
                }
            }
        }
        for s in ThreadSlot::all() {
            let slot = &t.slots[s.index()];
            let state = t.state(s);
            // The stored argument is the state's: the register fast path's commit relies on
            // it (none to clear for the four states it moves between).
            let (_, _, argument) = vigil_abi::introspect::encode_state(&state);
            if slot.kind != kind::RESTARTING && slot.kind != kind::FREE {
                assert_eq!(slot.arg1, argument, "{s}'s stored argument for {state:?}");
            }
            // A thread on or waiting for the CPU has no buffer, flags or mutex turn left from
            // its last wait (the commit relies on this too).
            if matches!(slot.kind, kind::READY | kind::RUNNING) {
                assert_eq!(slot.buffer, UserPtr::NULL, "{s} {state:?} keeps a buffer");
                assert_eq!(slot.flags, 0, "{s} {state:?} keeps flags");
                assert_eq!(slot.arg0, 0, "{s} {state:?} keeps a wait target");
            }
            if slot.is_live() && slot.kind != kind::MUTEX {
                assert_eq!(slot.wait_seq, 0, "{s} {state:?} keeps a mutex turn");
            }
            // The fast paths' one-compare endpoint check agrees with `resolve` for this
            // slot's endpoint and its near misses: other generations, the same index with
            // slot bits above the table, a special endpoint with these low bits.
            let expected_key = if slot.is_live() {
                live_key(slot.generation)
            } else {
                0
            };
            assert_eq!(slot.live_key, expected_key, "{s} {state:?}'s live key");
            let own = t.endpoint(s);
            for endpoint in [
                own,
                Endpoint::new(s.get(), slot.generation.wrapping_add(1)),
                Endpoint::new(s.get(), slot.generation.wrapping_sub(1)),
                Endpoint::new(s.get() + MAX_THREADS as u16, slot.generation),
                Endpoint(own.0 | 1 << 63),
                Endpoint(own.0 | 1 << 48),
                Endpoint::ANY,
                Endpoint::NONE,
            ] {
                // The definition `resolve_slot` stands for: a thread endpoint in range
                // naming a live slot of its generation.
                let reference = slot_of(endpoint).filter(|&d| {
                    let named = &t.slots[d.index()];
                    named.is_live() && named.generation == endpoint.generation()
                });
                assert_eq!(
                    t.resolve_slot(endpoint).map(|(d, _)| d),
                    reference,
                    "{s} {state:?}: resolve_slot({endpoint:?})"
                );
                let error = if slot_of(endpoint).is_some() {
                    Error::DeadEndpoint
                } else {
                    Error::BadEndpoint
                };
                assert_eq!(t.resolve(endpoint), reference.ok_or(error));
            }
            if let ThreadState::Sending { .. } = state {
                assert_eq!(queued[s.index()], 1, "{s} must be on exactly one queue");
            } else {
                assert_eq!(queued[s.index()], 0, "{s} queued while {state:?}");
                assert_eq!(slot.queue_next, NO_LINK);
            }
            match state {
                ThreadState::Sending { to } => {
                    assert_ne!(t.resolve(to), Ok(s));
                    assert!(
                        t.resolve(to).is_ok() || t.tombstone(to).is_ok(),
                        "{s} sends to dead {to:?}"
                    );
                    // No cycle of senders.
                    let mut current = to.slot();
                    for _ in 0..MAX_THREADS {
                        assert_ne!(current, s.get(), "deadlock cycle through {s}");
                        match t.state(ts(current)) {
                            ThreadState::Sending { to } => current = to.slot(),
                            _ => break,
                        }
                    }
                }
                ThreadState::Receiving { from } => {
                    if from != Endpoint::ANY && from != Endpoint::CLOCK && from != Endpoint::KERNEL
                    {
                        let p = t.resolve(from).expect("receiving from a dead thread");
                        assert_ne!(p, s);
                    }
                    assert!(
                        t.pending_notification(s, from).is_none(),
                        "{s} misses a notification"
                    );
                    for q in t.senders(s) {
                        assert!(!matches(from, t.endpoint(q)), "{s} misses sender {q}");
                    }
                    let mut next = 0;
                    while let Some(p) = bit_next(&slot.pending_async, next) {
                        next = p.index() + 1;
                        if matches(from, t.endpoint(p)) {
                            assert!(
                                !deliverable_async(t, env, p, s, false),
                                "{s} misses async from {p}"
                            );
                        }
                    }
                }
                ThreadState::AwaitingReply { from } => {
                    let p = t.resolve(from).expect("awaiting a dead thread");
                    assert_ne!(p, s);
                    assert!(t.senders(s).all(|q| q != p));
                    assert!(
                        !deliverable_async(t, env, p, s, true),
                        "{s} misses async reply"
                    );
                }
                ThreadState::Joining { thread } => {
                    assert!(t.resolve(thread).is_ok(), "joining a dead thread");
                }
                ThreadState::Free => {
                    assert_eq!(slot.process, ps(0));
                    assert_eq!(slot.async_table.len(), 0);
                }
                _ => {}
            }
        }
    }

    fn is_runnable(t: &ThreadTable, slot: ThreadSlot) -> bool {
        matches!(t.state(slot), ThreadState::Ready | ThreadState::Running)
    }

    /// Runs one operation if its caller can make it; returns the caller's outcome.
    fn apply(w: &mut World, op: &Op, step: u32) -> Option<(u16, Outcome)> {
        let t = &mut w.t;
        let env = &mut w.env;
        // The caller is the `pick`-th runnable thread (modulo their number).
        let caller_op = |pick: u8| -> Option<u16> {
            let runnable: Vec<u16> = (0..u16::from(THREADS))
                .filter(|&s| is_runnable(t, ts(s)))
                .collect();
            (!runnable.is_empty()).then(|| runnable[usize::from(pick) % runnable.len()])
        };
        match *op {
            Op::Create(process) => {
                if t.threads().count() < usize::from(THREADS) {
                    let e = t.create(ps(process)).unwrap();
                    assert!(e.slot() < u16::from(THREADS));
                }
                None
            }
            Op::Send(c, to, b) | Op::SendReceive(c, to, b) | Op::SendNonBlocking(c, to, b) => {
                let c = caller_op(c)?;
                let address = address(b, ts(c));
                if b == Buf::Good {
                    env.put(
                        ts(c),
                        address,
                        Message::with_payload(step, [step.into(); 6]),
                    );
                }
                let to = endpoint_of(t, to);
                Some((
                    c,
                    match op {
                        Op::Send(..) => t.send(env, ts(c), to, address),
                        Op::SendReceive(..) => t.send_receive(env, ts(c), to, address),
                        _ => Outcome::Complete(t.send_nonblocking(env, ts(c), to, address)),
                    },
                ))
            }
            Op::Receive(c, from, b) => {
                let c = caller_op(c)?;
                let from = endpoint_of(t, from);
                Some((c, t.receive(env, ts(c), from, address(b, ts(c)))))
            }
            Op::Notify(c, to) => {
                let c = caller_op(c)?;
                let to = endpoint_of(t, to);
                Some((c, Outcome::Complete(t.notify(env, ts(c), to))))
            }
            Op::Clock(d) => {
                if t.slots[usize::from(d)].is_live() {
                    t.notify_from_kernel(env, KernelSource::Clock, ts(d.into()));
                }
                None
            }
            Op::Async(c, ref entries, bad) => {
                let c = caller_op(c)?;
                let table = if bad { BAD.address() } else { table_of(ts(c)) };
                let entries: Vec<AsyncMessage> = entries
                    .iter()
                    .map(|&(to, valid, no_reply)| {
                        let flags =
                            if valid { VALID } else { 0 } | if no_reply { NO_REPLY } else { 0 };
                        async_entry(endpoint_of(t, to), flags, step)
                    })
                    .collect();
                let count = entries.len();
                env.tables.insert((ts(c), table), entries);
                let slice = UserSlice::new(table, count as u64).expect("test tables are in range");
                Some((c, Outcome::Complete(t.send_async(env, ts(c), slice))))
            }
            Op::MutexWait(c, a) => {
                let c = caller_op(c)?;
                let owner = t.endpoint(ts(u16::from(a)));
                Some((c, t.mutex_wait(ts(c), word(u64::from(a) * 4), owner)))
            }
            Op::MutexWake(c, a) => {
                let c = caller_op(c)?;
                let n = t.mutex_wake(env, ts(c), word(u64::from(a) * 4));
                Some((c, Outcome::Complete(Ok(n))))
            }
            Op::Sleep(c) => {
                let c = caller_op(c)?;
                Some((c, t.sleep(ts(c), 1000)))
            }
            Op::WakeSleeper(s) => {
                t.wake_sleeper(env, ts(s.into()));
                None
            }
            Op::Join(c, target) => {
                let c = caller_op(c)?;
                let target = endpoint_of(t, target);
                Some((c, t.join(ts(c), target)))
            }
            Op::Exit(s, code) => {
                t.exit(env, ts(s.into()), code.into());
                None
            }
            Op::Free(s) => {
                if matches!(t.state(ts(s.into())), ThreadState::Dead { .. }) {
                    t.free(ts(s.into()));
                }
                None
            }
            Op::Run(s) => {
                if t.state(ts(s.into())) == ThreadState::Ready {
                    t.mark_running(ts(s.into()));
                }
                None
            }
            Op::Yield(s) => {
                if t.state(ts(s.into())) == ThreadState::Running {
                    t.mark_ready(ts(s.into()));
                }
                None
            }
            Op::Keep(s) => {
                if t.slots[usize::from(s)].is_live() {
                    t.keep_endpoint(ts(s.into()));
                }
                None
            }
            Op::TakeOver(..) | Op::Swap(..) | Op::TakeOverLikely(..) | Op::SwapLikely(..) => {
                let in_state = |t: &ThreadTable, wanted: ThreadState, pick: u8| {
                    let found: Vec<Endpoint> = t
                        .threads()
                        .filter(|&(_, state)| state == wanted)
                        .map(|(slot, _)| t.endpoint(slot))
                        .collect();
                    (!found.is_empty()).then(|| found[usize::from(pick) % found.len()])
                };
                let receiving = ThreadState::Receiving {
                    from: Endpoint::ANY,
                };
                let (a, b) = match *op {
                    Op::TakeOver(a, b) | Op::Swap(a, b) => (endpoint_of(t, a), endpoint_of(t, b)),
                    Op::TakeOverLikely(a, b) => (
                        in_state(t, ThreadState::Restarting, a)?,
                        in_state(t, receiving, b)?,
                    ),
                    Op::SwapLikely(a, b) => {
                        (in_state(t, receiving, a)?, in_state(t, receiving, b)?)
                    }
                    _ => unreachable!("matched above"),
                };
                let before = t.clone();
                // The kernel moves a thread's memory (its process) with it before the
                // table's half runs; the test memory is per slot, so it is moved here.
                let result = match op {
                    Op::TakeOver(..) | Op::TakeOverLikely(..) => {
                        if let Ok((old, new)) = t.check_take_over(a, b) {
                            env.move_thread_memory(new, old, false);
                        }
                        t.take_over(env, a, b)
                    }
                    _ => {
                        if let Ok((first, second)) = t.check_swap(a, b) {
                            env.move_thread_memory(first, second, true);
                        }
                        t.swap_endpoints(a, b)
                    }
                };
                if result.is_err() {
                    assert!(
                        *t == before,
                        "{op:?} failed with {result:?} but changed state"
                    );
                    assert!(env.unblocks.is_empty());
                }
                None
            }
            Op::Release(a) => {
                let a = endpoint_of(t, a);
                let before = t.clone();
                if let Err(error) = t.release_tombstone(env, a) {
                    assert!(
                        *t == before,
                        "{op:?} failed with {error:?} but changed state"
                    );
                }
                None
            }
        }
    }

    fn run_ops(ops: &[Op]) {
        let mut w = World::new();
        w.env.denied.insert((ts(3), ts(0)));
        for process in [1, 1, 1, 2, 2, 2] {
            w.t.create(ps(process)).unwrap();
        }
        for (step, op) in ops.iter().enumerate() {
            let before = w.t.clone();
            let step = step as u32 + 1;
            let result = apply(&mut w, op, step);
            let unblocks = w.env.take_unblocks();
            let mut seen = HashSet::new();
            for &(s, _) in &unblocks {
                assert!(seen.insert(s), "{s} unblocked twice by {op:?}");
                // A takeover's replacement, blocked in its own slot before, may be
                // unblocked in the tombstone's (its receive is run again there).
                let took_over = matches!(op, Op::TakeOver(..) | Op::TakeOverLikely(..))
                    && before.state(s) == ThreadState::Restarting;
                assert!(
                    before.state(s).is_blocked() || took_over,
                    "{s} unblocked but was not blocked"
                );
                assert_eq!(
                    w.t.state(s),
                    ThreadState::Ready,
                    "{s} unblocked but not Ready"
                );
            }
            for s in 0..u16::from(THREADS) {
                let (old, new) = (before.state(ts(s)), w.t.state(ts(s)));
                let exited = matches!(op, Op::Exit(e, _) if u16::from(*e) == s);
                // A takeover frees the replacement's slot; a takeover or a swap renames
                // the partner of the waits on the threads it moves.
                let moved = matches!(
                    op,
                    Op::TakeOver(..) | Op::Swap(..) | Op::TakeOverLikely(..) | Op::SwapLikely(..)
                ) && (new == ThreadState::Free
                    || core::mem::discriminant(&old) == core::mem::discriminant(&new));
                let request_taken = matches!(
                    (old, new),
                    (ThreadState::Sending { to }, ThreadState::AwaitingReply { from }) if to == from
                );
                if old.is_blocked() && old != new && !exited && !request_taken && !moved {
                    assert!(
                        seen.contains(&ts(s)),
                        "{s} left {old:?} for {new:?} silently"
                    );
                }
            }
            if let Some((caller, outcome)) = result {
                assert!(!seen.contains(&ts(caller)), "caller {caller} unblocked");
                match outcome {
                    Outcome::Blocked => {
                        assert!(
                            w.t.state(ts(caller)).is_blocked(),
                            "{op:?} blocked but {:?}",
                            w.t.state(ts(caller))
                        );
                    }
                    Outcome::Complete(r) => {
                        assert_eq!(w.t.state(ts(caller)), before.state(ts(caller)), "{op:?}");
                        if r.is_err() {
                            assert!(w.t == before, "{op:?} failed with {r:?} but changed state");
                            assert!(unblocks.is_empty());
                        }
                    }
                }
            }
            check_invariants(&w.t, &w.env);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn random_operations_keep_the_invariants(ops in proptest::collection::vec(op(), 1..60)) {
            run_ops(&ops);
        }

        /// The same with marked threads exiting into tombstones, replacements receiving
        /// from ANY and taking them over, swaps and releases much more often.
        #[test]
        fn random_operations_with_restarts_keep_the_invariants(
            ops in proptest::collection::vec(service_op(), 1..80)
        ) {
            run_ops(&ops);
        }
    }
}
