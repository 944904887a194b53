"""The GPU image's Python imitated here (:mod:`r2mae_core.gpu_image`): a module run through it cannot import a
package the image lacks; the rehearsal of every section's shard (tests/test_campaign.py) runs that way."""

import subprocess
import sys

import pytest

from r2mae_core.gpu_image import ABSENT, RefuseAbsent
from r2mae_core.paths import REPO_ROOT


def _gpu_python(*args):
    return subprocess.run([sys.executable, "-m", "r2mae_core.gpu_image", *args], capture_output=True, text=True,
                          cwd=REPO_ROOT)


def test_a_module_run_through_it_cannot_import_a_package_the_image_lacks():
    done = _gpu_python("-m", "jupytext", "--version")
    assert done.returncode != 0 and "the GPU image has no jupytext" in done.stderr
    assert _gpu_python("-m", "json.tool", "--help").returncode == 0  # the standard library and the rest import


def test_it_refuses_submodules_and_only_the_absent_packages():
    finder = RefuseAbsent(frozenset({"scanpy"}))
    with pytest.raises(ModuleNotFoundError, match="the GPU image has no scanpy"):
        finder.find_spec("scanpy.pp", None)
    assert finder.find_spec("scanpy_like", None) is None and finder.find_spec("torch", None) is None
    assert {"scanpy", "anndata", "jupytext", "papermill"} <= ABSENT and not ABSENT & {"torch", "numpy", "yaml"}


def test_a_command_line_without_a_module_is_refused():
    done = _gpu_python("jupytext")
    assert done.returncode == 2 and "use -m MODULE" in done.stderr
