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

What this script shares with zrs_primary.py (the clock, the workload's skeleton, serving and
the stdin protocol) is in primary_harness.py, and with check_datafs.py (comparing the two
files) in datafs_compare.py; the Python 2 workload's own parts are here.
"""
from __future__ import print_function

import argparse
import sys

import ZODB
import ZODB.FileStorage

import datafs_compare
import primary_harness
from primary_harness import recreate

assert sys.version_info[:2] == (2, 7), "run with Python 2.7"

primary_harness.use_fake_clock()

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


class Workload(primary_harness.Workload):
    """The shared workload with Python 2 metadata: byte strings with non-ASCII bytes, and
    extensions from VALUES."""

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

    def random_bytes(self, n):
        return ''.join(chr(self.rng.randrange(256)) for _ in range(n))

    def put_bytes(self, folders, names):
        # The folder is drawn before the bytes are (zrs_primary.py draws the other way):
        # the files, and the committed captures, depend on the order of the draws.
        n = self.rng.randrange(1, 2000)
        f = folders[self.rng.choice(names)]
        f['blob'] = self.random_bytes(n)


KINDS = dict((k, k) for k in ['setup', 'create', 'change', 'bytes', 'delete', 'big', 'undo'])
for _k in KINDS:
    hold(_k)


def serve(args):
    if args.create is not None:
        recreate(args.path)
        db = ZODB.DB(ZODB.FileStorage.FileStorage(args.path, create=True))
        w = Workload(db, args.seed)
        w.run(args.create)
        w.close()
        db.close()
    primary_harness.serve(
        'zrs_primary2', args.path, lambda: ZODB.FileStorage.FileStorage(args.path), args.port,
        lambda db: Workload(db, args.seed + 1), stall_in=args.stall_in)


def check(src, dst):
    from ZODB.FileStorage import FileStorage

    def fail(msg):
        sys.exit('zrs_primary2 check: ' + msg)

    with open(dst, 'rb') as f:
        if f.read(4) != 'FS21':
            fail('%s is not an FS21 file' % dst)
    b = datafs_compare.check_transactions(src, dst, 'extension', fail)
    with_ext = sum(1 for t in b if t[4])
    fs_src = FileStorage(src, read_only=True)
    fs_dst = FileStorage(dst, read_only=True)
    loaded = datafs_compare.check_loads(b, fs_dst.load, fs_src.load, fail)
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
