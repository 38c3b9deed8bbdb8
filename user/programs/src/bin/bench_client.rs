//! `bench_client`: micro-benchmarks in TSC cycles (under `-icount shift=0`, guest
//! instructions). Each measurement warms up, then times 10,000 iterations one by one with
//! `rdtsc` and prints exactly one line
//! `bench: <name> median_cycles=<n> min_cycles=<n> iterations=<n>`, for
//! - `null_syscall`: the SelfEndpoint system call;
//! - `ipc_roundtrip`: send_receive of a null message to `bench_server` and its reply;
//! - `notify_roundtrip`: notify `bench_server`, receive its notification back;
//! - `ipc_call_replyrecv` / `_64` / `_untraced`: send_receive to `bench_replyrecv`, a
//!   `bench_server` answering with ReplyReceive (seL4's Call + ReplyRecv): a null message,
//!   a full 64-byte message (echoed back), and null with tracing off;
//! - `ipc_call_replyrecv_regs` / `_untraced`: the same round trip with register messages
//!   (`SendReceiveRegisters` to `bench_regs`, a `bench_server` answering with
//!   `ReplyReceiveRegisters`): the IPC fast path's headline row; every payload word is set,
//!   echoed back and checked;
//! - `tsc_read_overhead`: two back-to-back `tsc()` reads (sel4bench's counter overhead);
//! - `ipc_regs_call_oneway` / `ipc_regs_replyrecv_oneway` / `ipc_regs_oneway_sum` /
//!   `ipc_regs_oneway_sum_untraced`: the register round trip to `bench_regs_timed` timed one
//!   way at a time as sel4bench times seL4 (client's read before the call to the server's
//!   read after its receive returns; server's read before its reply to the client's read
//!   after its call returns), each less `tsc_read_overhead`'s median, and their sum per
//!   sample (with the default mask, and the sum with tracing off);
//! - `context_switch`: two threads of this process alternating with yield_now (one sample
//!   is a yield there and back, so it is halved: cycles per switch);
//! - `null_syscall_traced` / `ipc_roundtrip_untraced`: the same with the trace mask changed
//!   (every syscall traced / nothing traced), so a trace event's cost and the overhead of
//!   tracing on IPC show as differences and ratios;
//! - `snapshot_<n>_threads`: one snapshot kernel call with about `n` threads alive (idle
//!   threads are added to reach 10, 100 and 1000), with `per_thread_cycles=` added;
//! - `vm_fault_demand_zero`: the first touch of a page of an anonymous mapping — the page
//!   fault, the kernel's message to the VM server, its decision, `VmMap`, `VmResume` and
//!   the return to the faulting instruction;
//! - `vm_fault_phase_{to_vm,decide,map,resume,back}`: where a demand-zero fault's
//!   instructions go, from VM's timestamps of the fault (`vm::fault_times`): the kernel
//!   entry and the message to VM up to VM's receive returning; VM's decision; its `VmMap`
//!   call; its `VmResume` call; and from there back to the faulting instruction (VM's next
//!   receive, the switch, the return to user mode);
//! - `vm_map_touch_unmap`: asking VM for a one-page mapping, touching it, unmapping it
//!   (three requests to VM and one fault);
//!
//! - `wake_lateness_quiet` / `wake_lateness_flood`: how late a 10 ms sleep of this
//!   (priority 8) thread wakes, quiet and while the priority-12 `bench_flood` floods the
//!   console with 4,096-byte DebugWrites; each line adds `max_cycles=` (the worst case);
//!
//! then `bench: done`, and shuts down with success. Boot with
//! `kcalls=shutdown+snapshot+tracemask` and enough memory for 1000 thread stacks (256M),
//! after the VM server (`vm kcalls=vm`).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use vigil_abi::message::RegisterMessage;
use vigil_abi::trace::{EventKind, DEFAULT_EVENT_MASK};
use vigil_programs::{lookup_with_retry, median_and_min};
use vigil_rt::{
    introspect, ipc, pm, println, process, syscall, thread, tsc, vm, Endpoint, Message,
};

vigil_rt::entry!(main);

const ITERATIONS: usize = 10_000;
const WARMUP: usize = 1_000;

