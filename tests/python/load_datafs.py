"""Open a Data.fs with Python ZODB as a client would, and print what it holds.

Usage: load_datafs.py PATH

ZODB's fstest must accept the file; every object of every transaction must unpickle
(ghosts activated through a DB connection); then the root prints as nested dicts with keys
sorted, mappings as dicts and byte values as their length, e.g. {'a': {}, 'big': 70000}.
Exits non-zero with a message on the first problem.
"""
import sys

import ZODB
from ZODB.FileStorage import FileIterator, FileStorage
from ZODB.scripts import fstest
import persistent.mapping


def plain(ob):
    if isinstance(ob, persistent.mapping.PersistentMapping):
        return {k: plain(v) for k, v in sorted(ob.items())}
    if isinstance(ob, bytes):
        return len(ob)
    return ob


def main():
    path = sys.argv[1]
    fstest.check(path)
    oids = set()
    it = FileIterator(path)
    for txn in it:
        for rec in txn:
            oids.add(rec.oid)
    it.close()
    db = ZODB.DB(FileStorage(path, read_only=True))
    conn = db.open()
    loaded = 0
    for oid in sorted(oids):
        try:
            ob = conn.get(oid)
            ob._p_activate()
            loaded += 1
        except Exception as e:  # an undone creation has no current state: POSKeyError
            if type(e).__name__ != 'POSKeyError':
                sys.exit('oid %r does not load: %r' % (oid, e))
    print(plain(conn.root()))
    print('loaded %d objects' % loaded)
    db.close()


main()
