//! Starts QEMU for Vigil and supervises it: console lines with arrival times, a deadline, exit.
//!
//! The kernel ends a run by writing to QEMU's `isa-debug-exit` device; QEMU then exits with
//! `vigil_abi::qemu_exit::host_status(code)`. Anything else (another status, a signal, no exit
//! before the deadline) is reported as such.

use std::ffi::OsString;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use vigil_abi::qemu_exit;
use vigil_kcore::multiboot::MAX_MODULE_NAME;

/// The QEMU binary for x86-64 guests.
pub const QEMU: &str = "qemu-system-x86_64";

/// How the guest CPU is emulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    /// Software emulation: slow, but the same everywhere (tests use this).
    Tcg,
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
}

/// What QEMU connects the second serial port (COM2, the monitor channel) to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Com2 {
    /// Discarded (test scenarios).
    Null,
    /// A TCP server socket that does not wait for a client.
    Tcp { host: String, port: u16 },
    /// A Unix socket server that does not wait for a client.
    Unix(PathBuf),
}

impl Com2 {
    /// The QEMU character-device specification for `-serial`; with `wait`, QEMU does not start the guest until a client
    /// connects to the socket, so the client sees the stream from reset. TCP has Nagle's
    /// algorithm off (`nodelay=on`): with it, a small frame (a command's answer) waited for
    /// the client's delayed ACK, about 40 ms.
    pub fn qemu_spec_waiting(&self, wait: bool) -> String {
        let wait = if wait { "on" } else { "off" };
        match self {
            Com2::Null => "null".to_string(),
            Com2::Tcp { host, port } => {
                format!("tcp:{host}:{port},server=on,wait={wait},nodelay=on")
            }
            Com2::Unix(path) => format!("unix:{},server=on,wait={wait}", path.display()),
        }
    }
}

impl fmt::Display for Com2 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Com2::Null => write!(f, "discarded"),
            Com2::Tcp { host, port } => write!(f, "tcp {host}:{port}"),
            Com2::Unix(path) => write!(f, "unix socket {}", path.display()),
        }
    }
}

/// One Multiboot module: a file, and the options the kernel reads from the module's command
/// line (for user programs: `name=… prio=… kcalls=… ipc=…` and `-- args`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootModule {
    path: PathBuf,
    options: String,
}

impl BootModule {
    /// A raw file handed to the kernel as is (no options).
    pub fn file(path: PathBuf) -> Result<BootModule> {
        BootModule::program(path, "")
    }

    /// A user program ELF with its boot options.
    pub fn program(path: PathBuf, options: &str) -> Result<BootModule> {
        let text = path
            .to_str()
            .with_context(|| format!("the module path {} is not UTF-8", path.display()))?;
        // QEMU takes everything after the first space of an -initrd entry as its options.
        if text.contains(char::is_whitespace) {
            bail!(
                "the module path {text:?} contains whitespace, which QEMU's -initrd would take \
                 as the start of the module's options; move the file or the workspace"
            );
        }
        let module = BootModule {
            path,
            options: options.trim().to_string(),
        };
        let length = module.command_line().len();
        if length > MAX_MODULE_NAME {
            bail!(
                "the module string {:?} is {length} bytes; the kernel keeps {MAX_MODULE_NAME} \
                 (vigil_kcore::multiboot::MAX_MODULE_NAME) and would cut its options: shorten \
                 them, or use a workspace with a shorter path",
                module.command_line()
            );
        }
        Ok(module)
    }

    /// The module's command line, as the kernel receives it: `PATH [options]`.
    pub fn command_line(&self) -> String {
        if self.options.is_empty() {
            self.path.display().to_string()
        } else {
            format!("{} {}", self.path.display(), self.options)
        }
    }

    /// The module's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options after the path (empty when there are none).
    pub fn options(&self) -> &str {
        &self.options
    }

    /// This module's entry in QEMU's `-initrd` list. QEMU splits the list at commas, and a
    /// doubled comma stands for a literal one, so every comma (in the path or the options)
    /// is doubled and the kernel receives the command line unchanged.
    pub fn initrd_entry(&self) -> String {
        self.command_line().replace(',', ",,")
    }
}

