"""Probes and metrics shared by every section: features, reconstruction loss, linear probe (LP),
BN+LP, partial/full fine-tuning, k-NN accuracy, effective rank and the singular-value spectrum.

Every function is seeded and deterministic on CPU. Hyper-parameters (the LP's ``C``) are chosen on a
validation split carved out of the *training* set; the test set is only ever scored.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler
from torch import nn

from . import masking
from ._rng import check_seed, child_seeds, torch_generator
from .models.blocks import as_token_mask, images_to_tensor, seeded_init

__all__ = ["ProbeResult", "extract_features", "reconstruction_loss", "linear_probe", "bn_linear_probe",
           "finetune", "knn_accuracy", "effective_rank", "singular_values"]


@dataclass(frozen=True)
class ProbeResult:
    """Accuracy of one probe.

    Attributes
    ----------
    method
        ``"lp"``, ``"bn_lp"``, ``"partial_ft"`` or ``"full_ft"``.
    test_acc, val_acc, train_acc
        Accuracies in [0, 1] (``val_acc`` is NaN when no validation split was used).
    C
        Inverse L2 strength chosen for the LP (``None`` for torch probes).
    converged
        Whether the final LP fit converged within ``max_iter`` (``None`` for torch probes).
    """

    method: str
    test_acc: float
    val_acc: float
    train_acc: float
    C: float | None = None
    converged: bool | None = None


def _autocast(device: torch.device, amp: bool | None):
    amp = device.type == "cuda" if amp is None else amp
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bool(amp))


@torch.no_grad()
def extract_features(model: nn.Module, images, *, batch_size: int = 256, device: str | torch.device = "cpu",
                     tokens: bool = False, amp: bool | None = None) -> np.ndarray:
    """Frozen features of unmasked inputs: ``encode`` ``(N, D)`` or ``encode_tokens`` ``(N, L, D)``.

    Parameters
    ----------
    model
        A masked model; put in eval mode (and restored to its previous mode afterwards).
    images
        uint8 ``(N, H, W)`` / ``(N, C, H, W)`` or float images (see ``models.blocks.images_to_tensor``).
    batch_size, device, amp
        Batching; ``amp=None`` means bf16 autocast on CUDA only.
    tokens
        Return per-token features instead of pooled ones.

    Returns
    -------
    numpy.ndarray
        float32 features.
    """
    device = torch.device(device)
    x = images_to_tensor(images)
    was_training = model.training
    model.eval()
    fn = model.encode_tokens if tokens else model.encode
    out = []
    with _autocast(device, amp):
        for i in range(0, len(x), batch_size):
            out.append(fn(x[i:i + batch_size].to(device)).float().cpu())
    model.train(was_training)
    return torch.cat(out).numpy()


@torch.no_grad()
def reconstruction_loss(model: nn.Module, images, ratio: float, *, seed: int = 0, batch_size: int = 256,
                        device: str | torch.device = "cpu", amp: bool | None = None) -> float:
    """Masked-reconstruction test loss at a fixed mask ratio.

    Each image gets an exact-count random subset mask of ``round(ratio · L)`` patches
    (``masking.random_subset_mask``) drawn from ``seed``: the same seed gives every model the same
    masks, so losses of different models are paired. The value is the model's own loss (masked-patch
    MSE, normalised pixels if the model uses ``norm_pix``) averaged over all masked patches.

    Returns
    -------
    float
        :math:`\\sum_b \\mathcal L_b\\, n_b / \\sum_b n_b` with ``n_b`` the masked patches of batch ``b``.
    """
    if not 0.0 < float(ratio) < 1.0:
        raise ValueError(f"ratio={ratio!r} is not allowed: use a mask ratio in (0, 1)")
    device = torch.device(device)
    x = images_to_tensor(images)
    gen = torch_generator(check_seed(seed))
    was_training = model.training
    model.eval()
    total, count = 0.0, 0.0
    with _autocast(device, amp):
        for i in range(0, len(x), batch_size):
            xb = x[i:i + batch_size].to(device)
            ratios = torch.full((len(xb),), float(ratio))
            subset = masking.random_subset_mask(ratios, model.num_patches, generator=gen)
            out = model(xb, as_token_mask(subset).to(device))
            n = float(out.mask.sum())
            total += float(out.loss) * n
            count += n
    model.train(was_training)
    return total / count


def linear_probe(train_x, train_y, test_x, test_y, *, Cs=(1e-2, 1e-1, 1.0, 10.0, 100.0),
                 val_fraction: float = 0.2, seed: int = 0, max_iter: int = 1000) -> ProbeResult:
    """Linear probe: standardised frozen features + multinomial logistic regression (sklearn, lbfgs).

    ``C`` (inverse L2 strength) is chosen by accuracy on a stratified ``val_fraction`` split of the
    *training* set (ties: the smallest ``C``); the probe is then refit on the whole training set with
    that ``C`` and scored on the test set. The test set never takes part in the choice. Standardisation
    statistics come from the data each fit sees. The ``C`` path is fit in increasing order, each fit
    warm-started from the previous solution (same optimum, far fewer lbfgs iterations).

    Parameters
    ----------
    train_x, train_y, test_x, test_y
        Features ``(N, D)`` and integer labels ``(N,)``.
    Cs
        Candidate ``C`` values (positive).
    val_fraction
        Share of the training set held out to choose ``C``.
    seed
        Seed of the split.
    max_iter
        lbfgs iteration cap per fit.

    Returns
    -------
    ProbeResult
        ``method="lp"``, chosen ``C``, its validation accuracy, train and test accuracy.
    """
    seed = check_seed(seed)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction!r} is not allowed: use a fraction in (0, 1)")
    if len(Cs) == 0 or any(not c > 0 for c in Cs):
        raise ValueError(f"Cs={Cs!r} is not allowed: use a non-empty list of positive numbers")
    train_x, test_x = np.asarray(train_x, dtype=np.float64), np.asarray(test_x, dtype=np.float64)
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    fit_x, val_x, fit_y, val_y = train_test_split(train_x, train_y, test_size=val_fraction, random_state=seed,
                                                  stratify=train_y)
    Cs = sorted(float(c) for c in Cs)
    scaler = StandardScaler().fit(fit_x)
    fit_z, val_z = scaler.transform(fit_x), scaler.transform(val_x)
    clf = LogisticRegression(max_iter=max_iter, tol=1e-4, warm_start=True, random_state=seed)
    val_accs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the cap is the caller's choice
        for C in Cs:
            val_accs.append(float(clf.set_params(C=C).fit(fit_z, fit_y).score(val_z, val_y)))
        best = int(np.argmax(val_accs))
        scaler = StandardScaler().fit(train_x)
        final = LogisticRegression(C=Cs[best], max_iter=max_iter, tol=1e-4, random_state=seed)
        final.fit(scaler.transform(train_x), train_y)
    return ProbeResult("lp", float(final.score(scaler.transform(test_x), test_y)), val_accs[best],
                       float(final.score(scaler.transform(train_x), train_y)), Cs[best],
                       bool(np.max(final.n_iter_) < max_iter))


def _fit_classifier(forward, params, x, y, *, n_classes, epochs, lr, batch_size, weight_decay, seed, device,
                    amp, train_mode):
    """AdamW + cosine schedule on cross-entropy; batches from a seeded permutation each epoch."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    steps = epochs * math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    gen = torch_generator(seed)
    for _ in range(epochs):
        train_mode(True)
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            if len(idx) < 2:  # BatchNorm needs two rows
                continue
            with _autocast(device, amp):
                logits = forward(x[idx].to(device))
            loss = F.cross_entropy(logits.float(), y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    train_mode(False)


@torch.no_grad()
def _accuracy(forward, x, y, batch_size, device, amp) -> float:
    if len(x) == 0:
        return math.nan
    correct = 0
    with _autocast(device, amp):
        for i in range(0, len(x), batch_size):
            pred = forward(x[i:i + batch_size].to(device)).argmax(-1).cpu()
            correct += int((pred == y[i:i + batch_size]).sum())
    return correct / len(x)


def _labels(y) -> tuple[torch.Tensor, int]:
    y = torch.from_numpy(np.array(y, dtype=np.int64))  # a copy: inputs may be read-only
    return y, int(y.max()) + 1


def bn_linear_probe(train_x, train_y, test_x, test_y, *, epochs: int = 30, lr: float = 1e-3,
                    batch_size: int = 256, weight_decay: float = 0.0, seed: int = 0,
                    device: str | torch.device = "cpu") -> ProbeResult:
    """BN+LP: a non-affine ``BatchNorm1d`` then a linear head on frozen features (MAE's linear probe).

    He et al. (2022, appendix A.2) put a BatchNorm without affine parameters before the linear
    classifier: it standardises features with batch statistics (running averages at test time), which
    matters when feature scales differ a lot. Trained with AdamW + cosine decay, seeded init and order.

    Returns
    -------
    ProbeResult
        ``method="bn_lp"``, train and test accuracy (``val_acc`` NaN: no selection is made).
    """
    seed = check_seed(seed)
    device = torch.device(device)
    x = torch.as_tensor(np.asarray(train_x), dtype=torch.float32)
    xt = torch.as_tensor(np.asarray(test_x), dtype=torch.float32)
    y, n_classes = _labels(train_y)
    yt, _ = _labels(test_y)
    init_seed, order_seed = child_seeds(seed, 2)
    with seeded_init(init_seed):
        head = nn.Sequential(nn.BatchNorm1d(x.shape[1], affine=False), nn.Linear(x.shape[1], n_classes))
    head.to(device)
    _fit_classifier(head, list(head.parameters()), x, y, n_classes=n_classes, epochs=epochs, lr=lr,
                    batch_size=batch_size, weight_decay=weight_decay, seed=order_seed, device=device,
                    amp=False, train_mode=head.train)
    return ProbeResult("bn_lp", _accuracy(head, xt, yt, 1024, device, False), math.nan,
                       _accuracy(head, x, y, 1024, device, False))


def finetune(model: nn.Module, train_images, train_labels, test_images, test_labels, *,
             mode: str = "partial", epochs: int = 3, lr: float = 1e-3, batch_size: int = 128,
             weight_decay: float = 0.05, seed: int = 0, device: str | torch.device = "cpu",
             amp: bool | None = None, return_model: bool = False):
    """Fine-tune a copy of ``model`` with a BN+linear head on ``model.encode``.

    ``mode="partial"``: train the head and the last encoder block's ``qkv`` projection
    (``model.last_qkv``; the partial fine-tuning of "Mask Models are Token Level Contrastive Learners").
    ``mode="full"``: train every parameter. The input model is not modified.

    Returns
    -------
    ProbeResult or (ProbeResult, nn.Module)
        ``method="partial_ft"`` or ``"full_ft"``, train and test accuracy; with ``return_model`` also
        the fine-tuned copy of the encoder.
    """
    if mode not in ("partial", "full"):
        raise ValueError(f"mode={mode!r} is not allowed: use 'partial' or 'full'")
    if mode == "partial" and not hasattr(model, "last_qkv"):
        raise ValueError(f"mode='partial' is not allowed for {type(model).__name__}: it has no last_qkv")
    seed = check_seed(seed)
    device = torch.device(device)
    enc = copy.deepcopy(model).to(device)
    x, xt = images_to_tensor(train_images), images_to_tensor(test_images)
    y, n_classes = _labels(train_labels)
    yt, _ = _labels(test_labels)
    init_seed, order_seed = child_seeds(seed, 2)
    with seeded_init(init_seed):
        d = enc.feature_dim
        head = nn.Sequential(nn.BatchNorm1d(d, affine=False), nn.Linear(d, n_classes))
    head.to(device)
    for p in enc.parameters():
        p.requires_grad_(mode == "full")
    if mode == "partial":
        for p in enc.last_qkv.parameters():
            p.requires_grad_(True)
    params = list(head.parameters()) + [p for p in enc.parameters() if p.requires_grad]

    def forward(xb):
        return head(enc.encode(xb).float())

    def train_mode(flag):
        enc.train(flag)
        head.train(flag)

    _fit_classifier(forward, params, x, y, n_classes=n_classes, epochs=epochs, lr=lr, batch_size=batch_size,
                    weight_decay=weight_decay, seed=order_seed, device=device, amp=amp, train_mode=train_mode)
    result = ProbeResult(f"{mode}_ft", _accuracy(forward, xt, yt, 512, device, amp), math.nan,
                         _accuracy(forward, x, y, 512, device, amp))
    return (result, enc) if return_model else result


def knn_accuracy(train_x, train_y, test_x, test_y, *, k: int = 20, metric: str = "cosine",
                 weights: str = "uniform") -> float:
    """k-nearest-neighbour accuracy on frozen features (sklearn, brute force; majority vote by default).

    The test label is the most common label among the ``k`` training features nearest in ``metric``
    (cosine distance ``1 − xᵀy / (‖x‖‖y‖)`` by default).
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(train_x):
        raise ValueError(f"k={k!r} is not allowed: use an integer in [1, {len(train_x)}]")
    clf = KNeighborsClassifier(n_neighbors=k, metric=metric, algorithm="brute", weights=weights)
    clf.fit(np.asarray(train_x, dtype=np.float64), np.asarray(train_y))
    return float(clf.score(np.asarray(test_x, dtype=np.float64), np.asarray(test_y)))


def singular_values(features, *, center: bool = True, normalize: bool = False) -> np.ndarray:
    """Singular values (descending) of the ``(N, D)`` feature matrix, centred per column by default.

    With ``normalize`` they are divided by their sum (the distribution used by :func:`effective_rank`).
    """
    z = np.asarray(features, dtype=np.float64)
    if z.ndim != 2 or min(z.shape) == 0:
        raise ValueError(f"features of shape {z.shape} are not allowed: use a non-empty (N, D) matrix")
    if center:
        z = z - z.mean(axis=0, keepdims=True)
    s = np.linalg.svd(z, compute_uv=False)
    if normalize:
        total = s.sum()
        s = s / total if total > 0 else s
    return s


def effective_rank(features, *, center: bool = True) -> float:
    """Effective rank (Roy & Vetterli 2007, EUSIPCO, eq. 2-3) of the centred feature matrix.

    .. math:: \\operatorname{erank}(Z) = \\exp\\Big(-\\sum_k p_k \\log p_k\\Big),
              \\qquad p_k = \\sigma_k / \\textstyle\\sum_j \\sigma_j

    with ``σ_k`` the singular values (``0 log 0 = 0``). It lies in ``[1, rank(Z)]``: ``r`` for ``r`` equal
    singular values; dimensional collapse (U-MAE, Zhang, Wang & Wang 2022) lowers it. 0 for a zero matrix.
    """
    s = singular_values(features, center=center)
    if s.sum() <= 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))
