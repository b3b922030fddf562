"""A model folder's featcache.json is tied to its model.keras (sha256, output width, class names), a folder is
written whole or not at all, and one writer at a time; damage is a one-line error, never a wrong label."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
from cache_fixtures import ucf101_like_cache
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from featcache.cli import app
from featcache.config import HeadConfig, TrainConfig
from featcache.errors import DiskWriteError, ModelDirError
from featcache.training.model_folder import (
    METADATA_FILE,
    MODEL_FILE,
    ModelFolder,
    check_model_dir_writable,
    save_model_folder,
)
from featcache.training.model_integrity import model_folder_lock
from featcache.training.train import train

RUNNER = CliRunner()
SMALL_HEAD = {"units": 8, "dense": 8, "num_layers": 1}
QUICK = TrainConfig(epochs=1, batch_size=8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """An lstm head trained on a 3-class cache, and two model.keras files to swap in: an untrained meanpool head of
    the same width, an lstm head of 4 outputs."""
    from featcache.training.heads import build_head

    folder = tmp_path_factory.mktemp("heads")
    cache = ucf101_like_cache(folder / "three.h5", num_classes=3, num_groups=4)
    train(cache, folder / "lstm", HeadConfig(head="lstm", **SMALL_HEAD), QUICK)
    made = {"cache": cache, "lstm": folder / "lstm"}
    metadata = ModelFolder.open(folder / "lstm").metadata
    for name, head, width in (("mean", "meanpool", 3), ("four", "lstm", 4)):
        (folder / name).mkdir()
        model = build_head(HeadConfig(head=head, **SMALL_HEAD), metadata.num_frames, metadata.feature_dim, width)
        model.save(folder / name / MODEL_FILE)
        made[name] = folder / name
    return made


def copy_of(model_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / f"copy-{len(list(tmp_path.iterdir()))}"
    shutil.copytree(model_dir, target)
    return target


def edit_metadata(model_dir: Path, change) -> None:
    path = model_dir / METADATA_FILE
    saved = json.loads(path.read_text())
    change(saved)
    path.write_text(json.dumps(saved))


def test_featcache_json_records_the_model_hash_and_width(trained: dict[str, Path]) -> None:
    metadata = ModelFolder.open(trained["lstm"]).metadata
    assert metadata.output_width == 3 and len(metadata.model_sha256) == 64 and metadata.class_names_sha256


DAMAGES = {
    "class names reordered": lambda folder, trained: edit_metadata(
        folder, lambda saved: saved.update(class_names=saved["class_names"][::-1])
    ),
    "a class renamed": lambda folder, trained: edit_metadata(
        folder, lambda saved: saved["class_names"].__setitem__(0, "Renamed")
    ),
    "model.keras of another head": lambda folder, trained: shutil.copyfile(
        trained["mean"] / MODEL_FILE, folder / MODEL_FILE
    ),
    "model.keras with 4 outputs": lambda folder, trained: shutil.copyfile(
        trained["four"] / MODEL_FILE, folder / MODEL_FILE
    ),
    "model.keras truncated": lambda folder, trained: (folder / MODEL_FILE).write_bytes(
        (folder / MODEL_FILE).read_bytes()[:1000]
    ),
    "an extra class name": lambda folder, trained: edit_metadata(
        folder, lambda saved: saved["class_names"].append("Extra")
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_evaluate_refuses_a_damaged_model_folder_in_one_line(
    damage: str, trained: dict[str, Path], tmp_path: Path
) -> None:
    folder = copy_of(trained["lstm"], tmp_path)
    DAMAGES[damage](folder, trained)
    result = RUNNER.invoke(app, ["evaluate", str(folder), str(trained["cache"])])
    assert result.exit_code == 2, result.output
    assert result.output.count("Error: ") == 1 and "Traceback" not in result.output, result.output
    assert "re-run `featcache train`" in result.output


def test_an_old_folder_without_the_integrity_fields_loads_and_its_width_is_checked(
    trained: dict[str, Path], tmp_path: Path
) -> None:
    folder = copy_of(trained["lstm"], tmp_path)
    edit_metadata(
        folder, lambda saved: [saved.pop(key) for key in ("model_sha256", "output_width", "class_names_sha256")]
    )
    assert ModelFolder.open(folder).load_model().output_shape[-1] == 3
    shutil.copyfile(trained["four"] / MODEL_FILE, folder / MODEL_FILE)
    with pytest.raises(ModelDirError, match="gives 4 outputs.* names 3 classes"):
        ModelFolder.open(folder).load_model()


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_a_damaged_model_folder_is_an_error_or_the_same_answer(
    trained: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Invariant: a clear error (exit 2, one line) or the undamaged folder's exact report, never another."""
    folder = copy_of(trained["lstm"], tmp_path_factory.mktemp("fuzz"))
    for damage in data.draw(st.lists(st.sampled_from(list(DAMAGES) + ["bit flips"]), min_size=1, max_size=2)):
        if damage == "bit flips":
            model = bytearray((folder / MODEL_FILE).read_bytes())
            for position in data.draw(st.lists(st.integers(0, len(model) - 1), min_size=1, max_size=4)):
                model[position] ^= 1 << data.draw(st.integers(0, 7))
            (folder / MODEL_FILE).write_bytes(bytes(model))
        else:
            DAMAGES[damage](folder, trained)
    result = RUNNER.invoke(app, ["evaluate", str(folder), str(trained["cache"]), "--json"])
    if result.exit_code == 0:
        undamaged = RUNNER.invoke(app, ["evaluate", str(trained["lstm"]), str(trained["cache"]), "--json"])
        assert json.loads(result.output)["accuracy"] == json.loads(undamaged.output)["accuracy"]
        return
    assert result.exit_code == 2 and result.output.count("Error: ") == 1, result.output
    assert "Traceback" not in result.output


def test_a_second_writer_of_a_model_folder_is_refused(trained: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "model"
    with model_folder_lock(out):  # another `train --out model` running
        with pytest.raises(ModelDirError, match="another featcache process is writing this model folder"):
            train(trained["cache"], out, HeadConfig(**SMALL_HEAD), QUICK)
        result = RUNNER.invoke(
            app, ["compare", str(trained["cache"]), "--heads", "meanpool", "--epochs", "1", "--out", str(out)]
        )
        assert result.exit_code == 2 and "another featcache process" in result.output, result.output
    assert not out.exists()


def test_a_model_folder_that_fails_writing_leaves_nothing_that_blocks_the_rerun(
    trained: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `train` does once fitted (save_trained_head -> save_model_folder), on a disk that fills up."""
    import keras

    source = ModelFolder.open(trained["lstm"])
    model, metadata = source.load_model(), source.metadata
    history = [{"epoch": 1, "loss": 1.0, "accuracy": 0.5, "val_loss": None, "val_accuracy": None, "seconds": 1.0}]
    split_rows = [(path, subset, "") for path, subset in source.split.items()]

    def disk_full(self, path, *arguments, **keywords) -> None:
        Path(path).write_bytes(b"half a model")
        raise OSError(errno.ENOSPC, "No space left on device")

    out = tmp_path / "model"
    with monkeypatch.context() as patched:
        patched.setattr(keras.Model, "save", disk_full)
        with pytest.raises(DiskWriteError, match="no space left on device writing .*model"):
            save_model_folder(out, model, metadata, history, split_rows)
    assert list(tmp_path.iterdir()) == []  # no folder, no temporary one
    check_model_dir_writable(out)  # the rerun is not blocked
    save_model_folder(out, model, metadata, history, split_rows)
    assert ModelFolder.open(out).load_model().output_shape[-1] == 3
