"""Python 2.7's side of `cargo bench --bench pickle -- "py2 extension"`: ZODB 4's
`dumps(ext, 1)` (zodbpickle.fastpickle) on the same extensions, decoded from the same
`T` messages of tests/fixtures/pickles/extension_py2.txt. Best of 5 `timeit` runs.

    PYTHONPATH=.venv2 ~/.pyenv/versions/2.7.18/bin/python benches/py2_extension_python.py
"""
import binascii
import cPickle
import os
import timeit

import zodbpickle.fastpickle

HERE = os.path.dirname(os.path.abspath(__file__))
rows = {}
for line in open(os.path.join(HERE, '..', 'tests', 'fixtures', 'pickles', 'extension_py2.txt')):
    if line.startswith('#'):
        continue
    name, identity, wire, stored = line.rstrip('\n').split('\t')
    if identity == 'referenced':
        rows[name] = cPickle.loads(binascii.unhexlify(wire))[1][4]
for name in ['note', 'zope_like', 'ints', 'dict_1001']:
    ext = rows[name]
    n = 20000 if name != 'dict_1001' else 500
    best = min(timeit.repeat(lambda: zodbpickle.fastpickle.dumps(ext, 1), number=n, repeat=5))
    print('%-10s %8.2f us' % (name, best / n * 1e6))
