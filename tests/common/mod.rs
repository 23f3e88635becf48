//! Helpers shared by the storage integration tests: finding Python, the Data.fs dump
//! format the Python scripts and these tests both write, a backend that counts fsyncs,
//! bounded waits, reading one sized message as a primary does, and (`process`) the child
//! processes of the tests that run real programs.
#![allow(dead_code)]

pub mod process;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use zrs::storage::ReadStorage;
use zrs::{Oid, Tid};

/// One sized message (4-byte big-endian length, then the payload) as a primary reads
/// what a secondary sends.
pub fn read_message(s: &mut impl std::io::Read) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)
        .expect("a message from the secondary");
    let mut payload = vec![0; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut payload).unwrap();
    payload
}

/// The workspace root (the root package's manifest directory).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python with ZODB: `ZRS_PYTHON`, else `<root>/.venv/bin/python`. Fails (never
/// skips) when neither exists.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("ZRS_PYTHON") {
        let p = PathBuf::from(p);
        assert!(p.exists(), "ZRS_PYTHON={} does not exist", p.display());
        return p;
    }
    let p = root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "no Python with ZODB: set ZRS_PYTHON or run .ci/setup-python to create {}",
        p.display()
    );
    p
}

/// Run a script from `tests/python` and return its stdout; panics with its stderr.
pub fn run_python(script: &str, args: &[&Path]) -> String {
    let out = Command::new(python())
        .arg(root().join("tests/python").join(script))
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{script} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn h(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        write!(s, "{x:02x}").unwrap();
    }
    s
}

fn ho(b: Option<&[u8]>) -> String {
    b.map_or_else(|| "-".to_string(), h)
}

/// The same dump `tests/python/dump_datafs.py` writes (see its docstring).
pub fn dump(s: &(impl ReadStorage + ?Sized)) -> String {
    let mut out = String::new();
    let mut oids: Vec<Oid> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    let mut tids: Vec<Tid> = Vec::new();
    for txn in s.iterator(None, None) {
        let txn = txn.unwrap();
        let m = &txn.meta;
        tids.push(m.tid);
        writeln!(
            out,
            "T {} {} {} {} {}",
            h(&m.tid.0),
            h(&[m.status]),
            h(&m.user),
            h(&m.description),
            h(&m.extension)
        )
        .unwrap();
        for r in &txn.records {
            if seen.insert(r.oid) {
                oids.push(r.oid);
            }
            writeln!(
                out,
                "R {} {} {} {}",
                h(&r.oid.0),
                h(&r.serial.0),
                ho(r.data.as_deref()),
                ho(r.data_txn.as_ref().map(|t| &t.0[..]))
            )
            .unwrap();
        }
    }
    let before = tids.get(tids.len() / 2).copied().unwrap_or(Tid::ZERO);
    for oid in oids {
        match s.load(oid) {
            Ok((d, serial)) => writeln!(out, "L {} {} {}", h(&oid.0), h(&d), h(&serial.0)),
            Err(_) => writeln!(out, "L {} -", h(&oid.0)),
        }
        .unwrap();
        match s.load_before(oid, before) {
            Ok(None) => writeln!(out, "B {} None", h(&oid.0)),
            Ok(Some((d, start, end))) => writeln!(
                out,
                "B {} {} {} {}",
                h(&oid.0),
                h(&d),
                h(&start.0),
                ho(end.as_ref().map(|t| &t.0[..]))
            ),
            Err(_) => writeln!(out, "B {} -", h(&oid.0)),
        }
        .unwrap();
        let hist: Vec<String> = s
            .history(oid, 3)
            .unwrap()
            .iter()
            .map(|e| format!("{}:{}", h(&e.tid.0), e.size))
            .collect();
        writeln!(out, "H {} {}", h(&oid.0), hist.join(" ")).unwrap();
    }
    out
}

/// Compare two dumps line by line, failing on the first difference with its line number.
pub fn assert_same_dump(python: &str, rust: &str) {
    let (a, b): (Vec<_>, Vec<_>) = (python.lines().collect(), rust.lines().collect());
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        if x != y {
            let cut = |s: &str| s.chars().take(300).collect::<String>();
            panic!(
                "dumps differ at line {}:\npython: {}\nrust:   {}",
                i + 1,
                cut(x),
                cut(y)
            );
        }
    }
    assert_eq!(a.len(), b.len(), "dumps have different line counts");
}

/// A memory backend that counts its fsyncs. The counter is shared, so a test keeps reading
/// it after handing the backend to a storage.
#[derive(Debug, Default)]
pub struct CountingBackend {
    pub inner: zrs::storage::file::backend::MemoryBackend,
    pub syncs: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CountingBackend {
    /// Fsyncs so far.
    pub fn syncs(&self) -> usize {
        self.syncs.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl zrs::storage::file::backend::Backend for CountingBackend {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read_at(pos, buf)
    }
    fn write_at(&self, pos: u64, data: &[u8]) -> std::io::Result<()> {
        self.inner.write_at(pos, data)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync(&self) -> std::io::Result<()> {
        self.syncs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.sync()
    }
}

/// Waits until `cond` holds, for at most `patience`; on timeout panics with `what` and the
/// text of each log (the processes under test say there why they did not get there).
pub fn wait_until(
    what: &str,
    patience: std::time::Duration,
    logs: &[&Path],
    mut cond: impl FnMut() -> bool,
) {
    let deadline = std::time::Instant::now() + patience;
    while !cond() {
        if std::time::Instant::now() >= deadline {
            let text: Vec<String> = logs
                .iter()
                .map(|l| {
                    format!(
                        "{}:\n{}",
                        l.display(),
                        std::fs::read_to_string(l).unwrap_or_default()
                    )
                })
                .collect();
            panic!("{what}: not within {patience:?}\n{}", text.join("\n"));
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Length of a file, 0 while it does not exist.
pub fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Whether two files hold the same bytes (false while either cannot be read).
pub fn same_bytes(a: &Path, b: &Path) -> bool {
    file_size(a) == file_size(b)
        && std::fs::read(a)
            .ok()
            .is_some_and(|x| Some(x) == std::fs::read(b).ok())
}
