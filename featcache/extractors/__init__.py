"""Frozen image models that turn frames into feature vectors: names and dims without Keras (catalog), building
them (registry, backbones), their weights (weights, weights_fetch), and importing Keras quietly (keras_loader).

This package file imports nothing, so `featcache.extractors.catalog` loads without Keras.
"""
