"""An ensemble of k runs trained at once equals the k runs trained one by one (to float tolerance): masked image
models and MLM token models."""

import copy

import pytest
import torch

from r2mae_core import data, dna, masking, models
from r2mae_core.ensemble import pad_token_mask, pretrain_ensemble, stack_members
from r2mae_core.experiments import dna as dna_exp
from r2mae_core.experiments.image_runs import load_images
from r2mae_core.models.blocks import as_token_mask
from r2mae_core.models.text_encoder import mlm_targets
from r2mae_core.train import TrainConfig, pretrain

VIT = {"img_size": 28, "in_chans": 1, "patch": 7, "dim": 32, "depth": 2, "heads": 2, "dec_dim": 32,
       "dec_depth": 1}
SAMPLERS = [{"kind": "fixed", "ratio": 0.75}, {"kind": "r2mae", "low": 0.5, "high": 0.9},
            {"kind": "r2mae", "low": 0.3, "high": 0.9, "per": "sample"}]
TRAIN = TrainConfig(steps=24, batch_size=16, lr=2e-3, warmup=0.2, grad_clip=0.5)
#: Measured on the 2-core CPU (fp32, pinned numerics): the largest loss difference over every step and member was
#: 1.2e-7 and the largest weight difference 1.4e-6 (on weights of size 0.24: a few float32 rounding steps, from
#: batched products and math-backend attention ordering their sums differently from the fused kernel). One
#: exception, left out of the weight comparison: the key part of each attention block's qkv bias. Its exact
#: gradient is zero (adding b to every key adds q·b to every logit of a row, which softmax ignores), so what
#: AdamW sees is rounding noise, normalised into steps of about ``lr``: those entries drift apart by up to
#: lr·steps (2.8e-4 measured) without changing any output.
LOSS_TOL, WEIGHT_TOL, FEATURE_TOL = 1e-6, 1e-5, 1e-5


def _comparable(state):
    """The state dict without the key slice of every qkv bias (see above)."""
    out = {}
    for name, value in state.items():
        if name.endswith("attn.qkv.bias"):
            d = value.shape[0] // 3
            value = torch.cat([value[:d], value[2 * d:]])
        out[name] = value
    return out


@pytest.fixture(scope="module")
def images():
    return load_images("fashion_mnist").train_images[:200]


def _members(family="vit", config=VIT):
    return [models.build_model(family, seed=100 + m, **config) for m in range(len(SAMPLERS))]


def _one_by_one(members, images, **kwargs):
    pairs = enumerate(zip(members, SAMPLERS, strict=True))
    return [pretrain(copy.deepcopy(model), images, sampler=masking.make_sampler(spec), seed=7 + m,
                     progress=False, train=TRAIN, **kwargs) for m, (model, spec) in pairs]


@pytest.mark.parametrize("uniformity_weight", [0.0, 0.01])
def test_ensemble_equals_the_runs_one_by_one(images, uniformity_weight):
    members = _members()
    alone = _one_by_one(members, images, uniformity_weight=uniformity_weight)
    together = pretrain_ensemble(members, images, samplers=[masking.make_sampler(s) for s in SAMPLERS],
                                 seeds=[7, 8, 9], uniformity_weight=uniformity_weight, train=TRAIN)
    for a, b in zip(alone, together, strict=True):
        assert (a.history["ratio_mean"] == b.history["ratio_mean"]).all()  # the same draws, in the same order
        assert (a.history["lr"] == b.history["lr"]).all()
        assert (a.history["loss"] - b.history["loss"]).abs().max() < LOSS_TOL
        if uniformity_weight:
            assert (a.history["uniformity"] - b.history["uniformity"]).abs().max() < LOSS_TOL
        sa, sb = _comparable(a.model.state_dict()), _comparable(b.model.state_dict())
        assert max((sa[k] - sb[k]).abs().max().item() for k in sa) < WEIGHT_TOL
        x = torch.as_tensor(images[:32], dtype=torch.float32)[:, None] / 255
        with torch.no_grad():
            assert (a.model.encode(x) - b.model.encode(x)).abs().max() < FEATURE_TOL


