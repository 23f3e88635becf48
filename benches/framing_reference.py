"""The Python reference for benches/framing.rs: zc.zrs's sized-message Stream feeding
hashlib.md5 (as SecondaryProtocol does), next to plain md5 over the same bytes.

Same stream shape as the Rust bench (transactions of 1-10 records: ~60 B pickle + 100 B-100 KiB
data record, log-uniform; ~110 B T and ~70 B C messages; ~8 MiB; 64 KiB chunks).

    /path/to/python benches/framing_reference.py
"""
import hashlib
import os
import random
import time

import zc.zrs.sizedmessage

CHUNK = 64 * 1024
TARGET = 8 << 20
rng = random.Random(7)
parts = []
size = 0


def write(n):
    global size
    parts.append(zc.zrs.sizedmessage.marshal(os.urandom(n)))
    size += n + 4


while size < TARGET:
    write(110)
    for _ in range(rng.randint(1, 10)):
        write(60)
        write(int(100 * 1024 ** rng.random()))
    write(70)
stream = b"".join(parts)
chunks = [stream[i:i + CHUNK] for i in range(0, len(stream), CHUNK)]


def plain():
    md5 = hashlib.md5()
    for c in chunks:
        md5.update(c)
    return md5.digest()


def decode_and_checksum():
    md5 = hashlib.md5(b"\0" * 8)
    s = zc.zrs.sizedmessage.Stream(md5.update)
    for c in chunks:
        s(c)
    return md5.digest()


def best(f, n=15):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[0], times[len(times) // 2]


mib = len(stream) / (1 << 20)
for name, f in [("md5 plain", plain), ("Stream + md5", decode_and_checksum)]:
    lo, med = best(f)
    print("%-14s best %7.2f ms (%6.1f MiB/s)  median %7.2f ms (%6.1f MiB/s)"
          % (name, lo * 1e3, mib / lo, med * 1e3, mib / med))
print("stream: %.2f MiB in %d chunks of %d" % (mib, len(chunks), CHUNK))
