//! The `vigil top` screen rendered into ratatui's TestBackend from the fake kernel's frames.

mod common;

use common::*;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use vigil::source::SourceMsg;
use vigil::top::{ui, Action, App, LogFilter, SortColumn, STEP_NS};
use vigil_wire::HostFrame;

fn app_with_script(live: bool) -> App {
    let mut app = App::new("127.0.0.1:5555", live);
    app.handle(SourceMsg::Connected { at_ns: 0 });
    let bytes = encode(&script());
    // Two chunks, split mid-frame.
    let (a, b) = bytes.split_at(bytes.len() / 2);
    app.handle(SourceMsg::Data {
        at_ns: 1_000_000,
        bytes: a.to_vec(),
    });
    app.handle(SourceMsg::Data {
        at_ns: 2_000_000,
        bytes: b.to_vec(),
    });
    app.now_ns = 502_000_000;
    app
}

fn screen(app: &App, width: u16, height: u16) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|frame| ui::render(frame, app)).unwrap();
    let buffer = terminal.backend().buffer().clone();
    (0..height)
        .map(|y| {
            (0..width)
                .map(|x| buffer[(x, y)].symbol().to_string())
                .collect::<String>()
        })
        .collect()
}

fn row<'a>(lines: &'a [String], needle: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no row with {needle:?}:\n{}", lines.join("\n")))
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

#[test]
fn shows_processes_threads_wait_targets_alerts_log_and_status() {
    let app = app_with_script(true);
    let lines = screen(&app, 170, 44);
    let text = lines.join("\n");

    // Header.
    assert!(lines[0].contains("kernel fake-kernel 0.1"), "{}", lines[0]);
    assert!(
        lines[0].contains("5 processes, 6 threads") && lines[0].contains("cpu busy 98.0%"),
        "{}",
        lines[0]
    );

    // Process rows with name, pid, threads, memory (RES, VIRT, SHR), CPU%.
    let spinner = row(&lines, "spinner   ");
    assert!(
        spinner.contains(" 4 ") && spinner.contains("64K") && spinner.contains("95.0"),
        "{spinner}"
    );
    let locker = row(&lines, "locker  ");
    assert!(
        locker.contains("1.2M") && locker.contains("2 blocked"),
        "{locker}"
    );

    // Thread rows with their state and wait target by name.
    assert!(row(&lines, "client#2").contains("sendrec → server#3"));
    assert!(row(&lines, "server#3").contains("recv ← ANY"));
    assert!(row(&lines, "locker#5").contains("mutex 0x4010 owned by locker#6"));
    assert!(row(&lines, "sleeper#7").contains("sleep 12 ms"));
    let client_rates = row(&lines, "client#2");
    assert!(
        client_rates.contains("1.0") && client_rates.contains("100"),
        "cpu 1%, 100 switches/s, 100 msgs/s: {client_rates}"
    );

    // Sorted by CPU: spinner first.
    let first_process = lines.iter().position(|l| l.contains("spinner   ")).unwrap();
    let client_process = lines.iter().position(|l| l.contains("client    ")).unwrap();
    assert!(first_process < client_process, "{text}");
    assert!(text.contains("CPU%▼"));

    // Alerts pane and event log.
    // Two alerts and the crash, which stays in this pane whatever the event log shows.
    assert!(text.contains("alerts (3)"), "{text}");
    assert!(
        text.contains("✖ CRASH user-fault in crasher (pid 9)"),
        "{text}"
    );
    assert!(
        text.contains("deadlock: locker#5 → mutex 0x4010 owned by locker#6"),
        "{text}"
    );
    assert!(text.contains("cpu hog: spinner#4"), "{text}");
    assert!(
        text.contains("CRASH user-fault in crasher (pid 9)"),
        "{text}"
    );
    assert!(text.contains("lost 2 events"), "{text}");

    // Status line with link health, help line with keys.
    let status = &lines[lines.len() - 2];
    assert!(status.contains("connected to 127.0.0.1:5555"), "{status}");
    assert!(status.contains("drops 3 events 1 frames"), "{status}");
    assert!(
        status.contains("checksum errors 0") && status.contains("lost events 2"),
        "{status}"
    );
    assert!(status.contains("last frame 0.5 s ago"), "{status}");
    let help = &lines[lines.len() - 1];
    assert!(
        help.contains("q quit") && help.contains("r reverse") && help.contains("n snapshot now"),
        "{help}"
    );
}

#[test]
fn waiting_status_and_empty_screen() {
    let mut app = App::new("127.0.0.1:5555", true);
    app.handle(SourceMsg::Waiting {
        error: "cannot connect to 127.0.0.1:5555: connection refused; retrying every 500 ms".into(),
    });
    let lines = screen(&app, 200, 24);
    assert!(lines[0].contains("no snapshot yet"));
    assert!(
        lines[22].contains(
            "waiting for kernel at 127.0.0.1:5555… (connection refused; retrying every 500 ms)"
        ),
        "{}",
        lines[22]
    );
    assert!(lines.join("\n").contains("no active alerts"));
}

