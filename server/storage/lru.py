"""A least-recently-used map bounded by the total size of its values (each value's size
given by `size_of`): the server's caches of answers named by etags."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class SizedLRU(Generic[V]):
    def __init__(self, max_size: int, size_of: Callable[[V], int], largest_share: int = 8) -> None:
        """A value larger than max_size / largest_share is not kept (it would push out many)."""
        self.max_size = max_size
        self.size_of = size_of
        self.largest = max_size // largest_share
        self.size = 0
        self._kept: OrderedDict[str, V] = OrderedDict()

    def get(self, key: str) -> V | None:
        found = self._kept.get(key)
        if found is not None:
            self._kept.move_to_end(key)
        return found

    def put(self, key: str, value: V) -> None:
        size = self.size_of(value)
        if not key or key in self._kept or size > self.largest:
            return
        self._kept[key] = value
        self.size += size
        while self.size > self.max_size:
            self.size -= self.size_of(self._kept.popitem(last=False)[1])

    def __len__(self) -> int:
        return len(self._kept)
