//! `errors`: checks that every error path of the system-call interface returns the right
//! `Error`, one line per case, then PASS or FAIL and shutdown.
//!
//! Boot with `kcalls=shutdown ipc=errors+errors_helper`, together with `errors_helper` (an
//! echo server) and `errors_helper name=errors_forbidden` (alive, but outside the ipc mask).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::AtomicU32;
use core::time::Duration;

use vigil_programs::{expect_error, finish, kinds, lookup_with_retry};
use vigil_rt::abi::async_message::MAX_ASYNC_ENTRIES;
use vigil_rt::abi::message::{RegisterMessage, KIND_NOTIFY};
use vigil_rt::abi::syscall::{grant_access, Syscall};
use vigil_rt::ipc::{self, AsyncTable, GrantId};
use vigil_rt::syscall::{syscall0, syscall2};
use vigil_rt::{println, start, syscall, thread, Endpoint, Error, Message};

vigil_rt::entry!(main);

/// Not mapped: user half, far from the image (0x400000…) and the stacks (0x7f00…).
const UNMAPPED_USER_ADDRESS: u64 = 0x0000_5000_0000_0000;
/// The start of the kernel half.
const KERNEL_ADDRESS: u64 = 0xffff_8000_0000_0000;
/// Below the first mapped page (the first 4 MiB are never mapped).
const NULL_PAGE_ADDRESS: u64 = 0x10;
/// A system call number that does not exist.
const UNKNOWN_SYSCALL: u64 = 999;

/// A message in .rodata: readable, not writable.
static READ_ONLY_MESSAGE: Message = Message::new(kinds::ECHO);

/// The processes the cases talk to.
struct Peers {
    helper: Endpoint,
    forbidden: Endpoint,
}

/// Collects the verdicts of the cases.
struct Cases {
    passed: u32,
    failures: Vec<String>,
}

impl Cases {
    fn check(&mut self, name: &str, outcome: Result<(), String>) {
        match outcome {
            Ok(()) => {
                self.passed += 1;
                println!("case {name}: ok");
            }
            Err(reason) => {
                println!("case {name}: WRONG: {reason}");
                self.failures.push(String::from(name));
            }
        }
    }

    /// Checks that `result` is `Err(expected)`.
    fn expect<T: core::fmt::Debug>(
        &mut self,
        name: &str,
        result: Result<T, Error>,
        expected: Error,
    ) {
        let outcome = expect_error(name, result, expected);
        let name = format!("{name} -> {}", expected.name());
        self.check(&name, outcome);
    }
}

fn main(_args: &str) -> i32 {
    finish("errors", run())
}

fn run() -> Result<String, String> {
    let peers = Peers {
        helper: lookup_with_retry("errors_helper")?,
        forbidden: lookup_with_retry("errors_forbidden")?,
    };
    let mut cases = Cases {
        passed: 0,
        failures: Vec::new(),
    };
    cases.check(
        "control: echo round trip with the helper",
        echo(peers.helper),
    );
    endpoint_cases(&mut cases, &peers);
    pointer_cases(&mut cases, &peers);
    privilege_cases(&mut cases, &peers);
    thread_cases(&mut cases);
    misc_cases(&mut cases);
    grant_and_join_cases(&mut cases, &peers);
    exit_code_cases(&mut cases);
    debug_write_cases(&mut cases);
    register_cases(&mut cases, &peers);
    cases.check("control: the helper still answers", echo(peers.helper));
    if cases.failures.is_empty() {
        Ok(format!("{} cases", cases.passed))
    } else {
        Err(format!(
            "{} of {} cases wrong: {}",
            cases.failures.len(),
            cases.failures.len() as u32 + cases.passed,
            cases.failures.join("; ")
        ))
    }
}

fn echo(helper: Endpoint) -> Result<(), String> {
    let mut message = Message::new(kinds::ECHO);
    ipc::send_receive(helper, &mut message).map_err(|error| format!("send_receive: {error}"))?;
    if message.kind == kinds::ECHO_REPLY && message.source == helper {
        Ok(())
    } else {
        Err(format!(
            "reply of kind {:#x} from {}",
            message.kind, message.source
        ))
    }
}

