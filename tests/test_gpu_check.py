"""The GPU check's CPU dry run: every code path it takes on the GPU, at tiny sizes, and its one-line errors."""

import json

from r2mae_core import gpu_check


def test_dry_run_on_cpu_measures_every_row_and_runs_a_notebook(tmp_path):
    # a budget no loaded machine reaches: every row must run, whatever else the CPU is doing
    assert gpu_check.main([str(tmp_path), "--device", "cpu", "--quick", "--budget-s", "3600",
                           "--notebooks", "00_masking_tour"]) == 0
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    training = [r for r in report["rows"] if r["kind"] != "eval"]
    assert [(r["kind"], r["compile"], r["k"]) for r in training] == [
        ("single", False, 1), ("single", True, 1), ("ensemble", False, 2), ("ensemble", True, 2),
        ("text", False, 1), ("text", False, 2)]
    assert all("error" not in r and r["samples_per_s"] > 0 and r["frac_peak"] > 0 for r in training)
    evaluation = [r for r in report["rows"] if r["kind"] == "eval"]
    assert [r["what"] for r in evaluation] == ["features", "lp_torch", "bn_lp_epoch", "ft_epoch", "knn"]
    assert all("error" not in r and r["seconds"] > 0 for r in evaluation)
    assert [(r["notebook"], r["rc"]) for r in report["notebooks"]] == [("00_masking_tour", 0)]


def test_bad_arguments_are_one_line(tmp_path, capsys):
    assert gpu_check.main([str(tmp_path), "--notebooks", "99_none"]) == 2
    assert capsys.readouterr().err.startswith("error: notebook='99_none' does not exist")
    assert gpu_check.main([str(tmp_path), "--budget-s", "0"]) == 2
    assert "--budget-s=0.0 is not allowed" in capsys.readouterr().err
    assert not (tmp_path / "gpu_check.json").exists()
