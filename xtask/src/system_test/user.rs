//! QEMU scenarios that boot user programs (IPC, scheduling, crashes).
//!
//! The programs live in `user/programs/src/bin/`. Each scenario's judging program prints
//! `<test>: PASS …` or `<test>: FAIL: …` (the kernel prefixes it with `INFO  <process>: `)
//! and stops the machine with the `Shutdown` kernel call, so every scenario here expects
//! `Expected::Success` (`user-hello` via the kernel's `exit-when-done`) and its check looks
//! for the PASS line and the facts that make it interesting.

use std::time::Duration;

use super::console::Console;
use super::scenario::{secs, Scenario};

/// The usual deadline: boot plus a program run, with room for a slow TCG host.
const DEADLINE: Duration = secs(30);

/// The base row of this table: 128 MiB, [`DEADLINE`], the kernel exits with SUCCESS.
const USER: Scenario = Scenario {
    deadline: DEADLINE,
    ..Scenario::DEFAULT
};

/// Scenarios with user programs, run after the kernel-only ones.
pub const USER_SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "boot-bad-modules",
        // Malformed modules must be refused with a reason while the good one still runs.
        cmdline: "exit-when-done",
        check: check_bad_modules,
        // A file of pattern bytes is not an ELF.
        modules: &[("not-an-elf.bin", 4096)],
        programs: &[
            "pm kcalls=pm",
            "hello name=hello_bad prio=99",
            "hello kcalls=reboot",
            "hello -- still runs",
        ],
        ..USER
    },
    Scenario {
        name: "boot-many-modules",
        // 33 modules: the 32 the kernel reads all boot (PM and 31 programs); the one past
        // the limit is refused alone, with a reason.
        cmdline: "exit-when-done",
        memory: "512M",
        check: check_many_modules,
        programs: &[
            "pm kcalls=pm",
            "hello name=m00",
            "hello name=m01",
            "hello name=m02",
            "hello name=m03",
            "hello name=m04",
            "hello name=m05",
            "hello name=m06",
            "hello name=m07",
            "hello name=m08",
            "hello name=m09",
            "hello name=m10",
            "hello name=m11",
            "hello name=m12",
            "hello name=m13",
            "hello name=m14",
            "hello name=m15",
            "hello name=m16",
            "hello name=m17",
            "hello name=m18",
            "hello name=m19",
            "hello name=m20",
            "hello name=m21",
            "hello name=m22",
            "hello name=m23",
            "hello name=m24",
            "hello name=m25",
            "hello name=m26",
            "hello name=m27",
            "hello name=m28",
            "hello name=m29",
            "hello name=m30",
            "hello name=m31",
        ],
        ..USER
    },
    Scenario {
        name: "user-hello",
        // hello just exits; `exit-when-done` makes the kernel stop once no process is left
        // but the system servers.
        cmdline: "exit-when-done",
        check: check_hello,
        programs: &["pm kcalls=pm", "hello -- one two"],
        ..USER
    },
    Scenario {
        name: "fpu-isolation",
        // Three processes fill MMX/XMM registers and MXCSR with their own values and yield
        // to each other: each starts from the initial state and keeps its values.
        cmdline: "exit-when-done",
        check: check_fpu_isolation,
        programs: &[
            "pm kcalls=pm",
            "fpu_isolation name=fpu_a -- 1",
            "fpu_isolation name=fpu_b -- 2",
            "fpu_isolation name=fpu_c -- 3",
        ],
        ..USER
    },
    Scenario {
        name: "introspect-snapshot",
        check: check_introspect,
        programs: &[
            "pm kcalls=pm",
            "introspect_check kcalls=snapshot+shutdown",
            "pingpong_server",
            "introspect_check name=introspect_denied -- denied",
        ],
        ..USER
    },
    Scenario {
        name: "ipc-pingpong",
        check: check_pingpong,
        programs: &[
            "pm kcalls=pm",
            "pingpong_server",
            "pingpong_client kcalls=shutdown",
        ],
        ..USER
    },
    Scenario {
        name: "ipc-any",
        check: check_any,
        programs: &[
            "pm kcalls=pm",
            "any_server kcalls=shutdown",
            "any_client name=client1 -- 1",
            "any_client name=client2 -- 2",
            "any_client name=client3 -- 3",
        ],
        ..USER
    },
    Scenario {
        name: "ipc-notify",
        check: check_notify,
        programs: &[
            "pm kcalls=pm",
            "notify_receiver kcalls=shutdown",
            "notify_sender",
        ],
        ..USER
    },
    Scenario {
        name: "ipc-senda",
        check: check_senda,
        programs: &[
            "pm kcalls=pm",
            "senda_server kcalls=shutdown",
            "senda_client kcalls=shutdown",
        ],
        ..USER
    },
    Scenario {
        name: "ipc-grant",
        check: check_grant,
        programs: &[
            "pm kcalls=pm",
            "grant_server kcalls=safecopy",
            "grant_client kcalls=shutdown",
        ],
        ..USER
    },
    Scenario {
        name: "ipc-errors",
        check: check_errors,
        programs: &[
            "pm kcalls=pm",
            "errors_helper",
            "errors_helper name=errors_forbidden",
            "errors kcalls=shutdown ipc=errors+errors_helper",
        ],
        ..USER
    },
    Scenario {
        name: "sched-fair",
        deadline: secs(40),
        check: check_fair,
        // Iterations per thread measure the CPU time round robin gave it only when guest
        // time is the instruction count: under plain TCG a host busy elsewhere (CI runs
        // scenarios two at a time on two cores) stalls one thread's slices and not the
        // other's (a CI run measured a ratio of 0.838 that way).
        icount: true,
        programs: &["pm kcalls=pm", "sched_fair kcalls=shutdown"],
        ..USER
    },
    Scenario {
        name: "sched-preempt",
        deadline: secs(40),
        check: check_preempt,
        programs: &[
            "pm kcalls=pm",
            "preempt_spinner prio=12",
            "preempt_driver prio=4 kcalls=shutdown",
        ],
        ..USER
    },
    Scenario {
        name: "user-crash",
        // The survivor shuts down with success after both crashes. PM starts them all
        // (the survivor first, at a higher priority than PM: its look-ups of the
        // crashers PM has built but not started yet find nothing, as for a later module).
        check: check_crash,
        programs: &[
            "pm kcalls=pm",
            "survivor prio=2 kcalls=shutdown",
            "crash_null",
            "crash_divide",
            "crash_panic -- x",
        ],
        ..USER
    },
    Scenario {
        name: "vm-demand",
        // The heap grows through the VM server: exactly one page per page touched.
        check: check_vm_demand,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "vm_demand kcalls=snapshot+shutdown",
        ],
        ..USER
    },
    Scenario {
        name: "vm-introspect",
        // VM's INTROSPECT answers (memory, shared objects) through a grant agree with the
        // kernel's snapshot; bad requests get their errors and VM keeps serving.
        check: check_vm_introspect,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "vm_introspect name=idler -- idle",
            "vm_introspect kcalls=snapshot+shutdown",
        ],
        ..USER
    },
    Scenario {
        name: "vm-storm",
        // 64 MiB touched page by page through VM, given back, 1,000 small cycles, bad
        // requests; a write to a read-only mapping is refused and kills only its process.
        memory: "256M",
        check: check_vm_storm,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "vm_storm kcalls=snapshot+shutdown",
            "vm_storm name=readonly -- readonly",
        ],
        ..USER
    },
    Scenario {
        name: "vm-syscall",
        // System calls on memory that is not there yet are suspended, served by VM and run
        // again; an address VM does not know makes the call fail with EFAULT.
        check: check_vm_syscall,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "vm_syscall kcalls=snapshot+safecopy+shutdown",
        ],
        ..USER
    },
    Scenario {
        name: "vm-stack",
        // A stack grows through VM down to its guard page; past it VM refuses the fault,
        // the kernel reports it and kills only that process; a null dereference through VM
        // is refused the same way, and the survivor runs on.
        check: check_vm_stack,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "survivor prio=2 kcalls=shutdown",
            "vm_stack name=grower -- grow",
            "vm_stack name=overflower -- overflow",
            "crash_null",
        ],
        ..USER
    },
    Scenario {
        name: "fuzz-syscalls",
        // Random system calls, unprivileged and with every kernel call, against oracles;
        // then every frame they used must be free again.
        deadline: secs(120),
        check: check_fuzz,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "fuzz_judge prio=0 kcalls=snapshot+shutdown -- 2",
            "fuzz_syscalls name=fuzz_control -- calls=0",
            "fuzz_syscalls name=fuzz_user -- seed=1 calls=100000",
            "fuzz_syscalls name=fuzz_privileged kcalls=all -- seed=2 calls=100000",
        ],
        ..USER
    },
    Scenario {
        name: "vm-shared",
        // One object, three processes: the owner writes, a writable peer reads and writes
        // back, a read-only reader reads and dies writing (alone); forbidden requests are
        // refused; the frames are one per page, kept while anyone maps them, all back at
        // the last unmap.
        check: check_vm_shared,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "vm_shared kcalls=snapshot+shutdown",
            "vm_shared name=shm_peer -- peer",
            "vm_shared name=shm_reader -- reader",
        ],
        ..USER
    },
    Scenario {
        name: "vm-share-kcall",
        // The kernel mechanism alone: VmMapShared views share frames, bad calls change
        // nothing, a frame lives until its last mapping goes; VmLimitOf reads mem=.
        check: check_vm_share_kcall,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "vm_kcalls kcalls=vm+snapshot+shutdown mem=16M -- 4096",
        ],
        ..USER
    },
    Scenario {
        name: "ptrace-kcalls",
        // The tracing kernel calls alone: a manager reads a spinner's registers where its
        // code says, moves its rip, pokes its read-only code and runs the patch; calls on
        // threads or processes it does not manage, kernel rips, kernel flags, bad ranges
        // and shared frames are refused and change nothing.
        check: check_ptrace_kcalls,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "trace_kcalls kcalls=pm+vm+shutdown",
        ],
        ..USER
    },
    Scenario {
        name: "ptrace-pm",
        // Tracing through PM: spawn traced, registers, peek/poke, a single step, syscall
        // stops with a call changed at its entry, detach; following children; a tracer's
        // death letting its tracee run; every bad request refused; then vtrace's output on
        // trace_target (and the child it spawns) is exactly the expected calls.
        check: check_ptrace_pm,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "trace_target boot=pm",
            "pm_child boot=pm",
            "vtrace kcalls=snapshot boot=pm",
            "ptrace_test name=ptrace_helper boot=pm",
            "ptrace_test kcalls=snapshot+shutdown",
        ],
        deadline: secs(60),
        ..USER
    },
    Scenario {
        name: "vm-oom",
        // A process with a boot-table limit populates memory until ENOMEM at exactly its
        // limit; one without runs the machine out of free memory; VM reports the largest
        // users each time, nothing else dies, and every frame comes back after each exit.
        check: check_vm_oom,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "vm_oom kcalls=snapshot+shutdown",
            "vm_oom name=limited mem=8M -- limited 2048",
            "vm_oom name=hog -- hog",
        ],
        deadline: secs(60),
        ..USER
    },
    Scenario {
        name: "pm-processes",
        // PM spawns `pm_child` (a `boot=pm` image): wait and non-blocking wait, kills of a
        // child blocked in receive, sleep and a mutex wait, a three-deep tree with its
        // orphan reparented to PM, 1,000 spawn+exit+wait rounds with every frame back,
        // and bad requests each refused with its own error while PM keeps serving.
        check: check_pm_processes,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "pm_child boot=pm",
            "pm_test kcalls=snapshot+shutdown",
        ],
        deadline: secs(120),
        ..USER
    },
    Scenario {
        name: "pm-boot",
        // The kernel starts VM and PM only; PM starts every other module in order as its
        // child with the module string's privileges: the probe's `kcalls=none` and
        // `ipc=` (naming a later module) hold from the inside, arguments arrive, PM's tree
        // and the kernel's snapshot agree, a crash of a program PM started is reported as
        // before, and a bad `prio=` and a file that is not an ELF are refused by PM with a
        // console line while the rest boots, as is a file too large for PM's heap (and a
        // spawn of a garbage `boot=pm` image is refused while PM keeps serving).
        check: check_pm_boot,
        // The second is an image PM spawns only on request: the judge asks for it.
        modules: &[
            ("pm-boot-garbage.bin", 4096),
            ("pm-boot-broken.bin name=broken boot=pm", 4096),
            // Larger than PM's heap: refused, PM keeps going.
            ("pm-boot-huge.bin", 6 << 20),
        ],
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "pm_boot name=pm_probe kcalls=none ipc=pm_judge -- probe alpha beta",
            "hello name=hello_args -- one two three",
            "hello name=hello_badprio prio=99",
            "crash_null",
            "pm_boot name=pm_kcalls kcalls=pm -- kcalls",
            "pm_boot name=pm_judge kcalls=snapshot+shutdown -- judge gamma",
        ],
        ..USER
    },
    Scenario {
        name: "pm-signals",
        // Signals and signal managers: an exception held for PM becomes SIGSEGV and a
        // status the parent's wait sees; handlers for signals from another process and
        // from oneself, masks, stop/continue, SIGKILL of blocked children, PM managing a
        // boot process, and bad requests and forged signal frames refused.
        check: check_pm_signals,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "sig_child boot=pm",
            "sig_child name=sig_victim -- victim",
            "sig_test kcalls=snapshot+shutdown",
        ],
        deadline: secs(120),
        ..USER
    },
    Scenario {
        name: "pm-signal-kcalls",
        // The signal manager's kernel calls by a program that manages a boot process
        // itself: manager change, stop/resume, the exception event and the held thread,
        // PmResumeThread into the same fault, and every bad call refused; a manager that
        // exits with one victim held and one stopped (sig_orphaner).
        check: check_pm_signal_kcalls,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "sig_child name=sig_victim -- victim",
            "sig_child name=sig_victim2 -- victim",
            "sig_child name=sig_victim3 -- victim",
            "sig_kcalls name=sig_orphaner kcalls=pm+snapshot -- orphan",
            "sig_kcalls kcalls=pm+snapshot+shutdown",
        ],
        ..USER
    },
    Scenario {
        name: "rs-restart",
        // RS (a boot system server) spawns hello_service through PM as its signal
        // manager; the judge ends hello by a null dereference (RS's exception event), a
        // panic and an exit (PM's exit notice) and a hang (3 silent heartbeat periods, within
        // a tick or two), finds each new instance by name answering, with
        // RS's record naming the restart and its reason, then an operator's RESTART.
        check: check_rs_restart,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "rs kcalls=rs -- operator=rs_test hello_service",
            "hello_service boot=pm",
            "rs_test kcalls=shutdown -- restart",
        ],
        deadline: secs(60),
        ..USER
    },
    Scenario {
        name: "rs-keep-endpoint",
        // A client looks hello up once: hello is ended twice by a null dereference, a
        // panic, an exit and a hang, and each replacement takes over the kept endpoint
        // (the fatal call fails with ERESTARTED, the next call at the same endpoint is
        // answered; a request queued behind the hang is answered by the replacement); a
        // request in flight during an operator's RESTART is retried by `call_service`;
        // forged service-endpoint kernel calls are refused. `stable=0`: every failure is
        // the first in a row, so the nine restarts are immediate.
        check: check_rs_keep_endpoint,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "rs kcalls=rs -- operator=rs_endpoint_test hello_service:stable=0",
            "hello_service boot=pm",
            "rs_endpoint_test kcalls=shutdown+snapshot+rs",
        ],
        deadline: secs(120),
        ..USER
    },
    Scenario {
        name: "rs-init-timeout",
        // A service that never reaches its receive loop: the first instance is caught by
        // its heartbeats (silent for 3 periods of 50 ms), each replacement by `init=100`; after 3
        // failures in a row it is held down and its kept endpoint released, failing the
        // client that waited there from the start with EDEADSRCDST.
        check: check_rs_init_timeout,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "rs kcalls=rs -- stally:init=100,hb=50,limit=3,base=10",
            "hello_service name=stally boot=pm -- stall-on-start",
            "rs_endpoint_test kcalls=shutdown+snapshot -- init-timeout",
        ],
        deadline: secs(60),
        ..USER
    },
    Scenario {
        name: "rs-crash-loop",
        // A service that crashes at every start: restarts at once, then after 10, 20 and
        // 40 ms, held down after 5 failures in a row with an alert; an operator's RESTART
        // runs the loop once more; hello_service serves throughout.
        check: check_rs_crash_loop,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "rs kcalls=rs -- operator=rs_test hello_service crashy:base=10,limit=5",
            "hello_service boot=pm",
            "hello_service name=crashy boot=pm -- crash-on-start",
            "rs_test kcalls=shutdown -- crash-loop",
        ],
        deadline: secs(60),
        ..USER
    },
    Scenario {
        name: "rs-bad-requests",
        // Bad service-table entries are refused at boot, a service with no image is held
        // after its spawn failures, and every bad request to RS and hello (unknown kinds,
        // forged indices and names, a kernel kind, a restart by a non-operator, bad
        // arguments) gets its own error while both keep serving.
        check: check_rs_bad_requests,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "rs kcalls=rs -- hello_service bogus:x=1 slow:base=9,cap=1 gone:limit=2",
            "hello_service boot=pm",
            "rs_test kcalls=shutdown -- bad",
        ],
        deadline: secs(60),
        ..USER
    },
    Scenario {
        name: "ds-store",
        // DS, the data store (a system server before RS): small values and 4 KiB ranges by
        // grant published, read back, overwritten, deleted; ownership by process name
        // (ds_other reads ds_test's key, cannot overwrite or delete it); the limits
        // (value size, total bytes, keys); bad requests and a fuzz of random ones, each
        // refused while DS keeps serving; INTROSPECT's key records.
        check: check_ds_store,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "ds kcalls=safecopy",
            "ds_test name=ds_other -- other",
            "ds_test kcalls=shutdown",
        ],
        deadline: secs(120),
        ..USER
    },
    Scenario {
        name: "hello-exactly-once",
        // hello keeps its counter and its clients' last requests in DS: the counter
        // survives a null dereference, a panic, an exit and a hang; a request whose reply
        // was lost (hello crashes after recording it) is answered from the record, not
        // executed twice; a stale id is refused; a short load under crashes loses and
        // doubles nothing.
        check: check_hello_exactly_once,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "ds kcalls=safecopy",
            "rs kcalls=rs -- hello_service:base=0,cap=0,limit=1000,stable=0,hb=20",
            "hello_service boot=pm",
            "hello_client kcalls=shutdown -- exactly-once",
        ],
        deadline: secs(180),
        ..USER
    },
    Scenario {
        name: "rs-thousand-crashes",
        // 1,000 ends of hello (null dereferences, panics, exits, and a hang every 250th)
        // while a client increments it as fast as it can: the counter equals the
        // acknowledged increments (0 lost, 0 doubled), no kernel panic, and RS's restart
        // latency for each crash (its median and maximum printed by the check).
        check: check_rs_thousand_crashes,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "ds kcalls=safecopy",
            "rs kcalls=rs -- hello_service:base=0,cap=0,limit=1000,stable=0,hb=20",
            "hello_service boot=pm",
            "hello_client kcalls=shutdown -- load 1000",
        ],
        deadline: secs(300),
        ..USER
    },
    Scenario {
        name: "rs-system-crash",
        // A system server takes an exception: the kernel boots a program that reads address
        // 0 as `ds`, reports the fault, ends it and queues the crash for RS, which records
        // it with its backtrace, raises an ALERT saying it cannot restart it, lists it as
        // system-failed, refuses to restart it, and restarts hello.
        check: check_rs_system_crash,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "crash_null name=ds",
            "rs kcalls=rs -- operator=service+rs_service_test hello_service",
            "hello_service boot=pm",
            "service boot=pm",
            "rs_service_test kcalls=shutdown -- system-crash",
        ],
        deadline: secs(90),
        ..USER
    },
    Scenario {
        name: "rs-service-program",
        // The `service` program (an operator of RS, run by the judge through PM with each
        // command): list, down, up, refresh, hold (a crash is then not restarted),
        // release, restart, and a release of a crash-looping service; a non-operator's
        // copy is refused, bad names and usage get their errors; RS's SERVICE_NAME and
        // INTROSPECT services topic are checked, bad ones refused. The system servers (vm,
        // pm, rs) are listed and every action on them (restart, down, hold, refresh,
        // update of rs itself) is refused as not restartable, and RS restarts hello after;
        // crashy's last crash is listed with its backtrace, symbolised in hello_service.
        check: check_rs_service_program,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "rs kcalls=rs -- operator=service+rs_service_test hello_service crashy:base=10,limit=2",
            "hello_service boot=pm",
            "hello_service name=crashy boot=pm -- crash-on-start",
            "service boot=pm",
            "service name=intruder boot=pm",
            "rs_service_test kcalls=shutdown",
        ],
        deadline: secs(90),
        ..USER
    },
    Scenario {
        name: "rs-live-update",
        // Under hello_load's exactly-once increments: updates to a missing and a malformed
        // module are refused with version 1 serving, the update to hello_v2 is done
        // (version 2), the ones to a version that stops answering heartbeats, one that
        // never initialises and one that crashes during the grace period are rolled back;
        // an update away from a version that never answers PREPARE is cancelled after its
        // bound; 0 lost, 0 doubled.
        check: check_rs_live_update,
        modules: &[("hello-broken.bin name=hello_broken boot=pm", 4096)],
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "ds kcalls=safecopy",
            "rs kcalls=rs -- operator=service hello_service",
            "hello_service boot=pm",
            "hello_service name=hello_v2 boot=pm -- version=2",
            "hello_service name=hello_deaf boot=pm -- version=3 deaf",
            "hello_service name=hello_failinit boot=pm -- version=5 fail-init",
            "hello_service name=hello_crashy boot=pm -- version=6 crash-after=2",
            "hello_service name=hello_stubborn boot=pm -- version=4 ignore-prepare",
            "service boot=pm",
            "hello_load",
            "rs_service_test kcalls=shutdown -- update",
        ],
        deadline: secs(120),
        ..USER
    },
    Scenario {
        name: "rs-demo-load",
        // The default `cargo xtask run --demo` system in small: RS supervises hello, and
        // hello_load increments it and every 300 ms crashes it (#PF, panic), live-updates
        // it to hello_v2, ends it (exit), live-updates it to hello_crashy (rolled back: it
        // crashes in its grace period), hangs it, and round again (the next update to
        // hello_v3); RS restarts, updates and rolls back, the load carries on with 0 lost
        // and 0 doubled. A copy with a bad period is refused with its usage. At one step
        // every 300 ms the demo is a crash loop by RS's default policy (an instance must run
        // 1 s to reset the failures in a row, and 8 in a row hold it down): `stable=200`
        // makes each instance that ran to the next step a fresh start, as every instance of
        // the real demo (one step every 5 s) is.
        check: check_rs_demo_load,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "ds kcalls=safecopy",
            "rs kcalls=rs -- operator=service+hello_load hello_service:stable=200",
            "hello_service boot=pm",
            "hello_service name=hello_v2 boot=pm -- version=2",
            "hello_service name=hello_v3 boot=pm -- version=3",
            "hello_service name=hello_crashy boot=pm -- version=9 crash-after=2",
            "hello_load name=hello_load_bad -- demo=50",
            "hello_load -- demo=300",
            "rs_service_test kcalls=shutdown -- demo",
        ],
        deadline: secs(180),
        ..USER
    },
    Scenario {
        name: "rs-demo-refused",
        // The demo booted without making hello_load an operator of RS: its update step is
        // refused with a line saying what RS's boot line needs, no further update is
        // tried, and the crashes go on (RS restarts each, version 1 serving, 0 lost).
        check: check_rs_demo_refused,
        programs: &[
            "vm kcalls=vm",
            "pm kcalls=pm",
            "ds kcalls=safecopy",
            "rs kcalls=rs -- hello_service:stable=300",
            "hello_service boot=pm",
            "hello_service name=hello_v2 boot=pm -- version=2",
            "hello_load -- demo=500",
            "rs_service_test kcalls=shutdown -- demo-refused",
        ],
        deadline: secs(120),
        ..USER
    },
    Scenario {
        name: "user-mutex",
        check: check_mutex,
        programs: &["pm kcalls=pm", "mutex_counter kcalls=shutdown"],
        ..USER
    },
    Scenario {
        name: "user-timers",
        check: check_timers,
        programs: &["pm kcalls=pm", "timers kcalls=shutdown"],
        ..USER
    },
    Scenario {
        name: "user-bench",
        memory: "256M",
        // A smoke test of the benchmark programs (figures are `cargo xtask bench`'s job).
        deadline: secs(60),
        check: check_bench,
        programs: crate::bench::BENCH_PROGRAMS,
        ..USER
    },
    Scenario {
        name: "rs-update-bench",
        // A smoke test of the live-update benchmark (figures are `cargo xtask bench`'s
        // job): 12 updates, 12 rollbacks after a crash and 12 after a failed
        // initialisation, each judged by `bench_update` (the version that answered, the
        // counter kept, the crashed request resent) and seen in RS's console.
        deadline: secs(180),
        check: check_update_bench,
        programs: crate::bench::UPDATE_BENCH_PROGRAMS,
        ..USER
    },
];

