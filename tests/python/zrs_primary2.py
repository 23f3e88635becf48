# -*- coding: utf-8 -*-
"""A real Python 2.7 zc.zrs 3.1.0 primary (Twisted 20.3) over a Data.fs written by ZODB 4.4.5.

Runs under Python 2.7 with the stack .ci/setup-python2 installs (PYTHONPATH=.venv2).

Usage:
    zrs_primary2.py serve PATH [--create N] [--seed S] [--port P] [--stall-in K]
    zrs_primary2.py check SRC DST

serve: (re)build PATH with N transactions first (when --create is given), then serve it on
127.0.0.1:P (0: a free port); prints `port N`, then `size N`; reads `commit K` / `quit`
lines from stdin as tests/python/zrs_primary.py does. --stall-in K: the first stream stops
in the middle of the K-th transaction (after its header and one record header), prints
`stalled K` and sends nothing more on that connection; later connections are served in
full.

check: DST must pass ZODB 4's fstest, hold SRC's transactions (tid, status, user,
description, extension, records), load every object as SRC does, and open as a database
whose root and every folder unpickle. Prints `ok: ...`.

The workload (deterministic: a seeded RNG and a fake clock for tids) has byte-string user
names and descriptions with non-ASCII bytes (UTF-8 and Latin-1), extensions holding every
value type Python 2 can put there (str short and long, unicode with astral characters,
ints of every size, longs, floats, None, bools, tuples, lists, dicts, empty and nested),
new and changed objects, records over 64 KiB, deletions from mappings, undos (backpointers,
and backpointer 0 for undone creations), and transactions with no metadata at all.

Extension values are taken from VALUES, whose every object the module keeps a reference to
(HOLD): an application that builds its extensions from literals and names it keeps. Python 2
memoizes a string in a pickle only when it is referenced twice, so this is what makes the
bytes ZODB 4 writes predictable from the values alone (README, "Python 2 primaries").
"""
from __future__ import print_function

import argparse
import logging
import os
import random
import sys
import threading
import time

import transaction
import ZODB
import ZODB.BaseStorage
import ZODB.FileStorage
from persistent.mapping import PersistentMapping

assert sys.version_info[:2] == (2, 7), "run with Python 2.7"

START = 1704067200.0  # 2024-01-01 00:00:00 UTC


class FakeClock(object):
    """Stands in for the `time` module ZODB's BaseStorage assigns tids from."""

    def __init__(self):
        self.now = START

    gmtime = staticmethod(time.gmtime)

    def time(self):
        self.now += 1.0
        return self.now


ZODB.BaseStorage.time = FakeClock()

VALUES = [
    'byte string', '\x00\xff\x80 raw bytes', 'x' * 300, '', 'a', '\xc3\xa9t\xc3\xa9',
    u'unicode', u'\xfcnic\xf6de \u2713', u'\U0001f600 astral', u'', u'\xe9',
    0, 1, 255, 256, 65535, 65536, -1, -256, 2 ** 31 - 1, -2 ** 31, 2 ** 31, -2 ** 31 - 1,
    2 ** 40, sys.maxint, -sys.maxint - 1,
    0L, 5L, -5L, 2 ** 64, -10 ** 40, 3 ** 150,
    1.5, -0.0, 0.1, 1e300, -2.5e-300, float('inf'), float('-inf'),
    None, True, False,
    (), ('a', u'b', 1, 2L), (('nested', (u'tuple',)),),
    [], [1, 'two', u'three', (4,), [5.0]], [[], {}, ()],
    {}, {'k': 'v', u'\xfc': [1.5, None]}, {'d': {'e': {}}, 'l': [{}], 't': ((),)},
]
HOLD = []


def hold(v):
    """Keep a reference to every object in v."""
    HOLD.append(v)
    if isinstance(v, (list, tuple)):
        for x in v:
            hold(x)
    elif isinstance(v, dict):
        for k, x in v.items():
            hold(k)
            hold(x)


for _v in VALUES:
    hold(_v)
del _v


