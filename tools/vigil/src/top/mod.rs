//! `vigil top` and `vigil replay`: the live terminal task manager (state, keys and main loop).
//!
//! The screen itself is drawn by [`ui::render`], which only reads an [`App`]; tests render it
//! into ratatui's `TestBackend`.

pub mod tree;
pub mod ui;

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use vigil_wire::{
    HostFrame, ProcessAction, ProcessCommand, ServiceAction, ServiceCommand, ServiceUpdate,
    UPDATE_PROGRAM_BYTES,
};

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
    /// Processes indented under their parents (`t`, F5), from PM's process tree.
    pub tree_view: bool,
    /// A kill waiting for `y` (htop asks too): the target's pid and label.
    pub confirm_kill: Option<(u32, String)>,
    /// Process commands sent and not answered yet, by request id: what was asked and when.
    pub requests: std::collections::HashMap<u32, (String, Instant)>,
    /// The tree request sent and not answered yet, and when the last one went.
    pub tree_request: Option<(u32, Instant)>,
    pub last_tree_request: Option<Instant>,
    /// The latest answer to one of our process commands, as shown in the status line, and
    /// whether it succeeded.
    pub last_answer: Option<(String, bool)>,
    /// The last tree request was answered "no process manager": ask less often.
    pub no_pm: bool,
    /// Showing the services view (`v`): RS's services in place of the task table.
    pub services_view: bool,
    /// The selected row of the services view (an index into RS's list).
    pub service_cursor: usize,
    /// The service-list request sent and not answered yet, and when the last one went.
    pub service_request: Option<(u32, Instant)>,
    pub last_service_request: Option<Instant>,
    /// The last service-list request was answered "no reincarnation server".
    pub no_rs: bool,
    /// Typing the program of a live update (`P` in the services view): the service's index
    /// and name, and the text so far.
    pub update_prompt: Option<(u32, String, String)>,
    next_request: u32,
}

/// How often a live `top` asks for PM's process tree (for PPID and the tree view).
pub const TREE_PERIOD: Duration = Duration::from_secs(1);
/// How often it asks while the kernel says there is no process manager.
pub const NO_PM_TREE_PERIOD: Duration = Duration::from_secs(10);
/// How often a live `top` asks for RS's services (for the services view and `R`).
pub const SERVICE_PERIOD: Duration = Duration::from_secs(1);
/// How often it asks while the kernel says there is no reincarnation server.
pub const NO_RS_SERVICE_PERIOD: Duration = Duration::from_secs(10);
/// A process command unanswered this long is given up (the kernel answers within 2 s, or
/// is too old to know process commands).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

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

/// Operations on the selected process that a task manager offers: kill, stop and continue
/// go to the process manager as process commands; restart goes to the reincarnation server
/// as a service command for the service whose instance the process is (see
/// [`action_support`] and docs/architecture.md, "Actions").
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

/// The process command `action` is, or None for restart: kill, stop and continue are
/// `ProcessCommand`s the kernel forwards to the process manager (whose answer, a
/// `ProcessResult`, says whether it could); restart is a `ServiceCommand` for the
/// reincarnation server, for the service whose running instance the process is.
pub fn action_support(action: TaskAction) -> Option<ProcessAction> {
    match action {
        TaskAction::Kill => Some(ProcessAction::Kill),
        TaskAction::Stop => Some(ProcessAction::Stop),
        TaskAction::Continue => Some(ProcessAction::Continue),
        TaskAction::Restart => None,
    }
}

