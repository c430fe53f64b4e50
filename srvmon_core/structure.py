"""One cattrs converter for local configuration and API bodies: rules and silences.

Plain data (parsed TOML, or a JSON body posted to the REST API) becomes attrs classes here,
and only here. The converter is strict about JSON types (``true`` is not a number, ``"3"``
is not a number, a selector must be an object), refuses unknown keys, and every failure
becomes one :class:`ConfigError` naming the first bad field with its path, e.g.
``$.rules[2].selector.labels.tier``. The classes' own invariants (``crit`` not below
``warn``, an end after the start) run in their constructors and report their field the
same way.

This converter is for *local* data; the wire format of batches has its own, faster one
(:mod:`srvmon_core.codec`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar, get_args, get_origin

import attrs
import cattrs
from cattrs.errors import ForbiddenExtraKeysError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn

from srvmon_core.errors import ConfigError

T = TypeVar("T")


class _Invalid(Exception):
    """A value of the wrong type or out of range (internal to structuring)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _kind(value: Any) -> str:
    names = {dict: "object", list: "array", str: "str", bool: "bool", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _str(value: Any, _type: Any) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"must be a string, got {_kind(value)}")
    return value


def _float(value: Any, _type: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"must be a number, got {_kind(value)}")
    if not math.isfinite(value):
        raise _Invalid("must be a finite number")
    return float(value)


def _bool(value: Any, _type: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("must be true or false")
    return value


def _instant(value: Any, _type: Any) -> datetime:
    """ISO 8601 (naive means UTC) or epoch seconds, as a number or a numeric string."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Invalid("must be ISO 8601 or epoch seconds")
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (ValueError, OverflowError, OSError):
        pass
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise _Invalid("must be ISO 8601 or epoch seconds") from None
    return parsed.astimezone(UTC) if parsed.utcoffset() is not None else parsed.replace(tzinfo=UTC)


def _is_literal(tp: Any) -> bool:
    return get_origin(tp) is Literal


def _literal(tp: Any) -> Callable[[Any, Any], Any]:
    choices = get_args(tp)

    def structure(value: Any, _type: Any) -> Any:
        if value not in choices:
            raise _Invalid(f"must be one of {', '.join(map(str, choices))}; got {value!r}")
        return value

    return structure


def _note(exc: Exception, key: str) -> Exception:
    exc.__notes__ = [*getattr(exc, "__notes__", []), IterableValidationNote(key, key, str)]
    return exc


def _is_str_dict(tp: Any) -> bool:
    return get_origin(tp) is dict and get_args(tp) == (str, str)


def _str_dict(value: Any, _type: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _Invalid(f"must be an object, got {_kind(value)}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise cattrs.IterableValidationError(
                "While structuring an object",
                [_note(_Invalid(f"must be a string, got {_kind(item)}"), str(key))],
                dict,
            )
    return dict(value)


def _classes(converter: cattrs.Converter) -> Callable[[Any], Callable[[Any, Any], Any]]:
    def factory(cls: Any) -> Callable[[Any, Any], Any]:
        inner = make_dict_structure_fn(
            cls, converter, _cattrs_forbid_extra_keys=True, _cattrs_detailed_validation=True
        )

        def structure(value: Any, _type: Any) -> Any:
            if not isinstance(value, dict):
                raise _Invalid(f"must be an object, got {_kind(value)}")
            return inner(value, cls)

        return structure

    return factory


def make_config_converter() -> cattrs.Converter:
    """The converter for rules and silences (strict JSON types, no unknown keys)."""
    converter = cattrs.Converter(detailed_validation=True, forbid_extra_keys=True)
    converter.register_structure_hook(str, _str)
    converter.register_structure_hook(float, _float)
    converter.register_structure_hook(bool, _bool)
    converter.register_structure_hook(datetime, _instant)
    converter.register_structure_hook_factory(_is_literal, _literal)
    converter.register_structure_hook_factory(_is_str_dict, lambda _tp: _str_dict)
    converter.register_structure_hook_factory(attrs.has, _classes(converter))
    return converter


CONVERTER = make_config_converter()


def _step(note: Any) -> str:
    if isinstance(note, IterableValidationNote):
        return f"[{note.index}]" if isinstance(note.index, int) else f".{note.index}"
    return f".{note.name}"


def first_failure(exc: BaseException, path: str) -> ConfigError:
    """The first leaf failure of a cattrs error tree, as a ConfigError with its path."""
    if isinstance(exc, cattrs.ClassValidationError | cattrs.IterableValidationError):
        with_notes, without_notes = exc.group_exceptions()
        for sub, note in with_notes:
            return first_failure(sub, path + _step(note))
        for sub in without_notes:
            return first_failure(sub, path)
        return ConfigError("invalid value", path)
    if isinstance(exc, ForbiddenExtraKeysError):
        return ConfigError("unknown field", f"{path}.{sorted(exc.extra_fields)[0]}")
    if isinstance(exc, ConfigError):  # a class invariant, its path relative to the class
        return ConfigError(exc.message, path + exc.path[1:])
    if isinstance(exc, _Invalid):
        return ConfigError(exc.message, path)
    if isinstance(exc, KeyError):
        return ConfigError("is required", path)
    return ConfigError(f"invalid value ({type(exc).__name__}: {exc})", path)


def structure(data: object, cls: type[T], path: str = "$") -> T:
    """Plain data → ``cls``, raising ConfigError naming the first bad field under ``path``."""
    try:
        return CONVERTER.structure(data, cls)
    except _Invalid as exc:
        raise ConfigError(exc.message, path) from None
    except ConfigError as exc:
        raise ConfigError(exc.message, path + exc.path[1:]) from None
    except Exception as exc:  # any failure on untrusted data names its field
        raise first_failure(exc, path) from None
