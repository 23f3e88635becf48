//! The options every long-running node shares for being watched: its status socket
//! (`--status`), where to learn its primary's position (`--primary-status`), and how often
//! to log progress (`--progress`). See [`zrs::net::status`] for the socket and the lag.

use std::sync::Arc;
use std::time::Duration;

use zrs::net::status::{self, parse_listen_address, NodeStatus, Role};
use zrs::secondary::Address;
use zrs::storage::FileStorageReader;

use super::secondary::parse_seconds;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct ObserveArgs {
    /// Answer status requests here (ZEO's `ruok`, so zc.zrs's `zrs-nagios` works too):
    /// HOST:PORT (port 0: any free port, logged), or unix:PATH.
    #[arg(long, value_name = "ADDRESS", value_parser = parse_status)]
    pub status: Option<Address>,
    /// The primary's status address (a zrs node's `--status`, or the primary's ZEO server):
    /// asked every 10 s how far it is ahead, for the lag in transactions and bytes.
    #[arg(long, value_name = "ADDRESS", value_parser = parse_status)]
    pub primary_status: Option<Address>,
    /// Log progress this often while transactions arrive (0: never).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = parse_seconds)]
    pub progress: Duration,
}

fn parse_status(s: &str) -> Result<Address, String> {
    parse_listen_address(s).map_err(|e| e.to_string())
}

/// How often a secondary asks its primary's status.
const PRIMARY_POLL: Duration = Duration::from_secs(10);

/// One node to watch: its status id (`"1"` unless a configuration names it), role,
/// storage, and addresses.
pub struct Watched {
    pub id: String,
    pub role: Role,
    pub reader: FileStorageReader,
    pub replicate_from: Option<String>,
    pub replicate_to: Option<String>,
    /// Where to learn the primary's position (a secondary's).
    pub primary_status: Option<Address>,
}

impl Watched {
    /// The node's shared status, with its primary watcher and progress reporter running.
    pub fn start(self, progress: Duration) -> Result<Arc<NodeStatus>, String> {
        let node = Arc::new(NodeStatus::new(self.role, self.reader));
        node.set_replicate_from(self.replicate_from);
        node.set_replicate_to(self.replicate_to);
        if let Some(address) = self.primary_status {
            status::watch_primary(node.clone(), address, self.id, PRIMARY_POLL)
                .map_err(|e| format!("starting the primary status watcher: {e}"))?;
        }
        if !progress.is_zero() {
            status::report_progress(node.clone(), progress)
                .map_err(|e| format!("starting the progress reporter: {e}"))?;
        }
        Ok(node)
    }
}

/// Serves the status of `nodes` at `address`, if one is given.
pub fn serve(address: Option<&Address>, nodes: status::Nodes) -> Result<(), String> {
    if let Some(address) = address {
        status::serve(address, nodes).map_err(|e| format!("status socket {address}: {e}"))?;
    }
    Ok(())
}

/// An address as an operator writes it: `host:port`, `[v6]:port`, `unix:PATH`.
pub fn address_text(address: &Address) -> String {
    match address {
        Address::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
        Address::Tcp { host, port } => format!("{host}:{port}"),
        Address::Unix(path) => format!("unix:{path}"),
    }
}
