//! The exact encoder: a [`Value`] to the bytes CPython 3.11's C pickler writes for it.
//!
//! It follows `Modules/_pickle.c` decision by decision: which opcode for which size, the
//! memo (PUT/BINPUT/LONG_BINPUT/MEMOIZE and GET/BINGET for objects seen before), batches of
//! 1000 for APPENDS/SETITEMS/ADDITEMS (a dict or set whose size is a multiple of 1000 ends
//! with an empty batch, a list does not), bytes at protocols below 3 as
//! `_codecs.encode(str, 'latin1')` or `__builtin__.bytes()` reductions, Python 2 names for
//! globals below protocol 3, and protocol 4+ framing (a frame is closed after the object
//! that takes it to 64 KiB; payloads of 64 KiB or more are written outside frames).
//!
//! The memo is keyed by object identity in Python, which a `Value` tree does not carry. The
//! encoder assumes the identities Python's own unpickler gives a value decoded from a
//! zc.zrs primary's protocol-1 message: every container, and every `str` or `bytes` longer
//! than one character, is a distinct object; `''`, `b''`, one-character strings below
//! U+0100 and one-byte bytes are CPython's shared singletons, so their second appearance
//! is a memo GET. (Python values built other ways — string literals repeated in source code,
//! or one-byte bytes read from a protocol 3+ pickle, which are fresh objects — can pickle
//! differently.) Fast mode (`dumps_fast`) has no memo at all, so there identity never
//! matters.
//!
//! Opaque values: a `Global` is a GLOBAL (STACK_GLOBAL at protocol 4+, where Python's
//! sharing of the module-name string is not modelled); an `Object` is `callable args
//! REDUCE [state BUILD]`, except `copyreg.__newobj__` / `__newobj_ex__` objects, which
//! become NEWOBJ / NEWOBJ_EX again where the protocol has them, and `builtins.set`,
//! `frozenset` and `bytearray` calls, which become EMPTY_SET/ADDITEMS, FROZENSET (protocol
//! 4+) and BYTEARRAY8 (protocol 5) as CPython writes real sets and bytearrays. A
//! `PersistentId` is PERSID at protocol 0 when it is an ASCII string, else `pid BINPERSID`
//! (even at protocol 0, where CPython would refuse; every unpickler accepts it).

use std::collections::HashMap;

use super::num;
use super::opcodes as op;
use super::Value;

const BATCHSIZE: usize = 1000;
const FRAME_SIZE_MIN: usize = 4;
const FRAME_SIZE_TARGET: usize = 64 * 1024;
const FRAME_HEADER_SIZE: usize = 9;

/// `pickle.dumps(v, protocol)` as CPython 3.11 writes it. Panics if `protocol > 5`.
pub fn dumps(v: &Value, protocol: u8) -> Vec<u8> {
    Pickler::new(protocol, false).dump(v)
}

/// A CPython 3.11 `Pickler` with `fast = 1` (no memo), as the zc.zrs primary pickles its
/// messages (`cPickle.Pickler(f, 1)` with `fast = 1`). Panics if `protocol > 5`.
pub fn dumps_fast(v: &Value, protocol: u8) -> Vec<u8> {
    Pickler::new(protocol, true).dump(v)
}

/// The bytes ZODB 6's FileStorage stores as a transaction's extension: nothing for an empty
/// extension, else `zodbpickle.pickle.dumps(extension, 3)` (`TransactionMetaData.
/// extension_bytes`). zodbpickle's C pickler writes the same bytes as CPython's at
/// protocol 3 for the types metadata holds (checked against real zodbpickle in the tests).
pub fn dumps_extension(ext: &Value) -> Vec<u8> {
    let empty = match ext {
        Value::Dict(d) => d.is_empty(),
        Value::None => true,
        _ => false,
    };
    if empty {
        Vec::new()
    } else {
        dumps(ext, 3)
    }
}

/// Objects CPython shares between appearances (see the module doc), keyed for the memo.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Shared {
    EmptyStr,
    Char(u8),
    EmptyBytes,
    Byte(u8),
    /// The interned `'latin1'` the pickler itself passes to `codecs.encode`.
    Latin1,
    Global(String, String),
}

fn str_key(s: &str) -> Option<Shared> {
    let mut it = s.chars();
    match (it.next(), it.next()) {
        (None, _) => Some(Shared::EmptyStr),
        (Some(c), None) if (c as u32) < 256 => Some(Shared::Char(c as u8)),
        _ => None,
    }
}

