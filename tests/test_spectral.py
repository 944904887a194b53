"""Section 06 analyses: SVD-component distances, masked-patch matrices, k-means segmentation, Theorem 4.3's
bound, normalised-adjacency spectral clustering."""

import numpy as np
import pytest
import torch

from r2mae_core.models import build_model
from r2mae_core.models.blocks import images_to_tensor, patchify
from r2mae_core.spectral import (
    cluster_nmi,
    component_distances,
    foreground_agreement,
    masked_patch_matrices,
    normalized_adjacency_embedding,
    patch_kmeans,
    patch_object_mask,
    spectral_bound,
    spectral_embedding_clusters,
)

TINY_VIT = dict(dim=32, depth=1, heads=2, dec_dim=32, dec_depth=1)


def _orthonormal(rng, n, k):
    q, _ = np.linalg.qr(rng.standard_normal((n, k)))
    return q


def _lowrank(rng, m=12, n=16, s=(10.0, 5.0, 3.0, 2.0, 1.0, 0.5)):
    """A matrix with known distinct singular values and its factors."""
    U, V = _orthonormal(rng, m, len(s)), _orthonormal(rng, n, len(s))
    return U @ np.diag(s) @ V.T, U, np.array(s), V


def _object_image(side=28, patch=4):
    """uint8 image: a bright 3×3-patch square (object) and a dim 2×2-patch square on a zero background."""
    img = np.zeros((side, side), np.uint8)
    img[4:16, 4:16] = 200  # patch rows/cols 1..3: 9 object patches
    img[20:28, 16:24] = 60  # patch rows 5..6, cols 4..5: 4 more object patches, different intensity
    return img


# ------------------------------------------------------------------------------------ component distances
def test_component_distances_identical_is_zero():
    X, *_ = _lowrank(np.random.default_rng(0))
    np.testing.assert_array_equal(component_distances(X, X.copy(), k=5), np.zeros(5))


def test_component_distances_rank_one_perturbation_hits_its_component():
    rng = np.random.default_rng(1)
    X, U, s, V = _lowrank(rng)
    i = 2  # scale the third component by 1.2: d_3 = (0.2 σ)² / σ² = 0.04, the others stay 0
    X_hat = X + 0.2 * s[i] * np.outer(U[:, i], V[:, i])
    d = component_distances(X, X_hat, k=5)
    np.testing.assert_allclose(d, [0, 0, 0.04, 0, 0], atol=1e-12)
    # removing a component: X̂ has no third component, its i-th SVD component is the old (i+1)-th
    d = component_distances(X, X - s[i] * np.outer(U[:, i], V[:, i]), k=3)
    np.testing.assert_allclose(d[:2], 0, atol=1e-12)
    assert d[2] == pytest.approx((s[2] ** 2 + s[3] ** 2) / s[2] ** 2)  # orthogonal rank-one matrices


def test_component_distances_sign_flip_invariant_and_closed_form():
    rng = np.random.default_rng(2)
    X, U, s, V = _lowrank(rng)
    signs = np.array([-1, 1, -1, -1, 1, 1.0])
    X_flip = (U * signs) @ np.diag(s) @ (V * signs).T  # same matrix, flipped singular-vector pairs
    np.testing.assert_allclose(component_distances(X, X_flip), 0, atol=1e-20)
    # random reconstruction: explicit formula vs the closed form σ² + σ̂² − 2σσ̂(uᵀû)(vᵀv̂)
    Y = X + 0.3 * rng.standard_normal(X.shape)
    d = component_distances(X, Y, k=4)
    Ux, sx, Vxt = np.linalg.svd(X)
    Uy, sy, Vyt = np.linalg.svd(Y)
    closed = [(sx[i] ** 2 + sy[i] ** 2 - 2 * sx[i] * sy[i] * (Ux[:, i] @ Uy[:, i]) * (Vxt[i] @ Vyt[i])) / sx[i] ** 2
              for i in range(4)]
    np.testing.assert_allclose(d, closed, rtol=1e-10, atol=1e-13)
    assert component_distances(X, -X, k=1)[0] == pytest.approx(4.0)  # the opposite component
    assert component_distances(X, np.zeros_like(X), k=1)[0] == pytest.approx(1.0)  # a missing component