/// Dead, stale, special and out-of-range endpoints, and oneself.
fn endpoint_cases(cases: &mut Cases, peers: &Peers) {
    let message = Message::new(kinds::ECHO);

    let finished = thread::spawn(|| {});
    let dead = finished.endpoint();
    let joined = finished.join();
    cases.check(
        "join a finished thread",
        joined.map(|_| ()).map_err(|e| format!("join: {e}")),
    );
    cases.expect(
        "notify a joined thread",
        ipc::notify(dead),
        Error::DeadEndpoint,
    );
    cases.expect(
        "send to a joined thread",
        ipc::send(dead, &message),
        Error::DeadEndpoint,
    );

    let helper = peers.helper;
    let stale = Endpoint::new(helper.slot(), helper.generation().wrapping_add(1));
    cases.expect(
        "send to the helper's slot with generation + 1",
        ipc::send(stale, &message),
        Error::DeadEndpoint,
    );

    for (name, special) in [
        ("ANY", Endpoint::ANY),
        ("NONE", Endpoint::NONE),
        ("CLOCK", Endpoint::CLOCK),
        ("KERNEL", Endpoint::KERNEL),
    ] {
        cases.expect(
            &format!("send to special endpoint {name}"),
            ipc::send(special, &message),
            Error::BadEndpoint,
        );
    }
    cases.expect(
        "notify special endpoint CLOCK",
        ipc::notify(Endpoint::CLOCK),
        Error::BadEndpoint,
    );
    cases.expect(
        "send to an endpoint with reserved bits set",
        ipc::send(Endpoint(1 << 48), &message),
        Error::BadEndpoint,
    );
    cases.expect(
        "send to slot 65535 (beyond the thread table)",
        ipc::send(Endpoint::new(u16::MAX, 1), &message),
        Error::BadEndpoint,
    );

    // A message of a kernel kind would pass for a notification (or a page fault).
    let forged = Message::new(vigil_rt::abi::message::KIND_NOTIFY);
    cases.expect(
        "send a message of the kernel's notification kind",
        ipc::send(helper, &forged),
        Error::InvalidArgument,
    );

    let me = ipc::self_endpoint();
    cases.expect("send to self", ipc::send(me, &message), Error::SelfTarget);
    let mut round_trip = message;
    cases.expect(
        "send_receive to self",
        ipc::send_receive(me, &mut round_trip),
        Error::SelfTarget,
    );
    cases.expect("join self", syscall::thread_join(me), Error::SelfTarget);
}

/// Raw `Send` with a message pointer.
fn send_raw(destination: Endpoint, address: u64) -> Result<u64, Error> {
    // SAFETY: Send only reads at `address`; the addresses used here are not mapped for this
    // process (or read-only), so the kernel must refuse them with Fault and nothing of ours
    // can be changed.
    Error::from_return_value(unsafe { syscall2(Syscall::Send as u64, destination.0, address) })
}

/// Raw `Receive` into a message pointer.
fn receive_raw(from: Endpoint, address: u64) -> Result<u64, Error> {
    // SAFETY: the addresses used here are unmapped, kernel or read-only memory: the kernel
    // must refuse them with Fault before blocking, and cannot write any memory of ours.
    Error::from_return_value(unsafe { syscall2(Syscall::Receive as u64, from.0, address) })
}

/// Raw `DebugWrite`.
fn debug_write_raw(address: u64, len: u64) -> Result<u64, Error> {
    // SAFETY: DebugWrite only reads; the address is not readable user memory of ours.
    Error::from_return_value(unsafe { syscall2(Syscall::DebugWrite as u64, address, len) })
}

/// Bad message and text pointers: every one must fail with Fault and change nothing.
fn pointer_cases(cases: &mut Cases, peers: &Peers) {
    let helper = peers.helper;
    for (name, address) in [
        ("0x10", NULL_PAGE_ADDRESS),
        ("an unmapped user address", UNMAPPED_USER_ADDRESS),
        ("a kernel address", KERNEL_ADDRESS),
        ("a non-canonical address", 0x0000_8000_0000_0000),
    ] {
        cases.expect(
            &format!("send with the message at {name}"),
            send_raw(helper, address),
            Error::Fault,
        );
        cases.expect(
            &format!("receive into {name}"),
            receive_raw(Endpoint::ANY, address),
            Error::Fault,
        );
        cases.expect(
            &format!("debug_write from {name}"),
            debug_write_raw(address, 16),
            Error::Fault,
        );
    }
    // The last 32 bytes of the image's last page are ours; the next page is not.
    let image_end = start::image_end();
    if image_end != 0 {
        let straddling = image_end.next_multiple_of(4096) - 32;
        cases.expect(
            "send with a message straddling the end of the image",
            send_raw(helper, straddling),
            Error::Fault,
        );
        cases.expect(
            "debug_write of text straddling the end of the image",
            debug_write_raw(straddling, 64),
            Error::Fault,
        );
    }
    cases.expect(
        "receive into read-only memory (.rodata)",
        receive_raw(Endpoint::ANY, &READ_ONLY_MESSAGE as *const Message as u64),
        Error::Fault,
    );
}