/// The scenarios run a second time with the IPC fast path off (`ipc_fastpath=off`), so
/// both paths pass every IPC and VM-message scenario: their rows, renamed
/// `<name>-slowpath`.
const SLOW_PATH_BASES: &[&str] = &[
    "ipc-pingpong",
    "ipc-any",
    "ipc-notify",
    "ipc-senda",
    "ipc-grant",
    "ipc-errors",
    "vm-demand",
    "vm-storm",
    "vm-syscall",
    "user-bench",
];

/// The kernel command-line word that forces the slow path.
pub const SLOW_PATH_OPTION: &str = "ipc_fastpath=off";

/// The rows of [`SLOW_PATH_BASES`] with [`SLOW_PATH_OPTION`] added, run after the table.
pub fn slow_path_scenarios() -> &'static [Scenario] {
    static ROWS: std::sync::LazyLock<Vec<Scenario>> = std::sync::LazyLock::new(|| {
        SLOW_PATH_BASES
            .iter()
            .map(|&base| {
                let row = USER_SCENARIOS
                    .iter()
                    .find(|row| row.name == base)
                    .unwrap_or_else(|| panic!("no scenario {base} to run on the slow path"));
                let cmdline = format!("{} {SLOW_PATH_OPTION}", row.cmdline);
                Scenario {
                    name: Box::leak(format!("{base}-slowpath").into_boxed_str()),
                    cmdline: Box::leak(cmdline.trim_start().to_string().into_boxed_str()),
                    ..*row
                }
            })
            .collect()
    });
    &ROWS
}

/// The judging program `process` asked for a successful shutdown.
fn require_success_shutdown(console: &Console, process: &str) -> Result<(), String> {
    console.require(&format!("shutdown requested by '{process}' (status 0)"))
}

fn check_bad_modules(console: &Console) -> Result<(), String> {
    // The kernel starts PM only; PM refuses each malformed module with its reason.
    console.require("boot: 1 of 5 modules started by the kernel (the system servers)")?;
    console.require_line_with(&["pm: boot: module ", "refused: prio '99' is not 0..=15"])?;
    console.require_line_with(&["pm: boot: module ", "refused: unknown kernel call 'reboot'"])?;
    console.require_line_with(&["pm: boot: module ", "not-an-elf.bin' refused: ", "ELF"])?;
    console.require_line_with(&[
        "hello: hello from Vigil user space",
        "[\"still\", \"runs\"]",
    ])?;
    console.require("pm: boot: 1 of 1 programs started by pm")?;
    console.require("every process but the system servers has exited; stopping (exit-when-done)")
}

fn check_fpu_isolation(console: &Console) -> Result<(), String> {
    for seed in 1..=3 {
        console.require(&format!(
            "fpu_isolation: PASS seed {seed}: initial state clean, 300 rounds"
        ))?;
    }
    console.forbid("fpu_isolation: FAIL")?;
    console.forbid("killed by")?;
    console.require("every process but the system servers has exited; stopping (exit-when-done)")
}

