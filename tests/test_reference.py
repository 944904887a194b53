"""The smoke reference: tolerances from the seed spread, deviations named, the checked text."""

import json
import math

import pytest

from r2mae_core import reference
from r2mae_core.paths import notebook_names

RUNS = [{"acc": 0.50, "loss": 1.0, "best": "fixed 0.75", "verdict": "supported", "flat": 0.25, "gone": None},
        {"acc": 0.52, "loss": 1.0, "best": "fixed 0.75", "verdict": "inconclusive", "flat": 0.25, "gone": None},
        {"acc": 0.54, "loss": 1.0, "best": "fixed 0.75", "verdict": "supported", "flat": 0.25, "gone": None}]


@pytest.fixture
def ref():
    return reference.build_reference("02_vision", RUNS, [0, 1, 2])


def test_reporting_unit_is_one_unit_of_the_fourth_significant_digit():
    assert reference.reporting_unit(0.6233) == pytest.approx(1e-4)
    assert reference.reporting_unit(-6.148) == pytest.approx(1e-3)
    assert reference.reporting_unit(3.46e-05) == pytest.approx(1e-8)
    assert reference.reporting_unit(0.0) == 0.0


def test_tolerance_is_z_seed_sds_or_one_reporting_unit(ref):
    acc = ref["numbers"]["acc"]
    assert acc["value"] == 0.50
    assert acc["sd"] == pytest.approx(0.02)
    assert acc["tolerance"] == pytest.approx(reference.Z * 0.02)
    assert ref["numbers"]["flat"]["tolerance"] == pytest.approx(reference.reporting_unit(0.25))
    assert ref["numbers"]["gone"] == {"value": None, "sd": None, "tolerance": None}


def test_texts_are_asserted_only_when_every_seed_agrees(ref):
    assert ref["texts"]["best"] == {"value": "fixed 0.75", "asserted": True, "seen": ["fixed 0.75"]}
    assert ref["texts"]["verdict"]["asserted"] is False


def test_build_reference_rejects_bad_input():
    with pytest.raises(ValueError, match="at least two seeds"):
        reference.build_reference("02_vision", RUNS[:1], [0])
    with pytest.raises(ValueError, match=r"\['acc'\] are missing"):
        reference.build_reference("02_vision", [RUNS[0], {k: v for k, v in RUNS[1].items() if k != "acc"}], [0, 1])
    with pytest.raises(ValueError, match="does not exist"):
        reference.build_reference("99_nothing", RUNS, [0, 1, 2])


def test_deviations_name_each_number_outside_its_tolerance(ref):
    assert reference.deviations(RUNS[0], ref) == []
    assert reference.deviations({**RUNS[0], "acc": 0.50 + 0.9 * reference.Z * 0.02}, ref) == []
    bad = reference.deviations({**RUNS[0], "acc": 0.50 + 1.1 * reference.Z * 0.02, "flat": 0.2502}, ref)
    assert [line.split(" ")[0] for line in bad] == ["acc", "flat"]
    assert "outside 0.5 ±" in bad[0]


def test_deviations_cover_nan_texts_missing_and_new_keys(ref):
    assert reference.deviations({**RUNS[0], "gone": 1.0}, ref) == ["gone = 1, reference nan"]
    assert reference.deviations({**RUNS[0], "acc": None}, ref) == ["acc = nan, reference 0.5"]
    assert reference.deviations({**RUNS[0], "verdict": "contradicted"}, ref) == []  # not asserted
    assert reference.deviations({**RUNS[0], "best": "fixed 0.5"}, ref) == [
        "best = 'fixed 0.5', reference 'fixed 0.75'"]
    missing = {k: v for k, v in RUNS[0].items() if k != "loss"}
    assert reference.deviations(missing, ref) == ["loss: missing (reference 1.0)"]
    assert reference.deviations({**RUNS[0], "new": 1}, ref) == [
        "new: not in the reference (run ./build.sh pair 02_vision)"]


def test_check_text(ref, tmp_path, monkeypatch):
    monkeypatch.setattr(reference, "REFERENCE_DIR", tmp_path)
    assert "no smoke reference" in reference.check("02_vision", "smoke", RUNS[0])
    assert "smoke profile only (this: quick)" in reference.check("02_vision", "quick", RUNS[0])
    reference.write_reference(ref)
    ok = reference.check("02_vision", "smoke", RUNS[2]).splitlines()
    assert ok[0].startswith("02_vision: 4 key numbers and 1 texts checked against the smoke reference (3 seeds")
    assert ok[1:] == ["not asserted (they change with the seed at smoke scale): verdict", "all within tolerance"]
    bad = reference.check("02_vision", "smoke", {**RUNS[0], "loss": 2.0}).splitlines()
    assert bad[-1] == "DEVIATES: loss = 2, outside 1 ± 0.001"


def test_stale_format_is_one_line(ref, tmp_path, monkeypatch):
    monkeypatch.setattr(reference, "REFERENCE_DIR", tmp_path)
    (tmp_path / "02_vision.json").write_text(json.dumps({**ref, "format": 0}))
    with pytest.raises(ValueError, match="run ./build.sh pair 02_vision"):
        reference.load_reference("02_vision")


@pytest.mark.parametrize("name", notebook_names())
def test_every_notebook_has_a_reference_of_five_seeds(name):
    ref = reference.load_reference(name)
    assert ref is not None, f"no notebooks/reference/{name}.json: run ./build.sh pair {name}"
    assert len(ref["seeds"]) >= 5 and ref["z"] == reference.Z
    for key, number in ref["numbers"].items():
        tol = number["tolerance"]
        assert tol is None or (math.isfinite(tol) and tol >= 0), key
