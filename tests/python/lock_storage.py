"""Python ZODB's side of the Data.fs locking tests (tests/locking.rs).

Usage:
    lock_storage.py hold PATH   open FileStorage(PATH) for writing (taking PATH.lock as
                                ZODB does), print `held PID`, and keep it open until stdin
                                closes or says `quit`
    lock_storage.py try PATH    try to open FileStorage(PATH) for writing; print
                                `locked: <the error>` or `opened`

Flushes each line.
"""
import os
import sys

import zc.lockfile
from ZODB.FileStorage import FileStorage


def main():
    mode, path = sys.argv[1:]
    if mode == "hold":
        fs = FileStorage(path)
        print("held", os.getpid(), flush=True)
        for line in sys.stdin:
            if line.strip() == "quit":
                break
        fs.close()
    elif mode == "try":
        try:
            fs = FileStorage(path)
        except zc.lockfile.LockError as e:
            print("locked:", e, flush=True)
        else:
            print("opened", flush=True)
            fs.close()
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
