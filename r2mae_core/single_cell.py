"""Masked gene-expression pretraining on AnnData, scanpy style (05_single_cell).

>>> import scanpy as sc
>>> from r2mae_core import single_cell
>>> single_cell.pretrain_embedding(adata, model="mlp", sampler={"kind": "r2mae", "low": 0.1, "high": 0.9})
>>> sc.pp.neighbors(adata, use_rep="X_r2mae"); sc.tl.umap(adata); sc.tl.leiden(adata)

:func:`pretrain_embedding` follows scanpy's conventions: the data object first, keyword-only options, the result
written to ``adata.obsm[key_added]`` (its parameters to ``adata.uns[key_added]``), ``copy=True`` returns a new
object and leaves the input untouched, ``copy=False`` modifies in place and returns ``None``. The pretraining
itself is the shared loop (:func:`r2mae_core.train.pretrain`) on a gene-level masked model
(:mod:`r2mae_core.models.gene_mae`), whose trained weights are cached on disk under a key of the expression
matrix, the model sizes, the ratio sampler and the schedule (:func:`r2mae_core.cache.cached`): the same call
twice trains once.

Input checks (:func:`check_expression`) fail at once with one line: non-finite values, cells or genes without
any expression, negative values, and count/log mismatches (``input="log"`` expects log1p-normalised values and
rejects integer counts; ``input="counts"`` expects raw counts, normalises them with
``sc.pp.normalize_total`` + ``sc.pp.log1p`` and rejects non-integer values).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from dataclasses import asdict

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import nn

from . import masking
from ._rng import check_seed
from .cache import cached
from .models import build_model, model_config
from .train import TrainConfig, pretrain

__all__ = ["MODEL_ALIASES", "INPUTS", "DEFAULT_SAMPLER", "check_expression", "expression_matrix", "matrix_checksum",
           "fit_encoder", "fit_encoders", "embed", "reconstruction_metrics", "pretrain_embedding"]

#: Short model names of the API -> registered model families.
MODEL_ALIASES = {"mlp": "gene_mlp", "transformer": "gene_transformer"}
#: Allowed ``input`` kinds.
INPUTS = ("log", "counts")
#: The API's default ratio law when ``sampler=None``: R²MAE U[0.1, 0.9], one ratio per batch.
DEFAULT_SAMPLER = masking.R2MAE(0.1, 0.9)
_MAX_LOG = 30.0  # log1p of a normalised count never comes close (e^30 ~ 1e13)


def _family(model: str) -> str:
    family = MODEL_ALIASES.get(model, model)
    if family not in MODEL_ALIASES.values():
        raise ValueError(f"model={model!r} is not allowed: use one of {sorted(MODEL_ALIASES)}")
    return family


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` intra-op threads (``None``: leave as is), restored on exit."""
    before = torch.get_num_threads()
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"num_threads={n!r} is not allowed: use None or a positive integer")
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_expression(x, *, input: str = "log", name: str = "adata.X") -> np.ndarray:
    """Validate an expression matrix (cells x genes) and return it as a dense float32 array.

    Parameters
    ----------
    x
        Dense array or scipy sparse matrix, cells x genes.
    input
        ``"log"``: log1p-normalised expression (non-negative, not integer counts, at most 30);
        ``"counts"``: raw counts (non-negative integers).
    name
        How the error messages call the matrix.

    Raises
    ------
    ValueError
        One line naming the problem: non-finite values, negative values, count/log mismatch, cells or genes
        without expression, or an empty matrix.
    """
    if input not in INPUTS:
        raise ValueError(f"input={input!r} is not allowed: use one of {INPUTS}")
    if (x.dtype if sp.issparse(x) else np.asarray(x).dtype) == np.bool_:
        raise ValueError(f"{name} of dtype bool is not allowed: expected expression values (log-normalised or "
                         "counts), not a mask")
    dense = np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float64)
    if dense.ndim != 2 or dense.shape[0] < 2 or dense.shape[1] < 2:
        raise ValueError(f"{name} of shape {dense.shape} is not allowed: need at least 2 cells x 2 genes")
    bad = int((~np.isfinite(dense)).sum())
    if bad:
        raise ValueError(f"{name} has {bad} non-finite values (NaN/inf): remove or impute them before pretraining")
    if dense.min() < 0:
        raise ValueError(f"{name} has negative values (min {dense.min():.3g}): expected unscaled expression "
                         "(scaled data? use adata.raw or the layer before sc.pp.scale)")
    nonzero = dense[dense != 0]
    integer = nonzero.size > 0 and bool(np.all(nonzero == np.round(nonzero)))
    if input == "log" and integer and nonzero.max() > 1:
        raise ValueError(f"{name} looks like raw counts (integer values up to {nonzero.max():.0f}), input='log' "
                         "expects log-normalised data: run sc.pp.normalize_total + sc.pp.log1p, or pass "
                         "input='counts'")
    if input == "log" and dense.max() > _MAX_LOG:
        raise ValueError(f"{name} has values up to {dense.max():.3g}, too large for log1p-normalised data: "
                         "run sc.pp.log1p, or pass input='counts' for raw counts")
    if input == "counts" and not integer:
        raise ValueError(f"{name} has non-integer values, input='counts' expects raw counts: pass input='log' for "
                         "log-normalised data")
    empty_cells = int((dense.sum(axis=1) == 0).sum())
    if empty_cells:
        raise ValueError(f"{name} has {empty_cells} cells with no expressed gene: filter them with "
                         "sc.pp.filter_cells(adata, min_genes=1)")
    empty_genes = int((dense.sum(axis=0) == 0).sum())
    if empty_genes:
        raise ValueError(f"{name} has {empty_genes} genes expressed in no cell: filter them with "
                         "sc.pp.filter_genes(adata, min_cells=1)")
    return dense.astype(np.float32)


