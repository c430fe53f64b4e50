"""The JSON wire format: one cattrs converter, pure encode/decode functions.

Decoding untrusted bytes raises only :class:`DecodeError`, naming the field path
(``$.containers[3].cpu_percent``) and saying what is wrong with it.

Decoding runs generated code first (:mod:`srvmon_core.fastwire`), then, for anything it
leaves aside, a fast converter. Only when that fails is the document structured a third
time by a converter with detailed validation, to find the first bad field.
docs/wire-format.md describes the format and its rules.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any, get_args, get_origin

import attrs
import cattrs
from cattrs.errors import IterableValidationNote
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.json import make_converter

from srvmon_core.errors import DecodeError
from srvmon_core.fastplain import flat_unstructurer, is_flat
from srvmon_core.fastwire import make_fast_structurers
from srvmon_core.schema import SCHEMA_VERSION, Batch, FieldValueError

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
"""Integers on the wire must fit a signed 64-bit column, as the server stores them."""

_REPR_LIMIT = 40


class WireTypeError(Exception):
    """A wire value has the wrong JSON type or is out of range (internal to decoding)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NonFiniteLiteral:
    """A ``NaN``/``Infinity``/``-Infinity`` literal kept in place of its value, so that the
    legacy decoder can name the field that carries it (only legacy documents get these)."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal

    def __repr__(self) -> str:
        return self.literal


def describe(value: Any) -> str:
    """A short, JSON-flavoured description of a value for error messages."""
    if isinstance(value, NonFiniteLiteral):
        return value.literal
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        text = repr(value)
        if len(text) > _REPR_LIMIT:
            return f"a number with {len(text)} digits"
        return text
    if isinstance(value, str):
        text = json.dumps(value)
        if len(text) > _REPR_LIMIT:
            text = text[: _REPR_LIMIT - 4] + '..."'
        return f"string {text}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _structure_float(value: Any, _type: Any) -> float:
    kind = type(value)
    if kind is float:
        if math.isfinite(value):
            return value  # type: ignore[no-any-return]
        raise WireTypeError(f"must be a finite number, got {describe(value)}")
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            raise WireTypeError(f"must be a finite number, got {describe(value)}") from None
    raise WireTypeError(f"must be a number, got {describe(value)}")


def _structure_int(value: Any, _type: Any) -> int:
    if type(value) is not int:
        raise WireTypeError(f"must be an integer, got {describe(value)}")
    if not INT_MIN <= value <= INT_MAX:
        raise WireTypeError(f"must fit in 64 bits, got {describe(value)}")
    return value


def _structure_str(value: Any, _type: Any) -> str:
    if type(value) is not str:
        raise WireTypeError(f"must be a string, got {describe(value)}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise WireTypeError("must be valid Unicode text (lone surrogate escape)") from None
    return value


def _structure_datetime(value: Any, _type: Any) -> datetime:
    if type(value) is not str:
        raise WireTypeError(f"must be an ISO 8601 string, got {describe(value)}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise WireTypeError(f"must be an ISO 8601 timestamp, got {describe(value)}") from None
    if parsed.utcoffset() is None:
        raise WireTypeError(f"must carry a time zone, e.g. a trailing Z, got {describe(value)}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise WireTypeError(f"is out of range, got {describe(value)}") from None


_SCALARS: dict[Any, Callable[[Any, Any], Any]] = {
    float: _structure_float,
    int: _structure_int,
    str: _structure_str,
    datetime: _structure_datetime,
}


def _unstructure_datetime(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _note_index(exc: Exception, index: int | str, item_type: Any) -> Exception:
    note = IterableValidationNote(f"Structuring item @ index {index!r}", index, item_type)
    exc.__notes__ = [*getattr(exc, "__notes__", []), note]
    return exc


def _tuple_factory(
    converter: cattrs.Converter, detailed: bool
) -> Callable[[Any], Callable[[Any, Any], tuple[Any, ...]]]:
    def factory(tuple_type: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
        item_type = get_args(tuple_type)[0]
        item = converter.get_structure_hook(item_type)

        def structure(value: Any, _type: Any) -> tuple[Any, ...]:
            if type(value) is not list:
                raise WireTypeError(f"must be an array, got {describe(value)}")
            if not detailed:
                return tuple([item(v, item_type) for v in value])
            out = []
            for index, element in enumerate(value):
                try:
                    out.append(item(element, item_type))
                except Exception as exc:
                    raise cattrs.IterableValidationError(
                        "While structuring an array", [_note_index(exc, index, item_type)], list
                    ) from None
            return tuple(out)

        return structure

    return factory


def _str_dict_factory(detailed: bool) -> Callable[[Any], Callable[[Any, Any], dict[str, str]]]:
    def factory(_dict_type: Any) -> Callable[[Any, Any], dict[str, str]]:
        def structure(value: Any, _type: Any) -> dict[str, str]:
            if type(value) is not dict:
                raise WireTypeError(f"must be an object, got {describe(value)}")
            for key, item in value.items():
                try:
                    _structure_str(item, str)
                except WireTypeError as exc:
                    if not detailed:
                        raise
                    raise cattrs.IterableValidationError(
                        "While structuring an object", [_note_index(exc, key, str)], dict
                    ) from None
            return dict(value)

        return structure

    return factory


def _attrs_factory(
    converter: cattrs.Converter, detailed: bool
) -> Callable[[Any], Callable[[Any, Any], Any]]:
    def factory(cls: Any) -> Callable[[Any, Any], Any]:
        inner = make_dict_structure_fn(
            cls,
            converter,
            _cattrs_forbid_extra_keys=False,
            _cattrs_detailed_validation=detailed,
        )

        def structure(value: Any, _type: Any) -> Any:
            if type(value) is not dict:
                raise WireTypeError(f"must be an object, got {describe(value)}")
            return inner(value, cls)

        return structure

    return factory


def _optional_of(tp: Any) -> Any:
    """``X`` for ``X | None`` with X a scalar the wire converter knows, else None."""
    args = get_args(tp)
    if len(args) == 2 and type(None) in args:
        inner = args[0] if args[1] is type(None) else args[1]
        if inner in _SCALARS:
            return inner
    return None


def _structure_optional_float(value: Any, _type: Any) -> float | None:
    if value is None:
        return None
    if type(value) is float and math.isfinite(value):
        return value
    return _structure_float(value, _type)


def _structure_optional_int(value: Any, _type: Any) -> int | None:
    if value is None:
        return None
    if type(value) is int and INT_MIN <= value <= INT_MAX:
        return value
    return _structure_int(value, _type)


def _optional_factory(tp: Any) -> Callable[[Any, Any], Any]:
    scalar = _optional_of(tp)
    if scalar is float:
        return _structure_optional_float
    if scalar is int:
        return _structure_optional_int
    inner = _SCALARS[scalar]

    def structure(value: Any, _type: Any) -> Any:
        return None if value is None else inner(value, _type)

    return structure


def _is_tuple(tp: Any) -> bool:
    return get_origin(tp) is tuple


def _is_str_dict(tp: Any) -> bool:
    return get_origin(tp) is dict and get_args(tp) == (str, str)


def make_wire_converter(*, detailed_validation: bool = False) -> cattrs.Converter:
    """A converter for the JSON wire format with strict JSON types.

    Numbers must be JSON numbers (``true`` is not 1, ``"3"`` is not 3), integers must be
    integral and fit 64 bits, floats must be finite, arrays must be arrays and
    timestamps must carry a zone. Unknown keys are ignored (forward compatibility).
    ``detailed_validation`` collects field paths; it is slower and only needed to
    explain a failure.
    """
    converter = make_converter(forbid_extra_keys=False, detailed_validation=detailed_validation)
    converter.register_unstructure_hook(datetime, _unstructure_datetime)
    converter.register_unstructure_hook_factory(
        is_flat, lambda cls: flat_unstructurer(cls, _unstructure_datetime)
    )
    converter.register_structure_hook(datetime, _structure_datetime)
    converter.register_structure_hook(float, _structure_float)
    converter.register_structure_hook(int, _structure_int)
    converter.register_structure_hook(str, _structure_str)
    converter.register_structure_hook_factory(
        attrs.has, _attrs_factory(converter, detailed_validation)
    )
    converter.register_structure_hook_factory(
        _is_tuple, _tuple_factory(converter, detailed_validation)
    )
    converter.register_structure_hook_factory(_is_str_dict, _str_dict_factory(detailed_validation))
    converter.register_structure_hook_factory(
        lambda tp: _optional_of(tp) is not None, _optional_factory
    )
    return converter


CONVERTER = make_wire_converter()
"""The wire converter used by every function here."""

_EXPLAINER = make_wire_converter(detailed_validation=True)
"""The same converter with field paths, run only to explain a failed decode."""

_FAST_BATCH = make_fast_structurers(CONVERTER)[Batch]
"""Generated, for well-formed envelopes; it leaves anything unusual to ``CONVERTER``."""


def unstructure(obj: object) -> Any:
    """Plain JSON-ready data for any schema object (every field, ``None`` as ``None``)."""
    return CONVERTER.unstructure(obj)


def _make_envelope_converter() -> cattrs.Converter:
    """The wire converter, unstructuring as :func:`encode_batch` writes: a field whose value
    is ``None`` and whose default is ``None`` is left out (it decodes to the same)."""
    converter = make_wire_converter()

    def leave_out_nulls(cls: type) -> Callable[[Any], dict[str, Any]]:
        fields = attrs.fields(cls)
        nullable: dict[str, Any] = {
            f.name: override(omit_if_default=True) for f in fields if f.default is None
        }
        return make_dict_unstructure_fn(cls, converter, **nullable)

    converter.register_unstructure_hook_factory(attrs.has, leave_out_nulls)
    return converter


_ENVELOPE = _make_envelope_converter()


def _path_step(note: Any) -> str:
    if isinstance(note, IterableValidationNote):
        if isinstance(note.index, int):
            return f"[{note.index}]"
        return f"[{json.dumps(note.index)}]"
    return f".{note.name}"


def _first_failure(exc: BaseException, path: str) -> tuple[str, str]:
    """The message and path of the first leaf error in a cattrs error tree."""
    if isinstance(exc, cattrs.ClassValidationError | cattrs.IterableValidationError):
        with_notes, without_notes = exc.group_exceptions()
        if with_notes:
            sub, note = with_notes[0]
            return _first_failure(sub, path + _path_step(note))
        if without_notes:
            return _first_failure(without_notes[0], path)
        return ("invalid value", path)
    if isinstance(exc, FieldValueError):
        return (exc.reason, f"{path}.{exc.field}")
    if isinstance(exc, WireTypeError):
        return (exc.message, path)
    if isinstance(exc, KeyError):
        return ("is required but missing", path)
    if isinstance(exc, RecursionError):
        return ("is nested too deeply", path)
    return (f"invalid value ({type(exc).__name__}: {exc})", path)


def _check_schema_version(data: dict[str, Any]) -> None:
    version = data.get("schema_version", SCHEMA_VERSION)
    if type(version) is not int:
        raise DecodeError(f"must be an integer, got {describe(version)}", "$.schema_version")
    if version > SCHEMA_VERSION:
        raise DecodeError(
            f"schema_version {version} is newer than this srvmon understands "
            f"(up to {SCHEMA_VERSION}); upgrade srvmon on the receiving side",
            "$.schema_version",
        )
    if version < 1:
        raise DecodeError(f"must be >= 1, got {version}", "$.schema_version")


def batch_from_dict(data: Any) -> Batch:
    """Structure plain data into a Batch, raising DecodeError with the field path."""
    if type(data) is not dict:
        raise DecodeError(f"the envelope must be a JSON object, got {describe(data)}")
    _check_schema_version(data)
    try:
        batch: Batch = _FAST_BATCH(data)
    except Exception:  # unusual or invalid: the converter decides
        pass
    else:
        return batch
    try:
        return CONVERTER.structure(data, Batch)
    except Exception:  # any failure on untrusted input: explain it below
        pass
    try:
        _EXPLAINER.structure(data, Batch)
    except Exception as exc:  # the tree of errors names the first bad field
        message, path = _first_failure(exc, "$")
        raise DecodeError(message, path) from None
    raise DecodeError("invalid envelope")  # pragma: no cover - both converters agree


def _reject_constant(name: str) -> Any:
    raise WireTypeError(f"{name} is not a JSON number; send finite numbers only")


def _loads(data: bytes | str, parse_constant: Callable[[str], Any]) -> Any:
    """``json.loads``; every failure but a refused constant (WireTypeError) → DecodeError."""
    try:
        return json.loads(data, parse_constant=parse_constant)
    except UnicodeDecodeError as exc:
        raise DecodeError(f"not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    except RecursionError:
        raise DecodeError("not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise DecodeError(f"not valid JSON: {exc}") from None


def parse_json(data: bytes | str) -> Any:
    """Parse untrusted JSON text, raising DecodeError only.

    ``NaN``/``Infinity`` literals, invalid UTF-8 and absurd nesting are rejected. In a
    legacy Java document (see :mod:`srvmon_core.legacy`) a non-finite literal is instead
    kept as a :class:`NonFiniteLiteral`, which the legacy decoder refuses with the path of
    its field.
    """
    if not isinstance(data, bytes | bytearray | memoryview | str):
        raise DecodeError(f"expected bytes or str, got {type(data).__name__}")
    if isinstance(data, memoryview):
        data = bytes(data)
    try:
        return _loads(data, _reject_constant)
    except WireTypeError as refused:
        from srvmon_core.legacy import is_legacy_document  # legacy builds on this module

        kept = _loads(data, NonFiniteLiteral)  # another fault further on is reported instead
        if is_legacy_document(kept):
            return kept
        raise DecodeError(f"not valid JSON: {refused.message}") from None


def encode_batch(batch: Batch) -> bytes:
    """The batch as compact UTF-8 JSON (an object; see docs/wire-format.md). A field that is
    ``None`` where its default is ``None`` (an absent rate, a container without a health
    check) is left out: every decoder reads a missing optional key as its default, and a
    collector's envelope is about half the bytes to send, keep in Kafka and parse."""
    data = _ENVELOPE.unstructure(batch)
    return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()


