"""What the benchmarks share: running a step as its own process while polling its memory, scratch databases."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import psutil
import psycopg

from insiders.settings import Target

INSIDERS = str(Path(sys.executable).with_name("insiders"))


@dataclass
class Measured:
    label: str
    seconds: float
    peak_mib: float
    stages: dict[str, float] = field(default_factory=dict)
    output: str = ""


def run_measured(label: str, command: list[str], env: dict[str, str]) -> Measured:
    """Run a command, polling its resident memory (the process and its children) every 50 ms."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    handle, peak = psutil.Process(process.pid), 0
    chunks: list[str] = []
    while process.poll() is None:
        try:
            rss = handle.memory_info().rss + sum(c.memory_info().rss for c in handle.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    chunks.append(process.stdout.read() if process.stdout else "")
    seconds = time.perf_counter() - started
    output = "".join(chunks)
    if process.returncode != 0:
        raise SystemExit(f"{label} failed (exit {process.returncode}):\n{output[-3000:]}")
    # the stage lines: "✓ name   12.3 s  what it did"
    stages = {name: float(value) for name, value in re.findall(r"^✓ (.+?) +(\d+\.\d) s(?:  |$)", output, re.M)}
    return Measured(label, seconds, peak / 2**20, stages, output)


def new_database(base: Target, prefix: str) -> Target:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(replace(base, dbname="postgres").url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    return replace(base, dbname=name)


def drop_database(base: Target, target: Target) -> None:
    with psycopg.connect(replace(base, dbname="postgres").url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{target.dbname}" with (force)')


def environment(target: Target, state_dir: Path) -> dict[str, str]:
    return {**os.environ, "INSIDERS_DSN": target.url, "INSIDERS_STATE_DIR": str(state_dir), "DO_NOT_TRACK": "1"}


def show(m: Measured) -> None:
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in m.stages.items())
    print(f"{m.label:<44}{m.seconds:8.1f} s  peak {m.peak_mib:6.0f} MiB   {stages}", flush=True)


