//! The host-tool checks of the monitor scenarios, one per scenario: each judges an
//! [`Observation`] (the tool's JSON lines, the proxy's raw frames, the console) and on
//! success returns a short note for the PASS line.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use vigil_wire::{KernelFrame, ThreadInfo};

use super::super::proxy;
use super::super::scenario::millis;
use super::session::{Observation, GARBAGE_SEED};
use super::view::*;
use super::MONITOR_SCENARIOS;

/// Processes booted by `monitor-boot-processes`, by name.
const BOOT_PROCESSES: [&str; 5] = [
    "spinner",
    "pingpong_server",
    "chain_a",
    "chain_b",
    "chain_c",
];
/// The tool must name every boot process within this much kernel time of its first frame.
const NAMED_WITHIN_NS: u64 = 2_000_000_000;
/// A CPU hog uses more than this share of a CPU (percent).
const HOG_PERCENT: f64 = 80.0;
/// The detector reports a hung chain once its head has been blocked this long.
pub const HUNG_AFTER_NS: u64 = 5_000_000_000;
/// Malformed commands the kernel may count before any garbage: the tool's Hello, sent as
/// soon as it connects, can reach COM2 before the kernel has set up the UART (whose FIFO
/// reset cuts the frame), and the kernel then counts it as one malformed command.
const KNOWN_EARLY_MALFORMED: u64 = 1;
/// `vigil record` must have stored every frame the proxy forwarded this long before the
/// recorder's duration was over (it stops reading at most one poll before exiting).
const RECORD_TAIL_MARGIN: Duration = millis(500);

// ---------------------------------------------------------------------------------------------
// The checks
// ---------------------------------------------------------------------------------------------

/// Every boot process appears by name in the processes of a snapshot the tool printed, with
/// its threads labelled by that name, no later than [`NAMED_WITHIN_NS`] of kernel time after
/// the kernel time of the first line the tool printed (its first frame: a hello, a log line or
/// an event batch). The raw snapshot of the same generation has the same process names.
pub fn check_boot_processes(observation: &Observation) -> Result<String, String> {
    let lines = &observation.lines;
    let first_ns = lines
        .iter()
        .find_map(kernel_time)
        .ok_or("the tool printed no line with a kernel time")?;
    let wanted: BTreeSet<&str> = BOOT_PROCESSES.into_iter().collect();
    // PM creates every boot program before it starts any: a snapshot may name a process
    // whose thread does not exist yet. The first one with every process and its threads.
    let complete = |snapshot: &Value| {
        wanted.is_subset(&process_names(snapshot))
            && BOOT_PROCESSES
                .iter()
                .all(|name| !threads_of(snapshot, name).is_empty())
    };
    let (_, snapshot) = of_type(lines, "snapshot")
        .find(|(_, s)| complete(s))
        .ok_or_else(|| {
            let last = of_type(lines, "snapshot").last().map(|(_, s)| s);
            let names = last.map(process_names).unwrap_or_default();
            let unlabelled: Vec<&str> = last
                .map(|s| {
                    BOOT_PROCESSES
                        .into_iter()
                        .filter(|name| threads_of(s, name).is_empty())
                        .collect()
                })
                .unwrap_or_default();
            format!(
                "no snapshot names all of {wanted:?} with their threads labelled NAME#<slot>; \
                 the last one names {names:?}, with no thread labelled for {unlabelled:?}"
            )
        })?;
    let at_ns = u64_field(snapshot, "ts_ns").ok_or("a snapshot line without ts_ns")?;
    let after_ns = at_ns.saturating_sub(first_ns);
    if after_ns > NAMED_WITHIN_NS {
        return Err(format!(
            "the first snapshot naming every boot process came {:.2} s (kernel time) after the \
             tool's first frame; allowed {:.1} s",
            after_ns as f64 / 1e9,
            NAMED_WITHIN_NS as f64 / 1e9
        ));
    }
    let generation = u64_field(snapshot, "generation").ok_or("a snapshot without generation")?;
    let raw = raw_snapshot(&observation.proxy, generation).ok_or_else(|| {
        format!("the proxy decoded no snapshot of generation {generation} from the raw stream")
    })?;
    let raw_names: BTreeSet<&str> = raw.processes.iter().map(|p| p.name.as_str()).collect();
    if raw_names != process_names(snapshot) {
        return Err(format!(
            "the tool's snapshot {generation} names {:?}, the raw frame {raw_names:?}",
            process_names(snapshot)
        ));
    }
    Ok(format!(
        "all {} processes named {:.2} s (kernel time) after the first frame",
        BOOT_PROCESSES.len(),
        after_ns as f64 / 1e9
    ))
}

/// Heap pages the idler of `monitor-memory` touches (`vm_introspect idle`).
const IDLE_PAGES: u64 = 8;

/// The memory figures of one process as the tool printed them, checked against the raw
/// frame: (resident pages, peak pages, virtual bytes, faults not present, protection).
fn memory_figures(
    snapshot: &Value,
    raw: &vigil_wire::Snapshot,
    name: &str,
) -> Result<[u64; 5], String> {
    let printed = array(snapshot, "processes")
        .iter()
        .find(|p| str_field(p, "name") == name)
        .ok_or_else(|| format!("the tool's snapshot has no process {name}"))?;
    let field = |key: &str| {
        u64_field(printed, key).ok_or_else(|| format!("{name}: the tool printed no {key}"))
    };
    let figures = [
        field("memory_pages")?,
        field("peak_pages")?,
        field("virtual_bytes")?,
        field("faults_not_present")?,
        field("faults_protection")?,
    ];
    let p = raw_process(raw, name)?;
    let frame = [
        p.memory_pages,
        p.peak_pages,
        p.virtual_bytes,
        p.faults_not_present,
        p.faults_protection,
    ];
    if figures != frame || field("shared_pages")? != p.shared_pages {
        return Err(format!(
            "{name}: the tool printed {figures:?}, the raw frame says {frame:?}"
        ));
    }
    Ok(figures)
}

/// `monitor-memory`: the tool shows the kernel's memory figures of a real boot with VM. In
/// the last snapshot it printed, the idler (served by VM, 8 heap pages touched) has resident
/// pages, a peak no lower, a virtual size above its resident bytes (VM's heap reservation,
/// reported with VmSetVirtual, plus the image) and at least 8 faults forwarded to VM, none
/// of them protection faults; VM itself, which no one serves, has its mapped bytes as its
/// virtual size and no forwarded faults. The raw frame of that generation says the same.
pub fn check_memory_figures(observation: &Observation) -> Result<String, String> {
    let lines = &observation.lines;
    let (_, snapshot) = of_type(lines, "snapshot")
        .filter(|(_, s)| process_names(s).contains("idler"))
        .last()
        .ok_or("no snapshot the tool printed names the idler")?;
    let generation = u64_field(snapshot, "generation").ok_or("a snapshot without generation")?;
    let raw = raw_snapshot(&observation.proxy, generation).ok_or_else(|| {
        format!("the proxy decoded no snapshot of generation {generation} from the raw stream")
    })?;
    let [resident, peak, virtual_bytes, not_present, protection] =
        memory_figures(snapshot, raw, "idler")?;
    if resident == 0
        || peak < resident
        || virtual_bytes <= resident * 4096
        || not_present < IDLE_PAGES
        || protection != 0
    {
        return Err(format!(
            "idler: resident {resident}, peak {peak}, virtual {virtual_bytes}, faults {not_present} not present / {protection} protection"
        ));
    }
    let [vm_resident, vm_peak, vm_virtual, vm_not_present, vm_protection] =
        memory_figures(snapshot, raw, "vm")?;
    if vm_virtual != vm_resident * 4096
        || vm_peak < vm_resident
        || vm_not_present + vm_protection != 0
    {
        return Err(format!(
            "vm: resident {vm_resident}, peak {vm_peak}, virtual {vm_virtual}, faults {vm_not_present}/{vm_protection}"
        ));
    }
    Ok(format!(
        "idler: resident {resident} pages (peak {peak}), virtual {} KiB, {not_present} faults to VM; vm: {vm_resident} pages",
        virtual_bytes / 1024
    ))
}

/// Clients of `monitor-hub` (all run at once through one hub).
pub const HUB_CLIENTS: usize = 3;
/// Each hub client must have seen at least this many snapshots (10 a second).
const HUB_MIN_SNAPSHOTS: usize = 15;