fn check_many_modules(console: &Console) -> Result<(), String> {
    // 33 modules: PM and 31 programs are read; the 33rd is refused alone, with a reason.
    console.require("boot: 33 modules given, at most 32 are read: modules 32..33 refused")?;
    console.require("boot: 1 of 32 modules started by the kernel (the system servers)")?;
    console.require("pm: boot: 31 of 31 programs started by pm")?;
    for name in ["m00", "m15", "m30"] {
        console.require(&format!("{name}: hello from Vigil user space"))?;
    }
    console.forbid("m31:")?;
    console.forbid("setup failed")?;
    console.require("every process but the system servers has exited; stopping (exit-when-done)")
}

fn check_hello(console: &Console) -> Result<(), String> {
    console.require_clean_run()?;
    console.require_line_with(&[
        "hello: hello from Vigil user space: endpoint ",
        "[\"one\", \"two\"]",
    ])?;
    console.require_line_with(&["process 'hello' (pid ", "exited with status 0"])?;
    console.require("every process but the system servers has exited; stopping (exit-when-done)")
}

fn check_introspect(console: &Console) -> Result<(), String> {
    console.require_clean_run()?;
    console.require("introspect-denied: PASS snapshot without privilege refused with EPERM")?;
    console.require("introspect: PASS snapshot generation")?;
    console.require("shutdown requested by 'introspect_check' (status 0)")
}

fn check_pingpong(console: &Console) -> Result<(), String> {
    console.require_clean_run()?;
    console.require("pingpong_client: pingpong: PASS 1000 round trips")?;
    require_success_shutdown(console, "pingpong_client")
}

fn check_any(console: &Console) -> Result<(), String> {
    console.require_clean_run()?;
    console.require("any_server: any: PASS counts client1=50 client2=50 client3=50")?;
    require_success_shutdown(console, "any_server")
}

fn check_notify(console: &Console) -> Result<(), String> {
    console.require_clean_run()?;
    console.require("notify_sender: notified ")?;
    console.require("notify_receiver: first receive: one notification from")?;
    console.require(
        "notify_receiver: notify: PASS 5 notifications coalesced into 1, then the done message",
    )?;
    require_success_shutdown(console, "notify_receiver")
}

fn check_senda(console: &Console) -> Result<(), String> {
    console.require_clean_run()?;
    console.require("senda_client: (a) 10 async messages received in order; all entries DONE")?;
    console.require("DONE|FAILED with EDEADSRCDST")?;
    console.require("senda_client: (b) NO_REPLY async message waited for a plain receive")?;
    console
        .require("senda_client: (c) an async message without NO_REPLY satisfied send_receive")?;
    console.require("senda_server: senda server: all async entries DONE")?;
    console.require("senda_client: senda: PASS")?;
    require_success_shutdown(console, "senda_client")
}

fn check_grant(console: &Console) -> Result<(), String> {
    console.require_clean_run()?;
    console.require("refused with EBADGRANT")?;
    console.require_line_with(&[
        "grant_client: grant: PASS read 1048576 bytes checksum=0x",
        "wrote 262144 bytes verified",
    ])?;
    require_success_shutdown(console, "grant_client")
}

/// Error names every `errors` run must show checked (one case line each at least).
const ERROR_NAMES_CHECKED: [&str; 12] = [
    "EFAULT",
    "EPERM",
    "EDEADSRCDST",
    "EBADEPT",
    "ELOCKED",
    "ENOTREADY",
    "ENOSYS",
    "EINVAL",
    "EBADGRANT",
    "ESRCH",
    "EDEADPARTNER",
    "ESELF",
];

fn check_errors(console: &Console) -> Result<(), String> {
    console.forbid(": WRONG:")?;
    console.require_clean_run()?;
    for name in ERROR_NAMES_CHECKED {
        console.require_line_with(&["errors: case ", &format!("-> {name}: ok")])?;
    }
    console.require_line_with(&["errors: case ", "(cycle) -> ELOCKED: ok"])?;
    console.require_line_with(&["errors: case system call 999 -> ENOSYS: ok"])?;
    // A forged notification (a user message of the kernel's kind) is refused.
    console
        .require("errors: case send a message of the kernel's notification kind -> EINVAL: ok")?;
    // A revoked grant id is never reissued (a 16-bit generation wrapped after 65,536).
    console.require_line_with(&[
        "errors: case revoke a grant id revoked 65,536 create/revoke cycles ago",
        "-> EBADGRANT: ok",
    ])?;
    // Join returns every exit code (-3 used to come back as an error).
    for code in [
        "0xfffffffffffffffd",
        "0x8000000000000000",
        "0xffffffffffffffff",
    ] {
        for how in ["already dead", "waiting for it"] {
            console.require(&format!(
                "errors: case join a thread that exits with {code} ({how}): ok"
            ))?;
        }
    }
    // DebugWrite's kernel time is bounded: a bounded part per call.
    console.require(
        "errors: case debug_write of 2,048 lines takes 8 lines per call (256 calls): ok",
    )?;
    console.require("a 1,025-byte line takes 511 bytes (a character boundary), then 512: ok")?;
    console.require("errors: errors: PASS ")?;
    require_success_shutdown(console, "errors")
}

fn check_fair(console: &Console) -> Result<(), String> {
    console.require_clean_run()?;
    console.require_line_with(&["sched_fair: fair: PASS a=", " b=", " ratio="])?;
    require_success_shutdown(console, "sched_fair")
}

fn check_preempt(console: &Console) -> Result<(), String> {
    console.require_clean_run()?;
    console.require("preempt_spinner: spinning")?;
    console.require("preempt_driver: lateness over 50 sleeps of 20 ms: median ")?;
    console.require("preempt_driver: preempt: PASS median lateness ")?;
    require_success_shutdown(console, "preempt_driver")
}

fn check_vm_demand(console: &Console) -> Result<(), String> {
    console.require("vm: 'vm' serves page faults")?;
    console.require("vm: serving page faults at ")?;
    console.require("vm_demand: PASS touched 256 heap pages: ")?;
    console.require("(+256)")?;
    console.forbid("vm: pid")?;
    require_success_shutdown(console, "vm_demand")
}

fn check_vm_syscall(console: &Console) -> Result<(), String> {
    console.require("vm_syscall: PASS 7 calls ran on ")?;
    console.require("an unknown address gave EFAULT")?;
    // A suspended call is counted once whether VM resumes or fails it.
    console.require("suspended calls counted once")?;
    // …and VM did not block on the reply to a client that sent without receiving.
    console.require("VM dropped the reply to a client that did not wait")?;
    console.require_line_with(&["vm: reply to ", "dropped: "])?;
    // The unknown address was VM's to refuse, and only the call failed: nobody was killed.
    console.require_line_with(&[
        "vm: pid ",
        "invalid read at ",
        "no memory region covers the address",
    ])?;
    console.forbid("killed by")?;
    console.forbid("vm_syscall: FAIL")?;
    require_success_shutdown(console, "vm_syscall")
}

fn check_fuzz(console: &Console) -> Result<(), String> {
    console.forbid("fuzz_syscalls: VIOLATION")?;
    console.require_line_with(&["fuzz_user: fuzz_syscalls: PASS seed 1: 100000 calls"])?;
    console.require_line_with(&[
        "fuzz_privileged: fuzz_syscalls: PASS seed 2: 100000 calls",
        "with kernel calls",
    ])?;
    console.require("fuzz_judge: fuzz_judge: PASS 2 fuzzers exited; free frames ")?;
    console.forbid("killed by")?;
    console.forbid("panicked")?;
    require_success_shutdown(console, "fuzz_judge")
}

fn check_vm_introspect(console: &Console) -> Result<(), String> {
    console.require("vm_introspect: touched 64 pages: ")?;
    console.require("virtual +262144 in both; faults not present +64")?;
    console.require("idler agrees")?;
    console.require("vm_introspect: PASS 8 bad requests refused, VM still answering")?;
    // Each bad request got its own error, and VM said why it refused.
    for refusal in [
        "an unknown topic: ENOSYS",
        "a topic VM does not answer (services): ENOSYS",
        "a reserved word set: EINVAL",
        "a grant id that names no grant: EBADGRANT",
        "a grant for another process: EBADGRANT",
        "a read-only grant (wrong direction): EBADGRANT",
        "a grant smaller than the size named: EBADGRANT",
        "a buffer smaller than one record: EINVAL",
    ] {
        console.require(&format!("refused as expected: {refusal}"))?;
    }
    console.require_line_with(&["vm: ", "INTROSPECT refused: ENOSYS (topic 99)"])?;
    console.require_line_with(&["vm: ", "INTROSPECT memory refused: EBADGRANT"])?;
    console.require_line_with(&["vm: ", "INTROSPECT memory refused: EINVAL"])?;
    console.forbid("vm_introspect: FAIL")?;
    console.forbid("could not report pid")?;
    require_success_shutdown(console, "vm_introspect")
}

fn check_vm_storm(console: &Console) -> Result<(), String> {
    console.require("vm_storm: PASS 16384 pages touched = +16384 resident (VM agrees: 16384 ")?;
    console.require("1000 map/unmap cycles: unchanged; 24 bad requests refused")?;
    for refusal in [
        "MAP_ANONYMOUS with an unknown flag bit: EINVAL",
        "a populated map past the limit: ENOMEM",
        "a name with a zero byte inside: EINVAL",
        "a shared object of 4097 bytes: EINVAL",
        "mapping an unknown name: ESRCH",
        "destroying an id beyond 32 bits: ESRCH",
        "unmapping a wrapping range: EFAULT",
        "VmMap from a process without the vm kernel calls: EPERM",
        "VmMapShared from a process without the vm kernel calls: EPERM",
        "unmapping half of a shared mapping: EINVAL",
    ] {
        console.require(&format!("vm_storm: refused as expected: {refusal}"))?;
    }
    // Each bad request got its own clear error, and VM said why it refused.
    console.require("refused as expected: a size that is not a page multiple: EINVAL")?;
    console.require("refused as expected: unmapping a kernel address: EFAULT")?;
    console.require_line_with(&["vm: pid ", "request 0x2000002 refused: "])?;
    // The read-only mapping reads zero; the write is refused and kills only that process.
    console.require("readonly: read-only page reads 0; now writing it")?;
    console.require_line_with(&["vm: pid ", "invalid write at ", "write to read-only memory"])?;
    console.require_line_with(&["process 'readonly' (pid ", "killed by #PF"])?;
    console.forbid("vm_storm: FAIL")?;
    require_success_shutdown(console, "vm_storm")
}

fn check_vm_shared(console: &Console) -> Result<(), String> {
    console.require("owner: the snapshot shows 8 shared pages in the owner and in the peer")?;
    console.require("shm_peer: peer: saw the pattern in 'warm' and wrote its marks")?;
    console.require("vm_shared: owner: sees the peer's marks in every page")?;
    // The reader read through its read-only view; its write was refused by VM, reported
    // by the kernel, and killed only the reader.
    console.require(
        "shm_reader: reader: read the pattern through a read-only mapping; now writing it",
    )?;
    console.require_line_with(&["vm: pid ", "invalid write at ", "write to read-only memory"])?;
    console.require_line_with(&["user fault: #PF", "process 'shm_reader'"])?;
    console.require("refused by the VM server (its log says why)")?;
    console.require_line_with(&["process 'shm_reader' (pid ", "killed by #PF"])?;
    console.forbid("killed by #PF at 0x0")?;
    console.require("vm_shared: owner: the reader died writing, as it should")?;
    for refusal in [
        "shm_peer: refused as expected: a writable map of an object others may only read: EPERM",
        "shm_peer: refused as expected: a destroy by a process that does not own the object: EPERM",
        "vm_shared: refused as expected: a second create of one name: EEXIST",
        "vm_shared: refused as expected: mapping a destroyed object: ESRCH",
        "vm_shared: refused as expected: destroying it twice: ESRCH",
    ] {
        console.require(refusal)?;
    }
    console.require("shm_peer: peer: 'shm' still reads right; unmapped it")?;
    // The frames: one per object page however many map it, all back at the last unmap.
    let [baseline, written, last] = pass_free_frames(console)?;
    if written + 8 != baseline || last != baseline {
        return Err(format!(
            "free frames {baseline} -> {written} -> {last}: not 8 frames taken and all given back"
        ));
    }
    console.require("8 frames for 8 pages and 2 mappers, kept while a destroyed object was mapped, back at the last unmap")?;
    console.forbid(": FAIL")?;
    console.forbid("memory accounting drift")?;
    require_success_shutdown(console, "vm_shared")
}

/// The three figures of `vm_shared: PASS free frames A -> B -> C: …`.
fn pass_free_frames(console: &Console) -> Result<[u64; 3], String> {
    let needle = "vm_shared: PASS free frames ";
    let line = console
        .find(needle)
        .ok_or_else(|| format!("the console never showed {needle:?}"))?;
    let rest = &line.text[line.text.find(needle).unwrap_or(0) + needle.len()..];
    let figures = rest.split(':').next().unwrap_or("");
    let numbers: Vec<u64> = figures
        .split(" -> ")
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    numbers
        .try_into()
        .map_err(|_| format!("no three free-frame figures in {:?}", line.text))
}

fn check_vm_share_kcall(console: &Console) -> Result<(), String> {
    for refusal in [
        "a target page already mapped: EEXIST",
        "a source page not mapped: EFAULT",
        "a writable view of a read-only page: EPERM",
        "an unknown target pid: ESRCH",
        "an unknown flag bit: EINVAL",
        "a target in kernel space: EFAULT",
        "VmLimitOf of no process: ESRCH",
    ] {
        console.require(&format!("vm_kcalls: refused as expected: {refusal}"))?;
    }
    console.require_line_with(&[
        "vm_kcalls: PASS free frames ",
        "(view unmapped); 10 bad calls refused; limit 4096 pages",
    ])?;
    console.forbid(": FAIL")?;
    console.forbid("memory accounting drift")?;
    require_success_shutdown(console, "vm_kcalls")
}

