//! `cargo xtask run`: boots the kernel with user programs in QEMU for a person at the terminal.
//!
//! COM1 is the console: QEMU's stdout is piped through the symboliser to ours, line by line.
//! COM2 (the monitor channel) is a socket server for the host tool.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};

use anyhow::{bail, Context, Result};

use crate::kernel::{self, Profile};
use crate::prereq;
use crate::qemu::{self, Accel, BootModule, Com2, Exit, KernelExit, QemuConfig};
use crate::symbolize::Symbolizer;
use crate::user::{self, ProcessMap, ProgramSpec};

/// What `cargo xtask run` was asked for.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub profile: Profile,
    pub kvm: bool,
    pub memory: String,
    pub cmdline: String,
    pub gdb: bool,
    /// COM2; `None` picks a free TCP port on 127.0.0.1.
    pub monitor: Option<Com2>,
    /// A prebuilt kernel ELF to boot instead of building one.
    pub kernel: Option<PathBuf>,
    /// User programs to boot, in order (before `modules`); empty boots none.
    pub programs: Vec<ProgramSpec>,
    /// Raw files handed to the kernel as Multiboot modules, after the programs.
    pub modules: Vec<PathBuf>,
}

/// The program booted when `--program` is not given.
pub const DEFAULT_PROGRAM: &str = "hello";

/// The programs to boot: those asked for, else [`DEFAULT_PROGRAM`] unless `none` is set.
pub fn programs_to_boot(asked: Vec<ProgramSpec>, none: bool) -> Vec<ProgramSpec> {
    if none || !asked.is_empty() {
        return asked;
    }
    vec![ProgramSpec {
        program: DEFAULT_PROGRAM.to_string(),
        options: String::new(),
    }]
}

/// Parses `--program "NAME [options…]"`.
pub fn parse_program(text: &str) -> Result<ProgramSpec, String> {
    ProgramSpec::parse(text)
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

/// A TCP port on 127.0.0.1 that is free right now.
fn free_local_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free TCP port")?;
    Ok(listener.local_addr()?.port())
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
            port: free_local_port()?,
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
    };

    println!("{}", describe_modules(&config.modules));
    println!("qemu: {}", config.display_command());
    println!(
        "monitor: COM2 on {com2} (attach a client there; the host tool 'vigil' comes with the \
         observability issue)"
    );
    if options.gdb {
        println!(
            "gdb: QEMU waits before the first instruction; attach with: gdb {} -ex 'target \
             remote 127.0.0.1:{}'",
            kernel::display_relative(&elf),
            qemu::GDB_PORT
        );
    }
    println!("quit: press Ctrl-C (or let the kernel exit through isa-debug-exit)");
    std::io::stdout().flush().ok();

    let symbolizer = Symbolizer::load(&elf, &kernel::workspace_root());
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
                let _ = out.flush();
            }
        }
    }
    drop(out);
    let status = child.wait().context("waiting for QEMU")?;
    let exit = KernelExit::from_exit(status.into());
    println!("{exit}");
    Ok(match exit {
        KernelExit::Success => ExitCode::SUCCESS,
        KernelExit::Failure => ExitCode::FAILURE,
        KernelExit::Other(Exit::Code(0)) => ExitCode::SUCCESS,
        KernelExit::Other(_) => ExitCode::FAILURE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn boots_hello_unless_told_otherwise() {
        let spec = |text| parse_program(text).unwrap();
        assert_eq!(programs_to_boot(Vec::new(), false), [spec("hello")]);
        assert!(programs_to_boot(Vec::new(), true).is_empty());
        assert_eq!(
            programs_to_boot(vec![spec("a x=1"), spec("b")], false),
            [spec("a x=1"), spec("b")]
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
        assert_ne!(free_local_port().unwrap(), 0);
    }
}