/// Every client of the hub, all attached at the same time, got exactly one `hello`, a
/// stream of snapshots that names the spinner, and no failed command result (none of them
/// sent a bad frame); the snapshot generations they saw overlap (they watched the same
/// kernel at the same time), and every generation a client printed was in the raw stream.
pub fn check_hub_clients(observation: &Observation) -> Result<String, String> {
    if observation.clients.len() != HUB_CLIENTS {
        return Err(format!(
            "{} hub clients' outputs, expected {HUB_CLIENTS}",
            observation.clients.len()
        ));
    }
    let raw: BTreeSet<u64> = raw_snapshots(&observation.proxy)
        .map(|s| s.generation)
        .collect();
    let mut common: Option<BTreeSet<u64>> = None;
    for (index, lines) in observation.clients.iter().enumerate() {
        let client = index + 1;
        let hellos = of_type(lines, "hello").count();
        if hellos != 1 {
            return Err(format!(
                "hub client {client} printed {hellos} hello lines, expected 1"
            ));
        }
        // A client that attaches before the hub reached the kernel is told so (a failed
        // command result from the hub, before its hello); any other failure is a fault.
        let hello_at = of_type(lines, "hello").next().map_or(0, |(index, _)| index);
        if let Some((_, failed)) = of_type(lines, "command_result").find(|(index, r)| {
            r["ok"] != Value::Bool(true)
                && !(*index < hello_at
                    && str_field(r, "message").starts_with("vigil hub: not connected"))
        }) {
            return Err(format!(
                "hub client {client} got a failed command result: {failed}"
            ));
        }
        let generations: BTreeSet<u64> = of_type(lines, "snapshot")
            .filter_map(|(_, s)| u64_field(s, "generation"))
            .collect();
        if generations.len() < HUB_MIN_SNAPSHOTS {
            return Err(format!(
                "hub client {client} saw {} snapshots, expected at least {HUB_MIN_SNAPSHOTS}",
                generations.len()
            ));
        }
        if let Some(unknown) = generations.iter().find(|g| !raw.contains(g)) {
            return Err(format!(
                "hub client {client} printed snapshot {unknown}, which the proxy never saw"
            ));
        }
        if !of_type(lines, "snapshot").any(|(_, s)| process_names(s).contains("spinner")) {
            return Err(format!("hub client {client} never saw the spinner named"));
        }
        common = Some(match common {
            None => generations,
            Some(so_far) => so_far.intersection(&generations).copied().collect(),
        });
    }
    let shared = common.map_or(0, |c| c.len());
    if shared < HUB_MIN_SNAPSHOTS / 2 {
        return Err(format!(
            "the hub clients saw only {shared} snapshots in common: not served at the same time"
        ));
    }
    Ok(format!(
        "{HUB_CLIENTS} clients at once, one hello each, {shared} snapshots seen by all"
    ))
}

/// `vigil metrics` on a live kernel: its classic-format exposition names the spinner's CPU
/// counter and the build info, `promtool check metrics` accepts it, and a real Prometheus
/// server scraping it on loopback stored `vigil_link_up` 1, `up` 1 and the CPU counters of at
/// least two threads.
pub fn check_metrics(observation: &Observation) -> Result<String, String> {
    let probe = observation
        .metrics
        .as_ref()
        .ok_or("the metrics probe did not run")?;
    let text = probe.text.as_ref().map_err(|e| format!("scraping: {e}"))?;
    for wanted in [
        super::prom::SPINNER_COUNTER,
        "vigil_build_info{version=",
        "vigil_link_up 1",
        "vigil_cpu_idle_seconds_total ",
        "vigil_memory_total_bytes ",
        "vigil_memory_free_bytes ",
    ] {
        if !text.contains(wanted) {
            return Err(format!("the exposition has no `{wanted}`"));
        }
    }
    probe.promtool.clone()?;
    let answers = probe.queries.as_ref().map_err(|e| e.clone())?;
    let values: Vec<Option<f64>> = answers.iter().map(super::prom::first_value).collect();
    match values.as_slice() {
        [Some(link), Some(up), Some(threads)] if *link == 1.0 && *up == 1.0 && *threads >= 2.0 => {
            Ok(format!(
                "promtool clean; Prometheus scraped {threads} thread CPU counters"
            ))
        }
        _ => Err(format!(
            "Prometheus answered {values:?} to {:?}; expected 1, 1 and at least 2",
            super::prom::QUERIES
        )),
    }
}

/// The spinner's CPU share, from the tool's snapshot lines: the tool's own `cpu_percent`
/// must agree with what consecutive snapshots' `cpu_ns` and `ts_ns` give, the median over
/// the snapshots after the spinner started must exceed [`HOG_PERCENT`], and so must its
/// share over the whole span. Then a `cpu-hog` alert must name the spinner thread.
pub fn check_cpu_hog(observation: &Observation) -> Result<String, String> {
    let lines = &observation.lines;
    let snapshots: Vec<&Value> = of_type(lines, "snapshot").map(|(_, s)| s).collect();
    // (generation, ts_ns, cpu_ns, the tool's cpu_percent, label)
    let mut samples = Vec::new();
    for snapshot in &snapshots {
        // PM starts the spinner a little after the first snapshots; once there, it stays.
        if samples.is_empty() && threads_of(snapshot, "spinner").is_empty() {
            continue;
        }
        let thread = thread_of(snapshot, "spinner")?;
        samples.push((
            u64_field(snapshot, "generation").unwrap_or(0),
            u64_field(snapshot, "ts_ns").unwrap_or(0),
            u64_field(thread, "cpu_ns").unwrap_or(0),
            thread
                .get("cpu_percent")
                .and_then(Value::as_f64)
                .unwrap_or(0.0),
            str_field(thread, "thread").to_string(),
        ));
    }
    let mut percents = Vec::new();
    for pair in samples.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        if after.0 != before.0 + 1 || before.2 == 0 || after.1 <= before.1 {
            continue; // a gap, or the spinner had not run yet
        }
        let computed = (after.2 - before.2) as f64 * 100.0 / (after.1 - before.1) as f64;
        if (computed - after.3).abs() > 0.02 {
            return Err(format!(
                "snapshot {}: the tool says spinner used {:.2}% but cpu_ns and ts_ns give \
                 {computed:.2}%",
                after.0, after.3
            ));
        }
        percents.push(computed);
    }
    if percents.len() < 5 {
        return Err(format!(
            "only {} consecutive snapshot pairs with the spinner running ({} snapshots)",
            percents.len(),
            snapshots.len()
        ));
    }
    let mut sorted = percents.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let started = samples
        .iter()
        .position(|s| s.2 > 0)
        .ok_or("the spinner never ran")?;
    let (first, last) = (&samples[started], &samples[samples.len() - 1]);
    let overall = (last.2 - first.2) as f64 * 100.0 / (last.1 - first.1).max(1) as f64;
    if median <= HOG_PERCENT || overall <= HOG_PERCENT {
        return Err(format!(
            "spinner used {median:.1}% of the CPU (median of {} intervals), {overall:.1}% \
             overall; expected above {HOG_PERCENT}%",
            percents.len()
        ));
    }
    let label = &last.4;
    let hogs = alerts(lines, "cpu-hog");
    let alert = hogs
        .iter()
        .find(|a| alert_threads(a) == [label.as_str()])
        .ok_or_else(|| {
            format!(
                "no cpu-hog alert naming exactly [{label:?}]; {}",
                alert_summary(lines)
            )
        })?;
    let message = str_field(alert, "message");
    if !message.contains(label.as_str()) {
        return Err(format!(
            "the cpu-hog alert does not name {label}: {message:?}"
        ));
    }
    Ok(format!(
        "{label} at {median:.1}% median over {} snapshots, {overall:.1}% overall; alert at \
         {:.2} s",
        percents.len(),
        u64_field(alert, "first_seen_ns").unwrap_or(0) as f64 / 1e9
    ))
}

/// A `deadlock` alert names two different `deadlock_mutex#<slot>` threads and two different
/// mutex addresses; the raw snapshot of the same time shows exactly those two threads
/// blocked on exactly those two mutexes (state 6, `wait_argument` = address), and the
/// program printed the same addresses on the console.
pub fn check_deadlock(observation: &Observation) -> Result<String, String> {
    let lines = &observation.lines;
    let deadlocks = alerts(lines, "deadlock");
    let alert = deadlocks
        .first()
        .ok_or_else(|| format!("no deadlock alert; {}", alert_summary(lines)))?;
    let threads = alert_threads(alert);
    let slots: BTreeSet<u16> = threads
        .iter()
        .filter(|t| t.starts_with("deadlock_mutex#"))
        .filter_map(|t| slot_of(t))
        .collect();
    if threads.len() != 2 || slots.len() != 2 {
        return Err(format!(
            "the deadlock alert should name two different deadlock_mutex#<slot> threads: \
             {threads:?}"
        ));
    }
    let message = str_field(alert, "message");
    let addresses: BTreeSet<u64> = hex_numbers(message).into_iter().collect();
    if addresses.len() != 2 {
        return Err(format!(
            "the deadlock alert should name two mutex addresses: {message:?}"
        ));
    }
    for thread in &threads {
        if !message.contains(thread) {
            return Err(format!(
                "the deadlock message does not name {thread}: {message:?}"
            ));
        }
    }
    // The raw snapshot the alert was raised on.
    let seen_ns = u64_field(alert, "first_seen_ns").ok_or("an alert without first_seen_ns")?;
    let raw = raw_snapshots(&observation.proxy)
        .find(|s| s.timestamp_ns == seen_ns)
        .ok_or("the proxy decoded no raw snapshot at the alert's time")?;
    let pid = raw_process(raw, "deadlock_mutex")?.pid;
    let blocked: Vec<&ThreadInfo> = raw
        .threads
        .iter()
        .filter(|t| t.pid == pid && t.state == vigil_abi::introspect::state_code::MUTEX)
        .collect();
    let raw_slots: BTreeSet<u16> = blocked.iter().map(|t| slot(t.endpoint)).collect();
    let raw_addresses: BTreeSet<u64> = blocked.iter().map(|t| t.wait_argument).collect();
    if raw_slots != slots || raw_addresses != addresses {
        return Err(format!(
            "the alert names slots {slots:?} and mutexes {addresses:x?}; the raw snapshot has \
             slots {raw_slots:?} blocked on {raw_addresses:x?}"
        ));
    }
    let console_addresses: BTreeSet<u64> = observation
        .console
        .lines
        .iter()
        .filter(|l| l.text.contains("deadlock_mutex: ") && l.text.contains(" holds "))
        .flat_map(|l| hex_numbers(&l.text))
        .collect();
    if console_addresses != addresses {
        return Err(format!(
            "the program's own lines name mutexes {console_addresses:x?}, the alert \
             {addresses:x?}"
        ));
    }
    Ok(format!(
        "{} on {:#x} and {:#x} at {:.2} s",
        threads.join(" and "),
        addresses.first().copied().unwrap_or(0),
        addresses.last().copied().unwrap_or(0),
        seen_ns as f64 / 1e9
    ))
}

