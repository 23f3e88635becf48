//! Scripted clients of the primary node: a test playing a secondary by hand against the
//! real primary, as zc.zrs's `primary.test` does with its test reactor's connections.
//!
//! A client connects (taking the next client port, so it prints as Twisted's
//! `IPv4Address`), sends framed messages, and reads the primary's messages one at a time;
//! it reads only what the primary transmitted, and the primary transmits more only as the
//! client reads (flow control, as over a real socket).

use zrs::primary::ConnectionId;
use zrs::protocol::framing::{frame, FrameDecoder};
use zrs::secondary::LossReason;

use crate::network::peer;
use crate::primary_node::PrimaryNode;

/// What a client step could not do.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientError {
    #[error("no client {0} (clients are numbered from 1 in connection order)")]
    NoSuchClient(usize),
    #[error("no client is connected (client connect first)")]
    NoClient,
    #[error("the connection is closed")]
    Closed,
    #[error("the primary sent nothing more to read")]
    NothingToRead,
    #[error("what the primary sent is not framed: {0}")]
    BadFraming(String),
}

/// One client's connection.
#[derive(Debug)]
struct Client {
    port: u32,
    received: FrameDecoder,
    /// Closed by the client, or by the primary (its bytes before stay readable).
    closed_by_client: bool,
    closed_by_primary: bool,
}

/// The scripted clients of a run.
#[derive(Debug, Default)]
pub struct Clients {
    clients: Vec<Client>,
}

impl Clients {
    fn id(port: u32) -> ConnectionId {
        ConnectionId(u64::from(port))
    }

    fn find(&mut self, index: Option<usize>) -> Result<&mut Client, ClientError> {
        match index {
            None => self.clients.last_mut().ok_or(ClientError::NoClient),
            Some(i) => self
                .clients
                .get_mut(i - 1)
                .ok_or(ClientError::NoSuchClient(i)),
        }
    }

    /// Whether `id` is a client's connection.
    pub fn owns(&self, id: ConnectionId) -> bool {
        self.clients.iter().any(|c| Self::id(c.port) == id)
    }

    /// The primary closed `id` (a client's connection).
    pub fn closed_by_primary(&mut self, id: ConnectionId) {
        if let Some(c) = self.clients.iter_mut().find(|c| Self::id(c.port) == id) {
            c.closed_by_primary = true;
        }
    }

    /// A new client connects on `port`.
    pub fn connect(&mut self, port: u32, node: &mut PrimaryNode) {
        self.clients.push(Client {
            port,
            // As a secondary's default limit: what a primary sends may be large.
            received: FrameDecoder::new(zrs::protocol::framing::DEFAULT_SECONDARY_LIMIT),
            closed_by_client: false,
            closed_by_primary: false,
        });
        node.connected(Self::id(port), &peer(port));
    }

    /// Sends one message, framed.
    pub fn send(
        &mut self,
        index: Option<usize>,
        message: &[u8],
        node: &mut PrimaryNode,
    ) -> Result<(), ClientError> {
        let c = self.find(index)?;
        if c.closed_by_client || c.closed_by_primary {
            return Err(ClientError::Closed);
        }
        node.data_received(Self::id(c.port), &frame(message));
        Ok(())
    }

    /// The primary's next message.
    pub fn read(
        &mut self,
        index: Option<usize>,
        node: &mut PrimaryNode,
    ) -> Result<Vec<u8>, ClientError> {
        let c = self.find(index)?;
        if c.closed_by_client {
            return Err(ClientError::Closed);
        }
        loop {
            match c.received.next_frame() {
                Ok(Some(message)) => return Ok(message),
                Ok(None) => {}
                Err(e) => return Err(ClientError::BadFraming(e.to_string())),
            }
            match node.pull(Self::id(c.port)) {
                Some(bytes) => c.received.feed(&bytes),
                None if c.closed_by_primary => return Err(ClientError::Closed),
                None => return Err(ClientError::NothingToRead),
            }
        }
    }

    /// Whether a whole message is waiting (reading in what the primary transmits).
    pub fn has_data(
        &mut self,
        index: Option<usize>,
        node: &mut PrimaryNode,
    ) -> Result<bool, ClientError> {
        let c = self.find(index)?;
        let id = Self::id(c.port);
        while node.has_outgoing(id) {
            if let Some(bytes) = node.pull(id) {
                c.received.feed(&bytes);
            }
        }
        if c.received.buffered() == 0 && !c.closed_by_client && !c.closed_by_primary {
            if let Some(bytes) = node.pull(id) {
                c.received.feed(&bytes);
            }
        }
        Ok(c.received.buffered() > 0)
    }

    /// The client closes its connection cleanly.
    pub fn close(
        &mut self,
        index: Option<usize>,
        node: &mut PrimaryNode,
    ) -> Result<(), ClientError> {
        let c = self.find(index)?;
        if c.closed_by_client {
            return Err(ClientError::Closed);
        }
        c.closed_by_client = true;
        if !c.closed_by_primary {
            node.connection_lost(Self::id(c.port), &LossReason::Done);
        }
        Ok(())
    }
}
