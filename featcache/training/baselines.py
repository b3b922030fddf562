"""Baselines without a sequence model: a linear probe and k-nearest neighbours on mean-pooled features.

Both see a video as one vector, the L2-normalized mean of its real frames (featcache.search.pooled), so frame
order means nothing to them: a trained head should beat them on order-dependent classes, and if it does not,
they are the honest answer in seconds.

- "linear": multinomial logistic regression (scikit-learn, L-BFGS), the CLIP paper's linear-probe protocol
  (Radford et al. 2021, appendix A.3: L2-normalized features, the inverse regularization strength C chosen on the
  validation set from a logarithmic sweep). LINEAR_C_GRID is a 7-step sweep (CLIP sweeps 96 steps; these
  features are unit norm, and accuracy is flat between neighbouring steps).
- "knn": cosine k-nearest neighbours with DINO's weighted vote (Caron et al. 2021: each of the k neighbours votes
  for its class with weight exp(similarity / 0.07)), k chosen on the validation set from KNN_K_GRID.
Without a validation set nothing can be chosen: the middle candidates (C 10, k 10) are used, and said so.

Each candidate is one row of history.csv (epoch = the candidate's number, best epoch = the one kept), so the
model folder reads like a sequence head's. The fitted model is a handful of arrays: `save` writes them to an .npz
(numbers only, no pickle: loading a model folder never runs code) and `load_baseline_model` reads them back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from featcache.errors import InputError, ModelDirError
from featcache.search.pooled import pool_sequences

BASELINE_KINDS = ("linear", "knn")
LINEAR_C_GRID = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)
KNN_K_GRID = (1, 3, 5, 10, 20)
KNN_TEMPERATURE = 0.07  # DINO's
DEFAULT_LINEAR_C = 10.0  # without a validation set
DEFAULT_KNN_K = 10
ABSENT_CLASS_LOGIT = -1e4  # a class with no training video (cannot happen after check_trainable; kept finite)


class PooledLinearModel:
    """softmax(W · pooled + b): inputs [features float32 (batch, T, D), lengths int32 (batch,)],
    output float32 (batch, num_classes). weights float32 (num_classes, D), bias float32 (num_classes,)."""

    kind = "linear"

    def __init__(self, weights: np.ndarray, bias: np.ndarray, inverse_regularization: float) -> None:
        self.weights = np.asarray(weights, dtype=np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)
        self.inverse_regularization = float(inverse_regularization)

    @property
    def num_classes(self) -> int:
        return int(self.weights.shape[0])

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """float32 (n, num_classes) for unit vectors float32 (n, D)."""
        logits = vectors @ self.weights.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exponentials = np.exp(logits)
        return (exponentials / exponentials.sum(axis=1, keepdims=True)).astype(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights, "bias": self.bias, "C": np.float64(self.inverse_regularization)}

    def count_params(self) -> int:
        return int(self.weights.size + self.bias.size)

    def predict_on_batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        features, lengths = inputs
        return self.probabilities(pool_sequences(features, lengths))

    def predict(self, inputs: list[np.ndarray], batch_size: int = 256, verbose: int = 0) -> np.ndarray:
        """Keras' predict signature (batch_size and verbose change nothing here)."""
        return self.predict_on_batch(inputs)

    def save(self, path: Path) -> None:
        save_arrays(path, self.kind, self.arrays())


