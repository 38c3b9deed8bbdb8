//! Drawing of the `vigil top` screen: header, task table, alerts, event log, status and help.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table, Wrap};
use ratatui::Frame;
use vigil_abi::wait::ThreadState;
use vigil_wire::{ProcessInfo, ThreadInfo};

use super::{App, SortColumn};
use crate::describe;
use crate::link::LinkState;
use crate::model::{LogCategory, Rates};

/// Bytes of one page (memory is counted in pages).
const PAGE_BYTES: u64 = 4096;

/// Draws the whole screen.
pub fn render(frame: &mut Frame, app: &App) {
    // The panes below the table get about a third of the screen.
    let bottom_height = (frame.area().height.saturating_sub(3) * 2 / 5).max(6);
    let [header, table, bottom, status, help] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(5),
        Constraint::Length(bottom_height),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let [alerts, log] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(bottom);
    frame.render_widget(Paragraph::new(header_line(app)), header);
    render_table(frame, app, table);
    render_alerts(frame, app, alerts);
    render_log(frame, app, log);
    frame.render_widget(Paragraph::new(status_line(app)), status);
    frame.render_widget(Paragraph::new(help_line(app)), help);
}

fn header_line(app: &App) -> Line<'static> {
    let mut spans = vec![Span::from("vigil top").bold()];
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
                " · snapshot {} at {} s · {} processes, {} threads",
                s.generation,
                describe::timestamp_text(s.timestamp_ns),
                s.processes.len(),
                s.threads.len()
            )));
            if let Some(busy) = app.model.busy_percent {
                spans.push(Span::from(format!(" · cpu busy {busy:.1}%")));
            }
        }
        None => spans.push(Span::from(" · no snapshot yet")),
    }
    Line::from(spans)
}

/// Human memory size: "512 KiB", "3.2 MiB".
pub fn memory_text(pages: u64) -> String {
    let bytes = pages * PAGE_BYTES;
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
    threads: Vec<(&'a ThreadInfo, Rates)>,
}

impl Group<'_> {
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
        Some(ThreadState::Mutex { .. }) | Some(ThreadState::WaitingForVm { .. }) => 2,
        Some(ThreadState::AwaitingReply { .. }) => 3,
        Some(ThreadState::Sending { .. }) => 4,
        Some(ThreadState::Joining { .. }) => 5,
        Some(ThreadState::Receiving { .. }) => 6,
        Some(ThreadState::Sleeping { .. }) => 7,
        Some(ThreadState::Dead { .. }) => 8,
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
                threads: Vec::new(),
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
            threads: Vec::new(),
        });
        if group.process.is_none() {
            group.rates.cpu_percent += rates.cpu_percent;
            group.rates.switches_per_s += rates.switches_per_s;
            group.rates.ipc_per_s += rates.ipc_per_s;
        }
        group.threads.push((thread, rates));
    }
    let mut groups: Vec<Group> = by_pid.into_values().collect();
    let sort = app.sort;
    let labels = &app.model.labels;
    let order_threads = |a: &(&ThreadInfo, Rates), b: &(&ThreadInfo, Rates)| -> Ordering {
        let (ta, ra) = a;
        let (tb, rb) = b;
        match sort {
            SortColumn::Name => labels.thread(ta.endpoint).cmp(&labels.thread(tb.endpoint)),
            SortColumn::Pid | SortColumn::Memory => {
                (ta.endpoint & 0xffff).cmp(&(tb.endpoint & 0xffff))
            }
            SortColumn::Cpu => compare_f64(ra.cpu_percent, rb.cpu_percent),
            SortColumn::Switches => compare_f64(ra.switches_per_s, rb.switches_per_s),
            SortColumn::Ipc => compare_f64(ra.ipc_per_s, rb.ipc_per_s),
            SortColumn::State => state_rank(ta).cmp(&state_rank(tb)),
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
            SortColumn::Switches => compare_f64(a.rates.switches_per_s, b.rates.switches_per_s),
            SortColumn::Ipc => compare_f64(a.rates.ipc_per_s, b.rates.ipc_per_s),
            SortColumn::State => b.blocked().cmp(&a.blocked()),
        }
        .then_with(|| a.pid.cmp(&b.pid));
        if app.reverse {
            order.reverse()
        } else {
            order
        }
    });
    groups
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

