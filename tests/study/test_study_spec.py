"""Study files: parsing, job expansion, and malformed files rejected with line and key."""

from __future__ import annotations

from pathlib import Path

import pytest
from study_helpers import MODEL, SMALL_STUDY

from gridverify.cli import main
from gridverify.errors import GridverifyError, StudyError
from gridverify.study.jobs import expand_jobs
from gridverify.study.spec import StudyOptions, load_study, parse_study


def _line_of(text: str, needle: str) -> int:
    for no, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return no
    raise AssertionError(needle)


def test_small_study_expands_to_jobs() -> None:
    spec = parse_study(SMALL_STUDY, "small.toml")
    jobs = expand_jobs(spec)
    assert [j.id for j in jobs] == [
        "c14__case14_relu__near__all__ibp", "c14__case14_relu__near__all__crown",
        "c14__case14_relu__wide__all__ibp", "c14__case14_relu__wide__all__crown",
    ]
    j = jobs[0]
    assert j.case_name == "pglib_opf_case14_ieee"
    assert len(j.region["lower"]) == 22 and j.region["kind"] == "box"
    assert j.options["samples"] == 64 and j.options["seed"] == 3
    assert len({x.digest for x in jobs}) == 4


def test_refine_reaches_the_jobs_and_their_hashes() -> None:
    default = expand_jobs(parse_study(SMALL_STUDY, "small.toml"))
    assert all("refine" not in j.options for j in default)  # hashes of older studies hold
    text = SMALL_STUDY.replace("samples = 64", 'samples = 64\nrefine = "all"', 1)
    jobs = expand_jobs(parse_study(text, "small.toml"))
    assert all(j.options["refine"] == "all" for j in jobs)
    assert {j.digest for j in jobs}.isdisjoint({j.digest for j in default})


def test_radius_keys_reach_the_jobs_and_their_hashes() -> None:
    default = expand_jobs(parse_study(SMALL_STUDY, "small.toml"))
    assert all(not {"radius", "radius_steps"} & set(j.options) for j in default)
    text = SMALL_STUDY.replace("samples = 64", "samples = 64\nradius = false\nradius_steps = 0", 1)
    jobs = expand_jobs(parse_study(text, "small.toml"))
    assert all(j.options["radius"] is False and j.options["radius_steps"] == 0 for j in jobs)
    assert {j.digest for j in jobs}.isdisjoint({j.digest for j in default})
    so = StudyOptions.from_dict(jobs[0].options)
    assert so.certify.radius is False and so.certify.radius_steps == 0


def test_relative_paths_resolve_against_the_study_folder(tmp_path: Path) -> None:
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    (tmp_path / "models").symlink_to(MODEL.parent)
    p = sub / "s.toml"
    p.write_text(SMALL_STUDY.replace(str(MODEL), "../../models/case14_relu"))
    spec = load_study(p)
    assert spec.cases[0].models[0][1] == str((tmp_path / "models" / "case14_relu").resolve())


