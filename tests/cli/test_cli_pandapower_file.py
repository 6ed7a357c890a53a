"""A pandapower network saved as ``.json`` through the whole command line:
dataset, training (the dataset remembers the case file) and certification."""

from __future__ import annotations

import json

import pytest

from gridverify.cli import main

pp = pytest.importorskip("pandapower")
pn = pytest.importorskip("pandapower.networks")


def test_pandapower_json_case_from_dataset_to_certificate(tmp_path, capsys):
    case = tmp_path / "grid9.json"
    pp.to_json(pn.case9(), str(case))
    data, model = tmp_path / "grid9.h5", tmp_path / "grid9_model"
    assert main(["dataset", "make", str(case), "--samples", "16", "--out", str(data),
                 "--no-progress"]) == 0
    capsys.readouterr()
    # no --case: train finds the case through the file the dataset was made from
    assert main(["train", str(data), "--out", str(model), "--epochs", "2", "--hidden", "16",
                 "--no-progress", "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["case_name"] == "grid9"
    out = tmp_path / "cert.json"
    rc = main(["certify", str(case), "--model", str(model), "--method", "crown",
               "--no-progress", "--json", "--out", str(out)])
    cert = json.loads(out.read_text())
    assert rc in (0, 1, 3) and cert["case"] == "grid9"
    statuses = {c["status"] for c in cert["constraints"]}
    assert statuses <= {"certified", "violated", "open"} and len(cert["constraints"]) > 0


def test_train_without_case_names_the_missing_case_file(tmp_path, capsys):
    import h5py

    case = tmp_path / "grid9.json"
    pp.to_json(pn.case9(), str(case))
    data = tmp_path / "grid9.h5"
    assert main(["dataset", "make", str(case), "--samples", "4", "--out", str(data),
                 "--no-progress"]) == 0
    with h5py.File(data, "a") as fh:
        assert fh.attrs["case_source"] == str(case.resolve())
    case.unlink()
    capsys.readouterr()
    assert main(["train", str(data), "--out", str(tmp_path / "m"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "grid9" in err[0] and "--case" in err[0]
