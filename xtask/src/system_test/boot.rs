//! Kernel-only scenarios (no user programs), run first: boot at two memory sizes and with
//! modules, the fault and panic reports, a bad test name, and a hang the runner must kill.
//! Each runs a kernel self-test (`test=NAME`, kernel/src/selftest.rs).

use super::console::Console;
use super::scenario::{secs, Expected, Scenario};

/// The base row of this table: 128 MiB, 20 s.
const BOOT: Scenario = Scenario {
    deadline: secs(20),
    ..Scenario::DEFAULT
};

/// Kernel-only scenarios (no user programs), run first.
pub const BOOT_SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "boot-128m",
        cmdline: "test=boot",
        check: check_boot_128m,
        report_banner_time: true,
        ..BOOT
    },
    Scenario {
        name: "boot-modules",
        cmdline: "test=boot",
        check: check_boot_modules,
        modules: &[
            ("boot-module-small.bin", 6),
            ("boot-module-large.bin", 300_000),
        ],
        ..BOOT
    },
    Scenario {
        name: "boot-5g",
        memory: "5G",
        cmdline: "test=boot",
        deadline: secs(30),
        check: check_boot_5g,
        report_banner_time: true,
        ..BOOT
    },
    Scenario {
        name: "fault-page",
        cmdline: "test=pagefault",
        expected: Expected::Failure,
        check: check_fault_page,
        ..BOOT
    },
    Scenario {
        name: "fault-divide",
        cmdline: "test=divide",
        expected: Expected::Failure,
        check: check_fault_divide,
        ..BOOT
    },
    Scenario {
        name: "fault-stack-overflow",
        cmdline: "test=stackoverflow",
        expected: Expected::Failure,
        check: check_fault_stack_overflow,
        ..BOOT
    },
    Scenario {
        name: "panic",
        cmdline: "test=panic",
        expected: Expected::Failure,
        check: check_panic,
        ..BOOT
    },
    Scenario {
        name: "bad-test-name",
        cmdline: "test=no-such-test",
        expected: Expected::Failure,
        check: check_bad_test_name,
        ..BOOT
    },
    // The kernel spins with interrupts off; only the runner's SIGKILL at the deadline ends
    // QEMU (`Expected::TimedOut`: killed on time, reaped, gone; see `runner::judge_run`).
    // With the watchdog on it would be caught as a lockup (`watchdog-lockup`), so this also
    // proves that `watchdog=off` turns it off.
    Scenario {
        name: "hang-is-killed",
        cmdline: "watchdog=off test=hang",
        deadline: secs(3),
        expected: Expected::TimedOut,
        check: check_hang,
        ..BOOT
    },
];

fn check_boot_128m(console: &Console) -> Result<(), String> {
    console.require_banner_with("memory 128 MiB")?;
    // The watchdog is on by default and the boot log says which NMI source it uses.
    console.require_line_with(&[
        "watchdog: NMI source ",
        "lockup = no tick",
        "watchdog=panic",
    ])?;
    console.require("selftest boot: ok")
}

fn check_boot_modules(console: &Console) -> Result<(), String> {
    console.require("boot: module '")?;
    console.require("boot-module-small.bin")?;
    console.require("boot-module-large.bin")?;
    console.require("selftest boot: frames ok (2 modules reserved)")?;
    console.require("selftest boot: ok")
}

fn check_boot_5g(console: &Console) -> Result<(), String> {
    console.require_banner_with("memory 5120 MiB")?;
    console.require("selftest boot: ok")
}

fn check_fault_page(console: &Console) -> Result<(), String> {
    console.require("fault: #PF")?;
    console.require("(vector 14)")?;
    console.require("cr2=0x00000000deadb000")?;
    console.require_frame_with(&["selftest::", "kernel/src/selftest.rs:"])
}

fn check_fault_divide(console: &Console) -> Result<(), String> {
    console.require("fault: #DE")?;
    console.require("(vector 0)")?;
    console.require_frame_with(&["selftest::"])
}

fn check_fault_stack_overflow(console: &Console) -> Result<(), String> {
    console.require("fault: #DF")?;
    console.require("(vector 8)")
}

fn check_panic(console: &Console) -> Result<(), String> {
    console.require("panic: ")?;
    console.require("selftest panic: value=42")?;
    console.require("kernel/src/selftest.rs:")?;
    console.require("backtrace:")?;
    console.require_frame_with(&["selftest::"])
}

fn check_bad_test_name(console: &Console) -> Result<(), String> {
    console.require("unknown test")?;
    console.require("no-such-test")
}

