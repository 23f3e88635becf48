//! The hardened decoder: pickle bytes (protocols 0–5) to a [`Value`].
//!
//! It runs the pickle machine without recursion. Every value the opcodes make lives in an
//! arena of nodes; the stack, the marks (plain indices into the stack) and the memo hold node
//! numbers, so a MARK costs 4 bytes, a GET shares its node as Python shares the object, and a
//! container filled after it was memoized (as every pickler does) is seen filled through the
//! memo. Only at STOP is the arena turned into a tree, iteratively, with a depth limit, a
//! cycle check and a bound on how much sharing may expand it.
//!
//! Memory is proportional to the input: each node, stack entry, mark, memo slot and child
//! reference comes from at least one input byte, every length is checked against the
//! remaining input before anything is allocated, and the memo is dense only while its keys
//! are (a huge LONG_BINPUT index goes to a map). Time is linear, except decimal integer
//! literals, which are capped at 4300 digits as CPython caps them.
//!
//! As `pickle.loads` does, bytes after STOP are ignored, and a STOP with values or marks
//! left below the result is accepted.

use std::collections::HashMap;

use super::error::{PickleError, PickleErrorKind as K};
use super::num;
use super::opcodes as op;
use super::Value;

/// Bounds on what a pickle may make.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Deepest nesting of containers in the result (Python's own default recursion limit
    /// is of the same order). Also bounds recursion in `Value`'s derived traits.
    pub max_depth: usize,
    /// The result may take at most `output_factor × input length + output_floor` bytes
    /// (estimated: one `Value` per node plus payloads). Only memo sharing (GET, DUP) can
    /// make a tree larger than its pickle, so this bounds "billion laughs" pickles.
    pub output_factor: usize,
    pub output_floor: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 1000,
            output_factor: 100,
            output_floor: 1 << 20,
        }
    }
}

/// What a decode used, for tests that memory stays proportional to the input.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Arena nodes created.
    pub nodes: usize,
    /// Most entries on the stack at once.
    pub peak_stack: usize,
    /// Most open marks at once.
    pub peak_marks: usize,
    /// Dense memo slots allocated (filled or not) plus sparse entries.
    pub memo_slots: usize,
    /// Child references held by containers.
    pub child_refs: usize,
    /// Payload bytes copied into nodes (strings, bytes, integers).
    pub payload_bytes: usize,
    /// Estimated bytes of the resulting `Value` tree.
    pub output_bytes: usize,
    /// Python 2 `str` opcodes read (STRING, BINSTRING, SHORT_BINSTRING): what tells a
    /// Python 2 pickler's output from a Python 3 one's, which writes bytes otherwise.
    pub py2_strings: usize,
}

/// Decode a pickle with the default [`Limits`].
pub fn loads(data: &[u8]) -> Result<Value, PickleError> {
    loads_with(data, &Limits::default())
}

/// Decode a pickle.
pub fn loads_with(data: &[u8], limits: &Limits) -> Result<Value, PickleError> {
    loads_with_stats(data, limits).0
}

/// Decode a pickle and report the resources the decode used.
pub fn loads_with_stats(data: &[u8], limits: &Limits) -> (Result<Value, PickleError>, DecodeStats) {
    let mut d = Decoder::new(data, limits);
    let result = d.run();
    d.stats.nodes = d.nodes.len();
    d.stats.memo_slots = d.memo.dense.len() + d.memo.sparse.len();
    (result, d.stats)
}

/// Decode `count` pickles written one after another by one pickler, sharing its memo — as
/// a ZODB object record is (class pickle, then state pickle), and as ZODB's reader loads it
/// with one unpickler. Bytes after the last pickle are ignored, as ZODB ignores them.
pub fn loads_sequence(data: &[u8], count: usize) -> Result<Vec<Value>, PickleError> {
    let limits = Limits::default();
    let mut d = Decoder::new(data, &limits);
    let mut values = Vec::with_capacity(count.min(8));
    for _ in 0..count {
        // Each load starts with an empty stack, as Python's Unpickler.load does.
        d.stack.clear();
        d.marks.clear();
        values.push(d.run()?);
    }
    Ok(values)
}

const NIL: u32 = u32::MAX;
const NONE_ID: u32 = 0;
const FALSE_ID: u32 = 1;
const TRUE_ID: u32 = 2;
const EMPTY_TUPLE_ID: u32 = 3;

#[derive(Clone, Copy, Debug, PartialEq)]
enum How {
    Reduce,
    NewObj,
    NewObjEx,
}

/// A value under construction. Containers hold node numbers; a dict holds key, value,
/// key, value, ...
#[derive(Debug)]
enum Node {
    None,
    Bool(bool),
    Int(i64),
    BigInt(Vec<u8>),
    Float(f64),
    Bytes(Vec<u8>),
    Str(String),
    /// Module and name: two `Str` nodes, shared rather than copied, so STACK_GLOBAL on
    /// memoized strings costs no memory.
    Global(u32, u32),
    ByteArray(Vec<u8>),
    Tuple(Vec<u32>),
    List(Vec<u32>),
    Dict(Vec<u32>),
    Set(Vec<u32>),
    FrozenSet(Vec<u32>),
    Object {
        how: How,
        callable: u32,
        args: u32,
        kwargs: u32,
        state: u32,
    },
    Pid(u32),
}

fn kind_name(n: &Node) -> &'static str {
    match n {
        Node::None => "None",
        Node::Bool(_) => "bool",
        Node::Int(_) | Node::BigInt(_) => "int",
        Node::Float(_) => "float",
        Node::Bytes(_) => "bytes",
        Node::Str(_) => "str",
        Node::Global(..) => "global",
        Node::ByteArray(_) => "bytearray",
        Node::Tuple(_) => "tuple",
        Node::List(_) => "list",
        Node::Dict(_) => "dict",
        Node::Set(_) => "set",
        Node::FrozenSet(_) => "frozenset",
        Node::Object { .. } => "object",
        Node::Pid(_) => "persistent id",
    }
}

