//! Boot-time test hooks chosen with `test=NAME` on the kernel command line.
//!
//! The QEMU scenarios in `cargo xtask test` boot the kernel with one of these and judge the
//! console output and the exit status. `boot` checks the foundation and exits with success;
//! the others deliberately fault, panic or hang to prove the failure paths are diagnosable.
//! Most hooks end the run; `lockup-tick` and `watchdog-busy` arm something the timer tick
//! does later and let the boot go on (so user programs run first).

use crate::arch::debug_exit::{self, ExitStatus};
use crate::arch::paging::{KernelLayout, DIRECT_MAP_BASE};
use crate::arch::{cpu, paging};
use crate::{error, info, memory, time, watchdog};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use vigil_kcore::frame::{Frame, FrameError};
use vigil_kcore::multiboot::BootInfo;

/// An address no one maps: user half, canonical, never present.
pub const UNMAPPED_ADDRESS: u64 = 0x0000_0000_dead_b000;

/// Every hook, with a one-line description (printed when an unknown name is given).
const HOOKS: [(&str, &str); 13] = [
    (
        "boot",
        "check timer, clock, frames, heap, W^X and the log ring, then exit with success",
    ),
    ("pagefault", "read an unmapped address (expect a #PF dump)"),
    ("divide", "divide by zero (expect a #DE dump)"),
    (
        "stackoverflow",
        "recurse into the stack guard page (expect a #DF dump)",
    ),
    (
        "panic",
        "panic with a formatted message (expect a panic report)",
    ),
    (
        "hang",
        "spin forever with interrupts off (the host must kill QEMU; use with watchdog=off)",
    ),
    (
        "lockup",
        "spin forever with interrupts off (expect a KERNEL LOCKUP report)",
    ),
    (
        "lockup-locked",
        "take the kernel, monitor, console, trace and heap locks, then spin (expect the report anyway)",
    ),
    (
        "lockup-brief",
        "spin 1.5 s with interrupts off, then go on (with watchdog=report: reported, then recovered)",
    ),
    (
        "lockup-tick",
        "boot the programs, then spin in the timer tick at 2 s (a lockup under the kernel lock with a thread current)",
    ),
    (
        "watchdog-idle",
        "idle in hlt for 2 s: watchdog NMIs arrive, no lockup is declared",
    ),
    (
        "watchdog-busy",
        "boot the programs, at 3 s check that watchdog NMIs arrived and no lockup was declared",
    ),
    (
        "serial-flood",
        "write console lines for 2 s with interrupts off, 20 ms apart like a slow serial line: no lockup",
    ),
];

/// Fails the run with a message if `condition` is false.
macro_rules! check {
    ($condition:expr, $($message:tt)*) => {
        if !$condition {
            error!("selftest boot: FAILED: {}", format_args!($($message)*));
            debug_exit::exit(ExitStatus::Failure);
        }
    };
}

/// What the timer tick should do for a deferred hook (`TICK_HOOK_*`), and at which tick.
static TICK_HOOK: AtomicU8 = AtomicU8::new(TICK_HOOK_NONE);
static TICK_HOOK_AT: AtomicU64 = AtomicU64::new(u64::MAX);
const TICK_HOOK_NONE: u8 = 0;
const TICK_HOOK_LOCKUP: u8 = 1;
const TICK_HOOK_BUSY_CHECK: u8 = 2;

/// Runs the hook named `name`. Returns only for the deferred hooks (`lockup-tick`,
/// `watchdog-busy`), which the timer tick carries out later; every other hook ends the run.
pub fn run(name: &str, boot: &BootInfo) {
    info!("selftest: running '{name}'");
    match name {
        "lockup-tick" => arm_tick_hook(TICK_HOOK_LOCKUP, 2),
        "watchdog-busy" => arm_tick_hook(TICK_HOOK_BUSY_CHECK, 3),
        "lockup" => lockup(),
        "lockup-locked" => lockup_locked(),
        "lockup-brief" => lockup_brief(),
        "watchdog-idle" => watchdog_idle(),
        "serial-flood" => serial_flood(),
        "boot" => boot_checks(boot),
        "pagefault" => {
            let value = page_fault();
            error!("selftest pagefault: read {value:#x} from an unmapped address without faulting");
            debug_exit::exit(ExitStatus::Failure)
        }
        "divide" => {
            let value = divide_error(core::hint::black_box(42));
            error!("selftest divide: division by zero returned {value}");
            debug_exit::exit(ExitStatus::Failure)
        }
        "stackoverflow" => {
            let depth = stack_overflow(core::hint::black_box(1));
            error!("selftest stackoverflow: recursion returned at depth {depth}");
            debug_exit::exit(ExitStatus::Failure)
        }
        "panic" => deliberate_panic(core::hint::black_box(42)),
        "hang" => hang(),
        unknown => {
            error!("selftest: unknown test '{unknown}'; known tests:");
            for (hook, description) in HOOKS {
                error!("  {hook:<14} {description}");
            }
            debug_exit::exit(ExitStatus::Failure)
        }
    }
}

