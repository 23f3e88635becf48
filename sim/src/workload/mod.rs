//! The workload: a model of the ZODB application that commits on the primary — a database
//! of persistent mappings, commits and undo, with records, metadata and tids as ZODB would
//! write them (blobs included). The primary node ([`crate::primary_node`]) writes each commit into a real
//! storage, and the real primary serves it.

pub mod database;
pub mod record;

pub use database::{
    BlobContent, Change, Database, DatabaseError, Meta, Record, RecordBlob, Transaction,
};