# (description, edit of the small study: (old, new), line needle, key named)
BAD = [
    ("unknown top-level table", ("[study]", "[studdy]"), "[studdy]", "studdy"),
    ("unknown key in study", ("seed = 3", "sed = 3"), "sed = 3", "study.sed"),
    ("unknown key in a case", ("models = ", "modles = "), "modles", "cases.c14.modles"),
    ("missing case", ('case = "pglib_opf_case14_ieee"\n', ""), "[cases.c14]", "cases.c14"),
    ("case file not found", ('"pglib_opf_case14_ieee"', '"cases/missing_case.m"'),
     "missing_case.m", "cases.c14.case"),
    ("unknown bundled case", ('"pglib_opf_case14_ieee"', '"pglib_opf_case99_nowhere"'),
     "case99", "cases.c14.case"),
    ("bad region bounds", ("box = [0.97, 1.03]", "box = [1.03, 0.97]"), "box = [1.03",
     "regions.near.box"),
    ("bad region shape", ("box = [0.97, 1.03]", "box = [0.97]"), "box = [0.97]",
     "regions.near.box"),
    ("unknown region key", ("box = [0.97, 1.03]", "boxx = [0.97, 1.03]"), "boxx",
     "regions.near.boxx"),
    ("unknown key beside a region", ("box = [0.97, 1.03]", "box = [0.97, 1.03]\n\nfoo = 1"),
     "foo = 1", "regions.near.foo"),
    ("unknown key beside a region, before it", ("pglearn = [0.9", "r = 0.1\npglearn = [0.9"),
     "r = 0.1", "regions.wide.r"),
    ("unknown method", ('"crown"]', '"crwn"]'), "methods", "study.methods"),
    ("unknown family", ('families = ["all"]', 'families = ["thermal"]'), "families",
     "constraints.all.families"),
    ("model not found", (str(MODEL), str(MODEL) + "_gone"), "models = ", "cases.c14.models"),
    ("negative samples", ("samples = 64", "samples = -1"), "samples", "study.samples"),
    ("unknown refine", ("samples = 64", 'samples = 64\nrefine = "violated"'), "refine",
     "study.refine"),
    ("radius not a boolean", ("samples = 64", 'samples = 64\nradius = "yes"'), "radius",
     "study.radius"),
    ("threads past the limit", ("samples = 64", "samples = 64\nthreads = 5000"),
     "threads", "study.threads"),
    ("negative radius_steps", ("samples = 64", "samples = 64\nradius_steps = -1"),
     "radius_steps", "study.radius_steps"),
    ("fractional radius_steps", ("samples = 64", "samples = 64\nradius_steps = 1.5"),
     "radius_steps", "study.radius_steps"),
    ("case names an undefined region", ("models = [", 'regions = ["far"]\nmodels = ['),
     "regions = [", "cases.c14.regions"),
    ("study name ..", ('name = "small"', 'name = ".."'), 'name = ".."', "study.name"),
    ("study name .", ('name = "small"', 'name = "."'), 'name = "."', "study.name"),
    ("study name with a slash", ('name = "small"', 'name = "a/b"'), 'name = "a/b"',
     "study.name"),
    ("empty component list", ('families = ["all"]', 'families = ["all"]\n'
                              "components = { p_balance = [] }"), "components",
     "constraints.all.components.p_balance"),
    ("component id out of range", ('families = ["all"]', 'families = ["all"]\n'
                                   "components = { p_balance = [99999999999999999999] }"),
     "components", "constraints.all.components.p_balance"),
    ("fractional component id", ('families = ["all"]', 'families = ["all"]\n'
                                 "components = { p_balance = [1.5] }"), "components",
     "constraints.all.components.p_balance"),
    ("float component id", ('families = ["all"]', 'families = ["all"]\n'
                            "components = { p_balance = [1e30] }"), "components",
     "constraints.all.components.p_balance"),
    ("dataset not a string", ("box = [0.97, 1.03]", "dataset = 5"), "dataset = 5",
     "regions.near.dataset"),
    # refused by the check, not by every job it makes failing at run time
    ("samples beyond memory", ("samples = 64", "samples = 100000000000000000"),
     "samples = 1", "study.samples"),
]


@pytest.mark.parametrize("what,edit,needle,key", BAD, ids=[b[0] for b in BAD])
def test_malformed_study_names_line_and_key(what: str, edit: tuple[str, str], needle: str,
                                            key: str) -> None:
    old, new = edit
    assert old in SMALL_STUDY
    text = SMALL_STUDY.replace(old, new, 1)
    with pytest.raises(StudyError) as info:
        parse_study(text, "bad.toml")
    msg = str(info.value)
    line = _line_of(text, needle)
    assert msg.startswith(f"bad.toml:{line}: key {key}:"), msg
    assert isinstance(info.value, GridverifyError)


def test_unknown_region_key_is_found_without_checking_cases() -> None:
    text = SMALL_STUDY.replace("box = [0.97, 1.03]", "box = [0.97, 1.03]\nfoo = 1", 1)
    with pytest.raises(StudyError) as info:
        parse_study(text, "bad.toml", check=False)
    assert str(info.value).startswith(f"bad.toml:{_line_of(text, 'foo = 1')}: key "
                                      "regions.near.foo: unknown key 'foo'"), info.value


def test_toml_syntax_error_names_line() -> None:
    text = SMALL_STUDY.replace("samples = 64", "samples = = 64")
    with pytest.raises(StudyError, match=r"^bad.toml:5: invalid TOML \(invalid value, "
                       r"column \d+\): `samples = = 64`$"):
        parse_study(text, "bad.toml")


def test_toml_duplicate_key_names_its_path() -> None:
    """tomllib says only 'Cannot overwrite a value': the message names the key."""
    text = SMALL_STUDY.replace("box = [0.97, 1.03]", "box = [0.97, 1.03]\nbox = [0.9, 1.1]", 1)
    line = _line_of(text, "box = [0.9, 1.1]")
    with pytest.raises(StudyError) as info:
        parse_study(text, "bad.toml", check=False)
    assert str(info.value) == (f"bad.toml:{line}: invalid TOML: key regions.near.box "
                               "given twice"), info.value


