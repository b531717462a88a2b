"""The `soak` scenario of `python -m bench.stress` run for a few seconds (bench/stress/soak.py): the stack
as separate processes on a private Postgres and Redis, a steady rate with queries and checks, a line of
the table per period and the verdict. What it measures is judged in docs/capacity.md, not here: no timing
is asserted, only that everything it samples is there and every event is stored once."""

from __future__ import annotations

from bench.stress.sampling import GROUPS, HEADER, PG_ROLES, TABLES, table
from bench.stress.soak import Settings, soak


async def test_a_short_soak_prints_its_table_and_verdict() -> None:
    lines: list[str] = []
    settings = Settings(rate=300, seconds=6, payload_bytes=200, queries=2, checks=1, batch=50, sample_every=1,
                        row_seconds=2, warmup=1, query_phase=1)
    result = await soak(settings, out=lines.append)
    print("\n".join(lines))

    assert lines[0] == table([HEADER])
    rows = [line.split() for line in lines[1:] if line.split() and line.split()[0].isdigit()]
    assert [int(r[0]) for r in rows] == [1, 2, 3]
    assert all(len(r) == len(HEADER) for r in rows)
    assert any(line.startswith("verdict over") for line in lines)

    assert result["events"] == result["acked_events"] > 0  # every acknowledged event stored once, rolled up
    judged = result["verdict"]
    assert set(judged["memory"]) == set(GROUPS) and all(m["end_mb"] > 0 for g, m in judged["memory"].items())
    assert set(judged["cpu_us_per_event"]) == set(GROUPS + PG_ROLES)
    assert judged["cpu_us_per_event"]["pg_server"] > 0  # Postgres's CPU told apart by whom it served
    assert judged["wal_bytes_per_event"] > 0
    assert set(judged["tables"]) == set(TABLES)
    for name in ("events", "event_payloads", "request_keys"):
        assert judged["tables"][name]["bytes_per_event"] > 0 and "model" in judged["tables"][name]
    assert result["query_phase"]["calls"] > 0 and result["check_phase"]["calls"] > 0
