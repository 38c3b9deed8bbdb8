//! Builds the user programs (`user/programs/src/bin/*.rs`) and turns program specifications
//! (`"name [options…]"`) into Multiboot modules and process names.
//!
//! User programs live in the lower half, so they are built with different code-generation
//! flags from the kernel, into their own target directory (`target/user`) so that the two
//! flag sets do not invalidate each other's builds.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::kernel::{cargo, workspace_root};
use crate::prereq::KERNEL_TARGET;
use crate::qemu::BootModule;

/// The package whose binaries are the user programs.
pub const PROGRAMS_PACKAGE: &str = "vigil-programs";

/// The user runtime package (linted together with the programs).
pub const RUNTIME_PACKAGE: &str = "vigil-rt";

/// The target directory of user builds, relative to the workspace root.
pub const USER_TARGET_DIR: &str = "target/user";

/// The environment variable that carries the user programs' code-generation flags.
pub const RUSTFLAGS_VAR: &str = "CARGO_TARGET_X86_64_UNKNOWN_NONE_RUSTFLAGS";

/// Code-generation flags for user programs: frame pointers for backtraces, and static,
/// small-code-model code for the lower half (the kernel uses the top 2 GiB instead).
pub const USER_RUSTFLAGS: &str =
    "-C force-frame-pointers=yes -C relocation-model=static -C code-model=small";

/// The directory with the program sources, relative to the workspace root.
const PROGRAM_SOURCES: &str = "user/programs/src/bin";
/// The system servers: one directory each, `user/servers/NAME/main.rs`, built as binaries
/// of the programs package (see its Cargo.toml).
const SERVER_SOURCES: &str = "user/servers";

/// The built user programs: where their ELF files are and which programs exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPrograms {
    /// The directory holding one ELF per program, named like the program.
    pub elf_dir: PathBuf,
    /// The programs that have a source file (sorted).
    pub names: Vec<String>,
}

impl UserPrograms {
    /// The ELF of `program`, or an error naming it when there is no such (built) program.
    pub fn elf(&self, program: &str) -> Result<PathBuf> {
        let known = || {
            if self.names.is_empty() {
                "there are no user programs".to_string()
            } else {
                format!("user programs: {}", self.names.join(", "))
            }
        };
        if !self.names.iter().any(|name| name == program) {
            bail!(
                "there is no user program `{program}` (no {PROGRAM_SOURCES}/{program}.rs; {})",
                known()
            );
        }
        let elf = self.elf_dir.join(program);
        if !elf.is_file() {
            bail!(
                "user program `{program}` has no built ELF at {} (was `cargo xtask build` run?)",
                elf.display()
            );
        }
        Ok(elf)
    }

    /// Resolves program specifications into boot modules (in order) and the process map
    /// used to symbolise user backtraces.
    pub fn resolve(&self, specs: &[ProgramSpec]) -> Result<(Vec<BootModule>, ProcessMap)> {
        require_process_manager(specs)?;
        let mut modules = Vec::with_capacity(specs.len());
        let mut processes = ProcessMap::default();
        for spec in specs {
            let elf = self
                .elf(&spec.program)
                .with_context(|| format!("cannot boot program {:?}", spec.to_string()))?;
            processes.insert(spec.process_name(), elf.clone());
            modules.push(BootModule::program(elf, &spec.options)?);
        }
        Ok((modules, processes))
    }
}

/// One program to boot: `"name [options…]"`, e.g. `"bench_client kcalls=shutdown"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramSpec {
    /// The program (binary) name.
    pub program: String,
    /// Everything after the name, passed to the kernel verbatim (`name=… prio=… kcalls=…
    /// ipc=…` and `-- args`); empty when there are none.
    pub options: String,
}

