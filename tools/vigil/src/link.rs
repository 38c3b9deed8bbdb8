//! The link: turns source messages into kernel frames and keeps the channel's health figures.
//!
//! Health covers connection state, frames/s and bytes/s, decoder errors (checksum, malformed,
//! oversized, discarded bytes — summed over every connection) and the time of the last frame.
//! Kernel-side loss (the DropReport counters, event sequence gaps) is tracked by the model.

use vigil_wire::{DecodeError, DecoderStats, KernelFrame, KernelFrameDecoder};

use crate::source::SourceMsg;

/// Connection state as last reported by the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Not connected yet (no attempt finished).
    Starting,
    /// Cannot connect; retrying. Holds the last error.
    Waiting(String),
    Connected,
    /// The connection closed; the source is reconnecting. Holds the reason.
    Disconnected(String),
    /// A replay reached its end.
    Ended,
}

/// Decoder counters, summed over every connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecodeCounters {
    pub frames: u64,
    pub checksum_errors: u64,
    pub malformed: u64,
    pub oversized: u64,
    pub discarded_bytes: u64,
}

impl DecodeCounters {
    fn add(self, stats: &DecoderStats) -> DecodeCounters {
        DecodeCounters {
            frames: self.frames + stats.frames,
            checksum_errors: self.checksum_errors + stats.checksum_errors,
            malformed: self.malformed + stats.malformed,
            oversized: self.oversized + stats.oversized,
            discarded_bytes: self.discarded_bytes + stats.discarded_bytes,
        }
    }

    /// Frames lost to damage of any kind.
    pub fn errors(&self) -> u64 {
        self.checksum_errors + self.malformed + self.oversized
    }
}

/// Rates are recomputed at most this often.
const RATE_WINDOW_NS: u64 = 1_000_000_000;

/// Decoder plus health figures.
pub struct Link {
    decoder: KernelFrameDecoder,
    /// Counters of decoders from earlier connections.
    earlier: DecodeCounters,
    pub state: LinkState,
    /// Connections made so far (a replay counts the recorded ones).
    pub connections: u64,
    pub bytes: u64,
    /// Host time of the last decoded frame.
    pub last_frame_ns: Option<u64>,
    /// The most recent decode error, for display.
    pub last_error: Option<String>,
    pub frames_per_s: f64,
    pub bytes_per_s: f64,
    window: Option<(u64, u64, u64)>,
}

impl Default for Link {
    fn default() -> Self {
        Link::new()
    }
}

impl Link {
    pub fn new() -> Link {
        Link {
            decoder: KernelFrameDecoder::new(),
            earlier: DecodeCounters::default(),
            state: LinkState::Starting,
            connections: 0,
            bytes: 0,
            last_frame_ns: None,
            last_error: None,
            frames_per_s: 0.0,
            bytes_per_s: 0.0,
            window: None,
        }
    }

    /// Applies one source message; every decoded frame goes to `on_frame` in order.
    pub fn handle(&mut self, msg: SourceMsg, mut on_frame: impl FnMut(KernelFrame)) {
        match msg {
            SourceMsg::Waiting { error } => self.state = LinkState::Waiting(error),
            SourceMsg::Connected { .. } => {
                // A new byte stream: never glue its start to the previous stream's tail.
                self.earlier = self.earlier.add(&self.decoder.stats());
                self.decoder = KernelFrameDecoder::new();
                self.connections += 1;
                self.state = LinkState::Connected;
            }
            SourceMsg::Data { at_ns, bytes } => {
                self.bytes += bytes.len() as u64;
                let mut last_error = None;
                let mut got_frame = false;
                self.decoder.push(
                    &bytes,
                    |result: Result<KernelFrame, DecodeError>| match result {
                        Ok(frame) => {
                            got_frame = true;
                            on_frame(frame)
                        }
                        Err(error) => last_error = Some(error.to_string()),
                    },
                );
                if got_frame {
                    self.last_frame_ns = Some(at_ns);
                }
                if last_error.is_some() {
                    self.last_error = last_error;
                }
            }
            SourceMsg::Disconnected { reason } => self.state = LinkState::Disconnected(reason),
            SourceMsg::End => self.state = LinkState::Ended,
        }
    }

    /// Decoder counters over all connections so far.
    pub fn counters(&self) -> DecodeCounters {
        self.earlier.add(&self.decoder.stats())
    }

    /// Updates frames/s and bytes/s; call regularly with the source's clock.
    pub fn tick(&mut self, now_ns: u64) {
        let frames = self.counters().frames;
        match self.window {
            None => self.window = Some((now_ns, frames, self.bytes)),
            Some((since, frames0, bytes0)) => {
                let dt = now_ns.saturating_sub(since);
                if dt >= RATE_WINDOW_NS {
                    let seconds = dt as f64 / 1e9;
                    self.frames_per_s = (frames - frames0) as f64 / seconds;
                    self.bytes_per_s = (self.bytes - bytes0) as f64 / seconds;
                    self.window = Some((now_ns, frames, self.bytes));
                }
            }
        }
    }

    /// Nanoseconds since the last frame, if one arrived.
    pub fn since_last_frame(&self, now_ns: u64) -> Option<u64> {
        self.last_frame_ns.map(|at| now_ns.saturating_sub(at))
    }

    pub fn is_connected(&self) -> bool {
        self.state == LinkState::Connected
    }

    /// One-line summary for stderr at exit.
    pub fn summary(&self) -> String {
        let c = self.counters();
        format!(
            "link: {} connection(s), {} bytes, {} frames, {} checksum errors, {} malformed, {} oversized, {} bytes discarded",
            self.connections, self.bytes, c.frames, c.checksum_errors, c.malformed, c.oversized, c.discarded_bytes
        )
    }
}
