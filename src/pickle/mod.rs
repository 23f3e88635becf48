//! Pickles as ZRS speaks them: a hardened decoder and an exact encoder, written here rather
//! than taken from `serde-pickle`.
//!
//! `serde-pickle` 1.2 was tried on 121 messages pickled by real Python 2.7 and 3.11 and
//! does not do: it rejects what a Python 3 primary sends (empty bytes at protocols 0–2 are
//! `__builtin__.bytes()` + REDUCE, and every first transaction has an empty user), it
//! rejects Python 2 protocol-0 strings holding `\'`, it overflows the stack on a few KB of
//! nested lists, and it allocates about 4 KB per MARK opcode (1 MB of input, 4 GB of
//! memory). Its encoder does not write CPython's bytes either, and the secondary must write
//! extension pickles byte for byte as ZODB does.
//!
//! - [`decode`]: [`loads`] — protocols 0–5, the opcodes pickled metadata uses, no recursion,
//!   memory proportional to the input, a [`PickleError`] naming byte offset and opcode.
//!   Nothing is ever imported or called: globals and reductions stay opaque values, except
//!   the two forms Python 3 pickles `bytes` with at protocols 0–2, which become bytes.
//! - [`encode`]: [`dumps`] / [`dumps_fast`] / [`dumps_extension`] — CPython 3.11's exact
//!   output for those values.
//! - [`py2`]: [`dumps_py2`] / [`dumps_py2_extension`] — Python 2.7 cPickle's exact
//!   protocol-1 output, as ZODB 4 stores a transaction's extension.
//! - [`value`]: the data model they share.

pub mod decode;
pub mod encode;
pub mod error;
pub mod num;
pub mod opcodes;
pub mod py2;
mod py2_dict;
pub mod value;

pub use decode::{loads, loads_sequence, loads_with, loads_with_stats, DecodeStats, Limits};
pub use encode::{dumps, dumps_extension, dumps_fast};
pub use error::{PickleError, PickleErrorKind};
pub use py2::{dumps_py2, dumps_py2_extension, Identity};
pub use value::Value;
