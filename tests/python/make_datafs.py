"""Write a Data.fs with real Python ZODB, exercising what a FileStorage can hold.

Usage: make_datafs.py PATH [N_TRANSACTIONS] [SEED]

N_TRANSACTIONS (default 1100) is the number of transactions the final file holds (a
few more where the last step is an undo of a creation).

The file gets (in this order): nested persistent objects (mappings of mappings, lists,
OOBTrees), many overwrites, user / description / extension metadata (unicode too, and
some transactions with none), records over 64 KiB, undo transactions (backpointers, and
undone creations: backpointer 0), then a pack (status 'p' for the packed region), then
more transactions and undos after the pack. Content is drawn from a seeded RNG; tids come
from the clock, as ZODB assigns them.
"""
import random
import sys
import time

import BTrees.OOBTree
import transaction
import ZODB
import ZODB.FileStorage
from persistent.list import PersistentList
from persistent.mapping import PersistentMapping
from ZODB.POSException import UndoError


def main():
    path = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 1100
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 42)
    storage = ZODB.FileStorage.FileStorage(path, create=True)
    db = ZODB.DB(storage)
    tm = transaction.TransactionManager()
    conn = db.open(transaction_manager=tm)
    root = conn.root()
    count = [0]

    def commit(kind):
        t = tm.get()
        i = count[0]
        count[0] += 1
        style = i % 5
        if style == 0:
            t.setUser("zrs-üser-%d" % (i % 7))
            t.note("%s #%d: ünïcode ✓ description" % (kind, i))
            t.setExtendedInfo("kind", kind)
            t.setExtendedInfo("n", i)
            t.setExtendedInfo("ünïcode", "välue ✓")
        elif style == 1:
            t.setUser("plain")
            t.note("%s #%d" % (kind, i))
        elif style == 2:
            t.setExtendedInfo("float", i / 3.0)
            t.setExtendedInfo("nested", {"list": [1, 2, i], "bytes": b"\x00\xff"})
        elif style == 3:
            t.note("x" * (i % 300))
        # style 4: no metadata at all (empty user, description and extension)
        tm.commit()

    folders = PersistentMapping()
    root["folders"] = folders
    root["tree"] = BTrees.OOBTree.OOBTree()
    root["log"] = PersistentList()
    commit("setup")

    def mutate(kind):
        r = rng.random()
        if r < 0.25 or not folders:
            name = "f%d" % len(folders)
            f = PersistentMapping()
            f["items"] = PersistentList([PersistentMapping({"v": j}) for j in range(rng.randrange(1, 4))])
            f["meta"] = PersistentMapping({"created": len(folders)})
            folders[name] = f
        elif r < 0.55:
            f = folders[rng.choice(sorted(folders))]
            items = f["items"]
            if items:
                items[rng.randrange(len(items))]["v"] = rng.randrange(10**6)
            f["meta"]["touched"] = rng.randrange(1000)
        elif r < 0.75:
            tree = root["tree"]
            for _ in range(rng.randrange(1, 20)):
                tree["k%05d" % rng.randrange(3000)] = rng.randbytes(rng.randrange(1, 64))
        elif r < 0.80:
            # A record well over 64 KiB.
            big = PersistentMapping({"payload": rng.randbytes(70_000 + rng.randrange(60_000))})
            folders[rng.choice(sorted(folders))]["big"] = big
        elif r < 0.90:
            f = folders[rng.choice(sorted(folders))]
            f["meta"]["touched"] = rng.randrange(1000)
            f["meta"]["note"] = "ünïcode %d" % rng.randrange(100)
        else:
            root["log"].append(rng.randrange(10**9))
        commit(kind)

    def undo_some(kind):
        # Undo a recent undoable transaction; skip those that conflict.
        log = db.undoLog(0, 30)
        rng.shuffle(log)
        for entry in log[:5]:
            try:
                db.undo(entry["id"], tm.get())
                commit(kind)
                return True
            except UndoError:
                tm.abort()
        return False

    def undone_creation(kind):
        # Create an object in its own transaction, then undo it: the undo writes a
        # backpointer for the folder and backpointer 0 for the new object.
        name = "doomed%d" % count[0]
        folders[name] = PersistentMapping({"x": 1})
        commit(kind)
        log = db.undoLog(0, 1)
        db.undo(log[0]["id"], tm.get())
        commit(kind + "-undo-creation")

    before_pack = n // 2
    while count[0] < before_pack:
        r = rng.random()
        if r < 0.08:
            undo_some("undo")
        elif r < 0.10:
            undone_creation("create")
        else:
            mutate("change")

    time.sleep(0.05)
    db.pack(time.time())
    time.sleep(0.05)

    # The pack dropped transactions; write enough more for n in the file.
    in_file = sum(1 for _ in storage.iterator())
    target = count[0] + (n - in_file)
    while count[0] < target:
        r = rng.random()
        if r < 0.08:
            undo_some("undo-after-pack")
        elif r < 0.10:
            undone_creation("create-after-pack")
        else:
            mutate("after-pack")

    conn.close()
    db.close()


if __name__ == "__main__":
    main()
