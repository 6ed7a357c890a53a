"""``gridverify certify --method bab``: JSON contract, memory cap flag, bad flag values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gridverify.cli import main


@pytest.mark.parametrize("jobs", [1, 2])
def test_cli_method_bab_json(capsys, jobs):
    code = main(["certify", "pglib_opf_case14_ieee", "--model", "models/case14_relu",
                 "--method", "bab", "--constraints", "angle_max[1],vm_min[3],p_balance[3]",
                 "--region", "box:0.9,1.1", "--samples", "64", "--bab-timeout", "1",
                 "--memory-cap", "64", "--timeout", "120", "--jobs", str(jobs), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code in (0, 1, 3)
    assert out["method"] == "bab"
    assert out["provenance"]["options"]["jobs"] == jobs
    assert out["provenance"]["bab"]  # p_balance[3]'s gap is tightened
    for c in out["constraints"]:
        assert c["attained"] <= c["upper_bound"]
        assert np.isfinite(c["upper_bound"])


def test_cli_memory_cap_must_be_positive(capsys):
    code = main(["certify", "pglib_opf_case14_ieee", "--model", "models/case14_relu",
                 "--method", "bab", "--memory-cap", "0", "--constraints", "vm_min[1]"])
    err = capsys.readouterr().err
    assert code == 2 and "--memory-cap" in err
