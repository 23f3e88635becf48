//! Python 2.7's `cPickle` at protocol 1: how ZODB 4 stores a transaction's extension.
//!
//! ZODB 4.4.5 on Python 2 writes a non-empty extension as `dumps(ext, 1)` with `dumps` from
//! `zodbpickle.fastpickle`, a copy of Python 2.7's `cPickle` (`ZODB/_compat.py`,
//! `BaseStorage.tpc_begin`); an empty one as no bytes. A replica of a Python 2 primary must
//! write the same bytes, so this encoder follows `cPickle.c` decision by decision:
//!
//! - `str` ([`Value::Bytes`]): SHORT_BINSTRING below 256 bytes, else BINSTRING; `unicode`
//!   ([`Value::Str`]): BINUNICODE with UTF-8; `int` ([`Value::Int`]): BININT1 / BININT2 /
//!   BININT within 32 bits, `I<decimal>\n` beyond; `long` ([`Value::BigInt`], however small):
//!   `L<decimal>L\n`; `float`: BINFLOAT; `bool`: `I01\n` / `I00\n`; `None`: NONE.
//! - Containers: MARK … TUPLE; EMPTY_LIST with one APPEND for one item, else batches of
//!   1000 in MARK … APPENDS, a last batch of one item being a lone APPEND (cPickle's
//!   `batch_list`); EMPTY_DICT with one SETITEM for one item, else batches of 1000 in
//!   MARK … SETITEMS, a size that is a multiple of 1000 ending with an empty batch
//!   (`batch_dict_exact`), its items in the order Python 2 iterates a dict rebuilt from the
//!   received one (see `py2_dict`).
//! - The memo: indices from 1 (not 0 as in Python 3), BINPUT below 256 then LONG_BINPUT.
//!   A non-empty list or dict is always memoized. Everything else that cPickle memoizes at
//!   all — `str` and `unicode` of two characters or more, non-empty tuples, empty lists and
//!   dicts — is memoized *only if Python held another reference to it* (`put()` tests
//!   `Py_REFCNT(ob) < 2`). One- and zero-character strings, numbers and the empty tuple
//!   never are.
//!
//! That last rule makes the bytes depend on the writing process, which the stream does not
//! carry (the primary sends the extension decoded, pickled in fast mode, without a memo).
//! [`Identity`] names the two cases that can be reproduced exactly; equal values are always
//! taken to be distinct objects (no memo GET), as they are after decoding a fast pickle.
//!
//! Opaque values (globals, reductions, persistent ids) are written as cPickle writes
//! classes and `__reduce__` results, for completeness; extensions do not normally hold any,
//! and the fixtures do not cover them.

use super::num;
use super::opcodes as op;
use super::py2_dict::{pickled_order, REBUILD_BUDGET};
use super::Value;

const BATCHSIZE: usize = 1000;

/// Which objects of an extension Python held a second reference to when it was pickled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Identity {
    /// Every object is also referenced from outside the extension: an application that
    /// builds it from literals and names it keeps (`t.setExtendedInfo('note', u'…')`), as
    /// a Python 2 zc.zrs primary's own writers do. Every string of two characters or more,
    /// every non-empty tuple, every list and dict gets a memo entry.
    #[default]
    Referenced,
    /// The extension was just unpickled, so each object is referenced by its container
    /// only (ZEO's server, `copyTransactionsFrom`, Python 2's zc.zrs secondary): only a
    /// list's items (which cPickle's list iterator holds once more) and non-empty lists and
    /// dicts get memo entries.
    Unpickled,
}

/// `cPickle.dumps(v, 1)` as Python 2.7 writes it, with `identity` deciding the memo.
pub fn dumps_py2(v: &Value, identity: Identity) -> Vec<u8> {
    let mut p = Pickler {
        out: Vec::with_capacity(64),
        memo_len: 0,
        identity,
        budget: REBUILD_BUDGET,
    };
    p.save(v, Holder::Other);
    p.out.push(op::STOP);
    p.out
}