class Workload(object):
    """Commits transactions of varied shapes, one per `step`."""

    def __init__(self, db, seed):
        self.db = db
        self.rng = random.Random(seed)
        self.tm = transaction.TransactionManager()
        self.conn = db.open(transaction_manager=self.tm)
        self.root = self.conn.root()
        self.count = len(db.undoLog(0, sys.maxint))

    def metadata(self, kind):
        t = self.tm.get()
        i = self.count
        style = i % 5
        if style == 0:
            t.setUser('\xc3\xbcser-%d' % (i % 5))
            t.note('%s #%d: \xc3\xbcn\xc3\xafcode \xe2\x9c\x93' % (kind, i))
            t.setExtendedInfo('kind', KINDS[kind])
            t.setExtendedInfo('value', VALUES[(i // 5) % len(VALUES)])
        elif style == 1:
            t.setUser('plain')
            t.note('caf\xe9 %d' % i)  # Latin-1 bytes, not UTF-8
        elif style == 2:
            t.setExtendedInfo('n', i)
            t.setExtendedInfo('values', VALUES[(i // 5) % len(VALUES)])
            t.setExtendedInfo(u'\xfcn\xefcode', VALUES[(i // 5 + 7) % len(VALUES)])
        elif style == 3:
            t.setExtendedInfo('user_name', KINDS[kind])
            t.setExtendedInfo('description', VALUES[(i // 5 + 3) % len(VALUES)])
            t.setExtendedInfo('size', VALUES[(i // 5 + 11) % len(VALUES)])
            t.setExtendedInfo('tags', VALUES[(i // 5 + 19) % len(VALUES)])
        # style 4: no metadata at all

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
            return self.commit('setup')
        folders = self.folders()
        names = sorted(folders)
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
        if r < 0.8:
            n = self.rng.randrange(1, 2000)
            f = folders[self.rng.choice(names)]
            f['blob'] = ''.join(chr(self.rng.randrange(256)) for _ in range(n))
            return self.commit('bytes')
        if r < 0.9:
            del folders[self.rng.choice(names)]
            return self.commit('delete')
        return self.undo_last()

    def big(self, names):
        if not names:
            self.folders()['big'] = PersistentMapping()
            names = ['big']
        n = 70000 + self.rng.randrange(10000)
        payload = ''.join(chr(self.rng.randrange(256)) for _ in range(n))
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


KINDS = dict((k, k) for k in ['setup', 'create', 'change', 'bytes', 'delete', 'big', 'undo'])
for _k in KINDS:
    hold(_k)


def say(line):
    sys.stdout.write(line + '\n')
    sys.stdout.flush()


def serve(args):
    if args.create is not None:
        for suffix in ('', '.index', '.lock', '.tmp'):
            if os.path.exists(args.path + suffix):
                os.remove(args.path + suffix)
        db = ZODB.DB(ZODB.FileStorage.FileStorage(args.path, create=True))
        w = Workload(db, args.seed)
        w.run(args.create)
        w.close()
        db.close()

    # zc.zrs logs why it closes a connection (a bad handshake, `Too many messages`, an
    # iterator error) only through logging: without a handler those lines are lost, and a
    # test that sees an unexpected reconnect cannot say why.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format='%(asctime)s %(name)s %(levelname)s %(message)s')
    import zc.zrs.primary

    if args.stall_in is not None:
        write = zc.zrs.primary.PrimaryProducer.write
        next_transaction = zc.zrs.primary.FileStorageIterator.next
        here = threading.local()
        armed = [True]

        def counting_next(self):
            trans = next_transaction(self)
            here.transactions = getattr(here, 'transactions', 0) + 1
            here.writes = 0
            return trans

        def stalling_write(self, data):
            here.writes = getattr(here, 'writes', 0) + 1
            if armed[0] and getattr(here, 'transactions', 0) == args.stall_in \
                    and here.writes == 3:
                armed[0] = False
                say('stalled %d' % args.stall_in)
                while not (self.stopped or self.closed):
                    time.sleep(0.01)
            write(self, data)

        zc.zrs.primary.FileStorageIterator.next = counting_next
        zc.zrs.primary.FileStorageIterator.__next__ = counting_next
        zc.zrs.primary.PrimaryProducer.write = stalling_write

    fs = ZODB.FileStorage.FileStorage(args.path)
    primary = zc.zrs.primary.Primary(fs, ('127.0.0.1', args.port))
    deadline = time.time() + 30
    while primary._listener is None:
        if time.time() > deadline:
            sys.exit('zrs_primary2: the primary did not start listening within 30 s')
        time.sleep(0.01)
    say('port %d' % primary._listener.getHost().port)
    say('size %d' % os.path.getsize(args.path))

    db = ZODB.DB(primary)
    w = Workload(db, args.seed + 1)
    for line in iter(sys.stdin.readline, ''):
        words = line.split()
        if words[:1] == ['commit'] and len(words) == 2:
            w.run(int(words[1]))
            say('size %d' % os.path.getsize(args.path))
        elif words == ['quit']:
            break
        else:
            say('error: unknown command %r' % line)
    w.close()
    db.close()


def check(src, dst):
    from ZODB.FileStorage import FileIterator, FileStorage
    from ZODB.POSException import POSKeyError
    from ZODB.scripts import fstest

    def fail(msg):
        sys.exit('zrs_primary2 check: ' + msg)

    with open(dst, 'rb') as f:
        if f.read(4) != 'FS21':
            fail('%s is not an FS21 file' % dst)
    fstest.check(dst)  # raises FormatError on any damage

    def transactions(path):
        it = FileIterator(path)
        out = []
        for txn in it:
            recs = [(r.oid, r.tid, r.data, r.data_txn) for r in txn]
            out.append((txn.tid, txn.status, txn.user, txn.description, txn.extension, recs))
        it.close()
        return out

    a, b = transactions(src), transactions(dst)
    if len(a) != len(b):
        fail('%d transactions in SRC, %d in DST' % (len(a), len(b)))
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            fail('transaction %d (%r) differs' % (i, x[0]))
    with_ext = sum(1 for t in b if t[4])
    fs_src = FileStorage(src, read_only=True)
    fs_dst = FileStorage(dst, read_only=True)
    loaded = 0
    for oid in sorted({r[0] for t in b for r in t[5]}):
        try:
            got = fs_dst.load(oid, '')
        except POSKeyError:
            got = None
        try:
            want = fs_src.load(oid, '')
        except POSKeyError:
            want = None
        if got != want:
            fail('load(%r) differs' % oid)
        loaded += got is not None
    fs_src.close()
    # As an application opens it: the root and every folder unpickle.
    db = ZODB.DB(fs_dst)
    conn = db.open()
    folders = conn.root()['folders']
    for name in sorted(folders):
        dict(folders[name])
    conn.close()
    db.close()
    print('ok: %d transactions (%d with extensions), %d objects loaded, %d folders; fstest ok'
          % (len(b), with_ext, loaded, len(folders)))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest='command')
    s = sub.add_parser('serve')
    s.add_argument('path')
    s.add_argument('--create', type=int)
    s.add_argument('--seed', type=int, default=7)
    s.add_argument('--port', type=int, default=0)
    s.add_argument('--stall-in', type=int)
    c = sub.add_parser('check')
    c.add_argument('src')
    c.add_argument('dst')
    args = p.parse_args()
    if args.command == 'serve':
        serve(args)
    else:
        check(args.src, args.dst)


if __name__ == '__main__':
    main()
