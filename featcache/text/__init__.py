"""Text for the caches of CLIP-like extractors: class names as words, prompts, the text tower, zero-shot scores.

wording (class names turned into words, a `class,text` CSV, prompt templates; no Keras), tower (the text tower
of the preset a cache's image tower came from, checked against the weights the cache records), prompts (class
text embeddings, prompt-ensembled), zeroshot (video embeddings from stored frames, cosine scores, a text query
vector). Nothing here trains or writes a report: training (train --init-from-text) and inference (`featcache
zeroshot`) build on it.

This package file imports nothing, so `featcache.text.wording` loads without Keras.
"""
