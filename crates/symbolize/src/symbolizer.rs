//! The symboliser of a session: the kernel ELF loaded once, each user program ELF loaded the
//! first time one of its frames appears, and where to find a process's program.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use crate::elf::ElfLookup;
use crate::frame::FrameRef;
use crate::lookup::{lookup_frame, rewrite_line_with, AddressLookup, SourceFrame, UserLookup};

/// Where the program ELF of a named process is.
pub trait ProgramPaths {
    /// The ELF that process `process` runs, or `None` if it is not one of ours.
    fn program_elf(&self, process: &str) -> Option<PathBuf>;
}

/// No user programs: user frames are left as they are (as [`ProgramPaths`] and as a
/// [`UserLookup`]).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPrograms;

impl ProgramPaths for NoPrograms {
    fn program_elf(&self, _process: &str) -> Option<PathBuf> {
        None
    }
}

impl UserLookup for NoPrograms {
    fn frames(&self, _process: &str, _address: u64) -> Option<Vec<SourceFrame>> {
        None
    }
}

impl ProgramPaths for HashMap<String, PathBuf> {
    fn program_elf(&self, process: &str) -> Option<PathBuf> {
        self.get(process).cloned()
    }
}

/// A directory of program ELFs named like their processes (e.g. the user build's
/// `target/user/x86_64-unknown-none/release`): process `hello` runs `DIR/hello` if that file
/// exists. A name that is not a plain file name (`..`, `a/b`) is never looked up.
#[derive(Clone, Debug)]
pub struct ProgramDir {
    dir: PathBuf,
}

impl ProgramDir {
    pub fn new(dir: impl Into<PathBuf>) -> ProgramDir {
        ProgramDir { dir: dir.into() }
    }
}

impl ProgramPaths for ProgramDir {
    fn program_elf(&self, process: &str) -> Option<PathBuf> {
        let mut components = Path::new(process).components();
        let plain = matches!(
            (components.next(), components.next()),
            (Some(Component::Normal(name)), None) if name == process
        );
        if !plain {
            return None;
        }
        let path = self.dir.join(process);
        path.is_file().then_some(path)
    }
}

/// Prints a warning on stderr as `warning: …`.
fn warn_on_stderr(message: &str) {
    eprintln!("warning: {message}");
}

/// Symbolises kernel frames with the kernel ELF (loaded once) and user frames with their
/// program's ELF (loaded on first use; a failed load is warned about once and remembered).
/// Never fails: what cannot be looked up is left as it is.
pub struct Symbolizer {
    kernel: Option<ElfLookup>,
    workspace_root: PathBuf,
    /// User program ELFs by path; `None` once loading one failed.
    user_elves: RefCell<HashMap<PathBuf, Option<Rc<ElfLookup>>>>,
    warn: fn(&str),
}

impl Symbolizer {
    /// A symboliser with `kernel` for kernel frames (`None`: kernel frames stay as they
    /// are); source paths under `workspace_root` are shown relative.
    pub fn new(kernel: Option<ElfLookup>, workspace_root: &Path) -> Symbolizer {
        Symbolizer {
            kernel,
            workspace_root: workspace_root.to_path_buf(),
            user_elves: RefCell::new(HashMap::new()),
            warn: warn_on_stderr,
        }
    }

    /// Loads the kernel ELF `elf`; on failure prints one warning and leaves kernel frames
    /// unchanged.
    pub fn load(elf: &Path, workspace_root: &Path) -> Symbolizer {
        let kernel = match ElfLookup::load(elf, workspace_root) {
            Ok(lookup) => Some(lookup),
            Err(error) => {
                warn_on_stderr(&format!(
                    "kernel backtraces will not be symbolised: {error}"
                ));
                None
            }
        };
        Symbolizer::new(kernel, workspace_root)
    }

    /// Reports failed user program loads through `warn` instead of `warning: …` on stderr.
    pub fn with_warnings(mut self, warn: fn(&str)) -> Symbolizer {
        self.warn = warn;
        self
    }

    /// Whether kernel frames can be symbolised.
    pub fn has_kernel(&self) -> bool {
        self.kernel.is_some()
    }

    /// The frames at `frame` (innermost first; empty when unknown), looked up in the program
    /// of `process` (found through `programs`) for a user frame, else in the kernel ELF.
    /// `None` when there is nothing to look it up in.
    pub fn frames<P: ProgramPaths + ?Sized>(
        &self,
        frame: FrameRef,
        process: Option<&str>,
        programs: &P,
    ) -> Option<Vec<SourceFrame>> {
        lookup_frame(frame, process, self.kernel_lookup(), &self.users(programs))
    }

    /// Symbolises a frame line (user frames of the processes `programs` knows); any other
    /// line comes back unchanged.
    pub fn rewrite<P: ProgramPaths + ?Sized>(&self, line: &str, programs: &P) -> String {
        rewrite_line_with(line, self.kernel_lookup(), &self.users(programs))
    }

    fn kernel_lookup(&self) -> Option<&dyn AddressLookup> {
        self.kernel.as_ref().map(|k| k as &dyn AddressLookup)
    }

