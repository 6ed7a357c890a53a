"""The corpus of broken case files: each gives CaseFormatError with file and line/field,
and the CLI exits 2 with one line on stderr."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from gridverify.cli import main
from gridverify.errors import CaseFormatError
from gridverify.grid import compile_case, load_case

CORPUS = Path(__file__).resolve().parents[1] / "data" / "broken_cases"
FILES = sorted(CORPUS.glob("*.m"))


def _expect(path: Path) -> tuple[str, str, str]:
    head = path.read_text().splitlines()[:3]
    assert head[0].startswith("% BROKEN:")
    msg = head[1].split("% EXPECT-ERROR:", 1)[1].strip()
    kind, _, value = head[2].split("% EXPECT-AT:", 1)[1].strip().partition(" ")
    return msg, kind, value


def test_corpus_is_large_enough_and_current():
    assert len(FILES) >= 15
    sys.path.insert(0, str(CORPUS))
    try:
        import make_corpus
    finally:
        sys.path.remove(str(CORPUS))
    assert {p.stem for p in FILES} == set(make_corpus.CORPUS)
    for name, (base, _, edit, _) in make_corpus.CORPUS.items():
        lines = (make_corpus.CASES / f"{base}.m").read_text().splitlines()
        edit(lines)
        assert (CORPUS / f"{name}.m").read_text().splitlines()[3:] == lines, name


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_broken_case_raises_named_error(path: Path):
    msg, kind, value = _expect(path)
    with pytest.raises(CaseFormatError) as info:
        compile_case(load_case(path), emit_warnings=False)
    err = info.value
    text = str(err)
    assert msg in text
    assert path.name in text
    assert err.source is not None and Path(err.source).name == path.name
    if kind == "line":
        assert err.line == int(value)
        assert f"{path.name}:{value}" in text
    else:
        assert kind == "field"
        assert err.field == value
        assert f"field {value}" in text


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_broken_case_cli_exit_2(path: Path, capsys):
    rc = main(["case", "info", str(path), "--json"])
    out = capsys.readouterr()
    assert rc == 2
    assert out.out == ""
    lines = out.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("gridverify: error: ")
    assert path.name in lines[0]
    assert "Traceback" not in out.err


def test_broken_case_cli_subprocess_no_traceback():
    path = CORPUS / "duplicate_bus_id.m"
    exe = Path(sys.executable).with_name("gridverify")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "gridverify"]
    proc = subprocess.run([*cmd, "case", "info", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and re.search(r"duplicate_bus_id\.m:\d+", err[0])
