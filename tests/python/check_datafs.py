"""Check a Data.fs written by zrs with Python ZODB itself.

Usage:
    check_datafs.py same SRC DST     DST holds exactly SRC's transactions
    check_datafs.py prefix SRC DST   DST holds the first k of SRC's transactions

Either way ZODB's fstest must accept DST, and a FileStorage opened on DST must load
every object as one opened on SRC does (as of DST's last transaction). Transactions are
compared field by field: tid, status, user, description, raw extension bytes, and each
record's oid, serial, data and data_txn (which records are backpointers). Prints a one-line
summary; exits non-zero with a message on the first difference.
"""
import sys

from ZODB.FileStorage import FileIterator
from ZODB.FileStorage import FileStorage
from ZODB.POSException import POSKeyError
from ZODB.scripts import fstest


def transactions(path):
    it = FileIterator(path)
    out = []
    for txn in it:
        recs = [(r.oid, r.tid, r.data, r.data_txn) for r in txn]
        out.append((txn.tid, txn.status, txn.user, txn.description, txn.extension_bytes, recs))
    it.close()
    return out


def fail(msg):
    sys.exit("check_datafs: " + msg)


def main():
    mode, src, dst = sys.argv[1:4]
    fstest.check(dst)  # raises FormatError on any damage
    a, b = transactions(src), transactions(dst)
    if mode == "same" and len(a) != len(b):
        fail("%d transactions in SRC, %d in DST" % (len(a), len(b)))
    if len(b) > len(a):
        fail("DST has more transactions than SRC")
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            for name, u, v in zip(("tid", "status", "user", "description", "extension",
                                   "records"), x, y):
                if u != v:
                    fail("transaction %d (%r) differs in %s" % (i, x[0], name))
    nrec = sum(len(t[5]) for t in b)
    nback = sum(1 for t in b for r in t[5] if r[3] is not None)
    last = b[-1][0] if b else None
    fs_src = FileStorage(src, read_only=True)
    fs_dst = FileStorage(dst, read_only=True)
    oids = sorted({r[0] for t in b for r in t[5]})
    loaded = 0
    for oid in oids:
        try:
            got = fs_dst.load(oid)
        except POSKeyError:
            got = None
        try:
            if mode == "same":
                want = fs_src.load(oid)
            else:
                r = fs_src.loadBefore(oid, bytes.fromhex("%016x" % (int(last.hex(), 16) + 1)))
                want = None if r is None else (r[0], r[1])
        except POSKeyError:
            want = None
        if got != want:
            fail("load(%r) differs" % oid)
        loaded += got is not None
    fs_src.close()
    fs_dst.close()
    print("ok: %d transactions, %d records (%d backpointers), %d objects loaded; fstest ok"
          % (len(b), nrec, nback, loaded))


if __name__ == "__main__":
    main()