/// The chain as the tool shows it: chain_a and chain_b in state `send` with their wait
/// naming the next link's thread, chain_c `sleep`; the raw snapshot of the same generation
/// has state code 3 (sending) and `wait_target` = the next link's main-thread endpoint. A
/// `hung-chain` alert names the three links in order, raised no earlier than
/// [`HUNG_AFTER_NS`] after the first snapshot in which the tool saw chain_a sending.
pub fn check_blocked_chain(observation: &Observation) -> Result<String, String> {
    let lines = &observation.lines;
    let links = ["chain_a", "chain_b", "chain_c"];
    let snapshot = of_type(lines, "snapshot")
        .map(|(_, s)| s)
        .last()
        .ok_or("the tool printed no snapshot")?;
    let generation = u64_field(snapshot, "generation").unwrap_or(0);
    let raw = raw_snapshot(&observation.proxy, generation).ok_or_else(|| {
        format!("the proxy decoded no snapshot of generation {generation} from the raw stream")
    })?;
    let mut labels = Vec::new();
    for link in links {
        labels.push(str_field(thread_of(snapshot, link)?, "thread").to_string());
    }
    for (index, link) in links[..2].iter().enumerate() {
        let next = links[index + 1];
        let thread = thread_of(snapshot, link)?;
        let (state, wait) = (str_field(thread, "state"), str_field(thread, "wait"));
        if state != "send" || !wait.contains(&format!("→ {}", labels[index + 1])) {
            return Err(format!(
                "snapshot {generation}: {} is {state:?} ({wait:?}); expected send → {}",
                labels[index],
                labels[index + 1]
            ));
        }
        let raw_thread = raw_main_thread(raw, link)?;
        let next_main = raw_process(raw, next)?.main_thread;
        if raw_thread.state != vigil_abi::introspect::state_code::SENDING
            || raw_thread.wait_target != next_main
        {
            return Err(format!(
                "raw snapshot {generation}: {link} has state code {} and wait_target {:#x}; \
                 expected 3 (sending) and {next}'s main thread {next_main:#x}",
                raw_thread.state, raw_thread.wait_target
            ));
        }
        if slot_of(&labels[index + 1]) != Some(slot(next_main)) {
            return Err(format!(
                "the tool labels {next}'s thread {}, but its main thread is slot {}",
                labels[index + 1],
                slot(next_main)
            ));
        }
    }
    let end = thread_of(snapshot, "chain_c")?;
    if str_field(end, "state") != "sleep" {
        return Err(format!(
            "snapshot {generation}: chain_c is {:?}; expected sleep",
            str_field(end, "wait")
        ));
    }
    let blocked_since = of_type(lines, "snapshot")
        .map(|(_, s)| s)
        .find(|s| thread_of(s, "chain_a").is_ok_and(|t| str_field(t, "state") == "send"))
        .and_then(|s| u64_field(s, "ts_ns"))
        .ok_or("no snapshot shows chain_a sending")?;
    let hung = alerts(lines, "hung-chain");
    let alert = hung
        .first()
        .ok_or_else(|| format!("no hung-chain alert; {}", alert_summary(lines)))?;
    if alert_threads(alert) != labels {
        return Err(format!(
            "the hung-chain alert names {:?}; expected {labels:?}",
            alert_threads(alert)
        ));
    }
    let seen_ns = u64_field(alert, "first_seen_ns").unwrap_or(0);
    let after_ns = seen_ns.saturating_sub(blocked_since);
    if seen_ns < blocked_since + HUNG_AFTER_NS {
        return Err(format!(
            "the hung-chain alert came {:.2} s after the tool first saw chain_a blocked; \
             expected at least {:.1} s",
            after_ns as f64 / 1e9,
            HUNG_AFTER_NS as f64 / 1e9
        ));
    }
    Ok(format!(
        "{} sending to {} sending to {}; hung-chain alert {:.2} s after chain_a was first \
         seen blocked",
        labels[0],
        labels[1],
        labels[2],
        after_ns as f64 / 1e9
    ))
}

/// After the garbage went to the kernel: the tool keeps printing snapshots (at least half
/// as many as the snapshot period allows for the rest of the run, and at least 5), a `drops`
/// line printed after the last pre-garbage snapshot reports `malformed_commands > 0` and
/// above what the drops lines said before the garbage (the kernel may have counted a bad
/// command already: see `KNOWN_EARLY_MALFORMED`), the increase is no more than the bad
/// frames the garbage holds, and the kernel → host stream stayed undamaged (the proxy's
/// decoder found no bad frame).
/// `monitor-session-defaults`: another client set the event mask to 0 (1.2 s), then a new
/// session began with a Hello (2.4 s). Events must flow before, stop while the mask is 0, and
/// flow again after the Hello, whose answer carries the default mask.
pub fn check_session_defaults(observation: &Observation) -> Result<String, String> {
    let proxy = &observation.proxy;
    let [mask_off, hello] = proxy.injected.as_slice() else {
        return Err(format!(
            "the proxy injected {} of the 2 commands (the tool never connected?)",
            proxy.injected.len()
        ));
    };
    session_defaults_verdict(&proxy.frames, mask_off.at, hello.at)
}

/// The verdict of [`check_session_defaults`] on the frames the proxy forwarded.
fn session_defaults_verdict(
    frames: &[proxy::ProxyFrame],
    mask_off: Duration,
    hello: Duration,
) -> Result<String, String> {
    // The kernel acts on a command at its next poll (10 ms) and drains what the ring held
    // by then within a few more: events in this margin after a command count for neither.
    let margin = Duration::from_millis(300);
    let events_in = |from: Duration, to: Duration| -> usize {
        frames
            .iter()
            .filter(|f| f.at > from && f.at <= to)
            .map(|f| match &f.frame {
                KernelFrame::Events(events) => events.len(),
                _ => 0,
            })
            .sum()
    };
    let before = events_in(Duration::ZERO, mask_off);
    let while_off = events_in(mask_off + margin, hello);
    let after = events_in(hello + margin, Duration::MAX);
    let answer = frames
        .iter()
        .filter(|f| f.at > hello)
        .find_map(|f| match &f.frame {
            KernelFrame::Hello(h) => Some(h.event_mask),
            _ => None,
        })
        .ok_or("the kernel did not answer the injected Hello")?;
    let default = vigil_abi::trace::DEFAULT_EVENT_MASK;
    if before == 0 {
        return Err("no events arrived before the mask was set to 0".into());
    }
    if while_off != 0 {
        return Err(format!(
            "{while_off} events arrived while the event mask was 0"
        ));
    }
    if answer != default {
        return Err(format!(
            "the new session's Hello says event mask {answer:#x}, not the default {default:#x}"
        ));
    }
    if after == 0 {
        return Err(
            "no events after the new session's Hello: the mask of 0 outlived its client".into(),
        );
    }
    Ok(format!(
        "{before} events, none while another client's mask of 0 was in force, {after} after a new Hello restored {answer:#x}"
    ))
}

pub fn check_garbage(observation: &Observation) -> Result<String, String> {
    let lines = &observation.lines;
    let proxy = &observation.proxy;
    let injected = proxy
        .injected
        .first()
        .ok_or("the proxy never injected the garbage (the tool never connected?)")?;
    let before: Option<u64> = proxy
        .frames
        .iter()
        .filter(|f| f.end <= injected.from_kernel_offset)
        .filter_map(|f| match &f.frame {
            KernelFrame::Snapshot(s) => Some(s.generation),
            _ => None,
        })
        .max();
    let before = before.ok_or("no snapshot arrived before the garbage was injected")?;
    let boundary = of_type(lines, "snapshot")
        .find(|(_, s)| u64_field(s, "generation") == Some(before))
        .map(|(index, _)| index)
        .ok_or_else(|| format!("the tool did not print snapshot {before}"))?;
    let after = of_type(lines, "snapshot")
        .filter(|(_, s)| u64_field(s, "generation").is_some_and(|g| g > before))
        .count();
    let period_ms = of_type(lines, "hello")
        .find_map(|(_, h)| u64_field(h, "snapshot_period_ms"))
        .filter(|&p| p > 0)
        .ok_or("no hello line with a snapshot period")?;
    let last_at = proxy.frames.last().map_or(injected.at, |f| f.at);
    let expected = last_at.saturating_sub(injected.at).as_millis() as u64 / period_ms;
    if after < 5 || (after as u64) * 2 < expected {
        return Err(format!(
            "only {after} snapshots after the garbage (about {expected} were due in the \
             {:.1} s that followed)",
            last_at.saturating_sub(injected.at).as_secs_f64()
        ));
    }
    let counted = |(_, d): &(usize, &Value)| u64_field(d, "malformed_commands").unwrap_or(0);
    let baseline = of_type(lines, "drops")
        .filter(|line| line.0 <= boundary)
        .map(|line| counted(&line))
        .max()
        .unwrap_or(0);
    if baseline > KNOWN_EARLY_MALFORMED {
        return Err(format!(
            "the kernel counted {baseline} malformed commands before the garbage was sent"
        ));
    }
    let malformed = of_type(lines, "drops")
        .filter(|line| line.0 > boundary)
        .map(|line| counted(&line))
        .max()
        .unwrap_or(0);
    if malformed <= baseline {
        return Err(format!(
            "no drops line after the garbage reports more malformed_commands than the {baseline} \
             before it (drops lines: {:?})",
            of_type(lines, "drops")
                .map(|(_, d)| d.to_string())
                .collect::<Vec<_>>()
        ));
    }
    let (garbage, pieces) = proxy::garbage(injected.bytes, GARBAGE_SEED);
    debug_assert_eq!(garbage.len(), injected.bytes);
    if malformed - baseline > pieces {
        return Err(format!(
            "the kernel counted {} malformed commands after the garbage, but it holds only \
             {pieces} bad frames",
            malformed - baseline
        ));
    }
    if proxy.stats.errors() > 0 {
        return Err(format!(
            "the kernel → host stream was damaged: {}",
            proxy.summary()
        ));
    }
    Ok(format!(
        "{after} snapshots after the garbage; the kernel counted {} of its {pieces} bad \
         frames{}",
        malformed - baseline,
        if baseline > 0 {
            format!(" (plus {baseline} before it)")
        } else {
            String::new()
        }
    ))
}

