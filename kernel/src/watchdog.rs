//! The NMI watchdog: catches a locked-up kernel and explains it.
//!
//! The kernel runs with interrupts off, so a kernel that loops forever stops the timer tick
//! and nothing maskable can run again; an NMI still can. A periodic NMI source
//! (`arch::nmi`: the performance counter when CPUID reports one, else PIT channel 0 routed
//! to LINT0 as an NMI) calls `on_nmi`, which samples *progress* — timer ticks plus console
//! lines written — and declares a lockup after `LOCKUP_NMIS` consecutive NMIs that saw none,
//! or after `MIN_LOCKUP_NMIS` of them once they span `LOCKUP_NMIS` periods of kernel time
//! (`kcore::watchdog::Detector`; 500–550 ms at the default 50 ms period).
//!
//! Not lockups: idling in `hlt` (interrupts on: ticks keep coming), a user thread spinning
//! (the tick preempts it), a long console report written with interrupts off (each line is
//! progress — MINIX's corner case, where a slow serial dump used to look like a lockup), a
//! large monitor frame encoded with interrupts off (every `vigil_wire::PROGRESS_BYTES` of it
//! is progress: a frame is at most `MAX_FRAME_BYTES`, so the encoder cannot hide a lockup; a
//! 1000-thread snapshot took over 500 ms of guest time under record mode's icount clock).
//!
//! The report (`report`) is NMI-safe: the handler never waits for a lock, since the code it
//! interrupted may hold any of them. The console and the monitor are taken with `try_lock`
//! and bypassed (straight to COM1 / COM2) when held; the kernel tables and the trace ring
//! are read without their lock when held (`lock::Mutex::data_while_held`: the holder is
//! frozen beneath the NMI on the one CPU); the epitaph frame uses buffers allocated at
//! boot, so the heap is never touched. Then, as `watchdog=` says, the machine stops with the
//! failure status (`panic`, the default) or the NMI returns and the watchdog keeps watching
//! (`report`: a line every `LOCKUP_NMIS` NMIs while it lasts, one when it ends).

use crate::arch::debug_exit::{self, ExitStatus};
use crate::arch::nmi::{self, Source};
use crate::arch::trap::TrapFrame;
use crate::arch::{pit, trap};
use crate::monitor::Epitaph;
use crate::{console, lock, time};
use core::sync::atomic::{AtomicU64, Ordering};
use vigil_kcore::watchdog::{Action, Config, Detector, SourceChoice, Verdict, LOCKUP_NMIS};

/// Trace events shown in the report.
const REPORT_EVENTS: usize = 12;

/// Watchdog NMIs claimed by the source, NMIs nobody claimed (a second NMI latched during
/// the first, or a foreign one), and lockups declared.
static NMIS: AtomicU64 = AtomicU64::new(0);
static UNCLAIMED_NMIS: AtomicU64 = AtomicU64::new(0);
static LOCKUPS: AtomicU64 = AtomicU64::new(0);

struct State {
    config: Config,
    source: Source,
    /// Time between source NMIs.
    nmi_period_ns: u64,
    /// Source NMIs per detector beat: more than one when the period is longer than the
    /// source can count (the PIT's longest period is 54.9 ms).
    nmis_per_beat: u32,
    nmis_in_beat: u32,
    detector: Detector,
    epitaph: Epitaph,
}

/// Taken once at boot (`start`) and afterwards only by the NMI handler, with `try_lock`;
/// NMIs do not nest, so it is never contended.
static STATE: lock::Mutex<Option<State>> = lock::Mutex::new(lock::Level::Watchdog, None);

/// Watchdog counters, for the self-tests and the bench.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub nmis: u64,
    pub unclaimed_nmis: u64,
    pub lockups: u64,
}

pub fn stats() -> Stats {
    Stats {
        nmis: NMIS.load(Ordering::Relaxed),
        unclaimed_nmis: UNCLAIMED_NMIS.load(Ordering::Relaxed),
        lockups: LOCKUPS.load(Ordering::Relaxed),
    }
}

/// Logs the NMI counters (at shutdown, for the bench's NMI rate): `watchdog: N NMIs (M
/// unclaimed) in T ms, L lockups`.
pub fn log_stats() {
    if !running() {
        return;
    }
    let stats = stats();
    crate::info!(
        "watchdog: {} NMIs ({} unclaimed) in {} ms, {} lockups",
        stats.nmis,
        stats.unclaimed_nmis,
        time::now_ns() / 1_000_000,
        stats.lockups
    );
}

/// Whether a watchdog source is running.
pub fn running() -> bool {
    nmi::running().is_some()
}

