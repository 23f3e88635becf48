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
"""
import argparse
import logging
import os
import sys
import threading
import time
import types

import BTrees.OOBTree
import transaction
import ZODB
import ZODB.BaseStorage
import ZODB.blob
import ZODB.FileStorage
from persistent.list import PersistentList
from persistent.mapping import PersistentMapping

START = 1704067200.0  # 2024-01-01 00:00:00 UTC


class FakeClock:
    """Stands in for the `time` module ZODB's BaseStorage assigns tids from."""

    def __init__(self):
        self.now = START

    gmtime = staticmethod(time.gmtime)

    def time(self):
        self.now += 1.0
        return self.now


ZODB.BaseStorage.time = FakeClock()


class Workload:
    """Commits transactions of varied shapes, one per `step`."""

    def __init__(self, db, shapes, seed, blobs=False):
        import random

        self.db = db
        self.blobs = blobs
        self.mixed = shapes == "mixed"
        self.rng = random.Random(seed)
        self.tm = transaction.TransactionManager()
        self.conn = db.open(transaction_manager=self.tm)
        self.root = self.conn.root()
        self.count = len(db.undoLog(0, sys.maxsize))

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

    def commit(self, kind):
        self.metadata(kind)
        self.tm.commit()
        self.count += 1

    def folders(self):
        return self.root["folders"]

    def step(self):
        i = self.count
        if "folders" not in self.root:
            self.root["folders"] = PersistentMapping()
            if self.mixed:
                self.root["tree"] = BTrees.OOBTree.OOBTree()
                self.root["log"] = PersistentList()
            return self.commit("setup")
        folders = self.folders()
        names = sorted(folders)
        # Fixed points so that even a short run has each shape.
        if self.blobs and i % 10 in (3, 7):
            return self.blob(i)
        if i % 50 == 5:
            return self.big(names)
        if i % 10 == 8:
            return self.undo_last()
        r = self.rng.random()
        if r < 0.3 or not names:
            name = "f%d" % i
            folders[name] = PersistentMapping({"n": i, "name": "földer %d" % i})
            return self.commit("create")
        if r < 0.6:
            f = folders[self.rng.choice(names)]
            f["v"] = self.rng.randrange(10**6)
            f["note"] = "ünïcode %d" % self.rng.randrange(100)
            return self.commit("change")
        if r < 0.7 and self.mixed:
            tree = self.root["tree"]
            for _ in range(self.rng.randrange(1, 20)):
                tree["k%05d" % self.rng.randrange(3000)] = self.rng.randbytes(self.rng.randrange(1, 64))
            self.root["log"].append(i)
            return self.commit("tree")
        if r < 0.8:
            folders[self.rng.choice(names)]["blob"] = self.rng.randbytes(self.rng.randrange(1, 2000))
            return self.commit("bytes")
        if r < 0.9:
            del folders[self.rng.choice(names)]
            return self.commit("delete")
        return self.undo_last()

    def big(self, names):
        if not names:
            self.folders()["big"] = PersistentMapping()
            names = ["big"]
        payload = self.rng.randbytes(70_000 + self.rng.randrange(10_000))
        self.folders()[self.rng.choice(names)]["big"] = PersistentMapping({"payload": payload})
        self.commit("big")

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

    def undo_last(self):
        # The last transaction is always undoable. Undoing a creation writes backpointer 0
        # for the new object; anything else, backpointers to the earlier data.
        entry = self.db.undoLog(0, 1)[0]
        self.db.undo(entry["id"], self.tm.get())
        self.commit("undo")

    def run(self, n):
        for _ in range(n):
            self.step()

    def close(self):
        self.conn.close()


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


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
        for suffix in ("", ".index", ".lock", ".tmp"):
            if os.path.exists(args.path + suffix):
                os.remove(args.path + suffix)
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

    # zc.zrs logs why it closes a connection (a bad handshake, `Too many messages`, an
    # iterator error) only through logging: without a handler those lines are lost, and a
    # test that sees an unexpected reconnect cannot say why.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format='%(asctime)s %(name)s %(levelname)s %(message)s')
    import zc.zrs.primary

    if args.throttle > 0 or args.stall_in is not None:
        write = zc.zrs.primary.PrimaryProducer.write
        next_transaction = zc.zrs.primary.FileStorageIterator.__next__
        # Each connection's producer thread iterates and writes: count per thread.
        here = threading.local()
        armed = [args.stall_in is not None]

        def counting_next(self):
            trans = next_transaction(self)
            here.transactions = getattr(here, "transactions", 0) + 1
            here.writes = 0
            return trans

        def paced_write(self, data):
            if args.throttle > 0:
                time.sleep(args.throttle)
            here.writes = getattr(here, "writes", 0) + 1
            if armed[0] and getattr(here, "transactions", 0) == args.stall_in and here.writes == 3:
                armed[0] = False
                say("stalled %d" % args.stall_in)
                while not (self.stopped or self.closed):
                    time.sleep(0.01)
            write(self, data)

        zc.zrs.primary.FileStorageIterator.__next__ = counting_next
        zc.zrs.primary.PrimaryProducer.write = paced_write

    primary = zc.zrs.primary.Primary(open_storage(), ("127.0.0.1", args.port))
    deadline = time.time() + 30
    while primary._listener is None:
        if time.time() > deadline:
            sys.exit("zrs_primary: the primary did not start listening within 30 s")
        time.sleep(0.01)
    say("port %d" % primary._listener.getHost().port)
    say("size %d" % os.path.getsize(args.path))

    db = ZODB.DB(primary)
    w = Workload(db, args.shapes, args.seed + 1, bool(args.blobs))
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["commit"] and len(words) == 2:
            w.run(int(words[1]))
            say("size %d" % os.path.getsize(args.path))
        elif words == ["quit"]:
            break
        else:
            say("error: unknown command %r" % line)
    w.close()
    db.close()


if __name__ == "__main__":
    main()
