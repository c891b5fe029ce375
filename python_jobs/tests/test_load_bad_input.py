"""Bad input never shows a traceback (issue 10, item 4): a corpus of awkward files run through `insiders load`,
the failures of the disk and the database, and CSV files mutated at random (hypothesis)."""

from __future__ import annotations

import io
import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from insiders import load as load_module
from insiders.cli import main
from insiders.errors import InsidersError
from insiders.load import load_file

from .test_load import ROWS, UCI_HEADER

LINE_COUNTS = re.compile(r"read ([\d,]+), loaded ([\d,]+), duplicate ([\d,]+), rejected ([\d,]+)")


def csv_text(rows: list[list[object]] = ROWS, header: list[str] = UCI_HEADER, delimiter: str = ",",
             newline: str = "\n") -> str:
    import csv

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=newline)
    writer.writerow(header)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return buffer.getvalue()


GOOD = csv_text()


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def xlsx_bytes(frame: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    frame.to_excel(sink, index=False)
    return sink.getvalue()


GOOD_PARQUET = parquet_bytes(pa.Table.from_pandas(pd.DataFrame(ROWS, columns=UCI_HEADER)))
GOOD_XLSX = xlsx_bytes(pd.DataFrame(ROWS, columns=UCI_HEADER))
RANDOM_BYTES = random.Random(7).randbytes(4096)

# name -> (content: text, bytes, or a function making the path; expected outcome)
#   ("ok", read, loaded, rejected) or ("error", what the one line says)
CORPUS: dict[str, tuple[object, tuple]] = {
    "plain.csv": (GOOD, ("ok", 5, 5, 0)),
    "bom.csv": (GOOD.encode("utf-8-sig"), ("ok", 5, 5, 0)),
    "crlf.csv": (csv_text(newline="\r\n"), ("ok", 5, 5, 0)),
    "latin1.csv": (GOOD.encode("latin-1"), ("ok", 5, 5, 0)),
    "cp1252_quotes.csv": (csv_text([[*ROWS[0][:2], "\u201cCURLY\u201d \u2013 DASH", *ROWS[0][3:]]]).encode("cp1252"),
                          ("ok", 1, 1, 0)),
    "semicolons.csv": (csv_text(delimiter=";"), ("ok", 5, 5, 0)),
    "tabs.tsv": (csv_text(delimiter="\t"), ("ok", 5, 5, 0)),
    "quoted_line_break.csv": (csv_text([[*ROWS[0][:2], "TWO\nLINES, \"QUOTED\"", *ROWS[0][3:]]]), ("ok", 1, 1, 0)),
    "trailing_empty_lines.csv": (GOOD + "\n\n\n", ("ok", 5, 5, 0)),
    "no_final_line_break.csv": (GOOD.rstrip("\n"), ("ok", 5, 5, 0)),
    "cut_in_last_line.csv": (GOOD.rstrip("\n")[:-30], ("ok", 5, 4, 1)),
    "header_only.csv": (",".join(UCI_HEADER) + "\n", ("ok", 0, 0, 0)),
    "repeated_line.csv": (GOOD + GOOD.splitlines(keepends=True)[1], ("ok", 6, 6, 0)),
    "garbled_fields.csv": (GOOD + "536390,22111,BOTTLE,abc,12/16/2010 9:00,4.95,17850,United Kingdom\n"
                           "536391,22112,BOTTLE,3,31/31/2010 9:00,x,17850,United Kingdom\n", ("ok", 7, 5, 2)),
    "unbalanced_quote.csv": (GOOD + '536392,"22113,OPEN QUOTE,1,12/16/2010 9:00,1,1,France\n', ("ok", 6, 5, 1)),
    "empty.csv": ("", ("error", "the file is empty")),
    "blank_lines_only.csv": ("\n\n\n", ("error", "missing columns")),
    "wrong_header.csv": ("a,b,c\n1,2,3\n", ("error", "missing columns")),
    "random_bytes.csv": (RANDOM_BYTES, ("error", "not a text file")),
    "utf16.csv": (GOOD.encode("utf-16"), ("error", "not a text file")),
    "nul_bytes.csv": (GOOD.replace("HEART", "HE\x00ART"), ("error", "not a text file")),
    "plain.parquet": (GOOD_PARQUET, ("ok", 5, 5, 0)),
    "empty.parquet": (b"", ("error", "the file is empty")),
    "cut.parquet": (GOOD_PARQUET[: len(GOOD_PARQUET) // 2], ("error", "cannot read the file")),
    "csv_named.parquet": (GOOD, ("error", "cannot read the file")),
    "other_columns.parquet": (parquet_bytes(pa.table({"a": [1, 2]})), ("error", "missing columns InvoiceNo")),
    "plain.xlsx": (GOOD_XLSX, ("ok", 5, 5, 0)),
    "cut.xlsx": (GOOD_XLSX[: len(GOOD_XLSX) // 2], ("error", "not a readable XLSX workbook")),
    "csv_named.xlsx": (GOOD, ("error", "not a readable XLSX workbook")),
    "random_bytes.xlsx": (RANDOM_BYTES, ("error", "not a readable XLSX workbook")),
    "a_directory.csv": (lambda path: path.mkdir(), ("error", "is a directory")),
    "absent.csv": (lambda path: None, ("error", "no such file")),
    "notes.json": ("{}", ("error", "unsupported file type")),
}


def run_load(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["load", *args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_clear_line(code: int, err: str, name: str, says: str) -> None:
    assert code == 1
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert name in errors[0] and says in errors[0], errors[0]
    assert all(ch.isprintable() for ch in errors[0])


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_of_awkward_files(name, tmp_path, use_target, capsys):
    content, expected = CORPUS[name]
    path = tmp_path / name
    if callable(content):
        content(path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    code, out, err = run_load([str(path)], capsys)
    if expected[0] == "ok":
        assert code == 0, err
        read, loaded, duplicate, rejected = (int(n.replace(",", "")) for n in LINE_COUNTS.search(out).groups())
        assert (read, loaded, rejected) == expected[1:] and duplicate == 0
    else:
        assert_one_clear_line(code, err, name, expected[1])


def test_wrong_sheet_names_the_sheets(tmp_path, use_target, capsys):
    path = tmp_path / "book.xlsx"
    path.write_bytes(GOOD_XLSX)
    code, _, err = run_load([str(path), "--sheet", "Nope"], capsys)
    assert_one_clear_line(code, err, "book.xlsx", "no sheet named 'Nope'; sheets: Sheet1")


def test_verbose_shows_the_traceback(tmp_path, use_target, capsys):
    path = tmp_path / "cut.parquet"
    path.write_bytes(GOOD_PARQUET[:100])
    code, _, err = run_load([str(path)], capsys)
    assert code == 1 and "Traceback" not in err
    assert main(["-v", "load", str(path)]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["load"])
    assert exit_.value.code == 2


@pytest.mark.parametrize(("dsn", "says"), [
    ("postgresql://insiders@127.0.0.1:1/insiders", "Connection refused"),
    ("postgresql://insiders@no-such-host.invalid/insiders", "no-such-host.invalid"),
])
def test_refused_or_unreachable_database(dsn, says, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INSIDERS_DSN", dsn)
    path = tmp_path / "plain.csv"
    path.write_text(GOOD)
    code, _, err = run_load([str(path)], capsys)
    assert_one_clear_line(code, err, "cannot connect to", says)


def test_permission_denied(tmp_path, use_target):
    """As root a file's mode does not stop reading: the load runs without the capabilities that override it."""
    path = tmp_path / "secret.csv"
    path.write_text(GOOD)
    path.chmod(0)
    command = [sys.executable, "-m", "insiders.cli", "load", str(path)]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: nothing can refuse to read a file")
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "INSIDERS_DSN": use_target.url})
    assert_one_clear_line(done.returncode, done.stderr, "secret.csv", "Permission denied")


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    mount = tmp_path / "small"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_full_disk_while_spooling_rejected_lines(tmp_path, use_target, small_tmpfs, monkeypatch, capsys):
    """The refused lines wait for their COPY in a temporary file: on a full disk the load says so and loads
    nothing."""
    monkeypatch.setattr(load_module, "REJECT_SPOOL_BYTES", 1024)
    monkeypatch.setattr("tempfile.tempdir", str(small_tmpfs))
    bad = "".join(f"{i},22111,BOTTLE,abc,12/16/2010 9:00,4.95,17850,United Kingdom\n" for i in range(5_000))
    path = tmp_path / "many_refused.csv"
    path.write_text(GOOD + bad)
    code, _, err = run_load([str(path)], capsys)
    assert_one_clear_line(code, err, "many_refused.csv", "No space left on device")
    with psycopg.connect(use_target.url) as conn:
        assert conn.execute("select to_regclass('raw.load_batches') is null").fetchone()[0]  # nothing kept


# -- CSV files mutated at random ---------------------------------------------------------------------------

def _cut(data: bytes, rnd: random.Random) -> bytes:
    return data[: rnd.randrange(len(data) + 1)]


def _drop_line(data: bytes, rnd: random.Random) -> bytes:
    lines = data.splitlines(keepends=True)
    del lines[rnd.randrange(len(lines))]
    return b"".join(lines)


def _swap_fields(data: bytes, rnd: random.Random) -> bytes:
    lines = data.splitlines(keepends=True)
    i = rnd.randrange(len(lines))
    fields = lines[i].rstrip(b"\r\n").split(b",")
    a, b = rnd.randrange(len(fields)), rnd.randrange(len(fields))
    fields[a], fields[b] = fields[b], fields[a]
    lines[i] = b",".join(fields) + b"\n"
    return b"".join(lines)


def _random_bytes(data: bytes, rnd: random.Random) -> bytes:
    at = rnd.randrange(len(data) + 1)
    return data[:at] + rnd.randbytes(rnd.randrange(1, 40)) + data[at:]


def _quote(data: bytes, rnd: random.Random) -> bytes:
    at = rnd.randrange(len(data) + 1)
    return data[:at] + b'"' + data[at:]


def _encoding(data: bytes, rnd: random.Random) -> bytes:
    encoding = rnd.choice(["latin-1", "cp1252", "utf-16", "utf-8-sig", "utf-32"])
    return data.decode("utf-8", errors="replace").encode(encoding, errors="replace")


def _crlf(data: bytes, rnd: random.Random) -> bytes:
    return data.replace(b"\n", rnd.choice([b"\r\n", b"\r", b"\n\n"]))


def _repeat_line(data: bytes, rnd: random.Random) -> bytes:
    lines = data.splitlines(keepends=True)
    line = rnd.choice(lines)
    return b"".join(lines) + (line if line.endswith(b"\n") else line + b"\n")


MUTATIONS: list[Callable[[bytes, random.Random], bytes]] = [
    _cut, _drop_line, _swap_fields, _random_bytes, _quote, _encoding, _crlf, _repeat_line,
]


@pytest.fixture(scope="module")
def mutation_database(new_database):
    return new_database()


@settings(max_examples=60, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(st.tuples(st.sampled_from(MUTATIONS), st.integers(0, 2**32)), min_size=1, max_size=4))
def test_mutated_csv_loads_with_counts_that_add_up_or_fails_clearly(steps, tmp_path_factory, mutation_database):
    data = GOOD.encode("utf-8")
    for mutate, seed in steps:
        if data:
            data = mutate(data, random.Random(seed))
    path = tmp_path_factory.mktemp("mutated") / "mutated.csv"
    path.write_bytes(data)
    with psycopg.connect(mutation_database.url) as conn:
        try:
            result = load_file(conn, path)
        except InsidersError as exc:
            message = str(exc)
            assert "mutated.csv" in message and "\n" not in message
            return
    assert result.lines_read == result.lines_loaded + result.lines_duplicate + result.lines_rejected
