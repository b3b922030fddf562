"""The torch format of `featcache.dataset`: imports torch, so only loaded when that format is asked for."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from featcache.cache import CacheIndex, FeatureReader
from featcache.errors import InputError
from featcache.training.batches import read_videos

try:
    import torch
    from torch.utils.data import Dataset
except ImportError as err:  # a clear message instead of a bare ModuleNotFoundError deep in a call
    raise InputError("format='torch' needs PyTorch: `pip install torch`, or use format='numpy'") from err


class CacheTorchDataset(Dataset):
    """Map-style: item i is (features float32 (T, D), length int64 (), label int64 ()) of the subset's i-th video.

    The HDF5 file is opened on first use in each process (DataLoader workers get their own handle: h5py handles
    do not survive a fork). With clip_sampling "random", item i's clip is drawn afresh at every access.
    """

    def __init__(self, index: CacheIndex, rows: np.ndarray, frames: int | None, clip_sampling: str, seed: int) -> None:
        self.index = index
        self.rows = np.asarray(rows, dtype=np.int64)
        self.frames = frames
        self.clip_sampling = clip_sampling
        self.seed = seed
        self.class_names = list(index.class_names)
        self._reader: FeatureReader | None = None
        self._reader_pid: int | None = None
        self._rng: np.random.Generator | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, position: int):
        if self._reader is None or self._reader_pid != os.getpid():
            self._reader = FeatureReader(Path(self.index.path)).__enter__()
            self._reader_pid = os.getpid()
            worker = torch.utils.data.get_worker_info()
            # One stream per DataLoader worker, reproducible for a given seed and number of workers.
            self._rng = np.random.default_rng([self.seed, 0 if worker is None else worker.id + 1])
        row = self.rows[position : position + 1]
        features, lengths = read_videos(self._reader, self.index, row, self.frames or 0, self.clip_sampling, self._rng)
        label = int(self.index.labels[row[0]])
        return torch.from_numpy(features[0]), torch.tensor(int(lengths[0])), torch.tensor(label)

    def __getstate__(self) -> dict:
        # An open h5py handle cannot be pickled (spawned DataLoader workers); each process opens its own.
        return {**self.__dict__, "_reader": None, "_reader_pid": None, "_rng": None}
