//! `cargo xtask replay DIR [--gdb[=PORT]]`: replays a recording made by
//! `cargo xtask run --record DIR` and checks that the console and the monitor stream come out
//! byte-identical; with `--gdb`, QEMU waits for gdb before the first instruction and a gdb
//! script with every symbol is written, for reverse execution (`reverse-stepi`, …).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::kernel;
use crate::qemu::{Accel, Com2, KernelExit, QemuConfig};
use crate::recording::{self, Boot, Manifest, Outputs};
use crate::symbolize::Symbolizer;

/// What `cargo xtask replay` was asked for.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    pub dir: PathBuf,
    /// Wait for gdb on this port and write DIR/replay/vigil.gdb.
    pub gdb: Option<u16>,
    /// Where host tools attach to the replayed monitor stream.
    pub listen: String,
}

/// The gdb script a replay with `--gdb` writes, inside DIR/replay.
pub const GDB_SCRIPT: &str = "vigil.gdb";

/// The result of one replay.
pub struct Replayed {
    pub boot: Boot,
    /// Where the console and monitor stream differ from the recording (`None`: identical).
    pub console_difference: Option<String>,
    pub monitor_difference: Option<String>,
    /// DIR/replay.
    pub out: PathBuf,
}

/// The QEMU configuration that replays `manifest` from `dir`, its outputs in `out`.
pub fn config(dir: &Path, manifest: &Manifest, out: &Path, gdb: Option<u16>) -> Result<QemuConfig> {
    Ok(QemuConfig {
        kernel: dir.join(recording::KERNEL),
        memory: manifest.memory.clone(),
        cmdline: manifest.cmdline.clone(),
        accel: Accel::Tcg,
        com2: Com2::Null,
        gdb,
        modules: manifest.boot_modules(dir)?,
        icount: false,
        wait_for_monitor: true,
        record_replay: Some(recording::record_replay(
            dir,
            &out.join(recording::SNAPSHOT_IMAGE),
            true,
        )),
    })
}

/// Checks the recording, replays it into DIR/replay and compares; `on_tee` is told where
/// host tools attach, `on_gdb` where the gdb script is (before QEMU starts).
pub fn replay(
    dir: &Path,
    gdb: Option<u16>,
    listen: &str,
    echo: bool,
    deadline: Option<Duration>,
    on_tee: &mut dyn FnMut(&str) -> Result<()>,
) -> Result<Replayed> {
    let manifest = recording::open(dir)?;
    let dir = std::path::absolute(dir)?;
    let out = dir.join(recording::REPLAY_DIR);
    if out.exists() {
        fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    // QEMU opens the snapshot image read-write: the recording's copy stays untouched.
    fs::copy(
        dir.join(recording::SNAPSHOT_IMAGE),
        out.join(recording::SNAPSHOT_IMAGE),
    )
    .context("copying the snapshot image")?;
    let kernel_elf = dir.join(recording::KERNEL);
    let processes = manifest.processes(&dir);
    let config = config(&dir, &manifest, &out, gdb)?;
    if let Some(port) = gdb {
        let script = out.join(GDB_SCRIPT);
        let text = crate::gdb::script(
            &kernel_elf,
            &processes.programs(),
            port,
            crate::gdb::ToolchainSources::detect().as_ref(),
        );
        fs::write(&script, text).with_context(|| format!("writing {}", script.display()))?;
        println!(
            "gdb: the replay waits before the first instruction; attach with: gdb -x {} \
             (break, continue, reverse-stepi, reverse-next, reverse-continue work; see \
             docs/timetravel.md)",
            kernel::display_relative(&script)
        );
    }
    let symbolizer = Symbolizer::load(&kernel_elf, &kernel::workspace_root());
    let outputs = Outputs {
        recording: dir.clone(),
        dir: out.clone(),
        echo,
        forward_input: false,
        listen: listen.to_string(),
        stop: None,
    };
    let boot = recording::boot(config, &outputs, &symbolizer, &processes, deadline, on_tee)?;
    let read =
        |path: PathBuf| fs::read(&path).with_context(|| format!("reading {}", path.display()));
    let console_difference = recording::compare(
        &read(dir.join(recording::CONSOLE_RAW))?,
        &read(out.join(recording::CONSOLE_RAW))?,
    );
    let monitor_difference = recording::compare(
        &read(dir.join(recording::MONITOR_RAW))?,
        &read(out.join(recording::MONITOR_RAW))?,
    );
    Ok(Replayed {
        boot,
        console_difference,
        monitor_difference,
        out,
    })
}

/// `cargo xtask replay`.
pub fn run(options: ReplayOptions) -> Result<ExitCode> {
    crate::prereq::ensure()?;
    println!("replay: {}", options.dir.display());
    let replayed = replay(
        &options.dir,
        options.gdb,
        &options.listen,
        true,
        None,
        &mut |address| {
            println!(
                "monitor: the replayed stream, from reset, for any number of host tools: \
                 cargo run -p vigil -- top --connect {address} (what they send is dropped: \
                 the kernel gets the recorded input)"
            );
            Ok(())
        },
    )?;
    let boot = &replayed.boot;
    println!("{}", boot.exit);
    if boot.timed_out {
        println!("replay: QEMU was killed at the deadline");
    }
    let stderr = boot.stderr.trim();
    if !stderr.is_empty() && !matches!(boot.exit, KernelExit::Success | KernelExit::Failure) {
        println!("QEMU said: {stderr}");
    }
    let mut same = true;
    if options.gdb.is_some() {
        println!(
            "replay: under gdb, reverse execution runs parts of the machine again, so output \
             repeats; the comparison below is for information"
        );
    }
    for (what, difference) in [
        ("console", &replayed.console_difference),
        ("monitor stream", &replayed.monitor_difference),
    ] {
        match difference {
            None => println!("replay: the {what} is byte-identical to the recording"),
            Some(difference) => {
                same = false;
                println!("replay: the {what} DIFFERS from the recording: {difference}");
            }
        }
    }
    if boot.dropped_input > 0 {
        println!(
            "replay: {} bytes that host tools sent were dropped (a replay takes the recorded \
             input)",
            boot.dropped_input
        );
    }
    println!(
        "replay: outputs in {} ({:.2} s)",
        kernel::display_relative(&replayed.out),
        boot.elapsed.as_secs_f64()
    );
    Ok(if same || options.gdb.is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
