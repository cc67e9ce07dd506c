"""Settings written once: each is a dataclass field naming the environment variable it comes from (`env_field`).
`from_env` reads every one of them, nested dataclasses included; `settings_fields` lists them for what is derived
from them (orchestration/resources.py builds the Dagster resource's config from it)."""

from __future__ import annotations

import os
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from typing import Any


def env_field(name: str, default: Any = None, parse: Any = None, **kwargs: Any) -> Any:
    """A setting read from the environment variable ``name``; unset or empty: ``default``. ``parse``: how its text
    becomes the value (default: by the field's type: int, float, bool or text)."""
    return field(default=default, metadata={"env": name, "parse": parse}, **kwargs)


@dataclass(frozen=True)
class Setting:
    env: str  # the environment variable
    path: tuple[str, ...]  # where it sits in the settings object (nested dataclasses)
    type: Any  # the field's type, e.g. int | None
    default: Any
    parse: Any = None


def parse_bool(raw: str) -> bool:
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{raw!r} is not a boolean")


def _base(tp: Any) -> type:
    """int for int, int | None, Optional[int]."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def settings_fields(cls: type, prefix: tuple[str, ...] = ()) -> list[Setting]:
    """Every setting of a settings dataclass, nested ones included, in declaration order."""
    hints = typing.get_type_hints(cls)
    out: list[Setting] = []
    for f in fields(cls):
        tp = hints[f.name]
        if is_dataclass(tp):
            out += settings_fields(tp, (*prefix, f.name))
        elif "env" in f.metadata:
            default = f.default if f.default is not MISSING else None
            out.append(Setting(f.metadata["env"], (*prefix, f.name), tp, default, f.metadata.get("parse")))
    return out


def _value(setting: Setting, raw: Any) -> Any:
    if raw is None or raw == "":
        return setting.default
    if not isinstance(raw, str):
        if isinstance(raw, list) and typing.get_origin(setting.type) is tuple:
            return tuple(raw)  # a Dagster resource's config holds lists
        return raw  # typed already (a Dagster resource's config)
    if setting.parse is not None:
        try:
            return setting.parse(raw)
        except ValueError as e:
            raise ValueError(f"{setting.env}: {e}") from e
    base = _base(setting.type)
    if base is str:
        return raw
    try:
        return parse_bool(raw) if base is bool else base(raw)
    except ValueError as e:
        raise ValueError(f"{setting.env}={raw!r} is not a valid {base.__name__}") from e


def build(cls: type, values: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> Any:
    """An instance of the settings dataclass ``cls`` from ``values`` keyed by environment variable name."""
    hints = typing.get_type_hints(cls)
    kwargs = {}
    by_path = {s.path: s for s in settings_fields(cls, prefix)}
    for f in fields(cls):
        tp = hints[f.name]
        if is_dataclass(tp):
            kwargs[f.name] = build(tp, values, (*prefix, f.name))
        elif "env" in f.metadata:
            setting = by_path[(*prefix, f.name)]
            kwargs[f.name] = _value(setting, values.get(setting.env))
    return cls(**kwargs)


def value_of(settings: Any, setting: Setting) -> Any:
    """The value of one setting in a settings object."""
    for name in setting.path:
        settings = getattr(settings, name)
    return settings


def from_env(cls: type, env: Mapping[str, str] | None = None) -> Any:
    return build(cls, os.environ if env is None else env)


def comma_separated(raw: str) -> frozenset[str]:
    """A set of values written comma-separated (keys, origins)."""
    return frozenset(v.strip() for v in raw.split(",") if v.strip())
