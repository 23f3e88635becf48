//! Parsing `.scn` files: one step per line, `#` comments, blank lines ignored.
//!
//! Every error names the file and line, and what is wrong; nothing runs until the whole
//! file has parsed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use zrs::pickle::Value;
use zrs::secondary::Address;

use super::literal;
use super::step::{ClientAction, Expr, Open, Outgoing, Step, StorageKind};
use crate::network::Chunking;
use crate::workload::{Change, Meta};
use crate::world::Upstream;

/// A step with the line it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub number: usize,
    /// The line as written, trimmed (echoed as `>>> text`).
    pub text: String,
    pub step: Step,
}

/// A parsed scenario.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// The file it came from (for messages), and the base of relative paths in it.
    pub path: PathBuf,
    pub lines: Vec<Line>,
}

/// `file:line: message` (`file: message` for the file as a whole).
#[derive(Debug, PartialEq, Eq)]
pub struct ParseError {
    pub file: String,
    /// The 1-based line, or 0 when the file could not be read at all.
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file, self.message),
            line => write!(f, "{}:{line}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ParseError {}

/// Longest scenario line accepted (a guard against feeding a binary file).
const MAX_LINE: usize = 1 << 20;

impl Scenario {
    /// Reads and parses a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ParseError> {
        let text = std::fs::read_to_string(path).map_err(|e| ParseError {
            file: path.display().to_string(),
            line: 0,
            message: format!("cannot read: {e}"),
        })?;
        Scenario::parse(path, &text)
    }

    /// Parses scenario text; `path` names it in errors and anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Scenario, ParseError> {
        let mut lines = Vec::new();
        // Variables a `let` has defined so far: a bare word must name one of them.
        let mut defined: Vec<String> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let number = i + 1;
            let error = |message: String| ParseError {
                file: path.display().to_string(),
                line: number,
                message,
            };
            let text = raw.trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            if text.len() > MAX_LINE {
                return Err(error(format!("line longer than {MAX_LINE} bytes")));
            }
            let step = parse_step(text).map_err(error)?;
            for name in variables(&step) {
                if !defined.iter().any(|d| d == name) {
                    return Err(error(format!(
                        "{name:?} is neither a step nor a variable set by an earlier 'let'"
                    )));
                }
            }
            if let Step::Let { name, .. } = &step {
                defined.push(name.clone());
            }
            lines.push(Line {
                number,
                text: text.to_string(),
                step,
            });
        }
        Ok(Scenario {
            path: path.to_path_buf(),
            lines,
        })
    }
}

/// The variables a step reads.
fn variables(step: &Step) -> Vec<&str> {
    let exprs: Vec<&Expr> = match step {
        Step::Print(e) | Step::InitMd5(e) | Step::Let { value: e, .. } | Step::Blob(e) => {
            vec![e]
        }
        Step::Compare { left, right, .. } => vec![left, right],
        _ => vec![],
    };
    exprs
        .into_iter()
        .filter_map(|e| match e {
            Expr::Var(name) => Some(name.as_str()),
            _ => None,
        })
        .collect()
}

/// `s<n>` (n from 1), the name of a secondary node.
fn parse_node_name(word: &str) -> Option<usize> {
    let digits = word.strip_prefix('s')?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| *n <= 64)
}

/// `node s<n> from UPSTREAM OPEN-OPTIONS`.
fn parse_node(text: &str) -> Result<Step, String> {
    let usage = "expected 'node sN from primary|sM [open's options]'";
    let (name, rest) = split_word(text);
    let number = parse_node_name(name)
        .filter(|n| *n >= 2)
        .ok_or_else(|| format!("{usage}: {name:?} is not a node name s2, s3, …"))?;
    let (from, rest) = split_word(rest);
    if from != "from" {
        return Err(usage.into());
    }
    let (upstream, rest) = split_word(rest);
    let upstream = match upstream {
        "primary" => Upstream::Primary,
        name => match parse_node_name(name) {
            Some(n) if n < number => Upstream::Secondary(n),
            _ => {
                return Err(format!(
                "{usage}: the upstream of s{number} is primary or a node before it, not {name:?}"
            ))
            }
        },
    };
    let mut open = parse_open(rest)?;
    if open.address.is_none() {
        open.address = Some(match upstream {
            Upstream::Primary => Address::tcp("", 8000),
            Upstream::Secondary(n) => crate::world::listen_address(n),
        });
    }
    Ok(Step::Node {
        number,
        upstream,
        open,
    })
}