/// The memo: dense while keys come in order (as every pickler writes them), a map for
/// stray large keys, so a 4-byte index never allocates 4 G slots.
#[derive(Default)]
struct Memo {
    dense: Vec<u32>,
    sparse: HashMap<u64, u32>,
    count: usize,
}

impl Memo {
    fn put(&mut self, key: u64, node: u32) {
        let len = self.dense.len() as u64;
        if key < len {
            let slot = &mut self.dense[key as usize];
            if *slot == NIL {
                self.count += 1;
            }
            *slot = node;
        } else if key < 2 * self.count as u64 + 64 && !self.sparse.contains_key(&key) {
            self.dense.resize(key as usize + 1, NIL);
            self.dense[key as usize] = node;
            self.count += 1;
        } else if self.sparse.insert(key, node).is_none() {
            self.count += 1;
        }
    }

    fn get(&self, key: u64) -> Option<u32> {
        match self.dense.get(key as usize) {
            Some(&n) if n != NIL => Some(n),
            _ => self.sparse.get(&key).copied(),
        }
    }
}

struct Decoder<'a> {
    data: &'a [u8],
    pos: usize,
    op_pos: usize,
    op: Option<u8>,
    proto: u8,
    nodes: Vec<Node>,
    stack: Vec<u32>,
    marks: Vec<u32>,
    memo: Memo,
    max_depth: usize,
    budget: usize,
    stats: DecodeStats,
}

type R<T> = Result<T, PickleError>;

impl<'a> Decoder<'a> {
    fn new(data: &'a [u8], limits: &Limits) -> Self {
        Decoder {
            data,
            pos: 0,
            op_pos: 0,
            op: None,
            proto: 0,
            nodes: {
                // Messages are small: one allocation usually holds every node.
                let mut v = Vec::with_capacity(4 + (data.len() / 4).min(4096));
                v.extend([
                    Node::None,
                    Node::Bool(false),
                    Node::Bool(true),
                    Node::Tuple(Vec::new()),
                ]);
                v
            },
            stack: Vec::with_capacity(16),
            marks: Vec::new(),
            memo: Memo::default(),
            max_depth: limits.max_depth,
            budget: limits
                .output_factor
                .saturating_mul(data.len())
                .saturating_add(limits.output_floor),
            stats: DecodeStats::default(),
        }
    }

