//! Vigil ABI: constants and types shared by the kernel, user space and host tools.
#![no_std]
#![forbid(unsafe_code)]

pub mod async_message;
pub mod ds;
pub mod endpoint;
pub mod error;
pub mod exactly_once;
pub mod heartbeat;
pub mod host_command;
pub mod introspect;
pub mod layout;
pub mod log;
pub mod message;
pub mod pm;
pub mod ptrace;
pub mod qemu_exit;
pub mod rs;
pub mod server_introspect;
pub mod signal;
pub mod syscall;
pub mod syscall_text;
pub mod trace;
pub mod user_memory;
pub mod vm;
pub mod wait;

pub use endpoint::Endpoint;
pub use error::Error;
pub use message::Message;