#[test]
fn keys_sort_filter_and_quit() {
    let mut app = app_with_script(true);
    assert_eq!(app.sort, SortColumn::Cpu);
    app.key(key(KeyCode::Char('s')));
    assert_eq!(app.sort, SortColumn::Memory);
    let lines = screen(&app, 170, 44);
    let locker = lines.iter().position(|l| l.contains("locker  ")).unwrap();
    let server = lines.iter().position(|l| l.contains("server    ")).unwrap();
    assert!(locker < server, "largest memory first");
    app.key(key(KeyCode::Char('r')));
    let lines = screen(&app, 170, 44);
    let locker = lines.iter().position(|l| l.contains("locker  ")).unwrap();
    let sleeper = lines.iter().position(|l| l.contains("sleeper   ")).unwrap();
    assert!(sleeper < locker, "reversed: smallest first");
    assert!(lines.join("\n").contains("RES▲"));
    app.key(key(KeyCode::Char('r')));
    app.key(key(KeyCode::Char('s')));
    assert_eq!(app.sort, SortColumn::Virtual);
    let lines = screen(&app, 170, 44);
    assert!(lines.join("\n").contains("VIRT▼"));
    let locker = lines.iter().position(|l| l.contains("locker  ")).unwrap();
    let server = lines.iter().position(|l| l.contains("server    ")).unwrap();
    assert!(locker < server, "largest virtual size first");
    app.key(key(KeyCode::Char('S')));
    app.key(key(KeyCode::Char('S')));
    assert_eq!(app.sort, SortColumn::Cpu);

    app.key(key(KeyCode::Char('f')));
    assert_eq!(app.log_filter, LogFilter::NoSwitches);
    app.key(key(KeyCode::Char('f')));
    let text = screen(&app, 170, 44).join("\n");
    assert!(!text.contains("from=spinner#4"), "switches hidden");
    assert!(text.contains("events (important)"));

    assert_eq!(
        app.key(key(KeyCode::Char('n'))),
        Action::Send(HostFrame::SnapshotNow)
    );
    assert!(!app.quit);
    app.key(key(KeyCode::Char('q')));
    assert!(app.quit);
}

#[test]
fn replay_status() {
    let mut app = App::new("replay session.vrec", false);
    app.handle(SourceMsg::Connected { at_ns: 0 });
    app.handle(SourceMsg::Data {
        at_ns: 5,
        bytes: encode(&script()),
    });
    app.handle(SourceMsg::End);
    let lines = screen(&app, 200, 30);
    assert!(
        lines[28].contains("replay session.vrec finished"),
        "{}",
        lines[28]
    );
    assert!(!lines[29].contains("snapshot now"));
    assert_eq!(app.key(key(KeyCode::Char('n'))), Action::None);
}

/// With `--kernel-elf`, each frame of a crash's backtrace follows the crash line in the event
/// log, symbolised (this test binary stands in for the kernel ELF).
#[test]
fn crash_backtraces_are_symbolised_into_the_event_log() {
    use vigil::model::LogCategory;
    use vigil::symbols::CrashSymbols;
    use vigil_wire::CrashKind;

    let address = marker_address();
    let frames = vec![
        hello(),
        crash_with(CrashKind::KernelFault, None, vec![address, address + 1]),
        log_line(),
    ];
    let mut app = App::new("127.0.0.1:5555", true);
    app.symbols =
        CrashSymbols::load(Some(&this_binary()), None, &workspace_root()).expect("test binary");
    assert!(app.symbols.is_some());
    app.handle(SourceMsg::Connected { at_ns: 0 });
    app.handle(SourceMsg::Data {
        at_ns: 5,
        bytes: encode(&frames),
    });
    let log: Vec<_> = app.model.log().collect();
    let crash = log
        .iter()
        .position(|entry| entry.text.starts_with("CRASH kernel-fault"))
        .unwrap_or_else(|| panic!("a crash line in {log:#?}"));
    let marker = "tui::common::marker_function_for_symbols at tools/vigil/tests/common/mod.rs:";
    let pc = &log[crash + 1];
    assert_eq!(pc.category, LogCategory::Crash);
    assert!(
        pc.text
            .starts_with(&format!("  #0 pc  {address:#018x} {marker}")),
        "{pc:?}"
    );
    let ret = &log[crash + 2];
    assert!(
        ret.text
            .starts_with(&format!("  #1 ret {:#018x} {marker}", address + 1)),
        "{ret:?}"
    );
    // The frames come right after their crash, before what the kernel sent next.
    assert!(log[crash + 3].text.contains("fake kernel up"), "{log:#?}");
    let lines = screen(&app, 200, 40);
    let screen = lines.join("\n");
    assert!(screen.contains("marker_function_for_symbols"), "{screen}");
    // The crash is an alert: counted in the alerts pane, with where it happened.
    assert!(screen.contains("alerts (1)"), "{screen}");
    let crash_line = lines
        .iter()
        .position(|l| l.contains("✖ CRASH kernel-fault"))
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(
        lines[crash_line + 1].contains("#0 pc")
            && lines[crash_line + 1].contains("marker_function"),
        "{}",
        lines[crash_line + 1]
    );
}

fn press(app: &mut App, codes: &[KeyCode]) {
    for code in codes {
        app.key(key(*code));
    }
}

