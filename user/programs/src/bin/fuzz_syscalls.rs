//! `fuzz_syscalls [seed=S] [calls=N]`: random system calls and kernel calls, with oracles.
//!
//! Each call gets a random number (every system call but the three that end the caller —
//! ThreadExit, ProcessExit, Panic — and numbers past the last one) and arguments drawn from
//! values that probe the boundary: addresses of its own writable memory (present, and
//! demand-zero pages not touched yet), its read-only memory, unmapped, null, kernel and
//! non-canonical addresses and ranges that straddle `USER_END`; lengths from 0 to 2^64 − 1;
//! its own, another process's, dead, stale and special endpoints; grant ids it holds and
//! ones it does not. Calls that could block for ever get only arguments that make them
//! return (a live partner that answers, a mutex word that differs, short sleeps), and
//! kernel calls with process or thread arguments name only the fuzzer itself or nobody,
//! so the machine stays up for the judge (`fuzz_judge`). Shutdown is never called.
//!
//! After every call: the registers the ABI preserves (RDI, RSI, RDX, R8–R10, R12–R15) still
//! hold what they held (RDX excepted for ThreadJoin, whose exit code comes back there), and
//! the result is a value or one of the documented error codes. Every 256 calls and at the
//! end: the read-only page still holds its pattern and the guard zones around the arena the
//! calls may write are untouched. Any violation prints `fuzz_syscalls: VIOLATION …` with the
//! call and exits with status 1; otherwise it reports progress every 10,000 calls and ends
//! with `fuzz_syscalls: PASS seed S: N calls …`.
//!
//! With `fuzz_judge` it first notifies the judge and waits for its go (so the judge can take
//! a baseline of free frames with every fuzzer loaded and idle); alone it starts at once.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::arch::asm;
use vigil_rt::abi::async_message::{async_flags, MAX_ASYNC_ENTRIES};
use vigil_rt::abi::layout::USER_END;
use vigil_rt::abi::syscall::{KernelCall, Syscall};
use vigil_rt::abi::vm::PAGE_SIZE;
use vigil_rt::{ipc, println, syscall, thread, vm, Endpoint, Error};

vigil_rt::entry!(main);

/// Bytes of the arena the calls may write, and of each guard zone around it.
const ARENA: usize = 32 * 1024;
const GUARD: usize = 4096;
/// The end of the arena no range starts in: calls write fixed-size objects at an address
/// whatever length they are given (a 64-byte message, up to `MAX_ASYNC_ENTRIES` async
/// entries), so a range starts at least this far from the guard zone.
const SLACK: usize = 8 * 1024;
const _: () = assert!(
    (MAX_ASYNC_ENTRIES + 1) * core::mem::size_of::<vigil_rt::abi::async_message::AsyncMessage>()
        <= SLACK
);
const GUARD_BYTE: u8 = 0xc5;
/// Dead endpoints kept for calls to aim at.
const DEAD_KEPT: usize = 64;
/// Pages of demand-zero memory asked of VM and left untouched by the fuzzer itself.
const FRESH_PAGES: u64 = 16;

/// A page in .rodata the kernel must never write.
static READ_ONLY: [u8; 4096] = {
    let mut page = [0u8; 4096];
    let mut i = 0;
    while i < page.len() {
        page[i] = (i as u8) ^ 0x5a;
        i += 1;
    }
    page
};

/// xorshift64*: small, seedable, good enough to spread calls.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// The fuzzer's world: its memory, the endpoints it knows, the grants it made.
struct Fuzzer {
    rng: Rng,
    /// `[guard][arena][guard]`; only the arena is ever handed to a call as writable memory.
    memory: Vec<u8>,
    /// Base of the untouched demand-zero mapping (0 without VM).
    fresh: u64,
    me: Endpoint,
    /// A live endpoint of another process that always answers (VM), if any.
    server: Option<Endpoint>,
    /// Live endpoints that must only get calls that cannot block (anyone else).
    bystanders: Vec<Endpoint>,
    /// Threads of ours that have exited and been joined: dead endpoints.
    dead: Vec<Endpoint>,
    /// Threads of ours that may still need joining.
    children: Vec<Endpoint>,
    grants: Vec<u64>,
    privileged: bool,
    pid: u64,
    calls: u64,
    errors: u64,
}

/// What one call was, for a violation report.
#[derive(Clone, Copy, Debug)]
struct Call {
    number: u64,
    args: [u64; 6],
}