fn main(_args: &str) -> i32 {
    let Some(server) = server_named("bench_server") else {
        process::shutdown(false);
    };
    // Each step says which one failed, so a failure can be told apart from another.
    let step = |name: &str, ok: bool| {
        if !ok {
            println!("bench: FAIL: step {name} failed");
        }
        ok
    };
    let mut ok = true;
    ok &= step(
        "null_syscall",
        measure("null_syscall", 1, || syscall::self_endpoint().is_ok()),
    );
    ok &= step(
        "ipc_roundtrip",
        measure("ipc_roundtrip", 1, || ipc_round_trip(server)),
    );
    ok &= step(
        "notify_roundtrip",
        measure("notify_roundtrip", 1, || notify_round_trip(server)),
    );
    ok &= step("fast_path_rows", fast_path_rows());
    ok &= step("one_way_rows", one_way_rows());
    ok &= step("context_switch", context_switch());
    ok &= step("tracing_costs", tracing_costs(server));
    ok &= step("vm_costs", vm_costs());
    ok &= step("vm_fault_breakdown", vm_fault_breakdown());
    ok &= step("snapshot_costs", snapshot_costs());
    ok &= step("wake_lateness", wake_lateness());
    ok &= step("process_costs", process_costs());
    ok &= step("signal_costs", signal_costs());
    ok &= step("trace_costs", trace_costs());
    if ok {
        println!("bench: done");
    } else {
        println!("bench: FAIL: a measured operation failed");
    }
    process::shutdown(ok)
}

/// Samples of the spawn+exit+wait row (each one builds a whole process through PM).
const SPAWN_SAMPLES: usize = 100;
const SPAWN_WARMUP: usize = 5;

/// The process rows: spawn+exit+wait of `pm_child exit 0` through PM (booted as `pm
/// kcalls=pm` with `pm_child boot=pm`), and thread create+join in this process.
fn process_costs() -> bool {
    let mut ok = measure("thread_create_join", 1, || {
        thread::spawn(|| {}).join().is_ok()
    });
    let spawn = || {
        pm::spawn("pm_child", "exit 0")
            .and_then(|pid| pm::wait(Some(pid)))
            .is_ok_and(|exited| exited.status == 0)
    };
    for _ in 0..SPAWN_WARMUP {
        ok &= spawn();
    }
    let mut samples: Vec<u64> = Vec::with_capacity(SPAWN_SAMPLES);
    for _ in 0..SPAWN_SAMPLES {
        let start = tsc();
        ok &= spawn();
        samples.push(tsc().wrapping_sub(start));
    }
    report("spawn_exit_wait", &mut samples);
    if !ok {
        println!("bench: process rows: some spawns or joins failed (boot pm and pm_child boot=pm)");
    }
    ok
}

/// Touches one byte of the page at `address`.
fn touch(address: u64) {
    // SAFETY: `address` is in a writable mapping VM made for this process and nothing
    // else uses; the first touch faults the page in through VM.
    unsafe { (address as *mut u8).write_volatile(1) };
}

/// The VM rows: one timed first touch per page of a mapping, then map/touch/unmap cycles.
fn vm_costs() -> bool {
    const PAGE: u64 = vigil_rt::abi::vm::PAGE_SIZE;
    let pages = (WARMUP + ITERATIONS) as u64;
    let base = match vm::map_anonymous(pages * PAGE, true) {
        Ok(base) => base,
        Err(error) => {
            println!(
                "bench: FAIL: the VM server refused a mapping (boot `vm kcalls=vm` first): {error}"
            );
            return false;
        }
    };
    let mut next = 0;
    let ok = measure("vm_fault_demand_zero", 1, || {
        touch(base + next * PAGE);
        next += 1;
        true
    });
    let released = vm::unmap(base, pages * PAGE).is_ok();
    ok && released
        && measure("vm_map_touch_unmap", 1, || {
            match vm::map_anonymous(PAGE, true) {
                Ok(page) => {
                    touch(page);
                    vm::unmap(page, PAGE).is_ok()
                }
                Err(_) => false,
            }
        })
}

