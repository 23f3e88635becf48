//! The values a ZRS pickle can hold, kept losslessly.
//!
//! Python 2 `str` and Python 3 `bytes` both become [`Value::Bytes`]; Python 3 `str` and
//! Python 2 `unicode` become [`Value::Str`]; Python 2's `int` and `long` stay apart
//! ([`Value::Int`], [`Value::BigInt`]). Dicts keep their pickled order (no hashing,
//! so iteration is deterministic). Anything the decoder does not interpret (a global, an
//! object built by REDUCE/NEWOBJ/BUILD) is kept as an opaque value that can be pickled again;
//! nothing is ever imported or executed.

/// A decoded pickle value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    /// An integer pickled as an int (INT, BININT*), Python 2's `int`.
    Int(i64),
    /// An integer pickled as a long (LONG, LONG1, LONG4), or too large for i64: minimal
    /// little-endian two's-complement bytes, as LONG1 carries it. Python 3 makes no
    /// difference; Python 2 does (`5L` is a `long`), and its pickles keep it.
    BigInt(Vec<u8>),
    Float(f64),
    Bytes(Vec<u8>),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    /// A reference to a global (`module.name`), never resolved.
    Global {
        module: String,
        name: String,
    },
    /// `callable(*args)` as REDUCE / NEWOBJ builds it, with the BUILD state if any.
    Object {
        callable: Box<Value>,
        args: Box<Value>,
        state: Option<Box<Value>>,
    },
    /// A persistent id (PERSID / BINPERSID), as ZODB records reference other objects.
    PersistentId(Box<Value>),
}
