//! Python 2 literals, as scenario files write them and transcripts print them.
//!
//! Transcripts follow the spec, which is a Python 2 session: `'abc'` is a byte string,
//! `u'abc'` is text. Parsing is recursive descent with a fixed depth limit, so a hostile
//! scenario line cannot exhaust the stack.

use zrs::pickle::Value;
use zrs::repr::py2_bytes_repr;

/// How deep literals may nest.
const MAX_DEPTH: usize = 32;

/// Parses one whole literal; the error says what and at which character.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        pos: 0,
    };
    let value = p.value(0)?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return Err(format!("unexpected {:?} at column {}", p.rest(), p.pos + 1));
    }
    Ok(value)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn rest(&self) -> String {
        String::from_utf8_lossy(&self.s[self.pos..])
            .chars()
            .take(20)
            .collect()
    }

    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!("literal nests deeper than {MAX_DEPTH}"));
        }
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            None => Err("expected a value, found the end of the line".into()),
            Some(b'(') => {
                self.pos += 1;
                let (items, trailing_comma) = self.items(b')', depth)?;
                Ok(if items.len() == 1 && !trailing_comma {
                    items.into_iter().next().unwrap()
                } else {
                    Value::Tuple(items)
                })
            }
            Some(b'[') => {
                self.pos += 1;
                Ok(Value::List(self.items(b']', depth)?.0))
            }
            Some(b'{') => {
                self.pos += 1;
                let mut pairs = Vec::new();
                loop {
                    if self.eat(b'}') {
                        break;
                    }
                    let k = self.value(depth + 1)?;
                    if !self.eat(b':') {
                        return Err(format!("expected ':' at column {}", self.pos + 1));
                    }
                    let v = self.value(depth + 1)?;
                    pairs.push((k, v));
                    if !self.eat(b',') {
                        if self.eat(b'}') {
                            break;
                        }
                        return Err(format!("expected ',' or '}}' at column {}", self.pos + 1));
                    }
                }
                Ok(Value::Dict(pairs))
            }
            Some(b'\'' | b'"') => Ok(Value::Bytes(self.string()?)),
            Some(b'b') if matches!(self.s.get(self.pos + 1), Some(b'\'' | b'"')) => {
                self.pos += 1;
                Ok(Value::Bytes(self.string()?))
            }
            Some(b'u') if matches!(self.s.get(self.pos + 1), Some(b'\'' | b'"')) => {
                self.pos += 1;
                self.unicode().map(Value::Str)
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => self.number(),
            Some(_) => {
                let word_end = self.s[self.pos..]
                    .iter()
                    .position(|c| !c.is_ascii_alphanumeric() && *c != b'_')
                    .map_or(self.s.len(), |n| self.pos + n);
                let word = &self.s[self.pos..word_end];
                let v = match word {
                    b"None" => Value::None,
                    b"True" => Value::Bool(true),
                    b"False" => Value::Bool(false),
                    _ => {
                        return Err(format!(
                            "unexpected {:?} at column {}",
                            self.rest(),
                            start + 1
                        ))
                    }
                };
                self.pos = word_end;
                Ok(v)
            }
        }
    }

    /// Comma-separated values up to `close`; also says whether a trailing comma was seen.
    fn items(&mut self, close: u8, depth: usize) -> Result<(Vec<Value>, bool), String> {
        let mut items = Vec::new();
        let mut trailing = false;
        loop {
            if self.eat(close) {
                return Ok((items, trailing));
            }
            items.push(self.value(depth + 1)?);
            trailing = self.eat(b',');
            if !trailing {
                if self.eat(close) {
                    return Ok((items, false));
                }
                return Err(format!(
                    "expected ',' or '{}' at column {}",
                    close as char,
                    self.pos + 1
                ));
            }
        }
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || c == b'.' || c == b'e' || c == b'L')
        {
            self.pos += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
        let text = text.strip_suffix('L').unwrap_or(text);
        if let Ok(i) = text.parse::<i64>() {
            return Ok(Value::Int(i));
        }
        text.parse::<f64>()
            .map(Value::Float)
            .map_err(|_| format!("bad number {text:?} at column {}", start + 1))
    }

    /// A quoted `u'…'` string with Python 2 unicode escapes: `\xNN`, `\uNNNN` and
    /// `\UNNNNNNNN` name code points; other characters stand for themselves.
    fn unicode(&mut self) -> Result<String, String> {
        let quote = self.s[self.pos];
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        let text = std::str::from_utf8(self.s).map_err(|_| "line is not UTF-8".to_string())?;
        loop {
            let Some(c) = text[self.pos..].chars().next() else {
                return Err(format!(
                    "unterminated string starting at column {}",
                    start + 1
                ));
            };
            self.pos += c.len_utf8();
            if c as u32 == quote as u32 {
                return Ok(out);
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some(e) = self.peek() else {
                return Err(format!(
                    "unterminated string starting at column {}",
                    start + 1
                ));
            };
            self.pos += 1;
            let digits = match e {
                b'x' => 2,
                b'u' => 4,
                b'U' => 8,
                b'n' => {
                    out.push('\n');
                    continue;
                }
                b't' => {
                    out.push('\t');
                    continue;
                }
                b'r' => {
                    out.push('\r');
                    continue;
                }
                b'0' => {
                    out.push('\0');
                    continue;
                }
                b'\\' | b'\'' | b'"' => {
                    out.push(e as char);
                    continue;
                }
                _ => {
                    return Err(format!(
                        "unknown escape \\{} at column {}",
                        e as char,
                        self.pos - 1
                    ))
                }
            };
            let code = self
                .s
                .get(self.pos..self.pos + digits)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32)
                .ok_or_else(|| format!("bad \\{} escape at column {}", e as char, self.pos))?;
            out.push(code);
            self.pos += digits;
        }
    }

    /// A quoted string with Python 2 escapes; returns its bytes.
    fn string(&mut self) -> Result<Vec<u8>, String> {
        let quote = self.s[self.pos];
        let start = self.pos;
        self.pos += 1;
        let mut out = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(format!(
                    "unterminated string starting at column {}",
                    start + 1
                ));
            };
            self.pos += 1;
            if c == quote {
                return Ok(out);
            }
            if c != b'\\' {
                out.push(c);
                continue;
            }
            let Some(e) = self.peek() else {
                return Err(format!(
                    "unterminated string starting at column {}",
                    start + 1
                ));
            };
            self.pos += 1;
            match e {
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'r' => out.push(b'\r'),
                b'0' => out.push(0),
                b'\\' | b'\'' | b'"' => out.push(e),
                b'x' => {
                    let hex = self
                        .s
                        .get(self.pos..self.pos + 2)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .ok_or_else(|| format!("bad \\x escape at column {}", self.pos))?;
                    out.push(hex);
                    self.pos += 2;
                }
                _ => {
                    return Err(format!(
                        "unknown escape \\{} at column {}",
                        e as char,
                        self.pos - 1
                    ))
                }
            }
        }
    }
}