fn bytes_key(b: &[u8]) -> Option<Shared> {
    match b {
        [] => Some(Shared::EmptyBytes),
        [x] => Some(Shared::Byte(*x)),
        _ => None,
    }
}

fn global_key(module: &str, name: &str) -> Shared {
    Shared::Global(module.to_owned(), name.to_owned())
}

/// The shape `builtins.<name>((items,))` with no state, as the decoder keeps sets,
/// frozensets and bytearrays.
fn builtin_call<'v>(v: &'v Value, name: &str) -> Option<&'v Value> {
    let Value::Object {
        callable,
        args,
        state: None,
    } = v
    else {
        return None;
    };
    match (&**callable, &**args) {
        (Value::Global { module, name: n }, Value::Tuple(a))
            if module == "builtins" && n == name && a.len() == 1 =>
        {
            Some(&a[0])
        }
        _ => None,
    }
}

struct Pickler {
    out: Vec<u8>,
    proto: u8,
    bin: bool,
    fast: bool,
    memo_len: u64,
    shared: HashMap<Shared, u64>,
    framing: bool,
    frame_start: Option<usize>,
}

impl Pickler {
    fn new(proto: u8, fast: bool) -> Self {
        assert!(proto <= 5, "pickle protocol {proto} does not exist (0–5)");
        Pickler {
            out: Vec::with_capacity(64),
            proto,
            bin: proto >= 1,
            fast,
            memo_len: 0,
            shared: HashMap::new(),
            framing: false,
            frame_start: None,
        }
    }

    fn dump(mut self, v: &Value) -> Vec<u8> {
        if self.proto >= 2 {
            self.write(&[op::PROTO, self.proto]);
            if self.proto >= 4 {
                self.framing = true;
            }
        }
        self.save(v);
        self.write(&[op::STOP]);
        self.commit_frame();
        self.out
    }

    // ---- output and framing (`_Pickler_Write` and friends) ----

    fn write(&mut self, s: &[u8]) {
        if self.framing && self.frame_start.is_none() {
            self.frame_start = Some(self.out.len());
            self.out.extend_from_slice(&[0xfe; FRAME_HEADER_SIZE]);
        }
        self.out.extend_from_slice(s);
    }

    fn commit_frame(&mut self) {
        if !self.framing {
            return;
        }
        let Some(start) = self.frame_start.take() else {
            return;
        };
        let len = self.out.len() - start - FRAME_HEADER_SIZE;
        if len >= FRAME_SIZE_MIN {
            self.out[start] = op::FRAME;
            self.out[start + 1..start + FRAME_HEADER_SIZE]
                .copy_from_slice(&(len as u64).to_le_bytes());
        } else {
            self.out.drain(start..start + FRAME_HEADER_SIZE);
        }
    }

    fn opcode_boundary(&mut self) {
        if let (true, Some(start)) = (self.framing, self.frame_start) {
            if self.out.len() - start - FRAME_HEADER_SIZE >= FRAME_SIZE_TARGET {
                self.commit_frame();
            }
        }
    }

    /// A header and a payload; a large payload closes the frame and goes outside any.
    fn write_bytes(&mut self, header: &[u8], data: &[u8]) {
        let bypass = data.len() >= FRAME_SIZE_TARGET;
        let framing = self.framing;
        if bypass {
            self.commit_frame();
            self.framing = false;
        }
        self.write(header);
        self.write(data);
        self.framing = framing;
    }

    // ---- memo ----

    fn memo_put(&mut self, key: Option<Shared>) {
        if self.fast {
            return;
        }
        let idx = self.memo_len;
        self.memo_len += 1;
        if let Some(k) = key {
            self.shared.insert(k, idx);
        }
        if self.proto >= 4 {
            self.write(&[op::MEMOIZE]);
        } else if !self.bin {
            self.write(format!("p{idx}\n").as_bytes());
        } else if idx < 256 {
            self.write(&[op::BINPUT, idx as u8]);
        } else {
            let mut b = vec![op::LONG_BINPUT];
            b.extend_from_slice(&(idx as u32).to_le_bytes());
            self.write(&b);
        }
    }

