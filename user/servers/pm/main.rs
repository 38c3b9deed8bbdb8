//! `pm`: the process manager. At boot it starts every boot module that is not a system
//! server or a `boot=pm` image (`boot.rs`); on request it spawns the `boot=pm` images. It
//! builds each process itself (validating each ELF with `kcore::elf` and building the address space through its
//! kernel calls: the kernel parses no ELF for them), keeps the process tree (pid, parent,
//! children, reparenting to PM when a parent exits), collects exits (`PmReap`) and answers
//! wait and kill requests (`vigil_abi::pm::request`). INTROSPECT's `processes` topic gives
//! the tree: pid, parent, name, arguments, state, start time, exit status.
//!
//! Every process PM creates names PM as its signal manager (seed 002): for now that means
//! PM collects its exit; signals, exceptions-as-messages and tracing come in phase 2.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

mod boot;
mod host;
mod image;
mod signal;
mod trace;

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use vigil_kcore::boot_options;
use vigil_rt::abi::pm::{
    request, spawn_flags, wait_flags, Priority, ANY_CHILD, KIND_CHILD_EXITED, MAX_ARGUMENT_BYTES,
    MAX_SPAWN_BYTES,
};
use vigil_rt::abi::server_introspect::{
    process_state, record_text, IntrospectReply, IntrospectRequest, ProcessTreeRecord, Topic,
    INTROSPECT, PROCESS_RECORD_BYTES, PROCESS_RECORD_VERSION,
};
use vigil_rt::abi::signal::KIND_PROCESS_EVENT;
use vigil_rt::abi::vm::Pid;
use vigil_rt::ipc::{self, GrantId};
use vigil_rt::{println, syscall, Endpoint, Error, Message};

vigil_rt::entry!(main);

/// A process PM started and has not yet forgotten: running, or exited and not yet waited
/// for by its parent.
struct Entry {
    parent: u64,
    exit_status: Option<u64>,
    name: String,
    arguments: String,
    start_ns: u64,
    /// Its main thread (what tracing stops).
    main_thread: Endpoint,
    /// Its parent is its signal manager (`spawn_flags::CALLER_MANAGES`): its exceptions
    /// and signals are the parent's to decide, so PM's SIGNAL refuses it; PM still
    /// collects its exit (the kernel keeps PM its reaper) and KILL still ends it.
    managed_by_parent: bool,
    /// The manager's thread that spawned it (`Endpoint::NONE` for a child PM manages):
    /// told of its exit with a notification from PM, the exit notice, unless a `WAIT` of
    /// the parent already takes the exit.
    exit_notice_to: Endpoint,
}

/// A parent blocked in `WAIT`: it gets its reply when a matching child exits.
struct Waiter {
    client: Endpoint,
    parent: u64,
    /// A pid, or `ANY_CHILD`.
    child: u64,
}

struct Pm {
    own_pid: u64,
    /// The VM server's pid (never killed through PM), 0 if there is none.
    vm_pid: u64,
    processes: BTreeMap<u64, Entry>,
    waiters: Vec<Waiter>,
    /// Module files read so far, by module index (boot modules never change).
    images: BTreeMap<u64, image::Image>,
    /// Signal actions, masks and pending sets (`signal.rs`).
    signals: signal::Signals,
    /// Who traces whom, and their stops (`trace.rs`).
    tracing: trace::Tracing,
}

/// Longest boot-module string PM reads.
const MODULE_STRING_BYTES: usize = 512;

impl Pm {
    /// The pid of the process a client thread belongs to.
    fn pid_of(thread: Endpoint) -> Result<u64, Error> {
        syscall::vm_process_of(thread)
    }

    /// The index and string of the `boot=pm` module whose process name is `program`.
    fn find_module(program: &str) -> Result<(u64, String), Error> {
        let mut buffer = [0u8; MODULE_STRING_BYTES];
        for index in 0.. {
            let len = match syscall::pm_module_name(index, &mut buffer) {
                Ok(len) => (len as usize).min(MODULE_STRING_BYTES),
                Err(Error::NotFound) => break,
                Err(error) => return Err(error),
            };
            let Ok(text) = core::str::from_utf8(&buffer[..len]) else {
                continue;
            };
            match boot_options::parse(text) {
                Ok(options) if options.spawned_by_pm && options.name == program => {
                    return Ok((index, String::from(text)));
                }
                _ => {}
            }
        }
        Err(Error::NotFound)
    }

    /// The image of module `index`, read once and kept while it is the module spawned
    /// last (only its segments' bytes: `image.rs`).
    fn image(&mut self, index: u64) -> Result<&image::Image, image::ImageError> {
        if !self.images.contains_key(&index) {
            self.images.clear();
            let image = image::Image::read(index)?;
            self.images.insert(index, image);
        }
        Ok(&self.images[&index])
    }

