"""The linear probe of every section: standardised frozen features + L2 multinomial logistic regression, its
inverse strength ``C`` chosen on validation data, never on test."""

from __future__ import annotations

import contextlib
import copy
import warnings

import numpy as np
import torch
from scipy import sparse
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from .._rng import check_seed
from ._common import ProbeResult, check_metrics, score, scores
from .lbfgs import SoftmaxRegression

__all__ = ["linear_probe", "SOLVERS", "SKLEARN_TOL"]

SOLVERS = ("sklearn", "torch")
SKLEARN_TOL = 1e-4  # sklearn solver: lbfgs tolerance (its default)


def linear_probe(train_x, train_y, test_x, test_y, *, val=None, Cs=(1e-2, 1e-1, 1.0, 10.0, 100.0),
                 val_fraction: float = 0.2, seed: int = 0, max_iter: int = 1000, solver: str = "sklearn",
                 select: str = "acc", metrics=("acc",), standardize: bool = True, extra_tests: dict | None = None,
                 device: str | torch.device = "cpu") -> ProbeResult:
    """Linear probe: standardised frozen features + multinomial logistic regression, ``C`` chosen on validation.

    Each fit minimises sklearn's L2-penalised objective on standardised features ``z_i``, with an
    unpenalised intercept ``b``,

    .. math:: C \\sum_{i=1}^n \\mathrm{CE}(W z_i + b,\\, y_i) + \\tfrac12 \\lVert W\\rVert_F^2
              \\;\\propto\\; \\frac1n \\sum_{i=1}^n \\mathrm{CE}(W z_i + b,\\, y_i)
              + \\frac{\\lVert W\\rVert_F^2}{2 C n},

    with CE the softmax cross-entropy (for two classes, sklearn's single-logit binary loss). The ``C`` path
    is fit in increasing order, each fit warm-started from the previous solution (same optimum, far fewer
    L-BFGS iterations); ``C`` is the first (smallest) maximiser of the validation ``select`` metric.

    Validation (the test set never takes part in the choice):

    * ``val=None``: a ``val_fraction`` split of the *training* set (stratified when every class has two rows,
      seeded by ``seed``) chooses ``C``; the probe is then refit on the whole training set with that ``C``.
    * ``val=(x, y)``: a validation set of its own (e.g. held-out documents) chooses ``C``; the path is fit on the
      whole training set, so the chosen fit is the final probe (no refit).

    Standardisation statistics come from the data each fit sees (``standardize=False``: raw features, e.g.
    sparse TF-IDF or k-mer counts, which only the sklearn solver takes).

    Solvers (same objective, split and tie rule; results agree up to the solvers' tolerances):

    * ``"sklearn"``: ``LogisticRegression`` (lbfgs, ``tol=1e-4``); the final refit starts from zero. Runs with one
      BLAS thread (``threadpoolctl``): two OpenBLAS threads made the whole probe 13× slower on the 2-core machine
      (2000 × 64 ViT features of Fashion-MNIST: 19.4 s against 1.5 s).
    * ``"torch"``: full-batch ``torch.optim.LBFGS`` (strong-Wolfe line search, history 50) in float64 with an
      analytic gradient (:class:`r2mae_core.evaluate.lbfgs.SoftmaxRegression`); zero initial point, the final
      refit warm-started from the path solution at the chosen ``C``. L-BFGS runs in coordinates ``v`` with
      ``[W; b] = M v``, ``M = blockdiag((c Σ + λ I)^{-1/2}, c^{-1/2})`` (``Σ`` the feature correlation of the
      path's data, ``λ = 1/(C n)``, ``c`` the mean softmax curvature ``Σ_k p_k(1 − p_k)/K`` at the fit's
      starting point): an exact change of variables (same optimum) that brings the Hessian closer to the
      identity (10-25× fewer iterations on strongly correlated features). A fit stops when
      ``max |∂f/∂v| ≤ 1e-6``, when ``f`` or the step change by less than ``64 ε`` (sklearn's lbfgs ``ftol``), or
      at ``max_iter`` iterations / ``2·max_iter`` evaluations. Runs with one intra-op thread, restored on return
      (its products are small and skinny; OpenMP threads competing for shared cores slowed them by one to two
      orders of magnitude). For large inputs and GPUs (``device``).

    Parameters
    ----------
    train_x, train_y, test_x, test_y
        Features ``(N, D)`` (dense; sparse with ``standardize=False`` and the sklearn solver) and labels ``(N,)``.
    val
        ``(x, y)``: the validation set that chooses ``C``; ``None``: a split of the training set.
    Cs
        Candidate ``C`` values (positive).
    val_fraction, seed
        Share of the training set held out to choose ``C`` (``val=None``) and the seed of that split.
    max_iter
        L-BFGS iteration cap per fit.
    solver
        ``"sklearn"`` or ``"torch"`` (see above).
    select
        The metric that chooses ``C`` (:data:`r2mae_core.evaluate.METRICS`: ``acc``, ``macro_f1``, ``f1`` of the
        positive class 1, ``mcc``).
    metrics
        The metrics reported in ``ProbeResult.scores`` for ``val``, ``test`` and each ``extra_tests`` set.
    standardize
        Standardise features with the statistics of the fitting data.
    extra_tests
        ``{name: (x, y)}``: further sets scored by the same final probe (accuracy in ``ProbeResult.extra``).
    device
        Where the torch solver computes (float64 throughout). The sklearn solver always runs on the CPU.

    Returns
    -------
    ProbeResult
        ``method="lp"``, chosen ``C``, validation / train / test accuracy, ``scores`` and ``converged`` (the
        final fit stopped on a tolerance, not on the iteration or evaluation cap).

    Raises
    ------
    ValueError
        For an unknown ``solver`` or metric, ``val_fraction`` outside (0, 1), empty / non-positive ``Cs``, sparse
        features with ``standardize`` or the torch solver, or (torch) a training set with fewer than two classes.
    """
    metrics = _check(solver, select, metrics, val_fraction, Cs, train_x, standardize=standardize)
    seed = check_seed(seed) % 2**32  # sklearn's random_state range; the 63-bit run seeds fold into it
    train_x, test_x = _features(train_x), _features(test_x)
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    if val is None:
        counts = np.unique(train_y, return_counts=True)[1]
        fit_x, hold_x, fit_y, hold_y = train_test_split(train_x, train_y, test_size=val_fraction, random_state=seed,
                                                        stratify=train_y if counts.min() >= 2 else None)
    else:
        fit_x, fit_y, hold_x, hold_y = train_x, train_y, _features(val[0]), np.asarray(val[1])
    Cs = sorted(float(c) for c in Cs)
    fit = _SOLVER_FITS[solver]
    with _one_thread(), warnings.catch_warnings(), threadpool_limits(1), torch.no_grad():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the cap is the caller's choice
        path = fit(fit_x, fit_y, Cs, max_iter=max_iter, seed=seed, standardize=standardize, device=device)
        hold_preds = [predict(hold_x) for predict, _, _ in path]
        chosen = [score(hold_y, p, select) for p in hold_preds]
        best = int(np.argmax(chosen))  # first maximum over the increasing Cs: ties go to the smallest C
        if val is None:
            predict, converged, _ = fit(train_x, train_y, [Cs[best]], max_iter=max_iter, seed=seed,
                                        standardize=standardize, device=device, init=path[best][2])[0]
        else:
            predict, converged, _ = path[best]
        sets = {"test": (test_x, test_y), **{k: (_features(x), np.asarray(y)) for k, (x, y) in
                                             (extra_tests or {}).items()}}
        preds = {name: predict(x) for name, (x, _) in sets.items()}
        train_acc = score(train_y, predict(train_x), "acc")
    out = scores("val", hold_y, hold_preds[best], metrics)
    for name, (_, y) in sets.items():
        out.update(scores(name, y, preds[name], metrics))
    extra = {name: score(y, preds[name], "acc") for name, (_, y) in sets.items() if name != "test"}
    return ProbeResult("lp", score(test_y, preds["test"], "acc"), score(hold_y, hold_preds[best], "acc"), train_acc,
                       Cs[best], bool(converged), extra, out)


