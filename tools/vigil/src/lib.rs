//! The `vigil` host tool as a library: connection, hub, model, TUI, events, record/replay,
//! export, metrics, crash symbolisation.
//!
//! The binary (`src/main.rs`) only calls [`cli::main`]; everything else lives here so that
//! tests can drive the model and render the TUI into a test backend.

pub mod cli;
pub mod describe;
pub mod events;
pub mod export;
pub mod hub;
pub mod link;
pub mod metrics;
pub mod model;
pub mod record;
pub mod service;
pub mod source;
pub mod symbols;
pub mod top;
