"""Block masks (:func:`r2mae_core.masking.block_mask`, BEiT's blockwise masking): exact counts, every masked
patch inside a recorded rectangle, reproducibility, clustering against random subsets, cooperation with the
models' visible-token gathering and the training steps, and bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from r2mae_core import masking as M
from r2mae_core.ensemble import ImageMasking, pretrain_ensemble
from r2mae_core.models import build_model
from r2mae_core.models.blocks import as_token_mask
from r2mae_core.train import TrainConfig, image_mask, mae_step, pretrain

FAST = settings(max_examples=30, deadline=None, derandomize=True, database=None)


def tgen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _union_of_blocks(bm: M.BlockMask) -> torch.Tensor:
    """(B, H, W) union of each row's recorded rectangles (asserting each lies inside the grid)."""
    h_grid, w_grid = bm.grid
    out = torch.zeros((bm.mask.shape[0], h_grid, w_grid), dtype=torch.bool)
    for b in range(bm.mask.shape[0]):
        for top, left, h, w in bm.blocks[b][bm.block_valid[b]].tolist():
            assert h >= 1 and w >= 1 and 0 <= top and top + h <= h_grid and 0 <= left and left + w <= w_grid
            out[b, top:top + h, left:left + w] = True
    return out


def _boundary(mask: torch.Tensor, grid: tuple[int, int]) -> float:
    """Mean number of masked/visible pairs of 4-neighbours per row (the length of the mask's boundary)."""
    m = mask.reshape(-1, *grid)
    return float(((m[:, 1:] != m[:, :-1]).sum() + (m[:, :, 1:] != m[:, :, :-1]).sum()) / m.shape[0])


@FAST
@given(data=st.data(), h=st.integers(1, 9), w=st.integers(2, 9), b=st.integers(1, 6))
def test_exact_count_per_row_equals_the_subset_count_and_mask_is_the_union_of_blocks(data, h, w, b):
    ratios = torch.tensor(data.draw(st.lists(st.floats(0.01, 0.99), min_size=b, max_size=b)), dtype=torch.float32)
    seed = data.draw(st.integers(0, 2**31))
    bm = M.block_mask(ratios, (h, w), generator=tgen(seed), min_block=data.draw(st.sampled_from([1, 2, 4, 9])))
    subset = M.random_subset_mask(ratios, h * w, generator=tgen(0))
    assert bm.mask.shape == (b, h * w) and bm.mask.dtype == torch.bool
    assert torch.equal(bm.mask.sum(1), h * w - subset.n_keep)  # the same count as the random subset
    assert torch.equal(_union_of_blocks(bm).reshape(b, -1), bm.mask)  # every masked patch is inside a block


@pytest.mark.parametrize(("grid", "ratio"), [((14, 14), 0.4), ((7, 7), 0.75), ((4, 4), 0.9), ((7, 7), 0.25)])
def test_blocks_are_real_blocks_not_single_patches(grid, ratio):
    bm = M.block_mask(ratio, grid, generator=tgen(1), batch_size=256)
    areas = bm.blocks[..., 2] * bm.blocks[..., 3]
    # BEiT's phase places blocks of at least min_block = 4 patches wherever the row has room: single patches
    # (the exact-count top-up) hold a small share of the masked patches
    assert float(((areas == 1) & bm.block_valid).sum() / bm.mask.sum()) < 0.1
    block = _boundary(bm.mask, grid)
    random = _boundary(M.random_subset_mask(ratio, grid[0] * grid[1], batch_size=256, generator=tgen(1)).mask, grid)
    assert block < 0.75 * random, (block, random)  # contiguous rectangles: a shorter boundary


def test_beit_stop_rule_never_overshoots_and_exact_reaches_the_target():
    beit = M.block_mask(0.6, (7, 7), generator=tgen(2), batch_size=512, exact=False)
    exact = M.block_mask(0.6, (7, 7), generator=tgen(2), batch_size=512)
    target = round(0.6 * 49)
    assert int(beit.mask.sum(1).max()) <= target and bool((exact.mask.sum(1) == target).all())
    assert float(beit.mask.sum(1).double().mean()) > 0.9 * target  # BEiT's rule comes close to its target
    assert torch.equal(_union_of_blocks(beit).reshape(512, -1), beit.mask)


def test_same_seed_same_bits_different_seed_differs_and_no_global_rng():
    state = torch.get_rng_state()
    ratios = M.R2MAE(0.5, 0.9, per="sample").sample(32, generator=tgen(0))
    a, b = (M.block_mask(ratios, (7, 7), generator=tgen(9)) for _ in range(2))
    c = M.block_mask(ratios, (7, 7), generator=tgen(10))
    assert torch.equal(a.mask, b.mask) and torch.equal(a.blocks, b.blocks)
    assert not torch.equal(a.mask, c.mask)
    assert torch.equal(torch.get_rng_state(), state)


def test_positions_cover_the_whole_grid():
    bm = M.block_mask(0.3, (7, 7), generator=tgen(3), batch_size=4000)
    freq = bm.mask.double().mean(0)
    assert float(freq.min()) > 0.05 and abs(float(freq.mean()) - round(0.3 * 49) / 49) < 1e-12


