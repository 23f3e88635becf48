//! The virtual network between the secondary and the simulated primary.
//!
//! A connection attempt waits in `clients` until the scenario accepts or rejects it; each
//! attempt takes the next client port from 47245, and its peer prints as Twisted prints it,
//! `IPv4Address(TCP, '127.0.0.1', 47245)`. The established connection keeps what the
//! secondary wrote (to `read` it message by message) and the primary side's running md5 (so
//! a scenario can send a correct `C`). Delivery chunking is the harness's: see
//! [`Chunking`].

use zrs::protocol::framing::{FrameDecoder, FrameError};
use zrs::protocol::StreamEncoder;
use zrs::Tid;

/// The first client port, as in zc.zrs's test reactor.
pub const FIRST_CLIENT_PORT: u32 = 47245;

/// A connection attempt waiting for the primary's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub port: u32,
}

/// How delivered bytes are cut into chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunking {
    /// 1, 2, 4, 8, … bytes, as the reference harness does "to confuse the protocol".
    Doubling,
    /// Chunks of these sizes in turn (a fault schedule's arbitrary chunking); the list is
    /// reused cyclically, and a zero is taken as one.
    Sizes(Vec<usize>),
    /// The whole delivery at once.
    Whole,
    /// Sizes drawn from a ChaCha8 stream with this seed, from one byte to tens of KiB
    /// (drawn by the world, which keeps the stream going across deliveries).
    Random(u64),
}

impl Chunking {
    /// The size of a delivery's `i`-th chunk; `None` where it takes all that is left (a
    /// random chunking's sizes come from the world's stream, not from here).
    pub fn size(&self, i: usize) -> Option<usize> {
        match self {
            Chunking::Doubling => Some(1usize.checked_shl(i as u32).unwrap_or(usize::MAX)),
            Chunking::Sizes(sizes) if !sizes.is_empty() => Some(sizes[i % sizes.len()].max(1)),
            Chunking::Sizes(_) | Chunking::Whole | Chunking::Random(_) => None,
        }
    }
}

/// The established connection, seen from the primary's end.
#[derive(Debug)]
pub struct Connection {
    pub port: u32,
    /// What the secondary wrote, framed.
    outbox: FrameDecoder,
    /// The primary side's encoder (and running checksum) of what it sends.
    pub encoder: StreamEncoder,
}

impl Connection {
    /// The peer as the secondary prints it.
    pub fn peer(&self) -> String {
        peer(self.port)
    }

    /// The next whole message the secondary wrote, if any.
    pub fn read(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        self.outbox.next_frame()
    }
}

/// Formats a client port as Twisted's `IPv4Address`.
pub fn peer(port: u32) -> String {
    format!("IPv4Address(TCP, '127.0.0.1', {port})")
}

/// Attempts and the connection.
#[derive(Debug)]
pub struct Network {
    /// Attempts waiting for accept or reject, oldest first.
    pub clients: Vec<Attempt>,
    pub connection: Option<Connection>,
    next_port: u32,
}

impl Default for Network {
    fn default() -> Network {
        Network {
            clients: Vec::new(),
            connection: None,
            next_port: FIRST_CLIENT_PORT,
        }
    }
}

impl Network {
    pub fn new() -> Network {
        Network::default()
    }

    /// The secondary starts an attempt: it takes the next port.
    pub fn start_attempt(&mut self) {
        let port = self.take_port();
        self.clients.push(Attempt { port });
    }

    /// The next client port (every connection to the primary takes one).
    pub fn take_port(&mut self) -> u32 {
        let port = self.next_port;
        self.next_port += 1;
        port
    }

    /// The secondary gives its attempt up.
    pub fn abort_attempt(&mut self) -> Option<Attempt> {
        self.clients.pop()
    }

    /// The `i`-th oldest attempt is given up.
    pub fn abort_attempt_at(&mut self, i: usize) -> Option<Attempt> {
        (i < self.clients.len()).then(|| self.clients.remove(i))
    }

    /// The primary takes the oldest attempt (to accept or reject it).
    pub fn take_attempt(&mut self) -> Option<Attempt> {
        (!self.clients.is_empty()).then(|| self.clients.remove(0))
    }

    /// Establishes the connection of an accepted attempt.
    pub fn establish(&mut self, attempt: Attempt) -> &mut Connection {
        self.connection.insert(Connection {
            port: attempt.port,
            // What a secondary writes is tiny (handshake, keep-alives): a small limit
            // makes a runaway write an error, not a memory blow-up.
            outbox: FrameDecoder::new(1 << 20),
            encoder: StreamEncoder::new(Tid::ZERO),
        })
    }

    /// The secondary wrote bytes on the connection.
    pub fn write(&mut self, bytes: &[u8]) {
        if let Some(c) = self.connection.as_mut() {
            c.outbox.feed(bytes);
        }
    }

    /// Prints the attempts as `reactor.clients` prints (only emptiness matters there).
    pub fn clients_repr(&self) -> String {
        let items: Vec<String> = self
            .clients
            .iter()
            .map(|_| "<zc.zrs.tests.TestConnector instance>".to_string())
            .collect();
        format!("[{}]", items.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_chunks_like_the_reference_harness() {
        let sizes: Vec<Option<usize>> = (0..5).map(|i| Chunking::Doubling.size(i)).collect();
        assert_eq!(sizes, [1, 2, 4, 8, 16].map(Some));
        assert_eq!(Chunking::Doubling.size(64), Some(usize::MAX), "no overflow");
    }

    #[test]
    fn sized_chunks_cycle_and_a_zero_is_one() {
        let chunking = Chunking::Sizes(vec![3, 0]);
        let sizes: Vec<Option<usize>> = (0..5).map(|i| chunking.size(i)).collect();
        assert_eq!(sizes, [3, 1, 3, 1, 3].map(Some));
    }

    #[test]
    fn whole_and_random_chunks_are_not_sized_here() {
        assert_eq!(Chunking::Whole.size(0), None);
        assert_eq!(Chunking::Sizes(vec![]).size(2), None);
        assert_eq!(Chunking::Random(7).size(0), None);
    }

    #[test]
    fn attempts_take_ports_in_order() {
        let mut n = Network::new();
        n.start_attempt();
        n.start_attempt();
        assert_eq!(n.take_attempt(), Some(Attempt { port: 47245 }));
        assert_eq!(n.abort_attempt(), Some(Attempt { port: 47246 }));
        assert_eq!(n.take_attempt(), None);
        assert_eq!(peer(47245), "IPv4Address(TCP, '127.0.0.1', 47245)");
    }
}
