//! The transaction extension as replication carries it.
//!
//! A primary sends the extension decoded (a dict); the secondary pickles it again with
//! ZODB's `dumps(ext, 3)` (empty dict → empty bytes). For a replica to be byte-identical
//! that round trip must reproduce the primary's bytes, so every writer that replays a
//! storage (`zrs copy`) goes through [`replicated_extension`], the same decode → encode
//! the wire imposes.

use crate::pickle::{dumps_extension, loads, Value};
use crate::storage::{Result, StorageError};

/// The extension bytes a replica stores for a primary's `raw` extension bytes: what the
/// primary's `('T', …)` message carries, decoded, pickled again as ZODB does.
pub fn replicated_extension(raw: &[u8]) -> Result<Vec<u8>> {
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    let ext = loads(raw).map_err(|e| {
        StorageError::Transaction(format!("transaction extension does not unpickle: {e}"))
    })?;
    if !matches!(ext, Value::Dict(_)) {
        return Err(StorageError::Transaction(
            "transaction extension is not a dict".into(),
        ));
    }
    Ok(dumps_extension(&ext))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_zodb_extension_bytes() {
        // ZODB 6.4's bytes for {'k': 1}.
        let raw = b"\x80\x03}q\x00X\x01\x00\x00\x00kq\x01K\x01s.";
        assert_eq!(replicated_extension(raw).unwrap(), raw.to_vec());
        assert!(replicated_extension(b"").unwrap().is_empty());
        assert!(replicated_extension(b"garbage").is_err());
        assert!(replicated_extension(b"\x80\x03K\x01.").is_err());
    }
}
