//! QEMU scenarios that boot user programs (IPC, scheduling, crashes); see `scenario.rs`.

use crate::scenario::Scenario;

/// Scenarios with user programs, run after the kernel-only ones.
pub const USER_SCENARIOS: &[Scenario] = &[];