/// Moves the cursor onto `target` with the arrow keys.
fn select(app: &mut App, target: ui::RowRef) {
    press(app, &[KeyCode::Home]);
    let index = app
        .rows()
        .iter()
        .position(|r| *r == target)
        .unwrap_or_else(|| panic!("{target:?} not in {:?}", app.rows()));
    for _ in 0..index {
        press(app, &[KeyCode::Down]);
    }
    assert_eq!(app.selected(), Some(target));
}

#[test]
fn at_80x24_columns_drop_but_name_cpu_and_state_stay() {
    let app = app_with_script(true);
    let lines = screen(&app, 80, 24);
    let text = lines.join("\n");
    let header = row(&lines, "NAME");
    for kept in ["NAME", "CPU%", "PID", "TIME+", "RES", "VIRT", "STATE"] {
        assert!(header.contains(kept), "{kept} kept at 80 columns: {header}");
    }
    for dropped in ["IPC/s", "CTX/s"] {
        assert!(
            !header.contains(dropped),
            "{dropped} dropped at 80 columns: {header}"
        );
    }
    // The state column is wide enough for a wait target, not cut to "1 blo".
    assert!(
        row(&lines, "locker#5").contains("mutex 0x4010 owned by"),
        "{text}"
    );
    assert!(row(&lines, "locker  ").contains("2 blocked"), "{text}");
    assert!(
        row(&lines, "client#2").contains("sendrec → server#3"),
        "{text}"
    );
    assert!(lines[0].contains("up 4.0 s"), "{}", lines[0]);
    assert!(lines[1].starts_with("CPU ["), "{}", lines[1]);
    assert!(lines[23].contains("? help"), "{}", lines[23]);
}

#[test]
fn at_200x50_every_column_the_idle_row_and_the_meters() {
    let app = app_with_script(true);
    let lines = screen(&app, 200, 50);
    let header = row(&lines, "NAME");
    for column in [
        "NAME", "PID", "PRI", "THR", "RES", "VIRT", "SHR", "CPU%▼", "TIME+", "CTX/s", "IPC/s",
        "STATE",
    ] {
        assert!(header.contains(column), "{column}: {header}");
    }
    let idle = row(&lines, "[idle]");
    assert!(
        idle.contains("2.0") && idle.contains("0:00.08"),
        "idle share and time: {idle}"
    );
    let spinner = row(&lines, "└ spinner#4");
    assert!(spinner.contains("0:03.80"), "TIME+ of 3.8 s: {spinner}");
    assert!(
        lines[1].contains("MEM 1.7 MiB mapped by 5 processes"),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].contains("not reported by this kernel"),
        "{}",
        lines[1]
    );
    assert!(ui::time_plus(61_250_000_000) == "1:01.25");
    // htop-like memory figures, at most 5 characters.
    for (bytes, text) in [
        (0, "0"),
        (4096, "4K"),
        (1023 * 1024, "1023K"),
        (1024 * 1024, "1.0M"),
        (5_423_104, "5.2M"),
        (300 << 20, "300M"),
        (3 << 29, "1.5G"),
        (12 << 30, "12G"),
    ] {
        assert_eq!(ui::compact_bytes(bytes), text);
    }
    let locker = row(&lines, "locker  ");
    assert!(
        locker.contains("1.2M") && locker.contains("5.2M") && locker.contains("148K"),
        "RES, VIRT and SHR of locker: {locker}"
    );
    assert!(ui::uptime_text(3_725_000_000_000) == "1:02:05");
}

#[test]
fn sort_arrow_tells_ascending_from_descending() {
    let mut app = app_with_script(true);
    assert!(
        screen(&app, 200, 50).join("\n").contains("CPU%▼"),
        "largest first"
    );
    press(&mut app, &[KeyCode::Char('S'), KeyCode::Char('S')]);
    assert_eq!(app.sort, SortColumn::Name);
    let text = screen(&app, 200, 50).join("\n");
    assert!(text.contains("NAME▲"), "names A first: ascending");
    press(&mut app, &[KeyCode::Char('r')]);
    assert!(screen(&app, 200, 50).join("\n").contains("NAME▼"));
}

#[test]
fn help_screen_opens_and_any_key_closes_it() {
    let mut app = app_with_script(true);
    press(&mut app, &[KeyCode::Char('?')]);
    let text = screen(&app, 80, 24).join("\n");
    assert!(text.contains("vigil top: keys"), "{text}");
    assert!(text.contains("search"), "{text}");
    press(&mut app, &[KeyCode::Char('j')]);
    assert!(!app.help);
    assert!(!app.quit, "closing help does not quit");
    assert!(!screen(&app, 80, 24).join("\n").contains("vigil top: keys"));
}

