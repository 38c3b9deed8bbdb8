//! Detection over snapshots: deadlocks, hung chains, CPU hogs (shared by sysmon and the host tool).
#![no_std]
