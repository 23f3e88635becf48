//! The transaction extension as replication carries it.
//!
//! A primary sends the extension decoded (a dict); the secondary pickles it again as the
//! primary's ZODB did, which depends on the storage's [`Format`]: Python 3 ZODB's
//! `dumps(ext, 3)` for `FS30`, Python 2 ZODB 4's `cPickle.dumps(ext, 1)` for `FS21`
//! (empty dict → empty bytes for both). For a replica to be byte-identical that round
//! trip must reproduce the primary's bytes, so every writer that replays a storage
//! (`zrs copy`) goes through [`replicated_extension`], the same decode → encode the wire
//! imposes.
//!
//! Python 2's pickler memoizes a string only when the writing process held it twice, which
//! the stream does not tell: the caller says which [`Identity`] to assume (the secondary's
//! configuration; see [`crate::pickle::py2`]). Where the stored bytes are at hand (`zrs
//! copy`), the identity that reproduces them is found by trying both.

use crate::pickle::{dumps_extension, dumps_py2_extension, loads, Identity, Value};
use crate::storage::{Format, Result, StorageError};

/// The bytes a storage of `format` keeps for a received (decoded) extension; `identity`
/// matters for `FS21` only.
pub fn encode_extension(ext: &Value, format: Format, identity: Identity) -> Vec<u8> {
    match format {
        Format::Fs30 => dumps_extension(ext),
        Format::Fs21 => dumps_py2_extension(ext, identity),
    }
}

/// The extension bytes a replica of `format` stores for a primary's `raw` extension bytes:
/// what the primary's `('T', …)` message carries, decoded, pickled again as ZODB does.
pub fn replicated_extension(raw: &[u8], format: Format) -> Result<Vec<u8>> {
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
    let referenced = encode_extension(&ext, format, Identity::Referenced);
    if format == Format::Fs21 && referenced != raw {
        let unpickled = encode_extension(&ext, format, Identity::Unpickled);
        if unpickled == raw {
            return Ok(unpickled);
        }
    }
    Ok(referenced)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_zodb_extension_bytes() {
        // ZODB 6.4's bytes for {'k': 1}.
        let raw = b"\x80\x03}q\x00X\x01\x00\x00\x00kq\x01K\x01s.";
        assert_eq!(
            replicated_extension(raw, Format::Fs30).unwrap(),
            raw.to_vec()
        );
        // ZODB 4.4.5's (Python 2.7) for {'note': u'ok'}.
        let raw = b"}q\x01U\x04noteq\x02X\x02\x00\x00\x00okq\x03s.";
        assert_eq!(
            replicated_extension(raw, Format::Fs21).unwrap(),
            raw.to_vec()
        );
        // The same, as pickled from an unpickled dict (no string memoized).
        let raw = b"}q\x01U\x04noteX\x02\x00\x00\x00oks.";
        assert_eq!(
            replicated_extension(raw, Format::Fs21).unwrap(),
            raw.to_vec()
        );
        assert!(replicated_extension(b"", Format::Fs30).unwrap().is_empty());
        assert!(replicated_extension(b"garbage", Format::Fs30).is_err());
        assert!(replicated_extension(b"\x80\x03K\x01.", Format::Fs30).is_err());
    }
}
