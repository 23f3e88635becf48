//! The simulated primary: a ZODB database model and the records it writes.

pub mod database;
pub mod record;

pub use database::{Change, Database, DatabaseError, Meta, Record, Transaction};
