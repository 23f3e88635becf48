//! ZConfig's file syntax, as `zeo.conf` / `zope.conf` files that configure zc.zrs use it:
//! enough to read their `<zrs>` sections (the meaning is in [`super::run`]).
//!
//! The syntax, as ZConfig's `cfgparser` reads it: one item a line, surrounding blanks
//! ignored; blank lines and lines starting with `#` are skipped; `<type [name]>` opens a
//! section and `</type>` closes it (`<type [name]/>` is an empty one); `%import PKG`,
//! `%define NAME [VALUE]` and `%include FILE` are directives; anything else is `key value`
//! (the key up to the first blank, the value the rest). Section types, names, keys and
//! define names are case-insensitive (lowered, as ZConfig does). Values (and `%define`
//! values) get substitutions: `$name` / `${name}` from `%define`, `$(NAME)` from the
//! environment, `$$` for a dollar.
//!
//! Schemas are not read: the sections are kept as a tree and [`super::run`] checks the
//! keys it knows. `%include` is followed, relative to the including file. Every error names
//! the file and the line.
//!
//! Hand-written: no crate reads ZConfig (it is a Python-only format), and the grammar is a
//! few lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where something is in the configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, line {}", self.file.display(), self.line)
    }
}

/// A configuration error: where, and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {what}")]
pub struct ConfigError {
    pub location: Location,
    pub what: String,
}

/// One `key value` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub name: String,
    pub value: String,
    pub at: Location,
}

/// A section and what it holds, in file order.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Section {
    /// Lowered type; empty for the top level.
    pub kind: String,
    pub name: Option<String>,
    pub keys: Vec<Key>,
    pub sections: Vec<Section>,
    /// Where it opens (the file's line 0 for the top level).
    pub at: Option<Location>,
    /// The packages `%import`ed (top level only).
    pub imports: Vec<String>,
}

/// Reads and parses the file at `path`.
pub fn parse_file(path: &Path) -> Result<Section, ConfigError> {
    let mut parser = Parser {
        defines: BTreeMap::new(),
        stack: vec![Section::default()],
        depth: 0,
        floor: 1,
    };
    parser.parse_file(path, None)?;
    let top = parser.stack.pop().expect("the top level stays");
    if let Some(open) = parser.stack.pop() {
        let at = open.at.expect("sections have a location");
        return Err(ConfigError {
            what: format!("<{}> is never closed", open.kind),
            location: at,
        });
    }
    Ok(top)
}

/// Parses `text` as if read from `file` (for tests).
#[cfg(test)]
pub fn parse_str(text: &str, file: &Path) -> Result<Section, ConfigError> {
    let mut parser = Parser {
        defines: BTreeMap::new(),
        stack: vec![Section::default()],
        depth: 0,
        floor: 1,
    };
    parser.parse_text(text, file)?;
    if parser.stack.len() > 1 {
        let open = parser.stack.pop().expect("checked");
        return Err(ConfigError {
            what: format!("<{}> is never closed", open.kind),
            location: open.at.expect("sections have a location"),
        });
    }
    Ok(parser.stack.pop().expect("the top level stays"))
}

struct Parser {
    defines: BTreeMap<String, String>,
    /// Open sections, the top level first.
    stack: Vec<Section>,
    /// `%include` depth, bounded.
    depth: usize,
    /// Sections below this depth belong to an including file: an included file closes
    /// what it opens, and only that (as ZConfig requires).
    floor: usize,
}

/// How deep `%include`s may nest (a loop would otherwise never end).
const MAX_INCLUDE_DEPTH: usize = 20;

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// ZConfig's `[^\s()]+`.
fn is_token(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(|c| c.is_whitespace() || c == '(' || c == ')')
}