fn parse_step(text: &str) -> Result<Step, String> {
    let (word, rest) = split_word(text);
    if let Some(number) = word.strip_suffix(':').and_then(parse_node_name) {
        let step = parse_step(rest)?;
        if !step.addressable() {
            return Err(format!(
                "{rest:?} cannot be addressed to a node (accept, reject, fail, drop, serve, corrupt, truncate, duplicate, bad_checksum, close, crash, restart, root and lastTransaction can)"
            ));
        }
        return Ok(Step::At {
            number,
            step: Box::new(step),
        });
    }
    let no_args = |step: Step| {
        if rest.is_empty() {
            Ok(step)
        } else {
            Err(format!("'{word}' takes no arguments, got {rest:?}"))
        }
    };
    match word {
        "open" => parse_open(rest).map(Step::Open),
        "node" => parse_node(rest),
        "close" => no_args(Step::Close),
        "address" => match parse_address(rest)? {
            Some(address) => Ok(Step::Address(address)),
            None => Err("address takes ('host', port) or 'path'".into()),
        },
        "accept" => no_args(Step::Accept),
        "reject" => no_args(Step::Reject),
        "fail" => no_args(Step::Fail),
        "drop" => no_args(Step::Drop),
        "later" => no_args(Step::Later),
        "doLater" => no_args(Step::DoLater),
        "clients" => no_args(Step::Clients),
        "root" => no_args(Step::Root),
        "blob" => parse_expr(rest).map(Step::Blob),
        "blobs" if rest.is_empty() => Ok(Step::BlobFiles),
        "advance" => parse_seconds(rest).map(Step::Advance),
        "init_md5" => parse_expr(rest).map(Step::InitMd5),
        "let" => {
            let (name, value) = rest.split_once('=').ok_or("expected 'let NAME = VALUE'")?;
            let name = name.trim();
            if !is_name(name) || is_keyword(name) {
                return Err(format!("{name:?} is not a variable name"));
            }
            Ok(Step::Let {
                name: name.to_string(),
                value: parse_expr(value.trim())?,
            })
        }
        "print" => parse_expr(rest).map(Step::Print),
        "primary" => parse_primary(rest),
        "client" => parse_client(rest),
        "send" => parse_send(rest).map(Step::Send),
        "chunking" => parse_chunking(rest).map(Step::Chunking),
        "oracles" if rest == "on" => Ok(Step::Oracles),
        "oracles" => Err(format!("expected 'oracles on', got {text:?}")),
        "serve" if rest.is_empty() => Ok(Step::Serve(None)),
        "serve" => parse_count(rest, "serve N (bytes)").map(|n| Step::Serve(Some(n))),
        "corrupt" => {
            let (offset, mask) = split_word(rest);
            let offset = parse_count(offset, "corrupt OFFSET MASK")?;
            let mask = mask
                .parse::<u8>()
                .ok()
                .filter(|m| *m != 0)
                .ok_or_else(|| format!("corrupt's MASK is 1 to 255, not {mask:?}"))?;
            Ok(Step::Corrupt { offset, mask })
        }
        "truncate" => parse_count(rest, "truncate N (bytes)").map(Step::Truncate),
        "duplicate" => no_args(Step::Duplicate),
        "bad_checksum" => no_args(Step::BadChecksum),
        "crash" => parse_crash(rest),
        "restart" => no_args(Step::Restart),
        "disk" => parse_disk(rest),
        "outage" => parse_seconds(rest).map(Step::Outage),
        "heal" if rest.is_empty() => Ok(Step::Heal(None)),
        "heal" => parse_seconds(rest).map(|d| Step::Heal(Some(d))),
        _ => parse_expression_step(text),
    }
}

/// A bare expression (`tid`, `read`) prints it; `A == B` / `A != B` compares.
fn parse_expression_step(text: &str) -> Result<Step, String> {
    for (op, equal) in [("==", true), ("!=", false)] {
        if let Some((l, r)) = split_operator(text, op) {
            return Ok(Step::Compare {
                left: parse_expr(l.trim())?,
                right: parse_expr(r.trim())?,
                equal,
            });
        }
    }
    let (word, _) = split_word(text);
    match parse_expr(text) {
        Ok(expr) => Ok(Step::Print(expr)),
        Err(_) if is_name(word) => Err(format!("unknown step {word:?}")),
        Err(e) => Err(e),
    }
}