def expression_matrix(adata, *, layer: str | None = None, input: str = "log") -> np.ndarray:
    """The checked log-expression matrix of ``adata`` (``.X`` or ``layers[layer]``) as dense float32.

    With ``input="counts"`` the counts are normalised to 10,000 per cell and log1p-transformed (scanpy's
    ``normalize_total`` + ``log1p``) on a copy; ``adata`` is never modified.
    """
    import anndata
    import scanpy as sc

    if not isinstance(adata, anndata.AnnData):
        raise ValueError(f"adata of type {type(adata).__name__} is not allowed: use an anndata.AnnData")
    if layer is not None and layer not in adata.layers:
        raise ValueError(f"layer={layer!r} is not allowed: use None (adata.X) or one of {list(adata.layers)}")
    x = adata.X if layer is None else adata.layers[layer]
    name = "adata.X" if layer is None else f"adata.layers[{layer!r}]"
    dense = check_expression(x, input=input, name=name)
    if input == "counts":
        tmp = anndata.AnnData(dense)
        sc.pp.normalize_total(tmp, target_sum=1e4)
        sc.pp.log1p(tmp)
        dense = np.asarray(tmp.X, dtype=np.float32)
    return dense


def matrix_checksum(x: np.ndarray) -> str:
    """SHA-256 (16 hex chars) of a float32 matrix's shape and bytes: the data part of a cache key."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    return hashlib.sha256(repr(x.shape).encode() + x.tobytes()).hexdigest()[:16]


def fit_encoder(x: np.ndarray, *, model: str = "mlp", model_kwargs: dict | None = None, sampler=None,
                steps: int = 500, batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 0.05,
                seed: int = 0, device: str = "cpu", progress: bool = False, train: bool = True,
                cache: bool = True, num_threads: int | None = 1, checkpoint_path=None,
                checkpoint_every: int = 0) -> tuple[nn.Module, pd.DataFrame]:
    """Pretrain a gene-level masked model on ``x`` (cells x genes, float32) with the shared loop; cached.

    Parameters
    ----------
    x
        Checked log-expression (:func:`expression_matrix`).
    model
        ``"mlp"`` (:class:`~r2mae_core.models.gene_mae.GeneMLPMAE`) or ``"transformer"``
        (:class:`~r2mae_core.models.gene_mae.GeneTransformerMAE`).
    model_kwargs
        Config fields of the model other than ``n_genes`` (taken from ``x``).
    sampler
        A ratio sampler or a :func:`r2mae_core.masking.make_sampler` spec (R²MAE: ``{"kind": "r2mae", ...}``);
        ``None`` is :data:`DEFAULT_SAMPLER`.
    steps, batch_size, lr, weight_decay
        Schedule of :func:`r2mae_core.train.pretrain` (AdamW, warmup + cosine). ``batch_size`` is capped at the
        number of cells.
    seed
        Seeds the initialisation, the data order and the masks.
    train
        ``False`` returns the randomly initialised model (the "random encoder" reference).
    cache
        Read/write the trained weights in the on-disk cache.
    num_threads
        Torch intra-op threads while training (restored after; ``None`` leaves the setting alone). The models
        are small: on a busy 2-core machine two OpenMP threads made a 100-step MLP run 18x slower than one.
    checkpoint_path, checkpoint_every
        A resumable checkpoint of the run every ``checkpoint_every`` steps and at the end
        (:func:`r2mae_core.train.pretrain`): a killed run resumes where it stopped (None: none).

    Returns
    -------
    (model, history)
        The model in eval mode on the CPU and the per-step history (empty when ``train=False``).
    """
    seed = check_seed(seed)
    family = _family(model)
    x = np.ascontiguousarray(x, dtype=np.float32)
    cfg = model_config(family, **{**(model_kwargs or {}), "n_genes": int(x.shape[1])})
    sampler = masking.make_sampler(DEFAULT_SAMPLER if sampler is None else sampler)
    batch_size = min(int(batch_size), x.shape[0])
    net = build_model(family, seed=seed, **asdict(cfg))
    if not train:
        return net.eval(), pd.DataFrame()
    key = {"family": family, "config": asdict(cfg), "sampler": sampler, "steps": int(steps),
           "batch_size": batch_size, "lr": float(lr), "weight_decay": float(weight_decay), "seed": seed}

    def compute():
        with _torch_threads(num_threads if torch.device(device).type == "cpu" else None):
            schedule = TrainConfig(steps=int(steps), batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                                   checkpoint_every=checkpoint_every)
            res = pretrain(net, torch.from_numpy(x), sampler=sampler, train=schedule, seed=seed, device=device,
                           progress=progress, checkpoint_path=checkpoint_path)
        return _model_record(res.model, res.history)

    out = cached("single_cell_model", key, compute, data_checksum=matrix_checksum(x)) if cache else compute()
    net.load_state_dict(_state_dict(out))
    return net.cpu().eval(), out["history"]


def _model_record(model: nn.Module, history: pd.DataFrame) -> dict:
    """The cache record of a trained model: its state as numpy arrays (by parameter name) and its history."""
    return {"state": {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}, "history": history}


def _state_dict(record: dict) -> dict[str, torch.Tensor]:
    """The model state of a cache record (:func:`_model_record`) as tensors."""
    return {k: torch.from_numpy(v) for k, v in record["state"].items()}


def fit_encoders(x: np.ndarray, *, model: str = "mlp", model_kwargs: dict | None = None, samplers: list,
                 seeds: list[int], steps: int = 500, batch_size: int = 64, lr: float = 1e-3,
                 weight_decay: float = 0.05, device: str = "cpu", compile: bool = False, checkpoint_path=None,
                 checkpoint_every: int = 0) -> list[tuple[nn.Module, pd.DataFrame]]:
    """:func:`fit_encoder` for several samplers and seeds at once, trained as one ensemble
    (:func:`r2mae_core.ensemble.pretrain_ensemble`: stacked weights, one vmapped step): member ``m`` is the run
    ``fit_encoder(x, sampler=samplers[m], seed=seeds[m], ...)`` makes, up to floating-point rounding (batched
    products sum in another order). Not cached; ``compile`` as in ``pretrain_ensemble`` (on CUDA);
    ``checkpoint_path`` / ``checkpoint_every``: the group's resumable checkpoint (``pretrain_ensemble``).

    Returns
    -------
    list of (model, history)
        Per member, the model in eval mode on the CPU and its per-step history.
    """
    from .ensemble import pretrain_ensemble

    if len(samplers) != len(seeds) or not seeds:
        raise ValueError(f"samplers ({len(samplers)}) and seeds ({len(seeds)}) must be non-empty and as many")
    family = _family(model)
    x = np.ascontiguousarray(x, dtype=np.float32)
    cfg = asdict(model_config(family, **{**(model_kwargs or {}), "n_genes": int(x.shape[1])}))
    nets = [build_model(family, seed=check_seed(seed), **cfg) for seed in seeds]
    schedule = TrainConfig(steps=int(steps), batch_size=min(int(batch_size), x.shape[0]), lr=lr,
                           weight_decay=weight_decay, checkpoint_every=checkpoint_every)
    results = pretrain_ensemble(nets, torch.from_numpy(x), samplers=[masking.make_sampler(s) for s in samplers],
                                seeds=list(seeds), train=schedule, device=device, compile=compile,
                                checkpoint_path=checkpoint_path)
    return [(res.model.cpu().eval(), res.history) for res in results]


@torch.no_grad()
def embed(model: nn.Module, x: np.ndarray, *, batch_size: int = 256, num_threads: int | None = 1) -> np.ndarray:
    """Cell embeddings ``model.encode`` of every row of ``x`` as a float32 ``(cells, feature_dim)`` array."""
    model.eval()
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    with _torch_threads(num_threads):
        return torch.cat([model.encode(xt[i:i + batch_size]) for i in range(0, len(xt), batch_size)]).numpy()


@torch.no_grad()
def reconstruction_metrics(model: nn.Module, x: np.ndarray, ratio: float, *, seed: int = 0,
                           batch_size: int = 256, num_threads: int | None = 1) -> dict[str, float]:
    """Masked-gene reconstruction of ``x`` at mask ratio ``ratio`` (exact-count random gene subsets).

    .. math:: \\mathrm{MSE} = \\frac{1}{|M|}\\sum_{(c,g)\\in M} (\\hat x_{cg} - x_{cg})^2, \\qquad
              r = \\mathrm{Pearson}\\big(\\{\\hat x_{cg}\\}_M, \\{x_{cg}\\}_M\\big)

    over the masked entries ``M`` of all cells (masks from ``seed``).
    """
    gen = torch.Generator().manual_seed(check_seed(seed))
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    preds, truth = [], []
    model.eval()
    with _torch_threads(num_threads):
        for i in range(0, len(xt), batch_size):
            xb = xt[i:i + batch_size]
            subset = masking.random_subset_mask(float(ratio), xb.shape[1], generator=gen, batch_size=len(xb))
            out = model(xb, subset.mask)
            preds.append(out.pred[..., 0][subset.mask])
            truth.append(xb[subset.mask])
    p, t = torch.cat(preds).double().numpy(), torch.cat(truth).double().numpy()
    pearson = float(np.corrcoef(p, t)[0, 1]) if p.std() > 0 and t.std() > 0 else float("nan")
    return {"mse": float(np.mean((p - t) ** 2)), "pearson": pearson}


def pretrain_embedding(adata, *, model: str = "mlp", sampler=None, steps: int = 500, seed: int = 0,
                       key_added: str = "X_r2mae", copy: bool = False, layer: str | None = None,
                       input: str = "log", model_kwargs: dict | None = None, batch_size: int = 64,
                       lr: float = 1e-3, weight_decay: float = 0.05, device: str = "cpu", progress: bool = False,
                       cache: bool = True):
    """Pretrain a masked gene-expression model on ``adata`` and write the cell embedding to ``obsm[key_added]``.

    Parameters
    ----------
    adata
        ``anndata.AnnData`` (cells x genes); ``.X`` (or ``layers[layer]``) log-normalised, or raw counts with
        ``input="counts"``.
    model
        ``"mlp"`` or ``"transformer"`` (sizes in ``model_kwargs``).
    sampler
        Mask-ratio sampler or :func:`r2mae_core.masking.make_sampler` spec; ``None`` is :data:`DEFAULT_SAMPLER`
        (R²MAE U[0.1, 0.9]); ``{"kind": "r2mae", "low": a, "high": b}`` sets the interval (Dong, Wang & Kluger
        2025).
    steps, seed, batch_size, lr, weight_decay, device, progress
        Pretraining (:func:`fit_encoder`).
    key_added
        Embedding key in ``adata.obsm``; the parameters go to ``adata.uns[key_added]["params"]``.
    copy
        Return a modified copy instead of writing into ``adata``.
    layer, input
        Which matrix and its kind (see :func:`expression_matrix`).
    cache
        Cache the trained model on disk (same data and options -> no retraining).

    Returns
    -------
    AnnData or None
        The copy when ``copy=True``, else ``None`` (``adata`` is modified in place).
    """
    if not isinstance(key_added, str) or not key_added:
        raise ValueError(f"key_added={key_added!r} is not allowed: use a non-empty string")
    x = expression_matrix(adata, layer=layer, input=input)
    spec = masking.make_sampler(DEFAULT_SAMPLER if sampler is None else sampler)
    net, history = fit_encoder(x, model=model, model_kwargs=model_kwargs, sampler=spec, steps=steps,
                               batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed, device=device,
                               progress=progress, cache=cache)
    if copy:
        adata = adata.copy()
    adata.obsm[key_added] = embed(net, x)
    adata.uns[key_added] = {"params": {"model": _family(model), "sampler": spec.describe(), "steps": int(steps),
                                       "seed": int(seed), "layer": layer or "X", "input": input,
                                       "final_loss": float(history["loss"].iloc[-1])}}
    return adata if copy else None
