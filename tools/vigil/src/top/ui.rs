//! Drawing of the `vigil top` screen: header with meters, task table (or the services view)
//! with a cursor, alerts and crashes, event log or the detail view of the selected row,
//! status, help line and the help screen. Columns drop by priority on narrow terminals; the state column always stays.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Clear, Paragraph, Row, Table, Wrap};
use ratatui::Frame;
use vigil_abi::wait::ThreadState;
use vigil_wire::{ProcessInfo, ThreadInfo};

use super::{speed_text, App, SortColumn};
use crate::describe;
use crate::link::LinkState;
use crate::model::{LogCategory, Rates};

/// Bytes of one page (memory is counted in pages).
const PAGE_BYTES: u64 = 4096;

/// One row of the task table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowRef {
    /// The CPU's idle time.
    Idle,
    Process(u32),
    Thread(u64),
}

/// Draws the whole screen.
pub fn render(frame: &mut Frame, app: &App) {
    // The panes below the table get about a third of the screen.
    let bottom_height = (frame.area().height.saturating_sub(4) * 2 / 5).max(6);
    let [header, meters, table, bottom, status, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(5),
        Constraint::Length(bottom_height),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(header_line(app)), header);
    frame.render_widget(Paragraph::new(meter_line(app, meters.width)), meters);
    if app.services_view {
        render_services(frame, app, table);
    } else {
        render_table(frame, app, table);
    }
    if app.detail && !app.services_view {
        render_detail(frame, app, bottom);
    } else {
        let [alerts, log] =
            Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)])
                .areas(bottom);
        render_alerts(frame, app, alerts);
        render_log(frame, app, log);
    }
    frame.render_widget(Paragraph::new(status_line(app)), status);
    frame.render_widget(Paragraph::new(help_line(app)), help);
    if app.help {
        render_help(frame, app);
    }
}

fn header_line(app: &App) -> Line<'static> {
    let mut spans = vec![Span::from("vigil top").bold()];
    if app.paused {
        spans.push(Span::from(" PAUSED").yellow().bold());
    }
    if !app.live && (app.speed - 1.0).abs() > f64::EPSILON {
        spans.push(Span::from(format!(" ×{}", speed_text(app.speed))).cyan());
    }
    if let Some(hello) = &app.model.hello {
        spans.push(Span::from(format!(" · kernel {}", hello.kernel_version)));
        if !vigil_wire::compatible(hello.protocol_version) {
            spans.push(
                Span::from(format!(
                    " (protocol {}, this vigil speaks {}: frames may not decode)",
                    hello.protocol_version,
                    vigil_wire::PROTOCOL_VERSION
                ))
                .red(),
            );
        }
    }
    match app.model.snapshot() {
        Some(s) => {
            spans.push(Span::from(format!(
                " · up {} · {} processes, {} threads · snapshot {}",
                uptime_text(s.timestamp_ns),
                s.processes.len(),
                s.threads.len(),
                s.generation,
            )));
            if let Some(busy) = app.model.busy_percent {
                spans.push(Span::from(format!(" · cpu busy {busy:.1}%")));
            }
        }
        None => spans.push(Span::from(" · no snapshot yet")),
    }
    Line::from(spans)
}

/// "12.3 s", "4:05", "1:02:03" (kernel uptime).
pub fn uptime_text(ns: u64) -> String {
    let seconds = ns / 1_000_000_000;
    if seconds < 60 {
        format!("{:.1} s", ns as f64 / 1e9)
    } else if seconds < 3600 {
        format!("{}:{:02}", seconds / 60, seconds % 60)
    } else {
        format!(
            "{}:{:02}:{:02}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        )
    }
}

/// htop's TIME+: minutes:seconds.hundredths ("0:01.25", "12:00.00").
pub fn time_plus(ns: u64) -> String {
    let hundredths = ns / 10_000_000;
    format!(
        "{}:{:02}.{:02}",
        hundredths / 6000,
        hundredths / 100 % 60,
        hundredths % 100
    )
}

/// "[|||||     ]" for a 0–100 share, `width` bars inside the brackets.
pub fn meter(percent: f64, width: usize) -> String {
    let filled = ((percent.clamp(0.0, 100.0) / 100.0) * width as f64).round() as usize;
    format!(
        "[{}{}]",
        "|".repeat(filled),
        " ".repeat(width - filled.min(width))
    )
}

/// CPU and memory meters: busy share of the CPU; memory in use (total − free frames, from
/// the kernel's `Memory` frame) of the total, and what user processes map. A kernel that
/// sends no `Memory` frame gets the mapped figure alone.
fn meter_line(app: &App, width: u16) -> Line<'static> {
    let Some(snapshot) = app.model.snapshot() else {
        return Line::from("");
    };
    let bars = if width >= 120 { 30 } else { 12 };
    let busy = app.model.busy_percent;
    let mut spans = vec![
        Span::from("CPU ").bold(),
        Span::from(meter(busy.unwrap_or(0.0), bars)).fg(match busy {
            Some(b) if b >= 90.0 => Color::Red,
            Some(b) if b >= 50.0 => Color::Yellow,
            _ => Color::Green,
        }),
        Span::from(match busy {
            Some(b) => format!(" {b:5.1}%"),
            None => "    …".to_string(),
        }),
    ];
    let pages: u64 = snapshot.processes.iter().map(|p| p.memory_pages).sum();
    spans.push(Span::from("  MEM ").bold());
    match app.model.memory.filter(|m| m.total_frames > 0) {
        Some(memory) => {
            let used = memory.total_frames.saturating_sub(memory.free_frames);
            let percent = used as f64 * 100.0 / memory.total_frames as f64;
            let bytes = u64::from(memory.frame_bytes);
            spans.push(Span::from(meter(percent, bars)).fg(match percent {
                p if p >= 90.0 => Color::Red,
                p if p >= 70.0 => Color::Yellow,
                _ => Color::Green,
            }));
            spans.push(Span::from(format!(
                " {}/{}",
                bytes_text(used * bytes),
                bytes_text(memory.total_frames * bytes)
            )));
            if width >= 100 {
                spans.push(Span::from(format!(
                    " ({} mapped by {} processes)",
                    memory_text(pages),
                    snapshot.processes.len()
                )));
            }
        }
        None => {
            spans.push(Span::from(format!(
                "{} mapped by {} processes",
                memory_text(pages),
                snapshot.processes.len()
            )));
            if width >= 100 {
                spans.push(Span::from(" (total: not reported by this kernel)").fg(Color::DarkGray));
            }
        }
    }
    spans.push(Span::from(format!(
        "  idle {}",
        time_plus(snapshot.idle_ns)
    )));
    Line::from(spans)
}

