//! PM's signal state and decisions: per process the action of every signal, the mask and
//! the pending set; sending a signal (`SIGNAL`), `SIGACTION`, `SIGMASK`, `MANAGE`, and the
//! kernel's exception events turned into signals.
//!
//! The kernel only delivers (`PmSignal`, `PmStop`/`PmResume`, `PmKill`): what a signal
//! does is decided here. KILL and STOP can be neither caught, ignored nor masked. A caught
//! signal interrupts the target's waits (they return `Interrupted`) and runs its handler;
//! a default action terminates (exit status `signal::status::killed_by`), terminates with
//! the report (exceptions: the kernel printed it when the fault happened), is ignored,
//! stops or continues the process.
//!
//! PM keeps the kernel's mirror of each process's *direct* set exact: the signals it
//! catches and has not masked, with its handler entry (`PmSignalDirect`). For those a
//! process signalling itself needs no request here (`SignalRaise`), since PM's decision
//! would be `PmSignal` with that entry anyway. Only the process's own `SIGACTION` and
//! `SIGMASK` (and `MANAGE`, which makes PM the manager) change the set; PM sends it again
//! whenever it changes.

use alloc::collections::{BTreeMap, BTreeSet};

use alloc::string::String;
use vigil_rt::abi::pm::{mask_how, signal_action};
use vigil_rt::abi::signal::{event, status, CatchableSet, DefaultAction, ProcessEvent, Signal};
use vigil_rt::abi::vm::Pid;
use vigil_rt::{println, syscall, Endpoint, Error};

/// What one process does with each signal, and what waits for it.
#[derive(Clone, Copy)]
pub struct SignalState {
    /// Signals caught (bit `n` for signal `n`) and ignored.
    caught: u64,
    ignored: u64,
    /// The runtime's trampoline (the handler entry the kernel starts).
    entry: u64,
    mask: u64,
    pending: u64,
    /// The direct set and entry last mirrored into the kernel (`sync_direct`).
    direct_sent: (u64, u64),
}

impl SignalState {
    const NEW: SignalState = SignalState {
        caught: 0,
        ignored: 0,
        entry: 0,
        mask: 0,
        pending: 0,
        direct_sent: (0, 0),
    };

    /// The signals the process may raise itself (caught, not masked) and their entry.
    fn direct(&self) -> (u64, u64) {
        let set = self.caught & !self.mask & !UNCATCHABLE & !1;
        (set, if set == 0 { 0 } else { self.entry })
    }

    fn action(&self, signal: Signal) -> u64 {
        if self.caught & signal.bit() != 0 {
            signal_action::CATCH
        } else if self.ignored & signal.bit() != 0 {
            signal_action::IGNORE
        } else {
            signal_action::DEFAULT
        }
    }
}

/// Signals that can never be masked, caught or ignored.
const UNCATCHABLE: u64 = Signal::KILL.bit() | Signal::STOP.bit();

/// Every process's signal state PM knows (absent: all default, nothing masked).
pub struct Signals {
    states: BTreeMap<u64, SignalState>,
    /// Boot processes PM became the manager of (`MANAGE`).
    adopted: BTreeSet<u64>,
    own_pid: u64,
    vm_pid: u64,
}

fn pid(value: u64) -> Result<Pid, Error> {
    u32::try_from(value).map(Pid).map_err(|_| Error::NotFound)
}

impl Signals {
    pub fn new(own_pid: u64, vm_pid: u64) -> Signals {
        Signals {
            states: BTreeMap::new(),
            adopted: BTreeSet::new(),
            own_pid,
            vm_pid,
        }
    }

    fn state(&mut self, pid: u64) -> &mut SignalState {
        self.states.entry(pid).or_insert(SignalState::NEW)
    }

    /// Process `pid` exited: its state goes.
    pub fn forget(&mut self, pid: u64) {
        self.states.remove(&pid);
        self.adopted.remove(&pid);
    }

    /// Whether PM became `pid`'s manager through `MANAGE`.
    pub fn adopted(&self, pid: u64) -> bool {
        self.adopted.contains(&pid)
    }

    /// SIGNAL: `signal` for process `target` (`known`: a process PM manages).
    pub fn send(&mut self, target: u64, signal: u64, known: bool) -> Result<(), Error> {
        let signal = Signal::new(signal)?;
        if target == self.own_pid || (self.vm_pid != 0 && target == self.vm_pid) {
            return Err(Error::PermissionDenied);
        }
        if !known {
            return Err(Error::NotFound);
        }
        let state = *self.state(target);
        if signal.catchable() && state.mask & signal.bit() != 0 {
            // Held until unmasked.
            self.state(target).pending |= signal.bit();
            return Ok(());
        }
        self.act(target, signal)
    }

    /// Does what `signal` does to `target` now (it is not masked).
    fn act(&mut self, target: u64, signal: Signal) -> Result<(), Error> {
        let target_pid = pid(target)?;
        let state = *self.state(target);
        match (signal.catchable(), state.action(signal)) {
            (true, signal_action::CATCH) => {
                syscall::pm_signal(target_pid, signal, state.entry)?;
                if signal == Signal::CONT {
                    syscall::pm_resume(target_pid)?;
                }
                Ok(())
            }
            (true, signal_action::IGNORE) => {
                if signal == Signal::CONT {
                    syscall::pm_resume(target_pid)?;
                }
                Ok(())
            }
            _ => self.default_action(target_pid, signal, false),
        }
    }