fn arm_tick_hook(hook: u8, after_seconds: u64) {
    TICK_HOOK_AT.store(
        time::ticks() + after_seconds * u64::from(time::TICK_HZ),
        Ordering::Relaxed,
    );
    TICK_HOOK.store(hook, Ordering::Relaxed);
}

/// Called on every timer tick (under the kernel lock): carries out an armed deferred hook.
#[inline]
pub fn on_tick() {
    if TICK_HOOK.load(Ordering::Relaxed) == TICK_HOOK_NONE
        || time::ticks() < TICK_HOOK_AT.load(Ordering::Relaxed)
    {
        return;
    }
    match TICK_HOOK.swap(TICK_HOOK_NONE, Ordering::Relaxed) {
        TICK_HOOK_LOCKUP => lockup_in_tick(),
        TICK_HOOK_BUSY_CHECK => {
            let stats = watchdog::stats();
            check!(
                watchdog::running(),
                "watchdog-busy: the watchdog is not running"
            );
            check!(
                stats.lockups == 0,
                "watchdog-busy: {} lockups declared while a thread spun",
                stats.lockups
            );
            check!(
                stats.nmis >= 30,
                "watchdog-busy: only {} watchdog NMIs in 3 s",
                stats.nmis
            );
            info!(
                "selftest watchdog-busy: ok ({} NMIs, {} unclaimed, 0 lockups while user code ran)",
                stats.nmis, stats.unclaimed_nmis
            );
            debug_exit::exit(ExitStatus::Success)
        }
        _ => {}
    }
}

/// Spins in the timer tick: the kernel lock is held and a thread is current.
#[inline(never)]
fn lockup_in_tick() -> ! {
    info!("selftest lockup-tick: spinning in the timer tick under the kernel lock");
    spin_forever()
}

#[inline(never)]
fn spin_forever() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

#[inline(never)]
fn lockup() -> ! {
    info!("selftest lockup: spinning with interrupts off");
    spin_forever()
}

/// Takes (in lock order) every lock the watchdog's report path touches, then spins: the
/// report must come out anyway (console bypassed, tables read without their locks, the
/// epitaph built without the heap).
#[inline(never)]
fn lockup_locked() -> ! {
    info!("selftest lockup-locked: holding the kernel, monitor, console, trace and heap locks, spinning");
    let kernel = crate::system::KERNEL.lock();
    let monitor = crate::monitor::hold_for_selftest();
    let console = crate::console::hold_for_selftest();
    let ring = crate::trace::hold_for_selftest();
    let heap = crate::heap::hold_for_selftest();
    // The guards live (and so the locks stay held) for as long as the spin: forever.
    let _held = core::hint::black_box((kernel, monitor, console, ring, heap));
    spin_forever()
}

/// Spins with interrupts off for 1.5 s, then goes on: with `watchdog=report` the lockup is
/// reported, then its end; the run passes if exactly one lockup was declared.
#[inline(never)]
fn lockup_brief() -> ! {
    check!(
        watchdog::running(),
        "lockup-brief: the watchdog is not running"
    );
    info!("selftest lockup-brief: spinning 1500 ms with interrupts off");
    let until = time::now_ns() + 1_500_000_000;
    while time::now_ns() < until {
        core::hint::spin_loop();
    }
    info!("selftest lockup-brief: going on");
    wait_with_interrupts(300);
    let stats = watchdog::stats();
    check!(
        stats.lockups == 1,
        "lockup-brief: {} lockups declared, expected 1",
        stats.lockups
    );
    info!("selftest lockup-brief: ok (1 lockup, reported and survived)");
    debug_exit::exit(ExitStatus::Success)
}

/// Idles (sti; hlt) for `ms` milliseconds.
fn wait_with_interrupts(ms: u64) {
    let until = time::now_ns() + ms * 1_000_000;
    while time::now_ns() < until {
        cpu::wait_for_interrupt();
    }
}

#[inline(never)]
fn watchdog_idle() -> ! {
    check!(
        watchdog::running(),
        "watchdog-idle: the watchdog is not running"
    );
    let before = watchdog::stats();
    let ticks = time::ticks();
    wait_with_interrupts(2000);
    let after = watchdog::stats();
    let nmis = after.nmis - before.nmis;
    check!(
        time::ticks() > ticks + 100,
        "watchdog-idle: the tick did not run while idle"
    );
    check!(
        after.lockups == 0,
        "watchdog-idle: a lockup was declared while idle"
    );
    check!(
        nmis >= 20,
        "watchdog-idle: only {nmis} watchdog NMIs in 2 s of idling"
    );
    info!("selftest watchdog-idle: ok ({nmis} NMIs in 2000 ms of hlt, 0 lockups)");
    debug_exit::exit(ExitStatus::Success)
}