/// Everything that varies between QEMU runs of the kernel.
#[derive(Clone, Debug)]
pub struct QemuConfig {
    pub kernel: PathBuf,
    /// QEMU `-m` value, e.g. `128M` or `5G`.
    pub memory: String,
    /// The kernel command line (`-append`).
    pub cmdline: String,
    pub accel: Accel,
    pub com2: Com2,
    /// Wait for gdb on 127.0.0.1:PORT before the first instruction (`-gdb … -S`).
    pub gdb: Option<u16>,
    /// Files handed to the kernel as Multiboot modules (`-initrd "a,b"`), in order.
    pub modules: Vec<BootModule>,
    /// Run TCG with `-icount shift=0`: the virtual clock (and the TSC) advances one tick per
    /// guest instruction, so cycle counts become instruction counts. TCG only.
    pub icount: bool,
    /// Start the guest only once a client connects to COM2 (`wait=on`), so a recording
    /// begins at reset.
    pub wait_for_monitor: bool,
    /// Record the machine's nondeterministic inputs, or replay them (QEMU record/replay,
    /// TCG only); `icount` must then be off.
    pub record_replay: Option<RecordReplay>,
}

/// QEMU's record/replay mode: `-icount shift=auto,rr=…,rrfile=LOG,rrsnapshot=…` with a qcow2
/// drive that holds the snapshot taken at reset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordReplay {
    /// Replay `log` instead of recording into it.
    pub replay: bool,
    /// QEMU's replay log (every nondeterministic input, with its instruction count).
    pub log: PathBuf,
    /// A qcow2 image that holds the snapshot [`RR_SNAPSHOT`] of the machine at reset.
    pub snapshot_image: PathBuf,
}

/// The name of the snapshot QEMU takes at reset when recording (and loads when replaying).
pub const RR_SNAPSHOT: &str = "reset";

/// A path inside a QEMU `key=value,…` option: every comma doubled.
fn option_path(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}

impl RecordReplay {
    /// The arguments this mode adds: the icount/rr option, the snapshot drive, and no network
    /// card (its input would be one more thing to record).
    pub fn args(&self) -> Vec<OsString> {
        let mode = if self.replay { "replay" } else { "record" };
        vec![
            "-icount".into(),
            format!(
                "shift=auto,rr={mode},rrfile={},rrsnapshot={RR_SNAPSHOT}",
                option_path(&self.log)
            )
            .into(),
            "-drive".into(),
            format!(
                "file={},if=none,id=rr-snapshot,format=qcow2",
                option_path(&self.snapshot_image)
            )
            .into(),
            "-net".into(),
            "none".into(),
        ]
    }
}

impl QemuConfig {
    /// The configuration test scenarios use: TCG, COM2 discarded, no gdb.
    pub fn for_test(kernel: &Path, memory: &str, cmdline: &str) -> QemuConfig {
        QemuConfig {
            kernel: kernel.to_path_buf(),
            memory: memory.to_string(),
            cmdline: cmdline.to_string(),
            accel: Accel::Tcg,
            com2: Com2::Null,
            gdb: None,
            modules: Vec::new(),
            icount: false,
            wait_for_monitor: false,
            record_replay: None,
        }
    }

    /// QEMU's arguments. COM1 (the console) is QEMU's stdio.
    pub fn args(&self) -> Vec<OsString> {
        let cpu = match self.accel {
            Accel::Tcg => "max",
            Accel::Kvm => "host",
        };
        let accel = match self.accel {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        };
        let debug_exit = format!("isa-debug-exit,iobase={:#x},iosize=0x04", qemu_exit::PORT);
        let mut args: Vec<OsString> = vec![
            "-machine".into(),
            "q35".into(),
            "-accel".into(),
            accel.into(),
            "-cpu".into(),
            cpu.into(),
            "-m".into(),
            self.memory.clone().into(),
            "-kernel".into(),
            self.kernel.clone().into(),
            "-append".into(),
            self.cmdline.clone().into(),
            "-display".into(),
            "none".into(),
            "-no-reboot".into(),
            "-device".into(),
            debug_exit.into(),
            "-serial".into(),
            "stdio".into(),
            "-serial".into(),
            self.com2.qemu_spec_waiting(self.wait_for_monitor).into(),
        ];
        if let Some(record_replay) = &self.record_replay {
            args.extend(record_replay.args());
        } else if self.icount && self.accel == Accel::Tcg {
            args.push("-icount".into());
            args.push("shift=0".into());
        }
        if !self.modules.is_empty() {
            let list: Vec<String> = self.modules.iter().map(BootModule::initrd_entry).collect();
            args.push("-initrd".into());
            args.push(list.join(",").into());
        }
        if let Some(port) = self.gdb {
            // Like QEMU's `-s -S`, but the gdb stub listens on loopback only.
            args.push("-gdb".into());
            args.push(format!("tcp:127.0.0.1:{port}").into());
            args.push("-S".into());
        }
        args
    }

