//! Reading a storage as a ZODB client would, just enough to print the root: load an
//! object's record, unpickle its class and state, follow persistent references.
//!
//! Prints mappings as Python prints a mapping of mappings (`{}`, `{'x': {}}`). Byte values
//! print as Python 2 reprs up to 64 bytes and as `<N bytes>` beyond, so transcripts of runs
//! with big records stay readable.

use zrs::pickle::Value;
use zrs::repr::{py2_bytes_repr, py_str_repr};
use zrs::storage::Storage;
use zrs::Oid;

use crate::scenario::literal::repr;

/// How deep references are followed before printing `{...}`.
const MAX_DEPTH: usize = 64;
/// Longest byte value printed in full.
const MAX_BYTES_SHOWN: usize = 64;

/// The blob file of `oid` at its current serial, printed: its bytes as a Python 2 repr up
/// to 64 bytes, `<N bytes, md5 HEX>` beyond; ZODB's `POSKeyError` where the storage has no
/// file (as `Blob.open()` raises on a zc.zrs secondary for an empty blob).
pub fn blob_repr<S: zrs::storage::ReadStorage + ?Sized>(
    storage: &S,
    oid: Oid,
) -> Result<String, String> {
    let (data, serial) = storage.load(oid).map_err(|e| e.to_string())?;
    if !zrs::storage::blob::is_blob_record(&data) {
        return Err(format!("{oid:?} is not a blob"));
    }
    let Some(blob) = storage.open_blob(oid, serial).map_err(|e| e.to_string())? else {
        return Ok("POSKeyError: No blob file".to_string());
    };
    let bytes = blob.read_all().map_err(|e| e.to_string())?;
    Ok(blob_bytes_repr(&bytes))
}

/// A blob file's bytes as the `blob` step prints them: a Python 2 repr up to 64 bytes,
/// `<N bytes, md5 HEX>` beyond.
pub fn blob_bytes_repr(bytes: &[u8]) -> String {
    if bytes.len() <= MAX_BYTES_SHOWN {
        return py2_bytes_repr(bytes);
    }
    use md5::{Digest, Md5};
    let digest: String = Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("<{} bytes, md5 {digest}>", bytes.len())
}

