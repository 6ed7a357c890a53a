"""A terminal-friendly CLI: the certify table at 80 columns, progress only on a
terminal, defaults and choices in every ``--help``, completion of bundled names."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from gridverify.cli import build_parser, main
from gridverify.cli._args import HelpFormatter
from gridverify.spec.constraints import FAMILIES

REPO = Path(__file__).resolve().parents[2]


def _certify(columns: int) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", COLUMNS=str(columns))
    return subprocess.run(
        [sys.executable, "-m", "gridverify", "certify", "pglib_opf_case14_ieee", "--model",
         "case14_relu", "--method", "ibp", "--samples", "32"],
        capture_output=True, text=True, env=env, timeout=300)


def test_certify_table_fits_80_columns_with_whole_family_names() -> None:
    proc = _certify(80)
    assert proc.returncode in (0, 1, 3), proc.stderr
    lines = proc.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, proc.stdout
    first_words = {line.split()[0] for line in lines if line.split()}
    assert set(FAMILIES) <= first_words, proc.stdout  # every family, never truncated
    assert "…" not in proc.stdout and "..." not in proc.stdout
    assert "bound: sound upper bound" in proc.stdout  # the compact headers are explained
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal


def test_certify_table_uses_wide_headers_on_a_wide_terminal(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    main(["certify", "pglib_opf_case14_ieee", "--model", "case14_relu", "--method", "ibp",
          "--samples", "32"])
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("family"))
    assert "certified" in header and "max attained" in header and "threshold" in header
    assert header.split()[-1] == "radius"  # the family radius, with room for it
    assert "bound: sound upper bound" not in out
    monkeypatch.setenv("COLUMNS", "90")  # room for the radius with the compact headers
    main(["certify", "pglib_opf_case14_ieee", "--model", "case14_relu", "--method", "ibp",
          "--samples", "32"])
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("family"))
    assert header.split()[-1] == "rad" and max(len(line) for line in out.splitlines()) <= 90
    assert "rad: every constraint of the family is certified" in " ".join(out.split())


def _options(parser: argparse.ArgumentParser, path: str = "gridverify"):
    for act in parser._actions:
        if isinstance(act, argparse._SubParsersAction):
            for name, sub in act.choices.items():
                yield from _options(sub, f"{path} {name}")
        elif not isinstance(act, (argparse._HelpAction, argparse._VersionAction)):
            yield path, parser, act


def test_every_option_has_help_with_its_default_and_choices() -> None:
    fmt = HelpFormatter("gridverify")
    for path, parser, act in _options(build_parser()):
        where = f"{path} {'/'.join(act.option_strings) or act.dest}"
        assert act.help, f"{where}: no help text"
        if act.option_strings and not any(act.default is v for v in
                                          (None, False, argparse.SUPPRESS)):
            assert "default" in fmt._get_help_string(act), f"{where}: default not shown"
        if act.choices is not None:
            text = parser.format_help()
            assert all(str(c) in text for c in act.choices), f"{where}: choices not shown"


def test_max_iter_default_is_shared() -> None:
    from gridverify.opf.solvers import SolverOptions

    defaults = {path: act.default for path, _, act in _options(build_parser())
                if "--max-iter" in act.option_strings}
    assert set(defaults) == {"gridverify opf solve", "gridverify dataset make"}
    assert set(defaults.values()) == {SolverOptions().max_iter}


def test_help_points_at_the_format_docs(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, doc in ((["study", "--help"], "docs/study.md"),
                      (["certify", "--help"], "docs/spec.md")):
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert doc in out and (REPO / doc).is_file()
        assert "max:A:B" not in out or "max(A" in out


def _complete(script: Path, *words: str) -> list[str]:
    cmd = (f'source {script}; COMP_WORDS=({" ".join(repr(w) for w in words)}); '
           'COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); _gridverify; echo "${COMPREPLY[*]}"')
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_completion_of_bundled_cases_and_models(tmp_path: Path) -> None:
    from gridverify.cli.study import completion_script

    script = tmp_path / "gv.bash"
    script.write_text(completion_script("bash"))
    assert "pglib_opf_case14_ieee" in _complete(script, "gridverify", "certify", "pglib_opf_c")
    assert "pglib_opf_case57_ieee" in _complete(script, "gridverify", "case", "info", "pg")
    assert {"case14_relu", "case57_relu"} <= set(
        _complete(script, "gridverify", "certify", "x", "--model", "case"))
    assert "pglib_opf_case5_pjm" in _complete(script, "gridverify", "train", "d.h5", "--case",
                                              "pglib_opf_case5")


def test_make_instances_leaks_no_warning(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = main(["vnncomp", "make-instances", "pglib_opf_case5_pjm", "--out",
                     str(tmp_path / "b"), "--kinds", "thermal_one", "--widths", "0.01"])
    assert code == 0
    assert [str(w.message) for w in caught] == []
    assert capsys.readouterr().err == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no staging folder left


def test_shell_completion(tmp_path: Path) -> None:
    from gridverify.cli.study import completion_script

    script = tmp_path / "gv.bash"
    script.write_text(completion_script("bash"))
    assert _complete(script, "gridverify", "stu") == ["study"]
    assert set(_complete(script, "gridverify", "study", "")) >= {"run", "check"}
    assert _complete(script, "gridverify", "study", "run", "x.toml", "--exec") == ["--executor"]
    assert _complete(script, "gridverify", "study", "run", "--executor", "") == ["local", "ray"]
    assert "--model" in _complete(script, "gridverify", "certify", "case", "--")
    zsh = completion_script("zsh")
    assert "bashcompinit" in zsh and "complete -o filenames -F _gridverify gridverify" in zsh


@pytest.mark.parametrize("argv", [["case", "list", "--json"],
                                  ["model", "info", "case14_relu"]])
def test_a_closed_pipe_is_not_an_error(argv: list[str]) -> None:
    """``gridverify ... | head``: the reader leaving is no error line and no exit status
    of the command's own (1 would read as a violation): 141, as SIGPIPE gives."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "gridverify", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # before the command writes anything
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert "error" not in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [["case", "list"], ["--help"], ["--version"],
                                  ["case", "info", "pglib_opf_case14_ieee", "--json"]])
