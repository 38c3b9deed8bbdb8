//! The monitor channel: the kernel streams trace events, snapshots, log lines, loss counters
//! and crash reports as `vigil_wire` frames on COM2, and obeys a few host commands.
//!
//! Driven from the timer tick, so it keeps flowing while user space is blocked or wedged.
//! Every poll does bounded work (a few frames built, at most `TX_BYTES_PER_POLL` bytes
//! written). When the host cannot keep up, whole frames are dropped and counted, and the
//! trace ring counts events it had to overwrite; both go out in periodic `Drops` frames.

use crate::arch::uart::COM2;
use crate::arch::{apic, ioapic};
use crate::system::Kernel;
use crate::{console, time, trace};
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use vigil_abi::host_command::Command as HostCommand;
use vigil_wire::{
    CommandResult, CrashKind, CrashReport, DropReport, Event, Hello, HostFrame, HostFrameDecoder,
    KernelFrame, LogLine, MemoryReport, ProcessAction, ProcessExit, ProcessInfo, ServiceAction,
    Snapshot, ThreadInfo, EXIT_HISTORY, PROTOCOL_VERSION,
};

/// Bytes buffered for transmission before whole frames are dropped.
const TX_CAPACITY: usize = 128 * 1024;
/// Bytes written to the UART per poll (100 polls a second).
const TX_BYTES_PER_POLL: usize = 4096;
/// Bytes read from the UART per poll or receive interrupt (the 16550's FIFO holds 16).
const RX_BYTES_PER_POLL: usize = 256;
/// Bytes the receive path takes in one tick, interrupts and poll together. Past it the
/// receive interrupt stays off until the next tick, so a flood of garbage costs the kernel
/// bounded time per tick (6.4 MB/s at 100 Hz is far above what QEMU's UART delivers).
const RX_BYTES_PER_TICK: usize = 64 * 1024;
/// ISA line of COM2.
const COM2_IRQ: u8 = 3;
/// Trace events per Events frame (a poll sends frames until a poll's worth of bytes is
/// queued: `queue_events`).
const EVENTS_PER_FRAME: usize = 64;
/// Log lines sent per poll.
const LOG_LINES_PER_POLL: usize = 16;
use vigil_kcore::monitor_settings::MonitorSettings;
pub use vigil_kcore::monitor_settings::DEFAULT_SNAPSHOT_PERIOD_MS;
/// Largest host frame accepted: commands are tiny, so garbage is dropped early.
const MAX_COMMAND_BYTES: usize = 256;
/// Process commands taken in per tick; more before the tick forwards them are `Busy`.
const PROCESS_REQUESTS_PER_TICK: usize = vigil_abi::host_command::MAX_OUTSTANDING;
/// How often the loss counters are sent (they double as a heartbeat).
const DROP_REPORT_PERIOD_NS: u64 = 1_000_000_000;

struct Monitor {
    transmit: VecDeque<u8>,
    decoder: HostFrameDecoder,
    /// The trace mask (also in force in `trace`) and snapshot period the client set.
    settings: MonitorSettings,
    next_snapshot_ns: u64,
    snapshot_requested: bool,
    next_drop_report_ns: u64,
    log_cursor: u64,
    frames_dropped: u64,
    malformed_commands: u64,
    /// Decoder error count already added to `malformed_commands`.
    decoder_errors_seen: u64,
    encoded: Vec<u8>,
    /// COM2's receive interrupt is routed to the CPU (else the tick polls alone).
    receive_interrupt: bool,
    /// Bytes received since the last tick (bounded by `RX_BYTES_PER_TICK`).
    received_this_tick: usize,
    /// The last `EXIT_HISTORY` process ends, resent after every Hello for late clients.
    exits: VecDeque<ProcessExit>,
    /// User crash reports sent, each until its process's end takes it (a process its
    /// signal manager holds after the crash ends later, other ends may come first); the
    /// oldest goes when more than `CRASHES_AWAITING_EXIT` wait.
    crash_awaiting_exit: VecDeque<CrashReport>,
    /// Process commands taken in, for the next tick to forward to PM (`host_command`).
    process_requests: Vec<crate::host_command::ProcessRequest>,
}

static MONITOR: crate::lock::Mutex<Option<Monitor>> =
    crate::lock::Mutex::new(crate::lock::Level::Monitor, None);

