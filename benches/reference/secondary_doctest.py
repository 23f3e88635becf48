"""Times the reference: zc.zrs's own secondary.test doctest under its test reactor.

This is what `zrs-sim run scenarios/secondary.scn` reproduces; BENCHMARKS.md puts the two
side by side. Needs zc.zrs 3.1.0's test dependencies (zope.testing, mock) and its source
tree (for secondary.test and tests.py): `pip download --no-deps zc.zrs` and unpack it.

    python benches/reference/secondary_doctest.py /path/to/zc.zrs-3.1.0/src [rounds]
"""
import doctest
import os
import re
import sys
import tempfile
import time
import unittest

src = sys.argv[1]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 20
sys.path.insert(0, src)

import zc.zrs.secondary  # noqa: E402
import zc.zrs.tests as tests  # noqa: E402
from zope.testing import renormalizing, setupstack  # noqa: E402
from ZODB._compat import dumps, _protocol  # noqa: E402

# zc.zrs 3.1.0's secondary predates ZODB 5.6, whose BaseStorage.tpc_begin reads
# `transaction.extension_bytes`; without it every replicated transaction is an input error.
# The shim is what ZODB's own TransactionMetaData does: the extension pickled, or b''.
zc.zrs.secondary.Transaction.extension_bytes = property(
    lambda self: dumps(self.extension, _protocol) if self.extension else b'')

checker = renormalizing.RENormalizing([
    (re.compile(' (instance|object) at 0x[a-fA-F0-9]+'), ''),
    (re.compile(r"b'"), "'"),
])


def suite():
    return doctest.DocFileSuite(
        'secondary.test', package='zc.zrs',
        setUp=tests.setUp, tearDown=setupstack.tearDown, checker=checker,
        optionflags=doctest.NORMALIZE_WHITESPACE | doctest.IGNORE_EXCEPTION_DETAIL)


os.chdir(tempfile.mkdtemp())
times = []
for _ in range(rounds):
    result = unittest.TestResult()
    t0 = time.perf_counter()
    suite().run(result)
    times.append(time.perf_counter() - t0)
    if result.failures or result.errors:
        # Python 3 prints b'...' reprs where the Python 2 transcript has '...': the checker
        # above folds those; anything else failing is reported, not hidden.
        print("doctest failures:", len(result.failures), len(result.errors), file=sys.stderr)
times.sort()
print("secondary.test doctest: best %.2f ms, median %.2f ms over %d rounds"
      % (times[0] * 1e3, times[len(times) // 2] * 1e3, rounds))
