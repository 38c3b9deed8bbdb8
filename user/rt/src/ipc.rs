//! Typed IPC: messages, notifications, asynchronous sends, name lookup, and memory grants
//! with safe copies.
//!
//! Semantics are MINIX's (see `vigil_kcore::ipc` for the exact state machine): `send`
//! blocks until the destination receives; `send_receive` sends and then waits for the
//! destination's reply (a `send` from it, or an async message not flagged NO_REPLY);
//! `notify` never blocks and repeated notifications from one source coalesce.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::cell::UnsafeCell;
use core::ptr::{addr_of, addr_of_mut};

use vigil_abi::async_message::{async_flags, AsyncMessage, MAX_ASYNC_ENTRIES};
use vigil_abi::message::RegisterMessage;
use vigil_abi::syscall::grant_access;
use vigil_abi::{Endpoint, Error, Message};

use crate::{syscall, thread};

/// Sends `message` to `destination`; blocks until it is received.
pub fn send(destination: Endpoint, message: &Message) -> Result<(), Error> {
    syscall::send(destination, message).map(|_| ())
}

/// Waits for a message or notification from `from` (a thread, `Endpoint::ANY`, or a kernel
/// source such as `Endpoint::CLOCK`). The kernel fills in `source`.
pub fn receive(from: Endpoint) -> Result<Message, Error> {
    let mut message = Message::default();
    syscall::receive(from, &mut message)?;
    Ok(message)
}

/// Sends `message` to `destination` and waits for its reply, which overwrites `message`.
pub fn send_receive(destination: Endpoint, message: &mut Message) -> Result<(), Error> {
    syscall::send_receive(destination, message).map(|_| ())
}

/// A server's answer to a request (the servers' common shape: the reply kind `reply_kind`,
/// the status in `payload[0]`, 0 or an error code): the payload, or the server's refusal.
/// A reply of another kind, or a code no `Error` has, is `InvalidArgument`.
pub fn reply_payload(reply: &Message, reply_kind: u32) -> Result<[u64; 6], Error> {
    if reply.kind != reply_kind {
        return Err(Error::InvalidArgument);
    }
    match reply.payload[0] {
        0 => Ok(reply.payload),
        code => Err(Error::from_code(code).unwrap_or(Error::InvalidArgument)),
    }
}

/// Sends request `kind` with `payload` to `server` and waits: the reply's payload, or the
/// server's refusal (`reply_payload`).
pub fn request(
    server: Endpoint,
    kind: u32,
    payload: [u64; 6],
    reply_kind: u32,
) -> Result<[u64; 6], Error> {
    let mut message = Message::with_payload(kind, payload);
    send_receive(server, &mut message)?;
    reply_payload(&message, reply_kind)
}

/// Times `call_service` sends a request again after `Restarted`. Each retry means the
/// service died holding this very request, so the bound stops a request that itself kills
/// the service (a poison request) from crashing it forever; it equals RS's default
/// crash-loop limit (`RestartPolicy::DEFAULT.limit`), after which RS holds the service
/// down anyway and the tombstone's senders fail with `DeadEndpoint`.
pub const SERVICE_RETRIES: u32 = 8;

/// A client's call to a service RS supervises: `send_receive`, sent again to the same
/// endpoint when it fails with `Restarted` (the instance died after receiving it; the
/// endpoint is kept for its replacement, and the retry waits queued until the replacement
/// serves), at most `SERVICE_RETRIES` times. Every retry sends the request byte for byte
/// as the first attempt did (`message` as it was on entry), so a request id in it names
/// the same request: a service that remembers completed ids answers a retry of one it had
/// completed instead of doing it twice. Returns how many retries it took; the reply
/// overwrites `message`.
pub fn call_service(destination: Endpoint, message: &mut Message) -> Result<u32, Error> {
    let request = *message;
    let mut retries = 0;
    loop {
        match syscall::send_receive(destination, message) {
            Ok(_) => return Ok(retries),
            Err(Error::Restarted) if retries < SERVICE_RETRIES => {
                retries += 1;
                *message = request;
            }
            Err(error) => return Err(error),
        }
    }
}