fn check_ptrace_kcalls(console: &Console) -> Result<(), String> {
    for refusal in [
        "a kernel rip: EINVAL",
        "a non-canonical rip: EINVAL",
        "the trap flag: EINVAL",
        "interrupts off: EINVAL",
        "registers of its own thread: EPERM",
        "registers of VM: EPERM",
        "a stale endpoint: EDEADSRCDST",
        "peek of itself: EPERM",
        "peek of no process: ESRCH",
        "peek of an unmapped page: EFAULT",
        "poke of an unmapped page: EFAULT",
        "an oversized peek: EINVAL",
        "a peek at a kernel address: EFAULT",
        "poke of a shared frame: EPERM",
        "registers of the killed tracee: EDEADSRCDST",
        "peek of the killed tracee: ESRCH",
        "trace flags of its own thread: ESELF",
        "trace flags of VM: EPERM",
        "resuming a thread that is not held: EINVAL",
    ] {
        console.require(&format!("trace_kcalls: refused as expected: {refusal}"))?;
    }
    console.require("trace_kcalls: trace stops: entry and exit stops (a call changed at entry), 3 steps (one over SYSCALL), none untraced")?;
    console.require("trace_kcalls: PASS registers read at rip 0x400007, rip moved twice, read-only code patched, 16 bad calls refused")?;
    console.forbid(": FAIL")?;
    require_success_shutdown(console, "trace_kcalls")
}

/// vtrace's lines for one traced process (`[PID] …`), without the prefix.
fn vtrace_lines(console: &Console, pid: &str) -> Vec<String> {
    let prefix = format!("vtrace: [{pid}] ");
    console
        .lines
        .iter()
        .filter_map(|line| {
            let at = line.text.find(&prefix)?;
            Some(line.text[at + prefix.len()..].to_string())
        })
        .collect()
}

/// Each line of `got` starts with the expected text at its place, and there are as many.
fn matches_in_order(who: &str, got: &[String], expected: &[&str]) -> Result<(), String> {
    let ok = got.len() == expected.len()
        && got
            .iter()
            .zip(expected)
            .all(|(line, want)| line.starts_with(want));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "vtrace's lines for the {who} are {got:#?}, expected lines starting with {expected:#?}"
        ))
    }
}

fn check_ptrace_pm(console: &Console) -> Result<(), String> {
    for refusal in [
        "attach to PM: EPERM",
        "attach to VM: EPERM",
        "attach to itself: ESELF",
        "attach to no process: ESRCH",
        "attach twice: EEXIST",
        "attach with unknown options: EINVAL",
        "registers of an untraced thread: EPERM",
        "registers of a forged endpoint: EDEADSRCDST",
        "continue in mode 7: EINVAL",
        "continue an untraced pid: EPERM",
        "peek of 0 bytes: EINVAL",
        "peek of more than MAX_PEEK_BYTES: EINVAL",
        "peek with a forged grant: EBADGRANT",
        "peek of an unmapped address: EFAULT",
        "unknown verb: ENOSYS",
        "wait with unknown flags: EINVAL",
        "detach an untraced pid: EPERM",
        "wait after its tracee ended: ESRCH",
    ] {
        console.require(&format!("ptrace_test: refused as expected: {refusal}"))?;
    }
    console.require_line_with(&["ptrace_test: single step: rip 0x", " -> 0x"])?;
    console.require("ptrace_test: syscall stops: lookup(vm) = vm; lookup(\"nope\") changed at entry into self_endpoint")?;
    console.require("ptrace_test: detached: the tracee ran to its end (status 3)")?;
    console.require_line_with(&[
        "ptrace_test: followed: child ",
        "traced from its start; both exited 3",
    ])?;
    console.require_line_with(&[
        "ptrace_test: tracer death: pid ",
        "detached and running again when tracer",
    ])?;
    console.require_line_with(&["pm: tracer pid ", "ended: pid ", "detached and running"])?;
    // vtrace on `trace_target spawn` and, with -f, the child it spawns.
    let started = console
        .find("vtrace: started 'trace_target -- spawn' as pid ")
        .ok_or("vtrace never started its program")?;
    let parent = started.text.rsplit(' ').next().unwrap_or("").to_string();
    let child_line = console
        .lines
        .iter()
        .find(|line| line.text.contains(&format!("] new child of pid {parent}")))
        .ok_or("vtrace never reported the followed child")?;
    let child = child_line
        .text
        .split("vtrace: [")
        .nth(1)
        .and_then(|rest| rest.split(']').next())
        .unwrap_or("")
        .to_string();
    let own_calls = [
        "lookup(\"vm\") = vm",
        "lookup(\"nope\") = -ESRCH",
        "sleep(1000000 ns) = 0",
        "debug_write(\"hello from trace_target\\n\") = 24",
        "send_receive(vm, 0x2000099) = 0 [from vm: VM_REPLY]",
        "process_exit(3) = ?",
        "+++ exited with 3 +++",
    ];
    let mut parent_expected = vec![
        "lookup(\"pm\") = pm",
        "grant_create(pm, 0x",
        "send_receive(pm, SPAWN) = 0 [from pm: PM_REPLY]",
        "grant_revoke(0x",
        "lookup(\"pm\") = pm",
        "send_receive(pm, WAIT) = 0 [from pm: PM_REPLY]",
    ];
    let ended = format!("debug_write(\"child {child} ended: Ok(3)\\n\") = ");
    parent_expected.push(&ended);
    parent_expected.extend(own_calls);
    matches_in_order("parent", &vtrace_lines(console, &parent), &parent_expected)?;
    let mut child_expected = vec!["new child of pid "];
    child_expected.extend(own_calls);
    matches_in_order("child", &vtrace_lines(console, &child), &child_expected)?;
    console.require_line_with(&["vtrace: done: ", " system calls traced"])?;
    console.forbid(": FAIL")?;
    console.require("ptrace_test: PASS every tracing verb, direct stops, follow, tracer death, kills during direct waits, vtrace")?;
    require_success_shutdown(console, "ptrace_test")
}

fn check_pm_processes(console: &Console) -> Result<(), String> {
    console.require("boot: module 2 'pm_child' is an image for the process manager")?;
    console.require("pm: 'pm' manages the processes it starts")?;
    for how in ["receive", "sleep", "mutex"] {
        console.require(&format!("killed a child blocked in {how}: status 137"))?;
    }
    console.require_line_with(&["tree 1: child ", " exited with status 5"])?;
    console.require_line_with(&[
        "pm_test: tree record: pid ",
        " name pm_child args \"sleep\" running",
    ])?;
    console.require_line_with(&["pid ", " exited: its 1 running children are pm's now"])?;
    for refusal in [
        "wait with no children: ESRCH",
        "wait for an orphan PM adopted: ESRCH",
        "wait for a forged pid: ESRCH",
        "kill PM: EPERM",
        "wait for PM: ESRCH",
        "kill VM: EPERM",
        "kill a forged pid: ESRCH",
        "spawn a missing program: ESRCH",
        "spawn a module that is not boot=pm: ESRCH",
        "spawn with huge arguments: EINVAL",
        "spawn text over the limit: EINVAL",
    ] {
        console.require(&format!("pm_test: refused as expected: {refusal}"))?;
    }
    console.require("pm_test: refused as expected: kill oneself: ")?;
    console.require_line_with(&[
        "pm_test: PASS 1000 spawn+exit+wait rounds in ",
        "reparented",
    ])?;
    console.forbid(": FAIL")?;
    console.forbid("memory accounting drift")?;
    require_success_shutdown(console, "pm_test")
}

fn check_pm_boot(console: &Console) -> Result<(), String> {
    // The kernel started the boot table's servers and left the rest to PM.
    console.require("boot: started 'vm' (pid 1, ")?;
    console.require("boot: started 'pm' (pid 2, ")?;
    console.require("boot: module 2 'pm_probe' is the process manager's to start")?;
    console.require("boot: module 9 'broken' is an image for the process manager")?;
    console.require("boot: 2 of 11 modules started by the kernel (the system servers)")?;
    // PM started the others in module order (pids 3..) and said so, the kernel none.
    for (pid, name) in [
        (3, "pm_probe"),
        (4, "hello_args"),
        (5, "crash_null"),
        (6, "pm_kcalls"),
        (7, "pm_judge"),
    ] {
        console.require_line_with(&[
            &format!("pm: boot: started '{name}' (pid {pid}, "),
            ", by pm)",
        ])?;
        console.forbid(&format!("INFO  boot: started '{name}'"))?;
    }
    console.require("pm: boot: 5 of 5 programs started by pm")?;
    // PM refused the bad modules with a reason; the kernel did not parse them.
    console.require_line_with(&[
        "pm: boot: module 4 '",
        "name=hello_badprio prio=99' refused: prio '99' is not 0..=15",
    ])?;
    console.require_line_with(&[
        "pm: boot: module 8 '",
        "pm-boot-garbage.bin' refused: ",
        "ELF",
    ])?;
    // Larger than PM's heap: PM reads only its head (and a real image's segments), so
    // it is judged like any other file.
    console.require_line_with(&[
        "pm: boot: module 10 '",
        "pm-boot-huge.bin' refused: ",
        "ELF",
    ])?;
    console.forbid("hello_badprio:")?;
    // A spawn of a malformed image is refused with a reason, and PM keeps serving.
    console.require("pm: spawn of 'broken' refused: not an ELF file")?;
    console.require("pm_judge: refused as expected: spawn of a malformed image: EINVAL")?;
    console.require("pm_judge: refused as expected: spawn of a missing program after it: ESRCH")?;
    // Arguments and privileges from the module strings.
    console.require_line_with(&[
        "hello_args: hello from Vigil user space",
        "args [\"one\", \"two\", \"three\"]",
    ])?;
    for refusal in [
        "a kernel call with kcalls=none: EPERM",
        "a send to vm outside ipc=: EPERM",
        "a send to pm outside ipc=: EPERM",
    ] {
        console.require(&format!("pm_probe: refused as expected: {refusal}"))?;
    }
    console.require("pm_probe: PASS arguments \"probe alpha beta\"")?;
    console.require("tree record: pm_probe pid 3 parent 2 (pm) args \"probe alpha beta\"")?;
    console.require("tree record: pm_judge pid 7 parent 2 (pm) args \"judge gamma\"")?;
    // Bad `ipc` lists for PmStart, from a process with `kcalls=pm`.
    for refusal in [
        "ipc list with a pid that is not live: ESRCH",
        "ipc list with pid 0: EINVAL",
        "ipc list over the limit: EINVAL",
        "ipc list at a wild pointer: EFAULT",
        "ipc list misaligned: EINVAL",
        "ipc list of 16 pids through the runtime: EINVAL",
        "kill of the killed victim: ESRCH",
        "lookup of a process created and not started: ESRCH",
    ] {
        console.require(&format!("pm_kcalls: refused as expected: {refusal}"))?;
    }
    console.require_line_with(&[
        "pm_kcalls: PASS bad ipc lists refused; pid ",
        " never started, killed",
    ])?;
    // The crash of a program PM started is reported as any other: registers, a
    // symbolised backtrace in its own program, the kill.
    console.require_line_with(&["user fault: #PF", "(vector 14)", "process 'crash_null'"])?;
    console.require_line_with(&["cr2=0x0000000000000000"])?;
    console.require_line_with(&[
        "#0 pc  0x",
        "(crash_null) crash_null::main at user/programs/src/bin/crash_null.rs:",
    ])?;
    console.require_line_with(&["process 'crash_null' (pid 5) killed by #PF"])?;
    console.forbid(": FAIL")?;
    console.require("pm_boot: PASS both roles are children of pm (pid 2) with their arguments")?;
    require_success_shutdown(console, "pm_judge")
}

fn check_pm_signals(console: &Console) -> Result<(), String> {
    // The exception is reported exactly as for an unmanaged process, then held for PM.
    console.require_line_with(&[
        "user fault: #PF page fault (vector 14) in process 'sig_child'",
        "error code 0x4",
    ])?;
    console.require_line_with(&["process 'sig_child' (pid ", "held for its signal manager"])?;
    console.require_line_with(&[
        "pm: process 'sig_child' (pid ",
        " killed by #PF at ",
        ": SIGSEGV (vector 14, address 0x0), status 0x30000000b",
    ])?;
    console.require_line_with(&["sig_test: child ", " ended by SIGSEGV (status 0x30000000b"])?;
    console.require("sig_child: SIGSEGV caught in its handler")?;
    console.require_line_with(&["sig_test: child ", " caught its own SIGSEGV"])?;
    console.require("caught SIGUSR1 from another process; the sleep returned EINTR")?;
    console.require_line_with(&["sig_test: child ", " caught SIGUSR1 sent by its parent"])?;
    console.require("caught SIGUSR1 with its frame on a stack page VM had not mapped")?;
    console.require_line_with(&["sig_test: child ", " on a fresh stack page: status 43"])?;
    console.require("sig_test: caught SIGUSR1 sent to itself before kill returned")?;
    console.require("sig_test: KILL and STOP stay unmasked")?;
    console.require_line_with(&["sig_test: stopped spinner held at ", "status 0x100000009"])?;
    for mode in ["send", "recv", "mutex", "sleep"] {
        console.require(&format!(
            "sig_test: SIGKILL of a child blocked in {mode}: nothing left; its partner gets EDEADSRCDST"
        ))?;
    }
    console.require("is managed by pid")?;
    console.require_line_with(&["process 'sig_victim' (pid ", "held for its signal manager"])?;
    console.require_line_with(&["sig_test: PM managed boot process sig_victim", "SIGSEGV"])?;
    for refusal in [
        "signal a forged pid: ESRCH",
        "signal 0: EINVAL",
        "signal 64: EINVAL",
        "signal u64::MAX: EINVAL",
        "SIGKILL to PM: EPERM",
        "SIGKILL to VM: EPERM",
        "catch SIGKILL: EINVAL",
        "catch with no entry: EINVAL",
        "MANAGE a forged pid: ESRCH",
        "MANAGE VM: EPERM",
        "MANAGE PM: EINVAL",
        "SignalReturn of a zeroed frame: EINVAL",
        "SignalReturn to a kernel RIP: EINVAL",
        "SignalReturn with a bad MXCSR: EINVAL",
        "SignalReturn of a wild pointer: EFAULT",
    ] {
        console.require(&format!("sig_test: refused as expected: {refusal}"))?;
    }
    console.forbid(": FAIL")?;
    console.forbid("memory accounting drift")?;
    require_success_shutdown(console, "sig_test")
}

