//! The messages a primary sends after the handshake.
//!
//! Each is a pickled `(type, args)` tuple; `S` and `B` are followed by raw (unpickled)
//! messages: one data message, and for `B` then `blocks` blob chunks.
//!
//! [`Message::decode`] accepts what Python 2 and Python 3 primaries send (ids as bytes or
//! Python 2 str, status and version as str or bytes, user and description as bytes or
//! text, the legacy `('C', ())`) and names the message and the field in every
//! [`MessageError`]. [`Message::encode_fast`] writes the bytes a Python 3 zc.zrs primary
//! writes; [`Message::encode`] what `pickle.dumps` writes at a given protocol.

use crate::pickle::{dumps, dumps_fast, loads, loads_with_stats, Limits, PickleError, Value};
use crate::tid::{Oid, Tid};

/// `('T', (tid, status, user, description, extension))`: a transaction begins.
#[derive(Clone, Debug, PartialEq)]
pub struct TransactionHeader {
    pub tid: Tid,
    /// `b' '` normally, `b'p'` for a packed transaction.
    pub status: u8,
    pub user: Vec<u8>,
    pub description: Vec<u8>,
    /// The decoded extension dict (a [`Value::Dict`]).
    pub extension: Value,
}

/// `(oid, serial, version, data_txn)` of an `S` or `B` message.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordHeader {
    pub oid: Oid,
    pub serial: Tid,
    /// Always empty in practice (ZODB versions are gone); kept as sent.
    pub version: Vec<u8>,
    /// Where the primary's record is a backpointer: the transaction that holds the data.
    pub data_txn: Option<Tid>,
}

/// A pickled ZRS message.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// `T`
    Transaction(TransactionHeader),
    /// `S`, followed by one raw data message (empty = no data).
    Store(RecordHeader),
    /// `B`, followed by one raw data message and `blocks` raw blob chunks.
    Blob { record: RecordHeader, blocks: u64 },
    /// `C`: the md5 of the stream before it, or `None` for the legacy `('C', ())`.
    Commit { checksum: Option<[u8; 16]> },
}

// ---- codec ----

/// A message that is not what a primary sends.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("message is not a valid pickle: {0}")]
    Pickle(#[from] PickleError),
    #[error("message must be a (type, args) tuple, got {0}")]
    NotATuple(String),
    #[error("message type must be a one-character string, got {0}")]
    BadType(String),
    #[error("unknown message type '{0}'")]
    UnknownType(String),
    #[error("bad '{kind}' message: {what}")]
    Bad { kind: char, what: String },
}

/// Python's name for the type of a value, for error messages.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::None => "NoneType",
        Value::Bool(_) => "bool",
        Value::Int(_) | Value::BigInt(_) => "int",
        Value::Float(_) => "float",
        Value::Bytes(_) => "bytes",
        Value::Str(_) => "str",
        Value::Tuple(_) => "tuple",
        Value::List(_) => "list",
        Value::Dict(_) => "dict",
        Value::Global { .. } => "global",
        Value::Object { .. } => "object",
        Value::PersistentId(_) => "persistent id",
    }
}

/// Field checks for one message kind.
struct Fields {
    kind: char,
}

impl Fields {
    fn bad(&self, what: String) -> MessageError {
        MessageError::Bad {
            kind: self.kind,
            what,
        }
    }

    fn args<'v>(&self, args: &'v Value, arity: &[usize]) -> Result<&'v [Value], MessageError> {
        let Value::Tuple(items) = args else {
            return Err(self.bad(format!(
                "arguments must be a tuple, got {}",
                type_name(args)
            )));
        };
        if !arity.contains(&items.len()) {
            let expected = arity
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" or ");
            return Err(self.bad(format!("expected {expected} fields, got {}", items.len())));
        }
        Ok(items)
    }

    /// Python 3 bytes or a Python 2 str (both decode to bytes).
    fn bytes<'v>(&self, name: &str, v: &'v Value) -> Result<&'v [u8], MessageError> {
        match v {
            Value::Bytes(b) => Ok(b),
            other => Err(self.bad(format!("{name} must be bytes, got {}", type_name(other)))),
        }
    }

    fn id8(&self, name: &str, v: &Value) -> Result<[u8; 8], MessageError> {
        let b = self.bytes(name, v)?;
        <[u8; 8]>::try_from(b)
            .map_err(|_| self.bad(format!("{name} must be 8 bytes, got {}", b.len())))
    }

    /// bytes, or text (a Python 3 str / Python 2 unicode) kept as its UTF-8.
    fn text(&self, name: &str, v: &Value) -> Result<Vec<u8>, MessageError> {
        match v {
            Value::Bytes(b) => Ok(b.clone()),
            Value::Str(s) => Ok(s.as_bytes().to_vec()),
            other => Err(self.bad(format!(
                "{name} must be bytes or str, got {}",
                type_name(other)
            ))),
        }
    }

    fn record(&self, items: &[Value]) -> Result<RecordHeader, MessageError> {
        let data_txn = match &items[3] {
            Value::None => None,
            Value::Bytes(b) => Some(Tid(<[u8; 8]>::try_from(b.as_slice())
                .map_err(|_| self.bad(format!("data_txn must be 8 bytes, got {}", b.len())))?)),
            other => {
                return Err(self.bad(format!(
                    "data_txn must be None or bytes, got {}",
                    type_name(other)
                )))
            }
        };
        Ok(RecordHeader {
            oid: Oid(self.id8("oid", &items[0])?),
            serial: Tid(self.id8("serial", &items[1])?),
            version: self.text("version", &items[2])?,
            data_txn,
        })
    }
}