/// A server's reply and its next receive in one call: delivers `message` to `destination`,
/// which must be waiting for the reply (its `send_receive`; otherwise `NotReady` and nothing
/// is received — call `receive` then), and waits for the next message from `from` (or ANY),
/// which overwrites `message`.
pub fn reply_receive(
    destination: Endpoint,
    from: Endpoint,
    message: &mut Message,
) -> Result<(), Error> {
    syscall::reply_receive(destination, from, message).map(|_| ())
}

/// `send_receive` with a register message (kind, tag and `REGISTER_PAYLOAD_WORDS` words;
/// no buffer in memory, the IPC fast path's call): the reply and its sender.
#[inline]
pub fn send_receive_registers(
    destination: Endpoint,
    message: &RegisterMessage,
) -> Result<(Endpoint, RegisterMessage), Error> {
    syscall::send_receive_registers(destination, message)
}

/// `reply_receive` with register messages both ways: the next message and its sender.
#[inline]
pub fn reply_receive_registers(
    destination: Endpoint,
    from: Endpoint,
    message: &RegisterMessage,
) -> Result<(Endpoint, RegisterMessage), Error> {
    syscall::reply_receive_registers(destination, from, message)
}

/// `send_receive_registers` for a one-way benchmark's client: also the TSC read last before
/// the call enters the kernel and the one read first after it returns
/// (`syscall::send_receive_registers_stamped`): when the request left, and when the reply
/// arrived.
#[inline]
pub fn send_receive_registers_stamped(
    destination: Endpoint,
    message: &RegisterMessage,
) -> (Result<(Endpoint, RegisterMessage), Error>, u64, u64) {
    syscall::send_receive_registers_stamped(destination, message)
}

/// `reply_receive_registers` for a one-way benchmark's server: the reply's `payload[1]` is
/// replaced by the TSC read last before the call enters the kernel, and the second value is
/// the TSC read first after it returns (`syscall::reply_receive_registers_stamped`): when
/// the reply left, and when the next message arrived.
#[inline]
pub fn reply_receive_registers_stamped(
    destination: Endpoint,
    from: Endpoint,
    message: &RegisterMessage,
) -> (Result<(Endpoint, RegisterMessage), Error>, u64) {
    syscall::reply_receive_registers_stamped(destination, from, message)
}

/// Raises a notification at `destination`; never blocks.
pub fn notify(destination: Endpoint) -> Result<(), Error> {
    syscall::notify(destination).map(|_| ())
}

/// Delivers `message` only if `destination` is waiting for it right now; `NotReady` if not.
pub fn send_nonblocking(destination: Endpoint, message: &Message) -> Result<(), Error> {
    syscall::send_nonblocking(destination, message).map(|_| ())
}

/// The main-thread endpoint of the boot process named `name`.
pub fn lookup(name: &str) -> Result<Endpoint, Error> {
    syscall::lookup(name).map(Endpoint)
}

/// The calling thread's endpoint, from its `ThreadInfo` (no system call).
pub fn self_endpoint() -> Endpoint {
    thread::current()
}

/// A table of asynchronous messages for `SendAsync` (MINIX's `senda`).
///
/// The kernel keeps reading the table and updating its entries' `flags` and `result` after
/// `submit` returns, as it delivers them, so the table's memory is leaked on creation: it
/// stays valid for the rest of the process's life, however the table is used. Entries are
/// read and written with volatile accesses. Not `Sync`: one thread manages a table.
pub struct AsyncTable {
    entries: &'static [UnsafeCell<AsyncMessage>],
}

