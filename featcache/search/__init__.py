"""Answers from a cache without training: nearest videos and near-duplicate leakage across a split.

pooled.py    one L2-normalized, length-masked mean vector per video, read from the cache block by block
neighbors.py exact cosine top-k in numpy, blockwise; a cache searched by a video in it, a new file or a vector
audit.py     pairs across a split (train/val vs test) nearer than a threshold, exact copies first

Imports nothing from here on purpose: `featcache.training` imports these modules, so this package must stay
below it (tests/test_architecture.py).
"""