class PooledKnnModel:
    """DINO-weighted k-nearest-neighbour vote over the training videos' unit vectors (float32 (n, D)) and labels
    (int32 (n,)); inputs and output as PooledLinearModel's."""

    kind = "knn"

    def __init__(self, vectors: np.ndarray, labels: np.ndarray, num_classes: int, k: int) -> None:
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.labels = np.asarray(labels, dtype=np.int32)
        self.num_classes = int(num_classes)
        self.k = int(k)

    def probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """float32 (n, num_classes): each class's share of the k nearest training videos' votes."""
        similarities = np.asarray(vectors, dtype=np.float32) @ self.vectors.T  # (n, num_train)
        return knn_vote(similarities, self.labels, self.num_classes, self.k)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "vectors": self.vectors,
            "labels": self.labels,
            "num_classes": np.int64(self.num_classes),
            "k": np.int64(self.k),
        }

    def count_params(self) -> int:
        return int(self.vectors.size)

    def predict_on_batch(self, inputs: list[np.ndarray]) -> np.ndarray:
        features, lengths = inputs
        return self.probabilities(pool_sequences(features, lengths))

    def predict(self, inputs: list[np.ndarray], batch_size: int = 256, verbose: int = 0) -> np.ndarray:
        return self.predict_on_batch(inputs)

    def save(self, path: Path) -> None:
        save_arrays(path, self.kind, self.arrays())


BaselineModel = PooledLinearModel | PooledKnnModel


def save_arrays(path: Path, kind: str, arrays: dict[str, np.ndarray]) -> None:
    """Write a baseline model as an uncompressed .npz of plain numeric arrays (its kind as a string array)."""
    with open(path, "wb") as stream:
        np.savez(stream, kind=np.array(kind), **arrays)


def load_baseline_model(path: Path, kind: str) -> BaselineModel:
    """Read a baseline model's .npz (allow_pickle=False: object arrays are refused, nothing is executed).

    Raises ModelDirError for a missing, unreadable or foreign file.
    """
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in saved.files}
    except (OSError, ValueError) as err:
        raise ModelDirError(f"{path}: cannot be loaded ({err}); re-run `featcache train`") from err
    if str(arrays.get("kind", "")) != kind:
        raise ModelDirError(f"{path}: holds a {arrays.get('kind')!s} model, featcache.json says {kind}")
    try:
        if kind == "linear":
            return PooledLinearModel(arrays["weights"], arrays["bias"], float(arrays["C"]))
        return PooledKnnModel(arrays["vectors"], arrays["labels"], int(arrays["num_classes"]), int(arrays["k"]))
    except KeyError as err:
        raise ModelDirError(f"{path}: missing array {err}; re-run `featcache train`") from err


@dataclass
class BaselineFit:
    """A fitted baseline: the model, one history row per candidate tried, the kept candidate (1-based), its
    validation accuracy (None without validation), mean seconds per candidate, and how it was chosen."""

    model: BaselineModel
    history: list[dict[str, float | None]]
    best_candidate: int
    best_val_accuracy: float | None
    seconds_per_candidate: float
    choice: dict[str, Any] = field(default_factory=dict)


def fit_baseline(
    kind: str,
    train_vectors: np.ndarray,
    train_labels: np.ndarray,
    val_vectors: np.ndarray | None,
    val_labels: np.ndarray | None,
    num_classes: int,
    seed: int = 0,
) -> BaselineFit:
    """Fit a "linear" or "knn" baseline on unit vectors float32 (n, D) with labels int (n,); the candidate with the
    best validation accuracy (ties: lower validation loss, then the first) is kept."""
    if kind not in BASELINE_KINDS:
        raise InputError(f"unknown baseline {kind!r}; choose one of {', '.join(BASELINE_KINDS)}")
    validates = val_vectors is not None and len(val_vectors) > 0
    if kind == "linear":
        candidates = LINEAR_C_GRID if validates else (DEFAULT_LINEAR_C,)
        build = lambda value: _fit_linear(train_vectors, train_labels, num_classes, value, seed)  # noqa: E731
        setting = "C"
    else:
        grid = [k for k in KNN_K_GRID if k <= len(train_vectors)] or [len(train_vectors)]
        candidates = tuple(grid) if validates else (min(DEFAULT_KNN_K, len(train_vectors)),)
        build = lambda value: PooledKnnModel(train_vectors, train_labels, num_classes, value)  # noqa: E731
        setting = "k"
    history, models = [], []
    for number, value in enumerate(candidates, start=1):
        started = time.perf_counter()
        model = build(value)
        loss, accuracy = _loss_and_accuracy(model, train_vectors, train_labels, exclude_self=kind == "knn")
        val_loss, val_accuracy = _loss_and_accuracy(model, val_vectors, val_labels) if validates else (None, None)
        history.append(
            {
                "epoch": number,
                "loss": loss,
                "accuracy": accuracy,
                "val_loss": val_loss,
                "val_accuracy": val_accuracy,
                "seconds": time.perf_counter() - started,
                setting: value,
            }
        )
        models.append(model)
    if validates:
        best = max(range(len(history)), key=lambda i: (history[i]["val_accuracy"], -history[i]["val_loss"], -i))
    else:
        best = 0
    chosen_on = "chosen on the validation accuracy" if validates else "no validation set: the default, nothing chosen"
    return BaselineFit(
        model=models[best],
        history=history,
        best_candidate=best + 1,
        best_val_accuracy=history[best]["val_accuracy"],
        seconds_per_candidate=float(np.mean([row["seconds"] for row in history])),
        choice={"setting": setting, "value": candidates[best], "candidates": list(candidates), "chosen_on": chosen_on},
    )