#[test]
fn cursor_and_detail_view_show_counters_and_the_wait_chain() {
    let mut app = app_with_script(true);
    select(&mut app, ui::RowRef::Thread(LOCK_A));
    press(&mut app, &[KeyCode::Enter]);
    assert!(app.detail);
    let text = screen(&app, 200, 50).join("\n");
    assert!(text.contains("detail: thread locker#5"), "{text}");
    for counter in [
        "syscalls",
        "kernel calls",
        "page faults",
        "notifications",
        "voluntary",
        "priority 4",
    ] {
        assert!(text.contains(counter), "{counter}: {text}");
    }
    assert!(
        text.contains("wait chain: locker#5 (mutex 0x4010 owned by locker#6) → locker#6 (mutex 0x4020 owned by locker#5) → back to locker#5: a deadlock"),
        "{text}"
    );
    assert!(text.contains("recent events"), "{text}");
    // A chain that ends: client → server, which receives from anyone.
    let chain = ui::wait_chain(&app, CLIENT);
    assert_eq!(
        chain,
        ["client#2 (sendrec → server#3)", "server#3 (recv ← ANY)"]
    );
    press(&mut app, &[KeyCode::Esc]);
    assert!(!app.detail && !app.quit, "Esc closes the detail first");

    select(&mut app, ui::RowRef::Process(5));
    press(&mut app, &[KeyCode::Enter]);
    let text = screen(&app, 200, 50).join("\n");
    assert!(text.contains("process locker · pid 5"), "{text}");
    assert!(text.contains("grants"), "{text}");
    assert!(
        text.contains(
            "resident 1.2 MiB (300 pages, peak 1.5 MiB) · virtual 5.2 MiB · shared 148 KiB"
        ),
        "{text}"
    );
    assert!(
        text.contains("page faults to VM 303 (300 not present, 3 protection)"),
        "{text}"
    );
}

#[test]
fn search_filters_the_table_and_esc_clears_it() {
    let mut app = app_with_script(true);
    press(&mut app, &[KeyCode::Char('/')]);
    for c in "lock".chars() {
        press(&mut app, &[KeyCode::Char(c)]);
    }
    assert!(screen(&app, 80, 24)
        .last()
        .unwrap()
        .contains("search: /lock"));
    press(&mut app, &[KeyCode::Enter]);
    assert_eq!(app.filter.as_deref(), Some("lock"));
    let text = screen(&app, 200, 50).join("\n");
    assert!(text.contains("filter \"lock\""), "{text}");
    assert!(text.contains("locker#6"), "{text}");
    assert!(!text.contains("└ spinner#4"), "other tasks hidden: {text}");
    assert!(!text.contains("[idle]"), "{text}");
    assert_eq!(app.rows().len(), 3, "locker and its two threads");
    // Keys typed into the search are text, not commands.
    press(
        &mut app,
        &[KeyCode::Char('/'), KeyCode::Char('q'), KeyCode::Esc],
    );
    assert!(!app.quit);
    press(&mut app, &[KeyCode::Esc]);
    assert_eq!(app.filter, None);
    assert!(!app.quit);
    assert!(app.rows().len() > 3);
}

#[test]
fn pause_and_replay_step_and_speed() {
    let mut live = app_with_script(true);
    assert_eq!(live.key(key(KeyCode::Char('p'))), Action::Pause(true));
    assert!(screen(&live, 80, 24)[0].contains("PAUSED"));
    assert_eq!(
        live.key(key(KeyCode::Char('.'))),
        Action::None,
        "no steps live"
    );
    assert_eq!(live.key(key(KeyCode::Char('p'))), Action::Pause(false));

    let mut replay = App::new("replay x.vrec", false);
    assert_eq!(
        replay.key(key(KeyCode::Char('.'))),
        Action::Pause(true),
        "first . pauses"
    );
    assert_eq!(replay.key(key(KeyCode::Char('.'))), Action::Step(STEP_NS));
    assert_eq!(replay.key(key(KeyCode::Char('+'))), Action::Speed(2.0));
    assert_eq!(replay.key(key(KeyCode::Char('-'))), Action::Speed(1.0));
    assert_eq!(replay.key(key(KeyCode::Char('-'))), Action::Speed(0.5));
    assert!(screen(&replay, 80, 24)[0].contains("×0.5"));
}

/// Feeds `frames` to the app as live data.
fn feed(app: &mut App, frames: &[vigil_wire::KernelFrame]) {
    let mut bytes = Vec::new();
    for frame in frames {
        vigil_wire::encode_kernel_frame(frame, &mut bytes);
    }
    app.handle(SourceMsg::Data {
        at_ns: 3_000_000,
        bytes,
    });
}

fn sent_command(action: Action) -> vigil_wire::ProcessCommand {
    match action {
        Action::Send(HostFrame::ProcessCommand(command)) => command,
        other => panic!("expected a process command, got {other:?}"),
    }
}

fn answer(request: u32, outcome: u8, message: &str) -> vigil_wire::KernelFrame {
    vigil_wire::KernelFrame::ProcessResult(vigil_wire::ProcessResult {
        request,
        outcome,
        message: message.into(),
    })
}

