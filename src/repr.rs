//! Python `repr` of byte strings and text, so transcripts, logs and snapshot files print
//! values exactly as the Python reference's doctests and logs do.
//!
//! - [`py2_bytes_repr`]: Python 2 `repr(str)`, e.g. `'\x03lk\x90\xfb\xbb\xbb\xbb'` (what ZRS
//!   2.x logs and old doctests show for tids).
//! - [`py3_bytes_repr`]: Python 3 `repr(bytes)`, e.g. `b'\x03lk\x90\xfb\xbb\xbb\xbb'`.
//! - [`py_str_repr`]: Python 3 `repr(str)`, e.g. `'café'`, `"it's"`, `'\u2028'`.
//!
//! The rules are CPython's: single quotes unless the value holds `'` but no `"`; the chosen
//! quote and `\` are backslash-escaped; `\t`, `\n`, `\r` by name; other control bytes and
//! bytes ≥ 0x7f as lowercase `\xNN`. For text, non-ASCII characters print as they are when
//! CPython deems them printable and as `\xNN`, `\uNNNN` or `\UNNNNNNNN` otherwise. "Printable"
//! follows the Unicode database of CPython 3.11 (Unicode 14.0.0, table in `nonprintable.rs`);
//! later CPythons differ only for characters assigned after Unicode 14, which 3.11 escapes.
//!
//! All three are checked against thousands of cases printed by real Python 2.7 and 3.11
//! (`tests/fixtures/repr/`, `tests/repr.rs`).

mod nonprintable;

use std::fmt::Write;

/// The quote CPython picks: `"` only if the value holds `'` and no `"`.
fn pick_quote(has_single: bool, has_double: bool) -> char {
    if has_single && !has_double {
        '"'
    } else {
        '\''
    }
}

fn bytes_repr_into(out: &mut String, b: &[u8]) {
    let quote = pick_quote(b.contains(&b'\''), b.contains(&b'"'));
    out.reserve(b.len() + 2);
    out.push(quote);
    for &c in b {
        match c {
            b'\\' => out.push_str("\\\\"),
            b'\t' => out.push_str("\\t"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            _ if char::from(c) == quote => {
                out.push('\\');
                out.push(quote);
            }
            0x20..=0x7e => out.push(char::from(c)),
            _ => {
                let _ = write!(out, "\\x{c:02x}");
            }
        }
    }
    out.push(quote);
}

/// Python 2 `repr(str)` of a byte string: `'\x03lk\x90\xfb\xbb\xbb\xbb'`.
pub fn py2_bytes_repr(b: &[u8]) -> String {
    let mut out = String::new();
    bytes_repr_into(&mut out, b);
    out
}

/// Python 3 `repr(bytes)`: `b'\x03lk\x90\xfb\xbb\xbb\xbb'`.
pub fn py3_bytes_repr(b: &[u8]) -> String {
    let mut out = String::from("b");
    bytes_repr_into(&mut out, b);
    out
}

/// Whether CPython 3.11's `str.isprintable()` accepts `c` (non-ASCII characters only matter).
fn is_printable(c: char) -> bool {
    let cp = u32::from(c);
    let table = nonprintable::NON_PRINTABLE;
    // The last range starting at or before `cp` is the only one that can hold it.
    let i = table.partition_point(|&(first, _)| first <= cp);
    i == 0 || table[i - 1].1 < cp
}

/// Python 3 `repr(str)`: `'x'`, `"it's"`, `'caf\xe9'` is printed `'café'`, `'\u2028'`.
pub fn py_str_repr(s: &str) -> String {
    let quote = pick_quote(s.contains('\''), s.contains('"'));
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            _ if c == quote => {
                out.push('\\');
                out.push(quote);
            }
            ' '..='~' => out.push(c),
            _ if !c.is_ascii() && is_printable(c) => out.push(c),
            _ => {
                let cp = u32::from(c);
                let _ = match cp {
                    0..=0xff => write!(out, "\\x{cp:02x}"),
                    0x100..=0xffff => write!(out, "\\u{cp:04x}"),
                    _ => write!(out, "\\U{cp:08x}"),
                };
            }
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tid_bytes() {
        let tid = b"\x03lk\x90\xfb\xbb\xbb\xbb";
        assert_eq!(py2_bytes_repr(tid), r"'\x03lk\x90\xfb\xbb\xbb\xbb'");
        assert_eq!(py3_bytes_repr(tid), r"b'\x03lk\x90\xfb\xbb\xbb\xbb'");
    }

    #[test]
    fn quotes() {
        assert_eq!(py3_bytes_repr(b"it's"), r#"b"it's""#);
        assert_eq!(py3_bytes_repr(br#"say "x""#), r#"b'say "x"'"#);
        assert_eq!(py3_bytes_repr(br#"'""#), r#"b'\'"'"#);
        assert_eq!(py_str_repr(r#"'""#), r#"'\'"'"#);
        assert_eq!(py_str_repr("it's"), r#""it's""#);
    }

    #[test]
    fn text() {
        assert_eq!(py_str_repr("x"), "'x'");
        assert_eq!(py_str_repr("café\t"), "'café\\t'");
        assert_eq!(py_str_repr("\u{2028}\u{7f}\u{ad}"), r"'\u2028\x7f\xad'");
        assert_eq!(py_str_repr("\u{e0001}😀"), "'\\U000e0001😀'");
    }

    #[test]
    fn printable_table_edges() {
        assert!(!is_printable('\u{0}'));
        assert!(!is_printable('\u{a0}'));
        assert!(is_printable('\u{a1}'));
        assert!(!is_printable('\u{10ffff}'));
        assert!(is_printable('\u{20000}'));
    }
}
