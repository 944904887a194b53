"""Argument checks and quadrature shared by the masking modules (private)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy import special

try:
    import torch
except ImportError:  # numpy + scipy only: the samplers' numpy draws and laws (the linear theory) still work
    torch = None


def is_real(x: object) -> bool:
    """A finite real number that is not a bool."""
    numeric = isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)
    return numeric and math.isfinite(x)


def is_int(x: object) -> bool:
    """An integer that is not a bool."""
    return not isinstance(x, bool) and isinstance(x, int | np.integer)


def check_ratio(owner: str, name: str, x: object) -> float:
    """``x`` as a float after checking it is a mask ratio in the open interval (0, 1)."""
    if not is_real(x) or not 0.0 < float(x) < 1.0:
        raise ValueError(f"{owner}: {name}={x!r} is not allowed: use a mask ratio in the open interval "
                         "(0, 1)")
    return float(x)


def check_per(owner: str, per: object) -> None:
    """``per`` must be "batch" or "sample"."""
    if per not in ("batch", "sample"):
        raise ValueError(f"{owner}: per={per!r} is not allowed: use 'batch' (one ratio per call) or 'sample'")


def check_progress(progress: object) -> float:
    """Training progress t = step / total_steps in [0, 1]."""
    if not is_real(progress) or not 0.0 <= float(progress) <= 1.0:
        raise ValueError(f"progress={progress!r} is not allowed: use training progress t = step/total "
                         "in [0, 1]")
    return float(progress)


def torch_generator(owner: str, generator: object) -> torch.Generator:
    """``generator`` after checking it is a ``torch.Generator``."""
    if torch is None or not isinstance(generator, torch.Generator):
        raise ValueError(f"{owner}: generator={generator!r} is not allowed: use a torch.Generator")
    return generator


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
