//! The simulated primary database: a root mapping of persistent mappings, commits that add
//! or remove keys, set byte values or write blobs, and undo — with records, metadata and
//! tids as ZODB would write them.
//!
//! Blobs are as a ZODB `BlobStorage` keeps them: every revision of a `ZODB.blob.Blob` has
//! a blob file (a blob never written commits an empty one, as ZODB's `Blob()` does), and
//! undoing a transaction copies files as `BlobStorage.undo` does — the file of the
//! revision restored, or, undoing a blob's creation, the file of the undone revision — to
//! the undo's tid. A record says which file its transaction writes ([`RecordBlob`]).
//!
//! Its clock starts at Unix time 1174509177 (as zc.zrs's tests) and moves one second per
//! commit, so tids come out as in the spec transcript.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use zrs::pickle::Value as PickleValue;
use zrs::{Oid, Tid};

use super::record::{mapping_record, Value, BLOB_RECORD};

/// The Unix time zc.zrs's tests start their clock at.
pub const START_TIME: u64 = 1174509177;

/// A committed transaction, as a primary's iterator yields it.
#[derive(Clone, Debug, PartialEq)]
pub struct Transaction {
    pub tid: Tid,
    pub status: u8,
    pub user: Vec<u8>,
    pub description: Vec<u8>,
    /// The extension dict.
    pub extension: PickleValue,
    pub records: Vec<Record>,
}

/// A data record: the full data, and where the primary's record is a backpointer, the
/// transaction holding that data (`None` data with `None` data_txn: creation undone); and
/// the blob file the transaction writes for it, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub oid: Oid,
    pub data: Option<Vec<u8>>,
    pub data_txn: Option<Tid>,
    pub blob: Option<RecordBlob>,
}

/// A blob file's bytes: `literal`, or else [`payload`]`(len, seed)`.
#[derive(Clone, PartialEq, Eq)]
pub struct BlobContent {
    pub len: usize,
    pub seed: u64,
    pub literal: Option<Arc<[u8]>>,
    generated: Generated,
}

impl BlobContent {
    pub fn new(len: usize, seed: u64, literal: Option<Arc<[u8]>>) -> BlobContent {
        BlobContent {
            len,
            seed,
            literal,
            generated: Generated::default(),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        match &self.literal {
            Some(bytes) => bytes,
            None => self
                .generated
                .0
                .get_or_init(|| payload(self.len, self.seed)),
        }
    }
}

impl fmt::Debug for BlobContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobContent")
            .field("len", &self.len)
            .field("seed", &self.seed)
            .field("literal", &self.literal)
            .finish()
    }
}

/// A blob's payload once generated: the primary node writes it and the blob oracle reads it
/// back, and a blob of megabytes is worth generating once (the copies of a content share
/// it). Not part of what a content is: `len` and `seed` say that.
#[derive(Clone, Default)]
struct Generated(Arc<OnceLock<Vec<u8>>>);

impl PartialEq for Generated {
    fn eq(&self, _: &Generated) -> bool {
        true
    }
}

impl Eq for Generated {}

/// The blob file a record's transaction writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordBlob {
    /// The application wrote these bytes.
    Written(BlobContent),
    /// Undo copied the object's blob file of transaction `from` (its bytes: `content`).
    Copied { from: Tid, content: BlobContent },
}

impl RecordBlob {
    pub fn content(&self) -> &BlobContent {
        match self {
            RecordBlob::Written(c) | RecordBlob::Copied { content: c, .. } => c,
        }
    }
}

/// One change of a commit. Paths are keys from the root: `[]` is the root, `["x"]` is
/// `root['x']`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// `parent[key] = PersistentMapping()`.
    AddMapping { parent: Vec<String>, key: String },
    /// `count` new mappings in `parent`, keys `prefix0`, `prefix1`, … (a commit of many
    /// records, written compactly).
    AddMappings {
        parent: Vec<String>,
        prefix: String,
        count: usize,
    },
    /// `parent[key] = bytes` (a payload of `len` bytes made from `seed`).
    SetBytes {
        parent: Vec<String>,
        key: String,
        len: usize,
        seed: u64,
    },
    /// `del parent[key]`.
    Remove { parent: Vec<String>, key: String },
    /// Writes `len` bytes (a payload made from `seed`, or `literal`) into the blob
    /// `parent[key]`: a new revision of it if it is a blob, else a new `ZODB.blob.Blob`
    /// there.
    SetBlob {
        parent: Vec<String>,
        key: String,
        len: usize,
        seed: u64,
        literal: Option<Vec<u8>>,
    },
}