fn check_rs_restart(console: &Console) -> Result<(), String> {
    console.forbid("its string is cut")?;
    console.require("boot: started 'rs' (pid 3, ")?;
    console.require("rs: service 'hello_service' started (pid ")?;
    console.require_line_with(&[
        "signal: pid ",
        " ('hello_service') is managed by pid 3 ('rs') now",
    ])?;
    console.require_line_with(&["rs: service 'hello_service' (pid ", ") crashed: #PF at "])?;
    // Four failures within `stable` (1 s): immediate, then the default base 20 ms, 40, 80.
    for (failure, restart, delay) in [
        ("exception #PF (vector 14)", 1, 0),
        ("panic (status 101)", 2, 20),
        ("exit (status 7)", 3, 40),
        ("hang (no heartbeat for 3 periods)", 4, 80),
    ] {
        console.require(&format!(
            "rs: service 'hello_service' failed: {failure}; failure {restart} in a row, restart in {delay} ms"
        ))?;
        console.require_line_with(&[
            "rs: service 'hello_service' restarted as pid ",
            &format!(" (restart {restart}, "),
        ])?;
    }
    require_hangs_within_three_periods(console, "hello_service", 100, 1)?;
    // The exit and the panic reach RS as PM's exit notice, not on a tick of its own.
    for status in ["0x7", "0x65"] {
        console.require_line_with(&[
            "rs: pid ",
            &format!(" exited (status {status}): collected on PM's exit notice"),
        ])?;
    }
    for what in ["null dereference", "panic", "exit 7", "hang"] {
        console.require_line_with(&[&format!("rs_test: {what}: restart "), "serving again at "])?;
    }
    console.require("rs: service 'hello_service': restart requested (state running)")?;
    console.require("rs_test: RESTART: restart 5 (requested), counter 0")?;
    console.forbid(": FAIL")?;
    console.forbid("memory accounting drift")?;
    for what in ["null dereference", "panic", "exit 7", "hang"] {
        console.require(&format!("rs_test: {what}: the call failed with ERESTARTED"))?;
    }
    console.require_line_with(&[
        "rs: service 'hello_service' (pid ",
        ") serves ",
        " again (its own ",
    ])?;
    console.require("rs_test: PASS hello restarted after a null dereference, a panic, an exit, a hang and a RESTART, answering each time at the same endpoint")?;
    require_success_shutdown(console, "rs_test")
}

fn check_rs_keep_endpoint(console: &Console) -> Result<(), String> {
    console.forbid("its string is cut")?;
    console.forbid(": FAIL")?;
    console.forbid("memory accounting drift")?;
    console.forbid("taking over")?;
    for refusal in [
        "keep the endpoint of a service it does not manage: EPERM",
        "keep its own endpoint: EPERM",
        "keep ANY: EBADEPT",
        "keep a slot outside the table: EBADEPT",
        "keep a stale endpoint: EDEADSRCDST",
        "take over with itself as the replacement: EPERM",
        "take over with a replacement it does not manage: EPERM",
        "take over with NONE as the replacement: EBADEPT",
        "take over with a stale replacement: EDEADSRCDST",
        "release a live service: EINVAL",
        "release ANY: EBADEPT",
        "release a stale endpoint: EDEADSRCDST",
        "SLOW_GET longer than its limit: EINVAL",
        "swap an endpoint with itself: EINVAL",
        "swap with a service RS manages: EPERM",
        "swap with ANY: EBADEPT",
        "swap while one is busy with a request: EBUSY",
    ] {
        console.require(&format!("rs_endpoint_test: refused as expected: {refusal}"))?;
    }
    for round in 1..=2 {
        for what in ["null dereference", "panic", "exit 3", "hang"] {
            console.require_line_with(&[
                &format!("rs_endpoint_test: round {round}: {what}: restart "),
                "answered at the same endpoint ",
            ])?;
        }
    }
    // A takeover per restart (eight crashes and the RESTARTs, one unless the request in
    // flight was answered before one reached it), each printed by RS.
    let takeovers = console
        .lines
        .iter()
        .filter(|line| {
            line.text.contains("rs: service 'hello_service' (pid ")
                && line.text.contains(") serves ")
        })
        .count();
    let restarts = format!("rs_endpoint_test: PASS hello restarted {takeovers} times");
    if takeovers < 9 || console.find(&restarts).is_none() {
        return Err(format!(
            "{takeovers} takeovers by RS, expected 9 or more and as many restarts"
        ));
    }
    console.require("rs_endpoint_test: in flight: SLOW_GET failed with Restarted during a RESTART and was retried once at ")?;
    // Both rounds' hangs within 3 periods of the last answer; both exits (and panics) on
    // PM's exit notice.
    require_hangs_within_three_periods(console, "hello_service", 100, 2)?;
    for status in ["0x3", "0x65"] {
        let notices = console
            .lines
            .iter()
            .filter(|line| {
                line.text.contains(&format!(
                    " exited (status {status}): collected on PM's exit notice"
                ))
            })
            .count();
        if notices < 2 {
            return Err(format!(
                "{notices} exits with status {status} collected on PM's exit notice, expected 2"
            ));
        }
    }
    console.require_line_with(&[
        "rs_endpoint_test: live swap: ",
        " (counter 0), then by pid ",
        " again (counter 5)",
    ])?;
    console.require_line_with(&[
        "rs_endpoint_test: PASS hello restarted ",
        " times, always answering at ",
        "; the request in flight was retried; two live instances swapped endpoints and back",
    ])?;
    require_success_shutdown(console, "rs_endpoint_test")
}

fn check_rs_init_timeout(console: &Console) -> Result<(), String> {
    console.forbid("its string is cut")?;
    console.forbid(": FAIL")?;
    console.require("rs: service 'stally' failed: hang (no heartbeat for 3 periods); failure 1 in a row, restart in 0 ms")?;
    require_hangs_within_three_periods(console, "stally", 50, 1)?;
    console.require("rs: service 'stally' failed: init timeout (not in its receive loop after 100 ms); failure 2 in a row, restart in 10 ms")?;
    console.require_line_with(&[
        "rs: service 'stally' (pid ",
        ") did not reach its receive loop within 100 ms",
    ])?;
    console.require("rs: ALERT: service 'stally' held down after 3 failures in a row (last: init timeout (not in its receive loop after 100 ms)); RESTART starts it again")?;
    console.require_line_with(&["rs: service 'stally': endpoint ", " released"])?;
    console.require_line_with(&[
        "rs_endpoint_test: init timeout: held down after 2 restarts (last: init-timeout after 100 ms); the GET waiting at ",
        " failed with EDEADSRCDST",
    ])?;
    console.require("rs_endpoint_test: PASS a service that never initialises was held down by its init timeout and its waiting client released")?;
    require_success_shutdown(console, "rs_endpoint_test")
}

fn check_rs_crash_loop(console: &Console) -> Result<(), String> {
    console.forbid("its string is cut")?;
    for (in_a_row, delay) in [(1, 0), (2, 10), (3, 20), (4, 40)] {
        console.require(&format!(
            "rs: service 'crashy' failed: exception #PF (vector 14); failure {in_a_row} in a row, restart in {delay} ms"
        ))?;
    }
    console.require("rs: ALERT: service 'crashy' held down after 5 failures in a row (last: exception #PF (vector 14)); RESTART starts it again")?;
    console.require("rs_test: crashy held down after 5 failures (4 restarts)")?;
    // Held down: the kept endpoint is given up (its waiting clients would fail).
    console.require_line_with(&["rs: service 'crashy': endpoint ", " released"])?;
    console.require("rs: service 'crashy': restart requested (state held-down)")?;
    console.require("rs_test: after RESTART: held again with 9 restarts")?;
    console.forbid(": FAIL")?;
    console.require("rs_test: PASS crash loop backed off, held down with an alert, RESTART ran it once more; hello_service served throughout")?;
    require_success_shutdown(console, "rs_test")
}

fn check_rs_bad_requests(console: &Console) -> Result<(), String> {
    console.forbid("its string is cut")?;
    console.require(
        "rs: service 'bogus:x=1' refused: unknown key 'x' (base, cap, limit, stable, hb, init)",
    )?;
    console.require("rs: service 'slow:base=9,cap=1' refused: base is above cap")?;
    console.require("rs: supervising 2 services at ")?;
    console.require("rs: ALERT: service 'gone' held down after 2 failures in a row (last: spawn refused (ESRCH)); RESTART starts it again")?;
    // 'gone' never ran, so it has no kept endpoint to release.
    console.forbid("rs: service 'gone': endpoint")?;
    for refusal in [
        "unknown RS request: ENOSYS",
        "status of service 99: ESRCH",
        "status of a forged index: ESRCH",
        "index with a forged name length: EINVAL",
        "index with a name that is not UTF-8: EINVAL",
        "index of an unknown service: ESRCH",
        "restart by a non-operator: EPERM",
        "a kernel kind sent to RS: EINVAL",
        "unknown hello request: ENOSYS",
        "ADD that overflows: EINVAL",
        "EXIT with status 999: EINVAL",
        "ServiceTakeOver without the rs kernel calls: EPERM",
        "ServiceRelease without the rs kernel calls: EPERM",
    ] {
        console.require(&format!("rs_test: refused as expected: {refusal}"))?;
    }
    console.require_line_with(&["rs: RESTART from ", " refused: not an operator"])?;
    console.forbid(": FAIL")?;
    console.require("rs_test: PASS RS and hello refused every bad request and kept serving")?;
    require_success_shutdown(console, "rs_test")
}

fn check_ds_store(console: &Console) -> Result<(), String> {
    console.forbid("its string is cut")?;
    console.require("boot: started 'ds' (pid ")?;
    console.require("ds: data store ready at ")?;
    for refusal in [
        "publish before IDENTIFY: EPERM",
        "IDENTIFY as another process's name: EPERM",
        "IDENTIFY with an empty name: EINVAL",
        "retrieve into a buffer shorter than the value: EINVAL",
        "retrieve a range as a small value: EINVAL",
        "retrieve a deleted key: ESRCH",
        "delete a deleted key: ESRCH",
        "a value above 4 KiB: EINVAL",
        "a key above 16 bytes: EINVAL",
        "a value past the total bytes: ENOMEM",
        "a key past the most keys: ENOMEM",
        "an unknown DS request: ENOSYS",
        "a key of length 0: EINVAL",
        "a key length past its bytes: EINVAL",
        "a key with a control byte: EINVAL",
        "a reserved word that is not 0: EINVAL",
        "a small value longer than 24 bytes: EINVAL",
        "a grant id that names no grant: EBADGRANT",
        "a grant smaller than the size named: EBADGRANT",
        "a read-only grant to retrieve into: EBADGRANT",
        "a grant for another process: EBADGRANT",
        "a kernel kind sent to DS: EINVAL",
        "INTROSPECT of a topic DS does not hold: ENOSYS",
        "INTROSPECT into a buffer smaller than a record: EINVAL",
    ] {
        console.require(&format!("ds_test: refused as expected: {refusal}"))?;
    }
    for refusal in [
        "overwrite another process's key: EPERM",
        "delete another process's key: EPERM",
    ] {
        console.require(&format!("ds_other: refused as expected: {refusal}"))?;
    }
    console.require("ds_other: PASS others may read a key, not overwrite or delete it")?;
    console.require("ds_test: range: 4096 bytes published and read back by grant")?;
    console.require(
        "ds_test: limits: 15 values of 4 KiB filled the bytes, 62 more keys filled the keys",
    )?;
    console.require_line_with(&[
        "ds_test: fuzz: 2000 random requests, 2000 answered (",
        "refused); DS still serving",
    ])?;
    console.require_line_with(&[
        "ds_test: introspect: 2 keys:",
        "shared.k=ds_test(4 bytes, 1 publishes)",
        "other.done=ds_other(4 bytes, 1 publishes)",
    ])?;
    console.require_clean_run()?;
    console.require("ds_test: PASS DS stored, returned and deleted values and ranges, kept ownership, refused every bad request and kept serving")?;
    require_success_shutdown(console, "ds_test")
}

/// Like `require_clean_run`, for runs that crash services on purpose (their user faults
/// and panics are expected): no program failed, the kernel did not panic, no accounting
/// drift.
fn require_no_failure_but_crashes(console: &Console) -> Result<(), String> {
    console.forbid(": FAIL")?;
    console.forbid("ERROR panic:")?;
    console.forbid("memory accounting drift")?;
    console.forbid("shutdown refused")
}

fn check_hello_exactly_once(console: &Console) -> Result<(), String> {
    console.forbid("its string is cut")?;
    console.require("rs: service 'hello_service' started (pid ")?;
    console.require("hello_service: serving at ")?;
    for crash in ["null dereference", "panic", "exit", "hang"] {
        console.require_line_with(&[
            &format!("hello_client: {crash}: counter kept ("),
            ") by the new instance ",
        ])?;
    }
    // Each new instance read the counter back from DS.
    console.require_line_with(&["hello_service: serving at ", " from DS, 1 clients recorded"])?;
    console.require("hello_service: crashing after recording counter ")?;
    console.require_line_with(&[
        "hello_service: request ",
        " answered from the record (not executed again)",
    ])?;
    console.require_line_with(&[
        "hello_client: lost reply: request ",
        " answered from the record after ",
    ])?;
    console.require("hello_client: refused as expected: a stale request id: EINVAL")?;
    console.require("hello_client: refused as expected: an unknown flag: EINVAL")?;
    console.require_line_with(&["hello_client: load: 12 crashes, ", ": 0 lost, 0 doubled"])?;
    require_no_failure_but_crashes(console)?;
    console.require("hello_client: PASS counter kept across a null dereference, a panic, an exit and a hang; a lost reply answered from the record; 0 lost, 0 doubled under crashes")?;
    require_success_shutdown(console, "hello_client")
}

/// RS's restart latencies (µs), from its `restarted as pid … (restart N, L us after its
/// end)` lines: from the end RS saw (the exception event, or its collection of an exit) to
/// its asking PM for the new instance.
fn restart_latencies_us(console: &Console) -> Vec<u64> {
    console
        .lines
        .iter()
        .filter(|line| {
            line.text
                .contains("rs: service 'hello_service' restarted as pid ")
        })
        .filter_map(|line| {
            let (_, tail) = line.text.split_once(", ")?;
            tail.split_whitespace().next()?.parse().ok()
        })
        .collect()
}

/// RS's tick (`user/servers/rs`), the precision of its heartbeat deadlines.
const RS_TICK_US: u64 = 10_000;