    /// A command that starts QEMU with these arguments; stdio is left to the caller.
    pub fn command(&self) -> Command {
        let mut command = Command::new(QEMU);
        command.args(self.args());
        command
    }

    /// The command line as a person would type it (for logs).
    pub fn display_command(&self) -> String {
        let mut text = QEMU.to_string();
        for arg in self.args() {
            let arg = arg.to_string_lossy();
            if arg.is_empty() || arg.contains([' ', '"', '\'']) {
                text.push_str(&format!(" '{arg}'"));
            } else {
                text.push(' ');
                text.push_str(&arg);
            }
        }
        text
    }
}

/// The first line of `qemu-system-x86_64 --version`, e.g. `QEMU emulator version 7.2.22 (…)`.
pub fn version() -> Result<String> {
    let output = Command::new(QEMU)
        .arg("--version")
        .output()
        .with_context(|| format!("failed to start {QEMU} --version"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().next().unwrap_or("").trim();
    if !output.status.success() || line.is_empty() {
        bail!("{QEMU} --version did not say its version");
    }
    Ok(line.to_string())
}

/// True if /dev/kvm can be opened for reading and writing.
pub fn kvm_usable() -> bool {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok()
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl From<ExitStatus> for Exit {
    fn from(status: ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal(signal),
            (None, None) => Exit::Code(-1),
        }
    }
}

/// What the kernel told QEMU, read back from QEMU's exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelExit {
    /// The kernel wrote `qemu_exit::SUCCESS`.
    Success,
    /// The kernel wrote `qemu_exit::FAILURE`.
    Failure,
    /// QEMU ended some other way (its own error, a quit, a signal).
    Other(Exit),
}

impl KernelExit {
    pub fn from_exit(exit: Exit) -> KernelExit {
        match exit {
            Exit::Code(code) if code == qemu_exit::host_status(qemu_exit::SUCCESS) => {
                KernelExit::Success
            }
            Exit::Code(code) if code == qemu_exit::host_status(qemu_exit::FAILURE) => {
                KernelExit::Failure
            }
            other => KernelExit::Other(other),
        }
    }
}

impl fmt::Display for KernelExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelExit::Success => write!(
                f,
                "kernel exited: success (QEMU status {})",
                qemu_exit::host_status(qemu_exit::SUCCESS)
            ),
            KernelExit::Failure => write!(
                f,
                "kernel exited: FAILURE (QEMU status {})",
                qemu_exit::host_status(qemu_exit::FAILURE)
            ),
            KernelExit::Other(Exit::Code(code)) => write!(
                f,
                "QEMU exited with status {code}, which is no kernel exit code"
            ),
            KernelExit::Other(Exit::Signal(signal)) => {
                write!(f, "QEMU was killed by signal {signal}")
            }
        }
    }
}

