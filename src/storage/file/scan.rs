//! The open-time scan: reads a whole FileStorage once, checks every transaction and data
//! record header, and builds the [`Index`].
//!
//! The scan reads the file in large chunks and skips over data it does not need (pickles
//! are never read), so a 100 MB file indexes in a few tens of milliseconds.
//!
//! Damage is classified as ZODB's `read_index` does, but more cautiously:
//! - a damaged *last* transaction (header cut short, checkpoint status `c` from a vote that
//!   never finished, a length running past the end of the file, records that do not add
//!   up) is the trace of a crash: it is reported as a [`Tail`] for the caller to cut off;
//! - damage followed by a complete transaction (found from the end of the file through the
//!   redundant trailing length) is corruption in the middle: [`StorageError::Corrupt`]
//!   naming the position. Python would truncate the file there and lose the transactions
//!   after it; we refuse instead.

use crate::planted::{planted, Bug};
use crate::storage::{Result, StorageError};
use crate::tid::{Oid, Tid};

use super::backend::Backend;
use super::format::{
    DataHeader, TxnHeader, DATA_HEADER_LEN, MAGIC, MAGIC_PY2, STATUS_CHECKPOINT, STATUS_COMMITTED,
    STATUS_PACKED, STATUS_UNDONE, TXN_HEADER_LEN,
};
use super::index::{Index, MAX_POS};

/// Size of the reads the scan makes.
const CHUNK: usize = 4 << 20;

/// A damaged trailing transaction, to be cut off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tail {
    /// Where the damaged transaction starts: the file's new length.
    pub pos: u64,
    /// How many bytes follow `pos`.
    pub len: u64,
    pub what: String,
}

/// What the scan found.
#[derive(Debug)]
pub struct Scan {
    pub index: Index,
    pub tail: Option<Tail>,
    /// The file was empty (no magic yet).
    pub empty: bool,
}

/// A read-ahead window over the backend.
struct Chunks<'a> {
    backend: &'a dyn Backend,
    file_len: u64,
    start: u64,
    buf: Vec<u8>,
}

impl<'a> Chunks<'a> {
    /// Up to `n` bytes at `pos` (fewer only at the end of the file).
    fn get(&mut self, pos: u64, n: usize) -> Result<&[u8]> {
        let avail = self.file_len.saturating_sub(pos).min(n as u64) as usize;
        let in_buf = pos >= self.start && pos + avail as u64 <= self.start + self.buf.len() as u64;
        if !in_buf {
            let want = self
                .file_len
                .saturating_sub(pos)
                .min(CHUNK.max(avail) as u64) as usize;
            self.buf.resize(want, 0);
            let got = self.backend.read_at(pos, &mut self.buf)?;
            self.buf.truncate(got);
            self.start = pos;
        }
        let off = (pos - self.start) as usize;
        let end = (off + avail).min(self.buf.len());
        Ok(&self.buf[off..end])
    }

    fn u64_at(&mut self, pos: u64) -> Result<Option<u64>> {
        let b = self.get(pos, 8)?;
        Ok(<[u8; 8]>::try_from(b).ok().map(u64::from_be_bytes))
    }

    fn txn_header(&mut self, pos: u64) -> Result<Option<TxnHeader>> {
        let b = self.get(pos, TXN_HEADER_LEN)?;
        Ok(<&[u8; TXN_HEADER_LEN]>::try_from(b)
            .ok()
            .map(TxnHeader::decode))
    }
}

/// Why the transaction at a position cannot be accepted.
enum Check {
    Ok { header: TxnHeader, end: u64 },
    Damaged(String),
}

