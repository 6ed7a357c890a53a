"""Machine-readable output of ``opf solve``/``opf solvers``/``dataset make|info --json``:
one termination vocabulary on every solver route, decoded messages, iteration counts,
nested JSON attributes and every documented dataset attribute."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cli_run import run

from gridverify.opf.acopf import STATUSES
from gridverify.opf.backends import (
    IPOPT_RETURN_STATUS,
    decode_sol_message,
    iterations_from_log,
    termination_from_output,
)
from gridverify.opf.dataset import _FROM_SOLUTION, STATUS_CODES
from gridverify.opf.solvers import _resolve, available_solvers

DOCS = Path(__file__).resolve().parents[2] / "docs"
needs_cli = pytest.mark.skipif(_resolve("pounce-cli") is None,
                               reason="pounce executable not available")


def solve_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    code, out, err = run(capsys, "opf", "solve", *argv, "--json")
    assert code in (0, 1), err
    return json.loads(out)


@needs_cli
def test_termination_message_and_iterations_agree_across_routes(
        capsys: pytest.CaptureFixture[str]) -> None:
    """pounce-cli said ``"termination": "optimal"``, ``"message": "POUNCE 0.13.0\\x3a
    SolveSucceeded"``, ``"iterations": null`` where pounce said ``Solve_Succeeded``, 22."""
    inproc = solve_json(capsys, "pglib_opf_case5_pjm", "--solver", "pounce")
    cli = solve_json(capsys, "pglib_opf_case5_pjm", "--solver", "pounce-cli")
    assert inproc["termination"] == cli["termination"] == "Solve_Succeeded"
    assert "\\x3a" not in cli["message"] and cli["message"].startswith("POUNCE ")
    assert ": " in cli["message"]
    assert isinstance(inproc["iterations"], int) and inproc["iterations"] > 0
    assert cli["iterations"] is None  # print level 0: the log has no count
    logged = solve_json(capsys, "pglib_opf_case5_pjm", "--solver", "pounce-cli",
                        "--print-level", "1")
    assert logged["iterations"] == inproc["iterations"]


@needs_cli
def test_a_time_limit_is_one_status_on_both_routes(capsys: pytest.CaptureFixture[str]) -> None:
    """The executable route reported a wall-time stop as ``max_iter`` (the .sol code
    band of every limit); the message names the exit."""
    for solver in ("pounce", "pounce-cli"):
        d = solve_json(capsys, "pglib_opf_case14_ieee", "--solver", solver,
                       "--time-limit", "1e-6")
        assert (d["status"], d["termination"]) == ("time_limit", "Maximum_WallTime_Exceeded")


@pytest.mark.parametrize(("message", "log", "name"), [
    ("POUNCE 0.13.0\\x3a SolveSucceeded", "", "Solve_Succeeded"),
    ("POUNCE 0.13.0\\x3a InfeasibleProblemDetected", "", "Infeasible_Problem_Detected"),
    ("POUNCE 0.13.0\\x3a MaximumWallTimeExceeded", "", "Maximum_WallTime_Exceeded"),
    ("Ipopt 3.14.16\\x3a Optimal Solution Found", "", "Solve_Succeeded"),
    ("Ipopt 3.14.16\\x3a Converged to a locally infeasible point. Problem may be infeasible.",
     "", "Infeasible_Problem_Detected"),
    ("Ipopt 3.14.16\\x3a Maximum Number of Iterations Exceeded.", "",
     "Maximum_Iterations_Exceeded"),
    ("Ipopt 3.14.16\\x3a Solved To Acceptable Level.", "", "Solved_To_Acceptable_Level"),
    ("Ipopt 3.14.16\\x3a something new", "", "unknown"),
    ("Ipopt 3.14.16\\x3a something new", "EXIT: ...\nStatus: Restoration_Failed\n",
     "Restoration_Failed"),
    # Ipopt's other exits (a wall-time stop read as an iteration limit before)
    ("Ipopt 3.14.16\\x3a Maximum Wallclock Time Exceeded.", "", "Maximum_WallTime_Exceeded"),
    ("Ipopt 3.14.16\\x3a Restoration Phase Failed.", "", "Restoration_Failed"),
    ("Ipopt 3.14.16\\x3a Iterates diverging; problem might be unbounded.", "",
     "Diverging_Iterates"),
    ("Ipopt 3.14.16\\x3a Found feasible point for square problem.", "",
     "Feasible_Point_Found"),
    # Ipopt's log says EXIT (it has no Status line)
    ("Ipopt 3.14.16\\x3a something new",
     "EXIT: Converged to a point of local infeasibility. Problem may be infeasible.\n",
     "Infeasible_Problem_Detected"),
])
def test_termination_of_an_executable_route(message: str, log: str, name: str) -> None:
    assert termination_from_output(decode_sol_message(message), log) == name
    assert name == "unknown" or name in IPOPT_RETURN_STATUS.values()


