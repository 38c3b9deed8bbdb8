//! `cargo xtask run`: boots the kernel with user programs in QEMU for a person at the terminal.
//!
//! COM1 is the console: QEMU's stdout is piped through the symboliser to ours, line by line.
//! COM2 (the monitor channel) is a socket server for the host tool. With `--top`, the host
//! tool's task manager (`vigil top`) owns the terminal instead and the console goes to a log
//! file; quitting the task manager stops QEMU.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::kernel::{self, Profile};
use crate::prereq;
use crate::qemu::{self, Accel, BootModule, Com2, Exit, KernelExit, QemuConfig};
use crate::symbolize::Symbolizer;
use crate::tool;
use crate::user::{self, ProcessMap, ProgramSpec};

/// What `cargo xtask run` was asked for.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub profile: Profile,
    pub kvm: bool,
    pub memory: String,
    pub cmdline: String,
    /// Wait for gdb on this port (and write the gdb script).
    pub gdb: Option<u16>,
    /// COM2; `None` picks a free TCP port on 127.0.0.1.
    pub monitor: Option<Com2>,
    /// A prebuilt kernel ELF to boot instead of building one.
    pub kernel: Option<PathBuf>,
    /// User programs to boot, in order (before `modules`); empty boots none.
    pub programs: Vec<ProgramSpec>,
    /// Raw files handed to the kernel as Multiboot modules, after the programs.
    pub modules: Vec<PathBuf>,
    /// Run `vigil top` on this terminal (console to [`CONSOLE_LOG`]); its exit stops QEMU.
    pub top: bool,
    /// Start a `vigil hub` on COM2 and give clients its address (several tools at once).
    pub hub: bool,
    /// QEMU starts the guest only when a client connects to COM2.
    pub wait_for_monitor: bool,
    /// Record the run (QEMU record/replay) into this directory.
    pub record: Option<PathBuf>,
}

/// Where the console goes with `--top`, relative to the target directory.
pub const CONSOLE_LOG: &str = "vigil-console.log";
/// Where the hub's messages go, relative to the target directory.
pub const HUB_LOG: &str = "vigil-hub.log";

/// The programs booted when `--program` is not given: `hello` greets and exits;
/// `pm_parent` asks PM to spawn `pm_child sleep` and waits for it, so `vigil top` has a
/// process tree to show and a process to stop, continue or kill; RS (a system server, the
/// kernel starts it after VM and PM) supervises `hello_service`, which `hello_load`
/// increments every 100 ms (`--demo` makes it crash and live-update hello every 5 s too,
/// see [`demo_programs`]). `service` is there for RS's operator list (`service -- list`
/// through PM). DS, the data store, boots before RS: hello keeps its counter there and
/// reads it back when it is restarted or updated.
pub const DEFAULT_PROGRAMS: &[&str] = &[
    DS_SERVER,
    RS_SERVER,
    "hello",
    "pm_parent",
    "pm_child boot=pm",
    "hello_service boot=pm",
    "service boot=pm",
    HELLO_LOAD,
];

/// The data store of the default programs (a system server; before RS, whose services read
/// their state back from it as they start).
pub const DS_SERVER: &str = "ds kcalls=safecopy";

/// The reincarnation server of the default programs: hello_service under its default
/// policy (restart at once, then backoff; 100 ms heartbeats), `service` as its operator.
pub const RS_SERVER: &str = "rs kcalls=rs -- operator=service hello_service";

/// `RS_SERVER` with `--demo`: `hello_load` is an operator too, for its live updates.
pub const RS_SERVER_DEMO: &str = "rs kcalls=rs -- operator=service+hello_load hello_service";

/// The default client load of hello_service.
pub const HELLO_LOAD: &str = "hello_load";

/// `HELLO_LOAD` with `--demo`: every 5 s it crashes hello or live-updates it, in turn.
pub const HELLO_LOAD_DEMO: &str = "hello_load -- demo";

/// The versions `--demo`'s updates go to, booted before the load with `--demo` only
/// (`boot=pm`: images PM spawns when RS asks, nothing starts them at boot): two good ones
/// the load alternates between, and one that crashes at its second request after the
/// swap, inside RS's grace period, so its update is rolled back. The names and
/// `version=` labels are the ones `hello_load.rs` names.
pub const DEMO_VERSIONS: &[&str] = &[
    "hello_service name=hello_v2 boot=pm -- version=2",
    "hello_service name=hello_v3 boot=pm -- version=3",
    "hello_service name=hello_crashy boot=pm -- version=9 crash-after=2",
];

/// The default programs as `--demo` boots them: RS with `hello_load` as an operator, the
/// [`DEMO_VERSIONS`] before the load, and the load in its demo mode.
pub fn demo_programs() -> Vec<&'static str> {
    let mut programs = Vec::new();
    for text in DEFAULT_PROGRAMS {
        match *text {
            RS_SERVER => programs.push(RS_SERVER_DEMO),
            HELLO_LOAD => {
                programs.extend_from_slice(DEMO_VERSIONS);
                programs.push(HELLO_LOAD_DEMO);
            }
            text => programs.push(text),
        }
    }
    programs
}

