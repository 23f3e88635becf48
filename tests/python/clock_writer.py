"""A ZODB application writing a Data.fs with the real clock (tests/failover.rs).

Usage: clock_writer.py PATH

Opens FileStorage(PATH) as its writer and prints `ready`; then reads commands from stdin:
    commit K    commit K transactions (a new mapping each), print `committed`
    quit        (or end of input) close and exit
Unlike zodb_writer.py (a fake clock from 2024-01-01), tids come from time.time(), as in
production: a history written after a failover never reuses the old primary's tids.
"""
import sys

import transaction
import ZODB
import ZODB.FileStorage
from persistent.mapping import PersistentMapping


def main():
    db = ZODB.DB(ZODB.FileStorage.FileStorage(sys.argv[1]))
    tm = transaction.TransactionManager()
    conn = db.open(transaction_manager=tm)
    root = conn.root()
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["commit"] and len(words) == 2:
            for _ in range(int(words[1])):
                root["after-failover-%d" % len(root)] = PersistentMapping({"n": len(root)})
                tm.get().note("after the failover")
                tm.commit()
            print("committed", flush=True)
        elif words == ["quit"]:
            break
    conn.close()
    db.close()


if __name__ == "__main__":
    main()
