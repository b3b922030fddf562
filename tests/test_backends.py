"""The model code runs under Keras' JAX backend too (what benchmarks/gpu.sh uses on a GPU machine).

Each backend needs a fresh process (KERAS_BACKEND is read once, at `import keras`), so the check runs a
short script in a subprocess: embed with the Keras extractors (a keras.applications one too), train the default
head, reload, predict whole videos and windows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json, sys
from pathlib import Path
import keras
from featcache.config import EmbedConfig, ExtractorConfig, HeadConfig, SamplingConfig, TrainConfig
from featcache.embedding.embed import embed
from featcache.inference.predict import predict_videos
from featcache.training.train import train

root, work = Path(sys.argv[1]), Path(sys.argv[2])
results = {"backend": keras.backend.backend()}
import numpy as np
from featcache.extractors.registry import load_extractor
# Random-init MobileNetV2 gives ~1e-11 features, which embed refuses as carrying no information: run it directly.
mobilenet = load_extractor(ExtractorConfig(name="mobilenet_v2", weights="random", image_size=32))
results["mobilenet_v2"] = list(mobilenet.embed_frames(np.zeros((6, 32, 32, 3), np.uint8)).shape)
for name in ("scratch_cnn", "keras:VGG16"):
    config = EmbedConfig(extractor=ExtractorConfig(name=name, weights="random", image_size=32),
                         sampling=SamplingConfig(num_frames=4), dtype="float32", batch_size=6)
    results[name] = embed(root, work / f"{name.replace(':', '_')}.h5", config).num_embedded
trained = train(work / "scratch_cnn.h5", work / "model", HeadConfig(units=8, dense=8),
                TrainConfig(epochs=2, batch_size=4, test_fraction=0.34, val_fraction=0.5))
results["epochs"] = len(trained.history)
predictions = predict_videos(work / "model", sorted(root.rglob("*.avi"))[:2], top_k=2)
results["predicted"] = [len(prediction.top_k) for prediction in predictions]
from featcache.config import WindowConfig
from featcache.inference.windows import predict_windows
windows = predict_windows(work / "model", sorted(root.rglob("*.avi"))[:1], WindowConfig(0.3, 0.1)).videos[0]
results["windows"] = [windows.error, windows.probabilities.shape[0] > 1]
print(json.dumps(results))
"""


def test_embed_train_predict_under_jax(tiny_dataset: Path, tmp_path: Path) -> None:
    environment = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tiny_dataset), str(tmp_path)],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(completed.stdout.strip().splitlines()[-1])
    assert results == {
        "backend": "jax",
        "mobilenet_v2": [6, 1280],
        "scratch_cnn": 6,
        "keras:VGG16": 6,
        "epochs": 2,
        "predicted": [2, 2],
        "windows": [None, True],
    }