def test_cli_rejects_before_any_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(SMALL_STUDY.replace("box = [0.97, 1.03]", "box = [1.2, 0.8]"))
    out = tmp_path / "out"
    assert main(["study", "run", str(p), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"{p}:{_line_of(p.read_text(), 'box = [1.2')}: key regions.near.box:" in lines[0]
    assert not out.exists()  # nothing ran, nothing written


def test_cli_check_lists_jobs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "s.toml"
    p.write_text(SMALL_STUDY)
    assert main(["study", "check", str(p), "--json"]) == 0
    assert '"c14__case14_relu__wide__all__crown"' in capsys.readouterr().out


def test_cli_bad_executor_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "s.toml"
    p.write_text(SMALL_STUDY)
    assert main(["study", "run", str(p), "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err
    assert main(["study", "run", str(p), "--address", "ray://x:1"]) == 2
    assert "--address" in capsys.readouterr().err


def test_job_hash_covers_model_files(tmp_path: Path) -> None:
    import shutil

    from gridverify.study.jobs import run_job

    copy = tmp_path / "case14_relu"
    shutil.copytree(MODEL, copy)
    p = tmp_path / "s.toml"
    p.write_text(SMALL_STUDY.replace(str(MODEL), str(copy)))
    before = expand_jobs(load_study(p))
    (copy / "extra.txt").write_text("re-trained")  # any change of the model's files
    after = expand_jobs(load_study(p))
    assert [j.id for j in before] == [j.id for j in after]
    assert all(a.digest != b.digest for a, b in zip(before, after))  # resume re-runs them
    rec = run_job(before[0])  # a job checked before the change refuses to run
    assert rec["state"] == "failed" and rec["error"]["type"] == "StudyError"
    assert "changed after the study was checked" in rec["error"]["message"]


def test_factor_region_reaches_the_job_and_is_certified_over_its_factors() -> None:
    import numpy as np

    from gridverify.study.jobs import run_job

    text = SMALL_STUDY.replace("pglearn = [0.9, 1.1, 0.05]", "scale = [0.95, 1.05]", 1)
    jobs = expand_jobs(parse_study(text, "small.toml"))
    line = next(j for j in jobs if j.region_name == "wide" and j.method == "crown")
    assert line.region["kind"] == "scale" and line.region["factors"]["shape"] == [22, 1]
    from gridverify.certify import Certificate

    rec = run_job(line)
    assert rec["state"] == "done", rec.get("error")
    cert = Certificate.from_dict(rec["certificate"])
    assert cert.region.factors is not None and cert.region.describe() == "scale:0.95,1.05"
    nom = cert.region.center  # 1.0 x nominal
    for c in cert.constraints:  # every worst load: one factor of nominal for all loads
        s = c.worst_load[nom != 0] / nom[nom != 0]
        assert np.allclose(s, s[0], rtol=0, atol=1e-9) and 0.95 - 1e-9 <= s[0] <= 1.05 + 1e-9


def test_layout_reaches_the_jobs_and_a_foreign_proxy_runs(tmp_path: Path) -> None:
    """A ``layout`` table adapts a proxy file trained elsewhere; jobs without one keep
    the digests of studies stored before layouts existed."""
    import io
    import math

    import torch

    from gridverify.certify import Certificate
    from gridverify.grid import load_compiled
    from gridverify.proxy import load_proxy
    from gridverify.study.jobs import run_job

    case = load_compiled("pglib_opf_case14_ieee")
    inner = load_proxy(MODEL, case=case).module
    G, N = case.n_gen, case.n_bus

    class Degrees(torch.nn.Module):  # the shipped proxy, its angles in degrees, va first
        def __init__(self) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.inner(x)
            return torch.cat([y[:, 2 * G + N:] * (180 / math.pi), y[:, :2 * G + N]], 1)

    buf = io.BytesIO()
    torch.onnx.export(Degrees().eval(), (torch.zeros(1, 2 * case.n_load, dtype=torch.float64),),
                      buf, dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "b"}, "y": {0: "b"}})
    (tmp_path / "deg.onnx").write_bytes(buf.getvalue())
    base = SMALL_STUDY.replace(f'models = ["{MODEL}"]', f'models = ["{tmp_path / "deg.onnx"}"]')
    assert all(j.layout is None for j in expand_jobs(load_study_text(tmp_path, base)))
    text = base.replace("[regions.near]", 'layout = { outputs = "va,pg,qg,vm", '
                        'angle_units = "deg" }\n\n[regions.near]', 1)
    jobs = expand_jobs(load_study_text(tmp_path, text))
    assert all(j.layout["angle_units"] == "deg" for j in jobs)
    assert all("layout" not in j.to_dict() for j in expand_jobs(parse_study(SMALL_STUDY, "s")))
    rec = run_job(next(j for j in jobs if j.method == "crown" and j.region_name == "near"))
    assert rec["state"] == "done", rec.get("error")
    cert = Certificate.from_dict(rec["certificate"])
    assert cert.provenance["proxy_layout"]["outputs"] == ["va", "pg", "qg", "vm"]
    bad = base.replace("[regions.near]", 'layout = { angle_units = "grad" }\n\n[regions.near]', 1)
    with pytest.raises(StudyError, match="layout.*angle_units must be one of rad, deg"):
        parse_study(bad, "bad.toml")
    gone = base.replace("[regions.near]", 'layout = { normalization = "gone.npz" }\n\n'
                        "[regions.near]", 1)
    with pytest.raises(StudyError, match="layout.*file not found.*gone.npz"):
        load_study_text(tmp_path, gone)


def load_study_text(folder: Path, text: str):
    p = folder / "study.toml"
    p.write_text(text, encoding="utf-8")
    return load_study(p)


@pytest.mark.parametrize("ids,message", [
    ("[]", "empty list of component ids"),
    ("[99999999999999999999]", "id 99999999999999999999 is out of range"),
    ("[-1]", "id -1 is out of range"),
    ("[1.5]", "id 1.5 is not an integer"),
    ("[1e30]", "id 1e+30 is not an integer"),
    ("[2.0]", "id 2.0 is not an integer"),
    ("[true]", "id True is not an integer"),
])
def test_component_ids_are_integers_in_range(ids: str, message: str) -> None:
    text = SMALL_STUDY.replace('families = ["all"]',
                               f'families = ["all"]\ncomponents = {{ p_balance = {ids} }}', 1)
    with pytest.raises(StudyError) as info:
        parse_study(text, "bad.toml", check=False)
    assert str(info.value).endswith(message + (
        " (give ids, or leave the family out of components for all of its components)"
        if ids == "[]" else " (0 to 2**63 - 1)" if "range" in message else "")), info.value


def test_dataset_region_must_be_a_string() -> None:
    text = SMALL_STUDY.replace("box = [0.97, 1.03]", "dataset = 5", 1)
    with pytest.raises(StudyError, match=r"regions.near.dataset: .*expected a string .*got 5$"):
        parse_study(text, "bad.toml")


@pytest.mark.parametrize("stem", [".", ".."])
def test_default_name_of_a_dotted_file_is_a_folder_name(stem: str) -> None:
    text = SMALL_STUDY.replace('name = "small"\n', "", 1)
    assert parse_study(text, f"/tmp/{stem}.toml", check=False).name == "study"


def test_cli_refuses_dot_names_before_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A study named ``..`` would write its results beside reports/ (``reports/..``)."""
    monkeypatch.chdir(tmp_path)  # the default output folder: here, whatever happens
    p = tmp_path / "s.toml"
    p.write_text(SMALL_STUDY.replace('name = "small"', 'name = ".."', 1))
    before = sorted(tmp_path.rglob("*"))
    assert main(["study", "run", str(p), "--quiet", "--no-report"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "study.name" in err and "'..'" in err
    assert sorted(tmp_path.rglob("*")) == before


def _collision_study(tmp_path: Path, cases: dict[str, list[str]]) -> Path:
    """A study of ``cases`` (key -> model folder names, each a copy of the shipped proxy)."""
    import shutil

    text = SMALL_STUDY.split("[cases.c14]")[0]
    for key, models in cases.items():
        for m in models:
            if not (tmp_path / m).exists():
                shutil.copytree(MODEL, tmp_path / m)
        listed = ", ".join(f'"{tmp_path / m}"' for m in models)
        text += (f'[cases."{key}"]\ncase = "pglib_opf_case14_ieee"\nmodels = [{listed}]\n'
                 'regions = ["near"]\n\n')
    text += '[regions.near]\nbox = [0.97, 1.03]\n\n[constraints.all]\nfamilies = ["all"]\n'
    p = tmp_path / "collide.toml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("cases,first,second", [
    ({"c14": ["m a", "m-a"]}, "c14 / m a / near", "c14 / m-a / near"),
    ({"a__b": ["c"], "a": ["b__c"]}, "a__b / c / near", "a / b__c / near"),
], ids=["sanitized labels", "separator in keys"])
def test_jobs_with_the_same_id_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           cases: dict[str, list[str]], first: str,
                                           second: str) -> None:
    """Two jobs stored under one id would overwrite each other's files."""
    p = _collision_study(tmp_path, cases)
    with pytest.raises(StudyError) as info:
        expand_jobs(load_study(p))
    msg = str(info.value)
    assert f"'{first} / all / ibp'" in msg and f"'{second} / all / ibp'" in msg, msg
    assert "same job id" in msg
    assert main(["study", "check", str(p)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and first in err and second in err
    out = tmp_path / "out"
    assert main(["study", "run", str(p), "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not out.exists()  # nothing written


def test_threads_are_not_in_the_job_hash_but_timeout_is() -> None:
    """Threads say how a job runs, not what it computes (as the memory cap)."""
    base = expand_jobs(parse_study(SMALL_STUDY, "small.toml"))
    more = expand_jobs(parse_study(SMALL_STUDY.replace("seed = 3", "seed = 3\nthreads = 4", 1),
                                   "small.toml"))
    assert all(j.options["threads"] == 4 for j in more)  # the jobs still run with 4
    assert [j.digest for j in more] == [j.digest for j in base]
    timed = expand_jobs(parse_study(SMALL_STUDY.replace("seed = 3", "seed = 3\ntimeout = 60",
                                                        1), "small.toml"))
    assert {j.digest for j in timed}.isdisjoint({j.digest for j in base})


def test_reordered_sets_and_other_families_thresholds_keep_the_job_hash() -> None:
    """Resume reruns only what computes something else: a constraint set written in
    another order, or a threshold of a family the job does not select, is the same job;
    a threshold of a family it selects is not."""
    sets = ('[constraints.th]\nfamilies = ["thermal_fr", "vm_max"]\n'
            'components = { p_balance = [2, 3, 4] }\n')

    def jobs(text: str) -> dict[str, str]:
        return {j.id: j.digest for j in expand_jobs(parse_study(SMALL_STUDY + text,
                                                                "small.toml"))}

    base = jobs(sets)
    swapped = sets.replace('"thermal_fr", "vm_max"', '"vm_max", "thermal_fr"').replace(
        "[2, 3, 4]", "[4, 2, 3]")
    assert jobs(swapped) == base
    other = jobs(sets + "[thresholds]\nq_balance = 0.002\n")
    th = [k for k in base if "__th__" in k]
    assert th and all(other[k] == base[k] for k in th)  # q_balance: not in the th set
    assert any(other[k] != base[k] for k in base if k not in th)  # but in the all set
    mine = jobs(sets + "[thresholds]\nvm_max = 0.002\n")
    assert all(mine[k] != base[k] for k in th)


def test_job_ids_too_long_for_a_file_name_are_refused_before_any_job_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A case key of 240 characters: its job files could not be written, so the study is
    refused by ``study check`` as by ``study run``, and nothing is written."""
    p = _collision_study(tmp_path, {"k" * 240: ["m"]})
    with pytest.raises(StudyError, match="longer than the 200"):
        expand_jobs(load_study(p))
    assert main(["study", "check", str(p)]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    out = tmp_path / "out"
    assert main(["study", "run", str(p), "--out", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not out.exists()


def test_a_boolean_where_a_number_is_expected_is_spelled_as_in_toml() -> None:
    text = SMALL_STUDY.replace("samples = 64", "samples = true", 1)
    with pytest.raises(StudyError, match=r"key study.samples: expected a number, got true$"):
        parse_study(text, "bad.toml", check=False)


def test_a_study_file_named_in_another_script_gets_a_readable_name() -> None:
    """``étude 日本.toml`` without [study] name was ``-tude-`` (reports/-tude-: an option
    to rm and ls); a name of one's own may not start with ``-`` either."""
    text = SMALL_STUDY.replace('name = "small"\n', "")
    assert "name =" not in text.split("[cases")[0]
    assert parse_study(text, "\u00e9tude \u65e5\u672c.toml").name == "etude"
    assert parse_study(text, "\u65e5\u672c.toml").name == "study"
    with pytest.raises(StudyError, match="not starting with -"):
        parse_study(SMALL_STUDY.replace('name = "small"', 'name = "-x"'), "s.toml")
