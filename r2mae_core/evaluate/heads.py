"""Classifier heads trained by gradient descent: the training loop the BN+LP and the fine-tune share, and the
BN+LP itself (a non-affine BatchNorm and a linear layer on frozen features)."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._rng import check_seed, child_seeds, torch_generator
from ..models.blocks import seeded_init
from ._common import ProbeResult, autocast

__all__ = ["bn_linear_probe", "fit_classifier", "predict", "labels_of", "make_head", "HEADS"]

#: Heads of the torch-trained probes: ``"bn"`` a non-affine BatchNorm then a linear layer (MAE's, seeded init),
#: ``"zero"`` a linear layer initialised at zero.
HEADS = ("bn", "zero")


def make_head(kind: str, dim: int, n_classes: int, init_seed: int, batch_norm: bool = True) -> nn.Module:
    """A head of :data:`HEADS` on ``dim`` features (``batch_norm=False``: the ``"bn"`` head without its norm)."""
    if kind not in HEADS:
        raise ValueError(f"head={kind!r} is not allowed: use one of {', '.join(map(repr, HEADS))}")
    with seeded_init(init_seed):
        norm = nn.BatchNorm1d(dim, affine=False) if kind == "bn" and batch_norm else nn.Identity()  # no parameters
        head = nn.Sequential(norm, nn.Linear(dim, n_classes))
    if kind == "zero":
        nn.init.zeros_(head[1].weight), nn.init.zeros_(head[1].bias)
    return head


def labels_of(y) -> tuple[torch.Tensor, int]:
    """Integer class ids ``0..K-1`` as an int64 tensor (a copy: inputs may be read-only) and ``K = max + 1``."""
    y = torch.from_numpy(np.array(y, dtype=np.int64))
    return y, int(y.max()) + 1


def fit_classifier(forward: Callable, params, inputs: tuple[torch.Tensor, ...], y: torch.Tensor, *, epochs: int,
                   lr: float, batch_size: int, weight_decay: float, seed: int, device, amp, train_mode: Callable,
                   skip_single: bool = True, on_epoch: Callable | None = None) -> None:
    """AdamW + cosine decay per step on cross-entropy; batches from a seeded permutation each epoch.

    The learning rate at step ``s`` of ``S = epochs · ⌈N / batch_size⌉`` is ``lr · ½(1 + cos(π s / S))``.
    ``forward(*batch)`` gives the logits of the rows of ``inputs``; a batch of one row is skipped when
    ``skip_single`` (BatchNorm needs two). ``on_epoch(epoch)`` runs after each epoch, in eval mode.
    """
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(y) / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    gen = torch_generator(seed)
    for epoch in range(epochs):
        train_mode(True)
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), batch_size):
            idx = perm[i:i + batch_size]
            if skip_single and len(idx) < 2:
                continue
            with autocast(device, amp):
                logits = forward(*(x[idx].to(device) for x in inputs))
            loss = F.cross_entropy(logits.float(), y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        train_mode(False)
        if on_epoch is not None:
            on_epoch(epoch)


@torch.no_grad()
def predict(forward: Callable, inputs: tuple[torch.Tensor, ...], batch_size: int, device, amp) -> np.ndarray:
    """Argmax class ids of ``forward`` over the rows of ``inputs``, in batches."""
    n = len(inputs[0])
    out = [np.zeros(0, dtype=np.int64)]
    with autocast(device, amp):
        for i in range(0, n, batch_size):
            out.append(forward(*(x[i:i + batch_size].to(device) for x in inputs)).argmax(-1).cpu().numpy())
    return np.concatenate(out)


def accuracy(pred: np.ndarray, y) -> float:
    """Share of ``pred`` equal to ``y`` (NaN for an empty set)."""
    y = np.asarray(y)
    return float(np.mean(pred == y)) if len(y) else math.nan


def bn_linear_probe(train_x, train_y, test_x, test_y, *, epochs: int = 30, lr: float = 1e-3,
                    batch_size: int = 256, weight_decay: float = 0.0, seed: int = 0,
                    device: str | torch.device = "cpu", batch_norm: bool = True,
                    extra_tests: dict | None = None) -> ProbeResult:
    """BN+LP: a non-affine ``BatchNorm1d`` then a linear head on frozen features (MAE's linear probe).

    He et al. (2022, appendix A.2) put a BatchNorm without affine parameters before the linear
    classifier: it standardises features with batch statistics (running averages at test time), which
    matters when feature scales differ a lot. Trained by :func:`fit_classifier` (AdamW + cosine decay),
    seeded init and order.

    ``batch_norm=False`` drops the BatchNorm and keeps everything else (same linear init, order, optimiser):
    the plain LP on raw features that "Mask Models are Token Level Contrastive Learners" (Table 1) compares with
    BN+LP, so the two differ only by the normalisation (:func:`r2mae_core.evaluate.linear_probe` standardises
    its inputs).

    ``extra_tests`` ``{name: (x, y)}`` are further sets scored by the same fitted head (``ProbeResult.extra``):
    one fit for a validation and a test score.

    Returns
    -------
    ProbeResult
        ``method="bn_lp"`` (``"lp_raw"`` without the BatchNorm), train and test accuracy (``val_acc`` NaN: no
        selection is made) and the ``extra`` accuracies.
    """
    seed = check_seed(seed)
    device = torch.device(device)

    def rows(a):
        return (torch.as_tensor(np.asarray(a), dtype=torch.float32),)

    x, xt = rows(train_x), rows(test_x)
    y, n_classes = labels_of(train_y)
    init_seed, order_seed = child_seeds(seed, 2)
    head = make_head("bn", x[0].shape[1], n_classes, init_seed, batch_norm).to(device)
    fit_classifier(head, list(head.parameters()), x, y, epochs=epochs, lr=lr, batch_size=batch_size,
                   weight_decay=weight_decay, seed=order_seed, device=device, amp=False, train_mode=head.train)
    extra = {name: accuracy(predict(head, rows(ex), 1024, device, False), ey)
             for name, (ex, ey) in (extra_tests or {}).items()}
    return ProbeResult("bn_lp" if batch_norm else "lp_raw", accuracy(predict(head, xt, 1024, device, False), test_y),
                       math.nan, accuracy(predict(head, x, 1024, device, False), train_y), extra=extra)
