"""Probes and metrics shared by every section: features, reconstruction loss, linear probe (LP),
BN+LP, partial/full fine-tuning, k-NN accuracy, effective rank and the singular-value spectrum.

Every function is seeded and deterministic on CPU. Hyper-parameters (the LP's ``C``) are chosen on a
validation split carved out of the *training* set; the test set is only ever scored.
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits
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
    extra
        Accuracy of the same fitted probe on further labelled sets (``linear_probe(extra_tests=...)``).
    """

    method: str
    test_acc: float
    val_acc: float
    train_acc: float
    C: float | None = None
    converged: bool | None = None
    extra: dict = field(default_factory=dict)


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
        A masked model; moved to ``device`` and put in eval mode (restored to its previous mode afterwards).
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
    model.to(device).eval()
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


_LP_SOLVERS = ("sklearn", "torch")
_LBFGS_GTOL = 1e-6  # torch solver: max |gradient| in preconditioned coordinates
_LBFGS_FTOL = 64 * float(np.finfo(np.float64).eps)  # torch solver: objective change (sklearn's lbfgs ftol)


def linear_probe(train_x, train_y, test_x, test_y, *, Cs=(1e-2, 1e-1, 1.0, 10.0, 100.0),
                 val_fraction: float = 0.2, seed: int = 0, max_iter: int = 1000,
                 solver: str = "sklearn", extra_tests: dict | None = None,
                 device: str | torch.device = "cpu") -> ProbeResult:
    """Linear probe: standardised frozen features + multinomial logistic regression.

    Each fit minimises sklearn's L2-penalised objective on standardised features ``z_i``, with an
    unpenalised intercept ``b``,

    .. math:: C \\sum_{i=1}^n \\mathrm{CE}(W z_i + b,\\, y_i) + \\tfrac12 \\lVert W\\rVert_F^2
              \\;\\propto\\; \\frac1n \\sum_{i=1}^n \\mathrm{CE}(W z_i + b,\\, y_i)
              + \\frac{\\lVert W\\rVert_F^2}{2 C n},

    with CE the softmax cross-entropy (for two classes, sklearn's single-logit binary loss).
    ``C`` (inverse L2 strength) is chosen by accuracy on a stratified ``val_fraction`` split of the
    *training* set (ties: the smallest ``C``); the probe is then refit on the whole training set with
    that ``C`` and scored on the test set. The test set never takes part in the choice. Standardisation
    statistics come from the data each fit sees. The ``C`` path is fit in increasing order, each fit
    warm-started from the previous solution (same optimum, far fewer L-BFGS iterations).

    Solvers (same objective, split and tie rule; results agree up to the solvers' tolerances):

    * ``"sklearn"``: ``LogisticRegression`` (lbfgs, ``tol=1e-4``); the final refit starts from zero.
      Slow when weak penalties (large ``C``) run to ``max_iter``. Runs with one BLAS thread
      (``threadpoolctl``): two OpenBLAS threads made the whole probe 13× slower on the 2-core machine
      (2000 × 64 ViT features of Fashion-MNIST: 19.4 s against 1.5 s).
    * ``"torch"``: full-batch ``torch.optim.LBFGS`` (strong-Wolfe line search, history 50) in float64 on
      CPU with an analytic gradient (no autograd graph); zero initial point, the final refit warm-started
      from the path solution at the chosen ``C``. L-BFGS runs in coordinates ``v`` with ``[W; b] = M v``,
      ``M = blockdiag((c Σ + λ I)^{-1/2}, c^{-1/2})`` (``Σ`` the feature correlation of the fitting part
      of the split, ``λ = 1/(C n)``, ``c`` the mean softmax curvature ``Σ_k p_k(1 − p_k)/K`` at the
      fit's starting point): an exact change of variables (same optimum) that brings the Hessian closer
      to the identity (10-25× fewer iterations on strongly correlated features). A fit stops when
      ``max |∂f/∂v| ≤ 1e-6`` (``½‖∂f/∂v‖²`` estimates the objective gap left), when ``f`` or the step
      change by less than ``64 ε`` (float64 resolution, sklearn's lbfgs ``ftol``), or at ``max_iter``
      iterations / ``2·max_iter`` evaluations. Runs with one intra-op thread, restored on return (its
      products are small and skinny; OpenMP threads competing for shared cores slowed them by one to two
      orders of magnitude). Deterministic: no randomness besides the split.

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
        L-BFGS iteration cap per fit.
    solver
        ``"sklearn"`` or ``"torch"`` (see above).
    extra_tests
        ``{name: (x, y)}``: further sets scored by the same final probe (e.g. a validation split next to the
        test set: one fit instead of two), returned in ``ProbeResult.extra``.
    device
        Where the torch solver computes (float64 throughout; a GPU runs the same iterations, its sums in
        another order). The sklearn solver always runs on the CPU.

    Returns
    -------
    ProbeResult
        ``method="lp"``, chosen ``C``, its validation accuracy, train and test accuracy; ``converged``:
        the final fit stopped on a tolerance, not on the iteration (torch: or evaluation) cap.

    Raises
    ------
    ValueError
        For an unknown ``solver``, ``val_fraction`` outside (0, 1), empty / non-positive ``Cs``, or
        (torch) a training split with fewer than two classes.
    """
    if solver not in _LP_SOLVERS:
        raise ValueError(f"solver={solver!r} is not allowed: use one of {', '.join(map(repr, _LP_SOLVERS))}")
    seed = check_seed(seed)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction!r} is not allowed: use a fraction in (0, 1)")
    if len(Cs) == 0 or any(not c > 0 for c in Cs):
        raise ValueError(f"Cs={Cs!r} is not allowed: use a non-empty list of positive numbers")
    train_x, test_x = np.asarray(train_x, dtype=np.float64), np.asarray(test_x, dtype=np.float64)
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    seed %= 2**32  # sklearn's random_state range; the 63-bit run seeds fold into it
    fit_x, val_x, fit_y, val_y = train_test_split(train_x, train_y, test_size=val_fraction, random_state=seed,
                                                  stratify=train_y)
    Cs = sorted(float(c) for c in Cs)
    scaler = StandardScaler().fit(fit_x)
    fit_z, val_z = scaler.transform(fit_x), scaler.transform(val_x)
    if solver == "torch":
        return _torch_linear_probe(fit_z, fit_y, val_z, val_y, train_x, train_y, test_x, test_y, Cs, max_iter,
                                   extra_tests or {}, torch.device(device))
    clf = LogisticRegression(max_iter=max_iter, tol=1e-4, warm_start=True, random_state=seed)
    val_accs = []
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)  # the cap is the caller's choice
        for C in Cs:
            val_accs.append(float(clf.set_params(C=C).fit(fit_z, fit_y).score(val_z, val_y)))
        best = int(np.argmax(val_accs))
        scaler = StandardScaler().fit(train_x)
        final = LogisticRegression(C=Cs[best], max_iter=max_iter, tol=1e-4, random_state=seed)
        final.fit(scaler.transform(train_x), train_y)
    extra = {name: float(final.score(scaler.transform(np.asarray(x, dtype=np.float64)), np.asarray(y)))
             for name, (x, y) in (extra_tests or {}).items()}
    return ProbeResult("lp", float(final.score(scaler.transform(test_x), test_y)), val_accs[best],
                       float(final.score(scaler.transform(train_x), train_y)), Cs[best],
                       bool(np.max(final.n_iter_) < max_iter), extra)