/// Starts the channel (after the heap exists) and queues the Hello frame.
pub fn init() {
    if !console::monitor_port_present() {
        return;
    }
    let mut monitor = Monitor {
        transmit: VecDeque::with_capacity(TX_CAPACITY),
        decoder: HostFrameDecoder::with_max_frame_bytes(MAX_COMMAND_BYTES),
        settings: MonitorSettings::DEFAULT,
        next_snapshot_ns: 0,
        snapshot_requested: false,
        next_drop_report_ns: 0,
        log_cursor: 0,
        frames_dropped: 0,
        malformed_commands: 0,
        decoder_errors_seen: 0,
        encoded: Vec::with_capacity(4096),
        receive_interrupt: false,
        received_this_tick: 0,
        exits: VecDeque::with_capacity(EXIT_HISTORY),
        crash_awaiting_exit: VecDeque::new(),
        process_requests: Vec::with_capacity(PROCESS_REQUESTS_PER_TICK),
    };
    // Host bytes are taken as they arrive, not once a tick: QEMU refills the UART's FIFO
    // only after the guest empties it, so polling alone takes in about 16 bytes per tick.
    if ioapic::route_isa_line(COM2_IRQ, apic::MONITOR_RECEIVE_VECTOR, apic::local_id()) {
        COM2.set_receive_interrupt(true);
        monitor.receive_interrupt = true;
    }
    // A lone delimiter first ends whatever line noise preceded us.
    monitor.transmit.push_back(0);
    monitor.queue(&KernelFrame::Hello(hello(DEFAULT_SNAPSHOT_PERIOD_MS)));
    *MONITOR.lock() = Some(monitor);
}

fn hello(snapshot_period_ms: u32) -> Hello {
    Hello {
        protocol_version: PROTOCOL_VERSION,
        kernel_version: String::from(crate::VERSION),
        tsc_hz: time::tsc_hz(),
        now_ns: time::now_ns(),
        event_mask: trace::mask(),
        snapshot_period_ms,
    }
}

/// Forwards the host commands taken in (to PM or RS) and queues the kernel's own answers;
/// called on every timer tick *before* the tick's timers expire, so a server whose alarm
/// fires on this very tick (RS's 10 ms tick) is still receiving and gets the command.
pub fn forward_host_commands(kernel: &mut Kernel) {
    // Without the monitor lock: forwarding is IPC to PM or RS.
    let requests = MONITOR
        .lock()
        .as_mut()
        .map(|monitor| core::mem::take(&mut monitor.process_requests))
        .unwrap_or_default();
    let answers = kernel.forward_host_commands(requests, time::now_ns());
    if let Some(monitor) = MONITOR.lock().as_mut() {
        for answer in &answers {
            monitor.queue(answer);
        }
    }
}

/// One round of monitor work; called on every timer tick with the kernel tables.
pub fn poll(kernel: &mut Kernel) {
    let mut guard = MONITOR.lock();
    let Some(monitor) = guard.as_mut() else {
        return;
    };
    if monitor.received_this_tick >= RX_BYTES_PER_TICK && monitor.receive_interrupt {
        COM2.set_receive_interrupt(true);
    }
    monitor.received_this_tick = 0;
    monitor.receive_commands();
    let now = time::now_ns();
    if monitor.snapshot_requested
        || (monitor.settings.snapshot_period_ms != 0 && now >= monitor.next_snapshot_ns)
    {
        monitor.snapshot_requested = false;
        monitor.next_snapshot_ns = now + u64::from(monitor.settings.snapshot_period_ms) * 1_000_000;
        let memory = MemoryReport {
            timestamp_ns: now,
            total_frames: crate::memory::total_frames() as u64,
            free_frames: crate::memory::free_frames() as u64,
            frame_bytes: vigil_kcore::paging::PAGE_SIZE as u32,
        };
        monitor.queue(&KernelFrame::Memory(memory));
        let frame = KernelFrame::Snapshot(snapshot(kernel, now));
        monitor.queue(&frame);
    }
    monitor.queue_events();
    monitor.queue_log_lines();
    if now >= monitor.next_drop_report_ns {
        monitor.next_drop_report_ns = now + DROP_REPORT_PERIOD_NS;
        let report = monitor.drop_report();
        monitor.queue(&KernelFrame::Drops(report));
    }
    monitor.transmit_some(TX_BYTES_PER_POLL);
}

/// Queues `frame` (the answer PM gave to a host command, `PmHostReply`).
pub fn send(frame: &KernelFrame) {
    if let Some(monitor) = MONITOR.lock().as_mut() {
        monitor.queue(frame);
    }
}

