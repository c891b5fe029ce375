"""Tests run against a real PostgreSQL: one embedded server per test session, a fresh database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from insiders.embedded import EmbeddedServer
from insiders.settings import Paths, Target

PROJECT_DIR = Path(__file__).resolve().parents[2]
REAL_DATA = PROJECT_DIR.parent / "shared" / "data" / "online_retail.parquet"
# CI sets this so that tests needing the real file fail instead of skipping when it is missing
REQUIRE_REAL_DATA = os.environ.get("INSIDERS_REQUIRE_REAL_DATA") == "1"


@pytest.fixture(scope="session")
def test_paths(tmp_path_factory: pytest.TempPathFactory) -> Paths:
    return Paths(project_dir=PROJECT_DIR, state_dir=tmp_path_factory.mktemp("insiders-state"))


@pytest.fixture(scope="session")
def server_target(test_paths: Paths) -> Iterator[Target]:
    server = EmbeddedServer(test_paths)
    target = server.start()
    yield target
    server.stop()


@pytest.fixture
def target(server_target: Target) -> Iterator[Target]:
    """A new, empty database on the session's server."""
    name = "test_" + uuid.uuid4().hex[:10]
    admin = replace(server_target, dbname="postgres")
    with psycopg.connect(admin.url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    yield replace(server_target, dbname=name)
    with psycopg.connect(admin.url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def conn(target: Target) -> Iterator[psycopg.Connection]:
    with psycopg.connect(target.url) as connection:
        yield connection


@pytest.fixture(scope="session")
def real_data() -> Path:
    if not REAL_DATA.exists():
        message = f"the real UCI file is not at {REAL_DATA} (it ships in ../shared/data, never in the repo)"
        if REQUIRE_REAL_DATA:
            pytest.fail(message + "; INSIDERS_REQUIRE_REAL_DATA=1 makes this a failure")
        pytest.skip(message)
    return REAL_DATA


@pytest.fixture
def use_target(monkeypatch: pytest.MonkeyPatch, target: Target, test_paths: Paths) -> Target:
    """Point the CLI at the test database, as a user with a server of their own would (INSIDERS_DSN)."""
    monkeypatch.setenv("INSIDERS_DSN", target.url)
    monkeypatch.setenv("INSIDERS_STATE_DIR", str(test_paths.state_dir))
    return target
