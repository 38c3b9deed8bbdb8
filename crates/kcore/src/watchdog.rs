//! The NMI watchdog's policy, host-tested: the `watchdog=` boot option and the lockup
//! criterion (no progress across consecutive watchdog NMIs).
//!
//! `watchdog=` takes `off`, or a comma-separated list of: a period in milliseconds (`50`,
//! `50ms`: how often the watchdog NMI fires), `panic` (report, then stop the machine with
//! the failure status: the default) or `report` (report, then keep running and report
//! again while the lockup lasts), and optionally the NMI source `pit` or `pmu` (default: the
//! performance counter when CPUID reports one, else the PIT). A lockup is declared after
//! [`LOCKUP_NMIS`] consecutive watchdog NMIs that saw no progress, or after
//! [`MIN_LOCKUP_NMIS`] of them once they span the threshold (`LOCKUP_NMIS` periods) of
//! kernel time, so at the default period of 50 ms it is reported between 500 and 550 ms
//! after the kernel stopped even when NMIs arrive late.

/// Default NMI period in milliseconds.
pub const DEFAULT_PERIOD_MS: u32 = 50;
/// Shortest accepted period.
pub const MIN_PERIOD_MS: u32 = 10;
/// Longest accepted period.
pub const MAX_PERIOD_MS: u32 = 1000;
/// Consecutive watchdog NMIs without progress that make a lockup (MINIX also uses 10, at
/// one NMI every 0.5–1 s).
pub const LOCKUP_NMIS: u32 = 10;
/// Fewest consecutive quiet NMIs that make a lockup when the quiet time has already reached
/// the threshold (NMIs came late: a busy host ran the CPU less often than the clock).
/// More than one, so a host that froze the whole machine (clock running, neither tick nor
/// NMI delivered) is not mistaken for a lockup by the first NMI after it.
pub const MIN_LOCKUP_NMIS: u32 = 3;

/// What to do once a lockup is detected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Print the report and the epitaph, then stop the machine with the failure status.
    Panic,
    /// Print the report and the epitaph, then return to the locked-up code; say again every
    /// [`LOCKUP_NMIS`] NMIs while it lasts, and say when progress resumes.
    Report,
}

/// Which NMI source to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceChoice {
    /// The performance counter when CPUID leaf 0xA reports one, else the PIT.
    Auto,
    /// PIT channel 0 through the 8259 to the local APIC's LINT0 in NMI delivery mode.
    Pit,
    /// Performance-counter overflow (unhalted core cycles) in NMI delivery mode.
    Pmu,
}

/// The parsed `watchdog=` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub enabled: bool,
    pub period_ms: u32,
    pub action: Action,
    pub source: SourceChoice,
}

/// Why a `watchdog=` value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigError<'a> {
    /// An item is not `off`, `panic`, `report`, `pit`, `pmu` or a number of milliseconds.
    UnknownItem(&'a str),
    /// The period is outside [`MIN_PERIOD_MS`]..=[`MAX_PERIOD_MS`].
    PeriodOutOfRange(u32),
    /// `off` combined with anything else.
    OffWithOthers,
}

impl core::fmt::Display for ConfigError<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ConfigError::UnknownItem(item) => write!(
                f,
                "unknown item '{item}' (off, panic, report, pit, pmu or a period in ms)"
            ),
            ConfigError::PeriodOutOfRange(ms) => write!(
                f,
                "period {ms} ms is outside {MIN_PERIOD_MS}..={MAX_PERIOD_MS} ms"
            ),
            ConfigError::OffWithOthers => write!(f, "'off' cannot be combined with other items"),
        }
    }
}

impl Config {
    /// The watchdog without a `watchdog=` option: on, 50 ms, panic, automatic source.
    pub const DEFAULT: Config = Config {
        enabled: true,
        period_ms: DEFAULT_PERIOD_MS,
        action: Action::Panic,
        source: SourceChoice::Auto,
    };