/// Compact memory size for a table column, as htop prints it (at most 5 characters):
/// "0", "512K", "3.2M", "120M", "1.5G".
pub fn compact_bytes(bytes: u64) -> String {
    const K: u64 = 1024;
    const M: u64 = K * K;
    const G: u64 = M * K;
    match bytes {
        0 => "0".to_string(),
        b if b < M => format!("{}K", b.div_ceil(K)),
        b if b < 10 * M => format!("{:.1}M", b as f64 / M as f64),
        b if b < G => format!("{}M", b / M),
        b if b < 10 * G => format!("{:.1}G", b as f64 / G as f64),
        b => format!("{}G", b / G),
    }
}

/// Human memory size: "512 KiB", "3.2 MiB".
pub fn memory_text(pages: u64) -> String {
    bytes_text(pages * PAGE_BYTES)
}

/// "512 KiB", "3.2 MiB", "1.5 GiB".
pub fn bytes_text(bytes: u64) -> String {
    if bytes < 1024 * 1024 {
        format!("{} KiB", bytes / 1024)
    } else if bytes < 1024 * 1024 * 1024 {
        format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{:.1} GiB", bytes as f64 / (1024.0 * 1024.0 * 1024.0))
    }
}

/// One process with its threads, as shown (already sorted).
struct Group<'a> {
    process: Option<&'a ProcessInfo>,
    pid: u32,
    name: String,
    rates: Rates,
    memory_pages: u64,
    virtual_bytes: u64,
    threads: Vec<(&'a ThreadInfo, Rates)>,
    /// Its level in the tree view (0 otherwise).
    depth: usize,
}

impl Group<'_> {
    fn priority(&self) -> u8 {
        self.process.map_or_else(
            || {
                self.threads
                    .iter()
                    .map(|(t, _)| t.priority)
                    .min()
                    .unwrap_or(u8::MAX)
            },
            |p| p.priority,
        )
    }

    fn cpu_ns(&self) -> u64 {
        self.process.map_or_else(
            || self.threads.iter().map(|(t, _)| t.counters.cpu_ns).sum(),
            |p| p.cpu_ns,
        )
    }

    fn blocked(&self) -> usize {
        self.threads
            .iter()
            .filter(|(t, _)| t.state().is_some_and(|s| s.is_blocked()))
            .count()
    }
}

fn state_rank(thread: &ThreadInfo) -> u8 {
    match thread.state() {
        Some(ThreadState::Running) => 0,
        Some(ThreadState::Ready) => 1,
        Some(ThreadState::Mutex { .. })
        | Some(ThreadState::WaitingForVm { .. })
        | Some(ThreadState::HeldForManager { .. }) => 2,
        Some(ThreadState::AwaitingReply { .. }) => 3,
        Some(ThreadState::Sending { .. }) => 4,
        Some(ThreadState::Joining { .. }) | Some(ThreadState::WaitingForTracee { .. }) => 5,
        Some(ThreadState::Receiving { .. }) => 6,
        Some(ThreadState::Sleeping { .. }) => 7,
        Some(ThreadState::Dead { .. }) | Some(ThreadState::Restarting) => 8,
        Some(ThreadState::Free) => 9,
        None => 10,
    }
}

/// Natural order for a column: names and pids ascending, figures largest first.
fn compare_f64(a: f64, b: f64) -> Ordering {
    b.partial_cmp(&a).unwrap_or(Ordering::Equal)
}