/// The ipc mask and the kernel-call mask.
fn privilege_cases(cases: &mut Cases, peers: &Peers) {
    let message = Message::new(kinds::ECHO);
    cases.expect(
        "send to a process outside the ipc mask",
        ipc::send(peers.forbidden, &message),
        Error::PermissionDenied,
    );
    cases.expect(
        "notify a process outside the ipc mask",
        ipc::notify(peers.forbidden),
        Error::PermissionDenied,
    );
    let mut buffer = [0u8; 16];
    cases.expect(
        "SafeCopyFrom without the safecopy privilege",
        ipc::safe_copy_from(peers.helper, GrantId(0), 0, &mut buffer),
        Error::PermissionDenied,
    );
    cases.expect(
        "SafeCopyTo without the safecopy privilege",
        ipc::safe_copy_to(peers.helper, GrantId(0), 0, &buffer),
        Error::PermissionDenied,
    );
}

/// Deadlock (ELOCKED), NotReady, PartnerDied: threads of this process.
fn thread_cases(cases: &mut Cases) {
    let main_thread = ipc::self_endpoint();

    // B blocks sending to A (this thread); A sending to B would close the cycle.
    let sender = thread::spawn(move || {
        let mut message = Message::new(kinds::THREAD_MESSAGE);
        message.payload[0] = 42;
        if let Err(error) = ipc::send(main_thread, &message) {
            println!("thread B: send to the main thread failed: {error}");
        }
    });
    thread::sleep(Duration::from_millis(50));
    cases.expect(
        "send to a thread blocked sending to us (cycle)",
        ipc::send(sender.endpoint(), &Message::new(kinds::THREAD_MESSAGE)),
        Error::Deadlock,
    );
    let unblocked = match ipc::receive(sender.endpoint()) {
        Ok(message) if message.payload[0] == 42 => Ok(()),
        Ok(message) => Err(format!("got payload {} from B", message.payload[0])),
        Err(error) => Err(format!("receive from B: {error}")),
    };
    cases.check("then receiving B's message unblocks both", unblocked);
    cases.check(
        "and B finishes",
        sender
            .join()
            .map(|_| ())
            .map_err(|e| format!("join B: {e}")),
    );

    // A sleeping thread is not waiting for a message.
    let sleeper = thread::spawn(|| thread::sleep(Duration::from_millis(200)));
    thread::sleep(Duration::from_millis(20));
    cases.expect(
        "send_nonblocking to a sleeping thread",
        ipc::send_nonblocking(sleeper.endpoint(), &Message::new(kinds::THREAD_MESSAGE)),
        Error::NotReady,
    );
    let _ = sleeper.join();

    // A partner that takes the request and exits without replying.
    let quitter = thread::spawn(|| {
        let _ = ipc::receive(Endpoint::ANY);
    });
    let mut request = Message::new(kinds::THREAD_MESSAGE);
    cases.expect(
        "send_receive to a thread that exits without replying",
        ipc::send_receive(quitter.endpoint(), &mut request),
        Error::PartnerDied,
    );
    let _ = quitter.join();
}

