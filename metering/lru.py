"""A least-recently-used map bounded by its number of entries or by the total size of its values.

    LRU(10_000)                                  # at most 10,000 entries
    LRU(32 << 20, len, max_item_size=4 << 20)    # values of at most 32 MB in all, none over 4 MB

`get` marks an entry used; `put` keeps a value as the most recently used (replacing what its
key held), then drops the least recently used entries until the bound holds again. A value
larger than `max_item_size` (default: the bound itself) is not kept: it would push out many.
Membership, iteration and `len` mark nothing. Values are never None: `get` answers None for
a key it does not hold.

Every operation is O(1) (`put` amortized: it may drop several entries). The map is an
OrderedDict, whose move_to_end and popitem(last=False) are constant time; a plain dict
keeps its order too, but finding its first entry scans the slots its deletions left.
Count-bounded maps never call a size function: the rate limiter and the gateway's caches
use one on every request.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, ItemsView, Iterator, ValuesView
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    __slots__ = ("max_size", "max_item_size", "_size_of", "_size", "_kept")

    def __init__(self, max_size: int, size_of: Callable[[V], int] | None = None, *,
                 max_item_size: int | None = None) -> None:
        """At most `max_size` entries, or with `size_of`, values whose sizes add up to at most `max_size`."""
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self.max_item_size = max_size if max_item_size is None else min(max_item_size, max_size)
        self._size_of = size_of
        self._size = 0  # with size_of: the values' total size
        self._kept: OrderedDict[K, V] = OrderedDict()

    @property
    def size(self) -> int:
        """The total size of the values (their number when the map is bounded by count)."""
        return len(self._kept) if self._size_of is None else self._size

    def get(self, key: K) -> V | None:
        found = self._kept.get(key)
        if found is not None:
            self._kept.move_to_end(key)
        return found

    def put(self, key: K, value: V) -> bool:
        """Keeps `value` under `key` as the most recently used; False if it is too large to keep
        (then `key` holds nothing)."""
        kept = self._kept
        size_of = self._size_of
        if size_of is None:
            kept[key] = value
            kept.move_to_end(key)
            if len(kept) > self.max_size:
                kept.popitem(last=False)
            return True
        before = kept.pop(key, None)
        if before is not None:
            self._size -= size_of(before)
        size = size_of(value)
        if size > self.max_item_size:
            return False
        kept[key] = value
        self._size += size
        while self._size > self.max_size:
            self._size -= size_of(kept.popitem(last=False)[1])
        return True

    def __setitem__(self, key: K, value: V) -> None:
        self.put(key, value)

    def pop(self, key: K) -> V | None:
        """Drops `key`; what it held, if anything."""
        found = self._kept.pop(key, None)
        if found is not None and self._size_of is not None:
            self._size -= self._size_of(found)
        return found

    def __contains__(self, key: object) -> bool:
        return key in self._kept

    def __len__(self) -> int:
        return len(self._kept)

    def __iter__(self) -> Iterator[K]:
        """The keys, least recently used first."""
        return iter(self._kept)

    def values(self) -> ValuesView[V]:
        return self._kept.values()

    def items(self) -> ItemsView[K, V]:
        return self._kept.items()