fn groups(app: &App) -> Vec<Group<'_>> {
    let Some(snapshot) = app.model.snapshot() else {
        return Vec::new();
    };
    let mut by_pid: BTreeMap<u32, Group> = BTreeMap::new();
    for process in &snapshot.processes {
        by_pid.insert(
            process.pid,
            Group {
                process: Some(process),
                pid: process.pid,
                name: process.name.clone(),
                rates: app
                    .model
                    .process_rates
                    .get(&process.pid)
                    .copied()
                    .unwrap_or_default(),
                memory_pages: process.memory_pages,
                virtual_bytes: process.virtual_bytes,
                threads: Vec::new(),
                depth: 0,
            },
        );
    }
    for thread in &snapshot.threads {
        let rates = app
            .model
            .thread_rates
            .get(&thread.endpoint)
            .copied()
            .unwrap_or_default();
        let group = by_pid.entry(thread.pid).or_insert_with(|| Group {
            process: None,
            pid: thread.pid,
            name: format!("pid{}", thread.pid),
            rates: Rates::default(),
            memory_pages: 0,
            virtual_bytes: 0,
            threads: Vec::new(),
            depth: 0,
        });
        if group.process.is_none() {
            group.rates.cpu_percent += rates.cpu_percent;
            group.rates.switches_per_s += rates.switches_per_s;
            group.rates.ipc_per_s += rates.ipc_per_s;
        }
        group.threads.push((thread, rates));
    }
    let mut groups: Vec<Group> = by_pid.into_values().collect();
    if let Some(filter) = &app.filter {
        let filter = filter.to_lowercase();
        let labels = &app.model.labels;
        groups.retain_mut(|group| {
            if group.name.to_lowercase().contains(&filter) {
                return true;
            }
            group
                .threads
                .retain(|(t, _)| labels.thread(t.endpoint).to_lowercase().contains(&filter));
            !group.threads.is_empty()
        });
    }
    let sort = app.sort;
    let labels = &app.model.labels;
    let order_threads = |a: &(&ThreadInfo, Rates), b: &(&ThreadInfo, Rates)| -> Ordering {
        let (ta, ra) = a;
        let (tb, rb) = b;
        match sort {
            SortColumn::Name => labels.thread(ta.endpoint).cmp(&labels.thread(tb.endpoint)),
            SortColumn::Pid | SortColumn::Memory | SortColumn::Virtual => {
                (ta.endpoint & 0xffff).cmp(&(tb.endpoint & 0xffff))
            }
            SortColumn::Cpu => compare_f64(ra.cpu_percent, rb.cpu_percent),
            SortColumn::Switches => compare_f64(ra.switches_per_s, rb.switches_per_s),
            SortColumn::Ipc => compare_f64(ra.ipc_per_s, rb.ipc_per_s),
            SortColumn::State => state_rank(ta).cmp(&state_rank(tb)),
            SortColumn::Priority => ta.priority.cmp(&tb.priority),
            SortColumn::Time => tb.counters.cpu_ns.cmp(&ta.counters.cpu_ns),
        }
        .then_with(|| labels.thread(ta.endpoint).cmp(&labels.thread(tb.endpoint)))
    };
    for group in &mut groups {
        group.threads.sort_by(|a, b| {
            let order = order_threads(a, b);
            if app.reverse {
                order.reverse()
            } else {
                order
            }
        });
    }
    groups.sort_by(|a, b| {
        let order = match sort {
            SortColumn::Name => a.name.cmp(&b.name),
            SortColumn::Pid => a.pid.cmp(&b.pid),
            SortColumn::Cpu => compare_f64(a.rates.cpu_percent, b.rates.cpu_percent),
            SortColumn::Memory => b.memory_pages.cmp(&a.memory_pages),
            SortColumn::Virtual => b.virtual_bytes.cmp(&a.virtual_bytes),
            SortColumn::Switches => compare_f64(a.rates.switches_per_s, b.rates.switches_per_s),
            SortColumn::Ipc => compare_f64(a.rates.ipc_per_s, b.rates.ipc_per_s),
            SortColumn::State => b.blocked().cmp(&a.blocked()),
            SortColumn::Priority => a.priority().cmp(&b.priority()),
            SortColumn::Time => b.cpu_ns().cmp(&a.cpu_ns()),
        }
        .then_with(|| a.pid.cmp(&b.pid));
        if app.reverse {
            order.reverse()
        } else {
            order
        }
    });
    if app.tree_view {
        groups = as_tree(groups, &app.model);
    }
    groups
}

/// `groups` (sorted) rearranged as PM's process tree: each child right under its parent,
/// siblings in sort order.
fn as_tree<'a>(groups: Vec<Group<'a>>, model: &crate::model::Model) -> Vec<Group<'a>> {
    let nodes: Vec<(u32, Option<u32>)> = groups
        .iter()
        .map(|group| (group.pid, model.parent_of(group.pid)))
        .collect();
    let order = super::tree::forest(&nodes);
    let mut slots: Vec<Option<Group<'a>>> = groups.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|(index, depth)| {
            let mut group = slots[index].take()?;
            group.depth = depth;
            Some(group)
        })
        .collect()
}

/// `name (pid N)` of a process the snapshots named, or `pid N` if none did.
pub fn process_name_of(app: &App, pid: u32) -> String {
    match app.model.labels.process(pid) {
        Some(name) => format!("{name} (pid {pid})"),
        None => format!("pid {pid}"),
    }
}

fn state_style(thread: &ThreadInfo) -> Style {
    match thread.state() {
        Some(ThreadState::Running) => Style::new().fg(Color::Green),
        Some(ThreadState::Ready) => Style::new().fg(Color::Cyan),
        Some(
            ThreadState::Mutex { .. }
            | ThreadState::AwaitingReply { .. }
            | ThreadState::Sending { .. },
        ) => Style::new().fg(Color::Yellow),
        Some(ThreadState::Dead { .. }) => Style::new().fg(Color::DarkGray),
        _ => Style::new(),
    }
}

/// The rows of the task table, as shown: the idle row (unless a filter hides it), then each
/// process followed by its threads.
pub fn table_rows(app: &App) -> Vec<RowRef> {
    let mut rows = Vec::new();
    if app.model.snapshot().is_none() {
        return rows;
    }
    if app
        .filter
        .as_ref()
        .is_none_or(|f| "idle".contains(&f.to_lowercase()))
    {
        rows.push(RowRef::Idle);
    }
    for group in groups(app) {
        rows.push(RowRef::Process(group.pid));
        rows.extend(
            group
                .threads
                .iter()
                .map(|(t, _)| RowRef::Thread(t.endpoint)),
        );
    }
    rows
}

/// A table column: what it shows, its width and how soon it is dropped when space is short
/// (0 = never).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Name,
    Pid,
    /// The parent's pid, from PM's process tree (blank: the kernel started it, or no PM).
    Ppid,
    Pri,
    Threads,
    /// Resident memory.
    Res,
    /// Virtual size.
    Virt,
    /// Shared resident memory.
    Shr,
    Cpu,
    Time,
    Switches,
    Ipc,
    State,
}

impl Column {
    const ALL: [Column; 13] = [
        Column::Name,
        Column::Pid,
        Column::Ppid,
        Column::Pri,
        Column::Threads,
        Column::Res,
        Column::Virt,
        Column::Shr,
        Column::Cpu,
        Column::Time,
        Column::Switches,
        Column::Ipc,
        Column::State,
    ];

