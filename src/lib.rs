//! zrs — ZODB Replicated Storage.
//!
//! The library is the sans-IO protocol core and the storages:
//! - [`tid`]: transaction and object ids, ZODB's `TimeStamp`.
//! - [`repr`]: Python `repr` of byte strings (transcripts print like Python).
//! - [`pickle`]: a hardened decoder and an exact encoder for the pickles ZRS speaks.
//! - [`protocol`]: sized-message framing, the message vocabulary, the running checksum.
//! - [`storage`]: the storage interface, `MemoryStorage` and the `FileStorage` (Data.fs).
//! - [`primary`]: the primary as a state machine: events in, actions out.
//! - [`secondary`]: the secondary as a state machine: events in, actions out.
//! - [`net`]: the real TCP driver of that state machine.
//! - [`planted`]: deliberate bugs for mutation testing, compiled away without the feature.

pub mod pickle;
pub mod protocol;
pub mod repr;
pub mod storage;
pub mod tid;

pub use tid::{Oid, Tid};
pub mod log;
pub mod net;
pub mod planted;
pub mod primary;
pub mod secondary;
#[cfg(test)]
mod test_log;
