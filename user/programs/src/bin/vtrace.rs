//! `vtrace`: prints every system call of a program (like strace, or MINIX's `trace`),
//! traced through PM: `vtrace [-f] PROGRAM [ARGS…]` starts PROGRAM (a `boot=pm` module)
//! traced from its first instruction; `vtrace [-f] -p PID` attaches to a running process.
//! `-f` follows the children it spawns. Boot it with `kcalls=snapshot` (endpoint names).
//!
//! Each call is one line when it returns, its partner named and its message kind read from
//! the tracee: `[5] send_receive(pm, SPAWN) = 0 [from pm: PM_REPLY]`, `[5] sleep(1000000 ns)
//! = 0`, `[5] lookup("nope") = -ESRCH`; then `[5] +++ exited with 0 +++`. vtrace ends
//! when no tracee is left and prints how many calls it saw.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use core::fmt::{self, Write};
use vigil_rt::abi::ptrace::request::{event, mode, options};
use vigil_rt::abi::signal::status;
use vigil_rt::abi::syscall_text::{self, TraceeView};
use vigil_rt::abi::Endpoint;
use vigil_rt::{introspect, println, trace};

vigil_rt::entry!(main);

/// What vtrace knows about the tracee while formatting one call.
struct View {
    pid: u64,
    /// Endpoint → name, from the last snapshot.
    names: BTreeMap<u64, String>,
}

impl View {
    fn refresh_names(&mut self) {
        let Ok(snapshot) = introspect::snapshot() else {
            return;
        };
        self.names.clear();
        for process in &snapshot.processes {
            let end = process
                .name
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(process.name.len());
            let name = String::from_utf8_lossy(&process.name[..end]).into_owned();
            for thread in snapshot.threads.iter().filter(|t| t.pid == process.pid) {
                let label = if thread.endpoint == process.main_thread {
                    name.clone()
                } else {
                    format!("{name}.{}", thread.endpoint.slot())
                };
                self.names.insert(thread.endpoint.0, label);
            }
        }
    }
}

impl TraceeView for View {
    fn read(&self, address: u64, out: &mut [u8]) -> bool {
        out.is_empty() || trace::peek(self.pid, address, out).is_ok()
    }

    fn write_endpoint(&self, out: &mut dyn Write, endpoint: Endpoint) -> fmt::Result {
        match self.names.get(&endpoint.0) {
            Some(name) => out.write_str(name),
            None => write!(out, "{:#x}", endpoint.0),
        }
    }
}

/// A call whose entry was seen: its number and arguments, and the text so far.
struct Pending {
    number: u64,
    arguments: [u64; 6],
    text: String,
}

fn exit_text(code: u64) -> String {
    match status::signal_of(code) {
        Some(signal) => format!("killed by {}", signal.name()),
        None => format!("exited with {code}"),
    }
}

fn run(args: &str) -> Result<u64, String> {
    let mut words = args.split_whitespace().peekable();
    let mut flags = 0;
    if words.peek() == Some(&"-f") {
        words.next();
        flags |= options::FOLLOW_CHILDREN;
    }
    let first = words
        .next()
        .ok_or("usage: vtrace [-f] PROGRAM [ARGS…] | vtrace [-f] -p PID")?;
    let root = if first == "-p" {
        let pid: u64 = words
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or("vtrace -p needs a pid")?;
        trace::attach(pid, flags).map_err(|e| format!("attach to pid {pid}: {e}"))?;
        println!("attached to pid {pid}");
        pid
    } else {
        let rest: alloc::vec::Vec<&str> = words.collect();
        let text = if rest.is_empty() {
            String::from(first)
        } else {
            format!("{first} -- {}", rest.join(" "))
        };
        let pid = trace::spawn(&text, flags).map_err(|e| format!("spawn of '{text}': {e}"))?;
        println!("started '{text}' as pid {pid}");
        pid
    };
    let mut view = View {
        pid: root,
        names: BTreeMap::new(),
    };
    view.refresh_names();
    let mut pending: BTreeMap<u64, Pending> = BTreeMap::new();
    let mut live = 0u64;
    let mut calls = 0u64;
    loop {
        let stop = trace::wait(0, false)
            .map_err(|e| format!("wait: {e}"))?
            .ok_or("wait answered nothing")?;
        view.pid = stop.pid;
        match stop.kind {
            event::ATTACHED => {
                live += 1;
                if stop.value != 0 {
                    println!("[{}] new child of pid {}", stop.pid, stop.value);
                }
                view.refresh_names();
            }
            event::SYSCALL_ENTRY => {
                let registers =
                    trace::get_registers(stop.thread).map_err(|e| format!("registers: {e}"))?;
                let arguments = [
                    registers.rdi,
                    registers.rsi,
                    registers.rdx,
                    registers.r10,
                    registers.r8,
                    registers.r9,
                ];
                let mut text = String::new();
                let _ = syscall_text::write_entry(&mut text, registers.rax, &arguments, &view);
                pending.insert(
                    stop.pid,
                    Pending {
                        number: registers.rax,
                        arguments,
                        text,
                    },
                );
            }
            event::SYSCALL_EXIT => {
                if let Some(mut call) = pending.remove(&stop.pid) {
                    if call.number == vigil_rt::abi::syscall::Syscall::Lookup as u64
                        || call.number == vigil_rt::abi::syscall::Syscall::ThreadCreate as u64
                    {
                        view.refresh_names();
                    }
                    let _ = syscall_text::write_result(
                        &mut call.text,
                        call.number,
                        &call.arguments,
                        stop.value,
                        &view,
                    );
                    calls += 1;
                    println!("[{}] {}", stop.pid, call.text);
                }
            }
            event::EXITED => {
                if let Some(call) = pending.remove(&stop.pid) {
                    calls += 1;
                    println!("[{}] {} = ?", stop.pid, call.text);
                }
                println!("[{}] +++ {} +++", stop.pid, exit_text(stop.value));
                // Reap it if it is ours (a program vtrace started); a followed grandchild
                // or an attached process is someone else's to wait for.
                let _ = vigil_rt::pm::try_wait(Some(stop.pid));
                live = live.saturating_sub(1);
                if live == 0 {
                    return Ok(calls);
                }
                continue;
            }
            other => println!("[{}] stop {other} at {:#x}", stop.pid, stop.rip),
        }
        trace::resume(stop.pid, mode::SYSCALLS).map_err(|e| format!("continue: {e}"))?;
    }
}

fn main(args: &str) -> i32 {
    match run(args) {
        Ok(calls) => {
            println!("done: {calls} system calls traced");
            0
        }
        Err(reason) => {
            println!("error: {reason}");
            1
        }
    }
}
