"""Serving benchmark: how fast a primary streams a catch-up over loopback, the Rust `zrs
primary` next to the Python zc.zrs 3.1.0 primary, and md5 over the same stream.

Usage (from the workspace root; Python with ZODB + zc.zrs, e.g. .venv/bin/python):
    cargo build --release --bin zrs
    .venv/bin/python benches/primary.py [--transactions 5000] [--repeat 5] [--dir DIR]

The Data.fs is built once, deterministically, by tests/python/zrs_primary.py. Each run
starts a fresh primary process on it and times a client that asks for everything (start tid
zero) until it has received the whole stream:

- `zrs capture` (stores nothing but the bytes: the primary's own pace) from each primary,
  stopped by --max-bytes at the stream's length (learned from a first capture, which is also
  checked identical across primaries: same bytes, md5s included), into a file on tmpfs
  (--capture-dir, /dev/shm by default) so that the capture's closing fsync of 47 MB is not
  in the primary's time;
- `zrs secondary` (batch durability) from `zrs primary`, until its Data.fs is byte-identical;
- md5 over the captured stream in memory (hashlib: OpenSSL's md5), the checksum's own cost,
  the goal's yardstick;
- ten `zrs capture` clients at once from one `zrs primary`: the aggregate rate, and the
  primary's peak resident memory (VmHWM) after the run minus before the connections,
  divided by ten.

Prints a Markdown table of medians.
"""
import argparse
import hashlib
import os
import statistics
import subprocess
import time

from bench_harness import (PY, PY_PRIMARY, ZRS, remove_storage, start_python_primary,
                           start_zrs_primary, stop_python_primary, stop_zrs_primary, vm_kib)

PATIENCE = 300


def capture(port, out, max_bytes=None):
    args = [ZRS, "capture", "127.0.0.1:%d" % port, out, "--idle", "1"]
    if max_bytes:
        args += ["--max-bytes", str(max_bytes)]
    t0 = time.time()
    subprocess.run(args, check=True, stderr=subprocess.DEVNULL, timeout=PATIENCE)
    elapsed = time.time() - t0
    return elapsed if max_bytes else elapsed - 1.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--transactions", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--dir", default="/tmp/zrs-bench-primary")
    ap.add_argument("--capture-dir", default="/dev/shm")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    primary_fs = os.path.join(args.dir, "primary-%d.fs" % args.transactions)
    if not os.path.exists(primary_fs):
        subprocess.run([PY, PY_PRIMARY, primary_fs, "--create", str(args.transactions), "--no-serve"],
                       check=True, stdout=subprocess.DEVNULL)
    size = os.path.getsize(primary_fs)

    # The stream, from each primary: identical bytes.
    streams = {}
    for kind in ("python", "zrs"):
        p, port = (start_python_primary if kind == "python" else start_zrs_primary)(primary_fs)
        out = os.path.join(args.dir, "stream-%s.bin" % kind)
        capture(port, out)
        (stop_python_primary if kind == "python" else stop_zrs_primary)(p, PATIENCE)
        with open(out, "rb") as f:
            streams[kind] = f.read()
    assert streams["python"] == streams["zrs"], "the two primaries sent different streams"
    stream = streams["zrs"]
    n = len(stream)
    print("Data.fs: %d transactions, %d bytes; stream: %d bytes" % (args.transactions + 1, size, n))

    rows = []

    def row(name, times, nbytes=n, extra=""):
        med = statistics.median(times)
        rows.append("| %s | %.3f s | %.1f | %s | %s |" % (
            name, med, nbytes / med / 1e6, extra, ", ".join("%.3f" % t for t in times)))
        return med

    # md5 over the same stream.
    md5_times = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        hashlib.md5(stream).digest()
        md5_times.append(time.perf_counter() - t0)

    out = os.path.join(args.capture_dir, "zrs-bench-capture.bin")
    times = {"python": [], "zrs": [], "secondary": []}
    for _ in range(args.repeat):
        for kind in ("python", "zrs"):
            p, port = (start_python_primary if kind == "python" else start_zrs_primary)(primary_fs)
            times[kind].append(capture(port, out, n))
            (stop_python_primary if kind == "python" else stop_zrs_primary)(p, PATIENCE)
        p, port = start_zrs_primary(primary_fs)
        sfs = os.path.join(args.dir, "secondary.fs")
        remove_storage(sfs, ("", ".lock"))
        t0 = time.time()
        s = subprocess.Popen([ZRS, "secondary", "--storage", sfs, "--primary", "127.0.0.1:%d" % port],
                             stderr=subprocess.DEVNULL)
        deadline = t0 + PATIENCE
        while not (os.path.exists(sfs) and os.path.getsize(sfs) == size):
            assert time.time() < deadline, "zrs secondary did not catch up"
            time.sleep(0.002)
        times["secondary"].append(time.time() - t0)
        s.terminate()
        s.wait(PATIENCE)
        stop_zrs_primary(p, PATIENCE)
        with open(sfs, "rb") as f, open(primary_fs, "rb") as g:
            assert f.read() == g.read(), "the secondary is not byte-identical"

    py = row("Python zc.zrs 3.1.0 primary → `zrs capture`", times["python"])
    rs = row("`zrs primary` → `zrs capture`", times["zrs"])
    row("`zrs primary` → `zrs secondary` (batch:1000), until byte-identical", times["secondary"], size,
        "(Data.fs bytes)")
    md = row("md5 over the stream (hashlib)", md5_times)

    # Ten clients at once.
    agg = []
    per_conn = []
    for _ in range(args.repeat):
        p, port = start_zrs_primary(primary_fs)
        base = vm_kib(p.pid, "VmRSS")
        t0 = time.time()
        clients = [subprocess.Popen([ZRS, "capture", "127.0.0.1:%d" % port,
                                     os.path.join(args.capture_dir, "zrs-bench-c%d.bin" % i), "--idle", "5",
                                     "--max-bytes", str(n)], stderr=subprocess.DEVNULL)
                   for i in range(args.clients)]
        for c in clients:
            c.wait(PATIENCE)
        agg.append(time.time() - t0)
        peak = vm_kib(p.pid, "VmHWM")
        per_conn.append((peak - base) / args.clients)
        stop_zrs_primary(p, PATIENCE)
    row("`zrs primary` → %d × `zrs capture` at once (aggregate)" % args.clients, agg, n * args.clients,
        "%.0f KiB per connection (peak RSS − RSS before, / %d; median)" % (statistics.median(per_conn), args.clients))

    print()
    print("| what | time (median of %d) | MB/s | notes | all runs (s) |" % args.repeat)
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print(r)
    print()
    print("zrs primary / Python primary: %.1f×; zrs primary / md5: %.0f%%" % (py / rs, 100 * md / rs))
    for name in ["zrs-bench-capture.bin"] + ["zrs-bench-c%d.bin" % i for i in range(args.clients)]:
        if os.path.exists(os.path.join(args.capture_dir, name)):
            os.remove(os.path.join(args.capture_dir, name))


if __name__ == "__main__":
    main()
