//! Time-travel scenarios: a run in which a program crashes is recorded under QEMU
//! record/replay (as `cargo xtask run --record` does), then replayed (as `cargo xtask
//! replay` does). `timetravel-replay` checks that the console and the monitor stream come
//! out byte-identical, that a client of the replay's monitor socket gets that stream, and
//! that a tampered, truncated, incomplete or foreign recording (and KVM) is refused before
//! anything runs; `timetravel-gdb` drives gdb in batch mode over the replay and steps back
//! from the #PF entry to the faulting instruction.

use std::fs;
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use vigil_wire::{KernelFrame, KernelFrameDecoder};

use super::console::Console;
use super::runner::boot_modules;
use super::scenario::{secs, Scenario};
use crate::kernel;
use crate::qemu::{self, Accel, ConsoleLine, KernelExit, QemuConfig};
use crate::recording::{self, Outputs};
use crate::replay;
use crate::symbolize::Symbolizer;
use crate::user::UserPrograms;

/// What a time-travel row does after recording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeTravel {
    /// Replay, compare, attach a client, and try the refusals.
    Replay,
    /// Replay under gdb: break at the #PF entry, reverse-stepi, read the registers.
    Gdb,
}

const TIMETRAVEL: Scenario = Scenario {
    memory: "128M",
    cmdline: "exit-when-done",
    deadline: secs(60),
    check: check_crash,
    // PM starts the programs; no VM server: the crash is the run's one page fault, and
    // every process but PM exits.
    programs: &["pm kcalls=pm", "crash_null", "hello"],
    ..Scenario::DEFAULT
};

pub static TIMETRAVEL_SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "timetravel-replay",
        timetravel: Some(TimeTravel::Replay),
        ..TIMETRAVEL
    },
    Scenario {
        name: "timetravel-gdb",
        timetravel: Some(TimeTravel::Gdb),
        ..TIMETRAVEL
    },
];

/// The recorded console: crash_null's report and the kernel's exit-when-done.
fn check_crash(console: &Console) -> Result<(), String> {
    console.require_line_with(&["process 'crash_null' (pid ", ") killed by #PF"])?;
    console.require("rip=0x0000000000400")?;
    console.require("every process but the system servers has exited; stopping (exit-when-done)")
}

/// A register of the crash report's register lines (`rip=0x…`, `rax=0x…`).
pub fn reported_register(console: &str, name: &str) -> Option<u64> {
    let marker = format!("{name}=0x");
    let after = &console[console.find(&marker)? + marker.len()..];
    let digits: String = after.chars().take_while(char::is_ascii_hexdigit).collect();
    u64::from_str_radix(&digits, 16).ok()
}

/// Every value gdb printed for register `name` (`rip            0x400047   0x400047`), in
/// order.
pub fn gdb_register(output: &str, name: &str) -> Vec<u64> {
    output
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next()? != name {
                return None;
            }
            u64::from_str_radix(words.next()?.strip_prefix("0x")?, 16).ok()
        })
        .collect()
}

fn console_of(text: &str) -> Console {
    Console {
        lines: text
            .lines()
            .map(|line| ConsoleLine {
                at: Duration::ZERO,
                text: line.to_string(),
            })
            .collect(),
    }
}

/// Records the row's boot into a fresh directory under target/; returns the directory.
fn record(
    scenario: &Scenario,
    kernel_elf: &Path,
    programs: Option<&UserPrograms>,
    verbose: bool,
) -> Result<PathBuf> {
    let dir = kernel::target_dir()
        .join("xtask-timetravel")
        .join(scenario.name);
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let (modules, processes) = boot_modules(scenario, programs)?;
    let (kernel_copy, modules, entries) =
        recording::prepare(&dir, kernel_elf, &modules, &processes)?;
    let mut config = QemuConfig::for_test(&kernel_copy, scenario.memory, scenario.cmdline);
    config.modules = modules;
    let recorded = recording::Manifest {
        modules: entries.clone(),
        ..Default::default()
    }
    .processes(&dir);
    let symbolizer = Symbolizer::load(&kernel_copy, &kernel::workspace_root());
    let outputs = Outputs {
        recording: dir.clone(),
        dir: dir.clone(),
        echo: verbose,
        forward_input: true,
        listen: "127.0.0.1:0".to_string(),
        stop: None,
    };
    let (boot, manifest) = recording::record(
        config,
        entries,
        &recorded,
        &symbolizer,
        &outputs,
        Some(scenario.deadline),
        &mut |_| Ok(()),
    )?;
    if boot.timed_out || boot.exit != KernelExit::Success {
        bail!(
            "the recorded run did not end with the kernel's success exit: {}{}",
            boot.exit,
            if boot.timed_out { " (deadline)" } else { "" }
        );
    }
    let console = fs::read_to_string(dir.join(recording::CONSOLE_TEXT))?;
    (scenario.check)(&console_of(&console))
        .map_err(|e| anyhow::anyhow!("recorded console: {e}"))?;
    if manifest.guest_seconds <= 0.0 || boot.monitor_bytes == 0 {
        bail!("the recording has no guest time or no monitor stream");
    }
    Ok(dir)
}

