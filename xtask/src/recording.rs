//! A recording directory of QEMU record/replay (`cargo xtask run --record DIR`,
//! `cargo xtask replay DIR`): what it holds, its manifest, the checks made before a replay,
//! and the one way both boot QEMU (raw console to a file, monitor stream through the tee).
//!
//! ```text
//! DIR/manifest.txt      format, QEMU version, machine, modules, files with sizes and hashes
//! DIR/kernel.elf        the kernel that ran
//! DIR/modules/N-NAME    each Multiboot module (user program ELFs, raw files)
//! DIR/replay.bin        QEMU's replay log (every nondeterministic input)
//! DIR/snapshot.qcow2    the machine at reset (QEMU's rrsnapshot)
//! DIR/console.raw       COM1 as QEMU wrote it; console.txt the same, symbolised
//! DIR/monitor.raw       COM2 as the kernel sent it
//! DIR/replay/           what a replay writes (the same files, and the gdb script)
//! ```

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::monitor_tee::MonitorTee;
use crate::qemu::{self, BootModule, Com2, Exit, KernelExit, QemuConfig, RecordReplay};
use crate::symbolize::Symbolizer;
use crate::user::ProcessMap;

/// The first line of every manifest.
pub const FORMAT: &str = "vigil-recording 1";
pub const MANIFEST: &str = "manifest.txt";
pub const KERNEL: &str = "kernel.elf";
pub const MODULES: &str = "modules";
pub const REPLAY_LOG: &str = "replay.bin";
pub const SNAPSHOT_IMAGE: &str = "snapshot.qcow2";
pub const CONSOLE_RAW: &str = "console.raw";
pub const CONSOLE_TEXT: &str = "console.txt";
pub const MONITOR_RAW: &str = "monitor.raw";
/// The subdirectory a replay writes into.
pub const REPLAY_DIR: &str = "replay";
/// The qcow2 image's virtual size: no guest sees it, it only holds the snapshot.
const SNAPSHOT_DISK_SIZE: u64 = 1 << 20;

/// One Multiboot module of the recording: its file (relative to DIR) and boot options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleEntry {
    pub file: String,
    pub options: String,
    /// The process name when it is a user program (for symbols), else empty.
    pub process: String,
}

/// One file of the recording with its size and FNV-1a 64 hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    pub name: String,
    pub size: u64,
    pub hash: u64,
}

/// What `manifest.txt` says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Manifest {
    pub qemu_version: String,
    pub memory: String,
    pub cmdline: String,
    pub modules: Vec<ModuleEntry>,
    pub files: Vec<FileEntry>,
    /// The QEMU command of the recording (for people; the replay builds its own).
    pub qemu_command: String,
    /// Host seconds the recording took, and guest seconds it covered (the last console
    /// timestamp).
    pub host_seconds: f64,
    pub guest_seconds: f64,
    pub kernel_exit: String,
}

/// FNV-1a, 64 bits: detects a changed or truncated file (not an attacker).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn one_line(key: &str, value: &str) -> Result<()> {
    if value.contains(['\n', '\r']) {
        bail!("the {key} {value:?} spans lines; a recording keeps it on one");
    }
    Ok(())
}

impl Manifest {
    /// The manifest's text: one `key value` per line.
    pub fn to_text(&self) -> Result<String> {
        let mut s = String::new();
        for (key, value) in [
            ("qemu-version", &self.qemu_version),
            ("memory", &self.memory),
            ("cmdline", &self.cmdline),
            ("qemu-command", &self.qemu_command),
            ("kernel-exit", &self.kernel_exit),
        ] {
            one_line(key, value)?;
        }
        let _ = writeln!(s, "{FORMAT}");
        let _ = writeln!(s, "qemu-version {}", self.qemu_version);
        let _ = writeln!(s, "memory {}", self.memory);
        let _ = writeln!(s, "cmdline {}", self.cmdline);
        for module in &self.modules {
            one_line("module options", &module.options)?;
            let process = if module.process.is_empty() {
                "-"
            } else {
                &module.process
            };
            let _ = writeln!(s, "module {} {process} {}", module.file, module.options);
        }
        for file in &self.files {
            let _ = writeln!(s, "file {} {} {:016x}", file.name, file.size, file.hash);
        }
        let _ = writeln!(s, "host-seconds {:.3}", self.host_seconds);
        let _ = writeln!(s, "guest-seconds {:.6}", self.guest_seconds);
        let _ = writeln!(s, "kernel-exit {}", self.kernel_exit);
        let _ = writeln!(s, "qemu-command {}", self.qemu_command);
        Ok(s)
    }

