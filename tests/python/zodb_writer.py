"""A plain ZODB application writing a Data.fs (no zc.zrs): what `zrs primary` follows.

Usage: zodb_writer.py PATH [--seed S]

Opens (creating if missing) the FileStorage PATH as its writer, prints `size N`, then reads
commands from stdin, one a line:
    commit K    commit K more transactions (zrs_primary.py's workload: every record shape);
                prints `committed T size N`, T the time.time() just after the last commit
                returned (its data is in the file, status flipped from 'c')
    pack        pack the storage (ZODB replaces the file); prints `size N`
    quit        (or end of input) close and exit
The workload's content is deterministic, as in zrs_primary.py.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zrs_primary  # noqa: E402  (its workload, and its fake clock for tids)

import ZODB  # noqa: E402
import ZODB.FileStorage  # noqa: E402

real_time = time.time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("path")
    p.add_argument("--seed", type=int, default=11)
    args = p.parse_args()
    db = ZODB.DB(ZODB.FileStorage.FileStorage(args.path))
    w = zrs_primary.Workload(db, "mixed", args.seed)
    zrs_primary.say("size %d" % os.path.getsize(args.path))
    for line in sys.stdin:
        words = line.split()
        if words[:1] == ["commit"] and len(words) == 2:
            w.run(int(words[1]))
            zrs_primary.say(
                "committed %r size %d" % (real_time(), os.path.getsize(args.path))
            )
        elif words == ["pack"]:
            # Pack as of the fake clock's "now": everything before is history.
            db.pack(t=zrs_primary.ZODB.BaseStorage.time.now + 1)
            zrs_primary.say("size %d" % os.path.getsize(args.path))
        elif words == ["quit"]:
            break
        else:
            zrs_primary.say("error: unknown command %r" % line)
    w.close()
    db.close()


if __name__ == "__main__":
    main()
