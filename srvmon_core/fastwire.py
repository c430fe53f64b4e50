"""The fast path of decoding: one generated function per schema class, for well-formed
envelopes.

``batch_from_dict`` tries these first. Each function checks every JSON type and every
field validator of its class inline (no hook call per field, no keyword dict) and builds
the frozen instance directly. It accepts a *subset* of what the cattrs wire converter
accepts: anything unusual (a non-ASCII string, an integer beyond 64 bits, a key missing, a
value out of range) makes it give up with :class:`Fallback`, and the caller decodes the
same data with the converter, which accepts it or explains exactly what is wrong. So the
fast path changes speed, never results (``tests/core/test_fastwire.py`` checks both on
generated and on broken documents).

The code is generated from the attrs fields when this module is imported, as attrs and
cattrs generate theirs; a field type or validator it does not know is decoded by the
converter's own hook for that type.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Any, get_args, get_origin

import attrs
import cattrs

from srvmon_core import schema

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
INF = math.inf


class Fallback(Exception):
    """The fast path gives up; decode with the converter instead."""


def is_optional(tp: Any) -> tuple[bool, Any]:
    """``(True, X)`` for ``X | None``, else ``(False, tp)``."""
    args = get_args(tp)
    if get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return True, rest[0]
    return False, tp


class _Generator:
    """Writes the source of one class's structure function."""

    def __init__(self, cls: type, converter: cattrs.Converter, fast: dict[type, Any]) -> None:
        self.cls = cls
        self.converter = converter
        self.fast = fast
        self.names: dict[str, Any] = {"Fallback": Fallback, "INF": INF, "NEW": object.__new__}
        self.names.update({"SET": object.__setattr__, "INT_MIN": INT_MIN, "INT_MAX": INT_MAX})
        self.lines: list[str] = []
        self.after: list[str] = []
        self.counter = 0

    def name(self, value: Any) -> str:
        self.counter += 1
        key = f"G{self.counter}"
        self.names[key] = value
        return key

    def scalar(self, var: str, tp: Any, validator: Any, indent: str) -> list[str] | None:
        """Inline checks of one scalar value in ``var``; None for a type not handled."""
        nn = validator is schema._finite_non_negative
        finite = validator is schema._finite
        low = "0.0 <= " if nn else "-INF < "
        if tp is float:
            return [
                f"{indent}c = {var}.__class__",
                f"{indent}if c is int:",
                f"{indent}    if not (INT_MIN <= {var} <= INT_MAX): raise Fallback",
                f"{indent}    {var} = float({var})",
                f"{indent}elif c is not float: raise Fallback",
                f"{indent}if not ({low}{var} < INF): raise Fallback",
            ]
        if tp is int and (nn or validator is None):
            floor = "0" if nn else "INT_MIN"
            return [
                f"{indent}if {var}.__class__ is not int or not ({floor} <= {var} <= INT_MAX):",
                f"{indent}    raise Fallback",
            ]
        if tp is str and validator is None:
            return [
                f"{indent}if {var}.__class__ is not str or not {var}.isascii():",
                f"{indent}    raise Fallback",
            ]
        if tp is str and isinstance(validator, schema.IdRule):
            match = self.name(validator.pattern.fullmatch)
            return [
                f"{indent}if {var}.__class__ is not str or {match}({var}) is None:",
                f"{indent}    raise Fallback",
            ]
        if tp is str and isinstance(validator, schema.TextRule):
            empty = "" if validator.empty else f" or not {var}"
            return [
                f"{indent}if ({var}.__class__ is not str or not {var}.isascii()"
                f" or len({var}) > {validator.limit} or not {var}.isprintable(){empty}):",
                f"{indent}    raise Fallback",
            ]
        del finite  # only floats carry _finite in the schema
        return None

    def value(self, var: str, tp: Any, validator: Any, indent: str) -> list[str]:
        """Checks or converts ``var`` (never None here) to ``tp``."""
        inline = self.scalar(var, tp, validator, indent)
        if inline is not None:
            return inline
        known_validators = (None, schema._aware)
        if tp is datetime and validator in known_validators:
            parse = self.name(self.converter.get_structure_hook(datetime))
            return [f"{indent}{var} = {parse}({var}, None)"]  # always aware
        if get_origin(tp) is dict and get_args(tp) == (str, str):
            lines = [
                f"{indent}if {var}.__class__ is not dict: raise Fallback",
                f"{indent}for x in {var}.values():",
                f"{indent}    if x.__class__ is not str or not x.isascii(): raise Fallback",
                f"{indent}{var} = dict({var})",
            ]
            if validator is schema._labels:  # inline: most label sets are empty or small
                problem = self.name(schema.labels_problem)
                lines.append(f"{indent}if {var} and {problem}({var}) is not None: raise Fallback")
            elif validator is not None:  # run once the instance is built
                lines.append(f"{indent}V.append(({self.name(validator)}, {var!r}))")
            return lines
        if get_origin(tp) is tuple and len(get_args(tp)) == 2 and get_args(tp)[1] is Ellipsis:
            item = get_args(tp)[0]
            lines = [f"{indent}if {var}.__class__ is not list: raise Fallback"]
            if item in self.fast:
                structure = self.name(self.fast[item])
                lines.append(f"{indent}{var} = tuple([{structure}(x) for x in {var}])")
            else:
                checker = self.name(_item_checker(item, self))
                lines.append(f"{indent}{var} = tuple([{checker}(x) for x in {var}])")
            if validator is not None:
                lines.append(f"{indent}V.append(({self.name(validator)}, {var!r}))")
            return lines
        if tp in self.fast and validator is None:
            return [f"{indent}{var} = {self.name(self.fast[tp])}({var})"]
        hook = self.name(self.converter.get_structure_hook(tp))
        kind = self.name(tp)
        lines = [f"{indent}{var} = {hook}({var}, {kind})"]
        if validator is not None:
            lines.append(f"{indent}V.append(({self.name(validator)}, {var!r}))")
        return lines

    def setter(self, name: str, var: str) -> str:
        """The line that stores ``var`` in field ``name`` of the frozen instance ``o``:
        through the slot's own descriptor when the class has one (about 35 ns less per
        field than ``object.__setattr__``, which looks the name up first)."""
        slot = getattr(self.cls, name, None)
        if isinstance(slot, types.MemberDescriptorType):
            return f"    {self.name(slot.__set__)}(o, {var})"
        return f"    SET(o, {name!r}, {var})"

    def source(self) -> str:
        fields = attrs.fields(self.cls)
        hints = typing.get_type_hints(self.cls)
        body = [
            "def structure(d):",
            "    if d.__class__ is not dict: raise Fallback",
            "    get = d.get",
            "    V = []",
            "    o = NEW(CLS)",
        ]
        self.names["CLS"] = self.cls
        self.names["MISSING"] = _MISSING
        for index, field in enumerate(fields):
            var = f"v{index}"
            optional, tp = is_optional(hints[field.name])
            default = field.default
            if optional and default is None:  # absent and null mean the same: one test
                body.append(f"    {var} = get({field.name!r})")
                body.append(f"    if {var} is not None:")
                body.extend(self.value(var, tp, field.validator, "        "))
                body.append(self.setter(field.name, var))
                continue
            body.append(f"    {var} = get({field.name!r}, MISSING)")
            body.append(f"    if {var} is MISSING:")
            if default is attrs.NOTHING:
                body.append("        raise Fallback")
            elif isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                body.append(f"        {var} = {self.name(default.factory)}()")
            else:
                body.append(f"        {var} = {self.name(default)}")
            checks = self.value(var, tp, field.validator, "        ")
            if optional:
                body.append(f"    elif {var} is not None:")
            else:
                body.append("    else:")
            body.extend(checks)
            body.append(self.setter(field.name, var))
        body.append("    for validate, value in V:")
        body.append("        validate(o, FIELDS[value], getattr(o, NAMES[value]))")
        body.append("    return o")
        self.names["FIELDS"] = {f"v{i}": f for i, f in enumerate(fields)}
        self.names["NAMES"] = {f"v{i}": f.name for i, f in enumerate(fields)}
        return "\n".join(body)

    def build(self) -> Callable[[Any], Any]:
        source = self.source()
        namespace = dict(self.names)
        exec(source, namespace)
        function: Callable[[Any], Any] = namespace["structure"]
        return function