/// COM2's receive interrupt: takes in what the UART holds, within the tick's budget.
pub fn on_receive_interrupt() {
    let mut guard = MONITOR.lock();
    let Some(monitor) = guard.as_mut() else {
        return;
    };
    monitor.receive_commands();
    if monitor.received_this_tick >= RX_BYTES_PER_TICK {
        // Throttled: the tick turns the interrupt back on (and keeps polling meanwhile).
        COM2.set_receive_interrupt(false);
    }
}

/// Whether COM2's receive interrupt is in use (for the boot log).
pub fn receives_by_interrupt() -> bool {
    MONITOR
        .lock()
        .as_ref()
        .is_some_and(|monitor| monitor.receive_interrupt)
}

/// Most crash reports kept for processes that have not ended yet.
const CRASHES_AWAITING_EXIT: usize = 8;

/// Queues the crash report of a user process: a fault (`CrashKind::UserFault`) or a panic
/// (`CrashKind::UserPanic`, the `Panic` system call). Kernel crashes use `emergency_crash`.
pub fn report_user_crash(
    kind: CrashKind,
    process: &str,
    pid: u32,
    message: String,
    backtrace: Vec<u64>,
) {
    let mut guard = MONITOR.lock();
    let Some(monitor) = guard.as_mut() else {
        return;
    };
    let report = CrashReport {
        kind,
        timestamp_ns: time::now_ns(),
        process: Some((String::from(process), pid)),
        message,
        backtrace,
    };
    monitor.queue(&KernelFrame::Crash(report.clone()));
    // A process has one crash report: a later one of the same pid replaces it.
    monitor
        .crash_awaiting_exit
        .retain(|waiting| waiting.process.as_ref().map(|(_, of)| *of) != Some(pid));
    if monitor.crash_awaiting_exit.len() == CRASHES_AWAITING_EXIT {
        monitor.crash_awaiting_exit.pop_front();
    }
    monitor.crash_awaiting_exit.push_back(report);
}

/// Records the end of a process in the exit history and sends it (with the crash report
/// just sent for it, if it crashed). Called by `exit_process` for every end.
pub fn record_exit(process: &str, pid: u32, status: u64) {
    let mut guard = MONITOR.lock();
    let Some(monitor) = guard.as_mut() else {
        return;
    };
    let crash = monitor
        .crash_awaiting_exit
        .iter()
        .position(|report| report.process.as_ref().is_some_and(|(_, of)| *of == pid))
        .and_then(|index| monitor.crash_awaiting_exit.remove(index));
    let mut exit = ProcessExit {
        pid,
        name: String::from(process),
        status,
        timestamp_ns: time::now_ns(),
        crash,
        from_history: false,
    };
    monitor.queue(&KernelFrame::Exit(exit.clone()));
    exit.from_history = true;
    if monitor.exits.len() == EXIT_HISTORY {
        monitor.exits.pop_front();
    }
    monitor.exits.push_back(exit);
}

/// Best effort from a panic or kernel fault: flushes what is queued and writes a crash frame
/// synchronously. Gives up silently if the monitor or the heap is in use by the code that
/// crashed.
pub fn emergency_crash(kind: CrashKind, message: &str, backtrace: &[u64]) {
    if crate::heap::is_locked() {
        return;
    }
    let Some(mut guard) = MONITOR.try_lock() else {
        return;
    };
    let Some(monitor) = guard.as_mut() else {
        return;
    };
    let report = CrashReport {
        kind,
        timestamp_ns: time::now_ns(),
        process: None,
        message: String::from(message),
        backtrace: backtrace.to_vec(),
    };
    monitor.queue_log_lines();
    monitor.queue(&KernelFrame::Crash(report));
    monitor.transmit_some(usize::MAX);
}

/// Longest epitaph message.
const EPITAPH_MESSAGE_BYTES: usize = 256;
/// Room for the encoded epitaph (COBS of message, name, backtrace and checksum).
const EPITAPH_ENCODED_BYTES: usize = 2048;

/// A Crash frame that is filled and sent without allocating, for the NMI watchdog (which
/// may interrupt the allocator): every buffer is allocated once, at boot, and only filled
/// within its capacity afterwards.
pub struct Epitaph {
    report: CrashReport,
    name: String,
    encoded: Vec<u8>,
}

