#!/bin/sh
# The embed fuzz test (tests/test_fuzz_embed.py) at nightly size: 2000 examples instead of the suite's 12
# (2000 in 297 s on a 2-core AMD EPYC, 2026-12-07; 300 had not found the open quote a later 2000 found).
# Run from the repository root; extra arguments go to pytest (--hypothesis-show-statistics counts examples).
set -e
FEATCACHE_FUZZ_EXAMPLES="${FEATCACHE_FUZZ_EXAMPLES:-2000}" exec python3 -m pytest tests/test_fuzz_embed.py -q -p no:cacheprovider "$@"