/// How a supervised run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The process exited by itself before the deadline.
    Exited(Exit),
    /// The deadline passed; the process was killed and reaped.
    TimedOut {
        deadline: Duration,
        /// When the kill was sent, since the process was started.
        killed_at: Duration,
        /// The status `wait` returned after the kill.
        reaped: Exit,
        /// True if the process could still be seen after it was reaped (it should not).
        still_running: bool,
    },
    /// The runner stopped the process because it was done with it (a monitor scenario whose
    /// host tool had finished); it was killed and reaped.
    Stopped {
        /// The status `wait` returned after the kill.
        reaped: Exit,
        /// True if the process could still be seen after it was reaped (it should not).
        still_running: bool,
    },
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Exited(exit) => write!(f, "{}", KernelExit::from_exit(*exit)),
            Outcome::TimedOut {
                deadline,
                still_running,
                ..
            } => {
                write!(
                    f,
                    "timed out after {:.1} s and was killed",
                    deadline.as_secs_f64()
                )?;
                if *still_running {
                    write!(f, " (but is STILL RUNNING)")?;
                }
                Ok(())
            }
            Outcome::Stopped { still_running, .. } => {
                write!(f, "was stopped by the runner")?;
                if *still_running {
                    write!(f, " (but is STILL RUNNING)")?;
                }
                Ok(())
            }
        }
    }
}

/// One console line (without its line ending) and when it arrived, relative to spawn.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleLine {
    pub at: Duration,
    pub text: String,
}

/// The result of [`supervise`].
#[derive(Clone, Debug)]
pub struct SupervisedRun {
    /// The process id it had (gone by the time the run is returned).
    pub pid: u32,
    pub outcome: Outcome,
    /// The console lines, as returned by the line processor (i.e. symbolised).
    pub lines: Vec<ConsoleLine>,
    /// What the process wrote to stderr (QEMU's own complaints).
    pub stderr: String,
    pub elapsed: Duration,
}

/// How often to check whether the process has exited while its console is quiet.
const EXIT_POLL: Duration = Duration::from_millis(50);

/// How long to wait for the pipe readers after the process has ended.
pub const READER_GRACE: Duration = Duration::from_secs(1);

/// Cap on the stderr kept from one run.
const STDERR_LIMIT: usize = 64 * 1024;

/// Removes a trailing "\n", "\r\n" (and stray "\r"s before it).
pub fn strip_line_ending(line: &str) -> &str {
    line.trim_end_matches(['\n', '\r'])
}

/// Runs `command` with stdin closed and stdout/stderr captured, until it exits or the deadline
/// passes (then it is killed and reaped). Each stdout line goes through `process_line` (e.g.
/// the symboliser, which may also echo it) as it arrives.
pub fn supervise(
    command: Command,
    deadline: Duration,
    process_line: &mut dyn FnMut(&str) -> String,
) -> Result<SupervisedRun> {
    supervise_until(command, deadline, process_line, &|| false)
}

