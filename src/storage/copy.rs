//! Copying transactions from one storage into another through the replication write
//! path, like ZODB's `copyTransactionsFrom`: each transaction is begun with its metadata
//! (the extension re-encoded by [`replicated_extension`]), each record restored with its
//! `data_txn`, then voted and finished. The destination takes the source's [`Format`]
//! (an existing destination of another format is refused). Copying a FileStorage into an
//! empty FileStorage therefore produces a byte-identical file.

use crate::storage::{replicated_extension, Format, ReadStorage, Result, Storage, TransactionMeta};
use crate::tid::Tid;

/// What a copy did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyStats {
    pub transactions: u64,
    pub records: u64,
    /// Bytes of record data restored (backpointers followed).
    pub data_bytes: u64,
}

/// Copy every transaction of `src` later than `dst`'s last one (so an interrupted copy
/// resumes where it stopped), in order.
pub fn copy_transactions(src: &dyn ReadStorage, dst: &mut dyn Storage) -> Result<CopyStats> {
    let last = dst.last_transaction();
    let start = (last != Tid::ZERO).then(|| Tid::from_u64(last.as_u64().saturating_add(1)));
    let mut stats = CopyStats::default();
    let format = src.format().unwrap_or(Format::Fs30);
    dst.set_format(format)?;
    for txn in src.iterator(start, None) {
        let txn = txn?;
        let meta = TransactionMeta {
            extension: replicated_extension(&txn.meta.extension, format)?,
            ..txn.meta
        };
        dst.tpc_begin(meta)?;
        let restored = (|| {
            for r in &txn.records {
                dst.restore(r.oid, r.serial, r.data.as_deref(), b"", r.data_txn)?;
                stats.records += 1;
                stats.data_bytes += r.data.as_ref().map_or(0, |d| d.len() as u64);
            }
            dst.tpc_vote()?;
            dst.tpc_finish()
        })();
        if let Err(e) = restored {
            dst.tpc_abort();
            return Err(e);
        }
        stats.transactions += 1;
    }
    dst.sync()?;
    Ok(stats)
}
