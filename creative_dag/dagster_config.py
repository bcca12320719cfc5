"""Dagster run config built from the compute modules' parameter dataclasses.

A stage's knobs live once, in its plain-Python parameter dataclass (names, types, defaults and the
`name: meaning` lines of its docstring). `config_from(Params, "a", "b")` makes the Dagster Config base
class exposing the fields a user may set from the launchpad or `--config`; `to_params()` turns a run's
config back into the dataclass, so a default changed in the compute module is the default in Dagster.
"""

import dataclasses
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import pydantic

_NAMES = r"[a-z_][a-z0-9_]*(?:\s*/\s*[a-z_][a-z0-9_]*)*"
_FIELD_START = re.compile(rf"(?:^|;|\n)\s*({_NAMES}):\s+")


def field_descriptions(params: type) -> dict[str, str]:
    """`name: meaning` entries of a dataclass docstring, one per line or `;`-separated (`a / b: meaning`
    describes both); an entry ends at the next one or at a blank line."""
    doc = params.__doc__ or ""
    fields = {f.name for f in dataclasses.fields(params)}
    starts = [m for m in _FIELD_START.finditer(doc)
              if all(name.strip() in fields for name in m.group(1).split("/"))]
    out: dict[str, str] = {}
    for i, match in enumerate(starts):
        stop = starts[i + 1].start() if i + 1 < len(starts) else len(doc)
        text = re.split(r"\n\s*\n", doc[match.end():stop])[0]
        text = " ".join(text.split()).rstrip(";").strip()
        for name in match.group(1).split("/"):
            out[name.strip()] = text
    return out


def _config_type(hint: Any, default: Any) -> tuple[Any, Any]:
    """Dagster config has lists, not tuples; an optional text setting is "" when unset."""
    if typing.get_origin(hint) is tuple:
        return list[typing.get_args(hint)[0]], list(default)
    if _is_optional_str(hint):
        return str, default or ""
    return hint, default


def _is_optional_str(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and set(typing.get_args(hint)) == {str, type(None)}


def config_from(params: type, *fields: str, also: Mapping[type, Sequence[str]] | None = None,
                base: type = dg.Config) -> type:
    """A Dagster Config base class (or `base`, e.g. dg.ConfigurableResource) whose fields are `fields`
    of the dataclass `params` (and of each dataclass in `also`), with their types, defaults and
    docstring descriptions; subclass it to add the asset's own fields or validation."""
    sources = {params: fields, **(also or {})}
    spec = {}
    for source, names in sources.items():
        hints = typing.get_type_hints(source)
        defaults = source()
        descriptions = field_descriptions(source)
        unknown = [name for name in names if name not in hints]
        if unknown:
            raise TypeError(f"{source.__name__} has no field {', '.join(unknown)}")
        for name in names:
            hint, default = _config_type(hints[name], getattr(defaults, name))
            spec[name] = (hint, pydantic.Field(default=default, description=descriptions.get(name)))
    model = pydantic.create_model(f"{params.__name__}Fields", __base__=(base, _ToParams), **spec)
    model._sources = sources
    model._primary = params
    return model


class _ToParams:
    """Mixed into config_from's classes."""

    def to_params(self, params: type | None = None, **overrides: Any) -> Any:
        """The parameter dataclass (config_from's first, or `params`) with this run's values (tuples
        restored) and `overrides`."""
        params = params or type(self)._primary
        hints = typing.get_type_hints(params)
        values = {}
        for name in type(self)._sources[params]:
            value = getattr(self, name)
            if typing.get_origin(hints[name]) is tuple:
                value = tuple(value)
            elif _is_optional_str(hints[name]):
                value = value or None
            values[name] = value
        return dataclasses.replace(params(), **{**values, **overrides})


def field_names(params: type) -> list[str]:
    """Every field of a parameter dataclass (for configs that expose all of them)."""
    return [f.name for f in dataclasses.fields(params)]