impl Parser {
    fn parse_file(&mut self, path: &Path, from: Option<&Location>) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            location: from.cloned().unwrap_or(Location {
                file: path.to_path_buf(),
                line: 0,
            }),
            what: format!("cannot read {}: {e}", path.display()),
        })?;
        self.parse_text(&text, path)
    }

    fn parse_text(&mut self, text: &str, file: &Path) -> Result<(), ConfigError> {
        for (i, raw) in text.lines().enumerate() {
            let at = Location {
                file: file.to_path_buf(),
                line: i + 1,
            };
            let err = |what: String| ConfigError {
                location: at.clone(),
                what,
            };
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("</") {
                let kind = rest
                    .strip_suffix('>')
                    .ok_or_else(|| err("malformed section end".into()))?
                    .trim()
                    .to_lowercase();
                if self.stack.len() <= self.floor {
                    return Err(err(format!("</{kind}> closes no section")));
                }
                let section = self.stack.pop().expect("checked");
                if section.kind != kind {
                    return Err(err(format!(
                        "</{kind}> closes <{}> (opened at line {})",
                        section.kind,
                        section.at.as_ref().map_or(0, |l| l.line)
                    )));
                }
                self.stack.last_mut().expect("top").sections.push(section);
            } else if let Some(rest) = line.strip_prefix('<') {
                let rest = rest
                    .strip_suffix('>')
                    .ok_or_else(|| err("malformed section start".into()))?;
                let (rest, empty) = match rest.strip_suffix('/') {
                    Some(r) => (r, true),
                    None => (rest, false),
                };
                let mut words = rest.split_whitespace();
                let kind = words.next().filter(|w| is_token(w));
                let name = words.next();
                if kind.is_none() || words.next().is_some() || name.is_some_and(|n| !is_token(n)) {
                    return Err(err(format!("malformed section header <{rest}>")));
                }
                let section = Section {
                    kind: kind.expect("checked").to_lowercase(),
                    name: name.map(str::to_lowercase),
                    at: Some(at.clone()),
                    ..Section::default()
                };
                if empty {
                    self.stack.last_mut().expect("top").sections.push(section);
                } else {
                    self.stack.push(section);
                }
            } else if let Some(rest) = line.strip_prefix('%') {
                let (name, arg) = split_key(rest);
                let arg = arg.ok_or_else(|| err(format!("missing argument to %{name}")))?;
                match name.as_str() {
                    "import" => {
                        let pkg = self.substitute(arg, &at)?;
                        self.stack[0].imports.push(pkg);
                    }
                    "define" => {
                        let (def, value) = split_key(arg);
                        if !is_name(&def) {
                            return Err(err(format!("not a legal substitution name: {def:?}")));
                        }
                        let value = self.substitute(value.unwrap_or(""), &at)?;
                        if self.defines.get(&def).is_some_and(|v| *v != value) {
                            return Err(err(format!("cannot redefine {def:?}")));
                        }
                        self.defines.insert(def, value);
                    }
                    "include" => {
                        if self.depth >= MAX_INCLUDE_DEPTH {
                            return Err(err(format!(
                                "%include nested more than {MAX_INCLUDE_DEPTH} deep"
                            )));
                        }
                        let target = self.substitute(arg, &at)?;
                        let path = file.parent().unwrap_or(Path::new(".")).join(target);
                        let floor = self.floor;
                        self.floor = self.stack.len();
                        self.depth += 1;
                        self.parse_file(&path, Some(&at))?;
                        if self.stack.len() > self.floor {
                            let open = self.stack.pop().expect("checked");
                            return Err(ConfigError {
                                what: format!("<{}> is never closed", open.kind),
                                location: open.at.expect("sections have a location"),
                            });
                        }
                        self.depth -= 1;
                        self.floor = floor;
                    }
                    other => return Err(err(format!("unknown directive: %{other}"))),
                }
            } else {
                let (name, value) = split_key(line);
                if !is_token(&name) {
                    return Err(err("malformed configuration data".into()));
                }
                let value = self.substitute(value.unwrap_or(""), &at)?;
                self.stack.last_mut().expect("top").keys.push(Key {
                    name,
                    value,
                    at: at.clone(),
                });
            }
        }
        Ok(())
    }

    /// ZConfig's substitution: `$name`, `${name}` (defines), `$(NAME)` (environment), `$$`.
    fn substitute(&self, text: &str, at: &Location) -> Result<String, ConfigError> {
        let err = |what: String| ConfigError {
            location: at.clone(),
            what,
        };
        let mut out = String::new();
        let mut rest = text;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let name_len = |s: &str| {
                s.char_indices()
                    .take_while(|&(j, c)| {
                        c == '_' || c.is_ascii_alphabetic() || (j > 0 && c.is_ascii_digit())
                    })
                    .count()
            };
            if let Some(r) = after.strip_prefix('$') {
                out.push('$');
                rest = r;
            } else if let Some(r) = after.strip_prefix('{').or_else(|| after.strip_prefix('(')) {
                let env = after.starts_with('(');
                let close = if env { ')' } else { '}' };
                let n = name_len(r);
                if n == 0 || !r[n..].starts_with(close) {
                    return Err(err(format!("bad substitution in {text:?}")));
                }
                let name = &r[..n];
                out.push_str(
                    &self
                        .lookup(name, env)
                        .ok_or_else(|| err(format!("no replacement for {name:?} in {text:?}")))?,
                );
                rest = &r[n + 1..];
            } else {
                let n = name_len(after);
                if n == 0 {
                    return Err(err(format!("lone '$' in {text:?} (write $$ for a dollar)")));
                }
                let name = &after[..n];
                out.push_str(
                    &self
                        .lookup(name, false)
                        .ok_or_else(|| err(format!("no replacement for {name:?} in {text:?}")))?,
                );
                rest = &after[n..];
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    fn lookup(&self, name: &str, env: bool) -> Option<String> {
        if env {
            std::env::var(name).ok()
        } else {
            self.defines.get(&name.to_lowercase()).cloned()
        }
    }
}

/// `key value` → (lowered key, value); the value is `None` when absent.
fn split_key(line: &str) -> (String, Option<&str>) {
    match line.find(char::is_whitespace) {
        Some(i) => {
            let value = line[i..].trim();
            (
                line[..i].to_lowercase(),
                (!value.is_empty()).then_some(value),
            )
        }
        None => (line.to_lowercase(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Section, ConfigError> {
        parse_str(text, Path::new("zeo.conf"))
    }

    #[test]
    fn sections_keys_directives() {
        let top = parse(
            "%import zc.zrs\n\
             %define DIR /var/db\n\
             # a comment\n\
             <zeo>\n  address 8100\n</zeo>\n\
             <ZRS Main>\n  Replicate-To :8000\n  <filestorage>\n    path ${DIR}/Data.fs\n\
                 \x20   pack-gc false\n  </filestorage>\n</zrs>\n\
             <mappingstorage empty/>\n",
        )
        .unwrap();
        assert_eq!(top.imports, ["zc.zrs"]);
        assert_eq!(top.sections.len(), 3);
        let zrs = &top.sections[1];
        assert_eq!(
            (zrs.kind.as_str(), zrs.name.as_deref()),
            ("zrs", Some("main"))
        );
        assert_eq!(zrs.keys[0].name, "replicate-to");
        assert_eq!(zrs.keys[0].value, ":8000");
        assert_eq!(zrs.keys[0].at.line, 8);
        let fs = &zrs.sections[0];
        assert_eq!(fs.keys[0].value, "/var/db/Data.fs");
        assert_eq!(top.sections[2].kind, "mappingstorage");
    }

    #[test]
    fn substitutions() {
        std::env::set_var("ZRS_CONFIG_TEST_HOME", "/home/z");
        let top =
            parse("%define a x\n%define B $a-y\nk1 $a/$B/$$/$(ZRS_CONFIG_TEST_HOME)\n").unwrap();
        assert_eq!(top.keys[0].value, "x/x-y/$//home/z");
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases = [
            (
                "<zrs>\n  path x\n",
                "zeo.conf, line 1: <zrs> is never closed",
            ),
            (
                "<zrs>\n</filestorage>\n",
                "zeo.conf, line 2: </filestorage> closes <zrs> (opened at line 1)",
            ),
            ("\n\n</zrs>\n", "zeo.conf, line 3: </zrs> closes no section"),
            ("<zrs\n", "zeo.conf, line 1: malformed section start"),
            (
                "<a b c>\n</a>\n",
                "zeo.conf, line 1: malformed section header <a b c>",
            ),
            (
                "%frobnicate x\n",
                "zeo.conf, line 1: unknown directive: %frobnicate",
            ),
            ("%import\n", "zeo.conf, line 1: missing argument to %import"),
            (
                "k $nope\n",
                "zeo.conf, line 1: no replacement for \"nope\" in \"$nope\"",
            ),
            (
                "k a$\n",
                "zeo.conf, line 1: lone '$' in \"a$\" (write $$ for a dollar)",
            ),
            (
                "%define a 1\n%define a 2\n",
                "zeo.conf, line 2: cannot redefine \"a\"",
            ),
            (
                "%include missing.conf\n",
                "zeo.conf, line 1: cannot read missing.conf: ",
            ),
        ];
        for (text, want) in cases {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn includes_are_relative_and_bounded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("inner.conf"), "replicate-from :8000\n").unwrap();
        std::fs::write(
            dir.path().join("outer.conf"),
            "<zrs>\n%include inner.conf\n</zrs>\n",
        )
        .unwrap();
        let top = parse_file(&dir.path().join("outer.conf")).unwrap();
        assert_eq!(top.sections[0].keys[0].value, ":8000");
        // An included file closes what it opens, and nothing else.
        std::fs::write(dir.path().join("open.conf"), "<zrs>\n").unwrap();
        std::fs::write(dir.path().join("bad.conf"), "%include open.conf\n</zrs>\n").unwrap();
        let e = parse_file(&dir.path().join("bad.conf"))
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("open.conf, line 1: <zrs> is never closed"),
            "{e}"
        );
        std::fs::write(dir.path().join("close.conf"), "</zrs>\n").unwrap();
        std::fs::write(dir.path().join("bad2.conf"), "<zrs>\n%include close.conf\n").unwrap();
        let e = parse_file(&dir.path().join("bad2.conf"))
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("close.conf, line 1: </zrs> closes no section"),
            "{e}"
        );
        std::fs::write(dir.path().join("loop.conf"), "%include loop.conf\n").unwrap();
        let e = parse_file(&dir.path().join("loop.conf")).unwrap_err();
        assert!(e.what.contains("nested more than 20 deep"), "{e}");
    }
}
