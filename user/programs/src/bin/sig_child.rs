//! `sig_child`: the program `sig_test` (scenario `pm-signals`) spawns through PM, and the
//! boot process `sig_victim`. Its arguments say what it does: `segv` (read address 0),
//! `catchsegv` (catch SIGSEGV, read address 0: the handler exits with 77), `edgecatch
//! PARENT` (as `catch`, but asleep with its stack pointer on a page boundary 96 KiB down,
//! so the signal frame lands on a stack page VM has not mapped yet; exits 43),
//! `catch PARENT` (catch SIGUSR1, tell the parent, sleep: the signal must interrupt the
//! sleep with EINTR after the handler ran; exits 42), `spin` (count forever), `send PARENT`
//! / `recv PARENT` / `mutex` / `sleep` (block there forever, to be killed), `victim` (wait
//! for a message, then read address 0).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use core::sync::atomic::{AtomicU64, Ordering};

use vigil_rt::abi::signal::Signal;
use vigil_rt::signal::{self, Action};
use vigil_rt::sync::Mutex;
use vigil_rt::{ipc, println, syscall, thread, Endpoint, Error, Message};

vigil_rt::entry!(main);

/// The first message kind a child sends its parent ("I am ready").
pub const READY: u32 = 0x5160_0001;

static CAUGHT: AtomicU64 = AtomicU64::new(0);

fn on_usr1(signal: Signal) {
    if signal == Signal::USR1 {
        CAUGHT.fetch_add(1, Ordering::Relaxed);
    }
}

fn on_segv(signal: Signal) {
    println!("{} caught in its handler", signal.name());
    vigil_rt::process::exit(if signal == Signal::SEGV { 77 } else { 1 });
}

fn main(args: &str) -> i32 {
    let mut words = args.split_whitespace();
    let mode = words.next();
    let parent = Endpoint(words.next().and_then(|w| w.parse().ok()).unwrap_or(0));
    match mode {
        Some("segv") => {
            let value = vigil_programs::read_address_zero();
            println!("FAIL: read {value:#x} from address 0 and survived");
            1
        }
        Some("catchsegv") => {
            if let Err(error) = signal::action(Signal::SEGV, Action::Handler(on_segv)) {
                println!("FAIL: sigaction: {error}");
                return 1;
            }
            let value = vigil_programs::read_address_zero();
            println!("FAIL: read {value:#x} from address 0 and survived");
            1
        }
        Some("victim") => {
            let _ = ipc::receive(Endpoint::ANY);
            let value = vigil_programs::read_address_zero();
            println!("FAIL: read {value:#x} from address 0 and survived");
            1
        }
        Some("catch") => catch(parent),
        Some("edgecatch") => edge_catch(parent),
        Some("spin") => {
            let mut count = 0u64;
            loop {
                count = core::hint::black_box(count.wrapping_add(1));
            }
        }
        Some("send") => {
            let _ = ipc::send(parent, &Message::new(READY + 1));
            1
        }
        Some("recv") => {
            let _ = ipc::receive(parent);
            1
        }
        Some("sleep") => {
            let _ = syscall::sleep_ns(3_600_000_000_000);
            1
        }
        Some("mutex") => {
            let lock: &'static Mutex<u32> =
                alloc::boxed::Box::leak(alloc::boxed::Box::new(Mutex::new(0u32)));
            let held = lock.lock();
            let other = thread::spawn(move || {
                let _ = *lock.lock();
            });
            let _ = other.join();
            drop(held);
            1
        }
        _ => {
            println!("unknown arguments {args:?}");
            2
        }
    }
}

/// Catches SIGUSR1, says so to `parent`, and sleeps until the signal interrupts it.
fn catch(parent: Endpoint) -> i32 {
    if let Err(error) = signal::action(Signal::USR1, Action::Handler(on_usr1)) {
        println!("FAIL: sigaction: {error}");
        return 1;
    }
    if let Err(error) = ipc::send(parent, &Message::new(READY)) {
        println!("FAIL: telling the parent: {error}");
        return 1;
    }
    let slept = syscall::sleep_ns(60_000_000_000);
    let caught = CAUGHT.load(Ordering::Relaxed);
    if slept != Err(Error::Interrupted) || caught != 1 {
        println!("FAIL: sleep ended with {slept:?}, handler ran {caught} times");
        return 1;
    }
    println!("caught SIGUSR1 from another process; the sleep returned EINTR");
    42
}

/// As `catch`, with the sleep made at a page boundary below 96 KiB of touched stack: the
/// page under it has never been touched, so the kernel must have VM map it for the frame.
fn edge_catch(parent: Endpoint) -> i32 {
    if let Err(error) = signal::action(Signal::USR1, Action::Handler(on_usr1)) {
        println!("FAIL: sigaction: {error}");
        return 1;
    }
    if let Err(error) = ipc::send(parent, &Message::new(READY)) {
        println!("FAIL: telling the parent: {error}");
        return 1;
    }
    let slept = sleep_at_page_edge();
    let caught = CAUGHT.load(Ordering::Relaxed);
    if slept != Err(Error::Interrupted) || caught != 1 {
        println!("FAIL: edge sleep ended with {slept:?}, handler ran {caught} times");
        return 1;
    }
    println!("caught SIGUSR1 with its frame on a stack page VM had not mapped");
    43
}

#[inline(never)]
fn sleep_at_page_edge() -> Result<u64, Error> {
    let pad = core::hint::black_box([0u8; 96 * 1024]);
    let rax: u64;
    // SAFETY: the stack pointer moves down to the page boundary below it (memory below the
    // stack pointer is free) for one Sleep call, which touches no user memory, and is put
    // back from R12 (declared clobbered) right after; RCX and R11 are SYSCALL's.
    unsafe {
        core::arch::asm!(
            "mov r12, rsp",
            "and rsp, -4096",
            "syscall",
            "mov rsp, r12",
            inlateout("rax") vigil_rt::abi::syscall::Syscall::Sleep as u64 => rax,
            in("rdi") 60_000_000_000u64,
            out("rcx") _,
            out("r11") _,
            out("r12") _,
        );
    }
    core::hint::black_box(&pad);
    Error::from_return_value(rax)
}
