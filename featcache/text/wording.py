"""Class names as words and prompt templates, the text side of zero-shot classification (no Keras).

`PlayingCello` -> "playing cello", `apply_eye_makeup` -> "apply eye makeup"; a CSV `class,text` overrides
the wording of any class; each prompt template has one `{}` where the class's words go.
"""

from __future__ import annotations

import re
from pathlib import Path

from featcache.errors import InputError
from featcache.user_text import read_user_csv

# The CLIP paper's default prompt for ImageNet ("A photo of a {label}."), for videos of people's actions.
DEFAULT_PROMPTS = ("a video of a person {}.",)

# Word boundaries inside a CamelCase or snake_case name: lower->Upper, digit<->letter, an acronym's end (YOYOPlay).
_CAMEL_BOUNDARY = re.compile(
    r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])|(?<=[A-Za-z])(?=[0-9])|(?<=[0-9])(?=[A-Za-z])"
)
_SEPARATORS = re.compile(r"[_\-\s.]+")


def class_name_words(class_name: str) -> str:
    """A class name as lower-case words: "PlayingCello" -> "playing cello", "apply_eye_makeup" -> "apply eye makeup".

    An acronym stays one word ("YOYOPlay" -> "yoyo play", "TV_news" -> "tv news"); digits are words ("class10").
    """
    words = []
    for part in _SEPARATORS.split(class_name.strip()):
        words += [word for word in _CAMEL_BOUNDARY.split(part) if word]
    return " ".join(word.lower() for word in words)


def read_class_texts(csv_path: Path) -> dict[str, str]:
    """{class name: its words} from a CSV `class,text` (a header row `class,text` is optional).

    Raises InputError for a missing file, a row without two fields, an empty text or a class given twice.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputError(f"--class-texts {csv_path}: no such file; give a CSV with rows class,text")
    texts: dict[str, str] = {}
    rows = [(line, row) for line, row in read_user_csv(csv_path, f"--class-texts {csv_path}") if "".join(row).strip()]
    if rows and [field.strip().lower() for field in rows[0][1]] == ["class", "text"]:
        rows = rows[1:]
    for line_number, row in rows:
        if len(row) != 2 or not row[1].strip():
            raise InputError(
                f"--class-texts {csv_path}, line {line_number}: expected two fields class,text, got {row!r}"
            )
        name = row[0].strip()
        if name in texts:
            raise InputError(f"--class-texts {csv_path}, line {line_number}: class {name!r} is given twice")
        texts[name] = row[1].strip()
    return texts


def class_words(class_names: list[str], class_texts: dict[str, str] | None = None) -> list[str]:
    """The words each class is described by: its CSV text when given, else `class_name_words`.

    Raises InputError when the CSV names a class that is not among `class_names` (a typo would be ignored).
    """
    class_texts = dict(class_texts or {})
    unknown = sorted(set(class_texts) - set(class_names))
    if unknown:
        raise InputError(
            f"--class-texts names class(es) {', '.join(unknown)} that are not among the classes "
            f"({', '.join(class_names)})"
        )
    return [class_texts.get(name, class_name_words(name)) for name in class_names]


def check_prompts(prompts: list[str] | tuple[str, ...]) -> list[str]:
    """The prompt templates, each checked to hold exactly one `{}`; DEFAULT_PROMPTS when none are given."""
    prompts = list(prompts) or list(DEFAULT_PROMPTS)
    for prompt in prompts:
        if prompt.count("{}") != 1:
            raise InputError(
                f"--prompt {prompt!r}: a prompt template needs exactly one {{}} where the class's words go, "
                'e.g. --prompt "a video of a person {}."'
            )
    return prompts


def prompt_texts(words: str, prompts: list[str]) -> list[str]:
    """Every prompt template filled with one class's words."""
    return [prompt.replace("{}", words) for prompt in prompts]
