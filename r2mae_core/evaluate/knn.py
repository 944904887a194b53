"""k-nearest-neighbour accuracy on frozen features (scikit-learn on the CPU, blocked cosine top-k on a GPU)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.neighbors import KNeighborsClassifier

from ..validation import check_int

__all__ = ["knn_accuracy", "KNN_BLOCK"]


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
    check_int("k", k, 1, len(train_x))
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