#[test]
fn kill_asks_first_and_shows_pm_s_answer() {
    let mut app = app_with_script(true);
    press(&mut app, &[KeyCode::Char('x')]);
    assert!(
        app.note
            .as_deref()
            .unwrap()
            .contains("select a process or thread"),
        "the idle row is no target: {:?}",
        app.note
    );
    select(&mut app, ui::RowRef::Process(4));
    assert_eq!(
        app.key(key(KeyCode::Char('x'))),
        Action::None,
        "nothing is sent before the confirmation"
    );
    let note = app.note.clone().unwrap();
    assert!(
        note.contains("kill spinner (pid 4)? y to confirm"),
        "{note}"
    );
    assert!(screen(&app, 200, 50)
        .last()
        .unwrap()
        .contains("y to confirm"));
    // Any other key cancels.
    assert_eq!(app.key(key(KeyCode::Char('n'))), Action::None);
    assert!(app.note.as_deref().unwrap().contains("cancelled"));
    assert!(app.requests.is_empty());
    // x then y sends the kill of pid 4.
    press(&mut app, &[KeyCode::Char('x')]);
    let kill = sent_command(app.key(key(KeyCode::Char('y'))));
    assert_eq!(kill.action, vigil_wire::ProcessAction::Kill);
    assert_eq!(kill.pid, 4);
    assert!(app
        .note
        .as_deref()
        .unwrap()
        .contains("waiting for the answer"));
    // PM's answer is shown in the status line, success ...
    feed(
        &mut app,
        &[answer(
            kill.request,
            0,
            "killed spinner (pid 4), exit status 137",
        )],
    );
    let note = app.note.clone().unwrap();
    assert_eq!(
        note,
        "kill spinner (pid 4): ok — killed spinner (pid 4), exit status 137"
    );
    assert!(screen(&app, 200, 50)
        .last()
        .unwrap()
        .contains("exit status 137"));
    // The status line keeps it after the next key clears the note.
    press(&mut app, &[KeyCode::Down]);
    let lines = screen(&app, 200, 50);
    assert!(
        lines[lines.len() - 2].contains("kill spinner (pid 4): ok"),
        "{}",
        lines[lines.len() - 2]
    );
    assert!(app.requests.is_empty());
    // ... or PM's error text.
    select(&mut app, ui::RowRef::Process(3));
    press(&mut app, &[KeyCode::Char('x')]);
    let kill = sent_command(app.key(key(KeyCode::Char('Y'))));
    assert_eq!(kill.pid, 3);
    feed(
        &mut app,
        &[answer(
            kill.request,
            2,
            "vm (pid 3) serves page faults: not killed",
        )],
    );
    assert_eq!(
        app.note.as_deref(),
        Some("kill server (pid 3): refused — vm (pid 3) serves page faults: not killed")
    );
    // An answer to someone else's request changes nothing.
    feed(&mut app, &[answer(999, 0, "not ours")]);
    assert!(app.note.as_deref().unwrap().contains("refused"));
}

#[test]
fn stop_and_continue_go_at_once_and_a_thread_row_targets_its_process() {
    let mut app = app_with_script(true);
    select(&mut app, ui::RowRef::Process(4));
    let stop = sent_command(app.key(key(KeyCode::Char('z'))));
    assert_eq!(
        (stop.action, stop.pid),
        (vigil_wire::ProcessAction::Stop, 4)
    );
    feed(
        &mut app,
        &[answer(stop.request, 3, "stop needs runctl (PmStop)")],
    );
    assert_eq!(
        app.note.as_deref(),
        Some("stop spinner (pid 4): not supported — stop needs runctl (PmStop)")
    );
    // The second locker thread belongs to pid 5.
    let thread = app
        .rows()
        .into_iter()
        .filter(|r| matches!(r, ui::RowRef::Thread(_)))
        .find(|r| {
            let ui::RowRef::Thread(endpoint) = r else {
                return false;
            };
            app.model.labels.thread(*endpoint).starts_with("locker#")
        })
        .unwrap();
    select(&mut app, thread);
    let resume = sent_command(app.key(key(KeyCode::Char('c'))));
    assert_eq!(
        (resume.action, resume.pid),
        (vigil_wire::ProcessAction::Continue, 5)
    );
    assert_ne!(resume.request, stop.request, "each request has its own id");
    // An unknown outcome code is shown by number; no answer at all is given up on.
    feed(&mut app, &[answer(resume.request, 42, "")]);
    assert_eq!(
        app.note.as_deref(),
        Some("continue locker (pid 5): outcome 42")
    );
    press(&mut app, &[KeyCode::Char('x'), KeyCode::Char('y')]);
    let later = std::time::Instant::now() + vigil::top::ANSWER_TIMEOUT;
    app.expire_requests(later);
    assert!(
        app.note
            .as_deref()
            .unwrap()
            .contains("no answer from the kernel"),
        "{:?}",
        app.note
    );
    // Restart is for services, and RS has listed none; a replay acts on nothing.
    press(&mut app, &[KeyCode::Char('R')]);
    assert!(app
        .note
        .as_deref()
        .unwrap()
        .starts_with("restart locker (pid 5)"));
    assert!(app.note.as_deref().unwrap().contains("not a service"));
    let mut replay = app_with_script(false);
    select(&mut replay, ui::RowRef::Process(4));
    assert_eq!(replay.key(key(KeyCode::Char('z'))), Action::None);
    assert!(replay.note.as_deref().unwrap().contains("a replay cannot"));
}