/// Transaction metadata of a commit.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Meta {
    pub user: Vec<u8>,
    pub description: Vec<u8>,
    /// `(key, value)` pairs of the extension dict.
    pub extension: Vec<(String, String)>,
}

/// Why a commit or undo cannot be done.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DatabaseError {
    #[error("no key {key:?} at {path:?}")]
    NoKey { path: Vec<String>, key: String },
    #[error("{path:?} is not a mapping")]
    NotAMapping { path: Vec<String> },
    #[error("no transaction to undo")]
    NothingToUndo,
    #[error("cannot undo {0:?}: an object it changed was changed again later")]
    UndoConflict(Tid),
    #[error("an empty commit writes nothing")]
    Empty,
    #[error("cannot undo {0:?}: a blob it changed was uncreated before, and BlobStorage.undo has no file to restore")]
    BlobUndo(Tid),
}

/// One revision of an object.
#[derive(Clone, Debug)]
struct Revision {
    tid: Tid,
    /// `None`: the object does not exist (its creation was undone).
    items: Option<Vec<(String, Value)>>,
    /// The transaction whose record holds this revision's data.
    data_tid: Tid,
    /// A blob's file at this revision (every revision of a blob object has one).
    blob: Option<BlobContent>,
}

/// The primary's database.
#[derive(Clone, Debug)]
pub struct Database {
    now: u64,
    /// When set, the next tid comes from this Unix time (the simulator's virtual clock)
    /// instead of one second after the last commit.
    clock: Option<f64>,
    /// Tids are later than this (see [`Database::raise_floor`]).
    floor: Tid,
    transactions: Vec<Transaction>,
    /// Every object's revisions, oldest first.
    objects: BTreeMap<Oid, Vec<Revision>>,
    next_oid: u64,
}

impl Default for Database {
    fn default() -> Database {
        Database::new()
    }
}

impl Database {
    /// A database whose first transaction creates the empty root, at [`START_TIME`].
    pub fn new() -> Database {
        let mut db = Database {
            now: START_TIME,
            clock: None,
            floor: Tid::ZERO,
            transactions: Vec::new(),
            objects: BTreeMap::new(),
            next_oid: 1,
        };
        let tid = Tid::from_unix(db.now as f64);
        db.objects.insert(
            Oid::ZERO,
            vec![Revision {
                tid,
                items: Some(Vec::new()),
                data_tid: tid,
                blob: None,
            }],
        );
        db.transactions.push(Transaction {
            tid,
            status: b' ',
            user: Vec::new(),
            description: b"initial database creation".to_vec(),
            extension: PickleValue::Dict(Vec::new()),
            records: vec![Record {
                oid: Oid::ZERO,
                data: Some(mapping_record(&[])),
                data_txn: None,
                blob: None,
            }],
        });
        db
    }

    pub fn transactions(&self) -> &[Transaction] {
        &self.transactions
    }

    pub fn last_tid(&self) -> Tid {
        self.transactions.last().map_or(Tid::ZERO, |t| t.tid)
    }

    /// The first transaction later than `tid`.
    pub fn next_after(&self, tid: Tid) -> Option<&Transaction> {
        let i = self.transactions.partition_point(|t| t.tid <= tid);
        self.transactions.get(i)
    }

    /// The current items of the mapping at `path`.
    pub fn items(&self, path: &[String]) -> Result<&[(String, Value)], DatabaseError> {
        let oid = self.resolve(path)?;
        self.current(oid).ok_or_else(|| DatabaseError::NotAMapping {
            path: path.to_vec(),
        })
    }

    fn current(&self, oid: Oid) -> Option<&[(String, Value)]> {
        self.objects.get(&oid)?.last()?.items.as_deref()
    }

    fn resolve(&self, path: &[String]) -> Result<Oid, DatabaseError> {
        self.resolve_in(path, &[], &[])
    }

    fn next_tid(&mut self) -> Tid {
        let after = self.last_tid().max(self.floor);
        if let Some(time) = self.clock {
            return Tid::from_unix(time).later_than(after);
        }
        self.now += 1;
        Tid::from_unix(self.now as f64).later_than(after)
    }