/// `monitor-garbage-flood`: a steady flood of garbage (`FLOOD`, several times the rate a
/// real 115,200-baud UART carries and than the kernel once took in) with a `SnapshotNow` in
/// it now and then. Every command must be answered within [`FLOOD_ANSWER_WITHIN`] of being
/// sent, and the kernel must count every bad frame of the flood.
pub fn check_garbage_flood(observation: &Observation) -> Result<String, String> {
    let proxy = &observation.proxy;
    let flood = MONITOR_SCENARIOS
        .iter()
        .find_map(|s| s.monitor.as_ref()?.flood)
        .ok_or("no scenario has a flood")?;
    let (_, pieces) = proxy::garbage(flood.chunk_bytes, GARBAGE_SEED);
    let chunks: Vec<Duration> = proxy
        .injected
        .iter()
        .filter(|i| i.bytes == flood.chunk_bytes)
        .map(|i| i.at)
        .collect();
    let commands: Vec<Duration> = proxy
        .injected
        .iter()
        .filter(|i| i.bytes != flood.chunk_bytes)
        .map(|i| i.at)
        .collect();
    if chunks.len() != flood.chunks {
        return Err(format!(
            "the proxy injected {} of the flood's {} chunks (the tool never connected?)",
            chunks.len(),
            flood.chunks
        ));
    }
    garbage_flood_verdict(
        &proxy.frames,
        chunks[0],
        &commands,
        pieces * flood.chunks as u64,
    )
    .map(|note| {
        format!(
            "{note}; flood of {:.0} KB/s",
            flood.bytes_per_second() / 1000.0
        )
    })
}

/// A command sent during a garbage flood is answered within this time (the kernel once
/// took in 3–14 KB/s of input, so a command behind a flood waited for minutes).
pub const FLOOD_ANSWER_WITHIN: Duration = millis(100);

/// The verdict of [`check_garbage_flood`] on the frames the proxy forwarded: the k-th
/// "snapshot queued" answer after the flood began answers the k-th command.
fn garbage_flood_verdict(
    frames: &[proxy::ProxyFrame],
    flood_at: Duration,
    commands: &[Duration],
    bad_frames: u64,
) -> Result<String, String> {
    let malformed_in = |from: Duration, to: Duration| {
        frames
            .iter()
            .filter(|f| f.at >= from && f.at <= to)
            .filter_map(|f| match &f.frame {
                KernelFrame::Drops(d) => Some(d.malformed_commands),
                _ => None,
            })
            .max()
    };
    let baseline = malformed_in(Duration::ZERO, flood_at).unwrap_or(0);
    let answers: Vec<Duration> = frames
        .iter()
        .filter(|f| f.at >= flood_at)
        .filter(|f| {
            matches!(&f.frame, KernelFrame::CommandResult(r) if r.ok && r.message == "snapshot queued")
        })
        .map(|f| f.at)
        .collect();
    if answers.len() < commands.len() {
        return Err(format!(
            "the kernel answered {} of the {} commands sent during the flood",
            answers.len(),
            commands.len()
        ));
    }
    let latencies: Vec<Duration> = commands
        .iter()
        .zip(&answers)
        .map(|(sent, answered)| answered.saturating_sub(*sent))
        .collect();
    let worst = latencies.iter().max().copied().unwrap_or_default();
    let last_answer = answers[commands.len() - 1];
    let counted = malformed_in(last_answer, Duration::MAX)
        .ok_or("no drops frame after the last answer")?
        .saturating_sub(baseline);
    if counted != bad_frames {
        return Err(format!(
            "the kernel counted {counted} malformed commands for the {bad_frames} bad frames of the flood"
        ));
    }
    if worst > FLOOD_ANSWER_WITHIN {
        return Err(format!(
            "a command sent during the flood was answered after {} ms (limit {} ms; all: {:?})",
            worst.as_millis(),
            FLOOD_ANSWER_WITHIN.as_millis(),
            latencies
                .iter()
                .map(Duration::as_millis)
                .collect::<Vec<_>>()
        ));
    }
    Ok(format!(
        "{} commands answered within {} ms each, all {counted} bad frames counted",
        commands.len(),
        worst.as_millis()
    ))
}

/// `monitor-exit-history`: `crash_null` faults and `hello` exits at boot; a Hello sent 1.5 s
/// later, as a client attaching late would, must be followed by the kernel's exit history:
/// both ends, the crash with its report, oldest first. The tool, which sees the history
/// again after its own Hello, prints each end and the crash exactly once.
pub fn check_exit_history(observation: &Observation) -> Result<String, String> {
    let proxy = &observation.proxy;
    let late = proxy
        .injected
        .first()
        .ok_or("the proxy never sent the late client's Hello")?;
    exit_history_verdict(&proxy.frames, late.at)?;
    let exits_of = |name: &str| {
        of_type(&observation.lines, "exit")
            .filter(|(_, e)| str_field(e, "process") == name)
            .count()
    };
    let crashes = of_type(&observation.lines, "crash")
        .filter(|(_, c)| str_field(c, "process") == "crash_null")
        .count();
    if exits_of("crash_null") != 1 || exits_of("hello") != 1 || crashes != 1 {
        return Err(format!(
            "the tool printed {} exit lines for crash_null, {} for hello and {crashes} crash lines (1 each expected)",
            exits_of("crash_null"),
            exits_of("hello")
        ));
    }
    Ok("the late Hello got both ends with the crash report; the tool printed each once".into())
}

/// The verdict of [`check_exit_history`] on the frames the proxy forwarded.
/// The status of a process PM ended by SIGSEGV after a reported fault.
const SIGSEGV_REPORTED: u64 =
    vigil_abi::signal::status::killed_by(vigil_abi::signal::Signal::SEGV, true);

fn exit_history_verdict(frames: &[proxy::ProxyFrame], late_hello: Duration) -> Result<(), String> {
    let after: Vec<&KernelFrame> = frames
        .iter()
        .filter(|f| f.at >= late_hello)
        .map(|f| &f.frame)
        .skip_while(|f| !matches!(f, KernelFrame::Hello(_)))
        .collect();
    if after.is_empty() {
        return Err("no Hello answered the late client".into());
    }
    let history: Vec<&vigil_wire::ProcessExit> = after
        .iter()
        .skip(1)
        .map_while(|f| match f {
            KernelFrame::Exit(exit) if exit.from_history => Some(exit),
            _ => None,
        })
        .collect();
    let find = |name: &str| history.iter().find(|e| e.name == name);
    let crashed = find("crash_null").ok_or_else(|| {
        format!(
            "the history after the late Hello does not name crash_null: {:?}",
            history.iter().map(|e| &e.name).collect::<Vec<_>>()
        )
    })?;
    let report = crashed
        .crash
        .as_ref()
        .ok_or("crash_null's end carries no crash report")?;
    if report.kind != vigil_wire::CrashKind::UserFault
        || report.backtrace.is_empty()
        || crashed.status != SIGSEGV_REPORTED
    {
        return Err(format!(
            "crash_null's end: status {:#x}, report {:?} (a page fault, ended by PM with SIGSEGV: status {SIGSEGV_REPORTED:#x}, with a backtrace expected)",
            crashed.status, report
        ));
    }
    let exited = find("hello").ok_or("the history does not name hello")?;
    if exited.status != 0 || exited.crash.is_some() {
        return Err(format!(
            "hello's end: {exited:?} (status 0, no crash expected)"
        ));
    }
    if history
        .windows(2)
        .any(|w| w[0].timestamp_ns > w[1].timestamp_ns)
    {
        return Err("the history is not oldest first".into());
    }
    Ok(())
}

/// What a recording holds, compared with what the proxy forwarded. The rule: the recording
/// is exactly a prefix of the bytes the proxy forwarded (one connection); it may miss only
/// a tail that the recorder never read before its duration was over. Counting the complete
/// frames of that prefix (the proxy decoded each with its end offset), the replay prints
/// exactly as many trace events (with the same sequence numbers) and snapshots (same
/// generations). Frames the proxy forwarded more than [`RECORD_TAIL_MARGIN`] before the
/// recorder's end must all be in the prefix.
/// `monitor-boot-recording`: a recording made with the guest held until the client came
/// (`--wait-monitor`) holds the boot from the kernel's first log line and first event, and
/// the boot burst lost no event.
pub fn check_boot_recording(observation: &Observation) -> Result<String, String> {
    let replay = observation.replay.as_ref().ok_or("no replay was run")?;
    boot_recording_verdict(replay)
}

