//! What a blob directory holds, read from the directory itself: the committed blob files
//! (by oid and tid, as their paths name them), the temporary files in `tmp`, and anything
//! else (a file that is neither, which no storage should leave).
//!
//! The blob oracle ([`crate::fuzz::oracle`]) and the `blobs` step read a secondary's blob
//! directory through this, so they see what ZODB would find there, not what the storage
//! believes it wrote. Entries are sorted: listings do not depend on the order the file
//! system returns them in.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

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
    /// Names of the files in `tmp` (temporary blob files, a journal).
    pub temporary: Vec<String>,
    /// Paths (relative) of files that are neither committed blob files nor in `tmp`.
    pub strays: Vec<PathBuf>,
}

/// Lists the blob directory at `root` (its layout as its `.layout` marker says).
pub fn list(root: &Path) -> io::Result<Listing> {
    let layout = layout::select(root)?;
    let mut listing = Listing::default();
    walk(root, root, layout, &mut listing)?;
    listing.files.sort_by_key(|f| (f.oid, f.tid));
    listing.temporary.sort();
    listing.strays.sort();
    Ok(listing)
}

fn walk(root: &Path, dir: &Path, layout: Layout, out: &mut Listing) -> io::Result<()> {
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
        if entry.file_type()?.is_dir() {
            if dir == root && entry.file_name() == "tmp" {
                for t in fs::read_dir(&path)? {
                    out.temporary
                        .push(t?.file_name().to_string_lossy().into_owned());
                }
                continue;
            }
            walk(root, &path, layout, out)?;
            continue;
        }
        if dir == root && entry.file_name() == LAYOUT_MARKER {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let parsed = layout::parse_blob_file_name(&name).and_then(|tid| {
            let oid = layout.parse_oid_path(relative.parent()?)?;
            Some((oid, tid))
        });
        match parsed {
            Some((oid, tid)) => out.files.push(BlobFile {
                oid,
                tid,
                path: relative,
                len: entry.metadata()?.len(),
            }),
            None => out.strays.push(relative),
        }
    }
    Ok(())
}
