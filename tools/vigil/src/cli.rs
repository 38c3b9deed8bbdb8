//! Command-line interface: argument parsing (clap) and dispatch to the subcommands.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::events::{Format, Limits};
use crate::source::{Address, Source};
use crate::symbols::CrashSymbols;

/// Watch a Vigil kernel from outside: live task manager, event stream, record/replay and
/// trace export over the kernel's monitor channel (COM2, exposed by QEMU as a socket).
#[derive(Debug, Parser)]
#[command(name = "vigil", version, propagate_version = true)]
#[command(
    after_help = "ADDR is HOST:PORT (or tcp:HOST:PORT) for a TCP socket, or unix:PATH for a Unix socket, \
e.g. what `cargo xtask run` prints as the COM2 monitor address.\n\
The tool reconnects on its own when the kernel goes away, so it survives QEMU restarts."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Live terminal task manager: threads by process, state and wait target, CPU %, rates,
    /// alerts, event log and link health.
    Top(TopArgs),
    /// Print one line per event, log line, snapshot, alert, … (text or JSON lines) for scripts.
    Events(EventsArgs),
    /// Store the raw monitor stream with arrival times, for `replay`, `events --replay` and
    /// `export`.
    Record(RecordArgs),
    /// Show a recording in the task manager, with its original timing (or --speed).
    Replay(ReplayArgs),
    /// Convert a recording to a trace file.
    Export(ExportArgs),
    /// Serve Prometheus/OpenMetrics figures of a live kernel on /metrics.
    Metrics(MetricsArgs),
    /// Own the kernel's monitor socket and share its stream with any number of clients
    /// (`top`, `events`, `record`, `metrics` at once): point them at the hub's address.
    Hub(HubArgs),
    /// Act on the reincarnation server's services, like the guest's `service` program:
    /// `list`, `up|down|restart|refresh|hold|release NAME`, `update NAME PROGRAM`.
    Service(ServiceArgs),
}

/// `vigil service`.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    #[command(flatten)]
    pub connect: ConnectArg,
    /// Give up when no answer came within this long.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub timeout: Duration,
    /// `list`, `ACTION NAME` or `update NAME PROGRAM` (PROGRAM: a boot=pm module).
    #[arg(required = true, num_args = 1..=3)]
    pub words: Vec<String>,
}

/// Where a live kernel is.
#[derive(Debug, Args)]
pub struct ConnectArg {
    /// Monitor channel address: HOST:PORT or unix:PATH.
    #[arg(long, short = 'c', value_name = "ADDR", env = "VIGIL_CONNECT", value_parser = Address::parse)]
    pub connect: Address,
}

/// The kernel ELF a build in the current directory leaves (found without `--kernel-elf`).
pub const BUILT_KERNEL_ELF: &str = "target/x86_64-unknown-none/release/vigil-kernel";
/// The user programs a build in the current directory leaves (found without `--programs`).
pub const BUILT_PROGRAMS: &str = "target/user/x86_64-unknown-none/release";

/// Where the ELFs are that crash backtraces are symbolised with. Without the flags, the
/// build's own ELFs under ./target are used when they exist (run from the checkout), so a
/// copied checkout symbolises with its own build; `--no-symbols` keeps raw addresses.
#[derive(Debug, Args)]
pub struct SymbolArgs {
    /// Symbolise kernel frames of crash backtraces with this kernel ELF (with debug info)
    /// [default: ./target/x86_64-unknown-none/release/vigil-kernel if it exists].
    #[arg(long, value_name = "PATH", env = "VIGIL_KERNEL_ELF")]
    pub kernel_elf: Option<PathBuf>,
    /// Symbolise user-fault backtraces with DIR/<process name>
    /// [default: ./target/user/x86_64-unknown-none/release if it exists].
    #[arg(long, value_name = "DIR", env = "VIGIL_PROGRAMS")]
    pub programs: Option<PathBuf>,
    /// Leave backtrace addresses raw (no lookup, not even in ./target).
    #[arg(long, conflicts_with_all = ["kernel_elf", "programs"])]
    pub no_symbols: bool,
}

impl SymbolArgs {
    /// The ELF and directory to use: the flags, else what a build left in `dir`.
    pub fn resolve(&self, dir: &std::path::Path) -> (Option<PathBuf>, Option<PathBuf>) {
        if self.no_symbols {
            return (None, None);
        }
        if self.kernel_elf.is_some() || self.programs.is_some() {
            return (self.kernel_elf.clone(), self.programs.clone());
        }
        let kernel = dir.join(BUILT_KERNEL_ELF);
        let programs = dir.join(BUILT_PROGRAMS);
        (
            kernel.is_file().then_some(kernel),
            programs.is_dir().then_some(programs),
        )
    }

