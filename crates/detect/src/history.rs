//! What the detector remembers between snapshots: per live thread (state since, last
//! progress, a short CPU-time history, last counters) and per program (typical rates).
//! Every structure here is bounded.

use alloc::collections::VecDeque;
use vigil_wire::{ThreadCounters, ThreadInfo};

/// CPU-time samples kept per window: a sample is stored only if at least
/// `window / CPU_SAMPLES_PER_WINDOW` after the previous one, so a fast snapshot rate does
/// not grow the history.
const CPU_SAMPLES_PER_WINDOW: u64 = 16;
/// Hard cap on stored samples per thread.
const MAX_CPU_SAMPLES: usize = 2 * CPU_SAMPLES_PER_WINDOW as usize + 2;

/// CPU time of a thread at a snapshot.
#[derive(Clone, Copy, Debug)]
struct CpuSample {
    at_ns: u64,
    cpu_ns: u64,
}

/// A thread's CPU share over a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WindowUsage {
    pub percent: u32,
    /// The span actually measured (at least the configured window).
    pub span_ns: u64,
}

/// A thread's rates since the previous snapshot (the anomaly metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rates {
    /// CPU time / wall time, in thousandths.
    pub cpu_permille: u64,
    pub messages_per_second: u64,
}

/// Everything remembered about one live thread (keyed by endpoint, so a reused slot with
/// a new generation starts afresh).
#[derive(Clone, Debug)]
pub(crate) struct ThreadHistory {
    /// (state code, wait target, wait argument): any change restarts `state_since_ns`.
    state: (u8, u64, u64),
    pub state_since_ns: u64,
    /// Sum of CPU time and every counter; counters only grow, so it changes iff the thread
    /// did anything.
    progress_mark: u64,
    pub progress_since_ns: u64,
    last_seen_ns: u64,
    last_cpu_ns: u64,
    last_messages_sent: u64,
    cpu_samples: VecDeque<CpuSample>,
}

/// Changes whenever any counter does. Destructured in full, so a new counter is not missed.
fn progress_mark(thread: &ThreadInfo) -> u64 {
    let ThreadCounters {
        cpu_ns,
        voluntary_switches,
        involuntary_switches,
        syscalls,
        messages_sent,
        messages_received,
        notifications_received,
        page_faults,
        kernel_calls,
    } = thread.counters;
    [
        voluntary_switches,
        involuntary_switches,
        syscalls,
        messages_sent,
        messages_received,
        notifications_received,
        page_faults,
        kernel_calls,
    ]
    .iter()
    .fold(cpu_ns, |sum, &c| sum.wrapping_add(c))
}

impl ThreadHistory {
    pub(crate) fn new(thread: &ThreadInfo, now_ns: u64) -> Self {
        ThreadHistory {
            state: (thread.state, thread.wait_target, thread.wait_argument),
            state_since_ns: now_ns,
            progress_mark: progress_mark(thread),
            progress_since_ns: now_ns,
            last_seen_ns: now_ns,
            last_cpu_ns: thread.counters.cpu_ns,
            last_messages_sent: thread.counters.messages_sent,
            cpu_samples: VecDeque::new(),
        }
    }

    pub(crate) fn last_seen_ns(&self) -> u64 {
        self.last_seen_ns
    }

    /// Folds in the thread's record at `now_ns` (later than any previous call) and returns
    /// its CPU share over the last `window_ns` (None until a window of history exists) and
    /// its rates since the previous snapshot (None on first sight).
    pub(crate) fn update(
        &mut self,
        thread: &ThreadInfo,
        now_ns: u64,
        window_ns: u64,
    ) -> (Option<WindowUsage>, Option<Rates>) {
        let state = (thread.state, thread.wait_target, thread.wait_argument);
        if state != self.state {
            self.state = state;
            self.state_since_ns = now_ns;
        }
        let mark = progress_mark(thread);
        if mark != self.progress_mark {
            self.progress_mark = mark;
            self.progress_since_ns = now_ns;
        }

        let ThreadCounters {
            cpu_ns,
            messages_sent,
            ..
        } = thread.counters;
        let usage = self.window_usage(now_ns, cpu_ns, window_ns);
        self.record_cpu(now_ns, cpu_ns, window_ns);

        let rates = (now_ns > self.last_seen_ns).then(|| {
            let elapsed = u128::from(now_ns - self.last_seen_ns);
            let cpu = u128::from(cpu_ns.saturating_sub(self.last_cpu_ns));
            let sent = u128::from(messages_sent.saturating_sub(self.last_messages_sent));
            Rates {
                cpu_permille: saturate(cpu * 1000 / elapsed),
                messages_per_second: saturate(sent * 1_000_000_000 / elapsed),
            }
        });
        self.last_seen_ns = now_ns;
        self.last_cpu_ns = cpu_ns;
        self.last_messages_sent = messages_sent;
        (usage, rates)
    }