    /// Parses the value of `watchdog=`. Later items override earlier ones of the same kind.
    pub fn parse(value: &str) -> Result<Config, ConfigError<'_>> {
        if value == "off" {
            return Ok(Config {
                enabled: false,
                ..Config::DEFAULT
            });
        }
        let mut config = Config::DEFAULT;
        for item in value.split(',') {
            match item {
                "off" => return Err(ConfigError::OffWithOthers),
                "panic" => config.action = Action::Panic,
                "report" => config.action = Action::Report,
                "pit" => config.source = SourceChoice::Pit,
                "pmu" => config.source = SourceChoice::Pmu,
                _ => {
                    let digits = item.strip_suffix("ms").unwrap_or(item);
                    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(ConfigError::UnknownItem(item));
                    }
                    let ms = digits.parse::<u32>().unwrap_or(u32::MAX);
                    if !(MIN_PERIOD_MS..=MAX_PERIOD_MS).contains(&ms) {
                        return Err(ConfigError::PeriodOutOfRange(ms));
                    }
                    config.period_ms = ms;
                }
            }
        }
        Ok(config)
    }

    /// How long the kernel must make no progress before the lockup is declared, in ms.
    pub const fn threshold_ms(&self) -> u32 {
        self.period_ms * LOCKUP_NMIS
    }
}

/// What one watchdog NMI concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Progress since the last NMI, or not yet enough NMIs without it.
    Alive,
    /// The kernel made no progress across `LOCKUP_NMIS` NMIs: report it (first time).
    Lockup,
    /// Still no progress, another `LOCKUP_NMIS` NMIs after the report: say so again.
    StillLockedUp { quiet_nmis: u64 },
    /// Progress resumed after a reported lockup that lasted `quiet_nmis` NMIs.
    Recovered { quiet_nmis: u64 },
}

/// The lockup criterion over a progress counter sampled at each watchdog NMI.
///
/// "Progress" is any monotonic counter the healthy kernel advances on its own: the kernel
/// uses timer ticks plus console lines written (so a long report on a slow serial line,
/// written with interrupts off, is not taken for a lockup).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detector {
    last_progress: u64,
    /// Time of the NMI that last saw progress (or of the start).
    last_progress_ns: u64,
    /// Quiet time that is a lockup even before `LOCKUP_NMIS` NMIs.
    threshold_ns: u64,
    /// Consecutive NMIs that saw `last_progress` unchanged.
    quiet_nmis: u64,
    reported: bool,
}

impl Detector {
    /// A detector that has seen `progress` at `now_ns` as the starting value; `threshold_ns`
    /// is the quiet time that makes a lockup with [`MIN_LOCKUP_NMIS`] NMIs.
    pub const fn new(progress: u64, now_ns: u64, threshold_ns: u64) -> Detector {
        Detector {
            last_progress: progress,
            last_progress_ns: now_ns,
            threshold_ns,
            quiet_nmis: 0,
            reported: false,
        }
    }

    /// Consecutive NMIs without progress so far.
    pub const fn quiet_nmis(&self) -> u64 {
        self.quiet_nmis
    }