fn bytes_value(b: &[u8]) -> Value {
    Value::Bytes(b.to_vec())
}

fn message(kind: &str, args: Vec<Value>) -> Value {
    Value::Tuple(vec![Value::Str(kind.into()), Value::Tuple(args)])
}

/// The exact bytes a Python 3 zc.zrs primary pickles an `S` or `C` message to (protocol
/// 1, fast mode; see [`Message::encode_fast`]), read without building a pickle value: the
/// catch-up decodes one `S` per record. Anything else — Python 2 primaries, other
/// protocols, versions, whatever deviates by one byte — is `None`, for the general path.
mod fast {
    use super::{Message, RecordHeader};
    use crate::tid::{Oid, Tid};

    const BYTES_HEAD: &[u8] = b"c_codecs\nencode\n(X";
    const BYTES_TAIL: &[u8] = b"X\x06\x00\x00\x00latin1tR";

    struct Reader<'a>(&'a [u8]);

    impl<'a> Reader<'a> {
        fn tag(&mut self, t: &[u8]) -> Option<()> {
            self.0 = self.0.strip_prefix(t)?;
            Some(())
        }

        /// `_codecs.encode(<latin-1 text>, 'latin1')`: Python 3 bytes at protocol 1.
        fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
            self.tag(BYTES_HEAD)?;
            let len = u32::from_le_bytes(self.0.get(..4)?.try_into().ok()?) as usize;
            let text = self.0.get(4..4 + len)?;
            self.0 = &self.0[4 + len..];
            let mut out = [0u8; N];
            let mut n = 0;
            let mut i = 0;
            while i < text.len() {
                let b = text[i];
                let c = if b < 0x80 {
                    i += 1;
                    b
                } else if (b == 0xc2 || b == 0xc3)
                    && text.get(i + 1).is_some_and(|c| c & 0xc0 == 0x80)
                {
                    i += 2;
                    ((b & 0x1f) << 6) | (text[i - 1] & 0x3f)
                } else {
                    return None;
                };
                *out.get_mut(n)? = c;
                n += 1;
            }
            (n == N).then_some(())?;
            self.tag(BYTES_TAIL)?;
            Some(out)
        }
    }

    pub(super) fn decode(payload: &[u8]) -> Option<Message> {
        let mut r = Reader(payload);
        r.tag(b"(X\x01\x00\x00\x00")?;
        let message = match *r.0.first()? {
            b'S' => {
                r.tag(b"S(")?;
                let oid = Oid(r.bytes::<8>()?);
                let serial = Tid(r.bytes::<8>()?);
                r.tag(b"X\x00\x00\x00\x00")?;
                let data_txn = if r.tag(b"N").is_some() {
                    None
                } else {
                    Some(Tid(r.bytes::<8>()?))
                };
                Message::Store(RecordHeader {
                    oid,
                    serial,
                    version: Vec::new(),
                    data_txn,
                })
            }
            b'C' => {
                r.tag(b"C(")?;
                Message::Commit {
                    checksum: Some(r.bytes::<16>()?),
                }
            }
            _ => return None,
        };
        r.tag(b"tt.")?;
        r.0.is_empty().then_some(message)
    }
}

impl Message {
    /// Decode one pickled message as a Python 2 or Python 3 primary sends it.
    pub fn decode(payload: &[u8]) -> Result<Message, MessageError> {
        if let Some(m) = fast::decode(payload) {
            return Ok(m);
        }
        Message::decode_general(payload)
    }

    /// [`Message::decode`] without the fast path for a Python 3 primary's `S` and `C`.
    pub fn decode_general(payload: &[u8]) -> Result<Message, MessageError> {
        Message::from_value(loads(payload)?)
    }

