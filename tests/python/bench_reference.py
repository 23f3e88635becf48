"""Python ZODB reference figures for BENCHMARKS.md ("## Storage"), on the files the Rust
benchmark leaves in target/bench-storage/ (run `cargo bench --bench storage` first).

Usage: bench_reference.py DIR

- open: FileStorage(big.fs, read_only=True) with no .index file (a full index scan);
- load: p50/p99 of FileStorage.load on random objects of big.fs, warm;
- restore: copyTransactionsFrom(restore-ref.fs) into a new FileStorage (ZODB fsyncs at
  every tpc_finish), in MB/s and transactions/s.
"""
import os
import random
import sys
import time

from ZODB.FileStorage import FileStorage


def main():
    d = sys.argv[1]
    big = os.path.join(d, "big.fs")
    assert not os.path.exists(big + ".index"), "remove big.fs.index first"
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        fs = FileStorage(big, read_only=True)
        times.append(time.perf_counter() - t0)
        if _ < 2:
            fs.close()
    size = os.path.getsize(big)
    print("open %s (%d bytes): best %.3f s, runs %s" % (
        big, size, min(times), ", ".join("%.3f" % t for t in times)))

    oids = list(fs._index.keys())
    rng = random.Random(4)
    lat = []
    for _ in range(200_000):
        oid = rng.choice(oids)
        t0 = time.perf_counter()
        fs.load(oid)
        lat.append(time.perf_counter() - t0)
    lat.sort()
    print("load latency over %d random loads: p50 %.2f us, p99 %.2f us" % (
        len(lat), lat[len(lat) // 2] * 1e6, lat[int(len(lat) * 0.99)] * 1e6))
    fs.close()

    src_path = os.path.join(d, "restore-ref.fs")
    dst_path = os.path.join(d, "py-restore.fs")
    for suffix in ("", ".index", ".lock", ".tmp"):
        if os.path.exists(dst_path + suffix):
            os.remove(dst_path + suffix)
    src = FileStorage(src_path, read_only=True)
    n = sum(1 for _ in src.iterator())
    dst = FileStorage(dst_path)
    t0 = time.perf_counter()
    dst.copyTransactionsFrom(src)
    el = time.perf_counter() - t0
    dst.close()
    src.close()
    nbytes = os.path.getsize(src_path)
    same = open(src_path, "rb").read() == open(dst_path, "rb").read()
    print("restore (copyTransactionsFrom, fsync each): %d transactions, %d bytes in %.3f s:"
          " %.2f MB/s, %.0f transactions/s; identical to source: %s" % (
              n, nbytes, el, nbytes / el / 1e6, n / el, same))


if __name__ == "__main__":
    main()
