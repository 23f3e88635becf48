"""Scale benchmarks (issue 8): open, copy and catch-up against database size, next to
Python ZODB and md5, in one run, interleaved.

Usage (from the workspace root; any Python 3 for the zrs side, Python with ZODB for the
reference, e.g. /work/main/.venv/bin/python):

    cargo build --release --bin zrs --example workload
    .venv/bin/python benches/scale.py catchup [--repeat 5]
    .venv/bin/python benches/scale.py durability [--repeat 21]
    .venv/bin/python benches/scale.py open [--sizes 100000,300000,1000000,3000000] [--repeat 3]
    .venv/bin/python benches/scale.py memory [--objects 1000000]
    .venv/bin/python benches/scale.py plot  # SVG of the last `open` results

Files go to --dir (default /tmp/zrs-scale; several GB at the largest sizes) and are
generated once by `target/release/examples/workload` (deterministic, seeded). Results are
printed as Markdown and kept in DIR/results-*.json.

- catchup: a stand-in primary sends a generated stream (records of 100 B – 5 KB, 0.1% of
  100–300 KiB, 3% undo records, unicode metadata) at once to `zrs secondary`; timed from
  the process start until its Data.fs holds the primary's bytes (checked byte for byte).
  In the same rounds: hashlib md5 over the same stream bytes (in memory), and, for
  `--durability every`, a plain write + fsync per transaction of the same sizes.
- durability: only `--durability every` against that write + fsync loop, in many short
  rounds (the order alternating), with every paired ratio.
- open: `FileStorage::open` (index scan) as its own process (`workload open`), Python
  ZODB's `FileStorage(read_only=True)` with no .index file (so it scans), and
  `zrs copy --batch 1000`, at each size; peak RSS of each process (GNU time's %M), and
  for Python the growth over its baseline after imports.
- memory: peak RSS of opening N objects × 1 revision against N objects × 10 revisions,
  zrs over its RSS opening a 5,000-object file of 7 MB (scan buffers included in both),
  Python over its baseline after imports.

The machine these figures come from is shared: run the rounds interleaved (the script
does) and read medians with the spread.
"""
import argparse
import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time

from bench_harness import (PY, ROOT, ZRS, Replay, remove_storage, same_file, vm_kib,
                           wait_secondary)

WORKLOAD = os.path.join(ROOT, "target", "release", "examples", "workload")
PATIENCE = 600

PY_OPEN = r"""
import resource, sys, time
import ZODB.FileStorage
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
fs = ZODB.FileStorage.FileStorage(sys.argv[1], read_only=True)
t = time.perf_counter() - t0
print(t, len(fs), base)
"""


def sh(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def run_rss(cmd):
    """Run cmd under /usr/bin/time: (wall seconds, peak RSS in KiB, stdout). (wait4 from
    this process would count this interpreter's pages, shared by the child between fork
    and exec, in the child's peak.)"""
    stats = os.path.join(os.environ.get("TMPDIR", "/tmp"), "zrs-scale-time.%d" % os.getpid())
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", stats] + cmd,
                       capture_output=True, text=True)
    t = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit("%s failed: %s" % (cmd, p.stderr))
    with open(stats) as f:
        rss = int(f.read().split()[-1])
    os.remove(stats)
    return t, rss, p.stdout


def datafs(dir, name, objects, revisions=1, shape="database"):
    path = os.path.join(dir, name)
    if not os.path.exists(path):
        print(sh(WORKLOAD, "datafs", path, "--objects", str(objects), "--revisions",
                 str(revisions), "--shape", shape).strip(), file=sys.stderr)
    return path


def committed(path, size):
    """Whether the Data.fs at path holds `size` bytes whose last transaction is committed:
    it is written at vote, and its status flips to committed after."""
    if os.path.getsize(path) < size:
        return False
    with open(path, "rb") as f:
        f.seek(size - 8)
        tlen = int.from_bytes(f.read(8), "big")
        f.seek(size - 8 - tlen + 16)
        return f.read(1) == b" "


