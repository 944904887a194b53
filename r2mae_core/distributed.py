r"""Data-parallel pretraining across processes: ``torchrun --nproc_per_node N`` (DistributedDataParallel).

One process trains one model with :func:`r2mae_core.train.pretrain`; under ``torchrun`` the same call trains it
data-parallel, with the same results as one process at the same *global* batch. How (docs/ARCHITECTURE.md §3):

- **One global batch, drawn the same on every rank.** Every rank draws the step's data indices (the epoch
  permutation), the ratio(s) and the masks of the whole global batch from the same seeded generators, exactly as
  one process does, and computes the forward and backward of its own contiguous block of rows only
  (:func:`row_block`; ``batch_size`` must divide by the world size): the step function sees the global batch and
  calls the model through :class:`LocalRows`, which cuts every batch-shaped argument to the rank's rows. So a
  per-batch R²MAE ratio is the same on every rank at a step (one global batch, one ratio); per-sample ratios and
  the masks differ from row to row and so across ranks, and every one of them is the row's draw in the
  one-process run of the same seed (reproducible from the seed, independent of the world size). The generators'
  states stay equal on every rank, and the checkpoint written by rank 0 resumes every rank, at any world size.
- **Gradients.** The model is wrapped in :class:`torch.nn.parallel.DistributedDataParallel`, which averages the
  gradients of the ranks' losses over the W ranks. Every model's loss is a mean over the loss terms of its batch
  (the masked patches or genes of an MAE, the labelled tokens of an MLM), and the ranks' rows hold different
  numbers of them whenever the ratio is drawn per sample, the mask is Bernoulli or the rows differ in length. So
  :class:`LocalRows` multiplies rank r's loss by :math:`W\,n_r / n` (:func:`loss_scale`: :math:`n_r` terms in
  its rows, :math:`n` in the global batch): the mean over ranks is then :math:`\sum_r n_r \bar\ell_r / n`, the
  one-process mean over the global batch, whatever the masks. (The DDP code of MAE and BERT leaves out this
  factor: each device's mean then weighs a term by 1 / its device's count.) With an exact-count mask at a
  per-batch ratio the factor is exactly 1. Masked diffusion's 1/t-weighted loss is a sum normalised by the
  global batch: its weights are multiplied by W instead.
- **U-MAE's uniformity term** is a mean over pairs of the global batch: :func:`gather_rows` concatenates every
  rank's features with a gradient that sums the ranks' gradients (:class:`_GatherRows`), so after DDP's average
  the gradient is one process's and λ means what it means in one process (see :func:`gather_rows`).
- bf16 autocast and ``torch.compile`` apply as in one process (the compiled module is the DDP-wrapped model; on
  CUDA, untested without a machine of several GPUs).

Backend: NCCL when CUDA is available, else gloo (the CPU test). Vmapped ensembles
(:mod:`r2mae_core.ensemble`, many small models in one process) are not data-parallel: a sweep of them is split
across machines in shards of the plan instead (:mod:`r2mae_core.sweep`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .masking import IGNORE_INDEX

__all__ = ["World", "init", "cleanup", "active", "world_size", "rank", "is_main", "barrier", "device",
           "row_block", "take_rows", "loss_scale", "gather_rows", "mean_across", "agree", "LocalRows", "wrap"]


@dataclass(frozen=True)
class World:
    """The process group as torchrun started it: ``rank`` of ``size`` processes, ``local_rank`` on this node."""

    rank: int
    size: int
    local_rank: int


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, str(default))
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not allowed: torchrun sets it to an integer >= 0") from None


def init(backend: str | None = None) -> World:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
    ``MASTER_PORT``); one process (no ``WORLD_SIZE`` or 1) starts no group. ``backend`` None: NCCL when CUDA is
    available (each process on ``cuda:LOCAL_RANK``), else gloo."""
    size, rank_, local = _env_int("WORLD_SIZE", 1), _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if size > 1 and not dist.is_initialized():
        backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
        if backend == "nccl":
            torch.cuda.set_device(local)
        dist.init_process_group(backend)
    return World(rank_, size, local)


def cleanup() -> None:
    """Leave the process group (nothing without one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    """Whether this process is one of several of a process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Processes of the group (1 without one)."""
    return dist.get_world_size() if active() else 1


def rank() -> int:
    """This process's rank (0 without a group)."""
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    """Whether this process writes what is written once (checkpoints, records): rank 0."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (nothing without a group)."""
    if active():
        dist.barrier()


def device() -> str:
    """This process's device: ``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``."""
    return f"cuda:{_env_int('LOCAL_RANK', 0)}" if torch.cuda.is_available() else "cpu"


def row_block(batch_size: int) -> slice:
    """This rank's contiguous rows ``[r·b, (r + 1)·b)`` of a global batch of ``batch_size``, ``b = B / world``."""
    size = world_size()
    if batch_size % size:
        raise ValueError(f"batch_size={batch_size} is not allowed under {size} processes: use a multiple of the "
                         "world size (every rank takes an equal block of the global batch)")
    b = batch_size // size
    return slice(rank() * b, (rank() + 1) * b)


