"""A real zc.zrs 3.1.0 primary (Twisted) over a Data.fs built with ZODB, for interop tests.

Usage:
    zrs_primary.py PATH [--create N] [--shapes mixed|mappings] [--seed S] [--port P]
                        [--throttle SECS] [--stall-in K] [--no-serve] [--blobs DIR]

--create N   (re)build PATH first with N transactions (a few more when the last step is an
             undo); without it PATH is served as it is.
--shapes     mixed (default): persistent mappings, lists and OOBTrees; mappings: persistent
             mappings of ints, text and bytes only (what the simulator's `root` prints).
--port P     listen on 127.0.0.1:P (default 0: a free port). Always loopback.
--throttle   sleep this long before each message the primary sends (a slow primary, so that
             a test can kill it mid-stream). Only the pace changes, not the bytes.
--stall-in K the first stream the primary serves stops in the middle of the K-th transaction
             it sends (counting from 1): after its T and first S message, before that
             record's data. It prints `stalled K` and sends nothing more on that connection
             until the connection ends or the primary quits; later connections are served
             whole. So a test can stop a primary, or a secondary, mid-stream on an event
             rather than on a guess at how fast the stream goes.
--no-serve   build and exit.
--blobs DIR  keep blobs in DIR: the storage is ZODB's BlobStorage around the FileStorage
             (zc.zrs's documented blob primary), and the workload adds blob steps: new blobs
             of 0, 1, 64 KiB, 64 KiB + 1 bytes ... up to 3 MB, changed blobs, and undos of
             both (the undo of a creation copies the blob file to the undo's tid).

Prints `port N` once listening, then `size N` (the file's size in bytes); flushes each line.
Then reads commands from stdin, one a line:
    commit K    commit K more transactions through the primary; prints `size N`
    quit        (or end of input) close the primary and exit

The content is deterministic: a seeded RNG, and a fake clock for transaction ids (ZODB takes
tids from time.time(); here each transaction gets the next second from 2024-01-01 UTC), so the
same arguments give the same file. Shapes, spread over the transactions: new and changed
objects, unicode user / description / extension, records over 64 KiB, undos (backpointers),
undone creations (backpointer 0), deletions, transactions with no metadata at all.

What this script shares with zrs_primary2.py (the clock, the workload's skeleton, serving and
the stdin protocol) is in primary_harness.py; the Python 3 workload's own parts are here.
"""
import argparse
import os

import BTrees.OOBTree
import ZODB
import ZODB.blob
import ZODB.FileStorage
from persistent.list import PersistentList
from persistent.mapping import PersistentMapping

import primary_harness
from primary_harness import recreate, say

primary_harness.use_fake_clock()


class Workload(primary_harness.Workload):
    """The shared workload with Python 3 text metadata, and, for `mixed`, OOBTrees and
    persistent lists; with blobs, blob steps at fixed points."""

    def __init__(self, db, shapes, seed, blobs=False):
        super().__init__(db, seed)
        self.blobs = blobs
        self.mixed = shapes == "mixed"

    def metadata(self, kind):
        t = self.tm.get()
        i = self.count
        style = i % 4
        if style == 0:
            t.setUser("üser-%d" % (i % 5))
            t.note("%s #%d: ünïcode ✓" % (kind, i))
            t.setExtendedInfo("kind", kind)
            t.setExtendedInfo("ünïcode", "välue %d" % i)
        elif style == 1:
            t.setUser("plain")
            t.note("%s #%d" % (kind, i))
        elif style == 2:
            t.setExtendedInfo("n", i)
            if self.mixed:
                t.setExtendedInfo("nested", {"list": [1, 2, i], "bytes": b"\x00\xff"})
        # style 3: no metadata at all

    def random_bytes(self, n):
        return self.rng.randbytes(n)

    def put_bytes(self, folders, names):
        # The bytes are drawn before the folder is (zrs_primary2.py draws the other way):
        # the files, and the committed captures, depend on the order of the draws.
        data = self.random_bytes(self.rng.randrange(1, 2000))
        folders[self.rng.choice(names)]["blob"] = data

    def more_roots(self):
        if self.mixed:
            self.root["tree"] = BTrees.OOBTree.OOBTree()
            self.root["log"] = PersistentList()

    def own_fixed_step(self, i):
        if self.blobs and i % 10 in (3, 7):
            self.blob(i)
            return True
        return False

    def own_random_step(self, i):
        if not self.mixed:
            return False
        tree = self.root["tree"]
        for _ in range(self.rng.randrange(1, 20)):
            tree["k%05d" % self.rng.randrange(3000)] = self.rng.randbytes(self.rng.randrange(1, 64))
        self.root["log"].append(i)
        self.commit("tree")
        return True

    BLOB_SIZES = [0, 1, 65536, 65537, 100, 300_000, 5000, 3_000_000, 65535, 131072]

    def blob(self, i):
        blobs = self.root.get("blobs")
        if blobs is None:
            blobs = self.root["blobs"] = PersistentMapping()
        size = self.BLOB_SIZES[(i // 5) % len(self.BLOB_SIZES)]
        data = self.rng.randbytes(size)
        names = sorted(blobs)
        # New blobs at 3 (undone at 8 when 7 is a change), alternately new or changed at 7.
        if i % 10 == 3 or (i // 10) % 2 == 0 or not names:
            blob = ZODB.blob.Blob()
            if size or i % 20 != 3:
                # Written, even with nothing: otherwise still an empty blob file.
                with blob.open("w") as f:
                    f.write(data)
            blobs["b%d" % i] = blob
            return self.commit("new blob")
        with blobs[self.rng.choice(names)].open("w") as f:
            f.write(data)
        return self.commit("changed blob")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("path")
    p.add_argument("--create", type=int)
    p.add_argument("--shapes", choices=["mixed", "mappings"], default="mixed")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--throttle", type=float, default=0.0)
    p.add_argument("--stall-in", type=int)
    p.add_argument("--no-serve", action="store_true")
    p.add_argument("--blobs")
    args = p.parse_args()

    def open_storage(create=False):
        fs = ZODB.FileStorage.FileStorage(args.path, create=create)
        if args.blobs:
            return ZODB.blob.BlobStorage(args.blobs, fs)
        return fs

    if args.create is not None:
        recreate(args.path)
        if args.blobs and os.path.exists(args.blobs):
            import shutil

            shutil.rmtree(args.blobs)
        db = ZODB.DB(open_storage(create=True))
        w = Workload(db, args.shapes, args.seed, bool(args.blobs))
        w.run(args.create)
        w.close()
        db.close()
    if args.no_serve:
        say("size %d" % os.path.getsize(args.path))
        return

    primary_harness.serve(
        "zrs_primary", args.path, open_storage, args.port,
        lambda db: Workload(db, args.shapes, args.seed + 1, bool(args.blobs)),
        throttle=args.throttle, stall_in=args.stall_in)


if __name__ == "__main__":
    main()
