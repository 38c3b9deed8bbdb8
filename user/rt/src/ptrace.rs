//! The tracing kernel calls (PM only, `kcalls=pm`): registers and memory of a process the
//! caller manages (`vigil_abi::ptrace`), and the tracer it lets take stops directly.

use crate::syscall::pm_call;
use vigil_abi::ptrace::{Registers, HELD_AT_STOP, REGISTER_WORDS};
use vigil_abi::syscall::{
    PmGetRegistersArgs, PmPeekArgs, PmPokeArgs, PmSetRegistersArgs, PmSetTracerArgs,
};
use vigil_abi::user_memory::{UserPtr, UserSlice};
use vigil_abi::vm::Pid;
use vigil_abi::{Endpoint, Error};

/// `KernelCall PmGetRegisters`: the saved user registers of `thread`.
pub fn get_registers(thread: Endpoint) -> Result<Registers, Error> {
    let mut words = [0u64; REGISTER_WORDS];
    // Borrowed mutably: the kernel writes it.
    let out: &mut [u64; REGISTER_WORDS] = &mut words;
    let arguments = PmGetRegistersArgs {
        thread,
        out: UserPtr::from_ref(out),
    };
    // SAFETY: the kernel writes the words of `words`, exclusively ours until it returns.
    unsafe { pm_call(PmGetRegistersArgs::CALL, arguments.encode()) }?;
    Ok(Registers::from_words(&words))
}

/// `KernelCall PmSetRegisters`: `thread` resumes with `registers`.
pub fn set_registers(thread: Endpoint, registers: &Registers) -> Result<(), Error> {
    let words = registers.to_words();
    let arguments = PmSetRegistersArgs {
        thread,
        registers: UserPtr::from_ref(&words),
    };
    // SAFETY: the kernel only reads `words`.
    unsafe { pm_call(PmSetRegistersArgs::CALL, arguments.encode()) }?;
    Ok(())
}

/// `KernelCall PmPeek`: `buffer.len()` bytes of process `pid`'s memory at `address`.
pub fn peek(pid: Pid, address: u64, buffer: &mut [u8]) -> Result<(), Error> {
    let arguments = PmPeekArgs {
        process: pid,
        address,
        buffer: UserSlice::from_slice(buffer),
    };
    // SAFETY: the kernel writes at most `buffer.len()` bytes into the exclusive borrow.
    unsafe { pm_call(PmPeekArgs::CALL, arguments.encode()) }?;
    Ok(())
}

/// `KernelCall PmPoke`: `data` into process `pid`'s memory at `address`.
pub fn poke(pid: Pid, address: u64, data: &[u8]) -> Result<(), Error> {
    let arguments = PmPokeArgs {
        process: pid,
        address,
        data: UserSlice::from_slice(data),
    };
    // SAFETY: the kernel only reads the borrowed data.
    unsafe { pm_call(PmPokeArgs::CALL, arguments.encode()) }?;
    Ok(())
}

/// `KernelCall PmTraceFlags`: the trace flags of `thread`; returns the previous ones.
pub fn set_flags(
    thread: Endpoint,
    flags: vigil_abi::ptrace::TraceFlags,
) -> Result<vigil_abi::ptrace::TraceFlags, Error> {
    set_flags_held(thread, flags).map(|(previous, _)| previous)
}

/// `set_flags`, also saying whether `thread` is held at a trace stop now (the kernel's
/// `HELD_AT_STOP`: a stop the kernel handed straight to the tracer never reached PM).
pub fn set_flags_held(
    thread: Endpoint,
    flags: vigil_abi::ptrace::TraceFlags,
) -> Result<(vigil_abi::ptrace::TraceFlags, bool), Error> {
    let arguments = vigil_abi::syscall::PmTraceFlagsArgs { thread, flags };
    // SAFETY: no memory of the caller is involved.
    let result = unsafe {
        pm_call(
            vigil_abi::syscall::PmTraceFlagsArgs::CALL,
            arguments.encode(),
        )
    }?;
    let held = result & HELD_AT_STOP != 0;
    let previous = vigil_abi::ptrace::TraceFlags::new(result & !HELD_AT_STOP)?;
    Ok((previous, held))
}

/// `KernelCall PmSetTracer` (PM): `tracer` (0: nobody) may take `pid`'s trace stops
/// directly (`TraceResumeWait`).
pub fn set_tracer(pid: Pid, tracer: Pid) -> Result<(), Error> {
    let arguments = PmSetTracerArgs {
        process: pid,
        tracer,
    };
    // SAFETY: no memory of the caller is involved.
    unsafe { pm_call(PmSetTracerArgs::CALL, arguments.encode()) }?;
    Ok(())
}