/// The bytes ZODB 4 on Python 2 stores as a transaction's extension: nothing for an empty
/// extension, else [`dumps_py2`].
pub fn dumps_py2_extension(ext: &Value, identity: Identity) -> Vec<u8> {
    match ext {
        Value::Dict(d) if d.is_empty() => Vec::new(),
        Value::None => Vec::new(),
        v => dumps_py2(v, identity),
    }
}

/// What holds the object being saved, which decides its reference count.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Holder {
    /// An item of a list: cPickle's iterator holds one more reference.
    List,
    /// A dict item, a tuple element (borrowed references) or the top.
    Other,
}

struct Pickler {
    out: Vec<u8>,
    memo_len: u32,
    identity: Identity,
    /// What is left of [`REBUILD_BUDGET`].
    budget: usize,
}

impl Pickler {
    /// cPickle's `put()`: memoize only an object Python holds twice.
    fn put(&mut self, holder: Holder) {
        if self.identity == Identity::Referenced || holder == Holder::List {
            self.put2();
        }
    }

    /// cPickle's `put2()`: memoize, indices counting from 1.
    fn put2(&mut self) {
        self.memo_len += 1;
        let p = self.memo_len;
        if p < 256 {
            self.out.extend_from_slice(&[op::BINPUT, p as u8]);
        } else {
            self.out.push(op::LONG_BINPUT);
            self.out.extend_from_slice(&p.to_le_bytes());
        }
    }

    fn save(&mut self, v: &Value, holder: Holder) {
        match v {
            Value::None => self.out.push(op::NONE),
            Value::Bool(b) => self
                .out
                .extend_from_slice(if *b { b"I01\n" } else { b"I00\n" }),
            Value::Int(i) => self.save_int(*i),
            Value::BigInt(b) => {
                // Python 2's repr(long): the digits and an L.
                self.out.push(op::LONG);
                self.out
                    .extend_from_slice(num::twos_to_decimal(b).as_bytes());
                self.out.extend_from_slice(b"L\n");
            }
            Value::Float(f) => {
                self.out.push(op::BINFLOAT);
                self.out.extend_from_slice(&f.to_be_bytes());
            }
            Value::Bytes(b) => {
                let n = b.len();
                if n < 256 {
                    self.out.extend_from_slice(&[op::SHORT_BINSTRING, n as u8]);
                } else {
                    self.out.push(op::BINSTRING);
                    self.out.extend_from_slice(&(n as u32).to_le_bytes());
                }
                self.out.extend_from_slice(b);
                if n >= 2 {
                    self.put(holder);
                }
            }
            Value::Str(s) => {
                self.out.push(op::BINUNICODE);
                self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                self.out.extend_from_slice(s.as_bytes());
                // cPickle measures unicode with PyString_GET_SIZE, which reads the length
                // in code units: code points on the UCS-4 builds Linux distributions ship.
                if s.chars().nth(1).is_some() {
                    self.put(holder);
                }
            }
            Value::Tuple(items) => {
                if items.is_empty() {
                    self.out.push(op::EMPTY_TUPLE);
                    return;
                }
                self.out.push(op::MARK);
                for i in items {
                    self.save(i, Holder::Other);
                }
                self.out.push(op::TUPLE);
                self.put(holder);
            }
            Value::List(items) => self.save_list(items, holder),
            Value::Dict(items) => self.save_dict(items, holder),
            Value::Global { module, name } => {
                self.out.push(op::GLOBAL);
                self.out.extend_from_slice(py2_module(module).as_bytes());
                self.out.push(b'\n');
                self.out.extend_from_slice(name.as_bytes());
                self.out.push(b'\n');
                // A class or function is referenced by its module.
                self.put2();
            }
            Value::Object {
                callable,
                args,
                state,
            } => {
                self.save(callable, Holder::Other);
                self.save(args, Holder::Other);
                self.out.push(op::REDUCE);
                self.put(holder);
                if let Some(st) = state {
                    self.save(st, Holder::Other);
                    self.out.push(op::BUILD);
                }
            }
            Value::PersistentId(pid) => {
                self.save(pid, Holder::Other);
                self.out.push(op::BINPERSID);
            }
        }
    }