def catch_up(replay, primary_fs, work, durability):
    out = os.path.join(work, "secondary.fs")
    remove_storage(out, ("", ".lock"))
    size = os.path.getsize(primary_fs)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [ZRS, "secondary", "--storage", out, "--primary", "127.0.0.1:%d" % replay.port,
         "--durability", durability], stderr=subprocess.DEVNULL)
    wait_secondary(proc, lambda: committed(out, size), PATIENCE, 0.001)
    t = time.perf_counter() - t0
    # Peak RSS while it still runs (see vm_kib).
    hwm = vm_kib(proc.pid, "VmHWM")
    proc.send_signal(signal.SIGTERM)
    _, status, usage = os.wait4(proc.pid, 0)
    if not same_file(primary_fs, out):
        sys.exit("%s: the secondary's file differs from the primary's" % durability)
    return t, hwm, usage.ru_utime + usage.ru_stime


def md5_time(data):
    t0 = time.perf_counter()
    hashlib.md5(data).digest()
    return time.perf_counter() - t0


def fsync_each(work, sizes):
    path = os.path.join(work, "plain.fs")
    buf = os.urandom(max(sizes))
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(fd, b"FS30")
    os.fsync(fd)
    for n in sizes:
        os.write(fd, buf[:n])
        os.fsync(fd)
    os.close(fd)
    t = time.perf_counter() - t0
    os.remove(path)
    return t


