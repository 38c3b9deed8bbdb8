//! `vigil top` and `vigil replay`: the live terminal task manager (state, keys and main loop).
//!
//! The screen itself is drawn by [`ui::render`], which only reads an [`App`]; tests render it
//! into ratatui's `TestBackend`.

pub mod ui;

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use vigil_wire::HostFrame;

use crate::events::link_message;
use crate::link::Link;
use crate::model::{Item, LogCategory, Model};
use crate::source::{Source, SourceMsg};
use crate::symbols::CrashSymbols;

/// Columns the thread table can be sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortColumn {
    Name,
    Pid,
    Cpu,
    /// Resident memory (RES).
    Memory,
    /// Virtual size (VIRT).
    Virtual,
    Switches,
    Ipc,
    State,
    /// Scheduling priority (0 most urgent first).
    Priority,
    /// CPU time used (TIME+).
    Time,
}

impl SortColumn {
    pub const ALL: [SortColumn; 10] = [
        SortColumn::Name,
        SortColumn::Pid,
        SortColumn::Cpu,
        SortColumn::Memory,
        SortColumn::Virtual,
        SortColumn::Switches,
        SortColumn::Ipc,
        SortColumn::State,
        SortColumn::Priority,
        SortColumn::Time,
    ];

    /// The natural order is ascending (names, pids, states, priorities) rather than
    /// largest first (figures).
    pub fn ascending(self) -> bool {
        matches!(
            self,
            SortColumn::Name | SortColumn::Pid | SortColumn::State | SortColumn::Priority
        )
    }

    pub fn label(self) -> &'static str {
        match self {
            SortColumn::Name => "name",
            SortColumn::Pid => "pid",
            SortColumn::Cpu => "cpu",
            SortColumn::Memory => "res",
            SortColumn::Virtual => "virt",
            SortColumn::Switches => "ctx/s",
            SortColumn::Ipc => "ipc/s",
            SortColumn::State => "state",
            SortColumn::Priority => "pri",
            SortColumn::Time => "time",
        }
    }

    fn step(self, forward: bool) -> SortColumn {
        let index = SortColumn::ALL.iter().position(|c| *c == self).unwrap_or(0);
        let n = SortColumn::ALL.len();
        SortColumn::ALL[if forward {
            (index + 1) % n
        } else {
            (index + n - 1) % n
        }]
    }
}

/// Which entries the event-log pane shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFilter {
    All,
    NoSwitches,
    /// Alerts, crashes, kernel log lines and link changes only.
    Important,
}

impl LogFilter {
    pub fn label(self) -> &'static str {
        match self {
            LogFilter::All => "all",
            LogFilter::NoSwitches => "no switches",
            LogFilter::Important => "important",
        }
    }

    pub fn shows(self, category: LogCategory) -> bool {
        match self {
            LogFilter::All => true,
            LogFilter::NoSwitches => category != LogCategory::Switch,
            LogFilter::Important => matches!(
                category,
                LogCategory::Alert | LogCategory::Crash | LogCategory::Log | LogCategory::Link
            ),
        }
    }

    fn next(self) -> LogFilter {
        match self {
            LogFilter::All => LogFilter::NoSwitches,
            LogFilter::NoSwitches => LogFilter::Important,
            LogFilter::Important => LogFilter::All,
        }
    }
}

