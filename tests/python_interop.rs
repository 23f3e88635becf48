//! FileStorage against real Python ZODB (found through `ZRS_PYTHON`, see `common`).
//!
//! A Data.fs of over 1,000 transactions is generated at test time by
//! `tests/python/make_datafs.py` (nested objects, overwrites, undos, unicode metadata,
//! records over 64 KiB, a packed region); then:
//! - Rust reads it exactly as Python does (iteration, loads, loadBefore, history);
//! - `zrs copy` rebuilds it byte for byte, and ZODB (fstest, iteration, loads) accepts it;
//! - `zrs copy` killed with SIGKILL at seeded-random moments leaves, once reopened, a clean
//!   prefix that ZODB accepts, and the copy resumes to the identical file.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use zrs::storage::ReadStorage;
use zrs::storage::{FileStorage, Options};

struct Fixture {
    dir: PathBuf,
    src: PathBuf,
}

/// The generated Data.fs, made once per test process.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("storage-python-interop");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("src")).unwrap();
        let src = dir.join("src/Data.fs");
        common::run_python("make_datafs.py", &[&src, Path::new("1050")]);
        Fixture { dir, src }
    })
}

fn read_only() -> Options {
    Options {
        read_only: true,
        ..Options::default()
    }
}

fn zrs_copy(src: &Path, dst: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zrs"));
    c.arg("copy").arg(src).arg(dst).args(extra);
    c
}

fn fresh(dir: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    dir.join("Data.fs")
}

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn rust_reads_python_datafs_exactly_as_python() {
    let f = fixture();
    let dump_path = f.dir.join("python-dump.txt");
    common::run_python("dump_datafs.py", &[&f.src, &dump_path]);
    let python = std::fs::read_to_string(&dump_path).unwrap();
    let s = FileStorage::open(&f.src, read_only()).unwrap();
    let rust = common::dump(&s);
    common::assert_same_dump(&python, &rust);

    // The fixture holds what it should, or this comparison would prove little.
    let txns: Vec<_> = s.iterator(None, None).map(Result::unwrap).collect();
    assert!(txns.len() >= 1000, "{} transactions", txns.len());
    assert!(txns.iter().any(|t| t.meta.status == b'p'));
    assert!(txns.iter().any(|t| t.meta.status == b' '));
    assert!(txns.iter().any(|t| !t.meta.extension.is_empty()));
    assert!(txns
        .iter()
        .any(|t| std::str::from_utf8(&t.meta.user).is_ok_and(|u| !u.is_ascii())));
    let recs = || txns.iter().flat_map(|t| &t.records);
    assert!(recs().any(|r| r.data_txn.is_some()));
    assert!(recs().any(|r| r.data.is_none()));
    assert!(recs().any(|r| r.data.as_ref().is_some_and(|d| d.len() > 65536)));
    assert_eq!(s.size(), std::fs::metadata(&f.src).unwrap().len());
}

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn zrs_copy_is_byte_identical_and_zodb_accepts_it() {
    let f = fixture();
    let want = std::fs::read(&f.src).unwrap();
    for (name, extra) in [("every", &[][..]), ("batch", &["--batch", "64"][..])] {
        let dst = fresh(&f.dir.join(format!("copy-{name}")));
        let out = zrs_copy(&f.src, &dst, extra).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got = std::fs::read(&dst).unwrap();
        assert_eq!(got.len(), want.len(), "{name}: length");
        if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
            panic!("{name}: copy differs from the source at byte {i}");
        }
        // ZODB itself: fstest, iteration field by field, every load.
        let verdict = common::run_python("check_datafs.py", &[Path::new("same"), &f.src, &dst]);
        assert!(verdict.starts_with("ok: "), "{verdict}");
        // No Python-format index is ever written next to the file.
        assert!(!dst.with_extension("fs.index").exists());
    }
}

#[test]
#[ignore = "needs Python: run by .ci/test"]
fn killed_copy_leaves_a_clean_prefix() {
    let f = fixture();
    let want = std::fs::read(&f.src).unwrap();
    let tids: Vec<_> = FileStorage::open(&f.src, read_only())
        .unwrap()
        .iterator(None, None)
        .map(|t| t.unwrap().meta.tid)
        .collect();

    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let mut cut_inside = 0;
    // Each kill lands when the copy has written past a drawn point of the file (an event
    // watched for, not a guess at how fast the disk is); a copy can still finish between
    // the sight and the kill, so up to 8 rounds for three kills inside it.
    for round in 0..8 {
        if cut_inside >= 3 {
            break;
        }
        let dst = fresh(&f.dir.join(format!("kill-{round}")));
        let point = rng.gen_range(want.len() as u64 / 10..want.len() as u64 * 9 / 10);
        let mut child = zrs_copy(&f.src, &dst, &[])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if std::fs::metadata(&dst).map_or(0, |m| m.len()) >= point {
                let _ = child.kill(); // SIGKILL
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "round {round}: the copy stalled");
            std::thread::sleep(Duration::from_micros(200));
        }
        let _ = child.wait();

        // Reopening cuts an unfinished tail; what is left is a prefix of the source ending
        // at a transaction boundary.
        let s = FileStorage::open(&dst, Options::default()).unwrap();
        let len = std::fs::metadata(&dst).unwrap().len();
        assert_eq!(s.size(), len);
        let got = std::fs::read(&dst).unwrap();
        assert!(
            got.len() <= want.len() && got[..] == want[..got.len()],
            "round {round}"
        );
        let last = s.last_transaction();
        let n = s.iterator(None, None).count();
        assert_eq!(n, tids.iter().take_while(|t| **t <= last).count());
        assert!(n == 0 || tids[n - 1] == last);
        drop(s);
        if n < tids.len() {
            cut_inside += 1;
        }
        let verdict = common::run_python("check_datafs.py", &[Path::new("prefix"), &f.src, &dst]);
        assert!(verdict.starts_with("ok: "), "round {round}: {verdict}");

        // The copy resumes after the last durable transaction, to the identical file.
        let resumed = zrs_copy(&f.src, &dst, &["--batch", "100"])
            .output()
            .unwrap();
        assert!(
            resumed.status.success(),
            "{}",
            String::from_utf8_lossy(&resumed.stderr)
        );
        assert!(
            std::fs::read(&dst).unwrap() == want,
            "round {round}: resumed copy differs"
        );
    }
    assert!(
        cut_inside >= 3,
        "only {cut_inside} kills landed inside the copy"
    );
}
