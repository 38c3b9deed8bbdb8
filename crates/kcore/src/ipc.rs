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

use vigil_abi::async_message::AsyncMessage;
use vigil_abi::wait::ThreadState;
use vigil_abi::{Endpoint, Error, Message};

/// Thread slots in the kernel's table.
pub const MAX_THREADS: usize = 1024;

/// What the kernel provides to the IPC logic. `thread` arguments are slots.
pub trait IpcEnvironment {
    /// Reads the 64-byte message at `address` in `thread`'s address space.
    fn read_message(&mut self, thread: u16, address: u64) -> Result<Message, Error>;
    /// Writes a message at `address` in `thread`'s address space.
    fn write_message(&mut self, thread: u16, address: u64, message: &Message) -> Result<(), Error>;
    /// Checks that a message buffer at `address` is writable by the kernel on `thread`'s behalf.
    fn check_message_buffer(&mut self, thread: u16, address: u64) -> Result<(), Error>;
    /// Reads entry `index` of the async table at `table` in `thread`'s address space.
    fn read_async_entry(&mut self, thread: u16, table: u64, index: usize) -> Result<AsyncMessage, Error>;
    /// Writes the `flags` and `result` fields of that entry.
    fn write_async_status(&mut self, thread: u16, table: u64, index: usize, flags: u32, result: u32) -> Result<(), Error>;
    /// A blocked `thread` finished its system call with `result`: the kernel stores the
    /// result in its saved registers and makes it runnable. Called after the table has set
    /// the thread's state to Ready.
    fn unblock(&mut self, thread: u16, result: Result<u64, Error>);
    /// Whether `from`'s process may send to `to`'s process (privilege mask).
    fn may_send(&self, from: u16, to: u16) -> bool;
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

/// The thread table.
pub struct ThreadTable {
    _private: (),
}

impl ThreadTable {
    /// An empty table, all slots Free with generation 0. The kernel keeps it in a `static`,
    /// so this is `const` and should produce all-zero bytes (then it costs nothing in the
    /// image: it lands in .bss) — e.g. links as `Option<u16>`/0-sentinels, Free first.
    pub const fn new() -> Self {
        todo!()
    }

    /// Allocates the lowest free slot for a new thread of `process`, bumps its generation,
    /// sets it Ready, and returns its endpoint. `OutOfResources` when full.
    pub fn create(&mut self, process: u16) -> Result<Endpoint, Error> {
        todo!()
    }

    /// Current state of `slot`.
    pub fn state(&self, slot: u16) -> ThreadState {
        todo!()
    }

    /// Current endpoint of `slot` (its generation), whatever its state.
    pub fn endpoint(&self, slot: u16) -> Endpoint {
        todo!()
    }

    /// Owning process of `slot`.
    pub fn process(&self, slot: u16) -> u16 {
        todo!()
    }

    /// Resolves a thread endpoint to its slot if it names a live (not Free, not Dead)
    /// thread with the current generation. Errors as for a send destination.
    pub fn resolve(&self, endpoint: Endpoint) -> Result<u16, Error> {
        todo!()
    }

    /// The scheduler put `slot` on the CPU (it must be Ready).
    pub fn mark_running(&mut self, slot: u16) {
        todo!()
    }

    /// The scheduler took `slot` off the CPU without it blocking (preempted or yielded).
    pub fn mark_ready(&mut self, slot: u16) {
        todo!()
    }

    pub fn send(&mut self, env: &mut impl IpcEnvironment, caller: u16, destination: Endpoint, buffer: u64) -> Outcome {
        todo!()
    }

    pub fn send_receive(
        &mut self,
        env: &mut impl IpcEnvironment,
        caller: u16,
        destination: Endpoint,
        buffer: u64,
    ) -> Outcome {
        todo!()
    }

    pub fn receive(&mut self, env: &mut impl IpcEnvironment, caller: u16, from: Endpoint, buffer: u64) -> Outcome {
        todo!()
    }

    pub fn notify(&mut self, env: &mut impl IpcEnvironment, caller: u16, destination: Endpoint) -> Result<u64, Error> {
        todo!()
    }

    /// A kernel source (timer alarm) notifies `destination` (a slot known to be live).
    pub fn notify_from_kernel(&mut self, env: &mut impl IpcEnvironment, source: KernelSource, destination: u16) {
        todo!()
    }

    pub fn send_nonblocking(
        &mut self,
        env: &mut impl IpcEnvironment,
        caller: u16,
        destination: Endpoint,
        buffer: u64,
    ) -> Result<u64, Error> {
        todo!()
    }

    /// `count` > MAX_ASYNC_ENTRIES → InvalidArgument. A table that cannot be read → Fault.
    pub fn send_async(&mut self, env: &mut impl IpcEnvironment, caller: u16, table: u64, count: usize) -> Result<u64, Error> {
        todo!()
    }

    /// Blocks `caller` in `Mutex { address, owner }` (the kernel has checked the lock word
    /// and derived `owner` from it). Waiters on one (process, address) wake in FIFO order.
    pub fn mutex_wait(&mut self, caller: u16, address: u64, owner: Endpoint) -> Outcome {
        todo!()
    }

    /// Wakes the longest-waiting thread of `caller`'s process blocked on `address`
    /// (unblocked with Ok(0)); returns how many were woken (0 or 1).
    pub fn mutex_wake(&mut self, env: &mut impl IpcEnvironment, caller: u16, address: u64) -> u64 {
        todo!()
    }

    /// Blocks `caller` in `Sleeping { until_ns }` (the kernel arms the timer).
    pub fn sleep(&mut self, caller: u16, until_ns: u64) -> Outcome {
        todo!()
    }

    /// The sleep timer of `slot` expired: unblock it with Ok(0) if it is still sleeping.
    pub fn wake_sleeper(&mut self, env: &mut impl IpcEnvironment, slot: u16) {
        todo!()
    }

    /// Waits for `target` (a thread of the same process — the kernel checks) to exit.
    /// Already Dead → Complete(Ok(exit code)) and the slot is freed. Itself → SelfTarget.
    pub fn join(&mut self, caller: u16, target: Endpoint) -> Outcome {
        todo!()
    }

    /// Ends thread `slot`: takes it off every queue, fails the calls of threads blocked on
    /// it (senders to it → DeadEndpoint; receivers from it / awaiting its reply →
    /// PartnerDied; mutex waiters whose owner it is are left waiting — the lock is the
    /// process's business — but their `owner` stays the dead endpoint), drops its pending
    /// notifications and async messages everywhere, then sets it Dead. A joiner is
    /// unblocked with Ok(exit_code) and the slot is freed; otherwise it stays Dead until
    /// joined or `free`d.
    pub fn exit(&mut self, env: &mut impl IpcEnvironment, slot: u16, exit_code: u64) {
        todo!()
    }

    /// Frees a Dead slot (process teardown). Panics in debug if the slot is not Dead.
    pub fn free(&mut self, slot: u16) {
        todo!()
    }

    /// Slots of `process` that are not Free, lowest first (for process exit).
    pub fn threads_of(&self, process: u16) -> impl Iterator<Item = u16> + '_ {
        core::iter::empty()
    }
}

impl Default for ThreadTable {
    fn default() -> Self {
        Self::new()
    }
}
