//! Vigil kernel entry: the boot sequence from `kernel_main` to the idle loop.
#![no_std]
#![no_main]

extern crate alloc;

mod arch;
mod backtrace;
mod boot_image;
mod console;
mod entry;
mod fault;
mod grant;
mod heap;
mod host_command;
mod introspect;
mod ipc;
mod kcall;
mod lock;
mod memory;
mod message_buffer;
mod monitor;
mod mutex;
mod panic;
mod pm;
mod process;
mod ptrace;
mod register_ipc;
mod rs;
mod sched;
mod selftest;
mod signal;
mod syscall;
mod system;
mod thread;
mod time;
mod timer;
mod trace;
mod trace_handoff;
mod usercopy;
mod vm;
mod watchdog;

use arch::debug_exit::{self, ExitStatus};
use arch::paging::phys_to_virt;
use arch::{apic, cpu, gdt, idt, ioapic};
use vigil_kcore::ipc::FastPathOption;
use vigil_kcore::multiboot::{BootInfo, PhysReader};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Reads physical memory below 4 GiB through the boot page tables' direct map.
struct BootDirectMap;

impl PhysReader for BootDirectMap {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let Some(end) = addr.checked_add(buf.len() as u64) else {
            return false;
        };
        if end > 1 << 32 {
            return false;
        }
        // SAFETY: the boot page tables map physical [0, 4 GiB) at the direct-map base, and
        // the range was checked to lie inside it. Loader data is read-only to us here.
        unsafe {
            core::ptr::copy_nonoverlapping(
                phys_to_virt(addr) as *const u8,
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        true
    }
}

/// Called by the boot trampoline in long mode on the kernel stack, interrupts off.
#[unsafe(no_mangle)]
pub extern "C" fn kernel_main(multiboot_magic: u32, multiboot_info: u32) -> ! {
    time::mark_boot();
    console::init();
    let layout = arch::paging::KernelLayout::get();
    gdt::init(layout.stack.1);
    idt::init();
    arch::user_entry::init(layout.stack.1);
    let tsc_hz = match time::calibrate_tsc() {
        Some(hz) => hz,
        None => {
            error!("time: the PIT did not answer; cannot calibrate the TSC");
            debug_exit::exit(ExitStatus::Failure);
        }
    };
    info!("Vigil {VERSION} starting");

    let features = cpu::Features::detect();
    enable_protection(&features);

    let boot = match BootInfo::parse(&BootDirectMap, multiboot_magic, u64::from(multiboot_info)) {
        Ok(boot) => boot,
        Err(reason) => {
            error!("boot: unusable Multiboot information: {reason:?}");
            debug_exit::exit(ExitStatus::Failure);
        }
    };
    if let Some(level) = boot.cmdline_arg("loglevel") {
        match console::parse_level(level) {
            Some(level) => console::set_max_level(level),
            None => warn!("boot: unknown loglevel '{level}' (error, warn, info, debug, trace)"),
        }
    }
    info!("boot: command line '{}'", boot.cmdline());
    if boot.modules_truncated {
        error!(
            "boot: {} modules given, at most {} are read: modules {}..{} refused",
            boot.modules_given,
            vigil_kcore::multiboot::MAX_MODULES,
            vigil_kcore::multiboot::MAX_MODULES,
            boot.modules_given
        );
    }
    for module in boot.modules() {
        let cut = if module.name_truncated() { "…" } else { "" };
        info!(
            "boot: module '{}{cut}' at [{:#x}, {:#x})",
            module.name(),
            module.start,
            module.end
        );
    }

    if !features.invariant_tsc {
        debug!("time: CPU does not report an invariant TSC");
    }

    let memory = match memory::init(&boot) {
        Ok(report) => report,
        Err(reason) => {
            error!("memory: setup failed: {reason}");
            debug_exit::exit(ExitStatus::Failure);
        }
    };

    if !features.apic {
        error!("interrupts: no local APIC; Vigil needs one");
        debug_exit::exit(ExitStatus::Failure);
    }
    apic::disable_legacy_pic();
    let apic_phys = apic::init();
    info!(
        "memory: {} regions in the loader's map, {} frames free after boot",
        memory.regions, memory.free_frames_after_boot
    );
    let apic_timer_hz = apic::start_periodic_timer(time::TICK_HZ, tsc_hz);
    info!(
        "interrupts: local APIC at {apic_phys:#x}, timer input {} kHz, tick {} Hz",
        apic_timer_hz / 1000,
        time::TICK_HZ
    );
    let ioapic_lines = ioapic::init();
    if console::monitor_port_present() {
        monitor::init();
        let receive = match ioapic_lines {
            Some(_) if monitor::receives_by_interrupt() => "host input by interrupt",
            _ => "no I/O APIC: host input polled by the tick",
        };
        info!(
            "monitor: streaming on COM2 (protocol v{}, {receive})",
            vigil_wire::PROTOCOL_VERSION
        );
    } else {
        warn!("monitor: no UART on COM2; the monitor channel is unavailable");
    }

    watchdog::start(boot.cmdline_arg("watchdog"), tsc_hz);

    let mib = 1024 * 1024;
    info!(
        "Vigil {VERSION} up: memory {} MiB ({} MiB usable), TSC {}.{} MHz, timer {} Hz, boot {} us",
        memory.installed_bytes / mib,
        memory.usable_bytes / mib,
        tsc_hz / 1_000_000,
        (tsc_hz / 100_000) % 10,
        time::TICK_HZ,
        time::now_ns() / 1000
    );

    if let Some(test) = boot.cmdline_arg("test") {
        selftest::run(test, &boot);
    }
    system::KERNEL
        .lock()
        .set_exit_when_done(boot.cmdline_arg("exit-when-done").is_some());
    let fastpath = match FastPathOption::parse(boot.cmdline_arg("ipc_fastpath")) {
        Ok(option) => option,
        Err(reason) => {
            warn!("boot: bad ipc_fastpath= value: {reason}; using on");
            FastPathOption::On
        }
    };
    if fastpath == FastPathOption::Off {
        info!("ipc: fast path off (ipc_fastpath=off): every IPC call takes the slow path");
    }
    system::KERNEL
        .lock()
        .set_ipc_fastpath(fastpath == FastPathOption::On);
    let started = boot_image::start_all(&boot);
    info!(
        "boot: {started} of {} modules started by the kernel (the system servers)",
        boot.modules().count()
    );
    sched::run_next()
}

/// Turns on the protections the CPU offers: NX, supervisor-mode execution and access
/// prevention (SMEP/SMAP), global pages. Write-protect was enabled by the trampoline.
fn enable_protection(features: &cpu::Features) {
    if features.nx {
        // SAFETY: setting EFER.NXE only makes the NX bit meaningful in page tables.
        unsafe { cpu::wrmsr(cpu::Msr::Efer, cpu::rdmsr(cpu::Msr::Efer) | cpu::EFER_NXE) };
    } else {
        warn!("cpu: no NX support; data pages stay executable");
    }
    let mut cr4_bits = 0;
    if features.smep {
        cr4_bits |= cpu::CR4_SMEP;
    }
    if features.smap {
        cr4_bits |= cpu::CR4_SMAP;
    }
    if features.pge {
        cr4_bits |= cpu::CR4_PGE;
    }
    // SAFETY: each bit is set only when CPUID reports it; the kernel does not touch user
    // memory yet (SMAP) and runs no user code (SMEP).
    unsafe { cpu::set_cr4_bits(cr4_bits) };
    crate::arch::fpu::enable();
    info!(
        "cpu: NX {}, SMEP {}, SMAP {}, write-protect {}",
        on_off(features.nx),
        on_off(features.smep),
        on_off(features.smap),
        on_off(cpu::read_cr0() & cpu::CR0_WP != 0)
    );
}

fn on_off(enabled: bool) -> &'static str {
    if enabled {
        "on"
    } else {
        "off"
    }
}
