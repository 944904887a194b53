"""Probes and metrics: LP (C chosen on training data only), BN+LP, fine-tuning, k-NN, effective rank."""

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_info, threadpool_limits

from r2mae_core.evaluate import (
    bn_linear_probe,
    effective_rank,
    extract_features,
    finetune,
    knn_accuracy,
    linear_probe,
    reconstruction_loss,
    singular_values,
)
from r2mae_core.evaluate.lbfgs import SoftmaxRegression
from r2mae_core.models import build_model

VIT = dict(img_size=8, patch=2, dim=32, depth=2, heads=4, dec_dim=16, dec_depth=1, dec_heads=2)


@pytest.fixture(scope="module")
def digits():
    """Real 8×8 digits: uint8 images, labels, flattened pixel features; split 1200 / rest."""
    d = load_digits()
    images = (d.images / 16.0 * 255.0).round().astype(np.uint8)
    x = d.data.astype(np.float64)
    return {"tr_img": images[:1200], "te_img": images[1200:], "tr_x": x[:1200], "te_x": x[1200:],
            "tr_y": d.target[:1200], "te_y": d.target[1200:]}


# ---------------------------------------------------------------------------------------------- spectra
def test_effective_rank_known_values():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((50, 50)))
    # exactly r equal singular values after centring -> erank r
    for r in (1, 3, 7):
        z = q[:, :r] * 5.0
        z = z - z.mean(0)
        u, s, vt = np.linalg.svd(z, full_matrices=False)
        assert effective_rank((u[:, :r] * 2.0) @ vt[:r]) == pytest.approx(r, rel=1e-6)
    # two singular values 3:1 -> exp(H(3/4, 1/4))
    z = np.zeros((4, 2))
    z[:, 0] = [3, -3, 3, -3]
    z[:, 1] = [1, 1, -1, -1]
    p = np.array([0.75, 0.25])
    assert effective_rank(z) == pytest.approx(math.exp(-(p * np.log(p)).sum()))
    assert effective_rank(z * 10) == pytest.approx(effective_rank(z))  # scale invariant
    assert effective_rank(np.ones((5, 3))) == 0.0  # centred: zero matrix
    assert effective_rank(np.ones((5, 3)), center=False) == pytest.approx(1.0)


def test_singular_values():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((40, 6)) + 100.0
    s = singular_values(z)
    assert np.all(np.diff(s) <= 0) and s[0] < 100  # centred: the mean offset is gone
    assert singular_values(z, center=False)[0] > 1000
    assert singular_values(z, normalize=True).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        singular_values(np.zeros(5))


# ---------------------------------------------------------------------------------------------- probes
@pytest.mark.parametrize("solver", ["sklearn", "torch"])
def test_linear_probe_chooses_C_on_training_split(digits, solver):
    d = digits
    cs = (1e-4, 1e-2, 1.0)
    res = linear_probe(d["tr_x"], d["tr_y"], d["te_x"], d["te_y"], Cs=cs, seed=0, max_iter=300, solver=solver)
    assert res.method == "lp" and res.C in cs and res.C > 1e-4 and res.converged
    assert res.test_acc > 0.88 and res.val_acc > 0.9 and res.train_acc >= res.val_acc - 0.05
    # the test labels never influence the choice: scrambled test labels give the same C and val accuracy
    scrambled = np.random.default_rng(0).permutation(d["te_y"])
    res2 = linear_probe(d["tr_x"], d["tr_y"], d["te_x"], scrambled, Cs=cs, seed=0, max_iter=300, solver=solver)
    assert (res2.C, res2.val_acc) == (res.C, res.val_acc) and res2.test_acc < 0.3
    with pytest.raises(ValueError):
        linear_probe(d["tr_x"], d["tr_y"], d["te_x"], d["te_y"], val_fraction=0.0, solver=solver)


@pytest.mark.parametrize("solver", ["sklearn", "torch"])
def test_extra_tests_are_scored_by_the_same_probe(digits, solver):
    d = digits
    half = len(d["te_x"]) // 2
    a, b = (d["te_x"][:half], d["te_y"][:half]), (d["te_x"][half:], d["te_y"][half:])
    kw = dict(Cs=(1e-2, 1.0), seed=3, max_iter=300, solver=solver)
    both = linear_probe(d["tr_x"], d["tr_y"], *a, extra_tests={"other": b}, **kw)
    alone = linear_probe(d["tr_x"], d["tr_y"], *b, **kw)
    assert both.extra == {"other": alone.test_acc} and both.C == alone.C
    assert linear_probe(d["tr_x"], d["tr_y"], *a, **kw).extra == {}


