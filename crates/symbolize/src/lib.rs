//! Host-side symbolisation of Vigil backtraces: kernel and user frames to function, file:line.
//!
//! The kernel prints kernel frames as `  #0 pc  0xffffffff80104abc` (the faulting instruction)
//! or `  #1 ret 0xffffffff80102def` (a return address), and user frames the same way followed
//! by the process name: `  #0 pc  0x0000000000401234 (hello)`; its monitor channel sends the
//! same addresses raw in a crash report. This crate looks such addresses up in the DWARF of
//! the kernel ELF or of the process's program ELF (symbol table as a fallback) and rewrites
//! console lines with ` <function> at <file>:<line>` appended; inlined frames follow as
//! ` (inlined into <outer> at <file>:<line>)`, unknown addresses get ` ??`, and a frame of a
//! process whose program is not known is left as it is. An upper-half address in a user frame
//! is the kernel's, so it is looked up in the kernel ELF.
//!
//! Used by the xtask (the console of `run`, `test`, `bench`) and by the `vigil` host tool
//! (crash reports of `vigil events` and `vigil top`).

#![forbid(unsafe_code)]

mod elf;
mod frame;
mod lookup;
mod symbolizer;

pub use elf::{ElfLookup, LoadError};
pub use frame::{format_frame_line, parse_frame, parse_frame_line, FrameKind, FrameLine, FrameRef};
pub use lookup::{
    describe_frames, lookup_frame, rewrite_line_with, AddressLookup, SourceFrame, UserLookup,
};
pub use symbolizer::{NoPrograms, ProgramDir, ProgramPaths, Symbolizer};

/// A function of this test binary whose address the tests look up in the binary's own DWARF.
#[cfg(test)]
pub(crate) mod test_support {
    use std::path::{Path, PathBuf};

    /// What the tests find at [`marker_address`].
    #[inline(never)]
    pub fn marker_function_for_lookup() -> u64 {
        std::hint::black_box(0x5eed)
    }

    /// The running test executable.
    pub fn this_binary() -> PathBuf {
        std::env::current_exe().unwrap()
    }

    /// The workspace root (source paths under it are shown relative).
    pub fn workspace_root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .and_then(Path::parent)
            .unwrap()
    }

    /// The link-time address of [`marker_function_for_lookup`], from the symbol table.
    pub fn marker_address() -> u64 {
        use object::{Object, ObjectSymbol};

        assert_eq!(marker_function_for_lookup(), 0x5eed);
        let bytes = std::fs::read(this_binary()).unwrap();
        let file = object::File::parse(&*bytes).unwrap();
        file.symbols()
            .find(|symbol| {
                symbol.name().is_ok_and(|name| {
                    format!("{:#}", rustc_demangle::demangle(name))
                        .ends_with("test_support::marker_function_for_lookup")
                })
            })
            .expect("marker function in the symbol table")
            .address()
    }
}