    /// Parses a manifest; a line out of place is an error that names it.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let mut lines = text.lines();
        if lines.next() != Some(FORMAT) {
            return Err(format!(
                "the manifest does not start with {FORMAT:?} (not a recording, or one of \
                 another format)"
            ));
        }
        let mut manifest = Manifest::default();
        for (index, line) in lines.enumerate() {
            let number = index + 2;
            let (key, value) = line.split_once(' ').unwrap_or((line, ""));
            let bad = |what: &str| format!("manifest line {number} ({line:?}): {what}");
            match key {
                "qemu-version" => manifest.qemu_version = value.to_string(),
                "memory" => manifest.memory = value.to_string(),
                "cmdline" => manifest.cmdline = value.to_string(),
                "qemu-command" => manifest.qemu_command = value.to_string(),
                "kernel-exit" => manifest.kernel_exit = value.to_string(),
                "host-seconds" => {
                    manifest.host_seconds = value.parse().map_err(|_| bad("not seconds"))?
                }
                "guest-seconds" => {
                    manifest.guest_seconds = value.parse().map_err(|_| bad("not seconds"))?
                }
                "module" => {
                    let mut parts = value.splitn(3, ' ');
                    let file = parts.next().unwrap_or("");
                    let process = parts.next().ok_or_else(|| bad("no process name"))?;
                    let options = parts.next().unwrap_or("").to_string();
                    check_relative(file).map_err(|e| bad(&e))?;
                    manifest.modules.push(ModuleEntry {
                        file: file.to_string(),
                        options,
                        process: if process == "-" {
                            String::new()
                        } else {
                            process.to_string()
                        },
                    });
                }
                "file" => {
                    let parts: Vec<&str> = value.split(' ').collect();
                    let [name, size, hash] = parts[..] else {
                        return Err(bad("expected `file NAME SIZE HASH`"));
                    };
                    check_relative(name).map_err(|e| bad(&e))?;
                    manifest.files.push(FileEntry {
                        name: name.to_string(),
                        size: size.parse().map_err(|_| bad("not a size"))?,
                        hash: u64::from_str_radix(hash, 16).map_err(|_| bad("not a hash"))?,
                    });
                }
                _ => return Err(bad("unknown key")),
            }
        }
        if manifest.qemu_version.is_empty() || manifest.memory.is_empty() {
            return Err("the manifest names no QEMU version or memory size".to_string());
        }
        for needed in [KERNEL, REPLAY_LOG, SNAPSHOT_IMAGE, CONSOLE_RAW, MONITOR_RAW] {
            if !manifest.files.iter().any(|file| file.name == needed) {
                return Err(format!("the manifest lists no {needed}"));
            }
        }
        for module in &manifest.modules {
            if !manifest.files.iter().any(|file| file.name == module.file) {
                return Err(format!(
                    "the manifest lists no file for module {}",
                    module.file
                ));
            }
        }
        Ok(manifest)
    }

    /// The modules, booted from `dir`.
    pub fn boot_modules(&self, dir: &Path) -> Result<Vec<BootModule>> {
        self.modules
            .iter()
            .map(|module| BootModule::program(dir.join(&module.file), &module.options))
            .collect()
    }

    /// Process name → ELF in `dir`, for the symboliser and gdb.
    pub fn processes(&self, dir: &Path) -> ProcessMap {
        let mut processes = ProcessMap::default();
        for module in &self.modules {
            if !module.process.is_empty() {
                processes.insert(module.process.clone(), dir.join(&module.file));
            }
        }
        processes
    }
}

/// A file name inside DIR: relative, without `..`.
fn check_relative(name: &str) -> Result<(), String> {
    let path = Path::new(name);
    if name.is_empty()
        || path.is_absolute()
        || path
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        return Err(format!("{name:?} is not a file inside the recording"));
    }
    Ok(())
}

