"""Masked-token evaluation of a token model (03 language, 04 DNA): loss and accuracy on held-out text."""

from __future__ import annotations

import numpy as np
import torch

from .._rng import check_seed, torch_generator

__all__ = ["mlm_eval"]


@torch.no_grad()
def mlm_eval(model, ids: np.ndarray, ratio: float, step, *, seed: int, device="cpu",
             batch_size: int = 256) -> tuple[float, float]:
    """Masked-token cross-entropy (nats) and accuracy over the corrupted tokens of ``ids`` at ``ratio``.

    ``step`` is the model's MLM step (:class:`r2mae_core.mlm.MLMStep`): it masks exactly ``round(ratio · n)`` of
    each row's eligible tokens and corrupts them 80/10/10. The masks come from the generator seeded with
    ``seed + round(1000 · ratio)``, so every model sees the same masks at a ratio. Loss and accuracy are averaged
    over all corrupted tokens:

    .. math:: \\mathcal L = \\sum_b \\mathcal L_b\\, m_b / \\sum_b m_b, \\qquad
              \\mathrm{acc} = \\#\\{\\arg\\max p_t = x_t\\} / \\sum_b m_b

    with ``m_b`` the corrupted tokens of batch ``b`` (0, 0 when nothing is masked).
    """
    if not 0.0 < float(ratio) < 1.0:
        raise ValueError(f"ratio={ratio!r} is not allowed: use a mask ratio in (0, 1)")
    gen = torch_generator(check_seed(seed) + int(round(ratio * 1000)))
    total, correct, n = 0.0, 0, 0
    for i in range(0, len(ids), batch_size):
        x = torch.as_tensor(np.asarray(ids[i:i + batch_size]), dtype=torch.long)
        out = step(model, x.to(device), torch.full((x.shape[0],), float(ratio), dtype=torch.float64), gen)
        m = int(out.mask.sum())
        total += float(out.loss) * m
        correct += int((out.pred.argmax(-1).cpu() == x[out.mask.cpu()]).sum())
        n += m
    return total / max(n, 1), correct / max(n, 1)
