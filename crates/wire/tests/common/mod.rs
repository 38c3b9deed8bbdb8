//! proptest strategies and samples shared by the wire crate's integration tests.
#![allow(dead_code)]

use proptest::collection::vec;
use proptest::prelude::*;
use vigil_wire::*;

pub fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

pub fn hello() -> impl Strategy<Value = Hello> {
    (
        any::<u16>(),
        text(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
    )
        .prop_map(
            |(protocol_version, kernel_version, tsc_hz, now_ns, event_mask, snapshot_period_ms)| {
                Hello {
                    protocol_version,
                    kernel_version,
                    tsc_hz,
                    now_ns,
                    event_mask,
                    snapshot_period_ms,
                }
            },
        )
}

pub fn event() -> impl Strategy<Value = Event> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u16>(),
        any::<u64>(),
        any::<[u64; 3]>(),
    )
        .prop_map(|(seq, timestamp_ns, kind, thread, args)| Event {
            seq,
            timestamp_ns,
            kind,
            thread,
            args,
        })
}

pub fn thread_info() -> impl Strategy<Value = ThreadInfo> {
    (
        (
            any::<u64>(),
            any::<u32>(),
            any::<u8>(),
            any::<u8>(),
            any::<u64>(),
            any::<u64>(),
        ),
        any::<[u64; 9]>(),
    )
        .prop_map(
            |((endpoint, pid, state, priority, wait_target, wait_argument), c)| ThreadInfo {
                endpoint,
                pid,
                state,
                priority,
                wait_target,
                wait_argument,
                counters: ThreadCounters {
                    cpu_ns: c[0],
                    voluntary_switches: c[1],
                    involuntary_switches: c[2],
                    syscalls: c[3],
                    messages_sent: c[4],
                    messages_received: c[5],
                    notifications_received: c[6],
                    page_faults: c[7],
                    kernel_calls: c[8],
                },
            },
        )
}

pub fn process_info() -> impl Strategy<Value = ProcessInfo> {
    (
        any::<u32>(),
        text(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        any::<u8>(),
        any::<u32>(),
        any::<u64>(),
        (any::<[u64; 5]>(), any::<u32>()),
    )
        .prop_map(
            |(
                pid,
                name,
                threads,
                main_thread,
                memory_pages,
                priority,
                grants,
                cpu_ns,
                (m, stopped_by),
            )| {
                ProcessInfo {
                    pid,
                    name,
                    threads,
                    main_thread,
                    memory_pages,
                    priority,
                    grants,
                    cpu_ns,
                    peak_pages: m[0],
                    virtual_bytes: m[1],
                    shared_pages: m[2],
                    faults_not_present: m[3],
                    faults_protection: m[4],
                    stopped_by,
                }
            },
        )
}

pub fn snapshot() -> impl Strategy<Value = Snapshot> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        vec(thread_info(), 0..6),
        vec(process_info(), 0..4),
    )
        .prop_map(
            |(generation, timestamp_ns, idle_ns, threads, processes)| Snapshot {
                generation,
                timestamp_ns,
                idle_ns,
                threads,
                processes,
            },
        )
}

pub fn crash_kind() -> impl Strategy<Value = CrashKind> {
    prop_oneof![
        Just(CrashKind::KernelPanic),
        Just(CrashKind::KernelFault),
        Just(CrashKind::UserFault),
        Just(CrashKind::KernelLockup),
        Just(CrashKind::UserPanic),
    ]
}

