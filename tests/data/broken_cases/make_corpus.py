"""Regenerate the corpus of broken MATPOWER cases (small edits of two PGLib cases).

Run from the repository root: ``.venv/bin/python tests/data/broken_cases/make_corpus.py``.
Each file starts with three comment lines that the tests read::

    % BROKEN: what is wrong
    % EXPECT-ERROR: a substring of the CaseFormatError message
    % EXPECT-AT: line N          (or: field NAME)

Line numbers are those of the written file (header included).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = HERE.parents[2] / "cases"
HEADER = 3

Edit = Callable[[list[str]], int | str]  # edits lines in place; returns 1-based line or field


def _table_start(lines: list[str], table: str) -> int:
    for i, ln in enumerate(lines):
        if ln.strip().startswith(f"mpc.{table} ="):
            return i
    raise KeyError(table)


def _row_index(lines: list[str], table: str, k: int) -> int:
    return _table_start(lines, table) + k  # k-th row (1-based) follows the header line


def set_cell(table: str, k: int, col: int, value: str) -> Edit:
    def edit(lines: list[str]) -> int:
        i = _row_index(lines, table, k)
        toks = lines[i].strip().rstrip(";").split()
        toks[col - 1] = value
        lines[i] = "\t" + "\t ".join(toks) + ";"
        return i + 1

    return edit


def set_cells(table: str, k: int, changes: dict[int, str]) -> Edit:
    def edit(lines: list[str]) -> int:
        line = 0
        for col, val in changes.items():
            line = set_cell(table, k, col, val)(lines)
        return line

    return edit


def drop_table(table: str) -> Edit:
    def edit(lines: list[str]) -> str:
        i = _table_start(lines, table)
        j = i
        while lines[j].strip() != "];":
            j += 1
        del lines[i : j + 1]
        return table

    return edit


def replace_line(startswith: str, new: str) -> Edit:
    def edit(lines: list[str]) -> int:
        for i, ln in enumerate(lines):
            if ln.strip().startswith(startswith):
                lines[i] = new
                return i + 1
        raise KeyError(startswith)

    return edit


def drop_line(startswith: str, fld: str) -> Edit:
    def edit(lines: list[str]) -> str:
        for i, ln in enumerate(lines):
            if ln.strip().startswith(startswith):
                del lines[i]
                return fld
        raise KeyError(startswith)

    return edit


def drop_last(startswith: str) -> Edit:
    def edit(lines: list[str]) -> int:
        for i in range(len(lines) - 1, -1, -1):
            if lines[i].strip().startswith(startswith):
                del lines[i]
                return i + 1
        raise KeyError(startswith)

    return edit


def all_rows(table: str, fn: Callable[[list[str]], list[str]]) -> Edit:
    def edit(lines: list[str]) -> int:
        i = _table_start(lines, table) + 1
        first = i
        while lines[i].strip() != "];":
            toks = lines[i].strip().rstrip(";").split()
            lines[i] = "\t" + "\t ".join(fn(toks)) + ";"
            i += 1
        return first + 1

    return edit


def drop_row(table: str, k: int, report: str | None = None) -> Edit:
    def edit(lines: list[str]) -> int | str:
        i = _row_index(lines, table, k)
        del lines[i]
        return report if report else _table_start(lines, table) + 1

    return edit


def insert_after(startswith: str, new: list[str], at: int = 0) -> Edit:
    def edit(lines: list[str]) -> int:
        for i, ln in enumerate(lines):
            if ln.strip().startswith(startswith):
                lines[i + 1 : i + 1] = new
                return i + 2 + at
        raise KeyError(startswith)

    return edit


def chain(*edits: Edit) -> Edit:
    def edit(lines: list[str]) -> int | str:
        out: int | str = 0
        for e in edits:
            out = e(lines)
        return out

    return edit


def _island(lines: list[str]) -> int:
    # case5: bus 2 (300 MW) is reached by branches 1-2 (row 1) and 2-3 (row 4) only
    set_cell("branch", 1, 11, "0")(lines)
    set_cell("branch", 4, 11, "0")(lines)
    return _row_index(lines, "bus", 2) + 1


P5 = "pglib_opf_case5_pjm"
P3 = "pglib_opf_case3_lmbd"

# name: (base case, description, edit, expected message substring)
CORPUS: dict[str, tuple[str, str, Edit, str]] = {
    "missing_bus_table": (P5, "mpc.bus removed", drop_table("bus"), "missing table mpc.bus"),
    "missing_basemva": (P5, "mpc.baseMVA removed", drop_line("mpc.baseMVA", "baseMVA"),
                        "missing or non-numeric mpc.baseMVA"),
    "negative_basemva": (P3, "baseMVA = -100", replace_line("mpc.baseMVA", "mpc.baseMVA = -100;"),
                         "baseMVA must be a positive number"),
    "unterminated_matrix": (P3, "the branch matrix (the last one) is never closed",
                            chain(drop_last("];"), lambda ls: _table_start(ls, "branch") + 1),
                            "unterminated matrix branch"),
    "matrix_not_closed": (P3, "the bus matrix is not closed before mpc.gen",
                          chain(drop_line("];", "x"), lambda ls: _table_start(ls, "gen") + 1),
                          "mpc.bus (line 48) is not closed"),
    "bus_too_few_columns": (P5, "the bus table has 12 columns (Vmin dropped)",
                            all_rows("bus", lambda t: t[:12]), "needs at least 13"),
    "ragged_branch_row": (P3, "branch row 2 has an extra column",
                          set_cell("branch", 2, 13, "30.0\t 7"), "has 14 columns, expected 13"),
    "nan_entry": (P5, "NaN voltage magnitude in bus row 3", set_cell("bus", 3, 8, "NaN"),
                  "NaN in column 8 (Vm)"),
    "non_numeric_entry": (P5, "a word in the gen table", set_cell("gen", 2, 6, "one"),
                          "unexpected 'one' inside gen"),
    "malformed_number": (P3, "1.0e in the branch table", set_cell("branch", 1, 3, "0.065e"),
                         "malformed number"),
    "infinite_vmax": (P3, "Vmax = Inf", set_cell("bus", 2, 12, "Inf"),
                      "non-finite value in column 12 (Vmax)"),
    "duplicate_bus_id": (P5, "bus row 5 reuses id 4", set_cell("bus", 5, 1, "4"),
                         "duplicate bus id 4"),
    "non_integer_bus_id": (P3, "bus id 2.5", set_cell("bus", 2, 1, "2.5"),
                           "is not a positive integer"),
    "bad_bus_type": (P3, "bus type 7", set_cell("bus", 3, 2, "7"), "bus type 7"),
    "gen_on_missing_bus": (P5, "generator row 3 on bus 9", set_cell("gen", 3, 1, "9"),
                           "generator on missing bus 9"),
    "branch_on_missing_bus": (P5, "branch row 2 to bus 42", set_cell("branch", 2, 2, "42"),
                              "missing bus 42"),
    "self_loop_branch": (P3, "branch from bus 3 to bus 3", set_cell("branch", 2, 2, "3"),
                         "connects bus 3 to itself"),
    "no_reference_bus": (P5, "the only type-3 bus made PV", chain(
        set_cell("bus", 4, 2, "2"), lambda ls: _table_start(ls, "bus") + 1),
        "no reference bus"),
    "island_without_generation": (P5, "bus 2 (300 MW) cut off by switching out its branches",
                                  _island, "no in-service generator"),
    "vmin_above_vmax": (P5, "Vmin 1.1 > Vmax 0.9 on bus 2",
                        set_cells("bus", 2, {12: "0.9", 13: "1.1"}), "Vmin 1.1 > Vmax 0.9"),
    "pmin_above_pmax": (P5, "Pmin 300 > Pmax 200 on gen 4", set_cell("gen", 4, 10, "300.0"),
                        "Pmin 300 > Pmax 200"),
    "qmin_above_qmax": (P3, "Qmin > Qmax on gen 2", set_cell("gen", 2, 5, "1500.0"),
                        "Qmin 1500 > Qmax 1000"),
    "negative_rating": (P5, "rateA = -426 on branch 3", set_cell("branch", 3, 6, "-426"),
                        "negative rating rateA"),
    "zero_impedance": (P5, "r = x = 0 on branch 5", set_cells("branch", 5, {3: "0.0", 4: "0.0"}),
                       "zero impedance"),
    "negative_tap": (P3, "tap ratio -1", set_cell("branch", 3, 9, "-1.0"), "negative tap ratio"),
    "angmin_above_angmax": (P3, "angmin 30 > angmax -30",
                            set_cells("branch", 1, {12: "30.0", 13: "-30.0"}),
                            "angmin 30 > angmax"),
    "gencost_bad_model": (P5, "cost model 3", set_cell("gencost", 2, 1, "3"), "cost model 3"),
    "gencost_piecewise_one_point": (P3, "piecewise-linear cost (model 1) of one point",
                                    set_cells("gencost", 1, {1: "1", 4: "1"}),
                                    "piecewise-linear cost with 1 point(s)"),
    "gencost_missing_row": (P5, "one gencost row removed", drop_row("gencost", 3),
                            "gencost has 4 rows, expected 5"),
    "gencost_n_too_large": (P3, "n = 5 with 3 coefficients", set_cell("gencost", 2, 4, "5"),
                            "n = 5 needs 9 columns"),
    "gencost_nan": (P3, "NaN cost coefficient", set_cell("gencost", 1, 6, "NaN"),
                    "non-finite cost coefficient"),
    "executable_code": (P5, "a function call in the file",
                        insert_after("mpc.baseMVA", ["disp('hello');"]),
                        "unsupported statement starting with 'disp'"),
    "arithmetic": (P3, "baseMVA written as an expression",
                   replace_line("mpc.baseMVA", "mpc.baseMVA = 50 * 2;"),
                   "unexpected '*' after the value of mpc.baseMVA"),
    "active_dcline": (P3, "an in-service DC line",
                      insert_after("mpc.baseMVA", [
                          "mpc.dcline = [",
                          "\t1\t 2\t 1\t 10\t 10\t 0\t 0\t 1.0\t 1.0\t 0\t 100\t -100\t 100"
                          "\t -100\t 100\t 0\t 0;",
                          "];"], at=1),
                      "in-service DC lines (mpc.dcline) are not supported"),
    "table_assigned_twice": (P3, "mpc.bus assigned twice", chain(insert_after(
        "mpc.baseMVA", ["mpc.bus = [", "\t1\t 3\t 0\t 0\t 0\t 0\t 1\t 1\t 0\t 240\t 1\t 1.1\t 0.9;",
                        "];"]), lambda ls: [i for i, ln in enumerate(ls)
                                            if ln.startswith("mpc.bus =")][1] + 1),
        "mpc.bus assigned twice (first on line 45)"),
    "angmin_plus_inf": (P3, "angmin = angmax = +Inf on branch 1",
                        set_cells("branch", 1, {12: "Inf", 13: "Inf"}),
                        "angmin = +Inf or angmax = -Inf leaves no feasible angle difference"),
    "angmax_minus_inf": (P3, "angmin = angmax = -Inf on branch 2",
                         set_cells("branch", 2, {12: "-Inf", 13: "-Inf"}),
                         "angmin = +Inf or angmax = -Inf leaves no feasible angle difference"),
    "tap_numerically_zero": (P3, "tap ratio 1e-200 (positive, but 1/tap^2 overflows)",
                             set_cell("branch", 3, 9, "1e-200"), "numerically zero tap ratio"),
    "sign_after_number": (P3, "Vmax written as 1.1+0 (arithmetic without blanks)",
                          set_cell("bus", 2, 12, "1.1+0"),
                          "unexpected '+' right after the number '1.1'"),
}


def build(out: Path = HERE) -> list[Path]:
    """Write every corpus file; returns the paths."""
    written = []
    for name, (base, desc, edit, expect) in CORPUS.items():
        lines = (CASES / f"{base}.m").read_text().splitlines()
        where = edit(lines)
        at = f"line {where + HEADER}" if isinstance(where, int) else f"field {where}"
        header = [f"% BROKEN: {desc} (edit of {base})", f"% EXPECT-ERROR: {expect}",
                  f"% EXPECT-AT: {at}"]
        path = out / f"{name}.m"
        path.write_text("\n".join(header + lines) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in build():
        print(p.name)
