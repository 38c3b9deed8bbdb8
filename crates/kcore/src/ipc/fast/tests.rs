//! Tests of the IPC fast path: each fast call against its slow twin, each precondition's
//! fallback, and the differential property test (random operation sequences through a
//! slow-only table and a fast-first table, every state compared after every step).
//!
//! Register-message calls (`SendReceiveRegisters`, `ReplyReceiveRegisters`) are modelled as
//! the kernel runs them: the slow world runs `send_receive` / `reply_receive` with buffer 0
//! (the kernel's environment copies the thread's registers there; here address 0 is the
//! thread's "registers"), the fast world the register fast path — `register_call_partner` /
//! `register_reply_partner`, the kernel's own checks (the partner's call is a register call,
//! the kind is one users may send), the copy, `commit_register_call`.

use super::super::tests::{buf, ps, table, table_of, ts, TestEnv, BAD, RO};
use super::{FastPathOption, Handoff};
use crate::ipc::{IpcEnvironment, KernelSource, Outcome, ThreadTable};
use crate::slot::ThreadSlot;
use proptest::prelude::*;
use std::boxed::Box;
use std::vec::Vec;
use vigil_abi::async_message::async_flags::{NO_REPLY, VALID};
use vigil_abi::async_message::AsyncMessage;
use vigil_abi::message::KIND_NOTIFY;
use vigil_abi::user_memory::UserPtr;
use vigil_abi::wait::ThreadState;
use vigil_abi::{Endpoint, Error, Message};

/// Threads every sequence starts with, in processes 1, 1, 2, 2, 3.
const THREADS: usize = 5;

/// One table and its environment, run either slow-only or fast-first.
struct World {
    t: Box<ThreadTable>,
    env: TestEnv,
    fast: bool,
    /// Calls the fast path finished (for the tests that the fast path is really taken).
    fast_taken: usize,
    /// Threads whose last call is a register-message call (the kernel tells them by the
    /// call number in their saved RAX).
    in_register_call: std::collections::HashSet<ThreadSlot>,
}

impl World {
    fn new(fast: bool) -> World {
        let mut world = World {
            t: Box::new(ThreadTable::new()),
            env: TestEnv {
                now: 1_000,
                ..TestEnv::default()
            },
            fast,
            fast_taken: 0,
            in_register_call: Default::default(),
        };
        for process in [1, 1, 2, 2, 3] {
            world.t.create(ps(process)).unwrap();
        }
        for index in 0..THREADS {
            let slot = ts(index as u16);
            let message = Message::with_payload(0x10 + index as u32, [index as u64; 6]);
            world.env.put(slot, buf(slot), message);
            let in_registers = Message::with_payload(0x20 + index as u32, [index as u64 + 9; 6]);
            world.env.put(slot, UserPtr::NULL, in_registers);
        }
        world
    }

    /// A register-message call by `caller` to `to`: `SendReceiveRegisters` (`from` None)
    /// or `ReplyReceiveRegisters` receiving from `from`.
    fn register_call(
        &mut self,
        caller: ThreadSlot,
        to: Endpoint,
        from: Option<Endpoint>,
    ) -> Outcome {
        self.in_register_call.insert(caller);
        if self.fast {
            let me = self.t.endpoint(caller);
            let partner = match from {
                None => self.t.register_call_partner(&self.env, caller, me, to),
                Some(from) => self
                    .t
                    .register_reply_partner(&self.env, caller, me, to, from),
            };
            if let Some(found) = partner {
                assert_eq!(found.caller, self.t.endpoint(caller));
            }
            let partner = partner.map(|found| found.partner);
            let mut message = self.env.message(caller, UserPtr::NULL);
            let partner = partner.filter(|partner| {
                self.in_register_call.contains(partner)
                    && vigil_abi::message::user_may_send(message.kind)
            });
            if let Some(partner) = partner {
                // The kernel's copy between registers, then the commit.
                message.source = self.t.endpoint(caller);
                self.env
                    .write_message(partner, UserPtr::NULL, &message)
                    .expect("registers never fault");
                self.t.commit_register_call(caller, partner, to, from);
                // The kernel switches to the partner at once (Running); the slow world
                // leaves it Ready for the scheduler (`Op::Schedule`): compare as Ready.
                self.t.mark_ready(partner);
                self.env.unblock(partner, Ok(0));
                self.fast_taken += 1;
                return Outcome::Blocked;
            }
        }
        match from {
            None => self
                .t
                .send_receive(&mut self.env, caller, to, UserPtr::NULL),
            Some(from) => self
                .t
                .reply_receive(&mut self.env, caller, to, from, UserPtr::NULL),
        }
    }

