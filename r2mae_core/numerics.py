"""Pinned CPU numerics: the same code paths, hence the same rounding, on every x86-64 processor with AVX2.

The libraries under the project choose their kernels from the processor they find: PyTorch's ATen picks AVX2 or
AVX-512 loops, MKL (PyTorch's BLAS) and oneDNN pick ISA-specific GEMM kernels, OpenBLAS (NumPy's, SciPy's and
scikit-learn's BLAS) picks a core type, NumPy picks SIMD loops for its ufuncs, and each library sizes its thread
pool from the core count. Each choice changes the order of floating-point operations, so the same seed gives
different numbers on different processors (and training amplifies the difference). Every one of these choices
can be fixed from the environment before the library loads:

=============================  ==========================  =====================================================
variable                       value                       effect
=============================  ==========================  =====================================================
``ATEN_CPU_CAPABILITY``        ``avx2``                    ATen's vectorised loops at most AVX2
``MKL_CBWR``                   ``AVX2``                    MKL's conditional numerical reproducibility, AVX2 branch
                                                           (on non-Intel CPUs MKL keeps its own choice: see below)
``ONEDNN_MAX_CPU_ISA``         ``AVX2``                    oneDNN kernels at most AVX2
``OPENBLAS_CORETYPE``          ``Haswell``                 OpenBLAS's AVX2 kernels (also on AVX-512 CPUs)
``NPY_DISABLE_CPU_FEATURES``   ``X86_V4 AVX512_ICL ...``   NumPy's ufunc loops at most AVX2
``OMP_NUM_THREADS`` etc.       ``2``                       fixed thread counts (``MKL_DYNAMIC=FALSE``)
``TORCHINDUCTOR_CACHE_DIR``    ``results/cache/...``       ``torch.compile``'s kernels compiled under the pin only
=============================  ==========================  =====================================================

Sources: PyTorch's CPU dispatch (``ATEN_CPU_CAPABILITY``), Intel's oneMKL developer guide ("Obtaining Numerically
Reproducible Results": a fixed branch and a fixed number of threads), oneDNN's CPU dispatcher control
(``ONEDNN_MAX_CPU_ISA``), OpenBLAS's ``OPENBLAS_CORETYPE`` for DYNAMIC_ARCH builds and NumPy's runtime
dispatch (``NPY_DISABLE_CPU_FEATURES``).

MKL's branch is a trade-off measured on the quick profile: its ``COMPATIBLE`` (SSE2) branch, which MKL
reproduces on every x86-64 vendor, made pretraining steps 2.4 times slower than MKL's own choice on a 2-core
Sapphire Rapids CPU; the ``AVX2`` branch costs 1.2 to 1.3 times, and the other pins cost nothing measurable.
Intel's guide promises the AVX2 branch's results on every Intel CPU with AVX2; on AMD, MKL runs its automatic
branch instead, so there the numbers agree with the stored ones within the reference tolerance, not bit for bit.

``./build.sh`` exports :func:`pinned_environment` for every command it runs (tests, notebooks, JupyterLab,
benchmarks), so the child processes (papermill and nbval kernels, sweep workers) inherit it. The pin needs AVX2
and FMA (every x86-64 server CPU since 2013–2015); on a processor without them, or with
``R2MAE_NUMERICS=native``, nothing is pinned and results agree with the pinned ones only within the tolerance of
:mod:`r2mae_core.reference`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from .paths import cache_root

__all__ = ["PINNED", "THREADS", "cpu_flags", "can_pin", "pinned_environment", "mode", "signature",
           "describe", "main"]

#: Threads of every pool under the pin (any core count gives the same numbers; 2 suits the 2-core reference machine).
THREADS = 2
#: The environment of the pinned numerics (module docstring).
PINNED: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_CBWR": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
    "OMP_NUM_THREADS": str(THREADS),
    "MKL_NUM_THREADS": str(THREADS),
    "OPENBLAS_NUM_THREADS": str(THREADS),
    "MKL_DYNAMIC": "FALSE",
    "OMP_DYNAMIC": "FALSE",
}
SWITCH = "R2MAE_NUMERICS"
#: torch.compile's kernel cache: its own folder under the pin (inductor reuses kernels compiled for another
#: ATEN_CPU_CAPABILITY from its default cache, and they fail: seen with torch 2.13 on CPU).
INDUCTOR_CACHE = "TORCHINDUCTOR_CACHE_DIR"
MODES = ("pinned", "native")


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The processor's feature flags (the first ``flags`` line of ``/proc/cpuinfo``; empty if unreadable)."""
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def can_pin(flags: set[str] | None = None) -> bool:
    """Whether the pinned code paths exist on this processor: x86-64 with AVX2 and FMA."""
    flags = cpu_flags() if flags is None else flags
    return {"avx2", "fma"} <= flags