    fn title(self) -> &'static str {
        match self {
            Column::Name => "NAME",
            Column::Pid => "PID",
            Column::Ppid => "PPID",
            Column::Pri => "PRI",
            Column::Threads => "THR",
            Column::Res => "RES",
            Column::Virt => "VIRT",
            Column::Shr => "SHR",
            Column::Cpu => "CPU%",
            Column::Time => "TIME+",
            Column::Switches => "CTX/s",
            Column::Ipc => "IPC/s",
            Column::State => "STATE / WAITING FOR",
        }
    }

    fn sort(self) -> Option<SortColumn> {
        match self {
            Column::Name => Some(SortColumn::Name),
            Column::Pid => Some(SortColumn::Pid),
            Column::Ppid => None,
            Column::Pri => Some(SortColumn::Priority),
            Column::Threads => None,
            Column::Res => Some(SortColumn::Memory),
            Column::Virt => Some(SortColumn::Virtual),
            Column::Shr => None,
            Column::Cpu => Some(SortColumn::Cpu),
            Column::Time => Some(SortColumn::Time),
            Column::Switches => Some(SortColumn::Switches),
            Column::Ipc => Some(SortColumn::Ipc),
            Column::State => Some(SortColumn::State),
        }
    }

    fn width(self) -> u16 {
        match self {
            Column::Name => 24,
            Column::Pid | Column::Ppid => 5,
            Column::Pri => 4,
            Column::Threads => 4,
            Column::Res | Column::Virt | Column::Shr => 5,
            Column::Cpu => 6,
            Column::Time => 9,
            Column::Switches => 6,
            Column::Ipc => 6,
            Column::State => STATE_MIN_WIDTH,
        }
    }

    /// Order in which columns are given space: the name and the state always, then CPU%,
    /// PID, TIME+, RES, VIRT, PPID, PRI, SHR, THR, CTX/s, IPC/s (80 columns show up to
    /// VIRT).
    fn priority(self) -> u8 {
        match self {
            Column::Name | Column::State => 0,
            Column::Cpu => 1,
            Column::Pid => 2,
            Column::Time => 3,
            Column::Res => 4,
            Column::Virt => 5,
            Column::Ppid => 6,
            Column::Pri => 7,
            Column::Shr => 8,
            Column::Threads => 9,
            Column::Switches => 10,
            Column::Ipc => 11,
        }
    }
}

/// The state column is never narrower than this (enough for "mutex 0x4010 owned by …").
const STATE_MIN_WIDTH: u16 = 24;
/// The name column on narrow screens.
const NARROW_NAME_WIDTH: u16 = 16;

/// The columns that fit in `width` (inside the border), in display order, with widths.
pub fn columns_for(width: u16) -> Vec<(Column, u16)> {
    let name_width = if width >= 110 {
        Column::Name.width()
    } else {
        NARROW_NAME_WIDTH
    };
    let mut used = name_width + 1 + STATE_MIN_WIDTH;
    let mut chosen = vec![Column::Name, Column::State];
    let mut by_priority: Vec<Column> = Column::ALL
        .into_iter()
        .filter(|c| c.priority() > 0)
        .collect();
    by_priority.sort_by_key(|c| c.priority());
    for column in by_priority {
        if used + column.width() < width {
            used += column.width() + 1;
            chosen.push(column);
        }
    }
    Column::ALL
        .into_iter()
        .filter(|c| chosen.contains(c))
        .map(|c| {
            let w = match c {
                Column::Name => name_width,
                other => other.width(),
            };
            (c, w)
        })
        .collect()
}

