"""The CLI's argument parsing (server/runtime/cli.py)."""

from __future__ import annotations

import pytest

from server.runtime.cli import _parser


@pytest.mark.parametrize("argv", [
    ["--data-dir", "/tmp/m", "up"],
    ["up", "--data-dir", "/tmp/m"],  # ./dev up --data-dir /tmp/m
    ["serve", "--data-dir", "/tmp/m"],
    ["migrate", "--data-dir", "/tmp/m"],
])
def test_data_dir_before_or_after_the_service_verb(argv: list[str]) -> None:
    assert _parser().parse_args(argv).data_dir == "/tmp/m"


def test_no_data_dir_is_none() -> None:
    assert _parser().parse_args(["up"]).data_dir is None


def test_the_verbs_own_data_dir_wins() -> None:
    assert _parser().parse_args(["--data-dir", "/a", "up", "--data-dir", "/b"]).data_dir == "/b"
