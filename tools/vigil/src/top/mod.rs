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
    Memory,
    Switches,
    Ipc,
    State,
}

impl SortColumn {
    pub const ALL: [SortColumn; 7] = [
        SortColumn::Name,
        SortColumn::Pid,
        SortColumn::Cpu,
        SortColumn::Memory,
        SortColumn::Switches,
        SortColumn::Ipc,
        SortColumn::State,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SortColumn::Name => "name",
            SortColumn::Pid => "pid",
            SortColumn::Cpu => "cpu",
            SortColumn::Memory => "mem",
            SortColumn::Switches => "ctx/s",
            SortColumn::Ipc => "ipc/s",
            SortColumn::State => "state",
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
    /// First visible row of the task table.
    pub scroll: usize,
    pub log_filter: LogFilter,
    /// A short note shown in the help line (e.g. "snapshot requested").
    pub note: Option<String>,
    pub quit: bool,
    /// Symbolises crash backtraces into the event log (`None`: the crash line only).
    pub symbols: Option<CrashSymbols>,
}

/// What a key asks for besides changing the view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    None,
    Send(HostFrame),
}

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
            scroll: 0,
            log_filter: LogFilter::All,
            note: None,
            quit: false,
            symbols: None,
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
        self.link.handle(msg, |frame| {
            let items = model.apply(frame);
            let Some(symbols) = symbols else {
                return;
            };
            // Each frame of a crash's backtrace goes to the log right after the crash line.
            for item in &items {
                if let Item::Crash(crash) = item {
                    for frame in symbols.frames(crash) {
                        model.push_log(crash.timestamp_ns, LogCategory::Crash, frame.text());
                    }
                }
            }
        });
    }

    /// Upper bound for `scroll`: one row per process and per thread.
    fn max_scroll(&self) -> usize {
        self.model.snapshot().map_or(0, |s| {
            (s.threads.len() + s.processes.len()).saturating_sub(1)
        })
    }

    /// Handles a key press.
    pub fn key(&mut self, key: KeyEvent) -> Action {
        self.note = None;
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => self.quit = true,
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => self.quit = true,
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
            KeyCode::Up | KeyCode::Char('k') => self.scroll = self.scroll.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => {
                self.scroll = (self.scroll + 1).min(self.max_scroll())
            }
            KeyCode::PageUp => self.scroll = self.scroll.saturating_sub(10),
            KeyCode::PageDown => self.scroll = (self.scroll + 10).min(self.max_scroll()),
            KeyCode::Home => self.scroll = 0,
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
    let mut last_draw: Option<Instant> = None;
    let mut dirty = true;
    while !app.quit {
        if duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        // Take what arrived, but never starve the screen of redraws.
        let drain_until = Instant::now() + Duration::from_millis(50);
        while let Ok(msg) = source.rx.try_recv() {
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
                    if let Action::Send(frame) = app.key(key) {
                        if !source.send(frame) {
                            app.note = Some("not connected".into());
                        }
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