/// The VM server, booted first (with its kernel calls) unless `--no-vm` or listed already.
pub const VM_SERVER: &str = "vm kcalls=vm";

/// The process manager, booted right after the VM server (or first, without one) unless
/// `--no-programs` or listed already: the kernel starts only the system servers, and PM
/// starts every other program.
pub const PM_SERVER: &str = "pm kcalls=pm";

/// The programs to boot: those asked for, else [`DEFAULT_PROGRAMS`] (with `demo`,
/// [`demo_programs`]: the load crashes and updates hello too), unless `none` is set; with `vm`, the VM server goes first, then the
/// process manager (a program list that names `vm` or `pm` itself keeps it where it is).
pub fn programs_to_boot(
    asked: Vec<ProgramSpec>,
    none: bool,
    vm: bool,
    demo: bool,
) -> Vec<ProgramSpec> {
    if none {
        return asked;
    }
    let mut programs = if asked.is_empty() {
        let texts = if demo {
            demo_programs()
        } else {
            DEFAULT_PROGRAMS.to_vec()
        };
        texts
            .into_iter()
            .map(|text| ProgramSpec::parse(text).expect("a default program's specification"))
            .collect()
    } else {
        asked
    };
    if vm && !programs.iter().any(|spec| spec.program == "vm") {
        let server = ProgramSpec::parse(VM_SERVER).expect("the VM server's specification");
        programs.insert(0, server);
    }
    if !programs.iter().any(|spec| spec.program == "pm") {
        let server = ProgramSpec::parse(PM_SERVER).expect("the process manager's specification");
        let after_vm = programs
            .iter()
            .position(|spec| spec.program == "vm")
            .map_or(0, |vm| vm + 1);
        programs.insert(after_vm, server);
    }
    programs
}

/// Parses `--program "NAME [options…]"`, refusing options the kernel would refuse.
///
/// The kernel refuses a bad option at boot and starts nothing of that program; a person
/// typing `run` is told now, before anything is built or booted, by the kernel's own parser.
/// (Scenarios use [`ProgramSpec::parse`], which does not check: `boot-bad-modules` boots bad
/// options on purpose.)
pub fn parse_program(text: &str) -> Result<ProgramSpec, String> {
    let spec = ProgramSpec::parse(text)?;
    if let Err(error) = vigil_kcore::boot_options::parse(text.trim()) {
        return Err(format!(
            "{:?}: {error}; options are name=NAME, prio=0…{}, kcalls=none|all|a+b (safecopy, \
             shutdown, snapshot, tracemask), ipc=all|none|a+b, then -- ARGS",
            text.trim(),
            vigil_kcore::boot_options::LOWEST_PRIORITY
        ));
    }
    Ok(spec)
}

/// The module list printed at start: one line per module, as the kernel receives it.
pub fn describe_modules(modules: &[BootModule]) -> String {
    if modules.is_empty() {
        return "modules: none".to_string();
    }
    let mut text = format!("modules ({}):", modules.len());
    for (index, module) in modules.iter().enumerate() {
        text.push_str(&format!(
            "\n  {index}: {}",
            kernel::display_relative(Path::new(&module.command_line()))
        ));
    }
    text
}

/// The `try:` line for a boot with RS: what `vigil top`'s services view offers, and what
/// the load (and with `--demo`, its crashes and updates) will show there.
pub fn services_hint(programs: &[ProgramSpec]) -> String {
    let demo = programs
        .iter()
        .any(|spec| spec.program == "hello_load" && spec.options.contains("demo"));
    format!(
        "try: in vigil top, v shows RS's services (state, restarts, version, last failure): \
         select hello_service and press R (restart), H (hold), L (release), D (down), U (up); \
         hello_load prints the counter every second{}",
        if demo {
            " and every 5 s crashes hello or live-updates it (the version goes up; one update \
             in two is rolled back), saying what it did on the console"
        } else {
            " (--demo crashes and live-updates hello every 5 s)"
        }
    )
}

/// Parses `--monitor`: `tcp:HOST:PORT` (loopback only) or `unix:PATH`.
pub fn parse_monitor(spec: &str) -> Result<Com2, String> {
    if let Some(path) = spec.strip_prefix("unix:") {
        if path.is_empty() {
            return Err("unix: needs a socket path, e.g. unix:/tmp/vigil-monitor.sock".into());
        }
        return Ok(Com2::Unix(PathBuf::from(path)));
    }
    if let Some(address) = spec.strip_prefix("tcp:") {
        let (host, port) = address
            .rsplit_once(':')
            .ok_or("tcp: needs HOST:PORT, e.g. tcp:127.0.0.1:4555")?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{port:?} is not a TCP port number"))?;
        let loopback = host == "localhost"
            || host
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(format!(
                "the monitor channel listens on loopback only; use 127.0.0.1, not {host}"
            ));
        }
        return Ok(Com2::Tcp {
            host: host.to_string(),
            port,
        });
    }
    Err(format!(
        "{spec:?}: expected tcp:127.0.0.1:PORT or unix:PATH"
    ))
}

