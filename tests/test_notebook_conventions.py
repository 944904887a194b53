"""Notebook conventions (docs/ARCHITECTURE.md §4): thin notebooks, one parameters cell, YAML = declared keys,
pairs in sync."""

import ast
import re

import jupytext
import nbformat
import papermill
import pytest

from r2mae_core.notebook_params import _parameters_cells, load_profile_parameters, read_parameters
from r2mae_core.paths import PROFILES, REPO_ROOT, notebook_names
from r2mae_core.pipeline import _inputs

NOTEBOOKS = notebook_names()
FORBIDDEN = {
    "plt.show": re.compile(r"plt\.show\("),
    "savefig": re.compile(r"\.savefig\("),
    "pip install": re.compile(r"pip install"),
    "absolute path": re.compile(r"[\"'](/[A-Za-z0-9_.-]+){2,}"),
    "training loop (backward/step)": re.compile(r"\.backward\(|optimizer\.step\("),
    "plt.savefig / os.chdir": re.compile(r"os\.chdir\("),
}
MAX_IPYNB_BYTES = 2_000_000


def test_there_are_notebooks():
    assert "00_masking_tour" in NOTEBOOKS


def _code_cells(name):
    return [c for c in jupytext.read(REPO_ROOT / "notebooks" / f"{name}.py").cells if c.cell_type == "code"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_parameters_cell_is_typed_commented_and_has_profile_and_seed(name):
    params = read_parameters(name)
    assert "profile" in params and params["profile"].default == "smoke"
    assert "seed" in params
    for p in params.values():
        assert p.annotation, f"{name}: parameter {p.name} has no type annotation"
        assert p.comment, f"{name}: parameter {p.name} has no comment"


def _jupytext_parameters_cells(path):
    return [c.source for c in jupytext.read(path).cells
            if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_the_parameters_cell_read_without_jupytext_is_the_one_jupytext_reads(name):
    path = REPO_ROOT / "notebooks" / f"{name}.py"
    tagged = _jupytext_parameters_cells(path)
    assert _parameters_cells(path) == tagged and len(tagged) == 1


def test_a_markdown_cell_or_another_tag_is_not_a_parameters_cell(tmp_path):
    path = tmp_path / "nb.py"
    path.write_text('# %% [markdown] tags=["parameters"]\n# text\n\n# %% tags=["other"]\nx = 1\n\n'
                    '# %% tags=["x", "parameters"]\n\nseed: int = 0  # s\n\n# %%\ny = 2\n', encoding="utf-8")
    tagged = _jupytext_parameters_cells(path)
    assert _parameters_cells(path) == tagged == ["\nseed: int = 0  # s"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_papermill_sees_every_declared_parameter(name):
    # papermill parses the cell with its own regexes (an '=' in a comment breaks it, with only a warning)
    found = papermill.inspect_notebook(str(REPO_ROOT / "notebooks" / f"{name}.ipynb"))
    assert set(found) == set(read_parameters(name))


@pytest.mark.parametrize("name", NOTEBOOKS)
@pytest.mark.parametrize("profile", PROFILES)
def test_profile_yaml_exists_and_only_sets_declared_parameters(name, profile):
    load_profile_parameters(profile, name)  # raises on a missing file, unknown key or wrong type


def test_no_orphan_yaml():
    for profile in ("quick", "full"):
        for path in (REPO_ROOT / "parameters" / profile).glob("*.yaml"):
            assert path.stem in NOTEBOOKS, f"parameters/{profile}/{path.name} has no notebook"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_code_is_thin(name):
    for cell in _code_cells(name):
        tree = ast.parse(cell.source)
        for node in ast.walk(tree):
            assert not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda), \
                f"{name}: define functions/classes in r2mae_core, not in the notebook"
        for label, pattern in FORBIDDEN.items():
            assert not pattern.search(cell.source), f"{name}: {label} in a notebook cell"
        if "parameters" in cell.metadata.get("tags", []):
            # declarations, not logic (each one typed and commented, checked above); every statement must be
            # a plain `name: type = literal`, so nothing computed can hide in this cell
            assert all(isinstance(stmt, ast.AnnAssign) for stmt in tree.body), \
                f"{name}: the parameters cell holds only `name: type = value  # comment` lines"
            continue
        logic_lines = [ln for ln in cell.source.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        assert len(logic_lines) <= 15, f"{name}: a cell of {len(logic_lines)} lines belongs in the library"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_use_only_public_names(name):
    """No import from a private module and no private name (``_``-prefixed) of the library in a notebook."""
    for cell in _code_cells(name):
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("r2mae_core"):
                assert not any(part.startswith("_") for part in node.module.split(".")), \
                    f"{name}: imports from the private module {node.module}"
                assert not any(alias.name.startswith("_") for alias in node.names), \
                    f"{name}: imports a private name from {node.module}"
            if isinstance(node, ast.Attribute):
                assert not node.attr.startswith("_") or node.attr.startswith("__"), \
                    f"{name}: uses the private attribute {node.attr}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_last_cell_checks_key_numbers_against_the_reference_and_claims_are_saved(name):
    cells = _code_cells(name)
    last = cells[-1]
    assert "nbval-check-output" in last.metadata.get("tags", [])
    assert last.source.strip() == f'print(reference.check("{name}", profile, key_numbers))'
    assert [c for c in cells if "nbval-check-output" in c.metadata.get("tags", [])] == [last]
    assert any("save_claims(" in c.source for c in cells)


MACHINE_TEXT = re.compile(r"/(?:work|home|tmp|root|usr|opt|Users|var)/|site-packages|\.venv|Warning")


def _output_texts(output):
    if output.get("output_type") == "stream":
        yield output.get("text", "")
    for mime, value in output.get("data", {}).items():
        if mime.startswith("text/"):
            yield value if isinstance(value, str) else "".join(value)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_stored_outputs_hold_no_machine_paths_warnings_or_stderr(name):
    stored = nbformat.read(REPO_ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    for i, cell in enumerate(stored.cells):
        for output in cell.get("outputs", []):
            assert not (output.get("output_type") == "stream" and output.get("name") == "stderr"), \
                f"{name}.ipynb cell {i}: stderr stored (progress bars, warnings): run ./build.sh pair {name}"
            for text in _output_texts(output):
                found = MACHINE_TEXT.search(text)
                assert not found, f"{name}.ipynb cell {i}: {found.group(0)!r} in a stored output"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_pair_in_sync_and_stored_outputs_present(name):
    ipynb = REPO_ROOT / "notebooks" / f"{name}.ipynb"
    assert ipynb.exists(), f"{name}.ipynb missing: run ./build.sh pair {name}"
    assert ipynb.stat().st_size <= MAX_IPYNB_BYTES, f"{name}.ipynb is too large: keep figure outputs small"
    stored = nbformat.read(ipynb, as_version=4)
    source = jupytext.read(REPO_ROOT / "notebooks" / f"{name}.py")
    assert _inputs(stored) == _inputs(source), f"{name}: .py and .ipynb differ: run ./build.sh pair {name}"
    checked = [c for c in stored.cells if "nbval-check-output" in c.metadata.get("tags", [])]
    assert checked and all(c.get("outputs") for c in checked), \
        f"{name}.ipynb has no stored key-number outputs for nbval: run ./build.sh pair {name}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_readme_indexes_the_notebook(name):
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert f"notebooks/{name}.py" in readme, f"README has no row for {name}"


def test_build_sh_runs_every_notebook_via_pipeline():
    build = (REPO_ROOT / "build.sh").read_text()
    assert "r2mae_core.pipeline run --profile quick" in build  # no list to forget: all notebooks are found
    assert "tests notebooks --nbval-lax" in build
