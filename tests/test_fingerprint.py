"""The code fingerprint in cache keys: an edit to a library function invalidates exactly the results of the
modules that import it (module granularity), prose edits invalidate nothing."""

from __future__ import annotations

import shutil
import warnings

import pytest

from r2mae_core import cache, fingerprint, runs
from r2mae_core.fingerprint import PACKAGE_ROOT, code_fingerprint, dependencies, program_text
from r2mae_core.runs import RunSpec, TrainConfig, execute, fixed_method

#: The modules whose ``work`` (or compute function) produces each notebook's cached results.
SECTION_MODULES = {
    "01": "r2mae_core.experiments.linear_theory",
    "02": "r2mae_core.experiments.vision",
    "03": "r2mae_core.experiments.language",
    "04": "r2mae_core.experiments.dna",
    "05": "r2mae_core.experiments.single_cell",
    "06": "r2mae_core.experiments.spectral_clustering",
}


def test_program_text_drops_prose_and_keeps_every_token():
    source = ('"""Module doc — with non-ASCII."""\n\nimport os  # a comment\n\n\n'
              'def f(x):\n    """Doc of f, ünïcode."""\n    return f"{x}#not a comment"   \n'
              'class C:\n    "one-line doc"\n    y = 1\n')
    text = program_text(source)
    assert text == 'import os\ndef f(x):\n    return f"{x}#not a comment"\nclass C:\n    y = 1'
    assert program_text(source.replace("Doc of f", "Other prose")) == text
    assert program_text(source.replace("return f", "return  f")) != text  # any change to a line of code counts
    assert program_text(source.replace("y = 1", "y = 2")) != text


def test_dependencies_follow_static_and_lazy_imports_through_packages():
    vision = dependencies("r2mae_core.experiments.vision")
    assert {"r2mae_core.train", "r2mae_core.masking.samplers", "r2mae_core.masking", "r2mae_core"} <= set(vision)
    assert "r2mae_core.spectral" not in vision
    assert "r2mae_core.spectral" in dependencies("r2mae_core.experiments.spectral_clustering")
    theory = dependencies("r2mae_core.experiments.linear_theory")
    assert "r2mae_core.theory" in theory and "r2mae_core.train" not in theory


def _copy(tmp_path):
    root = tmp_path / "r2mae_core"
    shutil.copytree(PACKAGE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    return root


def _prints(root) -> dict[str, str]:
    return {nb: code_fingerprint(module, root=root) for nb, module in SECTION_MODULES.items()}


def _edit(path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize("module, expected", [
    ("spectral", {"06"}), ("train", None), ("theory", {"01"}), ("single_cell", {"05"}), ("evaluate", None),
])
def test_a_code_edit_invalidates_exactly_the_sections_that_import_it(tmp_path, module, expected):
    root = _copy(tmp_path)
    name = f"r2mae_core.{module}"
    importers = {nb for nb, sec in SECTION_MODULES.items() if name in dependencies(sec, root=root)}
    before = _prints(root)
    path = root / f"{module}.py" if (root / f"{module}.py").exists() else root / module / "__init__.py"
    path.write_text(path.read_text(encoding="utf-8") + "\n\ndef _one_more_function():\n    return 0\n",
                    encoding="utf-8")
    changed = {nb for nb, fp in _prints(root).items() if fp != before[nb]}
    assert changed == importers and changed, (module, changed, importers)
    if expected is not None:
        assert changed == expected


def test_a_prose_edit_invalidates_nothing(tmp_path):
    root = _copy(tmp_path)
    before = _prints(root)
    _edit(root / "train.py", '"""', '"""Reworded prose; ')
    _edit(root / "evaluate" / "__init__.py", "\n\n", "\n\n# a new comment\n\n")
    assert _prints(root) == before


def test_the_fingerprint_is_part_of_every_cache_key(tmp_path, monkeypatch):
    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path))
    assert cache.cache_key("ns", {"a": 1}, code="x") != cache.cache_key("ns", {"a": 1}, code="y")
    calls = []

    def compute():
        calls.append(1)
        return {"v": [1.0]}

    cache.cached("ns", {"a": 1}, compute, code="x")
    cache.cached("ns", {"a": 1}, compute, code="x")
    cache.cached("ns", {"a": 1}, compute, code="y")
    assert len(calls) == 2  # same code: read back; other code: recomputed
    assert fingerprint.fingerprint_of(compute) == ""  # a function outside the package: its code is not seen
    assert fingerprint.fingerprint_of(runs.execute) == code_fingerprint("r2mae_core.runs")


def work(group, options):
    return [{"metrics": {"seed": spec.seed}} for spec in group]


def test_a_run_made_by_other_code_is_recomputed_and_a_ledger_record_is_used_with_a_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("R2MAE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("R2MAE_LEDGER_DIR", str(tmp_path / "ledger"))
    spec = RunSpec("toy", "toy", "-", fixed_method(0.5), 3, TrainConfig(steps=1))
    calls = []

    def counted(group, options):
        calls.append(len(group))
        return work(group, options)

    monkeypatch.setattr(runs, "fingerprint_of", lambda function: "old")
    execute([spec], counted, progress=False)
    execute([spec], counted, progress=False)
    monkeypatch.setattr(runs, "fingerprint_of", lambda function: "new")
    execute([spec], counted, progress=False)
    assert calls == [1, 1]  # the edit made it run again
    ledger = runs.ledger_path(spec)
    ledger.parent.mkdir(parents=True)
    runs.result_path(spec, code="new").replace(ledger)
    ledger.with_suffix(".json").write_text('{"code": "old"}')
    with pytest.warns(UserWarning, match="ledger records of toy were made by code old; this checkout's code is new"):
        assert execute([spec], counted, progress=False)[0]["metrics"] == {"seed": 3}
    ledger.with_suffix(".json").write_text('{"code": "new"}')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        execute([spec], counted, progress=False)
    assert calls == [1, 1]  # the ledger's record was used both times


def test_an_unknown_module_is_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="module='r2mae_core.nope' is not allowed"):
        code_fingerprint("r2mae_core.nope")