/// The address the host tool connects to for `com2` (`None`: COM2 is discarded).
pub fn tool_address(com2: &Com2) -> Option<String> {
    match com2 {
        Com2::Null => None,
        Com2::Tcp { host, port } => Some(format!("{host}:{port}")),
        Com2::Unix(path) => Some(format!("unix:{}", path.display())),
    }
}

/// The command a person types to watch the kernel at `address`.
pub fn attach_command(address: &str) -> String {
    format!("cargo run -p vigil -- top --connect {address}")
}

/// Builds (or takes) the kernel, boots it, and mirrors the console until QEMU exits.
pub fn run(options: RunOptions) -> Result<ExitCode> {
    prereq::ensure()?;
    let elf = match &options.kernel {
        Some(elf) => {
            kernel::verify(elf)?;
            elf.clone()
        }
        None => kernel::build(options.profile)?,
    };
    let (mut modules, processes) = if options.programs.is_empty() {
        (Vec::new(), ProcessMap::default())
    } else {
        user::build()?.resolve(&options.programs)?
    };
    for path in &options.modules {
        let path = std::path::absolute(path)
            .with_context(|| format!("the module path {}", path.display()))?;
        if !path.is_file() {
            bail!("the module file {} does not exist", path.display());
        }
        modules.push(BootModule::file(path)?);
    }
    let accel = if options.kvm {
        if qemu::kvm_usable() {
            Accel::Kvm
        } else {
            eprintln!("warning: /dev/kvm is not usable here; running under TCG instead");
            Accel::Tcg
        }
    } else {
        Accel::Tcg
    };
    let com2 = match options.monitor.clone() {
        Some(com2) => com2,
        None => Com2::Tcp {
            host: "127.0.0.1".to_string(),
            port: qemu::free_local_port()?,
        },
    };
    let config = QemuConfig {
        kernel: elf.clone(),
        memory: options.memory.clone(),
        cmdline: options.cmdline.clone(),
        accel,
        com2: com2.clone(),
        gdb: options.gdb,
        modules,
        icount: false,
        wait_for_monitor: options.wait_for_monitor,
        record_replay: None,
    };
    if let Some(dir) = &options.record {
        return record(&options, dir, config, &processes);
    }

    println!("{}", describe_modules(&config.modules));
    println!("qemu: {}", config.display_command());
    let com2_address = tool_address(&com2).context("COM2 has no address to attach to")?;
    // The hub connects to QEMU's socket on its own (retrying until QEMU listens), so it can
    // start before QEMU; it is stopped when this function returns.
    let hub = if options.hub {
        Some(Hub::start(&com2_address)?)
    } else {
        None
    };
    let address = hub
        .as_ref()
        .map_or_else(|| com2_address.clone(), |hub| hub.address.clone());
    match &hub {
        Some(hub) => println!(
            "monitor: COM2 on {com2}, shared by a vigil hub on {} (log: {}); attach any number \
             of host tools with: {}",
            hub.address,
            kernel::display_relative(&hub.log),
            attach_command(&address)
        ),
        None => println!(
            "monitor: COM2 on {com2} (one client at a time); attach the host tool with: {}",
            attach_command(&address)
        ),
    }
    if options.wait_for_monitor && !options.top {
        println!(
            "monitor: QEMU waits for the first client before the guest starts (--wait-monitor); \
             record the boot from reset with: cargo run -p vigil -- record --connect {address} \
             -o boot.vrec (or attach `top` the same way)"
        );
    }
    if let Some(port) = options.gdb {
        let script_path = kernel::workspace_root().join("target/vigil.gdb");
        let text = crate::gdb::script(
            &elf,
            &processes.programs(),
            port,
            crate::gdb::ToolchainSources::detect().as_ref(),
        );
        std::fs::write(&script_path, text)
            .with_context(|| format!("writing {}", script_path.display()))?;
        println!(
            "gdb: QEMU waits before the first instruction; attach with: gdb -x {} \
             (kernel symbols, Rust source paths, target remote 127.0.0.1:{port}; \
             vigil-user-NAME loads a user program's symbols)",
            kernel::display_relative(&script_path)
        );
    }
    if options.programs.iter().any(|spec| spec.program == "rs") {
        println!("{}", services_hint(&options.programs));
    }
    if options
        .programs
        .iter()
        .any(|spec| spec.program == "pm_parent")
    {
        println!(
            "try: in vigil top, t shows the process tree (pm_child under pm_parent); select \
             pm_child and press z (stop), c (continue) or x then y (kill): pm_parent prints \
             its child's exit status"
        );
    }
    let symbolizer = Symbolizer::load(&elf, &kernel::workspace_root());
    if options.top {
        return run_with_top(&config, &address, &symbolizer, &processes);
    }
    println!("quit: press Ctrl-C (or let the kernel exit through isa-debug-exit)");
    std::io::stdout().flush().ok();
    let mut exits = ExitTracker::default();

    let mut child = config
        .command()
        .stdin(Stdio::inherit())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("failed to start {}", qemu::QEMU))?;
    // Ctrl-C reaches QEMU too (same process group): let QEMU stop, and stay to report it.
    // SAFETY: setting a signal disposition to SIG_IGN installs no handler code; QEMU was
    // already spawned, so it keeps the default disposition.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    let stdout = child.stdout.take().context("QEMU stdout")?;
    let mut reader = BufReader::new(stdout);
    let mut buffer = Vec::new();
    let mut out = std::io::stdout().lock();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buffer);
                let line = symbolizer.rewrite(qemu::strip_line_ending(&text), &processes);
                // A closed stdout (e.g. `| head`) must not stop QEMU from being waited for.
                let _ = writeln!(out, "{line}");
                if let Some(message) = exits.line(&line) {
                    let _ = writeln!(out, "{message}");
                }
                let _ = out.flush();
            }
        }
    }
    drop(out);
    let status = child.wait().context("waiting for QEMU")?;
    let exit = KernelExit::from_exit(status.into());
    println!("{exit}");
    Ok(exit_code(exit))
}