impl Epitaph {
    pub fn new() -> Epitaph {
        Epitaph {
            report: CrashReport {
                kind: CrashKind::KernelLockup,
                timestamp_ns: 0,
                process: None,
                message: String::with_capacity(EPITAPH_MESSAGE_BYTES),
                backtrace: Vec::with_capacity(crate::backtrace::MAX_FRAMES),
            },
            name: String::with_capacity(crate::process::NAME_BYTES),
            encoded: Vec::with_capacity(EPITAPH_ENCODED_BYTES),
        }
    }

    /// Fills the frame and writes it to COM2 straight away, from NMI context: never waits
    /// for a lock and never allocates. If the monitor is free, what it had queued goes out
    /// first; if the interrupted code holds it, the frame it was sending is cut short by a
    /// delimiter (the host loses that one frame and resynchronises on the epitaph). Returns
    /// whether it was sent (not without a COM2, or if it did not fit its buffer).
    pub fn send(
        &mut self,
        message: core::fmt::Arguments<'_>,
        process: Option<(&str, u32)>,
        backtrace: &[u64],
    ) -> bool {
        if !console::monitor_port_present() {
            return false;
        }
        let report = &mut self.report;
        report.timestamp_ns = time::now_ns();
        report.message.clear();
        let _ = core::fmt::Write::write_fmt(&mut Bounded(&mut report.message), message);
        report.backtrace.clear();
        let room = report.backtrace.capacity();
        report
            .backtrace
            .extend_from_slice(&backtrace[..backtrace.len().min(room)]);
        report.process = process.map(|(name, pid)| {
            let mut owned = core::mem::take(&mut self.name);
            owned.clear();
            let _ = core::fmt::Write::write_str(&mut Bounded(&mut owned), name);
            (owned, pid)
        });
        let frame = KernelFrame::Crash(core::mem::replace(report, empty_report()));
        self.encoded.clear();
        let encoded = vigil_wire::try_encode_kernel_frame(&frame, &mut self.encoded).is_ok()
            && self.encoded.len() <= EPITAPH_ENCODED_BYTES;
        let KernelFrame::Crash(mut report) = frame else {
            unreachable!("built as a Crash frame above")
        };
        if let Some((name, _)) = report.process.take() {
            self.name = name;
        }
        self.report = report;
        if !encoded {
            return false;
        }
        if let Some(mut guard) = MONITOR.try_lock() {
            if let Some(monitor) = guard.as_mut() {
                monitor.transmit_blocking();
            }
        }
        COM2.write_byte(0);
        for &byte in &self.encoded {
            COM2.write_byte(byte);
        }
        true
    }
}

/// A crash report with no buffers (moving it in and out allocates nothing).
fn empty_report() -> CrashReport {
    CrashReport {
        kind: CrashKind::KernelLockup,
        timestamp_ns: 0,
        process: None,
        message: String::new(),
        backtrace: Vec::new(),
    }
}

/// Writes into a `String` only within its capacity (never reallocating), cutting the rest.
struct Bounded<'a>(&'a mut String);

impl core::fmt::Write for Bounded<'_> {
    fn write_str(&mut self, text: &str) -> core::fmt::Result {
        for ch in text.chars() {
            if self.0.len() + ch.len_utf8() > self.0.capacity() {
                break;
            }
            self.0.push(ch);
        }
        Ok(())
    }
}

fn snapshot(kernel: &mut Kernel, now: u64) -> Snapshot {
    kernel.account_cpu_time();
    let generation = kernel.next_snapshot_generation();
    let (thread_count, process_count) = kernel.record_counts();
    let mut threads = Vec::with_capacity(thread_count);
    let mut processes = Vec::with_capacity(process_count);
    kernel.visit_records(&mut (
        |record: &_| threads.push(ThreadInfo::from(record)),
        |record: &_| processes.push(ProcessInfo::from_record(record)),
    ));
    Snapshot {
        generation,
        timestamp_ns: now,
        idle_ns: kernel.cpu.idle_ns(),
        threads,
        processes,
    }
}

impl Monitor {
    /// Encodes `frame` and queues it whole, or drops it whole (and counts it).
    fn queue(&mut self, frame: &KernelFrame) {
        self.encoded.clear();
        let _ = vigil_wire::try_encode_kernel_frame_reporting(
            frame,
            &mut self.encoded,
            crate::watchdog::note_encoding_progress,
        );
        // Nothing encoded means the frame exceeds the protocol's maximum: drop and count it.
        if self.encoded.is_empty() || self.transmit.len() + self.encoded.len() > TX_CAPACITY {
            self.frames_dropped += 1;
            return;
        }
        self.transmit.extend(self.encoded.iter().copied());
    }