/// What the hang self-test prints before it spins.
const HANG_LINE: &str = "selftest hang: spinning with interrupts off";

/// The kernel reached the hang self-test (it did not hang somewhere else, earlier) and said
/// nothing after it: with interrupts off, nothing else may run until the kill.
fn check_hang(console: &Console) -> Result<(), String> {
    console.require("watchdog: off (watchdog=off)")?;
    console.require("selftest: running 'hang'")?;
    console.require(HANG_LINE)?;
    match console.lines.last() {
        Some(last) if last.text.contains(HANG_LINE) => Ok(()),
        Some(last) => Err(format!(
            "the console went on after the hang began: last line {:?}",
            last.text
        )),
        None => Err("the console is empty".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_fault_needs_a_symbolised_selftest_frame() {
        let lines = [
            "[    0.030000] ERROR fault: #PF page fault (vector 14) error=0x2",
            "  cr2=0x00000000deadb000 rip=0xffffffff80104abc",
            "backtrace:",
            "  #0 pc  0xffffffff80104abc vigil_kernel::selftest::page_fault at \
             kernel/src/selftest.rs:42",
            "  #1 ret 0xffffffff80102def vigil_kernel::kmain at kernel/src/main.rs:10",
        ];
        let console = Console::from_texts(&lines);
        assert_eq!(check_fault_page(&console), Ok(()));

        let unsymbolised = Console::from_texts(&[
            lines[0],
            lines[1],
            lines[2],
            "  #0 pc  0xffffffff80104abc ??",
        ]);
        let error = check_fault_page(&unsymbolised).unwrap_err();
        assert!(error.contains("no backtrace frame line"), "{error}");

        let no_frames = Console::from_texts(&lines[..3]);
        let error = check_fault_page(&no_frames).unwrap_err();
        assert!(error.contains("no backtrace frame lines"), "{error}");
    }

    #[test]
    fn divide_accepts_selftest_in_any_frame() {
        let console = Console::from_texts(&[
            "[    0.030000] ERROR fault: #DE divide error (vector 0)",
            "backtrace:",
            "  #0 pc  0xffffffff80100010 vigil_kernel::arch::x86_64::cpu::divide at \
             kernel/src/arch/x86_64/cpu.rs:5",
            "  #1 ret 0xffffffff80100020 vigil_kernel::selftest::divide at \
             kernel/src/selftest.rs:50",
        ]);
        assert_eq!(check_fault_divide(&console), Ok(()));
    }

    #[test]
    fn panic_and_bad_name_and_double_fault_checks() {
        let console = Console::from_texts(&[
            "[    0.030000] ERROR panic: selftest panic: value=42 at kernel/src/selftest.rs:60:5",
            "backtrace:",
            "  #0 ret 0xffffffff80100020 vigil_kernel::selftest::panic at \
             kernel/src/selftest.rs:60",
        ]);
        assert_eq!(check_panic(&console), Ok(()));
        assert!(check_bad_test_name(&console).is_err());

        let console = Console::from_texts(&[
            "[    0.010000] ERROR unknown test \"no-such-test\"; known: boot, panic",
        ]);
        assert_eq!(check_bad_test_name(&console), Ok(()));

        let console = Console::from_texts(&["[    0.010000] ERROR fault: #DF (vector 8)"]);
        assert_eq!(check_fault_stack_overflow(&console), Ok(()));
    }

    #[test]
    fn hang_check_wants_the_hang_selftest_and_silence_after_it() {
        let lines = [
            "[    0.030000] INFO  watchdog: off (watchdog=off)",
            "[    0.040000] INFO  selftest: running 'hang'",
            "[    0.040100] INFO  selftest hang: spinning with interrupts off",
        ];
        assert_eq!(check_hang(&Console::from_texts(&lines)), Ok(()));
        let error = check_hang(&Console::from_texts(&lines[..2])).unwrap_err();
        assert!(error.contains("spinning with interrupts off"), "{error}");
        let error = check_hang(&Console::from_texts(&[lines[0], lines[2]])).unwrap_err();
        assert!(error.contains("running 'hang'"), "{error}");
        let error = check_hang(&Console::from_texts(&lines[1..])).unwrap_err();
        assert!(error.contains("watchdog: off"), "{error}");
        let mut more = lines.to_vec();
        more.push("[    1.000000] INFO  timer tick");
        let error = check_hang(&Console::from_texts(&more)).unwrap_err();
        assert!(error.contains("after the hang began"), "{error}");
        assert!(check_hang(&Console::from_texts(&[])).is_err());
    }
}
