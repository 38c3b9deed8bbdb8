//! Boot-time test hooks chosen with `test=NAME` on the kernel command line.
//!
//! The QEMU scenarios in `cargo xtask test` boot the kernel with one of these and judge the
//! console output and the exit status. `boot` checks the foundation and exits with success;
//! the others deliberately fault, panic or hang to prove the failure paths are diagnosable.

use crate::arch::debug_exit::{self, ExitStatus};
use crate::arch::paging::{KernelLayout, DIRECT_MAP_BASE};
use crate::arch::{cpu, paging};
use crate::{error, info, memory, time};
use alloc::vec::Vec;
use vigil_kcore::frame::{Frame, FrameError};
use vigil_kcore::multiboot::BootInfo;

/// An address no one maps: user half, canonical, never present.
pub const UNMAPPED_ADDRESS: u64 = 0x0000_0000_dead_b000;

/// Every hook, with a one-line description (printed when an unknown name is given).
const HOOKS: [(&str, &str); 6] = [
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
        "spin forever with interrupts off (the host must kill QEMU)",
    ),
];

/// Runs the hook named `name`. Never returns: every hook ends the run.
pub fn run(name: &str, boot: &BootInfo) -> ! {
    info!("selftest: running '{name}'");
    match name {
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

/// Fails the run with a message if `condition` is false.
macro_rules! check {
    ($condition:expr, $($message:tt)*) => {
        if !$condition {
            error!("selftest boot: FAILED: {}", format_args!($($message)*));
            debug_exit::exit(ExitStatus::Failure);
        }
    };
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