def test_members_of_other_families_train_too(images):
    config = {"img_size": 28, "in_chans": 1, "patch": 7, "width": 32}
    members = [models.build_model("mlp", seed=100 + m, **config) for m in range(len(SAMPLERS))]
    alone = _one_by_one(members, images)
    together = pretrain_ensemble(members, images, samplers=[masking.make_sampler(s) for s in SAMPLERS],
                                 seeds=[7, 8, 9], train=TRAIN)
    for a, b in zip(alone, together, strict=True):
        assert (a.history["loss"] - b.history["loss"]).abs().max() < LOSS_TOL


def test_padding_keeps_the_loss(images):
    model = models.build_model("vit", seed=1, **VIT).eval()
    x = torch.as_tensor(images[:8], dtype=torch.float32)[:, None] / 255
    sub = masking.random_subset_mask(torch.full((8,), 0.75), model.num_patches, generator=torch.Generator())
    tm = as_token_mask(sub)
    with torch.no_grad():
        plain = model(x, tm).loss
        padded = model(x, pad_token_mask(tm, tm.ids_keep.shape[1] + 3)).loss
    assert torch.allclose(plain, padded, atol=1e-6)
    with pytest.raises(ValueError, match="already has"):
        pad_token_mask(tm, 1)


def test_bad_input_is_one_line(images):
    members = _members()
    with pytest.raises(ValueError, match="one sampler and one seed per model"):
        pretrain_ensemble(members, images, samplers=[masking.make_sampler(0.5)], seeds=[1, 2, 3], train=TRAIN)
    with pytest.raises(ValueError, match="batch_size=500 is not allowed"):
        pretrain_ensemble(members[:1], images, samplers=[masking.make_sampler(0.5)], seeds=[1],
                          train=TrainConfig(steps=2, batch_size=500))
    with pytest.raises(ValueError, match="steps=0 is not allowed"):
        TrainConfig(steps=0)
    other = models.build_model("vit", seed=0, **{**VIT, "dim": 64})
    with pytest.raises(ValueError, match="different architectures"):
        stack_members([members[0], other])


@pytest.fixture(scope="module")
def dna_windows():
    """Real DNA: 256 windows of 120 bp from the first bacterial genome, 3-mer tokens, with N runs and a short
    window (padding) so that the eligible counts differ between rows."""
    genome = data.load("bacteria")
    record = next(iter(genome.records))
    seqs = [genome.sequence(record, 120 * i, 120 * (i + 1)) for i in range(256)]
    seqs[0] = "N" * 12 + seqs[0][12:]
    seqs[1] = seqs[1][:40]
    tok = dna.DNATokenizer(3)
    ids = dna.tokenize_windows(seqs, tok, 1 + tok.n_tokens(120))["input_ids"]
    return torch.as_tensor(ids, dtype=torch.long), tok


TEXT = {"max_len": 48, "dim": 32, "depth": 2, "heads": 2}
#: Token models, measured on the 2-core CPU (fp32, pinned numerics): largest loss difference 9.5e-7 on losses of
#: about 4 (two float32 rounding steps at that magnitude: the cross-entropy over 74 classes sums in another order
#: on flat targets) and largest weight difference 5.5e-6 (2.0e-6 without the qkv key bias, see above). The loss
#: tolerance is eight rounding steps at that magnitude; the weight tolerance is the image models'.
TOKEN_LOSS_TOL = 4e-6


@pytest.mark.parametrize("curriculum", [False, True])
def test_token_ensemble_equals_the_runs_one_by_one(dna_windows, curriculum):
    """Token models (:class:`r2mae_core.mlm.MLMStep`): the members draw the same masks and corruptions, and their
    losses and weights agree with the runs one by one to the same tolerances as the image models."""
    ids, tok = dna_windows
    config = {**TEXT, "vocab_size": tok.vocab_size, "max_len": ids.shape[1]}
    members = [models.build_model("text_encoder", seed=100 + m, **config) for m in range(len(SAMPLERS))]
    step = dna_exp.mlm_step(tok.first_random_id, 1.0, 4.0, curriculum=curriculum)
    alone = [pretrain(copy.deepcopy(model), ids, sampler=masking.make_sampler(spec), seed=7 + m, train=TRAIN,
                      step_fn=step, progress=False)
             for m, (model, spec) in enumerate(zip(members, SAMPLERS, strict=True))]
    together = pretrain_ensemble(members, ids, samplers=[masking.make_sampler(s) for s in SAMPLERS],
                                 seeds=[7, 8, 9], train=TRAIN, step=step)
    for a, b in zip(alone, together, strict=True):
        assert (a.history["ratio_mean"] == b.history["ratio_mean"]).all()
        assert (a.history["loss"] - b.history["loss"]).abs().max() < TOKEN_LOSS_TOL
        sa, sb = _comparable(a.model.state_dict()), _comparable(b.model.state_dict())
        assert max((sa[k] - sb[k]).abs().max().item() for k in sa) < WEIGHT_TOL
        with torch.no_grad():
            assert (a.model.encode(ids[:32]) - b.model.encode(ids[:32])).abs().max() < FEATURE_TOL


