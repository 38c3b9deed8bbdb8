//! Boot-module options: how a Multiboot module string names a program and its privileges.
//!
//! Format: `<path> [key=value …] [-- arguments]`. The process name defaults to the file
//! name of `<path>`. Keys:
//! - `name=NAME` — process name (1..=32 bytes, no `/`);
//! - `prio=N` — priority 0 (most urgent) … 15, default 8;
//! - `kcalls=none|all|a+b` — kernel calls allowed (`safecopy` = SafeCopyFrom and SafeCopyTo,
//!   `shutdown`, `snapshot`, `tracemask`, `vm` = the memory calls VmMap, VmUnmap, VmProtect,
//!   VmQuery, VmResume, VmFail, VmProcessOf, VmMapShared and VmLimitOf, plus VmSetVirtual
//!   and SafeCopyTo for its accounting and INTROSPECT answers); `pm` = the process
//!   manager's calls (PmModuleName … PmReap, PmGetRegisters … PmTraceFlags, PmHostReply and PmSetTracer, plus SafeCopyFrom and SafeCopyTo for its
//!   clients' grants and VmProcessOf to learn who asks); `rs` = the reincarnation
//!   server's calls: PmNextEvent (the exception events of the services it manages), the Service… calls (endpoints kept across restarts, the held
//!   thread's backtrace, the system servers' crashes), SafeCopyTo and PmHostReply;
//!   everything else it asks of PM; default none;
//! - `boot=start|pm` — whether it starts at boot (default: the kernel starts the system
//!   servers of the boot table, PM every other module), or nobody starts it at boot: the
//!   module is an image the process manager spawns on request;
//! - `ipc=all|none|a+b` — processes (by name) it may send to; default all;
//! - `mem=SIZE` — the process's memory limit, enforced by the VM server (which reads it
//!   with `VmLimitOf`): a whole number of bytes with an optional `K`, `M` or `G` suffix
//!   (powers of 1024), a non-zero page multiple; default none (VM's own default applies).
//!
//! Everything after ` -- ` is the program's argument string. Unknown keys and bad values
//! are errors, so a typo never silently grants or drops a privilege.

use vigil_abi::syscall::KernelCall;

/// Default priority of a boot process.
pub const DEFAULT_PRIORITY: u8 = 8;
/// Lowest priority (highest number).
pub const LOWEST_PRIORITY: u8 = 15;
/// Longest process name.
pub const MAX_NAME: usize = 32;

/// Which processes a program may send to, as written (names resolved by the kernel later).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpcTargetNames<'a> {
    All,
    None,
    /// `+`-separated process names.
    Only(&'a str),
}

/// Parsed options of one module.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootOptions<'a> {
    pub path: &'a str,
    pub name: &'a str,
    pub priority: u8,
    /// Bit `n` allows kernel call `n`.
    pub kernel_calls: u64,
    pub ipc: IpcTargetNames<'a>,
    /// `mem=`: the memory limit in pages, if the module sets one.
    pub memory_limit_pages: Option<u64>,
    /// `boot=pm`: the kernel does not start it; PM spawns it on request.
    pub spawned_by_pm: bool,
    pub arguments: &'a str,
}