    fn users<'a, P: ProgramPaths + ?Sized>(&'a self, programs: &'a P) -> UserElves<'a, P> {
        UserElves {
            symbolizer: self,
            programs,
        }
    }

    /// The lookup for the user ELF at `elf`, loaded on first use.
    fn user_elf(&self, elf: &Path) -> Option<Rc<ElfLookup>> {
        let mut elves = self.user_elves.borrow_mut();
        elves
            .entry(elf.to_path_buf())
            .or_insert_with(|| match ElfLookup::load(elf, &self.workspace_root) {
                Ok(lookup) => Some(Rc::new(lookup)),
                Err(error) => {
                    (self.warn)(&format!("user backtraces will not be symbolised: {error}"));
                    None
                }
            })
            .clone()
    }
}

/// The user programs of one session, as a [`UserLookup`].
struct UserElves<'a, P: ?Sized> {
    symbolizer: &'a Symbolizer,
    programs: &'a P,
}

impl<P: ProgramPaths + ?Sized> UserLookup for UserElves<'_, P> {
    fn frames(&self, process: &str, address: u64) -> Option<Vec<SourceFrame>> {
        let elf = self.programs.program_elf(process)?;
        let lookup = self.symbolizer.user_elf(&elf)?;
        Some(lookup.frames(address))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::FrameKind;
    use crate::test_support::{marker_address, this_binary, workspace_root};

    #[test]
    fn a_missing_elf_leaves_lines_unchanged() {
        let symbolizer = Symbolizer::load(Path::new("/nonexistent/vigil-kernel"), Path::new("/"))
            .with_warnings(|_| {});
        assert!(!symbolizer.has_kernel());
        assert_eq!(
            symbolizer.rewrite("  #0 pc 0x10", &NoPrograms),
            "  #0 pc 0x10"
        );
        let mut processes = HashMap::new();
        processes.insert("hello".to_string(), PathBuf::from("/nonexistent/hello"));
        let line = "  #0 pc  0x0000000000401234 (hello)";
        assert_eq!(symbolizer.rewrite(line, &processes), line);
        // The failed load is remembered, not retried for every frame.
        assert_eq!(symbolizer.rewrite(line, &processes), line);
        assert_eq!(symbolizer.user_elves.borrow().len(), 1);
    }

    #[test]
    fn loads_user_programs_lazily_and_once() {
        let address = marker_address();
        let exe = this_binary();
        // This very binary as a user program named `marker`.
        let symbolizer = Symbolizer::new(None, workspace_root());
        let mut processes = HashMap::new();
        processes.insert("marker".to_string(), exe.clone());
        assert!(symbolizer.user_elves.borrow().is_empty());
        let line = format!("  #0 pc  {address:#018x} (marker)");
        let rewritten = symbolizer.rewrite(&line, &processes);
        assert!(
            rewritten
                .contains("(marker) vigil_symbolize::test_support::marker_function_for_lookup at "),
            "{rewritten}"
        );
        symbolizer.rewrite(&line, &processes);
        assert_eq!(symbolizer.user_elves.borrow().len(), 1);

        // The structured lookup agrees; without a kernel ELF a kernel frame has no answer.
        let pc = FrameRef {
            kind: FrameKind::Pc,
            address,
        };
        let frames = symbolizer.frames(pc, Some("marker"), &processes).unwrap();
        assert!(frames[0]
            .function
            .as_deref()
            .is_some_and(|f| f.ends_with("::marker_function_for_lookup")));
        assert_eq!(symbolizer.frames(pc, None, &processes), None);
        assert_eq!(symbolizer.frames(pc, Some("stranger"), &processes), None);

        // The same binary as the kernel ELF.
        let kernel = ElfLookup::load(&exe, workspace_root()).unwrap();
        let symbolizer = Symbolizer::new(Some(kernel), workspace_root());
        assert!(symbolizer.has_kernel());
        let ret = FrameRef {
            kind: FrameKind::Ret,
            address: address + 1,
        };
        let frames = symbolizer.frames(ret, None, &NoPrograms).unwrap();
        assert!(
            frames[0]
                .function
                .as_deref()
                .is_some_and(|f| f.ends_with("::marker_function_for_lookup")),
            "{frames:?}"
        );
    }

    #[test]
    fn a_program_directory_finds_programs_by_process_name() {
        let exe = this_binary();
        let dir = ProgramDir::new(exe.parent().unwrap());
        let name = exe.file_name().unwrap().to_str().unwrap();
        assert_eq!(dir.program_elf(name), Some(exe.clone()));
        assert_eq!(dir.program_elf("no-such-program-here"), None);
        // Names that are not plain file names never leave the directory.
        let parent_name = exe
            .parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .unwrap();
        assert_eq!(dir.program_elf(&format!("../{parent_name}/{name}")), None);
        assert_eq!(dir.program_elf(".."), None);
        assert_eq!(dir.program_elf("."), None);
        assert_eq!(dir.program_elf(""), None);
        assert_eq!(dir.program_elf(&exe.display().to_string()), None);
        // A directory is not a program.
        let dir = ProgramDir::new(exe.parent().unwrap().parent().unwrap());
        assert_eq!(dir.program_elf(parent_name), None);
    }
}