    /// From now on, tids are later than `tid` (a primary that takes over after a failover
    /// commits later than the one it replaces did).
    pub fn raise_floor(&mut self, tid: Tid) {
        self.floor = self.floor.max(tid);
    }

    /// The tid every new one is later than, beside the last transaction's.
    pub fn floor(&self) -> Tid {
        self.floor
    }

    /// Takes tids from `unix_time` (the virtual clock) until set again; tids still always
    /// increase.
    pub fn set_clock(&mut self, unix_time: f64) {
        self.clock = Some(unix_time);
    }

    /// Commits `changes` as one transaction; the clock moves one second first.
    pub fn commit(&mut self, changes: &[Change], meta: &Meta) -> Result<Tid, DatabaseError> {
        if changes.is_empty() {
            return Err(DatabaseError::Empty);
        }
        let expanded;
        let changes = if changes
            .iter()
            .any(|c| matches!(c, Change::AddMappings { .. }))
        {
            expanded = expand(changes);
            &expanded[..]
        } else {
            changes
        };
        // Work on copies so a failing change leaves the database as it was.
        let mut modified: Vec<(Oid, Vec<(String, Value)>)> = Vec::new();
        let mut created: Vec<Oid> = Vec::new();
        // The blob file each blob object written gets (provisional ids for new blobs).
        let mut blobs: BTreeMap<Oid, BlobContent> = BTreeMap::new();
        // New objects get provisional ids here; their oids come when they are stored.
        let mut provisional = PROVISIONAL;
        for change in changes {
            let (parent, key) = match change {
                Change::AddMapping { parent, key }
                | Change::SetBytes { parent, key, .. }
                | Change::SetBlob { parent, key, .. }
                | Change::Remove { parent, key } => (parent, key),
                Change::AddMappings { .. } => unreachable!("expanded above"),
            };
            let oid = self.resolve_in(parent, &modified, &created)?;
            if let Change::SetBlob {
                len, seed, literal, ..
            } = change
            {
                let content = BlobContent::new(*len, *seed, literal.as_deref().map(Arc::from));
                let items: &[(String, Value)] = match modified.iter().find(|(o, _)| *o == oid) {
                    Some((_, items)) => items,
                    None if created.contains(&oid) => &[],
                    None => self.current(oid).unwrap_or_default(),
                };
                if let Some((_, Value::Blob(blob))) = items.iter().find(|(k, _)| k == key) {
                    // Writing into an existing blob stores the blob alone, not its parent.
                    let blob = *blob;
                    if !created.contains(&blob) && !modified.iter().any(|(o, _)| *o == blob) {
                        modified.push((blob, Vec::new()));
                    }
                    blobs.insert(blob, content);
                    continue;
                }
            }
            if !modified.iter().any(|(o, _)| *o == oid) {
                let items = if created.contains(&oid) {
                    Vec::new()
                } else {
                    self.current(oid).unwrap_or_default().to_vec()
                };
                modified.push((oid, items));
            }
            let items = &mut modified.iter_mut().find(|(o, _)| *o == oid).unwrap().1;
            let value = match change {
                Change::AddMapping { .. } | Change::AddMappings { .. } => {
                    let child = Oid::from_u64(provisional);
                    provisional += 1;
                    created.push(child);
                    Some(Value::Ref(child))
                }
                Change::SetBytes { len, seed, .. } => {
                    Some(Value::Bytes(payload(*len, *seed).into()))
                }
                Change::SetBlob {
                    len, seed, literal, ..
                } => {
                    let child = Oid::from_u64(provisional);
                    provisional += 1;
                    created.push(child);
                    blobs.insert(
                        child,
                        BlobContent::new(*len, *seed, literal.as_deref().map(Arc::from)),
                    );
                    Some(Value::Blob(child))
                }
                Change::Remove { .. } => None,
            };
            let at = items.iter().position(|(k, _)| k == key);
            match (value, at) {
                (Some(v), Some(i)) => items[i].1 = v,
                (Some(v), None) => items.push((key.clone(), v)),
                (None, Some(i)) => {
                    items.remove(i);
                }
                (None, None) => {
                    return Err(DatabaseError::NoKey {
                        path: parent.clone(),
                        key: key.clone(),
                    })
                }
            }
        }
        let (order, oids) = store_order(&modified, self.next_oid);
        self.next_oid += oids.len() as u64;
        let real = |oid: Oid| oids.get(&oid).copied().unwrap_or(oid);
        let tid = self.next_tid();
        let mut records = Vec::with_capacity(order.len());
        for oid in order {
            // A new mapping that got no items of its own is an empty one.
            let mut items = modified
                .iter()
                .find(|(o, _)| *o == oid)
                .map(|(_, items)| items.clone())
                .unwrap_or_default();
            for (_, value) in items.iter_mut() {
                if let Value::Ref(child) | Value::Blob(child) = value {
                    *child = real(*child);
                }
            }
            let blob = blobs.get(&oid).cloned();
            let oid = real(oid);
            records.push(Record {
                oid,
                data: Some(match blob {
                    Some(_) => BLOB_RECORD.to_vec(),
                    None => mapping_record(&items),
                }),
                data_txn: None,
                blob: blob.clone().map(RecordBlob::Written),
            });
            self.objects.entry(oid).or_default().push(Revision {
                tid,
                items: Some(items),
                data_tid: tid,
                blob,
            });
        }
        self.transactions.push(Transaction {
            tid,
            status: b' ',
            user: meta.user.clone(),
            description: meta.description.clone(),
            extension: PickleValue::Dict(
                meta.extension
                    .iter()
                    .map(|(k, v)| (PickleValue::Str(k.clone()), PickleValue::Str(v.clone())))
                    .collect(),
            ),
            records,
        });
        Ok(tid)
    }

