//! The stateful detector over sequences of synthetic snapshots: hogs, hung chains,
//! anomalies, edge-triggering and forgetting.

mod support;

use support::*;
use vigil_abi::endpoint::Endpoint;
use vigil_abi::wait::ThreadState;
use vigil_detect::{
    Alert, AlertKind, Detector, DetectorConfig, EdgeKind, METRIC_CPU_PERMILLE,
    METRIC_MESSAGES_PER_SECOND,
};
use vigil_wire::Snapshot;

fn cpu_hogs(alerts: &[Alert]) -> Vec<(u64, u32)> {
    alerts
        .iter()
        .filter_map(|a| match a.kind {
            AlertKind::CpuHog {
                thread, percent, ..
            } => Some((thread, percent)),
            _ => None,
        })
        .collect()
}

fn hung(alerts: &[Alert]) -> Vec<&Alert> {
    alerts
        .iter()
        .filter(|a| matches!(a.kind, AlertKind::HungChain { .. }))
        .collect()
}

fn anomalies(alerts: &[Alert]) -> Vec<(u64, &'static str, u64, u64)> {
    alerts
        .iter()
        .filter_map(|a| match a.kind {
            AlertKind::Anomaly {
                thread,
                metric,
                value,
                typical,
            } => Some((thread, metric, value, typical)),
            _ => None,
        })
        .collect()
}

/// A spinning thread (`spin#1`) and an idle one, at time `t` with `spin_cpu` ns used.
fn spinner(t: u64, spin_cpu: u64) -> Snapshot {
    SnapshotBuilder::at(t)
        .process(1, "spin")
        .thread(ep(1), 1, ThreadState::Running)
        .cpu(spin_cpu)
        .thread(ep(2), 1, receiving(Endpoint::ANY))
        .build()
}

#[test]
fn cpu_hog_is_raised_after_the_window_and_not_before() {
    let mut detector = Detector::new(DetectorConfig::default()); // 80% over 2 s
    let step = SECOND / 2;
    // Busy all the time from t = 0; the window is complete at t = 2 s.
    for i in 0..4 {
        let alerts = detector.observe(&spinner(i * step, i * step));
        assert!(cpu_hogs(&alerts).is_empty(), "raised too early at step {i}");
    }
    let alerts = detector.observe(&spinner(4 * step, 4 * step));
    assert_eq!(cpu_hogs(&alerts), vec![(ep(1).0, 100)]);
    assert_eq!(
        alerts[0].message,
        "cpu hog: spin#1 used 100% of a CPU over the last 2.0 s"
    );
    match alerts[0].kind {
        AlertKind::CpuHog { window_ns, .. } => assert_eq!(window_ns, 2 * SECOND),
        _ => unreachable!(),
    }
}

#[test]
fn cpu_hog_is_edge_triggered_and_clears_when_usage_drops() {
    let mut detector = Detector::new(DetectorConfig::default());
    let step = SECOND / 2;
    let mut cpu = 0;
    let mut raised = Vec::new();
    // 0..=10 s busy, then idle until 20 s, then busy again.
    for i in 0..=60u64 {
        let t = i * step;
        let busy = t <= 10 * SECOND || t > 20 * SECOND;
        if busy && i > 0 {
            cpu += step;
        }
        let alerts = detector.observe(&spinner(t, cpu));
        if !cpu_hogs(&alerts).is_empty() {
            raised.push(t);
        }
        let active = !cpu_hogs(detector.active()).is_empty();
        // Active exactly while the last 2 s were at least 80% busy.
        let busy_fraction_of_window = |t: u64| {
            let start = t - 2 * SECOND;
            let busy_ns = (start..t)
                .step_by(step as usize)
                .filter(|&s| s + step <= 10 * SECOND || s >= 20 * SECOND)
                .count() as u64
                * step;
            busy_ns * 100 / (2 * SECOND)
        };
        if t >= 2 * SECOND {
            assert_eq!(active, busy_fraction_of_window(t) >= 80, "at {t}");
        } else {
            assert!(!active);
        }
    }
    // Once for the first busy period, once again after it cleared.
    assert_eq!(raised, vec![2 * SECOND, 22 * SECOND]);
}