/// One DebugWrite prints a bounded part (8 lines, 512 bytes) and says how much it took;
/// writing the rest takes further calls, and every byte is printed once.
fn debug_write_cases(cases: &mut Cases) {
    let mut flood = [0u8; 4096];
    for (index, pair) in flood.chunks_mut(2).enumerate() {
        pair[0] = b'a' + (index % 26) as u8;
        pair[1] = b'\n';
    }
    let mut calls = 0;
    let mut taken = 0;
    let mut most = 0;
    while taken < flood.len() {
        match syscall::debug_write(&flood[taken..]) {
            Ok(n) if n > 0 => {
                calls += 1;
                taken += n as usize;
                most = most.max(n);
            }
            other => {
                cases.check("debug_write of 2,048 lines", Err(format!("gave {other:?}")));
                return;
            }
        }
    }
    cases.check(
        "debug_write of 2,048 lines takes 8 lines per call (256 calls)",
        if calls == 256 && most == 16 {
            Ok(())
        } else {
            Err(format!("{calls} calls, at most {most} bytes per call"))
        },
    );
    // One long line: 512 bytes per call, cut on a character boundary ('é' is 2 bytes, and
    // 512 falls inside one after a 1-byte prefix).
    let mut line = [0u8; 1025];
    line[0] = b'>';
    for pair in line[1..].chunks_mut(2) {
        pair.copy_from_slice("é".as_bytes());
    }
    let first = syscall::debug_write(&line);
    let second = first.and_then(|n| syscall::debug_write(&line[n as usize..]));
    cases.check(
        "debug_write of a 1,025-byte line takes 511 bytes (a character boundary), then 512",
        match (first, second) {
            (Ok(511), Ok(512)) => Ok(()),
            other => Err(format!("took {other:?}")),
        },
    );
}

/// Unknown calls, limits, names and grants.
fn misc_cases(cases: &mut Cases) {
    // SAFETY: an unknown system call number must be refused without any effect.
    let unknown = Error::from_return_value(unsafe { syscall0(UNKNOWN_SYSCALL) });
    cases.expect("system call 999", unknown, Error::NoSuchCall);

    let oversized = AsyncTable::new(MAX_ASYNC_ENTRIES + 1);
    cases.expect(
        "send_async with MAX_ASYNC_ENTRIES + 1 entries",
        oversized.submit(),
        Error::InvalidArgument,
    );
    cases.expect(
        "lookup of a name no boot process has",
        ipc::lookup("no_such_process"),
        Error::NotFound,
    );
    cases.expect("lookup of an empty name", ipc::lookup(""), Error::NotFound);
    cases.expect(
        "revoke a grant that does not exist",
        ipc::grant_revoke(GrantId(0xdead)),
        Error::BadGrant,
    );

    let word = AtomicU32::new(0);
    let misaligned = word.as_ptr() as u64 + 1;
    // SAFETY: MutexWait only reads the word; a misaligned address must be refused before
    // that (and would still point into our own live `word`).
    let waited =
        Error::from_return_value(unsafe { syscall2(Syscall::MutexWait as u64, misaligned, 0) });
    cases.expect(
        "mutex_wait on a misaligned address",
        waited,
        Error::InvalidArgument,
    );
    // SAFETY: an entry point in the never-mapped first page must be refused; if it were
    // accepted, the new thread would only fault on its first instruction.
    let created = unsafe { syscall::thread_create(NULL_PAGE_ADDRESS, 0) };
    cases.expect(
        "thread_create with the entry at 0x10",
        created,
        Error::InvalidArgument,
    );
}

/// Grants with bad arguments, and joining a thread of another process.
/// Create/revoke cycles that would wrap a 16-bit grant generation.
const GRANT_CYCLES: u32 = 1 << 16;

/// Join returns every exit code, including those that would read as error codes in RAX:
/// from a thread already dead when joined, and from one the joiner waits for.
fn exit_code_cases(cases: &mut Cases) {
    for code in [u64::MAX - 2, 1 << 63, u64::MAX, 7] {
        for waits in [false, true] {
            let thread = vigil_rt::thread::spawn(move || {
                if waits {
                    vigil_rt::thread::sleep(core::time::Duration::from_millis(2));
                }
                syscall::thread_exit(code)
            });
            if !waits {
                vigil_rt::thread::sleep(core::time::Duration::from_millis(2));
            }
            let how = if waits {
                "waiting for it"
            } else {
                "already dead"
            };
            let joined = thread.join();
            cases.check(
                &format!("join a thread that exits with {code:#x} ({how})"),
                match joined {
                    Ok(got) if got == code => Ok(()),
                    other => Err(format!("joined with {other:?}")),
                },
            );
        }
    }
}

