from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from insiders.embedded import EmbeddedServer
from insiders.settings import Paths


@pytest.fixture
def own_server(tmp_path, own_state_dir):
    server = EmbeddedServer(Paths(project_dir=tmp_path, state_dir=own_state_dir))
    yield server
    server.stop()


def test_url_connects_over_tcp_with_a_password(server_target):
    assert server_target.host == "127.0.0.1" and server_target.password
    with psycopg.connect(server_target.url) as conn:
        assert conn.info.host == "127.0.0.1"
        assert conn.execute("select current_user").fetchone()[0] == "insiders"
    wrong = server_target.url.replace(server_target.password, "wrong-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong)


def test_stale_pid_file_from_a_crash_does_not_block_start(own_server):
    own_server.start()
    pid_file = own_server.pgdata / "postmaster.pid"
    assert own_server.stop()
    # a crash leaves the pid file of a process that no longer exists
    pid_file.write_text("999999\n" + str(own_server.pgdata) + "\n")
    target = own_server.start()
    assert own_server.running_pid() is not None
    with psycopg.connect(target.url) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_cli_db_commands_manage_the_server(own_state_dir, monkeypatch):
    env = {"INSIDERS_STATE_DIR": str(own_state_dir), "PATH": "/usr/bin:/bin"}
    monkeypatch.delenv("INSIDERS_DSN", raising=False)

    def insiders(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "insiders.cli", *args], env=env, capture_output=True,
                              text=True, check=False)

    try:
        assert insiders("db", "status").returncode == 3  # not running yet
        assert insiders("db", "start").returncode == 0
        masked = insiders("db", "url")
        assert masked.stdout.strip().startswith("postgresql://insiders:***@127.0.0.1:")
        assert "--show-password" in masked.stderr
        url = insiders("db", "url", "--show-password").stdout.strip()
        assert url.startswith("postgresql://insiders:") and "@127.0.0.1:" in url and "***" not in url
        with psycopg.connect(url) as conn:
            assert conn.execute("select current_database()").fetchone()[0] == "insiders"
        assert '"running": true' in insiders("db", "status").stdout
        assert insiders("db", "status", "--show-password").returncode == 2  # a url flag with another action
    finally:
        assert insiders("db", "stop").returncode == 0
