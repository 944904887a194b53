"""The torch solver of the linear probe: sklearn's L2 logistic-regression objective minimised by full-batch
L-BFGS in float64 with an analytic gradient and an exact preconditioning change of variables
(:func:`r2mae_core.evaluate.linear_probe`, ``solver="torch"``)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["SoftmaxRegression", "LBFGS_GTOL", "LBFGS_FTOL"]

LBFGS_GTOL = 1e-6  # max |gradient| in preconditioned coordinates
LBFGS_FTOL = 64 * float(np.finfo(np.float64).eps)  # objective change (sklearn's lbfgs ftol)


class SoftmaxRegression:
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

    def predict(self, theta: torch.Tensor, z: np.ndarray) -> np.ndarray:
        """Labels of standardised rows ``z`` (sklearn's predict rule: the binary logit's sign, else the argmax)."""
        scores = torch.from_numpy(np.asarray(z, dtype=np.float64)).to(self.device) @ theta[:-1] + theta[-1]
        idx = (scores[:, 0] > 0).long() if scores.shape[1] == 1 else scores.argmax(1)
        return self.classes[idx.cpu().numpy()]

    def accuracy(self, theta: torch.Tensor, z: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.predict(theta, z) == np.asarray(y)))

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
        opt = torch.optim.LBFGS([v], lr=1.0, max_iter=max_iter, max_eval=max_eval, tolerance_grad=LBFGS_GTOL,
                                tolerance_change=LBFGS_FTOL, history_size=50, line_search_fn="strong_wolfe")
        opt.step(closure)
        state = opt.state[v]
        capped = state["n_iter"] >= max_iter or state["func_evals"] >= max_eval
        if capped:
            closure()  # the gradient at the returned point decides
            capped = float(v.grad.abs().max()) > LBFGS_GTOL
        return m @ v, not capped
