"""The run engine's progress reaches the terminal of ``./build.sh run``: one line per update in the file named by
``R2MAE_PROGRESS_FILE``, runs done of the plan with the current run and the time left."""

import pytest

from r2mae_core import progress, runs


def test_progress_line_extrapolates_the_runs_finished_here():
    line = progress.progress_line("02 runs", 5, 20, "now vit-S fixed 0.75 seed 1", started=0.0, done_at_start=2,
                                  now=90.0)
    assert line == "02 runs: 5/20 runs, now vit-S fixed 0.75 seed 1, 1.5 min, about 7.5 min left"
    assert progress.progress_line("x", 2, 20, "", 0.0, 2, now=60.0) == "x: 2/20 runs, 1.0 min"


def _work(group, options):
    return [{"value": float(spec.seed)} for spec in group]


def test_execute_reports_each_group_to_the_progress_file(tmp_path, monkeypatch):
    """Three runs one by one: the file's last line says 3 of 3 done, and it was written before each run."""
    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "progress.txt"
    monkeypatch.setenv(progress.ENV_VAR, str(path))
    seen = []
    monkeypatch.setattr(progress, "atomic_write_text", lambda p, text: seen.append(text.strip()))
    train = runs.TrainConfig(steps=1, batch_size=1, lr=1e-3)
    plan = [runs.RunSpec("progress_test", "mlp", "S", runs.fixed_method(0.5), seed, train) for seed in (1, 2, 3)]
    out = runs.execute(plan, _work, progress=False, desc="test runs")
    assert [r["value"] for r in out] == [1.0, 2.0, 3.0]
    assert seen[0].startswith("test runs: 0/3 runs, now mlp-S fixed 0.5 seed 1")
    assert seen[-1].startswith("test runs: 3/3 runs, ")
    assert len(seen) == 4


def test_nothing_is_written_without_the_variable(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    monkeypatch.setattr(progress, "atomic_write_text", lambda *a: pytest.fail("written without the variable"))
    progress.report("anything")
