//! RS's heartbeat rule (issue 10): when RS pings a service and when the service's silence
//! is a hang, as a pure function of RS's tick times so the rule is host-tested here and RS
//! (`user/servers/rs`) only sends the pings and kills what it declares hung.
//!
//! A sign of life (the instance's start or takeover, an answer to a ping) is dated to RS's
//! tick and restarts the schedule: a ping one period after it, another a period later, and
//! the verdict when `MISSED_HEARTBEATS` periods have passed since it — the moment the
//! `MISSED_HEARTBEATS`th ping would be due, `MISSED_HEARTBEATS - 1` of them unanswered. RS's
//! lateness is never the service's: the verdict also needs those pings really sent and the
//! first of them `MISSED_HEARTBEATS - 1` periods old, so when RS pinged late the service
//! gets the same time counted from the ping it got. Deadlines count as reached at the tick
//! nearest to them, so neither the pings nor the verdict drift by a tick per period.

use crate::rs::MISSED_HEARTBEATS;

/// RS's tick: how often it looks at its deadlines (heartbeats, backoffs, initialisation),
/// the precision of every one of them.
pub const TICK_NS: u64 = 10_000_000;

/// Half a tick: a deadline counts as reached at the tick at most this far before it.
const HALF_TICK_NS: u64 = TICK_NS / 2;

/// Whether `deadline_ns` is reached at RS's tick `now_ns` (the tick nearest to it).
pub const fn reached(now_ns: u64, deadline_ns: u64) -> bool {
    now_ns.saturating_add(HALF_TICK_NS) >= deadline_ns
}

/// What a service's heartbeats ask of RS at a tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beat {
    /// Nothing is due.
    Wait,
    /// Send it a ping now (already counted as unanswered).
    Ping,
    /// It is hung: silent for this long since its last sign of life.
    Hung { silent_ns: u64 },
}

/// One service's heartbeat state, in RS's kernel-time nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pings {
    /// Its last sign of life, dated to RS's tick.
    pub alive_ns: u64,
    /// When RS last pinged it, or its last sign of life when that came later.
    pub last_ping_ns: u64,
    /// When RS sent the first of the pings still unanswered (meaningful when
    /// `unanswered` > 0).
    pub first_unanswered_ns: u64,
    /// Pings in a row it has not answered.
    pub unanswered: u32,
}

impl Pings {
    /// A service whose last sign of life was at RS's tick `tick_ns`.
    pub const fn alive_since(tick_ns: u64) -> Pings {
        Pings {
            alive_ns: tick_ns,
            last_ping_ns: tick_ns,
            first_unanswered_ns: 0,
            unanswered: 0,
        }
    }

    /// A sign of life at RS's tick `tick_ns`: the schedule starts again from it.
    pub fn answered(&mut self, tick_ns: u64) {
        *self = Pings::alive_since(tick_ns);
    }