fn boot_recording_verdict(replay: &[Value]) -> Result<String, String> {
    let first_log = of_type(replay, "log")
        .next()
        .map(|(_, line)| str_field(line, "text").to_string())
        .ok_or("the recording has no log line")?;
    if !(first_log.starts_with("Vigil ") && first_log.ends_with(" starting")) {
        return Err(format!(
            "the recording's first log line is {first_log:?}, not the kernel's first ('Vigil … starting')"
        ));
    }
    let first_seq = of_type(replay, "event")
        .filter_map(|(_, event)| u64_field(event, "seq"))
        .min()
        .ok_or("the recording has no event")?;
    if first_seq != 0 {
        return Err(format!("the first recorded event is #{first_seq}, not #0"));
    }
    let events = of_type(replay, "event").count();
    let dropped = of_type(replay, "drops")
        .filter_map(|(_, drops)| u64_field(drops, "events_dropped"))
        .max()
        .ok_or("the recording has no drop report")?;
    if dropped != 0 {
        return Err(format!("the kernel dropped {dropped} of the boot's events"));
    }
    if events < 6000 {
        return Err(format!(
            "only {events} events: the boot burst of 1000 round trips was not recorded"
        ));
    }
    Ok(format!(
        "from reset: '{first_log}', events #0 on, {events} events, none dropped"
    ))
}

pub fn check_record_replay(observation: &Observation) -> Result<String, String> {
    let proxy = &observation.proxy;
    let recording = observation
        .recording
        .as_ref()
        .ok_or("no recording was read")?;
    let replay = observation.replay.as_ref().ok_or("no replay was run")?;
    if recording.connections != 1 || proxy.connections.len() != 1 {
        return Err(format!(
            "the recording has {} connection markers and the proxy saw {} connections; \
             expected one each",
            recording.connections,
            proxy.connections.len()
        ));
    }
    let cut = recording.bytes.len();
    if !proxy.from_kernel.starts_with(&recording.bytes) {
        let differs = recording
            .bytes
            .iter()
            .zip(&proxy.from_kernel)
            .position(|(a, b)| a != b)
            .unwrap_or(proxy.from_kernel.len());
        return Err(format!(
            "the recording ({cut} bytes) is not a prefix of the {} bytes the proxy forwarded: \
             they differ from byte {differs}",
            proxy.from_kernel.len()
        ));
    }
    let recorded: Vec<&KernelFrame> = proxy
        .frames
        .iter()
        .filter(|f| f.end <= cut)
        .map(|f| &f.frame)
        .collect();
    let mut raw_seqs = Vec::new();
    let mut raw_generations = Vec::new();
    for frame in &recorded {
        match frame {
            KernelFrame::Events(events) => raw_seqs.extend(events.iter().map(|e| e.seq)),
            KernelFrame::Snapshot(s) => raw_generations.push(s.generation),
            _ => {}
        }
    }
    let replay_seqs: Vec<u64> = of_type(replay, "event")
        .filter_map(|(_, e)| u64_field(e, "seq"))
        .collect();
    let replay_generations: Vec<u64> = of_type(replay, "snapshot")
        .filter_map(|(_, s)| u64_field(s, "generation"))
        .collect();
    if replay_seqs.len() != raw_seqs.len() || replay_seqs != raw_seqs {
        return Err(format!(
            "the replay printed {} trace events; the recorded stream holds {} (proxy's \
             decoding of its first {cut} bytes)",
            replay_seqs.len(),
            raw_seqs.len()
        ));
    }
    if replay_generations != raw_generations {
        return Err(format!(
            "the replay printed {} snapshots; the recorded stream holds {}",
            replay_generations.len(),
            raw_generations.len()
        ));
    }
    if raw_seqs.len() < 100 || raw_generations.len() < 10 {
        return Err(format!(
            "too little was recorded to compare: {} events, {} snapshots",
            raw_seqs.len(),
            raw_generations.len()
        ));
    }
    let connected = proxy.connections[0];
    let must_have_until = connected + record_duration() - RECORD_TAIL_MARGIN;
    if let Some(missing) = proxy
        .frames
        .iter()
        .find(|f| f.end > cut && f.at < must_have_until)
    {
        return Err(format!(
            "a {} frame forwarded {:.2} s after the recorder connected is not in the \
             recording (it ends {:.2} s before the recorder's end)",
            missing.frame.kind_name(),
            missing.at.saturating_sub(connected).as_secs_f64(),
            RECORD_TAIL_MARGIN.as_secs_f64()
        ));
    }
    let after_cut = proxy.frames.iter().filter(|f| f.end > cut).count();
    Ok(format!(
        "{} events and {} snapshots in the recording and its replay; {after_cut} frames \
         forwarded after the cut",
        raw_seqs.len(),
        raw_generations.len()
    ))
}

/// The host tool decoded the watchdog's epitaph: one `kernel-lockup` crash naming the
/// process that was current (`spinner`), with the same raw addresses as the frame the proxy
/// decoded, symbolised from the kernel ELF down to the self-test's function, and stamped
/// within a second (kernel time) of the last frame the kernel sent before it locked up.
pub fn check_lockup_epitaph(observation: &Observation) -> Result<String, String> {
    let lines = &observation.lines;
    let crashes: Vec<&Value> = of_type(lines, "crash")
        .map(|(_, crash)| crash)
        .filter(|crash| str_field(crash, "kind") == "kernel-lockup")
        .collect();
    let [crash] = crashes[..] else {
        return Err(format!(
            "the tool printed {} kernel-lockup crashes, expected 1",
            crashes.len()
        ));
    };
    if str_field(crash, "process") != "spinner" {
        return Err(format!(
            "the epitaph names process {:?}, not spinner",
            crash["process"]
        ));
    }
    let message = str_field(crash, "message");
    if !message.starts_with("KERNEL LOCKUP: no timer tick for") {
        return Err(format!("the epitaph's message is {message:?}"));
    }
    let raw = observation
        .proxy
        .frames
        .iter()
        .find_map(|frame| match &frame.frame {
            KernelFrame::Crash(report) if report.kind == vigil_wire::CrashKind::KernelLockup => {
                Some(report)
            }
            _ => None,
        })
        .ok_or("the proxy decoded no KernelLockup crash frame")?;
    let tool_addresses: Vec<&str> = array(crash, "backtrace")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let raw_addresses: Vec<String> = raw.backtrace.iter().map(|a| format!("{a:#x}")).collect();
    if tool_addresses != raw_addresses || raw_addresses.is_empty() {
        return Err(format!(
            "the tool's backtrace {tool_addresses:?} differs from the raw frame's {raw_addresses:?}"
        ));
    }
    let functions: Vec<&str> = array(crash, "frames")
        .iter()
        .flat_map(|frame| array(frame, "symbols"))
        .map(|symbol| str_field(symbol, "function"))
        .collect();
    if !functions
        .iter()
        .any(|f| f.contains("selftest::lockup_in_tick"))
    {
        return Err(format!(
            "no symbolised frame of the epitaph is selftest::lockup_in_tick: {functions:?}"
        ));
    }
    // The hook logs as it locks up, in the tick after the monitor's poll, so that line never
    // goes out; the last frame the tool printed before the crash (that tick's snapshot or
    // events) is the kernel's last sign of life.
    let began = lines
        .iter()
        .take_while(|line| !std::ptr::eq(*line, crash))
        .filter(|line| line_type(line) != "crash")
        .filter_map(kernel_time)
        .max()
        .ok_or("the tool printed nothing with a kernel time before the epitaph")?;
    let reported = u64_field(crash, "ts_ns").ok_or("the epitaph has no ts_ns")?;
    let took_ms = reported.saturating_sub(began) / 1_000_000;
    if reported < began || took_ms >= 1000 {
        return Err(format!(
            "the epitaph came {took_ms} ms after the lockup began"
        ));
    }
    Ok(format!(
        "kernel-lockup epitaph {took_ms} ms after the lockup, {} frames, symbolised",
        raw_addresses.len()
    ))
}

/// The listening time of `monitor-record-replay`.
pub fn record_duration() -> Duration {
    MONITOR_SCENARIOS
        .iter()
        .find_map(|s| s.monitor.as_ref().filter(|m| m.record))
        .map_or(Duration::ZERO, |m| m.duration)
}

#[cfg(test)]
mod tests {
    use super::super::super::proxy::ProxyReport;
    use super::super::session::Recording;
    use super::super::view::fixtures::*;
    use super::super::GARBAGE;
    use super::*;
    use serde_json::json;
    use vigil_wire::{DropReport, Event};

