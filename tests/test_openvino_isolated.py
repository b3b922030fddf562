"""The OpenVINO tests (tests/test_openvino_runtime.py, tests/test_openvino_int8.py) in a pytest process of their
own: see ISOLATED_TEST_FILES in tests/conftest.py for why. Their own output is shown when they fail."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ISOLATED_TEST_FILES, ISOLATION_VARIABLE

TESTS_DIR = Path(__file__).resolve().parent


def test_the_openvino_tests_pass_in_a_process_of_their_own() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-o", "addopts=", "-q", "-p", "no:cacheprovider", *ISOLATED_TEST_FILES],
        cwd=TESTS_DIR,
        env={**os.environ, ISOLATION_VARIABLE: "1"},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    # pytest's exit status: 0 all passed (skips included), 1 a failure, 5 nothing collected; each but 0 fails here.
    assert completed.returncode == 0, completed.stdout[-8000:] + completed.stderr[-2000:]
    assert " passed" in completed.stdout
    assert " skipped" not in completed.stdout, completed.stdout[-8000:]  # a skipped check is a defect here
