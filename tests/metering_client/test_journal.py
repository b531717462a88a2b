"""The journal file: fsync'd appends, oldest-first replay, prefix trimming under concurrent appends."""

from __future__ import annotations

import threading

from metering.v1 import event_pb2
from metering_client.journal import Journal, default_path, fingerprint, read_all


def ev(request_id: str) -> event_pb2.UsageEvent:
    event = event_pb2.UsageEvent(request_id=request_id, kind="completions", input_cost="0.000000000000000001")
    event.timestamp.FromSeconds(1_700_000_000)
    return event


def replay_all(journal: Journal, batch: int = 100) -> list[str]:
    """What a replayer does: snapshot, read chunks oldest first, then trim what it read."""
    seen: list[str] = []
    with journal.lease() as mine:
        assert mine
        acked, kept = 0, list[bytes]()
        for chunk in journal.chunks(journal.snapshot(), batch, 1 << 20):
            seen += [e.request_id for e in chunk.events]
            journal.dead_letter(chunk.unreadable)
            acked, kept = chunk.end, kept + chunk.kept
        journal.drop_prefix(acked, kept)
    return seen


def test_append_replay_trim_round_trip(tmp_path):
    journal = Journal(tmp_path / "j.jsonl", "mk_key")
    journal.append([ev("a"), ev("b")])
    journal.append([ev("c")])
    [line, *_] = read_all(journal.path)
    assert line["k"] == fingerprint("mk_key") and "mk_key" not in journal.path.read_text()
    chunks = list(journal.chunks(journal.snapshot(), 2, 1 << 20))
    assert [[e.request_id for e in c.events] for c in chunks] == [["a", "b"], ["c"]]
    assert chunks[0].events[0] == ev("a")  # exact: decimal strings and timestamps survive
    assert replay_all(journal) == ["a", "b", "c"]
    assert journal.size() == 0


def test_other_keys_lines_are_kept_and_bad_lines_dead_lettered(tmp_path):
    path = tmp_path / "shared.jsonl"
    mine, theirs = Journal(path, "key-1"), Journal(path, "key-2")
    mine.append([ev("m1")])
    theirs.append([ev("t1")])
    with open(path, "ab") as f:
        f.write(b'{"v": 1, "k": "torn li\n')
    mine.append([ev("m2")])
    assert replay_all(mine) == ["m1", "m2"]
    assert [r["event"]["request_id"] for r in read_all(path)] == ["t1"]  # never sent with the wrong key
    assert mine.rejected_path.read_bytes() == b'{"v": 1, "k": "torn li\n'
    assert replay_all(theirs) == ["t1"]


def test_appends_racing_replays_lose_nothing(tmp_path):
    path = tmp_path / "race.jsonl"
    replayer, writer = Journal(path, "k"), Journal(path, "k")  # separate locks and fds, like two processes
    n = 600
    done = threading.Event()

    def write() -> None:
        for i in range(0, n, 3):
            writer.append([ev(f"w-{i}"), ev(f"w-{i + 1}"), ev(f"w-{i + 2}")])
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    seen: list[str] = []
    while not done.is_set() or replayer.size():
        seen += replay_all(replayer, batch=37)
    thread.join()
    assert len(seen) == n and set(seen) == {f"w-{i}" for i in range(n)}  # each exactly once
    assert seen == sorted(seen, key=lambda r: int(r[2:]))  # oldest first


def test_only_one_replayer_at_a_time(tmp_path):
    a, b = Journal(tmp_path / "j.jsonl", "k"), Journal(tmp_path / "j.jsonl", "k")
    with a.lease() as first, b.lease() as second:
        assert (first, second) == (True, False)
    with b.lease() as again:
        assert again


def test_default_location(monkeypatch, tmp_path):
    monkeypatch.setenv("METERING_JOURNAL_DIR", str(tmp_path / "state"))
    path = default_path("mk_abc")
    assert path.parent == tmp_path / "state" and path.name == f"journal-{fingerprint('mk_abc')}.jsonl"
    monkeypatch.delenv("METERING_JOURNAL_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_path("mk_abc").parent == tmp_path / "xdg" / "metering"
