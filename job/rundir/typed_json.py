"""Dataclasses to JSON and back, with every type checked on the way in: a bad key is named in one line."""

from __future__ import annotations

import math
import types
import typing
from dataclasses import MISSING, fields, is_dataclass
from typing import Any

import numpy as np


def to_jsonable(value: Any) -> Any:
    """Dataclasses to dicts (a class may shape its own with `json_object()`); JSON has no NaN, so non-finite
    floats become null."""
    if is_dataclass(value) and not isinstance(value, type):
        shaped = getattr(value, "json_object", None)
        value = shaped() if shaped is not None else {f.name: getattr(value, f.name) for f in fields(value)}
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    return value


class Bad(ValueError):
    pass


def parse_as(tp: Any, raw: Any) -> Any:
    """Parsed JSON as dataclass `tp`, types checked all the way down; ValueError names the bad key."""
    return build(tp, raw, "")


def build(tp: Any, value: Any, where: str) -> Any:
    """`value` (parsed JSON) as type `tp`, checked all the way down; Bad names the key that is wrong."""
    if tp is Any:
        return value
    if isinstance(tp, type) and is_dataclass(tp):
        return _build_dataclass(tp, value, where)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        members = [a for a in args if a is not type(None)]
        for inner in members[:-1]:  # `float | bool`: the first member that takes the value
            try:
                return build(inner, value, where)
            except Bad:
                continue
        return build(members[-1], value, where)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise Bad(f"key {where!r} must be a list, not {_kind(value)}")
        variadic = origin is list or (len(args) == 2 and args[1] is Ellipsis)  # list[X], tuple[X, ...]
        if not variadic and len(args) != len(value):
            raise Bad(f"key {where!r} must have {len(args)} items, not {len(value)}")
        kinds = [args[0]] * len(value) if variadic else args
        items = [build(t, v, f"{where}[{i}]") for i, (t, v) in enumerate(zip(kinds, value, strict=True))]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise Bad(f"key {where!r} must be an object, not {_kind(value)}")
        return {k: build(args[1], v, f"{where}.{k}") for k, v in value.items()}
    return _scalar(tp, value, where)


def _build_dataclass(tp: type, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise Bad(f"key {where or '(top level)'!r} must be an object, not {_kind(value)}")
    nest = getattr(tp, "from_json_object", None)  # a class that shapes its own JSON reads it back the same way
    if nest is not None:
        try:
            value = nest(value, where)
        except ValueError as exc:
            raise Bad(str(exc)) from None
    hints = typing.get_type_hints(tp)
    kwargs = {}
    for f in fields(tp):
        key = f"{where}.{f.name}" if where else f.name
        if f.metadata.get("flat"):  # its keys sit in this object: name them as run.json spells them
            key = where
        if f.name not in value:
            if f.default is MISSING and f.default_factory is MISSING:
                raise Bad(f"missing key {key!r}")
            continue
        kwargs[f.name] = build(hints[f.name], value[f.name], key)
    return tp(**kwargs)


def _scalar(tp: type, value: Any, where: str) -> Any:
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and isinstance(value, tp) and not (tp is int and isinstance(value, bool)):
        return value
    raise Bad(f"key {where!r} must be {tp.__name__}, not {_kind(value)}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