def pinned_environment(environ: Mapping[str, str] | None = None, flags: set[str] | None = None) -> dict[str, str]:
    """``environ`` with the pinned numerics set (overriding what was there), or unchanged if not pinned.

    Not pinned when ``R2MAE_NUMERICS=native`` or when the processor lacks AVX2/FMA (:func:`can_pin`).

    Raises
    ------
    ValueError
        ``R2MAE_NUMERICS`` has another value than ``pinned`` or ``native``.
    """
    env = dict(os.environ if environ is None else environ)
    mode = env.get(SWITCH, "pinned")
    if mode not in MODES:
        raise ValueError(f"{SWITCH}={mode!r} is not allowed: use one of {', '.join(MODES)}")
    if mode == "native" or not can_pin(flags):
        return env
    return {**env, **PINNED, INDUCTOR_CACHE: str(cache_root() / "torchinductor" / f"pinned-{_pin_digest()}")}


def mode(environ: Mapping[str, str] | None = None) -> str:
    """``"pinned"`` if every pinned variable has its pinned value in ``environ`` (default: this process), else
    ``"native"``."""
    env = os.environ if environ is None else environ
    return "pinned" if all(env.get(k) == v for k, v in PINNED.items()) else "native"


def signature(environ: Mapping[str, str] | None = None) -> str:
    """The numerics part of every cache key: ``"native"``, or ``"pinned-"`` and a digest of :data:`PINNED`
    (so that results of other pinned values, or native ones, are never reused)."""
    return "native" if mode(environ) == "native" else f"pinned-{_pin_digest()}"


def _pin_digest() -> str:
    return hashlib.sha256(json.dumps(PINNED, sort_keys=True).encode()).hexdigest()[:12]


def describe() -> dict[str, str]:
    """What the current process runs with: whether pinned, and each library's choice as it reports it."""
    import numpy as np
    import torch
    from threadpoolctl import threadpool_info

    blas = {f"{p['internal_api']} ({p['prefix']})": p.get("architecture", "?") for p in threadpool_info()
            if p["user_api"] == "blas"}
    umath = np._core._multiarray_umath
    simd = " ".join(f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f)) or "baseline"
    return {"numerics": mode(), "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_threads": str(torch.get_num_threads()), "mkl_cbwr": os.environ.get("MKL_CBWR", "AUTO"),
            "numpy_simd": simd,
            **{f"blas {name}": arch for name, arch in blas.items()}}


def main(argv: list[str] | None = None) -> int:
    """``python -m r2mae_core.numerics exports``: ``KEY=VALUE`` lines to export; ``describe``: the active choices."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["exports"]:
        try:
            env = pinned_environment()
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        for key in (*PINNED, INDUCTOR_CACHE):
            if key in env and env.get(key) != os.environ.get(key):
                print(f"{key}={env[key]}")
        return 0
    if args == ["describe"]:
        for key, value in describe().items():
            print(f"{key}: {value}")
        return 0
    print("usage: python -m r2mae_core.numerics exports|describe", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
