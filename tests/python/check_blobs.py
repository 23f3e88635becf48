"""Read every blob of a Data.fs and its blob directory with Python ZODB.

Usage:
    check_blobs.py DATAFS BLOBDIR

Opens the storage read-only as `FileStorage(DATAFS, blob_dir=BLOBDIR)` and, for every
record of every transaction whose data is a blob's, opens its committed blob file through
ZODB (`openCommittedBlobFile`). Then opens a DB on it and reads each blob reachable from
`root['blobs']` through `Blob.open()`, as an application would (when there is a root).

Prints one line per blob record, `oid tid md5` (or `oid tid missing`), then
`blobs N readable R missing M`, then one line per reachable blob `name md5`. Two storages
hold the same blobs when they print the same lines.
"""
import hashlib
import sys

import ZODB
import ZODB.blob
from ZODB.FileStorage import FileStorage
from ZODB.POSException import POSKeyError
from ZODB.utils import tid_repr
from ZODB.utils import z64


def md5_of(f):
    h = hashlib.md5()
    for block in iter(lambda: f.read(1 << 16), b""):
        h.update(block)
    return h.hexdigest()


def main():
    path, blob_dir = sys.argv[1:3]
    fs = FileStorage(path, blob_dir=blob_dir, read_only=True)
    total = readable = missing = 0
    for txn in fs.iterator():
        for record in txn:
            if not ZODB.blob.is_blob_record(record.data):
                continue
            total += 1
            name = "%s %s" % (tid_repr(record.oid), tid_repr(record.tid))
            try:
                with fs.openCommittedBlobFile(record.oid, record.tid) as f:
                    print(name, md5_of(f))
                readable += 1
            except POSKeyError:
                print(name, "missing")
                missing += 1
    print("blobs %d readable %d missing %d" % (total, readable, missing))
    try:
        fs.load(z64)
    except POSKeyError:
        return  # no root object: nothing an application could reach
    db = ZODB.DB(fs)
    conn = db.open()
    blobs = conn.root().get("blobs", {})
    for name in sorted(blobs):
        try:
            with blobs[name].open() as f:
                print(name, md5_of(f))
        except POSKeyError:
            print(name, "missing")
    conn.close()
    db.close()


if __name__ == "__main__":
    main()
