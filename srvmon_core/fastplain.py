"""The fast path of unstructuring: one generated function per flat schema class.

A class is flat when every field holds a JSON scalar (``str``, ``int``, ``float``,
``bool``, each optionally ``None``), a ``datetime`` (optionally ``None``) or a
``dict[str, str]``. Its function reads each slot once and writes the plain dict straight
out: no hook call per field, no dispatch on the field's type. cattrs' own generated
function dispatches ``dict`` and ``X | None`` fields through hooks, which made a
container's sample cost three times as much to unstructure as to read.

The result is the one the converter's own function gives, key for key and type for type
(``tests/core/test_fastplain.py`` compares both on generated samples): fields in
declaration order, datetimes through the converter's ``datetime`` hook, a fresh ``dict``
for a ``dict[str, str]``. Classes with any other field type are left to cattrs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import attrs

from srvmon_core.fastwire import is_optional

_SCALARS = (str, int, float, bool)


def _kind(tp: Any) -> str | None:
    """How a field of type ``tp`` is written: "same", "datetime", "str_dict", or None
    (not flat)."""
    _, bare = is_optional(tp)
    if bare in _SCALARS:
        return "same"
    if bare is datetime:
        return "datetime"
    if tp == dict[str, str]:
        return "str_dict"
    return None


def is_flat(cls: Any) -> bool:
    """Whether ``cls`` is an attrs class whose fields are all flat (see the module)."""
    if not (isinstance(cls, type) and attrs.has(cls)):
        return False
    fields = attrs.fields(attrs.resolve_types(cls))
    return all(_kind(f.type) is not None for f in fields)


def flat_unstructurer(
    cls: type, unstructure_datetime: Callable[[datetime], Any]
) -> Callable[[Any], dict[str, Any]]:
    """The generated unstructure function of the flat class ``cls``; datetimes go
    through ``unstructure_datetime``. Raises TypeError when ``cls`` is not flat."""
    if not is_flat(cls):
        raise TypeError(f"{cls.__qualname__} has a field that is not flat")
    lines = ["def unstructure(o):"]
    items = []
    for field in attrs.fields(cls):
        name = field.name
        kind = _kind(field.type)
        if kind == "same":
            items.append(f"{name!r}: o.{name}")
        elif kind == "str_dict":
            items.append(f"{name!r}: dict(o.{name})")
        elif field.type is datetime:
            items.append(f"{name!r}: DATETIME(o.{name})")
        else:
            lines.append(f"    v_{name} = o.{name}")
            items.append(f"{name!r}: None if v_{name} is None else DATETIME(v_{name})")
    lines.append("    return {" + ", ".join(items) + "}")
    namespace: dict[str, Any] = {"DATETIME": unstructure_datetime}
    exec(compile("\n".join(lines), f"<fastplain {cls.__qualname__}>", "exec"), namespace)
    function: Callable[[Any], dict[str, Any]] = namespace["unstructure"]
    return function