    /// [`Message::decode`], also telling whether Python 2 pickled the message: it holds
    /// Python 2 `str` opcodes (STRING, BINSTRING, SHORT_BINSTRING), which Python 3 never
    /// writes (its bytes are BINBYTES, or `_codecs.encode` below protocol 3).
    pub fn decode_python2(payload: &[u8]) -> Result<(Message, bool), MessageError> {
        // The fast path reads only what a Python 3 primary pickles.
        if let Some(m) = fast::decode(payload) {
            return Ok((m, false));
        }
        let (v, stats) = loads_with_stats(payload, &Limits::default());
        Ok((Message::from_value(v?)?, stats.py2_strings > 0))
    }

    fn from_value(v: Value) -> Result<Message, MessageError> {
        let (kind, args) = match v {
            Value::Tuple(mut items) if items.len() == 2 => {
                let args = items.pop().expect("2 items");
                (items.pop().expect("2 items"), args)
            }
            Value::Tuple(items) => {
                return Err(MessageError::NotATuple(format!(
                    "a tuple of {}",
                    items.len()
                )))
            }
            other => return Err(MessageError::NotATuple(type_name(&other).into())),
        };
        let kind = match kind {
            Value::Str(s) => s,
            // A Python 2 primary's 'T' is a str, which decodes to bytes.
            Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
            other => return Err(MessageError::BadType(type_name(&other).into())),
        };
        let f = match kind.as_str() {
            "T" | "S" | "B" | "C" => Fields {
                kind: kind.chars().next().expect("one char"),
            },
            _ => return Err(MessageError::UnknownType(kind.escape_debug().to_string())),
        };
        match f.kind {
            'T' => {
                let items = f.args(&args, &[5])?;
                let status = match &items[1] {
                    Value::Str(s)
                        if s.chars().count() == 1 && (s.chars().next().unwrap() as u32) < 256 =>
                    {
                        s.chars().next().unwrap() as u32 as u8
                    }
                    Value::Bytes(b) if b.len() == 1 => b[0],
                    Value::Str(_) | Value::Bytes(_) => {
                        return Err(f.bad("status must be 1 character".into()))
                    }
                    other => {
                        return Err(f.bad(format!(
                            "status must be bytes or str, got {}",
                            type_name(other)
                        )))
                    }
                };
                if !matches!(items[4], Value::Dict(_)) {
                    return Err(f.bad(format!(
                        "extension must be a dict, got {}",
                        type_name(&items[4])
                    )));
                }
                Ok(Message::Transaction(TransactionHeader {
                    tid: Tid(f.id8("tid", &items[0])?),
                    status,
                    user: f.text("user", &items[2])?,
                    description: f.text("description", &items[3])?,
                    extension: match args {
                        Value::Tuple(mut a) => a.pop().expect("5 items"),
                        _ => unreachable!("checked to be a tuple"),
                    },
                }))
            }
            'S' => {
                let items = f.args(&args, &[4])?;
                Ok(Message::Store(f.record(items)?))
            }
            'B' => {
                let items = f.args(&args, &[5])?;
                let record = f.record(&items[..4])?;
                // A long (even a small one) is as good a count as an int.
                let count = match &items[4] {
                    Value::BigInt(b) => crate::pickle::num::twos_to_value(b),
                    v => v.clone(),
                };
                let blocks = match &count {
                    Value::Int(n) if *n >= 0 => *n as u64,
                    Value::Int(_) => return Err(f.bad("blocks must not be negative".into())),
                    // Beyond i64 but within u64 (decoded BigInts are minimal, so a
                    // non-negative one fits when it has at most 8 bytes plus a sign byte).
                    Value::BigInt(b) if b.len() <= 9 && b.last() == Some(&0) => {
                        let mut buf = [0u8; 8];
                        buf.copy_from_slice(&b[..8]);
                        u64::from_le_bytes(buf)
                    }
                    Value::BigInt(_) => return Err(f.bad("blocks out of range".into())),
                    other => {
                        return Err(
                            f.bad(format!("blocks must be an int, got {}", type_name(other)))
                        )
                    }
                };
                Ok(Message::Blob { record, blocks })
            }
            _ => {
                let items = f.args(&args, &[0, 1])?;
                let checksum = match items.first() {
                    None => None,
                    Some(v) => {
                        let b = f.bytes("checksum", v)?;
                        Some(<[u8; 16]>::try_from(b).map_err(|_| {
                            f.bad(format!("checksum must be 16 bytes, got {}", b.len()))
                        })?)
                    }
                };
                Ok(Message::Commit { checksum })
            }
        }
    }