    /// CPU share since the newest stored sample that is at least `window_ns` old.
    fn window_usage(&self, now_ns: u64, cpu_ns: u64, window_ns: u64) -> Option<WindowUsage> {
        let base = self
            .cpu_samples
            .iter()
            .rev()
            .find(|s| now_ns > s.at_ns && now_ns - s.at_ns >= window_ns)?;
        let span_ns = now_ns - base.at_ns;
        let used = u128::from(cpu_ns.saturating_sub(base.cpu_ns));
        let percent = (used * 100 / u128::from(span_ns)).min(u128::from(u32::MAX)) as u32;
        Some(WindowUsage { percent, span_ns })
    }

    fn record_cpu(&mut self, now_ns: u64, cpu_ns: u64, window_ns: u64) {
        let spacing = (window_ns / CPU_SAMPLES_PER_WINDOW).max(1);
        let due = self
            .cpu_samples
            .back()
            .is_none_or(|last| now_ns.saturating_sub(last.at_ns) >= spacing);
        if due {
            self.cpu_samples.push_back(CpuSample {
                at_ns: now_ns,
                cpu_ns,
            });
        }
        // Keep only the newest sample that already covers a whole window, and those after.
        while self.cpu_samples.len() >= 2
            && now_ns.saturating_sub(self.cpu_samples[1].at_ns) >= window_ns
        {
            self.cpu_samples.pop_front();
        }
        while self.cpu_samples.len() > MAX_CPU_SAMPLES {
            self.cpu_samples.pop_front();
        }
    }
}

fn saturate(value: u128) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// Fixed-point fraction bits of `Ewma`.
const EWMA_FRACTION_BITS: u32 = 8;
/// Weight of a new sample: 1 / 2^EWMA_SHIFT (1/8: the last ~8 samples dominate).
const EWMA_SHIFT: u32 = 3;

/// An exponentially weighted moving average in fixed point.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Ewma {
    scaled: u64,
}

impl Ewma {
    pub(crate) fn value(&self) -> u64 {
        self.scaled >> EWMA_FRACTION_BITS
    }

    fn add(&mut self, sample: u64, first: bool) {
        let sample = sample.saturating_mul(1 << EWMA_FRACTION_BITS);
        if first {
            self.scaled = sample;
        } else {
            let delta = (i128::from(sample) - i128::from(self.scaled)) >> EWMA_SHIFT;
            self.scaled = (i128::from(self.scaled) + delta).clamp(0, i128::from(u64::MAX)) as u64;
        }
    }
}

/// What is typical for one program (all processes with one name, across restarts): EWMAs
/// of the per-snapshot *busiest thread's* rates, so a program with one busy worker and
/// idle helpers is not "anomalous" every snapshot.
#[derive(Clone, Debug, Default)]
pub(crate) struct ProgramStats {
    pub samples: u32,
    pub cpu_permille: Ewma,
    pub messages_per_second: Ewma,
    pub last_seen_ns: u64,
}

impl ProgramStats {
    pub(crate) fn add(&mut self, busiest: Rates, now_ns: u64) {
        let first = self.samples == 0;
        self.cpu_permille.add(busiest.cpu_permille, first);
        self.messages_per_second
            .add(busiest.messages_per_second, first);
        self.samples = self.samples.saturating_add(1);
        self.last_seen_ns = now_ns;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread(cpu_ns: u64) -> ThreadInfo {
        ThreadInfo {
            counters: ThreadCounters {
                cpu_ns,
                ..ThreadCounters::default()
            },
            ..ThreadInfo::default()
        }
    }

    #[test]
    fn cpu_history_stays_bounded_at_any_snapshot_rate() {
        let mut history = ThreadHistory::new(&thread(0), 0);
        let window = 2_000_000_000;
        for i in 1..100_000u64 {
            let now = i * 1_000_000; // 1 ms snapshots
            let (usage, _) = history.update(&thread(now / 2), now, window);
            if now >= window + window / CPU_SAMPLES_PER_WINDOW {
                let usage = usage.expect("a window of history");
                assert_eq!(usage.percent, 50);
                assert!(usage.span_ns >= window);
                assert!(usage.span_ns <= window + window / CPU_SAMPLES_PER_WINDOW);
            }
            assert!(history.cpu_samples.len() <= CPU_SAMPLES_PER_WINDOW as usize + 2);
        }
    }

    #[test]
    fn ewma_converges_and_starts_at_the_first_sample() {
        let mut average = Ewma::default();
        average.add(100, true);
        assert_eq!(average.value(), 100);
        for _ in 0..100 {
            average.add(20, false);
        }
        assert_eq!(average.value(), 20);
    }
}