/// `run --record DIR`: copies the kernel and modules into DIR, boots them in record mode
/// with the console and the monitor stream captured, and writes the manifest.
fn record(
    options: &RunOptions,
    dir: &Path,
    mut config: QemuConfig,
    processes: &ProcessMap,
) -> Result<ExitCode> {
    if options.kvm {
        bail!("QEMU records and replays only under TCG (software emulation), not KVM: drop --kvm");
    }
    // With --top the task manager gets the terminal, the console goes to DIR/console.txt,
    // and quitting the task manager stops QEMU (the recording ends there).
    let top_tool = if options.top {
        Some(tool::build_tool()?)
    } else {
        None
    };
    let stop = Arc::new(AtomicBool::new(false));
    let listen = match &options.monitor {
        None => "127.0.0.1:0".to_string(),
        Some(Com2::Tcp { host, port }) => format!("{host}:{port}"),
        Some(Com2::Unix(path)) => format!("unix:{}", path.display()),
        Some(Com2::Null) => {
            bail!("with --record the monitor stream is recorded: drop --monitor null")
        }
    };
    let (kernel, modules, entries) =
        crate::recording::prepare(dir, &config.kernel, &config.modules, processes)?;
    let dir = std::path::absolute(dir)?;
    config.kernel = kernel;
    config.modules = modules;
    let mut recorded = ProcessMap::default();
    for entry in &entries {
        if !entry.process.is_empty() {
            recorded.insert(entry.process.clone(), dir.join(&entry.file));
        }
    }
    println!("{}", describe_modules(&config.modules));
    println!(
        "record: into {} (QEMU record mode, -icount shift=auto)",
        kernel::display_relative(&dir)
    );
    if let Some(port) = options.gdb {
        let script_path = dir.join("record.gdb");
        let text = crate::gdb::script(
            &config.kernel,
            &recorded.programs(),
            port,
            crate::gdb::ToolchainSources::detect().as_ref(),
        );
        std::fs::write(&script_path, text)
            .with_context(|| format!("writing {}", script_path.display()))?;
        println!(
            "gdb: QEMU waits before the first instruction; attach with: gdb -x {}",
            kernel::display_relative(&script_path)
        );
    }
    let symbolizer = Symbolizer::load(&config.kernel, &kernel::workspace_root());
    let mut hub = None;
    let use_hub = options.hub;
    let outputs = crate::recording::Outputs {
        recording: dir.clone(),
        dir: dir.clone(),
        echo: top_tool.is_none(),
        forward_input: true,
        listen,
        stop: Some(stop.clone()),
    };
    let mut tui: Option<thread::JoinHandle<std::io::Result<std::process::ExitStatus>>> = None;
    let (boot, manifest) = crate::recording::record(
        config,
        entries,
        &recorded,
        &symbolizer,
        &outputs,
        None,
        &mut |address| {
            let address = if use_hub {
                let started = Hub::start(address)?;
                let hub_address = started.address.clone();
                hub = Some(started);
                hub_address
            } else {
                address.to_string()
            };
            println!(
                "monitor: the stream from reset is recorded; attach host tools with: {}",
                attach_command(&address)
            );
            if let Some(tool) = &top_tool {
                let console = dir.join(crate::recording::CONSOLE_TEXT);
                println!(
                    "console: {} (follow it with: tail -f {})",
                    kernel::display_relative(&console),
                    kernel::display_relative(&console)
                );
                println!("top: quit it with q; the recording ends with it");
                std::io::stdout().flush().ok();
                let mut top = Command::new(tool);
                top.args(["top", "--connect", &address]);
                let stop = stop.clone();
                tui = Some(thread::spawn(move || {
                    let status = top.status();
                    stop.store(true, Ordering::SeqCst);
                    status
                }));
            } else {
                // Ctrl-C reaches QEMU too (same process group), which ends cleanly on it
                // and closes its replay log; xtask stays to write the manifest, so the
                // recording can be replayed.
                // SAFETY: SIG_IGN installs no handler code. QEMU, spawned after this,
                // installs its own SIGINT handler, so it still ends on Ctrl-C.
                unsafe {
                    libc::signal(libc::SIGINT, libc::SIG_IGN);
                }
                println!(
                    "quit: press Ctrl-C (the recording stays replayable), or let the kernel \
                     exit through isa-debug-exit"
                );
            }
            Ok(())
        },
    )?;
    drop(hub);
    let stopped_by_top = stop.load(Ordering::SeqCst);
    if let Some(tui) = tui {
        // If the kernel exited first, the task manager stays until it is quit.
        match tui.join() {
            Ok(Ok(status)) if !status.success() => println!("top: exited with {status}"),
            Ok(Err(error)) => println!("top: could not run the task manager: {error}"),
            _ => {}
        }
    }
    if stopped_by_top {
        println!("QEMU stopped: the task manager quit, and the recording ends there");
    } else {
        println!("{}", boot.exit);
    }
    let bytes: u64 = manifest.files.iter().map(|file| file.size).sum();
    println!(
        "record: {} bytes in {} ({} of replay log, {} of snapshot, {} of monitor stream) for {:.3} s of guest time in {:.2} s; replay it with: cargo xtask replay {}",
        bytes,
        kernel::display_relative(&dir),
        size_of(&manifest, crate::recording::REPLAY_LOG),
        size_of(&manifest, crate::recording::SNAPSHOT_IMAGE),
        boot.monitor_bytes,
        manifest.guest_seconds,
        boot.elapsed.as_secs_f64(),
        kernel::display_relative(&dir)
    );
    Ok(exit_code(boot.exit))
}