/// Registers the ABI preserves, with the values put in them.
const SENTINELS: [u64; 4] = [
    0x1212_1212_1212_1212,
    0x1313_1313_1313_1313,
    0x1414_1414_1414_1414,
    0x1515_1515_1515_1515,
];

/// Makes `call` and checks the preserved registers; returns RAX.
fn raw_call(call: &Call) -> Result<u64, String> {
    let a = call.args;
    let (rax, rdi, rsi, rdx, r10, r8, r9): (u64, u64, u64, u64, u64, u64, u64);
    let (r12, r13, r14, r15): (u64, u64, u64, u64);
    // SAFETY: SYSCALL enters the kernel, which writes only RAX (and RDX for ThreadJoin),
    // RCX and R11 of this thread's registers — that is what is being checked. The calls that
    // end the thread are never chosen; the memory arguments point into this program's own
    // arena (which nothing here references during the call), at read-only or untouched
    // memory of its own, or at memory that is not its own at all, which the kernel refuses.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") call.number => rax,
            inlateout("rdi") a[0] => rdi,
            inlateout("rsi") a[1] => rsi,
            inlateout("rdx") a[2] => rdx,
            inlateout("r10") a[3] => r10,
            inlateout("r8") a[4] => r8,
            inlateout("r9") a[5] => r9,
            inlateout("r12") SENTINELS[0] => r12,
            inlateout("r13") SENTINELS[1] => r13,
            inlateout("r14") SENTINELS[2] => r14,
            inlateout("r15") SENTINELS[3] => r15,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    let join = call.number == Syscall::ThreadJoin as u64;
    // A register-message call that succeeded brings its message back in RDI, RDX, R10, R8
    // and R9; on failure they are preserved like every other register.
    let received = rax == 0
        && (call.number == Syscall::SendReceiveRegisters as u64
            || call.number == Syscall::ReplyReceiveRegisters as u64);
    let message_registers = ["rdi", "rdx", "r10", "r8", "r9"];
    let preserved = [
        ("rdi", rdi, a[0]),
        ("rsi", rsi, a[1]),
        ("r10", r10, a[3]),
        ("r8", r8, a[4]),
        ("r9", r9, a[5]),
        ("r12", r12, SENTINELS[0]),
        ("r13", r13, SENTINELS[1]),
        ("r14", r14, SENTINELS[2]),
        ("r15", r15, SENTINELS[3]),
    ];
    for (name, now, before) in preserved {
        if received && message_registers.contains(&name) {
            continue;
        }
        if now != before {
            return Err(format!("{name} was {before:#x}, came back {now:#x}"));
        }
    }
    if !join && !received && rdx != a[2] {
        return Err(format!("rdx was {:#x}, came back {rdx:#x}", a[2]));
    }
    Ok(rax)
}

/// Whether `rax` is a value or a documented error code.
fn documented(rax: u64) -> bool {
    let signed = rax as i64;
    signed >= 0
        || Error::ALL
            .iter()
            .any(|e| *e as u64 == signed.unsigned_abs())
}

/// Entry of the threads the fuzzer starts: exit at once with the argument as the code.
extern "C" fn child(code: u64, _endpoint: u64) -> ! {
    syscall::thread_exit(code)
}

impl Fuzzer {
    fn arena(&self) -> u64 {
        self.memory.as_ptr() as u64 + GUARD as u64
    }

    /// A range (address, length) of any kind; `writable` ranges stay inside the arena or
    /// fail on their own (read-only, unmapped, kernel, …).
    fn range(&mut self) -> (u64, u64) {
        let arena = self.arena();
        let len = self.length();
        match self.rng.below(12) {
            0..=4 => {
                let usable = (ARENA - SLACK) as u64;
                let len = len.min(usable);
                let offset = self.rng.below(usable - len + 1);
                (arena + offset, len)
            }
            5 => {
                let len = len.min(PAGE_SIZE);
                (
                    READ_ONLY.as_ptr() as u64 + self.rng.below(PAGE_SIZE - len + 1),
                    len,
                )
            }
            6 if self.fresh != 0 => {
                let len = len.min(FRESH_PAGES * PAGE_SIZE);
                let offset = self.rng.below(FRESH_PAGES * PAGE_SIZE - len + 1);
                (self.fresh + offset, len)
            }
            7 => (self.rng.pick(&[0, 8, 0x1000, 0x10_0000]), len),
            8 => (
                self.rng.pick(&[
                    0xffff_8000_0000_0000,
                    0xffff_ffff_8000_0000,
                    0xffff_ffff_ffff_f000,
                ]),
                len,
            ),
            9 => (
                self.rng
                    .pick(&[0x0000_8000_0000_0000, 0x8000_0000_0000_0000, 1 << 62]),
                len,
            ),
            10 => (USER_END - self.rng.below(64), len.max(65)),
            _ => {
                let address = self.rng.next();
                (address, self.rng.next())
            }
        }
    }

