//! What a blob directory holds, read from the directory itself: the committed blob files
//! (by oid and tid, as their paths name them), the temporary files in `tmp`, and anything
//! else (a file that is neither, which no storage should leave).
//!
//! The blob oracle ([`crate::fuzz::oracle`]) and the `blobs` step read a secondary's blob
//! directory through this, so they see what ZODB would find there, not what the storage
//! believes it wrote. Entries are sorted: listings do not depend on the order the file
//! system returns them in.

use std::io;
use std::path::{Path, PathBuf};

use zrs::storage::blob::fs::{BlobFs, Kind};
use zrs::storage::blob::layout::{self, Layout, LAYOUT_MARKER};
use zrs::{Oid, Tid};

/// A committed blob file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobFile {
    pub oid: Oid,
    pub tid: Tid,
    /// Its path, relative to the blob directory.
    pub path: PathBuf,
    pub len: u64,
}

/// A blob directory's contents.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Committed blob files, by oid then tid.
    pub files: Vec<BlobFile>,
    /// The files in `tmp` (temporary blob files, a journal): names and lengths.
    pub temporary: Vec<(String, u64)>,
    /// Paths (relative) of files that are neither committed blob files nor in `tmp`.
    pub strays: Vec<PathBuf>,
}

/// Lists the blob directory at `root` on `fs` (its layout as its `.layout` marker says).
pub fn list(fs: &dyn BlobFs, root: &Path) -> io::Result<Listing> {
    let layout = layout::select(fs, root)?;
    let mut listing = Listing::default();
    walk(fs, root, Path::new(""), layout, &mut listing)?;
    listing.files.sort_by_key(|f| (f.oid, f.tid));
    listing.temporary.sort();
    listing.strays.sort();
    Ok(listing)
}

/// Lists `relative` (a directory under `root`).
fn walk(
    fs: &dyn BlobFs,
    root: &Path,
    relative: &Path,
    layout: Layout,
    out: &mut Listing,
) -> io::Result<()> {
    let top = relative.as_os_str().is_empty();
    for (name, kind) in fs.list(&root.join(relative))? {
        let path = relative.join(&name);
        match kind {
            Kind::Dir if top && name == "tmp" => {
                for (t, kind) in fs.list(&root.join(&path))? {
                    let len = match kind {
                        Kind::File { len } => len,
                        Kind::Dir => 0,
                    };
                    out.temporary.push((t, len));
                }
            }
            Kind::Dir => walk(fs, root, &path, layout, out)?,
            Kind::File { .. } if top && name == LAYOUT_MARKER => {}
            Kind::File { len } => {
                let parsed = layout::parse_blob_file_name(&name).and_then(|tid| {
                    let oid = layout.parse_oid_path(path.parent()?)?;
                    Some((oid, tid))
                });
                match parsed {
                    Some((oid, tid)) => out.files.push(BlobFile {
                        oid,
                        tid,
                        path,
                        len,
                    }),
                    None => out.strays.push(path),
                }
            }
        }
    }
    Ok(())
}
