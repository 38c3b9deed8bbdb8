//! System calls as a tracer prints them (`vtrace`): `send_receive(vm, MAP_ANONYMOUS) = 0`,
//! `sleep(10000000 ns) = 0`, `lookup("pm") = pm`, `receive(ANY) = -EINTR`.
//!
//! Pure formatting: what the tracee's memory holds (a message's kind, a name) and what an
//! endpoint is called come from a [`TraceeView`] the tracer implements (PmPeek and a
//! snapshot in `vtrace`, fixed tables in the tests).

use crate::endpoint::Endpoint;
use crate::error::Error;
use crate::syscall::{KernelCall, Syscall};
use core::fmt::{self, Write};

/// What the formatter may ask about the traced process.
pub trait TraceeView {
    /// Reads the tracee's memory at `address` into `out`; false if it cannot be read.
    fn read(&self, address: u64, out: &mut [u8]) -> bool;

    /// Writes the name of `endpoint` (a process name, `name.N` for a thread that is not
    /// its main one); the default is the raw value.
    fn write_endpoint(&self, out: &mut dyn Write, endpoint: Endpoint) -> fmt::Result {
        write!(out, "{:#x}", endpoint.0)
    }
}

/// A message kind's name, for the kinds the system defines.
pub fn kind_name(kind: u32) -> Option<&'static str> {
    use crate::{message, pm, server_introspect, vm};
    Some(match kind {
        message::KIND_NOTIFY => "NOTIFY",
        vm::KIND_PAGE_FAULT => "PAGE_FAULT",
        vm::KIND_PROCESS_EXIT => "PROCESS_EXIT",
        pm::KIND_CHILD_EXITED => "CHILD_EXITED",
        vm::request::MAP_ANONYMOUS => "MAP_ANONYMOUS",
        vm::request::UNMAP => "UNMAP",
        vm::request::STATS => "VM_STATS",
        vm::request::SHM_CREATE => "SHM_CREATE",
        vm::request::SHM_MAP => "SHM_MAP",
        vm::request::SHM_DESTROY => "SHM_DESTROY",
        vm::request::FAULT_TIMES => "FAULT_TIMES",
        vm::request::REPLY => "VM_REPLY",
        pm::request::SPAWN => "SPAWN",
        pm::request::WAIT => "WAIT",
        pm::request::KILL => "KILL",
        pm::request::REPLY => "PM_REPLY",
        server_introspect::INTROSPECT => "INTROSPECT",
        server_introspect::INTROSPECT_REPLY => "INTROSPECT_REPLY",
        _ => return None,
    })
}

/// `CamelCase` as `snake_case`.
fn write_snake(out: &mut dyn Write, name: &str) -> fmt::Result {
    for (index, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if index > 0 {
                out.write_char('_')?;
            }
            out.write_char(c.to_ascii_lowercase())?;
        } else {
            out.write_char(c)?;
        }
    }
    Ok(())
}

fn write_endpoint(out: &mut dyn Write, view: &dyn TraceeView, endpoint: Endpoint) -> fmt::Result {
    match endpoint {
        Endpoint::ANY => out.write_str("ANY"),
        Endpoint::KERNEL => out.write_str("KERNEL"),
        Endpoint::CLOCK => out.write_str("CLOCK"),
        Endpoint::NONE => out.write_str("NONE"),
        _ => view.write_endpoint(out, endpoint),
    }
}

/// The kind of the message at `address` in the tracee (a `Message`'s kind is at offset 8).
fn message_kind(view: &dyn TraceeView, address: u64) -> Option<u32> {
    let mut kind = [0u8; 4];
    view.read(address.checked_add(8)?, &mut kind)
        .then(|| u32::from_le_bytes(kind))
}

fn write_kind(out: &mut dyn Write, kind: Option<u32>) -> fmt::Result {
    match kind {
        Some(kind) => match kind_name(kind) {
            Some(name) => out.write_str(name),
            None => write!(out, "{kind:#x}"),
        },
        None => out.write_str("?"),
    }
}

