"""What the two zc.zrs primary harnesses share: zrs_primary.py (Python 3, ZODB 6) and
zrs_primary2.py (Python 2.7, ZODB 4.4.5) import it, so it is written in the subset of Python
both run.

- `use_fake_clock`: transaction ids from a fake clock, so the same arguments give the same file;
- `Workload`: the skeleton of the deterministic workload (setup, fixed points for records
  over 64 KiB and undos, then a seeded draw of creations, changes, byte strings, deletions
  and undos). Each script's subclass gives what is its own: the transaction metadata, how it
  draws random bytes, and any extra steps (Python 3: OOBTrees, blobs);
- `recreate`: remove a Data.fs and its side files before building it again;
- `serve`: run a zc.zrs `Primary` on 127.0.0.1 over the storage, print `port N` and `size N`,
  then obey `commit K` / `quit` lines from stdin; optionally pace its writes (`throttle`) or
  stop its first stream in the middle of a transaction (`stall_in`), as each script's
  docstring describes.

The scripts' command lines, output lines and files are theirs; this module only holds the
logic that was the same in both. Native string literals here are `str` in each Python
(bytes in 2, text in 3), as they were in each script: the pickles, and so the committed
captures in tests/fixtures/capture, depend on it.
"""
import logging
import os
import random
import sys
import threading
import time

import transaction
import ZODB
import ZODB.BaseStorage
from persistent.mapping import PersistentMapping

START = 1704067200.0  # 2024-01-01 00:00:00 UTC


class FakeClock(object):
    """Stands in for the `time` module ZODB's BaseStorage assigns tids from."""

    def __init__(self):
        self.now = START

    gmtime = staticmethod(time.gmtime)

    def time(self):
        self.now += 1.0
        return self.now


def use_fake_clock():
    """Each transaction gets the next second from 2024-01-01 UTC as its tid's time (ZODB
    takes tids from time.time())."""
    ZODB.BaseStorage.time = FakeClock()


def say(line):
    sys.stdout.write(line + '\n')
    sys.stdout.flush()


def recreate(path):
    """Remove the FileStorage at path and its side files, if any."""
    for suffix in ('', '.index', '.lock', '.tmp'):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)


class Workload(object):
    """Commits transactions of varied shapes, one per `step`.

    Subclasses give `metadata(kind)` (set the current transaction's user, description and
    extension), `random_bytes(n)` and `put_bytes(folders, names)`; they may give
    `more_roots`, `own_fixed_step` and `own_random_step`.
    """

    def __init__(self, db, seed):
        self.db = db
        self.rng = random.Random(seed)
        self.tm = transaction.TransactionManager()
        self.conn = db.open(transaction_manager=self.tm)
        self.root = self.conn.root()
        self.count = len(db.undoLog(0, sys.maxsize))

    def more_roots(self):
        """Called in the setup transaction: add the script's own root objects."""

    def own_fixed_step(self, i):
        """A step of the script's own at fixed points; returns whether it committed one."""
        return False

    def own_random_step(self, i):
        """A step of the script's own for draws in [0.6, 0.7); returns whether it committed
        one (otherwise the draw counts as a byte-string change)."""
        return False

    def commit(self, kind):
        self.metadata(kind)
        self.tm.commit()
        self.count += 1

    def folders(self):
        return self.root['folders']

    def step(self):
        i = self.count
        if 'folders' not in self.root:
            self.root['folders'] = PersistentMapping()
            self.more_roots()
            return self.commit('setup')
        folders = self.folders()
        names = sorted(folders)
        # Fixed points so that even a short run has each shape.
        if self.own_fixed_step(i):
            return
        if i % 50 == 5:
            return self.big(names)
        if i % 10 == 8:
            return self.undo_last()
        r = self.rng.random()
        if r < 0.3 or not names:
            name = 'f%d' % i
            folders[name] = PersistentMapping({'n': i, 'name': u'f\xf6lder %d' % i})
            return self.commit('create')
        if r < 0.6:
            f = folders[self.rng.choice(names)]
            f['v'] = self.rng.randrange(10 ** 6)
            f['note'] = u'\xfcn\xefcode %d' % self.rng.randrange(100)
            return self.commit('change')
        if r < 0.7 and self.own_random_step(i):
            return
        if r < 0.8:
            self.put_bytes(folders, names)
            return self.commit('bytes')
        if r < 0.9:
            del folders[self.rng.choice(names)]
            return self.commit('delete')
        return self.undo_last()

    def big(self, names):
        if not names:
            self.folders()['big'] = PersistentMapping()
            names = ['big']
        payload = self.random_bytes(70000 + self.rng.randrange(10000))
        self.folders()[self.rng.choice(names)]['big'] = PersistentMapping({'payload': payload})
        self.commit('big')

    def undo_last(self):
        # The last transaction is always undoable. Undoing a creation writes backpointer 0
        # for the new object; anything else, backpointers to the earlier data.
        entry = self.db.undoLog(0, 1)[0]
        self.db.undo(entry['id'], self.tm.get())
        self.commit('undo')

    def run(self, n):
        for _ in range(n):
            self.step()

    def close(self):
        self.conn.close()