impl AsyncTable {
    /// A table of `capacity` empty (not VALID) entries. `capacity` may exceed
    /// `MAX_ASYNC_ENTRIES` (to test the kernel's limit); `submit` then fails.
    pub fn new(capacity: usize) -> AsyncTable {
        let empty = AsyncMessage {
            flags: 0,
            result: 0,
            destination: Endpoint::NONE,
            message: Message::default(),
        };
        let entries: Vec<UnsafeCell<AsyncMessage>> =
            (0..capacity).map(|_| UnsafeCell::new(empty)).collect();
        AsyncTable {
            entries: Box::leak(entries.into_boxed_slice()),
        }
    }

    /// Number of entries.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    fn entry(&self, index: usize) -> *mut AsyncMessage {
        UnsafeCell::raw_get(&self.entries[index])
    }

    /// Fills entry `index` with `message` for `destination` and marks it VALID, with
    /// `extra_flags` (e.g. `async_flags::NO_REPLY`). Refused with `InvalidArgument` while
    /// the entry is VALID and not yet DONE (the kernel may be about to deliver it).
    pub fn set(
        &self,
        index: usize,
        destination: Endpoint,
        message: &Message,
        extra_flags: u32,
    ) -> Result<(), Error> {
        let flags = self.flags(index);
        if flags & async_flags::VALID != 0 && flags & async_flags::DONE == 0 {
            return Err(Error::InvalidArgument);
        }
        let entry = self.entry(index);
        // SAFETY: the entry lives forever (leaked) and is not VALID-and-pending, so the
        // kernel ignores it until the flags are written last, below.
        unsafe {
            addr_of_mut!((*entry).destination).write_volatile(destination);
            addr_of_mut!((*entry).message).write_volatile(*message);
            addr_of_mut!((*entry).result).write_volatile(0);
            addr_of_mut!((*entry).flags).write_volatile(async_flags::VALID | extra_flags);
        }
        Ok(())
    }

    /// Marks entry `index` unused (not VALID). Same condition as `set`.
    pub fn clear(&self, index: usize) -> Result<(), Error> {
        let flags = self.flags(index);
        if flags & async_flags::VALID != 0 && flags & async_flags::DONE == 0 {
            return Err(Error::InvalidArgument);
        }
        // SAFETY: as in `set`.
        unsafe { addr_of_mut!((*self.entry(index)).flags).write_volatile(0) };
        Ok(())
    }

    /// Hands the whole table to the kernel (`SendAsync`), which delivers what it can now
    /// and the rest when the destinations receive.
    pub fn submit(&self) -> Result<(), Error> {
        // SAFETY: the entries are leaked, so they outlive the kernel's use of them, and the
        // runtime accesses them only with volatile reads and writes.
        unsafe { syscall::send_async(self.entry_base(), self.entries.len()) }.map(|_| ())
    }

    fn entry_base(&self) -> *mut AsyncMessage {
        if self.entries.is_empty() {
            core::ptr::NonNull::dangling().as_ptr()
        } else {
            self.entry(0)
        }
    }

    /// The entry's `flags` as the kernel last left them (`async_flags`).
    pub fn flags(&self, index: usize) -> u32 {
        // SAFETY: the entry is valid forever; a volatile read sees the kernel's updates.
        unsafe { addr_of!((*self.entry(index)).flags).read_volatile() }
    }

    /// The entry's delivery result: `None` while pending (or never VALID), `Some(Ok(()))`
    /// once delivered, `Some(Err(error))` if the kernel refused it.
    pub fn status(&self, index: usize) -> Option<Result<(), Error>> {
        let flags = self.flags(index);
        if flags & async_flags::DONE == 0 {
            return None;
        }
        if flags & async_flags::FAILED == 0 {
            return Some(Ok(()));
        }
        // SAFETY: as in `flags`.
        let code = unsafe { addr_of!((*self.entry(index)).result).read_volatile() };
        Some(Err(error_from_code(code)))
    }
}

