//! Tracing through PM (ptrace): who traces whom, the stops they wait for, and the TRACE
//! request's verbs (`vigil_abi::ptrace::request`).
//!
//! PM is the signal manager of every process it starts, so the kernel's trace stops
//! (`PmTraceFlags`) and the tracing kernel calls (registers, memory) are PM's to use; a
//! tracer asks PM, which checks that the caller traces the process. A tracee's stops become
//! events the tracer collects with WAIT (deferred until there is one). When a tracer ends,
//! its tracees are detached and run on; when a tracee ends, its tracer gets an EXITED event.
//!
//! PM also registers each tracer with the kernel for its tracees (`PmSetTracer`), so the
//! hot loop — a stop, the tracer, resume — can skip PM (`TraceResumeWait`,
//! `vigil_abi::ptrace::direct`). A stop handed over that way never reaches PM, so whether a
//! tracee's thread is held at a stop is the kernel's answer (`PmTraceFlags`'
//! `HELD_AT_STOP`), never PM's own record.
//!
//! Only the main thread of a tracee is traced (PM learns it when it starts the process);
//! other threads run untraced.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use vigil_rt::abi::ptrace::request::{self, event, mode, options};
use vigil_rt::abi::ptrace::{Registers, TraceFlags, REGISTER_WORDS};
use vigil_rt::abi::signal::event as kernel_event;
use vigil_rt::abi::signal::ProcessEvent;
use vigil_rt::abi::vm::Pid;
use vigil_rt::ipc::{self, GrantId};
use vigil_rt::{println, ptrace, syscall, Endpoint, Error, Message};

use crate::Pm;

/// One traced process.
struct Tracee {
    tracer: u64,
    main_thread: Endpoint,
    follow_children: bool,
    /// PM stopped it (ATTACH, SPAWN, a followed child) and has not resumed it.
    stopped: bool,
}

/// A tracer blocked in WAIT.
struct TraceWaiter {
    client: Endpoint,
    tracer: u64,
    /// A pid, or 0 for any tracee.
    pid: u64,
}

/// PM's tracing state.
pub struct Tracing {
    tracees: BTreeMap<u64, Tracee>,
    /// Events not yet collected: (tracer, `[pid, thread, kind, rip, value]`).
    events: VecDeque<(u64, [u64; 5])>,
    waiters: Vec<TraceWaiter>,
}

impl Tracing {
    pub fn new() -> Tracing {
        Tracing {
            tracees: BTreeMap::new(),
            events: VecDeque::new(),
            waiters: Vec::new(),
        }
    }

    /// Whether `pid` is traced and its children must be too: the tracer, if so.
    pub fn follower_of(&self, pid: u64) -> Option<u64> {
        self.tracees
            .get(&pid)
            .filter(|tracee| tracee.follow_children)
            .map(|tracee| tracee.tracer)
    }

    /// Queues an event for `tracer`, or answers its waiting WAIT.
    fn post(&mut self, tracer: u64, record: [u64; 5]) {
        let waiting = self
            .waiters
            .iter()
            .position(|w| w.tracer == tracer && (w.pid == 0 || w.pid == record[0]));
        match waiting {
            Some(index) => {
                let waiter = self.waiters.remove(index);
                crate::reply(waiter.client, Ok(event_reply(record)));
            }
            None => self.events.push_back((tracer, record)),
        }
    }

    /// Starts tracing `pid` (already stopped by the caller) for `tracer`.
    fn begin(&mut self, pid: u64, tracer: u64, main_thread: Endpoint, follow: bool, value: u64) {
        self.tracees.insert(
            pid,
            Tracee {
                tracer,
                main_thread,
                follow_children: follow,
                stopped: true,
            },
        );
        // The tracer may take this tracee's stops from the kernel directly. If the kernel
        // refuses, every stop simply comes through PM.
        if let Err(error) = ptrace::set_tracer(Pid(pid as u32), Pid(tracer as u32)) {
            println!("pid {pid}: no direct tracing by pid {tracer}: {error}");
        }
        self.post(tracer, [pid, main_thread.0, event::ATTACHED, 0, value]);
    }

    /// The kernel's trace-stop event about `record[PID]`.
    pub fn on_stop(&mut self, record: &ProcessEvent) {
        let pid = record[kernel_event::PID];
        let thread = Endpoint(record[kernel_event::THREAD]);
        let kind = record[kernel_event::KIND];
        let Some(tracee) = self.tracees.get_mut(&pid) else {
            // Detached meanwhile: nobody wants this stop.
            let _ = syscall::pm_resume_thread(thread);
            return;
        };
        let tracer = tracee.tracer;
        let value = match kind {
            kernel_event::SYSCALL_ENTRY | kernel_event::SYSCALL_EXIT => record[kernel_event::VALUE],
            _ => 0,
        };
        self.post(
            tracer,
            [pid, thread.0, kind, record[kernel_event::RIP], value],
        );
    }