/// Scan the whole file.
pub fn scan(backend: &dyn Backend, name: &str) -> Result<Scan> {
    let file_len = backend.len()?;
    if file_len == 0 {
        return Ok(Scan {
            index: Index::new(MAGIC.len() as u64),
            tail: None,
            empty: true,
        });
    }
    let corrupt = |pos: u64, what: String| StorageError::Corrupt {
        name: name.to_string(),
        pos,
        what,
    };
    let mut magic = [0u8; 4];
    let n = backend.read_at(0, &mut magic)?;
    if n < 4 && (MAGIC.starts_with(&magic[..n]) || MAGIC_PY2.starts_with(&magic[..n])) {
        // A crash while a new file got its magic: the file is as good as empty.
        return Ok(Scan {
            index: Index::new(MAGIC.len() as u64),
            tail: Some(Tail {
                pos: 0,
                len: n as u64,
                what: "magic cut short".into(),
            }),
            empty: true,
        });
    }
    if n < 4 || (&magic != MAGIC && &magic != MAGIC_PY2) {
        return Err(corrupt(
            0,
            format!(
                "not a FileStorage: magic {:?}, expected \"FS30\" (or \"FS21\")",
                String::from_utf8_lossy(&magic[..n])
            ),
        ));
    }
    if file_len > MAX_POS {
        return Err(corrupt(
            MAX_POS,
            format!("file of {file_len} bytes: FileStorages end at {MAX_POS} bytes"),
        ));
    }
    let mut chunks = Chunks {
        backend,
        file_len,
        start: 0,
        buf: Vec::new(),
    };
    let mut index = Index::new(4);
    let mut records: Vec<(Oid, u64)> = Vec::new();
    let mut pos = 4u64;
    let mut tail = None;
    while pos < file_len {
        records.clear();
        let last = index.last_tid();
        match check_txn(&mut chunks, pos, last, &mut records)? {
            Check::Ok { header, end } => {
                let tid = Tid(header.tid);
                if header.status == STATUS_UNDONE {
                    index.add_unindexed_transaction(tid, pos, end);
                } else {
                    index.add_transaction(tid, pos, &records, end);
                }
                pos = end;
            }
            Check::Damaged(what) => {
                if let Some(q) = complete_txn_at_end(&mut chunks, pos, last)? {
                    return Err(corrupt(
                        pos,
                        format!("{what} (a complete transaction follows at byte {q})"),
                    ));
                }
                tail = Some(Tail {
                    pos,
                    len: file_len - pos,
                    what,
                });
                break;
            }
        }
    }
    Ok(Scan {
        index,
        tail,
        empty: false,
    })
}

/// Indexes the transactions another process finished after the index's end (a ZODB or
/// ZEO server appending to the file a primary serves). Stops at the first transaction not
/// finished yet — status `c` (voted, not finished), a torn or short tail — to be tried
/// again later; returns how many transactions were added.
pub fn scan_appended(backend: &dyn Backend, index: &mut Index) -> Result<u64> {
    let file_len = backend.len()?.min(MAX_POS);
    let mut chunks = Chunks {
        backend,
        file_len,
        start: 0,
        buf: Vec::new(),
    };
    let mut records: Vec<(Oid, u64)> = Vec::new();
    let mut pos = index.end();
    let mut added = 0;
    while pos < file_len {
        records.clear();
        match check_txn(&mut chunks, pos, index.last_tid(), &mut records)? {
            Check::Ok { header, end } => {
                let tid = Tid(header.tid);
                if header.status == STATUS_UNDONE {
                    index.add_unindexed_transaction(tid, pos, end);
                } else {
                    index.add_transaction(tid, pos, &records, end);
                }
                pos = end;
                added += 1;
            }
            Check::Damaged(_) => break,
        }
    }
    Ok(added)
}

