//! `cargo xtask`: builds the kernel, boots it in QEMU, runs the tests.
fn main() {}
