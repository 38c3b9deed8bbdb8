//! `hello_load`: the small client load of the default `cargo xtask run`. It increments
//! `hello_service` every 100 ms and prints the counter every second, with the increments
//! it saw acknowledged and those that failed; when a call fails (the instance died) it
//! looks the service up again, as every client of a restarted service does.
//!
//! With the argument `demo` (`cargo xtask run --demo`) it also crashes hello every 5 s,
//! a different way each time (a null dereference, a panic, an exit, a hang RS's
//! heartbeats catch), so someone watching `vigil top` sees a crash, RS's restart and the
//! client carrying on. `demo=MS` sets the period.
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

use core::time::Duration;

use vigil_rt::abi::rs::hello;
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
        acknowledged: 0,
        failed: 0,
        counter: 0,
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
    server: Option<Endpoint>,
    acknowledged: u64,
    failed: u64,
    counter: u64,
}

impl Load {
    /// The service's endpoint, looked up again after a failure.
    fn server(&mut self) -> Option<Endpoint> {
        if self.server.is_none() {
            if let Ok(server) = ipc::lookup(hello::SERVICE_NAME) {
                if self.acknowledged > 0 || self.failed > 0 {
                    println!("{} found again at {server}", hello::SERVICE_NAME);
                }
                self.server = Some(server);
            }
        }
        self.server
    }

    fn increment(&mut self) {
        let Some(server) = self.server() else {
            return;
        };
        match call(server, hello::request::INCREMENT, 0) {
            Ok(counter) => {
                self.acknowledged += 1;
                self.counter = counter;
                if self.acknowledged.is_multiple_of(REPORT_EVERY) {
                    println!(
                        "counter {counter} ({} increments acknowledged, {} failed)",
                        self.acknowledged, self.failed
                    );
                }
            }
            Err(error) => {
                self.failed += 1;
                println!(
                    "increment failed: {error} (the instance is gone); looking {} up again",
                    hello::SERVICE_NAME
                );
                self.server = None;
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
