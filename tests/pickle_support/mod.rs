//! Shared helpers for the pickle tests: reading the fixture files that
//! `tests/fixtures/pickles/generate.py` wrote with real Python, and comparing values.
#![allow(dead_code)]

use std::path::PathBuf;

use zrs::pickle::{num, Value};

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pickles")
        .join(name)
}

/// The tab-separated columns of each case line of a fixture file.
pub fn cases(name: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(fixture_path(name))
        .unwrap_or_else(|e| panic!("read fixture {name}: {e}"));
    let rows: Vec<Vec<String>> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect();
    assert!(!rows.is_empty(), "fixture {name} has no cases");
    rows
}

pub fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() & 1 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Parse the value-token notation (see generate.py).
pub fn parse_value(text: &str) -> Value {
    let toks: Vec<&str> = text.split_whitespace().collect();
    let mut pos = 0;
    let v = parse_at(&toks, &mut pos);
    assert_eq!(pos, toks.len(), "trailing tokens in {text:?}");
    v
}

fn parse_at(toks: &[&str], pos: &mut usize) -> Value {
    let t = toks[*pos];
    *pos += 1;
    let seq = |close: &str, pos: &mut usize| {
        let mut items = Vec::new();
        while toks[*pos] != close {
            items.push(parse_at(toks, pos));
        }
        *pos += 1;
        items
    };
    match t {
        "N" => Value::None,
        "T" => Value::Bool(true),
        "F" => Value::Bool(false),
        "(" => Value::Tuple(seq(")", pos)),
        "[" => Value::List(seq("]", pos)),
        "{" => {
            let items = seq("}", pos);
            let mut it = items.into_iter();
            let mut pairs = Vec::new();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                pairs.push((k, v));
            }
            Value::Dict(pairs)
        }
        _ => {
            let (tag, rest) = t.split_at(1);
            match tag {
                "i" => num::decimal_to_value(rest)
                    .expect("int token")
                    .expect("int size"),
                "f" => Value::Float(f64::from_be_bytes(unhex(rest).try_into().expect("8"))),
                "b" => Value::Bytes(unhex(rest)),
                "s" => Value::Str(String::from_utf8(unhex(rest)).expect("utf8")),
                _ => panic!("bad token {t:?}"),
            }
        }
    }
}

/// Equality with NaN equal to itself (bitwise float comparison).
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        // Integers compare by value, as Python 3 compares them: a long and an int of the
        // same value are equal (the tokens do not say which a fixture pickled).
        (Value::Int(_) | Value::BigInt(_), Value::Int(_) | Value::BigInt(_)) => {
            int_value(a) == int_value(b)
        }
        (Value::Tuple(x), Value::Tuple(y)) | (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Dict(x), Value::Dict(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, va), (kb, vb))| same(ka, kb) && same(va, vb))
        }
        _ => a == b,
    }
}

fn int_value(v: &Value) -> Value {
    match v {
        Value::BigInt(b) => num::twos_to_value(b),
        v => v.clone(),
    }
}

/// Like [`same`], but dicts compare without order: Python 2 dicts have none, so a py2
/// fixture's expected tokens may list the items in another order than its pickle.
pub fn same_unordered(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Tuple(x), Value::Tuple(y)) | (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_unordered(a, b))
        }
        (Value::Dict(x), Value::Dict(y)) => {
            x.len() == y.len()
                && x.iter().all(|(ka, va)| {
                    y.iter()
                        .any(|(kb, vb)| same_unordered(ka, kb) && same_unordered(va, vb))
                })
        }
        _ => same(a, b),
    }
}

/// The value-token notation of a plain value (the inverse of [`parse_value`]).
pub fn tokens(v: &Value) -> String {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::None => out.push("N".into()),
            Value::Bool(true) => out.push("T".into()),
            Value::Bool(false) => out.push("F".into()),
            Value::Int(i) => out.push(format!("i{i}")),
            Value::BigInt(b) => out.push(format!("i{}", num::twos_to_decimal(b))),
            Value::Float(f) => out.push(format!("f{}", hex(&f.to_be_bytes()))),
            Value::Bytes(b) => out.push(format!("b{}", hex(b))),
            Value::Str(s) => out.push(format!("s{}", hex(s.as_bytes()))),
            Value::Tuple(items) | Value::List(items) => {
                let (open, close) = if matches!(v, Value::Tuple(_)) {
                    ("(", ")")
                } else {
                    ("[", "]")
                };
                out.push(open.into());
                for i in items {
                    walk(i, out);
                }
                out.push(close.into());
            }
            Value::Dict(items) => {
                out.push("{".into());
                for (k, v) in items {
                    walk(k, out);
                    walk(v, out);
                }
                out.push("}".into());
            }
            other => panic!("no token for {other:?}"),
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out.join(" ")
}