/// The services-view key for a service action: R restart, H hold, L release, D down, U up,
/// F refresh.
pub fn service_action_for_key(code: KeyCode) -> Option<ServiceAction> {
    Some(match code {
        KeyCode::Char('R') => ServiceAction::Restart,
        KeyCode::Char('H') => ServiceAction::Hold,
        KeyCode::Char('L') => ServiceAction::Release,
        KeyCode::Char('D') => ServiceAction::Down,
        KeyCode::Char('U') => ServiceAction::Up,
        KeyCode::Char('F') => ServiceAction::Refresh,
        _ => return None,
    })
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
            tree_view: false,
            confirm_kill: None,
            requests: std::collections::HashMap::new(),
            tree_request: None,
            last_tree_request: None,
            last_answer: None,
            no_pm: false,
            services_view: false,
            service_cursor: 0,
            update_prompt: None,
            service_request: None,
            last_service_request: None,
            no_rs: false,
            next_request: 1,
        }
    }

    fn request_id(&mut self) -> u32 {
        let id = self.next_request;
        self.next_request = self.next_request.wrapping_add(1).max(1);
        id
    }

    /// The tree request due at `now` (live, connected, none outstanding, one a
    /// [`TREE_PERIOD`]); the caller sends it.
    pub fn tree_request_due(&mut self, now: Instant) -> Option<HostFrame> {
        if !self.live || self.model.hello.is_none() {
            return None;
        }
        if self
            .tree_request
            .is_some_and(|(_, at)| now.duration_since(at) < ANSWER_TIMEOUT)
        {
            return None;
        }
        let period = if self.no_pm {
            NO_PM_TREE_PERIOD
        } else {
            TREE_PERIOD
        };
        if self
            .last_tree_request
            .is_some_and(|at| now.duration_since(at) < period)
        {
            return None;
        }
        let request = self.request_id();
        self.tree_request = Some((request, now));
        self.last_tree_request = Some(now);
        Some(HostFrame::ProcessTreeNow { request })
    }

    /// The service-list request due at `now` (live, connected, none outstanding, one a
    /// [`SERVICE_PERIOD`], or sooner after one of our service commands was answered); the
    /// caller sends it.
    pub fn service_request_due(&mut self, now: Instant) -> Option<HostFrame> {
        if !self.live || self.model.hello.is_none() {
            return None;
        }
        if self
            .service_request
            .is_some_and(|(_, at)| now.duration_since(at) < ANSWER_TIMEOUT)
        {
            return None;
        }
        let period = if self.no_rs {
            NO_RS_SERVICE_PERIOD
        } else {
            SERVICE_PERIOD
        };
        if self
            .last_service_request
            .is_some_and(|at| now.duration_since(at) < period)
        {
            return None;
        }
        let request = self.request_id();
        self.service_request = Some((request, now));
        self.last_service_request = Some(now);
        Some(HostFrame::ServiceListNow { request })
    }

    /// The services as RS listed them last (empty before the first list, or without RS).
    pub fn services(&self) -> &[vigil_wire::ServiceEntry] {
        self.model
            .services
            .as_ref()
            .map_or(&[], |list| list.services.as_slice())
    }

    /// The selected service of the services view.
    pub fn selected_service(&self) -> Option<&vigil_wire::ServiceEntry> {
        let services = self.services();
        services.get(self.service_cursor.min(services.len().saturating_sub(1)))
    }

    /// Gives up on process commands unanswered since before `now - ANSWER_TIMEOUT`.
    pub fn expire_requests(&mut self, now: Instant) {
        let expired: Vec<u32> = self
            .requests
            .iter()
            .filter(|(_, (_, at))| now.duration_since(*at) >= ANSWER_TIMEOUT)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some((what, _)) = self.requests.remove(&id) {
                let text =
                    format!("{what}: no answer from the kernel (one without process commands?)");
                self.last_answer = Some((text.clone(), false));
                self.note = Some(text);
            }
        }
    }

    /// A process command's answer: shown in the status line when it is one of ours.
    fn answered(&mut self, result: &vigil_wire::ProcessResult) {
        if self
            .tree_request
            .is_some_and(|(id, _)| id == result.request)
        {
            self.tree_request = None;
            self.no_pm = result.outcome == vigil_abi::host_command::Outcome::NoProcessManager as u8;
            return;
        }
        if self
            .service_request
            .is_some_and(|(id, _)| id == result.request)
        {
            self.service_request = None;
            self.no_rs = result.outcome == vigil_abi::host_command::Outcome::NoServiceManager as u8;
            return;
        }
        if let Some((what, _)) = self.requests.remove(&result.request) {
            if what.starts_with("service ") {
                // Show the action's effect at once: ask for the list again now.
                self.last_service_request = None;
            }
            let outcome = crate::model::outcome_text(result);
            let text = if result.message.is_empty() {
                format!("{what}: {outcome}")
            } else {
                format!("{what}: {outcome} — {}", result.message)
            };
            self.last_answer = Some((text.clone(), result.ok()));
            let now = self.model.kernel_now();
            self.model.push_log(now, LogCategory::Link, text.clone());
            self.note = Some(text);
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
        let mut answers = Vec::new();
        let mut trees = Vec::new();
        let mut lists = Vec::new();
        self.link.handle(msg, |frame| {
            let items = model.apply(frame);
            for item in &items {
                match item {
                    Item::ProcessResult(result) => answers.push(result.clone()),
                    Item::ProcessTree => trees.extend(model.tree.as_ref().map(|t| t.request)),
                    Item::ServiceList => lists.extend(model.services.as_ref().map(|l| l.request)),
                    _ => {}
                }
            }
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
        for result in &answers {
            self.answered(result);
        }
        if trees
            .iter()
            .any(|request| self.tree_request.is_some_and(|(id, _)| id == *request))
        {
            self.tree_request = None;
            self.no_pm = false;
        }
        if lists
            .iter()
            .any(|request| self.service_request.is_some_and(|(id, _)| id == *request))
        {
            self.service_request = None;
            self.no_rs = false;
        }
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
        // A kill waits for its confirmation: y sends it, any other key cancels.
        if let Some((pid, target)) = self.confirm_kill.take() {
            if matches!(key.code, KeyCode::Char('y') | KeyCode::Char('Y')) {
                return self.send_process_command(ProcessAction::Kill, pid, target);
            }
            self.note = Some(format!("kill {target}: cancelled"));
            return Action::None;
        }
        // Typing an update's program: keys are text until Enter (sends) or Esc.
        if let Some((index, name, text)) = &mut self.update_prompt {
            match key.code {
                KeyCode::Enter => {
                    let (index, name, text) = (*index, name.clone(), std::mem::take(text));
                    self.update_prompt = None;
                    return self.send_service_update(index, name, text.trim());
                }
                KeyCode::Esc => {
                    self.note = Some(format!("update {name}: cancelled"));
                    self.update_prompt = None;
                }
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Char(c) => text.push(c),
                _ => {}
            }
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
        if self.services_view {
            if let Some(action) = self.services_key(key.code) {
                return action;
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
            KeyCode::Char('x') | KeyCode::F(9) => return self.task_action(TaskAction::Kill),
            KeyCode::Char('z') => return self.task_action(TaskAction::Stop),
            KeyCode::Char('c') => return self.task_action(TaskAction::Continue),
            KeyCode::Char('R') => return self.task_action(TaskAction::Restart),
            KeyCode::Char('v') => {
                self.services_view = true;
                self.service_cursor = 0;
                self.note = Some(
                    if self.model.services.is_some() {
                        "services view: R restart · H hold · L release · D down · U up · F refresh · v back"
                    } else if self.no_rs {
                        "services view: no reincarnation server runs"
                    } else {
                        "services view: no list yet (it comes from rs)"
                    }
                    .into(),
                );
            }
            KeyCode::Char('t') | KeyCode::F(5) => {
                self.tree_view = !self.tree_view;
                self.cursor = 0;
                self.note = Some(
                    if !self.tree_view {
                        "tree view off"
                    } else if self.model.tree.is_some() {
                        "tree view: children under their parents (PM's tree)"
                    } else {
                        "tree view: no process tree yet (it comes from pm)"
                    }
                    .into(),
                );
            }
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

    /// A key of the services view: cursor movement, `v`/Esc back to the tasks, a service
    /// action on the selected service; None for the keys both views share.
    fn services_key(&mut self, code: KeyCode) -> Option<Action> {
        let last = self.services().len().saturating_sub(1);
        match code {
            KeyCode::Char('v') | KeyCode::Esc => {
                self.services_view = false;
                self.note = Some("tasks view".into());
            }
            KeyCode::Up | KeyCode::Char('k') => {
                self.service_cursor = self.service_cursor.min(last).saturating_sub(1)
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.service_cursor = (self.service_cursor + 1).min(last)
            }
            KeyCode::Home => self.service_cursor = 0,
            KeyCode::End => self.service_cursor = last,
            KeyCode::Enter => {}
            KeyCode::Char('P') => match self.selected_service() {
                Some(service) => {
                    self.update_prompt = Some((service.index, service.name.clone(), String::new()))
                }
                None => self.note = Some("update: no service selected".into()),
            },
            code => {
                let action = service_action_for_key(code)?;
                let Some(service) = self.selected_service() else {
                    self.note = Some(format!(
                        "{}: no service selected ({})",
                        action.label(),
                        if self.no_rs {
                            "no reincarnation server runs"
                        } else {
                            "no list from rs yet"
                        }
                    ));
                    return Some(Action::None);
                };
                let (index, name) = (service.index, service.name.clone());
                return Some(self.send_service_command(action, index, name));
            }
        }
        Some(Action::None)
    }

    /// The service whose running instance is process `pid`, if RS listed one.
    fn service_of(&self, pid: u32) -> Option<&vigil_wire::ServiceEntry> {
        self.services()
            .iter()
            .find(|service| service.pid == pid && pid != 0)
    }

    fn send_service_command(
        &mut self,
        action: ServiceAction,
        service: u32,
        name: String,
    ) -> Action {
        if !self.live {
            self.note = Some(format!(
                "{} {name}: a replay cannot act on services",
                action.label()
            ));
            return Action::None;
        }
        let request = self.request_id();
        let what = format!("service {} {name}", action.label());
        self.note = Some(format!("{what}: sent, waiting for the answer"));
        self.requests.insert(request, (what, Instant::now()));
        Action::Send(HostFrame::ServiceCommand(ServiceCommand {
            request,
            action,
            service,
        }))
    }

    /// A live update of service `index` (`name`) to `program`, typed at the `P` prompt:
    /// refused here, with a note, for a name the frame cannot carry (empty, over 24 bytes).
    pub fn send_service_update(&mut self, service: u32, name: String, program: &str) -> Action {
        let what = format!("service update {name} {program}");
        if !self.live {
            self.note = Some(format!("{what}: a replay cannot act on services"));
            return Action::None;
        }
        let Some(padded) = ServiceUpdate::padded_program(program) else {
            self.note = Some(format!(
                "update {name}: the program name must be 1 to {UPDATE_PROGRAM_BYTES} bytes"
            ));
            return Action::None;
        };
        let request = self.request_id();
        self.note = Some(format!("{what}: sent, waiting for the answer"));
        self.requests.insert(request, (what, Instant::now()));
        Action::Send(HostFrame::ServiceUpdate(ServiceUpdate {
            request,
            service,
            program: padded,
        }))
    }

    /// The backtrace of `service`'s last failure, if it was an exception the kernel sent a
    /// crash report for (its `Crash` frame, or the exit history a session starts with): the
    /// report of the service's program closest before the failure RS recorded, one line a
    /// frame, symbolised when the tool has the ELFs (raw addresses otherwise).
    pub fn service_backtrace(&self, service: &vigil_wire::ServiceEntry) -> Option<Vec<String>> {
        if service.last_reason != vigil_abi::rs::reason::EXCEPTION {
            return None;
        }
        let crash = self
            .model
            .crashes
            .iter()
            .rev()
            .filter(|crash| crash.kind == vigil_wire::CrashKind::UserFault)
            .filter(|crash| crash.timestamp_ns <= service.last_failure_ns)
            .find(|crash| {
                crash.process.as_ref().is_some_and(|(process, _)| {
                    *process == service.program || *process == service.name
                })
            })?;
        Some(match &self.symbols {
            Some(symbols) => symbols.frames(crash).iter().map(|f| f.text()).collect(),
            None => crate::symbols::crash_frames(crash)
                .into_iter()
                .enumerate()
                .map(|(index, (frame, process))| {
                    vigil_symbolize::format_frame_line(index, frame, process)
                })
                .collect(),
        })
    }

    /// The process of the selected row: its pid and "name (pid N)".
    fn selected_process(&self) -> Option<(u32, String)> {
        let pid = match self.selected()? {
            ui::RowRef::Process(pid) => pid,
            ui::RowRef::Thread(endpoint) => {
                self.model
                    .snapshot()?
                    .threads
                    .iter()
                    .find(|t| t.endpoint == endpoint)?
                    .pid
            }
            ui::RowRef::Idle => return None,
        };
        let name = self.model.labels.process(pid).unwrap_or("?");
        Some((pid, format!("{name} (pid {pid})")))
    }

    fn task_action(&mut self, action: TaskAction) -> Action {
        let Some((pid, target)) = self.selected_process() else {
            self.note = Some(format!(
                "{}: select a process or thread first",
                action.label()
            ));
            return Action::None;
        };
        let Some(process_action) = action_support(action) else {
            // Restart: the service this process is an instance of.
            let Some(service) = self.service_of(pid) else {
                let supervised: Vec<&str> =
                    self.services().iter().map(|s| s.name.as_str()).collect();
                self.note = Some(if supervised.is_empty() {
                    format!(
                        "restart {target}: not a service (no services listed by rs{})",
                        if self.no_rs { ": none runs" } else { "" }
                    )
                } else {
                    format!(
                        "restart {target}: not a service's instance (rs supervises {})",
                        supervised.join(", ")
                    )
                });
                return Action::None;
            };
            let (index, name) = (service.index, service.name.clone());
            return self.send_service_command(ServiceAction::Restart, index, name);
        };
        if !self.live {
            self.note = Some(format!(
                "{} {target}: a replay cannot act on processes",
                action.label()
            ));
            return Action::None;
        }
        if process_action == ProcessAction::Kill {
            self.note = Some(format!(
                "kill {target}? y to confirm, any other key cancels"
            ));
            self.confirm_kill = Some((pid, target));
            return Action::None;
        }
        self.send_process_command(process_action, pid, target)
    }

    fn send_process_command(&mut self, action: ProcessAction, pid: u32, target: String) -> Action {
        let request = self.request_id();
        let what = format!("{} {target}", action.label());
        self.note = Some(format!("{what}: sent, waiting for the answer"));
        self.requests.insert(request, (what, Instant::now()));
        Action::Send(HostFrame::ProcessCommand(ProcessCommand {
            request,
            action,
            pid,
        }))
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
        if app.live && !app.paused {
            if let Some(frame) = app.tree_request_due(Instant::now()) {
                source.send(frame);
            }
            if let Some(frame) = app.service_request_due(Instant::now()) {
                source.send(frame);
            }
            app.expire_requests(Instant::now());
        }
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