/// RS declared `service` hung at least `at_least` times, each time after a silence (RS's
/// `silent for N us since its last sign of life`) of at most 3 heartbeat periods of
/// `period_ms` plus one tick, and one tick more of slack for a loaded TCG host (RS reads
/// the clock when its tick is handled, guest time): the hang rule is 3 periods at tick
/// precision. Also at least 2 periods, so a hang is never declared early.
fn require_hangs_within_three_periods(
    console: &Console,
    service: &str,
    period_ms: u64,
    at_least: usize,
) -> Result<(), String> {
    let prefix = format!("rs: service '{service}' (pid ");
    let suffix = format!(" us since its last sign of life ({period_ms} ms period, ");
    let silences: Vec<u64> = console
        .lines
        .iter()
        .filter(|line| line.text.contains(&prefix) && line.text.contains("unanswered): hung"))
        .filter_map(|line| {
            let (head, _) = line.text.split_once(&suffix)?;
            head.rsplit(' ').next()?.parse().ok()
        })
        .collect();
    if silences.len() < at_least {
        return Err(format!(
            "{} hangs of '{service}' declared with a {period_ms} ms period, expected at least {at_least}",
            silences.len()
        ));
    }
    let most = 3 * period_ms * 1000 + 2 * RS_TICK_US;
    let least = 2 * period_ms * 1000;
    match silences.iter().find(|&&us| us > most || us < least) {
        Some(us) => Err(format!(
            "'{service}' declared hung after {us} us of silence: expected 3 periods of {period_ms} ms (to RS's tick)"
        )),
        None => Ok(()),
    }
}

/// The kernel's timestamp of a console line (`[    1.234567] …`), in µs.
fn guest_time_us(text: &str) -> Option<u64> {
    let inside = text.strip_prefix('[')?.split_once(']')?.0.trim();
    let (seconds, micros) = inside.split_once('.')?;
    Some(seconds.parse::<u64>().ok()? * 1_000_000 + micros.parse::<u64>().ok()?)
}

/// For each end of hello (its last words: a crash, an exit, a panic, a hang), the guest
/// time until its successor says it is serving, in µs: crash → serving again, all of it
/// (RS noticing, PM spawning, hello reading its state back from DS).
fn crash_to_serving_us(console: &Console) -> Vec<u64> {
    const ENDS: [&str; 4] = [
        "hello_service: crashing on request",
        "hello_service: exiting with status",
        "process 'hello_service' (pid ",
        "hello_service: hanging on request",
    ];
    let mut ended = None;
    let mut samples = Vec::new();
    for line in &console.lines {
        let text = &line.text;
        let is_end = ENDS.iter().any(|end| text.contains(end))
            && (!text.contains("process 'hello_service' (pid ") || text.contains(") panicked"));
        if is_end && ended.is_none() {
            ended = guest_time_us(text);
        } else if text.contains("hello_service: serving at ") {
            if let (Some(end), Some(now)) = (ended.take(), guest_time_us(text)) {
                samples.push(now.saturating_sub(end));
            }
        }
    }
    samples
}

/// "median M, max X" of `samples` (sorted here) in ms.
fn median_and_max_ms(samples: &mut [u64]) -> String {
    samples.sort_unstable();
    match (samples.get(samples.len() / 2), samples.last()) {
        (Some(median), Some(max)) => format!(
            "median {:.2} ms, max {:.2} ms",
            *median as f64 / 1000.0,
            *max as f64 / 1000.0
        ),
        _ => String::from("no samples"),
    }
}

fn check_rs_thousand_crashes(console: &Console) -> Result<(), String> {
    console.forbid("its string is cut")?;
    console.require_line_with(&["hello_client: load: 1000 crashes (", " hangs) in "])?;
    console.require_line_with(&["hello_client: load: 1000 crashes, ", ": 0 lost, 0 doubled"])?;
    let mut latencies = restart_latencies_us(console);
    let mut serving_again = crash_to_serving_us(console);
    for (what, samples) in [
        ("RS's restart latencies", &latencies),
        ("crash-to-serving times", &serving_again),
    ] {
        if samples.len() < 1000 {
            return Err(format!(
                "{} {what}, expected one per crash (1000)",
                samples.len()
            ));
        }
    }
    println!(
        "    rs-thousand-crashes: {} restarts; RS's latency (end seen -> new instance asked of PM) {}; crash -> new instance serving {} (guest time)",
        latencies.len(),
        median_and_max_ms(&mut latencies),
        median_and_max_ms(&mut serving_again)
    );
    require_no_failure_but_crashes(console)?;
    console.require("hello_client: PASS 1000 crashes: 0 lost, 0 doubled")?;
    require_success_shutdown(console, "hello_client")
}

fn check_rs_service_program(console: &Console) -> Result<(), String> {
    console.require(
        "service: INDEX NAME             STATE           PID RESTARTS VERSION  LAST FAILURE",
    )?;
    console.require_line_with(&["service: 0     hello_service    running", "none"])?;
    console.require_line_with(&[
        "service: 1     crashy           held-down",
        "exception #PF (vector 14) at ",
    ])?;
    // crashy's last crash, its backtrace under its row, symbolised in hello_service's ELF:
    // the faulting load is in the null-dereference helper hello's crash path calls.
    console.require_line_with(&[
        "service:       #0 pc  0x",
        "(crashy) vigil_programs::read_address_zero at ",
    ])?;
    console.require_line_with(&[
        "service:       #1 ret 0x",
        "(crashy) hello_service::crash at user/programs/src/bin/hello_service.rs:",
    ])?;
    // hello_service's own null dereference (CRASH, while held): RS's recorded backtrace,
    // listed by `service list`.
    console.require_line_with(&[
        "service:       #1 ret 0x",
        "(hello_service) hello_service::crash at user/programs/src/bin/hello_service.rs:",
    ])?;
    console.require_line_with(&["service: 2     vm               system"])?;
    console.require_line_with(&["service: 4     rs               system"])?;
    console.require("service: 5 services")?;
    for refused in [
        "restart rs",
        "restart pm",
        "restart vm",
        "down pm",
        "hold vm",
        "refresh rs",
        "update rs",
        "update pm",
    ] {
        console.require(&format!(
            "service: {refused} refused: system server: not restartable (its state lives only in its memory)"
        ))?;
    }
    console.require(
        "rs: service 'rs': restart refused: system server: not restartable (its state lives only in its memory)",
    )?;
    console.require("service: no such service 'ds' (service list shows them)")?;
    for done in ["down", "up", "refresh", "hold", "release", "restart"] {
        console.require(&format!("service: {done} hello_service: done"))?;
    }
    console.require("service: release crashy: done")?;
    console.require("rs: service 'hello_service' is down (up starts it)")?;
    console.require("rs: service 'hello_service' is held by an operator: not restarted after exception #PF (vector 14); release starts it again")?;
    console.require("service: up hello_service refused: it is not down")?;
    console
        .require("service: refresh hello_service refused: it is not running (use restart or up)")?;
    console.require(
        "intruder: service: restart hello_service refused: not an operator (RS's operator= list)",
    )?;
    console.require_line_with(&["rs: ACTION from ", " refused: not an operator"])?;
    console.require("service: no such service 'no_such_service' (service list shows them)")?;
    console
        .require("service: bad service name 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa': EINVAL")?;
    console.require("service: unknown action 'frobnicate'")?;
    console.require("service: no command")?;
    console.require("usage: service list")?;
    for refusal in [
        "ACTION with an unknown action code: EINVAL",
        "ACTION on service 99: ESRCH",
        "INTROSPECT of a topic RS does not have: ENOSYS",
        "INTROSPECT into a buffer smaller than a record: EINVAL",
    ] {
        console.require(&format!("rs_service_test: refused as expected: {refusal}"))?;
    }
    console.forbid(": FAIL")?;
    console.require("rs_service_test: PASS service listed, took down, brought up, refreshed, held, released and restarted hello_service")?;
    require_success_shutdown(console, "rs_service_test")
}

fn check_rs_system_crash(console: &Console) -> Result<(), String> {
    // The kernel reports the fault as always, queues it for RS and ends the server itself.
    console.require_line_with(&["user fault: #PF", "process 'ds'"])?;
    console.require_line_with(&[
        "rs: crash of system server 'ds' (pid ",
        ") reported to the reincarnation server",
    ])?;
    console.require_line_with(&["process 'ds' (pid ", ") killed by #PF at "])?;
    console.require_line_with(&[
        "rs: ALERT: system server 'ds' (pid ",
        ") crashed: exception #PF (vector 14) at 0x",
        "the kernel ended it and RS cannot restart it: system server: not restartable (its state lives only in its memory)",
    ])?;
    // RS's recorded backtrace, symbolised in the program booted as ds.
    console.require_line_with(&[
        "rs:   #0 pc  0x",
        "(ds) crash_null::main at user/programs/src/bin/crash_null.rs:",
    ])?;
    console.require_line_with(&[
        "service: ",
        " ds ",
        "system-failed",
        "exception #PF (vector 14) at ",
    ])?;
    console.require_line_with(&[
        "service:       #0 pc  0x",
        "(ds) crash_null::main at user/programs/src/bin/crash_null.rs:",
    ])?;
    console.require(
        "service: restart ds refused: system server: not restartable (its state lives only in its memory)",
    )?;
    console.require(
        "service: down pm refused: system server: not restartable (its state lives only in its memory)",
    )?;
    console.forbid(": FAIL")?;
    console.forbid("panicked at")?;
    console.require("rs_service_test: PASS RS recorded the crash of system server ds")?;
    require_success_shutdown(console, "rs_service_test")
}