    /// Feeds one watchdog NMI that read `progress` at `now_ns`.
    pub fn on_nmi(&mut self, progress: u64, now_ns: u64) -> Verdict {
        let threshold = u64::from(LOCKUP_NMIS);
        if progress != self.last_progress {
            self.last_progress = progress;
            self.last_progress_ns = now_ns;
            let quiet = core::mem::take(&mut self.quiet_nmis);
            if core::mem::take(&mut self.reported) {
                return Verdict::Recovered { quiet_nmis: quiet };
            }
            return Verdict::Alive;
        }
        self.quiet_nmis += 1;
        if !self.reported {
            let enough_nmis = self.quiet_nmis >= threshold;
            let enough_time = self.quiet_nmis >= u64::from(MIN_LOCKUP_NMIS)
                && now_ns.saturating_sub(self.last_progress_ns) >= self.threshold_ns;
            if enough_nmis || enough_time {
                self.reported = true;
                return Verdict::Lockup;
            }
            return Verdict::Alive;
        }
        if self.quiet_nmis.is_multiple_of(threshold) {
            return Verdict::StillLockedUp {
                quiet_nmis: self.quiet_nmis,
            };
        }
        Verdict::Alive
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_values() {
        assert_eq!(Config::parse("off").map(|c| c.enabled), Ok(false));
        assert_eq!(
            Config::parse("report"),
            Ok(Config {
                action: Action::Report,
                ..Config::DEFAULT
            })
        );
        assert_eq!(Config::parse("panic"), Ok(Config::DEFAULT));
        assert_eq!(
            Config::parse("200ms,report,pit"),
            Ok(Config {
                enabled: true,
                period_ms: 200,
                action: Action::Report,
                source: SourceChoice::Pit,
            })
        );
        assert_eq!(Config::parse("20").map(|c| c.period_ms), Ok(20));
        assert_eq!(
            Config::parse("pmu").map(|c| c.source),
            Ok(SourceChoice::Pmu)
        );
        assert_eq!(Config::DEFAULT.threshold_ms(), 500);
    }

    #[test]
    fn refuses_everything_else() {
        assert_eq!(Config::parse(""), Err(ConfigError::UnknownItem("")));
        assert_eq!(Config::parse("on"), Err(ConfigError::UnknownItem("on")));
        assert_eq!(Config::parse("ms"), Err(ConfigError::UnknownItem("ms")));
        assert_eq!(Config::parse("-5"), Err(ConfigError::UnknownItem("-5")));
        assert_eq!(Config::parse("5"), Err(ConfigError::PeriodOutOfRange(5)));
        assert_eq!(
            Config::parse("99999999999"),
            Err(ConfigError::PeriodOutOfRange(u32::MAX))
        );
        assert_eq!(Config::parse("off,panic"), Err(ConfigError::OffWithOthers));
        assert_eq!(
            Config::parse("report,,pit"),
            Err(ConfigError::UnknownItem(""))
        );
    }

    /// 50 ms NMIs, 500 ms threshold.
    const PERIOD: u64 = 50_000_000;
    const THRESHOLD: u64 = 10 * PERIOD;

    fn detector(progress: u64) -> (Detector, impl FnMut() -> u64) {
        let mut now = 0;
        (Detector::new(progress, 0, THRESHOLD), move || {
            now += PERIOD;
            now
        })
    }

    #[test]
    fn a_lockup_needs_ten_quiet_nmis_in_a_row() {
        let (mut detector, mut clock) = detector(0);
        for _ in 0..LOCKUP_NMIS - 1 {
            assert_eq!(detector.on_nmi(0, clock()), Verdict::Alive);
        }
        // One tick resets the count.
        assert_eq!(detector.on_nmi(1, clock()), Verdict::Alive);
        for _ in 0..LOCKUP_NMIS - 1 {
            assert_eq!(detector.on_nmi(1, clock()), Verdict::Alive);
        }
        assert_eq!(detector.on_nmi(1, clock()), Verdict::Lockup);
        assert_eq!(detector.quiet_nmis(), u64::from(LOCKUP_NMIS));
    }

    #[test]
    fn late_nmis_declare_it_on_time_but_never_on_one_or_two() {
        // NMIs 200 ms apart (a starved vCPU): the threshold is reached at the third.
        let mut detector = Detector::new(5, 0, THRESHOLD);
        assert_eq!(detector.on_nmi(5, 200_000_000), Verdict::Alive);
        assert_eq!(detector.on_nmi(5, 400_000_000), Verdict::Alive);
        assert_eq!(detector.on_nmi(5, 600_000_000), Verdict::Lockup);
        // A frozen host: the first (and second) NMI after a long gap is not enough.
        let mut frozen = Detector::new(5, 0, THRESHOLD);
        assert_eq!(frozen.on_nmi(5, 5_000_000_000), Verdict::Alive);
        assert_eq!(frozen.on_nmi(6, 5_000_000_001), Verdict::Alive);
        assert_eq!(frozen.on_nmi(6, 9_000_000_000), Verdict::Alive);
        assert_eq!(frozen.on_nmi(6, 9_000_000_001), Verdict::Alive);
        // Quiet time is counted from the NMI that last saw progress.
        assert_eq!(frozen.on_nmi(6, 9_000_000_002), Verdict::Lockup);
    }

    #[test]
    fn steady_progress_is_never_a_lockup() {
        let (mut detector, mut clock) = detector(0);
        for progress in 1..10_000 {
            assert_eq!(detector.on_nmi(progress, clock()), Verdict::Alive);
        }
    }

    #[test]
    fn a_lasting_lockup_is_repeated_and_its_end_reported() {
        let (mut detector, mut clock) = detector(7);
        let verdicts: std::vec::Vec<Verdict> = (0..3 * LOCKUP_NMIS)
            .map(|_| detector.on_nmi(7, clock()))
            .filter(|verdict| *verdict != Verdict::Alive)
            .collect();
        assert_eq!(
            verdicts,
            [
                Verdict::Lockup,
                Verdict::StillLockedUp { quiet_nmis: 20 },
                Verdict::StillLockedUp { quiet_nmis: 30 }
            ]
        );
        assert_eq!(
            detector.on_nmi(8, clock()),
            Verdict::Recovered { quiet_nmis: 30 }
        );
        // After recovery, a new lockup is reported afresh.
        for _ in 0..LOCKUP_NMIS - 1 {
            assert_eq!(detector.on_nmi(8, clock()), Verdict::Alive);
        }
        assert_eq!(detector.on_nmi(8, clock()), Verdict::Lockup);
    }
}