    fn length(&mut self) -> u64 {
        match self.rng.below(8) {
            0 => 0,
            1 => self.rng.pick(&[1, 4, 8, 63, 64, 65]),
            2 => self.rng.pick(&[4095, 4096, 4097, 8192]),
            3 => self
                .rng
                .pick(&[1 << 20, 1 << 32, u64::MAX, u64::MAX / 2 + 1]),
            _ => self.rng.below(256),
        }
    }

    /// An endpoint that makes no call block, even a receive: ourselves (SelfTarget), dead,
    /// stale, NONE or made up — never a live thread of another process, KERNEL or CLOCK
    /// (a receive from those could wait for ever).
    fn harmless_endpoint(&mut self) -> u64 {
        let stale = Endpoint::new(self.me.slot(), self.me.generation().wrapping_add(1)).0;
        let made_up = self.rng.below(1 << 20);
        let random = self.rng.next();
        let candidate = match self.rng.below(6) {
            0 => self.me.0,
            1 if !self.dead.is_empty() => self.rng.pick(&self.dead).0,
            2 => stale,
            3 => Endpoint::NONE.0,
            4 => made_up,
            _ => random,
        };
        let live = self
            .server
            .iter()
            .chain(&self.bystanders)
            .any(|e| e.0 == candidate);
        let waits = [Endpoint::ANY.0, Endpoint::KERNEL.0, Endpoint::CLOCK.0].contains(&candidate);
        if live || waits {
            Endpoint::NONE.0
        } else {
            candidate
        }
    }

    /// Any endpoint, for calls that never block (notify, non-blocking and async sends,
    /// grants).
    fn any_endpoint(&mut self) -> u64 {
        if self.rng.chance(3) {
            let mut live = self.bystanders.clone();
            live.extend(self.server);
            if !live.is_empty() {
                return self.rng.pick(&live).0;
            }
        }
        if self.rng.chance(8) {
            return Endpoint::ANY.0;
        }
        self.harmless_endpoint()
    }

    fn grant_id(&mut self) -> u64 {
        if !self.grants.is_empty() && self.rng.chance(2) {
            self.rng.pick(&self.grants)
        } else {
            let random = self.rng.next();
            self.rng.pick(&[0, 1, 0x1_0001, u64::MAX, random])
        }
    }

    /// A process id for the memory kernel calls: ours, or nobody's.
    fn pid(&mut self) -> u64 {
        let own = self.pid;
        self.rng.pick(&[own, 0, 9999, 1 << 32])
    }

