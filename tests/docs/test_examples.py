"""Every shell and Python example of README.md and docs/*.md runs, page by page, in page
order, against real processes (docs/README.md "How the examples are run" is the convention).

Each page gets a fresh database on the tests' Postgres (tests/support/services.py: the local
server, METERING_TEST_DATABASE_URL or an embedded one), the tests' Redis with a queue of its
own, free loopback ports and a temp dir; its database is dropped when the page ends. Pages are
independent, so the selected ones run two at a time (the machine has two cores); each test
reports its own page.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import glob
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs import pages, runner
from tests.support import services

ROOT = runner.ROOT
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
WITH_EXAMPLES = [p for p in PAGES if re.search(r"^ *```(bash|sh|python)\b", p.read_text(), re.M)]
PARALLEL_PAGES = 2
_TOP_DIRS = ("server/", "gateway/", "worker/", "metering/", "metering_client/", "bench/", "protos/", "tests/",
             "docs/", ".ci/")


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _stale_venv() -> bool:
    """`./dev` reinstalls the venv when pyproject.toml changed since its last install."""
    marker = ROOT / ".venv" / ".installed-pyproject"
    return not marker.exists() or marker.read_bytes() != (ROOT / "pyproject.toml").read_bytes()


def follow(path: Path, grpc_port: int, http_port: int) -> runner.PageRun:
    """Run one page's examples in a fresh environment (blocking; raises ExampleFailed)."""
    page = pages.parse(path)
    admin = services.postgres_admin_dsn()
    database_url = asyncio.run(services.create_test_database(admin))
    try:
        with tempfile.TemporaryDirectory(prefix="metering-docs-") as scratch:
            env = runner.page_env(
                os.environ, database_url=database_url, redis_url=services.redis_url(), grpc_port=grpc_port,
                http_port=http_port, scratch=Path(scratch), queue="docs:" + secrets.token_hex(6),
            )
            run = runner.PageRun(page, env, Path(scratch), grpc_port, http_port)
            with run.running():
                run.run_all()
    finally:
        asyncio.run(services.drop_test_database(admin, database_url))
    assert run.ran + len(run.skipped) == len(page.blocks)
    return run


def _ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = services.free_port()
        if port not in ports:
            ports.append(port)
    return ports


@pytest.fixture(scope="module")
def page_runs(request: pytest.FixtureRequest) -> Iterator[dict[Path, concurrent.futures.Future[runner.PageRun]]]:
    """The pages this session selected, submitted at once to a pool of PARALLEL_PAGES."""
    selected = [item.callspec.params["path"] for item in request.session.items
                if getattr(item, "originalname", "") == "test_examples_run" and hasattr(item, "callspec")]
    if _stale_venv():  # never under ./dev test or CI, which set up the venv first
        selected = [p for p in selected if "./dev" not in p.read_text()]
    ports = iter(_ports(2 * len(selected)))
    with concurrent.futures.ThreadPoolExecutor(PARALLEL_PAGES, thread_name_prefix="docs") as pool:
        futures = {path: pool.submit(follow, path, next(ports), next(ports)) for path in selected}
        try:
            yield futures
        finally:
            for future in futures.values():
                future.cancel()


@pytest.mark.parametrize("path", PAGES, ids=_id)
def test_page_follows_the_conventions(path: Path):
    page = pages.parse(path)  # raises PageError naming the line
    assert page.blocks or path != ROOT / "README.md", "the README shows how to start and make a first call"
    if page.uses(runner.KEY_PLACEHOLDER):
        assert page.uses("KEY="), f"{path.name} uses {runner.KEY_PLACEHOLDER} but never sets KEY"


@pytest.mark.parametrize("path", PAGES, ids=_id)
def test_paths_named_in_the_page_exist(path: Path):
    """Files named in inline code (`server/pricing/data/*.json`, `tests/x.py::test_y`) and the
    targets of relative links exist."""
    missing = [name for name in named_paths(pages.parse(path).prose, path.parent) if not _exists(name, path.parent)]
    assert not missing, f"{_id(path)} names what does not exist: {missing}"


def named_paths(prose: str, base: Path) -> list[str]:
    names = [word.rstrip(",;:.)") for span in pages.inline_code(prose) for word in span.split()
             if word.startswith(_TOP_DIRS)]
    names += [link.split("#")[0] for link in pages.links(prose) if not re.match(r"^[a-z]+:", link)]
    return [name for name in names if name]


def _exists(name: str, base: Path) -> bool:
    path, _, test = name.partition("::")
    root = ROOT if path.startswith(_TOP_DIRS) else base
    found = glob.glob(str(root / path))
    if not test:
        return bool(found)
    definition = re.compile(rf"^(async )?def {re.escape(test)}\(", re.M)
    return bool(found) and definition.search(Path(found[0]).read_text()) is not None


@pytest.mark.parametrize("path", WITH_EXAMPLES, ids=_id)
async def test_examples_run(path: Path, page_runs: dict[Path, concurrent.futures.Future[runner.PageRun]]):
    if path not in page_runs:
        pytest.skip("the venv predates pyproject.toml, so ./dev would reinstall it: run ./dev setup")
    await asyncio.wrap_future(page_runs[path])


async def test_examples_needing_missing_programs(page_runs: dict[Path, concurrent.futures.Future[runner.PageRun]]):
    """Reported last: the blocks of the pages above that were skipped because a program
    they need (grpcurl) is not installed."""
    skipped = []
    for future in page_runs.values():
        with contextlib.suppress(Exception):  # a failed page is reported by its own test
            skipped += (await asyncio.wrap_future(future)).skipped
    if skipped:
        pytest.skip("not run: " + "; ".join(skipped))
