"""NNCF post-training quantization of an OpenVINO IR, and which of its layers to keep in float.

`quantize_ir` is the one way an int8 model is made: a function of the f32 IR, the calibration frames and the
names of the layers kept in float (NNCF's ignored scope), so a cache's recorded calibration rebuilds the same
model. `layers_to_keep_in_float` chooses those names with NNCF's accuracy control: it quantizes, ranks every
quantized layer by how much reverting it alone brings the features back to f32's, and reverts the worst ones
until the mean cosine to f32 on the calibration frames is within `max_drop` of 1. It runs on the calibration
frames, never the held-out ones, so the gate afterwards still measures frames the choice did not see.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from featcache.extractors.openvino_runtime import feature_agreement

# The operations NNCF quantizes in a CNN (OpenVINO op type names): the ones a kept-in-float layer can be.
QUANTIZABLE_TYPES = frozenset(
    {"Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData", "MatMul"}
)
# At most this share of the int8 layers is kept in float: int8's speed is in its int8 layers (on MobileNetV2,
# 2 of 52 kept in float already cost a third of int8's images/s), and a model mostly in float is not what
# `--precision int8` asks for; beyond it the gate refuses.
MAX_FLOAT_LAYER_SHARE = 0.25
# NNCF names the quantized weights of operation OP "OP/fq_weights_<port>".
WEIGHTS_QUANTIZER_SUFFIX = "/fq_weights_"


BIAS_CORRECTIONS = ("fast", "full")  # NNCF's two bias corrections: fast_bias_correction=True / False


def quantize_ir(ir_path: Path, calibration: np.ndarray, float_layers: list[str], bias_correction: str) -> Any:
    """The f32 IR quantized by NNCF on `calibration`, the operations named in `float_layers` left in float.

    calibration: uint8 (num_frames, size, size, 3), one frame per calibration item. bias_correction: "fast" or
    "full" (BIAS_CORRECTIONS). Returns an openvino.Model.
    """
    import nncf
    import openvino

    model = openvino.Core().read_model(str(ir_path))
    with nncf_output_on_stderr():
        return nncf.quantize(
            model,
            _calibration_dataset(calibration),
            subset_size=len(calibration),
            preset=nncf.QuantizationPreset.PERFORMANCE,
            target_device=nncf.TargetDevice.CPU,
            fast_bias_correction=_is_fast(bias_correction),
            ignored_scope=nncf.IgnoredScope(names=list(float_layers)),
        )


@contextlib.contextmanager
def nncf_output_on_stderr() -> Iterator[None]:
    """NNCF's progress bars (rich, on the current sys.stdout) and its log (a handler made on sys.stdout) go to
    stderr while NNCF runs: stdout is `featcache`'s results, which a user may pipe or parse."""
    from nncf.common.logging import nncf_logger

    # A plain StreamHandler on stdout (NNCF's own); never a FileHandler (a StreamHandler too) a user added.
    # Never one already on stderr (stdout may be stderr): setStream would hand back None to restore.
    to_stdout = [
        handler
        for handler in nncf_logger.handlers
        if type(handler) is logging.StreamHandler
        and handler.stream in (sys.stdout, sys.__stdout__)
        and handler.stream is not sys.stderr
    ]
    moved = [(handler, handler.setStream(sys.stderr)) for handler in to_stdout]
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for handler, stream in moved:
            handler.setStream(stream)


def _is_fast(bias_correction: str) -> bool:
    assert bias_correction in BIAS_CORRECTIONS, bias_correction
    return bias_correction == "fast"


def layers_to_keep_in_float(
    ir_path: Path,
    plain_int8_ir_path: Path,
    calibration: np.ndarray,
    reference_features: np.ndarray,
    max_drop: float,
    bias_correction: str,
) -> list[str]:
    """The quantized operations NNCF's accuracy control reverts to float to keep the mean cosine to f32 on the
    calibration frames at least 1 - max_drop, in at most MAX_FLOAT_LAYER_SHARE of the int8 layers' steps (it stops
    there when it cannot); sorted names, [] when none is needed.

    calibration: uint8 (num_frames, size, size, 3); reference_features: float32 (num_frames, feature_dim), the f32
    model's features of those frames; plain_int8_ir_path: `quantize_ir(ir_path, calibration, [], bias_correction)`,
    saved.
    """
    import nncf
    import openvino
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    model = openvino.Core().read_model(str(ir_path))
    plain_layers = quantized_operations(openvino.Core().read_model(str(plain_int8_ir_path)))
    # Each validation item carries its f32 features: NNCF validates on subsets of items when it ranks layers.
    validation = nncf.Dataset(
        [(calibration[index : index + 1], reference_features[index]) for index in range(len(calibration))]
    )
    with nncf_output_on_stderr():
        restored = nncf.quantize_with_accuracy_control(
            model,
            _calibration_dataset(calibration),
            validation,
            _mean_cosine_to_reference,
            max_drop=max_drop,
            drop_type=nncf.DropType.ABSOLUTE,
            subset_size=len(calibration),
            preset=nncf.QuantizationPreset.PERFORMANCE,
            target_device=nncf.TargetDevice.CPU,
            fast_bias_correction=_is_fast(bias_correction),
            # One step reverts one group of layers (often one layer), or undoes a step that made things worse.
            advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                max_num_iterations=max(1, int(MAX_FLOAT_LAYER_SHARE * len(plain_layers)))
            ),
        )
    # quantize_with_accuracy_control returns the model, not the list it reverted: read it off the two models.
    return sorted(plain_layers - quantized_operations(restored))


def quantized_operations(model: Any) -> set[str]:
    """Names of the operations of an openvino.Model that run in int8: a quantizable operation with an input
    from a FakeQuantize (its activations) or from NNCF's quantized weights."""
    names = set()
    for operation in model.get_ops():
        if operation.get_type_name() not in QUANTIZABLE_TYPES:
            continue
        sources = [each.get_source_output().get_node() for each in operation.inputs()]
        if any(
            source.get_type_name() == "FakeQuantize" or WEIGHTS_QUANTIZER_SUFFIX in source.get_friendly_name()
            for source in sources
        ):
            names.add(operation.get_friendly_name())
    return names


def _calibration_dataset(calibration: np.ndarray) -> Any:
    import nncf

    return nncf.Dataset([calibration[index : index + 1] for index in range(len(calibration))])


def _mean_cosine_to_reference(
    compiled: Any, items: Iterable[tuple[np.ndarray, np.ndarray]]
) -> tuple[float, list[float]]:
    """NNCF's validation function: (mean, per item) cosine of the compiled model's features to the f32 ones.

    compiled: an openvino.CompiledModel (NNCF compiles it with f32 inference precision); items: (uint8 frame
    (1, size, size, 3), float32 reference (feature_dim,)) pairs. The cosine is the gate's (`feature_agreement`).
    """
    cosines = [feature_agreement(reference[None], np.asarray(compiled(frame)[0]))[2] for frame, reference in items]
    return float(np.mean(cosines)), cosines