/// The phases of a demand-zero fault, one fault per page of a fresh mapping.
fn vm_fault_breakdown() -> bool {
    const PAGE: u64 = vigil_rt::abi::vm::PAGE_SIZE;
    const FAULTS: usize = 1000;
    let Ok(base) = vm::map_anonymous(FAULTS as u64 * PAGE, true) else {
        return false;
    };
    let names = ["to_vm", "decide", "map", "resume", "back"];
    let mut phases: [Vec<u64>; 5] = core::array::from_fn(|_| Vec::with_capacity(FAULTS));
    let mut ok = true;
    // A fault whose VM times do not fall inside it was interleaved with something else:
    // the tick preempted VM right after VmResume (equal priorities), so this thread's
    // `end` came before VM's last mark. Such samples are left out and counted; only many
    // of them (or a failed request) make the step fail.
    let mut interleaved = 0;
    for page in 0..FAULTS as u64 {
        let start = tsc();
        touch(base + page * PAGE);
        let end = tsc();
        match vm::fault_times() {
            Ok([received, decided, mapped, resumed]) if start < received && resumed < end => {
                let marks = [start, received, decided, mapped, resumed, end];
                for (phase, pair) in phases.iter_mut().zip(marks.windows(2)) {
                    phase.push(pair[1] - pair[0]);
                }
            }
            Ok(_) => interleaved += 1,
            Err(_) => ok = false,
        }
    }
    for (name, samples) in names.iter().zip(phases.iter_mut()) {
        report(&alloc::format!("vm_fault_phase_{name}"), samples);
    }
    ok &= vm::unmap(base, FAULTS as u64 * PAGE).is_ok();
    if interleaved > FAULTS / 20 {
        println!(
            "bench: vm_fault_phase: VM's fault times did not bracket {interleaved} of {FAULTS} faults"
        );
        ok = false;
    } else if !ok {
        println!("bench: vm_fault_phase: VM did not answer FAULT_TIMES");
    }
    ok
}

/// The server registered as `name`; None (after printing why) if it cannot be found, and
/// the rows that need it fail.
fn server_named(name: &str) -> Option<Endpoint> {
    lookup_with_retry(name)
        .inspect_err(|error| println!("bench: FAIL: {error}"))
        .ok()
}

/// Runs `rows` with tracing off (mask 0), then restores the mask: `rows`' result and
/// whether the mask was restored. None: tracing could not be turned off, and nothing ran.
fn untraced<R>(rows: impl FnOnce() -> R) -> Option<(R, bool)> {
    let previous = syscall::trace_mask(0).ok()?;
    let result = rows();
    Some((result, syscall::trace_mask(previous).is_ok()))
}

fn ipc_round_trip(server: Endpoint) -> bool {
    let mut message = Message::default();
    ipc::send_receive(server, &mut message).is_ok()
}

/// The seL4-shaped round trip: `send_receive` to `bench_replyrecv` (a `bench_server` that
/// answers with `ReplyReceive`): null message, a full 64-byte message, and null with
/// tracing off.
fn fast_path_rows() -> bool {
    let Some(server) = server_named("bench_replyrecv") else {
        return false;
    };
    let mut ok = measure("ipc_call_replyrecv", 1, || ipc_round_trip(server));
    ok &= measure_checked(
        "ipc_call_replyrecv_64",
        1,
        || {
            let mut message = Message::with_payload(0x7777, [u64::MAX; 6]);
            let sent = ipc::send_receive(server, &mut message);
            (sent, message.payload[5])
        },
        |(sent, last_word)| sent.is_ok() && last_word == u64::MAX,
    );
    let Some((untraced_ok, restored)) =
        untraced(|| measure("ipc_call_replyrecv_untraced", 1, || ipc_round_trip(server)))
    else {
        return false;
    };
    ok &= untraced_ok & restored;
    ok & register_rows()
}