    /// Write a GET if `key` is memoized; true if so.
    fn memo_get(&mut self, key: &Option<Shared>) -> bool {
        let Some(&idx) = key.as_ref().and_then(|k| self.shared.get(k)) else {
            return false;
        };
        if !self.bin {
            self.write(format!("g{idx}\n").as_bytes());
        } else if idx < 256 {
            self.write(&[op::BINGET, idx as u8]);
        } else {
            let mut b = vec![op::LONG_BINGET];
            b.extend_from_slice(&(idx as u32).to_le_bytes());
            self.write(&b);
        }
        true
    }

    // ---- values ----

    fn save(&mut self, v: &Value) {
        match v {
            Value::None => self.write(&[op::NONE]),
            Value::Bool(b) => self.save_bool(*b),
            Value::Int(i) => self.save_int(*i),
            Value::BigInt(b) => match num::twos_to_value(b) {
                Value::Int(i) => self.save_int(i),
                Value::BigInt(b) => self.save_bigint(&b),
                _ => unreachable!("integers only"),
            },
            Value::Float(f) => self.save_float(*f),
            Value::Bytes(b) => self.save_bytes(b),
            Value::Str(s) => self.save_str(s, str_key(s)),
            Value::Tuple(items) => self.save_tuple(items),
            Value::List(items) => self.save_list(items),
            Value::Dict(items) => self.save_dict(items),
            Value::Global { module, name } => self.save_global(module, name),
            Value::Object { .. } => self.save_object(v),
            Value::PersistentId(pid) => self.save_pers(pid),
        }
        self.opcode_boundary();
    }

    fn save_bool(&mut self, b: bool) {
        if self.proto >= 2 {
            self.write(&[if b { op::NEWTRUE } else { op::NEWFALSE }]);
        } else {
            self.write(if b { b"I01\n" } else { b"I00\n" });
        }
    }

    fn save_int(&mut self, i: i64) {
        if i32::try_from(i).is_ok() {
            if self.bin {
                let b = (i as i32).to_le_bytes();
                if b[3] != 0 || b[2] != 0 {
                    self.write(&[op::BININT, b[0], b[1], b[2], b[3]]);
                } else if b[1] != 0 {
                    self.write(&[op::BININT2, b[0], b[1]]);
                } else {
                    self.write(&[op::BININT1, b[0]]);
                }
            } else {
                self.write(format!("I{i}\n").as_bytes());
            }
        } else if self.proto >= 2 {
            self.save_long_binary(&num::i64_to_twos(i));
        } else {
            self.write(format!("L{i}L\n").as_bytes());
        }
    }

    /// An integer beyond i64, as normalized two's-complement bytes.
    fn save_bigint(&mut self, b: &[u8]) {
        if self.proto >= 2 {
            self.save_long_binary(b);
        } else {
            self.write(format!("L{}L\n", num::twos_to_decimal(b)).as_bytes());
        }
    }

    fn save_long_binary(&mut self, b: &[u8]) {
        if b.len() < 256 {
            self.write(&[op::LONG1, b.len() as u8]);
        } else {
            let mut h = vec![op::LONG4];
            h.extend_from_slice(&(b.len() as u32).to_le_bytes());
            self.write(&h);
        }
        self.write(b);
    }

    fn save_float(&mut self, f: f64) {
        if self.bin {
            let mut b = vec![op::BINFLOAT];
            b.extend_from_slice(&f.to_be_bytes());
            self.write(&b);
        } else {
            self.write(format!("F{}\n", num::float_repr(f)).as_bytes());
        }
    }

    fn save_bytes(&mut self, b: &[u8]) {
        let key = bytes_key(b);
        if self.memo_get(&key) {
            return;
        }
        if self.proto < 3 {
            // Python 2 has no bytes type: reduce to something both load as their bytes.
            if b.is_empty() {
                self.save_global("builtins", "bytes");
                self.opcode_boundary();
                self.save_empty_tuple();
            } else {
                self.save_global("_codecs", "encode");
                self.opcode_boundary();
                if self.proto < 2 {
                    self.write(&[op::MARK]);
                }
                // Latin-1 decoding of one byte yields CPython's shared character.
                let s: String = b.iter().map(|&c| c as char).collect();
                let skey = if b.len() == 1 {
                    Some(Shared::Char(b[0]))
                } else {
                    None
                };
                self.save_str(&s, skey);
                self.opcode_boundary();
                self.save_str("latin1", Some(Shared::Latin1));
                self.opcode_boundary();
                self.write(&[if self.proto >= 2 {
                    op::TUPLE2
                } else {
                    op::TUPLE
                }]);
                self.memo_put(None);
                self.opcode_boundary();
            }
            self.write(&[op::REDUCE]);
        } else {
            let n = b.len();
            let header = if n <= 0xff {
                vec![op::SHORT_BINBYTES, n as u8]
            } else if n <= 0xffff_ffff {
                let mut h = vec![op::BINBYTES];
                h.extend_from_slice(&(n as u32).to_le_bytes());
                h
            } else {
                let mut h = vec![op::BINBYTES8];
                h.extend_from_slice(&(n as u64).to_le_bytes());
                h
            };
            self.write_bytes(&header, b);
        }
        self.memo_put(key);
    }

