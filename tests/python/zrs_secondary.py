"""The Python zc.zrs 3.1.0 secondary, for the end-to-end benchmark (benches/replication.py).

Usage: zrs_secondary.py STORAGE HOST:PORT [BLOB_DIR]

Replicates the primary at HOST:PORT into the FileStorage STORAGE (ZODB fsyncs every
transaction) until SIGTERM or SIGINT, then closes it. With BLOB_DIR the FileStorage keeps
blobs there (`blob_dir=`), and the secondary speaks zrs2.1. Prints `start T` (time.time(), after
the imports, just before opening the storage) so that a benchmark can leave the interpreter's
start-up out of its timing.

zc.zrs 3.1.0's secondary does not run on ZODB 5.6+ as released: the transaction it hands to
`tpc_begin` lacks `extension_bytes`, which ZODB's BaseStorage now reads (AttributeError,
"Input data error", reconnect, forever). This script adds that property, computed as ZODB's
own TransactionMetaData computes it, and changes nothing else.
"""
import signal
import sys
import threading
import time

import ZODB.FileStorage
import zc.zrs.secondary
from ZODB._compat import _protocol
from ZODB._compat import dumps

if not hasattr(zc.zrs.secondary.Transaction, "extension_bytes"):
    zc.zrs.secondary.Transaction.extension_bytes = property(
        lambda self: dumps(self.extension, _protocol) if self.extension else b""
    )


def main():
    path, address = sys.argv[1:3]
    blob_dir = sys.argv[3] if len(sys.argv) > 3 else None
    host, port = address.rsplit(":", 1)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sys.stdout.write("start %r\n" % time.time())
    sys.stdout.flush()
    fs = ZODB.FileStorage.FileStorage(path, blob_dir=blob_dir)
    secondary = zc.zrs.secondary.Secondary(fs, (host, int(port)), reconnect_delay=1)
    while not stop.wait(0.1):
        pass
    secondary.close()


if __name__ == "__main__":
    main()