    fn endpoint(&self, index: usize) -> Endpoint {
        self.t.endpoint(ts(index as u16))
    }

    fn finish(&mut self, handoff: Handoff) -> Outcome {
        self.fast_taken += 1;
        handoff.unblock(&mut self.env);
        Outcome::Blocked
    }

    fn send_receive(&mut self, caller: ThreadSlot, to: Endpoint, at: UserPtr<Message>) -> Outcome {
        if self.fast {
            if let Some(handoff) = self.t.fast_send_receive(&mut self.env, caller, to, at) {
                return self.finish(handoff);
            }
        }
        self.t.send_receive(&mut self.env, caller, to, at)
    }

    fn receive(&mut self, caller: ThreadSlot, from: Endpoint, at: UserPtr<Message>) -> Outcome {
        if self.fast
            && self
                .t
                .fast_receive(&mut self.env, caller, from, at)
                .is_some()
        {
            self.fast_taken += 1;
            return Outcome::Blocked;
        }
        self.t.receive(&mut self.env, caller, from, at)
    }

    fn reply_receive(
        &mut self,
        caller: ThreadSlot,
        to: Endpoint,
        from: Endpoint,
        at: UserPtr<Message>,
    ) -> Outcome {
        if self.fast {
            if let Some(handoff) = self
                .t
                .fast_reply_receive(&mut self.env, caller, to, from, at)
            {
                return self.finish(handoff);
            }
        }
        self.t.reply_receive(&mut self.env, caller, to, from, at)
    }

    /// Runs `op`; returns the caller's outcome (None: the op has no caller, or its caller
    /// cannot make a system call now).
    fn apply(&mut self, op: &Op) -> Option<Outcome> {
        let runnable = |t: &ThreadTable, index: usize| {
            matches!(
                t.state(ts(index as u16)),
                ThreadState::Ready | ThreadState::Running
            )
        };
        match *op {
            Op::Call(call) => {
                if !runnable(&self.t, call.caller) {
                    return None;
                }
                let caller = ts(call.caller as u16);
                let to = self.pick(call.to);
                let from = self.pick(call.from);
                let at = match call.buffer {
                    BufferChoice::Own => buf(caller),
                    BufferChoice::Bad => BAD,
                    BufferChoice::ReadOnly => RO,
                };
                let register_call = matches!(
                    call.kind,
                    CallKind::SendReceiveRegisters | CallKind::ReplyReceiveRegisters
                );
                if !register_call {
                    self.in_register_call.remove(&caller);
                }
                Some(match call.kind {
                    CallKind::SendReceiveRegisters => self.register_call(caller, to, None),
                    CallKind::ReplyReceiveRegisters => self.register_call(caller, to, Some(from)),
                    CallKind::SendReceive => self.send_receive(caller, to, at),
                    CallKind::Receive => self.receive(caller, from, at),
                    CallKind::ReplyReceive => self.reply_receive(caller, to, from, at),
                    CallKind::Send => self.t.send(&mut self.env, caller, to, at),
                    CallKind::SendNonBlocking => {
                        Outcome::Complete(self.t.send_nonblocking(&mut self.env, caller, to, at))
                    }
                    CallKind::Notify => Outcome::Complete(self.t.notify(&mut self.env, caller, to)),
                    CallKind::SendAsync { no_reply } => {
                        let flags = VALID | if no_reply { NO_REPLY } else { 0 };
                        let entry = AsyncMessage {
                            flags,
                            result: 0,
                            destination: to,
                            message: Message::with_payload(0x99, [7; 6]),
                        };
                        self.env
                            .tables
                            .insert((caller, table_of(caller)), std::vec![entry]);
                        Outcome::Complete(self.t.send_async(
                            &mut self.env,
                            caller,
                            table(caller, 1),
                        ))
                    }
                })
            }
            Op::Clock(target) => {
                let target = ts(target as u16);
                self.t
                    .notify_from_kernel(&mut self.env, KernelSource::Clock, target);
                None
            }
            Op::KernelMessage(target) => {
                let message = Message::with_payload(0xffff_0001, [3; 6]);
                self.env
                    .kernel_messages
                    .entry(ts(target as u16))
                    .or_default()
                    .push_back(message);
                None
            }
            Op::ToggleBadBuffer(index) => {
                let slot = ts(index as u16);
                let key = (slot, buf(slot).address());
                if !self.env.bad.remove(&key) {
                    self.env.bad.insert(key);
                }
                None
            }
            Op::ToggleDenied(from, to) => {
                let key = (ts(from as u16), ts(to as u16));
                if !self.env.denied.remove(&key) {
                    self.env.denied.insert(key);
                }
                None
            }
            Op::Exit(index) => {
                let slot = ts(index as u16);
                if runnable(&self.t, index) {
                    self.t.exit(&mut self.env, slot, 5);
                    self.in_register_call.remove(&slot);
                }
                None
            }
            Op::Schedule(index) => {
                // The kernel's scheduler: a Ready thread goes on the CPU and back.
                let slot = ts(index as u16);
                if self.t.state(slot) == ThreadState::Ready {
                    self.t.mark_running(slot);
                }
                None
            }
        }
    }