    fn load(&self) -> Result<Option<CrashSymbols>> {
        let (kernel, programs) = self.resolve(&std::env::current_dir().unwrap_or_default());
        CrashSymbols::from_options(kernel.as_deref(), programs.as_deref())
    }
}

const TOP_HELP: &str = "\
Keys (? in the task manager lists them all):
  ↑↓ j k PgUp PgDn Home End  move the cursor      Enter  detail of the selected row
  /  search        s S ← →  sort        r  reverse        f  event log filter
  p space  pause   n  snapshot now      q Esc  quit
  t F5     tree view: processes under their parents (PM's process tree, PPID column)
  x F9     kill the selected process: asks first, y confirms (exit status 137)
  z  c     stop, continue the selected process
  R        restart the service whose instance the selected process is (rs)
  v        services view: rs's services, state, restarts, last failure (v or Esc: back)
           R restart  H hold  L release  D down  U up  F refresh the selected service
           P update it: type the boot=pm program to update to, Enter sends
           (the selected service's last crash backtrace is shown under the table)
Kill, stop and continue go to the kernel as process commands, which it forwards to the
process manager (pm); its answer (ok, refused, no such process, not supported, or the
kernel's no process manager / busy / timed out) is shown in the status line. The PPID column
and the tree come from pm's process tree, asked for once a second; they are blank for
the system servers the kernel started (vm, pm), and when the system runs without pm.
Service commands go the same way to the reincarnation server (rs), whose service list is
asked for once a second (the kernel answers no reincarnation server when there is none).";

#[derive(Debug, Args)]
#[command(after_long_help = TOP_HELP)]
pub struct TopArgs {
    #[command(flatten)]
    pub connect: ConnectArg,
    /// Quit after this long (e.g. 30s, 2m); default: until `q`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    #[command(flatten)]
    pub symbols: SymbolArgs,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["connect", "replay"]))]
#[command(after_long_help = EVENTS_HELP)]
pub struct EventsArgs {
    /// Attach to a live kernel at ADDR (HOST:PORT or unix:PATH).
    #[arg(long, short = 'c', value_name = "ADDR", value_parser = Address::parse)]
    pub connect: Option<Address>,
    /// Read a recording made by `vigil record` instead of a live kernel.
    #[arg(long, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    /// JSON lines: {"type":"event"|"log"|"snapshot"|"alert"|"drops"|"crash"|"exit"|"hello"|"lost"|"command_result", …}.
    /// An "exit" line is a process end (status, crashed); "from_history": true marks one
    /// that happened before this client attached, from the kernel's exit history.
    #[arg(long)]
    pub json: bool,
    /// Print every thread and process of each snapshot instead of a one-line summary.
    #[arg(long)]
    pub snapshots: bool,
    /// Only trace events of this kind (switch, block, unblock, send, receive, notify, syscall,
    /// kcall, interrupt, process-create, process-exit, thread-create, thread-exit, crash, log);
    /// repeat or separate with commas. Other line types are always printed.
    #[arg(long, value_name = "KIND", value_delimiter = ',')]
    pub kind: Vec<String>,
    /// Stop after this long (e.g. 5s, 500ms).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many trace events.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop when the connection closes instead of reconnecting (waits for the first one).
    #[arg(long, conflicts_with = "replay")]
    pub once: bool,
    /// Replay speed: 1 = recorded timing, 2 = twice as fast, 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0, requires = "replay")]
    pub speed: f64,
    /// No connection messages or summary on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[command(flatten)]
    pub symbols: SymbolArgs,
}

#[derive(Debug, Args)]
pub struct RecordArgs {
    #[command(flatten)]
    pub connect: ConnectArg,
    /// File to write (format documented in the `record` module: "VIGILREC", version, then
    /// (u64 host-ns offset, u32 length, bytes) records).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
    /// Stop after this long (e.g. 10s); default: until interrupted (the file stays valid).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop when the connection closes instead of reconnecting (waits for the first one).
    #[arg(long)]
    pub once: bool,
    /// No connection messages or summary on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A recording made by `vigil record`.
    pub file: PathBuf,
    /// 1 = recorded timing, 2 = twice as fast, 0 = as fast as possible.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Quit after this long; default: until `q`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    #[command(flatten)]
    pub symbols: SymbolArgs,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A recording made by `vigil record`.
    pub file: PathBuf,
    /// Write a Chrome trace-event JSON file (open it in ui.perfetto.dev or chrome://tracing).
    #[arg(long, value_name = "OUT.json")]
    pub perfetto: PathBuf,
    #[command(flatten)]
    pub symbols: SymbolArgs,
}

const EVENTS_HELP: &str = "\
Text lines start with the kernel time in seconds. JSON lines (--json) have stable fields:
  hello     protocol_version compatible kernel_version tsc_hz now_ns event_mask snapshot_period_ms
  event     seq ts_ns kind thread endpoint args{…decoded, by kind} raw_args[3]
  lost      first_seq count                  (a gap in event sequence numbers)
  log       seq ts_ns level text
  snapshot  generation ts_ns thread_count process_count blocked busy_percent active_alerts
            (+ threads[…] processes[…] with --snapshots)
  alert     kind(deadlock|hung-chain|cpu-hog|memory-hog|anomaly) first_seen_ns message threads[]
  drops     events_dropped frames_dropped malformed_commands   (kernel-side loss, on change)
  crash     kind ts_ns process pid message backtrace[]
            (+ frames[{index kind(pc|ret) address symbols[{function file line}…]|null}]
            with --kernel-elf/--programs; symbols innermost (inlined) first)
  command_result  ok message
  process_result  request ok outcome outcome_name message   (answer to a process command)
  process_tree    ts_ns request manager processes[{pid parent state exit_status start_ns name arguments}]
  service_list    ts_ns request supervisor services[{index name program version state state_name held pid restarts failures_in_a_row last_reason last_detail last_failure last_failure_ns started_ns}]
Threads are named \"<process>#<slot>\" once a snapshot has named them, \"slot.generation\" before.
Integers above 2^53 - 1 (9007199254740991) are written as decimal strings (e.g. the NONE
endpoint in raw_args, \"18446744073709551614\"), so jq and JavaScript read them exactly.
Lines come in kernel-time order (ts_ns, now_ns; lines without a time sort with the latest
snapshot): each is held until 1 s of later kernel time has arrived (or 1 s passes with no
input), so output trails the kernel by about a second. A line arriving later than that is
printed when it comes. One hello per connection (another after a kernel restart).
Connection messages and a link-health summary go to stderr; stdout of a live session and of
`--replay` of its recording are identical.

Examples:
  vigil events --connect 127.0.0.1:4555 --json --duration 5s
  vigil events --connect unix:/tmp/vigil.sock --kind send,receive --count 100
  vigil events --replay session.vrec --json | jq 'select(.type == \"alert\")'
  vigil events --replay session.vrec --kernel-elf target/x86_64-unknown-none/release/vigil-kernel \\
      --programs target/user/x86_64-unknown-none/release";

#[derive(Debug, Args)]
pub struct MetricsArgs {
    #[command(flatten)]
    pub connect: ConnectArg,
    /// Address to serve HTTP on (port 0 picks a free one; the address is printed on stderr).
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9464")]
    pub listen: String,
    /// Stop after this long; default: until interrupted.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// No connection messages on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, Args)]
#[command(after_long_help = HUB_HELP)]
pub struct HubArgs {
    #[command(flatten)]
    pub connect: ConnectArg,
    /// Where clients attach: HOST:PORT or unix:PATH (port 0 picks a free one; the address
    /// is printed on stderr).
    #[arg(long, short = 'l', value_name = "ADDR", default_value = crate::hub::DEFAULT_LISTEN, value_parser = Address::parse)]
    pub listen: Address,
    /// Stop after this long; default: until interrupted.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// No messages on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

const HUB_HELP: &str = "\
QEMU serves one client per COM2 socket: a second `vigil` on the same socket is accepted by the
operating system but never served (the tool then says so after 2 s). The hub is that one client
and serves everyone else: each client gets every frame (from a frame boundary), its own answers
to its own commands, one Hello per session; a client's bad frames are refused with a failed
command result and never reach the kernel. When the kernel side closes, every client is
disconnected and reconnects by itself. `cargo xtask run` starts a hub on its own.

Example:
  vigil hub --connect 127.0.0.1:4555 --listen 127.0.0.1:4560 &
  vigil top --connect 127.0.0.1:4560        # and, at the same time:
  vigil record --connect 127.0.0.1:4560 -o session.vrec
  vigil metrics --connect 127.0.0.1:4560";

/// Parses "5s", "500ms", "2m", "1h 30m" or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() && seconds >= 0.0 {
            return Ok(Duration::from_secs_f64(seconds));
        }
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}); use e.g. 5s, 500ms, 2m"))
}