/// Writes a console line every 20 ms for 2 s with interrupts off — what a long report on
/// a 115200-baud line looks like (a 256-byte line takes 22 ms) — and checks that the
/// watchdog took the output for progress. No tick can run meanwhile, so without that this
/// would be a lockup.
#[inline(never)]
fn serial_flood() -> ! {
    check!(
        watchdog::running(),
        "serial-flood: the watchdog is not running"
    );
    let before = watchdog::stats();
    let ticks = time::ticks();
    let start = time::now_ns();
    let mut line = 0;
    while time::now_ns() < start + 2_000_000_000 {
        info!("selftest serial-flood: line {line} of a long report written with interrupts off");
        line += 1;
        let next = time::now_ns() + 20_000_000;
        while time::now_ns() < next {
            core::hint::spin_loop();
        }
    }
    let after = watchdog::stats();
    let nmis = after.nmis - before.nmis;
    check!(
        time::ticks() == ticks,
        "serial-flood: a tick ran with interrupts off"
    );
    check!(
        nmis >= 20,
        "serial-flood: only {nmis} watchdog NMIs in 2 s (the watchdog was not watching)"
    );
    check!(
        after.lockups == 0,
        "serial-flood: the watchdog declared a lockup during the report"
    );
    info!("selftest serial-flood: ok ({line} lines, {nmis} NMIs, no tick, 0 lockups)");
    debug_exit::exit(ExitStatus::Success)
}

#[inline(never)]
fn page_fault() -> u64 {
    // SAFETY: not safe at all, deliberately: the read faults, and the page-fault handler
    // reports it and stops the machine, so the value is never used.
    unsafe { core::ptr::read_volatile(UNMAPPED_ADDRESS as *const u64) }
}

#[inline(never)]
fn divide_error(dividend: u64) -> u64 {
    cpu::divide_by_zero_for_selftest(dividend)
}

#[inline(never)]
#[allow(unconditional_recursion)] // the point: it only ends in the guard page
fn stack_overflow(depth: u64) -> u64 {
    let frame = core::hint::black_box([depth; 64]);
    stack_overflow(depth + 1) + frame[(depth % 64) as usize]
}

#[inline(never)]
fn deliberate_panic(value: u64) -> ! {
    panic!("selftest panic: value={value}")
}

#[inline(never)]
fn hang() -> ! {
    info!("selftest hang: spinning with interrupts off");
    loop {
        core::hint::spin_loop();
    }
}

