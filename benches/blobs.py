"""Blob catch-up benchmark: MB/s of blobs replicated over loopback, next to `cp -r` of the
blob directory and md5 of the same bytes, in the same run; and the peak memory (VmHWM) of
`zrs primary` and `zrs secondary` while one large blob streams through.

Usage (from the workspace root; Python with ZODB + zc.zrs, e.g. .venv/bin/python):
    cargo build --release --bin zrs
    .venv/bin/python benches/blobs.py [--blobs 64] [--blob-mb 4] [--big-mb 1024] [--dir DIR]

Data (built once, by ZODB's BlobStorage around a FileStorage, random bytes): `--blobs`
transactions each storing one new blob of `--blob-mb` MB; and a second database holding one
blob of `--big-mb` MB. Each replication run starts a secondary on an empty Data.fs and blob
directory; the clock runs from its start (Python: after its imports) until its Data.fs is
byte-identical to the primary's (polled every 2 ms; a zrs secondary installs a transaction's
blobs before its Data.fs commits, so by then every blob file is in place; checked file by file
afterwards). Peak memory is the process's VmHWM read from /proc just before it is stopped.
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import time

from bench_harness import (PY, PY_SECONDARY, ROOT, ZRS, same_file, start_python_primary,
                           start_zrs_primary, stop_python_primary, stop_zrs_primary, vm_kib)

PATIENCE = 600


def build(path, blob_dir, count, size):
    import transaction
    import ZODB
    import ZODB.blob
    import ZODB.FileStorage

    db = ZODB.DB(ZODB.blob.BlobStorage(blob_dir, ZODB.FileStorage.FileStorage(path, create=True)))
    conn = db.open()
    root = conn.root()
    for i in range(count):
        blob = ZODB.blob.Blob()
        with blob.open("w") as f:
            left = size
            while left:
                n = min(left, 1 << 24)
                f.write(os.urandom(n))
                left -= n
        root["b%d" % i] = blob
        transaction.commit()
    conn.close()
    db.close()


def files(root):
    out = {}
    for d, dirs, names in os.walk(root):
        dirs.sort()
        if os.path.relpath(d, root) == "tmp":
            continue
        for n in sorted(names):
            p = os.path.join(d, n)
            out[os.path.relpath(p, root)] = p
    return out


def blob_bytes(root):
    return sum(os.path.getsize(p) for n, p in files(root).items() if n.endswith(".blob"))


def same_tree(a, b):
    fa, fb = files(a), files(b)
    if sorted(fa) != sorted(fb):
        return False
    for n in fa:
        with open(fa[n], "rb") as x, open(fb[n], "rb") as y:
            while True:
                u, v = x.read(1 << 20), y.read(1 << 20)
                if u != v:
                    return False
                if not u:
                    break
    return True


def hwm(pid):
    return vm_kib(pid, "VmHWM") / 1024.0  # MiB


def start_primary(kind, path, blob_dir):
    if kind == "zrs":
        return start_zrs_primary(path, "--blob-dir", blob_dir)
    return start_python_primary(path, "--blobs", blob_dir)


def stop(kind, p):
    (stop_zrs_primary if kind == "zrs" else stop_python_primary)(p, PATIENCE)


def replicate(primary_kind, secondary_kind, path, blob_dir, work):
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    spath, sblobs = os.path.join(work, "Data.fs"), os.path.join(work, "blobs")
    primary, port = start_primary(primary_kind, path, blob_dir)
    address = "127.0.0.1:%d" % port
    if secondary_kind == "zrs":
        t0 = time.time()
        s = subprocess.Popen([ZRS, "--log-format", "plain", "secondary", "--storage", spath,
                              "--primary", address, "--blob-dir", sblobs],
                             stderr=subprocess.DEVNULL)
    else:
        s = subprocess.Popen([PY, PY_SECONDARY, spath, address, sblobs],
                             stdout=subprocess.PIPE, text=True)
        t0 = float(s.stdout.readline().split()[1])
    deadline = time.time() + PATIENCE
    size = os.path.getsize(path)
    while not (os.path.exists(spath) and os.path.getsize(spath) == size and same_file(path, spath)):
        if time.time() > deadline or s.poll() is not None:
            sys.exit("%s -> %s: no catch-up" % (primary_kind, secondary_kind))
        time.sleep(0.002)
    elapsed = time.time() - t0
    memory = hwm(s.pid), (hwm(primary.pid) if primary_kind == "zrs" else float("nan"))
    s.send_signal(signal.SIGTERM)
    s.wait(PATIENCE)
    stop(primary_kind, primary)
    complete = same_tree(blob_dir, sblobs)
    return elapsed, memory, complete


def timed(cmd):
    t0 = time.time()
    subprocess.run(cmd, shell=True, check=True)
    return time.time() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--blobs", type=int, default=64)
    ap.add_argument("--blob-mb", type=float, default=4)
    ap.add_argument("--big-mb", type=float, default=1024)
    ap.add_argument("--dir", default=os.path.join(ROOT, "target", "bench-blobs"))
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    many, many_blobs = os.path.join(a.dir, "many.fs"), os.path.join(a.dir, "many.blobs")
    big, big_blobs = os.path.join(a.dir, "big.fs"), os.path.join(a.dir, "big.blobs")
    if not os.path.exists(many):
        build(many, many_blobs, a.blobs, int(a.blob_mb * 1e6))
    if not os.path.exists(big):
        build(big, big_blobs, 1, int(a.big_mb * 1e6))
    work = os.path.join(a.dir, "work")
    total = blob_bytes(many_blobs)
    print("data: %d blobs, %.1f MB of blob files; Data.fs %d bytes" % (
        len([n for n in files(many_blobs) if n.endswith(".blob")]), total / 1e6, os.path.getsize(many)))
    print()
    print("| what | time | MB/s of blob bytes | peak RSS secondary / primary | complete |")
    print("| --- | --- | --- | --- | --- |")
    for pk, sk in (("zrs", "zrs"), ("python", "zrs"), ("python", "python")):
        t, (ms, mp), ok = replicate(pk, sk, many, many_blobs, work)
        print("| %s primary -> %s secondary | %.2f s | %.0f | %.0f MiB / %s | %s |" % (
            pk, sk, t, total / 1e6 / t, ms, "%.0f MiB" % mp if mp == mp else "-",
            "identical" if ok else "differs (see README: zc.zrs lacks empty blobs)"))
    shutil.rmtree(work, ignore_errors=True)
    t = timed("cp -r %s %s" % (many_blobs, work))
    print("| `cp -r` of the blob directory | %.2f s | %.0f | - | - |" % (t, total / 1e6 / t))
    shutil.rmtree(work, ignore_errors=True)
    t = timed("cp -r %s %s && sync" % (many_blobs, work))
    print("| `cp -r` + `sync` | %.2f s | %.0f | - | - |" % (t, total / 1e6 / t))
    shutil.rmtree(work, ignore_errors=True)
    t = timed("find %s -name '*.blob' -print0 | sort -z | xargs -0 cat | md5sum > /dev/null" % many_blobs)
    print("| md5 of the same bytes (`cat … \\| md5sum`) | %.2f s | %.0f | - | - |" % (t, total / 1e6 / t))
    print()
    big_total = blob_bytes(big_blobs)
    t, (ms, mp), ok = replicate("zrs", "zrs", big, big_blobs, work)
    print("one blob of %.0f MB, zrs primary -> zrs secondary: %.2f s (%.0f MB/s), peak RSS "
          "secondary %.0f MiB, primary %.0f MiB, %s" % (
              big_total / 1e6, t, big_total / 1e6 / t, ms, mp, "identical" if ok else "DIFFERS"))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