impl ProgramSpec {
    /// Splits `"name [options…]"` at the first whitespace.
    pub fn parse(text: &str) -> Result<ProgramSpec, String> {
        let text = text.trim();
        let (program, options) = match text.split_once(char::is_whitespace) {
            Some((program, options)) => (program, options.trim_start()),
            None => (text, ""),
        };
        if program.is_empty() {
            return Err("a program specification needs a program name, e.g. \"hello\"".into());
        }
        if program.starts_with('-') || program.contains(['/', '=', ',']) {
            return Err(format!(
                "{program:?} is not a program name; expected \"NAME [options…]\" where NAME is \
                 a binary of user/programs, e.g. \"hello name=greeter\""
            ));
        }
        Ok(ProgramSpec {
            program: program.to_string(),
            options: options.to_string(),
        })
    }

    /// Whether this is a `boot=pm` image (spawned by PM on request, not at boot), by the
    /// kernel's own parser (a malformed spec is no image: the kernel and PM refuse it).
    pub fn is_pm_image(&self) -> bool {
        vigil_kcore::boot_options::parse(&self.to_string())
            .is_ok_and(|options| options.spawned_by_pm)
    }

    /// The name the kernel gives the process: its `name=` option, else the program name.
    /// Options after `--` are the program's arguments and do not count.
    pub fn process_name(&self) -> String {
        self.options
            .split_whitespace()
            .take_while(|word| *word != "--")
            .filter_map(|word| word.strip_prefix("name="))
            .last()
            .filter(|name| !name.is_empty())
            .unwrap_or(&self.program)
            .to_string()
    }
}

impl fmt::Display for ProgramSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.options.is_empty() {
            write!(f, "{}", self.program)
        } else {
            write!(f, "{} {}", self.program, self.options)
        }
    }
}

/// The kernel starts only the boot table's servers (`SYSTEM_SERVERS`: vm, pm, ds, rs); PM starts
/// every other program. A boot list with a program PM would start but no `pm` would leave
/// it never running, so it is refused here, with the fix, rather than at boot.
pub fn require_process_manager(specs: &[ProgramSpec]) -> Result<()> {
    use vigil_abi::pm::{PM_SERVER_NAME, SYSTEM_SERVERS};
    let names: Vec<String> = specs.iter().map(ProgramSpec::process_name).collect();
    if names.iter().any(|name| name == PM_SERVER_NAME) {
        return Ok(());
    }
    if let Some(program) = specs
        .iter()
        .zip(&names)
        .find(|(spec, name)| !SYSTEM_SERVERS.contains(&name.as_str()) && !spec.is_pm_image())
    {
        bail!(
            "program {:?} would never start: the kernel starts only the system servers \
             {SYSTEM_SERVERS:?} and the process manager starts every other program; add \
             \"{PM_SERVER_NAME} kcalls={PM_SERVER_NAME}\" to the boot list",
            program.0.to_string()
        );
    }
    Ok(())
}

/// Parses a list of program specifications (a scenario's `programs`).
pub fn parse_specs(texts: &[&str]) -> Result<Vec<ProgramSpec>> {
    texts
        .iter()
        .map(|text| {
            ProgramSpec::parse(text)
                .map_err(|error| anyhow::anyhow!("program specification {text:?}: {error}"))
        })
        .collect()
}

/// Process name → the ELF it runs, for symbolising user backtrace frames.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessMap {
    elves: HashMap<String, PathBuf>,
}

impl ProcessMap {
    /// Every (process name, ELF), sorted by name.
    pub fn programs(&self) -> Vec<(String, PathBuf)> {
        let mut programs: Vec<(String, PathBuf)> = self
            .elves
            .iter()
            .map(|(name, elf)| (name.clone(), elf.clone()))
            .collect();
        programs.sort();
        programs
    }

    /// Records that process `name` runs `elf`; the first program booted under a name wins.
    pub fn insert(&mut self, name: String, elf: PathBuf) {
        self.elves.entry(name).or_insert(elf);
    }

    /// The ELF that process `name` runs, if it is one of ours.
    pub fn elf(&self, name: &str) -> Option<&Path> {
        self.elves.get(name).map(PathBuf::as_path)
    }
}

