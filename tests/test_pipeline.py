"""The notebook runner, the parameter checks and the report, on throw-away notebooks in a temp repo."""

import json
import os
import textwrap

import pytest

from r2mae_core import notebook_params, paths, pipeline, report
from r2mae_core.claims import Claim
from r2mae_core.io import save_claims
from r2mae_core.notebook_params import ParameterError, load_profile_parameters, read_parameters

HEADER = textwrap.dedent("""\
    # ---
    # jupyter:
    #   kernelspec:
    #     display_name: Python 3
    #     language: python
    #     name: python3
    # ---
    """)


def _notebook(body_params: str, body: str) -> str:
    return (HEADER + '\n# %% tags=["parameters"]\n' + textwrap.dedent(body_params) + "\n# %%\n"
            + textwrap.dedent(body))


@pytest.fixture()
def repo(tmp_path, monkeypatch):
    """A minimal repo: notebooks/, parameters/{quick,full}/, results/ (all in tmp)."""
    for sub in ("notebooks", "parameters/quick", "parameters/full"):
        (tmp_path / sub).mkdir(parents=True)
    monkeypatch.setattr(paths, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(notebook_params, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(pipeline, "NOTEBOOK_DIR", tmp_path / "notebooks")
    monkeypatch.setenv("R2MAE_RESULTS_DIR", str(tmp_path / "results"))
    return tmp_path


PARAMS = """\
    profile: str = "smoke"  # where results go
    steps: int = 3  # steps
    lr: float = 0.1  # learning rate
    name: str = "a"  # a label
    """


def test_read_parameters_parses_types_defaults_and_comments(repo):
    (repo / "notebooks" / "01_ok.py").write_text(_notebook(PARAMS, "x = 1\n"))
    params = read_parameters("01_ok")
    assert list(params) == ["profile", "steps", "lr", "name"]
    assert params["lr"].default == 0.1 and params["lr"].annotation == "float"
    assert params["steps"].comment == "steps"


@pytest.mark.parametrize("bad_cell,match", [
    ("x = compute()  # no\n", "not a literal"),
    ("a, b = 1, 2  # no\n", "only 'name: type = literal'"),
    ("steps = 1  # a\nsteps = 2  # b\n", "declared twice"),
])
def test_read_parameters_rejects_malformed_cells(repo, bad_cell, match):
    (repo / "notebooks" / "01_bad.py").write_text(_notebook(bad_cell, "x = 1\n"))
    with pytest.raises(ParameterError, match=match):
        read_parameters("01_bad")


def test_read_parameters_needs_exactly_one_cell(repo):
    (repo / "notebooks" / "01_none.py").write_text(HEADER + "\n# %%\nx = 1\n")
    with pytest.raises(ParameterError, match="exactly one cell tagged 'parameters', found 0"):
        read_parameters("01_none")


@pytest.mark.parametrize("yaml_text,match", [
    ("stepz: 4\n", "key 'stepz' is not a parameter of 01_ok"),
    ("steps: 'four'\n", "steps='four' has type str, the notebook declares int"),
    ("steps: 1.5\n", "has type float, the notebook declares int"),
    ("profile: full\n", "key 'profile' is set by the runner"),
    ("- 1\n- 2\n", "must be a mapping"),
    ("steps: [1\n", "not valid YAML"),
])
def test_profile_yaml_errors_name_the_problem(repo, yaml_text, match):
    (repo / "notebooks" / "01_ok.py").write_text(_notebook(PARAMS, "x = 1\n"))
    (repo / "parameters" / "quick" / "01_ok.yaml").write_text(yaml_text)
    with pytest.raises(ParameterError, match=match):
        load_profile_parameters("quick", "01_ok")


def test_profile_yaml_accepts_int_for_float_and_smoke_is_defaults(repo):
    (repo / "notebooks" / "01_ok.py").write_text(_notebook(PARAMS, "x = 1\n"))
    (repo / "parameters" / "quick" / "01_ok.yaml").write_text("lr: 1\nsteps: 10\n")
    values = load_profile_parameters("quick", "01_ok")
    assert values == {"lr": 1.0, "steps": 10} and isinstance(values["lr"], float)
    assert load_profile_parameters("smoke", "01_ok") == {}
    with pytest.raises(ParameterError, match="full/01_ok.yaml is missing"):
        load_profile_parameters("full", "01_ok")


def test_unknown_notebook_and_profile_fail_with_one_line(repo, capsys):
    (repo / "notebooks" / "01_ok.py").write_text(_notebook(PARAMS, "x = 1\n"))
    assert pipeline.main(["run", "--profile", "quick", "07_nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: notebook='07_nope' does not exist: use one of 01_ok"
    assert pipeline.main(["run", "--profile", "huge"]) == 2
    assert "profile='huge' is not allowed" in capsys.readouterr().err


@pytest.mark.slow
def test_run_marks_failures_incomplete_and_keeps_going(repo, capsys):
    ok_body = """\
        from r2mae_core.io import RunOutputs
        print("steps", steps, "lr", lr)
        RunOutputs(profile, "01_ok").save_metrics({"steps": steps})
        """
    (repo / "notebooks" / "01_ok.py").write_text(_notebook(PARAMS, ok_body))
    (repo / "notebooks" / "02_fail.py").write_text(_notebook(PARAMS, "raise RuntimeError('boom')\n"))
    (repo / "parameters" / "quick" / "01_ok.yaml").write_text("steps: 7\n")
    (repo / "parameters" / "quick" / "02_fail.yaml").write_text("steps: 7\n")
    assert pipeline.main(["run", "--profile", "quick"]) == 1
    out = capsys.readouterr()
    assert "ok     01_ok" in out.out and "FAILED 02_fail" in out.out and "RuntimeError: boom" in out.out
    good, bad = repo / "results" / "quick" / "01_ok", repo / "results" / "quick" / "02_fail"
    assert (good / "01_ok.ipynb").exists() and not (good / ".incomplete").exists()
    assert json.loads((good / "metrics.json").read_text()) == {"steps": 7}  # the YAML reached the notebook
    assert (bad / ".incomplete").exists() and not (bad / "02_fail.ipynb").exists()
    assert (bad / "02_fail.partial.ipynb").exists()
    assert (repo / "notebooks" / "01_ok.ipynb").exists()  # the pair was created from the .py source


def test_report_merges_claims_and_skips_incomplete_runs(repo):
    claim = Claim("C1", "x > y", "paper", "diff", 0.2, 0.1, 0.3, 3, "supported", "quick")
    save_claims([claim], profile="quick", notebook="01_ok")
    save_claims([Claim("D1", "stale", "p", "m", 1.0, 0.5, 1.5, 3, "supported", "quick")], profile="quick",
                notebook="02_fail")
    (repo / "results" / "quick" / "02_fail" / ".incomplete").write_text("started")
    index = report.write_report("quick", notebooks_html=False)
    claims_md = (repo / "results" / "quick" / "CLAIMS.md").read_text()
    assert "| C1 |" in claims_md and "D1" not in claims_md
    page = index.read_text()
    assert "01_ok" in page and "INCOMPLETE" in page and "stale" not in page


def test_report_index_shows_metrics_tables_commit_and_run_time(repo):
    """The index names each claim's metric, renders each table (first rows, linked to its CSV) and says when,
    from which commit and after how long each notebook ran."""
    import nbformat
    import pandas as pd

    save_claims([Claim("C1", "x > y", "paper", "paired diff", 0.2, 0.1, 0.3, 3, "supported", "quick")],
                profile="quick", notebook="01_ok")
    run = repo / "results" / "quick" / "01_ok"
    (run / "tables").mkdir(exist_ok=True)
    pd.DataFrame({"ratio": [0.1 * i for i in range(30)], "lp": [0.5] * 30}).to_csv(run / "tables" / "tab1_x.csv",
                                                                                index=False)
    nb = nbformat.v4.new_notebook()
    nb.metadata["papermill"] = {"duration": 90.0}
    nbformat.write(nb, run / "01_ok.ipynb")
    page = report.write_report("quick", notebooks_html=False).read_text()
    assert "<th>metric</th>" in page and "<td>paired diff</td>" in page
    assert "href='01_ok/tables/tab1_x.csv'" in page and f"first {report.TABLE_ROWS} of 30 rows" in page
    assert page.count("<tr") - page.count("<tr><th>") >= report.TABLE_ROWS  # the table's rows are rendered
    assert "ran 1.5 min" in page and "from commit <code>" in page


def test_report_cli_on_missing_profile_dir(repo, capsys):
    assert report.main(["--profile", "full"]) == 2
    assert "results/full/ does not exist" in capsys.readouterr().err


def test_update_readme_rewrites_only_the_marked_ledger_block(repo):
    save_claims([Claim("C1", "x > y", "paper", "diff", 0.2, 0.1, 0.3, 5, "supported", "full")], profile="full",
                notebook="01_ok")
    start, end = report.README_MARKERS
    readme = repo / "README.md"
    readme.write_text(f"intro\n{start}\nstale table\n{end}\noutro\n")
    assert report.update_readme(readme, "full")
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith(f"{end}\noutro\n") and "stale table" not in text
    assert "### 01_ok" in text and "| C1 | x > y |" in text and "Totals: supported: 1" in text
    readme.write_text("no markers here\n")
    assert not report.update_readme(readme, "full") and readme.read_text() == "no markers here\n"


def test_readme_ledger_block_matches_the_committed_full_results():
    """The README quotes results/full/ (what `./build.sh report --profile full` writes), never typed numbers."""
    readme = (paths.REPO_ROOT / "README.md").read_text(encoding="utf-8")
    start, end = report.README_MARKERS
    block = readme.split(start, 1)[1].split(end, 1)[0]
    assert block == "\n" + report.readme_ledger("full"), "README ledger is stale: run ./build.sh report --profile full"


@pytest.mark.slow
def test_pair_writes_the_reference_from_several_seeds_and_strips_machine_outputs(repo, monkeypatch, capsys):
    from r2mae_core import reference

    monkeypatch.setattr(reference, "REFERENCE_DIR", repo / "notebooks" / "reference")
    params = 'profile: str = "smoke"  # where results go\nseed: int = 3  # master seed\n'
    body = """\
        import sys
        from r2mae_core.io import RunOutputs
        print("progress", file=sys.stderr)
        key_numbers = {"x": 1 + seed / 10, "best": "a", "verdict": "v" + str(seed % 2)}
        RunOutputs(profile, "01_ok").save_metrics(key_numbers)
        print(key_numbers)
        """
    (repo / "notebooks" / "01_ok.py").write_text(_notebook(params, body))
    assert pipeline.main(["pair", "--seeds", "1", "01_ok"]) == 2
    assert "--seeds=1 is not allowed: a tolerance needs at least 2 seeds" in capsys.readouterr().err
    assert pipeline.main(["pair", "--seeds", "3", "01_ok"]) == 0
    ref = reference.load_reference("01_ok")
    assert ref["seeds"] == [3, 4, 5]  # the notebook's default seed first
    assert ref["numbers"]["x"]["value"] == pytest.approx(1.3)
    assert ref["numbers"]["x"]["tolerance"] == pytest.approx(reference.Z * 0.1)
    assert ref["texts"]["best"]["asserted"] and not ref["texts"]["verdict"]["asserted"]
    import nbformat

    stored = nbformat.read(repo / "notebooks" / "01_ok.ipynb", as_version=4)
    outputs = [o for c in stored.cells if c.cell_type == "code" for o in c.outputs]
    assert outputs and not [o for o in outputs if o.get("name") == "stderr"]
    assert "{'x': 1.3" in "".join(o.get("text", "") for o in outputs)


def test_full_replays_the_ledger_on_a_machine_without_cuda(monkeypatch):
    import torch

    monkeypatch.delenv("R2MAE_REPLAY", raising=False)
    assert pipeline._replay_only("full") == (not torch.cuda.is_available())
    assert not pipeline._replay_only("quick")
    monkeypatch.setenv("R2MAE_REPLAY", "0")  # the user's choice wins: train on this machine
    assert not pipeline._replay_only("full")
    with pipeline._replay_env("1"):
        assert os.environ["R2MAE_REPLAY"] == "1"
    assert os.environ["R2MAE_REPLAY"] == "0"


def test_a_second_run_of_a_notebook_is_refused_while_the_first_holds_its_lock(repo):
    """Two processes, one notebook, one profile: the second gets one line and leaves the first's output alone."""
    import subprocess
    import sys

    (repo / "notebooks" / "01_ok.py").write_text(_notebook(PARAMS, "print(steps)\n"))
    (repo / "parameters" / "quick" / "01_ok.yaml").write_text("steps: 7\n")
    out_dir = repo / "results" / "quick" / "01_ok"
    out_dir.mkdir(parents=True)
    (out_dir / "being-written").write_text("the first run's output")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from r2mae_core import pipeline\n"
         "with pipeline.notebook_lock('01_ok', 'quick'):\n    print('locked', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = pipeline.run_notebook("01_ok", "quick")
        assert not result.ok and "is being run by pid" in result.error and "\n" not in result.error
        assert (out_dir / "being-written").exists() and not (out_dir / ".incomplete").exists()
    finally:
        holder.kill()
        holder.wait()
    assert pipeline.run_notebook("01_ok", "quick").ok  # the lock ends with its holder


def test_a_hanging_cell_fails_its_notebook_at_the_profile_timeout(repo, monkeypatch):
    (repo / "notebooks" / "01_hang.py").write_text(_notebook(PARAMS, "import time\ntime.sleep(120)\n"))
    (repo / "parameters" / "quick" / "01_hang.yaml").write_text("steps: 7\n")
    monkeypatch.setitem(pipeline.CELL_TIMEOUT_S, "quick", 3)
    result = pipeline.run_notebook("01_hang", "quick")
    assert not result.ok and result.minutes < 1 and "imeout" in result.error
    assert (repo / "results" / "quick" / "01_hang" / ".incomplete").exists()


def test_an_unwritable_results_folder_is_one_line(repo, monkeypatch):
    (repo / "notebooks" / "01_ok.py").write_text(_notebook(PARAMS, "print(steps)\n"))
    (repo / "parameters" / "quick" / "01_ok.yaml").write_text("steps: 7\n")
    blocker = repo / "not-a-folder"
    blocker.write_text("a file where the results folder should be")
    monkeypatch.setenv("R2MAE_RESULTS_DIR", str(blocker))
    result = pipeline.run_notebook("01_ok", "quick")
    assert not result.ok and "R2MAE_RESULTS_DIR" in result.error and "is a file" in result.error
    assert "\n" not in result.error


def test_the_kernel_imports_the_checkout_it_was_called_from(repo, tmp_path, monkeypatch):
    """With another checkout importable first (a shared environment), the notebook still imports this one's
    package: build.sh run puts the checkout it was called from first on the kernel's path."""
    this = repo / "r2mae_core"
    this.mkdir()
    (this / "__init__.py").write_text("MARK = 'this checkout'\n")
    other = tmp_path / "other-checkout"
    (other / "r2mae_core").mkdir(parents=True)
    (other / "r2mae_core" / "__init__.py").write_text("MARK = 'another checkout'\n")
    monkeypatch.setenv("PYTHONPATH", str(other))
    monkeypatch.setattr(pipeline, "REPO_ROOT", repo)
    body = """\
        import pathlib, r2mae_core
        pathlib.Path(out).write_text(r2mae_core.MARK)
        """
    params = PARAMS.rstrip(" ") + f'    out: str = "{tmp_path / "mark.txt"}"  # where the mark goes\n'
    (repo / "notebooks" / "01_mark.py").write_text(_notebook(params, body))
    (repo / "parameters" / "quick" / "01_mark.yaml").write_text("steps: 7\n")
    result = pipeline.run_notebook("01_mark", "quick")
    assert result.ok, result.error
    assert (tmp_path / "mark.txt").read_text() == "this checkout"
    assert os.environ["PYTHONPATH"] == str(other)  # restored
