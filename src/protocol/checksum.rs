//! The running checksum that lets a secondary verify the replication stream.
//!
//! Both ends keep one md5 over the stream after the handshake:
//!
//! - It is seeded with the 8 bytes of the start tid: the tid the secondary sent as its second
//!   message (its last committed transaction; zeros for an empty storage).
//! - It is then updated with the *payload* of every message the primary sends, in order: the
//!   pickled `T`/`S`/`B`/`C` messages and the raw data and blob-chunk messages alike (an empty
//!   data message adds nothing). Length prefixes are never hashed.
//! - A `C` message carries the digest of everything hashed before it; the secondary compares
//!   that with its own digest, and then the `C` message's payload is hashed too, so the next
//!   transaction's checksum covers all the earlier ones.
//!
//! The checksum never restarts within a connection; a new connection starts a new one from the
//! tid the secondary then sends.

use md5::{Digest, Md5};

use crate::tid::Tid;

/// md5 over the start tid and every message payload since; see the module docs.
#[derive(Clone)]
pub struct StreamChecksum {
    md5: Md5,
}

impl StreamChecksum {
    /// A checksum seeded with the start tid's 8 bytes (Python: `md5(tid)`).
    pub fn new(start: Tid) -> Self {
        StreamChecksum {
            md5: Md5::new_with_prefix(start.as_bytes()),
        }
    }

    /// Hash one message payload (without its length prefix).
    pub fn update(&mut self, payload: &[u8]) {
        self.md5.update(payload);
    }

    /// The digest of everything hashed so far; the checksum goes on unchanged.
    pub fn digest(&self) -> [u8; 16] {
        self.md5.clone().finalize().into()
    }
}

impl std::fmt::Debug for StreamChecksum {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex: String = self.digest().iter().map(|b| format!("{b:02x}")).collect();
        write!(f, "StreamChecksum({hex})")
    }
}
