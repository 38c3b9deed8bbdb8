//! What a monitor client may change — the trace event mask and the snapshot period — and
//! the rule that each client starts from the defaults.
//!
//! A client's Hello starts its session: the settings go back to the documented defaults
//! ([`DEFAULT_EVENT_MASK`], [`DEFAULT_SNAPSHOT_PERIOD_MS`]) before the kernel answers, so an
//! event mask of 0 or a 10 ms period one client set never outlives it into the next
//! client's session. Requests are clamped to what the kernel supports: mask bits of event
//! kinds that do not exist are dropped, a period below [`MIN_SNAPSHOT_PERIOD_MS`] becomes
//! that (0 turns periodic snapshots off).

use vigil_abi::trace::{EventKind, DEFAULT_EVENT_MASK};

/// Default snapshot period: 10 per second.
pub const DEFAULT_SNAPSHOT_PERIOD_MS: u32 = 100;
/// Shortest snapshot period a host may ask for.
pub const MIN_SNAPSHOT_PERIOD_MS: u32 = 10;

/// The settings in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MonitorSettings {
    pub event_mask: u64,
    /// 0: no periodic snapshots.
    pub snapshot_period_ms: u32,
}

impl MonitorSettings {
    pub const DEFAULT: MonitorSettings = MonitorSettings {
        event_mask: DEFAULT_EVENT_MASK,
        snapshot_period_ms: DEFAULT_SNAPSHOT_PERIOD_MS,
    };

    /// A client said Hello: its session starts from the defaults.
    pub fn start_session(&mut self) {
        *self = MonitorSettings::DEFAULT;
    }

    /// Sets the event mask to `requested` without unknown kinds; returns what was set.
    pub fn set_event_mask(&mut self, requested: u64) -> u64 {
        let valid = (1u64 << EventKind::COUNT) - 1;
        self.event_mask = requested & valid;
        self.event_mask
    }

    /// Sets the snapshot period (0 = off, else at least the minimum); returns what was set.
    pub fn set_snapshot_period(&mut self, requested_ms: u32) -> u32 {
        self.snapshot_period_ms = if requested_ms == 0 {
            0
        } else {
            requested_ms.max(MIN_SNAPSHOT_PERIOD_MS)
        };
        self.snapshot_period_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hello_undoes_what_the_previous_client_set() {
        let mut settings = MonitorSettings::DEFAULT;
        assert_eq!(settings.set_event_mask(0), 0);
        assert_eq!(settings.set_snapshot_period(1), MIN_SNAPSHOT_PERIOD_MS);
        assert_ne!(settings, MonitorSettings::DEFAULT);
        settings.start_session();
        assert_eq!(settings, MonitorSettings::DEFAULT);
        assert_eq!(settings.event_mask, DEFAULT_EVENT_MASK);
        assert_eq!(settings.snapshot_period_ms, 100);
    }

    #[test]
    fn requests_are_clamped_to_what_exists() {
        let mut settings = MonitorSettings::DEFAULT;
        assert_eq!(
            settings.set_event_mask(u64::MAX),
            (1 << EventKind::COUNT) - 1
        );
        assert_eq!(settings.set_snapshot_period(0), 0);
        assert_eq!(settings.set_snapshot_period(250), 250);
    }
}
