"""Check a Data.fs written by zrs with Python ZODB itself.

Usage:
    check_datafs.py same SRC DST     DST holds exactly SRC's transactions
    check_datafs.py prefix SRC DST   DST holds the first k of SRC's transactions

Either way ZODB's fstest must accept DST, and a FileStorage opened on DST must load
every object as one opened on SRC does (as of DST's last transaction). Transactions are
compared field by field: tid, status, user, description, raw extension bytes, and each
record's oid, serial, data and data_txn (which records are backpointers). Prints a one-line
summary; exits non-zero with a message on the first difference.
The comparisons themselves are datafs_compare.py's (shared with `zrs_primary2.py check`).
"""
import sys

from ZODB.FileStorage import FileStorage

import datafs_compare


def fail(msg):
    sys.exit("check_datafs: " + msg)


def main():
    mode, src, dst = sys.argv[1:4]
    b = datafs_compare.check_transactions(src, dst, "extension_bytes", fail,
                                          prefix=mode != "same")
    nrec = sum(len(t[5]) for t in b)
    nback = sum(1 for t in b for r in t[5] if r[3] is not None)
    last = b[-1][0] if b else None
    fs_src = FileStorage(src, read_only=True)
    fs_dst = FileStorage(dst, read_only=True)
    if mode == "same":
        load_src = fs_src.load
    else:
        # As of DST's last transaction (no object is loaded when DST has none).
        before = bytes.fromhex("%016x" % (int(last.hex(), 16) + 1)) if b else None

        def load_src(oid):
            r = fs_src.loadBefore(oid, before)
            return None if r is None else (r[0], r[1])
    loaded = datafs_compare.check_loads(b, fs_dst.load, load_src, fail)
    fs_src.close()
    fs_dst.close()
    print("ok: %d transactions, %d records (%d backpointers), %d objects loaded; fstest ok"
          % (len(b), nrec, nback, loaded))


if __name__ == "__main__":
    main()