def _fit_linear(vectors: np.ndarray, labels: np.ndarray, num_classes: int, c: float, seed: int) -> PooledLinearModel:
    from sklearn.linear_model import LogisticRegression

    classifier = LogisticRegression(C=c, max_iter=1000, random_state=seed)
    classifier.fit(vectors, labels)
    coefficients, intercepts = classifier.coef_, classifier.intercept_
    if len(classifier.classes_) == 2:
        # Binary: scikit-learn keeps one row, p(class 1) = sigmoid(w.x + b) = softmax([0, w.x + b])[1].
        coefficients = np.vstack([np.zeros_like(coefficients), coefficients])
        intercepts = np.concatenate([[0.0], intercepts])
    weights = np.zeros((num_classes, vectors.shape[1]), dtype=np.float32)
    bias = np.full(num_classes, ABSENT_CLASS_LOGIT, dtype=np.float32)
    weights[classifier.classes_] = coefficients
    bias[classifier.classes_] = intercepts
    return PooledLinearModel(weights, bias, c)


def knn_vote(similarities: np.ndarray, train_labels: np.ndarray, num_classes: int, k: int) -> np.ndarray:
    """float32 (n, num_classes) from similarities float (n, num_train): the k most similar training videos each vote
    exp(similarity / KNN_TEMPERATURE) for their class; the votes are normalized to sum to 1 per row."""
    k = max(1, min(k, similarities.shape[1]))
    nearest = np.argpartition(-similarities, k - 1, axis=1)[:, :k]
    nearest_similarities = np.take_along_axis(similarities, nearest, axis=1)
    # exp((s - 1) / T) is exp(s / T) times a constant: the same shares, without overflow; a similarity of -inf
    # (a video left out of its own vote) weighs 0.
    votes = np.exp((nearest_similarities - 1.0) / KNN_TEMPERATURE)
    scores = np.zeros((len(similarities), num_classes), dtype=np.float64)
    np.add.at(scores, (np.arange(len(similarities))[:, None], np.asarray(train_labels)[nearest]), votes)
    return (scores / np.maximum(scores.sum(axis=1, keepdims=True), 1e-300)).astype(np.float32)


def _loss_and_accuracy(
    model: BaselineModel, vectors: np.ndarray, labels: np.ndarray, exclude_self: bool = False
) -> tuple[float, float]:
    """Cross-entropy and accuracy; for kNN on its own training videos, each video's own vote is left out
    (leave-one-out), else every video would be its own nearest neighbour."""
    if exclude_self and isinstance(model, PooledKnnModel) and len(vectors) > 1:
        similarities = vectors @ vectors.T
        np.fill_diagonal(similarities, -np.inf)
        probabilities = knn_vote(similarities, model.labels, model.num_classes, min(model.k, len(vectors) - 1))
    else:
        probabilities = model.probabilities(vectors)
    labels = np.asarray(labels, dtype=np.int64)
    picked = np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, 1.0)
    return float(-np.mean(np.log(picked))), float(np.mean(probabilities.argmax(axis=1) == labels))
