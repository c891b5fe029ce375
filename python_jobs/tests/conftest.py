"""Tests run against a real PostgreSQL: one embedded server per test session, a fresh database per test.

Databases that take long to build (the demo and real feature marts) are built once per session and cloned per
test with `create database … template …`, so tests stay independent without paying for the build each time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from insiders.demo_data import generate
from insiders.embedded import EmbeddedServer
from insiders.load import load_file
from insiders.program.config import ProgramConfig
from insiders.settings import Paths, Target
from insiders.stages import build_features

from .support import LABELLED_DATES

PROJECT_DIR = Path(__file__).resolve().parents[2]
REAL_DATA = PROJECT_DIR.parent / "shared" / "data" / "online_retail.parquet"
# CI sets this so that tests needing the real file fail instead of skipping when it is missing
REQUIRE_REAL_DATA = os.environ.get("INSIDERS_REQUIRE_REAL_DATA") == "1"
DEMO_LINES = 500_000
DEMO_SEED = 42


@contextmanager
def server_state_dir() -> Iterator[Path]:
    """A state directory for an embedded server, outside pytest's temporary folders: pytest keeps
    /tmp/pytest-of-<user> at mode 0700, which the server's system user (the tests run as root) cannot pass
    through, and the server never widens a folder above its state directory."""
    state_dir = Path(tempfile.mkdtemp(prefix="insiders-state-"))
    try:
        yield state_dir
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def test_paths() -> Iterator[Paths]:
    with server_state_dir() as state_dir:
        yield Paths(project_dir=PROJECT_DIR, state_dir=state_dir)


@pytest.fixture
def own_state_dir() -> Iterator[Path]:
    """The state directory of a test's own embedded server."""
    with server_state_dir() as state_dir:
        yield state_dir


@pytest.fixture(scope="session")
def server_target(test_paths: Paths) -> Iterator[Target]:
    server = EmbeddedServer(test_paths)
    target = server.start()
    yield target
    server.stop()


def _admin(server_target: Target) -> psycopg.Connection:
    return psycopg.connect(replace(server_target, dbname="postgres").url, autocommit=True)


@pytest.fixture(scope="session")
def new_database(server_target: Target) -> Iterator[Callable[..., Target]]:
    """Makes empty databases, or clones of a template; drops them all at the end of the session."""
    made: list[str] = []

    def make(template: str | None = None) -> Target:
        name = "test_" + uuid.uuid4().hex[:10]
        with _admin(server_target) as conn:
            conn.execute(f'create database "{name}"' + (f' template "{template}"' if template else ""))
        made.append(name)
        return replace(server_target, dbname=name)

    yield make
    with _admin(server_target) as conn:
        for name in made:
            conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def target(new_database: Callable[..., Target]) -> Target:
    """A new, empty database on the session's server."""
    return new_database()


@pytest.fixture
def conn(target: Target) -> Iterator[psycopg.Connection]:
    with psycopg.connect(target.url) as connection:
        yield connection


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real UCI file; tests that use it are slow (marked so by pytest_collection_modifyitems)."""
    if not REAL_DATA.exists():
        message = f"the real UCI file is not at {REAL_DATA} (it ships in ../shared/data, never in the repo)"
        if REQUIRE_REAL_DATA:
            pytest.fail(message + "; INSIDERS_REQUIRE_REAL_DATA=1 makes this a failure")
        pytest.skip(message)
    return REAL_DATA


def _build_mart(new_database: Callable[..., Target], paths: Paths, files: list[Path]) -> Target:
    """Loaded and built up to the feature mart, at the tests' as-of dates and every cutoff their labels read."""
    target = new_database()
    with psycopg.connect(target.url) as conn:
        for path in files:
            load_file(conn, path)
    build_features(paths, target, LABELLED_DATES, ProgramConfig())
    return target


@pytest.fixture(scope="session")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The default demo data (what `insiders run` uses) and its personas file."""
    out = tmp_path_factory.mktemp("demo") / "demo_invoices.csv"
    generate(out, n_lines=DEMO_LINES, seed=DEMO_SEED)
    return out, out.with_name("demo_invoices.personas.csv")


@pytest.fixture(scope="session")
def demo_template(new_database, test_paths, demo_files) -> str:
    return _build_mart(new_database, test_paths, [demo_files[0]]).dbname


@pytest.fixture(scope="session")
def real_template(new_database, test_paths, real_data) -> str:
    return _build_mart(new_database, test_paths, [real_data]).dbname


@pytest.fixture
def demo_mart(new_database, demo_template) -> Target:
    """A private copy of the demo data loaded and built up to the feature mart."""
    return new_database(template=demo_template)


@pytest.fixture
def real_mart(new_database, real_template) -> Target:
    """A private copy of the real file loaded and built as of its last date."""
    return new_database(template=real_template)


@pytest.fixture
def use_target(monkeypatch: pytest.MonkeyPatch, target: Target, test_paths: Paths) -> Target:
    """Point the CLI at the test database, as a user with a server of their own would (INSIDERS_DSN)."""
    monkeypatch.setenv("INSIDERS_DSN", target.url)
    monkeypatch.setenv("INSIDERS_STATE_DIR", str(test_paths.state_dir))
    return target


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that reads the real file, directly or through a fixture, is slow: `pytest -m "not slow"` runs the
    fast ones alone."""
    for item in items:
        if {"real_data", "real_template", "real_mart", "backfilled"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
