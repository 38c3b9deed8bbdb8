//! The NMI watchdog's sources: the mechanics of making a periodic NMI and acknowledging it
//! (the policy — what an NMI means — is `watchdog.rs`).
//!
//! Two sources, chosen at boot:
//! - **Performance counter** (`PerfCounter`): general counter 0 counts unhalted core cycles
//!   from minus the period, and its overflow interrupt is routed to the local APIC's
//!   performance-counter LVT entry in NMI mode. Needs architectural performance monitoring
//!   (CPUID leaf 0xA, version ≥ 1, with the core-cycles event): real hardware and KVM with a
//!   virtual PMU. QEMU under TCG emulates no PMU (leaf 0xA reads zero).
//! - **PIT through LINT0** (`Pit`): PIT channel 0 runs a square wave on IRQ 0; the 8259 passes
//!   it to its INT output, which is wired to the local APIC's LINT0; LINT0 is programmed as an
//!   NMI instead of the firmware's ExtINT virtual wire (what Linux's old `nmi_watchdog=1` did
//!   in its IO-APIC mode). Works on every PC and under TCG. The CPU never runs the INTA cycle
//!   for an NMI, so the handler acknowledges the 8259 by polling it.
//!
//! The local APIC timer cannot be used: its LVT entry has no delivery-mode field (it only
//! delivers fixed vectors, which `cli` blocks).

use super::cpu::{self, rdmsr, wrmsr, Msr};
use super::{apic, pit};
use core::sync::atomic::{AtomicU8, Ordering};

/// Which source makes the watchdog's NMIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// PIT channel 0 → 8259 IRQ 0 → LINT0 (NMI).
    Pit,
    /// Performance counter 0 overflow → LVT performance-counter entry (NMI).
    PerfCounter,
}

impl Source {
    /// How the boot log names it.
    pub const fn description(self) -> &'static str {
        match self {
            Source::Pit => "PIT channel 0 via 8259 IRQ 0 to local APIC LINT0 (NMI)",
            Source::PerfCounter => "performance counter 0 (unhalted cycles) overflow (NMI)",
        }
    }
}

/// Architectural performance monitoring as CPUID leaf 0xA describes it.
#[derive(Clone, Copy, Debug)]
pub struct Pmu {
    pub version: u8,
    pub counters: u8,
    /// Counter width in bits.
    pub width: u8,
}

/// The PMU the watchdog can use: version ≥ 1, a general counter, and the unhalted-core-cycles
/// event available (EBX bit 0 clear). None under TCG and on CPUs without leaf 0xA.
pub fn pmu() -> Option<Pmu> {
    if cpu::max_cpuid_leaf() < 0xa {
        return None;
    }
    let leaf = cpu::cpuid(0xa, 0);
    let pmu = Pmu {
        version: leaf.eax as u8,
        counters: (leaf.eax >> 8) as u8,
        width: (leaf.eax >> 16) as u8,
    };
    let ebx_length = (leaf.eax >> 24) as u8;
    let cycles_available = ebx_length >= 1 && leaf.ebx & 1 == 0;
    (pmu.version >= 1 && pmu.counters >= 1 && pmu.width >= 32 && cycles_available).then_some(pmu)
}

/// Longest period the performance counter can count: through MSR 0xC1 only the low 32
/// bits are written (sign-extended), so the start value is at least -2^31.
pub const MAX_PERF_COUNTER_CYCLES: u64 = (1 << 31) - 1;

/// Event select: event 0x3C umask 0 (unhalted core cycles), user + kernel, interrupt on
/// overflow, enabled.
const EVENT_UNHALTED_CYCLES: u64 = 0x3c | (1 << 16) | (1 << 17) | (1 << 20) | (1 << 22);