    #[test]
    fn memory_figures_must_be_printed_sane_and_match_the_raw_frame() {
        let idler = vigil_wire::ProcessInfo {
            memory_pages: 30,
            peak_pages: 31,
            virtual_bytes: 4 << 20,
            faults_not_present: 12,
            ..raw_process_info(2, "idler", 1 << 16 | 2)
        };
        let vm = vigil_wire::ProcessInfo {
            memory_pages: 100,
            peak_pages: 100,
            virtual_bytes: 100 * 4096,
            ..raw_process_info(1, "vm", 1 << 16 | 1)
        };
        let printed = |p: &vigil_wire::ProcessInfo| {
            json!({
                "pid": p.pid, "name": p.name, "memory_pages": p.memory_pages,
                "peak_pages": p.peak_pages, "virtual_bytes": p.virtual_bytes,
                "shared_pages": p.shared_pages, "faults_not_present": p.faults_not_present,
                "faults_protection": p.faults_protection,
            })
        };
        let line = |processes: Vec<Value>| json!({"type": "snapshot", "generation": 4, "ts_ns": 1, "processes": processes});
        let raw = raw_snapshot_frame(4, 1, vec![], vec![vm.clone(), idler.clone()]);
        let ok = observation(
            vec![line(vec![printed(&vm), printed(&idler)])],
            proxy_with(vec![raw.clone()]),
            &[],
        );
        let note = check_memory_figures(&ok).unwrap();
        assert!(note.contains("12 faults to VM"), "{note}");

        // VM never reported a virtual size: the kernel's figure is the mapped bytes.
        let unreported = vigil_wire::ProcessInfo {
            virtual_bytes: 30 * 4096,
            ..idler.clone()
        };
        let raw_unreported = raw_snapshot_frame(4, 1, vec![], vec![vm.clone(), unreported.clone()]);
        let bad = observation(
            vec![line(vec![printed(&vm), printed(&unreported)])],
            proxy_with(vec![raw_unreported]),
            &[],
        );
        assert!(check_memory_figures(&bad).unwrap_err().contains("virtual"));

        // The tool printing something else than the frame is an error too.
        let mut wrong = printed(&idler);
        wrong["peak_pages"] = json!(99);
        let mismatch = observation(
            vec![line(vec![printed(&vm), wrong])],
            proxy_with(vec![raw]),
            &[],
        );
        assert!(check_memory_figures(&mismatch)
            .unwrap_err()
            .contains("raw frame"));
    }

    #[test]
    fn the_epitaph_must_match_the_raw_frame_be_symbolised_and_come_in_time() {
        let raw = |backtrace: Vec<u64>| {
            KernelFrame::Crash(vigil_wire::CrashReport {
                kind: vigil_wire::CrashKind::KernelLockup,
                timestamp_ns: 2_600_000_000,
                process: Some(("spinner".to_string(), 1)),
                message: "KERNEL LOCKUP: no timer tick for 506 ms".to_string(),
                backtrace,
            })
        };
        let crash = |ts_ns: u64, function: &str| {
            json!({
                "type": "crash", "kind": "kernel-lockup", "ts_ns": ts_ns,
                "process": "spinner", "pid": 1,
                "message": "KERNEL LOCKUP: no timer tick for 506 ms; kernel mode at 0x10",
                "backtrace": ["0x10", "0x20"],
                "frames": [
                    {"index": 0, "kind": "pc", "address": "0x10", "symbols": [
                        {"function": "core::hint::spin_loop", "file": "hint.rs", "line": 1}]},
                    {"index": 1, "kind": "ret", "address": "0x20", "symbols": [
                        {"function": function, "file": "selftest.rs", "line": 2}]},
                ],
            })
        };
        let snapshot = snapshot_line(20, 2_086_000_000, vec![], &["spinner"]);
        let good = observation(
            vec![
                snapshot.clone(),
                crash(2_600_000_000, "vigil_kernel::selftest::lockup_in_tick"),
            ],
            proxy_with(vec![raw(vec![0x10, 0x20])]),
            &[],
        );
        let note = check_lockup_epitaph(&good).unwrap();
        assert!(note.contains("514 ms after the lockup, 2 frames"), "{note}");

        let unsymbolised = observation(
            vec![snapshot.clone(), crash(2_600_000_000, "??")],
            proxy_with(vec![raw(vec![0x10, 0x20])]),
            &[],
        );
        let error = check_lockup_epitaph(&unsymbolised).unwrap_err();
        assert!(error.contains("lockup_in_tick"), "{error}");

        let different = observation(
            vec![
                snapshot.clone(),
                crash(2_600_000_000, "vigil_kernel::selftest::lockup_in_tick"),
            ],
            proxy_with(vec![raw(vec![0x10, 0x30])]),
            &[],
        );
        let error = check_lockup_epitaph(&different).unwrap_err();
        assert!(error.contains("differs from the raw frame"), "{error}");

        let late = observation(
            vec![
                snapshot.clone(),
                crash(3_200_000_000, "vigil_kernel::selftest::lockup_in_tick"),
            ],
            proxy_with(vec![raw(vec![0x10, 0x20])]),
            &[],
        );
        let error = check_lockup_epitaph(&late).unwrap_err();
        assert!(error.contains("1114 ms after"), "{error}");

        let none = observation(vec![snapshot], proxy_with(vec![]), &[]);
        let error = check_lockup_epitaph(&none).unwrap_err();
        assert!(error.contains("0 kernel-lockup crashes"), "{error}");
    }

    #[test]
    fn boot_processes_needs_every_name_soon_enough() {
        let names = [
            "spinner",
            "pingpong_server",
            "chain_a",
            "chain_b",
            "chain_c",
        ];
        let threads: Vec<Value> = names
            .iter()
            .enumerate()
            .map(|(i, n)| thread(&format!("{n}#{i}"), "ready", "ready", 0, 0.0))
            .collect();
        let raw = raw_snapshot_frame(
            3,
            300_000_000,
            vec![],
            names
                .iter()
                .enumerate()
                .map(|(i, n)| raw_process_info(i as u32 + 1, n, i as u64 | 1 << 16))
                .collect(),
        );
        let lines = vec![
            json!({"type": "drops", "malformed_commands": 0}),
            json!({"type": "hello", "now_ns": 100_000_000, "snapshot_period_ms": 100}),
            snapshot_line(2, 200_000_000, threads[..2].to_vec(), &names[..2]),
            snapshot_line(3, 300_000_000, threads.clone(), &names),
        ];
        let ok = observation(lines.clone(), proxy_with(vec![raw.clone()]), &[]);
        let note = check_boot_processes(&ok).unwrap();
        assert!(note.contains("0.20 s"), "{note}");

        // Too late: the first frame was 2.5 s before the snapshot.
        let mut late = lines.clone();
        late[1]["now_ns"] = json!(0);
        late[3]["ts_ns"] = json!(2_500_000_000u64);
        let error = check_boot_processes(&observation(late, proxy_with(vec![raw.clone()]), &[]))
            .unwrap_err();
        assert!(error.contains("2.50 s"), "{error}");

        // A process missing from every snapshot.
        let missing = vec![lines[1].clone(), lines[2].clone()];
        let error =
            check_boot_processes(&observation(missing, proxy_with(vec![raw]), &[])).unwrap_err();
        assert!(error.contains("no snapshot names all"), "{error}");

        // The raw frame disagrees with the tool.
        let other = raw_snapshot_frame(3, 300_000_000, vec![], vec![raw_process_info(1, "x", 1)]);
        let error =
            check_boot_processes(&observation(lines, proxy_with(vec![other]), &[])).unwrap_err();
        assert!(error.contains("the raw frame"), "{error}");
    }

    /// Spinner snapshots every 100 ms with `share` of the CPU, as the tool would print them.
    fn spinner_lines(count: u64, share: f64, with_alert: bool) -> Vec<Value> {
        let mut lines = Vec::new();
        let mut cpu = 0u64;
        for generation in 1..=count {
            let ts = generation * 100_000_000;
            let percent = if generation <= 2 { 0.0 } else { share * 100.0 };
            if generation > 2 {
                cpu += (share * 100_000_000.0) as u64;
            }
            let cpu_ns = if generation == 1 { 0 } else { cpu + 1 };
            lines.push(snapshot_line(
                generation,
                ts,
                vec![thread("spinner#0", "running", "running", cpu_ns, percent)],
                &["spinner"],
            ));
        }
        if with_alert {
            lines.push(json!({
                "type": "alert", "kind": "cpu-hog", "first_seen_ns": 2_100_000_000u64,
                "message": "cpu hog: spinner#0 used 98% of a CPU over the last 2.0 s",
                "threads": ["spinner#0"],
            }));
        }
        lines
    }

    #[test]
    fn cpu_hog_needs_a_busy_spinner_and_the_alert() {
        let ok = observation(spinner_lines(30, 0.97, true), ProxyReport::default(), &[]);
        let note = check_cpu_hog(&ok).unwrap();
        assert!(note.contains("spinner#0 at 97.0%"), "{note}");

        let idle = observation(spinner_lines(30, 0.5, true), ProxyReport::default(), &[]);
        assert!(check_cpu_hog(&idle)
            .unwrap_err()
            .contains("expected above 80%"));

        let quiet = observation(spinner_lines(30, 0.97, false), ProxyReport::default(), &[]);
        assert!(check_cpu_hog(&quiet)
            .unwrap_err()
            .contains("no cpu-hog alert"));

        // The tool's percentage disagrees with its own counters.
        let mut wrong = spinner_lines(30, 0.97, true);
        wrong[10]["threads"][0]["cpu_percent"] = json!(50.0);
        let error = check_cpu_hog(&observation(wrong, ProxyReport::default(), &[])).unwrap_err();
        assert!(error.contains("cpu_ns and ts_ns give"), "{error}");
    }

    fn deadlock_case(message: &str, threads: &[&str]) -> Observation {
        let raw = raw_snapshot_frame(
            5,
            400_000_000,
            vec![
                raw_thread(5 | 1 << 16, 1, 8, 6 | 1 << 16, 0),
                raw_thread(6 | 1 << 16, 1, 6, 7 | 1 << 16, 0x406010),
                raw_thread(7 | 1 << 16, 1, 6, 6 | 1 << 16, 0x406000),
            ],
            vec![raw_process_info(1, "deadlock_mutex", 5 | 1 << 16)],
        );
        let lines = vec![json!({
            "type": "alert", "kind": "deadlock", "first_seen_ns": 400_000_000u64,
            "message": message, "threads": threads,
        })];
        observation(
            lines,
            proxy_with(vec![raw]),
            &[
                "[    0.18] INFO  deadlock_mutex: deadlock_mutex: left (6.1) holds 0x406000, \
                 now wants 0x406010",
                "[    0.18] INFO  deadlock_mutex: deadlock_mutex: right (7.1) holds 0x406010, \
                 now wants 0x406000",
            ],
        )
    }