fn boot_checks(boot: &BootInfo) -> ! {
    // Timer: ticks arrive, and their spacing agrees with the TSC clock.
    let ticks_to_wait = 10;
    let start_tick = time::ticks();
    let start_ns = time::now_ns();
    let deadline_ns = start_ns + 5_000_000_000;
    while time::ticks() < start_tick + ticks_to_wait {
        check!(
            time::now_ns() < deadline_ns,
            "timer: fewer than {ticks_to_wait} ticks in 5 s"
        );
        cpu::wait_for_interrupt();
    }
    let elapsed_ns = time::now_ns() - start_ns;
    let expected_ns = ticks_to_wait * 1_000_000_000 / u64::from(time::TICK_HZ);
    check!(
        elapsed_ns > expected_ns / 2 && elapsed_ns < expected_ns * 3,
        "timer: {ticks_to_wait} ticks took {elapsed_ns} ns, expected about {expected_ns} ns"
    );
    info!(
        "selftest boot: timer ok ({ticks_to_wait} ticks in {} us)",
        elapsed_ns / 1000
    );

    // Clock: monotonic.
    let mut previous = time::now_ns();
    for _ in 0..1000 {
        let now = time::now_ns();
        check!(now >= previous, "clock went backwards: {previous} -> {now}");
        previous = now;
    }
    info!("selftest boot: clock ok");

    // Frames: distinct, never reserved (aligned by type); a double free is refused.
    let free_before = memory::free_frames();
    let mut frames = [Frame::FIRST; 8];
    for slot in frames.iter_mut() {
        let frame = memory::alloc_frame();
        check!(
            frame.is_some(),
            "frames: allocation failed with {} free",
            memory::free_frames()
        );
        *slot = frame.unwrap_or(Frame::FIRST);
    }
    for (i, &frame) in frames.iter().enumerate() {
        check!(
            !memory::is_reserved(frame.address()),
            "frames: {frame:#x} is in a reserved range"
        );
        check!(
            !frames[..i].contains(&frame),
            "frames: {frame:#x} handed out twice"
        );
    }
    check!(
        memory::free_frames() == free_before - frames.len(),
        "frames: free count did not drop by {}",
        frames.len()
    );
    for &frame in &frames {
        check!(
            memory::free_frame(frame).is_ok(),
            "frames: free of {frame:#x} refused"
        );
    }
    check!(
        memory::free_frame(frames[0]) == Err(FrameError::DoubleFree(frames[0].address())),
        "frames: double free of {:#x} was not detected",
        frames[0]
    );
    check!(
        memory::free_frames() == free_before,
        "frames: free count not restored"
    );
    // A shared frame goes back to the allocator only when its last holder releases it.
    if let Some(frame) = memory::alloc_frame() {
        check!(
            memory::can_share(frame, 2),
            "frames: {frame:#x} cannot be shared"
        );
        memory::share_frame(frame);
        memory::share_frame(frame);
        check!(
            memory::frame_holders(frame) == 3,
            "frames: {frame:#x} has {} holders, not 3",
            memory::frame_holders(frame)
        );
        memory::release_frame(frame);
        memory::release_frame(frame);
        check!(
            memory::free_frames() == free_before - 1,
            "frames: a frame still held was freed"
        );
        memory::release_frame(frame);
        check!(
            memory::free_frames() == free_before && memory::frame_holders(frame) == 1,
            "frames: the last release of a shared frame did not free it"
        );
    } else {
        check!(false, "frames: no frame for the shared-frame check");
    }
    let mut modules = 0;
    for module in boot.modules() {
        let last_byte = module.end.max(module.start + 1) - 1;
        check!(
            memory::is_reserved(module.start) && memory::is_reserved(last_byte),
            "frames: module '{}' [{:#x}, {:#x}) is not reserved",
            module.name(),
            module.start,
            module.end
        );
        modules += 1;
    }
    info!("selftest boot: frames ok ({modules} modules reserved)");

    // Heap: a large vector round trip, and everything is returned.
    let live_before = crate::heap::stats().live_allocations;
    {
        let squares: Vec<u64> = (0..100_000u64).map(|i| i * i).collect();
        let sum: u64 = squares.iter().sum();
        check!(sum == 333_328_333_350_000, "heap: wrong sum {sum}");
    }
    let heap = crate::heap::stats();
    check!(
        heap.live_allocations == live_before,
        "heap: allocation leaked"
    );
    check!(
        heap.used < heap.size,
        "heap: {} of {} bytes in use after freeing",
        heap.used,
        heap.size
    );
    info!(
        "selftest boot: heap ok ({} of {} KiB in use)",
        heap.used / 1024,
        heap.size / 1024
    );

    // W^X: code is not writable, data is not executable, the stack guard is unmapped.
    let space = paging::kernel_space();
    check!(
        space.is_active(),
        "W^X: the kernel's address space is not the one loaded in CR3"
    );
    let layout = KernelLayout::get();
    let text = space.translate(layout.text.0);
    check!(
        text.is_some_and(|t| t.executable() && !t.writable()),
        "W^X: .text mapping {text:?}"
    );
    let rodata = space.translate(layout.rodata.0);
    check!(
        rodata.is_some_and(|t| !t.executable() && !t.writable()),
        "W^X: .rodata mapping {rodata:?}"
    );
    let data = space.translate(layout.data.0);
    let nx = cpu::Features::detect().nx;
    check!(
        data.is_some_and(|t| t.executable() != nx && t.writable()),
        "W^X: .data mapping {data:?}"
    );
    check!(
        space.translate(layout.stack_guard).is_none(),
        "stack guard page is mapped"
    );
    let direct = space.translate(DIRECT_MAP_BASE + 0x20_0000);
    check!(
        direct.is_some_and(|t| t.phys.get() == 0x20_0000 && t.executable() != nx),
        "direct map {direct:?}"
    );
    check!(
        space.translate(UNMAPPED_ADDRESS).is_none(),
        "low identity mapping still present"
    );
    check!(
        paging::kernel_virt_to_phys(layout.text.0) >= 0x10_0000,
        "kernel below 1 MiB"
    );
    info!("selftest boot: W^X ok");

    // Log ring: the banner is in it.
    let mut banner_found = false;
    crate::console::read_log(0, |record| banner_found |= record.text.contains(" up: "));
    check!(banner_found, "log ring: banner line not found");
    info!("selftest boot: log ring ok");

    info!("selftest boot: ok");
    debug_exit::exit(ExitStatus::Success)
}