    fn err(&self, kind: K) -> PickleError {
        PickleError {
            offset: self.op_pos,
            opcode: self.op,
            kind,
        }
    }

    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(K::Truncated {
                needed: n,
                remaining: self.remaining(),
            }));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// A length read from the input: checked against what is left before anything is made.
    fn take_len(&mut self, len: u64) -> R<&'a [u8]> {
        if len > self.remaining() as u64 {
            return Err(self.err(K::LengthExceedsRemaining {
                length: len,
                remaining: self.remaining(),
            }));
        }
        self.take(len as usize)
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> R<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> R<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> R<u64> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// One line, without its newline.
    fn line(&mut self) -> R<&'a [u8]> {
        let rest = &self.data[self.pos..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                self.pos += i + 1;
                Ok(&rest[..i])
            }
            None => Err(self.err(K::MissingNewline)),
        }
    }

    fn ascii_line(&mut self, what: &'static str) -> R<&'a str> {
        let l = self.line()?;
        if !l.is_ascii() {
            return Err(self.err(K::BadArgument {
                what,
                text: String::from_utf8_lossy(l).into_owned(),
            }));
        }
        Ok(std::str::from_utf8(l).expect("ascii"))
    }

    fn bad(&self, what: &'static str, text: &[u8]) -> PickleError {
        self.err(K::BadArgument {
            what,
            text: String::from_utf8_lossy(text).into_owned(),
        })
    }

    fn node(&mut self, n: Node) -> R<u32> {
        if self.nodes.len() >= NIL as usize {
            return Err(self.err(K::Other("more than 4G values")));
        }
        match &n {
            Node::BigInt(b) | Node::Bytes(b) | Node::ByteArray(b) => {
                self.stats.payload_bytes += b.len()
            }
            Node::Str(s) => self.stats.payload_bytes += s.len(),
            _ => {}
        }
        self.nodes.push(n);
        Ok((self.nodes.len() - 1) as u32)
    }

    fn push(&mut self, id: u32) {
        self.stack.push(id);
        self.stats.peak_stack = self.stats.peak_stack.max(self.stack.len());
    }

    fn push_new(&mut self, n: Node) -> R<()> {
        let id = self.node(n)?;
        self.push(id);
        Ok(())
    }

    fn fence(&self) -> usize {
        self.marks.last().map_or(0, |&m| m as usize)
    }

    fn pop(&mut self) -> R<u32> {
        if self.stack.len() <= self.fence() {
            return Err(self.err(K::StackUnderflow));
        }
        Ok(self.stack.pop().expect("above fence"))
    }

    fn top(&self) -> R<u32> {
        if self.stack.len() <= self.fence() {
            return Err(self.err(K::StackUnderflow));
        }
        Ok(*self.stack.last().expect("above fence"))
    }

    fn pop_mark(&mut self) -> R<usize> {
        self.marks
            .pop()
            .map(|m| m as usize)
            .ok_or_else(|| self.err(K::NoMark))
    }

    /// The items above the top mark, and the mark removed.
    fn pop_to_mark(&mut self) -> R<Vec<u32>> {
        let m = self.pop_mark()?;
        Ok(self.stack.split_off(m))
    }

    fn count_children(&mut self, n: usize) {
        self.stats.child_refs += n;
    }

    fn wrong(&self, expected: &'static str, id: u32) -> PickleError {
        self.err(K::WrongType {
            expected,
            found: kind_name(&self.nodes[id as usize]),
        })
    }

    fn run(&mut self) -> R<Value> {
        if self.data.is_empty() {
            return Err(self.err(K::Empty));
        }
        loop {
            if self.pos >= self.data.len() {
                self.op_pos = self.pos;
                self.op = None;
                return Err(self.err(K::NoStop));
            }
            self.op_pos = self.pos;
            let code = self.data[self.pos];
            self.op = Some(code);
            self.pos += 1;
            if code == op::STOP {
                let root = self.pop()?;
                return self.build(root);
            }
            self.step(code)?;
            self.stats.peak_marks = self.stats.peak_marks.max(self.marks.len());
        }
    }

    fn step(&mut self, code: u8) -> R<()> {
        match code {
            op::PROTO => {
                let p = self.u8()?;
                if p > 5 {
                    return Err(self.err(K::UnsupportedProtocol(p)));
                }
                self.proto = p;
            }
            op::FRAME => {
                let len = self.u64()?;
                if len > self.remaining() as u64 {
                    return Err(self.err(K::LengthExceedsRemaining {
                        length: len,
                        remaining: self.remaining(),
                    }));
                }
            }
            op::MARK => {
                if self.stack.len() >= NIL as usize {
                    return Err(self.err(K::Other("stack too large")));
                }
                self.marks.push(self.stack.len() as u32);
            }
            op::POP => {
                // As CPython: a mark sitting exactly at the top is popped instead of a value.
                if self.marks.last().map(|&m| m as usize) == Some(self.stack.len()) {
                    self.marks.pop();
                } else {
                    self.pop()?;
                }
            }
            op::POP_MARK => {
                let m = self.pop_mark()?;
                self.stack.truncate(m);
            }
            op::DUP => {
                let t = self.top()?;
                self.push(t);
            }
            op::NONE => self.push(NONE_ID),
            op::NEWTRUE => self.push(TRUE_ID),
            op::NEWFALSE => self.push(FALSE_ID),
            op::INT => {
                let l = self.line()?;
                let v = self.parse_int_line(l)?;
                // CPython: a 2-character literal worth 0 or 1 ("00", "01") is a bool.
                let id = match v {
                    Value::Int(0) if l.len() == 2 => FALSE_ID,
                    Value::Int(1) if l.len() == 2 => TRUE_ID,
                    v => self.int_node(v)?,
                };
                self.push(id);
            }
            op::BININT => {
                let v = self.u32()? as i32;
                self.push_new(Node::Int(v as i64))?;
            }
            op::BININT1 => {
                let v = self.u8()?;
                self.push_new(Node::Int(v as i64))?;
            }
            op::BININT2 => {
                let v = self.u16()?;
                self.push_new(Node::Int(v as i64))?;
            }
            op::LONG => {
                let l = self.line()?;
                let digits = match l.split_last() {
                    Some((b'L', rest)) => rest,
                    _ => l,
                };
                let v = self.parse_long_text(digits)?;
                let id = self.long_node(v)?;
                self.push(id);
            }
            op::LONG1 => {
                let n = self.u8()? as u64;
                let b = self.take_len(n)?;
                let id = self.long_node(num::twos_to_value(b))?;
                self.push(id);
            }
            op::LONG4 => {
                let n = self.u32()? as i32;
                if n < 0 {
                    return Err(self.err(K::NegativeLength(n as i64)));
                }
                let b = self.take_len(n as u64)?;
                let id = self.long_node(num::twos_to_value(b))?;
                self.push(id);
            }
            op::FLOAT => {
                let l = self.ascii_line("FLOAT")?;
                let f: f64 = l.parse().map_err(|_| self.bad("FLOAT", l.as_bytes()))?;
                if f.is_infinite() && !l.to_ascii_lowercase().contains("inf") {
                    // Python raises OverflowError rather than reading 1e999 as inf.
                    return Err(self.bad("FLOAT", l.as_bytes()));
                }
                self.push_new(Node::Float(f))?;
            }
            op::BINFLOAT => {
                let b = self.take(8)?;
                let f = f64::from_be_bytes(b.try_into().expect("8 bytes"));
                self.push_new(Node::Float(f))?;
            }
            op::STRING => {
                self.stats.py2_strings += 1;
                let l = self.line()?;
                let b = self.decode_string_literal(l)?;
                self.push_new(Node::Bytes(b))?;
            }
            op::BINSTRING => {
                self.stats.py2_strings += 1;
                let n = self.u32()? as i32;
                if n < 0 {
                    return Err(self.err(K::NegativeLength(n as i64)));
                }
                let b = self.take_len(n as u64)?.to_vec();
                self.push_new(Node::Bytes(b))?;
            }
            op::SHORT_BINSTRING | op::SHORT_BINBYTES => {
                self.stats.py2_strings += usize::from(code == op::SHORT_BINSTRING);
                let n = self.u8()? as u64;
                let b = self.take_len(n)?.to_vec();
                self.push_new(Node::Bytes(b))?;
            }
            op::BINBYTES => {
                let n = self.u32()? as u64;
                let b = self.take_len(n)?.to_vec();
                self.push_new(Node::Bytes(b))?;
            }
            op::BINBYTES8 => {
                let n = self.u64()?;
                let b = self.take_len(n)?.to_vec();
                self.push_new(Node::Bytes(b))?;
            }
            op::BYTEARRAY8 => {
                let n = self.u64()?;
                let b = self.take_len(n)?.to_vec();
                self.push_new(Node::ByteArray(b))?;
            }
            op::UNICODE => {
                let l = self.line()?;
                let s = self.decode_raw_unicode_escape(l)?;
                self.push_new(Node::Str(s))?;
            }
            op::BINUNICODE => {
                let n = self.u32()? as u64;
                self.binunicode(n, "BINUNICODE")?;
            }
            op::SHORT_BINUNICODE => {
                let n = self.u8()? as u64;
                self.binunicode(n, "SHORT_BINUNICODE")?;
            }
            op::BINUNICODE8 => {
                let n = self.u64()?;
                self.binunicode(n, "BINUNICODE8")?;
            }
            op::EMPTY_TUPLE => self.push(EMPTY_TUPLE_ID),
            op::TUPLE => {
                let items = self.pop_to_mark()?;
                self.count_children(items.len());
                self.push_new(Node::Tuple(items))?;
            }
            op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                let n = (code - op::TUPLE1 + 1) as usize;
                if self.stack.len() < self.fence() + n {
                    return Err(self.err(K::StackUnderflow));
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.count_children(n);
                self.push_new(Node::Tuple(items))?;
            }
            op::EMPTY_LIST => self.push_new(Node::List(Vec::new()))?,
            op::LIST => {
                let items = self.pop_to_mark()?;
                self.count_children(items.len());
                self.push_new(Node::List(items))?;
            }
            op::APPEND => self.append_from(self.stack.len().wrapping_sub(1))?,
            op::APPENDS => {
                let m = self.pop_mark()?;
                self.append_from(m)?;
            }
            op::EMPTY_DICT => self.push_new(Node::Dict(Vec::new()))?,
            op::DICT => {
                let items = self.pop_to_mark()?;
                if items.len() & 1 != 0 {
                    return Err(self.err(K::OddDictItems));
                }
                self.count_children(items.len());
                self.push_new(Node::Dict(items))?;
            }
            op::SETITEM => self.setitems_from(self.stack.len().wrapping_sub(2))?,
            op::SETITEMS => {
                let m = self.pop_mark()?;
                self.setitems_from(m)?;
            }
            op::EMPTY_SET => self.push_new(Node::Set(Vec::new()))?,
            op::ADDITEMS => {
                let m = self.pop_mark()?;
                if m == 0 {
                    return Err(self.err(K::StackUnderflow));
                }
                if m == self.stack.len() {
                    return Ok(());
                }
                let target = self.stack[m - 1];
                let items = self.stack.split_off(m);
                self.count_children(items.len());
                match &mut self.nodes[target as usize] {
                    Node::Set(v) => v.extend(items),
                    _ => return Err(self.wrong("set", target)),
                }
            }
            op::FROZENSET => {
                let items = self.pop_to_mark()?;
                self.count_children(items.len());
                self.push_new(Node::FrozenSet(items))?;
            }
            op::GLOBAL => {
                let module = self.utf8_line("GLOBAL module")?;
                let name = self.utf8_line("GLOBAL name")?;
                let module = self.node(Node::Str(module))?;
                let name = self.node(Node::Str(name))?;
                let g = self.global(module, name)?;
                self.push_new(g)?;
            }
            op::STACK_GLOBAL => {
                let name = self.pop()?;
                let module = self.pop()?;
                let (Node::Str(_), Node::Str(_)) =
                    (&self.nodes[module as usize], &self.nodes[name as usize])
                else {
                    return Err(self.err(K::Other("STACK_GLOBAL needs two str")));
                };
                let g = self.global(module, name)?;
                self.push_new(g)?;
            }
            op::REDUCE => {
                let args = self.pop()?;
                let callable = self.pop()?;
                if !matches!(self.nodes[args as usize], Node::Tuple(_)) {
                    return Err(self.wrong("an argument tuple", args));
                }
                match self.special_reduce(callable, args)? {
                    Some(n) => {
                        // Derived, not read: its bytes were charged to the output budget.
                        self.nodes.push(n);
                        self.push((self.nodes.len() - 1) as u32);
                    }
                    None => self.push_new(Node::Object {
                        how: How::Reduce,
                        callable,
                        args,
                        kwargs: NIL,
                        state: NIL,
                    })?,
                }
            }
            op::NEWOBJ => {
                let args = self.pop()?;
                let cls = self.pop()?;
                if !matches!(self.nodes[args as usize], Node::Tuple(_)) {
                    return Err(self.wrong("an argument tuple", args));
                }
                self.push_new(Node::Object {
                    how: How::NewObj,
                    callable: cls,
                    args,
                    kwargs: NIL,
                    state: NIL,
                })?;
            }
            op::NEWOBJ_EX => {
                let kwargs = self.pop()?;
                let args = self.pop()?;
                let cls = self.pop()?;
                if !matches!(self.nodes[args as usize], Node::Tuple(_)) {
                    return Err(self.wrong("an argument tuple", args));
                }
                if !matches!(self.nodes[kwargs as usize], Node::Dict(_)) {
                    return Err(self.wrong("a keyword dict", kwargs));
                }
                self.push_new(Node::Object {
                    how: How::NewObjEx,
                    callable: cls,
                    args,
                    kwargs,
                    state: NIL,
                })?;
            }
            op::BUILD => {
                let st = self.pop()?;
                let inst = self.top()?;
                match &mut self.nodes[inst as usize] {
                    Node::Object { state, .. } if *state == NIL => *state = st,
                    _ => return Err(self.err(K::BadBuild)),
                }
            }
            op::PERSID => {
                let l = self.ascii_line("PERSID")?.to_owned();
                let s = self.node(Node::Str(l))?;
                self.push_new(Node::Pid(s))?;
            }
            op::BINPERSID => {
                let v = self.pop()?;
                self.push_new(Node::Pid(v))?;
            }
            op::GET => {
                let l = self.line()?;
                let k = self.memo_key(l, "GET")?;
                self.memo_get(k)?;
            }
            op::BINGET => {
                let k = self.u8()? as u64;
                self.memo_get(k)?;
            }
            op::LONG_BINGET => {
                let k = self.u32()? as u64;
                self.memo_get(k)?;
            }
            op::PUT => {
                let l = self.line()?;
                let k = self.memo_key(l, "PUT")?;
                self.memo_put(k)?;
            }
            op::BINPUT => {
                let k = self.u8()? as u64;
                self.memo_put(k)?;
            }
            op::LONG_BINPUT => {
                let k = self.u32()? as u64;
                self.memo_put(k)?;
            }
            op::MEMOIZE => {
                let k = self.memo.count as u64;
                self.memo_put(k)?;
            }
            op::INST
            | op::OBJ
            | op::EXT1
            | op::EXT2
            | op::EXT4
            | op::NEXT_BUFFER
            | op::READONLY_BUFFER => return Err(self.err(K::UnsupportedOpcode)),
            _ => return Err(self.err(K::UnknownOpcode)),
        }
        Ok(())
    }

    fn int_node(&mut self, v: Value) -> R<u32> {
        match v {
            Value::Int(i) => self.node(Node::Int(i)),
            Value::BigInt(b) => self.node(Node::BigInt(b)),
            _ => unreachable!("integers only"),
        }
    }

    /// A long (LONG, LONG1, LONG4): kept as [`Value::BigInt`] whatever its size, so that a
    /// Python 2 `long` stays a long when pickled again (`5L` is `L5L\n`, never BININT1).
    fn long_node(&mut self, v: Value) -> R<u32> {
        match v {
            Value::Int(i) => self.node(Node::BigInt(num::i64_to_twos(i))),
            v => self.int_node(v),
        }
    }

    fn binunicode(&mut self, n: u64, what: &'static str) -> R<()> {
        let b = self.take_len(n)?;
        let s = std::str::from_utf8(b).map_err(|_| self.err(K::InvalidUtf8(what)))?;
        self.push_new(Node::Str(s.to_owned()))
    }

    fn utf8_line(&mut self, what: &'static str) -> R<String> {
        let l = self.line()?;
        String::from_utf8(l.to_vec()).map_err(|_| self.err(K::InvalidUtf8(what)))
    }

    /// A GLOBAL with Python 2 module names mapped to Python 3's, as CPython's unpickler does
    /// for protocols below 3 (only the two modules ZODB data may name).
    fn global(&mut self, module: u32, name: u32) -> R<Node> {
        let renamed = match (&self.nodes[module as usize], self.proto < 3) {
            (Node::Str(m), true) if m == "__builtin__" => Some("builtins"),
            (Node::Str(m), true) if m == "copy_reg" => Some("copyreg"),
            _ => None,
        };
        let module = match renamed {
            Some(m) => self.node(Node::Str(m.to_owned()))?,
            None => module,
        };
        Ok(Node::Global(module, name))
    }

    fn str_of(&self, id: u32) -> &str {
        match &self.nodes[id as usize] {
            Node::Str(s) => s,
            _ => unreachable!("globals name Str nodes"),
        }
    }

    /// `_codecs.encode(str, 'latin1')` and `builtins.bytes()`: how Python 3 pickles bytes at
    /// protocols 0–2. Evaluated here so they decode to plain bytes.
    fn special_reduce(&mut self, callable: u32, args: u32) -> R<Option<Node>> {
        let Node::Global(m, n) = self.nodes[callable as usize] else {
            return Ok(None);
        };
        let Node::Tuple(a) = &self.nodes[args as usize] else {
            return Ok(None);
        };
        match (self.str_of(m), self.str_of(n), a.len()) {
            ("_codecs" | "codecs", "encode", 2) => {
                let (Node::Str(s), Node::Str(enc)) =
                    (&self.nodes[a[0] as usize], &self.nodes[a[1] as usize])
                else {
                    return Ok(None);
                };
                if enc != "latin1" && enc != "latin-1" {
                    return Ok(None);
                }
                // The same memoized str may be encoded many times: count the copies.
                self.stats.output_bytes += s.len();
                if self.stats.output_bytes > self.budget {
                    return Err(self.err(K::TooLarge(self.budget)));
                }
                let mut out = Vec::with_capacity(s.len());
                for c in s.chars() {
                    let c = c as u32;
                    if c > 0xff {
                        return Err(self.err(K::Other(
                            "codecs.encode(…, 'latin1') of a character beyond latin-1",
                        )));
                    }
                    out.push(c as u8);
                }
                Ok(Some(Node::Bytes(out)))
            }
            ("builtins", "bytes", 0) => Ok(Some(Node::Bytes(Vec::new()))),
            _ => Ok(None),
        }
    }

    /// APPEND / APPENDS: everything above `x` goes into the list at `x - 1` (CPython's
    /// `do_append`, which does not look at marks for the list itself).
    fn append_from(&mut self, x: usize) -> R<()> {
        let len = self.stack.len();
        if x > len || x == 0 || x < self.fence() {
            return Err(self.err(K::StackUnderflow));
        }
        if x == len {
            return Ok(());
        }
        let target = self.stack[x - 1];
        if !matches!(self.nodes[target as usize], Node::List(_)) {
            return Err(self.wrong("list", target));
        }
        let items = self.stack.split_off(x);
        self.count_children(items.len());
        if let Node::List(v) = &mut self.nodes[target as usize] {
            v.extend(items);
        }
        Ok(())
    }

    /// SETITEM / SETITEMS (CPython's `do_setitems`).
    fn setitems_from(&mut self, x: usize) -> R<()> {
        let len = self.stack.len();
        if x > len || x == 0 || x < self.fence() {
            return Err(self.err(K::StackUnderflow));
        }
        if x == len {
            return Ok(());
        }
        if (len - x) & 1 != 0 {
            return Err(self.err(K::OddDictItems));
        }
        let target = self.stack[x - 1];
        if !matches!(self.nodes[target as usize], Node::Dict(_)) {
            return Err(self.wrong("dict", target));
        }
        let items = self.stack.split_off(x);
        self.count_children(items.len());
        if let Node::Dict(v) = &mut self.nodes[target as usize] {
            v.extend(items);
        }
        Ok(())
    }

    fn memo_key(&self, l: &[u8], what: &'static str) -> R<u64> {
        std::str::from_utf8(l)
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| self.bad(what, l))
    }

    fn memo_get(&mut self, k: u64) -> R<()> {
        let id = self
            .memo
            .get(k)
            .ok_or_else(|| self.err(K::MemoMissing(k)))?;
        self.push(id);
        Ok(())
    }

    fn memo_put(&mut self, k: u64) -> R<()> {
        let t = self.top()?;
        self.memo.put(k, t);
        Ok(())
    }

    /// INT's argument: C `strtol(s, &end, 0)` as CPython reads it — decimal, `0x` hex and
    /// leading-zero octal — falling back to an arbitrary-size decimal.
    fn parse_int_line(&self, l: &[u8]) -> R<Value> {
        let s = std::str::from_utf8(l).map_err(|_| self.bad("INT", l))?;
        let t = s.trim_start_matches([' ', '\t', '\r', '\x0b', '\x0c']);
        let (neg, body) = match t.as_bytes().first() {
            Some(b'-') => (true, &t[1..]),
            Some(b'+') => (false, &t[1..]),
            _ => (false, t),
        };
        let radix_body = if let Some(h) = body.strip_prefix("0x").or(body.strip_prefix("0X")) {
            Some((16, h))
        } else if body.len() > 1 && body.starts_with('0') {
            Some((8, &body[1..]))
        } else {
            None
        };
        if let Some((radix, digits)) = radix_body {
            let m = u64::from_str_radix(digits, radix)
                .ok()
                .filter(|_| !digits.starts_with(['+', '-']))
                .filter(|&m| m <= i64::MAX as u64)
                .ok_or_else(|| self.bad("INT", l))?;
            let m = m as i64;
            return Ok(Value::Int(if neg { -m } else { m }));
        }
        match num::decimal_to_value(t) {
            Some(Ok(v)) => Ok(v),
            Some(Err(())) => Err(self.err(K::IntTooLong(num::MAX_INT_DIGITS))),
            None => Err(self.bad("INT", l)),
        }
    }

    /// LONG's argument without its `L`: Python's `int(s, 0)` for the decimal forms
    /// picklers write (surrounding whitespace allowed, no leading zeros but for zero).
    fn parse_long_text(&self, l: &[u8]) -> R<Value> {
        let s = std::str::from_utf8(l).map_err(|_| self.bad("LONG", l))?;
        let t = s.trim_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
        let digits = t.trim_start_matches(['+', '-']);
        if digits.len() > 1 && digits.starts_with('0') && !digits.bytes().all(|c| c == b'0') {
            return Err(self.bad("LONG", l));
        }
        match num::decimal_to_value(t) {
            Some(Ok(v)) => Ok(v),
            Some(Err(())) => Err(self.err(K::IntTooLong(num::MAX_INT_DIGITS))),
            None => Err(self.bad("LONG", l)),
        }
    }

    /// STRING's quoted argument, with the escapes Python's bytes literal decoder (and
    /// Python 2's `string-escape`) understands.
    fn decode_string_literal(&self, l: &[u8]) -> R<Vec<u8>> {
        let quoted = l.len() >= 2 && l[0] == l[l.len() - 1] && (l[0] == b'\'' || l[0] == b'"');
        if !quoted {
            return Err(self.bad("STRING (must be quoted)", l));
        }
        let s = &l[1..l.len() - 1];
        let bad = |detail: String| {
            self.err(K::BadEscape {
                what: "STRING",
                detail,
            })
        };
        let mut out = Vec::with_capacity(s.len());
        let mut i = 0;
        while i < s.len() {
            let c = s[i];
            i += 1;
            if c != b'\\' {
                out.push(c);
                continue;
            }
            let Some(&e) = s.get(i) else {
                return Err(bad("trailing \\".into()));
            };
            i += 1;
            match e {
                b'\n' => {}
                b'\\' => out.push(b'\\'),
                b'\'' => out.push(b'\''),
                b'"' => out.push(b'"'),
                b'b' => out.push(0x08),
                b'f' => out.push(0x0c),
                b't' => out.push(b'\t'),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b'v' => out.push(0x0b),
                b'a' => out.push(0x07),
                b'0'..=b'7' => {
                    let mut v = (e - b'0') as u32;
                    for _ in 0..2 {
                        match s.get(i) {
                            Some(&d @ b'0'..=b'7') => {
                                v = v * 8 + (d - b'0') as u32;
                                i += 1;
                            }
                            _ => break,
                        }
                    }
                    // Python keeps the low byte of \400–\777 (with a warning).
                    out.push(v as u8);
                }
                b'x' => {
                    let hex = s.get(i..i + 2).and_then(|h| {
                        std::str::from_utf8(h)
                            .ok()
                            .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
                            .and_then(|h| u8::from_str_radix(h, 16).ok())
                    });
                    match hex {
                        Some(v) => {
                            out.push(v);
                            i += 2;
                        }
                        None => {
                            return Err(bad(format!("invalid \\x escape at position {}", i - 2)))
                        }
                    }
                }
                other => {
                    // Unknown escapes stay as they are.
                    out.push(b'\\');
                    out.push(other);
                }
            }
        }
        Ok(out)
    }

    /// UNICODE's argument: `raw-unicode-escape` as CPython 3.11 decodes it. Only `\uXXXX`
    /// and `\UXXXXXXXX` after an odd run of backslashes are escapes; every other byte is
    /// a Latin-1 character.
    fn decode_raw_unicode_escape(&self, l: &[u8]) -> R<String> {
        let bad = |detail: String| {
            self.err(K::BadEscape {
                what: "UNICODE",
                detail,
            })
        };
        let mut out = String::with_capacity(l.len());
        let mut i = 0;
        while i < l.len() {
            let c = l[i];
            if c != b'\\' {
                out.push(c as char);
                i += 1;
                continue;
            }
            let run = l[i..].iter().take_while(|&&b| b == b'\\').count();
            let j = i + run;
            let escape = run % 2 == 1 && matches!(l.get(j), Some(b'u' | b'U'));
            let literal = if escape { run - 1 } else { run };
            for _ in 0..literal {
                out.push('\\');
            }
            i = j;
            if !escape {
                continue;
            }
            let n = if l[i] == b'u' { 4 } else { 8 };
            i += 1;
            let hex = l
                .get(i..i + n)
                .filter(|h| h.iter().all(|c| c.is_ascii_hexdigit()))
                .ok_or_else(|| bad(format!("truncated \\{} escape", l[i - 1] as char)))?;
            let v = u32::from_str_radix(std::str::from_utf8(hex).expect("hex"), 16)
                .expect("hex digits");
            i += n;
            let ch = char::from_u32(v).ok_or_else(|| {
                bad(format!(
                    "\\U{v:08x} is a surrogate or beyond U+10FFFF (no Rust string holds it)"
                ))
            })?;
            out.push(ch);
        }
        Ok(out)
    }

    // ---- arena to tree ----

    fn charge(&mut self, v: &Value) -> R<()> {
        let payload = match v {
            Value::BigInt(b) | Value::Bytes(b) => b.len(),
            Value::Str(s) => s.len(),
            Value::Global { module, name } => module.len() + name.len(),
            _ => 0,
        };
        self.stats.output_bytes += std::mem::size_of::<Value>() + payload;
        if self.stats.output_bytes > self.budget {
            return Err(self.err(K::TooLarge(self.budget)));
        }
        Ok(())
    }

    /// Child `i` of a container node, in the order they are built.
    fn child(&self, id: u32, i: usize) -> Option<u32> {
        match &self.nodes[id as usize] {
            Node::Tuple(v) | Node::List(v) | Node::Dict(v) | Node::Set(v) | Node::FrozenSet(v) => {
                v.get(i).copied()
            }
            Node::Object {
                callable,
                args,
                kwargs,
                state,
                ..
            } => [*callable, *args, *kwargs, *state]
                .into_iter()
                .filter(|&c| c != NIL)
                .nth(i),
            Node::Pid(inner) => (i == 0).then_some(*inner),
            _ => None,
        }
    }

    fn is_container(&self, id: u32) -> bool {
        matches!(
            self.nodes[id as usize],
            Node::Tuple(_)
                | Node::List(_)
                | Node::Dict(_)
                | Node::Set(_)
                | Node::FrozenSet(_)
                | Node::Object { .. }
                | Node::Pid(_)
        )
    }

    /// An atom's value. Its payload is moved out of the arena on its last use (`refs`
    /// counts the uses left) and copied before that.
    fn atom(&mut self, id: u32, refs: &mut [u32]) -> Value {
        let last = refs[id as usize] <= 1;
        if !last {
            refs[id as usize] -= 1;
        }
        fn grab<T: Clone + Default>(x: &mut T, last: bool) -> T {
            if last {
                std::mem::take(x)
            } else {
                x.clone()
            }
        }
        match &mut self.nodes[id as usize] {
            Node::None => Value::None,
            Node::Bool(b) => Value::Bool(*b),
            Node::Int(i) => Value::Int(*i),
            Node::BigInt(b) => Value::BigInt(grab(b, last)),
            Node::Float(f) => Value::Float(*f),
            Node::Bytes(b) => Value::Bytes(grab(b, last)),
            Node::Str(s) => Value::Str(grab(s, last)),
            // The name strings are counted as used by the global, so they are copied here.
            &mut Node::Global(m, n) => Value::Global {
                module: self.str_of(m).to_owned(),
                name: self.str_of(n).to_owned(),
            },
            Node::ByteArray(b) => builtin_call("bytearray", Value::Bytes(grab(b, last))),
            _ => unreachable!("containers are built by frames"),
        }
    }

    /// How often each node is referenced (by containers, objects, globals); more than
    /// the real uses when garbage refers to it, which only costs a copy.
    fn reference_counts(&self, root: u32) -> Vec<u32> {
        let mut refs = vec![0u32; self.nodes.len()];
        let mut add = |c: u32| {
            if c != NIL {
                refs[c as usize] = refs[c as usize].saturating_add(1);
            }
        };
        for n in &self.nodes {
            match n {
                Node::Tuple(v)
                | Node::List(v)
                | Node::Dict(v)
                | Node::Set(v)
                | Node::FrozenSet(v) => v.iter().for_each(|&c| add(c)),
                Node::Object {
                    callable,
                    args,
                    kwargs,
                    state,
                    ..
                } => [*callable, *args, *kwargs, *state]
                    .into_iter()
                    .for_each(&mut add),
                Node::Pid(c) => add(*c),
                Node::Global(m, n) => {
                    add(*m);
                    add(*n);
                }
                _ => {}
            }
        }
        add(root);
        refs
    }

    fn assemble(&self, id: u32, out: Vec<Value>) -> R<Value> {
        Ok(match &self.nodes[id as usize] {
            Node::Tuple(_) => Value::Tuple(out),
            Node::List(_) => Value::List(out),
            Node::Set(_) => builtin_call("set", Value::List(out)),
            Node::FrozenSet(_) => builtin_call("frozenset", Value::List(out)),
            Node::Dict(_) => Value::Dict(dedupe_dict(out).map_err(|k| self.err(K::Unhashable(k)))?),
            Node::Pid(_) => Value::PersistentId(Box::new(out.into_iter().next().expect("1"))),
            Node::Object { how, state, .. } => {
                let mut it = out.into_iter();
                let callable = it.next().expect("callable");
                let args = it.next().expect("args");
                let kwargs = if *how == How::NewObjEx {
                    it.next()
                } else {
                    None
                };
                let st = if *state != NIL { it.next() } else { None };
                let (callable, args) = match how {
                    How::Reduce => (callable, args),
                    How::NewObj => {
                        let Value::Tuple(a) = args else {
                            unreachable!("checked at NEWOBJ")
                        };
                        let mut all = Vec::with_capacity(a.len() + 1);
                        all.push(callable);
                        all.extend(a);
                        (copyreg("__newobj__"), Value::Tuple(all))
                    }
                    How::NewObjEx => (
                        copyreg("__newobj_ex__"),
                        Value::Tuple(vec![callable, args, kwargs.expect("kwargs")]),
                    ),
                };
                Value::Object {
                    callable: Box::new(callable),
                    args: Box::new(args),
                    state: st.map(Box::new),
                }
            }
            _ => unreachable!("atoms are not assembled"),
        })
    }

    /// Turn the arena below `root` into a tree without recursion.
    fn build(&mut self, root: u32) -> R<Value> {
        let mut refs = self.reference_counts(root);
        if !self.is_container(root) {
            let v = self.atom(root, &mut refs);
            self.charge(&v)?;
            return Ok(v);
        }
        struct Frame {
            id: u32,
            next: usize,
            out: Vec<Value>,
        }
        let mut on_path = vec![false; self.nodes.len()];
        on_path[root as usize] = true;
        let mut frames = vec![Frame {
            id: root,
            next: 0,
            out: Vec::new(),
        }];
        loop {
            let top = frames.last_mut().expect("non-empty");
            match self.child(top.id, top.next) {
                Some(c) => {
                    top.next += 1;
                    if !self.is_container(c) {
                        let v = self.atom(c, &mut refs);
                        self.charge(&v)?;
                        frames.last_mut().expect("non-empty").out.push(v);
                    } else if on_path[c as usize] {
                        return Err(self.err(K::Recursive));
                    } else if frames.len() >= self.max_depth {
                        return Err(self.err(K::TooDeep(self.max_depth)));
                    } else {
                        on_path[c as usize] = true;
                        frames.push(Frame {
                            id: c,
                            next: 0,
                            out: Vec::new(),
                        });
                    }
                }
                None => {
                    let f = frames.pop().expect("non-empty");
                    on_path[f.id as usize] = false;
                    let v = self.assemble(f.id, f.out)?;
                    self.charge(&v)?;
                    match frames.last_mut() {
                        Some(parent) => parent.out.push(v),
                        None => return Ok(v),
                    }
                }
            }
        }
    }
}

