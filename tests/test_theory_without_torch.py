"""The linear theory (``covariances``, ``theory``, ``downstream`` and the ratio samplers' laws) imports and runs
with numpy and scipy alone: in a fresh interpreter where importing torch fails, it gives the numbers it gives here
and loads none of torch, pandas, scikit-learn or matplotlib."""

import json
import subprocess
import sys

import numpy as np

from r2mae_core import masking, theory
from r2mae_core.paths import REPO_ROOT
from r2mae_core.theory import covariances, downstream

SCRIPT = r"""
import importlib.abc, json, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, NoTorch())
import numpy as np
from r2mae_core import masking, theory
from r2mae_core.theory import covariances, downstream

cov = covariances.make_covariance("ar1", 40, rho=0.8)
law = masking.R2MAE(0.1, 0.9)
risk = theory.pretraining_risk(cov, law, 80, test=0.5)
filt = downstream.representation_filter(cov, law, 80)
heavy = sorted({k.split(".")[0] for k in sys.modules} & {"torch", "pandas", "sklearn", "matplotlib"})
diffusion = theory.masked_diffusion_law()
weighted = theory.pretraining_risk(cov, diffusion, 80, test=0.5, ridge=0.1)
print(json.dumps({"total": float(risk.risk), "m_eq": theory.equivalent_fixed_ratio(law),
                  "diffusion": [theory.equivalent_fixed_ratio(diffusion), float(weighted.risk)],
                  "filter": np.asarray(filt).tolist(), "loaded": heavy,
                  "draws": law.sample(4, generator=np.random.default_rng(0)).tolist(),
                  "generators": hasattr(masking, "random_subset_mask")}))
"""


def test_the_linear_theory_runs_without_torch():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["loaded"] == [] and got["generators"] is False
    cov = covariances.make_covariance("ar1", 40, rho=0.8)
    law = masking.R2MAE(0.1, 0.9)
    assert got["total"] == float(theory.pretraining_risk(cov, law, 80, test=0.5).risk)
    assert got["m_eq"] == theory.equivalent_fixed_ratio(law)
    diffusion = theory.masked_diffusion_law()
    assert got["diffusion"] == [theory.equivalent_fixed_ratio(diffusion),
                                float(theory.pretraining_risk(cov, diffusion, 80, test=0.5, ridge=0.1).risk)]
    assert np.array_equal(np.asarray(got["filter"]), np.asarray(downstream.representation_filter(cov, law, 80)))
    assert got["draws"] == law.sample(4, generator=np.random.default_rng(0)).tolist()
