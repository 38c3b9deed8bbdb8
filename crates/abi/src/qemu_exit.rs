//! Exit codes the kernel writes to QEMU's isa-debug-exit device, and how QEMU reports them.
//!
//! QEMU is started with `-device isa-debug-exit,iobase=0xf4,iosize=0x04`. A write of
//! `code` to port 0xf4 makes QEMU exit with status `(code << 1) | 1`.

/// I/O port of the isa-debug-exit device.
pub const PORT: u16 = 0xf4;

/// The kernel finished what it was asked to do (e.g. a test scenario) and all checks passed.
pub const SUCCESS: u32 = 0x10;

/// The kernel hit a fatal error: unexpected exception, panic, failed self-check.
pub const FAILURE: u32 = 0x11;

/// The process exit status QEMU reports for a kernel exit code.
pub const fn host_status(code: u32) -> i32 {
    ((code << 1) | 1) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_status_matches_qemu_formula() {
        assert_eq!(host_status(SUCCESS), 33);
        assert_eq!(host_status(FAILURE), 35);
        // QEMU's own exit status for a normal quit is 0, which no kernel code maps to.
        assert_ne!(host_status(SUCCESS), 0);
    }
}
