"""Comparing a Data.fs with the one it should copy, through ZODB itself: what check_datafs.py
(Python 3, ZODB 6) and `zrs_primary2.py check` (Python 2.7, ZODB 4.4.5) share, so it is
written in the subset of Python both run.

`check_transactions` runs ZODB's fstest on DST and compares the two files' transactions
field by field; `check_loads` compares what the two storages load for every object DST's
records name. Each calls `fail(message)` (which must not return) at the first difference;
the callers add their own checks and print their own summary.
"""
from ZODB.POSException import POSKeyError

FIELDS = ('tid', 'status', 'user', 'description', 'extension', 'records')


def transactions(path, extension):
    """Every transaction in the file at path as (tid, status, user, description, extension,
    records), the extension read from the attribute named `extension` (ZODB 5 and later
    keep the raw bytes in `extension_bytes`; ZODB 4 has only the unpickled `extension`),
    each record as (oid, serial, data, data_txn): data_txn says which are backpointers."""
    from ZODB.FileStorage import FileIterator

    it = FileIterator(path)
    out = []
    for txn in it:
        recs = [(r.oid, r.tid, r.data, r.data_txn) for r in txn]
        out.append((txn.tid, txn.status, txn.user, txn.description, getattr(txn, extension),
                    recs))
    it.close()
    return out


def check_transactions(src, dst, extension, fail, prefix=False):
    """fstest must accept DST, and DST must hold SRC's transactions (with `prefix`, the first
    k of them). Returns DST's transactions, as `transactions` reads them."""
    from ZODB.scripts import fstest

    fstest.check(dst)  # raises FormatError on any damage
    a, b = transactions(src, extension), transactions(dst, extension)
    if not prefix and len(a) != len(b):
        fail('%d transactions in SRC, %d in DST' % (len(a), len(b)))
    if len(b) > len(a):
        fail('DST has more transactions than SRC')
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            for name, u, v in zip(FIELDS, x, y):
                if u != v:
                    fail('transaction %d (%r) differs in %s' % (i, x[0], name))
    return b


def load_or_none(load, oid):
    try:
        return load(oid)
    except POSKeyError:
        return None


def check_loads(txns, load_dst, load_src, fail):
    """Every oid the records of txns name must load the same through load_dst and load_src
    (an object missing from both is the same). Returns how many load in DST."""
    loaded = 0
    for oid in sorted(set(r[0] for t in txns for r in t[5])):
        got = load_or_none(load_dst, oid)
        want = load_or_none(load_src, oid)
        if got != want:
            fail('load(%r) differs' % oid)
        loaded += got is not None
    return loaded