/// Which source is running (0 = none, else `Source as u8 + 1`), and the PMU's parameters
/// for re-arming it.
static RUNNING: AtomicU8 = AtomicU8::new(0);
static PMU_VERSION: AtomicU8 = AtomicU8::new(0);
static PMU_WIDTH: AtomicU8 = AtomicU8::new(0);
static PERIOD_CYCLES: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// Starts the PIT source with about `period_ns` between NMIs (capped at the PIT's longest
/// period). Returns the period it runs at. The local APIC must be enabled.
pub fn start_pit(period_ns: u64) -> u64 {
    apic::route_lint0_as_nmi();
    let actual = pit::start_channel0(period_ns.min(pit::MAX_CHANNEL0_PERIOD_NS));
    RUNNING.store(Source::Pit as u8 + 1, Ordering::SeqCst);
    apic::unmask_pic_irq0();
    actual
}

/// Starts the performance-counter source: an NMI every `cycles` unhalted cycles (at most
/// `MAX_PERF_COUNTER_CYCLES`). Returns the cycles it counts.
pub fn start_perf_counter(pmu: Pmu, cycles: u64) -> u64 {
    let cycles = cycles.clamp(1, MAX_PERF_COUNTER_CYCLES);
    PMU_VERSION.store(pmu.version, Ordering::Relaxed);
    PMU_WIDTH.store(pmu.width, Ordering::Relaxed);
    PERIOD_CYCLES.store(cycles, Ordering::Relaxed);
    // SAFETY: `pmu` came from CPUID leaf 0xA, so counter 0, its event select and (version
    // ≥ 2) the global control exist; counting cycles and interrupting on overflow changes
    // nothing but the counter and the NMI it raises, which the handler expects.
    unsafe {
        wrmsr(Msr::PerfEventSelect0, 0);
        load_counter(cycles);
        apic::route_perf_counter_as_nmi();
        if pmu.version >= 2 {
            wrmsr(Msr::PerfGlobalControl, rdmsr(Msr::PerfGlobalControl) | 1);
        }
        RUNNING.store(Source::PerfCounter as u8 + 1, Ordering::SeqCst);
        wrmsr(Msr::PerfEventSelect0, EVENT_UNHALTED_CYCLES);
    }
    cycles
}

/// Writes counter 0 so that it overflows after `cycles` more cycles.
///
/// # Safety
/// Only with a PMU (see `start_perf_counter`).
unsafe fn load_counter(cycles: u64) {
    // The write is the low 32 bits sign-extended to the counter's width: -cycles.
    let start = (cycles as i64).wrapping_neg() as u64 & 0xffff_ffff;
    // SAFETY: guaranteed by the caller.
    unsafe { wrmsr(Msr::Pmc0, start) };
}

/// The running source, if any.
pub fn running() -> Option<Source> {
    match RUNNING.load(Ordering::SeqCst) {
        1 => Some(Source::Pit),
        2 => Some(Source::PerfCounter),
        _ => None,
    }
}

/// Called first by the NMI handler: acknowledges and re-arms the running source if this NMI
/// came from it, and says whether it did. An NMI the source did not raise (a second NMI
/// latched while the first was handled, or one from elsewhere) returns false.
pub fn claim() -> bool {
    match running() {
        None => false,
        Some(Source::Pit) => apic::claim_pic_irq0(),
        Some(Source::PerfCounter) => {
            let version = PMU_VERSION.load(Ordering::Relaxed);
            let width = PMU_WIDTH.load(Ordering::Relaxed).min(63);
            let overflowed = if version >= 2 {
                rdmsr(Msr::PerfGlobalStatus) & 1 != 0
            } else {
                // Counting up from -period: the top bit clears when it wraps past zero.
                rdmsr(Msr::Pmc0) & (1 << (width - 1)) == 0
            };
            if overflowed {
                // SAFETY: a PMU is running (RUNNING says so), so these registers exist;
                // reloading the counter and clearing its overflow bit re-arms it.
                unsafe {
                    load_counter(PERIOD_CYCLES.load(Ordering::Relaxed));
                    if version >= 2 {
                        wrmsr(Msr::PerfGlobalOverflowClear, 1);
                    }
                }
            }
            // Delivering the NMI masked the LVT entry; unmask it either way.
            apic::route_perf_counter_as_nmi();
            overflowed
        }
    }
}
