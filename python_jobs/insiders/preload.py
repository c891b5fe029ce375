"""Imports a later stage's libraries in a background thread while the current stage waits on the database.

dbt takes about 2.4 s to import on these 2-core machines, a tenth of a day's run at 10 million lines; `insiders run`
imports it while the server starts and the files load. An import holds Python's interpreter lock most of the time,
so it only gains where the other thread waits on something else. Beside a dbt build it lost: the modelling
libraries (scikit-learn, SciPy; 1.5 s) imported while dbt built the features saved 0.9-1.5 s of the labelling
stage and cost dbt as much or more (its threads waited for the lock after each statement: the first tests of a
day's build took 0.9 s instead of 0.1 s), so the labelling stage imports them itself.
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