    #[test]
    fn deadlock_needs_both_threads_and_both_mutexes() {
        const MESSAGE: &str = "deadlock: deadlock_mutex#6 → mutex 0x406010 owned by \
                               deadlock_mutex#7 → mutex 0x406000 owned by deadlock_mutex#6";
        let both = ["deadlock_mutex#6", "deadlock_mutex#7"];
        let note = check_deadlock(&deadlock_case(MESSAGE, &both)).unwrap();
        assert!(note.contains("0x406000 and 0x406010"), "{note}");

        let one_thread = check_deadlock(&deadlock_case(MESSAGE, &both[..1])).unwrap_err();
        assert!(one_thread.contains("two different"), "{one_thread}");
        let same = ["deadlock_mutex#6", "deadlock_mutex#6"];
        assert!(check_deadlock(&deadlock_case(MESSAGE, &same)).is_err());
        let one_mutex = "deadlock: deadlock_mutex#6 → mutex 0x406010 owned by \
                         deadlock_mutex#7 → mutex 0x406010 owned by deadlock_mutex#6";
        let error = check_deadlock(&deadlock_case(one_mutex, &both)).unwrap_err();
        assert!(error.contains("two mutex addresses"), "{error}");
        let wrong_slots = ["deadlock_mutex#6", "deadlock_mutex#9"];
        let message = MESSAGE.replace("#7", "#9");
        let error = check_deadlock(&deadlock_case(&message, &wrong_slots)).unwrap_err();
        assert!(error.contains("the raw snapshot has"), "{error}");
        let mut none = deadlock_case(MESSAGE, &both);
        none.lines.clear();
        assert!(check_deadlock(&none)
            .unwrap_err()
            .contains("no deadlock alert"));
    }

    fn chain_case(alert_at_ns: u64, chain_b_target: u64) -> Observation {
        let (a, b, c) = (2 | 1 << 16, 3 | 1 << 16, 4 | 1 << 16);
        let raw = raw_snapshot_frame(
            70,
            7_000_000_000,
            vec![
                raw_thread(a, 3, 3, b, 0),
                raw_thread(b, 4, 3, chain_b_target, 0),
                raw_thread(c, 5, 7, u64::MAX - 1, 9_999),
            ],
            vec![
                raw_process_info(3, "chain_a", a),
                raw_process_info(4, "chain_b", b),
                raw_process_info(5, "chain_c", c),
            ],
        );
        let threads = |ts: u64| {
            vec![
                thread("chain_a#2", "send", "send → chain_b#3", 0, 0.0),
                thread("chain_b#3", "send", "send → chain_c#4", 0, 0.0),
                thread("chain_c#4", "sleep", &format!("sleep {ts} s"), 0, 0.0),
            ]
        };
        let names = ["chain_a", "chain_b", "chain_c"];
        let lines = vec![
            snapshot_line(1, 200_000_000, threads(1), &names),
            json!({
                "type": "alert", "kind": "hung-chain", "first_seen_ns": alert_at_ns,
                "message": "hung chain: chain_a#2 → sending to chain_b#3 → sending to \
                            chain_c#4, which has made no progress for 5.0 s",
                "threads": ["chain_a#2", "chain_b#3", "chain_c#4"],
            }),
            snapshot_line(70, 7_000_000_000, threads(2), &names),
        ];
        observation(lines, proxy_with(vec![raw]), &[])
    }

    #[test]
    fn blocked_chain_needs_states_targets_and_a_late_enough_alert() {
        let note = check_blocked_chain(&chain_case(5_200_000_000, 4 | 1 << 16)).unwrap();
        assert!(note.contains("5.00 s after"), "{note}");
        let early = check_blocked_chain(&chain_case(4_000_000_000, 4 | 1 << 16)).unwrap_err();
        assert!(early.contains("expected at least 5.0 s"), "{early}");
        let wrong_target = check_blocked_chain(&chain_case(5_200_000_000, 9)).unwrap_err();
        assert!(wrong_target.contains("wait_target 0x9"), "{wrong_target}");
        let mut unblocked = chain_case(5_200_000_000, 4 | 1 << 16);
        unblocked.lines[2]["threads"][1]["state"] = json!("ready");
        let error = check_blocked_chain(&unblocked).unwrap_err();
        assert!(error.contains("expected send → chain_c#4"), "{error}");
        let mut no_alert = chain_case(5_200_000_000, 4 | 1 << 16);
        no_alert.lines.remove(1);
        assert!(check_blocked_chain(&no_alert)
            .unwrap_err()
            .contains("no hung-chain"));
    }

    /// 60 snapshots at 100 ms, garbage after the 30th frame, and drops lines.
    fn garbage_case(malformed_after: u64, malformed_before: u64) -> Observation {
        let mut frames = Vec::new();
        let mut lines = vec![json!({"type": "hello", "now_ns": 1, "snapshot_period_ms": 100})];
        for generation in 1..=60u64 {
            frames.push(raw_snapshot_frame(
                generation,
                generation * 100_000_000,
                vec![],
                vec![],
            ));
            lines.push(snapshot_line(
                generation,
                generation * 100_000_000,
                vec![],
                &[],
            ));
            if generation == 10 || generation == 50 {
                let malformed = if generation == 10 {
                    malformed_before
                } else {
                    malformed_after
                };
                frames.push(KernelFrame::Drops(DropReport {
                    malformed_commands: malformed,
                    ..DropReport::default()
                }));
                lines.push(
                    json!({"type": "drops", "events_dropped": 0, "frames_dropped": 0,
                                  "malformed_commands": malformed}),
                );
            }
        }
        let mut proxy = proxy_spaced(frames, 50);
        let offset = proxy.frames[30].end;
        proxy.injected = vec![proxy::Injected {
            at: proxy.frames[30].at,
            bytes: GARBAGE.bytes,
            from_kernel_offset: offset,
        }];
        observation(lines, proxy, &[])
    }

    #[test]
    fn a_boot_recording_needs_the_first_line_event_zero_and_no_drops() {
        let mut lines = vec![json!({"type": "log", "seq": 0, "text": "Vigil 0.1.0 starting"})];
        for seq in 0..7000u64 {
            lines.push(json!({"type": "event", "seq": seq}));
        }
        lines.push(json!({"type": "drops", "events_dropped": 0}));
        assert!(boot_recording_verdict(&lines).is_ok());
        let mut dropped = lines.clone();
        dropped.push(json!({"type": "drops", "events_dropped": 12}));
        assert!(boot_recording_verdict(&dropped).is_err());
        let late: Vec<Value> = lines[1..].to_vec();
        assert!(boot_recording_verdict(&late).is_err());
    }

    #[test]
    fn garbage_flood_needs_every_answer_in_time_and_every_bad_frame_counted() {
        use vigil_wire::{CommandResult, DropReport};
        let at = |ms: u64| Duration::from_millis(ms);
        let answer = |ms: u64| proxy::ProxyFrame {
            at: at(ms),
            end: 0,
            frame: KernelFrame::CommandResult(CommandResult {
                ok: true,
                message: "snapshot queued".into(),
            }),
        };
        let drops = |ms: u64, malformed: u64| proxy::ProxyFrame {
            at: at(ms),
            end: 0,
            frame: KernelFrame::Drops(DropReport {
                events_dropped: 0,
                frames_dropped: 0,
                malformed_commands: malformed,
            }),
        };
        let commands = [at(1100), at(1300)];
        let good = [drops(900, 1), answer(1120), answer(1330), drops(1900, 41)];
        let verdict = garbage_flood_verdict(&good, at(1000), &commands, 40);
        assert!(verdict.is_ok(), "{verdict:?}");
        let late = [drops(900, 1), answer(1120), answer(1450), drops(1900, 41)];
        let error = garbage_flood_verdict(&late, at(1000), &commands, 40).unwrap_err();
        assert!(error.contains("after 150 ms"), "{error}");
        let unanswered = [drops(900, 1), answer(1120), drops(1900, 41)];
        assert!(garbage_flood_verdict(&unanswered, at(1000), &commands, 40).is_err());
        let uncounted = [drops(900, 1), answer(1120), answer(1330), drops(1900, 30)];
        assert!(garbage_flood_verdict(&uncounted, at(1000), &commands, 40).is_err());
        let no_drops_after = [drops(900, 1), answer(1120), answer(1330)];
        assert!(garbage_flood_verdict(&no_drops_after, at(1000), &commands, 40).is_err());
    }

