"""The cases of ``tests/test_distributed.py``: each runs the same in one process (imported by the test) and on each
rank of two gloo processes (``python -m torch.distributed.run --standalone --nproc_per_node 2 ddp_workers.py OUT``,
each rank saving its results to ``OUT/rank<r>.pt``).

Real data: 8×8 digit images (scikit-learn) for the ViT-MAE, 120-bp windows of the first bacterial genome as 3-mer
tokens for the text encoder (no ``N`` and no short window, so that every row has the same eligible count).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from r2mae_core import data, distributed, dna, masking, train
from r2mae_core.losses import uniformity_loss
from r2mae_core.mlm import MLMStep
from r2mae_core.models import build_model
from r2mae_core.runs import RunSpec, execute, r2mae_method
from r2mae_core.train import TrainConfig, pretrain

VIT = dict(img_size=8, patch=2, dim=32, depth=2, heads=4, dec_dim=16, dec_depth=1, dec_heads=2)
TEXT = dict(dim=32, depth=2, heads=2)
SCHEDULE = TrainConfig(steps=6, batch_size=16, lr=2e-3, warmup=0.2, grad_clip=1.0, checkpoint_every=3)


def digits() -> np.ndarray:
    from sklearn.datasets import load_digits

    return (load_digits().images[:256] / 16.0 * 255.0).round().astype(np.uint8)


def dna_ids() -> tuple[torch.Tensor, dna.DNATokenizer]:
    genome = data.load("bacteria")
    record = next(iter(genome.records))
    tok = dna.DNATokenizer(3)
    seqs = [genome.sequence(record, 120 * i, 120 * (i + 1)) for i in range(64)]
    ids = dna.tokenize_windows(seqs, tok, 1 + tok.n_tokens(120))["input_ids"]
    return torch.as_tensor(ids, dtype=torch.long), tok


def _outcome(res) -> dict:
    return {"history": res.history.drop(columns="seconds").to_dict("list"),
            "state": {k: v.detach().clone() for k, v in res.model.state_dict().items()}}


def vit_umae(folder: Path, interrupt: bool) -> dict:
    """ViT-MAE, R²MAE U[0.1, 0.9] per batch, U-MAE λ = 0.1; with ``interrupt`` stopped after step 3 (its
    checkpoint) and resumed. Counts the checkpoint writes of this process. The write takes a second longer than
    it does alone, so a rank that resumed before rank 0 had written would start from step 0 and leave the
    ranks' collectives out of step (a hang)."""
    writes, save = [], train._save
    train._save = lambda path, state: (writes.append(int(state["step"])), time.sleep(1.0), save(path, state))
    try:
        kw = dict(sampler=masking.R2MAE(0.1, 0.9), train=SCHEDULE, seed=3, uniformity_weight=0.1, progress=False,
                  checkpoint_path=folder / "vit.pt")

        def stop(step, row):
            if interrupt and step == 2:
                raise KeyboardInterrupt

        try:
            res = pretrain(build_model("vit", seed=1, **VIT), digits(), callback=stop, **kw)
        except KeyboardInterrupt:
            res = pretrain(build_model("vit", seed=1, **VIT), digits(), **kw)
    finally:
        train._save = save
    return {**_outcome(res), "writes": writes, "resumed_from": res.resumed_from}


def vit_per_sample(per_device: bool = False) -> dict:
    """ViT-MAE, R²MAE U[0.1, 0.9] per sample: the ranks' rows hold different numbers of masked patches. With
    ``per_device`` each rank's loss keeps its own normalisation (no :func:`r2mae_core.distributed.loss_scale`), as
    in MAE's DDP code."""
    scale = distributed.loss_scale
    if per_device:
        distributed.loss_scale = lambda global_arg, local_arg: 1.0
    try:
        res = pretrain(build_model("vit", seed=1, **VIT), digits(), sampler=masking.R2MAE(0.1, 0.9, per="sample"),
                       train=SCHEDULE, seed=4, progress=False)
    finally:
        distributed.loss_scale = scale
    return _outcome(res)


def text_mlm(diffusion: bool) -> dict:
    """The text encoder on DNA 3-mers: BERT masking at an R²MAE U[0.1, 0.5] ratio per sample (the ranks' rows
    hold different numbers of labelled tokens), or masked diffusion (t per sequence, 1/t-weighted loss)."""
    ids, tok = dna_ids()
    model = build_model("text_encoder", seed=2, vocab_size=tok.vocab_size, max_len=ids.shape[1], **TEXT)
    step = MLMStep(dna.MASK_ID, dna.N_ID + 1, tok.first_random_id, diffusion=diffusion)
    sampler = masking.MaskedDiffusion() if diffusion else masking.R2MAE(0.1, 0.5, per="sample")
    res = pretrain(model, ids, sampler=sampler, train=TrainConfig(steps=4, batch_size=16, lr=2e-3), seed=5,
                   step_fn=step, progress=False)
    return _outcome(res)