def cmd_catchup(args):
    work = args.dir
    primary = datafs(work, "stream-primary.fs", args.stream_objects, 3, "stream")
    stream_path = primary + ".bin"
    if not os.path.exists(stream_path):
        sh(WORKLOAD, "stream", primary, stream_path)
    small = datafs(work, "stream-small.fs", args.stream_objects // 20, 3, "stream")
    small_stream = small + ".bin"
    if not os.path.exists(small_stream):
        sh(WORKLOAD, "stream", small, small_stream)
    with open(stream_path, "rb") as f:
        stream = f.read()
    with open(small_stream, "rb") as f:
        small_bytes = f.read()
    with open(small_stream + ".sizes") as f:
        sizes = [int(x) for x in f.read().split()]
    big, little = Replay(stream), Replay(small_bytes)
    rows = {"batch": [], "md5": [], "every": [], "fsync": [], "rss": [], "cpu": []}
    for i in range(args.repeat):
        t, rss, cpu = catch_up(big, primary, work, "batch:1000")
        rows["batch"].append(t)
        rows["rss"].append(rss)
        rows["cpu"].append(cpu)
        rows["md5"].append(md5_time(stream))
        if not args.no_every:
            rows["every"].append(catch_up(little, small, work, "every")[0])
            rows["fsync"].append(fsync_each(work, sizes))
        print("round %d: %s" % (i, {k: v[-1] for k, v in rows.items() if v}), file=sys.stderr)
    big.close()
    little.close()
    mb = len(stream) / 1e6
    med = {k: statistics.median(v) for k, v in rows.items() if v}
    result = {
        "stream_bytes": len(stream),
        "transactions": stream_txns(stream_path),
        "small_stream_bytes": len(small_bytes),
        "small_transactions": len(sizes),
        "runs": rows,
        "median": med,
    }
    print("| what | median | all runs (s) |")
    print("| --- | --- | --- |")
    print("| `zrs secondary` (batch:1000), %.1f MB stream | %.3f s = %.0f MB/s, CPU %.2f s, peak RSS %.1f MB | %s |" % (
        mb, med["batch"], mb / med["batch"], med["cpu"], med["rss"] / 1024,
        ", ".join("%.3f" % x for x in rows["batch"])))
    print("| hashlib md5 over the same bytes | %.3f s = %.0f MB/s | %s |" % (
        med["md5"], mb / med["md5"], ", ".join("%.3f" % x for x in rows["md5"])))
    print("| catch-up speed / md5 speed | %.0f%% (paired rounds: %s) | |" % (
        100 * med["md5"] / med["batch"],
        ", ".join("%.0f%%" % (100 * m / b) for m, b in zip(rows["md5"], rows["batch"]))))
    if rows["every"]:
        print("| `zrs secondary --durability every`, %d transactions | %.3f s | %s |" % (
            len(sizes), med["every"], ", ".join("%.3f" % x for x in rows["every"])))
        print("| plain write + fsync per transaction, same sizes | %.3f s | %s |" % (
            med["fsync"], ", ".join("%.3f" % x for x in rows["fsync"])))
        print("| ratio | %.2f× (paired rounds: %s) | |" % (
            med["every"] / med["fsync"],
            ", ".join("%.2f" % (e / f) for e, f in zip(rows["every"], rows["fsync"]))))
    save(args, "catchup", result)


def cmd_durability(args):
    """`--durability every` against the plain write + fsync loop only, in many short paired
    rounds (the catchup command runs them too, but once per slow batch round)."""
    work = args.dir
    small = datafs(work, "stream-small.fs", args.stream_objects // 20, 3, "stream")
    small_stream = small + ".bin"
    if not os.path.exists(small_stream):
        sh(WORKLOAD, "stream", small, small_stream)
    with open(small_stream, "rb") as f:
        little = Replay(f.read())
    with open(small_stream + ".sizes") as f:
        sizes = [int(x) for x in f.read().split()]
    every, fsync = [], []
    for i in range(args.repeat):
        # Alternate which goes first, so that neither always follows the other's writes.
        if i % 2 == 0:
            every.append(catch_up(little, small, work, "every")[0])
            fsync.append(fsync_each(work, sizes))
        else:
            fsync.append(fsync_each(work, sizes))
            every.append(catch_up(little, small, work, "every")[0])
        print("round %d: every %.3f s, write+fsync %.3f s, ratio %.2f" % (
            i, every[-1], fsync[-1], every[-1] / fsync[-1]), file=sys.stderr)
    little.close()
    ratios = sorted(e / f for e, f in zip(every, fsync))
    med = {"every": statistics.median(every), "fsync": statistics.median(fsync)}
    print("| what | median | all runs (s) |")
    print("| --- | --- | --- |")
    print("| `zrs secondary --durability every`, %d transactions | %.3f s | %s |" % (
        len(sizes), med["every"], ", ".join("%.3f" % x for x in every)))
    print("| plain write + fsync per transaction, same sizes | %.3f s | %s |" % (
        med["fsync"], ", ".join("%.3f" % x for x in fsync)))
    print("| ratio | %.2f× by medians; paired rounds: median %.2f×, %d of %d within 1.5× | %s |" % (
        med["every"] / med["fsync"], statistics.median(ratios),
        sum(r <= 1.5 for r in ratios), len(ratios), ", ".join("%.2f" % r for r in ratios)))
    save(args, "durability", {"transactions": len(sizes), "runs": {"every": every, "fsync": fsync},
                              "median": med})


def stream_txns(stream_path):
    with open(stream_path + ".sizes") as f:
        return len(f.read().split())


def save(args, name, result):
    with open(os.path.join(args.dir, "results-%s.json" % name), "w") as f:
        json.dump(result, f, indent=1)


def py_open(path, reference_python):
    remove_storage(path, (".index", ".lock"))
    t, rss, out = run_rss([reference_python, "-c", PY_OPEN, path])
    secs, n, base = out.split()
    return float(secs), rss, rss - int(base), int(n)


def zrs_open(path):
    t, rss, out = run_rss([WORKLOAD, "open", path])
    return float(out.split()[1]), t, rss


def zrs_copy(path, work):
    dst = os.path.join(work, "copy.fs")
    remove_storage(dst, ("", ".lock"))
    t, rss, _ = run_rss([ZRS, "copy", "--batch", "1000", path, dst])
    if not same_file(path, dst):
        sys.exit("zrs copy of %s is not byte-identical" % path)
    os.remove(dst)
    return t, rss


def cmd_open(args):
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    for n in sizes:
        path = datafs(args.dir, "db-%d.fs" % n, n)
        stream_path = path + ".bin"
        if not args.no_catchup and not os.path.exists(stream_path):
            sh(WORKLOAD, "stream", path, stream_path)
        replay = None
        if not args.no_catchup:
            with open(stream_path, "rb") as f:
                replay = Replay(f.read())
        row = {"objects": n, "bytes": os.path.getsize(path), "zrs_open": [], "zrs_open_process": [],
               "zrs_rss": [], "py_open": [], "py_rss": [], "py_growth": [], "copy": [],
               "copy_rss": [], "catchup": [], "catchup_rss": []}
        for i in range(args.repeat):
            # Interleaved: zrs, Python, copy, in each round.
            t, wall, rss = zrs_open(path)
            row["zrs_open"].append(t)
            row["zrs_open_process"].append(wall)
            row["zrs_rss"].append(rss)
            t, rss, growth, count = py_open(path, args.reference_python)
            assert count == n, (count, n)
            row["py_open"].append(t)
            row["py_rss"].append(rss)
            row["py_growth"].append(growth)
            if not args.no_copy:
                t, rss = zrs_copy(path, args.dir)
                row["copy"].append(t)
                row["copy_rss"].append(rss)
            if replay is not None:
                t, rss, _ = catch_up(replay, path, args.dir, "batch:1000")
                row["catchup"].append(t)
                row["catchup_rss"].append(rss)
            print("%d objects, round %d: %s" % (n, i, {k: v[-1] for k, v in row.items()
                                                       if isinstance(v, list) and v}),
                  file=sys.stderr)
        if replay is not None:
            replay.close()
        results.append(row)
    save(args, "open", results)
    print_open(results)


def print_open(results):
    m = statistics.median
    base = results[0]
    print("| objects | Data.fs | zrs open (index scan) | Python ZODB open (index scan) | "
          "zrs copy --batch 1000 | `zrs secondary` catch-up | zrs open peak RSS | "
          "Python peak RSS (growth over baseline) | zrs copy peak RSS | catch-up peak RSS |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        print("| %s | %.0f MB | %.3f s | %.2f s | %s | %s | %.1f MB | %.1f MB (+%.1f MB) | %s | %s |" % (
            "{:,}".format(r["objects"]), r["bytes"] / 1e6, m(r["zrs_open"]), m(r["py_open"]),
            "%.2f s" % m(r["copy"]) if r["copy"] else "-",
            "%.2f s" % m(r["catchup"]) if r.get("catchup") else "-",
            m(r["zrs_rss"]) / 1024, m(r["py_rss"]) / 1024, m(r["py_growth"]) / 1024,
            "%.1f MB" % (m(r["copy_rss"]) / 1024) if r["copy_rss"] else "-",
            "%.1f MB" % (m(r["catchup_rss"]) / 1024) if r.get("catchup_rss") else "-"))
    print()
    print("Ratios to the smallest size (%s objects):" % "{:,}".format(base["objects"]))
    for r in results[1:]:
        k = r["objects"] / base["objects"]
        print("- %s objects (%.0f×): zrs open %.1f×, Python open %.1f×%s" % (
            "{:,}".format(r["objects"]), k, m(r["zrs_open"]) / m(base["zrs_open"]),
            m(r["py_open"]) / m(base["py_open"]),
            (", zrs copy %.1f×" % (m(r["copy"]) / m(base["copy"])) if r["copy"] else "")
            + (", catch-up %.1f×" % (m(r["catchup"]) / m(base["catchup"])) if r.get("catchup") else "")))


def cmd_memory(args):
    n = args.objects
    one = datafs(args.dir, "db-%d.fs" % n, n)
    ten = datafs(args.dir, "db-%dx10.fs" % n, n, 10)
    rows = {"one": [], "ten": [], "py_one": [], "py_ten": []}
    # The baseline: a file of a few objects but larger than the scan's 4 MiB read buffer,
    # so that the difference is the index (and what else grows with the objects).
    empty = datafs(args.dir, "db-base.fs", 5000, 1, "stream")
    base = []
    for i in range(args.repeat):
        base.append(zrs_open(empty)[2])
        rows["one"].append(zrs_open(one)[2])
        rows["ten"].append(zrs_open(ten)[2])
        rows["py_one"].append(py_open(one, args.reference_python)[2])
        rows["py_ten"].append(py_open(ten, args.reference_python)[2])
    m = statistics.median
    b = m(base)
    result = {"objects": n, "baseline_kib": base, "runs": rows,
              "bytes_one": os.path.getsize(one), "bytes_ten": os.path.getsize(ten)}
    save(args, "memory", result)
    print("| file | zrs peak RSS (over a 5,000-object file's) | per object | Python growth over baseline | per object |")
    print("| --- | --- | --- | --- | --- |")
    for label, z, p, size in (("%s objects × 1 revision" % "{:,}".format(n), "one", "py_one", result["bytes_one"]),
                              ("%s objects × 10 revisions" % "{:,}".format(n), "ten", "py_ten", result["bytes_ten"])):
        over = m(rows[z]) - b
        print("| %s (%.0f MB) | %.1f MB (+%.1f MB) | %.1f B | +%.1f MB | %.1f B |" % (
            label, size / 1e6, m(rows[z]) / 1024, over / 1024, over * 1024 / n,
            m(rows[p]) / 1024, m(rows[p]) * 1024 / n))
    print()
    print("zrs: 10 revisions / 1 revision = %.2f× (over the empty file's RSS)" % (
        (m(rows["ten"]) - b) / (m(rows["one"]) - b)))


def cmd_plot(args):
    with open(os.path.join(args.dir, "results-open.json")) as f:
        results = json.load(f)
    out = args.out or os.path.join(ROOT, "benches", "scale-open.svg")
    with open(out, "w") as f:
        f.write(svg(results))
    print("wrote", out)


def svg(results):
    """A log-log plot of time against objects, zrs and Python (no plotting library)."""
    import math
    m = statistics.median
    series = [("Python ZODB open (index scan)", "#d62728", [m(r["py_open"]) for r in results]),
              ("zrs copy --batch 1000", "#2ca02c", [m(r["copy"]) if r["copy"] else None for r in results]),
              ("zrs secondary catch-up", "#9467bd", [m(r["catchup"]) if r.get("catchup") else None for r in results]),
              ("zrs open (index scan)", "#1f77b4", [m(r["zrs_open"]) for r in results])]
    xs = [r["objects"] for r in results]
    ys = [y for _, _, s in series for y in s if y]
    W, H, L, R, T, B = 720, 440, 80, 250, 30, 60
    x0, x1 = math.log10(min(xs)) - 0.1, math.log10(max(xs)) + 0.1
    y0, y1 = math.floor(math.log10(min(ys))), math.ceil(math.log10(max(ys)))
    px = lambda x: L + (math.log10(x) - x0) / (x1 - x0) * (W - L - R)
    py = lambda y: H - B - (math.log10(y) - y0) / (y1 - y0) * (H - T - B)
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (W, H),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="18" font-size="14">Open, copy and catch-up time against database size (log-log)</text>' % L]
    for e in range(int(y0), int(y1) + 1):
        y = py(10 ** e)
        o.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>' % (L, W - R, y, y))
        o.append('<text x="%d" y="%.1f" text-anchor="end">%s s</text>' % (L - 6, y + 4, "{:g}".format(10 ** e)))
    for x in xs:
        o.append('<line x1="%.1f" x2="%.1f" y1="%d" y2="%d" stroke="#ddd"/>' % (px(x), px(x), T, H - B))
        o.append('<text x="%.1f" y="%d" text-anchor="middle">%s</text>' % (px(x), H - B + 18, "{:,}".format(x)))
    o.append('<text x="%d" y="%d" text-anchor="middle">objects</text>' % ((L + W - R) / 2, H - 15))
    for i, (name, color, s) in enumerate(series):
        pts = [(px(x), py(y)) for x, y in zip(xs, s) if y]
        o.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>' % (
            color, " ".join("%.1f,%.1f" % p for p in pts)))
        for p in pts:
            o.append('<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"/>' % (p[0], p[1], color))
        ly = T + 20 + 22 * i
        o.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="%s" stroke-width="2"/>' % (W - R + 15, W - R + 40, ly, ly, color))
        o.append('<text x="%d" y="%d">%s</text>' % (W - R + 46, ly + 4, name))
    # A dashed line of slope 1 through zrs open's first point: linear cost.
    first = series[-1][2][0]
    pts = [(px(x), py(first * x / xs[0])) for x in (xs[0], xs[-1])]
    o.append('<polyline fill="none" stroke="#888" stroke-dasharray="5,4" points="%s"/>' % (
        " ".join("%.1f,%.1f" % p for p in pts)))
    ly = T + 20 + 22 * len(series)
    o.append('<line x1="%d" x2="%d" y1="%d" y2="%d" stroke="#888" stroke-dasharray="5,4"/>' % (W - R + 15, W - R + 40, ly, ly))
    o.append('<text x="%d" y="%d">linear (slope 1)</text>' % (W - R + 46, ly + 4))
    o.append('</svg>')
    return "\n".join(o) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["catchup", "durability", "open", "memory", "plot"])
    ap.add_argument("--dir", default="/tmp/zrs-scale")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sizes", default="100000,300000,1000000,3000000")
    ap.add_argument("--objects", type=int, default=1000000)
    ap.add_argument("--stream-objects", type=int, default=30000)
    ap.add_argument("--no-every", action="store_true")
    ap.add_argument("--no-copy", action="store_true")
    ap.add_argument("--no-catchup", action="store_true")
    ap.add_argument("--reference-python", default=PY)
    ap.add_argument("--out")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    {"catchup": cmd_catchup, "durability": cmd_durability, "open": cmd_open,
     "memory": cmd_memory, "plot": cmd_plot}[args.what](args)


if __name__ == "__main__":
    main()
