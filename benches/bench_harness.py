"""What the benchmark scripts (blobs.py, primary.py, replication.py, scale.py) share: where
the programs they run are, starting and stopping primaries (the Rust `zrs primary` and the
Python zc.zrs one, tests/python/zrs_primary.py), a stand-in primary that replays a recorded
stream, comparing files, and reading a process's memory from /proc.

The scripts import it from this directory (Python puts a script's own directory first on
its path). Each keeps its own measurements, its own limits (PATIENCE: how long a step may
take before the run fails) and its own output.
"""
import os
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZRS = os.path.join(ROOT, "target", "release", "zrs")
PY = sys.executable
PY_PRIMARY = os.path.join(ROOT, "tests", "python", "zrs_primary.py")
PY_SECONDARY = os.path.join(ROOT, "tests", "python", "zrs_secondary.py")


def remove_storage(path, suffixes=("", ".index", ".lock", ".tmp")):
    """Remove a FileStorage's file and side files, those that exist, before a run writes it
    anew."""
    for suffix in suffixes:
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_python_primary(path, *options):
    """tests/python/zrs_primary.py serving path: (process, port), once it listens."""
    p = subprocess.Popen([PY, PY_PRIMARY, path] + list(options),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = int(p.stdout.readline().split()[1])
    p.stdout.readline()  # size
    return p, port


def stop_python_primary(p, patience):
    p.stdin.write("quit\n")
    p.stdin.flush()
    p.wait(patience)


def start_zrs_primary(path, *options):
    """`zrs primary` serving path on a free port: (process, port), once it logs that it
    listens."""
    port = free_port()
    p = subprocess.Popen(
        [ZRS, "--log-format", "plain", "primary", "--storage", path, "--listen", "127.0.0.1:%d" % port]
        + list(options),
        stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if "listening on" in line:
            break
    else:
        raise SystemExit("zrs primary did not start")
    # Drain its log so it never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
    return p, port


def stop_zrs_primary(p, patience):
    p.terminate()
    p.wait(patience)


def wait_secondary(proc, ready, patience, poll):
    """Call ready() every `poll` seconds until it is true (a missing file counts as not
    yet), and return the time.time() at which it was; the run fails if the secondary
    process `proc` exits first or `patience` seconds pass."""
    deadline = time.time() + patience
    while True:
        try:
            if ready():
                return time.time()
        except FileNotFoundError:
            pass
        if proc.poll() is not None:
            sys.exit("the secondary exited early (%s)" % proc.returncode)
        if time.time() > deadline:
            sys.exit("no catch-up within %d s" % patience)
        time.sleep(poll)


class Replay:
    """A stand-in primary that sends a recorded stream at once to each secondary that
    connects (after reading its 22-byte handshake: a zrs2.0 id and a start tid of zero):
    the secondary's own pace, not a primary's."""

    def __init__(self, stream):
        self.stream = stream
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self.send, args=(conn,), daemon=True).start()

    def send(self, conn):
        got = b""
        while len(got) < 22:
            chunk = conn.recv(22 - len(got))
            if not chunk:
                return
            got += chunk
        assert got[4:10] == b"zrs2.0" and got[14:] == bytes(8), got
        try:
            conn.sendall(self.stream)
        except OSError:
            pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def same_file(a, b):
    """Whether the two files hold the same bytes (False when either is missing); read a MiB
    at a time, so that a file of gigabytes costs no more memory than a small one."""
    try:
        if os.path.getsize(a) != os.path.getsize(b):
            return False
    except OSError:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def vm_kib(pid, field):
    """A process's `field` (VmRSS, VmHWM: peak resident memory, ...) in KiB, from
    /proc/PID/status (0 when absent). Read from the kernel while the process runs: wait4's
    peak would count this interpreter's pages, shared with the child between fork and exec."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0