    /// The next call.
    fn call(&mut self) -> Call {
        let number = if self.rng.chance(64) {
            self.rng.pick(&[24, 32, 99, 1000, u64::MAX])
        } else if self.rng.chance(256) {
            // A sleep lasts until the next 10 ms tick: a few of them, not one call in 20.
            Syscall::Sleep as u64
        } else if self.rng.chance(12) {
            // The register-message calls (numbers past the loop's range).
            self.rng.pick(&[
                Syscall::SendReceiveRegisters as u64,
                Syscall::ReplyReceiveRegisters as u64,
            ])
        } else {
            loop {
                let n = self.rng.below(24);
                if ![
                    Syscall::ThreadExit as u64,
                    Syscall::ProcessExit as u64,
                    Syscall::Panic as u64,
                    Syscall::Sleep as u64,
                ]
                .contains(&n)
                {
                    break n;
                }
            }
        };
        let mut args = [0u64; 6];
        for arg in &mut args {
            *arg = self.rng.next();
        }
        let (address, len) = self.range();
        match Syscall::from_number(number) {
            Some(Syscall::DebugWrite) => {
                // Mostly empty, rarely long: the console is for people.
                args[0] = address;
                args[1] = if self.rng.chance(256) { len } else { 0 };
            }
            Some(Syscall::Send | Syscall::SendReceive) => {
                // Blocking: only a partner that answers, or an endpoint that fails at once.
                args[0] = match (self.server, self.rng.chance(2)) {
                    (Some(server), true) => server.0,
                    _ => self.harmless_endpoint(),
                };
                args[1] = address;
            }
            Some(Syscall::Receive) => {
                args[0] = self.harmless_endpoint();
                args[1] = address;
            }
            Some(Syscall::ReplyReceive) => {
                // The reply never blocks; the receive only from a source that fails at once.
                args[0] = self.any_endpoint();
                args[1] = self.harmless_endpoint();
                args[2] = address;
            }
            Some(Syscall::SendReceiveRegisters) => {
                // As SendReceive; RSI is reserved (nonzero: InvalidArgument) and the random
                // RDX..R9 are the message (a kernel kind: InvalidArgument).
                args[0] = match (self.server, self.rng.chance(2)) {
                    (Some(server), true) => server.0,
                    _ => self.harmless_endpoint(),
                };
                args[1] = self.rng.pick(&[0, 0, 0, 1, u64::MAX]);
            }
            Some(Syscall::ReplyReceiveRegisters) => {
                // As ReplyReceive, the message in RDX..R9.
                args[0] = self.any_endpoint();
                args[1] = self.harmless_endpoint();
            }
            Some(Syscall::Notify) => args[0] = self.any_endpoint(),
            Some(Syscall::SendNonBlocking) => {
                args[0] = self.any_endpoint();
                args[1] = address;
            }
            Some(Syscall::SendAsync) => {
                args[0] = address;
                args[1] = self.rng.pick(&[
                    0,
                    1,
                    4,
                    MAX_ASYNC_ENTRIES as u64,
                    MAX_ASYNC_ENTRIES as u64 + 1,
                    len,
                ]);
                // Entries the kernel may deliver: write a plausible one into the arena.
                let arena = self.arena();
                if (arena..arena + ARENA as u64).contains(&address) && self.rng.chance(2) {
                    let destination = self.any_endpoint();
                    let at = (address - arena) as usize + GUARD;
                    if at + 16 <= GUARD + ARENA {
                        self.memory[at..at + 4].copy_from_slice(&async_flags::VALID.to_le_bytes());
                        self.memory[at + 4..at + 8].copy_from_slice(&0u32.to_le_bytes());
                        self.memory[at + 8..at + 16].copy_from_slice(&destination.to_le_bytes());
                    }
                }
            }
            Some(Syscall::ThreadCreate) => {
                args[0] = self.rng.pick(&[
                    child as *const () as u64,
                    0xffff_8000_0000_0000,
                    0x8000_0000_0000_0000,
                ]);
                args[1] = self.rng.below(1 << 20);
            }
            Some(Syscall::ThreadJoin) => {
                args[0] = match self.children.pop() {
                    Some(child) if self.rng.chance(2) => {
                        self.remember_dead(child);
                        child.0
                    }
                    other => {
                        self.children.extend(other);
                        self.harmless_endpoint()
                    }
                };
            }
            Some(Syscall::Sleep) => args[0] = self.rng.pick(&[0, 1, 1000]),
            Some(Syscall::AlarmSet) => {
                let random = self.rng.next();
                args[0] = self.rng.pick(&[0, 1_000_000, 50_000_000, u64::MAX, random])
            }
            Some(Syscall::MutexWait) => {
                args[0] = address & !3;
                let arena = self.arena();
                if (arena..arena + ARENA as u64 - 4).contains(&args[0]) {
                    // A word that differs from `expected`: the wait returns at once.
                    let at = (args[0] - arena) as usize + GUARD;
                    let word = u32::from_le_bytes(self.memory[at..at + 4].try_into().unwrap());
                    args[1] = u64::from(word) ^ 1;
                } else if self.rng.chance(2) {
                    args[0] = address;
                }
            }
            Some(Syscall::MutexWake) => args[0] = address,
            Some(Syscall::GrantCreate) => {
                args[0] = self.any_endpoint();
                args[1] = address;
                args[2] = len;
                args[3] = self.rng.below(5);
            }
            Some(Syscall::GrantRevoke) => args[0] = self.grant_id(),
            Some(Syscall::Lookup) => {
                args[0] = address;
                args[1] = len;
            }
            Some(Syscall::KernelCall) => self.kernel_call(&mut args, address, len),
            _ => {}
        }
        Call { number, args }
    }