/// Runs one time-travel row; prints PASS or FAIL.
pub fn run_scenario(
    scenario: &Scenario,
    kind: TimeTravel,
    kernel_elf: &Path,
    programs: Option<&UserPrograms>,
    verbose: bool,
) -> bool {
    let started = std::time::Instant::now();
    let result = record(scenario, kernel_elf, programs, verbose).and_then(|dir| match kind {
        TimeTravel::Replay => check_replay(scenario, &dir, verbose),
        TimeTravel::Gdb => check_gdb(scenario, &dir, verbose),
    });
    match result {
        Ok(note) => {
            println!(
                "PASS {} ({:.2} s; {note})",
                scenario.name,
                started.elapsed().as_secs_f64()
            );
            true
        }
        Err(error) => {
            println!("FAIL {}: {error:#}", scenario.name);
            false
        }
    }
}

/// Checks a raw monitor stream: every frame decodes, the first is Hello, and a log line
/// says the kernel started `process`. (The crash frame itself may still be queued when
/// exit-when-done stops the machine: the kernel sends a few bytes a tick.)
fn check_stream(stream: &[u8], process: &str) -> Result<usize> {
    let mut decoder = KernelFrameDecoder::new();
    let mut frames = Vec::new();
    let mut errors = 0;
    decoder.push(stream, |frame| match frame {
        Ok(frame) => frames.push(frame),
        Err(_) => errors += 1,
    });
    if errors > 0 || !matches!(frames.first(), Some(KernelFrame::Hello(_))) {
        bail!(
            "the monitor stream does not decode ({errors} bad frames) or does not start with Hello"
        );
    }
    let started = format!("boot: started '{process}'");
    if !frames
        .iter()
        .any(|frame| matches!(frame, KernelFrame::Log(line) if line.text.contains(&started)))
    {
        bail!("the monitor stream has no log line {started:?}");
    }
    Ok(frames.len())
}

fn check_replay(scenario: &Scenario, dir: &Path, verbose: bool) -> Result<String> {
    let (client_sender, client_receiver) = mpsc::channel();
    let replayed = replay::replay(
        dir,
        None,
        "127.0.0.1:0",
        verbose,
        Some(scenario.deadline),
        &mut |address| {
            // A host tool attached to the replay's monitor socket before the guest starts.
            let address = address.to_string();
            let sender = client_sender.clone();
            thread::spawn(move || {
                let mut bytes = Vec::new();
                let result =
                    TcpStream::connect(&address).and_then(|mut s| s.read_to_end(&mut bytes));
                let _ = sender.send(result.map(|_| bytes));
            });
            Ok(())
        },
    )?;
    if let Some(difference) = &replayed.console_difference {
        bail!("the replayed console is not the recorded one: {difference}");
    }
    if let Some(difference) = &replayed.monitor_difference {
        bail!("the replayed monitor stream is not the recorded one: {difference}");
    }
    if replayed.boot.exit != KernelExit::Success {
        bail!(
            "the replay ended otherwise than the recording: {}",
            replayed.boot.exit
        );
    }
    let recorded = fs::read(dir.join(recording::MONITOR_RAW))?;
    let client = client_receiver
        .recv_timeout(Duration::from_secs(10))
        .context("the monitor client of the replay did not finish")?
        .context("the monitor client of the replay")?;
    if client != recorded {
        bail!(
            "the client of the replay's monitor socket got {} bytes, not the {} recorded",
            client.len(),
            recorded.len()
        );
    }
    let frames = check_stream(&recorded, "crash_null")?;
    // Self-contained: a copy under another (longer) path replays identically too.
    let moved = dir.with_extension("moved").join("elsewhere");
    if moved.exists() {
        fs::remove_dir_all(&moved)?;
    }
    copy_dir(dir, &moved)?;
    fs::remove_dir_all(moved.join(recording::REPLAY_DIR)).ok();
    let copy = replay::replay(
        &moved,
        None,
        "127.0.0.1:0",
        false,
        Some(scenario.deadline),
        &mut |_| Ok(()),
    )?;
    fs::remove_dir_all(dir.with_extension("moved")).ok();
    if let Some(difference) = copy.console_difference.or(copy.monitor_difference) {
        bail!("a copy of the recording in another directory replays differently: {difference}");
    }
    let refusals = check_refusals(scenario, dir)?;
    Ok(format!(
        "console {} B and monitor stream {} B ({frames} frames) identical, also from a copy elsewhere, client saw the stream; {refusals}",
        fs::metadata(dir.join(recording::CONSOLE_RAW))?.len(),
        recorded.len()
    ))
}