/// Splits at an operator outside quotes.
fn split_operator<'a>(text: &'a str, op: &str) -> Option<(&'a str, &'a str)> {
    let bytes = text.as_bytes();
    let mut quote = None;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(_) if c == b'\\' => i += 1,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'\'' || c == b'"' => quote = Some(c),
            None if text[i..].starts_with(op) => return Some((&text[..i], &text[i + op.len()..])),
            None => {}
        }
        i += 1;
    }
    None
}

fn parse_expr(text: &str) -> Result<Expr, String> {
    match text {
        "" => Err("expected a value".into()),
        "read" => Ok(Expr::Read),
        "trans.tid" => Ok(Expr::TransTid),
        "lastTransaction" => Ok(Expr::LastTransaction),
        _ if is_name(text) && !is_keyword(text) => Ok(Expr::Var(text.to_string())),
        _ => literal::parse(text).map(Expr::Literal),
    }
}

fn is_keyword(name: &str) -> bool {
    matches!(name, "None" | "True" | "False" | "read" | "lastTransaction")
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn split_word(text: &str) -> (&str, &str) {
    match text.split_once(char::is_whitespace) {
        Some((w, rest)) => (w, rest.trim()),
        None => (text, ""),
    }
}

/// A non-negative whole number.
fn parse_count(text: &str, what: &str) -> Result<usize, String> {
    text.parse()
        .map_err(|_| format!("expected {what}, got {text:?}"))
}

/// `crash`, or `crash keep=N tear=K`.
fn parse_crash(text: &str) -> Result<Step, String> {
    let (mut keep, mut tear) = (0, 0);
    for token in text.split_whitespace() {
        match token.split_once('=') {
            Some(("keep", n)) => keep = parse_count(n, "keep=N (writes)")?,
            Some(("tear", n)) => tear = parse_count(n, "tear=N (bytes)")?,
            _ => return Err(format!("expected crash [keep=N] [tear=N], got {token:?}")),
        }
    }
    Ok(Step::Crash { keep, tear })
}

/// `disk heal`, or `disk fail write|sync|read [after=N] [error=eio|enospc] [partial=BYTES]
/// [sticky]`.
fn parse_disk(text: &str) -> Result<Step, String> {
    use zrs::storage::file::faulty::{DiskError, DiskFault, DiskOp};
    let usage = "expected disk heal, or disk fail write|sync|read [after=N] \
                 [error=eio|enospc] [partial=BYTES] [sticky]";
    let mut tokens = text.split_whitespace();
    match tokens.next() {
        Some("heal") if tokens.next().is_none() => return Ok(Step::Disk(None)),
        Some("fail") => {}
        _ => return Err(usage.into()),
    }
    let op = match tokens.next() {
        Some("write") => DiskOp::Write,
        Some("sync") => DiskOp::Sync,
        Some("read") => DiskOp::Read,
        _ => return Err(usage.into()),
    };
    let mut fault = DiskFault {
        op,
        after: 0,
        error: DiskError::Io,
        partial: 0,
        sticky: false,
    };
    for token in tokens {
        match token.split_once('=') {
            Some(("after", n)) => {
                fault.after = parse_count(n, "after=N (operations)")?
                    .try_into()
                    .map_err(|_| format!("after={n}: too many"))?
            }
            Some(("error", "eio")) => fault.error = DiskError::Io,
            Some(("error", "enospc")) => fault.error = DiskError::NoSpace,
            Some(("partial", n)) if op == DiskOp::Write => {
                fault.partial = parse_count(n, "partial=BYTES")?
            }
            None if token == "sticky" => fault.sticky = true,
            _ => return Err(format!("{usage}; got {token:?}")),
        }
    }
    Ok(Step::Disk(Some(fault)))
}

/// Seconds, read exactly (`12.345` is 12 s 345 ms to the nanosecond); other notations
/// (`1e3`) go through a float.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    if let Some(d) = exact_seconds(text) {
        return Ok(d);
    }
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("expected a number of seconds, got {text:?}"))?;
    if !(0.0..=1e9).contains(&secs) {
        return Err(format!("seconds out of range: {text}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn exact_seconds(text: &str) -> Option<Duration> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() || !whole.bytes().all(|c| c.is_ascii_digit()) || frac.len() > 9 {
        return None;
    }
    if !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = whole.parse().ok().filter(|s| *s <= 1_000_000_000)?;
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    Some(Duration::new(secs, nanos))
}

/// Whitespace-separated tokens; quotes and brackets keep their spaces.
fn tokens(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in text.chars() {
        if let Some(q) = quote {
            current.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => {
                quote = Some(c);
                current.push(c);
            }
            '(' | '[' | '{' => {
                depth += 1;
                current.push(c);
            }
            ')' | ']' | '}' => {
                depth -= 1;
                current.push(c);
            }
            c if c.is_whitespace() && depth == 0 => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if quote.is_some() {
        return Err("unterminated string".into());
    }
    if depth != 0 {
        return Err("unbalanced brackets".into());
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

fn parse_open(text: &str) -> Result<Open, String> {
    let mut open = Open {
        name: "Data.fs".into(),
        address: None,
        keep_alive: Duration::ZERO,
        reconnect: Duration::from_secs(60),
        check_checksums: true,
        storage: StorageKind::File { path: None },
        frame_limit: None,
        blobs: false,
    };
    let mut storage_path = None;
    let mut memory = false;
    let mut disk = false;
    let mut batch = None;
    for (i, token) in tokens(text)?.into_iter().enumerate() {
        if let Some((key, value)) = token.split_once('=').filter(|(k, _)| is_name(k)) {
            match key {
                "keep_alive" => open.keep_alive = parse_seconds(value)?,
                "reconnect" => open.reconnect = parse_seconds(value)?,
                "checksums" => {
                    open.check_checksums = match value {
                        "on" => true,
                        "off" => false,
                        _ => return Err(format!("checksums=on or checksums=off, not {value:?}")),
                    }
                }
                "storage" => {
                    (memory, disk) = match value {
                        "file" => (false, false),
                        "memory" => (true, false),
                        "disk" => (false, true),
                        _ => {
                            return Err(format!(
                                "storage=file, storage=memory or storage=disk, not {value:?}"
                            ))
                        }
                    }
                }
                "batch" => {
                    batch = Some(
                        value
                            .parse::<u32>()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or_else(|| format!("batch=N needs N >= 1, not {value:?}"))?,
                    )
                }
                "path" => storage_path = Some(PathBuf::from(value)),
                "blobs" => {
                    open.blobs = match value {
                        "on" => true,
                        "off" => false,
                        _ => return Err(format!("blobs=on or blobs=off, not {value:?}")),
                    }
                }
                "limit" => {
                    open.frame_limit = Some(
                        value
                            .parse()
                            .map_err(|_| format!("limit must be a byte count, not {value:?}"))?,
                    )
                }
                _ => return Err(format!("unknown option {key:?} for open")),
            }
        } else if token.starts_with('(') || token.starts_with('\'') || token == "None" {
            open.address = parse_address(&token)?;
        } else if i == 0 {
            open.name = token;
        } else {
            return Err(format!("unexpected {token:?} in open"));
        }
    }
    if (memory || disk) && storage_path.is_some() {
        return Err("path= names a file: it goes with storage=file only".into());
    }
    if batch.is_some() && !disk {
        return Err("batch= goes with storage=disk only".into());
    }
    open.storage = if memory {
        StorageKind::Memory
    } else if disk {
        StorageKind::Disk { batch }
    } else {
        StorageKind::File { path: storage_path }
    };
    Ok(open)
}

fn parse_address(text: &str) -> Result<Option<Address>, String> {
    match literal::parse(text)? {
        Value::None => Ok(None),
        Value::Bytes(path) => Ok(Some(Address::Unix(
            String::from_utf8(path).map_err(|_| "socket path is not UTF-8")?,
        ))),
        Value::Tuple(items) => match items.as_slice() {
            [Value::Bytes(host), Value::Int(port)] => Ok(Some(Address::tcp(
                String::from_utf8(host.clone()).map_err(|_| "host is not UTF-8")?,
                u16::try_from(*port).map_err(|_| format!("port {port} out of range"))?,
            ))),
            _ => Err(format!("address must be ('host', port), got {text}")),
        },
        _ => Err(format!(
            "address must be ('host', port), 'path' or None, got {text}"
        )),
    }
}

/// `client [N] connect|send LITERAL|read [raw]|has_data|close`.
fn parse_client(text: &str) -> Result<Step, String> {
    let (word, rest) = split_word(text);
    let (index, word, rest) = match word.parse::<usize>() {
        Ok(0) => return Err("clients are numbered from 1".into()),
        Ok(n) => {
            let (word, rest) = split_word(rest);
            (Some(n), word, rest)
        }
        Err(_) => (None, word, rest),
    };
    let action = match (word, rest) {
        ("connect", "") if index.is_none() => ClientAction::Connect,
        ("send", literal) if !literal.is_empty() => match literal::parse(literal)? {
            Value::Bytes(bytes) => ClientAction::Send(bytes),
            other => {
                return Err(format!(
                    "client send takes a byte string, got {}",
                    super::literal::repr(&other)
                ))
            }
        },
        ("read", "") => ClientAction::Read { raw: false },
        ("read", "raw") => ClientAction::Read { raw: true },
        ("has_data", "") => ClientAction::HasData,
        ("close", "") => ClientAction::Close,
        _ => {
            return Err(format!(
                "expected 'client connect' or 'client [N] send LITERAL|read [raw]|has_data|close', got {text:?}"
            ))
        }
    };
    Ok(Step::Client { index, action })
}

fn parse_primary(text: &str) -> Result<Step, String> {
    let (word, rest) = split_word(text);
    match word {
        "commit" => {
            let mut changes = Vec::new();
            let mut meta = Meta::default();
            for token in tokens(rest)? {
                if let Some(path) = token.strip_prefix('+') {
                    if let Some((path, count)) = path.split_once('*') {
                        let (parent, prefix) = split_path(path)?;
                        let count = parse_count(count, "+PATH*N (mappings)")?;
                        changes.push(Change::AddMappings {
                            parent,
                            prefix,
                            count,
                        });
                        continue;
                    }
                    let (parent, key) = split_path(path)?;
                    changes.push(Change::AddMapping { parent, key });
                } else if let Some(path) = token.strip_prefix('-') {
                    let (parent, key) = split_path(path)?;
                    changes.push(Change::Remove { parent, key });
                } else if let Some((k, v)) = token.split_once('=') {
                    match k {
                        "user" => meta.user = text_value(v)?.into_bytes(),
                        "description" => meta.description = text_value(v)?.into_bytes(),
                        _ if k.starts_with("ext.") => {
                            meta.extension.push((k[4..].to_string(), text_value(v)?))
                        }
                        _ => {
                            let (parent, key) = split_path(k)?;
                            let seed = changes.len() as u64 + 1;
                            if let Some(n) = v.strip_prefix("blob:") {
                                let literal = if n.starts_with(['\'', '"']) {
                                    match literal::parse(n)? {
                                        Value::Bytes(b) => Some(b),
                                        other => {
                                            return Err(format!(
                                                "{k}=blob:'…' takes a byte string, got {}",
                                                literal::repr(&other)
                                            ))
                                        }
                                    }
                                } else {
                                    None
                                };
                                let len = match &literal {
                                    Some(b) => b.len(),
                                    None => n.parse().map_err(|_| {
                                        format!("{k}=blob:N writes a blob of N bytes, {k}=blob:'…' these bytes; {n:?} is neither")
                                    })?,
                                };
                                changes.push(Change::SetBlob {
                                    parent,
                                    key,
                                    len,
                                    seed,
                                    literal,
                                });
                                continue;
                            }
                            let len = v.parse().map_err(|_| {
                                format!("{k}=N sets N bytes, {k}=blob:N writes a blob; {v:?} is neither")
                            })?;
                            changes.push(Change::SetBytes {
                                parent,
                                key,
                                len,
                                seed,
                            });
                        }
                    }
                } else {
                    return Err(format!(
                        "expected +key, -key, key=BYTES, user=, description= or ext.KEY=, got {token:?}"
                    ));
                }
            }
            if changes.is_empty() {
                return Err("primary commit needs at least one change".into());
            }
            Ok(Step::Commit { changes, meta })
        }
        "undo" if rest.is_empty() => Ok(Step::Undo(1)),
        "undo" => parse_count(rest, "primary undo [N]")
            .ok()
            .filter(|n| *n > 0)
            .map(Step::Undo)
            .ok_or_else(|| format!("primary undo N needs N >= 1, not {rest:?}")),
        "clock" if rest == "virtual" => Ok(Step::VirtualClock),
        "blobs" if rest == "on" => Ok(Step::PrimaryBlobs),
        "restart" if rest.is_empty() => Ok(Step::PrimaryRestart),
        "close" if rest.is_empty() => Ok(Step::PrimaryClose),
        "checkpoint" if rest.is_empty() => Ok(Step::PrimaryCheckpoint),
        "failover" if rest.is_empty() => Ok(Step::PrimaryFailover),
        _ => Err(format!(
            "expected 'primary commit …', 'primary undo [N]', 'primary clock virtual', 'primary blobs on', 'primary restart', 'primary close', 'primary checkpoint' or 'primary failover', got {text:?}"
        )),
    }
}

/// `u'text'` or `'text'` (taken as UTF-8) or a bare word.
fn text_value(v: &str) -> Result<String, String> {
    if is_name(v) {
        return Ok(v.to_string());
    }
    match literal::parse(v)? {
        Value::Str(s) => Ok(s),
        Value::Bytes(b) => String::from_utf8(b).map_err(|_| format!("{v} is not UTF-8")),
        _ => Err(format!("expected text, got {v}")),
    }
}

/// `a.b.c` → (["a", "b"], "c").
fn split_path(path: &str) -> Result<(Vec<String>, String), String> {
    let parts: Vec<&str> = path.split('.').collect();
    if parts.iter().any(|p| !is_name(p)) {
        return Err(format!("{path:?} is not a key path like x or x.y"));
    }
    let (key, parent) = parts.split_last().expect("split yields at least one part");
    Ok((
        parent.iter().map(|s| s.to_string()).collect(),
        key.to_string(),
    ))
}

fn parse_send(text: &str) -> Result<Outgoing, String> {
    let (word, rest) = split_word(text);
    let literal_bytes = |rest: &str| match literal::parse(rest)? {
        Value::Bytes(b) => Ok(b),
        _ => Err(format!("expected a byte string like 'abc', got {rest}")),
    };
    match (word, rest) {
        ("transaction", "") => Ok(Outgoing::Transaction),
        ("all", "") => Ok(Outgoing::All),
        ("T", "") => Ok(Outgoing::T),
        ("S", "") => Ok(Outgoing::S),
        ("C", "") => Ok(Outgoing::C),
        ("C", "legacy") => Ok(Outgoing::LegacyC),
        ("message", _) => {
            let mut protocol = 1;
            let mut literal_text = rest;
            if let Some(p) = rest.strip_prefix("protocol=") {
                let (p, tail) = split_word(p);
                protocol = p
                    .parse()
                    .ok()
                    .filter(|p| *p <= 5)
                    .ok_or_else(|| format!("protocol must be 0 to 5, not {p:?}"))?;
                literal_text = tail;
            }
            Ok(Outgoing::Message {
                value: literal::parse(literal_text)?,
                protocol,
            })
        }
        ("raw", _) => literal_bytes(rest).map(Outgoing::Raw),
        ("bytes", _) => literal_bytes(rest).map(Outgoing::Bytes),
        ("file", _) if !rest.is_empty() => Ok(Outgoing::File(PathBuf::from(rest))),
        _ => Err(format!(
            "expected send transaction|all|T|S|C|C legacy|message LITERAL|raw 'BYTES'|bytes 'BYTES'|file PATH, got {text:?}"
        )),
    }
}

fn parse_chunking(text: &str) -> Result<Chunking, String> {
    let (word, rest) = split_word(text);
    match (word, rest) {
        ("doubling", "") => Ok(Chunking::Doubling),
        ("whole", "") => Ok(Chunking::Whole),
        ("random", _) if !rest.is_empty() => rest
            .parse()
            .map(Chunking::Random)
            .map_err(|_| format!("chunking random SEED takes a number, not {rest:?}")),
        ("sizes", _) if !rest.is_empty() => rest
            .split_whitespace()
            .map(|s| {
                s.parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("chunk size must be a positive number, not {s:?}"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Chunking::Sizes),
        _ => Err(format!(
            "expected chunking doubling|whole|sizes N…|random SEED, got {text:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario, ParseError> {
        Scenario::parse(Path::new("t.scn"), text)
    }

    #[test]
    fn parses_the_spec_vocabulary() {
        let s = parse(
            "# a comment\n\
             open Data.fs ('', 8000) keep_alive=60\n\
             accept\n\
             read\n\
             let tid = read\n\
             tid\n\
             tid == trans.tid\n\
             init_md5 '\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00'\n\
             primary commit +x\n\
             send transaction\n\
             later\n\
             doLater\n",
        )
        .unwrap();
        assert_eq!(s.lines.len(), 11);
        assert_eq!(s.lines[0].number, 2);
        match &s.lines[0].step {
            Step::Open(o) => {
                assert_eq!(o.address, Some(Address::tcp("", 8000)));
                assert_eq!(o.keep_alive, Duration::from_secs(60));
                assert_eq!(o.name, "Data.fs");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(s.lines[4].step, Step::Print(Expr::Var("tid".into())));
        assert_eq!(
            s.lines[5].step,
            Step::Compare {
                left: Expr::Var("tid".into()),
                right: Expr::TransTid,
                equal: true
            }
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse("accept\n\nfrobnicate now\n").unwrap_err();
        assert_eq!(e.to_string(), "t.scn:3: unknown step \"frobnicate\"");
        let e = parse("accept\nfrobnicate\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.scn:2: \"frobnicate\" is neither a step nor a variable set by an earlier 'let'"
        );
        assert!(parse("let tid = read\ntid\ntid == trans.tid\n").is_ok());
        let e = Scenario::load(Path::new("/nonexistent/x.scn")).unwrap_err();
        assert!(
            e.to_string().starts_with("/nonexistent/x.scn: cannot read"),
            "{e}"
        );
        let e = parse("accept extra").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("takes no arguments"));
        let e = parse("open Data.fs ('', 99999)").unwrap_err();
        assert!(e.message.contains("out of range"), "{e}");
        let e = parse("send message ('T'").unwrap_err();
        assert!(e.message.contains("column"), "{e}");
        let e = parse("primary commit").unwrap_err();
        assert!(e.message.contains("at least one change"), "{e}");
        let e = parse("chunking sizes 0").unwrap_err();
        assert!(e.message.contains("positive"), "{e}");
    }

    #[test]
    fn commit_changes_and_metadata() {
        let s = parse("primary commit +x +x.y x.data=100 -z user=u'b\\xf6b' ext.k=v").unwrap();
        let Step::Commit { changes, meta } = &s.lines[0].step else {
            panic!()
        };
        assert_eq!(changes.len(), 4);
        assert_eq!(
            changes[1],
            Change::AddMapping {
                parent: vec!["x".into()],
                key: "y".into()
            }
        );
        assert_eq!(meta.user, "b\u{f6}b".as_bytes());
        assert_eq!(meta.extension, vec![("k".to_string(), "v".to_string())]);
    }

    #[test]
    fn fault_steps_read_back_from_their_text() {
        let text = "oracles on\n\
                    open Data.fs ('', 8000) keep_alive=10 reconnect=0.5 storage=disk batch=3\n\
                    open A.fs None storage=memory checksums=off limit=100\n\
                    chunking random 12345\n\
                    chunking sizes 3 1\n\
                    primary clock virtual\n\
                    primary commit +x +x.c*300 x.big=300000 -y user=u'b\\xf6b' ext.note=u'a \\u20ac'\n\
                    primary undo\n\
                    primary undo 3\n\
                    primary restart\n\
                    serve\n\
                    serve 1000\n\
                    corrupt 40 16\n\
                    truncate 3\n\
                    duplicate\n\
                    bad_checksum\n\
                    crash\n\
                    crash keep=1 tear=100\n\
                    restart\n\
                    outage 120.25\n\
                    advance 0.001\n\
                    heal\n\
                    heal 30\n\
                    send message protocol=2 ('X', ())\n\
                    let t = read\n\
                    t != trans.tid\n";
        let first = parse(text).unwrap();
        let rendered: String = first
            .lines
            .iter()
            .map(|l| format!("{}\n", l.step))
            .collect();
        let again = parse(&rendered).unwrap();
        assert_eq!(first.lines.len(), again.lines.len());
        for (a, b) in first.lines.iter().zip(&again.lines) {
            assert_eq!(a.step, b.step, "{} -> {}", a.text, b.text);
        }
        assert_eq!(
            first.lines[20].step,
            Step::Advance(Duration::from_millis(1))
        );
        for bad in [
            "corrupt 1 0",
            "corrupt x 1",
            "crash keep=x",
            "crash now",
            "oracles off",
            "serve -1",
            "primary undo 0",
            "open batch=2",
            "open storage=disk path=x",
            "chunking random x",
            "primary commit +x*y",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