fn render_table(frame: &mut Frame, app: &App, area: Rect) {
    let now = app.model.kernel_now();
    let labels = &app.model.labels;
    let columns = columns_for(area.width.saturating_sub(2));
    let pick = |cells: Vec<(Column, Cell<'static>)>| -> Vec<Cell<'static>> {
        columns
            .iter()
            .map(|(column, _)| {
                cells
                    .iter()
                    .find(|(c, _)| c == column)
                    .map_or_else(|| Cell::from(""), |(_, cell)| cell.clone())
            })
            .collect()
    };
    let mut rows = Vec::new();
    if let Some(snapshot) = app.model.snapshot() {
        if table_rows(app).first() == Some(&RowRef::Idle) {
            let idle = app.model.busy_percent.map(|b| 100.0 - b);
            rows.push(
                Row::new(pick(vec![
                    (Column::Name, Cell::from("[idle]")),
                    (
                        Column::Cpu,
                        Cell::from(idle.map_or(String::new(), |i| format!("{i:.1}"))),
                    ),
                    (Column::Time, Cell::from(time_plus(snapshot.idle_ns))),
                    (Column::State, Cell::from("idle (the CPU halted)")),
                ]))
                .style(Style::new().fg(Color::DarkGray)),
            );
        }
    }
    for group in groups(app) {
        let running = group
            .threads
            .iter()
            .filter(|(t, _)| t.state() == Some(ThreadState::Running))
            .count();
        let mut summary = Vec::new();
        if let Some(by) = group.process.map(|p| p.stopped_by).filter(|&by| by != 0) {
            summary.push(format!("stopped by {}", process_name_of(app, by)));
        }
        if running > 0 {
            summary.push(format!("{running} running"));
        }
        if group.blocked() > 0 {
            summary.push(format!("{} blocked", group.blocked()));
        }
        let thread_count = group
            .process
            .map_or(group.threads.len() as u32, |p| p.threads);
        rows.push(
            Row::new(pick(vec![
                (
                    Column::Name,
                    Cell::from(super::tree::indent(&group.name, group.depth)),
                ),
                (Column::Pid, Cell::from(group.pid.to_string())),
                (
                    Column::Ppid,
                    Cell::from(
                        app.model
                            .parent_of(group.pid)
                            .map_or(String::new(), |parent| parent.to_string()),
                    ),
                ),
                (Column::Pri, Cell::from(group.priority().to_string())),
                (Column::Threads, Cell::from(thread_count.to_string())),
                (
                    Column::Res,
                    Cell::from(group.process.map_or(String::new(), |p| {
                        compact_bytes(p.memory_pages * PAGE_BYTES)
                    })),
                ),
                (
                    Column::Virt,
                    Cell::from(
                        group
                            .process
                            .map_or(String::new(), |p| compact_bytes(p.virtual_bytes)),
                    ),
                ),
                (
                    Column::Shr,
                    Cell::from(group.process.map_or(String::new(), |p| {
                        compact_bytes(p.shared_pages * PAGE_BYTES)
                    })),
                ),
                (
                    Column::Cpu,
                    Cell::from(format!("{:.1}", group.rates.cpu_percent)),
                ),
                (Column::Time, Cell::from(time_plus(group.cpu_ns()))),
                (
                    Column::Switches,
                    Cell::from(format!("{:.0}", group.rates.switches_per_s)),
                ),
                (
                    Column::Ipc,
                    Cell::from(format!("{:.0}", group.rates.ipc_per_s)),
                ),
                (Column::State, Cell::from(summary.join(" · "))),
            ]))
            .style(Style::new().add_modifier(Modifier::BOLD)),
        );
        let last = group.threads.len().saturating_sub(1);
        for (index, (thread, rates)) in group.threads.iter().enumerate() {
            let branch = if index == last { "└ " } else { "├ " };
            let indent = "  ".repeat(group.depth);
            rows.push(Row::new(pick(vec![
                (
                    Column::Name,
                    Cell::from(format!(
                        "{indent}{branch}{}",
                        labels.thread(thread.endpoint)
                    )),
                ),
                (Column::Pri, Cell::from(thread.priority.to_string())),
                (Column::Cpu, Cell::from(format!("{:.1}", rates.cpu_percent))),
                (Column::Time, Cell::from(time_plus(thread.counters.cpu_ns))),
                (
                    Column::Switches,
                    Cell::from(format!("{:.0}", rates.switches_per_s)),
                ),
                (Column::Ipc, Cell::from(format!("{:.0}", rates.ipc_per_s))),
                (
                    Column::State,
                    Cell::from(describe::thread_state_text(thread, labels, now))
                        .style(state_style(thread)),
                ),
            ])));
        }
    }
    let total = rows.len();
    let cursor = app.cursor.min(total.saturating_sub(1));
    let visible = (area.height.saturating_sub(3) as usize).max(1);
    // Keep the cursor on screen, as near the middle as the list allows.
    let scroll = cursor
        .saturating_sub(visible / 2)
        .min(total.saturating_sub(visible));
    let rows: Vec<Row> = rows
        .into_iter()
        .enumerate()
        .skip(scroll)
        .map(|(index, row)| {
            if index == cursor {
                row.style(Style::new().add_modifier(Modifier::REVERSED))
            } else {
                row
            }
        })
        .collect();
    // ▲ ascending, ▼ descending: the column's natural order, flipped by `r`.
    let arrow = if app.sort.ascending() != app.reverse {
        "▲"
    } else {
        "▼"
    };
    let header_cells = columns.iter().map(|(column, _)| {
        if column.sort() == Some(app.sort) {
            Cell::from(format!("{}{arrow}", column.title()))
                .style(Style::new().add_modifier(Modifier::REVERSED))
        } else {
            Cell::from(column.title())
        }
    });
    let widths: Vec<Constraint> = columns
        .iter()
        .map(|(column, width)| match column {
            Column::State => Constraint::Fill(1),
            _ => Constraint::Length(*width),
        })
        .collect();
    let mut title = format!(" tasks ({total} rows, sorted by {}", app.sort.label());
    if app.tree_view {
        title.push_str(", tree");
    }
    if let Some(filter) = &app.filter {
        title.push_str(&format!(", filter \"{filter}\""));
    }
    title.push_str(") ");
    let table = Table::new(rows, widths)
        .header(Row::new(header_cells).style(Style::new().bold()))
        .block(Block::bordered().title(title));
    frame.render_widget(table, area);
}

/// "12.345 s" of kernel time, or "" for 0 (never).
fn kernel_time_text(ns: u64) -> String {
    if ns == 0 {
        String::new()
    } else {
        format!("{}.{:03} s", ns / 1_000_000_000, ns / 1_000_000 % 1000)
    }
}

/// The services view: RS's services (its latest list), the selected one highlighted, and
/// under them the backtrace of the selected one's last failure by an exception.
fn render_services(frame: &mut Frame, app: &App, area: Rect) {
    let backtrace = app
        .selected_service()
        .and_then(|service| Some((service.name.clone(), app.service_backtrace(service)?)));
    let Some((name, lines)) = backtrace else {
        render_service_table(frame, app, area);
        return;
    };
    let height = (lines.len() as u16 + 2).min(area.height / 2);
    let [table, detail] =
        Layout::vertical([Constraint::Min(5), Constraint::Length(height)]).areas(area);
    render_service_table(frame, app, table);
    let text: Vec<Line> = lines.into_iter().map(Line::from).collect();
    frame.render_widget(
        Paragraph::new(text)
            .block(Block::bordered().title(format!(" {name}: backtrace of the last failure "))),
        detail,
    );
}

/// The table of the services view.
fn render_service_table(frame: &mut Frame, app: &App, area: Rect) {
    let Some(list) = &app.model.services else {
        let why = if app.no_rs {
            "no reincarnation server runs (the kernel says so): no services to show"
        } else if app.live {
            "no service list yet: it comes from rs, asked for every second"
        } else {
            "no service list in this recording"
        };
        frame.render_widget(
            Paragraph::new(why).block(Block::bordered().title(" services ")),
            area,
        );
        return;
    };
    let cursor = app
        .service_cursor
        .min(list.services.len().saturating_sub(1));
    let rows: Vec<Row> = list
        .services
        .iter()
        .enumerate()
        .map(|(index, service)| {
            let state = crate::model::service_state_name(service.state);
            let state = if service.held {
                format!("{state} (held)")
            } else {
                state
            };
            let failure = if service.last_failure_ns == 0 {
                crate::model::failure_text(service)
            } else {
                format!(
                    "{} at {}",
                    crate::model::failure_text(service),
                    kernel_time_text(service.last_failure_ns)
                )
            };
            let color = match vigil_abi::rs::ServiceState::from_code(u64::from(service.state)) {
                Some(vigil_abi::rs::ServiceState::Running) if !service.held => Color::Green,
                Some(vigil_abi::rs::ServiceState::Running) => Color::Yellow,
                Some(vigil_abi::rs::ServiceState::BackingOff) => Color::Yellow,
                _ => Color::Red,
            };
            let row = Row::new(vec![
                Cell::from(service.index.to_string()),
                Cell::from(service.name.clone()),
                Cell::from(state).style(Style::new().fg(color)),
                Cell::from(if service.pid == 0 {
                    String::from("-")
                } else {
                    service.pid.to_string()
                }),
                Cell::from(service.restarts.to_string()),
                Cell::from(service.failures_in_a_row.to_string()),
                Cell::from(format!("{} v{}", service.program, service.version)),
                Cell::from(failure),
            ]);
            if index == cursor {
                row.style(Style::new().add_modifier(Modifier::REVERSED))
            } else {
                row
            }
        })
        .collect();
    let widths = [
        Constraint::Length(3),
        Constraint::Length(16),
        Constraint::Length(18),
        Constraint::Length(5),
        Constraint::Length(8),
        Constraint::Length(7),
        Constraint::Length(20),
        Constraint::Fill(1),
    ];
    let header = Row::new(vec![
        "IDX",
        "NAME",
        "STATE",
        "PID",
        "RESTARTS",
        "IN ROW",
        "PROGRAM",
        "LAST FAILURE",
    ])
    .style(Style::new().bold());
    let title = format!(
        " services ({} listed by rs, pid {}; as of {}) · R restart · H hold · L release · D down · U up · F refresh · P update · v tasks ",
        list.services.len(),
        list.supervisor,
        kernel_time_text(list.timestamp_ns)
    );
    frame.render_widget(
        Table::new(rows, widths)
            .header(header)
            .block(Block::bordered().title(title)),
        area,
    );
}

/// The threads `start` waits for, one hop at a time, to the end of the chain: each hop is
/// (label, state text). Stops at a thread that waits on no thread, at one the snapshot does
/// not have, or where the chain comes back on itself (a deadlock, marked as such).
pub fn wait_chain(app: &App, start: u64) -> Vec<String> {
    let Some(snapshot) = app.model.snapshot() else {
        return Vec::new();
    };
    let labels = &app.model.labels;
    let now = snapshot.timestamp_ns;
    let mut chain = Vec::new();
    let mut seen = vec![start];
    let mut current = start;
    while let Some(thread) = snapshot.threads.iter().find(|t| t.endpoint == current) {
        chain.push(format!(
            "{} ({})",
            labels.thread(thread.endpoint),
            describe::thread_state_text(thread, labels, now)
        ));
        let Some(next) = thread.state().and_then(|s| s.waits_on()) else {
            break;
        };
        if seen.contains(&next.0) {
            chain.push(format!("back to {}: a deadlock", labels.thread(next.0)));
            break;
        }
        seen.push(next.0);
        current = next.0;
    }
    chain
}

fn render_detail(frame: &mut Frame, app: &App, area: Rect) {
    let labels = &app.model.labels;
    let mut lines: Vec<Line> = Vec::new();
    let mut needle = None;
    let title = match (app.selected(), app.model.snapshot()) {
        (Some(RowRef::Idle), Some(s)) => {
            lines.push(Line::from(format!(
                "idle {} s since boot ({}) · busy {}",
                s.idle_ns as f64 / 1e9,
                time_plus(s.idle_ns),
                app.model
                    .busy_percent
                    .map_or("…".to_string(), |b| format!("{b:.1}%"))
            )));
            " detail: idle ".to_string()
        }
        (Some(RowRef::Process(pid)), Some(s)) => {
            if let Some(p) = s.processes.iter().find(|p| p.pid == pid) {
                let rates = app
                    .model
                    .process_rates
                    .get(&pid)
                    .copied()
                    .unwrap_or_default();
                lines.push(Line::from(format!(
                    "process {} · pid {} · priority {} · {} threads · main thread {}",
                    p.name,
                    p.pid,
                    p.priority,
                    p.threads,
                    labels.thread(p.main_thread)
                )));
                if p.stopped_by != 0 {
                    lines.push(Line::from(format!(
                        "stopped by {}: its threads do not run until it is continued",
                        process_name_of(app, p.stopped_by)
                    )));
                }
                if let Some(entry) = app.model.tree_entry(pid) {
                    lines.push(Line::from(format!(
                        "started by pm at {:.3} s · parent pid {} · arguments {:?}",
                        entry.start_ns as f64 / 1e9,
                        entry.parent,
                        entry.arguments
                    )));
                }
                lines.push(Line::from(format!(
                    "resident {} ({} pages, peak {}) · virtual {} · shared {} · grants {}",
                    memory_text(p.memory_pages),
                    p.memory_pages,
                    memory_text(p.peak_pages),
                    memory_text(p.virtual_bytes.div_ceil(PAGE_BYTES)),
                    memory_text(p.shared_pages),
                    p.grants,
                )));
                lines.push(Line::from(format!(
                    "page faults to VM {} ({} not present, {} protection) · cpu {:.3} s (TIME+ {}) · {:.1}% now",
                    p.page_faults(),
                    p.faults_not_present,
                    p.faults_protection,
                    p.cpu_ns as f64 / 1e9,
                    time_plus(p.cpu_ns),
                    rates.cpu_percent
                )));
                needle = Some(p.name.clone());
            }
            for t in s.threads.iter().filter(|t| t.pid == pid) {
                lines.push(Line::from(format!(
                    "  {} · {}",
                    labels.thread(t.endpoint),
                    describe::thread_state_text(t, labels, s.timestamp_ns)
                )));
            }
            format!(" detail: process {} ", labels.process(pid).unwrap_or("?"))
        }
        (Some(RowRef::Thread(endpoint)), Some(s)) => {
            if let Some(t) = s.threads.iter().find(|t| t.endpoint == endpoint) {
                let c = &t.counters;
                let rates = app
                    .model
                    .thread_rates
                    .get(&endpoint)
                    .copied()
                    .unwrap_or_default();
                let label = labels.thread(endpoint);
                lines.push(Line::from(format!(
                    "thread {label} · endpoint {:?} · pid {} ({}) · priority {} · {}",
                    vigil_abi::Endpoint(endpoint),
                    t.pid,
                    labels.process(t.pid).unwrap_or("?"),
                    t.priority,
                    describe::thread_state_text(t, labels, s.timestamp_ns)
                )));
                lines.push(Line::from(format!(
                    "cpu {:.3} s (TIME+ {}) · {:.1}% now · switches {} voluntary, {} involuntary ({:.0}/s)",
                    c.cpu_ns as f64 / 1e9,
                    time_plus(c.cpu_ns),
                    rates.cpu_percent,
                    c.voluntary_switches,
                    c.involuntary_switches,
                    rates.switches_per_s
                )));
                lines.push(Line::from(format!(
                    "syscalls {} · kernel calls {} · messages sent {}, received {} ({:.0}/s) · notifications {} · page faults {}",
                    c.syscalls,
                    c.kernel_calls,
                    c.messages_sent,
                    c.messages_received,
                    rates.ipc_per_s,
                    c.notifications_received,
                    c.page_faults
                )));
                let chain = wait_chain(app, endpoint);
                if chain.len() > 1 {
                    lines.push(Line::from(format!("wait chain: {}", chain.join(" → "))));
                }
                needle = Some(label);
            }
            format!(" detail: thread {} ", labels.thread(endpoint))
        }
        _ => " detail ".to_string(),
    };
    if let Some(needle) = needle {
        let room = (area.height as usize).saturating_sub(lines.len() + 3);
        let mut recent: Vec<Line> = app
            .model
            .log()
            .rev()
            .filter(|entry| entry.text.contains(&needle))
            .take(room)
            .map(|entry| {
                Line::from(vec![
                    Span::from(format!(
                        "{:>12} ",
                        describe::timestamp_text(entry.timestamp_ns)
                    ))
                    .fg(Color::DarkGray),
                    Span::styled(entry.text.clone(), category_style(entry.category)),
                ])
            })
            .collect();
        recent.reverse();
        lines.push(Line::from(format!("recent events ({}):", recent.len())).bold());
        lines.extend(recent);
    }
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::bordered()
                .title(title)
                .title_bottom(" Enter/Esc close "),
        ),
        area,
    );
}