/// Everything the screen shows.
pub struct App {
    pub model: Model,
    pub link: Link,
    /// "127.0.0.1:5555" or "replay FILE".
    pub source_name: String,
    pub live: bool,
    /// Host time now (the source's clock), for "last frame … ago".
    pub now_ns: u64,
    pub sort: SortColumn,
    /// Reverse the column's natural order (numbers: largest first; names: A first).
    pub reverse: bool,
    /// The selected row of the task table (an index into [`ui::table_rows`]).
    pub cursor: usize,
    /// Showing the detail view of the selected row.
    pub detail: bool,
    /// Showing the help screen.
    pub help: bool,
    /// Typing a search (`/`): the text so far.
    pub search: Option<String>,
    /// Only processes and threads whose name contains this (set by `/`, cleared by Esc).
    pub filter: Option<String>,
    /// The display is frozen: a live session stops taking in frames (they queue), a replay
    /// stops its clock.
    pub paused: bool,
    /// Replay speed shown (1 = recorded timing).
    pub speed: f64,
    pub log_filter: LogFilter,
    /// A short note shown in the help line (e.g. "snapshot requested").
    pub note: Option<String>,
    pub quit: bool,
    /// Symbolises crash backtraces into the event log (`None`: the crash line only).
    pub symbols: Option<CrashSymbols>,
    /// Where each crash happened (its first symbolised frame), by crash time, for the
    /// alerts pane.
    pub crash_origin: std::collections::HashMap<u64, String>,
}

/// What a key asks for besides changing the view.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    None,
    Send(HostFrame),
    /// Pause or resume (a replay's clock; a live session stops taking in frames).
    Pause(bool),
    /// Play this much more of a paused replay (ns of recording time).
    Step(u64),
    /// Set the replay speed.
    Speed(f64),
}

/// Operations on the selected process that a task manager offers. None is supported by
/// protocol version 1; see [`action_support`] and docs/architecture.md ("Actions").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskAction {
    Kill,
    Stop,
    Continue,
    Restart,
}

impl TaskAction {
    pub fn label(self) -> &'static str {
        match self {
            TaskAction::Kill => "kill",
            TaskAction::Stop => "stop",
            TaskAction::Continue => "continue",
            TaskAction::Restart => "restart",
        }
    }
}

/// Whether the kernel that said `hello` can carry out `action`. The command path is designed
/// (a host `Action` frame → the kernel → forwarded to the agent that owns the target: the
/// process manager for kill/stop/continue, the service supervisor for restart → its
/// `CommandResult`), but no protocol version has the frame yet, so this is always an error.
pub fn action_support(hello: Option<&vigil_wire::Hello>, action: TaskAction) -> Result<(), String> {
    let version = hello.map_or(vigil_wire::PROTOCOL_VERSION, |h| h.protocol_version);
    Err(format!(
        "{}: not supported by this kernel (protocol {version} has no task actions yet)",
        action.label()
    ))
}

/// How much recording a step plays (one snapshot period at the default rate).
pub const STEP_NS: u64 = 100_000_000;

impl App {
    pub fn new(source_name: impl Into<String>, live: bool) -> App {
        App {
            model: Model::new(),
            link: Link::new(),
            source_name: source_name.into(),
            live,
            now_ns: 0,
            sort: SortColumn::Cpu,
            reverse: false,
            cursor: 0,
            detail: false,
            help: false,
            search: None,
            filter: None,
            paused: false,
            speed: 1.0,
            log_filter: LogFilter::All,
            note: None,
            quit: false,
            symbols: None,
            crash_origin: std::collections::HashMap::new(),
        }
    }

    /// Applies one source message to the link and the model.
    pub fn handle(&mut self, msg: SourceMsg) {
        if let Some(text) = link_message(&msg, &self.source_name, self.live) {
            let now = self.model.kernel_now();
            // "waiting" is shown in the status line; only log real changes.
            if !matches!(msg, SourceMsg::Waiting { .. }) {
                self.model.push_log(now, LogCategory::Link, text);
            }
        }
        let model = &mut self.model;
        let symbols = self.symbols.as_ref();
        let origins = &mut self.crash_origin;
        self.link.handle(msg, |frame| {
            let items = model.apply(frame);
            let Some(symbols) = symbols else {
                return;
            };
            // Each frame of a crash's backtrace goes to the log right after the crash line.
            for item in &items {
                if let Item::Crash(crash) = item {
                    let frames = symbols.frames(crash);
                    if let Some(first) = frames.first() {
                        origins.insert(crash.timestamp_ns, first.text().trim().to_string());
                    }
                    for frame in frames {
                        model.push_log(crash.timestamp_ns, LogCategory::Crash, frame.text());
                    }
                }
            }
        });
    }