    /// Arguments of a kernel call (its number in `args[0]`, its arguments after).
    fn kernel_call(&mut self, args: &mut [u64; 6], address: u64, len: u64) {
        let number = loop {
            let n = self.rng.below(20);
            if n != KernelCall::Shutdown as u64 {
                break n;
            }
        };
        args[0] = number;
        match KernelCall::from_number(number) {
            Some(KernelCall::SafeCopyFrom | KernelCall::SafeCopyTo) => {
                args[1] = self.any_endpoint();
                args[2] = self.grant_id();
                args[3] = self.rng.pick(&[0, 1, 4096, u64::MAX]);
                args[4] = address;
                args[5] = len;
            }
            Some(KernelCall::Snapshot) => {
                args[1] = address;
                args[2] = len;
            }
            Some(
                KernelCall::VmMap
                | KernelCall::VmUnmap
                | KernelCall::VmProtect
                | KernelCall::VmQuery,
            ) => {
                args[1] = self.pid();
                // Never our own arena or stacks: a page-aligned range of the untouched
                // mapping, an address nothing uses, or garbage.
                let random = self.rng.next();
                let fresh = self.fresh;
                args[2] = self
                    .rng
                    .pick(&[fresh, 0x5000_0000_0000, address & !0xfff, random]);
                let random = self.rng.next();
                args[3] = self.rng.pick(&[0, 1, 2, 512, 513, random]);
                args[4] = self.rng.below(3);
            }
            Some(KernelCall::VmMapShared) => {
                // Source and target: ourselves or nobody, so no one else's memory changes.
                let (source, target) = (self.pid(), self.pid());
                args[1] = (source & 0xffff_ffff) | (target & 0xffff_ffff) << 32;
                let random = self.rng.next();
                let fresh = self.fresh;
                args[2] = self.rng.pick(&[fresh, address & !0xfff, random]);
                args[3] = self.rng.pick(&[0x5000_0000_0000, fresh, random]);
                let random = self.rng.next();
                args[4] = self.rng.pick(&[0, 1, 512, 513, random]);
                args[5] = self.rng.below(3);
            }
            Some(KernelCall::VmLimitOf) => args[1] = self.pid(),
            Some(KernelCall::VmResume | KernelCall::VmFail | KernelCall::VmProcessOf) => {
                args[1] = self.harmless_endpoint();
            }
            _ => {}
        }
        // The memory kernel calls on our own pid could unmap our own memory: only the
        // untouched mapping and unused addresses are named, checked again here.
        if matches!(
            KernelCall::from_number(number),
            Some(KernelCall::VmUnmap | KernelCall::VmProtect)
        ) && args[1] == self.pid
            && args[2] != self.fresh
        {
            args[1] = 9999;
        }
    }

    /// Keeps `endpoint` among the dead ones (at most `DEAD_KEPT`, replacing at random, so a
    /// run of millions of calls does not grow the list without end).
    fn remember_dead(&mut self, endpoint: Endpoint) {
        if self.dead.len() < DEAD_KEPT {
            self.dead.push(endpoint);
        } else {
            let index = self.rng.below(DEAD_KEPT as u64) as usize;
            self.dead[index] = endpoint;
        }
    }

    /// Learns from the result of `call` (threads to join, grants to revoke).
    fn learn(&mut self, call: &Call, rax: u64) {
        if (rax as i64) < 0 {
            self.errors += 1;
            return;
        }
        match Syscall::from_number(call.number) {
            Some(Syscall::ThreadCreate) => self.children.push(Endpoint(rax)),
            Some(Syscall::GrantCreate) => self.grants.push(rax),
            _ => {}
        }
    }

    /// The read-only page and the guard zones are as they were.
    fn check_memory(&self) -> Result<(), String> {
        for (i, &byte) in READ_ONLY.iter().enumerate() {
            // SAFETY: reads a byte of a static; volatile so the check is not folded away.
            let now = unsafe { core::ptr::read_volatile(&byte) };
            if now != (i as u8) ^ 0x5a {
                return Err(format!("the read-only page changed at byte {i}"));
            }
        }
        let guards = self.memory[..GUARD]
            .iter()
            .chain(&self.memory[GUARD + ARENA..])
            .position(|&b| b != GUARD_BYTE);
        match guards {
            Some(at) => Err(format!("a guard zone byte changed ({at})")),
            None => Ok(()),
        }
    }

    /// Takes back what the calls created: threads, grants, the async table, the alarm.
    fn clean_up(&mut self) {
        let _ = syscall::alarm_set_ns(0);
        // SAFETY: an empty table is never read.
        let _ = unsafe { syscall::send_async(self.arena() as *mut _, 0) };
        for child in core::mem::take(&mut self.children) {
            let _ = syscall::thread_join(child);
        }
        for grant in core::mem::take(&mut self.grants) {
            let _ = syscall::grant_revoke(grant);
        }
    }
}