    fn pick(&self, choice: EndpointChoice) -> Endpoint {
        match choice {
            EndpointChoice::Thread(index) => self.endpoint(index),
            EndpointChoice::Stale(index) => {
                let e = self.endpoint(index);
                Endpoint::new(e.slot(), e.generation().wrapping_add(1))
            }
            EndpointChoice::Any => Endpoint::ANY,
            EndpointChoice::Clock => Endpoint::CLOCK,
            EndpointChoice::Kernel => Endpoint::KERNEL,
            EndpointChoice::None => Endpoint::NONE,
        }
    }
}

/// Asserts that the two worlds are in the same state (and each one's pending summaries
/// exact): the thread table byte for byte
/// (states, buffers, queues, pending sets, generations), every message buffer, async
/// table, kernel message and every result handed to `unblock`, in order.
fn assert_same(slow: &World, fast: &World, step: usize, op: &Op) {
    // "Nothing pending" is one test of the summary words: they match the bits in both.
    for world in [slow, fast] {
        assert_eq!(
            world.t.inexact_pending_summary(),
            None,
            "pending summary after step {step} ({op:?})"
        );
    }
    assert!(
        *slow.t == *fast.t,
        "thread tables differ after step {step} ({op:?})"
    );
    assert_eq!(
        slow.env.memory, fast.env.memory,
        "buffers, step {step} ({op:?})"
    );
    assert_eq!(
        slow.env.tables, fast.env.tables,
        "async tables, step {step} ({op:?})"
    );
    assert_eq!(
        slow.env.kernel_messages, fast.env.kernel_messages,
        "kernel messages, step {step} ({op:?})"
    );
    assert_eq!(
        slow.env.unblocks, fast.env.unblocks,
        "unblocks, step {step} ({op:?})"
    );
}

#[derive(Clone, Copy, Debug)]
enum EndpointChoice {
    Thread(usize),
    Stale(usize),
    Any,
    Clock,
    Kernel,
    None,
}

#[derive(Clone, Copy, Debug)]
enum BufferChoice {
    Own,
    Bad,
    ReadOnly,
}

