//! How a secondary is configured: where its primary is, and its timings.

use std::fmt;
use std::time::Duration;

use crate::pickle::Identity;
use crate::protocol::framing::DEFAULT_SECONDARY_LIMIT;
use crate::repr::py_str_repr;
use crate::storage::Format;

/// Where the primary listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// `(host, port)`; an empty host means the local host, as in zc.zrs configurations.
    Tcp { host: String, port: u16 },
    /// A Unix-domain socket path.
    Unix(String),
}

impl Address {
    pub fn tcp(host: impl Into<String>, port: u16) -> Address {
        Address::Tcp {
            host: host.into(),
            port,
        }
    }
}

/// Printed as Python prints the address it was given: `('', 8000)` or `'/path'`.
impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp { host, port } => write!(f, "({}, {})", py_str_repr(host), port),
            Address::Unix(path) => f.write_str(&py_str_repr(path)),
        }
    }
}

/// The secondary's settings; the defaults are zc.zrs's.
#[derive(Clone, Debug)]
pub struct Config {
    /// The primary; `None` until [`super::Secondary::set_replication_address`].
    pub address: Option<Address>,
    /// Wait before reconnecting after a failed or lost connection (zc.zrs: 60 s).
    pub reconnect_delay: Duration,
    /// Send an empty message this often while connected; zero disables (the default).
    pub keep_alive_delay: Duration,
    /// Check the `C` messages' running md5; off only for primaries sending `('C', ())`.
    pub check_checksums: bool,
    /// Largest message accepted from the primary.
    pub frame_limit: u32,
    /// The storage format to replicate into; `None` (the default) takes the primary's,
    /// detected from its pickles (Python 2's `str` opcodes: `FS21`, else `FS30`).
    pub format: Option<Format>,
    /// How a Python 2 (`FS21`) extension's strings were memoized by the primary's ZODB:
    /// [`Identity::Referenced`] (the default; an application's own values) or
    /// [`Identity::Unpickled`] (a ZEO server's, decoded from its client's message).
    pub py2_extensions: Identity,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            address: None,
            reconnect_delay: Duration::from_secs(60),
            keep_alive_delay: Duration::ZERO,
            check_checksums: true,
            frame_limit: DEFAULT_SECONDARY_LIMIT,
            format: None,
            py2_extensions: Identity::Referenced,
        }
    }
}

/// Formats a delay as Python prints the number it was given: `60`, or `0.5`.
pub fn format_delay(delay: Duration) -> String {
    if delay.subsec_nanos() == 0 {
        delay.as_secs().to_string()
    } else {
        format!("{}", delay.as_secs_f64())
    }
}
