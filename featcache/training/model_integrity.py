"""Does a model folder's featcache.json describe its model.keras? And one writer per model folder.

featcache.json records model.keras' sha256, the model's output width and a digest of the class names with that sha256
(`train` writes them); `ModelFolder` checks them on open (class names, cheap) and on loading the model (the file's
hash, the loaded model's width), so a swapped model.keras or a renamed, reordered or extra class is a one-line
ModelDirError, never a wrong label. Folders from before these fields are checked by the loaded model's width.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from featcache.cache.lock import ExclusiveLock
from featcache.errors import ModelDirError

METADATA_FILE_NAME = "featcache.json"  # model_folder.METADATA_FILE (imported from there would be a cycle)


def output_width_of(model: Any) -> int:
    """The number of classes a model scores: a Keras head's output's last dimension, a baseline's num_classes."""
    if hasattr(model, "output_shape"):
        return int(model.output_shape[-1])
    return int(model.num_classes)


def class_names_digest(model_sha256: str, class_names: tuple[str, ...]) -> str:
    """sha256 tying the class names, in order, to one model.keras (featcache.json's class_names_sha256)."""
    return hashlib.sha256((model_sha256 + "\n" + json.dumps(list(class_names))).encode()).hexdigest()


def check_class_names(model_dir: Path, metadata: Any) -> None:
    """ModelDirError when featcache.json's class names are not those its model was saved with (where recorded)."""
    if metadata.output_width is not None and metadata.output_width != len(metadata.class_names):
        raise ModelDirError(
            f"{model_dir / METADATA_FILE_NAME}: {len(metadata.class_names)} class names for a model of "
            f"{metadata.output_width} outputs; re-run `featcache train`"
        )
    if metadata.model_sha256 is None or metadata.class_names_sha256 is None:
        return
    if class_names_digest(metadata.model_sha256, metadata.class_names) != metadata.class_names_sha256:
        raise ModelDirError(
            f"{model_dir / METADATA_FILE_NAME}: its class names are not those the model was trained with (renamed or "
            "reordered since); re-run `featcache train`"
        )


def model_folder_lock(model_dir: Path) -> ExclusiveLock:
    """The lock one writer of a model folder holds (`train --out`, `compare --out`): `.MODEL_DIR.lock` beside it
    (the folder itself is replaced whole); a second writer gets a one-line ModelDirError."""
    model_dir = Path(model_dir)
    lock_path = model_dir.with_name(f".{model_dir.name}.lock")
    return ExclusiveLock(
        lock_path,
        lambda: ModelDirError(
            f"--out / out_dir {model_dir}: another featcache process is writing this model folder "
            f"(it holds {lock_path.name}); wait for it to finish, or choose another --out"
        ),
    )