#[derive(Clone, Copy, Debug)]
enum CallKind {
    SendReceiveRegisters,
    ReplyReceiveRegisters,
    SendReceive,
    Receive,
    ReplyReceive,
    Send,
    SendNonBlocking,
    Notify,
    SendAsync { no_reply: bool },
}

#[derive(Clone, Copy, Debug)]
struct Call {
    kind: CallKind,
    caller: usize,
    to: EndpointChoice,
    from: EndpointChoice,
    buffer: BufferChoice,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Call(Call),
    Clock(usize),
    KernelMessage(usize),
    ToggleBadBuffer(usize),
    ToggleDenied(usize, usize),
    Exit(usize),
    Schedule(usize),
}

fn endpoint_choice() -> impl Strategy<Value = EndpointChoice> {
    prop_oneof![
        8 => (0..THREADS).prop_map(EndpointChoice::Thread),
        1 => (0..THREADS).prop_map(EndpointChoice::Stale),
        4 => Just(EndpointChoice::Any),
        1 => Just(EndpointChoice::Clock),
        1 => Just(EndpointChoice::Kernel),
        1 => Just(EndpointChoice::None),
    ]
}

fn call_kind() -> impl Strategy<Value = CallKind> {
    prop_oneof![
        3 => Just(CallKind::SendReceiveRegisters),
        3 => Just(CallKind::ReplyReceiveRegisters),
        4 => Just(CallKind::SendReceive),
        4 => Just(CallKind::Receive),
        4 => Just(CallKind::ReplyReceive),
        1 => Just(CallKind::Send),
        1 => Just(CallKind::SendNonBlocking),
        1 => Just(CallKind::Notify),
        1 => any::<bool>().prop_map(|no_reply| CallKind::SendAsync { no_reply }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let buffer = prop_oneof![
        12 => Just(BufferChoice::Own),
        1 => Just(BufferChoice::Bad),
        1 => Just(BufferChoice::ReadOnly),
    ];
    let call = (
        call_kind(),
        0..THREADS,
        endpoint_choice(),
        endpoint_choice(),
        buffer,
    )
        .prop_map(|(kind, caller, to, from, buffer)| {
            Op::Call(Call {
                kind,
                caller,
                to,
                from,
                buffer,
            })
        });
    prop_oneof![
        30 => call,
        1 => (0..THREADS).prop_map(Op::Clock),
        1 => (0..THREADS).prop_map(Op::KernelMessage),
        1 => (0..THREADS).prop_map(Op::ToggleBadBuffer),
        1 => (0..THREADS, 0..THREADS).prop_map(|(a, b)| Op::ToggleDenied(a, b)),
        1 => (0..THREADS).prop_map(Op::Exit),
        2 => (0..THREADS).prop_map(Op::Schedule),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The fast-first table ends every step in exactly the slow-only table's state, and
    /// every call returns the same outcome.
    #[test]
    fn fast_path_is_indistinguishable_from_the_slow_path(
        ops in proptest::collection::vec(op(), 1..120)
    ) {
        let mut slow = World::new(false);
        let mut fast = World::new(true);
        for (step, op) in ops.iter().enumerate() {
            let slow_outcome = slow.apply(op);
            let fast_outcome = fast.apply(op);
            prop_assert_eq!(slow_outcome, fast_outcome, "outcome of step {} ({:?})", step, op);
            assert_same(&slow, &fast, step, op);
        }
    }
}

/// A fixed client/server exchange: the fast path is taken for every call of the round
/// trip, and the sequences above can therefore exercise it.
#[test]
fn a_round_trip_takes_the_fast_path_at_every_step() {
    let mut slow = World::new(false);
    let mut fast = World::new(true);
    let server = ts(2);
    let client = ts(0);
    let server_endpoint = slow.endpoint(2);
    let client_endpoint = slow.endpoint(0);
    for world in [&mut slow, &mut fast] {
        assert_eq!(
            world.receive(server, Endpoint::ANY, buf(server)),
            Outcome::Blocked
        );
        assert_eq!(
            world.send_receive(client, server_endpoint, buf(client)),
            Outcome::Blocked
        );
        assert_eq!(world.env.take_unblocks(), std::vec![(server, Ok(0))]);
        assert_eq!(
            world.env.message(server, buf(server)).source,
            client_endpoint
        );
        assert_eq!(world.env.message(server, buf(server)).kind, 0x10);
        assert_eq!(
            world.t.state(client),
            ThreadState::AwaitingReply {
                from: server_endpoint
            }
        );
        assert_eq!(
            world.reply_receive(server, client_endpoint, Endpoint::ANY, buf(server)),
            Outcome::Blocked
        );
        assert_eq!(world.env.take_unblocks(), std::vec![(client, Ok(0))]);
        assert_eq!(
            world.env.message(client, buf(client)).source,
            server_endpoint
        );
        assert_eq!(world.t.state(client), ThreadState::Ready);
        assert_eq!(
            world.t.state(server),
            ThreadState::Receiving {
                from: Endpoint::ANY
            }
        );
    }
    assert!(*slow.t == *fast.t);
    assert_eq!(slow.fast_taken, 0);
    assert_eq!(fast.fast_taken, 3);
}

/// Each precondition that fails sends the call to the slow path with nothing changed.
/// A register round trip (the server first in a register call, as `bench_regs` after its
/// first `ReplyReceiveRegisters`): the register fast path takes both calls; a partner in a
/// memory call or a kernel kind sends the call the general way, with the same result.
#[test]
fn a_register_round_trip_takes_the_register_fast_path() {
    let mut slow = World::new(false);
    let mut fast = World::new(true);
    let server = ts(2);
    let client = ts(0);
    let server_endpoint = slow.endpoint(2);
    let client_endpoint = slow.endpoint(0);
    for world in [&mut slow, &mut fast] {
        // The server's register receive: nobody waits for its reply, so it blocks (the
        // general way: a reply to a thread not awaiting it is NotReady).
        world.in_register_call.insert(server);
        assert_eq!(
            world
                .t
                .receive(&mut world.env, server, Endpoint::ANY, UserPtr::NULL),
            Outcome::Blocked
        );
        assert_eq!(
            world.register_call(client, server_endpoint, None),
            Outcome::Blocked
        );
        assert_eq!(world.env.take_unblocks(), std::vec![(server, Ok(0))]);
        let request = world.env.message(server, UserPtr::NULL);
        assert_eq!((request.source, request.kind), (client_endpoint, 0x20));
        assert_eq!(
            world.register_call(server, client_endpoint, Some(Endpoint::ANY)),
            Outcome::Blocked
        );
        assert_eq!(world.env.take_unblocks(), std::vec![(client, Ok(0))]);
        let reply = world.env.message(client, UserPtr::NULL);
        assert_eq!((reply.source, reply.kind), (server_endpoint, 0x20));
        assert_eq!(world.t.state(client), ThreadState::Ready);
        assert_eq!(
            world.t.state(server),
            ThreadState::Receiving {
                from: Endpoint::ANY
            }
        );
    }
    assert!(*slow.t == *fast.t);
    assert_eq!(slow.env.memory, fast.env.memory);
    assert_eq!((slow.fast_taken, fast.fast_taken), (0, 2));

    // A kernel kind: refused the same way on both (the general way's InvalidArgument).
    for world in [&mut slow, &mut fast] {
        world.t.mark_running(client);
        let forged = Message::new(KIND_NOTIFY);
        world.env.put(client, UserPtr::NULL, forged);
        assert_eq!(
            world.register_call(client, server_endpoint, None),
            Outcome::Complete(Err(Error::InvalidArgument))
        );
    }
    assert!(*slow.t == *fast.t);
    assert_eq!(
        fast.fast_taken, 2,
        "a kernel kind never takes the register fast path"
    );
}

#[test]
fn every_failed_precondition_changes_nothing() {
    fn untouched(world: &mut World, call: impl FnOnce(&mut World) -> bool) {
        let before = world.t.clone();
        let memory = world.env.memory.clone();
        assert!(!call(world), "the fast path was taken");
        assert!(*world.t == *before, "the table changed");
        assert_eq!(world.env.memory, memory, "memory changed");
        assert!(world.env.unblocks.is_empty());
    }
    let (client, server, other) = (ts(0), ts(2), ts(4));
    let mut w = World::new(true);
    let server_endpoint = w.endpoint(2);
    let client_endpoint = w.endpoint(0);
    let fast_call = |w: &mut World, to: Endpoint, at: UserPtr<Message>| {
        w.t.fast_send_receive(&mut w.env, client, to, at).is_some()
    };
    // The server is not receiving yet.
    untouched(&mut w, |w| fast_call(w, server_endpoint, buf(client)));
    assert_eq!(
        w.receive(server, other_endpoint(&w, 4), buf(server)),
        Outcome::Blocked
    );
    // Receiving from someone else.
    untouched(&mut w, |w| fast_call(w, server_endpoint, buf(client)));
    let mut w = World::new(true);
    assert_eq!(
        w.receive(server, Endpoint::ANY, buf(server)),
        Outcome::Blocked
    );
    // Bad, read-only and forged-kind buffers; a stale endpoint; self; a denied send.
    untouched(&mut w, |w| fast_call(w, server_endpoint, BAD));
    untouched(&mut w, |w| fast_call(w, server_endpoint, RO));
    w.env.put(
        client,
        buf(client),
        Message::with_payload(KIND_NOTIFY, [0; 6]),
    );
    untouched(&mut w, |w| fast_call(w, server_endpoint, buf(client)));
    w.env
        .put(client, buf(client), Message::with_payload(1, [0; 6]));
    let stale = Endpoint::new(server_endpoint.slot(), server_endpoint.generation() + 1);
    untouched(&mut w, |w| fast_call(w, stale, buf(client)));
    untouched(&mut w, |w| fast_call(w, client_endpoint, buf(client)));
    w.env.denied.insert((client, server));
    untouched(&mut w, |w| fast_call(w, server_endpoint, buf(client)));
    w.env.denied.clear();
    // The receiver's buffer faults: the slow path must wake it with the fault.
    w.env.bad.insert((server, buf(server).address()));
    untouched(&mut w, |w| fast_call(w, server_endpoint, buf(client)));
    w.env.bad.clear();
    // An async reply from the server is pending for the client: the slow path delivers the
    // request, then takes that reply at once.
    let mut w = World::new(true);
    let entry = AsyncMessage {
        flags: VALID,
        result: 0,
        destination: client_endpoint,
        message: Message::with_payload(0x42, [0; 6]),
    };
    w.env
        .tables
        .insert((server, table_of(server)), std::vec![entry]);
    assert_eq!(w.t.send_async(&mut w.env, server, table(server, 1)), Ok(0));
    assert_eq!(
        w.receive(server, Endpoint::ANY, buf(server)),
        Outcome::Blocked
    );
    untouched(&mut w, |w| fast_call(w, server_endpoint, buf(client)));
    assert_eq!(
        w.send_receive(client, server_endpoint, buf(client)),
        Outcome::Complete(Ok(0))
    );
    assert_eq!(w.env.message(client, buf(client)).kind, 0x42);

    // Receive: a pending notification, clock, kernel message or queued sender.
    let mut w = World::new(true);
    assert_eq!(w.t.notify(&mut w.env, client, server_endpoint), Ok(0));
    untouched(&mut w, |w| {
        w.t.fast_receive(&mut w.env, server, Endpoint::ANY, buf(server))
            .is_some()
    });
    let mut w = World::new(true);
    w.t.notify_from_kernel(&mut w.env, KernelSource::Clock, server);
    untouched(&mut w, |w| {
        w.t.fast_receive(&mut w.env, server, Endpoint::ANY, buf(server))
            .is_some()
    });
    let mut w = World::new(true);
    w.env
        .kernel_messages
        .entry(server)
        .or_default()
        .push_back(Message::with_payload(0xffff_0001, [0; 6]));
    untouched(&mut w, |w| {
        w.t.fast_receive(&mut w.env, server, Endpoint::ANY, buf(server))
            .is_some()
    });
    let mut w = World::new(true);
    assert_eq!(
        w.t.send(&mut w.env, client, server_endpoint, buf(client)),
        Outcome::Blocked
    );
    untouched(&mut w, |w| {
        w.t.fast_receive(&mut w.env, server, Endpoint::ANY, buf(server))
            .is_some()
    });
    untouched(&mut w, |w| {
        w.t.fast_receive(&mut w.env, server, Endpoint::CLOCK, buf(server))
            .is_some()
    });
    untouched(&mut w, |w| {
        w.t.fast_receive(&mut w.env, other, Endpoint::ANY, RO)
            .is_some()
    });

    // ReplyReceive: the destination is not awaiting the caller's reply.
    let mut w = World::new(true);
    untouched(&mut w, |w| {
        w.t.fast_reply_receive(
            &mut w.env,
            server,
            client_endpoint,
            Endpoint::ANY,
            buf(server),
        )
        .is_some()
    });
    assert_eq!(
        w.reply_receive(server, client_endpoint, Endpoint::ANY, buf(server)),
        Outcome::Complete(Err(Error::NotReady))
    );
}

fn other_endpoint(world: &World, index: usize) -> Endpoint {
    world.endpoint(index)
}

#[test]
fn the_boot_option_takes_on_or_off() {
    assert_eq!(FastPathOption::parse(None), Ok(FastPathOption::On));
    assert_eq!(FastPathOption::parse(Some("on")), Ok(FastPathOption::On));
    assert_eq!(FastPathOption::parse(Some("off")), Ok(FastPathOption::Off));
    assert!(FastPathOption::parse(Some("yes")).is_err());
    assert!(FastPathOption::parse(Some("")).is_err());
}

#[test]
fn reply_receive_reports_every_error_and_changes_nothing() {
    let mut w = World::new(false);
    let (client, server) = (ts(0), ts(2));
    let server_endpoint = w.endpoint(2);
    let client_endpoint = w.endpoint(0);
    let before = w.t.clone();
    let errors: Vec<(Endpoint, Endpoint, UserPtr<Message>, Error)> = std::vec![
        (
            client_endpoint,
            Endpoint::NONE,
            buf(server),
            Error::BadEndpoint
        ),
        (
            client_endpoint,
            server_endpoint,
            buf(server),
            Error::SelfTarget
        ),
        (
            Endpoint::NONE,
            Endpoint::ANY,
            buf(server),
            Error::BadEndpoint
        ),
        (
            server_endpoint,
            Endpoint::ANY,
            buf(server),
            Error::SelfTarget
        ),
        (client_endpoint, Endpoint::ANY, BAD, Error::Fault),
        (client_endpoint, Endpoint::ANY, RO, Error::Fault),
        (client_endpoint, Endpoint::ANY, buf(server), Error::NotReady),
    ];
    for (to, from, at, error) in errors {
        assert_eq!(
            w.t.reply_receive(&mut w.env, server, to, from, at),
            Outcome::Complete(Err(error)),
            "reply to {to} receiving from {from}"
        );
        assert!(*w.t == *before);
    }
    // A reply to a client awaiting it, then a message already queued: received at once.
    assert_eq!(
        w.receive(server, Endpoint::ANY, buf(server)),
        Outcome::Blocked
    );
    assert_eq!(
        w.send_receive(client, server_endpoint, buf(client)),
        Outcome::Blocked
    );
    assert_eq!(
        w.t.send(&mut w.env, ts(4), server_endpoint, buf(ts(4))),
        Outcome::Blocked
    );
    w.env.take_unblocks();
    assert_eq!(
        w.reply_receive(server, client_endpoint, Endpoint::ANY, buf(server)),
        Outcome::Complete(Ok(0))
    );
    assert_eq!(
        w.env.take_unblocks(),
        std::vec![(client, Ok(0)), (ts(4), Ok(0))]
    );
    assert_eq!(w.env.message(server, buf(server)).kind, 0x14);
}
