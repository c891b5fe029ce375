"""Imports a later stage's libraries in a background thread while the current stage waits on the database.

dbt takes about 2.4 s to import and the modelling libraries (scikit-learn, SciPy, pandas) about 1.5 s, on these
2-core machines: in a day's run at 10 million lines, a sixth of the run. The stage before each spends most of its
time waiting on PostgreSQL (the load's COPY, dbt's statements), so the imports can run beside it.
"""

from __future__ import annotations

import importlib
import threading


class Preload:
    """Modules imported in a daemon thread; `wait` before the stage that uses them.

    Waiting first matters: the stage's own import would otherwise run while the thread is importing the same
    package, and two threads importing one circular package at once can each see the other's half-made module.
    A module that fails to import here is left to fail in the stage, with its error where the user expects it.
    """

    def __init__(self, *modules: str) -> None:
        self.modules = modules
        self._thread = threading.Thread(target=self._import, name="insiders-preload", daemon=True)
        self._thread.start()

    def _import(self) -> None:
        for module in self.modules:
            try:
                importlib.import_module(module)
            except BaseException:  # the stage imports it again and reports what failed
                return

    def wait(self) -> None:
        self._thread.join()