/// The keys, for the help screen.
pub const HELP_TEXT: &[(&str, &str)] = &[
    ("?  h  F1", "this help (any key closes it)"),
    ("↑↓ j k PgUp PgDn Home End", "move the cursor"),
    (
        "Enter",
        "detail of the selected row (counters, wait chain, recent events)",
    ),
    (
        "/",
        "search: show only names containing the text (Enter applies, Esc clears)",
    ),
    (
        "s S ← → Tab",
        "sort by the next / previous column; r reverses (▲ ascending, ▼ descending)",
    ),
    ("f", "event log filter: all, no switches, important"),
    (
        "p  space",
        "pause / resume (a replay's clock stops; live frames wait)",
    ),
    (".  + -", "replay: step 100 ms while paused, faster, slower"),
    ("n", "ask the kernel for a snapshot now (live)"),
    (
        "t  F5",
        "tree view: processes under their parents (PM's tree; PPID column)",
    ),
    (
        "x F9",
        "kill the selected process (asks: y confirms); PM answers in the status line",
    ),
    (
        "z  c",
        "stop, continue the selected process (PM says if it can)",
    ),
    (
        "R",
        "restart the service whose instance the selected process is (RS answers)",
    ),
    (
        "v",
        "services view: RS's services, state, restarts, last failure (v or Esc: back)",
    ),
    (
        "R H L D U F",
        "services view: restart, hold, release, down, up, refresh the selected service",
    ),
    (
        "P",
        "services view: live update of the selected service: type the boot=pm program, Enter sends",
    ),
    (
        "q  Esc",
        "quit (Esc first closes the detail view or clears the filter)",
    ),
];