@pytest.mark.parametrize("stdout", ["full", "closed"])
def test_an_unwritable_stdout_is_one_line_naming_stdout(argv: list[str], stdout: str) -> None:
    """stdout on a full disk or closed (``>&-``): one error line naming stdout and exit
    status 2 (no traceback, and ``--help`` is no success when its text was lost)."""
    if stdout == "full" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "gridverify", *argv]
    if stdout == "full":
        with open("/dev/full", "w") as full:
            proc = subprocess.run(cmd, stdout=full, stderr=subprocess.PIPE, text=True,
                                  env=env, timeout=120)
    else:  # the child starts with file descriptor 1 closed
        proc = subprocess.run(["sh", "-c", '"$@" >&-', "sh", *cmd], stderr=subprocess.PIPE,
                              text=True, env=env, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("gridverify: error: stdout: "), proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr


def test_progress_flag_draws_on_stderr_when_it_is_not_a_terminal() -> None:
    """``--progress`` forces the bar where stderr is a file or a pipe; stdout keeps
    only the command's own output."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    r = subprocess.run(
        [sys.executable, "-m", "gridverify", "certify", "pglib_opf_case14_ieee", "--model",
         "case14_relu", "--method", "ibp", "--samples", "32", "--progress", "--json"],
        capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode in (0, 1, 3), r.stderr
    assert "certify" in r.stderr and "\x1b[" in r.stderr  # the bar, drawn
    assert "\x1b[" not in r.stdout and r.stdout.lstrip().startswith("{")


def test_method_choices_are_the_library_methods() -> None:
    """The parsers spell the method lists out (building them imports nothing heavy):
    they must stay the ones ``certify`` and the bound engine accept."""
    from gridverify.bounds.options import METHODS as BOUND_METHODS
    from gridverify.certify.options import METHODS

    choices = {(path, act.option_strings[0]): tuple(act.choices)
               for path, _, act in _options(build_parser())
               if act.option_strings and act.choices is not None}
    assert choices[("gridverify certify", "--method")] == METHODS
    assert choices[("gridverify vnncomp run", "--bounds")] == ("none", *BOUND_METHODS)


def test_make_instances_kinds_are_the_library_kinds() -> None:
    """The parser spells the property kinds out (building it imports nothing heavy)."""
    from gridverify.cli.vnncomp import _KINDS
    from gridverify.vnncomp.instances import KINDS

    assert _KINDS == KINDS


def test_names_in_other_scripts_on_an_ascii_stdout_are_escaped(tmp_path) -> None:
    """An ASCII stdout (PYTHONIOENCODING=ascii, an old terminal) and a case named in
    another script: shown escaped (it was a UnicodeEncodeError, exit 4)."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[2] / "cases" / "pglib_opf_case14_ieee.m"
    case = tmp_path / "cas \u00e9 \u65e5\u672c.m"
    shutil.copy(src, case)
    env = dict(os.environ, PYTHONIOENCODING="ascii")
    run = subprocess.run([sys.executable, "-m", "gridverify", "case", "info", str(case)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "cas \\xe9 \\u65e5\\u672c" in run.stdout
