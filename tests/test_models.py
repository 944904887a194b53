"""Models (ViT/MLP/CNN masked autoencoders, shared blocks) and losses: shapes, mask semantics, padding."""

import pytest
import torch
import torch.nn.functional as F

from r2mae_core import masking
from r2mae_core.losses import mae_loss, mlm_loss, normalize_pixels, uniformity_loss
from r2mae_core.models import TokenMask, as_token_mask, build_model, families
from r2mae_core.models.blocks import (
    Block,
    patchify,
    sincos_pos_embed_1d,
    sincos_pos_embed_2d,
    token_mask_to_pixels,
    unpatchify,
)

VIT = dict(img_size=8, patch=2, dim=32, depth=2, heads=4, dec_dim=16, dec_depth=1, dec_heads=2)
SIZES = {"vit": VIT, "mlp": dict(img_size=8, patch=2, width=32),
         "cnn": dict(img_size=8, patch=2, channels=(8, 8))}


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _images(b=4, c=1, seed=0):
    return torch.rand(b, c, 8, 8, generator=_gen(seed))


def _subset(ratios, seed=0, L=16):
    return masking.random_subset_mask(torch.as_tensor(ratios, dtype=torch.float32), L, generator=_gen(seed))


# ---------------------------------------------------------------------------------------------- factory
@pytest.mark.parametrize("bad", [
    dict(family="resnet"),
    dict(family="vit", dim=30),                     # dim % heads
    dict(family="vit", dim=18, heads=3),            # dim % 4 (sin-cos)
    dict(family="vit", img_size=10, patch=4),       # img_size % patch
    dict(family="vit", pool="max"),
    dict(family="vit", depth=0),
    dict(family="vit", width=3),                    # unknown key
    dict(family="mlp", act="swishy"),
    dict(family="cnn", kernel=4),
    dict(family="cnn", channels=()),
])
def test_build_model_rejects_bad_config(bad):
    bad = dict(bad)
    with pytest.raises(ValueError):
        build_model(bad.pop("family"), **bad)


def test_registry_names():
    assert {"vit", "mlp", "cnn", "vit_mae"} <= set(families())


def test_seeded_init_is_pure():
    state = torch.random.get_rng_state()
    a, b, c = (build_model("vit", seed=s, **VIT) for s in (3, 3, 4))
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    for (n, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb), n
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters(), strict=True))


# ---------------------------------------------------------------------------------------------- blocks
def test_patchify_layout_and_roundtrip():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    p = patchify(x, 4)  # (2, 4, 48)
    assert p.shape == (2, 4, 48)
    # patch 1 = top-right block, channels last within a pixel
    assert torch.equal(p[0, 1].reshape(4, 4, 3).permute(2, 0, 1), x[0, :, :4, 4:])
    assert torch.equal(unpatchify(p, 4, (2, 2), 3), x)
    m = torch.tensor([[True, False, False, True]])
    pix = token_mask_to_pixels(m, 4, (2, 2))
    assert pix[0, 0, :4, :4].eq(1).all() and pix[0, 0, :4, 4:].eq(0).all() and pix[0, 0, 4:, 4:].eq(1).all()