@pytest.mark.parametrize("per", ["batch", "sample"])
def test_vit_gathers_the_visible_tokens_of_block_masks_like_subset_masks(per):
    model = build_model("vit", seed=0, img_size=28, patch=7, dim=32, depth=1, heads=2, dec_dim=32, dec_depth=1,
                        dec_heads=2)
    ratios = M.R2MAE(0.5, 0.9, per=per).sample(8, generator=tgen(4))
    block = image_mask(model, ratios, tgen(5), "block")
    subset = image_mask(model, ratios, tgen(5), "random")
    tm_block, tm_subset = as_token_mask(block), as_token_mask(subset)
    assert torch.equal(tm_block.keep_valid.sum(1), subset.n_keep)
    assert tm_block.ids_keep.shape == tm_subset.ids_keep.shape and tm_block.padded == (per == "sample")
    x = torch.rand(8, 1, 28, 28, generator=tgen(6))
    out = model(x, block)
    assert torch.equal(out.mask, block.mask) and torch.isfinite(out.loss)
    step_loss = mae_step(model, x, ratios, tgen(5), mask="block").loss.detach()
    assert float(step_loss) == pytest.approx(float(out.loss.detach()), rel=1e-6)


def test_pretrain_and_ensemble_train_with_block_masks_and_agree():
    images = (torch.rand(64, 1, 28, 28, generator=tgen(7)) * 255).to(torch.uint8)
    train = TrainConfig(steps=3, batch_size=16, lr=1e-3)
    kwargs = {"img_size": 28, "patch": 7, "dim": 32, "depth": 1, "heads": 2, "dec_dim": 32, "dec_depth": 1,
              "dec_heads": 2}
    sampler = M.R2MAE(0.5, 0.9, per="sample")
    single = pretrain(build_model("vit", seed=1, **kwargs), images, sampler=sampler, train=train, seed=3,
                      progress=False, mask_generator="block")
    random = pretrain(build_model("vit", seed=1, **kwargs), images, sampler=sampler, train=train, seed=3,
                      progress=False)
    group = pretrain_ensemble([build_model("vit", seed=1, **kwargs)], images, samplers=[sampler], seeds=[3],
                              train=train, step=ImageMasking("block"))
    assert np.allclose(single.history["loss"], group[0].history["loss"], rtol=1e-4)
    assert not np.allclose(single.history["loss"], random.history["loss"])
    # one ensemble whose members mask differently (the engine groups random and block runs together)
    mixed = pretrain_ensemble([build_model("vit", seed=1, **kwargs) for _ in range(2)], images,
                              samplers=[sampler, sampler], seeds=[3, 3], train=train,
                              step=[ImageMasking("block"), ImageMasking("random")])
    assert np.allclose(mixed[0].history["loss"], single.history["loss"], rtol=1e-4)
    assert np.allclose(mixed[1].history["loss"], random.history["loss"], rtol=1e-4)


BAD = [
    (lambda: M.block_mask(0.5, (1, 1), generator=tgen(), batch_size=2), ["grid=(1, 1)"]),
    (lambda: M.block_mask(0.5, (7,), generator=tgen(), batch_size=2), ["grid=(7,)"]),
    (lambda: M.block_mask(0.5, (7.0, 7), generator=tgen(), batch_size=2), ["grid=(7.0, 7)"]),
    (lambda: M.block_mask(0.5, (7, 7), generator=tgen(), batch_size=2, min_block=0), ["min_block=0"]),
    (lambda: M.block_mask(0.5, (7, 7), generator=tgen(), batch_size=2, max_block=2), ["max_block=2", "min_block"]),
    (lambda: M.block_mask(0.5, (7, 7), generator=tgen(), batch_size=2, aspect=(2.0, 1.0)), ["aspect=(2.0, 1.0)"]),
    (lambda: M.block_mask(0.5, (7, 7), generator=tgen(), batch_size=2, aspect=(0.0, 1.0)), ["aspect=(0.0, 1.0)"]),
    (lambda: M.block_mask(0.5, (7, 7), generator=tgen(), batch_size=2, exact=1), ["exact=1"]),
    (lambda: M.block_mask(torch.tensor([0.5, 0.0]), (7, 7), generator=tgen()), ["ratios[1]=0.0"]),
    (lambda: M.block_mask(torch.tensor([1.0]), (7, 7), generator=tgen()), ["ratios[0]=1.0"]),
    (lambda: M.block_mask(0.5, (7, 7), generator=None, batch_size=2), ["generator=None"]),
    (lambda: M.block_mask(0.5, (7, 7), generator=tgen()), ["batch_size=None"]),
    (lambda: ImageMasking("spans"), ["generator='spans'", "block"]),
    (lambda: pretrain(None, np.zeros((4, 28, 28), np.uint8), sampler=M.Fixed(0.5), train=TrainConfig(steps=1,
                      batch_size=2), mask_generator="grid"), ["mask_generator='grid'", "random"]),
]


@pytest.mark.parametrize(("call", "needles"), BAD, ids=[f"bad{i:02d}" for i in range(len(BAD))])
def test_bad_inputs_raise_one_line_value_error(call, needles, raises_one_line):
    raises_one_line(call, needles)