    /// Process `pid` ended with `status`: its tracer hears of it; if it traced others,
    /// they are let go.
    pub fn exited(&mut self, pid: u64, status: u64) {
        if let Some(tracee) = self.tracees.remove(&pid) {
            // Gone from the kernel already, or about to be: nothing to undo but this.
            let _ = ptrace::set_tracer(Pid(pid as u32), Pid(0));
            self.post(
                tracee.tracer,
                [pid, tracee.main_thread.0, event::EXITED, 0, status],
            );
        }
        let orphans: Vec<u64> = self
            .tracees
            .iter()
            .filter(|(_, tracee)| tracee.tracer == pid)
            .map(|(&tracee, _)| tracee)
            .collect();
        for tracee in &orphans {
            self.release(*tracee);
            println!("tracer pid {pid} ended: pid {tracee} detached and running");
        }
        self.waiters.retain(|waiter| waiter.tracer != pid);
        // Its own events go with a dead tracer; a dead tracee's stops are stale, but its
        // EXITED (just posted) is what its tracer waits for.
        self.events.retain(|(tracer, record)| {
            *tracer != pid && (record[0] != pid || record[2] == event::EXITED)
        });
    }

    /// Ends tracing of `pid`: no flags, no hold, not stopped.
    fn release(&mut self, pid: u64) {
        let Some(tracee) = self.tracees.remove(&pid) else {
            return;
        };
        let _ = ptrace::set_tracer(Pid(pid as u32), Pid(0));
        let held = ptrace::set_flags_held(tracee.main_thread, TraceFlags::NONE)
            .is_ok_and(|(_, held)| held);
        if held {
            let _ = syscall::pm_resume_thread(tracee.main_thread);
        }
        if tracee.stopped {
            let _ = syscall::pm_resume(Pid(pid as u32));
        }
        self.events.retain(|(_, record)| record[0] != pid);
    }

    /// The tracee `pid` if `tracer` traces it.
    fn traced_by(&mut self, pid: u64, tracer: u64) -> Result<&mut Tracee, Error> {
        match self.tracees.get_mut(&pid) {
            Some(tracee) if tracee.tracer == tracer => Ok(tracee),
            _ => Err(Error::PermissionDenied),
        }
    }

    /// CONTINUE: flags for `mode`, then the held thread and the stopped process run.
    fn resume(&mut self, pid: u64, tracer: u64, how: u64) -> Result<(), Error> {
        let flags = match how {
            mode::RUN => TraceFlags::NONE,
            mode::SYSCALLS => TraceFlags::SYSCALLS,
            mode::STEP => TraceFlags::STEP,
            _ => return Err(Error::InvalidArgument),
        };
        let tracee = self.traced_by(pid, tracer)?;
        // The kernel says whether the thread is held at a stop: PM may not have seen it.
        let (_, held) = ptrace::set_flags_held(tracee.main_thread, flags)?;
        if held {
            syscall::pm_resume_thread(tracee.main_thread)?;
        }
        if tracee.stopped {
            tracee.stopped = false;
            syscall::pm_resume(Pid(pid as u32))?;
        }
        Ok(())
    }

    /// WAIT: an event now (Some) or when one comes (None: the waiter is kept).
    fn wait(
        &mut self,
        client: Endpoint,
        tracer: u64,
        pid: u64,
        flags: u64,
    ) -> Result<Option<[u64; 6]>, Error> {
        if flags & !request::NO_HANG != 0 {
            return Err(Error::InvalidArgument);
        }
        let queued = self
            .events
            .iter()
            .position(|(t, record)| *t == tracer && (pid == 0 || record[0] == pid));
        if let Some(index) = queued {
            let (_, record) = self.events.remove(index).ok_or(Error::NotFound)?;
            return Ok(Some(event_reply(record)));
        }
        let traces = self
            .tracees
            .iter()
            .any(|(&p, tracee)| tracee.tracer == tracer && (pid == 0 || p == pid));
        if !traces {
            return Err(Error::NotFound);
        }
        if flags & request::NO_HANG != 0 {
            return Ok(Some([0; 6]));
        }
        if self.waiters.iter().any(|w| w.client == client) {
            return Err(Error::Exists);
        }
        self.waiters.push(TraceWaiter {
            client,
            tracer,
            pid,
        });
        Ok(None)
    }
}

/// A WAIT answer from an event record.
fn event_reply(record: [u64; 5]) -> [u64; 6] {
    [0, record[0], record[1], record[2], record[3], record[4]]
}