pub fn kernel_frame() -> impl Strategy<Value = KernelFrame> {
    prop_oneof![
        hello().prop_map(KernelFrame::Hello),
        vec(event(), 0..8).prop_map(KernelFrame::Events),
        snapshot().prop_map(KernelFrame::Snapshot),
        any::<[u64; 3]>().prop_map(|c| KernelFrame::Drops(DropReport {
            events_dropped: c[0],
            frames_dropped: c[1],
            malformed_commands: c[2],
        })),
        (any::<u64>(), any::<u64>(), any::<u8>(), text()).prop_map(
            |(seq, timestamp_ns, level, text)| KernelFrame::Log(LogLine {
                seq,
                timestamp_ns,
                level,
                text,
            })
        ),
        (
            crash_kind(),
            any::<u64>(),
            proptest::option::of((text(), any::<u32>())),
            text(),
            vec(any::<u64>(), 0..16),
        )
            .prop_map(|(kind, timestamp_ns, process, message, backtrace)| {
                KernelFrame::Crash(CrashReport {
                    kind,
                    timestamp_ns,
                    process,
                    message,
                    backtrace,
                })
            }),
        (any::<bool>(), text())
            .prop_map(|(ok, message)| KernelFrame::CommandResult(CommandResult { ok, message })),
        (
            any::<u32>(),
            text(),
            any::<u64>(),
            any::<u64>(),
            proptest::option::of((crash_kind(), text(), vec(any::<u64>(), 0..16))),
            any::<bool>(),
        )
            .prop_map(|(pid, name, status, timestamp_ns, crash, from_history)| {
                KernelFrame::Exit(ProcessExit {
                    pid,
                    name: name.clone(),
                    status,
                    timestamp_ns,
                    crash: crash.map(|(kind, message, backtrace)| CrashReport {
                        kind,
                        timestamp_ns,
                        process: Some((name, pid)),
                        message,
                        backtrace,
                    }),
                    from_history,
                })
            }),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u32>()).prop_map(
            |(timestamp_ns, total_frames, free_frames, frame_bytes)| {
                KernelFrame::Memory(MemoryReport {
                    timestamp_ns,
                    total_frames,
                    free_frames,
                    frame_bytes,
                })
            }
        ),
        (any::<u32>(), any::<u8>(), text()).prop_map(|(request, outcome, message)| {
            KernelFrame::ProcessResult(ProcessResult {
                request,
                outcome,
                message,
            })
        }),
        (
            any::<u32>(),
            any::<u64>(),
            any::<u32>(),
            vec(tree_entry(), 0..8)
        )
            .prop_map(|(request, timestamp_ns, manager, processes)| {
                KernelFrame::ProcessTree(ProcessTree {
                    request,
                    timestamp_ns,
                    manager,
                    processes,
                })
            }),
        (
            any::<u32>(),
            any::<u64>(),
            any::<u32>(),
            vec(service_entry(), 0..8)
        )
            .prop_map(|(request, timestamp_ns, supervisor, services)| {
                KernelFrame::ServiceList(ServiceList {
                    request,
                    timestamp_ns,
                    supervisor,
                    services,
                })
            }),
    ]
}

pub fn service_action() -> impl Strategy<Value = ServiceAction> {
    prop_oneof![
        Just(ServiceAction::Up),
        Just(ServiceAction::Down),
        Just(ServiceAction::Restart),
        Just(ServiceAction::Refresh),
        Just(ServiceAction::Hold),
        Just(ServiceAction::Release),
    ]
}

pub fn service_entry() -> impl Strategy<Value = ServiceEntry> {
    (
        (
            any::<u32>(),
            text(),
            text(),
            any::<u32>(),
            any::<u8>(),
            any::<bool>(),
        ),
        (
            any::<u32>(),
            any::<u64>(),
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
        ),
        (any::<u64>(), any::<u64>()),
    )
        .prop_map(
            |(
                (index, name, program, version, state, held),
                (pid, restarts, failures_in_a_row, last_reason, last_detail),
                (last_failure_ns, started_ns),
            )| ServiceEntry {
                index,
                name,
                program,
                version,
                state,
                held,
                pid,
                restarts,
                failures_in_a_row,
                last_reason,
                last_detail,
                last_failure_ns,
                started_ns,
            },
        )
}

pub fn process_action() -> impl Strategy<Value = ProcessAction> {
    prop_oneof![
        Just(ProcessAction::Stop),
        Just(ProcessAction::Continue),
        Just(ProcessAction::Kill),
    ]
}

pub fn tree_entry() -> impl Strategy<Value = ProcessTreeEntry> {
    (
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<u64>(),
        any::<u64>(),
        text(),
        text(),
    )
        .prop_map(
            |(pid, parent, state, exit_status, start_ns, name, arguments)| ProcessTreeEntry {
                pid,
                parent,
                state,
                exit_status,
                start_ns,
                name,
                arguments,
            },
        )
}

pub fn host_frame() -> impl Strategy<Value = HostFrame> {
    prop_oneof![
        any::<u16>().prop_map(|protocol_version| HostFrame::Hello { protocol_version }),
        any::<u64>().prop_map(HostFrame::SetEventMask),
        any::<u32>().prop_map(|period_ms| HostFrame::SetSnapshotPeriod { period_ms }),
        Just(HostFrame::SnapshotNow),
        (any::<u32>(), process_action(), any::<u32>()).prop_map(|(request, action, pid)| {
            HostFrame::ProcessCommand(ProcessCommand {
                request,
                action,
                pid,
            })
        }),
        any::<u32>().prop_map(|request| HostFrame::ProcessTreeNow { request }),
        (any::<u32>(), service_action(), any::<u32>()).prop_map(|(request, action, service)| {
            HostFrame::ServiceCommand(ServiceCommand {
                request,
                action,
                service,
            })
        }),
        any::<u32>().prop_map(|request| HostFrame::ServiceListNow { request }),
    ]
}