    /// The message as a Python 3 primary builds it (`status` and `version` as str, the
    /// rest as bytes), before pickling.
    pub fn to_value(&self) -> Value {
        let record = |r: &RecordHeader| {
            vec![
                bytes_value(&r.oid.0),
                bytes_value(&r.serial.0),
                match std::str::from_utf8(&r.version) {
                    Ok(s) => Value::Str(s.into()),
                    Err(_) => bytes_value(&r.version),
                },
                r.data_txn.map_or(Value::None, |t| bytes_value(&t.0)),
            ]
        };
        match self {
            Message::Transaction(t) => message(
                "T",
                vec![
                    bytes_value(&t.tid.0),
                    Value::Str((t.status as char).to_string()),
                    bytes_value(&t.user),
                    bytes_value(&t.description),
                    t.extension.clone(),
                ],
            ),
            Message::Store(r) => message("S", record(r)),
            Message::Blob { record: r, blocks } => {
                let mut args = record(r);
                args.push(match i64::try_from(*blocks) {
                    Ok(n) => Value::Int(n),
                    Err(_) => Value::BigInt(blocks.to_le_bytes().into_iter().chain([0]).collect()),
                });
                message("B", args)
            }
            Message::Commit { checksum } => {
                message("C", checksum.iter().map(|c| bytes_value(c)).collect())
            }
        }
    }

    /// `pickle.dumps(message, protocol)` as CPython 3.11 writes it. Loads in Python 3 (and,
    /// at protocols 0–2, in Python 2) as `(str, (bytes, str, bytes, bytes, dict))` etc.
    pub fn encode(&self, protocol: u8) -> Vec<u8> {
        dumps(&self.to_value(), protocol)
    }

    /// What the zc.zrs primary sends: protocol 1, fast mode (no memo).
    pub fn encode_fast(&self) -> Vec<u8> {
        dumps_fast(&self.to_value(), 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path is an optimisation the general decoder hides (tests/message_codec.rs
    /// checks they agree): here, that it is taken for what a Python 3 primary sends — ids
    /// mixing ASCII and latin-1 bytes, a backpointer or none, a checksum.
    #[test]
    fn python3_store_and_commit_take_the_fast_path() {
        let id = |seed: u8| {
            let mut b = [0u8; 8];
            for (i, x) in b.iter_mut().enumerate() {
                *x = seed
                    .wrapping_mul(37)
                    .wrapping_add((i as u8).wrapping_mul(41));
            }
            b
        };
        let mut checksum = [0u8; 16];
        for (i, x) in checksum.iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(17);
        }
        let messages = [
            Message::Store(RecordHeader {
                oid: Oid(id(1)),
                serial: Tid(id(2)),
                version: Vec::new(),
                data_txn: None,
            }),
            Message::Store(RecordHeader {
                oid: Oid([0; 8]),
                serial: Tid(*b"\x03\xe0\x7f\x80\xff\xc3AZ"),
                version: Vec::new(),
                data_txn: Some(Tid(id(3))),
            }),
            Message::Commit {
                checksum: Some(checksum),
            },
        ];
        for message in messages {
            let payload = message.encode_fast();
            assert_eq!(fast::decode(&payload), Some(message.clone()), "{message:?}");
            assert_eq!(Message::decode(&payload), Ok(message));
        }
    }

    /// A `T`'s status is one character, as str (Python 3) or bytes (Python 2): empty or
    /// longer bytes are refused, not cut to their first byte (or indexed past their end).
    #[test]
    fn a_status_of_bytes_must_be_one_byte() {
        let t = |status: Value| {
            Message::from_value(Value::Tuple(vec![
                Value::Str("T".into()),
                Value::Tuple(vec![
                    Value::Bytes(vec![3; 8]),
                    status,
                    Value::Bytes(b"user".to_vec()),
                    Value::Bytes(b"description".to_vec()),
                    Value::Dict(vec![]),
                ]),
            ]))
        };
        let status = |m: Result<Message, MessageError>| match m {
            Ok(Message::Transaction(h)) => h.status,
            other => panic!("{other:?}"),
        };
        assert_eq!(status(t(Value::Bytes(b"p".to_vec()))), b'p');
        for bad in [&b""[..], b"pp"] {
            let e = t(Value::Bytes(bad.to_vec())).unwrap_err().to_string();
            assert!(e.contains("status must be 1 character"), "{bad:?}: {e}");
        }
        // As str, one latin-1 character: U+00FF is the last one.
        assert_eq!(status(t(Value::Str("\u{ff}".into()))), 0xff);
        assert!(t(Value::Str("\u{100}".into())).is_err());
    }
}
