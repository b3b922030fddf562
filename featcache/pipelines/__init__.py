"""Pipelines: one declarative TOML file runs data -> embed -> train each head -> evaluate -> one report table.

A pipeline file (the shipped ones are in the top-level pipelines/ folder, installed with the package as
featcache/shipped_pipelines/):

    description = "UCF101 PlayingCello/Guitar/Violin, MobileNetV2 (ImageNet), LSTM(512) -> Dense(128)"

    [data]                       # exactly one of video_root or demo
    video_root = "data/UCF101"   # ROOT/<ClassName>/<video>, or a CSV list path,label[,group]
    classes = ["PlayingCello", "PlayingGuitar", "PlayingViolin"]   # optional: only these class folders

    [embed]                      # the options of `featcache embed`, spelled with underscores
    extractor = "mobilenet_v2"
    frames = 10
    image_size = 224

    [[heads]]                    # one table per head: the head options of `featcache train`, plus a name
    name = "lstm512"
    units = 512
    dense = 128

    [train]                      # the training options of `featcache train`, shared by every head
    epochs = 10

    [evaluate]                   # the options of `featcache evaluate`
    subset = "test"

Keys are the CLI's option names with underscores (`--image-size` -> image_size, `--recurrent-dropout` ->
recurrent_dropout) and are turned into the same frozen configs the CLI builds (EmbedConfig, HeadConfig,
TrainConfig): their fields and types are the schema, so an unknown key or a wrong type is an error naming
the key and the file, raised before anything runs. `[data] demo = { videos_per_class = 24, ... }` takes
the arguments of `featcache.video.demo_data.make_demo_data` instead of a video root.

Relative paths (video_root, split_file, a weights file, tensorboard, out) are taken from the pipeline
file's folder; for a shipped pipeline given by name, which lives inside the installed package, from the
current directory.

OUT (`--out`, else the pipeline's `out`, else runs/<pipeline name>) holds:
  pipeline.toml   the pipeline that ran
  videos/         the demo videos, or a view of the chosen class folders (symlinks into video_root)
  features.h5     the feature cache
  models/<head>/  one model folder per head, its evaluation in models/<head>/evaluation/features/
  report.txt      the report table; report.json the same rows

Each stage is skipped when its output is there and matches: embed resumes and embeds only missing videos
(and refuses a cache made with other settings unless overwrite); a head is retrained only when its model
folder is missing or unfinished, or its featcache.json differs from the pipeline in head settings,
training settings, cache path, number of cached videos, class names or embedding settings (extractor,
sampling, dtype), or when this run embedded new videos; evaluation always re-runs.

The code is split by stage: spec (the pipeline dataclasses, reading and validating a file; schema turns
TOML values into config fields), runner (data, embed, train, evaluate, with stage skipping), summary (what
a run did, per head) and report (the report table and files). This module is the public surface.
"""

from featcache.pipelines.report import format_report_table, write_report
from featcache.pipelines.runner import (
    CACHE_FILE_NAME,
    MODELS_FOLDER_NAME,
    UCF101_HELP,
    UCF101_URL,
    VIDEOS_FOLDER_NAME,
    Progress,
    link_class_folders,
    run_pipeline,
)
from featcache.pipelines.spec import (
    DEFAULT_RUNS_DIR,
    EMBED_OPTION_FIELDS,
    EVALUATE_SUBSETS,
    HEAD_OPTION_FIELDS,
    PIPELINE_SUFFIX,
    TOP_LEVEL_KEYS,
    TRAIN_OPTION_FIELDS,
    DataConfig,
    EvaluateConfig,
    HeadSpec,
    Pipeline,
    available_pipelines,
    load_pipeline,
    pipeline_from_dict,
    read_pipeline_file,
    with_video_root,
)
from featcache.pipelines.summary import HeadOutcome, PipelineSummary

# SHIPPED_PIPELINES_DIR is deliberately not re-exported: available_pipelines reads it from
# featcache.pipelines.spec, so that is the name to read or to patch.

__all__ = [
    "CACHE_FILE_NAME",
    "DEFAULT_RUNS_DIR",
    "EMBED_OPTION_FIELDS",
    "EVALUATE_SUBSETS",
    "MODELS_FOLDER_NAME",
    "PIPELINE_SUFFIX",
    "TOP_LEVEL_KEYS",
    "HEAD_OPTION_FIELDS",
    "TRAIN_OPTION_FIELDS",
    "UCF101_HELP",
    "UCF101_URL",
    "VIDEOS_FOLDER_NAME",
    "DataConfig",
    "EvaluateConfig",
    "HeadOutcome",
    "HeadSpec",
    "Pipeline",
    "PipelineSummary",
    "Progress",
    "available_pipelines",
    "format_report_table",
    "link_class_folders",
    "load_pipeline",
    "pipeline_from_dict",
    "read_pipeline_file",
    "run_pipeline",
    "with_video_root",
    "write_report",
]