def test_sol_message_and_log_parsing() -> None:
    assert decode_sol_message("POUNCE 0.13.0\\x3a SolveSucceeded") == (
        "POUNCE 0.13.0: SolveSucceeded")
    assert iterations_from_log("...\nNumber of Iterations....: 14\n\n") == 14
    assert iterations_from_log("no summary at print level 0") is None


def test_opf_status_vocabularies_are_documented() -> None:
    """Every ``opf solve`` status is documented, and the dataset's coarser codes map
    each of them (``_FROM_SOLUTION``, the one mapping) onto a documented name."""
    assert set(_FROM_SOLUTION) == set(STATUSES)
    assert set(_FROM_SOLUTION.values()) <= set(STATUS_CODES.values())
    cli = (DOCS / "cli.md").read_text()
    section = cli[cli.index("## Solving an OPF"):]
    section = section[:section.index("\n## ", 1)]
    for status in STATUSES:
        assert f"`{status}`" in section, status
    for key in ("termination", "message", "iterations", "Solve_Succeeded", "unknown"):
        assert key in section, key
    dataset = (DOCS / "dataset.md").read_text()
    assert "`locally_infeasible`" in dataset and "`time_limit`" in dataset


def test_opf_solvers_json_is_machine_readable(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "opf", "solvers", "--json")
    assert code == 0
    d = json.loads(out)
    assert set(d) == {"routes", "default"}
    assert set(d["routes"]) == {"ipopt", "pounce", "pounce-cli", "cyipopt"}
    for name, route in d["routes"].items():
        assert isinstance(route["available"], bool) and route["detail"], name
        assert route["available"] == (_resolve(name) is not None)
    assert d["routes"]["cyipopt"]["available"] is False
    assert d["default"] == ("ipopt" if d["routes"]["ipopt"]["available"] else "pounce")
    code, out, _ = run(capsys, "opf", "solvers")  # the text output is unchanged
    lines = out.splitlines()
    assert [ln.split()[0] for ln in lines] == list(available_solvers())
    assert available_solvers()["pounce"].startswith("pounce ")


def _documented_attributes() -> list[str]:
    text = (DOCS / "dataset.md").read_text()
    table = text[text.index("Attributes of the root group"):text.index("## Samplers")]
    return re.findall(r"^\| `(\w+)`", table, flags=re.M)


def test_dataset_json_has_objects_and_every_documented_attribute(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``sampler``, ``status_codes`` and ``solver_settings`` were JSON text inside
    strings, and ``case_source`` was left out."""
    out = tmp_path / "d.h5"
    code, made, err = run(capsys, "dataset", "make", "pglib_opf_case5_pjm", "--samples", "4",
                          "--out", str(out), "--no-progress", "--json")
    assert code == 0, err
    code, info, err = run(capsys, "dataset", "info", str(out), "--json")
    assert code == 0, err
    documented = _documented_attributes()
    assert "case_source" in documented and "sampler" in documented
    for summary in (json.loads(made), json.loads(info)):
        for key in documented:
            assert key in summary, key
        assert summary["sampler"] == {"kind": "box", "low": 0.9, "high": 1.1}
        assert summary["status_codes"] == STATUS_CODES
        assert summary["solver_settings"]["max_iter"] == 3000
        assert Path(summary["case_source"]).name == "pglib_opf_case5_pjm.m"
    code, text, _ = run(capsys, "dataset", "info", str(out))
    assert code == 0 and '{"high": 1.1, "kind": "box", "low": 0.9}' in text
