"""The schema of a pipeline file is the config dataclasses: their fields and type hints.

build_config turns one TOML table into a config, mapping CLI option names to fields; a key the config
lacks or a value of the wrong type is an InputError naming the file, the table and the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

from featcache.errors import InputError


def build_config(
    config_class: type,
    table: dict[str, Any],
    path: Path,
    where: str,
    option_fields: dict[str, str] | None = None,
    extra_keys: tuple[str, ...] = (),
) -> Any:
    """config_class(**table) with option names mapped to fields, unknown keys and wrong types as InputError."""
    option_fields = option_fields or {}
    option_of_field = {field_name: option for option, field_name in option_fields.items()}
    known = [option_of_field.get(f.name, f.name) for f in dataclasses.fields(config_class)]
    reject_unknown_keys(table, known + list(extra_keys), path, where)
    options = typed_options(config_class, table, path, where, option_fields)
    try:
        return config_class(**{option_fields.get(key, key): value for key, value in options.items()})
    except InputError as err:
        raise InputError(f"{path}: {where} {err}") from err


def typed_options(
    config_class: type, table: dict[str, Any], path: Path, where: str, option_fields: dict[str, str]
) -> dict[str, Any]:
    hints = typing.get_type_hints(config_class)
    return {
        key: typed_value(value, hints[option_fields.get(key, key)], path, f"{where} {key}")
        for key, value in table.items()
    }


def reject_unknown_keys(table: dict[str, Any], known: Any, path: Path, where: str) -> None:
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise InputError(f"{path}: {where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def typed_value(value: Any, hint: Any, path: Path, where: str) -> Any:
    """`value` converted to `hint` (int -> float, list -> tuple); InputError when a TOML value has the wrong type."""
    converted = _convert(value, hint)
    if converted is _WRONG_TYPE:
        raise InputError(f"{path}: {where} must be {_describe_type(hint)}, got {value!r} ({type(value).__name__})")
    return converted


_WRONG_TYPE = object()


def _convert(value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            converted = _convert(value, option)
            if converted is not _WRONG_TYPE:
                return converted
        return _WRONG_TYPE
    if hint is type(None):
        return None if value is None else _WRONG_TYPE
    if hint is Any:
        return value
    if hint is bool:
        return value if isinstance(value, bool) else _WRONG_TYPE
    if hint is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else _WRONG_TYPE
    if hint is float:
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else _WRONG_TYPE
    if hint is str:
        return value if isinstance(value, str) else _WRONG_TYPE
    if hint is Path:
        return Path(value) if isinstance(value, str) else _WRONG_TYPE
    if origin in (tuple, list):
        item_hint = typing.get_args(hint)[0]
        if not isinstance(value, list):
            return _WRONG_TYPE
        items = [_convert(item, item_hint) for item in value]
        return _WRONG_TYPE if any(item is _WRONG_TYPE for item in items) else origin(items)
    if origin is dict:
        return value if isinstance(value, dict) else _WRONG_TYPE
    raise AssertionError(f"pipeline type {hint!r} has no TOML conversion")  # a new config field type: add it here


def _describe_type(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe_type(option) for option in typing.get_args(hint) if option is not type(None))
    if origin in (tuple, list):
        return f"a list of {_describe_type(typing.get_args(hint)[0]).split(' ', 1)[1]}s"
    if origin is dict:
        return "a table { key = value, ... }"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a string"}.get(
        hint, str(hint)
    )


def resolve(path_text: str, base_dir: Path) -> Path:
    path = Path(path_text).expanduser()
    return path if path.is_absolute() else base_dir / path
