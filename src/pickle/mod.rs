//! Pickles as ZRS speaks them: a hardened decoder and an exact encoder.
//!
//! See `value` for the data model both sides share.

pub mod value;

pub use value::Value;