def test_component_distances_fewer_components_are_nan():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((3, 8))  # at most 3 components
    d = component_distances(X, X + 0.01, k=5)
    assert np.isfinite(d[:3]).all() and np.isnan(d[3:]).all()
    rank1 = np.outer(rng.standard_normal(6), rng.standard_normal(5))  # σ_2.. = 0: undefined relative distance
    d = component_distances(rank1, rank1, k=3)
    assert d[0] == 0 and np.isnan(d[1:]).all()
    assert component_distances(torch.ones(2, 2), torch.ones(2, 2), k=1)[0] == pytest.approx(0.0, abs=1e-20)
    stack = component_distances(np.stack([X[:, :5], X[:, 3:]]),
                                np.stack([X[:, :5] + 0.01, X[:, 3:]]), k=4)
    assert stack.shape == (2, 4) and np.isnan(stack[:, 3]).all() and (stack[1, :3] == 0).all()
    np.testing.assert_array_equal(stack[0], component_distances(X[:, :5], X[:, :5] + 0.01, k=4))


def test_component_distances_min_energy_drops_noise_floor_components():
    rng = np.random.default_rng(4)
    X, U, s, V = _lowrank(rng, s=(10.0, 5.0, 3.0, 2.0, 1e-3))  # the 5th component holds 2.6e-9 of the energy
    X_hat = X + 0.1 * np.outer(U[:, 4], V[:, 4])  # a small error there is a huge relative distance
    d = component_distances(X, X_hat, k=5)
    assert d[4] > 1e3 and np.allclose(d[:4], 0, atol=1e-10)
    d = component_distances(X, X_hat, k=5, min_energy=1e-4)
    assert np.isnan(d[4]) and np.allclose(d[:4], 0, atol=1e-10)
    np.testing.assert_array_equal(component_distances(np.stack([X, X]), np.stack([X_hat, X]), k=5,
                                                      min_energy=1e-4)[:, 4], [np.nan, np.nan])
    with pytest.raises(ValueError, match="min_energy=1.0 is not allowed"):
        component_distances(X, X, min_energy=1.0)


@pytest.mark.parametrize("args, match", [
    ((np.ones((3, 4)), np.ones((4, 3))), "X0_hat of shape"),
    ((np.ones(4), np.ones(4)), "X0 of shape"),
    ((np.ones((2, 2, 3, 4)), np.ones((2, 2, 3, 4))), "X0 of shape"),
    ((np.ones((3, 4)), np.full((3, 4), np.nan)), "X0_hat is not allowed"),
    ((np.ones((3, 4)), np.ones((3, 4)), 0), "k=0"),
])
def test_component_distances_bad_inputs(args, match):
    with pytest.raises(ValueError, match=match) as err:
        component_distances(*args)
    assert "\n" not in str(err.value)


# ----------------------------------------------------------------------------------- masked patch matrices
@pytest.fixture(scope="module")
def tiny_vit():
    return build_model("vit", seed=0, **TINY_VIT)


def test_masked_patch_matrices_shapes_and_pairing(tiny_vit):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    mp = masked_patch_matrices(tiny_vit, images, 0.75, seed=3, batch_size=2)
    L, P, M = 49, 16, round(0.75 * 49)
    assert mp.targets.shape == mp.preds.shape == (5, M, P) and mp.mask.shape == (5, L)
    assert mp.mask.dtype == bool and (mp.mask.sum(1) == M).all()
    np.testing.assert_allclose(mp.targets, patchify(images_to_tensor(images), 4).numpy()[mp.mask].reshape(5, M, P))
    # masks depend on the seed only (not on the batch size); predictions agree with one full forward pass
    again = masked_patch_matrices(tiny_vit, images, 0.75, seed=3, batch_size=5)
    np.testing.assert_array_equal(again.mask, mp.mask)
    with torch.no_grad():
        pred = tiny_vit(images_to_tensor(images), torch.from_numpy(mp.mask)).pred.numpy()
    np.testing.assert_allclose(mp.preds, pred[mp.mask].reshape(5, M, P), atol=1e-5)
    assert not (masked_patch_matrices(tiny_vit, images, 0.75, seed=4).mask == mp.mask).all()
    assert tiny_vit.training  # mode restored


def test_masked_patch_matrices_bad_inputs(tiny_vit):
    images = np.zeros((2, 28, 28), np.uint8)
    for ratio in (0.0, 1.0, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match="ratio=") as err:
            masked_patch_matrices(tiny_vit, images, ratio, seed=0)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="model="):
        masked_patch_matrices(torch.nn.Linear(2, 2), images, 0.5, seed=0)
    with pytest.raises(ValueError, match="seed="):
        masked_patch_matrices(tiny_vit, images, 0.5, seed=-1)