def take_rows(value, rows: slice, batch_size: int, length: int | None = None):
    """``value`` cut to ``rows`` of a global batch of ``batch_size`` rows: a tensor whose first dimension is the
    batch, every such field of a named tuple (a ``TokenMask``), and flat ``(B·L,)`` positions of MLM targets
    (``positions``/``targets``/``weights``; ``length`` = L), whose weights are multiplied by the world size (the
    masked-diffusion loss is a sum normalised by the global batch); anything else as is."""
    if isinstance(value, Tensor):
        return value[rows] if value.ndim and value.shape[0] == batch_size else value
    if isinstance(value, tuple) and hasattr(value, "positions") and length is not None:
        keep = (value.positions >= rows.start * length) & (value.positions < rows.stop * length)
        weights = None if value.weights is None else value.weights[keep] * world_size()
        return type(value)(value.positions[keep] - rows.start * length, value.targets[keep], weights)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(take_rows(v, rows, batch_size, length) for v in value))
    return value


def _loss_terms(value) -> Tensor | None:
    """How many loss terms the model's second argument holds: the masked entries of a mask (a bool tensor or an
    object with a ``mask``), the labelled entries of integer labels or unweighted MLM targets; None for weighted
    targets (a sum, not a mean) or anything else."""
    if isinstance(value, tuple) and hasattr(value, "positions"):
        return None if value.weights is not None else (value.targets != IGNORE_INDEX).sum()
    mask = getattr(value, "mask", value)
    if not isinstance(mask, Tensor) or mask.is_floating_point():
        return None
    return mask.sum() if mask.dtype == torch.bool else (mask != IGNORE_INDEX).sum()


def loss_scale(global_arg, local_arg) -> Tensor | float:
    r"""The factor :math:`W\,n_r / n` of this rank's loss (module docstring): W times the loss terms of its rows
    over those of the global batch (1 when the argument holds no countable terms). A tensor: no host sync."""
    total, mine = _loss_terms(global_arg), _loss_terms(local_arg)
    if total is None or mine is None:
        return 1.0
    return mine.float() * world_size() / total.float().clamp_min(1.0)


class _GatherRows(torch.autograd.Function):
    """All-gather along rows whose backward all-reduces (sums) the incoming gradients and keeps this rank's
    block: every rank's copy of a loss on the gathered tensor sends its gradient back to the rank that owns the
    rows."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = slice(dist.get_rank() * x.shape[0], (dist.get_rank() + 1) * x.shape[0])
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rows]


def gather_rows(x: Tensor) -> Tensor:
    r"""Every rank's rows of ``x`` ``(b, ...)`` in rank order ``(world · b, ...)``, differentiable; ``x`` itself
    without a group.

    Gradient: each of the W ranks computes the same loss :math:`U(z)` on the gathered :math:`z`, and the backward
    sums the W copies' gradients, so rank r's rows :math:`z_r` receive :math:`W\,\partial U/\partial z_r`.
    DistributedDataParallel then averages the parameter gradients over the W ranks:
    :math:`\frac1W \sum_r W\,\frac{\partial U}{\partial z_r}\frac{\partial z_r}{\partial\theta} =
    \frac{\partial U}{\partial\theta}`, one process's gradient of U on the global batch. U-MAE's λ thus means the
    same at any world size. (The authors' ``GatherLayer``, zhangq327/U-MAE, returns only the local slice of the
    incoming gradient in its backward, so under DDP's average their λ acts as λ / W;
    ``torch.distributed.nn.functional.all_gather`` sums, as here.)
    """
    return _GatherRows.apply(x) if active() else x


def mean_across(x: Tensor) -> Tensor:
    """The mean of ``x`` over the ranks (a detached copy all-reduced; ``x`` itself without a group): the logged
    loss of a step is the mean of the ranks' losses, the objective DDP's averaged gradient descends."""
    if not active():
        return x
    x = x.detach().clone()
    dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x / dist.get_world_size()


def agree(obj):
    """Rank 0's ``obj`` on every rank (pickled broadcast; ``obj`` itself without a group): a decision that every
    rank must take alike, such as which runs a sweep still has to train."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class LocalRows:
    """The model as a step function calls it under data parallelism: every batch-shaped argument is cut to this
    rank's rows (:func:`take_rows`, :func:`row_block`) and passed to the data-parallel ``module``, whose loss is
    scaled by :func:`loss_scale` of the second argument (the mask or the labels); attributes (``config``,
    ``num_patches``) are the plain ``model``'s."""

    def __init__(self, module: Callable, model: nn.Module):
        self.module, self.model = module, model

    def __call__(self, *args, **kwargs):
        batch_size = args[0].shape[0]
        length = args[0].shape[1] if args[0].ndim > 1 else None
        rows = row_block(batch_size)
        local = tuple(take_rows(a, rows, batch_size, length) for a in args)
        out = self.module(*local, **{k: take_rows(v, rows, batch_size, length) for k, v in kwargs.items()})
        scale = loss_scale(args[1], local[1]) if len(args) > 1 else 1.0
        return out._replace(loss=out.loss * scale) if hasattr(out, "_replace") else out * scale

    def __getattr__(self, name: str):
        return getattr(self.model, name)


def wrap(model: nn.Module, compiled: Callable[[nn.Module], Callable]) -> Callable:
    """What :func:`r2mae_core.train.pretrain` calls: ``compiled(model)`` in one process; under a process group
    ``compiled(DistributedDataParallel(model))`` seen through :class:`LocalRows`. ``compiled`` is
    ``torch.compile`` with the run's options, or the identity."""
    if not active():
        return compiled(model)
    on_cuda = next(model.parameters()).device.type == "cuda"
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=[torch.cuda.current_device()] if on_cuda else None)
    return LocalRows(compiled(ddp), model)
