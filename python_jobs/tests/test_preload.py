"""The background imports of a run's next stage."""

from __future__ import annotations

import sys

from insiders.preload import Preload


def test_the_modules_are_imported_once_waited_for():
    sys.modules.pop("tabnanny", None)
    Preload("tabnanny").wait()
    assert "tabnanny" in sys.modules


def test_a_module_that_fails_to_import_is_left_to_the_stage_that_needs_it():
    sys.modules.pop("tabnanny", None)
    Preload("insiders.no_such_module", "tabnanny").wait()  # no exception here: the stage's own import reports it
    assert "insiders.no_such_module" not in sys.modules
    assert "tabnanny" not in sys.modules  # the modules after a failure are the stage's too


def test_a_preload_made_unstarted_imports_when_started():
    sys.modules.pop("tabnanny", None)
    later = Preload("tabnanny", start=False)
    later.wait()  # never started: nothing to wait for, and nothing imported
    assert "tabnanny" not in sys.modules
    later.start()
    later.start()  # once only
    later.wait()
    assert "tabnanny" in sys.modules
