"""Class text embeddings: every prompt template filled with a class's words, embedded, ensembled.

Prompt ensembling as in the CLIP paper (Radford et al. 2021, section 3.1.4, and its ImageNet notebook): each
prompt's embedding is L2-normalized, the class's prompts are averaged, and the mean is normalized again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from featcache.text.tower import TextTower
from featcache.text.wording import check_prompts, class_words, prompt_texts


@dataclass(frozen=True)
class ClassTexts:
    """The text side of a zero-shot classifier.

    embeddings: float32 (num_classes, embedding_dim), unit rows, in the order of class_names.
    words: each class's words (from its name or the --class-texts CSV); prompts: the templates used.
    """

    class_names: list[str]
    words: list[str]
    prompts: list[str]
    embeddings: np.ndarray

    def provenance(self, tower: TextTower) -> dict:
        """What a model folder or report records of them (JSON-able)."""
        return {
            "preset": tower.preset,
            "prompts": list(self.prompts),
            "class_words": dict(zip(self.class_names, self.words)),
        }


def l2_normalize(vectors: np.ndarray, axis: int = -1) -> np.ndarray:
    """float32 `vectors` scaled to unit length along `axis` (a zero vector stays zero)."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=axis, keepdims=True)
    return vectors / np.maximum(norms, np.finfo(np.float32).tiny)


def class_text_embeddings(
    tower: TextTower,
    class_names: list[str],
    prompts: list[str] | tuple[str, ...] = (),
    class_texts: dict[str, str] | None = None,
) -> ClassTexts:
    """Embed every class: each prompt template (default wording.DEFAULT_PROMPTS) filled with the class's words,
    normalized, averaged over the prompts, normalized again. One call of the tower for all prompts."""
    prompts = check_prompts(prompts)
    words = class_words(class_names, class_texts)
    texts = [text for class_word in words for text in prompt_texts(class_word, prompts)]
    embedded = l2_normalize(tower.embed_texts(texts)).reshape(len(class_names), len(prompts), -1)
    return ClassTexts(list(class_names), words, prompts, l2_normalize(embedded.mean(axis=1)))
