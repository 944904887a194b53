"""pyproject.toml's dependency ranges and environment.yml's pins name the same packages, and every pin satisfies
its range: ``pip install -e ".[all,dev]"`` and ``./build.sh setup`` install the same set."""

import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from r2mae_core.paths import REPO_ROOT


def _ranges() -> dict[str, Requirement]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for items in project["optional-dependencies"].values():
        reqs += [Requirement(r) for r in items if not r.startswith(project["name"])]
    return {canonicalize_name(r.name): r for r in reqs}


def _pins() -> dict[str, str]:
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text(encoding="utf-8"))
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pins = {}
    for line in pip:
        if line.startswith("-e"):
            continue
        name, version = line.split("==")
        pins[canonicalize_name(name)] = version
    return pins


def test_the_pins_and_the_ranges_name_the_same_packages():
    assert sorted(set(_pins()) ^ set(_ranges())) == []


def test_every_pin_satisfies_its_range():
    ranges = _ranges()
    bad = {name: version for name, version in _pins().items() if not ranges[name].specifier.contains(version)}
    assert bad == {}


def test_the_all_extra_holds_every_runtime_extra():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = set(project["optional-dependencies"]) - {"all", "dev"}
    assert project["optional-dependencies"]["all"] == [f"{project['name']}[{','.join(sorted(extras))}]"]


CORE_SCRIPT = r"""
import importlib.abc, sys

EXTRAS = {"matplotlib", "seaborn", "scanpy", "anndata", "tokenizers", "umap", "igraph", "leidenalg", "rdata",
          "papermill", "jupytext", "nbconvert", "ipykernel"}

class NoExtras(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in EXTRAS:
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, NoExtras())
import r2mae_core.campaign, r2mae_core.ensemble, r2mae_core.evaluate, r2mae_core.masking, r2mae_core.models
import r2mae_core.records, r2mae_core.runs, r2mae_core.shard_time, r2mae_core.train
print("core imports")
"""


def test_the_core_imports_without_the_extras():
    """``pip install -e .`` (no extras) is enough for masking, models, training, ensembles, the run engine,
    probes, records and the GPU route: none of them imports a package of the notebooks or single-cell extras."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", CORE_SCRIPT], capture_output=True, text=True, cwd=REPO_ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "core imports"