fn copyreg(name: &str) -> Value {
    Value::Global {
        module: "copyreg".into(),
        name: name.into(),
    }
}

/// `builtins.<name>(arg)` as an opaque object: how sets, frozensets and bytearrays are kept
/// (it is also how protocols below 4 pickle them).
fn builtin_call(name: &str, arg: Value) -> Value {
    Value::Object {
        callable: Box::new(Value::Global {
            module: "builtins".into(),
            name: name.into(),
        }),
        args: Box::new(Value::Tuple(vec![arg])),
        state: None,
    }
}

/// Key identity as a Python 3 dict sees it, as bytes: equal keys give equal fingerprints
/// (`1 == 1.0 == True`), unhashable keys are refused. Objects and NaNs compare by identity,
/// so each gets a fresh fingerprint.
fn fingerprint(v: &Value, out: &mut Vec<u8>, unique: &mut u64) -> Result<(), &'static str> {
    fn int(out: &mut Vec<u8>, i: i64) {
        out.push(b'i');
        out.extend_from_slice(&i.to_le_bytes());
    }
    fn blob(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
        out.push(tag);
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        out.extend_from_slice(b);
    }
    match v {
        Value::None => out.push(b'N'),
        Value::Bool(b) => int(out, *b as i64),
        Value::Int(i) => int(out, *i),
        Value::BigInt(b) => blob(out, b'I', b),
        Value::Float(f) => {
            if f.is_nan() {
                *unique += 1;
                blob(out, b'u', &unique.to_le_bytes());
            } else if f.fract() == 0.0 && f.abs() < 9.2e18 {
                int(out, *f as i64);
            } else {
                blob(out, b'f', &f.to_bits().to_le_bytes());
            }
        }
        Value::Bytes(b) => blob(out, b'b', b),
        Value::Str(s) => blob(out, b's', s.as_bytes()),
        Value::Global { module, name } => {
            blob(out, b'g', module.as_bytes());
            blob(out, b'g', name.as_bytes());
        }
        Value::Tuple(items) => {
            blob(out, b't', &(items.len() as u64).to_le_bytes());
            for i in items {
                fingerprint(i, out, unique)?;
            }
        }
        Value::List(_) => return Err("list"),
        Value::Dict(_) => return Err("dict"),
        Value::Object { .. } | Value::PersistentId(_) => {
            *unique += 1;
            blob(out, b'u', &unique.to_le_bytes());
        }
    }
    Ok(())
}