/// The register-message round trip: `send_receive_registers` to `bench_regs` (a
/// `bench_server` answering with `ReplyReceiveRegisters`), with the default trace mask and
/// with tracing off. The request's words are echoed; a sample fails unless they come back
/// from the server.
fn register_rows() -> bool {
    let Some(server) = server_named("bench_regs") else {
        return false;
    };
    let request = RegisterMessage {
        kind: 0x7777,
        tag: 3,
        payload: [u64::MAX, 1, 2],
    };
    // Every word compared, after each sample's timed window (`measure_checked`); the
    // closures hold copies of what they send and compare (`move`), not references to it,
    // so no word is reached through a pointer.
    let echoed = move |source: Endpoint, reply: RegisterMessage| {
        (source.0 ^ server.0)
            | (reply.header() ^ request.header())
            | (reply.payload[0] ^ request.payload[0])
            | (reply.payload[1] ^ request.payload[1])
            | (reply.payload[2] ^ request.payload[2])
            == 0
    };
    let round_trip = move || ipc::send_receive_registers(server, &request);
    let check = move |result: Result<(Endpoint, RegisterMessage), _>| {
        result.is_ok_and(|(source, reply)| echoed(source, reply))
    };
    let ok = measure_checked("ipc_call_replyrecv_regs", 1, round_trip, check);
    let Some((untraced_ok, restored)) =
        untraced(|| measure_checked("ipc_call_replyrecv_regs_untraced", 1, round_trip, check))
    else {
        return false;
    };
    ok & untraced_ok & restored
}

/// The one-way register rows, measured as sel4bench measures seL4's IPC: the counter-read
/// overhead (`tsc_read_overhead`), then round trips to `bench_regs_timed`, each split at the
/// server's two TSC reads (`ipc_regs_call_oneway`, `ipc_regs_replyrecv_oneway`, their sum
/// `ipc_regs_oneway_sum`), with the default mask, and the sum again with tracing off
/// (`ipc_regs_oneway_sum_untraced`).
fn one_way_rows() -> bool {
    let Some(server) = server_named("bench_regs_timed") else {
        return false;
    };
    let overhead = tsc_read_overhead();
    let (mut samples, mut ok) = one_way_samples(server, overhead);
    let names = [
        "ipc_regs_call_oneway",
        "ipc_regs_replyrecv_oneway",
        "ipc_regs_oneway_sum",
    ];
    for (name, samples) in names.iter().zip(samples.iter_mut()) {
        report(name, samples);
        if !ok {
            println!("bench: {name}: some calls failed");
        }
    }
    let Some((([_, _, mut sum], untraced_ok), restored)) =
        untraced(|| one_way_samples(server, overhead))
    else {
        return false;
    };
    ok &= restored;
    report("ipc_regs_oneway_sum_untraced", &mut sum);
    if !untraced_ok {
        println!("bench: ipc_regs_oneway_sum_untraced: some calls failed");
    }
    ok && untraced_ok
}

/// sel4bench's overhead benchmark for the counter itself: two `tsc()` reads back to back,
/// ITERATIONS times after WARMUP; prints `tsc_read_overhead` and returns its median, which
/// the one-way rows subtract from every sample.
fn tsc_read_overhead() -> u64 {
    let mut samples: Vec<u64> = Vec::with_capacity(ITERATIONS);
    for round in 0..WARMUP + ITERATIONS {
        let first = tsc();
        let second = tsc();
        if round >= WARMUP {
            samples.push(second.wrapping_sub(first));
        }
    }
    let (median, _) = median_and_min(&mut samples).unwrap_or((0, 0));
    report("tsc_read_overhead", &mut samples);
    median
}

/// The request kind of the one-way rows (`bench_regs_timed` echoes it).
const ONE_WAY_KIND: u32 = 0x7778;

/// WARMUP, then ITERATIONS round trips to `bench_regs_timed`, each timed one way at a time:
/// t0 and t3 are the client's TSC reads last before and first after its
/// `SendReceiveRegisters` (`ipc::send_receive_registers_stamped`: `tsc()`'s `lfence; rdtsc`
/// in the call's asm block, so the compiler cannot move the reply's unpacking before t3),
/// and the reply carries the server's t1 (its first read after its receive returned) and t2
/// (its last read before its reply). Per sample: t1 − t0 − `overhead`, t3 − t2 − `overhead`, and their sum. Every reply
/// is checked after t3 (its sender, kind, tag, the echoed sequence number and
/// t0 < t1 < t2 < t3); a wrong one is left out, and the second value is false if there was
/// any.
fn one_way_samples(server: Endpoint, overhead: u64) -> ([Vec<u64>; 3], bool) {
    let mut samples: [Vec<u64>; 3] = core::array::from_fn(|_| Vec::with_capacity(ITERATIONS));
    let mut failed = 0;
    for round in 0..WARMUP + ITERATIONS {
        let request = RegisterMessage {
            kind: ONE_WAY_KIND,
            tag: 3,
            payload: [0, 0, round as u64],
        };
        let (result, t0, t3) = ipc::send_receive_registers_stamped(server, &request);
        let (t1, t2) = match result {
            Ok((source, reply))
                if source == server
                    && reply.kind == request.kind
                    && reply.tag == request.tag
                    && reply.payload[2] == request.payload[2] =>
            {
                (reply.payload[0], reply.payload[1])
            }
            _ => {
                failed += 1;
                continue;
            }
        };
        if !(t0 < t1 && t1 < t2 && t2 < t3) {
            failed += 1;
            continue;
        }
        if round >= WARMUP {
            let call = (t1 - t0).saturating_sub(overhead);
            let reply_receive = (t3 - t2).saturating_sub(overhead);
            samples[0].push(call);
            samples[1].push(reply_receive);
            samples[2].push(call + reply_receive);
        }
    }
    if failed > 0 {
        println!("bench: one-way register rows: {failed} replies wrong or failed");
    }
    (samples, failed == 0)
}

