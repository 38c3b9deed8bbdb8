//! Backtrace symbolisation of the console lines of `run`, `test` and `bench`: the
//! `vigil-symbolize` crate, with the processes of a boot ([`ProcessMap`]) as its programs.
//!
//! Kernel frames (`  #0 pc  0xffffffff80104abc`) are looked up in the kernel ELF, user frames
//! (`  #0 pc  0x0000000000401234 (hello)`) in the ELF the process was booted from; see the
//! crate for the line format.

pub use vigil_symbolize::{parse_frame, Symbolizer};

use std::path::{Path, PathBuf};

use vigil_symbolize::ProgramPaths;

use crate::user::ProcessMap;

impl ProgramPaths for ProcessMap {
    fn program_elf(&self, process: &str) -> Option<PathBuf> {
        self.elf(process).map(Path::to_path_buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A function whose address the test below looks up in this very test binary.
    #[inline(never)]
    fn marker_function_for_lookup() -> u64 {
        std::hint::black_box(0x5eed)
    }

    #[test]
    fn a_missing_elf_leaves_lines_unchanged() {
        let symbolizer = Symbolizer::load(Path::new("/nonexistent/vigil-kernel"), Path::new("/"));
        let none = ProcessMap::default();
        assert_eq!(symbolizer.rewrite("  #0 pc 0x10", &none), "  #0 pc 0x10");
        let mut processes = ProcessMap::default();
        processes.insert("hello".into(), "/nonexistent/hello".into());
        let line = "  #0 pc  0x0000000000401234 (hello)";
        assert_eq!(symbolizer.rewrite(line, &processes), line);
    }

    #[test]
    fn user_frames_are_looked_up_in_the_booted_program() {
        use object::{Object, ObjectSymbol};

        let mut processes = ProcessMap::default();
        processes.insert("hello".into(), "/x/hello".into());
        assert_eq!(
            processes.program_elf("hello"),
            Some(PathBuf::from("/x/hello"))
        );
        assert_eq!(processes.program_elf("stranger"), None);

        assert_eq!(marker_function_for_lookup(), 0x5eed);
        let exe = std::env::current_exe().unwrap();
        let bytes = std::fs::read(&exe).unwrap();
        let file = object::File::parse(&*bytes).unwrap();
        // Both manglings keep the identifier itself.
        let address = file
            .symbols()
            .find(|symbol| {
                symbol
                    .name()
                    .is_ok_and(|name| name.contains("marker_function_for_lookup"))
            })
            .expect("marker function in the symbol table")
            .address();
        let workspace_root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();

        // The test binary as a user program named `marker`; the kernel ELF is missing.
        let symbolizer = Symbolizer::load(Path::new("/nonexistent/vigil-kernel"), workspace_root);
        let mut processes = ProcessMap::default();
        processes.insert("marker".into(), exe);
        let line = format!("  #0 pc  {address:#018x} (marker)");
        let rewritten = symbolizer.rewrite(&line, &processes);
        assert!(
            rewritten.contains(
                "(marker) xtask::symbolize::tests::marker_function_for_lookup at \
                 xtask/src/symbolize.rs:"
            ),
            "{rewritten}"
        );
        // A kernel frame stays as it is without the kernel ELF.
        assert_eq!(
            symbolizer.rewrite("  #1 ret 0xffffffff80102def", &processes),
            "  #1 ret 0xffffffff80102def"
        );
    }
}
