"""Strict construction of frozen config dataclasses from parsed YAML.

Every field must be present (no hidden defaults), unknown keys are errors, values are checked
against the field's annotation, and every error names the dotted key and the params file.
Standard library + PyYAML only: stages and tests validate params without importing torch.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import yaml


class ParamsError(ValueError):
    """A params file is malformed; the message names the file and the dotted key."""


class FieldError(ValueError):
    """Raised by a config dataclass's validation; the loader prefixes the dotted location.

    Args:
        key: the offending field, relative to the dataclass raising it ("" for the whole object).
        message: what is wrong, including the offending value.
    """

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


def require(condition: bool, key: str, message: str) -> None:
    """Raise `FieldError(key, message)` unless `condition` holds."""
    if not condition:
        raise FieldError(key, message)


# --------------------------------------------------------------------------------------------
# YAML: YAML 1.2 floats (PyYAML's YAML 1.1 resolver reads `1e-4` as a string; DVC reads it as a
# float, so both must agree).


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    """SafeLoader's mappings, refusing a key given twice (PyYAML keeps the last; DVC refuses the
    file, so the two would disagree)."""
    loader.flatten_mapping(node)
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node.start_mark.line)
        except TypeError:  # an unhashable key: SafeLoader reports it below
            continue
        if first != key_node.start_mark.line:
            raise _DuplicateKey(
                f"line {key_node.start_mark.line + 1}: key {key!r} is given twice (first on line "
                f"{first + 1}); DVC refuses such a file"
            )
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


class _DuplicateKey(Exception):
    pass


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file with YAML 1.2 float rules; a syntax error names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        return yaml.load(path.read_text(), Loader=_Loader)
    except _DuplicateKey as exc:
        raise ParamsError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None


# --------------------------------------------------------------------------------------------
# Conversion


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) < 60 else text[:57] + '...'}"


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _fail(where: str, message: str) -> typing.NoReturn:
    raise ParamsError(f"{where}: {message}")


def build(tp: Any, value: Any, key: str, source: str) -> Any:
    """Convert parsed YAML `value` to type `tp`, checking it strictly.

    Args:
        tp: a type annotation: a config dataclass, int, float, bool, str, Path, Literal, tuple,
            dict[str, T], X | None, or a union of dataclasses told apart by their `kind` Literal.
        value: the parsed YAML value.
        key: dotted location of the value, for messages.
        source: the params file name, for messages.
    """
    where = f"{source}: {key}"
    if _is_union(tp):
        members = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            if type(None) in get_args(tp):
                return None
            _fail(where, "must be set (null is not allowed)")
        if len(members) == 1:
            return build(members[0], value, key, source)
        return _build_tagged(members, value, key, source)
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, value, key, source)
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices or (isinstance(value, bool) and not any(c is value for c in choices)):
            _fail(where, f"must be one of {list(choices)}, got {_describe(value)}")
        return value
    if origin is tuple:
        return _build_tuple(tp, value, key, source)
    if origin is dict:
        _, val_tp = get_args(tp)
        if not isinstance(value, dict):
            _fail(where, f"expected a mapping, got {_describe(value)}")
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                _fail(where, f"keys must be strings, got {_describe(k)}")
            out[k] = build(val_tp, v, f"{key}.{k}", source)
        return out
    return _build_scalar(tp, value, where)


def _build_scalar(tp: Any, value: Any, where: str) -> Any:
    if value is None:
        _fail(where, "must be set (null is not allowed)")
    if tp is bool:
        if not isinstance(value, bool):
            _fail(where, f"expected true/false, got {_describe(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(where, f"expected an integer, got {_describe(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(where, f"expected a number, got {_describe(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            _fail(where, f"expected a string, got {_describe(value)}")
        return value
    if tp is Path:
        if not isinstance(value, str) or not value:
            _fail(where, f"expected a path string, got {_describe(value)}")
        return Path(value)
    if tp is Any:
        return value
    raise TypeError(f"{where}: unsupported annotation {tp!r}")


def _build_tuple(tp: Any, value: Any, key: str, source: str) -> tuple:
    where = f"{source}: {key}"
    if not isinstance(value, list):
        _fail(where, f"expected a list, got {_describe(value)}")
    args = get_args(tp)
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(build(args[0], v, f"{key}[{i}]", source) for i, v in enumerate(value))
    if len(value) != len(args):
        _fail(where, f"expected a list of {len(args)} items, got {len(value)}")
    return tuple(build(a, v, f"{key}[{i}]", source) for i, (a, v) in enumerate(zip(args, value)))


def _kind_of(cls: Any) -> tuple:
    hints = typing.get_type_hints(cls)
    return get_args(hints["kind"]) if "kind" in hints else ()


def _build_tagged(members: list, value: Any, key: str, source: str) -> Any:
    where = f"{source}: {key}"
    kinds = {k: m for m in members for k in _kind_of(m)}
    if not isinstance(value, dict) or "kind" not in value:
        _fail(where, f"expected a mapping with a 'kind' key (one of {sorted(kinds)})")
    if value["kind"] not in kinds:
        _fail(f"{where}.kind", f"must be one of {sorted(kinds)}, got {_describe(value['kind'])}")
    return _build_dataclass(kinds[value["kind"]], value, key, source)


def _build_dataclass(cls: Any, value: Any, key: str, source: str) -> Any:
    where = f"{source}: {key}" if key else source
    if not isinstance(value, dict):
        _fail(where, f"expected a mapping, got {_describe(value)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    prefix = f"{key}." if key else ""
    unknown = [k for k in value if k not in names]
    if unknown:
        _fail(f"{source}: {prefix}{unknown[0]}", f"is not a known key (known: {', '.join(names)})")
    missing = [n for n in names if n not in value]
    if missing:
        _fail(f"{source}: {prefix}{missing[0]}", "is missing (every key must be given explicitly)")
    kwargs = {n: build(hints[n], value[n], f"{prefix}{n}", source) for n in names}
    try:
        return cls(**kwargs)
    except FieldError as exc:
        loc = f"{prefix}{exc.key}" if exc.key else (key or "(top level)")
        raise ParamsError(f"{source}: {loc}: {exc.message}") from None


def to_plain(obj: Any) -> Any:
    """The inverse of `build`: dataclasses → dicts, tuples → lists, Paths → strings."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