/// The program names in `dir`: `NAME.rs` and `NAME/main.rs` (cargo's bin conventions).
pub fn program_names(dir: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => {
            return Err(error).with_context(|| format!("cannot list {}", dir.display()));
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let path = entry.path();
        let Some(file_name) = path.file_name().and_then(|name| name.to_str()) else {
            continue;
        };
        if path.is_dir() {
            if path.join("main.rs").is_file() {
                names.push(file_name.to_string());
            }
        } else if let Some(stem) = file_name.strip_suffix(".rs") {
            names.push(stem.to_string());
        }
    }
    names.sort();
    Ok(names)
}

/// The servers in `dir`: every `NAME/main.rs` (none if `dir` does not exist).
pub fn server_names(dir: &Path) -> Result<Vec<String>> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        if path.join("main.rs").is_file() {
            if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// The absolute user target directory (`--target-dir`).
pub fn target_dir() -> PathBuf {
    workspace_root().join(USER_TARGET_DIR)
}

/// Where the user program ELFs are written.
pub fn elf_dir() -> PathBuf {
    target_dir().join(KERNEL_TARGET).join("release")
}

/// The cargo arguments of the user build.
pub fn build_args() -> Vec<String> {
    [
        "build",
        "-p",
        PROGRAMS_PACKAGE,
        "--target",
        KERNEL_TARGET,
        "--release",
        "--target-dir",
        USER_TARGET_DIR,
    ]
    .map(String::from)
    .to_vec()
}

/// Builds every user program and returns where they are.
pub fn build() -> Result<UserPrograms> {
    let args = build_args();
    println!(
        "building the user programs: {RUSTFLAGS_VAR}=\"{USER_RUSTFLAGS}\" cargo {}",
        args.join(" ")
    );
    let status = cargo()
        .args(&args)
        .env(RUSTFLAGS_VAR, USER_RUSTFLAGS)
        .status()
        .context("failed to start cargo to build the user programs")?;
    if !status.success() {
        bail!("building the user programs failed ({status})");
    }
    let mut names = program_names(&workspace_root().join(PROGRAM_SOURCES))?;
    names.extend(server_names(&workspace_root().join(SERVER_SOURCES))?);
    names.sort();
    let programs = UserPrograms {
        elf_dir: elf_dir(),
        names,
    };
    for name in &programs.names {
        // Every program was just built, so a missing ELF means the layout is not what we
        // think it is: better to say so now than when a scenario boots it.
        programs
            .elf(name)
            .context("cargo reported success, but a program ELF is missing")?;
    }
    Ok(programs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> ProgramSpec {
        ProgramSpec::parse(text).unwrap()
    }

    /// A fake ELF directory with programs `a` and `b` built; `c` has a source but no ELF.
    fn fake_programs(test: &str) -> (PathBuf, UserPrograms) {
        let dir = std::env::temp_dir().join(format!("xtask-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a"), b"\x7fELF").unwrap();
        std::fs::write(dir.join("b"), b"\x7fELF").unwrap();
        let programs = UserPrograms {
            elf_dir: dir.clone(),
            names: vec!["a".into(), "b".into(), "c".into()],
        };
        (dir, programs)
    }

    #[test]
    fn parses_program_specifications() {
        assert_eq!(
            spec("hello"),
            ProgramSpec {
                program: "hello".into(),
                options: String::new()
            }
        );
        assert_eq!(
            spec("  ipc_client   prio=6 kcalls=shutdown -- a  b "),
            ProgramSpec {
                program: "ipc_client".into(),
                options: "prio=6 kcalls=shutdown -- a  b".into()
            }
        );
        assert_eq!(spec("x\tname=y").options, "name=y");
        assert_eq!(
            spec("ipc_client prio=6").to_string(),
            "ipc_client prio=6".to_string()
        );
        for bad in ["", "   ", "/bin/hello", "name=x", "--x", "a,b"] {
            assert!(ProgramSpec::parse(bad).is_err(), "{bad:?}");
        }
        let error = parse_specs(&["ok", "/abs/path"]).unwrap_err();
        assert!(format!("{error:#}").contains("\"/abs/path\""), "{error:#}");
    }

    #[test]
    fn the_process_name_is_the_name_option_or_the_program() {
        assert_eq!(spec("hello").process_name(), "hello");
        assert_eq!(spec("hello prio=3 name=greeter").process_name(), "greeter");
        assert_eq!(spec("hello name=a name=b").process_name(), "b");
        assert_eq!(spec("hello -- name=arg").process_name(), "hello");
        assert_eq!(spec("hello name= prio=1").process_name(), "hello");
        assert_eq!(spec("hello rename=x").process_name(), "hello");
    }

    #[test]
    fn resolves_programs_to_modules_and_processes() {
        let (dir, programs) = fake_programs("resolve");
        let specs = parse_specs(&["b name=pm prio=2", "a", "a name=second"]).unwrap();
        let (modules, processes) = programs.resolve(&specs).unwrap();
        let entries: Vec<String> = modules.iter().map(BootModule::initrd_entry).collect();
        assert_eq!(
            entries,
            [
                format!("{} name=pm prio=2", dir.join("b").display()),
                dir.join("a").display().to_string(),
                format!("{} name=second", dir.join("a").display()),
            ]
        );
        assert_eq!(processes.elf("pm"), Some(dir.join("b").as_path()));
        assert_eq!(processes.elf("a"), Some(dir.join("a").as_path()));
        assert_eq!(processes.elf("second"), Some(dir.join("a").as_path()));
        assert_eq!(processes.elf("b"), None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_program_is_named_in_the_error() {
        let (dir, programs) = fake_programs("missing");
        let error = programs
            .resolve(&parse_specs(&["a name=pm", "nosuch prio=1"]).unwrap())
            .unwrap_err();
        let text = format!("{error:#}");
        assert!(
            text.contains("cannot boot program \"nosuch prio=1\"")
                && text.contains("there is no user program `nosuch`")
                && text.contains("user programs: a, b, c"),
            "{text}"
        );
        let error = programs.elf("c").unwrap_err();
        assert!(
            format!("{error:#}").contains("user program `c` has no built ELF at"),
            "{error:#}"
        );
        let none = UserPrograms {
            elf_dir: dir.clone(),
            names: Vec::new(),
        };
        let error = none.elf("a").unwrap_err();
        assert!(
            format!("{error:#}").contains("there are no user programs"),
            "{error:#}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn programs_other_than_the_servers_need_the_process_manager() {
        let check = |texts: &[&str]| require_process_manager(&parse_specs(texts).unwrap());
        assert!(check(&[]).is_ok());
        assert!(check(&["vm kcalls=vm"]).is_ok(), "the servers alone boot");
        assert!(check(&["vm kcalls=vm", "pm kcalls=pm", "hello"]).is_ok());
        assert!(
            check(&["spinner name=pm", "hello"]).is_ok(),
            "pm by its name="
        );
        assert!(
            check(&["pm_child boot=pm"]).is_ok(),
            "an image is not started at boot"
        );
        let error = check(&["vm kcalls=vm", "hello -- x"]).unwrap_err();
        let text = format!("{error:#}");
        assert!(
            text.contains("program \"hello -- x\" would never start")
                && text.contains("add \"pm kcalls=pm\""),
            "{text}"
        );
        assert!(
            check(&["hello -- boot=pm"]).is_err(),
            "arguments are not options"
        );
    }

    #[test]
    fn lists_programs_by_cargo_bin_conventions() {
        let dir = std::env::temp_dir().join(format!("xtask-bins-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("multi")).unwrap();
        std::fs::create_dir_all(dir.join("not_a_bin")).unwrap();
        std::fs::write(dir.join("multi/main.rs"), "").unwrap();
        std::fs::write(dir.join("hello.rs"), "").unwrap();
        std::fs::write(dir.join("README.md"), "").unwrap();
        assert_eq!(program_names(&dir).unwrap(), ["hello", "multi"]);
        assert!(program_names(&dir.join("absent")).unwrap().is_empty());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn builds_into_its_own_target_directory() {
        assert_eq!(
            build_args().join(" "),
            "build -p vigil-programs --target x86_64-unknown-none --release --target-dir \
             target/user"
        );
        assert_eq!(
            elf_dir(),
            workspace_root().join("target/user/x86_64-unknown-none/release")
        );
    }
}