    /// SPAWN: the text from the client's grant, then a new child of the client (and
    /// with `CALLER_MANAGES` one it manages, from before its first instruction).
    fn spawn(&mut self, client: Endpoint, grant: u64, len: u64, flags: u64) -> Result<u64, Error> {
        if len == 0 || len > MAX_SPAWN_BYTES || flags & !spawn_flags::ALL != 0 {
            return Err(Error::InvalidArgument);
        }
        let managed_by_parent = flags & spawn_flags::CALLER_MANAGES != 0;
        let parent = Self::pid_of(client)?;
        let mut text = alloc::vec![0u8; len as usize];
        ipc::safe_copy_from(client, GrantId(grant), 0, &mut text)?;
        let text = core::str::from_utf8(&text).map_err(|_| Error::InvalidArgument)?;
        let (program, arguments) = match text.split_once(" -- ") {
            Some((program, arguments)) => (program.trim(), Some(arguments)),
            None => (text.trim(), None),
        };
        if arguments.is_some_and(|a| a.len() as u64 > MAX_ARGUMENT_BYTES) {
            return Err(Error::InvalidArgument);
        }
        let (index, module) = Self::find_module(program)?;
        let options = boot_options::parse(&module).map_err(|_| Error::InvalidArgument)?;
        let arguments = match arguments {
            Some(extra) if flags & spawn_flags::APPEND_ARGUMENTS != 0 => {
                alloc::format!("{} {extra}", options.arguments)
            }
            Some(arguments) => String::from(arguments),
            None => String::from(options.arguments),
        };
        if arguments.len() as u64 > MAX_ARGUMENT_BYTES {
            return Err(Error::InvalidArgument);
        }
        let name = String::from(options.name);
        let priority = Priority::new(u64::from(options.priority))?;
        let kernel_calls = options.kernel_calls;
        let memory_limit = options.memory_limit_pages.unwrap_or(0);
        let entry = match self.image(index) {
            Ok(image) => image.elf.entry,
            Err(image::ImageError::Read(error)) => return Err(error),
            Err(reason) => {
                println!("spawn of '{program}' refused: {reason}");
                return Err(Error::InvalidArgument);
            }
        };
        let pid = syscall::pm_create(&name, priority, kernel_calls, memory_limit)?;
        let image = &self.images[&index];
        let main_thread = match image
            .load(Pid(pid as u32))
            .and_then(|()| {
                if managed_by_parent {
                    // Before it runs, so no exception of it is ever PM's to decide.
                    syscall::pm_set_signal_manager(Pid(pid as u32), Pid(parent as u32))?;
                }
                Ok(())
            })
            .and_then(|()| syscall::pm_start(Pid(pid as u32), entry, arguments.as_bytes()))
        {
            Ok(thread) => thread,
            Err(error) => {
                println!("spawn of '{program}' failed while building pid {pid}: {error}");
                // The empty or half-built process goes; its exit is collected like any other.
                let _ = syscall::pm_kill(Pid(pid as u32), 127);
                return Err(error);
            }
        };
        self.processes.insert(
            pid,
            Entry {
                parent,
                exit_status: None,
                name,
                arguments,
                start_ns: vigil_rt::time::now_ns(),
                main_thread,
                managed_by_parent,
                exit_notice_to: if managed_by_parent {
                    client
                } else {
                    Endpoint::NONE
                },
            },
        );
        self.trace_new_child(parent, pid);
        Ok(pid)
    }

    /// The main thread of a live process PM started.
    fn main_thread_of(&self, pid: u64) -> Result<Endpoint, Error> {
        self.processes
            .get(&pid)
            .filter(|entry| entry.exit_status.is_none())
            .map(|entry| entry.main_thread)
            .ok_or(Error::NotFound)
    }

    /// WAIT: a reply now (Some) or once a matching child exits (None).
    fn wait(
        &mut self,
        client: Endpoint,
        child: u64,
        flags: u64,
    ) -> Result<Option<[u64; 6]>, Error> {
        if flags & !wait_flags::NO_HANG != 0 {
            return Err(Error::InvalidArgument);
        }
        let parent = Self::pid_of(client)?;
        let matches = |pid: u64, entry: &Entry| {
            entry.parent == parent && (child == ANY_CHILD || child == pid)
        };
        if !self
            .processes
            .iter()
            .any(|(&pid, entry)| matches(pid, entry))
        {
            return Err(Error::NotFound);
        }
        let exited = self
            .processes
            .iter()
            .find(|(&pid, entry)| matches(pid, entry) && entry.exit_status.is_some())
            .map(|(&pid, entry)| (pid, entry.exit_status.unwrap_or(0)));
        if let Some((pid, status)) = exited {
            self.processes.remove(&pid);
            return Ok(Some([0, pid, status, 0, 0, 0]));
        }
        if flags & wait_flags::NO_HANG != 0 {
            return Ok(Some([0; 6]));
        }
        self.waiters.push(Waiter {
            client,
            parent,
            child,
        });
        Ok(None)
    }