def decode_batch(data: bytes | str) -> Batch:
    """Parse and validate one srvmon envelope."""
    return batch_from_dict(parse_json(data))


def decode_legacy(data: bytes | str, *, tz: tzinfo = UTC, interval_seconds: float = 1.0) -> Batch:
    """Parse one legacy Java collector document (see srvmon_core.legacy)."""
    from srvmon_core.legacy import batch_from_legacy_dict  # legacy builds on this module

    return batch_from_legacy_dict(parse_json(data), tz=tz, interval_seconds=interval_seconds)


def message_from_dict(
    data: Any, *, legacy_tz: tzinfo = UTC, legacy_interval_seconds: float = 1.0
) -> Batch:
    """Like :func:`decode_message` for data that is already parsed."""
    from srvmon_core.legacy import batch_from_legacy_dict, is_legacy_document

    if is_legacy_document(data):
        return batch_from_legacy_dict(data, tz=legacy_tz, interval_seconds=legacy_interval_seconds)
    return batch_from_dict(data)


def decode_message(
    data: bytes | str, *, legacy_tz: tzinfo = UTC, legacy_interval_seconds: float = 1.0
) -> Batch:
    """Decode a srvmon envelope or a legacy Java collector document, told apart by keys.

    A JSON object with ``hostId`` and no ``host_id`` is a legacy document; anything else
    is read as a srvmon envelope. ``legacy_tz`` and ``legacy_interval_seconds`` apply to
    legacy documents only (their timestamps have no zone and they carry per-loop deltas).
    """
    return message_from_dict(
        parse_json(data),
        legacy_tz=legacy_tz,
        legacy_interval_seconds=legacy_interval_seconds,
    )


def decode_for_forwarding(
    data: bytes, *, legacy_tz: tzinfo = UTC, legacy_interval_seconds: float = 1.0
) -> tuple[Batch, bytes]:
    """Decode a message as :func:`decode_message` does, and return it with the srvmon
    envelope to send on for it.

    A valid srvmon envelope in UTF-8 is sent on as it came: its own bytes, not re-encoded
    (the server decodes it the same way). A legacy document, or an envelope in another
    encoding (UTF-16/32, a byte-order mark), is encoded anew with :func:`encode_batch`.
    """
    from srvmon_core.legacy import is_legacy_document

    parsed = parse_json(data)
    batch = message_from_dict(
        parsed, legacy_tz=legacy_tz, legacy_interval_seconds=legacy_interval_seconds
    )
    if json.detect_encoding(data) == "utf-8" and not is_legacy_document(parsed):
        return batch, bytes(data)
    return batch, encode_batch(batch)