def test_sincos_embeddings():
    e = sincos_pos_embed_1d(8, torch.tensor([0.0, 3.0]))
    assert torch.allclose(e[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    assert torch.allclose(e[1, 1], torch.sin(torch.tensor(3.0 / 10.0)), atol=1e-6)  # ω_1 = 10000^(-1/2)
    e2 = sincos_pos_embed_2d(16, 3, 4, cls_token=True)
    assert e2.shape == (13, 16) and e2[0].abs().sum() == 0
    assert torch.unique(e2[1:], dim=0).shape[0] == 12  # every position distinct
    # row 1 of the grid (positions 4..7) shares the column code with row 0 in the first half of channels
    assert torch.allclose(e2[1:5, :8], e2[5:9, :8]) and not torch.allclose(e2[1:5, 8:], e2[5:9, 8:])


def test_block_key_padding_ignores_padded_tokens():
    blk = build_model("vit", **VIT).blocks[0].eval()
    x = torch.randn(2, 5, 32, generator=_gen(1))
    pad = torch.randn(2, 3, 32, generator=_gen(2)) * 100
    kpm = torch.tensor([[False] * 5 + [True] * 3] * 2)
    out = blk(torch.cat([x, pad], 1), kpm)[:, :5]
    assert torch.allclose(out, blk(x), atol=1e-5)
    # without the mask the padding matters
    assert not torch.allclose(blk(torch.cat([x, pad], 1))[:, :5], blk(x), atol=1e-3)
    with pytest.raises(ValueError):
        Block(30, 4)


def test_as_token_mask_from_bool_and_bucket():
    m = torch.tensor([[True, False, True, False], [False, False, False, True]])
    tm = as_token_mask(m)
    assert tm.ids_keep.tolist() == [[1, 3, 0], [0, 1, 2]] and tm.keep_valid.tolist()[0] == [True, True, False]
    assert tm.inverse.tolist() == [[3, 0, 3, 1], [0, 1, 2, 3]] and tm.padded
    tb = as_token_mask(m, bucket=4)
    assert tb.ids_keep.shape == (2, 4) and tb.inverse.tolist() == [[4, 0, 4, 1], [0, 1, 2, 4]]
    assert as_token_mask(m[1:], bucket=3).padded  # bucketing always passes the padding mask (one graph/shape)
    assert isinstance(as_token_mask(tm), TokenMask)


# ---------------------------------------------------------------------------------------------- models
@pytest.mark.parametrize("family", ["vit", "mlp", "cnn"])
def test_shapes_and_masked_content_is_invisible(family):
    model = build_model(family, **SIZES[family]).eval()
    x = _images()
    sub = _subset([0.5, 0.75, 0.25, 0.6])
    out = model(x, sub)
    assert out.pred.shape == (4, 16, 4) and out.loss.ndim == 0 and out.mask.dtype == torch.bool
    assert out.latent.shape == (4, model.feature_dim) and model.encode(x).shape == (4, model.feature_dim)
    # changing pixels of masked patches changes nothing the model computes (not even the loss's input side)
    pix = token_mask_to_pixels(sub.mask, 2, (4, 4)).bool()
    x2 = torch.where(pix, torch.rand(x.shape, generator=_gen(9)), x)
    out2 = model(x2, sub)
    assert torch.allclose(out2.pred, out.pred, atol=1e-5)
    assert torch.allclose(out2.latent, out.latent, atol=1e-5)
    # ... while visible pixels do matter
    x3 = torch.where(pix, x, torch.rand(x.shape, generator=_gen(9)))
    assert not torch.allclose(model(x3, sub).latent, out.latent, atol=1e-3)
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_encode_tokens():
    x = _images()
    assert build_model("vit", **VIT).encode_tokens(x).shape == (4, 16, 32)
    assert build_model("cnn", **SIZES["cnn"]).encode_tokens(x).shape == (4, 16, 8)
    with pytest.raises(NotImplementedError):
        build_model("mlp", **SIZES["mlp"]).encode_tokens(x)
    vit = build_model("vit", **{**VIT, "pool": "mean"})
    assert torch.allclose(vit.encode(x), vit.encode_tokens(x).mean(1), atol=1e-6)


@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_vit_ragged_rows_equal_rows_alone(pool):
    """Per-sample ratios: padding to K_max + key-padding mask gives each row its stand-alone result."""
    model = build_model("vit", **{**VIT, "pool": pool}).eval()
    x = _images()
    sub = _subset([0.25, 0.5, 0.75, 0.9])
    assert not sub.keep_valid.all()
    out = model(x, sub)
    for b in range(4):
        alone = model(x[b:b + 1], sub.mask[b:b + 1])
        assert torch.allclose(out.pred[b], alone.pred[0], atol=1e-5)
        assert torch.allclose(out.latent[b], alone.latent[0], atol=1e-5)


def test_vit_bucket_padding_and_mask_forms_agree():
    model = build_model("vit", **VIT).eval()
    x = _images()
    sub = _subset([0.7] * 4)
    ref = model(x, sub)
    for m in (sub.mask, as_token_mask(sub, bucket=4), as_token_mask(sub.mask, bucket=16)):
        out = model(x, m)
        assert torch.allclose(out.loss, ref.loss, atol=1e-6) and torch.allclose(out.pred, ref.pred, atol=1e-5)


def test_vit_exposes_qkv_and_heads():
    model = build_model("vit", **{**VIT, "heads": 8})
    assert model.last_qkv is model.blocks[-1].attn.qkv and model.blocks[0].attn.heads == 8
    assert "blocks.1.attn.qkv.weight" in dict(model.named_parameters())


def test_models_learn_to_reconstruct():
    """A few Adam steps on one batch lower the masked loss (the tests can fail)."""
    x = _images(16)
    for family in ("vit", "mlp", "cnn"):
        model = build_model(family, **SIZES[family])
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        sub = _subset([0.5] * 16)
        first = model(x, sub).loss.item()
        for _ in range(30):
            loss = model(x, sub).loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert loss.item() < 0.7 * first, family


# ---------------------------------------------------------------------------------------------- losses
def test_mae_loss_is_on_masked_patches_only():
    pred = torch.zeros(2, 3, 4, requires_grad=True)
    target = torch.tensor([[[1.0] * 4, [2.0] * 4, [0.0] * 4], [[3.0] * 4, [0.0] * 4, [1.0] * 4]])
    mask = torch.tensor([[True, False, False], [True, False, True]])
    loss = mae_loss(pred, target, mask)
    assert loss.item() == pytest.approx((1 + 9 + 1) / 3)
    loss.backward()
    assert pred.grad[~mask].abs().sum() == 0 and pred.grad[mask].abs().sum() > 0
    assert mae_loss(pred, target, torch.ones(2, 3, dtype=torch.bool)).item() == pytest.approx(
        F.mse_loss(pred, target).item())
    with pytest.raises(ValueError):
        mae_loss(pred, target, mask[:, :2])


def test_norm_pix_target():
    t = torch.randn(3, 5, 16, generator=_gen()) * 4 + 2
    n = normalize_pixels(t)
    assert torch.allclose(n.mean(-1), torch.zeros(3, 5), atol=1e-5)
    assert torch.allclose(n.var(-1), torch.ones(3, 5), atol=1e-4)
    mask = torch.ones(3, 5, dtype=torch.bool)
    assert mae_loss(n, t, mask, norm_pix=True).item() == pytest.approx(0.0, abs=1e-10)


def test_uniformity_loss():
    eye = torch.eye(4) * 3.0
    assert uniformity_loss(eye).item() == pytest.approx(0.0)
    assert uniformity_loss(torch.ones(5, 3)).item() == pytest.approx(1.0)
    z = torch.randn(6, 4, generator=_gen(1))
    zn = z / z.norm(dim=1, keepdim=True)
    brute = sum((zn[i] @ zn[j]) ** 2 for i in range(6) for j in range(6) if i != j) / 30
    assert uniformity_loss(z).item() == pytest.approx(brute.item(), rel=1e-5)
    assert uniformity_loss(z * 7).item() == pytest.approx(brute.item(), rel=1e-5)
    assert uniformity_loss(z, tau=0.5).item() == pytest.approx(4 * brute.item(), rel=1e-5)
    with pytest.raises(ValueError):
        uniformity_loss(z[:1])


def test_mlm_loss():
    logits = torch.randn(2, 5, 7, generator=_gen())
    labels = torch.tensor([[1, -100, 3, -100, -100], [-100, 6, -100, -100, 0]])
    keep = labels != -100
    expected = F.cross_entropy(logits[keep], labels[keep]).item()
    assert mlm_loss(logits, labels).item() == pytest.approx(expected)
    assert mlm_loss(logits, torch.full((2, 5), -100)).item() == 0.0
    with pytest.raises(ValueError):
        mlm_loss(logits, labels[:, :3])
