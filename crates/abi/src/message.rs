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

/// Payload words a register message carries (`RegisterMessage`).
pub const REGISTER_PAYLOAD_WORDS: usize = 3;

/// A short IPC message carried in registers by `SendReceiveRegisters` and
/// `ReplyReceiveRegisters` (the IPC fast path's calls, `syscall`): `kind`, `tag` and
/// `REGISTER_PAYLOAD_WORDS` payload words, in RDX (`kind` in the low half, `tag` in the high
/// half), R10, R8 and R9 — the same registers on the way in and, with the sender's endpoint
/// in RDI, on the way back. No buffer in memory: the kernel copies registers.
///
/// As a `Message` (to or from a partner using the memory calls), the payload words past
/// `REGISTER_PAYLOAD_WORDS` are 0 when a register message is sent, and are not delivered
/// when a memory message reaches a register receiver: a protocol that needs them uses the
/// memory calls on both sides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RegisterMessage {
    pub kind: u32,
    pub tag: u32,
    pub payload: [u64; REGISTER_PAYLOAD_WORDS],
}

impl RegisterMessage {
    pub const fn new(kind: u32) -> RegisterMessage {
        RegisterMessage {
            kind,
            tag: 0,
            payload: [0; REGISTER_PAYLOAD_WORDS],
        }
    }

    /// The register holding `kind` and `tag`.
    pub const fn header(&self) -> u64 {
        self.kind as u64 | (self.tag as u64) << 32
    }

    /// The message from its four registers: the header (`header`), then the payload words.
    pub const fn from_registers(registers: [u64; 1 + REGISTER_PAYLOAD_WORDS]) -> RegisterMessage {
        RegisterMessage {
            kind: registers[0] as u32,
            tag: (registers[0] >> 32) as u32,
            payload: [registers[1], registers[2], registers[3]],
        }
    }

    /// The message's four registers (the inverse of `from_registers`).
    pub const fn to_registers(&self) -> [u64; 1 + REGISTER_PAYLOAD_WORDS] {
        [
            self.header(),
            self.payload[0],
            self.payload[1],
            self.payload[2],
        ]
    }

    /// As a full message from `source` (the other payload words 0).
    pub const fn to_message(&self, source: Endpoint) -> Message {
        Message {
            source,
            kind: self.kind,
            tag: self.tag,
            payload: [self.payload[0], self.payload[1], self.payload[2], 0, 0, 0],
        }
    }

    /// The part of `message` a register receiver gets (kind, tag, the first payload words).
    pub const fn from_message(message: &Message) -> RegisterMessage {
        RegisterMessage {
            kind: message.kind,
            tag: message.tag,
            payload: [message.payload[0], message.payload[1], message.payload[2]],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_message_round_trips_through_registers_and_messages() {
        let short = RegisterMessage {
            kind: 0xdead_beef,
            tag: 0x1234_5678,
            payload: [1, u64::MAX, 3],
        };
        assert_eq!(short.header(), 0x1234_5678_dead_beef);
        assert_eq!(RegisterMessage::from_registers(short.to_registers()), short);
        let full = short.to_message(Endpoint(7));
        assert_eq!(full.source, Endpoint(7));
        assert_eq!(full.payload, [1, u64::MAX, 3, 0, 0, 0]);
        assert_eq!(RegisterMessage::from_message(&full), short);
    }

    #[test]
    fn a_long_message_loses_only_the_words_registers_do_not_hold() {
        let long = Message::with_payload(5, [1, 2, 3, 4, 5, 6]);
        let short = RegisterMessage::from_message(&long);
        assert_eq!(short.payload, [1, 2, 3]);
        assert_eq!(short.kind, 5);
    }
}
