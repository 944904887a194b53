"""What every probe shares: its result record, the metrics it can report, bf16 autocast on CUDA."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["ProbeResult", "METRICS", "score", "scores", "check_metrics"]

#: Metrics a probe can select on and report (higher is better for each).
METRICS = ("acc", "macro_f1", "f1", "mcc")


@dataclass(frozen=True)
class ProbeResult:
    """Scores of one probe.

    Attributes
    ----------
    method
        ``"lp"``, ``"bn_lp"``, ``"lp_raw"``, ``"partial_ft"`` or ``"full_ft"``.
    test_acc, val_acc, train_acc
        Accuracies in [0, 1] (NaN where the set was not scored: no validation set, or a fine-tune that kept a
        validation-chosen epoch).
    C
        Inverse L2 strength chosen for the LP (``None`` for the torch-trained heads).
    converged
        Whether the final LP fit converged within ``max_iter`` (``None`` for the torch-trained heads).
    extra
        Accuracy of the same fitted probe on further labelled sets (``extra_tests``).
    scores
        ``{f"{split}_{metric}": value}`` for every reported metric (``metrics=``) on ``val``, ``test`` and the
        ``extra_tests`` names.
    lr, epoch
        The fine-tuning learning rate and epoch (0-based) chosen on validation (``None`` otherwise).
    """

    method: str
    test_acc: float
    val_acc: float
    train_acc: float
    C: float | None = None
    converged: bool | None = None
    extra: dict = field(default_factory=dict)
    scores: dict = field(default_factory=dict)
    lr: float | None = None
    epoch: int | None = None


def check_metrics(select: str, metrics) -> tuple[str, ...]:
    """``metrics`` as a tuple, with ``select`` among :data:`METRICS` (one-line ``ValueError`` otherwise)."""
    metrics = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    for name in (select, *metrics):
        if name not in METRICS:
            raise ValueError(f"metric={name!r} is not allowed: use one of {', '.join(METRICS)}")
    return metrics


def score(y, pred, metric: str) -> float:
    """One metric of predictions ``pred`` against labels ``y`` (sklearn).

    ``acc``: accuracy; ``macro_f1``: unweighted mean of the per-class F1 over the classes present in ``y`` or
    ``pred`` (0 for a class never predicted); ``f1``: F1 of the positive class 1 when the labels are binary
    (``{0, 1}``), NaN otherwise; ``mcc``: Matthews correlation, multiclass form (Gorodkin 2004), in [-1, 1].
    """
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    y, pred = np.asarray(y), np.asarray(pred)
    if len(y) == 0:
        return math.nan
    if metric == "acc":
        return float(accuracy_score(y, pred))
    if metric == "macro_f1":
        return float(f1_score(y, pred, average="macro", zero_division=0.0))
    if metric == "f1":
        binary = set(np.unique(y).tolist()) <= {0, 1}
        return float(f1_score(y, pred, pos_label=1, zero_division=0.0)) if binary else math.nan
    return float(matthews_corrcoef(y, pred))


def scores(split: str, y, pred, metrics) -> dict[str, float]:
    """``{f"{split}_{m}": score(y, pred, m)}`` for ``m`` in ``metrics``."""
    return {f"{split}_{m}": score(y, pred, m) for m in metrics}


def autocast(device: torch.device, amp: bool | None):
    """bf16 autocast on ``device`` (``amp=None``: on CUDA only)."""
    amp = device.type == "cuda" if amp is None else amp
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(amp))
