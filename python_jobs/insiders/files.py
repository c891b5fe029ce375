"""Files the pipeline writes appear whole or not at all: written under a temporary name beside the target, then
renamed over it (a rename within one directory is atomic), so a killed run never leaves a truncated file that a
later run would take for a finished one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path


@contextmanager
def replaced_atomically(*paths: Path) -> Iterator[tuple[Path, ...]]:
    """Temporary paths to write `paths` to; on success each replaces its target, on failure they are removed."""
    temporaries = tuple(path.with_name(f".{path.name}.{os.getpid()}.partial") for path in paths)
    with ExitStack() as cleanup:
        cleanup.callback(lambda: [temporary.unlink(missing_ok=True) for temporary in temporaries])
        for path in paths:
            path.parent.mkdir(parents=True, exist_ok=True)
        yield temporaries
        for temporary, path in zip(temporaries, paths, strict=True):
            with temporary.open("rb") as written:
                os.fsync(written.fileno())  # the content is on disk before the name points at it
            os.replace(temporary, path)


def write_text_atomically(path: Path, text: str, mode: int | None = None) -> None:
    with replaced_atomically(path) as (temporary,):
        temporary.write_text(text, encoding="utf-8")
        if mode is not None:
            temporary.chmod(mode)