/// Python 2's `repr` of a `unicode`: like a byte string's (same quote choice, same escapes
/// for ASCII), with code points escaped as `\xNN`, `\uNNNN` or `\UNNNNNNNN`.
pub fn py2_unicode_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 3);
    out.push('u');
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push(quote);
    out
}

/// Python 2's `repr` of a value.
pub fn repr(value: &Value) -> String {
    let mut out = String::new();
    write_repr(value, &mut out);
    out
}

fn write_repr(value: &Value, out: &mut String) {
    let seq = |items: &[Value], open: &str, close: &str, out: &mut String| {
        out.push_str(open);
        for (i, v) in items.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            write_repr(v, out);
        }
        out.push_str(close);
    };
    match value {
        Value::None => out.push_str("None"),
        Value::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::BigInt(_) => out.push_str("<long>"),
        Value::Float(f) => out.push_str(&format!("{f:?}")),
        Value::Bytes(b) => out.push_str(&py2_bytes_repr(b)),
        Value::Str(s) => out.push_str(&py2_unicode_repr(s)),
        Value::Tuple(items) if items.len() == 1 => {
            out.push('(');
            write_repr(&items[0], out);
            out.push_str(",)");
        }
        Value::Tuple(items) => seq(items, "(", ")", out),
        Value::List(items) => seq(items, "[", "]", out),
        Value::Dict(pairs) => {
            out.push('{');
            for (i, (k, v)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(k, out);
                out.push_str(": ");
                write_repr(v, out);
            }
            out.push('}');
        }
        Value::Global { module, name } => out.push_str(&format!("<class '{module}.{name}'>")),
        Value::Object { .. } | Value::PersistentId(_) => out.push_str("<object>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_python2_literals() {
        assert_eq!(parse("'zrs2.0'").unwrap(), Value::Bytes(b"zrs2.0".to_vec()));
        assert_eq!(
            parse(r"'\x03lk\x90\xfb\xbb\xbb\xbb'").unwrap(),
            Value::Bytes(b"\x03lk\x90\xfb\xbb\xbb\xbb".to_vec())
        );
        assert_eq!(
            parse("('C', ())").unwrap(),
            Value::Tuple(vec![Value::Bytes(b"C".to_vec()), Value::Tuple(vec![])])
        );
        assert_eq!(
            parse("(u'x', 1, None, True, [2], {'k': -3},)").unwrap(),
            Value::Tuple(vec![
                Value::Str("x".into()),
                Value::Int(1),
                Value::None,
                Value::Bool(true),
                Value::List(vec![Value::Int(2)]),
                Value::Dict(vec![(Value::Bytes(b"k".to_vec()), Value::Int(-3))]),
            ])
        );
        assert_eq!(parse("(1,)").unwrap(), Value::Tuple(vec![Value::Int(1)]));
        assert_eq!(parse("(1)").unwrap(), Value::Int(1));
    }

    #[test]
    fn rejects_bad_literals_with_a_column() {
        assert!(parse("('a'").unwrap_err().contains("column"));
        assert!(parse("'abc").unwrap_err().contains("unterminated"));
        assert!(parse("(1 2)").unwrap_err().contains("expected ','"));
        assert!(parse("nope").unwrap_err().contains("unexpected"));
        assert!(parse(&"(".repeat(10_000)).unwrap_err().contains("deeper"));
    }

    #[test]
    fn unicode_is_python2_unicode() {
        // Reprs printed by Python 2.7 for the same values.
        for (value, python) in [
            ("f\u{f6}lder", r#"u'f\xf6lder'"#),
            ("\u{20ac}\u{1f600}", r#"u'\u20ac\U0001f600'"#),
            ("it's", r#"u"it's""#),
            ("a\"b'c", r#"u'a"b\'c'"#),
            ("\t\n\\", r#"u'\t\n\\'"#),
            ("\u{7f}\u{80}\u{a0}", r#"u'\x7f\x80\xa0'"#),
        ] {
            assert_eq!(py2_unicode_repr(value), python);
            assert_eq!(parse(python).unwrap(), Value::Str(value.into()), "{python}");
        }
        assert_eq!(
            parse(r"u'b\u00f6b'").unwrap(),
            Value::Str("b\u{f6}b".into())
        );
        // Non-ASCII characters written as they are stand for themselves.
        assert_eq!(parse("u'b\u{f6}b'").unwrap(), Value::Str("b\u{f6}b".into()));
    }

    #[test]
    fn prints_like_python2() {
        for text in ["'zrs2.0'", "''", "(u'x', 1, None, (2,), [], {'k': 'v'})"] {
            assert_eq!(repr(&parse(text).unwrap()), text);
        }
    }
}