/// The `Error` whose code is `code` (InvalidArgument for an unknown code).
pub fn error_from_code(code: u32) -> Error {
    Error::ALL
        .into_iter()
        .find(|error| *error as u32 == code)
        .unwrap_or(Error::InvalidArgument)
}

/// Whether `count` entries fit in one `SendAsync` call.
pub const fn async_table_fits(count: usize) -> bool {
    count <= MAX_ASYNC_ENTRIES
}

/// A memory grant: lets one other thread copy from/to part of this process's memory with
/// the safe-copy kernel calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GrantId(pub u64);

/// Creates a grant of `len` bytes at `address` for `grantee` with `access`
/// (`grant_access::READ` and/or `WRITE`).
///
/// # Safety
/// Until revoked, the grantee may read or write that memory at any time: it must stay
/// allocated, and with WRITE access nothing may reference it while the grantee may be
/// writing. Prefer [`with_read_grant`] / [`with_write_grant`].
pub unsafe fn grant_create(
    grantee: Endpoint,
    address: *const u8,
    len: usize,
    access: u64,
) -> Result<GrantId, Error> {
    // SAFETY: the caller upholds the lifetime and aliasing rules above.
    unsafe { syscall::grant_create(grantee, address as u64, len as u64, access) }.map(GrantId)
}

/// Withdraws a grant.
pub fn grant_revoke(grant: GrantId) -> Result<(), Error> {
    syscall::grant_revoke(grant.0).map(|_| ())
}

/// Revokes a scoped grant; the grantee must lose access before the borrow ends.
fn revoke_scoped(grant: GrantId) {
    if let Err(error) = grant_revoke(grant) {
        // Continuing would let the grantee reach memory we no longer own.
        panic!("revoking grant {} failed: {error}", grant.0);
    }
}

/// Grants `grantee` READ access to `buffer` while `body` runs (e.g. sending it the grant id),
/// then revokes it.
pub fn with_read_grant<R>(
    grantee: Endpoint,
    buffer: &[u8],
    body: impl FnOnce(GrantId) -> R,
) -> Result<R, Error> {
    // SAFETY: `buffer` stays borrowed (alive, not mutated) until the grant is revoked below
    // (a failed revocation panics, ending the process).
    let grant =
        unsafe { grant_create(grantee, buffer.as_ptr(), buffer.len(), grant_access::READ) }?;
    let result = body(grant);
    revoke_scoped(grant);
    Ok(result)
}

/// Grants `grantee` WRITE access to `buffer` while `body` runs, then revokes it; afterwards
/// `buffer` holds whatever the grantee wrote.
pub fn with_write_grant<R>(
    grantee: Endpoint,
    buffer: &mut [u8],
    body: impl FnOnce(GrantId) -> R,
) -> Result<R, Error> {
    // SAFETY: `buffer` stays exclusively borrowed (nobody else can reference it) until the
    // grant is revoked below (a failed revocation panics, ending the process).
    let grant = unsafe {
        grant_create(
            grantee,
            buffer.as_mut_ptr(),
            buffer.len(),
            grant_access::WRITE,
        )
    }?;
    let result = body(grant);
    revoke_scoped(grant);
    Ok(result)
}

/// Copies `buffer.len()` bytes from `offset` in `granter`'s grant into `buffer`
/// (a kernel call: the process needs the safe-copy privilege).
pub fn safe_copy_from(
    granter: Endpoint,
    grant: GrantId,
    offset: usize,
    buffer: &mut [u8],
) -> Result<(), Error> {
    syscall::safe_copy_from(granter, grant.0, offset as u64, buffer).map(|_| ())
}

/// Copies `data` to `offset` in `granter`'s grant (a kernel call: needs the safe-copy
/// privilege, and the grant must allow WRITE).
pub fn safe_copy_to(
    granter: Endpoint,
    grant: GrantId,
    offset: usize,
    data: &[u8],
) -> Result<(), Error> {
    syscall::safe_copy_to(granter, grant.0, offset as u64, data).map(|_| ())
}
