"""Fine-tuning of a copy of an encoder with a classifier head: the image models (02, 06) and the token models
(03, 04) alike."""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from .._rng import check_seed, child_seeds
from ..models.blocks import images_to_tensor
from ._common import ProbeResult, check_metrics, scores
from .heads import accuracy, fit_classifier, labels_of, make_head, predict

__all__ = ["finetune", "MODES"]

MODES = ("partial", "full")


def _inputs(x) -> tuple[torch.Tensor, ...]:
    """Encoder inputs: a tuple ``(ids, attention)`` of token arrays (ids as int64) or images
    (:func:`r2mae_core.models.blocks.images_to_tensor`)."""
    if isinstance(x, tuple | list):
        out = []
        for a in x:
            a = np.asarray(a)
            out.append(torch.as_tensor(a.astype(np.int64) if a.dtype.kind in "iu" else a))
        return tuple(out)
    return (images_to_tensor(x),)


def finetune(model: nn.Module, train_x, train_y, test_x, test_y, *, val=None, mode: str = "partial",
             head: str = "bn", epochs: int = 3, lr: float | tuple[float, ...] = 1e-3, batch_size: int = 128,
             weight_decay: float = 0.05, seed: int = 0, device: str | torch.device = "cpu", amp: bool | None = None,
             select: str = "acc", metrics=("acc",), return_model: bool = False):
    """Fine-tune a copy of ``model`` with a classifier head on ``model.encode`` (the input model is not modified).

    ``mode="partial"``: train the head and the last encoder block's ``qkv`` projection (``model.last_qkv``; the
    partial fine-tuning of "Mask Models are Token Level Contrastive Learners"). ``mode="full"``: every parameter.
    ``head``: ``"bn"`` (non-affine BatchNorm + linear, seeded init; MAE) or ``"zero"`` (a linear layer at zero).
    Training: :func:`r2mae_core.evaluate.heads.fit_classifier` (AdamW with weight decay ``weight_decay``, cosine
    decay per step, a seeded permutation each epoch; init and order seeds are the two children of ``seed``).

    Inputs ``*_x`` are images ``(N, …)`` or, for token models, a tuple ``(ids (N, L), attention (N, L))`` passed to
    ``model.encode(ids, attention)``; labels are integer class ids ``0..K-1``.

    Without ``val`` the model after the last epoch is scored (one ``lr``). With ``val=(x, y)`` the ``select``
    metric is computed on it after every epoch, for each learning rate of ``lr`` (each from the same copy and
    seed); the (rate, epoch) with the best validation score is kept (ties: the earlier epoch, the smaller rate)
    and its test scores are returned; its train accuracy is not computed (NaN).

    Returns
    -------
    ProbeResult or (ProbeResult, nn.Module)
        ``method="partial_ft"`` or ``"full_ft"``, accuracies, ``scores`` (``metrics`` on ``val`` and ``test``),
        ``lr`` and ``epoch`` (the chosen ones, with ``val``); with ``return_model`` also the fine-tuned encoder
        (the last rate's, after its last epoch).
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not allowed: use 'partial' or 'full'")
    if mode == "partial" and not hasattr(model, "last_qkv"):
        raise ValueError(f"mode='partial' is not allowed for {type(model).__name__}: it has no last_qkv")
    metrics = tuple(dict.fromkeys(("acc", select, *check_metrics(select, metrics))))
    lrs = sorted((float(lr),) if isinstance(lr, int | float) else tuple(float(v) for v in lr))
    if not lrs or (val is None and len(lrs) > 1):
        raise ValueError(f"lr={lr!r} is not allowed: use one rate, or a non-empty grid of rates with val=(x, y)")
    seed = check_seed(seed)
    device = torch.device(device)
    sets = {"train": (_inputs(train_x), np.asarray(train_y)), "test": (_inputs(test_x), np.asarray(test_y))}
    if val is not None:
        sets["val"] = (_inputs(val[0]), np.asarray(val[1]))
    best, enc = None, None
    for one in lrs:
        res, enc = _finetune_one(model, sets, mode=mode, head=head, epochs=epochs, lr=one, batch_size=batch_size,
                                 weight_decay=weight_decay, seed=seed, device=device, amp=amp, select=select,
                                 metrics=metrics)
        if best is None or res.scores[f"val_{select}"] > best.scores[f"val_{select}"]:
            best = res
    return (best, enc) if return_model else best


def _finetune_one(model, sets: dict, *, mode, head, epochs, lr, batch_size, weight_decay, seed, device, amp, select,
                  metrics) -> tuple[ProbeResult, nn.Module]:
    """:func:`finetune` at one learning rate: the scores of the last epoch, or of the validation-best epoch."""
    enc = copy.deepcopy(model).to(device)
    y, n_classes = labels_of(sets["train"][1])
    init_seed, order_seed = child_seeds(seed, 2)
    clf = make_head(head, enc.feature_dim, n_classes, init_seed).to(device)
    for p in enc.parameters():
        p.requires_grad_(mode == "full")
    if mode == "partial":
        for p in enc.last_qkv.parameters():
            p.requires_grad_(True)
    params = list(clf.parameters()) + [p for p in enc.parameters() if p.requires_grad]

    def forward(*xb):
        return clf(enc.encode(*xb).float())

    def train_mode(flag):
        enc.train(flag)
        clf.train(flag)

    kept: dict = {}

    def on_epoch(epoch):
        val_scores = scores("val", sets["val"][1], predict(forward, sets["val"][0], 512, device, amp), metrics)
        if not kept or val_scores[f"val_{select}"] > kept["scores"][f"val_{select}"]:
            pred = predict(forward, sets["test"][0], 512, device, amp)
            kept.update(scores={**val_scores, **scores("test", sets["test"][1], pred, metrics)}, epoch=epoch)

    fit_classifier(forward, params, sets["train"][0], y, epochs=epochs, lr=lr, batch_size=batch_size,
                   weight_decay=weight_decay, seed=order_seed, device=device, amp=amp, train_mode=train_mode,
                   skip_single=head == "bn", on_epoch=on_epoch if "val" in sets else None)
    method = f"{mode}_ft"
    if "val" in sets:
        out = kept["scores"]
        return ProbeResult(method, out["test_acc"], out["val_acc"], math.nan, scores=out, lr=lr,
                           epoch=kept["epoch"]), enc
    pred = predict(forward, sets["test"][0], 512, device, amp)
    return ProbeResult(method, accuracy(pred, sets["test"][1]), math.nan,
                       accuracy(predict(forward, sets["train"][0], 512, device, amp), sets["train"][1]),
                       scores=scores("test", sets["test"][1], pred, metrics)), enc
