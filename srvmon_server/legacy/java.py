"""How the original Spring back end printed numbers and times. Pure.

* ``java_double(x)`` is Java's ``String.valueOf(double)``: ``85.0``, ``0.001``,
  ``1.551929344E10``, ``1.0E-4`` (plain notation from 10^-3 up to 10^7, else computerized
  scientific notation), with the shortest digits that read back as the same double.
* ``local_time(instant, tz)`` is a ``LocalDateTime`` in ``tz`` printed with the pattern
  ``yyyy-MM-dd'T'HH:mm:ss`` (no zone, no fraction).
"""

from __future__ import annotations

import math
from datetime import datetime, tzinfo
from decimal import Decimal


def java_double(value: float) -> str:
    """``String.valueOf(double)`` for a finite value."""
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    magnitude = abs(value)
    digits_tuple = Decimal(repr(magnitude)).as_tuple()
    digits = "".join(map(str, digits_tuple.digits)).rstrip("0") or "0"
    exponent = int(digits_tuple.exponent) + len(digits_tuple.digits) - 1  # of the first digit
    if 1e-3 <= magnitude < 1e7:
        if exponent >= 0:
            whole = (digits + "0" * (exponent + 1))[: exponent + 1]
            fraction = digits[exponent + 1 :] or "0"
        else:
            whole = "0"
            fraction = "0" * (-exponent - 1) + digits
        return f"{sign}{whole}.{fraction}"
    fraction = digits[1:] or "0"
    return f"{sign}{digits[0]}.{fraction}E{exponent}"


def per_loop(rate: float, interval_seconds: float) -> float:
    """A per-second figure as the original's per-loop delta, rounded to 15 significant
    digits so that a limit posted as ``2048.0`` reads back as ``2048.0`` whatever the loop."""
    return float(f"{rate * interval_seconds:.15g}")


def local_time(instant: datetime, tz: tzinfo) -> str:
    """The instant as a zone-less local time in ``tz``: ``2024-03-01T12:00:05``."""
    return instant.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S")
