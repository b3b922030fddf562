#!/bin/sh
# The embed fuzz test (tests/test_fuzz_embed.py) at nightly size: 300 examples instead of the suite's 12
# (about 15 minutes on a 2-core CPU). Run from the repository root; extra arguments go to pytest.
set -e
FEATCACHE_FUZZ_EXAMPLES="${FEATCACHE_FUZZ_EXAMPLES:-300}" exec python3 -m pytest tests/test_fuzz_embed.py -q -p no:cacheprovider "$@"