#[test]
fn the_tree_from_pm_gives_ppid_and_the_tree_view() {
    let mut app = app_with_script(true);
    let now = std::time::Instant::now();
    // A live top asks for the tree once a period, one request at a time.
    let Some(HostFrame::ProcessTreeNow { request }) = app.tree_request_due(now) else {
        panic!("no tree request")
    };
    assert_eq!(app.tree_request_due(now + vigil::top::TREE_PERIOD), None);
    let lines = screen(&app, 200, 50);
    assert!(row(&lines, "PID").contains("PPID"));
    assert!(
        !row(&lines, "sleeper ").contains(" 2 "),
        "no PPID before PM's tree: {}",
        row(&lines, "sleeper ")
    );
    let entry = |pid, parent, name: &str| vigil_wire::ProcessTreeEntry {
        pid,
        parent,
        state: 1,
        name: name.into(),
        ..Default::default()
    };
    // client (2) started spinner (4), which started sleeper (6); locker (5) was orphaned
    // to a PM that is not in the snapshot.
    feed(
        &mut app,
        &[vigil_wire::KernelFrame::ProcessTree(
            vigil_wire::ProcessTree {
                request,
                timestamp_ns: 1,
                manager: 77,
                processes: vec![
                    entry(4, 2, "spinner"),
                    entry(6, 4, "sleeper"),
                    entry(5, 77, "locker"),
                ],
            },
        )],
    );
    assert!(app.tree_request.is_none(), "answered");
    let later = now + vigil::top::TREE_PERIOD;
    let Some(HostFrame::ProcessTreeNow { request: second }) = app.tree_request_due(later) else {
        panic!("no second tree request")
    };
    assert_eq!(app.model.parent_of(6), Some(4));
    assert_eq!(app.model.parent_of(3), None, "the kernel started server");
    let lines = screen(&app, 200, 50);
    let sleeper = row(&lines, "sleeper ");
    assert!(
        sleeper.contains(" 6 ") && sleeper.contains(" 4 "),
        "{sleeper}"
    );

    press(&mut app, &[KeyCode::Char('t')]);
    assert!(app.tree_view);
    let processes: Vec<ui::RowRef> = app
        .rows()
        .into_iter()
        .filter(|r| matches!(r, ui::RowRef::Process(_)))
        .collect();
    let position = |pid| {
        processes
            .iter()
            .position(|r| *r == ui::RowRef::Process(pid))
            .unwrap()
    };
    assert!(position(2) < position(4) && position(4) < position(6));
    let lines = screen(&app, 200, 50);
    assert!(
        row(&lines, "└─ spinner").contains(" 4 "),
        "spinner under client"
    );
    assert!(
        row(&lines, "  └─ sleeper").contains(" 6 "),
        "sleeper two deep"
    );
    assert!(row(&lines, "tasks (").contains("tree"));
    // Without PM, the tree (and every PPID) goes, and top asks less often.
    feed(&mut app, &[answer(second, 6, "no process manager")]);
    assert!(app.model.tree.is_none());
    assert!(app.no_pm);
    assert_eq!(app.tree_request_due(later + vigil::top::TREE_PERIOD), None);
    assert!(app
        .tree_request_due(later + vigil::top::NO_PM_TREE_PERIOD)
        .is_some());
    assert!(
        !screen(&app, 200, 50)
            .join("\n")
            .contains("no process manager"),
        "a tree request's answer is not logged"
    );
    press(&mut app, &[KeyCode::F(5)]);
    assert!(!app.tree_view);
}

#[test]
fn the_memory_meter_shows_used_of_total_when_the_kernel_reports_it() {
    let mut app = app_with_script(true);
    let memory = vigil_wire::KernelFrame::Memory(vigil_wire::MemoryReport {
        timestamp_ns: 4_000_000_000,
        total_frames: 65_536,
        free_frames: 49_152,
        frame_bytes: 4096,
    });
    app.handle(SourceMsg::Data {
        at_ns: 3_000_000,
        bytes: encode(&[memory]),
    });
    for (width, height) in [(80, 24), (200, 50)] {
        let lines = screen(&app, width, height);
        assert!(
            lines[1].contains("MEM [|||") && lines[1].contains("64.0 MiB/256.0 MiB"),
            "{width}x{height}: {}",
            lines[1]
        );
        assert!(!lines[1].contains("not reported"), "{}", lines[1]);
    }
    let wide = screen(&app, 200, 50);
    assert!(
        wide[1].contains("(1.7 MiB mapped by 5 processes)"),
        "{}",
        wide[1]
    );
}

