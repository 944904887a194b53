"""Same checked outputs on another processor.

Every notebook runs under nbval again, from an empty cache, with each numerical library pushed onto other code
paths than the pinned ones (``r2mae_core.numerics``): scalar ATen loops instead of AVX2, MKL's SSE2 branch
instead of its AVX2 one, OpenBLAS's Sandy Bridge kernels instead of Haswell's, NumPy without AVX2 loops,
oneDNN at SSE4.1, and three threads instead of two. This is what a researcher's machine with other processor
features and core count does to the numbers; the checked cells must print the same.
"""

import os
import subprocess
import sys

from r2mae_core import numerics
from r2mae_core.paths import REPO_ROOT

SIMULATED = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "OPENBLAS_CORETYPE": "Sandybridge",
    "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
    "OMP_NUM_THREADS": "3",
    "MKL_NUM_THREADS": "3",
    "OPENBLAS_NUM_THREADS": "3",
}


def _simulated_env(tmp_path):
    assert set(SIMULATED) <= set(numerics.PINNED)
    return {**os.environ, **SIMULATED, "R2MAE_RESULTS_DIR": str(tmp_path / "results")}


def test_the_simulated_processor_takes_other_code_paths(tmp_path):
    p = subprocess.run([sys.executable, "-m", "r2mae_core.numerics", "describe"], env=_simulated_env(tmp_path),
                       capture_output=True, text=True, check=True)
    described = dict(line.split(": ", 1) for line in p.stdout.splitlines())
    assert described["numerics"] == "native"
    assert described["torch_cpu_capability"] == "DEFAULT"
    assert described["torch_threads"] == "3"
    assert described["numpy_simd"] == "baseline"
    assert all(arch == "Sandybridge" for key, arch in described.items() if key.startswith("blas openblas"))


def test_checked_outputs_are_the_same_on_another_processor(tmp_path):
    notebooks = sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "notebooks").glob("*.ipynb"))
    p = subprocess.run([sys.executable, "-m", "pytest", *notebooks, "--nbval-lax", "--nbval-cell-timeout=600",
                        "-p", "no:cacheprovider", "-q"], cwd=REPO_ROOT, env=_simulated_env(tmp_path),
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout[-6000:]
