"""End-to-end replication benchmark: catch-up over loopback from the real Python zc.zrs
primary into the Rust `zrs secondary` (both durability modes) and the Python zc.zrs
secondary, from the same Data.fs.

Usage (from the workspace root; Python with ZODB + zc.zrs, e.g. .venv/bin/python):
    cargo build --release --bin zrs
    .venv/bin/python benches/replication.py [--transactions 5000] [--repeat 3] [--dir DIR]

Each run: a fresh primary process serves the Data.fs (built once, deterministically, by
tests/python/zrs_primary.py), a secondary starts on an empty file, and the clock runs from
the secondary's start (for Python: after its imports) until its file holds the primary's
bytes exactly (polled every 2 ms; checked byte for byte afterwards). Also timed: `zrs
capture` receiving the same stream without storing it (the primary's own pace; its
--idle wait is subtracted). Then each secondary again, fed that recorded stream by a
stand-in primary that sends it all at once (the secondary's own pace, not the primary's).
Prints a Markdown table of medians, with the CPU time
(user + system) the secondary process used over its whole life (for Python that includes the
interpreter's start-up and imports).
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

from bench_harness import (PY, PY_PRIMARY, PY_SECONDARY, ROOT, ZRS, Replay, remove_storage,
                           same_file, start_python_primary, stop_python_primary,
                           wait_secondary)

PATIENCE = 300


def run_secondary(kind, primary_fs, work, replay=None):
    out = os.path.join(work, "secondary.fs")
    remove_storage(out)
    size = os.path.getsize(primary_fs)
    if replay is None:
        primary, port = start_python_primary(primary_fs)
    else:
        primary, port = None, replay.port
    try:
        addr = "127.0.0.1:%d" % port
        if kind == "python":
            proc = subprocess.Popen([PY, PY_SECONDARY, out, addr], stdout=subprocess.PIPE, text=True)
            t0 = float(proc.stdout.readline().split()[1])
        else:
            t0 = time.time()
            proc = subprocess.Popen(
                [ZRS, "secondary", "--storage", out, "--primary", addr, "--durability", kind],
                stderr=subprocess.DEVNULL,
            )
        t1 = wait_secondary(proc, lambda: os.path.getsize(out) >= size, PATIENCE, 0.002)
        # The size is reached when the last transaction is written; wait for its status.
        deadline = time.time() + 30
        while not same_file(primary_fs, out):
            if time.time() > deadline:
                sys.exit("%s: the secondary's file differs from the primary's" % kind)
            time.sleep(0.002)
        proc.send_signal(signal.SIGTERM)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            sys.exit("%s: the secondary exited with %d" % (kind, proc.returncode))
    finally:
        if primary is not None:
            stop_python_primary(primary, PATIENCE)
    return t1 - t0, usage.ru_utime + usage.ru_stime


def run_capture(primary_fs, work, idle=0.2):
    primary, port = start_python_primary(primary_fs)
    try:
        out = os.path.join(work, "capture.bin")
        t0 = time.time()
        subprocess.run([ZRS, "capture", "127.0.0.1:%d" % port, out, "--idle", str(idle)],
                       check=True, stderr=subprocess.DEVNULL)
        return time.time() - t0 - idle, os.path.getsize(out)
    finally:
        stop_python_primary(primary, PATIENCE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--transactions", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=os.path.join(ROOT, "target", "bench-replication"))
    args = ap.parse_args()
    if not os.path.exists(ZRS):
        sys.exit("build it first: cargo build --release --bin zrs")
    os.makedirs(args.dir, exist_ok=True)
    primary_fs = os.path.join(args.dir, "primary.fs")
    subprocess.run([PY, PY_PRIMARY, primary_fs, "--create", str(args.transactions), "--no-serve"],
                   check=True, stdout=subprocess.DEVNULL)
    size = os.path.getsize(primary_fs)
    # The database's own root transaction comes on top of the workload's.
    n = args.transactions + 1
    print("Data.fs: %d transactions, %.1f MB" % (n, size / 1e6))
    kinds = ["batch:1000", "every", "python"]
    times = {k: [] for k in kinds}
    cpu = {k: [] for k in kinds}
    rtimes = {k: [] for k in kinds}
    rcpu = {k: [] for k in kinds}
    capture = []
    for _ in range(args.repeat):
        for k in kinds:  # interleaved, so drift in the machine's load hits all alike
            t, c = run_secondary(k, primary_fs, args.dir)
            times[k].append(t)
            cpu[k].append(c)
        capture.append(run_capture(primary_fs, args.dir)[0])
    # The same stream, recorded, sent as fast as loopback takes it: the secondaries' own pace.
    with open(os.path.join(args.dir, "capture.bin"), "rb") as f:
        replay = Replay(f.read())
    for _ in range(args.repeat):
        for k in kinds:
            t, c = run_secondary(k, primary_fs, args.dir, replay)
            rtimes[k].append(t)
            rcpu[k].append(c)
    replay.close()
    print()
    print("| secondary | time (median of %d) | transactions/s | MB/s | secondary CPU (median) | all runs (s) |"
          % args.repeat)
    print("| --- | --- | --- | --- | --- | --- |")
    names = {
        "batch:1000": "Rust `zrs secondary --durability batch:1000` (default)",
        "every": "Rust `zrs secondary --durability every`",
        "python": "Python zc.zrs 3.1.0 `Secondary` (ZODB FileStorage, fsync each)",
    }
    rows = [("from the primary: " + names[k], times[k], "%.2f s" % statistics.median(cpu[k]))
            for k in kinds]
    rows.append(("from the primary: `zrs capture` (no storage: the primary's own pace)", capture, "-"))
    rows += [("recorded stream: " + names[k], rtimes[k], "%.2f s" % statistics.median(rcpu[k]))
             for k in kinds]
    for name, ts, c in rows:
        t = statistics.median(ts)
        print("| %s | %.2f s | %.0f | %.1f | %s | %s |" % (
            name, t, n / t, size / 1e6 / t, c, ", ".join("%.2f" % x for x in ts)))


if __name__ == "__main__":
    main()