    /// Resolves a path while a commit is being built: objects it already changed count with
    /// their new items, objects it created are empty.
    fn resolve_in(
        &self,
        path: &[String],
        modified: &[(Oid, Vec<(String, Value)>)],
        created: &[Oid],
    ) -> Result<Oid, DatabaseError> {
        let mut oid = Oid::ZERO;
        for (depth, key) in path.iter().enumerate() {
            let items: &[(String, Value)] = match modified.iter().find(|(o, _)| *o == oid) {
                Some((_, items)) => items,
                None if created.contains(&oid) => &[],
                None => self
                    .current(oid)
                    .ok_or_else(|| DatabaseError::NotAMapping {
                        path: path[..depth].to_vec(),
                    })?,
            };
            match items.iter().find(|(k, _)| k == key) {
                Some((_, Value::Ref(child))) => oid = *child,
                Some(_) => {
                    return Err(DatabaseError::NotAMapping {
                        path: path[..=depth].to_vec(),
                    })
                }
                None => {
                    return Err(DatabaseError::NoKey {
                        path: path[..depth].to_vec(),
                        key: key.clone(),
                    })
                }
            }
        }
        Ok(oid)
    }

    /// Undoes the transaction `tid` (ZODB's transactional undo): each object it changed
    /// goes back to its revision before, written as a backpointer to the transaction that
    /// holds that revision's data; an object it created is uncreated (no data).
    pub fn undo(&mut self, tid: Tid) -> Result<Tid, DatabaseError> {
        let txn = self
            .transactions
            .iter()
            .skip(1) // the root's creation cannot be undone
            .find(|t| t.tid == tid)
            .ok_or(DatabaseError::NothingToUndo)?;
        let oids: Vec<Oid> = txn.records.iter().map(|r| r.oid).collect();
        for oid in &oids {
            let revisions = &self.objects[oid];
            if revisions.last().map(|r| r.tid) != Some(tid) {
                return Err(DatabaseError::UndoConflict(tid));
            }
            if !blob_undoable(revisions) {
                return Err(DatabaseError::BlobUndo(tid));
            }
        }
        let new_tid = self.next_tid();
        let mut records = Vec::with_capacity(oids.len());
        for oid in oids {
            let revisions = self.objects.get_mut(&oid).expect("checked above");
            let undone = revisions.last().expect("checked above").clone();
            let before = revisions.len().checked_sub(2).map(|i| revisions[i].clone());
            let (record, revision) = match before {
                Some(prev) if prev.items.is_some() => (
                    Record {
                        oid,
                        data: Some(match prev.blob {
                            Some(_) => BLOB_RECORD.to_vec(),
                            None => mapping_record(prev.items.as_deref().unwrap_or_default()),
                        }),
                        data_txn: Some(prev.data_tid),
                        // BlobStorage.undo: the restored revision's file, copied.
                        blob: prev.blob.clone().map(|content| RecordBlob::Copied {
                            from: prev.tid,
                            content,
                        }),
                    },
                    Revision {
                        tid: new_tid,
                        items: prev.items,
                        data_tid: prev.data_tid,
                        blob: prev.blob,
                    },
                ),
                _ => (
                    Record {
                        oid,
                        data: None,
                        data_txn: None,
                        // BlobStorage.undo of a creation: the undone revision's file, copied.
                        blob: undone.blob.clone().map(|content| RecordBlob::Copied {
                            from: undone.tid,
                            content,
                        }),
                    },
                    Revision {
                        tid: new_tid,
                        items: None,
                        data_tid: new_tid,
                        blob: undone.blob,
                    },
                ),
            };
            revisions.push(revision);
            records.push(record);
        }
        self.transactions.push(Transaction {
            tid: new_tid,
            status: b' ',
            user: Vec::new(),
            description: Vec::new(),
            extension: PickleValue::Dict(Vec::new()),
            records,
        });
        Ok(new_tid)
    }