/// Reads `watchdog=` (None: absent), picks the NMI source and starts it, saying which in
/// the boot log. Needs the local APIC and the heap.
pub fn start(option: Option<&str>, tsc_hz: u64) {
    let config = match option.map(Config::parse) {
        None => Config::DEFAULT,
        Some(Ok(config)) => config,
        Some(Err(error)) => {
            crate::warn!("watchdog: bad watchdog= value: {error}; using the default");
            Config::DEFAULT
        }
    };
    if !config.enabled {
        crate::info!("watchdog: off (watchdog=off)");
        return;
    }
    let pmu = nmi::pmu();
    let source = match (config.source, pmu) {
        (SourceChoice::Pit, _) | (SourceChoice::Auto, None) => Source::Pit,
        (SourceChoice::Pmu | SourceChoice::Auto, Some(_)) => Source::PerfCounter,
        (SourceChoice::Pmu, None) => {
            crate::warn!(
                "watchdog: watchdog=pmu, but CPUID leaf 0xA reports no usable performance counter; using the PIT"
            );
            Source::Pit
        }
    };
    let period_ns = u64::from(config.period_ms) * 1_000_000;
    // Most the source can count between two NMIs, in nanoseconds.
    let longest_ns = match source {
        Source::Pit => pit::MAX_CHANNEL0_PERIOD_NS,
        Source::PerfCounter => nmi::MAX_PERF_COUNTER_CYCLES * 1_000_000_000 / tsc_hz.max(1),
    };
    let nmis_per_beat = period_ns.div_ceil(longest_ns.max(1)).max(1);
    let nmi_period_ns = period_ns / nmis_per_beat;
    *STATE.lock() = Some(State {
        config,
        source,
        nmi_period_ns,
        nmis_per_beat: nmis_per_beat as u32,
        nmis_in_beat: 0,
        detector: Detector::new(
            progress(),
            time::now_ns(),
            u64::from(config.threshold_ms()) * 1_000_000,
        ),
        epitaph: Epitaph::new(),
    });
    let nmi_period_ns = match (source, pmu) {
        (Source::PerfCounter, Some(pmu)) => {
            // Unhalted core cycles, taking the TSC rate as the core clock: the NMIs come
            // at this period while the CPU is busy (a lockup is busy) and not at all while
            // it halts, so an idle machine pays nothing.
            let cycles = nmi_period_ns * tsc_hz / 1_000_000_000;
            let cycles = nmi::start_perf_counter(pmu, cycles);
            cycles * 1_000_000_000 / tsc_hz.max(1)
        }
        _ => nmi::start_pit(nmi_period_ns),
    };
    if let Some(state) = STATE.lock().as_mut() {
        state.nmi_period_ns = nmi_period_ns;
    }
    let action = match config.action {
        Action::Panic => "report and stop (watchdog=panic)",
        Action::Report => "report and keep running (watchdog=report)",
    };
    crate::info!(
        "watchdog: NMI source {}, every {} us; lockup = no tick or console output across {} NMIs (~{} ms); then {action}",
        source.description(),
        nmi_period_ns / 1000,
        u64::from(LOCKUP_NMIS) * nmis_per_beat,
        config.threshold_ms()
    );
}

/// Chunks of monitor frames encoded (`note_encoding_progress`).
static ENCODING_PROGRESS: AtomicU64 = AtomicU64::new(0);

/// Called by the monitor's frame encoder after every `vigil_wire::PROGRESS_BYTES` encoded.
pub fn note_encoding_progress() {
    ENCODING_PROGRESS.fetch_add(1, Ordering::Relaxed);
}

/// What the healthy kernel advances by itself: timer ticks, console lines and chunks of
/// monitor frames encoded.
fn progress() -> u64 {
    time::ticks()
        .wrapping_add(console::lines_written())
        .wrapping_add(ENCODING_PROGRESS.load(Ordering::Relaxed))
}