fn notify_round_trip(server: Endpoint) -> bool {
    ipc::notify(server).is_ok() && ipc::receive(server).is_ok_and(|answer| answer.is_notification())
}

/// Runs `operation` WARMUP times, then ITERATIONS times each timed with `tsc()`; prints the
/// line for `name` with each sample divided by `per_sample`. False if any call failed.
fn measure(name: &str, per_sample: u64, operation: impl FnMut() -> bool) -> bool {
    measure_checked(name, per_sample, operation, |ok| ok)
}

/// `measure` for an operation whose result `check` judges (false: the sample failed)
/// outside the timed window, after the sample's second TSC read, so the row times the
/// operation and not its verification (every sample is still checked).
fn measure_checked<R>(
    name: &str,
    per_sample: u64,
    mut operation: impl FnMut() -> R,
    mut check: impl FnMut(R) -> bool,
) -> bool {
    let mut ok = true;
    for _ in 0..WARMUP {
        ok &= check(operation());
    }
    let mut samples: Vec<u64> = Vec::with_capacity(ITERATIONS);
    for _ in 0..ITERATIONS {
        let start = tsc();
        let result = operation();
        let end = tsc();
        ok &= check(result);
        samples.push(end.wrapping_sub(start) / per_sample);
    }
    report(name, &mut samples);
    if !ok {
        println!("bench: {name}: some calls failed");
    }
    ok
}

fn report(name: &str, samples: &mut [u64]) {
    let (median, min) = median_and_min(samples).unwrap_or((0, 0));
    println!(
        "bench: {name} median_cycles={median} min_cycles={min} iterations={}",
        samples.len()
    );
}

/// Samples of the wake-up lateness rows (each one a 10 ms sleep).
const LATENESS_SAMPLES: usize = 30;
const SLEEP_NS: u64 = 10_000_000;

/// How late 10 ms sleeps wake, in TSC cycles: quiet, then under a console flood by the
/// lower-priority `bench_flood`.
fn wake_lateness() -> bool {
    let Ok(snapshot) = introspect::snapshot() else {
        return false;
    };
    let sleep_cycles = SLEEP_NS * snapshot.header.tsc_hz / 1_000_000_000;
    let quiet = lateness_row("wake_lateness_quiet", sleep_cycles);
    let Some(flood) = server_named("bench_flood") else {
        return false;
    };
    let duration = SLEEP_NS * (LATENESS_SAMPLES as u64 + 2);
    let order = Message::with_payload(1, [duration, 0, 0, 0, 0, 0]);
    let started = ipc::send(flood, &order).is_ok();
    let flooded = started && lateness_row("wake_lateness_flood", sleep_cycles);
    // Wait for the flood to end (it receives again only then).
    let ended = ipc::send(flood, &Message::with_payload(1, [0; 6]));
    if let Err(error) = ended {
        println!("bench: FAIL: the flood did not take its end order: {error:?}");
    }
    if !started {
        println!("bench: FAIL: the flood did not take its start order");
    }
    quiet && flooded && ended.is_ok()
}