fn render_help(frame: &mut Frame, app: &App) {
    let area = frame.area();
    let width = area.width.min(100);
    let height = (HELP_TEXT.len() as u16 + 6).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let key_width = HELP_TEXT
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut lines: Vec<Line> = HELP_TEXT
        .iter()
        .map(|(keys, what)| {
            Line::from(vec![
                Span::from(format!("{keys:<key_width$}  ")).bold(),
                Span::from(*what),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(
        Line::from(format!(
            "{} · columns drop on narrow terminals: IPC/s, CTX/s, THR, PRI, MEM, TIME+ first",
            if app.live { "live" } else { "replay" }
        ))
        .fg(Color::DarkGray),
    );
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(" vigil top: keys ")),
        popup,
    );
}

fn render_alerts(frame: &mut Frame, app: &App, area: Rect) {
    let active = app.model.active_alerts();
    // Crashes stay here (newest first) whatever the event log scrolls to.
    let crashes: Vec<Line> = app
        .model
        .crashes
        .iter()
        .rev()
        .flat_map(|crash| {
            let mut lines = vec![Line::from(vec![
                Span::from("✖ CRASH ").red().bold(),
                Span::from(crate::model::crash_text(crash)),
                Span::from(format!(
                    " at {} s",
                    describe::timestamp_text(crash.timestamp_ns)
                ))
                .fg(Color::DarkGray),
            ])];
            // Where it happened, when the backtrace could be symbolised.
            if let Some(origin) = app.crash_origin.get(&crash.timestamp_ns) {
                lines.push(Line::from(format!("  {origin}")).fg(Color::Red));
            }
            lines
        })
        .collect();
    let count = active.len() + app.model.crashes.len();
    let mut lines: Vec<Line> = if active.is_empty() && crashes.is_empty() {
        vec![Line::from("no active alerts").fg(Color::DarkGray)]
    } else {
        let now = app.model.kernel_now();
        active
            .iter()
            .map(|alert| {
                Line::from(vec![
                    Span::from("● ").fg(Color::Red),
                    Span::from(alert.message.clone()),
                    Span::from(format!(
                        " ({} ago)",
                        describe::duration_text(now.saturating_sub(alert.first_seen_ns))
                    ))
                    .fg(Color::DarkGray),
                ])
            })
            .collect()
    };
    if !active.is_empty() || !crashes.is_empty() {
        lines.splice(0..0, crashes);
    }
    let title = format!(" alerts ({count}) ");
    let block = if count == 0 {
        Block::bordered().title(title)
    } else {
        Block::bordered().title(title).red()
    };
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block),
        area,
    );
}

