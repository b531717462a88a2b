"""The one bounded LRU (metering/lru.py), by count and by size."""

from __future__ import annotations

import pytest

from metering.lru import LRU


def test_bounded_by_count_drops_the_least_recently_used() -> None:
    lru: LRU[str, int] = LRU(3)
    for i, key in enumerate("abc"):
        assert lru.put(key, i)
    assert lru.get("a") == 0  # used: now the most recent
    lru.put("d", 3)
    assert list(lru) == ["c", "a", "d"] and lru.get("b") is None and len(lru) == 3 == lru.size
    lru.put("c", 30)  # replaced: the most recent again, still three entries
    lru.put("e", 4)
    assert list(lru.items()) == [("d", 3), ("c", 30), ("e", 4)]


def test_membership_and_iteration_mark_nothing() -> None:
    lru: LRU[str, int] = LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert "a" in lru and "z" not in lru and list(lru.values()) == [1, 2]
    lru.put("c", 3)
    assert list(lru) == ["b", "c"]


def test_bounded_by_size() -> None:
    lru: LRU[str, bytes] = LRU(100, len, max_item_size=40)
    for i in range(5):
        assert lru.put(f"k{i}", b"x" * 30)
        assert lru.size <= 100
    assert list(lru) == ["k2", "k3", "k4"] and lru.size == 90
    assert not lru.put("big", b"x" * 41) and "big" not in lru and lru.size == 90
    lru.put("k3", b"x" * 10)  # a smaller value under a kept key: the size follows
    assert lru.size == 70 and list(lru) == ["k2", "k4", "k3"]
    assert not lru.put("k4", b"x" * 50) and "k4" not in lru and lru.size == 40  # too large: the key holds nothing
    lru["k5"] = b"y" * 40
    assert lru.size == 80 and lru.pop("k2") == b"x" * 30 and lru.size == 50 and lru.pop("k2") is None


def test_an_item_may_not_exceed_the_bound() -> None:
    lru: LRU[str, bytes] = LRU(10, len, max_item_size=1000)
    assert lru.max_item_size == 10 and lru.put("a", b"x" * 10) and not lru.put("b", b"x" * 11)
    with pytest.raises(ValueError):
        LRU(0)


def test_a_count_bound_counts_entries() -> None:
    lru: LRU[int, int] = LRU(2)
    for i in range(10):
        lru.put(i, i)
    assert lru.size == 2 and lru.pop(9) == 9 and lru.size == 1