def pace_and_stall(throttle, stall_in):
    """Patch zc.zrs's producer: sleep `throttle` seconds before each message it sends, and,
    when `stall_in` is K, stop the first stream after the K-th transaction's T and first S
    message (its third write), print `stalled K`, and send nothing more on that connection
    until it ends or the primary quits."""
    import zc.zrs.primary

    write = zc.zrs.primary.PrimaryProducer.write
    next_transaction = zc.zrs.primary.FileStorageIterator.__next__
    # Each connection's producer thread iterates and writes: count per thread.
    here = threading.local()
    armed = [stall_in is not None]

    def counting_next(self):
        trans = next_transaction(self)
        here.transactions = getattr(here, 'transactions', 0) + 1
        here.writes = 0
        return trans

    def paced_write(self, data):
        if throttle > 0:
            time.sleep(throttle)
        here.writes = getattr(here, 'writes', 0) + 1
        if armed[0] and getattr(here, 'transactions', 0) == stall_in and here.writes == 3:
            armed[0] = False
            say('stalled %d' % stall_in)
            while not (self.stopped or self.closed):
                time.sleep(0.01)
        write(self, data)

    # Python 2 iterates through `next`, Python 3 through `__next__`; zc.zrs names both.
    zc.zrs.primary.FileStorageIterator.next = counting_next
    zc.zrs.primary.FileStorageIterator.__next__ = counting_next
    zc.zrs.primary.PrimaryProducer.write = paced_write


def serve(name, path, open_storage, port, make_workload, throttle=0.0, stall_in=None):
    """Serve `open_storage()` (the FileStorage at `path`, or a storage around it) with a
    zc.zrs Primary on 127.0.0.1:`port` until `quit` or the end of stdin; `commit K` lines
    commit K transactions of `make_workload(db)` through it. `name` is the script's, for
    its error message."""
    # zc.zrs logs why it closes a connection (a bad handshake, `Too many messages`, an
    # iterator error) only through logging: without a handler those lines are lost, and a
    # test that sees an unexpected reconnect cannot say why.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format='%(asctime)s %(name)s %(levelname)s %(message)s')
    import zc.zrs.primary

    if throttle > 0 or stall_in is not None:
        pace_and_stall(throttle, stall_in)

    primary = zc.zrs.primary.Primary(open_storage(), ('127.0.0.1', port))
    deadline = time.time() + 30
    while primary._listener is None:
        if time.time() > deadline:
            sys.exit('%s: the primary did not start listening within 30 s' % name)
        time.sleep(0.01)
    say('port %d' % primary._listener.getHost().port)
    say('size %d' % os.path.getsize(path))

    db = ZODB.DB(primary)
    w = make_workload(db)
    # readline, not `for line in sys.stdin`: Python 2's file iterator reads ahead, and
    # would hold a `commit K` until more input comes.
    for line in iter(sys.stdin.readline, ''):
        words = line.split()
        if words[:1] == ['commit'] and len(words) == 2:
            w.run(int(words[1]))
            say('size %d' % os.path.getsize(path))
        elif words == ['quit']:
            break
        else:
            say('error: unknown command %r' % line)
    w.close()
    db.close()
