"""When the in-process parse writes dbt's manifest: only when it may differ from the one on disk."""

from __future__ import annotations

import os

import dbt.parser.manifest
import pytest

from insiders.dbt_runner import write_manifest
from insiders.errors import InsidersError


@pytest.fixture
def written(monkeypatch) -> list[str]:
    calls: list[str] = []
    monkeypatch.setattr(dbt.parser.manifest, "write_manifest", lambda manifest, path: calls.append(path))
    return calls


def artifacts(target_path, *, manifest_age: int) -> None:
    """The saved parse, and the two JSON manifests written `manifest_age` seconds after it (before it if < 0)."""
    saved_parse = target_path / "partial_parse.msgpack"
    saved_parse.write_bytes(b"")
    for name in ("manifest.json", "semantic_manifest.json"):
        (target_path / name).write_text("{}")
        moment = saved_parse.stat().st_mtime + manifest_age
        os.utime(target_path / name, (moment, moment))


def test_an_unchanged_project_keeps_the_manifest_written_after_its_parse(tmp_path, written):
    artifacts(tmp_path, manifest_age=1)
    write_manifest(object(), tmp_path, unchanged=True)
    assert written == []


def test_a_changed_project_writes_the_manifest(tmp_path, written):
    artifacts(tmp_path, manifest_age=1)
    write_manifest(object(), tmp_path, unchanged=False)
    assert written == [str(tmp_path)]


def test_a_manifest_older_than_the_saved_parse_is_written_again(tmp_path, written):
    # a parse that saved its state and stopped before its manifest (or `dbt parse --no-write-json` by hand)
    artifacts(tmp_path, manifest_age=-5)
    write_manifest(object(), tmp_path, unchanged=True)
    assert written == [str(tmp_path)]


def test_a_missing_manifest_is_written(tmp_path, written):
    artifacts(tmp_path, manifest_age=1)
    (tmp_path / "semantic_manifest.json").unlink()
    write_manifest(object(), tmp_path, unchanged=True)
    assert written == [str(tmp_path)]


def test_a_manifest_that_cannot_be_written_is_a_clear_error(tmp_path, monkeypatch):
    def refuse(manifest, path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(dbt.parser.manifest, "write_manifest", refuse)
    with pytest.raises(InsidersError, match=r"cannot write dbt's manifest in .*: Permission denied"):
        write_manifest(object(), tmp_path, unchanged=False)
