"""Mask modelling as low-rank recovery and spectral clustering (section 06).

Analyses of "Mask Models are Token Level Contrastive Learners" (NeurIPS 2023 submission; cited below as
*the 2023 paper*; its full text is not available to us, the formulas follow its public description):

- :func:`component_distances`: how well each SVD component of the masked-patch matrix is recovered
  (its Fig. 2), on matrices from :func:`masked_patch_matrices`.
- :func:`patch_kmeans`, :func:`patch_object_mask`, :func:`foreground_agreement`: k-means on encoder patch
  features as zero-shot segmentation (its Fig. 3), with a number for Fashion-MNIST's object/background split.
- :func:`spectral_bound`: the inequality of its Theorem 4.3, ``‖MMᵀ − NNᵀ‖²_F ≤ ‖M − N‖²_F ‖M + N‖²_F``.
- :func:`normalized_adjacency_embedding`, :func:`spectral_embedding_clusters`, :func:`cluster_nmi`: spectral
  clustering of patches (Ng, Jordan & Weiss 2001) compared with k-means on MAE features.

Every function is deterministic given its seed and computes in float64.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from . import masking
from ._rng import check_seed, torch_generator
from .losses import normalize_pixels
from .models.blocks import images_to_tensor, patchify
from .validation import check_int

__all__ = ["component_distances", "MaskedPatches", "masked_patch_matrices", "patch_kmeans", "patch_object_mask",
           "foreground_agreement", "SpectralBound", "spectral_bound", "SpectralEmbedding",
           "normalized_adjacency_embedding", "spectral_embedding_clusters", "cluster_nmi"]


# ---------------------------------------------------------------------------------------------- checks
def _finite_matrix(name: str, x, ndim: int | tuple[int, ...] = 2) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    a = np.asarray(x, dtype=np.float64)
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if a.ndim not in allowed or a.size == 0:
        raise ValueError(f"{name} of shape {a.shape} is not allowed: use a non-empty array with "
                         f"{' or '.join(map(str, allowed))} dimensions")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} is not allowed: it has NaN or infinite entries")
    return a


# ------------------------------------------------------------------------------- Fig. 2: SVD components
def component_distances(X0, X0_hat, k: int = 5, *, min_energy: float = 0.0) -> np.ndarray:
    r"""Relative distance between the i-th SVD components of a matrix and of its reconstruction (Fig. 2).

    With the SVDs :math:`X_0 = \sum_i \sigma_i u_i v_i^\top` and :math:`\hat X_0 = \sum_i \hat\sigma_i
    \hat u_i \hat v_i^\top` (singular values in decreasing order),

    .. math:: d_i = \frac{\lVert \sigma_i u_i v_i^\top - \hat\sigma_i \hat u_i \hat v_i^\top \rVert_F^2}
                         {\lVert \sigma_i u_i v_i^\top \rVert_F^2}
                  = \frac{\sigma_i^2 + \hat\sigma_i^2 - 2\sigma_i\hat\sigma_i (u_i^\top\hat u_i)(v_i^\top\hat v_i)}
                         {\sigma_i^2},
              \qquad i = 1, \dots, k.

    This is the quantity of the 2023 paper's Fig. 2 (its claim: :math:`d_i` grows with ``i``, faster at higher
    mask ratios, i.e. reconstructions keep the leading components). ``d_i = 0`` for a perfect component,
    ``1`` when the reconstruction has no such component (:math:`\hat\sigma_i = 0`), up to 4 when it is the
    opposite rank-one matrix.

    Sign ambiguity: an SVD determines :math:`(u_i, v_i)` only up to a common sign; the rank-one product
    :math:`u_i v_i^\top` is invariant under :math:`(u_i, v_i) \to (-u_i, -v_i)`, so :math:`d_i` needs no sign
    alignment. Repeated singular values leave the components themselves undetermined (any rotation within the
    singular subspace); :math:`d_i` is then not meaningful for those ``i`` (never the case for real images).

    Parameters
    ----------
    X0, X0_hat
        Same-shape ``(m, n)`` matrices: the original masked patches (rows) × pixels and their reconstruction
        (e.g. one image's ``targets`` and ``preds`` from :func:`masked_patch_matrices`), or ``(N, m, n)``
        stacks of ``N`` such pairs (each factorised on its own).
    k
        Number of leading components.
    min_energy
        Components carrying less than this share of the energy, :math:`\sigma_i^2 < \text{min\_energy}
        \sum_j \sigma_j^2`, are NaN (default 0: only numerically zero ones). The relative distance divides by
        :math:`\sigma_i^2`, so a component at the noise floor (e.g. a masked-patch matrix of rank 4 asked for
        its 5th component) gives arbitrarily large values that say nothing about the reconstruction.

    Returns
    -------
    numpy.ndarray
        ``(k,)`` float64 (``(N, k)`` for stacks). Entries ``i > min(m, n)`` (no such component) and those with
        :math:`\sigma_i = 0` or below ``min_energy`` (the relative distance is undefined) are NaN.
    """
    X0 = _finite_matrix("X0", X0, (2, 3))
    X0_hat = _finite_matrix("X0_hat", X0_hat, (2, 3))
    if X0.shape != X0_hat.shape:
        raise ValueError(f"X0_hat of shape {X0_hat.shape} is not allowed: it must have X0's shape {X0.shape}")
    k = check_int("k", k, 1)
    if isinstance(min_energy, bool) or not isinstance(min_energy, int | float) or not 0.0 <= min_energy < 1.0:
        raise ValueError(f"min_energy={min_energy!r} is not allowed: use a share of the energy in [0, 1)")
    if X0.ndim == 3:
        return np.stack([component_distances(a, b, k, min_energy=min_energy) for a, b in zip(X0, X0_hat,
                                                                                             strict=True)])
    U, s, Vt = np.linalg.svd(X0, full_matrices=False)
    Uh, sh, Vht = np.linalg.svd(X0_hat, full_matrices=False)
    out = np.full(k, np.nan)
    tiny = np.finfo(np.float64).eps * max(s[0], 1e-300) * max(X0.shape)  # numerical rank cut-off
    for i in range(min(k, len(s))):
        if s[i] <= tiny or s[i] ** 2 < min_energy * np.sum(s * s):
            continue
        # explicit rank-one difference: exact 0 for identical inputs (the closed form above would round)
        diff = s[i] * np.outer(U[:, i], Vt[i]) - sh[i] * np.outer(Uh[:, i], Vht[i])
        out[i] = np.sum(diff * diff) / s[i] ** 2
    return out


class MaskedPatches(NamedTuple):
    """Masked-patch matrices of a set of images (one seeded mask per image).

    Attributes
    ----------
    targets, preds
        ``(N, M, P)`` float32: for image ``n``, ``targets[n]`` is its ``M`` masked patches (rows, in patch order)
        × ``P`` pixels and ``preds[n]`` the model's reconstruction of them, in the units of the loss (per-patch
        normalised pixels if the model uses ``norm_pix``).
    mask
        ``(N, L)`` bool, ``True`` = masked; ``mask[n].sum() == M`` for every image.
    """

    targets: np.ndarray
    preds: np.ndarray
    mask: np.ndarray


@torch.no_grad()
def masked_patch_matrices(model: torch.nn.Module, images, ratio: float, *, seed: int, batch_size: int = 256,
                          device: str | torch.device = "cpu") -> MaskedPatches:
    r"""Per image, the (masked patches × pixels) matrices :math:`X_0` and :math:`\hat X_0` of the 2023 paper's Fig. 2.

    Every image gets an exact-count random subset mask of ``round(ratio · L)`` patches
    (:func:`r2mae_core.masking.random_subset_mask`, one ``(N, L)`` draw from ``seed``, so the masks do not
    depend on ``batch_size`` and every model given the same seed sees the same masks: paired comparisons).
    The model reconstructs every patch from the visible ones (``forward(x, mask).pred``); the rows of the
    masked patches are kept.

    Parameters
    ----------
    model
        A masked image model with ``config.patch``, ``num_patches`` and ``forward(x, mask) -> MAEOutput``
        (ViT/CNN/MLP-MAE); put in eval mode and restored afterwards.
    images
        uint8 ``(N, H, W)``/``(N, C, H, W)`` or float images (``models.blocks.images_to_tensor``).
    ratio
        Mask ratio in (0, 1).
    seed
        Seed of the masks.
    batch_size, device
        Batching of the forward passes.

    Returns
    -------
    MaskedPatches
        ``targets``, ``preds`` ``(N, M, P)`` and ``mask`` ``(N, L)``.
    """
    if isinstance(ratio, bool) or not isinstance(ratio, int | float | np.integer | np.floating) \
            or not 0.0 < float(ratio) < 1.0:
        raise ValueError(f"ratio={ratio!r} is not allowed: use a mask ratio in (0, 1)")
    patch = getattr(getattr(model, "config", None), "patch", None)
    if patch is None or not hasattr(model, "num_patches"):
        raise ValueError(f"model={type(model).__name__} is not allowed: use a masked image model with "
                         "config.patch and num_patches (ViT/CNN/MLP-MAE)")
    batch_size = check_int("batch_size", batch_size, 1)
    x = images_to_tensor(images)
    L = int(model.num_patches)
    mask = masking.random_subset_mask(float(ratio), L, generator=torch_generator(check_seed(seed)),
                                      batch_size=len(x)).mask  # (N, L)
    device = torch.device(device)
    was_training = model.training
    model.eval()
    preds, targets = [], []
    try:
        for i in range(0, len(x), batch_size):
            xb, mb = x[i:i + batch_size], mask[i:i + batch_size]
            out = model(xb.to(device), mb.to(device))
            target = patchify(xb, patch)  # (b, L, P)
            if getattr(model.config, "norm_pix", False):
                target = normalize_pixels(target)
            n_mask = int(mb[0].sum())
            preds.append(out.pred.float().cpu()[mb].reshape(len(xb), n_mask, -1))  # (b, M, P)
            targets.append(target[mb].reshape(len(xb), n_mask, -1))
    finally:
        model.train(was_training)
    return MaskedPatches(torch.cat(targets).numpy(), torch.cat(preds).numpy(), mask.numpy())


# ------------------------------------------------------------------ Fig. 3: k-means zero-shot segmentation
def patch_kmeans(features, k: int, *, seed: int, n_init: int = 10) -> np.ndarray:
    """k-means on one image's patch features: zero-shot segmentation (the 2023 paper's Fig. 3).

    Minimises :math:`\\sum_l \\lVert f_l - c_{z_l} \\rVert^2` over centroids ``c`` and labels ``z``
    (``sklearn.cluster.KMeans``, k-means++ init, best of ``n_init`` restarts, ``random_state=seed``).

    Parameters
    ----------
    features
        ``(L, D)`` patch features of one image (e.g. ``encode_tokens(x)[n]``), or ``(N, L, D)`` for ``N`` images
        clustered one at a time.
    k
        Number of clusters, ``2 <= k <= L``.
    seed, n_init
        k-means seed and restarts.

    Returns
    -------
    numpy.ndarray
        ``(L,)`` (or ``(N, L)``) int labels in ``0..k-1``; cluster ids are arbitrary (compare with
        :func:`foreground_agreement` or :func:`cluster_nmi`, both invariant to relabelling).
    """
    f = _finite_matrix("features", features, (2, 3))
    if f.ndim == 3:
        return np.stack([patch_kmeans(fi, k, seed=seed, n_init=n_init) for fi in f])
    k = check_int("k", k, 2)
    if k > len(f):
        raise ValueError(f"k={k} is not allowed: use at most L={len(f)} clusters (one per patch)")
    km = KMeans(n_clusters=k, n_init=check_int("n_init", n_init, 1), random_state=check_seed(seed))
    return km.fit_predict(f).astype(np.int64)


def patch_object_mask(images, patch: int, *, threshold: float = 0.0, min_fraction: float = 0.5) -> np.ndarray:
    """Which patches are on the object: at least ``min_fraction`` of their pixels exceed ``threshold``.

    A pixel is object when any channel is ``> threshold`` in the [0, 1] units of
    ``models.blocks.images_to_tensor`` (uint8 / 255). Fashion-MNIST's background is exactly 0, so the default
    ``threshold=0`` separates object from background; a patch is object when the object covers at least half of
    it (``min_fraction=0.5``; use a small value such as ``1e-9`` for "any object pixel").

    Parameters
    ----------
    images
        ``(H, W)``, ``(C, H, W)`` one image, or ``(N, H, W)``/``(N, C, H, W)``; 3-D input is read as a batch
        of single-channel images.
    patch
        Patch side (dividing ``H`` and ``W``).

    Returns
    -------
    numpy.ndarray
        ``(L,)`` bool for one 2-D image, ``(N, L)`` otherwise, in :func:`models.blocks.patchify` order.
    """
    patch = check_int("patch", patch, 1)
    if not 0.0 < float(min_fraction) <= 1.0:
        raise ValueError(f"min_fraction={min_fraction!r} is not allowed: use a fraction in (0, 1]")
    single = np.ndim(images) == 2
    x = images_to_tensor(np.asarray(images)[None] if single else images)  # (N, C, H, W)
    H, W = x.shape[-2:]
    if H % patch or W % patch:
        raise ValueError(f"patch={patch} is not allowed: the image side {H}x{W} must be divisible by it")
    obj = (x > float(threshold)).any(dim=1, keepdim=True).float()  # (N, 1, H, W)
    frac = patchify(obj, patch).mean(dim=-1)  # (N, L)
    out = (frac >= float(min_fraction)).numpy()
    return out[0] if single else out


def _best_iou(labels: np.ndarray, obj: np.ndarray) -> float:
    # IoU(S) = Σ_{c∈S} f_c / (F + Σ_{c∈S} b_c): a ratio of linear functions of the assignment, maximised by a
    # prefix of the clusters sorted by f_c / b_c (Dinkelbach: include c iff f_c − λ b_c > 0), so try each prefix.
    F = int(obj.sum())
    if F == 0:
        return float("nan")
    ids = np.unique(labels)
    f = np.array([np.sum(obj[labels == c]) for c in ids], dtype=np.float64)
    b = np.array([np.sum(~obj[labels == c]) for c in ids], dtype=np.float64)
    ratio = np.where(b > 0, f / np.where(b > 0, b, 1.0), np.inf)  # pure-object clusters first
    order = np.argsort(-ratio, kind="stable")
    return float(np.max(np.cumsum(f[order]) / (F + np.cumsum(b[order]))))


def foreground_agreement(labels, images, patch: int, *, threshold: float = 0.0, min_fraction: float = 0.5,
                         metric: str = "iou"):
    r"""How well patch clusters segment the object: best cluster → {object, background} assignment.

    Every cluster is assigned to *object* or *background* (whole clusters, :math:`2^k` choices) and the best
    assignment is scored against :func:`patch_object_mask` (a number for the 2023 paper's Fig. 3 on
    Fashion-MNIST, whose background is exactly 0):

    - ``"iou"`` (default): object IoU :math:`\max_S |O \cap \cup_{c\in S} C_c| / |O \cup \cup_{c\in S} C_c|`.
      Preferred because it scores the object only: pixel accuracy is dominated by whichever class covers more
      patches and its "assign everything to background" floor changes from image to image (a sandal is
      mostly background, a pullover mostly object). Found exactly in :math:`O(k \log k)`: the best ``S`` is a
      prefix of the clusters sorted by object/background count ratio.
    - ``"accuracy"``: best-assignment patch accuracy :math:`\frac1L\sum_c \max(|C_c\cap O|, |C_c\setminus O|)`
      (each cluster takes its majority class).

    Both can only grow with ``k`` (a finer partition never scores worse, ``k = L`` scores 1): compare methods at
    equal ``k`` and against the ``k = 1`` baseline ``foreground_agreement(np.zeros(L, int), ...)``, which is
    the object fraction :math:`|O|/L` for IoU and :math:`\max(|O|, L-|O|)/L` for accuracy.

    Parameters
    ----------
    labels
        ``(L,)`` cluster labels of one image or ``(N, L)`` of ``N`` images (:func:`patch_kmeans`).
    images
        The image(s): ``(H, W)``/``(C, H, W)`` for ``(L,)`` labels; ``(N, H, W)``/``(N, C, H, W)`` for ``(N, L)``.
    patch
        Patch side.
    threshold, min_fraction
        Object pixels and object patches, see :func:`patch_object_mask`.
    metric
        ``"iou"`` or ``"accuracy"``.

    Returns
    -------
    float or numpy.ndarray
        One number in [0, 1] per image (``(N,)`` for batched labels). IoU is NaN for an image without object
        patches.
    """
    if metric not in ("iou", "accuracy"):
        raise ValueError(f"metric={metric!r} is not allowed: use 'iou' or 'accuracy'")
    lab = np.asarray(labels)
    if lab.ndim not in (1, 2) or lab.size == 0 or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels of shape {lab.shape} and dtype {lab.dtype} are not allowed: use integer "
                         "(L,) or (N, L) cluster labels")
    imgs = np.asarray(images)
    if lab.ndim == 1 and imgs.ndim not in (2, 3):
        raise ValueError(f"images of shape {imgs.shape} are not allowed with (L,) labels: use one (H, W) or "
                         "(C, H, W) image")
    # one image -> a batch of one: (H, W) -> (1, H, W) single-channel, (C, H, W) -> (1, C, H, W)
    batch = imgs[None] if lab.ndim == 1 else imgs
    obj = patch_object_mask(batch, patch, threshold=threshold, min_fraction=min_fraction)
    lab2 = lab[None] if lab.ndim == 1 else lab
    if obj.shape != lab2.shape:
        raise ValueError(f"labels of shape {lab.shape} are not allowed: the images give {obj.shape[-1]} patches "
                         f"per image ({obj.shape[0]} images)")
    scores = np.empty(len(lab2))
    for n, (ln, on) in enumerate(zip(lab2, obj, strict=True)):
        if metric == "iou":
            scores[n] = _best_iou(ln, on)
        else:
            scores[n] = sum(max(np.sum(on[ln == c]), np.sum(~on[ln == c])) for c in np.unique(ln)) / len(ln)
    return float(scores[0]) if lab.ndim == 1 else scores


# ------------------------------------------------------------------------------ Theorem 4.3: the bound
class SpectralBound(NamedTuple):
    """Both sides of Theorem 4.3's inequality (arrays over leading batch axes, floats for 2-D input).

    ``lhs = ‖MMᵀ − NNᵀ‖²_F``, ``rhs = ‖M − N‖²_F ‖M + N‖²_F``, ``ratio = lhs / rhs`` in [0, 1] (NaN when
    ``rhs = 0``, i.e. ``M = N`` or ``M = −N``, where ``lhs = 0`` too).
    """

    lhs: float | np.ndarray
    rhs: float | np.ndarray
    ratio: float | np.ndarray

    def holds(self, rtol: float = 1e-9) -> bool:
        """Whether ``lhs <= rhs (1 + rtol)`` everywhere (float64 rounding allowance)."""
        return bool(np.all(np.asarray(self.lhs) <= np.asarray(self.rhs) * (1.0 + rtol)))


def spectral_bound(M, N) -> SpectralBound:
    r"""Both sides of the spectral contrastive bound, Theorem 4.3 of the 2023 paper.

    .. math:: \lVert MM^\top - NN^\top \rVert_F^2 \;\le\; \lVert M - N \rVert_F^2\, \lVert M + N \rVert_F^2

    for ``M`` (reconstructions) and ``N`` (targets) of the same shape ``(n, d)``: the Gram matrices of patches
    (the adjacency a spectral method factorises) are close when the reconstruction is.

    Proof. With :math:`D = M - N` and :math:`S = M + N`, expanding gives
    :math:`DS^\top + SD^\top = (MM^\top + MN^\top - NM^\top - NN^\top) + (MM^\top - MN^\top + NM^\top - NN^\top)
    = 2(MM^\top - NN^\top)`, so :math:`MM^\top - NN^\top = \tfrac12 (DS^\top + SD^\top)`. By the triangle
    inequality, submultiplicativity :math:`\lVert AB\rVert_F \le \lVert A\rVert_F\lVert B\rVert_F` and
    :math:`\lVert A^\top\rVert_F = \lVert A\rVert_F`,
    :math:`\lVert MM^\top - NN^\top\rVert_F \le \tfrac12(\lVert D\rVert_F\lVert S\rVert_F + \lVert S\rVert_F
    \lVert D\rVert_F) = \lVert D\rVert_F\lVert S\rVert_F`; squaring gives the claim. ∎

    Tightness: equality needs :math:`DS^\top` symmetric and both Frobenius inequalities tight (rank one). It holds
    for collinear rank-one pairs :math:`M = a\,uv^\top, N = b\,uv^\top` (both sides :math:`(a^2-b^2)^2` for unit
    ``u, v``). For :math:`N = 0` the ratio is :math:`\lVert MM^\top\rVert_F^2/\lVert M\rVert_F^4 =
    \sum\sigma_i^4/(\sum\sigma_i^2)^2`: 1 for rank one, :math:`1/r` for ``r`` equal singular values.

    The left side is computed from ``D`` and ``S`` without cancellation (accurate when ``M ≈ N``): as
    :math:`\lVert \frac12(DS^\top + SD^\top)\rVert_F^2` when ``n <= d``, else through ``d × d`` Gram matrices,
    :math:`\tfrac12(\langle D^\top D, S^\top S\rangle + \operatorname{tr}((S^\top D)^2))`.

    Parameters
    ----------
    M, N
        Same-shape ``(n, d)`` arrays, or ``(B, n, d)``/``(B1, B2, n, d)`` batches of pairs.

    Returns
    -------
    SpectralBound
        ``lhs``, ``rhs``, ``ratio`` (floats for 2-D input, arrays of the leading shape otherwise).
    """
    M = _finite_matrix("M", M, (2, 3, 4))
    N = _finite_matrix("N", N, (2, 3, 4))
    if M.shape != N.shape:
        raise ValueError(f"N of shape {N.shape} is not allowed: it must have M's shape {M.shape}")
    D, S = M - N, M + N
    n, d = M.shape[-2:]
    if n <= d:
        E = 0.5 * (D @ np.swapaxes(S, -1, -2) + S @ np.swapaxes(D, -1, -2))  # (..., n, n)
        lhs = np.sum(E * E, axis=(-2, -1))
    else:
        DtD = np.swapaxes(D, -1, -2) @ D  # (..., d, d)
        StS = np.swapaxes(S, -1, -2) @ S
        StD = np.swapaxes(S, -1, -2) @ D
        lhs = 0.5 * (np.sum(DtD * StS, axis=(-2, -1)) + np.einsum("...ij,...ji->...", StD, StD))
        lhs = np.maximum(lhs, 0.0)  # rounding
    rhs = np.sum(D * D, axis=(-2, -1)) * np.sum(S * S, axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(rhs > 0, lhs / np.where(rhs > 0, rhs, 1.0), np.nan)
    if M.ndim == 2:
        return SpectralBound(float(lhs), float(rhs), float(ratio))
    return SpectralBound(lhs, rhs, ratio)


# ------------------------------------------------------------------------- spectral clustering of patches
class SpectralEmbedding(NamedTuple):
    """Normalised-adjacency spectral embedding.

    Attributes
    ----------
    embedding
        ``(L, k)`` row-normalised top-``k`` eigenvectors of :math:`D^{-1/2} A D^{-1/2}`.
    eigenvalues
        ``(k,)`` their eigenvalues, decreasing (the largest is 1).
    affinity
        ``(L, L)`` the affinity ``A``.
    """

    embedding: np.ndarray
    eigenvalues: np.ndarray
    affinity: np.ndarray


def normalized_adjacency_embedding(patch_vectors, k: int, *, kernel: str = "rbf",
                                   bandwidth: float | None = None) -> SpectralEmbedding:
    r"""Spectral embedding of patches from the normalised adjacency (Ng, Jordan & Weiss 2001).

    Affinity ``A`` (``L × L``, self-loops kept so every degree is positive):

    - ``"rbf"``: :math:`A_{ij} = \exp(-\lVert x_i - x_j\rVert^2 / (2 s^2))`, ``s = bandwidth`` or, by default, the
      median of the non-zero pairwise distances (1 if all patches are equal). Handles all-zero patches
      (Fashion-MNIST's background).
    - ``"cosine"``: :math:`A_{ij} = \max(0, \cos(x_i, x_j))`; needs non-zero rows (e.g. encoder features).

    Then :math:`\tilde A = D^{-1/2} A D^{-1/2}` with :math:`D = \operatorname{diag}(A\mathbf 1)`, its top-``k``
    eigenvectors (exact dense ``numpy.linalg.eigh``) as columns of ``Y``, and each row of ``Y`` scaled to unit
    norm. This is the embedding that spectral clustering factorises, i.e. the "parametric spectral clustering"
    view of mask modelling in the 2023 paper (§4); k-means on it is :func:`spectral_embedding_clusters`.
    Eigenvectors are determined up to sign (and rotation for repeated eigenvalues); k-means on the rows is
    invariant to both.

    Parameters
    ----------
    patch_vectors
        ``(L, P)`` one image's patches (pixels, or features).
    k
        Embedding dimension, ``1 <= k <= L``.
    kernel, bandwidth
        Affinity kernel and the RBF bandwidth (``None``: median heuristic).
    """
    X = _finite_matrix("patch_vectors", patch_vectors)
    k = check_int("k", k, 1)
    L = len(X)
    if k > L:
        raise ValueError(f"k={k} is not allowed: use at most L={L} (the number of patches)")
    if kernel == "rbf":
        sq = np.maximum(np.sum(X * X, 1)[:, None] + np.sum(X * X, 1)[None] - 2.0 * X @ X.T, 0.0)  # (L, L)
        np.fill_diagonal(sq, 0.0)
        if bandwidth is None:
            off = np.sqrt(sq[np.triu_indices(L, 1)])
            off = off[off > 1e-12]
            s = float(np.median(off)) if off.size else 1.0
        else:
            if isinstance(bandwidth, bool) or not isinstance(bandwidth, int | float) or not bandwidth > 0:
                raise ValueError(f"bandwidth={bandwidth!r} is not allowed: use a positive number or None")
            s = float(bandwidth)
        A = np.exp(-sq / (2.0 * s * s))
    elif kernel == "cosine":
        norms = np.linalg.norm(X, axis=1)
        if np.any(norms <= 0):
            raise ValueError(f"patch_vectors with {int(np.sum(norms <= 0))} zero rows are not allowed with "
                             "kernel='cosine': use kernel='rbf'")
        Z = X / norms[:, None]
        A = np.clip(Z @ Z.T, 0.0, None)
        np.fill_diagonal(A, 1.0)
    else:
        raise ValueError(f"kernel={kernel!r} is not allowed: use 'rbf' or 'cosine'")
    d_isqrt = 1.0 / np.sqrt(A.sum(1))
    An = d_isqrt[:, None] * A * d_isqrt[None]
    An = 0.5 * (An + An.T)  # exact symmetry for eigh
    w, V = np.linalg.eigh(An)  # increasing
    w, V = w[::-1][:k], V[:, ::-1][:, :k]
    Y = V / np.maximum(np.linalg.norm(V, axis=1, keepdims=True), 1e-300)
    return SpectralEmbedding(Y, w, A)


def spectral_embedding_clusters(patch_vectors, k: int, *, seed: int, kernel: str = "rbf",
                                bandwidth: float | None = None, n_init: int = 10) -> np.ndarray:
    """Spectral clustering of one image's patches: k-means on :func:`normalized_adjacency_embedding` (NJW 2001).

    The spectral-clustering side of the 2023 paper's §4 comparison (mask modelling as parametric spectral
    clustering): compare its labels with :func:`patch_kmeans` of the MAE's patch features via :func:`cluster_nmi`.
    Implemented with a dense eigendecomposition rather than ``sklearn.cluster.SpectralClustering``, because
    sklearn divides the eigenvectors by the square-root degrees and does not row-normalise (a random-walk
    embedding), while the analysis needs NJW's row-normalised :math:`D^{-1/2} A D^{-1/2}` embedding.

    Parameters
    ----------
    patch_vectors
        ``(L, P)`` patches (or features) of one image.
    k
        Clusters (and embedding dimension), ``2 <= k <= L``.
    seed, n_init
        k-means seed and restarts.
    kernel, bandwidth
        See :func:`normalized_adjacency_embedding`.

    Returns
    -------
    numpy.ndarray
        ``(L,)`` int labels.
    """
    k = check_int("k", k, 2)
    emb = normalized_adjacency_embedding(patch_vectors, k, kernel=kernel, bandwidth=bandwidth).embedding
    km = KMeans(n_clusters=k, n_init=check_int("n_init", n_init, 1), random_state=check_seed(seed))
    return km.fit_predict(emb).astype(np.int64)


def cluster_nmi(a, b) -> float:
    r"""Normalised mutual information of two clusterings of the same patches (sklearn, arithmetic mean).

    .. math:: \mathrm{NMI}(a, b) = \frac{I(a; b)}{\tfrac12 (H(a) + H(b))} \in [0, 1]

    1 for the same partition (whatever the cluster ids), about 0 for independent ones.

    Parameters
    ----------
    a, b
        ``(L,)`` integer labels of one image (labels of different images are not comparable: average per-image
        values instead).
    """
    a, b = np.asarray(a), np.asarray(b)
    for name, v in (("a", a), ("b", b)):
        if v.ndim != 1 or v.size == 0 or not np.issubdtype(v.dtype, np.integer):
            raise ValueError(f"{name} of shape {v.shape} and dtype {v.dtype} are not allowed: use (L,) integer "
                             "labels of one image")
    if a.shape != b.shape:
        raise ValueError(f"b of shape {b.shape} is not allowed: it must have a's shape {a.shape}")
    return float(normalized_mutual_info_score(a, b))
