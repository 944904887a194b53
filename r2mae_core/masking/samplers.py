"""Mask-ratio samplers: which mask ratio(s) for this training step.

:class:`Fixed`, :class:`R2MAE` (the main paper, Dong, Wang & Kluger, NeurIPS 2025: the ratio is drawn from
U[low, high] during pretraining), :class:`Scheduled` (linear/cosine over training; :func:`masking_ratio_decay`
of Yang et al. 2023), :class:`MaskGITCosine` (Chang et al. 2022), :class:`TruncatedGaussian` (MAGE, Li et al.
2023), :class:`Choice` (scGPT) and :class:`MaskedDiffusion` (MDLM, Sahoo et al. 2024; LLaDA, Nie et al. 2025),
plus :func:`make_sampler` and its :data:`SAMPLER_REGISTRY`.

``sample`` takes a ``torch.Generator`` (float32 tensor on its device) or a ``numpy.random.Generator`` (float64
array) and never touches global RNG state; ``expect`` is deterministic quadrature (no randomness).
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from ..validation import check_per, check_progress, check_ratio, is_int, is_real
from ._backend import quad, torch, work_dtype

__all__ = ["RatioSampler", "Fixed", "R2MAE", "Scheduled", "MaskGITCosine", "TruncatedGaussian", "Choice",
           "MaskedDiffusion", "masking_ratio_decay", "make_sampler", "SAMPLER_REGISTRY"]

Generator = np.random.Generator if torch is None else torch.Generator | np.random.Generator
Nodes = tuple[np.ndarray, np.ndarray]
_F32_TINY = float(np.finfo(np.float32).tiny)
_F32_BELOW_ONE = float(np.nextafter(np.float32(1), np.float32(0)))  # largest float32 < 1


class RatioSampler(ABC):
    """A law of mask ratios m ∈ (0, 1), possibly depending on training progress t ∈ [0, 1].

    Subclasses are frozen dataclasses with a ``per`` field that implement ``_draw_torch`` / ``_draw_numpy``
    (``n`` draws at progress t), ``_nodes`` (quadrature nodes and weights of the law at progress t),
    :meth:`support` and :meth:`describe`. ``per="batch"`` makes one draw per call shared by all rows;
    ``per="sample"`` draws i.i.d. per row.
    """

    per: str
    #: True when the law depends on t (then ``expect(progress=None)`` also averages over t ~ U[0, 1]).
    time_dependent = False

    def sample(self, batch_size: int, *, generator: Generator,
               progress: float = 0.0) -> torch.Tensor | np.ndarray:
        """Draw the mask ratios of one training step.

        Parameters
        ----------
        batch_size
            Number of rows B >= 1.
        generator
            ``torch.Generator`` or ``numpy.random.Generator``; the only source of randomness.
        progress
            Training progress t = step / total_steps in [0, 1] (used by schedules).

        Returns
        -------
        torch.Tensor or numpy.ndarray
            (B,) ratios in (0, 1): float32 on the generator's device for a ``torch.Generator``, float64 for a
            ``numpy.random.Generator``. With ``per="batch"`` all entries are one draw (one variate per call).
        """
        if not is_int(batch_size) or batch_size < 1:
            raise ValueError(f"batch_size={batch_size!r} is not allowed: use an integer >= 1")
        t = check_progress("progress", progress)
        n = 1 if self.per == "batch" else int(batch_size)
        if torch is not None and isinstance(generator, torch.Generator):
            # float32 rounding must not reach 0 or 1 (e.g. high = 1 - 1e-9): keep the open interval
            out = self._draw_torch(n, t, generator).to(torch.float32).clamp(_F32_TINY, _F32_BELOW_ONE)
            return out.expand(int(batch_size)).clone() if n == 1 else out
        if isinstance(generator, np.random.Generator):
            out = np.asarray(self._draw_numpy(n, t, generator), dtype=np.float64)
            return np.repeat(out, int(batch_size)) if n == 1 else out
        raise ValueError(f"generator={generator!r} is not allowed: use a torch.Generator or "
                         "numpy.random.Generator")

    def expect(self, fn: Callable[[np.ndarray], np.ndarray], *, progress: float | None = None,
               n_points: int = 2001) -> float:
        """E[fn(m)] = ∫ fn(m) dP_t(m) by deterministic Gauss-Legendre quadrature (no randomness).

        Parameters
        ----------
        fn
            Vectorised numpy function of the ratio, e.g. ``lambda m: m * (1 - m) ** 2``.
        progress
            Training progress t; ``None`` averages over t ~ U[0, 1] too, E_t E[fn(m) | t] (schedules only).
        n_points
            Gauss-Legendre nodes per smooth piece of each integral (kinks and atoms are split off exactly).

        Returns
        -------
        float
            The expectation (weights are normalised, so ``expect(lambda m: 1.0) == 1``).
        """
        m, w = self.quadrature(progress=progress, n_points=n_points)
        values = np.broadcast_to(np.asarray(fn(m), dtype=np.float64), m.shape)
        return float(np.sum(w * values))

    def quadrature(self, *, progress: float | None = None, n_points: int = 2001) -> Nodes:
        """Nodes and weights of the ratio law: E[fn(m)] ≈ Σ_k w_k fn(m_k) (what :meth:`expect` sums).

        The linear theory (:mod:`r2mae_core.theory`) treats a random ratio as a finite mixture over these nodes.

        Parameters
        ----------
        progress
            Training progress t; ``None`` averages over t ~ U[0, 1] too (schedules only).
        n_points
            Gauss-Legendre nodes per smooth piece (atoms such as a fixed ratio give one node).

        Returns
        -------
        tuple of numpy.ndarray
            (ratios, weights), weights positive and summing to 1; nodes with zero weight are dropped.
        """
        if not is_int(n_points) or n_points < 2:
            raise ValueError(f"n_points={n_points!r} is not allowed: use an integer >= 2")
        if progress is not None or not self.time_dependent:
            m, w = self._nodes(0.0 if progress is None else check_progress("progress", progress), int(n_points))
        else:
            ts, wt = quad(0.0, 1.0, int(n_points), self._t_breaks())
            parts = [self._nodes(float(t), int(n_points)) for t in ts]
            m = np.concatenate([p[0] for p in parts])
            w = np.concatenate([p[1] * wi for p, wi in zip(parts, wt, strict=True)])
        m = np.asarray(m, dtype=np.float64).ravel()
        w = np.broadcast_to(np.asarray(w, dtype=np.float64), m.shape)
        keep = w > 0
        return m[keep], w[keep] / np.sum(w[keep])

    def mean(self, progress: float | None = None) -> float:
        """E[m] (:meth:`expect` of the identity)."""
        return self.expect(lambda m: m, progress=progress)

    def _t_breaks(self) -> tuple[float, ...]:
        return ()

    @abstractmethod
    def _draw_torch(self, n: int, t: float, gen: torch.Generator) -> torch.Tensor: ...

    @abstractmethod
    def _draw_numpy(self, n: int, t: float, rng: np.random.Generator) -> np.ndarray: ...

    @abstractmethod
    def _nodes(self, t: float, n_points: int) -> Nodes: ...

    @abstractmethod
    def support(self) -> tuple[float, float]:
        """(min, max) ratio this sampler can return, over all progress values."""

    @abstractmethod
    def describe(self) -> str:
        """Short label for plots and tables."""


def _rand(gen: torch.Generator, n: int) -> torch.Tensor:
    return torch.rand(n, generator=gen, device=gen.device, dtype=work_dtype(gen.device))


@dataclass(frozen=True)
class Fixed(RatioSampler):
    """The constant ratio m = ``ratio`` (MAE: 0.75, He et al. 2022; BERT: 0.15, Devlin et al. 2019)."""

    ratio: float
    per: str = "batch"

    def __post_init__(self) -> None:
        check_ratio("ratio", self.ratio, owner="Fixed")
        check_per("per", self.per, owner="Fixed")

    def _draw_torch(self, n: int, t: float, gen: torch.Generator) -> torch.Tensor:
        return torch.full((n,), float(self.ratio), device=gen.device)

    def _draw_numpy(self, n: int, t: float, rng: np.random.Generator) -> np.ndarray:
        return np.full(n, float(self.ratio))

    def _nodes(self, t: float, n_points: int) -> Nodes:
        return np.array([float(self.ratio)]), np.ones(1)

    def support(self) -> tuple[float, float]:
        return float(self.ratio), float(self.ratio)

    def describe(self) -> str:
        return f"fixed {self.ratio:g}"


@dataclass(frozen=True)
class R2MAE(RatioSampler):
    """R²MAE: m ~ U[low, high] (Dong, Wang & Kluger, NeurIPS 2025, arXiv 2509.21650).

    Density 1/(high − low) on [low, high]: mean (low + high)/2, sd (high − low)/√12. ``per="batch"`` (default)
    draws one ratio per step, ``per="sample"`` one per row. A single ratio is :class:`Fixed`, so low < high.
    """

    low: float
    high: float
    per: str = "batch"

    def __post_init__(self) -> None:
        lo, hi = check_ratio("low", self.low, owner="R2MAE"), check_ratio("high", self.high, owner="R2MAE")
        if not lo < hi:
            raise ValueError(f"R2MAE: low={self.low!r} must be < high={self.high!r} (interval [low, high] "
                             "inside (0, 1); for a single ratio use Fixed)")
        check_per("per", self.per, owner="R2MAE")

    def _draw_torch(self, n: int, t: float, gen: torch.Generator) -> torch.Tensor:
        return self.low + (self.high - self.low) * _rand(gen, n)

    def _draw_numpy(self, n: int, t: float, rng: np.random.Generator) -> np.ndarray:
        return self.low + (self.high - self.low) * rng.random(n)

    def _nodes(self, t: float, n_points: int) -> Nodes:
        m, w = quad(self.low, self.high, n_points)
        return m, w / (self.high - self.low)

    def support(self) -> tuple[float, float]:
        return float(self.low), float(self.high)

    def describe(self) -> str:
        return f"R²MAE U[{self.low:g}, {self.high:g}]/{self.per}"


@dataclass(frozen=True)
class Scheduled(RatioSampler):
    """Deterministic ratio m(t) over training progress t ∈ [0, 1], clipped below at ``floor``.

    linear: m(t) = max(start + (end − start)·t, floor); cosine: m(t) = max(end + (start − end)(1 + cos πt)/2,
    floor). Decays when start > end, increases otherwise. ``start``, ``end`` and ``floor`` lie in [0, 1) and
    the clipped ratio in (0, 1), so 0 is allowed only with ``floor > 0`` (the linear
    :func:`masking_ratio_decay`).
    ``label`` (not compared) overrides :meth:`describe`.
    """

    start: float
    end: float
    shape: str = "linear"
    floor: float = 0.0
    per: str = "batch"
    label: str = field(default="", compare=False)
    time_dependent = True

    def __post_init__(self) -> None:
        for name in ("start", "end", "floor"):
            value = getattr(self, name)
            if not is_real(value) or not 0.0 <= float(value) < 1.0:
                raise ValueError(f"Scheduled: {name}={value!r} is not allowed: use a number in [0, 1) (every "
                                 "ratio max(m(t), floor) must lie in (0, 1))")
        if not max(min(self.start, self.end), self.floor) > 0.0:
            raise ValueError(f"Scheduled: start={self.start!r}, end={self.end!r} reach 0 with "
                             f"floor={self.floor!r}: use floor > 0 (or start, end > 0) so that every "
                             "ratio lies in (0, 1)")
        if self.shape not in ("linear", "cosine"):
            raise ValueError(f"Scheduled: shape={self.shape!r} is not allowed: use 'linear' or 'cosine'")
        check_per("per", self.per, owner="Scheduled")

    def ratio(self, progress: float) -> float:
        """m(t) at training progress ``progress`` (formula in the class docstring)."""
        t = check_progress("progress", progress)
        if self.shape == "linear":
            raw = self.start + (self.end - self.start) * t
        else:
            raw = self.end + (self.start - self.end) * (1.0 + math.cos(math.pi * t)) / 2.0
        return max(raw, float(self.floor))

    def _t_breaks(self) -> tuple[float, ...]:
        # where the raw schedule crosses the floor: a kink that splits the quadrature over t
        if not min(self.start, self.end) < self.floor < max(self.start, self.end):
            return ()
        frac = (self.floor - self.start) / (self.end - self.start)  # fraction of the way from start to end
        return (frac,) if self.shape == "linear" else (math.acos(1.0 - 2.0 * frac) / math.pi,)

    def _draw_torch(self, n: int, t: float, gen: torch.Generator) -> torch.Tensor:
        return torch.full((n,), self.ratio(t), device=gen.device)

    def _draw_numpy(self, n: int, t: float, rng: np.random.Generator) -> np.ndarray:
        return np.full(n, self.ratio(t))

    def _nodes(self, t: float, n_points: int) -> Nodes:
        return np.array([self.ratio(t)]), np.ones(1)

    def support(self) -> tuple[float, float]:
        return max(min(self.start, self.end), self.floor), max(self.start, self.end, self.floor)

    def describe(self) -> str:
        floor = f" (≥{self.floor:g})" if self.floor > 0 else ""
        return self.label or f"{self.shape} {self.start:g}→{self.end:g}{floor}"


def masking_ratio_decay(shape: str = "cosine", *, per: str = "batch", kind: str | None = None) -> Scheduled:
    """Masking Ratio Decay (MRD) schedules of Yang et al. 2023.

    Source: "Learning Better Masking for Better Language Model Pre-training" (ACL 2023).
    cosine: m(t) = 0.15·(1 + cos πt) + 0.02 (0.32 → 0.02); linear: m(t) = max(0.30·(1 − t), 0.02). Returned as
    a :class:`Scheduled` (cosine: start 0.32, end 0.02; linear: start 0.30, end 0, floor 0.02). ``kind`` is an
    alias of ``shape`` for direct calls; in :func:`make_sampler` the key is ``shape`` (``kind`` is ``"mrd"``).
    """
    if kind is not None:
        if shape != "cosine" and kind != shape:
            raise ValueError(f"masking_ratio_decay: kind={kind!r} conflicts with shape={shape!r}: give "
                             "only one")
        shape = kind
    if shape == "cosine":
        return Scheduled(0.32, 0.02, "cosine", per=per, label="MRD cosine")
    if shape == "linear":
        return Scheduled(0.30, 0.0, "linear", floor=0.02, per=per, label="MRD linear")
    raise ValueError(f"masking_ratio_decay: shape={shape!r} is not allowed: use 'cosine' or 'linear'")


@dataclass(frozen=True)
class MaskGITCosine(RatioSampler):
    """MaskGIT cosine ratio m = cos(π r / 2), r ~ U(0, 1) (Chang et al. 2022), clipped to [eps, 1 − eps].

    The clip (default eps = 1e-3) keeps every ratio in the open interval (0, 1); it puts point masses
    (2/π)·arccos(1 − eps) at 1 − eps (2.8% for eps = 1e-3: cos is flat near r = 0) and
    1 − (2/π)·arccos(eps) at eps (0.06%). E[m] = 2/π unclipped; the clip moves it by ~2e-5. For any
    sequence shorter than 1/eps = 1000 tokens, 1 − eps and 1 masks the same count (L − 1, see the generators).
    """

    eps: float = 1e-3
    per: str = "batch"

    def __post_init__(self) -> None:
        if not is_real(self.eps) or not 0.0 < self.eps < 0.5:
            raise ValueError(f"MaskGITCosine: eps={self.eps!r} is not allowed: use a clip in (0, 0.5)")
        check_per("per", self.per, owner="MaskGITCosine")

    def _draw_torch(self, n: int, t: float, gen: torch.Generator) -> torch.Tensor:
        return torch.cos(math.pi / 2 * _rand(gen, n)).clamp(self.eps, 1.0 - self.eps)

    def _draw_numpy(self, n: int, t: float, rng: np.random.Generator) -> np.ndarray:
        return np.clip(np.cos(np.pi / 2 * rng.random(n)), self.eps, 1.0 - self.eps)

    def _nodes(self, t: float, n_points: int) -> Nodes:
        r1, r2 = (2 / math.pi) * math.acos(1 - self.eps), (2 / math.pi) * math.acos(self.eps)
        r, w = quad(r1, r2, n_points)  # the unclipped middle, over r, plus the two atoms of the clip
        nodes = np.concatenate([[1 - self.eps, self.eps], np.cos(np.pi / 2 * r)])
        return nodes, np.concatenate([[r1, 1 - r2], w])

    def support(self) -> tuple[float, float]:
        return float(self.eps), 1.0 - float(self.eps)

    def describe(self) -> str:
        return f"MaskGIT cos/{self.per}"


@dataclass(frozen=True, init=False)
class TruncatedGaussian(RatioSampler):
    """m ~ N(mean, std²) truncated to [low, high], sampled exactly by the inverse CDF.

    m = mean + std·Φ⁻¹(Φ(α) + u·(Φ(β) − Φ(α))), α = (low − mean)/std, β = (high − mean)/std, u ~ U(0, 1).
    MAGE (Li et al. 2023) uses mean 0.55, std 0.25 on [0.5, 1.0); ratios must lie in (0, 1), so the default
    high is 0.99 (this drops 0.60% of MAGE's truncated mass, the part above 0.99). The Gaussian's ``mean`` and
    ``std`` are stored as ``loc`` and ``scale``, since :meth:`mean` is the mean of the truncated ratio law.
    """

    loc: float
    scale: float
    low: float
    high: float
    per: str

    def __init__(self, mean: float = 0.55, std: float = 0.25, low: float = 0.5, high: float = 0.99,
                 per: str = "batch") -> None:
        for name, value in (("loc", mean), ("scale", std), ("low", low), ("high", high), ("per", per)):
            object.__setattr__(self, name, value)
        if not is_real(mean):
            raise ValueError(f"TruncatedGaussian: mean={mean!r} is not allowed: use a finite number")
        if not is_real(std) or not std > 0:
            raise ValueError(f"TruncatedGaussian: std={std!r} is not allowed: use a finite number > 0")
        lo = check_ratio("low", low, owner="TruncatedGaussian")
        hi = check_ratio("high", high, owner="TruncatedGaussian")
        if not lo < hi:
            raise ValueError(f"TruncatedGaussian: low={low!r} must be < high={high!r} (interval inside "
                             "(0, 1))")
        a, b = self._ab()
        mass = stats.norm.sf(a) - stats.norm.sf(b) if a > 0 else stats.norm.cdf(b) - stats.norm.cdf(a)
        if not mass > 1e-12:
            raise ValueError(f"TruncatedGaussian: [low, high]=[{lo:g}, {hi:g}] has mass {mass:.3g} under "
                             f"N({mean:g}, {std:g}²): use an interval with mass > 1e-12")
        check_per("per", per, owner="TruncatedGaussian")

    def _ab(self) -> tuple[float, float]:
        return (self.low - self.loc) / self.scale, (self.high - self.loc) / self.scale

    def _draw_torch(self, n: int, t: float, gen: torch.Generator) -> torch.Tensor:
        a, b = self._ab()
        u = _rand(gen, n)
        # work in the left tail (mirror m -> -m when α > 0), where Φ and Φ⁻¹ keep their relative precision
        sign, (a, b) = (-1.0, (-b, -a)) if a > 0 else (1.0, (a, b))
        pa, pb = (torch.special.ndtr(torch.tensor(v, dtype=u.dtype, device=u.device)) for v in (a, b))
        z = torch.special.ndtri(pa + u * (pb - pa)).clamp(a, b)
        return (self.loc + sign * self.scale * z).clamp(self.low, self.high)

    def _draw_numpy(self, n: int, t: float, rng: np.random.Generator) -> np.ndarray:
        a, b = self._ab()
        return np.clip(stats.truncnorm.ppf(rng.random(n), a, b, self.loc, self.scale), self.low, self.high)

    def _nodes(self, t: float, n_points: int) -> Nodes:
        a, b = self._ab()
        m, w = quad(self.low, self.high, n_points)
        return m, w * stats.truncnorm.pdf(m, a, b, self.loc, self.scale)

    def support(self) -> tuple[float, float]:
        return float(self.low), float(self.high)

    def describe(self) -> str:
        return f"TN({self.loc:g}, {self.scale:g}) on [{self.low:g}, {self.high:g}]/{self.per}"


@dataclass(frozen=True)
class Choice(RatioSampler):
    """m uniform over a finite set of distinct ratios: P(m = v_i) = 1/k.

    scGPT (Cui et al. 2024) draws per batch from {0.25, 0.5, 0.75} (the default).
    """

    values: tuple[float, ...] = (0.25, 0.5, 0.75)
    per: str = "batch"

    def __post_init__(self) -> None:
        if isinstance(self.values, str | bytes) or not isinstance(self.values, Sequence | np.ndarray) \
                or len(self.values) == 0:
            raise ValueError(f"Choice: values={self.values!r} is not allowed: use a non-empty list of ratios "
                             "in (0, 1)")
        values = tuple(check_ratio(f"values[{i}]", v, owner="Choice") for i, v in enumerate(self.values))
        if len(set(values)) != len(values):
            raise ValueError(f"Choice: values={list(values)!r} is not allowed: use distinct ratios")
        object.__setattr__(self, "values", values)  # a hashable tuple even when YAML gives a list
        check_per("per", self.per, owner="Choice")

    def _draw_torch(self, n: int, t: float, gen: torch.Generator) -> torch.Tensor:
        idx = torch.randint(len(self.values), (n,), generator=gen, device=gen.device)
        return torch.tensor(self.values, device=gen.device)[idx]

    def _draw_numpy(self, n: int, t: float, rng: np.random.Generator) -> np.ndarray:
        return np.asarray(self.values)[rng.integers(len(self.values), size=n)]

    def _nodes(self, t: float, n_points: int) -> Nodes:
        return np.asarray(self.values), np.full(len(self.values), 1.0 / len(self.values))

    def support(self) -> tuple[float, float]:
        return min(self.values), max(self.values)

    def describe(self) -> str:
        return "choice {" + ", ".join(f"{v:g}" for v in self.values) + f"}}/{self.per}"


@dataclass(frozen=True)
class MaskedDiffusion(RatioSampler):
    """Masked-diffusion noise level t ~ U[eps, 1) per sequence: t = eps + (1 − eps)·u, u ~ U(0, 1).

    Masked-diffusion language models (MDLM, Sahoo et al. 2024, "Simple and Effective Masked Diffusion Language
    Models", NeurIPS; LLaDA, Nie et al. 2025, "Large Language Diffusion Models") draw t ~ U(0, 1) for every
    sequence, mask each token independently with probability t (:func:`r2mae_core.masking.bernoulli_mask`) and
    weight the sequence's masked-token loss by 1/t (:func:`r2mae_core.losses.masked_diffusion_loss`). The lower
    clamp ``eps`` keeps t away from 0, where the weight 1/t diverges; it is the affine map both reference codes
    use (``p_mask = (1 − eps)·t + eps``, eps = 1e-3 in MDLM's ``sampling_eps`` and LLaDA's pretraining code).
    Density 1/(1 − eps) on [eps, 1); E[t] = (1 + eps)/2; E[1/t] = −ln(eps)/(1 − eps) (6.9 at eps = 1e-3).
    ``per="sample"`` (default) draws one t per row, as the papers do; ``per="batch"`` one per call.
    """

    eps: float = 1e-3
    per: str = "sample"

    def __post_init__(self) -> None:
        if not is_real(self.eps) or not 0.0 < float(self.eps) < 1.0:
            raise ValueError(f"MaskedDiffusion: eps={self.eps!r} is not allowed: use a lower clamp of the noise "
                             "level t in the open interval (0, 1) (MDLM and LLaDA use 1e-3)")
        check_per("per", self.per, owner="MaskedDiffusion")

    def _draw_torch(self, n: int, t: float, gen: torch.Generator) -> torch.Tensor:
        return self.eps + (1.0 - self.eps) * _rand(gen, n)

    def _draw_numpy(self, n: int, t: float, rng: np.random.Generator) -> np.ndarray:
        return np.minimum(self.eps + (1.0 - self.eps) * rng.random(n), np.nextafter(1.0, 0.0))  # never 1

    def _nodes(self, t: float, n_points: int) -> Nodes:
        m, w = quad(float(self.eps), 1.0, n_points)
        return m, w / (1.0 - self.eps)

    def support(self) -> tuple[float, float]:
        return float(self.eps), _F32_BELOW_ONE

    def describe(self) -> str:
        return f"masked diffusion U[{self.eps:g}, 1)/{self.per}"


SAMPLER_REGISTRY: dict[str, Callable[..., RatioSampler]] = {
    "fixed": Fixed, "r2mae": R2MAE, "scheduled": Scheduled, "maskgit": MaskGITCosine,
    "truncnorm": TruncatedGaussian, "choice": Choice, "mrd": masking_ratio_decay,
    "masked_diffusion": MaskedDiffusion,
}
"""``kind`` name -> sampler class (or factory function) used by :func:`make_sampler`.

How to add a masking scheme: (1) write a frozen dataclass subclassing :class:`RatioSampler` with a ``per``
field; validate in ``__post_init__`` (one-line ``ValueError`` naming the argument, its value and what is
allowed) and implement ``_draw_torch``, ``_draw_numpy`` (n draws, from the given generator only), ``_nodes``
(quadrature nodes/weights of the law, for ``expect``), ``support`` and ``describe``; (2) add one entry here.
Its constructor's parameter names are the allowed spec keys: ``{"kind": "<name>", **kwargs}``.
"""


def make_sampler(spec: dict | str | float | RatioSampler) -> RatioSampler:
    """Build a sampler from a YAML-friendly spec.

    A number (or numeric string) gives :class:`Fixed`; another string names a ``kind`` built with its
    defaults; a dict ``{"kind": name, **kwargs}`` calls ``SAMPLER_REGISTRY[name](**kwargs)``; a sampler passes
    through. Unknown kinds and unknown or missing keys raise ``ValueError`` listing what is allowed.
    """
    if isinstance(spec, RatioSampler):
        return spec
    if is_real(spec):
        return Fixed(float(spec))
    if isinstance(spec, str):
        try:
            value = float(spec)
        except ValueError:
            spec = {"kind": spec}
        else:
            return Fixed(value)
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError(f"spec={spec!r} is not allowed: use a ratio, a kind name, or a dict with a 'kind' "
                         f"key (kinds: {sorted(SAMPLER_REGISTRY)})")
    kwargs = dict(spec)
    kind = kwargs.pop("kind")
    if not isinstance(kind, str) or kind not in SAMPLER_REGISTRY:
        raise ValueError(f"kind={kind!r} is not allowed: use one of {sorted(SAMPLER_REGISTRY)}")
    params = inspect.signature(SAMPLER_REGISTRY[kind]).parameters
    allowed = [p for p in params if p != "kind"]
    unknown = sorted(set(kwargs) - set(allowed), key=str)
    if unknown:
        raise ValueError(f"{kind}: unknown key(s) {unknown} in spec={spec!r}: allowed keys are {allowed}")
    missing = [p for p in allowed if params[p].default is inspect.Parameter.empty and p not in kwargs]
    if missing:
        raise ValueError(f"{kind}: missing key(s) {missing} in spec={spec!r}: allowed keys are {allowed}")
    return SAMPLER_REGISTRY[kind](**kwargs)