fn category_style(category: LogCategory) -> Style {
    match category {
        LogCategory::Alert | LogCategory::Crash => Style::new().fg(Color::Red),
        LogCategory::Log => Style::new().fg(Color::Cyan),
        LogCategory::Link => Style::new().fg(Color::Magenta),
        LogCategory::Ipc => Style::new().fg(Color::Yellow),
        LogCategory::Switch => Style::new().fg(Color::DarkGray),
        LogCategory::Event => Style::new(),
    }
}

fn render_log(frame: &mut Frame, app: &App, area: Rect) {
    let height = area.height.saturating_sub(2) as usize;
    let mut lines: Vec<Line> = app
        .model
        .log()
        .rev()
        .filter(|entry| app.log_filter.shows(entry.category))
        .take(height)
        .map(|entry| {
            Line::from(vec![
                Span::from(format!(
                    "{:>12} ",
                    describe::timestamp_text(entry.timestamp_ns)
                ))
                .fg(Color::DarkGray),
                Span::styled(entry.text.clone(), category_style(entry.category)),
            ])
        })
        .collect();
    lines.reverse();
    let title = format!(" events ({}) ", app.log_filter.label());
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(title)),
        area,
    );
}

fn rate_text(bytes_per_s: f64) -> String {
    if bytes_per_s < 1024.0 {
        format!("{bytes_per_s:.0} B/s")
    } else {
        format!("{:.1} KiB/s", bytes_per_s / 1024.0)
    }
}

/// The link-health status line.
pub fn status_line(app: &App) -> Line<'static> {
    let link = &app.link;
    let (marker, state) = match &link.state {
        LinkState::Connected if app.live => (
            Span::from("● ").green(),
            format!("connected to {}", app.source_name),
        ),
        LinkState::Connected => (Span::from("▶ ").green(), app.source_name.clone()),
        LinkState::Starting if app.live => (
            Span::from("○ ").yellow(),
            format!("waiting for kernel at {}…", app.source_name),
        ),
        LinkState::Starting => (
            Span::from("○ ").yellow(),
            format!("opening {}…", app.source_name),
        ),
        LinkState::Waiting(error) => {
            let prefix = format!("cannot connect to {}: ", app.source_name);
            let error = error.strip_prefix(&prefix).unwrap_or(error);
            (
                Span::from("○ ").yellow(),
                format!("waiting for kernel at {}… ({error})", app.source_name),
            )
        }
        LinkState::Disconnected(reason) if app.live => (
            Span::from("○ ").yellow(),
            format!(
                "connection lost ({reason}); waiting for kernel at {}…",
                app.source_name
            ),
        ),
        LinkState::Disconnected(reason) => (
            Span::from("■ ").red(),
            format!("{} stopped: {reason}", app.source_name),
        ),
        LinkState::Ended => (
            Span::from("■ ").cyan(),
            format!("{} finished", app.source_name),
        ),
    };
    let counters = link.counters();
    let mut text = format!(
        "{state} · {:.0} frames/s {}",
        link.frames_per_s,
        rate_text(link.bytes_per_s)
    );
    if let Some(ago) = link.since_last_frame(app.now_ns) {
        text.push_str(&format!(" · last frame {:.1} s ago", ago as f64 / 1e9));
    }
    text.push_str(&format!(
        " · kernel drops {} events {} frames · lost events {} · checksum errors {} · malformed {} · discarded {} B",
        app.model.drops.events_dropped,
        app.model.drops.frames_dropped,
        app.model.lost_events,
        counters.checksum_errors,
        counters.malformed + counters.oversized,
        counters.discarded_bytes,
    ));
    let problems = counters.errors() + app.model.drops.events_dropped + app.model.lost_events > 0;
    let style = if problems {
        Style::new().fg(Color::Yellow)
    } else {
        Style::new()
    };
    let mut spans = vec![marker];
    // The latest answer to a process command stays here until the next one.
    if let Some((answer, ok)) = &app.last_answer {
        let color = if *ok { Color::Green } else { Color::Red };
        spans.push(Span::styled(format!("{answer} · "), Style::new().fg(color)));
    }
    spans.push(Span::styled(text, style));
    Line::from(spans)
}

fn help_line(app: &App) -> Line<'static> {
    if let Some((_, name, text)) = &app.update_prompt {
        return Line::from(vec![
            Span::from(format!("update {name} to program: ")).bold(),
            Span::from(text.clone()),
            Span::from("▏ (Enter send, Esc cancel)").fg(Color::DarkGray),
        ]);
    }
    if let Some(text) = &app.search {
        return Line::from(vec![
            Span::from("search: /").bold(),
            Span::from(text.clone()),
            Span::from("▏ (Enter apply, Esc cancel)").fg(Color::DarkGray),
        ]);
    }
    let mut text = String::new();
    if let Some(note) = &app.note {
        text.push_str(note);
        text.push_str(" · ");
    }
    text.push_str("? help · q quit · ↑↓ select · Enter detail · / search");
    text.push_str(&format!(
        " · s/S sort ({}) · r reverse · f event filter ({}) · p pause",
        app.sort.label(),
        app.log_filter.label()
    ));
    if app.live {
        if app.services_view {
            text.push_str(" · v tasks · R restart · H hold · L release · D down · U up · P update");
        } else {
            text.push_str(" · n snapshot now · t tree · v services · x kill · z/c stop/cont");
        }
    } else {
        text.push_str(" · . step · +/- speed");
    }
    let style = if app.note.is_some() {
        Style::new().fg(Color::Yellow)
    } else {
        Style::new().fg(Color::DarkGray)
    };
    Line::from(text).style(style)
}