#[test]
fn memory_hog_is_reported_once_while_it_persists() {
    let build = |t, pages| {
        SnapshotBuilder::at(t)
            .process(7, "leaky")
            .pages(pages)
            .thread(ep(1), 7, ThreadState::Ready)
            .process(8, "small")
            .pages(100)
            .build()
    };
    let mut detector = Detector::new(DetectorConfig::default());
    assert!(detector.observe(&build(SECOND, 16383)).is_empty());
    let alerts = detector.observe(&build(2 * SECOND, 20000));
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0].kind,
        AlertKind::MemoryHog {
            pid: 7,
            pages: 20000
        }
    );
    assert_eq!(
        alerts[0].message,
        "memory hog: leaky (pid 7) maps 20000 pages (78 MiB)"
    );
    assert!(detector.observe(&build(3 * SECOND, 30000)).is_empty());
    // Current values in the active set, first sighting kept.
    assert_eq!(
        detector.active()[0].kind,
        AlertKind::MemoryHog {
            pid: 7,
            pages: 30000
        }
    );
    assert_eq!(detector.active()[0].first_seen_ns, 2 * SECOND);
    assert!(detector.observe(&build(4 * SECOND, 100)).is_empty());
    assert!(detector.active().is_empty());
    assert_eq!(detector.observe(&build(5 * SECOND, 20000)).len(), 1);
}

/// client#5 → sending to server#2 → awaiting reply from driver#3, which is receiving from
/// ANY (it lost the request). `driver_syscalls` lets the driver show progress.
fn stuck_chain(t: u64, driver_syscalls: u64) -> Snapshot {
    SnapshotBuilder::at(t)
        .process(1, "client")
        .process(2, "server")
        .process(3, "driver")
        .thread(ep(5), 1, sending(ep(2)))
        .thread(ep(2), 2, awaiting_reply(ep(3)))
        .thread(ep(3), 3, receiving(Endpoint::ANY))
        .syscalls(driver_syscalls)
        .cpu(1000)
        .build()
}

#[test]
fn hung_chain_is_raised_after_the_threshold_only() {
    let mut detector = Detector::new(DetectorConfig::default()); // 5 s
    for t in [0, SECOND, 3 * SECOND, 4 * SECOND] {
        assert!(detector.observe(&stuck_chain(t, 10)).is_empty(), "at {t}");
    }
    let alerts = detector.observe(&stuck_chain(5 * SECOND, 10));
    let found = hung(&alerts);
    assert_eq!(found.len(), 1);
    match &found[0].kind {
        AlertKind::HungChain { chain, blocked_ns } => {
            assert_eq!(*blocked_ns, 5 * SECOND);
            assert_eq!(chain.len(), 2);
            assert_eq!(chain[0].from, ep(5).0);
            assert_eq!(chain[0].kind, EdgeKind::Send);
            assert_eq!(chain[1].to, ep(3).0);
            assert_eq!(chain[1].kind, EdgeKind::AwaitReply);
        }
        _ => unreachable!(),
    }
    assert_eq!(
        found[0].message,
        "hung chain: client#5 → sending to server#2 → awaiting reply from driver#3, \
         which has made no progress for 5.0 s; client#5 blocked for 5.0 s"
    );
    // Persisting: not raised again.
    assert!(hung(&detector.observe(&stuck_chain(6 * SECOND, 10))).is_empty());
    assert_eq!(hung(detector.active()).len(), 1);
}

#[test]
fn no_hung_chain_while_the_end_makes_progress() {
    let mut detector = Detector::new(DetectorConfig::default());
    for i in 0..20 {
        // The driver keeps making system calls: slow, not hung.
        let alerts = detector.observe(&stuck_chain(i * SECOND, i));
        assert!(hung(&alerts).is_empty());
    }
}

#[test]
fn a_new_wait_restarts_the_blocked_clock() {
    let mut detector = Detector::new(DetectorConfig::default());
    detector.observe(&stuck_chain(0, 10));
    // At 4 s the client re-sends (new state: now receiving from the server), so its
    // blocked time restarts; the server has been waiting since 0.
    let resend = |t| {
        SnapshotBuilder::at(t)
            .process(1, "client")
            .process(2, "server")
            .process(3, "driver")
            .thread(ep(5), 1, receiving(ep(2)))
            .thread(ep(2), 2, awaiting_reply(ep(3)))
            .thread(ep(3), 3, receiving(Endpoint::ANY))
            .syscalls(10)
            .cpu(1000)
            .build()
    };
    detector.observe(&resend(4 * SECOND));
    let alerts = detector.observe(&resend(5 * SECOND));
    // The server's wait is 5 s old: a chain server#2 → driver#3 is hung; the client has
    // been in its new state for only 1 s, so the chain named starts at the server.
    let found = hung(&alerts);
    assert_eq!(found.len(), 1);
    match &found[0].kind {
        AlertKind::HungChain { chain, blocked_ns } => {
            assert_eq!(chain.len(), 1);
            assert_eq!(chain[0].from, ep(2).0);
            assert_eq!(*blocked_ns, 5 * SECOND);
        }
        _ => unreachable!(),
    }
    assert!(found[0].message.ends_with("(1 more thread waiting)"));
}