def _check(solver, select, metrics, val_fraction, Cs, train_x, *, standardize) -> tuple[str, ...]:
    if solver not in SOLVERS:
        raise ValueError(f"solver={solver!r} is not allowed: use one of {', '.join(map(repr, SOLVERS))}")
    metrics = check_metrics(select, metrics)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction!r} is not allowed: use a fraction in (0, 1)")
    if len(Cs) == 0 or any(not c > 0 for c in Cs):
        raise ValueError(f"Cs={Cs!r} is not allowed: use a non-empty list of positive numbers")
    if sparse.issparse(train_x) and (standardize or solver != "sklearn"):
        raise ValueError(f"sparse features with solver={solver!r}, standardize={standardize!r} are not allowed: "
                         "use solver='sklearn', standardize=False")
    return metrics


def _features(x):
    return x.tocsr().astype(np.float64) if sparse.issparse(x) else np.asarray(x, dtype=np.float64)


def _standardizer(x, standardize: bool):
    if not standardize:
        return lambda z: z
    return StandardScaler().fit(x).transform


def _sklearn_fits(x, y, Cs, *, max_iter, seed, standardize, device, init=None) -> list[tuple]:
    """``(predict, converged, None)`` per ``C`` of ``LogisticRegression`` (lbfgs) fit along ``Cs``, warm-started
    (a single ``C`` starts from zero)."""
    transform = _standardizer(x, standardize)
    z = transform(x)
    clf = LogisticRegression(max_iter=max_iter, tol=SKLEARN_TOL, warm_start=True, random_state=seed)
    out = []
    for C in Cs:
        fitted = copy.deepcopy(clf.set_params(C=C).fit(z, y))
        out.append((lambda q, m=fitted: m.predict(transform(q)), bool(np.max(fitted.n_iter_) < max_iter), None))
    return out


def _torch_fits(x, y, Cs, *, max_iter, seed, standardize, device, init=None) -> list[tuple]:
    """``(predict, converged, (theta, corr, classes))`` per ``C`` of :class:`SoftmaxRegression` along ``Cs``;
    ``init`` (a path entry's third item) warm-starts a refit from that solution with that preconditioner basis."""
    transform = _standardizer(x, standardize)
    problem = SoftmaxRegression(transform(x), y, torch.device(device))
    if init is None:
        corr = torch.linalg.eigh(problem.zt[:-1] @ problem.zt[:-1].T / problem.n)  # preconditioner basis
        theta = problem.zeros()
    else:
        theta, corr, classes = init
        theta = theta if np.array_equal(classes, problem.classes) else problem.zeros()
    out = []
    for C in Cs:
        theta, converged = problem.fit(C, theta, corr, max_iter)
        out.append((lambda q, t=theta: problem.predict(t, transform(q)), converged, (theta, corr, problem.classes)))
    return out


@contextlib.contextmanager
def _one_thread():
    """torch with one intra-op thread, restored on exit (errors included)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


_SOLVER_FITS = {"sklearn": _sklearn_fits, "torch": _torch_fits}