    fn save_empty_tuple(&mut self) {
        if self.proto >= 1 {
            self.write(&[op::EMPTY_TUPLE]);
        } else {
            self.write(&[op::MARK, op::TUPLE]);
        }
        self.opcode_boundary();
    }

    fn save_str(&mut self, s: &str, key: Option<Shared>) {
        if self.memo_get(&key) {
            return;
        }
        if self.bin {
            let b = s.as_bytes();
            let n = b.len();
            let header = if n <= 0xff && self.proto >= 4 {
                vec![op::SHORT_BINUNICODE, n as u8]
            } else if n <= 0xffff_ffff {
                let mut h = vec![op::BINUNICODE];
                h.extend_from_slice(&(n as u32).to_le_bytes());
                h
            } else {
                let mut h = vec![op::BINUNICODE8];
                h.extend_from_slice(&(n as u64).to_le_bytes());
                h
            };
            self.write_bytes(&header, b);
        } else {
            let mut line = vec![op::UNICODE];
            raw_unicode_escape(s, &mut line);
            line.push(b'\n');
            self.write(&line);
        }
        self.memo_put(key);
    }

    fn save_tuple(&mut self, items: &[Value]) {
        if items.is_empty() {
            if self.proto >= 1 {
                self.write(&[op::EMPTY_TUPLE]);
            } else {
                self.write(&[op::MARK, op::TUPLE]);
            }
            return;
        }
        if items.len() <= 3 && self.proto >= 2 {
            for i in items {
                self.save(i);
            }
            self.write(&[op::TUPLE1 + items.len() as u8 - 1]);
        } else {
            self.write(&[op::MARK]);
            for i in items {
                self.save(i);
            }
            self.write(&[op::TUPLE]);
        }
        self.memo_put(None);
    }

    fn save_list(&mut self, items: &[Value]) {
        if self.bin {
            self.write(&[op::EMPTY_LIST]);
        } else {
            self.write(&[op::MARK, op::LIST]);
        }
        self.memo_put(None);
        if items.is_empty() {
            return;
        }
        if self.proto == 0 {
            for i in items {
                self.save(i);
                self.write(&[op::APPEND]);
            }
        } else if items.len() == 1 {
            self.save(&items[0]);
            self.write(&[op::APPEND]);
        } else {
            for batch in items.chunks(BATCHSIZE) {
                self.write(&[op::MARK]);
                for i in batch {
                    self.save(i);
                }
                self.write(&[op::APPENDS]);
            }
        }
    }

    fn save_dict(&mut self, items: &[(Value, Value)]) {
        if self.bin {
            self.write(&[op::EMPTY_DICT]);
        } else {
            self.write(&[op::MARK, op::DICT]);
        }
        self.memo_put(None);
        if items.is_empty() {
            return;
        }
        if self.proto == 0 {
            for (k, v) in items {
                self.save(k);
                self.save(v);
                self.write(&[op::SETITEM]);
            }
        } else if items.len() == 1 {
            self.save(&items[0].0);
            self.save(&items[0].1);
            self.write(&[op::SETITEM]);
        } else {
            // CPython loops while a batch came out full, so a size that is a multiple of
            // the batch size ends with an empty MARK SETITEMS.
            let mut rest = items;
            loop {
                let n = rest.len().min(BATCHSIZE);
                self.write(&[op::MARK]);
                for (k, v) in &rest[..n] {
                    self.save(k);
                    self.save(v);
                }
                self.write(&[op::SETITEMS]);
                rest = &rest[n..];
                if n < BATCHSIZE {
                    break;
                }
            }
        }
    }