    /// Encodes trace events only while what is queued is less than one poll can send, in
    /// frames of `EVENTS_PER_FRAME`: the rest wait in the trace ring (more compact than
    /// their encoding, and it counts what it must overwrite). Encoding is the costly part
    /// of a poll (about 2,000 instructions an event): when a poll encoded 256 events
    /// whatever the link could take, it spent about 580,000 instructions in one tick after
    /// a burst of activity, most of them for bytes that then waited in the queue.
    fn queue_events(&mut self) {
        while self.transmit.len() < TX_BYTES_PER_POLL {
            let mut events = Vec::new();
            trace::drain(EVENTS_PER_FRAME, |event| events.push(Event::from(event)));
            if events.is_empty() {
                break;
            }
            self.queue(&KernelFrame::Events(events));
        }
    }

    fn queue_log_lines(&mut self) {
        let mut lines = Vec::new();
        // At most the per-poll budget, read and nothing more: the lines behind it are
        // picked up next time. (Reading the whole backlog to keep 16 lines cost each tick
        // ~660,000 instructions after a burst of crash reports, in the kernel.)
        self.log_cursor = console::read_some_log(self.log_cursor, LOG_LINES_PER_POLL, |record| {
            lines.push(LogLine {
                seq: record.seq,
                timestamp_ns: record.timestamp_ns,
                level: record.level as u8,
                text: String::from(record.text),
            });
        });
        for line in lines {
            self.queue(&KernelFrame::Log(line));
        }
    }

    fn drop_report(&self) -> DropReport {
        let (_, events_dropped) = trace::counters();
        DropReport {
            events_dropped,
            frames_dropped: self.frames_dropped,
            malformed_commands: self.malformed_commands,
        }
    }

    fn receive_commands(&mut self) {
        let mut bytes = [0u8; RX_BYTES_PER_POLL];
        let mut len = 0;
        let budget = RX_BYTES_PER_TICK.saturating_sub(self.received_this_tick);
        while len < bytes.len().min(budget) {
            match COM2.try_read_byte() {
                Some(byte) => {
                    bytes[len] = byte;
                    len += 1;
                }
                None => break,
            }
        }
        if len == 0 {
            return;
        }
        self.received_this_tick += len;
        let mut commands = Vec::new();
        self.decoder.push(&bytes[..len], |frame| {
            if let Ok(command) = frame {
                commands.push(command);
            }
        });
        let errors = self.decoder.stats().errors();
        self.malformed_commands += errors - self.decoder_errors_seen;
        self.decoder_errors_seen = errors;
        for command in commands {
            self.execute(command);
        }
    }