    fn save_int(&mut self, i: i64) {
        match i32::try_from(i) {
            Ok(i) => {
                let b = i.to_le_bytes();
                if b[2] == 0 && b[3] == 0 {
                    if b[1] == 0 {
                        self.out.extend_from_slice(&[op::BININT1, b[0]]);
                    } else {
                        self.out.extend_from_slice(&[op::BININT2, b[0], b[1]]);
                    }
                } else {
                    self.out.push(op::BININT);
                    self.out.extend_from_slice(&b);
                }
            }
            // A 64-bit `int` beyond the 4-byte BININT: as text.
            Err(_) => self.out.extend_from_slice(format!("I{i}\n").as_bytes()),
        }
    }

    fn save_list(&mut self, items: &[Value], holder: Holder) {
        self.out.push(op::EMPTY_LIST);
        if items.is_empty() {
            self.put(holder);
            return;
        }
        self.put2();
        for batch in items.chunks(BATCHSIZE) {
            if let [only] = batch {
                self.save(only, Holder::List);
                self.out.push(op::APPEND);
            } else {
                self.out.push(op::MARK);
                for i in batch {
                    self.save(i, Holder::List);
                }
                self.out.push(op::APPENDS);
            }
        }
    }

    fn save_dict(&mut self, items: &[(Value, Value)], holder: Holder) {
        self.out.push(op::EMPTY_DICT);
        if items.is_empty() {
            self.put(holder);
            return;
        }
        self.put2();
        // Python 2 iterates the dict in its slots' order, not in the order received.
        let keys: Vec<&Value> = items.iter().map(|(k, _)| k).collect();
        let reordered: Vec<(Value, Value)>;
        let items = match pickled_order(&keys, &mut self.budget) {
            Some(order) => {
                reordered = order.into_iter().map(|i| items[i].clone()).collect();
                &reordered[..]
            }
            None => items,
        };
        if let [(k, v)] = items {
            self.save(k, Holder::Other);
            self.save(v, Holder::Other);
            self.out.push(op::SETITEM);
            return;
        }
        let mut rest = items;
        loop {
            let n = rest.len().min(BATCHSIZE);
            self.out.push(op::MARK);
            for (k, v) in &rest[..n] {
                self.save(k, Holder::Other);
                self.save(v, Holder::Other);
            }
            self.out.push(op::SETITEMS);
            rest = &rest[n..];
            if n < BATCHSIZE {
                break;
            }
        }
    }
}

/// Python 2's names of the modules Python 3 renamed.
fn py2_module(module: &str) -> &str {
    match module {
        "builtins" => "__builtin__",
        "copyreg" => "copy_reg",
        m => m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_extension_is_no_bytes() {
        assert!(dumps_py2_extension(&Value::Dict(vec![]), Identity::Referenced).is_empty());
    }

    #[test]
    fn memo_counts_from_one() {
        // Python 2.7: cPickle.dumps({'note': u'ok'}, 1) with both strings held elsewhere.
        let v = Value::Dict(vec![(
            Value::Bytes(b"note".to_vec()),
            Value::Str("ok".into()),
        )]);
        assert_eq!(
            dumps_py2(&v, Identity::Referenced),
            b"}q\x01U\x04noteq\x02X\x02\x00\x00\x00okq\x03s."
        );
        assert_eq!(
            dumps_py2(&v, Identity::Unpickled),
            b"}q\x01U\x04noteX\x02\x00\x00\x00oks."
        );
    }
}
