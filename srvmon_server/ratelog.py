"""A log line at most once per interval, with the count of what was held back.

For errors that can come in floods (the database down under a storm of requests, a full
file-descriptor table under a connection storm): the first one is logged at once, the
repeats within ``interval_seconds`` are counted and summed into the next line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLog:
    def __init__(
        self,
        logger: logging.Logger,
        interval_seconds: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval_seconds
        self._clock = clock
        self._next_at = float("-inf")
        self.suppressed = 0
        """Lines held back since the last one written."""

    def warning(self, message: str, *args: object) -> bool:
        """Log ``message % args`` unless one was logged within the interval; True when
        written."""
        now = self._clock()
        if now < self._next_at:
            self.suppressed += 1
            return False
        if self.suppressed:
            message += " (and %d more like it since the last)"
            args = (*args, self.suppressed)
        self._logger.warning(message, *args)
        self.suppressed = 0
        self._next_at = now + self._interval
        return True