    /// Rows of the task table as shown (filter and sort applied).
    pub fn rows(&self) -> Vec<ui::RowRef> {
        ui::table_rows(self)
    }

    /// The selected row, if any.
    pub fn selected(&self) -> Option<ui::RowRef> {
        let rows = self.rows();
        rows.get(self.cursor.min(rows.len().saturating_sub(1)))
            .copied()
    }

    fn move_cursor(&mut self, delta: isize) {
        let last = self.rows().len().saturating_sub(1);
        let cursor = self.cursor.min(last) as isize + delta;
        self.cursor = cursor.clamp(0, last as isize) as usize;
    }

    /// Handles a key press.
    pub fn key(&mut self, key: KeyEvent) -> Action {
        self.note = None;
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            self.quit = true;
            return Action::None;
        }
        // Typing a search: keys are text until Enter or Esc.
        if let Some(text) = &mut self.search {
            match key.code {
                KeyCode::Enter => {
                    let text = std::mem::take(text);
                    self.search = None;
                    self.filter = (!text.is_empty()).then_some(text);
                    self.cursor = 0;
                }
                KeyCode::Esc => self.search = None,
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Char(c) => text.push(c),
                _ => {}
            }
            return Action::None;
        }
        if self.help {
            // Any key closes the help screen; q still quits.
            self.help = false;
            if key.code != KeyCode::Char('q') {
                return Action::None;
            }
        }
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Esc if self.detail => self.detail = false,
            KeyCode::Esc if self.filter.is_some() => {
                self.filter = None;
                self.note = Some("filter cleared".into());
            }
            KeyCode::Esc => self.quit = true,
            KeyCode::Char('?') | KeyCode::Char('h') | KeyCode::F(1) => self.help = true,
            KeyCode::Char('/') => self.search = Some(String::new()),
            KeyCode::Enter => self.detail = !self.detail && self.selected().is_some(),
            KeyCode::Char('s') | KeyCode::Right | KeyCode::Tab => {
                self.sort = self.sort.step(true);
                self.reverse = false;
            }
            KeyCode::Char('S') | KeyCode::Left | KeyCode::BackTab => {
                self.sort = self.sort.step(false);
                self.reverse = false;
            }
            KeyCode::Char('r') => self.reverse = !self.reverse,
            KeyCode::Char('f') => self.log_filter = self.log_filter.next(),
            KeyCode::Up | KeyCode::Char('k') => self.move_cursor(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_cursor(1),
            KeyCode::PageUp => self.move_cursor(-10),
            KeyCode::PageDown => self.move_cursor(10),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.move_cursor(isize::MAX / 2),
            KeyCode::Char('p') | KeyCode::Char(' ') => {
                self.paused = !self.paused;
                self.note = Some(if self.paused { "paused" } else { "resumed" }.into());
                return Action::Pause(self.paused);
            }
            KeyCode::Char('.') if !self.live => {
                if !self.paused {
                    self.paused = true;
                    self.note = Some("paused; . steps 100 ms".into());
                    return Action::Pause(true);
                }
                self.note = Some("stepped 100 ms".into());
                return Action::Step(STEP_NS);
            }
            KeyCode::Char('+') | KeyCode::Char('>') if !self.live => {
                self.speed = (self.speed * 2.0).min(64.0);
                self.note = Some(format!("speed ×{}", speed_text(self.speed)));
                return Action::Speed(self.speed);
            }
            KeyCode::Char('-') | KeyCode::Char('<') if !self.live => {
                self.speed = (self.speed / 2.0).max(1.0 / 64.0);
                self.note = Some(format!("speed ×{}", speed_text(self.speed)));
                return Action::Speed(self.speed);
            }
            KeyCode::Char('.' | '+' | '>' | '-' | '<') => {
                self.note = Some("step and speed are for replays".into());
            }
            KeyCode::Char('x') | KeyCode::F(9) => self.task_action(TaskAction::Kill),
            KeyCode::Char('z') => self.task_action(TaskAction::Stop),
            KeyCode::Char('c') => self.task_action(TaskAction::Continue),
            KeyCode::Char('R') => self.task_action(TaskAction::Restart),
            KeyCode::Char('n') => {
                if self.live {
                    self.note = Some("snapshot requested".into());
                    return Action::Send(HostFrame::SnapshotNow);
                }
                self.note = Some("a replay cannot take snapshots".into());
            }
            _ => {}
        }
        Action::None
    }

    fn task_action(&mut self, action: TaskAction) {
        let target = match self.selected() {
            Some(ui::RowRef::Process(pid)) => format!(
                "{} (pid {pid})",
                self.model.labels.process(pid).unwrap_or("?")
            ),
            Some(ui::RowRef::Thread(endpoint)) => self.model.labels.thread(endpoint),
            Some(ui::RowRef::Idle) | None => {
                self.note = Some(format!(
                    "{}: select a process or thread first",
                    action.label()
                ));
                return;
            }
        };
        self.note = Some(match action_support(self.model.hello.as_ref(), action) {
            Ok(()) => format!("{} {target}: sent", action.label()),
            Err(why) => format!("{} {target}: {why}", action.label()),
        });
    }
}

