//! The decoder's error: where in the input (byte offset, opcode) and what was wrong.

use std::fmt;

use super::opcodes;

/// A pickle that could not be decoded. `offset` is the position of the opcode being executed
/// (or the end of the data when there was none to read).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct PickleError {
    pub offset: usize,
    /// The opcode being executed, `None` when the data ended where an opcode was due.
    pub opcode: Option<u8>,
    pub kind: PickleErrorKind,
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pickle error at byte {}", self.offset)?;
        if let Some(op) = self.opcode {
            match opcodes::name(op) {
                Some(name) => write!(f, " (opcode 0x{op:02x} {name})")?,
                None => write!(f, " (opcode 0x{op:02x})")?,
            }
        }
        write!(f, ": {}", self.kind)
    }
}

/// What was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PickleErrorKind {
    #[error("no data")]
    Empty,
    #[error("data ended before STOP")]
    NoStop,
    #[error("needs {needed} more bytes, only {remaining} remain")]
    Truncated { needed: usize, remaining: usize },
    #[error("length {length} exceeds remaining {remaining} bytes")]
    LengthExceedsRemaining { length: u64, remaining: usize },
    #[error("negative length {0}")]
    NegativeLength(i64),
    #[error("no newline before the end of the data")]
    MissingNewline,
    #[error("unknown opcode")]
    UnknownOpcode,
    #[error("opcode not supported (ZRS messages never use it)")]
    UnsupportedOpcode,
    #[error("unsupported pickle protocol {0}")]
    UnsupportedProtocol(u8),
    #[error("stack underflow")]
    StackUnderflow,
    #[error("no MARK to match")]
    NoMark,
    #[error("memo has no entry {0}")]
    MemoMissing(u64),
    #[error("invalid {what} argument {text:?}")]
    BadArgument { what: &'static str, text: String },
    #[error("invalid UTF-8 in {0}")]
    InvalidUtf8(&'static str),
    #[error("invalid escape in {what}: {detail}")]
    BadEscape { what: &'static str, detail: String },
    #[error("integer literal has more than {0} digits")]
    IntTooLong(usize),
    #[error("expected {expected}, found {found}")]
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    #[error("odd number of items for a dict")]
    OddDictItems,
    #[error("unhashable dict key ({0})")]
    Unhashable(&'static str),
    #[error("BUILD applies to an object that already has state or is not an object")]
    BadBuild,
    #[error("a container contains itself (recursive structure)")]
    Recursive,
    #[error("nesting deeper than the limit of {0}")]
    TooDeep(usize),
    #[error("decoded value would exceed {0} bytes (the input shares values too often)")]
    TooLarge(usize),
    #[error("{0}")]
    Other(&'static str),
}