    /// KILL: never PM, VM or the caller itself.
    fn kill(&mut self, client: Endpoint, pid: u64, status: u64) -> Result<(), Error> {
        if pid == self.own_pid || (self.vm_pid != 0 && pid == self.vm_pid) {
            return Err(Error::PermissionDenied);
        }
        if pid == Self::pid_of(client)? {
            return Err(Error::SelfTarget);
        }
        let pid = u32::try_from(pid).map_err(|_| Error::NotFound)?;
        syscall::pm_kill(Pid(pid), status).map(|_| ())
    }

    /// The kernel says processes PM manages have exited: collect every one.
    fn collect_exits(&mut self) {
        loop {
            match syscall::pm_reap() {
                Ok(Some((pid, status))) => self.exited(pid, status),
                Ok(None) => break,
                Err(error) => {
                    println!("collecting exits failed: {error}");
                    break;
                }
            }
        }
    }

    /// Process `pid` exited with `status`: its children become PM's, its parent's wait
    /// (if any) is answered, or the exit is kept for the parent's next wait — and a
    /// managing parent gets the exit notice (a notification from PM) to come and take it.
    fn exited(&mut self, pid: u64, status: u64) {
        self.tracing.exited(pid, status);
        let own_pid = self.own_pid;
        // Reparent: the children of `pid` are PM's now; those that already exited go.
        let mut reparented = 0;
        self.processes.retain(|_, entry| {
            if entry.parent != pid {
                return true;
            }
            let running = entry.exit_status.is_none();
            if running {
                entry.parent = own_pid;
                entry.exit_notice_to = Endpoint::NONE;
                reparented += 1;
            }
            running
        });
        if reparented > 0 {
            println!("pid {pid} exited: its {reparented} running children are pm's now");
        }
        self.waiters.retain(|waiter| waiter.parent != pid);
        self.signals.forget(pid);
        let Some(entry) = self.processes.get_mut(&pid) else {
            return;
        };
        entry.exit_status = Some(status);
        let parent = entry.parent;
        let notice_to = entry.exit_notice_to;
        if parent == own_pid {
            self.processes.remove(&pid);
            return;
        }
        let waiting = self
            .waiters
            .iter()
            .position(|w| w.parent == parent && (w.child == ANY_CHILD || w.child == pid));
        if let Some(index) = waiting {
            let waiter = self.waiters.remove(index);
            self.processes.remove(&pid);
            reply(waiter.client, Ok([0, pid, status, 0, 0, 0]));
            return;
        }
        // A manager hears of the exit at once instead of polling `WAIT`.
        if notice_to.is_thread() {
            if let Err(error) = ipc::notify(notice_to) {
                println!("exit notice for pid {pid} to {notice_to} not sent: {error}");
            }
        }
    }

    fn handle(&mut self, message: &Message) {
        let client = message.source;
        if message.kind == INTROSPECT {
            let answer = self.introspect(message);
            if let Err(error) = ipc::send_nonblocking(client, &answer) {
                println!("INTROSPECT reply to {client} dropped: {error}");
            }
            return;
        }
        let [a, b, ..] = message.payload;
        let answer = match message.kind {
            request::SPAWN => self
                .spawn(client, a, b, message.payload[2])
                .map(|pid| Some([0, pid, 0, 0, 0, 0])),
            request::WAIT => self.wait(client, a, b),
            request::KILL => self.kill(client, a, b).map(|()| Some([0; 6])),
            request::SIGNAL..=request::MANAGE => self.signal_request(client, message),
            vigil_rt::abi::ptrace::request::TRACE => self.trace_request(client, message),
            _ => Err(Error::NoSuchCall),
        };
        match answer {
            Ok(Some(payload)) => reply(client, Ok(payload)),
            Ok(None) => {}
            Err(error) => reply(client, Err(error)),
        }
    }
}