_MISSING = object()


def _item_checker(tp: Any, generator: _Generator) -> Callable[[Any], Any]:
    """A one-value checker for tuple items that are scalars (floats, strings)."""
    lines = generator.scalar("v", tp, None, "    ")
    if lines is None:
        hook = generator.converter.get_structure_hook(tp)
        return lambda value: hook(value, tp)
    source = "\n".join(["def check(v):", *lines, "    return v"])
    namespace: dict[str, Any] = {"Fallback": Fallback, "INF": INF}
    namespace.update({"INT_MIN": INT_MIN, "INT_MAX": INT_MAX})
    exec(source, namespace)
    checker: Callable[[Any], Any] = namespace["check"]
    return checker


SCHEMA_CLASSES: tuple[type, ...] = (
    schema.DiskUsage,
    schema.DiskIO,
    schema.NetIO,
    schema.Temperature,
    schema.AgentStats,
    schema.ContainerSample,
    schema.HostSample,
    schema.Batch,
)
"""In dependency order: a class's fast function may call those before it."""


def make_fast_structurers(converter: cattrs.Converter) -> dict[type, Callable[[Any], Any]]:
    """The fast structure function of every schema class (``converter`` decodes what the
    generated code leaves to it)."""
    fast: dict[type, Callable[[Any], Any]] = {}
    for cls in SCHEMA_CLASSES:
        fast[cls] = _Generator(cls, converter, fast).build()
    return fast