/// Key, value, key, value... into pairs, a repeated key keeping its first place and its
/// last value, as filling a Python dict does.
fn dedupe_dict(flat: Vec<Value>) -> Result<Vec<(Value, Value)>, &'static str> {
    let n = flat.len() / 2;
    // All fingerprints in one buffer; small dicts compare them pairwise, large ones hash.
    let mut buf = Vec::new();
    let mut ranges = Vec::with_capacity(n);
    let mut unique = 0u64;
    for k in flat.iter().step_by(2) {
        let start = buf.len();
        fingerprint(k, &mut buf, &mut unique)?;
        ranges.push((start, buf.len()));
    }
    let fp = |i: usize| &buf[ranges[i].0..ranges[i].1];
    // first[i]: the index of the first key equal to key i.
    let mut first: Vec<usize> = (0..n).collect();
    let mut any_dup = false;
    if n <= 16 {
        for i in 1..n {
            if let Some(j) = (0..i).find(|&j| first[j] == j && fp(j) == fp(i)) {
                first[i] = j;
                any_dup = true;
            }
        }
    } else {
        let mut seen: HashMap<&[u8], usize> = HashMap::with_capacity(n);
        for (i, f) in first.iter_mut().enumerate() {
            let j = *seen.entry(fp(i)).or_insert(i);
            if j != i {
                *f = j;
                any_dup = true;
            }
        }
    }
    let mut it = flat.into_iter();
    let mut pairs: Vec<(Value, Value)> = Vec::with_capacity(n);
    if !any_dup {
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            pairs.push((k, v));
        }
        return Ok(pairs);
    }
    let mut slot = vec![usize::MAX; n];
    for (i, &f) in first.iter().enumerate() {
        let (k, v) = (it.next().expect("key"), it.next().expect("value"));
        if f == i {
            slot[i] = pairs.len();
            pairs.push((k, v));
        } else {
            pairs[slot[f]].1 = v;
        }
    }
    Ok(pairs)
}