/// Copies the recording, spoils the copy with `spoil`, and expects `replay` to refuse it
/// with a message containing `expected`, before QEMU runs (no replay/ directory appears).
fn expect_refusal(
    dir: &Path,
    what: &str,
    expected: &str,
    spoil: &dyn Fn(&Path) -> Result<()>,
) -> Result<()> {
    let copy = dir.with_extension(what);
    if copy.exists() {
        fs::remove_dir_all(&copy)?;
    }
    copy_dir(dir, &copy)?;
    // The copy has the first replay's outputs too: a refused replay must not make new ones.
    fs::remove_dir_all(copy.join(recording::REPLAY_DIR)).ok();
    spoil(&copy)?;
    let result = replay::replay(
        &copy,
        None,
        "127.0.0.1:0",
        false,
        Some(secs(20)),
        &mut |_| Ok(()),
    );
    let outcome = match result {
        Ok(_) => Err(anyhow::anyhow!(
            "a {what} recording was replayed, not refused"
        )),
        Err(error) => {
            let message = format!("{error:#}");
            if !message.contains(expected) {
                Err(anyhow::anyhow!("a {what} recording was refused with {message:?}, which does not say {expected:?}"))
            } else if copy.join(recording::REPLAY_DIR).exists() {
                Err(anyhow::anyhow!(
                    "a {what} recording got as far as a replay directory"
                ))
            } else {
                Ok(())
            }
        }
    };
    fs::remove_dir_all(&copy).ok();
    outcome
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn check_refusals(scenario: &Scenario, dir: &Path) -> Result<String> {
    expect_refusal(
        dir,
        "tampered",
        "replay.bin is not the file that was recorded",
        &|d| {
            let path = d.join(recording::REPLAY_LOG);
            let mut bytes = fs::read(&path)?;
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x40;
            Ok(fs::write(path, bytes)?)
        },
    )?;
    expect_refusal(dir, "truncated", "monitor.raw has", &|d| {
        let path = d.join(recording::MONITOR_RAW);
        let bytes = fs::read(&path)?;
        Ok(fs::write(path, &bytes[..bytes.len() / 2])?)
    })?;
    expect_refusal(
        dir,
        "incomplete",
        "incomplete: snapshot.qcow2 is missing",
        &|d| Ok(fs::remove_file(d.join(recording::SNAPSHOT_IMAGE))?),
    )?;
    expect_refusal(dir, "unfinished", "has no manifest.txt", &|d| {
        Ok(fs::remove_file(d.join(recording::MANIFEST))?)
    })?;
    expect_refusal(dir, "foreign", "needs the same QEMU version", &|d| {
        let path = d.join(recording::MANIFEST);
        let text =
            fs::read_to_string(&path)?.replace("qemu-version ", "qemu-version QEMU 0.1 not ");
        Ok(fs::write(path, text)?)
    })?;
    // Recording under KVM is refused before QEMU starts, whether or not /dev/kvm works.
    let mut config = QemuConfig::for_test(&dir.join(recording::KERNEL), scenario.memory, "");
    config.accel = Accel::Kvm;
    let kvm_dir = dir.with_extension("kvm");
    fs::create_dir_all(&kvm_dir)?;
    let outputs = Outputs {
        recording: kvm_dir.clone(),
        dir: kvm_dir.clone(),
        echo: false,
        forward_input: true,
        listen: "127.0.0.1:0".to_string(),
        stop: None,
    };
    let symbolizer = Symbolizer::load(&dir.join(recording::KERNEL), &kernel::workspace_root());
    let kvm = recording::record(
        config,
        Vec::new(),
        &Default::default(),
        &symbolizer,
        &outputs,
        Some(secs(5)),
        &mut |_| Ok(()),
    );
    let ran = kvm_dir.join(recording::CONSOLE_RAW).exists();
    fs::remove_dir_all(&kvm_dir).ok();
    match kvm {
        Err(error) if format!("{error:#}").contains("only under TCG") && !ran => {}
        Err(error) => bail!("recording under KVM failed otherwise: {error:#}"),
        Ok(_) => bail!("a recording under KVM was made, not refused"),
    }
    Ok("tampered, truncated, incomplete, unfinished, foreign and KVM refused".to_string())
}

/// gdb's commands: stop at the #PF entry (the crash is the run's only page fault), step
/// back one instruction (to the last one that completed: the faulting one never did), print
/// where that is, then step forward onto the faulting instruction and print its registers.
pub const GDB_COMMANDS: &str = "\
break vector_stub_14
continue
reverse-stepi
info registers rip
stepi
info registers rip rax
";

fn check_gdb(scenario: &Scenario, dir: &Path, verbose: bool) -> Result<String> {
    let port = qemu::free_local_port()?;
    let script = dir.join(recording::REPLAY_DIR).join(replay::GDB_SCRIPT);
    let commands = dir.join("gdb-commands");
    fs::write(&commands, format!("{GDB_COMMANDS}kill\n"))?;
    let dir_owned = dir.to_path_buf();
    let deadline = scenario.deadline;
    let (done_sender, done_receiver) = mpsc::channel();
    let replay_thread = thread::spawn(move || {
        let result = replay::replay(
            &dir_owned,
            Some(port),
            "127.0.0.1:0",
            verbose,
            Some(deadline),
            &mut |_| Ok(()),
        );
        let _ = done_sender.send(());
        result
    });
    // The script is written before QEMU starts; give QEMU a moment to listen.
    let mut waited = Duration::ZERO;
    while !script.exists() || TcpStream::connect(("127.0.0.1", port)).is_err() {
        if waited > secs(30) || done_receiver.try_recv().is_ok() {
            bail!("the replay under gdb did not start listening on port {port}");
        }
        thread::sleep(Duration::from_millis(100));
        waited += Duration::from_millis(100);
    }
    let output = Command::new("gdb")
        .args(["-q", "-batch", "-nx", "-x"])
        .arg(&script)
        .arg("-x")
        .arg(&commands)
        .output()
        .context("failed to start gdb (is it installed?)")?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    if verbose {
        println!("{text}");
    }
    fs::write(dir.join("gdb-output.txt"), &text)?;
    let _ = replay_thread.join();
    let console = fs::read_to_string(dir.join(recording::CONSOLE_TEXT))?;
    let rip = reported_register(&console, "rip").context("the crash report names no rip")?;
    let rax = reported_register(&console, "rax").context("the crash report names no rax")?;
    let rips = gdb_register(&text, "rip");
    let raxes = gdb_register(&text, "rax");
    let (&[back, at_fault], &[rax_at_fault]) = (&rips[..], &raxes[..]) else {
        bail!("gdb did not print two rip values and one rax:\n{text}");
    };
    // The instruction before the faulting one: a few bytes before it.
    if !(back < rip && rip - back <= 15) {
        bail!("reverse-stepi from the #PF entry went to {back:#x}, not just before the faulting {rip:#x}:\n{text}");
    }
    if (at_fault, rax_at_fault) != (rip, rax) {
        bail!("one stepi later gdb has rip={at_fault:#x} rax={rax_at_fault:#x}, the crash report rip={rip:#x} rax={rax:#x}:\n{text}");
    }
    Ok(format!("reverse-stepi from the #PF entry to {back:#x}, stepi to rip={rip:#x} rax={rax:#x} as the crash report says"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_registers_from_the_crash_report_and_from_gdb() {
        let console = "  rax=0x0 rbx=0x1\n  rip=0x0000000000400047 rfl=0x206\n";
        assert_eq!(reported_register(console, "rip"), Some(0x400047));
        assert_eq!(reported_register(console, "rbx"), Some(1));
        assert_eq!(reported_register("no registers", "rip"), None);
        let gdb = "Breakpoint 1\nrip            0x400043            0x400043\n\
                   rip            0x400047            0x400047\nrax            0x0   0\n";
        assert_eq!(gdb_register(gdb, "rip"), [0x400043, 0x400047]);
        assert_eq!(gdb_register(gdb, "rax"), [0]);
        assert!(gdb_register("rip            junk", "rip").is_empty());
        assert!(check_crash(&console_of("nothing")).is_err());
    }
}
