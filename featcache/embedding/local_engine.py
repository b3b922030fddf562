"""Stage one on this machine (`embed`'s default engine): decoder processes feed the model in this process.

Decoding overlaps inference (`batching.py`). Finished videos are written as an immutable shard every few
seconds and the index is committed right after (`cache/`), so a crash loses at most one shard's worth of
embedding and no byte is written twice. `ray_engine.py` is the same work spread over a cluster.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from featcache.cache.settings import settings_record
from featcache.cache.shards import write_shard
from featcache.cache.writer import CacheWriter, WritableCache
from featcache.config import EmbedConfig
from featcache.embedding.batching import decode_videos, embed_decoded_videos
from featcache.embedding.calibration import CALIBRATION_RECORD, Decoded, calibrate_int8
from featcache.embedding.checks import FeatureInformationCheck, ShardBatch
from featcache.embedding.engine import EmbedJob, EngineOutcome
from featcache.embedding.resources import check_embed_memory, decode_workers_for
from featcache.errors import ExtractorError, VideoDecodeError

if TYPE_CHECKING:
    from featcache.extractors.extractor import Extractor

SECONDS_BETWEEN_SHARDS = 10.0  # at most this much embedding is lost to a crash
MAX_VIDEOS_PER_SHARD = 256  # keeps a shard (and the memory it buffers) small for 25088-d features


def build_extractor(config: EmbedConfig) -> Extractor:
    """The model. Keras is imported only here, quietly, and not at all where OpenVINO starts from its compile
    cache (openvino_start.py): an embed with nothing to do, and the Ray engine's driver (its workers build the
    model), start without TensorFlow (~4 s, ~800 MB)."""
    from featcache.extractors.openvino_start import start_extractor

    return start_extractor(config.extractor, config.runtime)


class LocalEngine:
    """Started with the run's config: checks the memory the frames in flight need, then builds the model."""

    def __init__(self, config: EmbedConfig) -> None:
        self.num_decode_workers = decode_workers_for(config)
        check_embed_memory(config, self.num_decode_workers)
        self.extractor = build_extractor(config)
        provenance = self.extractor.provenance
        if config.precision != "f32":
            if self.extractor.openvino_model is None:
                raise ExtractorError(
                    f"--precision {config.precision} runs on OpenVINO, and it cannot run {config.extractor.name} "
                    f"here: {self.extractor.runtime_note or 'Keras was asked for'}"
                )
            provenance = {**provenance, "precision": config.precision}
        self.settings_record = settings_record(provenance, config.sampling, config.dtype)
        self.runtime = self.extractor.runtime
        self.runtime_note = self.extractor.runtime_note
        self.precision_note = ""

    def embed(self, job: EmbedJob, cache: WritableCache) -> EngineOutcome:
        """Decode + model over the job's videos, writing a shard and committing the index every few seconds."""
        # `embed` opened the writer: this engine's model gave the settings record before any video.
        assert cache.writer is not None, "the local engine embeds into an opened writer"
        writer, config = cache.writer, job.config
        batch = ShardBatch(FeatureInformationCheck(config.extractor.name), config.dtype)
        last_shard_time = time.perf_counter()

        def save_shard() -> None:
            nonlocal last_shard_time
            _commit_shard_batch(writer, batch, config, self.extractor.runtime)
            last_shard_time = time.perf_counter()

        decoded = decode_videos(
            job.videos, config.sampling, self.extractor.image_size, self.num_decode_workers, config.decoder
        )
        if config.precision == "int8":
            decoded = self._quantize(decoded, job, writer)
        try:
            for entry, sampled, features_or_error in embed_decoded_videos(decoded, self.extractor, config.batch_size):
                batch.add(entry, sampled, features_or_error, job.fingerprints[entry.relative_path])
                if isinstance(features_or_error, VideoDecodeError):
                    job.on_video_done(entry.relative_path, 0, batch.failures[entry.relative_path])
                else:
                    job.on_video_done(entry.relative_path, len(sampled.frame_indices), None)
                # The time trigger waits for the information check: on a slow (or loaded) machine the first
                # videos can take longer than SECONDS_BETWEEN_SHARDS, and useless features must not become a cache.
                if len(batch.videos) >= MAX_VIDEOS_PER_SHARD or (
                    batch.information_check.checked and time.perf_counter() - last_shard_time > SECONDS_BETWEEN_SHARDS
                ):
                    save_shard()
            batch.finish_checks()
        finally:
            # Also on Ctrl-C or an unexpected error: what is finished is kept for the next run.
            save_shard()
        return EngineOutcome(runtimes=self._runtime_description())

    def _runtime_description(self) -> str:
        note = f" ({self.runtime_note})" if self.runtime_note else ""
        return f"{self.runtime}{note}" + (f", {self.precision_note}" if self.precision_note else "")

    def _quantize(self, decoded: Decoded, job: EmbedJob, writer: CacheWriter) -> Decoded:
        """Quantize the extractor on the run's first frames (calibration.py); a new cache records them."""
        decoded, record = calibrate_int8(
            self.extractor, decoded, job.config, writer.state.settings, job.video_root, self.num_decode_workers
        )
        # Before the first shard: the cache's record names the calibration every shard is embedded with.
        writer.state.settings["extractor"].setdefault(CALIBRATION_RECORD, record)
        num_videos, num_float_layers = len(record["videos"]), len(record.get("float_layers", []))
        self.precision_note = (
            f"int8, calibrated on {record['num_calibration_frames']} frames of {num_videos} "
            f"video{'' if num_videos == 1 else 's'}, "
            f"{num_float_layers} layer{'' if num_float_layers == 1 else 's'} kept in float, "
            f"mean cosine {record['held_out_mean_cosine']:.4f} to f32 on {record['num_held_out_frames']} held out"
        )
        return decoded


def _commit_shard_batch(writer: CacheWriter, batch: ShardBatch, config: EmbedConfig, runtime: str) -> None:
    """Write the batch's videos as one shard, list it and its failures in the index, commit; empty the batch."""
    if batch.videos:
        writer.adopt_shard(
            write_shard(
                writer.shard_folder,
                batch.videos,
                config.dtype,
                writer.state.settings,
                writer.state.compression,
                runtime=runtime,
            )
        )
    writer.state.failures.update(batch.failures)
    if batch.videos or batch.failures:
        writer.commit()
    batch.clear()
