"""A bounded FIFO of encoded batches that drops the oldest when full, and counts it."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from attrs import define, field, frozen


@frozen
class Pending:
    """One encoded batch waiting for delivery; ``seq`` orders batches by production."""

    seq: int
    key: str
    payload: bytes


@define
class BatchBuffer:
    """FIFO of at most ``capacity`` batches (``capacity`` counts batches, not bytes).

    ``in_flight`` is how many older batches are out with the transport and still count
    against the capacity; when the total overflows, the oldest queued batches are dropped and
    ``dropped`` counts each one exactly.
    """

    capacity: int
    _items: deque[Pending] = field(factory=deque)
    _next_seq: int = 0
    dropped: int = 0

    def __attrs_post_init__(self) -> None:
        if self.capacity < 1:
            raise ValueError("buffer capacity must be at least 1 batch")

    def __len__(self) -> int:
        return len(self._items)

    def append(self, key: str, payload: bytes, in_flight: int = 0) -> None:
        self._items.append(Pending(self._next_seq, key, payload))
        self._next_seq += 1
        self.trim(in_flight)

    def trim(self, in_flight: int = 0) -> None:
        while self._items and len(self._items) + in_flight > self.capacity:
            self._items.popleft()
            self.dropped += 1

    def peek(self) -> Pending | None:
        return self._items[0] if self._items else None

    def pop(self) -> Pending:
        return self._items.popleft()

    def give_back(self, items: Iterable[Pending]) -> None:
        """Return undelivered batches; they go back in production order, before newer ones."""
        merged = sorted([*items, *self._items], key=lambda p: p.seq)
        self._items = deque(merged)