impl Pm {
    /// The TRACE request (`vigil_abi::ptrace::request`).
    pub(crate) fn trace_request(
        &mut self,
        client: Endpoint,
        message: &Message,
    ) -> Result<Option<[u64; 6]>, Error> {
        let [verb, a, b, c, d, _] = message.payload;
        let tracer = Self::pid_of(client)?;
        match verb {
            request::ATTACH => self.attach(tracer, a, b).map(|()| Some([0; 6])),
            request::SPAWN => {
                check_options(c)?;
                let pid = self.spawn(client, a, b, 0)?;
                syscall::pm_stop(Pid(pid as u32))?;
                let main = self.main_thread_of(pid)?;
                self.tracing
                    .begin(pid, tracer, main, c & options::FOLLOW_CHILDREN != 0, 0);
                Ok(Some([0, pid, 0, 0, 0, 0]))
            }
            request::DETACH => {
                self.tracing.traced_by(a, tracer)?;
                self.tracing.release(a);
                Ok(Some([0; 6]))
            }
            request::CONTINUE => self.tracing.resume(a, tracer, b).map(|()| Some([0; 6])),
            request::RESUME_WAIT => {
                self.tracing.resume(a, tracer, b)?;
                self.tracing.wait(client, tracer, a, 0)
            }
            request::WAIT => self.tracing.wait(client, tracer, a, b),
            request::GET_REGISTERS => {
                let thread = self.traced_thread(a, tracer)?;
                let words = ptrace::get_registers(thread)?.to_words();
                let mut bytes = [0u8; REGISTER_WORDS * 8];
                for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
                    chunk.copy_from_slice(&word.to_le_bytes());
                }
                ipc::safe_copy_to(client, GrantId(b), 0, &bytes)?;
                Ok(Some([0; 6]))
            }
            request::SET_REGISTERS => {
                let thread = self.traced_thread(a, tracer)?;
                let mut bytes = [0u8; REGISTER_WORDS * 8];
                ipc::safe_copy_from(client, GrantId(b), 0, &mut bytes)?;
                let mut words = [0u64; REGISTER_WORDS];
                for (word, chunk) in words.iter_mut().zip(bytes.chunks_exact(8)) {
                    *word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
                }
                ptrace::set_registers(thread, &Registers::from_words(&words))?;
                Ok(Some([0; 6]))
            }
            request::PEEK | request::POKE => {
                self.tracing.traced_by(a, tracer)?;
                if d == 0 || d > request::MAX_PEEK_BYTES {
                    return Err(Error::InvalidArgument);
                }
                let mut bytes = alloc::vec![0u8; d as usize];
                if verb == request::PEEK {
                    ptrace::peek(Pid(a as u32), b, &mut bytes)?;
                    ipc::safe_copy_to(client, GrantId(c), 0, &bytes)?;
                } else {
                    ipc::safe_copy_from(client, GrantId(c), 0, &mut bytes)?;
                    ptrace::poke(Pid(a as u32), b, &bytes)?;
                }
                Ok(Some([0; 6]))
            }
            _ => Err(Error::NoSuchCall),
        }
    }

    /// ATTACH: `tracer` traces `pid` from now on; it stops.
    fn attach(&mut self, tracer: u64, pid: u64, flags: u64) -> Result<(), Error> {
        check_options(flags)?;
        if pid == self.own_pid || (self.vm_pid != 0 && pid == self.vm_pid) {
            return Err(Error::PermissionDenied);
        }
        if pid == tracer {
            return Err(Error::SelfTarget);
        }
        if !self.processes.contains_key(&pid) && !self.signals.adopted(pid) {
            return Err(if pid_exists(pid) {
                Error::PermissionDenied
            } else {
                Error::NotFound
            });
        }
        if self
            .processes
            .get(&pid)
            .is_some_and(|entry| entry.exit_status.is_some())
        {
            return Err(Error::NotFound);
        }
        if self.tracing.tracees.contains_key(&pid) {
            return Err(Error::Exists);
        }
        // A tracer traced by its own tracee would wait for itself.
        if self
            .tracing
            .tracees
            .get(&tracer)
            .is_some_and(|t| t.tracer == pid)
        {
            return Err(Error::Deadlock);
        }
        let main = self.main_thread_of(pid)?;
        syscall::pm_stop(Pid(pid as u32))?;
        self.tracing
            .begin(pid, tracer, main, flags & options::FOLLOW_CHILDREN != 0, 0);
        Ok(())
    }

    /// `thread`, if it belongs to a process `tracer` traces.
    fn traced_thread(&mut self, thread: u64, tracer: u64) -> Result<Endpoint, Error> {
        let thread = Endpoint(thread);
        let pid = Self::pid_of(thread)?;
        self.tracing.traced_by(pid, tracer)?;
        Ok(thread)
    }

    /// A child `pid` that `parent` just spawned: traced too if `parent` is followed.
    pub(crate) fn trace_new_child(&mut self, parent: u64, pid: u64) {
        let Some(tracer) = self.tracing.follower_of(parent) else {
            return;
        };
        let Ok(main) = self.main_thread_of(pid) else {
            return;
        };
        if syscall::pm_stop(Pid(pid as u32)).is_ok() {
            self.tracing.begin(pid, tracer, main, true, parent);
        }
    }
}

/// Unknown option bits are `InvalidArgument`.
fn check_options(bits: u64) -> Result<(), Error> {
    if bits & !options::FOLLOW_CHILDREN != 0 {
        return Err(Error::InvalidArgument);
    }
    Ok(())
}

/// Whether some live process has pid `pid` (PM may not manage it).
fn pid_exists(pid: u64) -> bool {
    // A peek of nothing fails with NotFound only for no such process.
    !matches!(
        ptrace::peek(Pid(pid as u32), 0, &mut []),
        Err(Error::NotFound)
    )
}
