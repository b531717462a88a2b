"""Named statement parameters (server.storage.db.Parameters): placeholders numbered in the
declared order, looked up by name, and the arguments put in that same order."""

from __future__ import annotations

import pytest

from server.storage.db import Parameters


def test_placeholders_are_numbered_in_declared_order():
    n = Parameters((("org", "integer"), ("starts", "timestamptz[]"), ("name", "text")))
    assert n.names == ("org", "starts", "name")
    assert (n["org"], n["starts"], n["name"]) == ("$1::integer", "$2::timestamptz[]", "$3::text")
    assert n.bare("name") == "$3"
    assert n.arguments({"name": "x", "org": 7, "starts": []}) == (7, [], "x")


def test_one_parameter():
    n = Parameters([("org", "integer")])
    assert n["org"] == "$1::integer"
    assert n.arguments({"org": 7}) == (7,)


def test_a_name_declared_twice_is_refused():
    with pytest.raises(ValueError, match="declared twice: \\['org'\\]"):
        Parameters((("org", "integer"), ("name", "text"), ("org", "bigint")))


def test_the_arguments_name_exactly_the_parameters():
    n = Parameters((("org", "integer"), ("name", "text")))
    with pytest.raises(ValueError, match="missing \\['name'\\]"):
        n.arguments({"org": 1})
    with pytest.raises(ValueError, match="unknown \\['extra'\\]"):
        n.arguments({"org": 1, "name": "x", "extra": 2})
    with pytest.raises(KeyError):  # as many values as parameters, but one under another name
        n.arguments({"org": 1, "nam": "x"})
    with pytest.raises(KeyError):
        n["nope"]


async def test_postgres_gets_each_argument_under_its_name(db):
    n = Parameters((("suffix", "text"), ("count", "integer"), ("stamps", "timestamptz[]")))
    sql = f"select {n['count']} + 1 as count, 'hi' || {n['suffix']} as text, cardinality({n['stamps']}) as stamps"
    row = await db.fetchrow(sql, *n.arguments({"stamps": [], "count": 41, "suffix": "!"}))
    assert tuple(row) == (42, "hi!", 0)