def masks(per: str) -> dict:
    """The ratios and masks this process's model sees over two steps (R²MAE U[0.1, 0.9] ``per`` batch or sample)."""
    model = build_model("vit", seed=1, **VIT)
    seen = {"ratios": [], "masks": []}
    model.register_forward_pre_hook(lambda module, args: seen["masks"].append(args[1].mask.clone()))

    def step(m, batch, ratios, g, t):
        seen["ratios"].append(ratios[distributed.row_block(len(ratios))].clone())
        return train.mae_step(m, batch, ratios, g, t)

    pretrain(model, digits(), sampler=masking.R2MAE(0.1, 0.9, per=per), train=TrainConfig(steps=2, batch_size=16),
             seed=9, step_fn=step, progress=False)
    return {k: torch.stack(v) for k, v in seen.items()}


def uniformity_grads(gather) -> dict:
    """λ · U-MAE's uniformity of ``z = W x`` on this process's rows of a global batch of 16 digits, its gradient
    averaged over the processes as DistributedDataParallel does (``gather``: the features' all-gather)."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(64, 8)
    x = torch.as_tensor(digits()[:16].reshape(16, -1), dtype=torch.float32) / 255.0
    loss = 0.1 * uniformity_loss(gather(layer(x[distributed.row_block(16)])))
    loss.backward()
    grads = [p.grad for p in layer.parameters()]
    if distributed.active():
        for g in grads:
            torch.distributed.all_reduce(g)
            g /= distributed.world_size()
    return {"loss": loss.detach(), "grads": [g.clone() for g in grads]}


class LocalSliceGather(torch.autograd.Function):
    """The U-MAE authors' ``GatherLayer`` (zhangq327/U-MAE): all-gather, backward = this rank's slice of the
    incoming gradient only."""

    @staticmethod
    def forward(ctx, x):
        parts = [torch.empty_like(x) for _ in range(torch.distributed.get_world_size())]
        torch.distributed.all_gather(parts, x.contiguous())
        ctx.rows = distributed.row_block(len(x) * len(parts))
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        return grad[ctx.rows]


def engine_work(group: list[RunSpec], options) -> list[dict]:
    """The engine's work on tiny ViT-MAE runs: pretrain each (R²MAE per batch) and record its losses."""
    out = []
    for spec in group:
        res = pretrain(build_model("vit", seed=spec.seed, **VIT), digits(), train=spec.train, seed=spec.seed,
                       sampler=masking.make_sampler(spec.method.sampler), device=options.device, progress=False)
        out.append({"loss": res.history["loss"].to_numpy(), "ranks": distributed.world_size()})
    return out


def engine(folder: Path) -> dict:
    """A plan of two runs executed by the engine into ``folder/cache``, then read back; the records stored."""
    import os

    os.environ["R2MAE_CACHE_DIR"] = str(folder / "cache")
    plan = [RunSpec("ddp_test", "vit", "tiny", r2mae_method(0.1, 0.9), seed, TrainConfig(steps=3, batch_size=16))
            for seed in (0, 1)]
    first = execute(plan, engine_work, progress=False)
    again = execute(plan, engine_work, progress=False)
    return {"first": first, "again": again, "stored": len(list((folder / "cache" / "ddp_test").glob("*.npz")))}


def cases(folder: Path, interrupt: bool) -> dict:
    """Every case's results in this process."""
    out = {"engine": engine(folder), "vit_umae": vit_umae(folder, interrupt), "vit_sample": vit_per_sample(),
           "text_mlm": text_mlm(False),
           "text_diffusion": text_mlm(True), "masks_batch": masks("batch"), "masks_sample": masks("sample"),
           "uniformity": uniformity_grads(distributed.gather_rows)}
    if distributed.active():
        out["uniformity_local_slice"] = uniformity_grads(LocalSliceGather.apply)
        out["vit_sample_per_device"] = vit_per_sample(per_device=True)
    return out


if __name__ == "__main__":
    torch.set_num_threads(1)
    world = distributed.init()
    try:
        folder = Path(sys.argv[1])
        torch.save(cases(folder, interrupt=True), folder / f"rank{world.rank}.pt")
    finally:
        distributed.cleanup()
