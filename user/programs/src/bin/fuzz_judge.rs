//! `fuzz_judge`: runs the syscall fuzzers and checks that every frame they used came back.
//!
//! Boot it first with the most urgent priority (`prio=0 kcalls=snapshot+shutdown`), beside
//! `fuzz_syscalls name=fuzz_control calls=0` and one or more fuzzers (`fuzz_syscalls
//! name=fuzz_user …`, `… name=fuzz_privileged kcalls=all`). Each of them notifies the judge
//! once loaded and waits for its go. The judge then:
//! 1. with all of them idle, notes the free frames (F0);
//! 2. lets the control go — it exits at once — and notes the free frames again (F1): a
//!    process of that program holds F1 − F0 frames after the same start;
//! 3. lets every fuzzer go, waits until they have all exited, and notes F2.
//!
//! With no leak, F2 = F1 + fuzzers × (F1 − F0): every fuzzer freed exactly what an idle copy
//! holds, whatever it did in between. The judge only reads snapshot headers into a buffer it
//! touched beforehand, so its own memory never changes meanwhile. Prints `fuzz_judge: PASS …`
//! or `FAIL …` and shuts the machine down with the verdict.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;
use vigil_rt::{introspect, ipc, println, process, syscall, thread, Endpoint};

vigil_rt::entry!(main);

/// The control's name: a copy of the fuzzer that does nothing.
const CONTROL: &str = "fuzz_control";

/// (free frames, processes) from a snapshot header, into `buffer`.
fn figures(buffer: &mut [u8]) -> Result<(u64, u32), String> {
    let _ = syscall::snapshot(buffer);
    let header = introspect::decode_header(buffer).ok_or("no snapshot header")?;
    Ok((header.free_frames, header.process_count))
}

/// Waits until the number of processes drops to `count`.
fn wait_for_processes(buffer: &mut [u8], count: u32) -> Result<u64, String> {
    loop {
        let (free, processes) = figures(buffer)?;
        if processes <= count {
            return Ok(free);
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn run(expected_fuzzers: usize) -> Result<String, String> {
    // Big enough for any snapshot of this scenario, and touched now.
    let mut buffer = vec![0u8; 64 * 1024];
    let control = vigil_programs::lookup_with_retry(CONTROL)?;
    // Every fuzzer (and the control) notifies when loaded and idle.
    let mut waiting: Vec<Endpoint> = Vec::new();
    while waiting.len() < expected_fuzzers + 1 {
        let message = ipc::receive(Endpoint::ANY).map_err(|e| format!("receive: {e}"))?;
        if message.is_notification() && !waiting.contains(&message.source) {
            waiting.push(message.source);
        }
    }
    let (f0, processes) = figures(&mut buffer)?;
    ipc::notify(control).map_err(|e| format!("go to the control: {e}"))?;
    let f1 = wait_for_processes(&mut buffer, processes - 1)?;
    let per_process = f1.checked_sub(f0).ok_or("the control's exit took frames")?;
    for &fuzzer in waiting.iter().filter(|&&e| e != control) {
        ipc::notify(fuzzer).map_err(|e| format!("go to {fuzzer}: {e}"))?;
    }
    let f2 = wait_for_processes(&mut buffer, processes - 1 - expected_fuzzers as u32)?;
    let expected = f1 + expected_fuzzers as u64 * per_process;
    if f2 != expected {
        return Err(format!(
            "free frames {f2} after the fuzzers exited, expected {expected} ({f1} + \
             {expected_fuzzers} × {per_process}): {} frames leaked",
            expected as i64 - f2 as i64
        ));
    }
    Ok(format!(
        "{expected_fuzzers} fuzzers exited; free frames {f0} → {f2} = {f1} + \
         {expected_fuzzers} × {per_process} (what an idle copy holds): none leaked"
    ))
}

fn main(args: &str) -> i32 {
    let fuzzers = args.trim().parse::<usize>().unwrap_or(1);
    let ok = match run(fuzzers) {
        Ok(summary) => {
            println!("fuzz_judge: PASS {summary}");
            true
        }
        Err(reason) => {
            println!("fuzz_judge: FAIL {reason}");
            false
        }
    };
    process::shutdown(ok)
}
