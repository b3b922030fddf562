"""Frozen image models that turn frames into feature vectors.

Names and dims without Keras (catalog); one registry of builders (registry) that all return a BuiltModel
(built_model): mobilenet_v2 and scratch_cnn (fixed_models), keras:NAME / keras_file / keras_hub:PRESET
(backbones), tfhub (tfhub); weights files (weights) and their ImageNet download (weights_fetch); importing
Keras quietly (keras_loader). A loaded extractor (extractor) runs on Keras or OpenVINO (runtimes): converted
(openvino_conversion), compiled from the compile cache (openvino_runtime), quantized (openvino_int8), started
for `embed` without Keras from a start record (openvino_start).

This package file imports nothing, so `featcache.extractors.catalog` loads without Keras.
"""
