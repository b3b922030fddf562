# Benchmarks (see BENCHMARKS.md); the test suite is `python -m pytest`.
PYTHON ?= python

.PHONY: bench bench-quick gpu-wheels

# The whole suite on this machine (~15 minutes on 2 cores): writes BENCHMARKS.md and benchmarks/results/benchmarks.png.
bench:
	$(PYTHON) -m benchmarks

# Every section at tiny sizes (what tests/test_benchmarks.py runs); the report goes to the system temp dir.
bench-quick:
	$(PYTHON) -m benchmarks --quick

# Wheels that benchmarks/gpu.sh installs on a GPU machine without Keras (Python 3.12, x86-64): Keras and the
# two of its requirements that machine lacks. `.whl/` is git-ignored; carry it with the device tool.
gpu-wheels:
	$(PYTHON) -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
		--platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl keras==3.15.1 namex optree