fn render_table(frame: &mut Frame, app: &App, area: Rect) {
    let now = app.model.kernel_now();
    let labels = &app.model.labels;
    let mut rows = Vec::new();
    for group in groups(app) {
        let running = group
            .threads
            .iter()
            .filter(|(t, _)| t.state() == Some(ThreadState::Running))
            .count();
        let mut summary = Vec::new();
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
            Row::new(vec![
                Cell::from(group.name.clone()),
                Cell::from(group.pid.to_string()),
                Cell::from(thread_count.to_string()),
                Cell::from(if group.process.is_some() {
                    memory_text(group.memory_pages)
                } else {
                    String::new()
                }),
                Cell::from(format!("{:.1}", group.rates.cpu_percent)),
                Cell::from(format!("{:.0}", group.rates.switches_per_s)),
                Cell::from(format!("{:.0}", group.rates.ipc_per_s)),
                Cell::from(summary.join(" · ")),
            ])
            .style(Style::new().add_modifier(Modifier::BOLD)),
        );
        let last = group.threads.len().saturating_sub(1);
        for (index, (thread, rates)) in group.threads.iter().enumerate() {
            let branch = if index == last { "└ " } else { "├ " };
            rows.push(Row::new(vec![
                Cell::from(format!("{branch}{}", labels.thread(thread.endpoint))),
                Cell::from(""),
                Cell::from(""),
                Cell::from(""),
                Cell::from(format!("{:.1}", rates.cpu_percent)),
                Cell::from(format!("{:.0}", rates.switches_per_s)),
                Cell::from(format!("{:.0}", rates.ipc_per_s)),
                Cell::from(describe::thread_state_text(thread, labels, now))
                    .style(state_style(thread)),
            ]));
        }
    }
    let total = rows.len();
    let visible = area.height.saturating_sub(3) as usize;
    let scroll = app.scroll.min(total.saturating_sub(visible.max(1)));
    let rows: Vec<Row> = rows.into_iter().skip(scroll).collect();
    let arrow = if app.reverse { "▲" } else { "▼" };
    let header_cells = [
        (SortColumn::Name, "NAME"),
        (SortColumn::Pid, "PID"),
        (SortColumn::Pid, "THR"),
        (SortColumn::Memory, "MEM"),
        (SortColumn::Cpu, "CPU%"),
        (SortColumn::Switches, "CTX/s"),
        (SortColumn::Ipc, "IPC/s"),
        (SortColumn::State, "STATE / WAITING FOR"),
    ]
    .into_iter()
    .enumerate()
    .map(|(index, (column, title))| {
        if column == app.sort && index != 2 {
            Cell::from(format!("{title}{arrow}"))
                .style(Style::new().add_modifier(Modifier::REVERSED))
        } else {
            Cell::from(title)
        }
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(26),
            Constraint::Length(5),
            Constraint::Length(4),
            Constraint::Length(10),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Fill(1),
        ],
    )
    .header(Row::new(header_cells).style(Style::new().bold()))
    .block(Block::bordered().title(format!(
        " tasks ({total} rows, sorted by {}) ",
        app.sort.label()
    )));
    frame.render_widget(table, area);
}

fn render_alerts(frame: &mut Frame, app: &App, area: Rect) {
    let active = app.model.active_alerts();
    let lines: Vec<Line> = if active.is_empty() {
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
    let title = format!(" alerts ({}) ", active.len());
    let block = if active.is_empty() {
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
    Line::from(vec![marker, Span::styled(text, style)])
}

fn help_line(app: &App) -> Line<'static> {
    let mut text = format!(
        "q quit · s/S sort column ({}) · r reverse · ↑↓ PgUp PgDn scroll · f event filter ({})",
        app.sort.label(),
        app.log_filter.label()
    );
    if app.live {
        text.push_str(" · n snapshot now");
    }
    if let Some(note) = &app.note {
        text.push_str(" · ");
        text.push_str(note);
    }
    Line::from(text).fg(Color::DarkGray)
}