impl Pm {
    /// SIGNAL, SIGACTION, SIGMASK and MANAGE (`signal.rs` decides).
    fn signal_request(
        &mut self,
        client: Endpoint,
        message: &Message,
    ) -> Result<Option<[u64; 6]>, Error> {
        let [a, b, c, ..] = message.payload;
        let caller = Self::pid_of(client)?;
        let previous = match message.kind {
            request::SIGNAL
                if self
                    .processes
                    .get(&a)
                    .is_some_and(|entry| entry.managed_by_parent) =>
            {
                // Its manager (its parent) decides its signals, not PM.
                return Err(Error::PermissionDenied);
            }
            request::SIGNAL => {
                let known = self
                    .processes
                    .get(&a)
                    .is_some_and(|entry| entry.exit_status.is_none())
                    || self.signals.adopted(a);
                self.signals.send(a, b, known).map(|()| 0)
            }
            request::SIGACTION => self.signals.action(caller, a, b, c),
            request::SIGMASK => self.signals.mask(caller, a, b),
            _ => self.signals.manage(a).map(|()| 0),
        }?;
        // SIGACTION's answer names the caller's pid too (its runtime's `SignalRaise`).
        Ok(Some([0, previous, caller, 0, 0, 0]))
    }
}

impl Pm {
    /// The reply to an INTROSPECT `message`: the process tree (`Topic::Processes`) written
    /// into the client's grant; other topics are `NoSuchCall`.
    fn introspect(&self, message: &Message) -> Message {
        let request = match IntrospectRequest::from_message(message) {
            Ok(request) => request,
            Err(error) => return IntrospectReply::refusal(error),
        };
        if request.topic != Topic::Processes {
            return IntrospectReply::message(Err((request.topic, Error::NoSuchCall)));
        }
        let available = self.processes.len() as u64;
        let outcome = request
            .records_to_write(PROCESS_RECORD_BYTES, available)
            .and_then(|count| {
                if count > 0 {
                    let bytes: Vec<u8> = self
                        .processes
                        .iter()
                        .skip(request.first as usize)
                        .take(count as usize)
                        .flat_map(|(&pid, entry)| record(pid, entry).to_bytes())
                        .collect();
                    ipc::safe_copy_to(message.source, GrantId(request.grant), 0, &bytes)?;
                }
                Ok(IntrospectReply {
                    written: count,
                    available,
                    record_bytes: PROCESS_RECORD_BYTES as u64,
                    version: PROCESS_RECORD_VERSION,
                    topic: request.topic,
                })
            });
        IntrospectReply::message(outcome.map_err(|error| (request.topic, error)))
    }
}

/// The INTROSPECT record of process `pid`.
fn record(pid: u64, entry: &Entry) -> ProcessTreeRecord {
    ProcessTreeRecord {
        pid: pid as u32,
        parent: entry.parent as u32,
        state: if entry.exit_status.is_some() {
            process_state::EXITED
        } else {
            process_state::RUNNING
        },
        exit_status: entry.exit_status.unwrap_or(0),
        start_ns: entry.start_ns,
        name: record_text(entry.name.as_bytes()),
        arguments: record_text(entry.arguments.as_bytes()),
        ..ProcessTreeRecord::default()
    }
}

/// Answers `client` without ever blocking (a client that did not wait for it loses it).
fn reply(client: Endpoint, result: Result<[u64; 6], Error>) {
    let payload = match result {
        Ok(payload) => payload,
        Err(error) => [error as u64, 0, 0, 0, 0, 0],
    };
    let message = Message::with_payload(request::REPLY, payload);
    if let Err(error) = ipc::send_nonblocking(client, &message) {
        println!("reply to {client} dropped: {error} (it did not wait for the answer)");
    }
}

fn main(_args: &str) -> i32 {
    let own_pid = Pm::pid_of(ipc::self_endpoint()).unwrap_or(0);
    let vm_pid = vigil_rt::vm::server().and_then(Pm::pid_of).unwrap_or(0);
    println!(
        "managing processes at {} (pid {own_pid})",
        ipc::self_endpoint()
    );
    let mut pm = Pm {
        own_pid,
        vm_pid,
        processes: BTreeMap::new(),
        waiters: Vec::new(),
        images: BTreeMap::new(),
        signals: signal::Signals::new(own_pid, vm_pid),
        tracing: trace::Tracing::new(),
    };
    pm.start_boot_programs();
    loop {
        let message = match ipc::receive(Endpoint::ANY) {
            Ok(message) => message,
            Err(error) => {
                println!("receive failed: {error}");
                continue;
            }
        };
        if message.kind == KIND_CHILD_EXITED && message.source == Endpoint::KERNEL {
            pm.collect_exits();
        } else if message.kind == vigil_rt::abi::host_command::KIND_HOST_COMMAND
            && message.source == Endpoint::KERNEL
        {
            pm.host_command(&message);
        } else if message.kind == KIND_PROCESS_EVENT && message.source == Endpoint::KERNEL {
            let tracing = &mut pm.tracing;
            let processes = &pm.processes;
            pm.signals.exception_events(
                |record| tracing.on_stop(record),
                |pid| {
                    processes
                        .get(&pid)
                        .map_or_else(|| String::from("?"), |entry| entry.name.clone())
                },
            );
        } else if message.source.is_thread() {
            pm.handle(&message);
        }
    }
}