fn lateness_row(name: &str, sleep_cycles: u64) -> bool {
    let mut samples: Vec<u64> = Vec::with_capacity(LATENESS_SAMPLES);
    let mut ok = true;
    for _ in 0..LATENESS_SAMPLES {
        let start = tsc();
        if let Err(error) = syscall::sleep_ns(SLEEP_NS) {
            println!("bench: FAIL: {name}: sleep failed: {error:?}");
            ok = false;
        }
        let end = tsc();
        samples.push(end.wrapping_sub(start).saturating_sub(sleep_cycles));
    }
    let max = samples.iter().copied().max().unwrap_or(0);
    let (median, min) = median_and_min(&mut samples).unwrap_or((0, 0));
    println!(
        "bench: {name} median_cycles={median} min_cycles={min} iterations={} max_cycles={max}",
        samples.len()
    );
    ok
}

/// Set when the measuring thread is finished, to stop its partner.
static SWITCHING_DONE: AtomicBool = AtomicBool::new(false);

/// Two threads yield to each other; the measuring one times each yield-and-back.
fn context_switch() -> bool {
    let partner = thread::spawn(|| {
        while !SWITCHING_DONE.load(Ordering::Relaxed) {
            thread::yield_now();
        }
    });
    let measurer = thread::spawn(|| {
        let ok = measure("context_switch", 2, || syscall::yield_now().is_ok());
        SWITCHING_DONE.store(true, Ordering::Relaxed);
        if !ok {
            syscall::thread_exit(1);
        }
    });
    let measured = measurer.join();
    let partnered = partner.join();
    matches!(measured, Ok(0)) && partnered.is_ok()
}

/// The cost of tracing: the null syscall with its Syscall event recorded, and the IPC round
/// trip with nothing recorded (the default mask records IPC, blocks and switches).
fn tracing_costs(server: Endpoint) -> bool {
    let Ok(previous) = syscall::trace_mask(DEFAULT_EVENT_MASK | EventKind::Syscall.mask_bit())
    else {
        println!(
            "bench: FAIL: the TraceMask kernel call was refused (boot with kcalls=…+tracemask)"
        );
        return false;
    };
    let mut ok = measure("null_syscall_traced", 1, || {
        syscall::self_endpoint().is_ok()
    });
    ok &= syscall::trace_mask(0).is_ok();
    ok &= measure("ipc_roundtrip_untraced", 1, || ipc_round_trip(server));
    ok &= syscall::trace_mask(previous).is_ok();
    ok
}

/// Stop flag for the idle threads the snapshot benchmark creates.
static IDLE_STOP: AtomicBool = AtomicBool::new(false);

/// Snapshot cost with about 10, 100 and 1000 threads alive.
fn snapshot_costs() -> bool {
    let mut idle = Vec::new();
    let mut ok = true;
    for target in [10usize, 100, 1000] {
        let Ok(current) = introspect::snapshot() else {
            println!(
                "bench: FAIL: the Snapshot kernel call was refused (boot with kcalls=…+snapshot)"
            );
            return false;
        };
        let mut threads = current.header.thread_count as usize;
        while threads < target {
            match thread::try_spawn(|| {
                while !IDLE_STOP.load(Ordering::Relaxed) {
                    thread::sleep(core::time::Duration::from_secs(1));
                }
            }) {
                Ok(handle) => idle.push(handle),
                Err(error) => {
                    println!(
                        "bench: snapshot_{target}_threads: stopped at {threads} threads: {error}"
                    );
                    break;
                }
            }
            threads += 1;
        }
        let required = introspect::required_bytes(&current.header) + (threads + 8) * 128;
        let mut buffer = alloc::vec![0u8; required];
        let mut samples = Vec::with_capacity(200);
        for _ in 0..200 {
            let start = tsc();
            ok &= syscall::snapshot(&mut buffer).is_ok();
            samples.push(tsc().wrapping_sub(start));
        }
        let (median, min) = median_and_min(&mut samples).unwrap_or((0, 0));
        println!(
            "bench: snapshot_{target}_threads median_cycles={median} min_cycles={min} iterations={} threads={threads} per_thread_cycles={}",
            samples.len(),
            median / threads.max(1) as u64
        );
    }
    IDLE_STOP.store(true, Ordering::Relaxed);
    for handle in idle {
        ok &= handle.join().is_ok();
    }
    ok
}

