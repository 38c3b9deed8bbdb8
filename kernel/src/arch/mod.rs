//! Architecture selection: Vigil runs on x86-64 only; the rest of the kernel uses `arch::…`.

pub mod x86_64;
pub use self::x86_64::*;
