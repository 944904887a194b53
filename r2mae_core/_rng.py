"""Seeding and explicit random generators.

Library code never touches global random state: it takes a ``torch.Generator`` or a
``numpy.random.Generator`` (or a seed to build one). Notebooks call :func:`seed_everything`
once, and multi-seed runs derive independent child seeds with :class:`numpy.random.SeedSequence`.
"""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING

import numpy as np

from .validation import check_int
from .validation import check_seed as _check_seed

if TYPE_CHECKING:
    import torch

__all__ = ["seed_everything", "child_seeds", "numpy_generator", "torch_generator", "check_seed"]


def check_seed(seed: int, name: str = "seed") -> int:
    """Return ``seed`` as an int after checking it is a non-negative integer.

    Raises
    ------
    ValueError
        If ``seed`` is not an integer in ``[0, 2**63 - 1]``.
    """
    return _check_seed(name, seed)


def seed_everything(seed: int, *, deterministic: bool = True) -> None:
    """Seed Python, NumPy and PyTorch global generators (for notebooks and scripts only).

    Parameters
    ----------
    seed
        Non-negative integer.
    deterministic
        Also ask PyTorch for deterministic kernels where they exist (``warn_only`` so that
        a kernel without a deterministic version still runs) and fix cuDNN autotuning off.
    """
    import torch

    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed % 2**32))
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        # cuBLAS needs this for deterministic matmuls on GPU; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def child_seeds(seed: int, n: int) -> list[int]:
    """Derive ``n`` independent 63-bit child seeds from ``seed``.

    Uses ``numpy.random.SeedSequence(seed).spawn(n)``, so child ``i`` is the same whatever ``n`` is
    (adding seeds to a study never changes the earlier ones).
    """
    seed = check_seed(seed)
    check_int("n", n, 0)
    return [int(s.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for s in np.random.SeedSequence(seed).spawn(n)]


def numpy_generator(seed: int | np.random.Generator) -> np.random.Generator:
    """A ``numpy.random.Generator`` (PCG64) from a seed; a Generator is passed through."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(check_seed(seed))


def torch_generator(seed: int | torch.Generator, device: str | torch.device = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed``; a Generator is passed through."""
    import torch  # here, not at the top: the linear theory's seeds need numpy only

    if isinstance(seed, torch.Generator):
        return seed
    gen = torch.Generator(device=device)
    gen.manual_seed(check_seed(seed))
    return gen