    /// Undoes the last transaction.
    pub fn undo_last(&mut self) -> Result<Tid, DatabaseError> {
        self.undo_back(1)
    }

    /// Undoes the `n`-th last transaction (1: the last).
    pub fn undo_back(&mut self, n: usize) -> Result<Tid, DatabaseError> {
        let len = self.transactions.len();
        // The root's creation (the first transaction) cannot be undone.
        if n == 0 || n >= len {
            return Err(DatabaseError::NothingToUndo);
        }
        self.undo(self.transactions[len - n].tid)
    }

    /// Whether [`Database::undo_back`] would succeed.
    pub fn can_undo_back(&self, n: usize) -> bool {
        let len = self.transactions.len();
        if n == 0 || n >= len {
            return false;
        }
        let t = &self.transactions[len - n];
        t.records.iter().all(|r| {
            let revisions = &self.objects[&r.oid];
            revisions.last().map(|v| v.tid) == Some(t.tid) && blob_undoable(revisions)
        })
    }

    /// Every blob file the primary holds: `(oid, tid)` and its bytes, in tid order.
    pub fn blob_files(&self) -> impl Iterator<Item = (Oid, Tid, BlobContent)> + '_ {
        self.transactions.iter().flat_map(|t| {
            t.records
                .iter()
                .filter_map(move |r| r.blob.as_ref().map(|b| (r.oid, t.tid, b.content().clone())))
        })
    }
}

/// Whether undoing an object's last revision works on a `BlobStorage`: a blob whose
/// revision before is an undone creation has no file `BlobStorage.undo` could restore
/// (ZODB fails that undo), so the model refuses it.
fn blob_undoable(revisions: &[Revision]) -> bool {
    let n = revisions.len();
    let is_blob = revisions[n - 1].blob.is_some();
    !(is_blob && n >= 2 && revisions[n - 2].items.is_none())
}

/// Where provisional ids of a commit's new objects start (far above any real oid).
const PROVISIONAL: u64 = 1 << 62;

/// The order a commit's records are stored in, and the oids its new objects get, as ZODB's
/// `Connection` does it: each changed existing object in the order it was first changed,
/// each followed by the new objects its pickle reaches, depth first from a stack (ZODB's
/// `NewObjectIterator` pops the object found last); a new object gets its oid when its
/// parent's pickle reaches it. A new object no pickle reaches (added and removed in the same
/// commit) is not stored and takes no oid.
fn store_order(
    modified: &[(Oid, Vec<(String, Value)>)],
    next_oid: u64,
) -> (Vec<Oid>, BTreeMap<Oid, Oid>) {
    let is_new = |oid: &Oid| oid.as_u64() >= PROVISIONAL;
    let mut oids = BTreeMap::new();
    let mut order = Vec::new();
    for (registered, _) in modified.iter().filter(|(o, _)| !is_new(o)) {
        let mut stack = vec![*registered];
        while let Some(oid) = stack.pop() {
            order.push(oid);
            let items = modified.iter().find(|(o, _)| *o == oid).map(|(_, i)| i);
            for (_, value) in items.into_iter().flatten() {
                if let Value::Ref(child) | Value::Blob(child) = value {
                    if is_new(child) && !oids.contains_key(child) {
                        oids.insert(*child, Oid::from_u64(next_oid + oids.len() as u64));
                        stack.push(*child);
                    }
                }
            }
        }
    }
    (order, oids)
}

