//! The `vigil top` screen rendered into ratatui's TestBackend from the fake kernel's frames.

mod common;

use common::*;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use vigil::source::SourceMsg;
use vigil::top::{ui, Action, App, LogFilter, SortColumn};
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

    // Process rows with name, pid, threads, memory, CPU%.
    let spinner = row(&lines, "spinner   ");
    assert!(
        spinner.contains(" 4 ") && spinner.contains("64 KiB") && spinner.contains("95.0"),
        "{spinner}"
    );
    let locker = row(&lines, "locker  ");
    assert!(
        locker.contains("1.2 MiB") && locker.contains("2 blocked"),
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
    assert!(text.contains("alerts (2)"), "{text}");
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
    assert!(lines.join("\n").contains("MEM▲"));
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
    let screen = screen(&app, 200, 40).join("\n");
    assert!(screen.contains("marker_function_for_symbols"), "{screen}");
}