#[test]
fn a_stopped_process_says_who_stopped_it() {
    let mut app = app_with_script(true);
    let mut snapshot = app.model.snapshot().unwrap().clone();
    snapshot.generation += 1;
    snapshot.timestamp_ns += 1_000_000_000;
    let stopper = snapshot
        .processes
        .iter()
        .find(|p| p.pid == 3)
        .unwrap()
        .name
        .clone();
    snapshot
        .processes
        .iter_mut()
        .find(|p| p.pid == 4)
        .unwrap()
        .stopped_by = 3;
    feed(
        &mut app,
        &[vigil_wire::KernelFrame::Snapshot(snapshot.clone())],
    );
    let wanted = format!("stopped by {stopper} (pid 3)");
    let lines = screen(&app, 200, 50);
    let row = lines
        .iter()
        .find(|line| line.contains("spinner") && line.contains(" 4 "))
        .unwrap_or_else(|| panic!("no row of pid 4: {lines:#?}"));
    assert!(row.contains(&wanted), "{row}");
    select(&mut app, ui::RowRef::Process(4));
    press(&mut app, &[KeyCode::Enter]);
    let detail = screen(&app, 200, 50).join("\n");
    assert!(
        detail.contains(&format!("{wanted}: its threads do not run")),
        "{detail}"
    );
    // Continued: the mark goes with the next snapshot.
    snapshot.generation += 1;
    snapshot.timestamp_ns += 1_000_000_000;
    snapshot.processes.iter_mut().for_each(|p| p.stopped_by = 0);
    feed(&mut app, &[vigil_wire::KernelFrame::Snapshot(snapshot)]);
    press(&mut app, &[KeyCode::Esc]);
    assert!(!screen(&app, 200, 50).join("\n").contains("stopped by"));
}

fn service(index: u32, name: &str, state: u8, pid: u32, restarts: u64) -> vigil_wire::ServiceEntry {
    vigil_wire::ServiceEntry {
        index,
        name: name.into(),
        program: name.into(),
        version: 1,
        state,
        pid,
        restarts,
        ..Default::default()
    }
}

#[test]
fn the_services_view_lists_rs_s_services_and_sends_service_commands() {
    let mut app = app_with_script(true);
    let now = std::time::Instant::now();
    let Some(HostFrame::ServiceListNow { request }) = app.service_request_due(now) else {
        panic!("no service-list request")
    };
    assert_eq!(
        app.service_request_due(now + vigil::top::SERVICE_PERIOD),
        None,
        "one at a time"
    );
    press(&mut app, &[KeyCode::Char('v')]);
    assert!(app.services_view);
    let text = screen(&app, 170, 44).join("\n");
    assert!(text.contains("no service list yet"), "{text}");
    // A service command before any list names nothing.
    press(&mut app, &[KeyCode::Char('R')]);
    assert!(app.note.as_deref().unwrap().contains("no service selected"));

    let mut crashed = service(1, "crashy", 3, 0, 4);
    crashed.last_reason = vigil_abi::rs::reason::EXCEPTION;
    crashed.last_detail = 14;
    crashed.last_failure_ns = 1_500_000_000;
    crashed.failures_in_a_row = 5;
    feed(
        &mut app,
        &[vigil_wire::KernelFrame::ServiceList(
            vigil_wire::ServiceList {
                request,
                timestamp_ns: 2_000_000_000,
                supervisor: 3,
                services: vec![service(0, "hello_service", 1, 4, 2), crashed],
            },
        )],
    );
    assert!(app.service_request.is_none(), "answered");
    let lines = screen(&app, 170, 44);
    let hello = row(&lines, "hello_service");
    assert!(
        hello.contains("running") && hello.contains(" 4 ") && hello.contains(" 2 "),
        "{hello}"
    );
    let crashy = row(&lines, "crashy ");
    assert!(
        crashy.contains("held-down")
            && crashy.contains("exception #PF (vector 14) at 1.500 s")
            && crashy.contains(" - "),
        "{crashy}"
    );
    assert!(row(&lines, " services (2 listed by rs, pid 3").contains("R restart"));

    // H holds the first (selected) service; ↓ then L releases the second.
    let Action::Send(HostFrame::ServiceCommand(hold)) = app.key(key(KeyCode::Char('H'))) else {
        panic!("H sent nothing")
    };
    assert_eq!(
        (hold.action, hold.service),
        (vigil_wire::ServiceAction::Hold, 0)
    );
    press(&mut app, &[KeyCode::Down, KeyCode::Down]);
    let Action::Send(HostFrame::ServiceCommand(release)) = app.key(key(KeyCode::Char('L'))) else {
        panic!("L sent nothing")
    };
    assert_eq!(
        (release.action, release.service),
        (vigil_wire::ServiceAction::Release, 1)
    );
    // RS's answers go to the status line and make the next list due at once.
    let later = now + std::time::Duration::from_millis(10);
    feed(
        &mut app,
        &[answer(
            hold.request,
            0,
            "hold hello_service: done (state running (held), pid 4, 2 restarts)",
        )],
    );
    assert_eq!(
        app.last_answer.as_ref().map(|(text, ok)| (text.as_str(), *ok)),
        Some((
            "service hold hello_service: ok — hold hello_service: done (state running (held), pid 4, 2 restarts)",
            true
        ))
    );
    assert!(matches!(
        app.service_request_due(later),
        Some(HostFrame::ServiceListNow { .. })
    ));
    feed(
        &mut app,
        &[answer(release.request, 2, "release crashy refused")],
    );
    let status = screen(&app, 170, 44).join("\n");
    assert!(
        status.contains("service release crashy: refused"),
        "{status}"
    );

    // Back in the tasks view, R on hello's instance (pid 4 is "spinner" in the script's
    // snapshot) restarts the service it is an instance of.
    press(&mut app, &[KeyCode::Char('v')]);
    assert!(!app.services_view);
    select(&mut app, ui::RowRef::Process(4));
    let Action::Send(HostFrame::ServiceCommand(restart)) = app.key(key(KeyCode::Char('R'))) else {
        panic!("R on a service's instance sent nothing: {:?}", app.note)
    };
    assert_eq!(
        (restart.action, restart.service),
        (vigil_wire::ServiceAction::Restart, 0)
    );
    select(&mut app, ui::RowRef::Process(5));
    assert_eq!(app.key(key(KeyCode::Char('R'))), Action::None);
    assert!(
        app.note
            .as_deref()
            .unwrap()
            .contains("rs supervises hello_service, crashy"),
        "{:?}",
        app.note
    );
}