/// Checks every file the manifest lists: present, of its size, of its hash.
pub fn check_files(dir: &Path, manifest: &Manifest) -> Result<()> {
    for file in &manifest.files {
        let path = dir.join(&file.name);
        let bytes = fs::read(&path).with_context(|| {
            format!(
                "the recording {} is incomplete: {} is missing",
                dir.display(),
                file.name
            )
        })?;
        if bytes.len() as u64 != file.size {
            bail!(
                "the recording {} is damaged: {} has {} bytes, the manifest says {} (truncated \
                 or changed since it was recorded)",
                dir.display(),
                file.name,
                bytes.len(),
                file.size
            );
        }
        if fnv1a(&bytes) != file.hash {
            bail!(
                "the recording {} is damaged: {} is not the file that was recorded (its hash \
                 differs from the manifest's)",
                dir.display(),
                file.name
            );
        }
    }
    Ok(())
}

/// A replay needs the QEMU that recorded: another version may lay out the machine, its
/// snapshot or its log differently.
pub fn check_qemu_version(recorded: &str, installed: &str) -> Result<()> {
    if recorded != installed {
        bail!(
            "this recording was made with {recorded:?}, but {} here is {installed:?}; a replay \
             needs the same QEMU version",
            qemu::QEMU
        );
    }
    Ok(())
}

/// Reads DIR's manifest and checks the recording before anything runs.
pub fn open(dir: &Path) -> Result<Manifest> {
    if !dir.is_dir() {
        bail!(
            "{} is not a recording directory (it does not exist)",
            dir.display()
        );
    }
    let path = dir.join(MANIFEST);
    let text = fs::read_to_string(&path).with_context(|| {
        format!(
            "{} is not a complete recording: it has no {MANIFEST} (was the recording \
             interrupted before QEMU ended?)",
            dir.display()
        )
    })?;
    let manifest =
        Manifest::parse(&text).map_err(|error| anyhow::anyhow!("{}: {error}", path.display()))?;
    check_files(dir, &manifest)?;
    check_qemu_version(&manifest.qemu_version, &qemu::version()?)?;
    Ok(manifest)
}

/// Makes DIR (new, or empty) and copies the kernel and the modules into it; returns the
/// kernel and modules to boot from DIR and the module entries of the manifest.
pub fn prepare(
    dir: &Path,
    kernel: &Path,
    modules: &[BootModule],
    processes: &ProcessMap,
) -> Result<(PathBuf, Vec<BootModule>, Vec<ModuleEntry>)> {
    if dir.exists() {
        let mut entries =
            fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
        if entries.next().is_some() {
            bail!(
                "the recording directory {} is not empty; give a new directory",
                dir.display()
            );
        }
    }
    let dir = std::path::absolute(dir)?;
    fs::create_dir_all(dir.join(MODULES)).with_context(|| format!("creating {}", dir.display()))?;
    let kernel_copy = dir.join(KERNEL);
    fs::copy(kernel, &kernel_copy).with_context(|| format!("copying {}", kernel.display()))?;
    let programs = processes.programs();
    let mut booted = Vec::new();
    let mut entries = Vec::new();
    for (index, module) in modules.iter().enumerate() {
        let name = module
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // The kernel names a process after its module's file name: keep the name, one
        // directory per module.
        let file = format!("{MODULES}/{index}/{}", name.replace([' ', ','], "_"));
        fs::create_dir_all(dir.join(MODULES).join(index.to_string()))?;
        fs::copy(module.path(), dir.join(&file))
            .with_context(|| format!("copying {}", module.path().display()))?;
        let process = programs
            .iter()
            .find(|(_, elf)| elf == module.path())
            .map(|(name, _)| name.clone())
            .unwrap_or_default();
        booted.push(BootModule::program(dir.join(&file), module.options())?);
        entries.push(ModuleEntry {
            file,
            options: module.options().to_string(),
            process,
        });
    }
    fs::write(
        dir.join(SNAPSHOT_IMAGE),
        crate::qcow2::empty_image(SNAPSHOT_DISK_SIZE),
    )
    .context("writing the snapshot image")?;
    Ok((kernel_copy, booted, entries))
}

