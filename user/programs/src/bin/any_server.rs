//! `any_server`: receives from ANY, answers each request, and counts requests per client;
//! after 3 clients × 50 requests (each client's in sequence) prints the per-client counts
//! and shuts down (boot with `kcalls=shutdown`).
#![cfg_attr(target_os = "none", no_std)]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use vigil_programs::{context, finish, kinds};
use vigil_rt::{ipc, Endpoint, Message};

vigil_rt::entry!(main);

const CLIENTS: usize = 3;
const REQUESTS_PER_CLIENT: u64 = 50;

/// What the server saw from one client.
struct ClientRecord {
    endpoint: Endpoint,
    number: u64,
    requests: u64,
}

fn main(_args: &str) -> i32 {
    finish("any", run())
}

fn run() -> Result<String, String> {
    let mut clients: Vec<ClientRecord> = Vec::new();
    let total = CLIENTS as u64 * REQUESTS_PER_CLIENT;
    for received in 0..total {
        let request = context(ipc::receive(Endpoint::ANY), "receive(ANY)")?;
        if request.kind != kinds::ANY_REQUEST {
            return Err(format!(
                "request {received}: unexpected kind {:#x} from {}",
                request.kind, request.source
            ));
        }
        let (client_number, sequence) = (request.payload[0], request.payload[1]);
        let record = match clients
            .iter_mut()
            .position(|c| c.endpoint == request.source)
        {
            Some(index) => &mut clients[index],
            None => {
                if clients.len() == CLIENTS {
                    return Err(format!("a fourth client {} appeared", request.source));
                }
                clients.push(ClientRecord {
                    endpoint: request.source,
                    number: client_number,
                    requests: 0,
                });
                clients.last_mut().expect("just pushed")
            }
        };
        if record.number != client_number || sequence != record.requests {
            return Err(format!(
                "client {} (number {}) sent number {client_number} sequence {sequence}, \
                 expected sequence {}",
                record.endpoint, record.number, record.requests
            ));
        }
        record.requests += 1;
        let mut reply = Message::new(kinds::ANY_REPLY);
        reply.payload[0] = sequence;
        context(
            ipc::send(request.source, &reply),
            &format!("reply to {}", request.source),
        )?;
    }
    clients.sort_by_key(|client| client.number);
    let counts: Vec<String> = clients
        .iter()
        .map(|c| format!("client{}={}", c.number, c.requests))
        .collect();
    if clients.len() != CLIENTS || clients.iter().any(|c| c.requests != REQUESTS_PER_CLIENT) {
        return Err(format!("uneven counts: {}", counts.join(" ")));
    }
    Ok(format!("counts {}", counts.join(" ")))
}