/// Check the transaction at `pos`, collecting its records' (oid, position).
fn check_txn(
    chunks: &mut Chunks<'_>,
    pos: u64,
    last: Tid,
    records: &mut Vec<(Oid, u64)>,
) -> Result<Check> {
    let file_len = chunks.file_len;
    let Some(h) = chunks.txn_header(pos)? else {
        return Ok(Check::Damaged(format!(
            "transaction header cut short: {} of {TXN_HEADER_LEN} bytes",
            file_len - pos
        )));
    };
    if Tid(h.tid) <= last {
        return Ok(Check::Damaged(format!(
            "time-stamp reduction: {:?} <= {:?}",
            Tid(h.tid),
            last
        )));
    }
    // A planted bug: a voted but unfinished transaction kept as if it were finished.
    let keep_voted = planted(Bug::ReopenKeepsVoted);
    if h.status == STATUS_CHECKPOINT && !keep_voted {
        return Ok(Check::Damaged(
            "transaction voted but never finished (checkpoint status 'c')".into(),
        ));
    }
    let known = [STATUS_COMMITTED, STATUS_PACKED, STATUS_UNDONE].contains(&h.status)
        || (keep_voted && h.status == STATUS_CHECKPOINT);
    if !known {
        return Ok(Check::Damaged(format!(
            "invalid transaction status {:?}",
            h.status as char
        )));
    }
    if h.tlen < h.header_len() {
        return Ok(Check::Damaged(format!(
            "transaction length {} shorter than its header ({} bytes)",
            h.tlen,
            h.header_len()
        )));
    }
    let tend = match pos.checked_add(h.tlen) {
        Some(e) if e.checked_add(8).is_some_and(|e8| e8 <= file_len) => e,
        _ => {
            return Ok(Check::Damaged(format!(
                "transaction of {} bytes runs past the end of the file ({} bytes left)",
                h.tlen.saturating_add(8),
                file_len - pos
            )))
        }
    };
    if h.status != STATUS_UNDONE {
        let mut rpos = pos + h.header_len();
        while rpos < tend {
            let b = chunks.get(rpos, DATA_HEADER_LEN)?;
            let Ok(b) = <&[u8; DATA_HEADER_LEN]>::try_from(b) else {
                return Ok(Check::Damaged(format!(
                    "data record header at byte {rpos} cut short"
                )));
            };
            let d = DataHeader::decode(b);
            if rpos + DATA_HEADER_LEN as u64 > tend {
                return Ok(Check::Damaged(format!(
                    "data record header at byte {rpos} exceeds the transaction"
                )));
            }
            if d.tloc != pos {
                return Ok(Check::Damaged(format!(
                    "data record at byte {rpos} points to transaction {} instead of {pos}",
                    d.tloc
                )));
            }
            if d.vlen != 0 {
                return Ok(Check::Damaged(format!(
                    "data record at byte {rpos} has a version (length {}); versions are gone",
                    d.vlen
                )));
            }
            let rlen = d.record_len();
            if rlen > tend - rpos {
                return Ok(Check::Damaged(format!(
                    "data record at byte {rpos} of {rlen} bytes exceeds the transaction"
                )));
            }
            if d.plen == 0 {
                let back = chunks
                    .u64_at(rpos + DATA_HEADER_LEN as u64)?
                    .unwrap_or(u64::MAX);
                if back >= rpos {
                    return Ok(Check::Damaged(format!(
                        "data record at byte {rpos} has backpointer {back} not before it"
                    )));
                }
            }
            if d.prev >= rpos {
                return Ok(Check::Damaged(format!(
                    "data record at byte {rpos} has previous-record pointer {} not before it",
                    d.prev
                )));
            }
            records.push((Oid(d.oid), rpos));
            rpos += rlen;
        }
        if rpos != tend {
            return Ok(Check::Damaged(format!(
                "data records end at byte {rpos}, transaction at {tend}"
            )));
        }
    }
    match chunks.u64_at(tend)? {
        Some(rtl) if rtl == h.tlen => {}
        other => {
            return Ok(Check::Damaged(format!(
                "redundant transaction length at byte {tend} is {other:?}, expected {}",
                h.tlen
            )))
        }
    }
    Ok(Check::Ok {
        header: h,
        end: tend + 8,
    })
}

/// Whether the file ends with a complete transaction starting after `pos`; returns its
/// position. Read through the redundant length in the last 8 bytes, as ZODB does.
fn complete_txn_at_end(chunks: &mut Chunks<'_>, pos: u64, last: Tid) -> Result<Option<u64>> {
    let file_len = chunks.file_len;
    if file_len < 8 {
        return Ok(None);
    }
    let Some(rtl) = chunks.u64_at(file_len - 8)? else {
        return Ok(None);
    };
    let Some(q) = (file_len - 8).checked_sub(rtl) else {
        return Ok(None);
    };
    if q <= pos {
        return Ok(None);
    }
    let Some(h) = chunks.txn_header(q)? else {
        return Ok(None);
    };
    let plausible = h.tlen == rtl
        && [STATUS_COMMITTED, STATUS_PACKED, STATUS_UNDONE].contains(&h.status)
        && Tid(h.tid) > last
        && h.header_len() <= h.tlen;
    Ok(plausible.then_some(q))
}