#[test]
fn the_services_view_shows_the_last_crash_s_backtrace_and_sends_updates() {
    use vigil_wire::CrashKind;
    let mut app = app_with_script(true);
    let now = std::time::Instant::now();
    let Some(HostFrame::ServiceListNow { request }) = app.service_request_due(now) else {
        panic!("no service-list request")
    };
    let mut crashed = service(1, "crashy", 3, 0, 4);
    crashed.last_reason = vigil_abi::rs::reason::EXCEPTION;
    crashed.last_detail = 14;
    crashed.last_failure_ns = 5_000_000_000;
    // The kernel's crash report of crashy (at 4 s, before RS recorded the failure), and
    // one of another process that must not be taken for it.
    feed(
        &mut app,
        &[
            crash_with(
                CrashKind::UserFault,
                Some("crashy"),
                vec![0x40_1bb5, 0x40_0a95],
            ),
            crash_with(CrashKind::UserFault, Some("other"), vec![0x40_9999]),
            vigil_wire::KernelFrame::ServiceList(vigil_wire::ServiceList {
                request,
                timestamp_ns: 6_000_000_000,
                supervisor: 3,
                services: vec![service(0, "hello_service", 1, 4, 2), crashed],
            }),
        ],
    );
    press(&mut app, &[KeyCode::Char('v')]);
    // hello never crashed: no backtrace pane.
    let text = screen(&app, 170, 44).join("\n");
    assert!(!text.contains("backtrace of the last failure"), "{text}");
    press(&mut app, &[KeyCode::Down]);
    let text = screen(&app, 170, 44).join("\n");
    assert!(
        text.contains("crashy: backtrace of the last failure"),
        "{text}"
    );
    assert!(
        text.contains("#0 pc  0x0000000000401bb5 (crashy)"),
        "{text}"
    );
    assert!(
        text.contains("#1 ret 0x0000000000400a95 (crashy)"),
        "{text}"
    );
    assert!(!text.contains("0x0000000000409999"), "{text}");

    // P prompts for the program; Enter sends the update of the selected service.
    press(&mut app, &[KeyCode::Char('P')]);
    assert!(app.update_prompt.is_some());
    for c in "hello_v2".chars() {
        press(&mut app, &[KeyCode::Char(c)]);
    }
    let text = screen(&app, 170, 44).join("\n");
    assert!(
        text.contains("update crashy to program: hello_v2"),
        "{text}"
    );
    let Action::Send(HostFrame::ServiceUpdate(update)) = app.key(key(KeyCode::Enter)) else {
        panic!("Enter sent no update")
    };
    assert_eq!(update.service, 1);
    assert_eq!(&update.program[..8], b"hello_v2");
    assert!(update.program[8..].iter().all(|&b| b == 0));
    // A name the frame cannot carry is refused here, with a note; Esc cancels a prompt.
    press(&mut app, &[KeyCode::Char('P')]);
    for c in "a_program_name_far_too_long_for_it".chars() {
        press(&mut app, &[KeyCode::Char(c)]);
    }
    assert_eq!(app.key(key(KeyCode::Enter)), Action::None);
    assert!(
        app.note.as_deref().unwrap().contains("1 to 24 bytes"),
        "{:?}",
        app.note
    );
    press(
        &mut app,
        &[KeyCode::Char('P'), KeyCode::Char('x'), KeyCode::Esc],
    );
    assert!(app.update_prompt.is_none());
    assert!(app.note.as_deref().unwrap().contains("cancelled"));
}

#[test]
fn without_rs_the_services_view_says_so_and_asks_less_often() {
    let mut app = app_with_script(true);
    let now = std::time::Instant::now();
    let Some(HostFrame::ServiceListNow { request }) = app.service_request_due(now) else {
        panic!("no service-list request")
    };
    feed(
        &mut app,
        &[answer(
            request,
            vigil_abi::host_command::Outcome::NoServiceManager as u8,
            "no reincarnation server: the system runs without rs",
        )],
    );
    assert!(app.no_rs);
    assert!(
        app.last_answer.is_none(),
        "a periodic list is not one of the user's commands"
    );
    assert_eq!(
        app.service_request_due(now + vigil::top::SERVICE_PERIOD),
        None
    );
    assert!(app
        .service_request_due(now + vigil::top::NO_RS_SERVICE_PERIOD)
        .is_some());
    press(&mut app, &[KeyCode::Char('v')]);
    let text = screen(&app, 170, 44).join("\n");
    assert!(text.contains("no reincarnation server runs"), "{text}");
    let mut replay = app_with_script(false);
    assert_eq!(replay.service_request_due(now), None);
}