/// The files of a finished recording, with sizes and hashes, for the manifest.
pub fn file_entries(dir: &Path, modules: &[ModuleEntry]) -> Result<Vec<FileEntry>> {
    let mut names: Vec<String> = [
        KERNEL,
        REPLAY_LOG,
        SNAPSHOT_IMAGE,
        CONSOLE_RAW,
        CONSOLE_TEXT,
        MONITOR_RAW,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    names.extend(modules.iter().map(|m| m.file.clone()));
    names
        .into_iter()
        .map(|name| {
            let bytes = fs::read(dir.join(&name)).with_context(|| format!("reading {name}"))?;
            Ok(FileEntry {
                size: bytes.len() as u64,
                hash: fnv1a(&bytes),
                name,
            })
        })
        .collect()
}

/// The guest time of the last console line that starts with a `[    1.234567]` stamp.
pub fn last_guest_seconds(console: &str) -> f64 {
    console
        .lines()
        .rev()
        .find_map(|line| {
            let rest = line.trim_start().strip_prefix('[')?;
            let (stamp, _) = rest.split_once(']')?;
            stamp.trim().parse::<f64>().ok()
        })
        .unwrap_or(0.0)
}

/// The latest guest timestamp in a raw monitor stream (snapshot, log and crash frames), in
/// seconds: an idle kernel prints nothing on the console but keeps sending snapshots.
pub fn last_monitor_seconds(stream: &[u8]) -> f64 {
    let mut latest = 0u64;
    vigil_wire::KernelFrameDecoder::new().push(stream, |frame| {
        let stamp = match frame {
            Ok(vigil_wire::KernelFrame::Snapshot(snapshot)) => snapshot.timestamp_ns,
            Ok(vigil_wire::KernelFrame::Log(line)) => line.timestamp_ns,
            Ok(vigil_wire::KernelFrame::Crash(crash)) => crash.timestamp_ns,
            _ => 0,
        };
        latest = latest.max(stamp);
    });
    latest as f64 / 1e9
}

/// Where one boot under record/replay writes its console and monitor stream.
pub struct Outputs {
    /// The recording directory: QEMU runs in it and is given the kernel and the modules by
    /// paths relative to it, because those paths reach the guest (its command lines, through
    /// fw_cfg, read by the firmware after the reset snapshot), so a replay from a copied
    /// directory must pass the same strings.
    pub recording: PathBuf,
    /// Where the console and monitor stream are written (the recording, or its replay/).
    pub dir: PathBuf,
    /// Echo the symbolised console to stdout.
    pub echo: bool,
    /// Pass what host tools send to the kernel (recording) or drop it (replay).
    pub forward_input: bool,
    /// Where the tee serves host tools (`127.0.0.1:0`: a free port).
    pub listen: String,
    /// Set by someone else (the task manager of `run --record --top`, when it quits) to
    /// stop QEMU; the recording ends there and replays up to that point.
    pub stop: Option<Arc<AtomicBool>>,
}

/// How a boot under record/replay ended.
pub struct Boot {
    pub exit: KernelExit,
    /// Whether the deadline passed (QEMU was killed).
    pub timed_out: bool,
    pub elapsed: Duration,
    pub monitor_bytes: u64,
    /// Bytes host tools sent during a replay, dropped.
    pub dropped_input: u64,
    /// QEMU's stderr.
    pub stderr: String,
    /// The QEMU command line, as a person would type it.
    pub command: String,
}

/// Boots `config` (COM2 is replaced by a TCP server the tee connects to, QEMU waiting for
/// it), writing console.raw, console.txt and monitor.raw into `outputs.dir`. `on_tee` is
/// called once the tee listens (to start a hub, print the address). QEMU is killed at
/// `deadline`, if one is given.
pub fn boot(
    mut config: QemuConfig,
    outputs: &Outputs,
    symbolizer: &Symbolizer,
    processes: &ProcessMap,
    deadline: Option<Duration>,
    on_tee: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<Boot> {
    let port = qemu::free_local_port()?;
    config.com2 = Com2::Tcp {
        host: "127.0.0.1".to_string(),
        port,
    };
    config.wait_for_monitor = true;
    config.kernel = inside(&outputs.recording, &config.kernel)?;
    config.modules = config
        .modules
        .iter()
        .map(|module| {
            BootModule::program(inside(&outputs.recording, module.path())?, module.options())
        })
        .collect::<Result<_>>()?;
    let command = config.display_command();
    let tee = MonitorTee::start(
        &format!("127.0.0.1:{port}"),
        &outputs.dir.join(MONITOR_RAW),
        &outputs.listen,
        outputs.forward_input,
    )?;
    on_tee(&tee.address)?;
    let started = Instant::now();
    let mut child = config
        .command()
        .current_dir(&outputs.recording)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("failed to start {}", qemu::QEMU))?;
    let stdout = child.stdout.take().context("QEMU stdout")?;
    let stderr = child.stderr.take().context("QEMU stderr")?;
    let (stderr_sender, stderr_receiver) = mpsc::channel();
    thread::spawn(move || stderr_sender.send(qemu::read_capped(stderr, 64 * 1024)));
    let (chunk_sender, chunk_receiver) = mpsc::channel::<Vec<u8>>();
    thread::spawn(move || {
        let mut stdout = stdout;
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            match stdout.read(&mut buffer) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if chunk_sender.send(buffer[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut raw = BufWriter::new(
        File::create(outputs.dir.join(CONSOLE_RAW)).context("creating console.raw")?,
    );
    let mut text = BufWriter::new(
        File::create(outputs.dir.join(CONSOLE_TEXT)).context("creating console.txt")?,
    );
    let mut pending = Vec::new();
    let emit = |line: &[u8], text: &mut BufWriter<File>| {
        let line = String::from_utf8_lossy(line);
        let line = symbolizer.rewrite(qemu::strip_line_ending(&line), processes);
        let _ = writeln!(text, "{line}");
        if outputs.echo {
            println!("{line}");
        }
    };
    let mut timed_out = false;
    let status = loop {
        match chunk_receiver.recv_timeout(Duration::from_millis(20)) {
            Ok(chunk) => {
                raw.write_all(&chunk)?;
                pending.extend_from_slice(&chunk);
                while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    emit(&line, &mut text);
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // QEMU closed stdout: it is ending.
                break wait_or_kill(&mut child, started, deadline, &mut timed_out)?;
            }
        }
        if let Some(status) = child.try_wait()? {
            // Drain what is left of the console.
            while let Ok(chunk) = chunk_receiver.recv_timeout(qemu::READER_GRACE) {
                raw.write_all(&chunk)?;
                pending.extend_from_slice(&chunk);
            }
            break status.into();
        }
        if deadline.is_some_and(|d| started.elapsed() >= d) {
            timed_out = true;
            let (exit, _) = qemu::kill_and_reap(&mut child)?;
            break exit;
        }
        if outputs
            .stop
            .as_ref()
            .is_some_and(|stop| stop.load(Ordering::SeqCst))
        {
            break qemu::terminate_and_reap(&mut child, Duration::from_secs(3))?;
        }
    };
    for line in pending.split_inclusive(|&b| b == b'\n') {
        emit(line, &mut text);
    }
    raw.flush()?;
    text.flush()?;
    let elapsed = started.elapsed();
    let (monitor_bytes, dropped_input) = tee.finish(Duration::from_secs(5))?;
    Ok(Boot {
        exit: KernelExit::from_exit(status),
        timed_out,
        elapsed,
        monitor_bytes,
        dropped_input,
        stderr: stderr_receiver
            .recv_timeout(qemu::READER_GRACE)
            .unwrap_or_default(),
        command,
    })
}

/// `path` relative to the recording directory `dir` (it must be inside it).
fn inside(dir: &Path, path: &Path) -> Result<PathBuf> {
    path.strip_prefix(dir)
        .map(Path::to_path_buf)
        .with_context(|| {
            format!(
                "{} is not inside the recording directory {}",
                path.display(),
                dir.display()
            )
        })
}

fn wait_or_kill(
    child: &mut Child,
    started: Instant,
    deadline: Option<Duration>,
    timed_out: &mut bool,
) -> Result<Exit> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status.into());
        }
        if deadline.is_some_and(|d| started.elapsed() >= d) {
            *timed_out = true;
            return Ok(qemu::kill_and_reap(child)?.0);
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The record/replay mode for a recording in `dir` (`replay`: the log is read).
pub fn record_replay(dir: &Path, snapshot_image: &Path, replay: bool) -> RecordReplay {
    RecordReplay {
        replay,
        log: dir.join(REPLAY_LOG),
        snapshot_image: snapshot_image.to_path_buf(),
    }
}

/// Compares a file of the recording with the replay's; `None` if identical, else where the
/// two first differ.
pub fn compare(recorded: &[u8], replayed: &[u8]) -> Option<String> {
    if recorded == replayed {
        return None;
    }
    let first = recorded
        .iter()
        .zip(replayed)
        .position(|(a, b)| a != b)
        .unwrap_or(recorded.len().min(replayed.len()));
    Some(format!(
        "they differ from byte {first} (recorded {} bytes, replayed {})",
        recorded.len(),
        replayed.len()
    ))
}

/// Records one boot of `config` (its kernel and modules already copied into `dir` by
/// [`prepare`]) and writes the manifest: returns how the boot ended and the manifest.
pub fn record(
    mut config: QemuConfig,
    entries: Vec<ModuleEntry>,
    processes: &ProcessMap,
    symbolizer: &Symbolizer,
    outputs: &Outputs,
    deadline: Option<Duration>,
    on_tee: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<(Boot, Manifest)> {
    if config.accel != qemu::Accel::Tcg {
        bail!("QEMU records and replays only under TCG (software emulation), not KVM: drop --kvm");
    }
    if config.icount {
        bail!("record mode sets its own -icount (shift=auto); it cannot run under shift=0");
    }
    let dir = outputs.dir.as_path();
    let qemu_version = qemu::version()?;
    config.record_replay = Some(record_replay(dir, &dir.join(SNAPSHOT_IMAGE), false));
    let boot = boot(
        config.clone(),
        outputs,
        symbolizer,
        processes,
        deadline,
        on_tee,
    )?;
    let console = fs::read_to_string(dir.join(CONSOLE_TEXT)).unwrap_or_default();
    let manifest = Manifest {
        qemu_version,
        memory: config.memory.clone(),
        cmdline: config.cmdline.clone(),
        files: file_entries(dir, &entries)?,
        modules: entries,
        qemu_command: boot.command.clone(),
        host_seconds: boot.elapsed.as_secs_f64(),
        guest_seconds: last_guest_seconds(&console).max(last_monitor_seconds(
            &fs::read(dir.join(MONITOR_RAW)).unwrap_or_default(),
        )),
        kernel_exit: boot.exit.to_string(),
    };
    fs::write(dir.join(MANIFEST), manifest.to_text()?)
        .with_context(|| format!("writing {}", dir.join(MANIFEST).display()))?;
    Ok((boot, manifest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            qemu_version: "QEMU emulator version 7.2.22".into(),
            memory: "128M".into(),
            cmdline: "exit-when-done".into(),
            modules: vec![ModuleEntry {
                file: "modules/0/crash_null".into(),
                options: "prio=3 -- a b".into(),
                process: "crash_null".into(),
            }],
            files: Vec::new(),
            qemu_command: "qemu-system-x86_64 -m 128M".into(),
            host_seconds: 1.5,
            guest_seconds: 0.25,
            kernel_exit: "kernel exited: success (QEMU status 33)".into(),
        }
    }

    /// A recording directory with every file the manifest needs.
    fn recording(tag: &str) -> (PathBuf, Manifest) {
        let dir = std::env::temp_dir().join(format!("vigil-rec-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join(MODULES).join("0")).unwrap();
        let mut manifest = sample();
        for (name, bytes) in [
            (KERNEL, &b"kernel"[..]),
            (REPLAY_LOG, b"log"),
            (SNAPSHOT_IMAGE, b"image"),
            (CONSOLE_RAW, b"console\r\n"),
            (CONSOLE_TEXT, b"console\n"),
            (MONITOR_RAW, b"\x00\x01"),
            ("modules/0/crash_null", b"elf"),
        ] {
            fs::write(dir.join(name), bytes).unwrap();
        }
        manifest.files = file_entries(&dir, &manifest.modules).unwrap();
        fs::write(dir.join(MANIFEST), manifest.to_text().unwrap()).unwrap();
        (dir, manifest)
    }

    #[test]
    fn the_manifest_reads_back_what_was_written() {
        let (dir, manifest) = recording("roundtrip");
        let text = fs::read_to_string(dir.join(MANIFEST)).unwrap();
        assert_eq!(Manifest::parse(&text).unwrap(), manifest);
        assert!(check_files(&dir, &manifest).is_ok());
        let processes = manifest.processes(&dir);
        assert_eq!(
            processes.elf("crash_null"),
            Some(dir.join("modules/0/crash_null").as_path())
        );
        let modules = manifest.boot_modules(&dir).unwrap();
        assert_eq!(modules[0].options(), "prio=3 -- a b");
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_tampered_truncated_or_incomplete_recording_is_refused() {
        let (dir, manifest) = recording("tamper");
        fs::write(dir.join(REPLAY_LOG), b"LOG").unwrap();
        let error = format!("{:#}", check_files(&dir, &manifest).unwrap_err());
        assert!(
            error.contains("replay.bin is not the file that was recorded"),
            "{error}"
        );
        fs::write(dir.join(REPLAY_LOG), b"lo").unwrap();
        let error = format!("{:#}", check_files(&dir, &manifest).unwrap_err());
        assert!(
            error.contains("replay.bin has 2 bytes, the manifest says 3"),
            "{error}"
        );
        fs::remove_file(dir.join(REPLAY_LOG)).unwrap();
        let error = format!("{:#}", check_files(&dir, &manifest).unwrap_err());
        assert!(
            error.contains("incomplete: replay.bin is missing"),
            "{error}"
        );
        fs::remove_file(dir.join(MANIFEST)).unwrap();
        let error = format!("{:#}", open(&dir).unwrap_err());
        assert!(error.contains("has no manifest.txt"), "{error}");
        let error = format!("{:#}", open(&dir.join("nowhere")).unwrap_err());
        assert!(error.contains("does not exist"), "{error}");
        fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_bad_manifest_names_its_line() {
        assert!(Manifest::parse("something else\n")
            .unwrap_err()
            .contains("does not start with"));
        let mut text = sample().to_text().unwrap();
        assert!(Manifest::parse(&text)
            .unwrap_err()
            .contains("lists no kernel.elf"));
        text.push_str("colour blue\n");
        assert!(Manifest::parse(&text).unwrap_err().contains("unknown key"));
        let escape = format!("{FORMAT}\nfile ../etc/passwd 1 00\n");
        assert!(Manifest::parse(&escape)
            .unwrap_err()
            .contains("is not a file inside the recording"));
        let mut broken = sample();
        broken.cmdline = "a\nb".into();
        assert!(broken.to_text().is_err());
    }

    #[test]
    fn another_qemu_version_is_refused() {
        assert!(check_qemu_version("QEMU 7.2.22", "QEMU 7.2.22").is_ok());
        let error = check_qemu_version("QEMU 7.2.22", "QEMU 8.0.0").unwrap_err();
        assert!(
            format!("{error}").contains("needs the same QEMU version"),
            "{error}"
        );
    }

    #[test]
    fn hashes_stamps_and_comparisons() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            last_guest_seconds("[    0.1] a\nno stamp\n[   12.500000] INFO b\ntail\n"),
            12.5
        );
        assert_eq!(last_guest_seconds("nothing"), 0.0);
        assert_eq!(last_monitor_seconds(b"\x01\x02garbage\x00"), 0.0);
        assert_eq!(compare(b"abc", b"abc"), None);
        assert_eq!(
            compare(b"abc", b"abd").unwrap(),
            "they differ from byte 2 (recorded 3 bytes, replayed 3)"
        );
        assert!(compare(b"abc", b"ab").unwrap().contains("from byte 2"));
    }
}
