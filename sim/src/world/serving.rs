//! Hosting the real primary node: a connection reaches it at its first `serve` (the
//! handshake read on its way, for the oracles), its link delivers what it transmits, what it
//! closes is closed; scripted clients and the primary's close.

use crate::link::Link;
use crate::network::peer;
use crate::scenario::literal::repr;
use crate::scenario::ClientAction;
use zrs::pickle::Value as PickleValue;
use zrs::primary::ConnectionId;
use zrs::protocol::framing::frame;
use zrs::protocol::handshake::{HandshakeReader, Received};
use zrs::secondary::LossReason;
use zrs::storage::ReadStorage;

use super::{Event, World, WorldError};

impl World {
    /// The link of the current connection to the primary node, attaching the connection
    /// to the node first if it is new: the handshake the secondary wrote is read (and
    /// judged for the oracles) on its way to the real primary.
    pub(super) fn attach(&mut self) -> Result<(), WorldError> {
        let port = self
            .network
            .connection
            .as_ref()
            .ok_or(WorldError::NotConnected)?
            .port;
        let id = ConnectionId(u64::from(port));
        if self.link.as_ref().map(|l| l.port) != Some(port) {
            self.link = None;
            let mut handshake = HandshakeReader::new(false);
            let message = self.read().map_err(|_| WorldError::NoHandshake)?;
            let protocol = match handshake.receive(&message) {
                Ok(_) => message,
                Err(e) => {
                    self.events.push(Event::BadHandshake(e.to_string()));
                    return Err(WorldError::NoHandshake);
                }
            };
            let message = self.read().map_err(|_| WorldError::NoHandshake)?;
            let Ok(Received::Start(start)) = handshake.receive(&message) else {
                self.events.push(Event::Unexpected(message));
                return Err(WorldError::NoHandshake);
            };
            let storage = self.secondary()?.storage();
            let (committed, blobs) = (storage.last_transaction(), storage.keeps_blobs());
            self.events.push(Event::Handshake {
                protocol: protocol.clone(),
                start,
                committed,
                blobs,
            });
            if let Some(address) = self.secondary()?.config().address.clone() {
                self.node.set_address(address);
            }
            self.link = Some(Link::new(port));
            self.handshake = Some(handshake);
            self.node.connected(id, &peer(port));
            self.node.data_received(id, &frame(&protocol));
            self.node.data_received(id, &frame(&message));
        }
        // After the handshake the secondary only sends keep-alives (empty messages).
        while let Ok(message) = self.read() {
            let handshake = self.handshake.as_mut().expect("set with the link");
            if handshake.receive(&message).is_err() {
                self.events.push(Event::Unexpected(message.clone()));
            }
            self.node.data_received(id, &frame(&message));
        }
        Ok(())
    }

    /// Takes up to `limit` bytes (all it can, if `None`) from the current link, its
    /// primary transmitting as the link drains.
    pub(super) fn take(&mut self, limit: Option<usize>) -> Vec<u8> {
        let Some(link) = self.link.as_mut() else {
            return Vec::new();
        };
        let id = ConnectionId(u64::from(link.port));
        let node = &mut self.node;
        link.take(limit, &mut || node.pull(id))
    }

    /// Whether the current link has bytes to deliver, its primary transmitting if needed.
    pub(super) fn link_ready(&mut self) -> bool {
        let Some(link) = self.link.as_mut() else {
            return false;
        };
        let id = ConnectionId(u64::from(link.port));
        let node = &mut self.node;
        link.ready(&mut || node.pull(id))
    }

    /// Closes the connections the primary closed: what it transmitted before is delivered
    /// first, then the secondary sees the connection end cleanly.
    pub(super) fn primary_disconnects(&mut self) -> Result<(), WorldError> {
        let port = self.network.connection.as_ref().map(|c| c.port);
        let mut ours = false;
        let mut others = Vec::new();
        for id in self.node.take_disconnects() {
            if self.clients.owns(id) {
                self.clients.closed_by_primary(id);
            } else if port.map(|p| ConnectionId(u64::from(p))) == Some(id) {
                ours = true;
            } else {
                // A node's connection: its own `serve` acts on it.
                others.push(id);
            }
        }
        self.node.host.keep_disconnects(others);
        let Some(port) = port.filter(|_| ours) else {
            return Ok(());
        };
        self.deliver_from_link(None)?;
        if self.network.connection.as_ref().map(|c| c.port) == Some(port) {
            // The primary counts it gone already: only the secondary hears of it.
            self.network.connection = None;
            self.link = None;
            self.handshake = None;
            let generation = self.current()?;
            self.observe(generation, crate::coverage::Input::Lost);
            self.secondaries[generation].connection_lost(&LossReason::Done);
            self.dispatch(generation);
        }
        Ok(())
    }

    /// `serve`: the link delivers up to `limit` bytes (all, if `None`) of what the primary
    /// node sends the secondary. Returns how many bytes it delivered.
    pub fn serve(&mut self, limit: Option<usize>) -> Result<usize, WorldError> {
        self.attach()?;
        self.primary_disconnects()?;
        let delivered = self.deliver_from_link(limit)?;
        self.primary_disconnects()?;
        Ok(delivered)
    }

    /// A scripted client's step against the primary node; returns what it prints.
    pub fn client(
        &mut self,
        index: Option<usize>,
        action: &ClientAction,
    ) -> Result<Option<String>, String> {
        let node = &mut self.node;
        let printed = match action {
            ClientAction::Connect => {
                let port = self.network.take_port();
                self.clients.connect(port, node);
                None
            }
            ClientAction::Send(bytes) => {
                self.clients
                    .send(index, bytes, node)
                    .map_err(|e| e.to_string())?;
                None
            }
            ClientAction::Read { raw } => {
                let message = self.clients.read(index, node).map_err(|e| e.to_string())?;
                Some(if *raw {
                    repr(&PickleValue::Bytes(message))
                } else {
                    match zrs::pickle::loads(&message) {
                        Ok(value) => repr(&value),
                        Err(e) => {
                            format!("not a pickle ({e}): {}", repr(&PickleValue::Bytes(message)))
                        }
                    }
                })
            }
            ClientAction::HasData => {
                let has = self
                    .clients
                    .has_data(index, node)
                    .map_err(|e| e.to_string())?;
                Some(if has { "True" } else { "False" }.to_string())
            }
            ClientAction::Close => {
                self.clients.close(index, node).map_err(|e| e.to_string())?;
                None
            }
        };
        self.primary_disconnects().map_err(|e| e.to_string())?;
        Ok(printed)
    }

    /// The primary node's `close`.
    pub fn primary_close(&mut self) -> Result<(), WorldError> {
        self.node.close();
        self.primary_disconnects()
    }
}