fn write_message(out: &mut dyn Write, view: &dyn TraceeView, address: u64) -> fmt::Result {
    write_kind(out, message_kind(view, address))
}

/// At most this many bytes of a string argument are shown.
pub const STRING_BYTES: usize = 48;

/// A string argument, quoted and escaped (`"…"` after `STRING_BYTES`).
fn write_string(out: &mut dyn Write, view: &dyn TraceeView, address: u64, len: u64) -> fmt::Result {
    let mut bytes = [0u8; STRING_BYTES];
    let shown = (len as usize).min(STRING_BYTES);
    if !view.read(address, &mut bytes[..shown]) {
        return write!(out, "{address:#x}");
    }
    out.write_char('"')?;
    for &b in &bytes[..shown] {
        match b {
            b'"' => out.write_str("\\\"")?,
            b'\\' => out.write_str("\\\\")?,
            b'\n' => out.write_str("\\n")?,
            0x20..=0x7e => out.write_char(b as char)?,
            _ => write!(out, "\\x{b:02x}")?,
        }
    }
    out.write_char('"')?;
    if len as usize > shown {
        out.write_str("…")?;
    }
    Ok(())
}

/// The call at a syscall-entry stop: `name(arguments)`, from the number in RAX and the six
/// argument registers (RDI, RSI, RDX, R10, R8, R9).
pub fn write_entry(
    out: &mut dyn Write,
    number: u64,
    args: &[u64; 6],
    view: &dyn TraceeView,
) -> fmt::Result {
    let Some(call) = Syscall::from_number(number) else {
        return write!(
            out,
            "syscall_{number}({:#x}, {:#x}, {:#x})",
            args[0], args[1], args[2]
        );
    };
    write_snake(out, call.name())?;
    out.write_char('(')?;
    let endpoint = |out: &mut dyn Write, value: u64| write_endpoint(out, view, Endpoint(value));
    match call {
        Syscall::DebugWrite | Syscall::Panic | Syscall::Lookup => {
            write_string(out, view, args[0], args[1])?
        }
        Syscall::Send | Syscall::SendReceive | Syscall::SendNonBlocking => {
            endpoint(out, args[0])?;
            out.write_str(", ")?;
            write_message(out, view, args[1])?;
        }
        Syscall::Receive => endpoint(out, args[0])?,
        Syscall::ReplyReceive => {
            endpoint(out, args[0])?;
            out.write_str(", ")?;
            write_message(out, view, args[2])?;
            out.write_str(", ")?;
            endpoint(out, args[1])?;
        }
        Syscall::Notify | Syscall::ThreadJoin => endpoint(out, args[0])?,
        Syscall::SendAsync => write!(out, "{:#x}, {} messages", args[0], args[1])?,
        Syscall::ThreadCreate => write!(out, "entry {:#x}, {:#x}", args[0], args[1])?,
        Syscall::ThreadExit | Syscall::ProcessExit => write!(out, "{}", args[0])?,
        Syscall::Sleep => write!(out, "{} ns", args[0])?,
        Syscall::AlarmSet => write!(out, "every {} ns", args[0])?,
        Syscall::MutexWait => write!(out, "{:#x}, {}", args[0], args[1])?,
        Syscall::MutexWake | Syscall::GrantRevoke => write!(out, "{:#x}", args[0])?,
        Syscall::GrantCreate => {
            endpoint(out, args[0])?;
            write!(
                out,
                ", {:#x}, {} bytes, access {}",
                args[1], args[2], args[3]
            )?;
        }
        Syscall::SignalRaise => match crate::signal::Signal::new(args[0]) {
            Ok(signal) => out.write_str(signal.name())?,
            Err(_) => write!(out, "{}", args[0])?,
        },
        Syscall::TraceResumeWait => write!(out, "pid {}, mode {:#x}", args[0], args[1])?,
        Syscall::KernelCall => match KernelCall::from_number(args[0]) {
            Some(kcall) => write!(out, "{}, {:#x}, {:#x}", kcall.name(), args[1], args[2])?,
            None => write!(out, "{}, {:#x}, {:#x}", args[0], args[1], args[2])?,
        },
        _ => {}
    }
    out.write_char(')')
}