    fn execute(&mut self, command: HostFrame) {
        let result = match command {
            HostFrame::Hello { protocol_version } => {
                if vigil_wire::compatible(protocol_version) {
                    // A new session: nothing a previous client set stays in force.
                    self.settings.start_session();
                    trace::set_mask(self.settings.event_mask);
                    self.next_snapshot_ns = time::now_ns();
                    let hello = hello(self.settings.snapshot_period_ms);
                    self.queue(&KernelFrame::Hello(hello));
                    // What ended before this client came: the history, oldest first.
                    for index in 0..self.exits.len() {
                        let exit = KernelFrame::Exit(self.exits[index].clone());
                        self.queue(&exit);
                    }
                    return;
                }
                self.malformed_commands += 1;
                CommandResult {
                    ok: false,
                    message: alloc::format!(
                        "protocol version {protocol_version} is not supported; the kernel speaks {PROTOCOL_VERSION}"
                    ),
                }
            }
            HostFrame::SetEventMask(mask) => {
                let mask = self.settings.set_event_mask(mask);
                trace::set_mask(mask);
                CommandResult {
                    ok: true,
                    message: alloc::format!("event mask {mask:#x}"),
                }
            }
            HostFrame::SetSnapshotPeriod { period_ms } => {
                let period = self.settings.set_snapshot_period(period_ms);
                self.next_snapshot_ns = time::now_ns();
                CommandResult {
                    ok: true,
                    message: alloc::format!("snapshot period {period} ms"),
                }
            }
            HostFrame::SnapshotNow => {
                self.snapshot_requested = true;
                CommandResult {
                    ok: true,
                    message: String::from("snapshot queued"),
                }
            }
            HostFrame::ProcessCommand(command) => {
                let action = match command.action {
                    ProcessAction::Stop => HostCommand::Stop,
                    ProcessAction::Continue => HostCommand::Continue,
                    ProcessAction::Kill => HostCommand::Kill,
                };
                self.take_process_request(command.request, action, command.pid);
                return;
            }
            HostFrame::ProcessTreeNow { request } => {
                self.take_process_request(request, HostCommand::List, 0);
                return;
            }
            HostFrame::ServiceCommand(command) => {
                let action = match command.action {
                    ServiceAction::Up => vigil_abi::rs::ServiceAction::Up,
                    ServiceAction::Down => vigil_abi::rs::ServiceAction::Down,
                    ServiceAction::Restart => vigil_abi::rs::ServiceAction::Restart,
                    ServiceAction::Refresh => vigil_abi::rs::ServiceAction::Refresh,
                    ServiceAction::Hold => vigil_abi::rs::ServiceAction::Hold,
                    ServiceAction::Release => vigil_abi::rs::ServiceAction::Release,
                };
                self.take_process_request(
                    command.request,
                    HostCommand::for_service_action(action),
                    command.service,
                );
                return;
            }
            HostFrame::ServiceUpdate(update) => {
                self.take_service_update(update);
                return;
            }
            HostFrame::ServiceListNow { request } => {
                self.take_process_request(request, HostCommand::ServiceList, 0);
                return;
            }
        };
        self.queue(&KernelFrame::CommandResult(result));
    }

    /// A host's `ServiceUpdate`: its program name checked once here (`Invalid` at once for
    /// one RS could not read: a NUL inside, not UTF-8), then forwarded like any service
    /// command with the name in the message's last three words.
    fn take_service_update(&mut self, update: vigil_wire::ServiceUpdate) {
        let mut words = [0u64; 3];
        for (index, byte) in update.program.iter().enumerate() {
            words[index / 8] |= u64::from(*byte) << ((index % 8) * 8);
        }
        let mut name = [0u8; vigil_abi::host_command::MAX_UPDATE_PROGRAM_BYTES];
        if vigil_abi::host_command::unpack_program(&words, &mut name).is_err() {
            let invalid = crate::host_command::result(
                update.request,
                vigil_abi::host_command::Outcome::Invalid,
                String::from(
                    "service update: the program name is not 1 to 24 bytes of UTF-8 without NUL",
                ),
            );
            self.queue(&invalid);
            return;
        }
        self.take_request(
            update.request,
            HostCommand::ServiceUpdate,
            update.service,
            words,
        );
    }

    /// Keeps a process command for the tick to forward to PM, or answers `Busy` at once
    /// when this tick has taken in as many as may wait.
    fn take_process_request(&mut self, request: u32, command: HostCommand, pid: u32) {
        self.take_request(request, command, pid, [0; 3]);
    }

    /// `take_process_request` with the command's further words (`argument`).
    fn take_request(&mut self, request: u32, command: HostCommand, pid: u32, argument: [u64; 3]) {
        if self.process_requests.len() >= PROCESS_REQUESTS_PER_TICK {
            let busy = crate::host_command::result(
                request,
                vigil_abi::host_command::Outcome::Busy,
                alloc::format!(
                    "busy: more than {PROCESS_REQUESTS_PER_TICK} process commands in one tick"
                ),
            );
            self.queue(&busy);
            return;
        }
        self.process_requests
            .push(crate::host_command::ProcessRequest {
                request,
                command,
                pid,
                argument,
            });
    }

    /// Writes everything queued, waiting (boundedly, per byte) for the UART.
    fn transmit_blocking(&mut self) {
        while let Some(byte) = self.transmit.pop_front() {
            COM2.write_byte(byte);
        }
    }

    /// Writes up to `budget` queued bytes while the UART accepts them.
    fn transmit_some(&mut self, budget: usize) {
        let mut sent = 0;
        while sent < budget {
            let Some(&byte) = self.transmit.front() else {
                break;
            };
            if !COM2.try_write_byte(byte) {
                break;
            }
            self.transmit.pop_front();
            sent += 1;
        }
    }
}

/// Takes the lock and returns its guard, for the `lockup-locked` self-test only.
pub fn hold_for_selftest() -> impl Sized {
    MONITOR.lock()
}