#[test]
fn a_deadlock_is_not_also_a_hung_chain() {
    let build = |t| {
        SnapshotBuilder::at(t)
            .process(1, "w")
            .thread(ep(1), 1, mutex(0x10, ep(2)))
            .thread(ep(2), 1, mutex(0x20, ep(1)))
            .thread(ep(3), 1, joining(ep(1)))
            .build()
    };
    let mut detector = Detector::new(DetectorConfig::default());
    for i in 0..10 {
        detector.observe(&build(i * SECOND));
    }
    assert_eq!(detector.active().len(), 1);
    assert!(matches!(
        detector.active()[0].kind,
        AlertKind::Deadlock { .. }
    ));
}

/// One snapshot of program "worker" (pid 1) with a busy thread #1 (50% CPU, 20 msg/s), an
/// idle helper #2, and thread #3 using `cpu3` permille and sending `msgs3` messages/s.
/// Cumulative counters are derived from `i` (snapshots 1 s apart).
fn workers(i: u64, totals: &mut [(u64, u64); 3], rates: [(u64, u64); 3]) -> Snapshot {
    for (total, (cpu_permille, msgs)) in totals.iter_mut().zip(rates) {
        total.0 += cpu_permille * SECOND / 1000;
        total.1 += msgs;
    }
    SnapshotBuilder::at(i * SECOND)
        .process(1, "worker")
        .thread(ep(1), 1, ThreadState::Ready)
        .cpu(totals[0].0)
        .sent(totals[0].1)
        .thread(ep(2), 1, receiving(Endpoint::ANY))
        .cpu(totals[1].0)
        .sent(totals[1].1)
        .thread(ep(3), 1, ThreadState::Ready)
        .cpu(totals[2].0)
        .sent(totals[2].1)
        .build()
}

#[test]
fn anomaly_after_enough_history_and_none_before() {
    let mut detector = Detector::new(DetectorConfig::default()); // 4×, 20 samples
    let mut totals = [(0, 0); 3];
    let normal = [(500, 20), (0, 0), (100, 5)];
    let wild = [(500, 20), (0, 0), (100, 500)]; // thread #3 floods messages
    detector.observe(&workers(0, &mut totals, normal));
    // Samples 1..=19: thread #3 already misbehaves but there is not enough history.
    for i in 1..20 {
        let rates = if i % 5 == 0 { wild } else { normal };
        assert!(anomalies(&detector.observe(&workers(i, &mut totals, rates))).is_empty());
    }
    // Normal behaviour with history: the busy thread and the idle helper are fine.
    for i in 20..30 {
        assert!(anomalies(&detector.observe(&workers(i, &mut totals, normal))).is_empty());
    }
    let alerts = detector.observe(&workers(30, &mut totals, wild));
    let found = anomalies(&alerts);
    assert_eq!(found.len(), 1, "{alerts:?}");
    let (thread, metric, value, typical) = found[0];
    assert_eq!(
        (thread, metric, value),
        (ep(3).0, METRIC_MESSAGES_PER_SECOND, 500)
    );
    assert!(typical >= 20 && value > 4 * typical, "typical {typical}");
    let message = &alerts
        .iter()
        .find(|a| matches!(a.kind, AlertKind::Anomaly { .. }))
        .unwrap()
        .message;
    assert!(
        message.starts_with("anomaly: worker#3 sent 500 messages/s; worker's busiest thread"),
        "{message}"
    );
    // Persisting for a while: reported once; the wild rate does not become typical.
    for i in 31..40 {
        assert!(anomalies(&detector.observe(&workers(i, &mut totals, wild))).is_empty());
        assert_eq!(anomalies(detector.active()).len(), 1);
    }
    // Back to normal: cleared.
    detector.observe(&workers(40, &mut totals, normal));
    assert!(anomalies(detector.active()).is_empty());
}

