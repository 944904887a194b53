"""The README's own-loop snippet runs as written and is safe: no masked token's content in the encoder's input."""

import re

import torch

from r2mae_core.paths import REPO_ROOT


def _snippet() -> str:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Using R²MAE masking in your own PyTorch pretraining", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_own_loop_snippet_runs_and_pads_with_zeros():
    """Run the snippet on real-valued tokens with one ratio per sample (U[0.5, 0.9], 16 rows of 49 tokens): the
    padded slots are zero, the valid slots are the visible tokens, and the rows' counts differ."""
    gen = torch.Generator().manual_seed(1)
    loader = [torch.randn(16, 49, 8, generator=gen) + 3.0 for _ in range(3)]  # no token is zero
    scope = {"loader": loader, "total_steps": len(loader)}
    exec(compile(_snippet(), "README.md", "exec"), scope)  # noqa: S102 - the repository's own README
    x, subset, visible, padding = scope["x"], scope["subset"], scope["visible"], scope["padding"]
    assert padding.any(), "per-sample ratios should leave rows with different visible counts"
    assert bool((visible[padding] == 0).all())
    for row in range(x.shape[0]):
        keep = subset.ids_keep[row][subset.keep_valid[row]]
        assert torch.equal(visible[row][~padding[row]], x[row, keep])
        assert not bool(subset.mask[row, keep].any())


def test_every_environment_variable_the_package_reads_is_documented():
    """Each ``R2MAE_*`` variable read under ``r2mae_core/`` appears in the README and in ``./build.sh help``."""
    import subprocess

    names = set()
    for path in (REPO_ROOT / "r2mae_core").rglob("*.py"):
        names |= set(re.findall(r"\bR2MAE_[A-Z][A-Z_]*[A-Z]\b", path.read_text(encoding="utf-8")))
    assert {"R2MAE_DATA_DIR", "R2MAE_CACHE_DIR", "R2MAE_NO_CACHE"} <= names
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    helptext = subprocess.run([str(REPO_ROOT / "build.sh"), "help"], capture_output=True, text=True,
                              check=True).stdout
    assert sorted(n for n in names if n not in readme) == []
    assert sorted(n for n in names if n not in helptext) == []


def test_jupyterlab_opens_the_py_notebooks_as_notebooks():
    """The environment's JupyterLab settings (installed by ``./build.sh setup`` from ``lab/overrides.json``) make
    jupytext's notebook viewer the default for Python files, under the name jupytext's lab extension registers."""
    import json
    import sys
    from pathlib import Path

    want = json.loads((REPO_ROOT / "lab" / "overrides.json").read_text(encoding="utf-8"))
    viewer = want["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["python"]
    extension = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / "jupyterlab-jupytext"
    assert any(f'"{viewer}"' in p.read_text(encoding="utf-8", errors="ignore") for p in extension.rglob("*.js"))
    installed = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    assert json.loads(installed.read_text(encoding="utf-8")) == want
    schemas = Path(sys.prefix) / "share" / "jupyter" / "lab" / "schemas"
    for plugin, settings in want.items():  # every override names a real plugin setting (a typo is ignored silently)
        package, name = plugin.split(":")
        schema = json.loads((schemas / package / f"{name}.json").read_text(encoding="utf-8"))
        assert set(settings) <= set(schema["properties"]), plugin
