"""Exponential backoff with full jitter. The random source is a parameter."""

from __future__ import annotations

import random
from collections.abc import Callable

from attrs import frozen


@frozen(kw_only=True)
class Backoff:
    """Delay before retry ``attempt`` (1-based): uniform in [base/2, min(cap, base * 2**(n-1))]."""

    initial_seconds: float = 0.05
    max_seconds: float = 5.0

    def delay(
        self, attempt: int, uniform: Callable[[float, float], float] = random.uniform
    ) -> float:
        ceiling = min(self.max_seconds, self.initial_seconds * 2 ** max(0, attempt - 1))
        return uniform(min(self.initial_seconds / 2, ceiling), ceiling)