/// Called by the NMI entry for every NMI. Returns false if no watchdog source claimed it
/// and the watchdog is off (then it is fatal, as before the watchdog existed). Returns to
/// the interrupted code unless a lockup stops the machine.
pub fn on_nmi(frame: &TrapFrame) -> bool {
    if !nmi::claim() {
        if !running() {
            return false;
        }
        UNCLAIMED_NMIS.fetch_add(1, Ordering::Relaxed);
        return true;
    }
    NMIS.fetch_add(1, Ordering::Relaxed);
    let Some(mut guard) = STATE.try_lock() else {
        return true; // only during `start`, before the first beat matters
    };
    let Some(state) = guard.as_mut() else {
        return true;
    };
    state.nmis_in_beat += 1;
    if state.nmis_in_beat < state.nmis_per_beat {
        return true;
    }
    state.nmis_in_beat = 0;
    let quiet_ms = |quiet_nmis: u64| {
        quiet_nmis * u64::from(state.nmis_per_beat) * state.nmi_period_ns / 1_000_000
    };
    match state.detector.on_nmi(progress(), time::now_ns()) {
        Verdict::Alive => {}
        Verdict::Lockup => {
            LOCKUPS.fetch_add(1, Ordering::Relaxed);
            report(frame, state);
            if state.config.action == Action::Panic {
                console::enter_nmi_mode();
                crate::error!("watchdog: stopping the machine (watchdog=panic)");
                debug_exit::exit(ExitStatus::Failure);
            }
        }
        Verdict::StillLockedUp { quiet_nmis } => {
            let ms = quiet_ms(quiet_nmis);
            console::enter_nmi_mode();
            crate::error!(
                "watchdog: kernel still locked up: no progress for {ms} ms, rip {:#x}",
                frame.rip
            );
            console::leave_nmi_mode();
        }
        Verdict::Recovered { quiet_nmis } => {
            let ms = quiet_ms(quiet_nmis);
            console::enter_nmi_mode();
            crate::warn!("watchdog: the kernel made progress again after about {ms} ms locked up");
            console::leave_nmi_mode();
        }
    }
    true
}

/// Prints the lockup report on COM1 and sends the epitaph on COM2, from NMI context.
fn report(frame: &TrapFrame, state: &mut State) {
    console::enter_nmi_mode();
    let now = time::now_ns();
    let since_tick_ms = now.saturating_sub(time::last_tick_ns()) / 1_000_000;
    let mode = if frame.cs & 3 == 0 { "kernel" } else { "user" };
    let interrupts = if frame.rflags & (1 << 9) != 0 {
        "on"
    } else {
        "off"
    };
    let quiet_nmis = state.detector.quiet_nmis() * u64::from(state.nmis_per_beat);
    crate::error!(
        "KERNEL LOCKUP: no timer tick for {since_tick_ms} ms and no progress across {quiet_nmis} watchdog NMIs; {mode} mode, interrupts {interrupts}, rip {:#x}",
        frame.rip
    );
    console::continuation(format_args!(
        "  watchdog: {}, an NMI every {} us",
        state.source.description(),
        state.nmi_period_ns / 1000
    ));
    trap::print_registers(frame);

    let (thread, kernel_held) = crate::system::interrupted_thread();
    let held_note = if kernel_held {
        " [kernel lock held by the interrupted code; read without it]"
    } else {
        ""
    };
    match &thread {
        Some(thread) => console::continuation(format_args!(
            "  current thread: {}#{} (endpoint {}) of process '{}' (pid {}){held_note}",
            thread.process_name(),
            thread.endpoint.slot(),
            thread.endpoint,
            thread.process_name(),
            thread.pid
        )),
        None => console::continuation(format_args!(
            "  current thread: none (the kernel was not running a thread){held_note}"
        )),
    }

    let (addresses, count) = crate::backtrace::print(Some(frame.rip), frame.rbp);

    console::continuation(format_args!(
        "last {REPORT_EVENTS} trace events before the lockup (oldest first):"
    ));
    let mut shown = 0;
    let ring_held = crate::trace::recent_from_nmi(REPORT_EVENTS, |event| {
        shown += 1;
        let kind = vigil_abi::trace::EventKind::from_u16(event.kind).map_or("?", |k| k.name());
        console::continuation(format_args!(
            "  #{} {}.{:06} {kind} thread {} args [{:#x}, {:#x}, {:#x}]",
            event.seq,
            event.timestamp_ns / 1_000_000_000,
            (event.timestamp_ns / 1000) % 1_000_000,
            vigil_abi::Endpoint(event.thread),
            event.args[0],
            event.args[1],
            event.args[2]
        ));
    });
    if shown == 0 {
        console::continuation(format_args!("  (none recorded)"));
    }
    if ring_held {
        console::continuation(format_args!(
            "  [trace ring lock held by the interrupted code; read without it]"
        ));
    }

    let process = thread
        .as_ref()
        .map(|thread| (thread.process_name(), thread.pid));
    let sent = state.epitaph.send(
        format_args!(
            "KERNEL LOCKUP: no timer tick for {since_tick_ms} ms; {mode} mode at {:#x}",
            frame.rip
        ),
        process,
        &addresses[..count],
    );
    if sent {
        console::continuation(format_args!(
            "  epitaph: a kernel-lockup crash frame with {count} raw frame addresses sent on COM2"
        ));
    }
    console::leave_nmi_mode();
}