fn grant_and_join_cases(cases: &mut Cases, peers: &Peers) {
    let buffer = [0u8; 64];
    // SAFETY: the grant is refused (access 0); even if it were created, it would only be
    // READ-able memory of ours that lives until the end of this function, where the
    // grant is revoked below if it exists.
    let no_access = unsafe { ipc::grant_create(peers.helper, buffer.as_ptr(), buffer.len(), 0) };
    if let Ok(grant) = no_access {
        let _ = ipc::grant_revoke(grant);
    }
    cases.expect(
        "grant_create with no access bits",
        no_access,
        Error::InvalidArgument,
    );
    // SAFETY: the address is not mapped, so the kernel must refuse the grant with Fault;
    // no memory of ours is exposed.
    let unmapped = unsafe {
        ipc::grant_create(
            peers.helper,
            UNMAPPED_USER_ADDRESS as *const u8,
            4096,
            grant_access::READ,
        )
    };
    cases.expect("grant_create of unmapped memory", unmapped, Error::Fault);
    // A revoked grant id is never issued again, even after 65,536 create/revoke cycles
    // on one slot (a 16-bit generation would wrap there).
    let mut first = None;
    let mut reissued = false;
    for _ in 0..=GRANT_CYCLES {
        // SAFETY: READ access to our own buffer, which outlives the grant: it is revoked
        // at once.
        let grant = unsafe {
            ipc::grant_create(
                peers.helper,
                buffer.as_ptr(),
                buffer.len(),
                grant_access::READ,
            )
        };
        let Ok(grant) = grant else {
            println!("errors: WRONG: grant_create failed in the reissue cycle: {grant:?}");
            break;
        };
        let _ = ipc::grant_revoke(grant);
        match first {
            None => first = Some(grant),
            Some(first) => reissued |= first == grant,
        }
    }
    let stale = first.map_or(Err(Error::BadGrant), |first| {
        if reissued {
            Ok(())
        } else {
            ipc::grant_revoke(first)
        }
    });
    cases.expect(
        "revoke a grant id revoked 65,536 create/revoke cycles ago (never reissued)",
        stale,
        Error::BadGrant,
    );
    cases.expect(
        "join a thread of another process",
        syscall::thread_join(peers.helper),
        Error::PermissionDenied,
    );
}

/// The register-message calls: a round trip with the (memory-message) helper, then bad
/// input, each refused with its error and nothing received.
fn register_cases(cases: &mut Cases, peers: &Peers) {
    let request = RegisterMessage {
        kind: kinds::ECHO,
        tag: 7,
        payload: [1, 2, 3],
    };
    let round_trip = ipc::send_receive_registers(peers.helper, &request);
    cases.check(
        "register round trip with the helper (memory calls on its side)",
        match round_trip {
            Ok((source, reply)) if source == peers.helper && reply.kind == kinds::ECHO_REPLY => {
                Ok(())
            }
            Ok((source, reply)) => Err(format!("reply of kind {:#x} from {source}", reply.kind)),
            Err(error) => Err(format!("send_receive_registers: {error}")),
        },
    );
    cases.expect(
        "send_receive_registers with the reserved RSI nonzero",
        syscall::register_message_call(
            Syscall::SendReceiveRegisters as u64,
            peers.helper,
            1,
            &request,
        ),
        Error::InvalidArgument,
    );
    cases.expect(
        "send_receive_registers of a kernel kind",
        ipc::send_receive_registers(peers.helper, &RegisterMessage::new(KIND_NOTIFY)),
        Error::InvalidArgument,
    );
    cases.expect(
        "send_receive_registers to a forbidden process",
        ipc::send_receive_registers(peers.forbidden, &request),
        Error::PermissionDenied,
    );
    cases.expect(
        "send_receive_registers to self",
        ipc::send_receive_registers(ipc::self_endpoint(), &request),
        Error::SelfTarget,
    );
    cases.expect(
        "send_receive_registers to NONE",
        ipc::send_receive_registers(Endpoint::NONE, &request),
        Error::BadEndpoint,
    );
    // A sleeping thread is waiting for nothing: the reply is refused and nothing received.
    let sleeper = thread::spawn(|| thread::sleep(Duration::from_millis(200)));
    thread::sleep(Duration::from_millis(20));
    cases.expect(
        "reply_receive_registers to a sleeping thread",
        ipc::reply_receive_registers(sleeper.endpoint(), Endpoint::ANY, &request),
        Error::NotReady,
    );
    let _ = sleeper.join();
}