fn check_speed(speed: f64) -> Result<f64> {
    if !speed.is_finite() || speed < 0.0 {
        anyhow::bail!("--speed must be a number ≥ 0 (0 = as fast as possible), not {speed}");
    }
    Ok(speed)
}

/// Runs the command line; errors are printed as "vigil: error: …".
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("vigil: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Top(args) => {
            let symbols = args.symbols.load()?;
            crate::top::run(
                Source::connect(args.connect.connect),
                args.duration,
                symbols,
            )
        }
        Command::Events(args) => {
            let symbols = args.symbols.load()?;
            let source = match (args.connect, args.replay) {
                (Some(address), _) => Source::connect(address),
                (None, Some(path)) => Source::replay(&path, check_speed(args.speed)?)?,
                (None, None) => unreachable!("clap requires one input"),
            };
            let format = Format {
                json: args.json,
                full_snapshots: args.snapshots,
                kinds: args.kind,
            };
            crate::events::run(
                source,
                format,
                symbols,
                Limits {
                    duration: args.duration,
                    count: args.count,
                    once: args.once,
                },
                args.quiet,
            )
        }
        Command::Record(args) => crate::record::record(
            Source::connect(args.connect.connect),
            &args.output,
            args.duration,
            args.once,
            args.quiet,
        ),
        Command::Replay(args) => {
            let symbols = args.symbols.load()?;
            let source = Source::replay(&args.file, check_speed(args.speed)?)?;
            crate::top::run(source, args.duration, symbols)
        }
        Command::Metrics(args) => crate::metrics::run(
            Source::connect(args.connect.connect),
            &args.listen,
            args.duration,
            args.quiet,
        ),
        Command::Hub(args) => {
            crate::hub::run(args.connect.connect, args.listen, args.duration, args.quiet)
        }
        Command::Service(args) => {
            let request = crate::service::Request::parse(&args.words)?;
            let text = crate::service::run(
                Source::connect(args.connect.connect),
                &request,
                args.timeout,
            )?;
            println!("{}", text.trim_end());
            Ok(())
        }
        Command::Export(args) => {
            let symbols = args.symbols.load()?;
            let (events, threads) =
                crate::export::export_perfetto(&args.file, &args.perfetto, symbols.as_ref())?;
            eprintln!(
                "vigil: wrote {events} trace events ({threads} thread tracks) to {}",
                args.perfetto.display()
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1").is_err());
    }

    #[test]
    fn symbols_come_from_the_flags_or_the_build_in_the_current_directory() {
        let dir = std::env::temp_dir().join(format!("vigil-symargs-{}", std::process::id()));
        let args = |extra: &[&str]| {
            let mut argv = vec!["vigil", "export", "x.vrec", "--perfetto", "o.json"];
            argv.extend_from_slice(extra);
            match Cli::try_parse_from(argv).unwrap().command {
                Command::Export(export) => export.symbols,
                _ => unreachable!(),
            }
        };
        assert_eq!(args(&[]).resolve(&dir), (None, None), "nothing built here");
        std::fs::create_dir_all(dir.join(BUILT_PROGRAMS)).unwrap();
        std::fs::create_dir_all(dir.join(BUILT_KERNEL_ELF).parent().unwrap()).unwrap();
        std::fs::write(dir.join(BUILT_KERNEL_ELF), b"").unwrap();
        assert_eq!(
            args(&[]).resolve(&dir),
            (
                Some(dir.join(BUILT_KERNEL_ELF)),
                Some(dir.join(BUILT_PROGRAMS))
            ),
            "this checkout's own build"
        );
        assert_eq!(args(&["--no-symbols"]).resolve(&dir), (None, None));
        assert_eq!(
            args(&["--kernel-elf", "/k"]).resolve(&dir),
            (Some(PathBuf::from("/k")), None),
            "a flag wins over the build"
        );
        assert!(Cli::try_parse_from([
            "vigil",
            "export",
            "x",
            "--perfetto",
            "o",
            "--no-symbols",
            "--kernel-elf",
            "/k"
        ])
        .is_err());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn events_needs_exactly_one_input() {
        assert!(Cli::try_parse_from(["vigil", "events"]).is_err());
        assert!(Cli::try_parse_from([
            "vigil",
            "events",
            "--connect",
            "127.0.0.1:1",
            "--replay",
            "x"
        ])
        .is_err());
        assert!(Cli::try_parse_from([
            "vigil",
            "events",
            "--connect",
            "127.0.0.1:1",
            "--json",
            "--duration",
            "2s"
        ])
        .is_ok());
        assert!(Cli::try_parse_from(["vigil", "events", "--connect", "nonsense"]).is_err());
    }
}