/// [`supervise`], but the process is also killed (and reaped) as soon as `stop` returns true
/// (asked at least every [`EXIT_POLL`]); the outcome is then [`Outcome::Stopped`].
pub fn supervise_until(
    mut command: Command,
    deadline: Duration,
    process_line: &mut dyn FnMut(&str) -> String,
    stop: &dyn Fn() -> bool,
) -> Result<SupervisedRun> {
    let program = command.get_program().to_string_lossy().into_owned();
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command
        .spawn()
        .with_context(|| format!("failed to start {program}"))?;
    let (line_sender, line_receiver) = mpsc::channel();
    let stdout = child.stdout.take().context("child stdout")?;
    thread::spawn(move || read_lines(stdout, started, line_sender));
    let stderr = child.stderr.take().context("child stderr")?;
    let (stderr_sender, stderr_receiver) = mpsc::channel();
    thread::spawn(move || stderr_sender.send(read_capped(stderr, STDERR_LIMIT)));

    let deadline_at = started + deadline;
    let mut lines = Vec::new();
    let mut outcome = None;
    let mut stopped = false;
    // Console lines until the process exits (checked whenever the console is quiet), stdout
    // closes, the deadline passes or `stop` says so.
    loop {
        let now = Instant::now();
        if now >= deadline_at {
            break;
        }
        if stop() {
            stopped = true;
            break;
        }
        match line_receiver.recv_timeout((deadline_at - now).min(EXIT_POLL)) {
            Ok((at, text)) => {
                let text = process_line(&text);
                lines.push(ConsoleLine { at, text });
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Some(status) = child.try_wait().context("waiting for the child process")? {
                    outcome = Some(status.into());
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                outcome = wait_until(&mut child, deadline_at, stop)?;
                stopped = outcome.is_none() && stop();
                break;
            }
        }
    }
    let outcome = match outcome {
        Some(exit) => Outcome::Exited(exit),
        None => {
            let killed_at = started.elapsed();
            let (reaped, still_running) = kill_and_reap(&mut child)?;
            if stopped {
                Outcome::Stopped {
                    reaped,
                    still_running,
                }
            } else {
                Outcome::TimedOut {
                    deadline,
                    killed_at,
                    reaped,
                    still_running,
                }
            }
        }
    };
    // The process is gone, so its pipes close and the readers finish; collect what is left.
    // Wait only briefly: a grandchild that inherited the pipes may keep them open.
    let grace_end = Instant::now() + READER_GRACE;
    while let Ok((at, text)) =
        line_receiver.recv_timeout(grace_end.saturating_duration_since(Instant::now()))
    {
        let text = process_line(&text);
        lines.push(ConsoleLine { at, text });
    }
    let stderr = stderr_receiver
        .recv_timeout(grace_end.saturating_duration_since(Instant::now()))
        .unwrap_or_default();
    Ok(SupervisedRun {
        pid: child.id(),
        outcome,
        lines,
        stderr,
        elapsed: started.elapsed(),
    })
}

/// Prints the last `tail` console lines, QEMU's stderr, and a note on a foreign exit status.
pub fn print_failure_details(run: &SupervisedRun, tail: usize) {
    if !run.lines.is_empty() {
        let skipped = run.lines.len().saturating_sub(tail);
        println!(
            "  console ({} lines{}):",
            run.lines.len(),
            if skipped > 0 {
                format!(", last {tail}")
            } else {
                String::new()
            }
        );
        for line in &run.lines[skipped..] {
            println!("  | {}", line.text);
        }
    } else {
        println!("  console: (nothing)");
    }
    let stderr = run.stderr.trim_end();
    if !stderr.is_empty() {
        println!("  QEMU stderr:");
        for line in stderr.lines() {
            println!("  ! {line}");
        }
    }
    if let Outcome::Exited(Exit::Code(code)) = run.outcome {
        if KernelExit::from_exit(Exit::Code(code)) == KernelExit::Other(Exit::Code(code)) {
            println!("  (QEMU status {code} did not come from the kernel's isa-debug-exit)");
        }
    }
}

/// Sends each line of `source` with its arrival time; a last line without newline too.
fn read_lines(source: impl Read, started: Instant, sink: mpsc::Sender<(Duration, String)>) {
    let mut reader = BufReader::new(source);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buffer);
                let line = strip_line_ending(&text).to_string();
                if sink.send((started.elapsed(), line)).is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads `source` to the end (so the writer never blocks on a full pipe), keeping at most
/// `limit` bytes.
pub fn read_capped(mut source: impl Read, limit: usize) -> String {
    let mut kept = Vec::new();
    let _ = source.by_ref().take(limit as u64).read_to_end(&mut kept);
    let _ = std::io::copy(&mut source, &mut std::io::sink());
    String::from_utf8_lossy(&kept).into_owned()
}

/// Polls the child until it exits, `deadline_at` passes or `stop` says so (`None`: still
/// running).
fn wait_until(
    child: &mut Child,
    deadline_at: Instant,
    stop: &dyn Fn() -> bool,
) -> Result<Option<Exit>> {
    loop {
        if let Some(status) = child.try_wait().context("waiting for the child process")? {
            return Ok(Some(status.into()));
        }
        if Instant::now() >= deadline_at || stop() {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Kills the child, reaps it (no zombie) and checks it is really gone: returns the status
/// `wait` gave and whether the process can still be seen.
pub fn kill_and_reap(child: &mut Child) -> Result<(Exit, bool)> {
    let pid = child.id();
    // An error here means it exited just now; wait() below reaps it either way.
    let _ = child.kill();
    let status = child
        .wait()
        .with_context(|| format!("reaping process {pid} after killing it"))?;
    Ok((status.into(), process_exists(pid)))
}

/// Asks `child` to quit (SIGTERM: QEMU then ends cleanly, closing its record/replay log
/// properly), waits up to `grace`, then kills it. Returns how it exited.
pub fn terminate_and_reap(child: &mut Child, grace: Duration) -> Result<Exit> {
    if child.try_wait()?.is_none() {
        // SAFETY: kill(2) on our own child, which has not been reaped (try_wait just said it
        // is still running, and only this function and its caller, which holds `child`
        // mutably, reap it), so the pid cannot belong to another process.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
    }
    let until = Instant::now() + grace;
    while Instant::now() < until {
        if let Some(status) = child.try_wait()? {
            return Ok(status.into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(kill_and_reap(child)?.0)
}

/// True if a process with id `pid` can be seen (in /proc; a zombie counts).
pub fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A TCP port on 127.0.0.1 that is free right now (QEMU binds it a moment later).
pub fn free_local_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free TCP port")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    fn unchanged(line: &str) -> String {
        line.to_string()
    }

    #[test]
    fn builds_the_documented_command_line() {
        let config = QemuConfig::for_test(Path::new("/k/vigil-kernel"), "128M", "test=boot");
        let args: Vec<String> = config
            .args()
            .into_iter()
            .map(|arg| arg.into_string().unwrap())
            .collect();
        let joined = args.join(" ");
        assert_eq!(
            joined,
            "-machine q35 -accel tcg -cpu max -m 128M -kernel /k/vigil-kernel -append test=boot \
             -display none -no-reboot -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
             -serial stdio -serial null"
        );
    }

    #[test]
    fn kvm_gdb_and_monitor_sockets_change_the_command_line() {
        let mut config = QemuConfig::for_test(Path::new("k"), "256M", "");
        config.accel = Accel::Kvm;
        config.gdb = Some(1234);
        config.com2 = Com2::Tcp {
            host: "127.0.0.1".into(),
            port: 4555,
        };
        let joined = config.display_command();
        assert!(joined.contains("-accel kvm -cpu host"), "{joined}");
        assert!(joined.contains("-append ''"), "{joined}");
        assert!(
            joined
                .contains("-serial stdio -serial tcp:127.0.0.1:4555,server=on,wait=off,nodelay=on"),
            "{joined}"
        );
        assert!(joined.ends_with(" -gdb tcp:127.0.0.1:1234 -S"), "{joined}");
        config.wait_for_monitor = true;
        assert!(
            config
                .display_command()
                .contains("-serial tcp:127.0.0.1:4555,server=on,wait=on,nodelay=on"),
            "{}",
            config.display_command()
        );
        assert_eq!(
            Com2::Unix("/tmp/v.sock".into()).qemu_spec_waiting(false),
            "unix:/tmp/v.sock,server=on,wait=off"
        );
    }

    #[test]
    fn modules_and_icount_change_the_command_line() {
        let mut config = QemuConfig::for_test(Path::new("k"), "128M", "");
        config.modules = vec![
            BootModule::program("/t/hello".into(), "name=a,b prio=3 -- x").unwrap(),
            BootModule::file("/t/odd,name.bin".into()).unwrap(),
            BootModule::program("/t/bench".into(), "  ").unwrap(),
        ];
        config.icount = true;
        let args: Vec<String> = config
            .args()
            .into_iter()
            .map(|arg| arg.into_string().unwrap())
            .collect();
        let initrd = args.iter().position(|arg| arg == "-initrd").unwrap();
        assert_eq!(
            args[initrd + 1],
            "/t/hello name=a,,b prio=3 -- x,/t/odd,,name.bin,/t/bench"
        );
        let icount = args.iter().position(|arg| arg == "-icount").unwrap();
        assert_eq!(args[icount + 1], "shift=0");
        assert_eq!(
            config.modules[0].command_line(),
            "/t/hello name=a,b prio=3 -- x"
        );
        assert_eq!(config.modules[1].command_line(), "/t/odd,name.bin");

        config.record_replay = Some(RecordReplay {
            replay: true,
            log: "/r/a,b/replay.bin".into(),
            snapshot_image: "/r/snapshot.qcow2".into(),
        });
        let joined = config.display_command();
        assert!(
            joined.contains(
                "-icount shift=auto,rr=replay,rrfile=/r/a,,b/replay.bin,rrsnapshot=reset \
                 -drive file=/r/snapshot.qcow2,if=none,id=rr-snapshot,format=qcow2 -net none"
            ),
            "{joined}"
        );
        assert!(!joined.contains("shift=0"), "{joined}");
        config.record_replay = None;

        config.accel = Accel::Kvm;
        assert!(!config.display_command().contains("-icount"));
        let error = BootModule::file("/my files/x".into()).unwrap_err();
        assert!(
            format!("{error:#}").contains("contains whitespace"),
            "{error:#}"
        );
        // A string the kernel would cut is refused here, where it can be fixed.
        let fits = "o".repeat(MAX_MODULE_NAME - "/p ".len());
        assert!(BootModule::program("/p".into(), &fits).is_ok());
        let error = BootModule::program("/p".into(), &format!("{fits}o")).unwrap_err();
        assert!(
            format!("{error:#}").contains(&format!("is {} bytes", MAX_MODULE_NAME + 1)),
            "{error:#}"
        );
    }

    #[test]
    fn maps_qemu_status_to_kernel_exit() {
        let success = qemu_exit::host_status(qemu_exit::SUCCESS);
        let failure = qemu_exit::host_status(qemu_exit::FAILURE);
        assert_eq!(
            KernelExit::from_exit(Exit::Code(success)),
            KernelExit::Success
        );
        assert_eq!(
            KernelExit::from_exit(Exit::Code(failure)),
            KernelExit::Failure
        );
        assert_eq!(
            KernelExit::from_exit(Exit::Code(1)),
            KernelExit::Other(Exit::Code(1))
        );
        assert_eq!(
            KernelExit::from_exit(Exit::Signal(9)),
            KernelExit::Other(Exit::Signal(9))
        );
        assert_eq!(
            KernelExit::Success.to_string(),
            "kernel exited: success (QEMU status 33)"
        );
        assert_eq!(
            KernelExit::Failure.to_string(),
            "kernel exited: FAILURE (QEMU status 35)"
        );
    }

    #[test]
    fn strips_both_line_endings() {
        assert_eq!(strip_line_ending("a\r\n"), "a");
        assert_eq!(strip_line_ending("a\n"), "a");
        assert_eq!(strip_line_ending("a"), "a");
        assert_eq!(strip_line_ending("a\r\r\n"), "a");
    }

    #[test]
    fn collects_lines_and_exit_status() {
        let run = supervise(
            shell("printf 'one\\r\\ntwo\\nthree'; echo oops >&2; exit 35"),
            Duration::from_secs(10),
            &mut |line| format!("<{line}>"),
        )
        .unwrap();
        assert_eq!(run.outcome, Outcome::Exited(Exit::Code(35)));
        let texts: Vec<&str> = run.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["<one>", "<two>", "<three>"]);
        assert!(run.lines.windows(2).all(|w| w[0].at <= w[1].at));
        assert_eq!(run.stderr, "oops\n");
        assert_eq!(
            KernelExit::from_exit(Exit::Code(35)),
            KernelExit::Failure,
            "35 is FAILURE"
        );
    }

    #[test]
    fn terminate_asks_first_and_kills_only_a_child_that_ignores_it() {
        let mut polite = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let started = Instant::now();
        let exit = terminate_and_reap(&mut polite, Duration::from_secs(3)).unwrap();
        assert_eq!(exit, Exit::Signal(libc::SIGTERM));
        assert!(started.elapsed() < Duration::from_secs(3));
        // A child that ignores SIGTERM is killed after the grace period.
        let mut stubborn = std::process::Command::new("sh")
            .args(["-c", "trap '' TERM; sleep 30"])
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let exit = terminate_and_reap(&mut stubborn, Duration::from_millis(300)).unwrap();
        assert_eq!(exit, Exit::Signal(libc::SIGKILL));
    }

    #[test]
    fn a_child_flooding_stderr_does_not_block() {
        let run = supervise(
            shell("head -c 300000 /dev/zero | tr '\\0' x >&2; echo done"),
            Duration::from_secs(10),
            &mut unchanged,
        )
        .unwrap();
        assert_eq!(run.outcome, Outcome::Exited(Exit::Code(0)));
        assert_eq!(run.stderr.len(), STDERR_LIMIT);
        assert_eq!(run.lines.len(), 1);
    }

    #[test]
    fn kills_and_reaps_a_child_that_outlives_its_deadline() {
        let started = Instant::now();
        let run = supervise(
            shell("echo hi; exec sleep 30"),
            Duration::from_secs(1),
            &mut unchanged,
        )
        .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        let Outcome::TimedOut {
            deadline,
            killed_at,
            reaped,
            still_running,
        } = run.outcome
        else {
            panic!("not timed out: {:?}", run.outcome)
        };
        assert_eq!(deadline, Duration::from_secs(1));
        assert!(
            killed_at >= deadline && killed_at < deadline + Duration::from_millis(500),
            "killed at {killed_at:?}"
        );
        assert!(
            run.elapsed >= killed_at,
            "{:?} < {killed_at:?}",
            run.elapsed
        );
        assert_eq!(reaped, Exit::Signal(libc::SIGKILL));
        assert!(!still_running);
        assert!(!Path::new(&format!("/proc/{}", run.pid)).exists());
        assert_eq!(run.lines.len(), 1);
        assert_eq!(run.lines[0].text, "hi");
        assert!(run.outcome.to_string().contains("timed out after 1.0 s"));
    }

    #[test]
    fn an_orphan_holding_the_pipes_does_not_stall_the_runner() {
        // The shell is killed; its `sleep` child keeps stdout open for a few more seconds.
        let started = Instant::now();
        let run = supervise(
            shell("echo hi; sleep 4"),
            Duration::from_secs(1),
            &mut unchanged,
        )
        .unwrap();
        assert!(matches!(run.outcome, Outcome::TimedOut { .. }));
        assert_eq!(run.lines.len(), 1);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "waited for the orphaned sleep"
        );
    }

    #[test]
    fn an_exit_is_seen_even_while_an_orphan_holds_the_pipes() {
        let started = Instant::now();
        let run = supervise(
            shell("echo hi; sleep 3 & exit 33"),
            Duration::from_secs(10),
            &mut unchanged,
        )
        .unwrap();
        assert_eq!(run.outcome, Outcome::Exited(Exit::Code(33)));
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_silent_child_is_killed_too() {
        let run = supervise(
            shell("exec sleep 30"),
            Duration::from_millis(300),
            &mut unchanged,
        )
        .unwrap();
        assert!(matches!(
            run.outcome,
            Outcome::TimedOut {
                still_running: false,
                ..
            }
        ));
        assert!(run.lines.is_empty());
    }

    #[test]
    fn a_child_that_closes_stdout_but_keeps_running_is_killed() {
        let run = supervise(
            shell("echo bye; exec >&- 2>&-; exec sleep 30"),
            Duration::from_secs(1),
            &mut unchanged,
        )
        .unwrap();
        assert!(
            matches!(run.outcome, Outcome::TimedOut { .. }),
            "{:?}",
            run.outcome
        );
        assert_eq!(run.lines.len(), 1);
    }

    #[test]
    fn a_stop_request_kills_and_reaps_the_child_early() {
        let started = Instant::now();
        let stop = || started.elapsed() >= Duration::from_millis(300);
        let run = supervise_until(
            shell("echo hi; exec sleep 30"),
            Duration::from_secs(10),
            &mut unchanged,
            &stop,
        )
        .unwrap();
        assert!(started.elapsed() < Duration::from_secs(3));
        assert_eq!(
            run.outcome,
            Outcome::Stopped {
                reaped: Exit::Signal(libc::SIGKILL),
                still_running: false,
            }
        );
        assert_eq!(run.outcome.to_string(), "was stopped by the runner");
        assert_eq!(run.lines.len(), 1);

        // A child that exits by itself before the stop is an ordinary exit.
        let run = supervise_until(
            shell("exit 33"),
            Duration::from_secs(10),
            &mut unchanged,
            &|| false,
        )
        .unwrap();
        assert_eq!(run.outcome, Outcome::Exited(Exit::Code(33)));
    }

    #[test]
    fn reports_a_program_that_cannot_start() {
        let error = supervise(
            Command::new("/nonexistent/qemu"),
            Duration::from_secs(1),
            &mut unchanged,
        )
        .unwrap_err();
        assert!(
            format!("{error:#}").contains("failed to start /nonexistent/qemu"),
            "{error:#}"
        );
    }
}