def _torch_linear_probe(fit_z, fit_y, val_z, val_y, train_x, train_y, test_x, test_y, Cs, max_iter, extra_tests,
                        device: torch.device):
    """``linear_probe(solver="torch")`` after the split: C path on ``fit``, choice on ``val``, refit.

    Runs with one intra-op thread (restored on return): the products are small and skinny, and OpenMP
    threads competing for shared cores slowed them 3-100× on a busy 2-core machine.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            problem = _SoftmaxRegression(fit_z, fit_y, device)
            corr = torch.linalg.eigh(problem.zt[:-1] @ problem.zt[:-1].T / problem.n)  # preconditioner basis
            theta = problem.zeros()
            path, val_accs = [], []
            for C in Cs:
                theta, _ = problem.fit(C, theta, corr, max_iter)
                path.append(theta)
                val_accs.append(problem.accuracy(theta, val_z, val_y))
            best = int(np.argmax(val_accs))  # first maximum over the increasing Cs: ties go to the smallest C
            scaler = StandardScaler().fit(train_x)
            train_z = scaler.transform(train_x)
            final = _SoftmaxRegression(train_z, train_y, device)
            init = path[best] if np.array_equal(final.classes, problem.classes) else final.zeros()
            theta, converged = final.fit(Cs[best], init, corr, max_iter)  # corr of the fit part: close enough
            extra = {name: final.accuracy(theta, scaler.transform(np.asarray(x, dtype=np.float64)), np.asarray(y))
                     for name, (x, y) in extra_tests.items()}
            return ProbeResult("lp", final.accuracy(theta, scaler.transform(test_x), test_y), val_accs[best],
                               final.accuracy(theta, train_z, train_y), Cs[best], converged, extra)
    finally:
        torch.set_num_threads(threads)


class _SoftmaxRegression:
    """sklearn's L2 logistic-regression objective on standardised ``z`` (``(n, D)``), minimised by torch L-BFGS.

    Parameters are ``theta = [W; b]`` of shape ``(D+1, k)`` (intercept last row), ``k = 1`` for two
    classes (the logit of ``classes[1]``, sklearn's binary model) else ``len(classes)``.
    """

    def __init__(self, z: np.ndarray, y: np.ndarray, device: torch.device | str = "cpu"):
        self.classes = np.unique(y)
        self.n, self.n_classes = len(z), len(self.classes)
        if self.n_classes < 2:
            raise ValueError(f"y has {self.n_classes} class: a linear probe needs at least 2")
        self.device = device = torch.device(device)
        zt = torch.ones(z.shape[1] + 1, self.n, dtype=torch.float64)  # [z, 1]ᵀ: both products stream it
        zt[:-1] = torch.from_numpy(z).T
        self.zt = zt.to(device)
        onehot = F.one_hot(torch.from_numpy(np.searchsorted(self.classes, y)), self.n_classes)
        self.target = onehot.T.to(torch.float64).contiguous().to(device)  # (K, n)
        self._zero_logit = torch.zeros(1, self.n, dtype=torch.float64, device=device)

    def zeros(self) -> torch.Tensor:
        return torch.zeros(len(self.zt), 1 if self.n_classes == 2 else self.n_classes, dtype=torch.float64,
                           device=self.device)

    def log_probs(self, theta: torch.Tensor) -> torch.Tensor:
        """``(K, n)`` log class probabilities."""
        logits = theta.T @ self.zt
        return torch.log_softmax(torch.cat([self._zero_logit, logits]) if self.n_classes == 2 else logits, 0)

    def accuracy(self, theta: torch.Tensor, z: np.ndarray, y: np.ndarray) -> float:
        scores = torch.from_numpy(np.asarray(z, dtype=np.float64)).to(self.device) @ theta[:-1] + theta[-1]
        idx = (scores[:, 0] > 0).long() if scores.shape[1] == 1 else scores.argmax(1)  # sklearn's predict rule
        return float(np.mean(self.classes[idx.cpu().numpy()] == np.asarray(y)))

    def fit(self, C: float, theta: torch.Tensor, corr, max_iter: int) -> tuple[torch.Tensor, bool]:
        """Minimise ``mean CE + ‖W‖²/(2Cn)`` from ``theta``; return the solution and whether it converged.

        L-BFGS runs in ``v = M^{-1} theta``, ``M = blockdiag((c Σ + λ I)^{-1/2}, c^{-1/2})`` with
        ``corr = (e, U)`` the eigendecomposition of ``Σ``, ``λ = 1/(Cn)`` and ``c`` the mean softmax
        curvature at ``theta``. Converged: stopped on a tolerance, not on the iteration/evaluation cap.
        """
        n, k, lam = self.n, self.n_classes, 1.0 / (C * self.n)
        p = self.log_probs(theta).exp()
        curv = max(float((p * (1.0 - p)).sum()) / (n * k), 1e-8)  # (1 - 1/K)/K at zero
        e, u = corr
        s = curv * e.clamp(min=0.0) + lam
        m = torch.zeros(len(theta), len(theta), dtype=torch.float64, device=self.device)
        m_inv = torch.zeros_like(m)
        m[:-1, :-1], m_inv[:-1, :-1] = (u * s.rsqrt()) @ u.T, (u * s.sqrt()) @ u.T
        m[-1, -1], m_inv[-1, -1] = curv ** -0.5, curv ** 0.5
        v = m_inv @ theta

        def closure():
            with torch.no_grad():
                th = m @ v
                logp = self.log_probs(th)
                resid = (logp.exp() - self.target) / n
                grad = self.zt @ (resid[1:] if k == 2 else resid).T
                w = th[:-1]
                grad[:-1] += lam * w
                v.grad = m @ grad  # analytic gradient in the v coordinates; no autograd graph
                return -(logp * self.target).sum() / n + 0.5 * lam * (w * w).sum()

        max_eval = 2 * max_iter
        opt = torch.optim.LBFGS([v], lr=1.0, max_iter=max_iter, max_eval=max_eval, tolerance_grad=_LBFGS_GTOL,
                                tolerance_change=_LBFGS_FTOL, history_size=50, line_search_fn="strong_wolfe")
        opt.step(closure)
        state = opt.state[v]
        capped = state["n_iter"] >= max_iter or state["func_evals"] >= max_eval
        if capped:
            closure()  # the gradient at the returned point decides
            capped = float(v.grad.abs().max()) > _LBFGS_GTOL
        return m @ v, not capped


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
                    device: str | torch.device = "cpu", batch_norm: bool = True,
                    extra_tests: dict | None = None) -> ProbeResult:
    """BN+LP: a non-affine ``BatchNorm1d`` then a linear head on frozen features (MAE's linear probe).

    He et al. (2022, appendix A.2) put a BatchNorm without affine parameters before the linear
    classifier: it standardises features with batch statistics (running averages at test time), which
    matters when feature scales differ a lot. Trained with AdamW + cosine decay, seeded init and order.

    ``batch_norm=False`` drops the BatchNorm and keeps everything else (same linear init, order, optimiser):
    the plain LP on raw features that "Mask Models are Token Level Contrastive Learners" (Table 1) compares with
    BN+LP, so the two differ only by the normalisation (:func:`linear_probe` standardises its inputs).

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
    x = torch.as_tensor(np.asarray(train_x), dtype=torch.float32)
    xt = torch.as_tensor(np.asarray(test_x), dtype=torch.float32)
    y, n_classes = _labels(train_y)
    yt, _ = _labels(test_y)
    init_seed, order_seed = child_seeds(seed, 2)
    with seeded_init(init_seed):
        norm = nn.BatchNorm1d(x.shape[1], affine=False) if batch_norm else nn.Identity()  # no parameters
        head = nn.Sequential(norm, nn.Linear(x.shape[1], n_classes))
    head.to(device)
    _fit_classifier(head, list(head.parameters()), x, y, n_classes=n_classes, epochs=epochs, lr=lr,
                    batch_size=batch_size, weight_decay=weight_decay, seed=order_seed, device=device,
                    amp=False, train_mode=head.train)
    extra = {name: _accuracy(head, torch.as_tensor(np.asarray(ex), dtype=torch.float32), _labels(ey)[0], 1024,
                             device, False) for name, (ex, ey) in (extra_tests or {}).items()}
    return ProbeResult("bn_lp" if batch_norm else "lp_raw", _accuracy(head, xt, yt, 1024, device, False), math.nan,
                       _accuracy(head, x, y, 1024, device, False), extra=extra)


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
                 weights: str = "uniform", device: str | torch.device | None = None) -> float:
    """k-nearest-neighbour accuracy on frozen features (brute force; majority vote by default).

    The test label is the most common label among the ``k`` training features nearest in ``metric``
    (cosine distance ``1 − xᵀy / (‖x‖‖y‖)`` by default); a tie between labels goes to the smallest label.

    ``device=None`` (or a CPU device) uses scikit-learn's brute-force classifier in float64. A CUDA ``device``
    computes the cosine similarities on it in float32, in blocks of :data:`KNN_BLOCK` test rows, with
    ``torch.topk`` and a label count per row (uniform weights, cosine metric only): the same rule, so the
    accuracy is the CPU one up to neighbours whose similarities agree to float32 rounding.
    """
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= len(train_x):
        raise ValueError(f"k={k!r} is not allowed: use an integer in [1, {len(train_x)}]")
    if device is not None and torch.device(device).type != "cpu":
        if metric != "cosine" or weights != "uniform":
            raise ValueError(f"metric={metric!r}, weights={weights!r} are not allowed on device={device!s}: "
                             "the device k-NN is cosine with uniform weights")
        return _torch_knn_accuracy(train_x, train_y, test_x, test_y, k, torch.device(device))
    clf = KNeighborsClassifier(n_neighbors=k, metric=metric, algorithm="brute", weights=weights)
    clf.fit(np.asarray(train_x, dtype=np.float64), np.asarray(train_y))
    return float(clf.score(np.asarray(test_x, dtype=np.float64), np.asarray(test_y)))


#: Test rows per similarity block of the device k-NN (a 4096 × 50 000 float32 block is 0.8 GB).
KNN_BLOCK = 4096


def _torch_knn_accuracy(train_x, train_y, test_x, test_y, k: int, device: torch.device) -> float:
    """Cosine k-NN with a uniform vote on ``device`` (:func:`knn_accuracy`)."""
    classes, codes = np.unique(np.concatenate([np.asarray(train_y), np.asarray(test_y)]), return_inverse=True)
    y_tr = torch.as_tensor(codes[: len(train_y)], device=device)
    y_te = torch.as_tensor(codes[len(train_y):], device=device)
    x_tr = F.normalize(torch.as_tensor(np.asarray(train_x, dtype=np.float32), device=device), dim=1)
    x_te = F.normalize(torch.as_tensor(np.asarray(test_x, dtype=np.float32), device=device), dim=1)
    correct = 0
    for start in range(0, len(x_te), KNN_BLOCK):
        nearest = (x_te[start:start + KNN_BLOCK] @ x_tr.T).topk(k, dim=1).indices
        votes = F.one_hot(y_tr[nearest], len(classes)).sum(dim=1)
        correct += int((votes.argmax(dim=1) == y_te[start:start + KNN_BLOCK]).sum())
    return correct / len(x_te)


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
