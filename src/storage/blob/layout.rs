//! Where ZODB puts a blob file: the `bushy` and `lawn` layouts of a blob directory.
//!
//! As ZODB's `ZODB.blob` names them: `bushy` (the default) gives every oid eight nested
//! directories, one per byte, `0x00/…/0x2a`; `lawn` (older, still read) one directory per
//! oid named by its repr, `0x2a`. Either way the blob of revision `tid` is
//! `<oid dir>/<tid repr>.blob`, where a repr is `0x` and the hex digits without leading
//! zero pairs (`0x00` for zero). The `.layout` file at the top names the layout; a
//! directory without one is `bushy` when it is new or empty and `lawn` when it already
//! holds files, as ZODB's automatic selection decides.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use super::fs::BlobFs;
use crate::tid::{Oid, Tid};

/// The file that names a blob directory's layout.
pub const LAYOUT_MARKER: &str = ".layout";
/// The ending of a committed blob file's name.
pub const BLOB_SUFFIX: &str = ".blob";

/// How oids map to directories.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    Bushy,
    Lawn,
}

impl Layout {
    /// The name the `.layout` marker holds.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Bushy => "bushy",
            Layout::Lawn => "lawn",
        }
    }

    pub fn from_name(name: &str) -> Option<Layout> {
        match name {
            "bushy" => Some(Layout::Bushy),
            "lawn" => Some(Layout::Lawn),
            _ => None,
        }
    }

    /// The oid's directory, relative to the blob directory.
    pub fn oid_path(self, oid: Oid) -> PathBuf {
        match self {
            Layout::Bushy => oid.0.iter().map(|b| format!("0x{b:02x}")).collect(),
            Layout::Lawn => PathBuf::from(id_repr(&oid.0)),
        }
    }

    /// The blob file of `(oid, tid)`, relative to the blob directory.
    pub fn blob_path(self, oid: Oid, tid: Tid) -> PathBuf {
        self.oid_path(oid).join(blob_file_name(tid))
    }

    /// The oid whose directory `relative` is, if it is one in this layout.
    pub fn parse_oid_path(self, relative: &Path) -> Option<Oid> {
        let parts: Vec<&str> = relative
            .components()
            .map(|c| c.as_os_str().to_str())
            .collect::<Option<_>>()?;
        match self {
            Layout::Bushy => {
                if parts.len() != 8 {
                    return None;
                }
                let mut oid = [0u8; 8];
                for (byte, part) in oid.iter_mut().zip(parts) {
                    let hex = part.strip_prefix("0x")?;
                    if hex.is_empty() || hex.len() > 2 {
                        return None;
                    }
                    *byte = u8::from_str_radix(hex, 16).ok()?;
                }
                Some(Oid(oid))
            }
            Layout::Lawn => match parts.as_slice() {
                [one] => parse_id_repr(one).map(Oid),
                _ => None,
            },
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `<tid repr>.blob`.
pub fn blob_file_name(tid: Tid) -> String {
    format!("{}{BLOB_SUFFIX}", id_repr(&tid.0))
}

/// The tid a blob file's name holds, if it is one.
pub fn parse_blob_file_name(name: &str) -> Option<Tid> {
    parse_id_repr(name.strip_suffix(BLOB_SUFFIX)?).map(Tid)
}

/// ZODB's `oid_repr` / `tid_repr`: `0x` + hex without leading zero pairs, at least `00`.
pub fn id_repr(id: &[u8; 8]) -> String {
    let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
    let trimmed = hex.trim_start_matches('0');
    let trimmed = if trimmed.is_empty() {
        "00".to_string()
    } else if trimmed.len() % 2 == 1 {
        format!("0{trimmed}")
    } else {
        trimmed.to_string()
    };
    format!("0x{trimmed}")
}

fn parse_id_repr(s: &str) -> Option<[u8; 8]> {
    let hex = s.strip_prefix("0x")?;
    if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(u64::to_be_bytes)
}

/// The layout of the blob directory at `dir` on `fs`: what its marker says, or ZODB's
/// automatic choice when it has none.
pub fn select(fs: &dyn BlobFs, dir: &Path) -> io::Result<Layout> {
    let marker = dir.join(LAYOUT_MARKER);
    match fs.read(&marker) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            Layout::from_name(text.trim()).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: unknown blob directory layout {:?} (expected bushy or lawn)",
                        marker.display(),
                        text.trim()
                    ),
                )
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let entries = match fs.list(dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Layout::Bushy),
                Err(e) => return Err(e),
            };
            if entries.iter().any(|(name, _)| !name.starts_with('.')) {
                return Ok(Layout::Lawn);
            }
            Ok(Layout::Bushy)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reprs_as_zodb_writes_them() {
        assert_eq!(id_repr(&[0; 8]), "0x00");
        assert_eq!(id_repr(&Oid::from_u64(1).0), "0x01");
        assert_eq!(id_repr(&Oid::from_u64(0x1ab).0), "0x01ab");
        assert_eq!(
            id_repr(&Tid::from_u64(0x03ea_5f00_1234_5678).0),
            "0x03ea5f0012345678"
        );
        assert_eq!(
            blob_file_name(Tid::from_u64(0x03ea_5f00_1234_5678)),
            "0x03ea5f0012345678.blob"
        );
    }

    #[test]
    fn paths_round_trip() {
        let oid = Oid::from_u64(0x0102_0000_00ab);
        let bushy = Layout::Bushy.oid_path(oid);
        assert_eq!(bushy, Path::new("0x00/0x00/0x01/0x02/0x00/0x00/0x00/0xab"));
        assert_eq!(Layout::Bushy.parse_oid_path(&bushy), Some(oid));
        let lawn = Layout::Lawn.oid_path(oid);
        assert_eq!(lawn, Path::new("0x0102000000ab"));
        assert_eq!(Layout::Lawn.parse_oid_path(&lawn), Some(oid));
        assert_eq!(Layout::Bushy.parse_oid_path(Path::new("tmp")), None);
        assert_eq!(Layout::Lawn.parse_oid_path(Path::new("tmp")), None);
        let tid = Tid::from_u64(7);
        assert_eq!(parse_blob_file_name(&blob_file_name(tid)), Some(tid));
        assert_eq!(parse_blob_file_name("0x07.tmp"), None);
    }

    #[test]
    fn automatic_selection() {
        use super::super::fs::OsFs;
        use std::fs;
        let select = |dir: &Path| select(&OsFs, dir);
        let dir = tempfile::tempdir().unwrap();
        let blobs = dir.path().join("blobs");
        assert_eq!(select(&blobs).unwrap(), Layout::Bushy);
        fs::create_dir(&blobs).unwrap();
        fs::write(blobs.join(".hidden"), b"").unwrap();
        assert_eq!(select(&blobs).unwrap(), Layout::Bushy);
        fs::create_dir(blobs.join("0x01")).unwrap();
        assert_eq!(select(&blobs).unwrap(), Layout::Lawn);
        fs::write(blobs.join(LAYOUT_MARKER), b"bushy").unwrap();
        assert_eq!(select(&blobs).unwrap(), Layout::Bushy);
        fs::write(blobs.join(LAYOUT_MARKER), b"grassy\n").unwrap();
        let e = select(&blobs).unwrap_err().to_string();
        assert!(e.contains("grassy") && e.contains(".layout"), "{e}");
    }
}