/// The result at a syscall-exit stop: ` = 0`, ` = -EFAULT`, an endpoint by name for the
/// calls that return one, and for a receive what arrived (` = 0 [from vm: VM_REPLY]`,
/// read from the tracee's buffer).
pub fn write_result(
    out: &mut dyn Write,
    number: u64,
    args: &[u64; 6],
    rax: u64,
    view: &dyn TraceeView,
) -> fmt::Result {
    out.write_str(" = ")?;
    let value = match Error::from_return_value(rax) {
        Ok(value) => value,
        Err(error) => return write!(out, "-{}", error.name()),
    };
    let call = Syscall::from_number(number);
    match call {
        Some(Syscall::Lookup | Syscall::ThreadCreate | Syscall::SelfEndpoint) => {
            write_endpoint(out, view, Endpoint(value))
        }
        Some(Syscall::Receive | Syscall::SendReceive | Syscall::ReplyReceive) => {
            write!(out, "{value}")?;
            let buffer = if call == Some(Syscall::ReplyReceive) {
                args[2]
            } else {
                args[1]
            };
            let mut source = [0u8; 8];
            if view.read(buffer, &mut source) {
                out.write_str(" [from ")?;
                write_endpoint(out, view, Endpoint(u64::from_le_bytes(source)))?;
                out.write_str(": ")?;
                write_message(out, view, buffer)?;
                out.write_char(']')?;
            }
            Ok(())
        }
        _ => write!(out, "{value}"),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::message::Message;
    use std::string::String;

    /// A tracee with one message buffer and one string, and two named endpoints.
    struct View {
        message_at: u64,
        message: Message,
        text_at: u64,
        text: &'static [u8],
    }

    impl TraceeView for View {
        fn read(&self, address: u64, out: &mut [u8]) -> bool {
            let mut bytes = [0u8; 64];
            bytes[..8].copy_from_slice(&self.message.source.0.to_le_bytes());
            bytes[8..12].copy_from_slice(&self.message.kind.to_le_bytes());
            let (base, memory): (u64, &[u8]) = if address >= self.text_at {
                (self.text_at, self.text)
            } else {
                (self.message_at, &bytes)
            };
            let Some(start) = address.checked_sub(base) else {
                return false;
            };
            let start = start as usize;
            match memory.get(start..start + out.len()) {
                Some(source) => {
                    out.copy_from_slice(source);
                    true
                }
                None => false,
            }
        }

        fn write_endpoint(&self, out: &mut dyn Write, endpoint: Endpoint) -> fmt::Result {
            match endpoint.0 {
                0x1_0000 => out.write_str("vm"),
                0x2_0000 => out.write_str("pm"),
                other => write!(out, "{other:#x}"),
            }
        }
    }

    fn view(kind: u32, source: u64) -> View {
        let mut message = Message::new(kind);
        message.source = Endpoint(source);
        View {
            message_at: 0x7000,
            message,
            text_at: 0x9000,
            text: b"pm\n\"x\"\x01",
        }
    }

    fn line(number: Syscall, args: [u64; 6], rax: u64, view: &View) -> String {
        let mut out = String::new();
        write_entry(&mut out, number as u64, &args, view).unwrap();
        write_result(&mut out, number as u64, &args, rax, view).unwrap();
        out
    }

    #[test]
    fn a_direct_trace_wait_shows_its_pid_and_mode() {
        let v = view(0, 0);
        assert_eq!(
            line(Syscall::TraceResumeWait, [9, 1, 0x7000, 0, 0, 0], 1, &v),
            "trace_resume_wait(pid 9, mode 0x1) = 1"
        );
    }

    #[test]
    fn ipc_calls_show_the_partner_by_name_and_the_kind_from_the_buffer() {
        let v = view(crate::vm::request::MAP_ANONYMOUS, 0x1_0000);
        assert_eq!(
            line(Syscall::SendReceive, [0x1_0000, 0x7000, 0, 0, 0, 0], 0, &v),
            "send_receive(vm, MAP_ANONYMOUS) = 0 [from vm: MAP_ANONYMOUS]"
        );
        let v = view(crate::vm::KIND_PAGE_FAULT, Endpoint::KERNEL.0);
        assert_eq!(
            line(
                Syscall::Receive,
                [Endpoint::ANY.0, 0x7000, 0, 0, 0, 0],
                0,
                &v
            ),
            "receive(ANY) = 0 [from KERNEL: PAGE_FAULT]"
        );
        assert_eq!(
            line(
                Syscall::Send,
                [0x2_0000, 0x7000, 0, 0, 0, 0],
                Error::Fault.to_return_value(),
                &v
            ),
            "send(pm, PAGE_FAULT) = -EFAULT"
        );
        let v = view(0x1234_5678, 0x3_0000);
        assert_eq!(
            line(
                Syscall::ReplyReceive,
                [0x3_0000, Endpoint::ANY.0, 0x7000, 0, 0, 0],
                0,
                &v
            ),
            "reply_receive(0x30000, 0x12345678, ANY) = 0 [from 0x30000: 0x12345678]"
        );
    }

    #[test]
    fn strings_are_quoted_escaped_and_endpoints_named_in_results() {
        let v = view(0, 0);
        assert_eq!(
            line(Syscall::Lookup, [0x9000, 2, 0, 0, 0, 0], 0x2_0000, &v),
            "lookup(\"pm\") = pm"
        );
        assert_eq!(
            line(Syscall::DebugWrite, [0x9000, 7, 0, 0, 0, 0], 7, &v),
            "debug_write(\"pm\\n\\\"x\\\"\\x01\") = 7"
        );
        assert_eq!(
            line(
                Syscall::Lookup,
                [0x9000, 4096, 0, 0, 0, 0],
                Error::NotFound.to_return_value(),
                &v
            ),
            "lookup(0x9000) = -ESRCH",
            "an unreadable string is shown as its address"
        );
    }

    #[test]
    fn unreadable_buffers_other_calls_and_unknown_numbers() {
        let v = view(0, 0);
        assert_eq!(
            line(Syscall::SendReceive, [0x1_0000, 0x100, 0, 0, 0, 0], 0, &v),
            "send_receive(vm, ?) = 0"
        );
        assert_eq!(
            line(Syscall::Sleep, [10_000_000, 0, 0, 0, 0, 0], 0, &v),
            "sleep(10000000 ns) = 0"
        );
        assert_eq!(
            line(
                Syscall::KernelCall,
                [KernelCall::PmKill as u64, 5, 9, 0, 0, 0],
                0,
                &v
            ),
            "kernel_call(PmKill, 0x5, 0x9) = 0"
        );
        assert_eq!(
            line(Syscall::SignalRaise, [10, 0, 0, 0, 0, 0], 0, &v),
            "signal_raise(SIGUSR1) = 0"
        );
        assert_eq!(
            line(
                Syscall::SignalRaise,
                [64, 0, 0, 0, 0, 0],
                Error::InvalidArgument.to_return_value(),
                &v
            ),
            "signal_raise(64) = -EINVAL"
        );
        let mut out = String::new();
        write_entry(&mut out, 999, &[1, 2, 3, 0, 0, 0], &v).unwrap();
        assert_eq!(out, "syscall_999(0x1, 0x2, 0x3)");
    }
}