/// Why a module string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionError<'a> {
    /// The string is empty.
    NoPath,
    /// A word is not `key=value`.
    NotKeyValue(&'a str),
    UnknownKey(&'a str),
    BadPriority(&'a str),
    UnknownKernelCall(&'a str),
    BadName(&'a str),
    /// `ipc=` lists an empty name (e.g. `a++b`).
    BadIpcList(&'a str),
    /// `mem=` is not a non-zero page multiple of bytes (`8M`, `64K`, `1G`, `40960`).
    BadMemoryLimit(&'a str),
    /// `boot=` is neither `start` nor `pm`.
    BadStarter(&'a str),
}

impl core::fmt::Display for OptionError<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OptionError::NoPath => write!(f, "empty module string"),
            OptionError::NotKeyValue(word) => write!(f, "option '{word}' is not key=value"),
            OptionError::UnknownKey(key) => {
                write!(
                    f,
                    "unknown option '{key}' (name, prio, kcalls, ipc, mem, boot)"
                )
            }
            OptionError::BadPriority(value) => {
                write!(f, "prio '{value}' is not 0..={LOWEST_PRIORITY}")
            }
            OptionError::UnknownKernelCall(call) => {
                write!(
                    f,
                    "unknown kernel call '{call}' (none, all, safecopy, shutdown, snapshot, tracemask, vm, pm)"
                )
            }
            OptionError::BadName(name) => write!(
                f,
                "name '{name}' is empty, longer than {MAX_NAME} bytes or has '/'"
            ),
            OptionError::BadIpcList(list) => write!(f, "ipc list '{list}' has an empty name"),
            OptionError::BadStarter(value) => write!(f, "boot '{value}' is not start or pm"),
            OptionError::BadMemoryLimit(value) => write!(
                f,
                "mem '{value}' is not a non-zero multiple of {PAGE_BYTES} bytes (e.g. 8M, 64K, 1G)"
            ),
        }
    }
}

/// Bytes in a page: a memory limit is a whole number of them.
const PAGE_BYTES: u64 = 4096;

/// Pages of a `mem=` value: decimal digits, then optionally `K`, `M` or `G` (× 1024ⁿ).
fn memory_limit_pages(value: &str) -> Option<u64> {
    let (digits, unit) = match value.as_bytes().last()? {
        b'K' | b'k' => (&value[..value.len() - 1], 1 << 10),
        b'M' | b'm' => (&value[..value.len() - 1], 1 << 20),
        b'G' | b'g' => (&value[..value.len() - 1], 1 << 30),
        _ => (value, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let bytes = digits.parse::<u64>().ok()?.checked_mul(unit)?;
    (bytes != 0 && bytes.is_multiple_of(PAGE_BYTES)).then_some(bytes / PAGE_BYTES)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME && !name.contains('/')
}

/// Kernel-call mask for one `kcalls` word.
fn kernel_call_bits(word: &str) -> Option<u64> {
    Some(match word {
        "safecopy" => KernelCall::SafeCopyFrom.mask_bit() | KernelCall::SafeCopyTo.mask_bit(),
        "shutdown" => KernelCall::Shutdown.mask_bit(),
        "snapshot" => KernelCall::Snapshot.mask_bit(),
        "tracemask" => KernelCall::TraceMask.mask_bit(),
        "vm" => {
            KernelCall::VmMap.mask_bit()
                | KernelCall::VmUnmap.mask_bit()
                | KernelCall::VmProtect.mask_bit()
                | KernelCall::VmQuery.mask_bit()
                | KernelCall::VmResume.mask_bit()
                | KernelCall::VmFail.mask_bit()
                | KernelCall::VmProcessOf.mask_bit()
                | KernelCall::VmMapShared.mask_bit()
                | KernelCall::VmLimitOf.mask_bit()
                // Accounting and INTROSPECT answers (written into clients' grants).
                | KernelCall::VmSetVirtual.mask_bit()
                | KernelCall::SafeCopyTo.mask_bit()
        }
        "pm" => {
            KernelCall::PmModuleName.mask_bit()
                | KernelCall::PmModuleRead.mask_bit()
                | KernelCall::PmCreate.mask_bit()
                | KernelCall::PmMapImage.mask_bit()
                | KernelCall::PmCopyTo.mask_bit()
                | KernelCall::PmStart.mask_bit()
                | KernelCall::PmKill.mask_bit()
                | KernelCall::PmReap.mask_bit()
                // Its answers to host commands.
                | KernelCall::PmHostReply.mask_bit()
                // Signal manager (signals, exceptions as events, stop/resume).
                | KernelCall::PmNextEvent.mask_bit()
                | KernelCall::PmResumeThread.mask_bit()
                | KernelCall::PmSetSignalManager.mask_bit()
                | KernelCall::PmSignal.mask_bit()
                | KernelCall::PmStop.mask_bit()
                | KernelCall::PmResume.mask_bit()
                | KernelCall::PmSignalDirect.mask_bit()
                // Tracing the processes it manages.
                | KernelCall::PmGetRegisters.mask_bit()
                | KernelCall::PmSetRegisters.mask_bit()
                | KernelCall::PmPeek.mask_bit()
                | KernelCall::PmPoke.mask_bit()
                | KernelCall::PmTraceFlags.mask_bit()
                | KernelCall::PmSetTracer.mask_bit()
                // Clients' spawn text and INTROSPECT answers, and who asks.
                | KernelCall::SafeCopyFrom.mask_bit()
                | KernelCall::SafeCopyTo.mask_bit()
                | KernelCall::VmProcessOf.mask_bit()
        }
        // The reincarnation server: the exception events of the services it manages, their
        // endpoints kept across a restart, its INTROSPECT answers, and its answers to the
        // host's service commands.
        "rs" => {
            KernelCall::PmNextEvent.mask_bit()
                | KernelCall::SafeCopyTo.mask_bit()
                | KernelCall::PmHostReply.mask_bit()
                | KernelCall::ServiceKeepEndpoint.mask_bit()
                | KernelCall::ServiceTakeOver.mask_bit()
                | KernelCall::ServiceRelease.mask_bit()
                | KernelCall::ServiceSwap.mask_bit()
                // The restart history's backtrace, and the crashes of the system servers
                // it cannot restart.
                | KernelCall::ServiceBacktrace.mask_bit()
                | KernelCall::ServiceSystemCrash.mask_bit()
        }
        _ => return None,
    })
}

/// Parses a module string.
pub fn parse(module: &str) -> Result<BootOptions<'_>, OptionError<'_>> {
    let (options, arguments) = match module.split_once(" -- ") {
        Some((options, arguments)) => (options, arguments),
        None => (module.strip_suffix(" --").unwrap_or(module), ""),
    };
    let mut words = options.split_ascii_whitespace();
    let path = words.next().ok_or(OptionError::NoPath)?;
    let file_name = path.rsplit('/').next().unwrap_or(path);
    let mut parsed = BootOptions {
        path,
        name: file_name,
        priority: DEFAULT_PRIORITY,
        kernel_calls: 0,
        ipc: IpcTargetNames::All,
        memory_limit_pages: None,
        spawned_by_pm: false,
        arguments,
    };
    if !valid_name(file_name) {
        return Err(OptionError::BadName(file_name));
    }
    for word in words {
        let (key, value) = word.split_once('=').ok_or(OptionError::NotKeyValue(word))?;
        match key {
            "name" => {
                if !valid_name(value) {
                    return Err(OptionError::BadName(value));
                }
                parsed.name = value;
            }
            "prio" => {
                parsed.priority = value
                    .parse::<u8>()
                    .ok()
                    .filter(|&p| p <= LOWEST_PRIORITY)
                    .ok_or(OptionError::BadPriority(value))?;
            }
            "kcalls" => {
                parsed.kernel_calls = match value {
                    "none" => 0,
                    "all" => u64::MAX,
                    list => {
                        let mut mask = 0;
                        for call in list.split('+') {
                            mask |= kernel_call_bits(call)
                                .ok_or(OptionError::UnknownKernelCall(call))?;
                        }
                        mask
                    }
                };
            }
            "ipc" => {
                parsed.ipc = match value {
                    "all" => IpcTargetNames::All,
                    "none" => IpcTargetNames::None,
                    list => {
                        if list.split('+').any(|name| !valid_name(name)) {
                            return Err(OptionError::BadIpcList(list));
                        }
                        IpcTargetNames::Only(list)
                    }
                };
            }
            "mem" => {
                parsed.memory_limit_pages =
                    Some(memory_limit_pages(value).ok_or(OptionError::BadMemoryLimit(value))?);
            }
            "boot" => {
                parsed.spawned_by_pm = match value {
                    "start" => false,
                    "pm" => true,
                    _ => return Err(OptionError::BadStarter(value)),
                };
            }
            _ => return Err(OptionError::UnknownKey(key)),
        }
    }
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_path() {
        let options = parse("/work/target/user/release/pingpong_server").unwrap();
        assert_eq!(options.name, "pingpong_server");
        assert_eq!(options.priority, DEFAULT_PRIORITY);
        assert_eq!(options.kernel_calls, 0);
        assert_eq!(options.ipc, IpcTargetNames::All);
        assert_eq!(options.arguments, "");
    }

    #[test]
    fn every_option_and_arguments() {
        let options = parse(
            "/bin/client name=client2 prio=4 kcalls=safecopy+shutdown ipc=server+log -- -n 5 x",
        )
        .unwrap();
        assert_eq!(options.path, "/bin/client");
        assert_eq!(options.name, "client2");
        assert_eq!(options.priority, 4);
        assert_eq!(
            options.kernel_calls,
            KernelCall::SafeCopyFrom.mask_bit()
                | KernelCall::SafeCopyTo.mask_bit()
                | KernelCall::Shutdown.mask_bit()
        );
        assert_eq!(options.ipc, IpcTargetNames::Only("server+log"));
        assert_eq!(options.arguments, "-n 5 x");
        assert_eq!(parse("p kcalls=all").unwrap().kernel_calls, u64::MAX);
        assert_eq!(parse("p ipc=none").unwrap().ipc, IpcTargetNames::None);
    }

    #[test]
    fn bad_options_are_refused_with_the_offending_text() {
        assert_eq!(parse(""), Err(OptionError::NoPath));
        assert_eq!(parse("   "), Err(OptionError::NoPath));
        assert_eq!(parse("p prio"), Err(OptionError::NotKeyValue("prio")));
        assert_eq!(
            parse("p colour=red"),
            Err(OptionError::UnknownKey("colour"))
        );
        assert_eq!(parse("p prio=16"), Err(OptionError::BadPriority("16")));
        assert_eq!(parse("p prio=-1"), Err(OptionError::BadPriority("-1")));
        assert_eq!(
            parse("p kcalls=safecopy+reboot"),
            Err(OptionError::UnknownKernelCall("reboot"))
        );
        assert_eq!(parse("p name="), Err(OptionError::BadName("")));
        assert_eq!(parse("p name=a/b"), Err(OptionError::BadName("a/b")));
        assert_eq!(parse("p ipc=a++b"), Err(OptionError::BadIpcList("a++b")));
        assert_eq!(parse("/dir/"), Err(OptionError::BadName("")));
        let long = "p name=abcdefghijklmnopqrstuvwxyz0123456";
        assert!(matches!(parse(long), Err(OptionError::BadName(_))));
    }

    #[test]
    fn memory_limits_are_page_multiples_with_a_unit() {
        assert_eq!(parse("p").unwrap().memory_limit_pages, None);
        assert_eq!(parse("p mem=8M").unwrap().memory_limit_pages, Some(2048));
        assert_eq!(parse("p mem=64K").unwrap().memory_limit_pages, Some(16));
        assert_eq!(parse("p mem=1g").unwrap().memory_limit_pages, Some(262_144));
        assert_eq!(parse("p mem=8192").unwrap().memory_limit_pages, Some(2));
        assert_eq!(
            parse("p mem=8M -- mem=1K").unwrap().memory_limit_pages,
            Some(2048),
            "arguments are the program's"
        );
        for bad in [
            "",
            "0",
            "0M",
            "4097",
            "1K",
            "M",
            "-8M",
            "8MB",
            "8 M",
            "1.5M",
            "+8M",
            // 2^64 bytes and more do not wrap around to something small.
            "16777216T",
            "18014398509481984K",
            "99999999999999999999",
        ] {
            let module = std::format!("p mem={bad}");
            assert!(
                matches!(
                    parse(&module),
                    Err(OptionError::BadMemoryLimit(_)) | Err(OptionError::NotKeyValue(_))
                ),
                "mem={bad:?} accepted: {:?}",
                parse(&module)
            );
        }
        assert_eq!(
            parse("p mem=4097"),
            Err(OptionError::BadMemoryLimit("4097"))
        );
    }

    #[test]
    fn the_vm_group_has_every_memory_call() {
        let mask = parse("p kcalls=vm").unwrap().kernel_calls;
        for call in KernelCall::ALL {
            // Every memory call, and SafeCopyTo for VM's INTROSPECT answers; nothing else.
            let vm_call = call.name().starts_with("Vm") || *call == KernelCall::SafeCopyTo;
            assert_eq!(mask & call.mask_bit() != 0, vm_call, "{}", call.name());
        }
    }

    #[test]
    fn errors_display_a_reason() {
        extern crate std;
        use std::string::ToString;
        assert!(OptionError::UnknownKey("x")
            .to_string()
            .contains("unknown option 'x'"));
    }

    #[test]
    fn boot_pm_leaves_the_module_to_the_process_manager() {
        assert!(!parse("p").unwrap().spawned_by_pm);
        assert!(!parse("p boot=start").unwrap().spawned_by_pm);
        assert_eq!(
            parse("p boot=kernel"),
            Err(OptionError::BadStarter("kernel"))
        );
        assert!(parse("p boot=pm -- a b").unwrap().spawned_by_pm);
        assert_eq!(parse("p boot=rs"), Err(OptionError::BadStarter("rs")));
        let pm = parse("pm kcalls=pm").unwrap().kernel_calls;
        assert_ne!(pm & KernelCall::PmCreate.mask_bit(), 0);
        assert_ne!(pm & KernelCall::PmReap.mask_bit(), 0);
        assert_ne!(pm & KernelCall::PmPoke.mask_bit(), 0);
        assert_ne!(pm & KernelCall::PmHostReply.mask_bit(), 0);
        assert_eq!(
            pm & KernelCall::VmMap.mask_bit(),
            0,
            "PM cannot map VM's memory"
        );
    }

    #[test]
    fn the_rs_group_is_events_endpoints_introspect_copies_and_host_replies() {
        let rs = parse("rs kcalls=rs").unwrap().kernel_calls;
        assert_eq!(
            rs,
            KernelCall::PmNextEvent.mask_bit()
                | KernelCall::SafeCopyTo.mask_bit()
                | KernelCall::PmHostReply.mask_bit()
                | KernelCall::ServiceKeepEndpoint.mask_bit()
                | KernelCall::ServiceTakeOver.mask_bit()
                | KernelCall::ServiceRelease.mask_bit()
                | KernelCall::ServiceSwap.mask_bit()
                | KernelCall::ServiceBacktrace.mask_bit()
                | KernelCall::ServiceSystemCrash.mask_bit()
        );
        assert_eq!(rs & KernelCall::PmKill.mask_bit(), 0, "RS kills through PM");
        let pm = parse("pm kcalls=pm").unwrap().kernel_calls;
        assert_eq!(
            pm & KernelCall::ServiceTakeOver.mask_bit(),
            0,
            "PM cannot move endpoints"
        );
    }
}