/// `AddMappings` spelled out as one `AddMapping` per key.
fn expand(changes: &[Change]) -> Vec<Change> {
    let mut out = Vec::with_capacity(changes.len());
    for c in changes {
        match c {
            Change::AddMappings {
                parent,
                prefix,
                count,
            } => out.extend((0..*count).map(|i| Change::AddMapping {
                parent: parent.clone(),
                key: format!("{prefix}{i}"),
            })),
            other => out.push(other.clone()),
        }
    }
    out
}

/// A deterministic payload: `len` bytes from a small xorshift seeded with `seed`.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    // Eight bytes per xorshift step: blobs of megabytes are generated in campaigns, and one
    // step per byte made this a fifth of a campaign's time.
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn add(key: &str) -> Change {
        Change::AddMapping {
            parent: vec![],
            key: key.into(),
        }
    }

    #[test]
    fn tids_follow_the_reference_clock() {
        let mut db = Database::new();
        db.commit(&[add("x")], &Meta::default()).unwrap();
        let undo = db.undo_last().unwrap();
        // Unix 1174509179, as the check and the spec's third transaction.
        assert_eq!(undo.0, *b"\x03lk\x90\xfb\xbb\xbb\xbb");
        assert_eq!(db.transactions()[0].tid.0, *b"\x03lk\x90\xf3333");
        assert_eq!(db.transactions()[1].tid.0, *b"\x03lk\x90\xf7www");
    }

    fn add_in(parent: &[&str], key: &str) -> Change {
        Change::AddMapping {
            parent: parent.iter().map(|p| p.to_string()).collect(),
            key: key.into(),
        }
    }

    #[test]
    fn records_are_stored_and_numbered_as_zodb_stores_them() {
        // Python ZODB 6.4 stores these three commits' records with oids [0, 2, 1, 3],
        // [0, 4] and [1, 5, 2, 6, 0]: changed objects in the order first changed, each
        // followed depth first (last found first) by the new objects its pickle reaches,
        // numbered as reached; `n` and `m`, added and removed, are never stored.
        let mut db = Database::new();
        let oids = |db: &Database| -> Vec<u64> {
            let t = db.transactions().last().unwrap();
            t.records.iter().map(|r| r.oid.as_u64()).collect()
        };
        db.commit(&[add("a"), add_in(&["a"], "x"), add("b")], &Meta::default())
            .unwrap();
        assert_eq!(oids(&db), [0, 2, 1, 3]);
        db.commit(&[add("k")], &Meta::default()).unwrap();
        assert_eq!(oids(&db), [0, 4]);
        let remove = Change::Remove {
            parent: vec![],
            key: "n".into(),
        };
        db.commit(
            &[
                add_in(&["a"], "y"),
                add_in(&["b"], "z"),
                add("n"),
                add_in(&["n"], "m"),
                remove,
            ],
            &Meta::default(),
        )
        .unwrap();
        assert_eq!(oids(&db), [1, 5, 2, 6, 0]);
        // The references point at the oids given.
        assert_eq!(
            db.items(&["a".into()]).unwrap(),
            &[
                ("x".to_string(), Value::Ref(Oid::from_u64(3))),
                ("y".to_string(), Value::Ref(Oid::from_u64(5)))
            ]
        );
    }

    #[test]
    fn undo_writes_backpointers_and_uncreates() {
        let mut db = Database::new();
        let first = db.last_tid();
        db.commit(&[add("x")], &Meta::default()).unwrap();
        db.undo_last().unwrap();
        let undo = db.transactions().last().unwrap();
        assert_eq!(undo.records.len(), 2);
        assert_eq!(undo.records[0].oid, Oid::ZERO);
        assert_eq!(undo.records[0].data_txn, Some(first));
        assert_eq!(
            undo.records[0].data.as_deref(),
            Some(&mapping_record(&[])[..])
        );
        assert_eq!(
            undo.records[1],
            Record {
                oid: Oid::from_u64(1),
                data: None,
                data_txn: None,
                blob: None,
            }
        );
        assert!(db.items(&[]).unwrap().is_empty());
    }

    fn blob(parent: &[&str], key: &str, len: usize) -> Change {
        Change::SetBlob {
            parent: parent.iter().map(|p| p.to_string()).collect(),
            key: key.into(),
            len,
            seed: 9,
            literal: None,
        }
    }

    #[test]
    fn blobs_are_stored_and_undone_as_a_blob_storage_does() {
        let mut db = Database::new();
        // As ZODB 6.4 stored `x['f'] = Blob(b'hi'); x['g'] = Blob()`: x, then g, then f.
        db.commit(&[add("x")], &Meta::default()).unwrap();
        let t2 = db
            .commit(
                &[blob(&["x"], "f", 2), blob(&["x"], "g", 0)],
                &Meta::default(),
            )
            .unwrap();
        let t = db.transactions().last().unwrap();
        let oids: Vec<u64> = t.records.iter().map(|r| r.oid.as_u64()).collect();
        assert_eq!(oids, [1, 3, 2]);
        assert_eq!(t.records[1].data.as_deref(), Some(BLOB_RECORD));
        assert_eq!(
            t.records[2].blob,
            Some(RecordBlob::Written(BlobContent::new(2, 9, None)))
        );
        assert_eq!(t.records[0].blob, None);
        // Writing into an existing blob stores the blob alone.
        let t3 = db
            .commit(&[blob(&["x"], "f", 5)], &Meta::default())
            .unwrap();
        let t = db.transactions().last().unwrap();
        assert_eq!(t.records.len(), 1);
        assert_eq!(t.records[0].oid, Oid::from_u64(2));
        // Undoing it restores the revision before, its file copied to the undo's tid.
        let t4 = db.undo_last().unwrap();
        let r = &db.transactions().last().unwrap().records[0];
        assert_eq!(r.data_txn, Some(t2));
        assert_eq!(
            r.blob,
            Some(RecordBlob::Copied {
                from: t2,
                content: BlobContent::new(2, 9, None)
            })
        );
        // Undoing a creation: no data, the created file copied.
        let t5 = db
            .commit(&[blob(&["x"], "h", 7)], &Meta::default())
            .unwrap();
        db.undo_last().unwrap();
        let undo = db.transactions().last().unwrap();
        let h = undo
            .records
            .iter()
            .find(|r| r.oid == Oid::from_u64(4))
            .unwrap();
        assert_eq!((h.data.as_ref(), h.data_txn), (None, None));
        assert_eq!(
            h.blob,
            Some(RecordBlob::Copied {
                from: t5,
                content: BlobContent::new(7, 9, None)
            })
        );
        // Every file the primary holds.
        let files: Vec<(u64, Tid)> = db.blob_files().map(|(o, t, _)| (o.as_u64(), t)).collect();
        assert_eq!(files.len(), 6);
        assert!(files.contains(&(2, t3)) && files.contains(&(2, t4)));
        assert!(files.contains(&(4, undo.tid)));
    }

    #[test]
    fn undo_of_a_later_changed_object_is_refused() {
        let mut db = Database::new();
        let t = db.commit(&[add("x")], &Meta::default()).unwrap();
        db.commit(&[add("y")], &Meta::default()).unwrap();
        assert_eq!(db.undo(t), Err(DatabaseError::UndoConflict(t)));
    }

    #[test]
    fn nested_changes_and_removal() {
        let mut db = Database::new();
        db.commit(
            &[
                add("x"),
                Change::SetBytes {
                    parent: vec!["x".into()],
                    key: "big".into(),
                    len: 70_000,
                    seed: 7,
                },
            ],
            &Meta::default(),
        )
        .unwrap();
        let t = db.transactions().last().unwrap();
        assert_eq!(t.records.len(), 2);
        assert!(t.records[1].data.as_ref().unwrap().len() > 70_000);
        db.commit(
            &[Change::Remove {
                parent: vec![],
                key: "x".into(),
            }],
            &Meta::default(),
        )
        .unwrap();
        assert!(db.items(&[]).unwrap().is_empty());
        let missing = db.commit(
            &[Change::Remove {
                parent: vec![],
                key: "x".into(),
            }],
            &Meta::default(),
        );
        assert!(matches!(missing, Err(DatabaseError::NoKey { .. })));
    }
}
