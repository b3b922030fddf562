"""What every embed engine does with each embedded video before it goes into a shard.

The same on the local engine (`local_engine.py`) and on Ray workers (`ray_engine.py`): decode failures are
named by relative path, features that float16 cannot hold or that carry no information are refused,
and a finished video becomes a `ShardVideo`.
"""

from __future__ import annotations

import numpy as np

from featcache.cache.shards import ShardVideo
from featcache.errors import InputError, VideoDecodeError
from featcache.video.decode import SampledFrames
from featcache.video.find import VideoEntry
from featcache.video.fingerprints import FileFingerprint


class ShardBatch:
    """The videos finished (and failed) since the last shard, each checked on the way in."""

    def __init__(self, information_check: FeatureInformationCheck, dtype: str) -> None:
        self.information_check = information_check
        self.dtype = dtype
        self.videos: list[ShardVideo] = []
        self.failures: dict[str, str] = {}  # relative path -> reason

    def add(
        self,
        entry: VideoEntry,
        sampled: SampledFrames | None,
        features_or_error: np.ndarray | VideoDecodeError,
        fingerprint: FileFingerprint,
    ) -> None:
        """Take one result of `batching.embed_decoded_videos`;
        raises InputError (and drops the batch) for useless features."""
        if isinstance(features_or_error, VideoDecodeError):
            # The cache names videos by relative path; the absolute path in the message is noise there.
            self.failures[entry.relative_path] = str(features_or_error).removeprefix(f"{entry.path}: ")
            return
        check_features_fit_dtype(features_or_error, self.dtype, entry.relative_path)
        try:
            self.information_check.add(features_or_error)
        except InputError:
            self.videos.clear()  # features without information are not worth a shard
            raise
        self.videos.append(shard_video(entry, sampled, features_or_error, fingerprint))

    def finish_checks(self) -> None:
        """Run the information check on what it has seen (fewer videos than it waits for); raises InputError."""
        try:
            self.information_check.finish()
        except InputError:
            self.videos.clear()
            raise

    def clear(self) -> None:
        self.videos.clear()
        self.failures.clear()


def shard_video(
    entry: VideoEntry, sampled: SampledFrames, features: np.ndarray, fingerprint: FileFingerprint
) -> ShardVideo:
    return ShardVideo(
        path=entry.relative_path,
        label=entry.label,
        group=entry.group,
        fingerprint=fingerprint.fingerprint,
        features=features,
        frame_indices=np.asarray(sampled.frame_indices, dtype=np.int32),
        timestamps_ms=np.asarray(sampled.timestamps_ms, dtype=np.float32),
        video_fps=float(sampled.video_fps),
        video_num_frames=int(sampled.video_num_frames),
        video_width=int(sampled.video_width),
        video_height=int(sampled.video_height),
        file_mtime_ns=fingerprint.mtime_ns,
        decoder=sampled.describe_decoder(),
    )


class FeatureInformationCheck:
    """Refuses features that carry no information, once the first few videos are embedded, not after hours.

    Two ways this happens, both seen: randomly initialised MobileNetV2 (BatchNorm with untrained statistics)
    outputs values near 1e-11 for every input, and a broken model can output one constant vector; every head
    trained on such features sits exactly at chance. Checked over NUM_VIDEOS videos (or all, if fewer, and
    at least 2 for "constant": one static video may well give one vector).
    """

    NUM_VIDEOS = 8
    # float16's smallest normal number: features all below it are noise-level in either dtype.
    SMALLEST_USEFUL = float(np.finfo(np.float16).smallest_normal)

    def __init__(self, extractor_name: str) -> None:
        self.extractor_name = extractor_name
        self.seen: list[np.ndarray] = []
        self.checked = False

    def add(self, features: np.ndarray) -> None:
        if not self.checked:
            self.seen.append(features)
            if len(self.seen) >= self.NUM_VIDEOS:
                self.finish()

    def finish(self) -> None:
        if self.checked or not self.seen:
            return
        self.checked = True
        stacked = np.concatenate(self.seen)
        advice = (
            f"the extractor ({self.extractor_name}) gives features without information, "
            "and every head trained on them would sit at chance. "
            "Use real weights (--weights imagenet, or a file from `featcache weights fetch mobilenet_v2 --out FILE` "
            "on a machine with network), or --extractor scratch_cnn --weights random for a network-free try-out; "
            "re-run with --overwrite (or another --out)"
        )
        peak = float(np.abs(stacked).max())
        if peak < self.SMALLEST_USEFUL:
            raise InputError(
                f"the first {len(self.seen)} videos' features all lie below {self.SMALLEST_USEFUL:.2g} "
                f"(peak {peak:.3g}): {advice}"
            )
        if len(self.seen) >= 2 and float(np.ptp(stacked, axis=0).max()) == 0.0:
            raise InputError(f"every frame of the first {len(self.seen)} videos has the same feature vector: {advice}")


def check_features_fit_dtype(features: np.ndarray, dtype: str, video_path: str) -> None:
    """Refuse features that float16 would turn into infinities (features too small to matter at all are
    FeatureInformationCheck's: they carry no information in float32 either)."""
    if dtype != "float16":
        return
    peak = float(np.abs(features).max())
    limits = np.finfo(np.float16)
    if peak > limits.max:
        raise InputError(
            f"{video_path}: features reach {peak:.3g}, beyond float16's range ({limits.max:.0f}); "
            "use --dtype float32 (with --overwrite if videos are already embedded)"
        )