    fn default_action(&mut self, target: Pid, signal: Signal, reported: bool) -> Result<(), Error> {
        match signal.default_action() {
            DefaultAction::Terminate => {
                syscall::pm_kill(target, status::killed_by(signal, reported)).map(|_| ())
            }
            DefaultAction::TerminateWithReport => {
                syscall::pm_kill(target, status::killed_by(signal, true)).map(|_| ())
            }
            DefaultAction::Ignore => Ok(()),
            DefaultAction::Stop => syscall::pm_stop(target).map(|_| ()),
            DefaultAction::Continue => syscall::pm_resume(target).map(|_| ()),
        }
    }

    /// SIGACTION from the process `caller`.
    pub fn action(
        &mut self,
        caller: u64,
        signal: u64,
        action: u64,
        entry: u64,
    ) -> Result<u64, Error> {
        let signal = Signal::new(signal)?;
        if !signal.catchable() || action > signal_action::CATCH {
            return Err(Error::InvalidArgument);
        }
        if action == signal_action::CATCH && entry == 0 {
            return Err(Error::InvalidArgument);
        }
        let state = self.state(caller);
        let previous = state.action(signal);
        state.caught &= !signal.bit();
        state.ignored &= !signal.bit();
        match action {
            signal_action::CATCH => {
                state.caught |= signal.bit();
                state.entry = entry;
            }
            signal_action::IGNORE => state.ignored |= signal.bit(),
            _ => {}
        }
        self.sync_direct(caller);
        Ok(previous)
    }

    /// SIGMASK from the process `caller`: the new mask; signals it unblocks that are
    /// pending are acted on now.
    pub fn mask(&mut self, caller: u64, how: u64, set: u64) -> Result<u64, Error> {
        let set = set & !UNCATCHABLE & !1;
        let state = self.state(caller);
        let previous = state.mask;
        state.mask = match how {
            mask_how::SET => set,
            mask_how::BLOCK => previous | set,
            mask_how::UNBLOCK => previous & !set,
            _ => return Err(Error::InvalidArgument),
        };
        let mut ready = state.pending & !state.mask;
        state.pending &= state.mask;
        while ready != 0 {
            let number = u64::from(ready.trailing_zeros());
            ready &= ready - 1;
            if let Ok(signal) = Signal::new(number) {
                if let Err(error) = self.act(caller, signal) {
                    println!(
                        "pending {} for pid {caller} dropped: {error}",
                        signal.name()
                    );
                }
            }
        }
        self.sync_direct(caller);
        Ok(previous)
    }

    /// Mirrors `pid`'s direct set into the kernel if it changed since last sent. PM and VM
    /// get none (signals to them are refused). A process PM does not manage (a boot
    /// process before `MANAGE`) is refused by the kernel and gets it at `MANAGE`.
    fn sync_direct(&mut self, pid: u64) {
        let own_pid = self.own_pid;
        let vm_pid = self.vm_pid;
        let state = self.state(pid);
        let wanted = if pid == own_pid || (vm_pid != 0 && pid == vm_pid) {
            (0, 0)
        } else {
            state.direct()
        };
        if wanted == state.direct_sent {
            return;
        }
        let (Ok(target), Ok(set)) = (self::pid(pid), CatchableSet::new(wanted.0)) else {
            return;
        };
        match syscall::pm_signal_direct(target, set, wanted.1) {
            Ok(_) => self.state(pid).direct_sent = wanted,
            Err(Error::PermissionDenied | Error::NotFound) => {}
            Err(error) => println!("direct signals of pid {pid} not mirrored: {error}"),
        }
    }

    /// MANAGE: PM handles `target`'s exceptions and signals from now on.
    pub fn manage(&mut self, target: u64) -> Result<(), Error> {
        let own = pid(self.own_pid)?;
        syscall::pm_set_signal_manager(pid(target)?, own)?;
        self.adopted.insert(target);
        // The kernel emptied the mirror with the manager change.
        self.state(target).direct_sent = (0, 0);
        self.sync_direct(target);
        Ok(())
    }

    /// The kernel has exception events for PM: each becomes its signal for the process.
    /// A caught one runs the handler (the faulting instruction runs again after it);
    /// otherwise the process ends with the report the kernel printed.
    pub fn exception_events(
        &mut self,
        mut trace_stop: impl FnMut(&ProcessEvent),
        name_of: impl Fn(u64) -> String,
    ) {
        loop {
            let record = match syscall::pm_next_event() {
                Ok(Some(record)) => record,
                Ok(None) => break,
                Err(error) => {
                    println!("collecting process events failed: {error}");
                    break;
                }
            };
            if record[event::KIND] != event::EXCEPTION {
                // A trace stop: the tracer's (`trace.rs`).
                trace_stop(&record);
                continue;
            }
            let target = record[event::PID];
            let signal = Signal::for_exception(record[event::VECTOR]);
            let thread = Endpoint(record[event::THREAD]);
            let state = *self.state(target);
            let Ok(target_pid) = pid(target) else {
                continue;
            };
            let caught =
                state.action(signal) == signal_action::CATCH && state.mask & signal.bit() == 0;
            let outcome = if caught {
                syscall::pm_signal(target_pid, signal, state.entry)
                    .and_then(|_| syscall::pm_resume_thread(thread))
                    .map(|_| ())
            } else {
                let vector = record[event::VECTOR];
                let status = status::killed_by(signal, true);
                // The kernel's own wording for a process it kills, so a reader (and a
                // scenario) sees the same line whoever ended it.
                println!(
                    "process '{}' (pid {target}) killed by {} at {:#x}: {} (vector {vector}, address {:#x}), status {status:#x}",
                    name_of(target),
                    vigil_rt::abi::signal::exception_mnemonic(vector),
                    record[event::RIP],
                    signal.name(),
                    record[event::FAULT_ADDRESS]
                );
                syscall::pm_kill(target_pid, status).map(|_| ())
            };
            if let Err(error) = outcome {
                println!("{} for pid {target} failed: {error}", signal.name());
            }
        }
    }
}
