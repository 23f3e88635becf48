"""Dump a Data.fs as Python ZODB reads it, one line per item.

Usage: dump_datafs.py PATH OUT

Iteration (ZODB's FileIterator), one line per transaction and per record:

    T <tid> <status> <user> <description> <extension>
    R <oid> <serial> <data or -> <data_txn or ->

then, for every object in iteration order of first appearance, what a read-only
FileStorage answers (BEFORE is the tid of the middle transaction of the file):

    L <oid> <data> <serial>                 load(oid), or "L <oid> -" for POSKeyError
    B <oid> <data> <start> <end>            loadBefore(oid, BEFORE), "B <oid> None" or "-"
    H <oid> <tid>:<size> ...                history(oid, 3)

Every field is hex (the status too); '-' stands for None. The Rust test writes the same
format from its own storage and compares line by line.
"""
import sys

from ZODB.FileStorage import FileIterator
from ZODB.FileStorage import FileStorage
from ZODB.POSException import POSKeyError


def h(b):
    return "-" if b is None else (b.hex() if b else "")


def main():
    path, out = sys.argv[1], sys.argv[2]
    oids = {}
    tids = []
    it = FileIterator(path)
    with open(out, "w") as f:
        for txn in it:
            tids.append(txn.tid)
            status = txn.status.encode("ascii") if isinstance(txn.status, str) else txn.status
            f.write("T %s %s %s %s %s\n" % (
                h(txn.tid), h(status), h(txn.user), h(txn.description), h(txn.extension_bytes)))
            for r in txn:
                oids.setdefault(r.oid, None)
                f.write("R %s %s %s %s\n" % (h(r.oid), h(r.tid), h(r.data), h(r.data_txn)))
        it.close()
        before = tids[len(tids) // 2] if tids else b"\0" * 8
        fs = FileStorage(path, read_only=True)
        for oid in oids:
            try:
                data, serial = fs.load(oid)
                f.write("L %s %s %s\n" % (h(oid), h(data), h(serial)))
            except POSKeyError:
                f.write("L %s -\n" % h(oid))
            try:
                r = fs.loadBefore(oid, before)
                if r is None:
                    f.write("B %s None\n" % h(oid))
                else:
                    f.write("B %s %s %s %s\n" % (h(oid), h(r[0]), h(r[1]), h(r[2])))
            except POSKeyError:
                f.write("B %s -\n" % h(oid))
            hist = fs.history(oid, 3)
            f.write("H %s %s\n" % (h(oid), " ".join(
                "%s:%d" % (h(d["tid"]), d["size"]) for d in hist)))
        fs.close()


if __name__ == "__main__":
    main()