fn size_of(manifest: &crate::recording::Manifest, name: &str) -> u64 {
    manifest
        .files
        .iter()
        .find(|file| file.name == name)
        .map_or(0, |file| file.size)
}

fn exit_code(exit: KernelExit) -> ExitCode {
    match exit {
        KernelExit::Success => ExitCode::SUCCESS,
        KernelExit::Failure => ExitCode::FAILURE,
        KernelExit::Other(Exit::Code(0)) => ExitCode::SUCCESS,
        KernelExit::Other(_) => ExitCode::FAILURE,
    }
}

/// `--top`: QEMU's console (and its own messages) go to the log file, `vigil top` gets the
/// terminal. When the task manager exits, QEMU is stopped; if the kernel exits first, the
/// task manager stays (it shows the link as lost) until it is quit.
fn run_with_top(
    config: &QemuConfig,
    address: &str,
    symbolizer: &Symbolizer,
    processes: &ProcessMap,
) -> Result<ExitCode> {
    let tool = tool::build_tool()?;
    let log_path = kernel::target_dir().join(CONSOLE_LOG);
    let log = File::create(&log_path)
        .with_context(|| format!("creating the console log {}", log_path.display()))?;
    let qemu_errors = log
        .try_clone()
        .context("sharing the console log with QEMU")?;
    println!(
        "console: {} (COM1; follow it with: tail -f {})",
        kernel::display_relative(&log_path),
        kernel::display_relative(&log_path)
    );
    println!(
        "top: {} top --connect {address} (quit it with q; QEMU stops with it)",
        kernel::display_relative(&tool)
    );
    std::io::stdout().flush().ok();

    let mut child = config
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(qemu_errors))
        .spawn()
        .with_context(|| format!("failed to start {}", qemu::QEMU))?;
    // SAFETY: as in `run`: SIG_IGN installs no handler code; QEMU is already spawned.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
    }
    let stdout = child.stdout.take().context("QEMU stdout")?;
    let qemu = QemuHandle::new(&child);
    let mut top = Command::new(&tool);
    top.args(["top", "--connect", address]);
    let tui = {
        let qemu = qemu.clone();
        thread::spawn(move || {
            let status = top.status();
            qemu.stop();
            status
        })
    };
    // The console, symbolised, into the log until QEMU's stdout closes.
    let mut log = std::io::BufWriter::new(log);
    let mut reader = BufReader::new(stdout);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buffer);
                let line = symbolizer.rewrite(qemu::strip_line_ending(&text), processes);
                let _ = writeln!(log, "{line}");
                let _ = log.flush();
            }
        }
    }
    let status = qemu.reap(&mut child)?;
    let tui_status = tui
        .join()
        .map_err(|_| anyhow::anyhow!("the task manager thread panicked"))?;
    // Read after the join: the thread decides (and records) whether it stopped QEMU.
    let stopped_by_us = qemu.was_stopped();
    let tui_status = tui_status.with_context(|| format!("failed to start {}", tool.display()))?;
    if stopped_by_us {
        println!("QEMU stopped: the task manager exited ({tui_status})");
        return Ok(if tui_status.success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let exit = KernelExit::from_exit(status.into());
    println!("{exit}");
    Ok(exit_code(exit))
}

/// A `vigil hub` process between QEMU's COM2 socket and the host tools; killed on drop.
struct Hub {
    child: Child,
    /// Where clients attach (127.0.0.1:PORT).
    address: String,
    log: PathBuf,
}

impl Hub {
    fn start(com2_address: &str) -> Result<Hub> {
        let tool = tool::build_tool()?;
        let address = hub_address(qemu::free_local_port()?);
        let log = kernel::target_dir().join(HUB_LOG);
        let log_file = File::create(&log)
            .with_context(|| format!("creating the hub log {}", log.display()))?;
        let child = Command::new(&tool)
            .args(hub_args(com2_address, &address))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("failed to start {} hub", tool.display()))?;
        Ok(Hub {
            child,
            address,
            log,
        })
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Follows the console's process lines (`boot: started 'NAME' (pid N, …` from the kernel
/// for the system servers and from PM for every other program, `process 'NAME' (pid N)
/// exited with status S`, `… killed by …`) and says, once, when every started
/// program has ended: the kernel keeps running (idle) and says nothing of the kind. The VM
/// server serves the others and never exits by design, so it is not waited for.
#[derive(Debug, Default)]
pub struct ExitTracker {
    started: std::collections::BTreeSet<u64>,
    ended: std::collections::BTreeSet<u64>,
    announced: bool,
}

/// The system servers, which never exit by design (`run` boots VM first, then PM).
const SYSTEM_SERVERS: &[&str] = vigil_abi::pm::SYSTEM_SERVERS;

/// The pid in "(pid N," or "(pid N)".
fn pid_after(text: &str, marker: &str) -> Option<u64> {
    let rest = &text[text.find(marker)? + marker.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

impl ExitTracker {
    /// Takes one console line; the message to print when the last program has ended.
    pub fn line(&mut self, text: &str) -> Option<String> {
        if text.contains("boot: started '") {
            let server = SYSTEM_SERVERS
                .iter()
                .any(|name| text.contains(&format!("boot: started '{name}' (")));
            if !server {
                self.started.extend(pid_after(text, "(pid "));
            }
        } else if text.contains("process '")
            && (text.contains(") exited with status ") || text.contains(") killed by "))
        {
            self.ended.extend(pid_after(text, "(pid "));
        } else {
            return None;
        }
        if self.announced || self.started.is_empty() || !self.started.is_subset(&self.ended) {
            return None;
        }
        self.announced = true;
        let n = self.started.len();
        Some(format!(
            "run: every program has exited ({n} of {n}); the kernel idles — quit with Ctrl-C"
        ))
    }
}

/// The address a hub started by `run` serves on.
pub fn hub_address(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// `vigil hub`'s arguments for QEMU's COM2 at `com2_address`, serving on `listen`.
pub fn hub_args(com2_address: &str, listen: &str) -> Vec<String> {
    vec![
        "hub".into(),
        "--connect".into(),
        com2_address.into(),
        "--listen".into(),
        listen.into(),
    ]
}

/// QEMU's pid, shared with the thread that stops it, and whether it has been reaped: a
/// reaped pid may be reused, so it is signalled only while the lock says it is not reaped.
#[derive(Clone)]
struct QemuHandle {
    pid: libc::pid_t,
    reaped: Arc<Mutex<bool>>,
    stopped: Arc<AtomicBool>,
}

impl QemuHandle {
    fn new(child: &Child) -> QemuHandle {
        QemuHandle {
            pid: child.id() as libc::pid_t,
            reaped: Arc::new(Mutex::new(false)),
            stopped: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Sends `signal` unless QEMU has been reaped; returns whether it was sent.
    fn signal(&self, signal: libc::c_int) -> bool {
        let reaped = self.reaped.lock().unwrap_or_else(|e| e.into_inner());
        if *reaped {
            return false;
        }
        // SAFETY: kill(2) on our own child's pid, which cannot have been reused because it
        // has not been reaped (checked under the lock the reaper holds while reaping).
        unsafe {
            libc::kill(self.pid, signal);
        }
        true
    }

    /// Asks QEMU to quit (SIGTERM), and kills it if it has not gone within 3 s. Does nothing
    /// if QEMU has already exited and been reaped.
    fn stop(&self) {
        if !self.signal(libc::SIGTERM) {
            return;
        }
        self.stopped.store(true, Ordering::SeqCst);
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            if *self.reaped.lock().unwrap_or_else(|e| e.into_inner()) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.signal(libc::SIGKILL);
    }

    fn was_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Waits for QEMU to exit and reaps it.
    fn reap(&self, child: &mut Child) -> Result<std::process::ExitStatus> {
        loop {
            {
                let mut reaped = self.reaped.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(status) = child.try_wait().context("waiting for QEMU")? {
                    *reaped = true;
                    return Ok(status);
                }
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_options_the_kernel_would_refuse() {
        for (bad, says) in [
            ("spinner prio=16", "prio '16'"),
            ("spinner prio=high", "prio 'high'"),
            ("spinner colour=red", "colour"),
            ("spinner kcalls=reboot", "reboot"),
            ("spinner prio", "not key=value"),
            ("spinner name=a/b", "name 'a/b'"),
        ] {
            let error = parse_program(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
            assert!(error.contains("prio=0…15"), "{bad}: {error}");
        }
        // Arguments after `--` are the program's own, never options.
        assert!(parse_program("chain_link name=a -- prio=99 colour").is_ok());
        assert!(parse_program("spinner prio=0 kcalls=safecopy+shutdown ipc=a+b").is_ok());
    }

    #[test]
    fn says_once_when_every_program_has_exited() {
        let mut tracker = ExitTracker::default();
        let lines = [
            "[    0.06] INFO  boot: started 'hello' (pid 1, priority 8, 1281 KiB image, entry 0x400000)",
            "[    0.07] INFO  boot: started 'crasher' (pid 2, priority 8, 1 KiB image, entry 0x400000)",
            "[    0.07] INFO  boot: started 'vm' (pid 3, priority 8, 1 KiB image, entry 0x400000)",
            "[    0.07] INFO  boot: started 'pm' (pid 4, priority 8, 1 KiB image, entry 0x400000)",
            // A program PM started says so through PM.
            "[    0.07] INFO  pm: boot: started 'late' (pid 5, priority 8, 1 KiB image, entry 0x400000, by pm)",
            "[    0.08] INFO  process 'hello' (pid 1) exited with status 0",
            "[    0.08] INFO  process 'late' (pid 5) exited with status 0",
        ];
        for line in lines {
            assert_eq!(tracker.line(line), None, "{line}");
        }
        let message = tracker
            .line("[    0.09] ERROR process 'crasher' (pid 2) killed by #PF at 0x401000 (thread 1.1: 1 page faults, 3 system calls)")
            .expect("both gone");
        assert!(
            message.contains("every program has exited (3 of 3)"),
            "{message}"
        );
        assert_eq!(
            tracker.line("[    0.10] INFO  process 'x' (pid 2) exited with status 0"),
            None,
            "said once"
        );
        assert_eq!(ExitTracker::default().line("[ 0.1] INFO  hello: hi"), None);
    }

    #[test]
    fn the_hub_connects_to_com2_and_serves_on_loopback() {
        assert_eq!(
            hub_args("127.0.0.1:4555", &hub_address(4560)),
            [
                "hub",
                "--connect",
                "127.0.0.1:4555",
                "--listen",
                "127.0.0.1:4560"
            ]
        );
    }

    #[test]
    fn parses_monitor_specs() {
        assert_eq!(
            parse_monitor("tcp:127.0.0.1:4555"),
            Ok(Com2::Tcp {
                host: "127.0.0.1".into(),
                port: 4555
            })
        );
        assert_eq!(
            parse_monitor("unix:/tmp/m.sock"),
            Ok(Com2::Unix("/tmp/m.sock".into()))
        );
        assert!(parse_monitor("tcp:127.0.0.1").is_err());
        assert!(parse_monitor("tcp:127.0.0.1:99999").is_err());
        assert!(parse_monitor("tcp:0.0.0.0:4555")
            .unwrap_err()
            .contains("loopback"));
        assert!(parse_monitor("unix:").is_err());
        assert!(parse_monitor("stdio").is_err());
    }

    #[test]
    fn boots_the_default_programs_unless_told_otherwise() {
        let spec = |text| parse_program(text).unwrap();
        let defaults = || DEFAULT_PROGRAMS.iter().map(|text| spec(text));
        assert_eq!(
            programs_to_boot(Vec::new(), false, false, false),
            std::iter::once(spec(PM_SERVER))
                .chain(defaults())
                .collect::<Vec<_>>()
        );
        assert_eq!(
            programs_to_boot(Vec::new(), false, true, false),
            [spec(VM_SERVER), spec(PM_SERVER)]
                .into_iter()
                .chain(defaults())
                .collect::<Vec<_>>()
        );
        assert!(programs_to_boot(Vec::new(), true, true, false).is_empty());
        assert_eq!(
            programs_to_boot(vec![spec("a prio=1"), spec("b")], false, false, false),
            [spec(PM_SERVER), spec("a prio=1"), spec("b")]
        );
        // A list that names the VM server keeps it where it is, once; PM follows it.
        assert_eq!(
            programs_to_boot(vec![spec("a"), spec("vm kcalls=vm")], false, true, false),
            [spec("a"), spec("vm kcalls=vm"), spec(PM_SERVER)]
        );
        // The default boots DS and RS (after VM and PM) with hello under RS and the load; --demo
        // makes the load crash hello.
        let default = programs_to_boot(Vec::new(), false, true, false);
        let names: Vec<&str> = default.iter().map(|s| s.program.as_str()).collect();
        assert_eq!(&names[..4], ["vm", "pm", "ds", "rs"]);
        assert!(names.contains(&"hello_service") && names.contains(&"hello_load"));
        let demo = programs_to_boot(Vec::new(), false, true, true);
        assert!(demo.contains(&spec(HELLO_LOAD_DEMO)));
        assert!(!default.contains(&spec(HELLO_LOAD_DEMO)));
        // --demo: hello_load is RS's operator (its updates) and the versions it updates to
        // are booted before it; the plain default boots neither (it starts as before).
        assert!(demo.contains(&spec(RS_SERVER_DEMO)) && !demo.contains(&spec(RS_SERVER)));
        assert!(default.contains(&spec(RS_SERVER)) && !default.contains(&spec(RS_SERVER_DEMO)));
        let load = demo
            .iter()
            .position(|s| *s == spec(HELLO_LOAD_DEMO))
            .unwrap();
        for version in DEMO_VERSIONS {
            let at = demo.iter().position(|s| *s == spec(version));
            assert!(at.is_some_and(|at| at < load), "{version} before the load");
            assert!(
                !default.contains(&spec(version)),
                "{version} only with --demo"
            );
        }
        assert_eq!(demo.len(), default.len() + DEMO_VERSIONS.len());
        assert_eq!(
            programs_to_boot(vec![spec("a")], false, false, true),
            [spec(PM_SERVER), spec("a")],
            "--demo changes only the default list"
        );
        // A list that names PM keeps it where it is, once.
        assert_eq!(
            programs_to_boot(vec![spec("a"), spec("pm kcalls=pm")], false, true, false),
            [spec(VM_SERVER), spec("a"), spec("pm kcalls=pm")]
        );
    }

    #[test]
    fn the_demo_programs_are_what_the_kernel_and_hello_load_expect() {
        for text in demo_programs() {
            let spec = parse_program(text).unwrap_or_else(|error| panic!("{text}: {error}"));
            // With a long path to the image the module string still fits the kernel's.
            let path = PathBuf::from(format!("/{}/{}", "p".repeat(100), spec.program));
            BootModule::program(path, &spec.options)
                .unwrap_or_else(|error| panic!("{text}: {error:#}"));
        }
        // hello_load's RS operator name and the version names it updates to.
        assert!(RS_SERVER_DEMO.contains("operator=service+hello_load "));
        for name in ["name=hello_v2 ", "name=hello_v3 ", "name=hello_crashy "] {
            assert!(
                DEMO_VERSIONS.iter().any(|text| text.contains(name)),
                "{name}"
            );
        }
        let source = include_str!("../../user/programs/src/bin/hello_load.rs");
        for name in ["\"hello_v2\"", "\"hello_v3\"", "\"hello_crashy\""] {
            assert!(source.contains(name), "hello_load.rs names {name}");
        }
        let spec = |text| ProgramSpec::parse(text).unwrap();
        let demo = services_hint(&[spec(RS_SERVER_DEMO), spec(HELLO_LOAD_DEMO)]);
        assert!(demo.contains("crashes hello or live-updates it"), "{demo}");
        let plain = services_hint(&[spec(RS_SERVER), spec(HELLO_LOAD)]);
        assert!(
            plain.contains("(--demo crashes and live-updates"),
            "{plain}"
        );
    }

    #[test]
    fn lists_the_modules_as_the_kernel_sees_them() {
        assert_eq!(describe_modules(&[]), "modules: none");
        let modules = [
            BootModule::program("/t/hello".into(), "name=h prio=3").unwrap(),
            BootModule::file(kernel::workspace_root().join("target/data.bin")).unwrap(),
        ];
        assert_eq!(
            describe_modules(&modules),
            "modules (2):\n  0: /t/hello name=h prio=3\n  1: target/data.bin"
        );
    }

    #[test]
    fn finds_a_free_port() {
        assert_ne!(qemu::free_local_port().unwrap(), 0);
    }

    #[test]
    fn prints_how_to_attach_the_host_tool() {
        let tcp = Com2::Tcp {
            host: "127.0.0.1".into(),
            port: 4555,
        };
        let address = tool_address(&tcp).unwrap();
        assert_eq!(
            attach_command(&address),
            "cargo run -p vigil -- top --connect 127.0.0.1:4555"
        );
        let unix = tool_address(&Com2::Unix("/tmp/m.sock".into())).unwrap();
        assert_eq!(
            attach_command(&unix),
            "cargo run -p vigil -- top --connect unix:/tmp/m.sock"
        );
        assert_eq!(tool_address(&Com2::Null), None);
    }

    #[test]
    fn stopping_qemu_signals_the_child_and_reaps_it() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let handle = QemuHandle::new(&child);
        let stopper = {
            let handle = handle.clone();
            thread::spawn(move || handle.stop())
        };
        let status = handle.reap(&mut child).unwrap();
        stopper.join().unwrap();
        assert!(handle.was_stopped());
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        // Signalling after the reap does nothing (the pid may belong to someone else now).
        assert!(!handle.signal(libc::SIGKILL));
        let exited = Command::new("true").spawn().unwrap();
        let handle = QemuHandle::new(&exited);
        let mut exited = exited;
        handle.reap(&mut exited).unwrap();
        handle.stop();
        assert!(!handle.was_stopped(), "QEMU had exited by itself");
    }
}