/// "2", "0.5", "0.25".
pub fn speed_text(speed: f64) -> String {
    if speed >= 1.0 {
        format!("{speed:.0}")
    } else {
        format!("{speed}")
    }
}

/// Runs the TUI on the terminal until `q` (or the duration passes); `symbols` symbolises
/// crash backtraces into the event log.
pub fn run(
    source: Source,
    duration: Option<Duration>,
    symbols: Option<CrashSymbols>,
) -> Result<()> {
    if !std::io::stdout().is_terminal() {
        bail!("`vigil top` needs a terminal; for scripts use `vigil events` (add --json for JSON lines)");
    }
    let mut terminal = ratatui::try_init()?;
    let result = run_loop(&mut terminal, source, duration, symbols);
    ratatui::restore();
    result
}

fn run_loop(
    terminal: &mut ratatui::DefaultTerminal,
    source: Source,
    duration: Option<Duration>,
    symbols: Option<CrashSymbols>,
) -> Result<()> {
    let started = Instant::now();
    let mut app = App::new(source.description(), source.is_live());
    app.symbols = symbols;
    if let Some(control) = &source.control {
        app.speed = control.speed();
    }
    let mut last_draw: Option<Instant> = None;
    let mut dirty = true;
    while !app.quit {
        if duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        // Take what arrived, but never starve the screen of redraws. A paused live session
        // leaves frames queued; a paused replay's clock stands still.
        let drain_until = Instant::now() + Duration::from_millis(50);
        while let Some(msg) = (!app.paused || !app.live)
            .then(|| source.rx.try_recv().ok())
            .flatten()
        {
            app.handle(msg);
            dirty = true;
            if Instant::now() >= drain_until {
                break;
            }
        }
        app.now_ns = source.now_ns();
        app.link.tick(app.now_ns);
        if dirty || last_draw.is_none_or(|t| t.elapsed() >= Duration::from_millis(500)) {
            terminal.draw(|frame| ui::render(frame, &app))?;
            last_draw = Some(Instant::now());
            dirty = false;
        }
        if event::poll(Duration::from_millis(50))? {
            if let Event::Key(key) = event::read()? {
                if key.kind == KeyEventKind::Press {
                    match app.key(key) {
                        Action::None => {}
                        Action::Send(frame) => {
                            if !source.send(frame) {
                                app.note = Some("not connected".into());
                            }
                        }
                        Action::Pause(paused) => {
                            if let Some(control) = &source.control {
                                control.set_paused(paused);
                            }
                        }
                        Action::Step(ns) => {
                            if let Some(control) = &source.control {
                                control.step(ns);
                            }
                        }
                        Action::Speed(speed) => match &source.control {
                            Some(control) => control.set_speed(speed),
                            None => app.note = Some("this replay runs as fast as possible".into()),
                        },
                    }
                    dirty = true;
                }
            } else {
                dirty = true;
            }
        }
    }
    Ok(())
}