    /// The decision at RS's tick `now_ns` for a service pinged every `period_ns` (> 0):
    /// the verdict first, then whether a ping is due (recorded here as sent at `now_ns`).
    pub fn at_tick(&mut self, now_ns: u64, period_ns: u64) -> Beat {
        let periods = u64::from(MISSED_HEARTBEATS);
        let since_first_ping = (periods - 1).saturating_mul(period_ns);
        let hung = self.unanswered >= MISSED_HEARTBEATS - 1
            && reached(
                now_ns,
                self.first_unanswered_ns.saturating_add(since_first_ping),
            )
            && reached(
                now_ns,
                self.alive_ns
                    .saturating_add(periods.saturating_mul(period_ns)),
            );
        if hung {
            return Beat::Hung {
                silent_ns: now_ns.saturating_sub(self.alive_ns),
            };
        }
        if !reached(now_ns, self.last_ping_ns.saturating_add(period_ns)) {
            return Beat::Wait;
        }
        if self.unanswered == 0 {
            self.first_unanswered_ns = now_ns;
        }
        self.unanswered = self.unanswered.saturating_add(1);
        self.last_ping_ns = now_ns;
        Beat::Ping
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    const MS: u64 = 1_000_000;
    const PERIOD: u64 = 100 * MS;

    /// RS's ticks from `from_ns` to `to_ns` (each `jitter_ns` late, as RS reads the clock
    /// after the tick), with what each decided: the times of the pings and of the verdict.
    fn run(pings: &mut Pings, from_ns: u64, to_ns: u64, jitter_ns: u64) -> (Vec<u64>, Option<u64>) {
        let mut sent = Vec::new();
        let mut tick = from_ns;
        while tick <= to_ns {
            let now = tick + jitter_ns;
            match pings.at_tick(now, PERIOD) {
                Beat::Ping => sent.push(now),
                Beat::Hung { .. } => return (sent, Some(now)),
                Beat::Wait => {}
            }
            tick += TICK_NS;
        }
        (sent, None)
    }

    #[test]
    fn a_silent_service_is_hung_three_periods_after_its_last_sign_of_life() {
        // Alive at the tick of 1 s (RS read the clock 20 µs into it); silent from then.
        let start = 1_000 * MS + 20_000;
        let mut pings = Pings::alive_since(start);
        let (sent, verdict) = run(&mut pings, 1_000 * MS, 2_000 * MS, 20_000);
        assert_eq!(
            sent,
            [start + PERIOD, start + 2 * PERIOD],
            "one ping a period, no drift"
        );
        assert_eq!(verdict, Some(start + 3 * PERIOD));
        assert_eq!(pings.unanswered, 2);
    }

    #[test]
    fn the_tick_reading_the_clock_a_little_earlier_or_later_changes_nothing() {
        for (alive_jitter, tick_jitter) in [(4 * MS, 0), (0, 4 * MS), (30_000, 10_000)] {
            let mut pings = Pings::alive_since(1_000 * MS + alive_jitter);
            let (sent, verdict) = run(&mut pings, 1_000 * MS, 2_000 * MS, tick_jitter);
            assert_eq!(sent, [1_100 * MS + tick_jitter, 1_200 * MS + tick_jitter]);
            assert_eq!(verdict, Some(1_300 * MS + tick_jitter));
        }
    }

    #[test]
    fn a_service_that_answers_is_never_hung() {
        let mut pings = Pings::alive_since(0);
        let mut tick = 0;
        while tick < 5_000 * MS {
            let beat = pings.at_tick(tick, PERIOD);
            assert!(!matches!(beat, Beat::Hung { .. }), "hung at {tick}");
            if beat == Beat::Ping {
                // Answered before the next tick, so dated to this one.
                pings.answered(tick);
            }
            tick += TICK_NS;
        }
        // It may even skip answering one ping of every two.
        let mut pings = Pings::alive_since(0);
        let mut answer_next = false;
        let mut tick = 0;
        while tick < 5_000 * MS {
            match pings.at_tick(tick, PERIOD) {
                Beat::Hung { .. } => panic!("hung at {tick} though it answers every other ping"),
                Beat::Ping if answer_next => pings.answered(tick),
                Beat::Ping => answer_next = true,
                Beat::Wait => {}
            }
            if pings.unanswered == 0 {
                answer_next = false;
            }
            tick += TICK_NS;
        }
    }

    #[test]
    fn an_answer_late_in_a_period_restarts_the_schedule_from_it() {
        let mut pings = Pings::alive_since(0);
        assert_eq!(pings.at_tick(100 * MS, PERIOD), Beat::Ping);
        // Answered 60 ms late, then silent: its three periods count from that answer.
        pings.answered(160 * MS);
        let (sent, verdict) = run(&mut pings, 170 * MS, 1_000 * MS, 0);
        assert_eq!(sent, [260 * MS, 360 * MS]);
        assert_eq!(verdict, Some(460 * MS));
    }

    #[test]
    fn an_rs_that_did_not_ping_never_blames_the_service() {
        // RS stalled from 50 ms to 500 ms after the sign of life (no tick handled): the
        // silence is 5 periods, but the service was never asked; its first ping is RS's
        // first tick after the stall, and it has 2 periods from that ping.
        let mut pings = Pings::alive_since(0);
        let (sent, verdict) = run(&mut pings, 0, 50 * MS, 0);
        assert_eq!((sent.len(), verdict), (0, None));
        let (sent, verdict) = run(&mut pings, 500 * MS, 2_000 * MS, 0);
        assert_eq!(
            sent,
            [500 * MS, 600 * MS],
            "the late ping, then one a period"
        );
        assert_eq!(verdict, Some(700 * MS));
    }

    #[test]
    fn an_rs_late_for_the_second_ping_does_not_shorten_the_first_ones_time() {
        let mut pings = Pings::alive_since(0);
        let (sent, _) = run(&mut pings, 0, 100 * MS, 0);
        assert_eq!(sent, [100 * MS]);
        // RS stalls until 290 ms: the second ping goes late, and the verdict comes no
        // earlier than 3 periods after the sign of life, 2 after the first ping.
        let (sent, verdict) = run(&mut pings, 290 * MS, 1_000 * MS, 0);
        assert_eq!(sent, [290 * MS]);
        assert_eq!(verdict, Some(300 * MS));
        assert_eq!(pings.unanswered, 2);
    }

    #[test]
    fn after_a_stall_rs_pings_before_it_judges() {
        // RS sent one ping and then handled no tick for a second (it was stalled). An
        // answer the service sent meanwhile waits behind RS's next tick (the kernel
        // delivers CLOCK first), so one unanswered ping is never a verdict, however old:
        // that tick pings again, and the answer is read right after it.
        let mut pings = Pings::alive_since(0);
        assert_eq!(pings.at_tick(100 * MS, PERIOD), Beat::Ping);
        assert_eq!(pings.at_tick(1_100 * MS, PERIOD), Beat::Ping);
        let mut answered = pings;
        answered.answered(1_100 * MS);
        assert_eq!(answered.at_tick(1_110 * MS, PERIOD), Beat::Wait);
        // No answer came: two pings unanswered, the first ten periods old.
        assert_eq!(
            pings.at_tick(1_110 * MS, PERIOD),
            Beat::Hung {
                silent_ns: 1_110 * MS
            }
        );
    }

    #[test]
    fn deadlines_round_to_the_nearest_tick() {
        assert!(reached(95 * MS, 100 * MS));
        assert!(!reached(95 * MS - 1, 100 * MS));
        assert!(reached(u64::MAX, u64::MAX));
        assert!(reached(0, 0));
    }
}