def test_sklearn_probe_fits_with_one_blas_thread(digits, monkeypatch):
    """Two OpenBLAS threads made the sklearn probe 13× slower on the 2-core machine; every fit runs with one."""
    seen, fit = [], LogisticRegression.fit

    def spy(self, *args, **kwargs):
        seen.append(max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"))
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(LogisticRegression, "fit", spy)
    d = digits
    with threadpool_limits(2, user_api="blas"):  # as on the 2-core machine, whatever OMP_NUM_THREADS says
        linear_probe(d["tr_x"], d["tr_y"], d["te_x"], d["te_y"], Cs=(1e-2, 1.0), max_iter=100, solver="sklearn")
        assert max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas") == 2  # restored
    assert len(seen) == 3 and set(seen) == {1}


def _tight_sklearn(z, y, C):
    with threadpool_limits(1):  # OpenMP threads on shared cores make these small fits crawl
        return LogisticRegression(C=C, tol=1e-10, max_iter=20_000).fit(z, y)


@pytest.mark.parametrize("classes", [None, (3, 8)], ids=["10-class", "binary"])
def test_torch_probe_reaches_the_sklearn_optimum(digits, classes):
    d = digits
    tr, te = (np.ones(len(d[k]), bool) if classes is None else np.isin(d[k], classes) for k in ("tr_y", "te_y"))
    x, y, xt, yt = d["tr_x"][tr], d["tr_y"][tr], d["te_x"][te], d["te_y"][te]
    cs = (1e-3, 1e-2, 1e-1, 1.0)
    res = linear_probe(x, y, xt, yt, Cs=cs, seed=0, solver="torch")
    # the same protocol with sklearn fits converged to 1e-10: same split, C path, tie rule and refit
    fx, vx, fy, vy = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    scaler = StandardScaler().fit(fx)
    fz, vz = scaler.transform(fx), scaler.transform(vx)
    val_accs = [_tight_sklearn(fz, fy, C).score(vz, vy) for C in cs]
    best = int(np.argmax(val_accs))
    scaler_all = StandardScaler().fit(x)
    ref = _tight_sklearn(scaler_all.transform(x), y, cs[best])
    assert (res.C, res.val_acc) == (cs[best], val_accs[best]) and res.converged
    assert abs(res.test_acc - ref.score(scaler_all.transform(xt), yt)) <= 0.005
    assert abs(res.train_acc - ref.score(scaler_all.transform(x), y)) <= 0.005
    # the solutions themselves: test-set probabilities along the warm-started path match the tight optimum
    problem, zt = SoftmaxRegression(fz, fy), torch.from_numpy(scaler.transform(xt))
    corr = torch.linalg.eigh(torch.from_numpy(fz.T @ fz / len(fz)))
    theta = problem.zeros()
    for C in cs:
        theta, converged = problem.fit(C, theta, corr, 1000)
        logits = zt @ theta[:-1] + theta[-1]
        if classes is not None:  # sklearn's binary model: one logit, for classes[1]
            logits = torch.cat([torch.zeros_like(logits), logits], 1)
        proba = torch.softmax(logits, 1).numpy()
        assert converged and np.abs(proba - _tight_sklearn(fz, fy, C).predict_proba(zt.numpy())).max() < 1e-3


def test_torch_probe_is_deterministic_and_restores_torch_state(digits):
    d = digits
    args = (d["tr_x"], d["tr_y"], d["te_x"], d["te_y"])
    threads = torch.get_num_threads()
    torch.set_num_threads(3)  # the solver runs single-threaded and must put this back
    try:
        a = linear_probe(*args, Cs=(1e-2, 1.0), seed=5, solver="torch")
        assert a == linear_probe(*args, Cs=(1e-2, 1.0), seed=5, solver="torch") and a.converged
        assert torch.get_num_threads() == 3 and torch.is_grad_enabled()
        with pytest.raises(ValueError, match="at least 2"):  # restored on errors too
            linear_probe(d["tr_x"], np.zeros(len(d["tr_x"]), int), d["te_x"], d["te_y"], solver="torch")
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)
    # an honest convergence flag: two iterations cannot reach the tolerance
    assert linear_probe(*args, Cs=(1.0,), max_iter=2, solver="torch").converged is False


def test_linear_probe_rejects_unknown_solver(digits):
    d = digits
    with pytest.raises(ValueError, match="solver='lbfgs' is not allowed: use one of 'sklearn', 'torch'"):
        linear_probe(d["tr_x"], d["tr_y"], d["te_x"], d["te_y"], solver="lbfgs")