/// The blob directory at `dir` on `fs`, one committed file a line as `OID/TID.blob BYTES`
/// (ids as ZODB's reprs, by oid then tid), then a line counting temporary files, if any.
pub fn blob_dir_repr(
    fs: &dyn zrs::storage::blob::BlobFs,
    dir: &std::path::Path,
) -> Result<String, String> {
    use zrs::storage::blob::layout::{blob_file_name, id_repr};
    let listing =
        crate::blobfiles::list(fs, dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    let mut lines = Vec::new();
    for f in &listing.files {
        let bytes = fs
            .read(&dir.join(&f.path))
            .map_err(|e| format!("reading {}: {e}", f.path.display()))?;
        lines.push(format!(
            "{}/{} {}",
            id_repr(&f.oid.0),
            blob_file_name(f.tid),
            blob_bytes_repr(&bytes)
        ));
    }
    for s in &listing.strays {
        lines.push(format!("{} (not a blob file)", s.display()));
    }
    // Their names hold the process id: only their number and sizes are printed.
    let temporary: Vec<String> = listing
        .temporary
        .iter()
        .filter(|(n, _)| n.ends_with(".tmp"))
        .map(|(_, len)| len.to_string())
        .collect();
    if !temporary.is_empty() {
        lines.push(format!(
            "{} temporary files ({} bytes)",
            temporary.len(),
            temporary.join(", ")
        ));
    }
    if lines.is_empty() {
        lines.push("(no blob files)".into());
    }
    Ok(lines.join("\n"))
}

/// The root object, printed.
pub fn root_repr<S: Storage + ?Sized>(storage: &S) -> Result<String, String> {
    let mut out = String::new();
    let mut path = Vec::new();
    write_object(storage, Oid::ZERO, &mut path, &mut out)?;
    Ok(out)
}

/// The items of a `PersistentMapping` record: its state's `data` dict.
pub fn mapping_items(record: &[u8]) -> Result<Vec<(Value, Value)>, String> {
    let values = zrs::pickle::loads_sequence(record, 2)
        .map_err(|e| format!("object record does not unpickle: {e}"))?;
    let [class, state] = <[Value; 2]>::try_from(values)
        .map_err(|_| "object record is not a class pickle and a state pickle".to_string())?;
    let is_mapping = matches!(&class, Value::Global { module, name }
        if module == "persistent.mapping" && (name == "PersistentMapping" || name == "PersistentDict"));
    if !is_mapping {
        return Err(format!("not a persistent mapping: class {}", repr(&class)));
    }
    let Value::Dict(state) = state else {
        return Err("mapping state is not a dict".into());
    };
    for (key, value) in state {
        let is_data = matches!(&key, Value::Str(k) if k == "data" || k == "_container")
            || matches!(&key, Value::Bytes(k) if k == b"data" || k == b"_container");
        if is_data {
            return match value {
                Value::Dict(items) => Ok(items),
                _ => Err("mapping data is not a dict".into()),
            };
        }
    }
    Err("mapping state has no 'data'".into())
}

/// The oid a persistent reference names: `(oid, class)` or a bare oid.
fn referenced_oid(value: &Value) -> Option<Oid> {
    let Value::PersistentId(id) = value else {
        return None;
    };
    match id.as_ref() {
        Value::Tuple(items) => match items.first() {
            Some(Value::Bytes(oid)) => Oid::from_slice(oid),
            _ => None,
        },
        Value::Bytes(oid) => Oid::from_slice(oid),
        _ => None,
    }
}

fn write_object<S: Storage + ?Sized>(
    storage: &S,
    oid: Oid,
    path: &mut Vec<Oid>,
    out: &mut String,
) -> Result<(), String> {
    if path.contains(&oid) || path.len() >= MAX_DEPTH {
        out.push_str("{...}");
        return Ok(());
    }
    let (record, _) = storage
        .load(oid)
        .map_err(|e| format!("loading {oid:?}: {e}"))?;
    if zrs::storage::blob::is_blob_record(&record) {
        // Its bytes are the `blob` step's to print.
        out.push_str("<ZODB.blob.Blob>");
        return Ok(());
    }
    let items = mapping_items(&record).map_err(|e| format!("{oid:?}: {e}"))?;
    path.push(oid);
    out.push('{');
    for (i, (key, value)) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        match key {
            Value::Str(s) => out.push_str(&py_str_repr(s)),
            other => out.push_str(&repr(other)),
        }
        out.push_str(": ");
        if let Some(child) = referenced_oid(value) {
            write_object(storage, child, path, out)?;
        } else {
            match value {
                Value::Bytes(b) if b.len() > MAX_BYTES_SHOWN => {
                    out.push_str(&format!("<{} bytes>", b.len()))
                }
                Value::Bytes(b) => out.push_str(&py2_bytes_repr(b)),
                other => out.push_str(&repr(other)),
            }
        }
    }
    out.push('}');
    path.pop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::record::{mapping_record, Value as Item};

    #[test]
    fn reads_back_what_the_primary_writes() {
        let record = mapping_record(&[
            ("a".into(), Item::Ref(Oid::from_u64(1))),
            ("v".into(), Item::Bytes(b"xy".as_slice().into())),
        ]);
        let items = mapping_items(&record).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].0, Value::Str("a".into()));
        assert_eq!(referenced_oid(&items[0].1), Some(Oid::from_u64(1)));
        assert_eq!(items[1].1, Value::Bytes(b"xy".to_vec()));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(mapping_items(b"").is_err());
        assert!(mapping_items(b"\x80\x03N.\x80\x03N.")
            .unwrap_err()
            .contains("not a persistent mapping"));
    }
}