#[test]
fn cpu_anomaly_against_program_history() {
    let mut detector = Detector::new(DetectorConfig::default());
    let mut totals = [(0, 0); 3];
    let normal = [(100, 0), (0, 0), (10, 0)]; // busiest thread uses 10%
    for i in 0..25 {
        assert!(anomalies(&detector.observe(&workers(i, &mut totals, normal))).is_empty());
    }
    let alerts = detector.observe(&workers(25, &mut totals, [(100, 0), (900, 0), (10, 0)]));
    assert_eq!(
        anomalies(&alerts),
        vec![(ep(2).0, METRIC_CPU_PERMILLE, 900, 100)]
    );
    assert!(alerts[0]
        .message
        .starts_with("anomaly: worker#2 used 90.0% of a CPU"));
}

#[test]
fn exited_threads_drop_their_history() {
    let mut detector = Detector::new(DetectorConfig::default());
    let step = SECOND / 2;
    for i in 0..=4 {
        detector.observe(&spinner(i * step, i * step));
    }
    assert_eq!(detector.tracked_threads(), 2);
    assert_eq!(cpu_hogs(detector.active()).len(), 1);

    // The spinner exits; its slot is reused by a new thread (generation 2) that is also
    // busy: it is judged on its own history, so no hog before a whole window.
    let reused = Endpoint::new(1, 2);
    let with_new_thread = |t: u64, cpu: u64| {
        SnapshotBuilder::at(t)
            .process(1, "spin")
            .thread(reused, 1, ThreadState::Running)
            .cpu(cpu)
            .thread(ep(2), 1, receiving(Endpoint::ANY))
            .build()
    };
    let start = 5 * step;
    let alerts = detector.observe(&with_new_thread(start, 0));
    assert!(cpu_hogs(&alerts).is_empty());
    assert!(cpu_hogs(detector.active()).is_empty());
    assert_eq!(detector.tracked_threads(), 2);
    for i in 1..4 {
        let alerts = detector.observe(&with_new_thread(start + i * step, i * step));
        assert!(cpu_hogs(&alerts).is_empty());
    }
    let alerts = detector.observe(&with_new_thread(start + 4 * step, 4 * step));
    assert_eq!(cpu_hogs(&alerts), vec![(reused.0, 100)]);

    // Everyone exits.
    detector.observe(&SnapshotBuilder::at(10 * SECOND).process(1, "spin").build());
    assert_eq!(detector.tracked_threads(), 0);
    assert!(detector.active().is_empty());
}

#[test]
fn dead_threads_are_not_tracked() {
    let mut detector = Detector::new(DetectorConfig::default());
    let snapshot = SnapshotBuilder::at(SECOND)
        .process(1, "p")
        .thread(ep(1), 1, ThreadState::Dead { exit_code: 3 })
        .thread(ep(2), 1, ThreadState::Ready)
        .build();
    detector.observe(&snapshot);
    assert_eq!(detector.tracked_threads(), 1);
}

#[test]
fn a_clock_going_backwards_means_a_reboot() {
    let mut detector = Detector::new(DetectorConfig::default());
    let step = SECOND / 2;
    for i in 0..=4 {
        detector.observe(&spinner(10 * SECOND + i * step, i * step));
    }
    assert_eq!(cpu_hogs(detector.active()).len(), 1);
    // Rebooted: same endpoints, tiny timestamps and CPU times.
    assert!(detector.observe(&spinner(step, 0)).is_empty());
    assert!(detector.active().is_empty());
    // A repeated snapshot changes nothing.
    assert!(detector.observe(&spinner(step, 0)).is_empty());
}

#[test]
fn memory_stays_bounded_over_many_snapshots() {
    let mut detector = Detector::new(DetectorConfig::default());
    // 1000 programs come and go, each alive for two snapshots 10 ms apart.
    for i in 0..1000u64 {
        let mut builder = SnapshotBuilder::at(i * 10_000_000);
        for program in i.saturating_sub(1)..=i {
            let pid = program as u32;
            builder = builder
                .process(pid, &format!("p{program}"))
                .thread(Endpoint::new(1, pid), pid, ThreadState::Ready)
                .cpu(i);
        }
        detector.observe(&builder.build());
        assert!(detector.tracked_threads() <= 2);
    }
    assert!(detector.tracked_programs() <= vigil_detect::MAX_PROGRAMS);
}
