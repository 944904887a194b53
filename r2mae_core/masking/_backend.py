"""What the masking modules share besides argument checks (those are in :mod:`r2mae_core.validation`): torch
where it is installed, the working dtype of inverse CDFs and Gauss-Legendre quadrature (private)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy import special

try:
    import torch
except ImportError:  # numpy + scipy only: the samplers' numpy draws and laws (the linear theory) still work
    torch = None


def work_dtype(device: torch.device) -> torch.dtype:
    """float64 where the backend has it (exact-enough inverse CDFs), float32 on MPS."""
    return torch.float32 if device.type == "mps" else torch.float64


@lru_cache(maxsize=8)
def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, w = special.roots_legendre(n)
    return (x + 1.0) / 2.0, w / 2.0  # nodes and weights on [0, 1]


def quad(a: float, b: float, n: int, breaks: Sequence[float] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes/weights, ``n`` points on every smooth piece of [a, b] (split at ``breaks``)."""
    edges = [a, *sorted(x for x in breaks if a < x < b), b]
    x01, w01 = _gauss_legendre(n)
    pieces = list(zip(edges[:-1], edges[1:], strict=True))
    return (np.concatenate([lo + (hi - lo) * x01 for lo, hi in pieces]),
            np.concatenate([(hi - lo) * w01 for lo, hi in pieces]))
