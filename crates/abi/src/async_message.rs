//! Entries of the asynchronous-send table (`Syscall::SendAsync`), kept in the sender's memory.

use crate::endpoint::Endpoint;
use crate::message::Message;

/// `flags` bits of an `AsyncMessage`.
pub mod async_flags {
    /// Set by the sender: the entry holds a message to deliver.
    pub const VALID: u32 = 1 << 0;
    /// Set by the kernel: delivered (or failed; see `result`). The sender may reuse it.
    pub const DONE: u32 = 1 << 1;
    /// Set by the sender: this message must not satisfy the receive half of a
    /// `SendReceive` the destination is blocked in (it waits for a plain `Receive`).
    pub const NO_REPLY: u32 = 1 << 2;
    /// Set by the kernel together with DONE when delivery failed; `result` holds the error.
    pub const FAILED: u32 = 1 << 3;
}

/// One asynchronous message: 80 bytes.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AsyncMessage {
    pub flags: u32,
    /// 0, or the `Error` code (positive) when FAILED.
    pub result: u32,
    pub destination: Endpoint,
    pub message: Message,
}

/// Most entries one `SendAsync` table may have.
pub const MAX_ASYNC_ENTRIES: usize = 64;

const _: () = assert!(core::mem::size_of::<AsyncMessage>() == 80);