/// One sample of every kernel frame kind, in variant order.
pub fn every_kernel_frame() -> Vec<KernelFrame> {
    vec![
        KernelFrame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            kernel_version: "vigil 0.1.0".into(),
            tsc_hz: 2_400_000_000,
            now_ns: 123_456_789,
            event_mask: 0x7ebf,
            snapshot_period_ms: 500,
        }),
        KernelFrame::Events(vec![
            Event {
                seq: 1,
                timestamp_ns: 1000,
                kind: 0,
                thread: 0x1_0005,
                args: [u64::MAX - 1, 1, 0],
            },
            Event {
                seq: 2,
                timestamp_ns: 1500,
                kind: 1,
                thread: 0x1_0005,
                args: [4, u64::MAX, 0],
            },
        ]),
        KernelFrame::Snapshot(Snapshot {
            generation: 7,
            timestamp_ns: 99,
            idle_ns: 50,
            threads: vec![ThreadInfo {
                endpoint: 0x1_0002,
                pid: 2,
                state: 4,
                priority: 3,
                wait_target: u64::MAX,
                counters: ThreadCounters {
                    cpu_ns: 12345,
                    ..ThreadCounters::default()
                },
                ..ThreadInfo::default()
            }],
            processes: vec![ProcessInfo {
                pid: 2,
                name: "pm".into(),
                threads: 1,
                main_thread: 0x1_0002,
                memory_pages: 40,
                priority: 3,
                grants: 0,
                cpu_ns: 12345,
                peak_pages: 48,
                virtual_bytes: 4 << 20,
                shared_pages: 2,
                faults_not_present: 30,
                faults_protection: 1,
                stopped_by: 2,
            }],
        }),
        KernelFrame::Drops(DropReport {
            events_dropped: 300,
            frames_dropped: 0,
            malformed_commands: 2,
        }),
        KernelFrame::Log(LogLine {
            seq: 3,
            timestamp_ns: 77,
            level: 2,
            text: "rs: started vfs".into(),
        }),
        KernelFrame::Crash(CrashReport {
            kind: CrashKind::UserFault,
            timestamp_ns: 5,
            process: Some(("crasher".into(), 9)),
            message: "page fault at 0x0".into(),
            backtrace: vec![0x40_1000, 0x40_2000],
        }),
        KernelFrame::CommandResult(CommandResult {
            ok: false,
            message: "protocol version 2 not supported".into(),
        }),
        KernelFrame::Exit(ProcessExit {
            pid: 9,
            name: "crasher".into(),
            status: 142,
            timestamp_ns: 6,
            crash: Some(CrashReport {
                kind: CrashKind::UserFault,
                timestamp_ns: 5,
                process: Some(("crasher".into(), 9)),
                message: "page fault at 0x0".into(),
                backtrace: vec![0x40_1000],
            }),
            from_history: true,
        }),
        KernelFrame::Memory(MemoryReport {
            timestamp_ns: 7,
            total_frames: 65_000,
            free_frames: 60_000,
            frame_bytes: 4096,
        }),
        KernelFrame::ProcessResult(ProcessResult {
            request: 3,
            outcome: 2,
            message: "vm serves page faults: not killed".into(),
        }),
        KernelFrame::ProcessTree(ProcessTree {
            request: 4,
            timestamp_ns: 8,
            manager: 2,
            processes: vec![ProcessTreeEntry {
                pid: 5,
                parent: 3,
                state: 1,
                exit_status: 0,
                start_ns: 9,
                name: "pm_child".into(),
                arguments: "sleep".into(),
            }],
        }),
        KernelFrame::ServiceList(ServiceList {
            request: 5,
            timestamp_ns: 10,
            supervisor: 3,
            services: vec![ServiceEntry {
                index: 0,
                name: "hello_service".into(),
                program: "hello_service".into(),
                version: 1,
                state: 1,
                held: false,
                pid: 7,
                restarts: 2,
                failures_in_a_row: 1,
                last_reason: 1,
                last_detail: 14,
                last_failure_ns: 11,
                started_ns: 12,
            }],
        }),
    ]
}

/// One sample of every host frame kind, in variant order.
pub fn every_host_frame() -> Vec<HostFrame> {
    vec![
        HostFrame::Hello {
            protocol_version: PROTOCOL_VERSION,
        },
        HostFrame::SetEventMask(0b101),
        HostFrame::SetSnapshotPeriod { period_ms: 1000 },
        HostFrame::SnapshotNow,
        HostFrame::ProcessCommand(ProcessCommand {
            request: 1,
            action: ProcessAction::Kill,
            pid: 5,
        }),
        HostFrame::ProcessTreeNow { request: 2 },
        HostFrame::ServiceCommand(ServiceCommand {
            request: 3,
            action: ServiceAction::Hold,
            service: 0,
        }),
        HostFrame::ServiceListNow { request: 4 },
    ]
}

/// Decodes `bytes` in one push, collecting every result.
pub fn decode_all<F: serde::de::DeserializeOwned>(
    decoder: &mut FrameDecoder<F>,
    bytes: &[u8],
) -> Vec<Result<F, DecodeError>> {
    let mut results = Vec::new();
    decoder.push(bytes, |r| results.push(r));
    results
}
