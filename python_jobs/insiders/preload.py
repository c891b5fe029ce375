"""Imports a later stage's libraries in a background thread while the current stage waits on the database.

dbt takes about 2.4 s to import on these 2-core machines, a tenth of a day's run at 10 million lines; `insiders run`
imports it while the server starts and the files load. An import holds Python's interpreter lock most of the time,
so it only gains where the other threads wait on something else. Beside a whole dbt build it lost: the modelling
libraries (scikit-learn, SciPy; 1 to 1.5 s) imported while dbt built the features saved 0.9-1.5 s of the labelling
stage and cost dbt as much or more (its threads waited for the lock after each statement: the first tests of a
day's build took 0.9 s instead of 0.1 s). They are imported while the feature mart's statement runs instead: the
build's longest (3 to 4 s of a day's run at 10 million lines), during which dbt's threads wait on PostgreSQL.
"""

from __future__ import annotations

import importlib
import threading


class Preload:
    """Modules imported in a daemon thread, from when it is made or from `start`; `wait` before the stage that
    uses them.

    Waiting first matters: the stage's own import would otherwise run while the thread is importing the same
    package, and two threads importing one circular package at once can each see the other's half-made module.
    A module that fails to import here is left to fail in the stage, with its error where the user expects it.
    """

    def __init__(self, *modules: str, start: bool = True) -> None:
        self.modules = modules
        self._thread = threading.Thread(target=self._import, name="insiders-preload", daemon=True)
        self._starting = threading.Lock()
        self._started = False
        if start:
            self.start()

    def start(self) -> None:
        """Begin the imports (once; later calls do nothing). Any thread may call it."""
        with self._starting:
            if not self._started:
                self._thread.start()
                self._started = True

    def _import(self) -> None:
        for module in self.modules:
            try:
                importlib.import_module(module)
            except BaseException:  # the stage imports it again and reports what failed
                return

    def wait(self) -> None:
        """Until the imports are done; at once if they never started (the stage imports them itself)."""
        with self._starting:
            started = self._started
        if started:
            self._thread.join()