def test_knn_and_bn_probe(digits):
    d = digits
    assert knn_accuracy(d["tr_x"], d["tr_y"], d["te_x"], d["te_y"], k=5) > 0.9
    # random labels: chance level
    noise = np.random.default_rng(0).integers(0, 10, len(d["tr_y"]))
    assert knn_accuracy(d["tr_x"], noise, d["te_x"], d["te_y"]) < 0.25
    with pytest.raises(ValueError):
        knn_accuracy(d["tr_x"], d["tr_y"], d["te_x"], d["te_y"], k=0)
    a = bn_linear_probe(d["tr_x"], d["tr_y"], d["te_x"], d["te_y"], epochs=10, lr=1e-2, seed=3)
    b = bn_linear_probe(d["tr_x"], d["tr_y"], d["te_x"], d["te_y"], epochs=10, lr=1e-2, seed=3)
    assert a == b and a.method == "bn_lp" and a.test_acc > 0.85 and math.isnan(a.val_acc)
    # one fit scored on two sets: the same accuracies as fitting once per set
    half = len(d["te_y"]) // 2
    one = bn_linear_probe(d["tr_x"], d["tr_y"], d["te_x"][:half], d["te_y"][:half], epochs=10, lr=1e-2, seed=3,
                          extra_tests={"rest": (d["te_x"][half:], d["te_y"][half:])})
    rest = bn_linear_probe(d["tr_x"], d["tr_y"], d["te_x"][half:], d["te_y"][half:], epochs=10, lr=1e-2, seed=3)
    assert one.extra == {"rest": rest.test_acc} and one.train_acc == rest.train_acc


def test_features_and_reconstruction_loss(digits):
    model = build_model("vit", **VIT)
    f = extract_features(model, digits["te_img"][:50], batch_size=16)
    assert f.shape == (50, 32) and f.dtype == np.float32
    with torch.no_grad():
        x = torch.as_tensor(digits["te_img"][:50]).float().div(255).unsqueeze(1)
        assert np.allclose(f, model.encode(x).numpy(), atol=1e-5)
    assert extract_features(model, digits["te_img"][:5], tokens=True).shape == (5, 16, 32)
    imgs = digits["te_img"][:64]
    a = reconstruction_loss(model, imgs, 0.75, seed=1, batch_size=20)
    assert a == reconstruction_loss(model, imgs, 0.75, seed=1, batch_size=20)
    assert a != reconstruction_loss(model, imgs, 0.75, seed=2, batch_size=20)
    assert a > 0 and model.training  # mode restored
    with pytest.raises(ValueError):
        reconstruction_loss(model, imgs, 1.0)


def test_finetune_partial_trains_only_head_and_last_qkv(digits):
    d = digits
    model = build_model("vit", **VIT)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res, tuned = finetune(model, d["tr_img"][:600], d["tr_y"][:600], d["te_img"][:300], d["te_y"][:300],
                          mode="partial", epochs=3, lr=1e-2, batch_size=64, return_model=True)
    assert res.method == "partial_ft" and res.test_acc > 0.3  # 10 classes: chance is 0.1
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # input untouched
    changed = {k for k, v in tuned.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"blocks.1.attn.qkv.weight", "blocks.1.attn.qkv.bias"}
    full, tuned_full = finetune(model, d["tr_img"][:300], d["tr_y"][:300], d["te_img"][:100], d["te_y"][:100],
                                mode="full", epochs=1, batch_size=64, return_model=True)
    assert full.method == "full_ft"
    assert not torch.equal(tuned_full.patch_embed.weight, model.patch_embed.weight)
    with pytest.raises(ValueError):
        finetune(model, d["tr_img"][:10], d["tr_y"][:10], d["te_img"][:10], d["te_y"][:10], mode="head")
    with pytest.raises(ValueError, match="last_qkv"):
        finetune(build_model("mlp", img_size=8, patch=2, width=16), d["tr_img"][:10], d["tr_y"][:10],
                 d["te_img"][:10], d["te_y"][:10])


@pytest.mark.parametrize("k", [1, 5, 20])
def test_device_knn_gives_the_sklearn_accuracy(digits, k):
    """The device k-NN (run here on the CPU) follows sklearn's rule: cosine neighbours, uniform vote, ties to the
    smallest label; on random labels the votes tie often, so the tie rule is exercised too."""
    from r2mae_core.evaluate.knn import _torch_knn_accuracy

    d = digits
    noise = np.random.default_rng(1).integers(0, 10, len(d["tr_y"]))
    for labels in (d["tr_y"], noise):
        want = knn_accuracy(d["tr_x"], labels, d["te_x"], d["te_y"], k=k)
        got = _torch_knn_accuracy(d["tr_x"], labels, d["te_x"], d["te_y"], k, torch.device("cpu"))
        assert got == pytest.approx(want, abs=1.0 / len(d["te_y"]) + 1e-12)


def test_device_knn_refuses_other_metrics(digits):
    d = digits
    with pytest.raises(ValueError, match="metric='euclidean'.*device k-NN is cosine"):
        knn_accuracy(d["tr_x"], d["tr_y"], d["te_x"], d["te_y"], metric="euclidean", device="cuda")
