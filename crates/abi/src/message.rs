//! The fixed-size IPC message: 64 bytes, the first 8 of which the kernel fills with the sender.

use crate::endpoint::Endpoint;

/// Size of every IPC message in bytes.
pub const MESSAGE_SIZE: usize = 64;
/// Words of payload after the header.
pub const PAYLOAD_WORDS: usize = 6;

/// `kind` of a notification delivered to `receive`: `payload[0]` holds the pending
/// notification count coalesced into this delivery, `payload[1]` the kernel time in ns.
pub const KIND_NOTIFY: u32 = 0xffff_0001;

/// Message kinds from here up are the kernel's (notifications, page faults, exit notices):
/// a message of such a kind sent by user code is refused with `InvalidArgument`, so no
/// program can pass itself off as the kernel.
pub const KERNEL_KINDS_START: u32 = 0xffff_0000;

/// Whether user code may send a message of `kind`.
pub const fn user_may_send(kind: u32) -> bool {
    kind < KERNEL_KINDS_START
}

/// An IPC message. `source` is written by the kernel on delivery (a sender cannot forge it);
/// `kind` and `payload` are the sender's.
#[repr(C, align(8))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Message {
    pub source: Endpoint,
    pub kind: u32,
    /// Free for the protocol's use (the kernel never interprets it).
    pub tag: u32,
    pub payload: [u64; PAYLOAD_WORDS],
}

impl Default for Endpoint {
    fn default() -> Self {
        Endpoint::NONE
    }
}

impl Message {
    pub const fn new(kind: u32) -> Message {
        Message {
            source: Endpoint::NONE,
            kind,
            tag: 0,
            payload: [0; PAYLOAD_WORDS],
        }
    }

    pub const fn with_payload(kind: u32, payload: [u64; PAYLOAD_WORDS]) -> Message {
        Message {
            source: Endpoint::NONE,
            kind,
            tag: 0,
            payload,
        }
    }

    /// Whether this is a notification rather than a message someone sent.
    pub const fn is_notification(&self) -> bool {
        self.kind == KIND_NOTIFY
    }
}

const _: () = assert!(core::mem::size_of::<Message>() == MESSAGE_SIZE);