# ------------------------------------------------------------------------------- k-means and agreement
def test_patch_object_mask_and_perfect_agreement():
    img = _object_image()
    obj = patch_object_mask(img, 4)
    assert obj.shape == (49,) and obj.sum() == 13
    grid = obj.reshape(7, 7)
    assert grid[1:4, 1:4].all() and grid[5:7, 4:6].all()
    # "features" = the patches' pixels: k-means with k = 3 finds {bright, dim, background}
    feats = patchify(images_to_tensor(img[None]), 4)[0].numpy()
    labels = patch_kmeans(feats, 3, seed=0)
    assert labels.shape == (49,) and len(np.unique(labels)) == 3
    assert foreground_agreement(labels, img, 4) == 1.0
    assert foreground_agreement(labels, img, 4, metric="accuracy") == 1.0
    # k = 1 baseline: object fraction (IoU) and majority fraction (accuracy)
    zeros = np.zeros(49, dtype=int)
    assert foreground_agreement(zeros, img, 4) == pytest.approx(13 / 49)
    assert foreground_agreement(zeros, img, 4, metric="accuracy") == pytest.approx(36 / 49)
    # batched labels / images, channel axis
    both = np.stack([labels, zeros])
    np.testing.assert_allclose(foreground_agreement(both, np.stack([img, img]), 4), [1.0, 13 / 49])
    assert foreground_agreement(labels, img[None], 4) == 1.0
    np.testing.assert_array_equal(patch_kmeans(np.stack([feats, feats]), 3, seed=0)[1], labels)


def test_best_iou_assignment_matches_brute_force():
    rng = np.random.default_rng(5)
    img = _object_image()
    obj = patch_object_mask(img, 4)
    for _ in range(20):
        k = int(rng.integers(2, 7))
        labels = rng.integers(0, k, 49)
        ids = np.unique(labels)
        best = 0.0
        for bits in range(1, 2 ** len(ids)):
            pred = np.isin(labels, ids[[(bits >> j) & 1 == 1 for j in range(len(ids))]])
            best = max(best, (pred & obj).sum() / (pred | obj).sum())
        assert foreground_agreement(labels, img, 4) == pytest.approx(best)
        acc = sum(max((obj & (labels == c)).sum(), (~obj & (labels == c)).sum()) for c in ids) / 49
        assert foreground_agreement(labels, img, 4, metric="accuracy") == pytest.approx(acc)


def test_kmeans_and_agreement_bad_inputs():
    img = _object_image()
    feats = np.random.default_rng(0).standard_normal((49, 8))
    cases = [
        (lambda: patch_kmeans(feats, 1, seed=0), "k=1"),
        (lambda: patch_kmeans(feats, 50, seed=0), "k=50"),
        (lambda: patch_kmeans(feats[0], 2, seed=0), "features of shape"),
        (lambda: foreground_agreement(np.zeros(49, int), img, 4, metric="dice"), "metric="),
        (lambda: foreground_agreement(np.zeros(48, int), img, 4), "labels of shape"),
        (lambda: foreground_agreement(np.zeros(49), img, 4), "dtype float64"),
        (lambda: foreground_agreement(np.zeros(49, int), img, 5), "patch=5"),
        (lambda: patch_object_mask(img, 4, min_fraction=0), "min_fraction="),
    ]
    for fn, match in cases:
        with pytest.raises(ValueError, match=match) as err:
            fn()
        assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------- Theorem 4.3 bound
def _naive(M, N):
    return np.linalg.norm(M @ M.T - N @ N.T) ** 2, np.linalg.norm(M - N) ** 2 * np.linalg.norm(M + N) ** 2


@pytest.mark.parametrize("shape", [(5, 9), (30, 6), (8, 8)])  # n <= d path, n > d Gram path, square
def test_spectral_bound_holds_on_random_matrices(shape):
    rng = np.random.default_rng(6)
    for scale in (1.0, 1e-3, 1e-8):  # N close to M: no cancellation
        M = rng.standard_normal(shape)
        N = M + scale * rng.standard_normal(shape)
        b = spectral_bound(M, N)
        lhs, rhs = _naive(M, N)
        assert b.rhs == pytest.approx(rhs, rel=1e-10)
        if scale == 1.0:
            assert b.lhs == pytest.approx(lhs, rel=1e-10)
        assert 0 < b.ratio <= 1 and b.holds()
    batch = spectral_bound(rng.standard_normal((7, *shape)), rng.standard_normal((7, *shape)))
    assert batch.lhs.shape == batch.ratio.shape == (7,) and (batch.ratio <= 1).all() and batch.holds()