/// Signals caught by `count_signal` (the signal row's handler).
static SIGNALS_CAUGHT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

fn count_signal(_: vigil_abi::signal::Signal) {
    SIGNALS_CAUGHT.fetch_add(1, Ordering::Relaxed);
}

/// The signal rows: SIGUSR1 to itself with a handler, as Linux's `kill(getpid())` with a
/// handler — `signal_self_handler` the way `signal::kill` does it (SignalRaise: the kernel
/// pushes the frame, the handler runs, SignalReturn), `signal_self_handler_via_pm` with
/// PM's SIGNAL request (PM decides and calls PmSignal). PM first becomes this boot
/// process's signal manager (`MANAGE`).
fn signal_costs() -> bool {
    use vigil_abi::signal::Signal;
    use vigil_rt::signal::{self, Action};
    let own = introspect::snapshot().ok().and_then(|snapshot| {
        snapshot
            .processes
            .iter()
            .find(|p| p.name() == "bench_client")
            .map(|p| u64::from(p.pid))
    });
    let Some(own) = own else {
        println!("bench: signal row: no snapshot record of bench_client");
        return false;
    };
    let managed = pm::server().and_then(|server| {
        let mut message =
            Message::with_payload(vigil_abi::pm::request::MANAGE, [own, 0, 0, 0, 0, 0]);
        ipc::send_receive(server, &mut message)?;
        vigil_abi::Error::from_code(message.payload[0]).map_or(Ok(()), Err)
    });
    if let Err(error) =
        managed.and_then(|()| signal::action(Signal::USR1, Action::Handler(count_signal)))
    {
        println!("bench: signal row: setting up the handler: {error}");
        return false;
    }
    if signal::own_pid() != Some(own) {
        println!(
            "bench: signal row: the runtime thinks its pid is {:?}, not {own}",
            signal::own_pid()
        );
        return false;
    }
    // The direct path: `kill` to itself is one SignalRaise (PM mirrored USR1 as caught and
    // unmasked into the kernel).
    let direct = measure("signal_self_handler", 1, || {
        let before = SIGNALS_CAUGHT.load(Ordering::Relaxed);
        signal::kill(own, Signal::USR1).is_ok()
            && SIGNALS_CAUGHT.load(Ordering::Relaxed) == before + 1
    });
    // The same signal through PM (its SIGNAL request, as `kill` did before SignalRaise).
    let through_pm = measure("signal_self_handler_via_pm", 1, || {
        let before = SIGNALS_CAUGHT.load(Ordering::Relaxed);
        let mut message =
            Message::with_payload(vigil_abi::pm::request::SIGNAL, [own, 10, 0, 0, 0, 0]);
        pm::server()
            .and_then(|server| ipc::send_receive(server, &mut message))
            .is_ok()
            && message.payload[0] == 0
            && SIGNALS_CAUGHT.load(Ordering::Relaxed) == before + 1
    });
    direct && through_pm
}

/// One traced system call with the tracer stopping at its entry and its exit (Linux's
/// PTRACE_SYSCALL twice, waitpid twice): `pm_child syscalls` makes system calls forever,
/// traced by this program through PM; a sample is continue-and-wait to the entry stop and
/// again to the exit stop (PM's RESUME_WAIT: one request each), the call running between.
fn trace_costs() -> bool {
    use vigil_abi::ptrace::request::{event, mode};
    let pid = match vigil_rt::trace::spawn("pm_child -- syscalls", 0) {
        Ok(pid) => pid,
        Err(error) => {
            println!("bench: trace row: spawn traced: {error}");
            return false;
        }
    };
    if !vigil_rt::trace::wait(pid, false)
        .is_ok_and(|s| s.is_some_and(|s| s.kind == event::ATTACHED))
    {
        println!("bench: trace row: no ATTACHED event");
        return false;
    }
    let stop_is = |kind: u64| {
        vigil_rt::trace::resume_and_wait(pid, mode::SYSCALLS).is_ok_and(|stop| stop.kind == kind)
    };
    let ok = measure("traced_syscall", 1, || {
        stop_is(event::SYSCALL_ENTRY) && stop_is(event::SYSCALL_EXIT)
    });
    let _ = pm::kill(pid, 9);
    let _ = pm::wait(Some(pid));
    ok
}