    fn save_global(&mut self, module: &str, name: &str) {
        let key = Some(global_key(module, name));
        if self.memo_get(&key) {
            return;
        }
        if self.proto >= 4 {
            self.save_str(module, None);
            self.opcode_boundary();
            self.save_str(name, None);
            self.opcode_boundary();
            self.write(&[op::STACK_GLOBAL]);
        } else {
            // Python 2 spellings below protocol 3 (CPython's fix_imports), for the modules
            // whose names changed and that such data may name.
            let module = if self.proto < 3 {
                match module {
                    "builtins" => "__builtin__",
                    "copyreg" => "copy_reg",
                    m => m,
                }
            } else {
                module
            };
            let mut line = vec![op::GLOBAL];
            line.extend_from_slice(module.as_bytes());
            line.push(b'\n');
            line.extend_from_slice(name.as_bytes());
            line.push(b'\n');
            self.write(&line);
        }
        self.memo_put(key);
    }

    fn save_object(&mut self, v: &Value) {
        let Value::Object {
            callable,
            args,
            state,
        } = v
        else {
            unreachable!("objects only")
        };
        if self.proto >= 4 {
            if let Some(Value::List(items)) = builtin_call(v, "set") {
                self.save_set(items);
                return;
            }
            if let Some(Value::List(items)) = builtin_call(v, "frozenset") {
                self.write(&[op::MARK]);
                for i in items {
                    self.save(i);
                }
                self.write(&[op::FROZENSET]);
                self.memo_put(None);
                return;
            }
        }
        if self.proto >= 5 {
            if let Some(Value::Bytes(b)) = builtin_call(v, "bytearray") {
                let mut h = vec![op::BYTEARRAY8];
                h.extend_from_slice(&(b.len() as u64).to_le_bytes());
                self.write_bytes(&h, b);
                self.memo_put(None);
                return;
            }
        }
        let newobj = match (&**callable, &**args) {
            (Value::Global { module, name }, Value::Tuple(a)) if module == "copyreg" => {
                match (name.as_str(), a.as_slice()) {
                    ("__newobj__", [cls, rest @ ..]) if self.proto >= 2 => {
                        self.save(cls);
                        self.save_tuple(rest);
                        self.opcode_boundary();
                        self.write(&[op::NEWOBJ]);
                        true
                    }
                    ("__newobj_ex__", [cls, a @ Value::Tuple(_), kw @ Value::Dict(_)])
                        if self.proto >= 4 =>
                    {
                        self.save(cls);
                        self.save(a);
                        self.save(kw);
                        self.write(&[op::NEWOBJ_EX]);
                        true
                    }
                    _ => false,
                }
            }
            _ => false,
        };
        if !newobj {
            self.save(callable);
            self.save(args);
            self.write(&[op::REDUCE]);
        }
        self.memo_put(None);
        if let Some(st) = state {
            self.save(st);
            self.write(&[op::BUILD]);
        }
    }

    fn save_set(&mut self, items: &[Value]) {
        self.write(&[op::EMPTY_SET]);
        self.memo_put(None);
        if items.is_empty() {
            return;
        }
        let mut rest = items;
        loop {
            let n = rest.len().min(BATCHSIZE);
            self.write(&[op::MARK]);
            for i in &rest[..n] {
                self.save(i);
            }
            self.write(&[op::ADDITEMS]);
            rest = &rest[n..];
            if n < BATCHSIZE {
                break;
            }
        }
    }

    fn save_pers(&mut self, pid: &Value) {
        if !self.bin {
            if let Value::Str(s) = pid {
                if s.is_ascii() && !s.contains('\n') {
                    let mut line = vec![op::PERSID];
                    line.extend_from_slice(s.as_bytes());
                    line.push(b'\n');
                    self.write(&line);
                    return;
                }
            }
        }
        self.save(pid);
        self.write(&[op::BINPERSID]);
    }
}

/// CPython `_pickle.c`'s `raw_unicode_escape`: raw-unicode-escape that also escapes
/// `\`, NUL, `\n`, `\r` and `\x1a` (so the line stays one line on every platform).
fn raw_unicode_escape(s: &str, out: &mut Vec<u8>) {
    for c in s.chars() {
        let ch = c as u32;
        if ch >= 0x10000 {
            out.extend_from_slice(format!("\\U{ch:08x}").as_bytes());
        } else if ch >= 256 || matches!(ch, 0x5c | 0 | 0x0a | 0x0d | 0x1a) {
            out.extend_from_slice(format!("\\u{ch:04x}").as_bytes());
        } else {
            out.push(ch as u8);
        }
    }
}
