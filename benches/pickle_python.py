# Python side of benches/pickle.rs: pickle.loads (CPython C unpickler) on the same fixtures.
# Run from the repository root: $ZRS_PYTHON benches/pickle_python.py
import binascii, pickle, timeit, sys
rows = {}
for line in open('tests/fixtures/pickles/messages_py3.txt'):
    if line.startswith('#'): continue
    c = line.rstrip('\n').split('\t'); rows[c[0]] = binascii.unhexlify(c[1])
for label, name in [("T (empty user, no extension)", "T_tid0_nouser_empty_p1_fast"),
                    ("T (user, description, extension)", "T_tid0_nonascii_unicode_p1_fast"),
                    ("S", "S_oid1_backptr_p1_fast"), ("C", "C_digest_p1_fast")]:
    data = rows[name]
    t = timeit.Timer(lambda: pickle.loads(data))
    n, _ = t.autorange()
    best = min(t.repeat(5, n)) / n
    print("%-36s %4d bytes  %.3f us  %.0f msg/s" % (label, len(data), best * 1e6, 1 / best))