fn run(seed: u64, calls: u64) -> Result<String, String> {
    let mut memory = vec![GUARD_BYTE; GUARD + ARENA + GUARD];
    memory[GUARD..GUARD + ARENA].fill(0);
    let me = ipc::self_endpoint();
    let server = vm::server().ok();
    let fresh = match server {
        Some(_) => vm::map_anonymous(FRESH_PAGES * PAGE_SIZE, true).unwrap_or(0),
        None => 0,
    };
    let pid = vigil_rt::introspect::snapshot()
        .ok()
        .and_then(|s| {
            s.processes
                .iter()
                .find(|p| p.main_thread == me)
                .map(|p| p.pid)
        })
        .map_or(0, u64::from);
    // Everyone else the scenario boots: they get only calls that cannot block on them.
    let bystanders: Vec<Endpoint> = ["fuzz_judge", "fuzz_control", "fuzz_user", "fuzz_privileged"]
        .iter()
        .filter_map(|name| ipc::lookup(name).ok())
        .filter(|&endpoint| endpoint != me)
        .collect();
    let mut fuzzer = Fuzzer {
        rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
        memory,
        fresh,
        me,
        server,
        bystanders,
        dead: Vec::new(),
        children: Vec::new(),
        grants: Vec::new(),
        privileged: false,
        pid,
        calls: 0,
        errors: 0,
    };
    fuzzer.privileged = syscall::trace_mask(vigil_rt::abi::trace::DEFAULT_EVENT_MASK).is_ok();
    for index in 0..calls {
        let call = fuzzer.call();
        let rax = raw_call(&call).map_err(|e| format!("call {index}: {call:x?}: {e}"))?;
        if !documented(rax) {
            return Err(format!(
                "call {index}: {call:x?} returned {rax:#x}, not a value or a documented error"
            ));
        }
        fuzzer.learn(&call, rax);
        fuzzer.calls += 1;
        if index % 256 == 255 {
            fuzzer
                .check_memory()
                .map_err(|e| format!("after call {index} ({call:x?}): {e}"))?;
            // Threads and grants do not pile up past what the kernel allows.
            if fuzzer.children.len() > 32 || fuzzer.grants.len() > 32 {
                fuzzer.clean_up();
            }
        }
        if index % 10_000 == 9_999 {
            println!(
                "fuzz_syscalls: seed {seed}: {} calls, {} refused",
                fuzzer.calls, fuzzer.errors
            );
        }
    }
    fuzzer.clean_up();
    if fuzzer.privileged {
        let _ = syscall::trace_mask(vigil_rt::abi::trace::DEFAULT_EVENT_MASK);
    }
    fuzzer.check_memory()?;
    Ok(format!(
        "seed {seed}: {} calls ({} refused with documented errors){}; registers, results, \
         read-only memory and guard zones intact",
        fuzzer.calls,
        fuzzer.errors,
        if fuzzer.privileged {
            ", with kernel calls"
        } else {
            ""
        }
    ))
}

/// `key=value` words of the argument string.
fn option(args: &str, key: &str, default: u64) -> Result<u64, String> {
    match args
        .split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
    {
        Some(value) => value
            .parse()
            .map_err(|_| format!("{key}={value} is not a number")),
        None => Ok(default),
    }
}

/// With a judge: tell it we are loaded and idle, and wait for its go.
fn wait_for_judge() {
    if let Ok(judge) = ipc::lookup("fuzz_judge") {
        let _ = ipc::notify(judge);
        let _ = ipc::receive(judge);
    }
}

fn main(args: &str) -> i32 {
    let (seed, calls) = match (option(args, "seed", 1), option(args, "calls", 10_000)) {
        (Ok(seed), Ok(calls)) => (seed, calls),
        (Err(e), _) | (_, Err(e)) => {
            println!("fuzz_syscalls: usage: fuzz_syscalls [seed=S] [calls=N]: {e}");
            return 2;
        }
    };
    wait_for_judge();
    if calls == 0 {
        return 0;
    }
    thread::yield_now();
    match run(seed, calls) {
        Ok(summary) => {
            println!("fuzz_syscalls: PASS {summary}");
            0
        }
        Err(violation) => {
            println!("fuzz_syscalls: VIOLATION {violation}");
            1
        }
    }
}