def test_targets_form_keeps_the_mlm_loss(dna_windows):
    """The MLM loss from flat padded targets equals the loss from dense labels, whatever the padding."""
    ids, tok = dna_windows
    model = models.build_model("text_encoder", seed=1, **{**TEXT, "vocab_size": tok.vocab_size,
                                                           "max_len": ids.shape[1]}).eval()
    step = dna_exp.mlm_step(tok.first_random_id)
    corrupted, labels = step.corrupt(ids[:16], torch.full((16,), 0.3, dtype=torch.float64),
                                     torch.Generator().manual_seed(0), 0.0, tok.vocab_size)
    n = int((labels != masking.IGNORE_INDEX).sum())
    with torch.no_grad():
        dense = model(corrupted, labels)
        for count in (n, n + 37):
            flat = model(corrupted, mlm_targets(labels, count))
            assert torch.allclose(dense.loss, flat.loss, atol=1e-6)
            assert torch.equal(dense.latent, flat.latent)
    with pytest.raises(ValueError, match="count=3 is not allowed"):
        mlm_targets(labels, 3)
    (tokens, positions, targets), _ = step.stack([(corrupted, labels)] * 2, buckets=8)
    assert positions.shape[1] % -(-labels.numel() // 8) == 0 and positions.shape[1] >= n  # bucketed count


def _kill_at(monkeypatch, samplers, stop: float) -> None:
    """Make every sampler's class raise once a step's progress reaches ``stop`` (a run killed mid-way)."""
    for cls in {type(s) for s in samplers}:
        inner = cls.sample

        def sample(self, batch_size, *, generator, progress=0.0, _inner=inner):
            if progress >= stop:
                raise KeyboardInterrupt("killed")
            return _inner(self, batch_size, generator=generator, progress=progress)

        monkeypatch.setattr(cls, "sample", sample)


def test_a_killed_ensemble_resumes_bit_for_bit(images, tmp_path, monkeypatch):
    """Checkpoints every 8 steps; killed at step 20 of 24, the group resumes from step 16 and ends with the
    uninterrupted weights and histories exactly (CPU); the checkpoint is removed at the end and one of other
    members is refused."""
    train = TrainConfig(steps=24, batch_size=16, lr=2e-3, warmup=0.2, grad_clip=0.5, checkpoint_every=8)
    samplers = [masking.make_sampler(s) for s in SAMPLERS]
    ckpt = tmp_path / "group.pt"
    whole = pretrain_ensemble(_members(), images, samplers=samplers, seeds=[7, 8, 9], train=train)
    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        _kill_at(patch, samplers, 20 / 24)
        pretrain_ensemble(_members(), images, samplers=samplers, seeds=[7, 8, 9], train=train, checkpoint_path=ckpt)
    assert torch.load(ckpt, weights_only=True)["step"] == 16
    with pytest.raises(ValueError, match="holds another ensemble"):
        pretrain_ensemble(_members(), images, samplers=samplers, seeds=[7, 8, 10], train=train,
                          checkpoint_path=ckpt)
    resumed = pretrain_ensemble(_members(), images, samplers=samplers, seeds=[7, 8, 9], train=train,
                                checkpoint_path=ckpt)
    assert not ckpt.exists()
    for a, b in zip(whole, resumed, strict=True):
        cols = ["step", "epoch", "loss", "ratio_mean", "lr"]
        assert a.history[cols].equals(b.history[cols])
        sa, sb = a.model.state_dict(), b.model.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
