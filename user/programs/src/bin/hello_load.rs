//! `hello_load`: the small client load of the default `cargo xtask run`. It increments
//! `hello_service` every 100 ms, exactly once (`vigil_rt::exactly_once::Client`: request
//! ids, and a request the dying instance held resent to the endpoint RS keeps), and prints
//! the counter every second with the increments acknowledged, those resent, and how far
//! the counter is from what it acknowledged since its first answer (lost, doubled: 0 and
//! 0 when hello keeps its state in DS; without DS a restart starts the counter at 0).
//!
//! With the argument `demo` (`cargo xtask run --demo`) it also crashes hello every 5 s,
//! a different way each time (a null dereference, a panic, an exit, a hang RS's
//! heartbeats catch), so someone watching `vigil top` sees a crash, RS's restart and the
//! client carrying on. `demo=MS` sets the period.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use core::time::Duration;

use vigil_rt::abi::rs::hello;
use vigil_rt::exactly_once::Client;
use vigil_rt::{ipc, println, thread, time, Endpoint, Error, Message};

vigil_rt::entry!(main);

/// Between increments.
const PERIOD: Duration = Duration::from_millis(100);
/// Increments between two counter lines (one a second).
const REPORT_EVERY: u64 = 10;
/// Default time between two demo crashes.
const DEMO_PERIOD_MS: u64 = 5000;

/// The ways the demo ends hello, in turn.
const CRASHES: [(&str, u32, u64); 4] = [
    ("a null dereference", hello::request::CRASH, 0),
    ("a panic", hello::request::PANIC, 0),
    ("exit status 3", hello::request::EXIT, 3),
    ("a hang (RS's heartbeats catch it)", hello::request::HANG, 0),
];

fn main(args: &str) -> i32 {
    let demo_ms = match args.trim() {
        "" => None,
        "demo" => Some(DEMO_PERIOD_MS),
        other => match other
            .strip_prefix("demo=")
            .and_then(|ms| ms.parse::<u64>().ok())
        {
            Some(ms) if ms >= 100 => Some(ms),
            _ => {
                println!("usage: hello_load [demo | demo=MS (at least 100)]; got '{other}'");
                return 1;
            }
        },
    };
    if let Some(ms) = demo_ms {
        println!("demo: crashing {} every {ms} ms", hello::SERVICE_NAME);
    }
    let mut load = Load {
        server: None,
        client: Client::new(hello::SERVICE_NAME),
        acknowledged: 0,
        failed: 0,
        counter: 0,
        base: None,
    };
    let mut next_crash_ns = demo_ms.map(|ms| time::now_ns() + ms * 1_000_000);
    let mut crashes = 0usize;
    loop {
        load.increment();
        if let (Some(at), Some(ms)) = (next_crash_ns, demo_ms) {
            if time::now_ns() >= at {
                load.crash(CRASHES[crashes % CRASHES.len()]);
                crashes += 1;
                next_crash_ns = Some(time::now_ns() + ms * 1_000_000);
            }
        }
        thread::sleep(PERIOD);
    }
}

struct Load {
    /// Where the demo's crash requests go.
    server: Option<Endpoint>,
    client: Client,
    acknowledged: u64,
    failed: u64,
    counter: u64,
    /// The counter before this load's first acknowledged increment.
    base: Option<u64>,
}

impl Load {
    /// The service's endpoint for a crash request, looked up again after a failure.
    fn server(&mut self) -> Option<Endpoint> {
        if self.server.is_none() {
            self.server = ipc::lookup(hello::SERVICE_NAME).ok();
        }
        self.server
    }

    fn increment(&mut self) {
        let answer = self
            .client
            .call(hello::request::INCREMENT, [0; 6])
            .and_then(|reply| match reply.payload[0] {
                0 if reply.kind == hello::request::REPLY => Ok(reply.payload[1]),
                0 => Err(Error::InvalidArgument),
                code => Err(Error::from_code(code).unwrap_or(Error::InvalidArgument)),
            });
        match answer {
            Ok(counter) => {
                self.acknowledged += 1;
                self.counter = counter;
                let base = *self.base.get_or_insert(counter.saturating_sub(1));
                if self.acknowledged.is_multiple_of(REPORT_EVERY) {
                    let moved = counter.saturating_sub(base);
                    println!(
                        "counter {counter} ({} increments acknowledged, {} resent, {} failed; lost {}, doubled {})",
                        self.acknowledged,
                        self.client.retries,
                        self.failed,
                        self.acknowledged.saturating_sub(moved),
                        moved.saturating_sub(self.acknowledged)
                    );
                }
            }
            Err(error) => {
                self.failed += 1;
                println!("increment failed: {error}");
            }
        }
    }

    /// Ends hello by `how`: the call does not come back until the instance is gone.
    fn crash(&mut self, (how, kind, argument): (&str, u32, u64)) {
        let Some(server) = self.server() else {
            return;
        };
        println!(
            "demo: crashing {} by {how} (counter {})",
            hello::SERVICE_NAME,
            self.counter
        );
        let _ = call(server, kind, argument);
        self.server = None;
    }
}

/// One request to hello: the counter it answers, or the error.
fn call(server: Endpoint, kind: u32, argument: u64) -> Result<u64, Error> {
    let mut message = Message::with_payload(kind, [argument, 0, 0, 0, 0, 0]);
    ipc::send_receive(server, &mut message)?;
    if message.kind != hello::request::REPLY {
        return Err(Error::InvalidArgument);
    }
    match message.payload[0] {
        0 => Ok(message.payload[1]),
        code => Err(Error::from_code(code).unwrap_or(Error::InvalidArgument)),
    }
}