fn check_rs_live_update(console: &Console) -> Result<(), String> {
    console
        .require("rs: service 'hello_service': update to 'hello_missing' refused: spawn failed")?;
    console
        .require("rs: service 'hello_service': update to 'hello_broken' refused: spawn failed")?;
    console.require("rs: service 'hello_service': updated to 'hello_v2', version 2")?;
    console.require(
        "rs: service 'hello_service': update to 'hello_deaf' rolled back: 3 heartbeats unanswered",
    )?;
    for broken in ["hello_failinit", "hello_crashy"] {
        console.require(&format!(
            "rs: service 'hello_service': update to '{broken}' rolled back: "
        ))?;
    }
    console.require("rs: service 'hello_service': updated to 'hello_stubborn', version 3")?;
    console.require("rs: service 'hello_service': update to 'hello_v2' cancelled: ")?;
    console.require("rs_service_test: PASS updated to version 2")?;
    // The kernel rewrites a swapped thread's ThreadInfo: each new version says it serves
    // at the endpoint the first one served at (before, it named its own former endpoint).
    let first = console
        .find("hello_service: serving at ")
        .ok_or("hello_service never said where it serves")?;
    let kept = first
        .text
        .split("serving at ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .ok_or_else(|| format!("no endpoint in: {}", first.text))?;
    for version in ["hello_v2", "hello_deaf", "hello_crashy", "hello_stubborn"] {
        console.require(&format!("{version}: serving at {kept} (counter "))?;
    }
    console.require_line_with(&["hello_load: counter ", "lost 0, doubled 0"])?;
    if let Some(line) = console.lines.iter().find(|line| {
        line.text.contains("hello_load: counter ") && !line.text.contains("lost 0, doubled 0")
    }) {
        return Err(format!(
            "the load lost or doubled an increment: {}",
            line.text
        ));
    }
    Ok(())
}

fn check_rs_demo_load(console: &Console) -> Result<(), String> {
    console.require(
        "hello_load: demo: every 300 ms, in turn: crash hello_service by a null dereference, a \
         panic, update it to the next version, exit status 3, an update that is rolled back, a \
         hang",
    )?;
    console.require(
        "hello_load_bad: usage: hello_load [demo | demo=MS (at least 100)]; got 'demo=50'",
    )?;
    for how in [
        "a null dereference",
        "a panic",
        "exit status 3",
        "a hang (RS's heartbeats catch it)",
    ] {
        console.require(&format!(
            "hello_load: demo: crashing hello_service by {how}"
        ))?;
    }
    for failure in [
        "exception #PF (vector 14)",
        "panic (status 101)",
        "exit (status 3)",
        "hang (no heartbeat for 3 periods)",
    ] {
        console.require(&format!("rs: service 'hello_service' failed: {failure}"))?;
    }
    // The updates: version 2, a rollback with version 2 serving, then (the next cycle)
    // version 3; each seen by the load (RS's record, the program answering GET at the
    // endpoint it kept, the counter) and by RS.
    console.require_line_with(&[
        "hello_load: demo: updating hello_service to hello_v2 ... done, version 2 serving \
         (hello_v2 answers), counter kept at ",
    ])?;
    console.require("rs: service 'hello_service': updated to 'hello_v2', version 2")?;
    console.require_line_with(&[
        "hello_load: demo: updating hello_service to hello_crashy (it crashes in its grace \
         period) ... rolled back (RS's console says why), version 2 serving (hello_v2 answers), \
         counter kept at ",
    ])?;
    console.require_line_with(&[
        "rs: service 'hello_service': update to 'hello_crashy' rolled back: the new version \
         ended: ",
        "version 2 (pid ",
    ])?;
    console.require_line_with(&[
        "hello_load: demo: updating hello_service to hello_v3 ... done, version 3 serving \
         (hello_v3 answers), counter kept at ",
    ])?;
    console.require("rs: service 'hello_service': updated to 'hello_v3', version 3")?;
    for wrong in [
        "counter went back",
        "but version=",
        " refused",
        "but GET failed",
    ] {
        if let Some(line) = console
            .lines
            .iter()
            .find(|line| line.text.contains("hello_load: demo: ") && line.text.contains(wrong))
        {
            return Err(format!("a demo step went wrong: {:?}", line.text));
        }
    }
    // With DS, hello's counter moves exactly by the increments the load saw acknowledged,
    // across every crash, update and rollback, and the load never had to look hello up
    // again (RS kept the endpoint, the runtime resent what a dying instance held).
    console.require_line_with(&[
        "hello_load: counter ",
        " resent, 0 failed; lost 0, doubled 0",
    ])?;
    console.forbid("hello_load: increment failed")?;
    if let Some(line) = console.lines.iter().find(|line| {
        line.text.contains("hello_load: counter ") && !line.text.contains("lost 0, doubled 0)")
    }) {
        return Err(format!(
            "the load saw increments lost or doubled: {:?}",
            line.text
        ));
    }
    console.forbid(": FAIL")?;
    console.require("rs_service_test: PASS RS restarted hello_service ")?;
    require_success_shutdown(console, "rs_service_test")
}

fn check_rs_demo_refused(console: &Console) -> Result<(), String> {
    console.require(
        "hello_load: demo: updating hello_service to hello_v2 ... refused: hello_load is not \
         one of RS's operators (RS's boot line needs operator=service+hello_load); the demo \
         goes on without updates",
    )?;
    console.require_line_with(&["rs: UPDATE from ", " refused: not an operator"])?;
    console.forbid("hello_load: demo: updating hello_service to hello_crashy")?;
    // The steps after the refusal still happen, and RS handles them.
    console.require("hello_load: demo: crashing hello_service by exit status 3")?;
    console.require("rs: service 'hello_service' failed: exit (status 3)")?;
    console.require_line_with(&[
        "hello_load: counter ",
        " resent, 0 failed; lost 0, doubled 0",
    ])?;
    console.forbid("hello_load: increment failed")?;
    console.forbid(": FAIL")?;
    console.require("rs_service_test: PASS RS refused the load's update and restarted ")?;
    require_success_shutdown(console, "rs_service_test")
}

fn check_pm_signal_kcalls(console: &Console) -> Result<(), String> {
    for refusal in [
        "manage a forged pid: ESRCH",
        "a forged manager: ESRCH",
        "be one's own manager: EINVAL",
        "manage VM: EPERM",
        "signal a process it does not manage: EPERM",
        "stop PM: EPERM",
        "stop itself: ESELF",
        "signal a forged pid: ESRCH",
        "signal 0: EINVAL",
        "signal 64: EINVAL",
        "a kernel handler address: EINVAL",
        "resume a thread that is not held: EINVAL",
        "resume a forged thread: EDEADSRCDST",
        "a wild event buffer: EFAULT",
        "direct signals of a forged pid: ESRCH",
        "direct signals of a process it does not manage: EPERM",
        "direct signals of itself: ESELF",
        "direct KILL: EINVAL",
        "direct STOP: EINVAL",
        "direct bit 0: EINVAL",
        "a direct handler in the kernel: EINVAL",
        "a direct handler at null: EINVAL",
    ] {
        console.require(&format!("sig_kcalls: refused as expected: {refusal}"))?;
    }
    console.require_line_with(&["sig_kcalls: event: pid ", " vector 14 address 0 at "])?;
    console.require_line_with(&["process 'sig_victim' (pid ", "exited with status 139"])?;
    // Its manager exited while it was held at #PF: ended as with no manager (128 + 14).
    console.require_line_with(&[
        "process 'sig_victim2' (pid ",
        "held for its signal manager (pid ",
        "which exited: killed by #PF as with no manager",
    ])?;
    console.require_line_with(&["process 'sig_victim2' (pid ", "exited with status 142"])?;
    console.require_line_with(&["sig_orphaner: exiting with pid ", " stopped by me"])?;
    console.forbid("process 'sig_victim3' (pid")?;
    console.forbid(": FAIL")?;
    console.forbid("memory accounting drift")?;
    require_success_shutdown(console, "sig_kcalls")
}

/// The pid the kernel gave boot process `name` (from its "boot: started" line).
fn boot_pid(console: &Console, name: &str) -> Result<u64, String> {
    let needle = format!("boot: started '{name}' (pid ");
    let line = console
        .find(&needle)
        .ok_or_else(|| format!("the console never showed {needle:?}"))?;
    let rest = &line.text[line.text.find(&needle).unwrap_or(0) + needle.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|digits| digits.parse().ok())
        .ok_or_else(|| format!("no pid in {:?}", line.text))
}

fn check_vm_oom(console: &Console) -> Result<(), String> {
    // The limit came from the boot table: exactly 2048 pages resident at the refusal.
    console.require_line_with(&[
        "limited: ENOMEM after ",
        "populated pages: 2048 pages resident",
    ])?;
    console.require_line_with(&["hog: ENOMEM after ", "populated pages: "])?;
    // VM reported each, naming the process as its largest user.
    for name in ["limited", "hog"] {
        let pid = boot_pid(console, name)?;
        console.require(&format!(
            "vm: out of memory serving pid {pid}; the largest users:"
        ))?;
        console.require(&format!("vm:   pid {pid}: "))?;
    }
    console.require_line_with(&[
        "vm:   pid ",
        ": 2048 pages resident (peak 2048, 0 shared), limit 2048",
    ])?;
    console.require_line_with(&["process 'limited' (pid ", "exited with status 0"])?;
    console.require_line_with(&["process 'hog' (pid ", "exited with status 0"])?;
    console.require_line_with(&[
        "vm_oom: PASS limited: ",
        " pages populated, then ENOMEM; after its exit free frames ",
    ])?;
    console.require("; hog: ")?;
    console.forbid(": FAIL")?;
    console.forbid("user fault:")?;
    console.forbid("panic:")?;
    console.forbid("memory accounting drift")?;
    require_success_shutdown(console, "vm_oom")
}

fn check_vm_stack(console: &Console) -> Result<(), String> {
    // 40 pages of stack beyond the 16 KiB the kernel mapped came from VM.
    console.require("grower: vm_stack: grew the stack through 40 pages")?;
    // The unbounded recursion reached the guard page: VM said why, the kernel reported
    // the fault with VM's refusal and killed only that process.
    console.require_line_with(&["vm: pid ", "invalid ", "stack overflow"])?;
    console.require_line_with(&["user fault: #PF", "process 'overflower'"])?;
    console.require("refused by the VM server (its log says why)")?;
    console.require_line_with(&["process 'overflower' (pid ", "killed by #PF"])?;
    console.forbid("vm_stack: FAIL")?;
    // A null dereference is no region of VM's: refused and reported the same way.
    console.require_line_with(&[
        "vm: pid ",
        "invalid read at 0x0 ",
        "no memory region covers the address",
    ])?;
    // Its two page faults: the runtime's first heap page (served by VM), then address 0.
    // PM manages it: the kernel holds it for PM (with its counters), PM ends it.
    console.require_line_with(&[
        "process 'crash_null' (pid ",
        "held for its signal manager",
        ": 2 page faults",
    ])?;
    console.require_line_with(&["process 'crash_null' (pid ", "killed by #PF", "SIGSEGV"])?;
    console.require_line_with(&["cr2=0x0000000000000000"])?;
    console.require("survivor: survivor: PASS alive after ")?;
    require_success_shutdown(console, "survivor")
}

fn check_crash(console: &Console) -> Result<(), String> {
    // Both crashes are reported by the kernel as user faults naming the process…
    console.require_line_with(&["user fault: #PF", "(vector 14)", "process 'crash_null'"])?;
    console.require_line_with(&["cr2=0x0000000000000000"])?;
    console.require_line_with(&["user fault: #DE", "(vector 0)", "process 'crash_divide'"])?;
    // …each kills only its own process…
    // (The faulting thread's counters: the null dereference is its one page fault.)
    // PM manages them: the kernel holds each for PM with its counters, PM ends it.
    console.require_line_with(&[
        "process 'crash_null' (pid ",
        "held for its signal manager",
        ": 1 page faults",
    ])?;
    console.require_line_with(&["process 'crash_null' (pid ", "killed by #PF", "SIGSEGV"])?;
    console.require_line_with(&[
        "process 'crash_divide' (pid ",
        "held for its signal manager",
        ": 0 page faults",
    ])?;
    console.require_line_with(&["process 'crash_divide' (pid ", "killed by #DE", "SIGFPE"])?;
    // …and neither survived its fault.
    console.forbid("crash_null: FAIL")?;
    console.forbid("crash_divide: FAIL")?;
    // A Rust panic is reported as a crash — an error with the message and a symbolised
    // backtrace down to the panicking function — and ends the process with status 101.
    console.require_line_with(&[
        "ERROR process 'crash_panic' (pid ",
        "panicked (thread ",
        "deliberate panic: value=42 args=\"x\" at user/programs/src/bin/crash_panic.rs:",
    ])?;
    console.require_line_with(&["ret 0x", "(crash_panic) crash_panic::main at "])?;
    console.require_line_with(&["process 'crash_panic' (pid ", "exited with status 101"])?;
    console.forbid("ERROR panic:")?;
    // The high-priority survivor kept running and saw every crasher's endpoint dead.
    console.require("survivor: still alive after sleeping ")?;
    console.require("survivor: survivor: PASS alive after ")?;
    require_success_shutdown(console, "survivor")
}

fn check_mutex(console: &Console) -> Result<(), String> {
    console.require_clean_run()?;
    console.require("mutex_counter: mutex: PASS total=20000")?;
    require_success_shutdown(console, "mutex_counter")
}

fn check_timers(console: &Console) -> Result<(), String> {
    console.require_clean_run()?;
    console.require("timers: intervals: ")?;
    console.require("timers: timers: PASS 10 notifications")?;
    require_success_shutdown(console, "timers")
}

/// The benchmark lines `bench_client` prints, in order.
const BENCHMARKS: [&str; 30] = [
    "null_syscall",
    "ipc_roundtrip",
    "notify_roundtrip",
    "ipc_call_replyrecv",
    "ipc_call_replyrecv_64",
    "ipc_call_replyrecv_untraced",
    "tsc_read_overhead",
    "ipc_regs_call_oneway",
    "ipc_regs_replyrecv_oneway",
    "ipc_regs_oneway_sum",
    "ipc_regs_oneway_sum_untraced",
    "context_switch",
    "null_syscall_traced",
    "ipc_roundtrip_untraced",
    "vm_fault_demand_zero",
    "vm_map_touch_unmap",
    "vm_fault_phase_to_vm",
    "vm_fault_phase_decide",
    "vm_fault_phase_map",
    "vm_fault_phase_resume",
    "vm_fault_phase_back",
    "snapshot_10_threads",
    "snapshot_100_threads",
    "snapshot_1000_threads",
    "wake_lateness_quiet",
    "wake_lateness_flood",
    "thread_create_join",
    "spawn_exit_wait",
    "signal_self_handler",
    "traced_syscall",
];

/// How many samples `bench_client` takes of a benchmark: snapshots 200 (each is large),
/// the fault phases 1,000 (one fault per page), the 10 ms sleeps of the wake-up lateness
/// rows 30, everything else 10,000.
fn bench_iterations(name: &str) -> u32 {
    if name.starts_with("snapshot_") {
        200
    } else if name.starts_with("vm_fault_phase_") {
        1000
    } else if name.starts_with("wake_lateness_") {
        30
    } else if name == "spawn_exit_wait" {
        100
    } else {
        10000
    }
}

/// The rows `bench_update` prints, in order, and the updates each takes.
const UPDATE_BENCHMARKS: [&str; 3] = [
    "update_downtime",
    "update_rollback_crash",
    "update_rollback_init",
];
const UPDATE_BENCH_SAMPLES: usize = 12;

fn check_update_bench(console: &Console) -> Result<(), String> {
    // The crashing candidate's faults are reported on purpose: no `require_clean_run`.
    console.forbid(": FAIL")?;
    console.forbid("panic:")?;
    for name in UPDATE_BENCHMARKS {
        console.require_line_with(&[
            &format!("bench_update: bench: {name} median_cycles="),
            &format!(" iterations={UPDATE_BENCH_SAMPLES} max_cycles="),
        ])?;
    }
    // Version 1 and 12 updates: the last one to hello_v3 is version 13.
    console.require("rs: service 'hello_service': updated to 'hello_v3', version 13 ")?;
    for (candidate, why) in [
        ("hello_crashy", "exception #PF (vector 14)"),
        ("hello_failinit", "exit (status 3)"),
    ] {
        let rolled_back = format!(
            "rs: service 'hello_service': update to '{candidate}' rolled back: the new version ended: {why}; version 13 "
        );
        let count = console
            .lines
            .iter()
            .filter(|line| line.text.contains(&rolled_back))
            .count();
        if count != UPDATE_BENCH_SAMPLES {
            return Err(format!(
                "{count} rollbacks from '{candidate}', {UPDATE_BENCH_SAMPLES} expected"
            ));
        }
    }
    console.require("bench_update: bench: done")?;
    require_success_shutdown(console, "bench_update")
}

fn check_bench(console: &Console) -> Result<(), String> {
    console.require_clean_run()?;
    for name in BENCHMARKS {
        let prefix = format!("bench_client: bench: {name} median_cycles=");
        let line = console
            .lines
            .iter()
            .find(|line| line.text.contains(&prefix) && line.text.contains(" min_cycles="))
            .ok_or_else(|| format!("no console line for benchmark {name}"))?;
        let iterations = line
            .text
            .split(" iterations=")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(|| format!("no iteration count in: {}", line.text))?;
        let wanted = bench_iterations(name);
        // A fault-phase sample that the tick interleaved with VM is left out (up to 5%).
        let fewest = if name.starts_with("vm_fault_phase_") {
            wanted - wanted / 20
        } else {
            wanted
        };
        if !(fewest..=wanted).contains(&iterations) {
            return Err(format!(
                "{name}: {iterations} iterations, {fewest}..={wanted} expected: {}",
                line.text
            ));
        }
    }
    // The 1000-thread snapshot must really have had 1000 threads.
    console.require_line_with(&["bench: snapshot_1000_threads ", " threads=1000 "])?;
    console.require("bench_client: bench: done")?;
    require_success_shutdown(console, "bench_client")
}

#[cfg(test)]
mod tests {
    use super::super::scenario::Expected;
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn console(texts: &[&str]) -> Console {
        Console::from_texts(texts)
    }

    /// The program sources in user/programs/src/bin (file stems of `*.rs`) and the servers
    /// in user/servers (`NAME/main.rs`).
    fn program_sources() -> BTreeSet<String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = root.join("user/programs/src/bin");
        let mut sources: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("cannot list {}: {error}", dir.display()))
            .map(|entry| entry.expect("directory entry").path())
            .filter_map(|path| {
                let stem = path.file_stem()?.to_str()?.to_string();
                (path.extension()? == "rs").then_some(stem)
            })
            .collect();
        let servers = crate::user::server_names(&root.join("user/servers")).expect("user/servers");
        assert!(
            servers.contains(&"vm".to_string()),
            "the VM server: {servers:?}"
        );
        sources.extend(servers);
        sources
    }

    #[test]
    fn hangs_are_judged_by_the_silence_rs_measured() {
        let hung = |us: u64| {
            format!("[    2.000000] INFO  rs: service 'hello_service' (pid 7) silent for {us} us since its last sign of life (100 ms period, 2 pings unanswered): hung")
        };
        let judge = |lines: &[String], at_least| {
            let texts: Vec<&str> = lines.iter().map(String::as_str).collect();
            require_hangs_within_three_periods(&console(&texts), "hello_service", 100, at_least)
        };
        assert_eq!(judge(&[hung(300_004), hung(291_000)], 2), Ok(()));
        // One tick late is fine on a loaded host, more is not; early is never.
        assert_eq!(judge(&[hung(319_000)], 1), Ok(()));
        let late = judge(&[hung(300_004), hung(325_000)], 1).unwrap_err();
        assert!(late.contains("after 325000 us of silence"), "{late}");
        let early = judge(&[hung(150_000)], 1).unwrap_err();
        assert!(early.contains("after 150000 us"), "{early}");
        // Another service's or another period's lines do not count.
        let missing = judge(&[hung(300_000).replace("100 ms", "50 ms")], 1).unwrap_err();
        assert!(missing.contains("0 hangs of 'hello_service'"), "{missing}");
    }

    #[test]
    fn crash_to_serving_times_and_restart_latencies_are_read_from_the_console() {
        let console = console(&[
            "[    1.000000] INFO  hello_service: serving at 5.1 (counter 0)",
            "[    1.500000] INFO  hello_service: crashing on request (null dereference)",
            "[    1.501000] INFO  rs: service 'hello_service' restarted as pid 9 (restart 1, 700 us after its end)",
            "[    1.504250] INFO  hello_service: serving at 5.2 (counter 3 from DS, 1 clients recorded",
            "[    2.000000] ERROR process 'hello_service' (pid 9) panicked (thread 5.2): panicking",
            "[    2.000100] INFO  process 'hello_service' (pid 9) exited with status 101",
            "[    2.010000] INFO  hello_service: serving at 5.3 (counter 4 from DS, 1 clients recorded",
        ]);
        assert_eq!(crash_to_serving_us(&console), vec![4250, 10_000]);
        assert_eq!(restart_latencies_us(&console), vec![700]);
        assert_eq!(guest_time_us("[   12.000042] x"), Some(12_000_042));
        assert_eq!(guest_time_us("no stamp"), None);
        assert_eq!(
            median_and_max_ms(&mut [3000, 1000, 2000]),
            "median 2.00 ms, max 3.00 ms"
        );
    }

    #[test]
    fn every_program_named_in_a_scenario_has_a_source_file() {
        let sources = program_sources();
        for scenario in USER_SCENARIOS {
            assert!(
                !scenario.programs.is_empty(),
                "{} boots no program",
                scenario.name
            );
            for spec in scenario.programs {
                let program = spec.split_whitespace().next().unwrap_or_default();
                assert!(
                    sources.contains(program),
                    "scenario {} boots {program:?}, but there is no \
                     user/programs/src/bin/{program}.rs or user/servers/{program}/main.rs \
                     (programs: {sources:?})",
                    scenario.name
                );
            }
        }
    }

    #[test]
    fn user_scenarios_have_the_expected_names_and_expectations() {
        let names: Vec<&str> = USER_SCENARIOS.iter().map(|s| s.name).collect();
        for name in [
            "ipc-pingpong",
            "ipc-any",
            "ipc-notify",
            "ipc-senda",
            "ipc-grant",
            "ipc-errors",
            "sched-fair",
            "sched-preempt",
            "user-crash",
            "user-mutex",
            "user-timers",
        ] {
            let scenario = USER_SCENARIOS
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("no scenario {name}; have {names:?}"));
            assert_eq!(scenario.expected, Expected::Success, "{name}");
            assert!(scenario.deadline >= DEADLINE, "{name}");
            let judge_may_shut_down = scenario
                .programs
                .iter()
                .any(|spec| spec.contains("kcalls=shutdown"));
            assert!(judge_may_shut_down, "{name}: no program may shut down");
        }
    }

    #[test]
    fn crash_check_needs_both_faults_and_the_survivor() {
        let lines = [
            "[    0.100000] ERROR user fault: #PF page fault (vector 14) in process \
             'crash_null' (pid 2) thread 2.1, error code 0x4 [read, not present, user]",
            "  cr2=0x0000000000000000",
            "  #0 pc  0x0000000000401234 (crash_null)",
            "[    0.100100] INFO  process 'crash_null' (pid 2) held for its signal manager (pid \
             1) after #PF at 0x401234 (thread 2.1: 1 page faults, 3 system calls)",
            "[    0.100150] INFO  pm: process 'crash_null' (pid 2) killed by #PF at 0x401234: \
             SIGSEGV (vector 14, address 0x0), status 0x30000000b",
            "[    0.100200] ERROR user fault: #DE divide error (vector 0) in process \
             'crash_divide' (pid 3) thread 3.1, error code 0x0",
            "[    0.100300] INFO  process 'crash_divide' (pid 3) held for its signal manager (pid \
             1) after #DE at 0x401300 (thread 3.1: 0 page faults, 3 system calls)",
            "[    0.100350] INFO  pm: process 'crash_divide' (pid 3) killed by #DE at 0x401300: \
             SIGFPE (vector 0, address 0x0), status 0x300000008",
            "[    0.100400] ERROR process 'crash_panic' (pid 4) panicked (thread 4.1): deliberate \
             panic: value=42 args=\"x\" at user/programs/src/bin/crash_panic.rs:10:5",
            "  #3 ret 0x000000000040006a (crash_panic) crash_panic::main at \
             user/programs/src/bin/crash_panic.rs:10",
            "[    0.100500] INFO  process 'crash_panic' (pid 4) exited with status 101",
            "[    0.400000] INFO  survivor: still alive after sleeping 300 ms",
            "[    0.400100] INFO  survivor: survivor: PASS alive after 300 ms; crash_null, \
             crash_divide, crash_panic are dead",
            "[    0.400200] INFO  shutdown requested by 'survivor' (status 0)",
        ];
        assert_eq!(check_crash(&console(&lines)), Ok(()));

        let without_divide: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|line| !line.contains("crash_divide"))
            .collect();
        let error = check_crash(&console(&without_divide)).unwrap_err();
        assert!(error.contains("#DE"), "{error}");

        let without_panic: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|line| !line.contains("status 101"))
            .collect();
        let error = check_crash(&console(&without_panic)).unwrap_err();
        assert!(error.contains("status 101"), "{error}");

        let mut survived = lines.to_vec();
        survived.push("[    0.2] INFO  crash_null: FAIL: read 0x0 from address 0 and survived");
        assert!(check_crash(&console(&survived)).is_err());
    }

    #[test]
    fn checks_reject_fail_lines_and_accept_pass_lines() {
        let pass = [
            "[    0.2] INFO  pingpong_client: pingpong: PASS 1000 round trips",
            "[    0.2] INFO  shutdown requested by 'pingpong_client' (status 0)",
        ];
        assert_eq!(check_pingpong(&console(&pass)), Ok(()));
        let fail = [
            "[    0.2] INFO  pingpong_client: pingpong: FAIL: round trip 3: sent 24, got 0",
            "[    0.2] INFO  shutdown requested by 'pingpong_client' (status 1)",
        ];
        let error = check_pingpong(&console(&fail)).unwrap_err();
        assert!(error.contains("FAIL: round trip 3"), "{error}");
    }

    #[test]
    fn errors_check_wants_every_error_name_and_no_wrong_case() {
        let mut lines: Vec<String> = ERROR_NAMES_CHECKED
            .iter()
            .map(|name| format!("[    0.2] INFO  errors: case some case -> {name}: ok"))
            .collect();
        lines.push(
            "[    0.2] INFO  errors: case send to a thread blocked sending to us (cycle) -> \
             ELOCKED: ok"
                .into(),
        );
        lines.push("[    0.2] INFO  errors: case system call 999 -> ENOSYS: ok".into());
        lines.push(
            "[    0.2] INFO  errors: case send a message of the kernel's notification kind -> \
             EINVAL: ok"
                .into(),
        );
        lines.push(
            "[    0.2] INFO  errors: case revoke a grant id revoked 65,536 create/revoke cycles \
             ago (never reissued) -> EBADGRANT: ok"
                .into(),
        );
        for code in [
            "0xfffffffffffffffd",
            "0x8000000000000000",
            "0xffffffffffffffff",
        ] {
            for how in ["already dead", "waiting for it"] {
                lines.push(format!(
                    "[    0.2] INFO  errors: case join a thread that exits with {code} ({how}): ok"
                ));
            }
        }
        lines.push(
            "[    0.2] INFO  errors: case debug_write of 2,048 lines takes 8 lines per call \
             (256 calls): ok"
                .into(),
        );
        lines.push(
            "[    0.2] INFO  errors: case debug_write of a 1,025-byte line takes 511 bytes (a \
             character boundary), then 512: ok"
                .into(),
        );
        lines.push("[    0.2] INFO  errors: errors: PASS 60 cases".into());
        lines.push("[    0.2] INFO  shutdown requested by 'errors' (status 0)".into());
        let texts: Vec<&str> = lines.iter().map(String::as_str).collect();
        assert_eq!(check_errors(&console(&texts)), Ok(()));

        let mut wrong = texts.clone();
        wrong.push("[    0.2] INFO  errors: case x -> EFAULT: WRONG: expected EFAULT, got EINVAL");
        assert!(check_errors(&console(&wrong)).is_err());
    }

    #[test]
    fn update_bench_check_wants_every_row_and_every_rollback() {
        let mut lines: Vec<String> = UPDATE_BENCHMARKS
            .iter()
            .map(|name| {
                format!(
                    "[    6.3] INFO  bench_update: bench: {name} median_cycles=40000 \
                     min_cycles=39000 iterations=12 max_cycles=41000"
                )
            })
            .collect();
        lines.push(
            "[    6.3] INFO  rs: service 'hello_service': updated to 'hello_v3', version 13 (pid 18); the old pid 17 is gone"
                .into(),
        );
        for (candidate, why) in [
            ("hello_crashy", "exception #PF (vector 14)"),
            ("hello_failinit", "exit (status 3)"),
        ] {
            for _ in 0..12 {
                lines.push(format!(
                    "[    6.4] INFO  rs: service 'hello_service': update to '{candidate}' rolled back: the new version ended: {why}; version 13 (pid 18) serves 5.1 again, 35 us after the failure"
                ));
            }
        }
        lines.push("[    7.2] INFO  bench_update: bench: done".into());
        lines.push("[    7.2] INFO  shutdown requested by 'bench_update' (status 0)".into());
        let texts: Vec<&str> = lines.iter().map(String::as_str).collect();
        assert_eq!(check_update_bench(&console(&texts)), Ok(()));

        let without = |needle: &str| -> Vec<&str> {
            let mut dropped = false;
            texts
                .iter()
                .copied()
                .filter(|line| {
                    let drop = !dropped && line.contains(needle);
                    dropped |= drop;
                    !drop
                })
                .collect()
        };
        assert!(check_update_bench(&console(&without("update_rollback_crash"))).is_err());
        let error =
            check_update_bench(&console(&without("'hello_failinit' rolled back"))).unwrap_err();
        assert!(
            error.contains("11 rollbacks from 'hello_failinit'"),
            "{error}"
        );
        assert!(check_update_bench(&console(&without("version 13 (pid 18); the old"))).is_err());
        let mut failed = texts.clone();
        failed.push("[    7.2] INFO  bench_update: bench: FAIL: round 3 (update to 'hello_v2'): a GET failed");
        assert!(check_update_bench(&console(&failed)).is_err());
    }

    #[test]
    fn bench_check_wants_every_measurement() {
        let mut lines: Vec<String> = BENCHMARKS
            .iter()
            .map(|name| {
                let iterations = bench_iterations(name);
                let extra = if name.starts_with("snapshot_") {
                    let threads = name
                        .trim_start_matches("snapshot_")
                        .trim_end_matches("_threads");
                    format!(" threads={threads} per_thread_cycles=100")
                } else {
                    String::new()
                };
                format!(
                    "[    0.3] INFO  bench_client: bench: {name} median_cycles=420 \
                     min_cycles=400 iterations={iterations}{extra}"
                )
            })
            .collect();
        lines.push("[    0.3] INFO  bench_client: bench: done".into());
        lines.push("[    0.3] INFO  shutdown requested by 'bench_client' (status 0)".into());
        let texts: Vec<&str> = lines.iter().map(String::as_str).collect();
        assert_eq!(check_bench(&console(&texts)), Ok(()));
        let missing: Vec<&str> = texts
            .iter()
            .copied()
            .filter(|line| !line.contains("context_switch"))
            .collect();
        assert!(check_bench(&console(&missing)).is_err());
        // A fault phase may leave out up to 5% of its samples, no other row any.
        let with = |from: &str, to: &str| -> Vec<String> {
            lines.iter().map(|line| line.replace(from, to)).collect()
        };
        let few_faults = with(
            "vm_fault_phase_map median_cycles=420 min_cycles=400 iterations=1000",
            "vm_fault_phase_map median_cycles=420 min_cycles=400 iterations=961",
        );
        let texts: Vec<&str> = few_faults.iter().map(String::as_str).collect();
        assert_eq!(check_bench(&console(&texts)), Ok(()));
        let too_few = with(
            "vm_fault_phase_map median_cycles=420 min_cycles=400 iterations=1000",
            "vm_fault_phase_map median_cycles=420 min_cycles=400 iterations=900",
        );
        let texts: Vec<&str> = too_few.iter().map(String::as_str).collect();
        assert!(check_bench(&console(&texts)).is_err());
        let short = with(
            "context_switch median_cycles=420 min_cycles=400 iterations=10000",
            "context_switch median_cycles=420 min_cycles=400 iterations=9999",
        );
        let texts: Vec<&str> = short.iter().map(String::as_str).collect();
        assert!(check_bench(&console(&texts)).is_err());
    }
}
