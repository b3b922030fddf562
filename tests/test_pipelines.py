"""Pipelines: validation before anything runs, the shipped pipelines, missing data, stage skipping, `featcache run`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from featcache.cli import app
from featcache.errors import FeatcacheError, InputError
from featcache.pipelines import (
    EMBED_OPTION_FIELDS,
    HEAD_OPTION_FIELDS,
    TRAIN_OPTION_FIELDS,
    UCF101_URL,
    available_pipelines,
    load_pipeline,
    run_pipeline,
    with_video_root,
)
from featcache.video.demo_data import make_demo_data

# Tiny settings: 3 classes x 4 videos of 6 frames at 16 px, 32 px scratch-CNN features, 1 epoch.
TINY_PIPELINE = """
description = "tiny test pipeline"

[data]
demo = {{ videos_per_class = 4, num_groups = 3, num_frames = 6, image_size = 16 }}

[embed]
extractor = "scratch_cnn"
weights = "random"
frames = 4
image_size = 32

[[heads]]
name = "lstm"
units = 8
dense = 8

[[heads]]
name = "small"
head = "meanpool"
dense = {small_dense}

[train]
epochs = 1
test_fraction = 0.34  # one of the 3 groups tests, one of the other 2 validates
"""


def write_pipeline(folder: Path, text: str, name: str = "tiny.toml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


@pytest.fixture
def tiny_pipeline(tmp_path: Path) -> Path:
    return write_pipeline(tmp_path / "pipelines", TINY_PIPELINE.format(small_dense=8))


MINIMAL = '[data]\nvideo_root = "videos"\n\n[[heads]]\nhead = "lstm"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL + "\n[embed]\nframe = 10\n", r"tiny\.toml: \[embed\]: unknown key\(s\) frame; known: .*frames"),
        (MINIMAL + "\n[embed]\nnum_frames = 10\n", r"\[embed\]: unknown key\(s\) num_frames"),
        (MINIMAL + '\n[embed]\nframes = "ten"\n', r"tiny\.toml: \[embed\] frames must be an integer, got 'ten'"),
        (MINIMAL + "\n[embed]\nimage_size = 1.5\n", r"\[embed\] image_size must be an integer"),
        (
            MINIMAL + "\n[embed]\nframes = 0\n",
            r"tiny\.toml: \[embed\] --frames / num_frames must be in \[1, 100000\] "
            r"\(or 0 with --sampling fps: every sampled frame\), got 0",
        ),
        (
            MINIMAL + '\n[embed]\nextractor = "resnet"\n',
            r"\[embed\] extractor 'resnet' is unknown; choose one of .*mobilenet_v2",
        ),
        (MINIMAL + "\n[train]\nepochs = true\n", r"\[train\] epochs must be an integer, got True"),
        (MINIMAL + '\n[train]\nsplit = "ucf101-9"\n', r"\[train\] unknown --split / split 'ucf101-9'"),
        (MINIMAL + '\n[evaluate]\nsubset = "val"\n', r"\[evaluate\] unknown subset 'val'"),
        (MINIMAL + '\n[evaluate]\nsplit = "test"\nsubset = "test"\n', r"both split and subset"),
        (MINIMAL + "\n[extra]\nx = 1\n", r"the top level: unknown key\(s\) extra"),
        (
            MINIMAL.replace('head = "lstm"', 'head = "resnet"'),
            r"\[\[heads\]\] #1 unknown head 'resnet'; choose one of lstm",
        ),
        (
            MINIMAL.replace('head = "lstm"', 'head = "lstm"\nunits = "many"'),
            r"\[\[heads\]\] #1 units must be an integer",
        ),
        (MINIMAL.replace('head = "lstm"', 'head = "lstm"\nstacks = 2'), r"\[\[heads\]\] #1: unknown key\(s\) stacks"),
        (MINIMAL + '\n[[heads]]\nhead = "lstm"\n', r"several \[\[heads\]\] are named lstm"),
        ('[[heads]]\nhead = "lstm"\n', r"missing \[data\] table"),
        ('[data]\nvideo_root = "videos"\n', r"no \[\[heads\]\] table"),
        ('[data]\nclasses = ["A"]\n\n[[heads]]\nhead = "lstm"\n', r"\[data\] needs exactly one of video_root"),
        (
            '[data]\nvideo_root = "v"\nclasses = "A"\n\n[[heads]]\nhead = "lstm"\n',
            r"\[data\] classes must be a list of strings",
        ),
        (
            '[data]\ndemo = { frames = 3 }\n\n[[heads]]\nhead = "lstm"\n',
            r"\[data\] demo: unknown key\(s\) frames; known: .*num_frames",
        ),
        ('[data]\ndemo = { seed = "x" }\n\n[[heads]]\nhead = "lstm"\n', r"\[data\] demo\.seed must be an integer"),
        ("[data\n", r"tiny\.toml: not valid TOML"),
        (
            MINIMAL.replace('"videos"', '"vid\\u0000eos"'),
            r"tiny\.toml: data\.video_root holds a NUL character \(\\u0000\)",
        ),
        (MINIMAL.replace('head = "lstm"', 'head = "lstm"\nname = "a\\u0000"'), r"heads\[0\]\.name holds a NUL"),
        (
            MINIMAL.replace('head = "lstm"', 'head = "lstm"\nname = "../x"'),
            r"\[\[heads\]\] #1 name '\.\./x' is not a folder name",
        ),
    ],
)
def test_bad_pipeline_is_refused_before_anything_runs(tmp_path: Path, text: str, message: str) -> None:
    path = write_pipeline(tmp_path, text)
    with pytest.raises(InputError, match=message):
        load_pipeline(path)
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["tiny.toml"]


# An example value for every option of `featcache embed` and `featcache train`; handle and split_file
# conflict with extractor and split, so they go in a second pipeline.
_EXAMPLE_VALUES = {
    "extractor": '"mobilenet_v2"',
    "weights": '"random"',
    "frames": "7",
    "sampling": '"fps"',
    "fps": "2.0",
    "image_size": "32",
    "batch_size": "4",
    "dtype": '"float32"',
    "compression": '"lzf"',
    "workers": "1",
    "seed": "3",
    "allow_outside_root": "true",
    "engine": '"ray"',
    "ray_address": '"auto"',
    "embed_workers": "2",
    "gpus_per_worker": "0.5",
    "decode_cpus": "0.5",
    "runtime": '"keras"',
    "decoder": '"auto"',
    "precision": '"f32"',  # int8 runs on the local engine only, and this example asks for ray
    "calibration_frames": "16",
    "int8_min_cosine": "0.95",
    "head": '"gru"',
    "units": "8",
    "dense": "8",
    "dropout": "0.1",
    "recurrent_dropout": "0.1",
    "epochs": "2",
    "learning_rate": "0.01",
    "split": '"ucf101-1"',
    "test_fraction": "0.25",
    "val_fraction": "0.3",
    "tensorboard": '"logs"',
    "patience": "3",
    "layers": "1",
    "attention_heads": "2",
    "positions": '"learned"',
    "pooling": '"cls"',
    "kernel_size": "5",
    "class_weight": '"balanced"',
    "clip_sampling": '"random"',
    "test_clips": "2",
}
_CONFLICTING_VALUES = {"extractor": '"tfhub"', "handle": '"https://tfhub.dev/some/model"', "split_file": '"split.csv"'}
HEAD_OPTIONS = {
    "head",
    "units",
    "dense",
    "dropout",
    "recurrent_dropout",
    "layers",
    "attention_heads",
    "positions",
    "pooling",
    "kernel_size",
}


def _tables(embed_options: set[str], train_options: set[str], values: dict[str, str]) -> str:
    def table(options: set[str]) -> str:
        return "\n".join(f"{option} = {values[option]}" for option in sorted(options) if option in values)

    return (
        f'[data]\nvideo_root = "v"\n\n[embed]\n{table(embed_options)}\n\n'
        f"[[heads]]\n{table(train_options & HEAD_OPTIONS)}\n\n"
        f"[train]\n{table(train_options - HEAD_OPTIONS)}\n"
    )


def test_keys_are_the_cli_option_names(tmp_path: Path) -> None:
    """Every option of `featcache embed`, and every head and training option of `featcache train`, is a pipeline key."""
    command = typer.main.get_command(app)
    output_options = {"quiet", "verbose"}  # how much a command prints, not what it computes
    embed_options = (
        {param.name for param in command.commands["embed"].params} - {"video_root", "out", "overwrite"} - output_options
    )
    train_options = (
        {param.name for param in command.commands["train"].params}
        - {"cache", "out", "overwrite"}
        - output_options
        # train --init-from-text (issue 18) is not a pipeline key yet: a known gap, named in the closing note
        - {"init_from_text", "prompt", "class_texts"}
    )
    assert embed_options | train_options <= set(_EXAMPLE_VALUES) | set(_CONFLICTING_VALUES), (
        "a new CLI option: add an example value"
    )

    pipeline = load_pipeline(write_pipeline(tmp_path, _tables(embed_options, train_options, _EXAMPLE_VALUES)))
    assert (pipeline.embed.extractor.name, pipeline.embed.sampling.num_frames, pipeline.embed.sampling.fps) == (
        "mobilenet_v2",
        7,
        2.0,
    )
    assert (pipeline.embed.num_decode_workers, pipeline.embed.compression, pipeline.embed.extractor.seed) == (
        1,
        "lzf",
        3,
    )
    embed_config = pipeline.embed
    assert (
        embed_config.engine,
        embed_config.ray_address,
        embed_config.embed_workers,
        embed_config.gpus_per_worker,
        embed_config.decode_cpus,
    ) == ("ray", "auto", 2, 0.5, 0.5)
    assert (pipeline.heads[0].config.head, pipeline.heads[0].config.recurrent_dropout) == ("gru", 0.1)
    assert (pipeline.train.split, pipeline.train.learning_rate) == ("ucf101-1", 0.01)
    assert (pipeline.train.test_fraction, pipeline.train.val_fraction) == (0.25, 0.3)
    head = pipeline.heads[0].config
    assert (head.num_layers, head.num_heads, head.positions, head.pooling, head.kernel_size) == (
        1,
        2,
        "learned",
        "cls",
        5,
    )
    assert (
        pipeline.train.class_weight,
        pipeline.train.frames,
        pipeline.train.clip_sampling,
        pipeline.train.test_clips,
    ) == ("balanced", 7, "random", 2)
    assert Path(pipeline.train.tensorboard_dir) == tmp_path / "logs"

    conflicting = load_pipeline(
        write_pipeline(
            tmp_path,
            _tables(embed_options, train_options, {**_EXAMPLE_VALUES, **_CONFLICTING_VALUES, "split": '"auto"'}),
        )
    )
    assert conflicting.embed.extractor.handle == "https://tfhub.dev/some/model"
    assert Path(conflicting.train.split_file) == tmp_path / "split.csv"
    assert (
        set(EMBED_OPTION_FIELDS) <= embed_options
        and set(TRAIN_OPTION_FIELDS) <= train_options
        and set(HEAD_OPTION_FIELDS) <= train_options
    )


def test_a_pipeline_saved_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    """Windows editors save UTF-8 with a BOM; tomllib alone refused it as an invalid statement at line 1."""
    path = tmp_path / "bom.toml"
    path.write_bytes(b"\xef\xbb\xbf" + MINIMAL.encode())
    assert [spec.name for spec in load_pipeline(path).heads] == ["lstm"]


def test_shipped_pipelines_are_there() -> None:
    assert {"demo", "ucf3_scratch_cnn", "ucf3_mobilenet_v2", "ucf101_split1_mobilenet_v2"} <= set(available_pipelines())


@pytest.mark.parametrize("name", sorted(available_pipelines()))
def test_shipped_pipeline_validates(name: str) -> None:
    pipeline = load_pipeline(name)
    assert pipeline.name == name and pipeline.description and pipeline.heads


def test_ucf3_pipelines_are_the_notebook_experiments() -> None:
    for name, extractor, units, dense in (
        ("ucf3_scratch_cnn", "scratch_cnn", 128, 32),
        ("ucf3_mobilenet_v2", "mobilenet_v2", 512, 128),
    ):
        pipeline = load_pipeline(name)
        assert pipeline.data.classes == ("PlayingCello", "PlayingGuitar", "PlayingViolin")
        assert (
            pipeline.embed.extractor.name,
            pipeline.embed.extractor.image_size,
            pipeline.embed.sampling.num_frames,
        ) == (extractor, 224, 10)
        assert [(spec.config.head, spec.config.units, spec.config.dense) for spec in pipeline.heads] == [
            ("lstm", units, dense)
        ]
        assert (pipeline.train.split, pipeline.evaluate.subset) == ("auto", "test")
    full = load_pipeline("ucf101_split1_mobilenet_v2")
    assert full.data.classes is None and full.train.split == "ucf101-1"


def test_shipped_pipeline_paths_are_relative_to_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Path(load_pipeline("ucf3_mobilenet_v2").data.video_root) == tmp_path / "data" / "UCF101"


def test_file_pipeline_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    text = MINIMAL + '\n[train]\nsplit_file = "lists/testlist01.txt"\n'
    pipeline = load_pipeline(write_pipeline(tmp_path / "sub", text))
    assert Path(pipeline.data.video_root) == tmp_path / "sub" / "videos"
    assert Path(pipeline.train.split_file) == tmp_path / "sub" / "lists" / "testlist01.txt"


def test_unknown_pipeline_name_lists_the_shipped_ones() -> None:
    with pytest.raises(InputError, match=r"no pipeline file ucf5.*demo"):
        load_pipeline("ucf5")


def test_missing_data_folder_says_where_ucf101_comes_from(tmp_path: Path) -> None:
    pipeline = load_pipeline(write_pipeline(tmp_path, MINIMAL))
    with pytest.raises(InputError, match=r"does not exist") as raised:
        run_pipeline(pipeline, tmp_path / "out")
    message = str(raised.value)
    assert UCF101_URL in message and "UCF101.rar" in message and "<ClassName>/v_<ClassName>_gNN_cNN.avi" in message
    assert not (tmp_path / "out").exists()


def test_missing_class_folder_is_named(tmp_path: Path) -> None:
    make_demo_data(tmp_path / "videos", videos_per_class=2, num_frames=4, image_size=16)
    pipeline = load_pipeline(
        write_pipeline(tmp_path, MINIMAL.replace('"videos"\n', '"videos"\nclasses = ["MovingRight", "PlayingCello"]\n'))
    )
    with pytest.raises(InputError, match=r"no class folder\(s\) PlayingCello in .*UCF101"):
        run_pipeline(pipeline, tmp_path / "out")


def test_run_twice_embeds_and_trains_nothing_the_second_time(tiny_pipeline: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = run_pipeline(load_pipeline(tiny_pipeline), out)
    assert (first.num_embedded, first.num_trained) == (12, 2)
    assert [outcome.name for outcome in first.heads] == ["lstm", "small"]
    assert all(0.0 <= outcome.accuracy <= 1.0 and outcome.num_videos > 0 for outcome in first.heads)
    assert (out / "report.txt").is_file() and (out / "report.json").is_file() and (out / "pipeline.toml").is_file()
    # report.html: the heads side by side, each linking its model page (with the run's videos as thumbnails).
    assert first.html_report_path == out / "report.html"
    links = re.findall(r'class="model-link" href="([^"]+)"', first.html_report_path.read_text())
    assert [Path(link).parts[:2] for link in links] == [("models", "lstm"), ("models", "small")]
    assert all('data-status="not located"' not in (out / link).read_text() for link in links)

    second = run_pipeline(load_pipeline(tiny_pipeline), out)
    assert (second.num_embedded, second.num_trained) == (0, 0)
    assert second.embed.num_already_cached == 12
    assert [outcome.accuracy for outcome in second.heads] == [outcome.accuracy for outcome in first.heads]

    # Changing one head's settings retrains that head only.
    tiny_pipeline.write_text(TINY_PIPELINE.format(small_dense=16))
    third = run_pipeline(load_pipeline(tiny_pipeline), out)
    assert third.num_embedded == 0
    assert [(outcome.name, outcome.trained) for outcome in third.heads] == [("lstm", False), ("small", True)]


def test_changed_embed_settings_are_refused_without_overwrite(tiny_pipeline: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    run_pipeline(load_pipeline(tiny_pipeline), out)
    tiny_pipeline.write_text(TINY_PIPELINE.format(small_dense=8).replace("frames = 4", "frames = 3"))
    with pytest.raises(FeatcacheError, match=r"other settings.*num_frames 4 vs 3.*--overwrite"):
        run_pipeline(load_pipeline(tiny_pipeline), out)
    summary = run_pipeline(load_pipeline(tiny_pipeline), out, overwrite=True)
    assert (summary.num_embedded, summary.num_trained) == (12, 2)


def test_classes_pick_class_folders_of_the_video_root(tmp_path: Path) -> None:
    make_demo_data(tmp_path / "data", videos_per_class=4, num_groups=3, num_frames=6, image_size=16)
    text = TINY_PIPELINE.format(small_dense=8).replace(
        "demo = { videos_per_class = 4, num_groups = 3, num_frames = 6, image_size = 16 }",
        'video_root = "data"\nclasses = ["MovingRight", "Bouncing"]',
    )
    summary = run_pipeline(load_pipeline(write_pipeline(tmp_path, text)), tmp_path / "run")
    from featcache.cache import read_cache_index

    index = read_cache_index(summary.cache_path)
    assert index.class_names == ["Bouncing", "MovingRight"]
    assert index.num_videos == 8 and all(path.split("/")[0] in ("Bouncing", "MovingRight") for path in index.paths)
    assert not (tmp_path / "data" / "MovingLeft").is_symlink()  # the video root itself is left as it is


def test_data_option_replaces_the_video_root(tmp_path: Path) -> None:
    pipeline = with_video_root(load_pipeline(write_pipeline(tmp_path, MINIMAL)), tmp_path / "elsewhere")
    assert Path(pipeline.data.video_root) == tmp_path / "elsewhere"


def test_run_command(tiny_pipeline: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(tiny_pipeline), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "trained now" in result.output and str(out / "report.txt") in result.output
    again = runner.invoke(app, ["run", str(tiny_pipeline), "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert "12 already cached" in again.output and "trained now" not in again.output and "up to date" in again.output


def test_run_command_bad_pipeline_is_a_usage_error(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path, MINIMAL + '\n[embed]\nframes = "ten"\n')
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    assert "frames must be an integer" in result.output and "Traceback" not in result.output


def test_run_command_missing_data_is_a_usage_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", "ucf3_mobilenet_v2"])
    assert result.exit_code == 2
    assert UCF101_URL in result.output and "data/UCF101" in result.output


def test_evaluate_split_is_read_as_subset(tmp_path: Path) -> None:
    """Pipelines written before the rename keep working: [evaluate] split = "all" means subset = "all"."""
    pipeline = load_pipeline(write_pipeline(tmp_path, MINIMAL + '\n[evaluate]\nsplit = "all"\n'))
    assert pipeline.evaluate.subset == "all"