    #[test]
    fn session_defaults_need_silence_under_mask_0_and_events_after_the_hello() {
        use vigil_wire::{Event, Hello};
        let at = |ms: u64| Duration::from_millis(ms);
        let events = |ms: u64, n: usize| proxy::ProxyFrame {
            at: at(ms),
            end: 0,
            frame: KernelFrame::Events(vec![
                Event {
                    seq: 0,
                    timestamp_ns: 0,
                    kind: 0,
                    thread: 0,
                    args: [0; 3],
                };
                n
            ]),
        };
        let hello = |ms: u64, mask: u64| proxy::ProxyFrame {
            at: at(ms),
            end: 0,
            frame: KernelFrame::Hello(Hello {
                protocol_version: 1,
                kernel_version: String::new(),
                tsc_hz: 0,
                now_ns: 0,
                event_mask: mask,
                snapshot_period_ms: 100,
            }),
        };
        let default = vigil_abi::trace::DEFAULT_EVENT_MASK;
        let good = [
            events(500, 3),
            events(1600, 2),
            hello(3010, default),
            events(3500, 4),
        ];
        let verdict = session_defaults_verdict(&good, at(1500), at(3000));
        assert!(verdict.is_ok(), "{verdict:?}");
        let leaked = [
            events(500, 3),
            events(2000, 1),
            hello(3010, default),
            events(3500, 4),
        ];
        assert!(session_defaults_verdict(&leaked, at(1500), at(3000)).is_err());
        let stuck = [events(500, 3), hello(3010, 0)];
        assert!(session_defaults_verdict(&stuck, at(1500), at(3000)).is_err());
    }

    fn hub_case(hellos: [usize; HUB_CLIENTS], snapshots: u64) -> Observation {
        let raw = (1..=30)
            .map(|g| raw_snapshot_frame(g, g * 100_000_000, vec![], vec![]))
            .collect();
        let clients: Vec<Vec<Value>> = hellos
            .iter()
            .map(|&count| {
                let mut lines = vec![json!({"type": "hello", "now_ns": 1}); count];
                for g in 1..=snapshots {
                    lines.push(snapshot_line(g, g * 100_000_000, vec![], &["spinner"]));
                }
                lines
            })
            .collect();
        let mut observation = observation(clients[0].clone(), proxy_with(raw), &[]);
        observation.clients = clients;
        observation
    }

    #[test]
    fn hub_clients_need_one_hello_each_and_shared_snapshots() {
        let note = check_hub_clients(&hub_case([1, 1, 1], 20)).unwrap();
        assert!(note.contains("20 snapshots seen by all"), "{note}");
        let error = check_hub_clients(&hub_case([1, 2, 1], 20)).unwrap_err();
        assert!(error.contains("client 2 printed 2 hello"), "{error}");
        let error = check_hub_clients(&hub_case([1, 1, 1], 5)).unwrap_err();
        assert!(error.contains("saw 5 snapshots"), "{error}");
        let error = check_hub_clients(&hub_case([1, 1, 1], 40)).unwrap_err();
        assert!(error.contains("which the proxy never saw"), "{error}");
        // The hub's "not connected yet" notice before the hello is fine; after it, not.
        let notice = json!({"type": "command_result", "ok": false,
                            "message": "vigil hub: not connected to the kernel at x"});
        let mut early = hub_case([1, 1, 1], 20);
        early.clients[1].insert(0, notice.clone());
        assert!(check_hub_clients(&early).is_ok());
        let mut late = hub_case([1, 1, 1], 20);
        late.clients[1].push(notice);
        let error = check_hub_clients(&late).unwrap_err();
        assert!(
            error.contains("client 2 got a failed command result"),
            "{error}"
        );
    }

    fn metrics_case(promtool: Result<(), String>, threads: &str) -> Observation {
        let text = "vigil_build_info{version=\"0.1.0\"} 1\nvigil_link_up 1\n\
                    vigil_cpu_idle_seconds_total 3\n\
                    vigil_memory_total_bytes 268435456\nvigil_memory_free_bytes 200000000\n\
                    vigil_thread_cpu_seconds_total{thread=\"spinner#0\",process=\"spinner\",pid=\"1\"} 2\n";
        let sample = |v: &str| json!([{"metric": {}, "value": [1.0, v]}]);
        let mut observation = observation(Vec::new(), proxy_with(vec![]), &[]);
        observation.metrics = Some(super::super::prom::MetricsProbe {
            text: Ok(text.to_string()),
            promtool,
            queries: Ok(vec![sample("1"), sample("1"), sample(threads)]),
        });
        observation
    }

    #[test]
    fn metrics_need_a_clean_lint_and_a_real_scrape() {
        let note = check_metrics(&metrics_case(Ok(()), "2")).unwrap();
        assert!(note.contains("scraped 2 thread"), "{note}");
        let error =
            check_metrics(&metrics_case(Err("counter without _total".into()), "2")).unwrap_err();
        assert!(error.contains("_total"), "{error}");
        let error = check_metrics(&metrics_case(Ok(()), "1")).unwrap_err();
        assert!(error.contains("at least 2"), "{error}");
        let mut none = metrics_case(Ok(()), "2");
        none.metrics = None;
        assert!(check_metrics(&none).is_err());
    }

    #[test]
    fn garbage_needs_snapshots_after_it_and_a_counted_malformed_command() {
        let note = check_garbage(&garbage_case(3, 0)).unwrap();
        assert!(note.starts_with("30 snapshots after the garbage"), "{note}");
        let error = check_garbage(&garbage_case(0, 0)).unwrap_err();
        assert!(
            error.contains("more malformed_commands than the 0"),
            "{error}"
        );
        // The tool's Hello may be counted before the garbage; the garbage must add to it.
        let note = check_garbage(&garbage_case(3, 1)).unwrap();
        assert!(
            note.ends_with("counted 2 of its 16 bad frames (plus 1 before it)"),
            "{note}"
        );
        let error = check_garbage(&garbage_case(1, 1)).unwrap_err();
        assert!(error.contains("than the 1 before it"), "{error}");
        let error = check_garbage(&garbage_case(3, 2)).unwrap_err();
        assert!(
            error.contains("counted 2 malformed commands before"),
            "{error}"
        );
        let error = check_garbage(&garbage_case(100_000, 0)).unwrap_err();
        assert!(error.contains("holds only"), "{error}");
        // Snapshots stopped after the garbage.
        let mut stopped = garbage_case(3, 0);
        stopped.lines.retain(|l| {
            line_type(l) != "snapshot" || u64_field(l, "generation").unwrap_or(0) <= 32
        });
        let error = check_garbage(&stopped).unwrap_err();
        assert!(
            error.contains("only 2 snapshots after the garbage"),
            "{error}"
        );
        let mut damaged = garbage_case(3, 0);
        damaged.proxy.stats.checksum_errors = 1;
        assert!(check_garbage(&damaged).unwrap_err().contains("damaged"));
        let mut never = garbage_case(3, 0);
        never.proxy.injected = Vec::new();
        assert!(check_garbage(&never).is_err());
    }

    fn events_frame(first_seq: u64, count: u64) -> KernelFrame {
        KernelFrame::Events(
            (first_seq..first_seq + count)
                .map(|seq| Event {
                    seq,
                    timestamp_ns: seq * 1000,
                    kind: 0,
                    thread: 1,
                    args: [0; 3],
                })
                .collect(),
        )
    }

    /// 40 pairs of (events, snapshot) frames 40 ms apart; the recording holds the bytes up to
    /// `frames_recorded` frames plus `extra` bytes of the next one.
    fn record_case(frames_recorded: usize, extra: usize) -> Observation {
        let mut frames = Vec::new();
        for index in 0..40u64 {
            frames.push(events_frame(index * 10, 10));
            frames.push(raw_snapshot_frame(index + 1, index * 100, vec![], vec![]));
        }
        let proxy = proxy_spaced(frames, 40);
        let cut = proxy.frames[frames_recorded - 1].end + extra;
        let recording = Recording {
            connections: 1,
            bytes: proxy.from_kernel[..cut].to_vec(),
        };
        let mut replay = Vec::new();
        for frame in proxy.frames.iter().take(frames_recorded) {
            match &frame.frame {
                KernelFrame::Events(events) => {
                    for e in events {
                        replay
                            .push(json!({"type": "event", "seq": e.seq, "ts_ns": e.timestamp_ns}));
                    }
                }
                KernelFrame::Snapshot(s) => {
                    replay.push(snapshot_line(s.generation, s.timestamp_ns, vec![], &[]))
                }
                _ => {}
            }
        }
        Observation {
            lines: Vec::new(),
            clients: Vec::new(),
            metrics: None,
            replay: Some(replay),
            recording: Some(recording),
            proxy,
            console: console(&[]),
        }
    }

    #[test]
    fn record_replay_compares_the_recorded_prefix() {
        // Everything recorded; the last frame cut in the middle.
        let note = check_record_replay(&record_case(79, 5)).unwrap();
        assert_eq!(
            note,
            "400 events and 39 snapshots in the recording and its replay; 1 frames forwarded \
             after the cut"
        );
        assert!(check_record_replay(&record_case(80, 0)).is_ok());

        // The replay lost an event.
        let mut lost = record_case(80, 0);
        lost.replay.as_mut().unwrap().remove(3);
        let error = check_record_replay(&lost).unwrap_err();
        assert!(error.contains("printed 399 trace events"), "{error}");

        // The recording differs from what was forwarded.
        let mut changed = record_case(80, 0);
        changed.recording.as_mut().unwrap().bytes[10] ^= 0xff;
        let error = check_record_replay(&changed).unwrap_err();
        assert!(error.contains("not a prefix"), "{error}");

        // A frame from well before the recorder's end is missing (frame 60 came 2.4 s after
        // the connection, more than the margin before the 3 s duration ended).
        let error = check_record_replay(&record_case(60, 0)).unwrap_err();
        assert!(error.contains("is not in the recording"), "{error}");

        let mut two = record_case(80, 0);
        two.recording.as_mut().unwrap().connections = 2;
        assert!(check_record_replay(&two)
            .unwrap_err()
            .contains("connection"));
    }
}