def test_spectral_bound_tight_cases():
    rng = np.random.default_rng(7)
    u, v = rng.standard_normal(6), rng.standard_normal(4)
    R = np.outer(u, v)
    assert spectral_bound(R, np.zeros_like(R)).ratio == pytest.approx(1.0)  # N = 0, rank 1: tight
    assert spectral_bound(3 * R, -0.5 * R).ratio == pytest.approx(1.0)  # collinear rank-one pair: tight
    # N = 0: ratio = Σσ⁴ / (Σσ²)², i.e. 1/r for r equal singular values
    Q = _orthonormal(rng, 6, 3) @ _orthonormal(rng, 4, 3).T
    assert spectral_bound(Q, np.zeros_like(Q)).ratio == pytest.approx(1 / 3)
    X, _, s, _ = _lowrank(rng)
    assert spectral_bound(X, 0 * X).ratio == pytest.approx(np.sum(s ** 4) / np.sum(s ** 2) ** 2)
    same = spectral_bound(X, X)
    assert same.lhs == 0 and same.rhs == 0 and np.isnan(same.ratio) and same.holds()


def test_spectral_bound_bad_inputs():
    for args, match in [((np.ones((3, 4)), np.ones((3, 5))), "N of shape"), ((np.ones(3), np.ones(3)), "M of shape"),
                        ((np.ones((3, 4)), np.full((3, 4), np.inf)), "N is not allowed")]:
        with pytest.raises(ValueError, match=match) as err:
            spectral_bound(*args)
        assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------------- spectral clustering
def test_spectral_embedding_recovers_blocks():
    rng = np.random.default_rng(8)
    centres = np.array([[0.0] * 4, [5.0] * 4, [0, 10.0, 0, 0]])
    truth = np.repeat([0, 1, 2], [20, 15, 14])
    X = centres[truth] + 0.1 * rng.standard_normal((49, 4))
    emb = normalized_adjacency_embedding(X, 3)
    assert emb.embedding.shape == (49, 3)
    np.testing.assert_allclose(np.linalg.norm(emb.embedding, axis=1), 1.0)
    assert emb.eigenvalues[0] == pytest.approx(1.0) and (np.diff(emb.eigenvalues) <= 1e-12).all()
    labels = spectral_embedding_clusters(X, 3, seed=0)
    assert cluster_nmi(labels, truth) == pytest.approx(1.0)
    assert cluster_nmi(labels, (labels + 1) % 3) == pytest.approx(1.0)  # relabelling-invariant
    assert cluster_nmi(spectral_embedding_clusters(X + 1.0, 3, seed=0, kernel="cosine"), truth) > 0.5
    # all-zero background patches are fine with the RBF kernel: the object image splits into object / background
    img = _object_image()
    pix = patchify(images_to_tensor(img[None]), 4)[0].numpy()
    assert foreground_agreement(spectral_embedding_clusters(pix, 3, seed=0), img, 4) == 1.0


def test_spectral_and_nmi_bad_inputs():
    X = np.zeros((10, 3))
    cases = [
        (lambda: normalized_adjacency_embedding(X, 2, kernel="cosine"), "kernel='cosine'"),
        (lambda: normalized_adjacency_embedding(X, 2, kernel="laplace"), "kernel="),
        (lambda: normalized_adjacency_embedding(X, 11), "k=11"),
        (lambda: normalized_adjacency_embedding(X, 2, bandwidth=0.0), "bandwidth="),
        (lambda: spectral_embedding_clusters(X, 1, seed=0), "k=1"),
        (lambda: cluster_nmi(np.zeros(3, int), np.zeros(4, int)), "b of shape"),
        (lambda: cluster_nmi(np.zeros((2, 3), int), np.zeros((2, 3), int)), "a of shape"),
    ]
    for fn, match in cases:
        with pytest.raises(ValueError, match=match) as err:
            fn()
        assert "\n" not in str(err.value)
