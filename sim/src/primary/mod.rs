//! The simulated primary: a ZODB database model, the records it writes, and the
//! protocol-following server that streams its history to a secondary.

pub mod database;
pub mod record;
pub mod server;

pub use database::{Change, Database, DatabaseError, Meta, Record, Transaction};
pub use server::Server;
