"""GPU check: the CUDA code paths of the project and how busy its small models keep one GPU, in one command.

``python -m r2mae_core.gpu_check OUT_DIR [--device cuda] [--quick] [--budget-s 240] [--notebooks NN ...]``

1. dense matmul peak (bf16, tf32, fp32) of the device;
2. one ViT-MAE through :func:`r2mae_core.train.pretrain` (bf16 autocast on CUDA) at several sizes and batches,
   eager and under ``torch.compile``, a fixed ratio against R²MAE U[0.5, 0.9];
3. k ViT-MAEs through :func:`r2mae_core.ensemble.pretrain_ensemble`, k = 1, 8, 32, and k text encoders
   (03's sizes S, M, L at 03 full's batch and sequence length, :data:`r2mae_core.experiments.language.mlm_step`),
   k = 1, 8;
4. the evaluation at 02 full's scale (:func:`eval_rows`): feature extraction, the L-BFGS probe on the device,
   BN+LP and fine-tuning steps, k-NN on the device — the costs :mod:`r2mae_core.shard_time` now takes as
   allowances;
5. each named notebook's smoke parameters executed as a script on the device (the GPU machine has no papermill).

Achieved FLOP/s count forward + backward of one member (``FlopCounterMode``) against the measured peak at the
training precision. Rows are written to ``OUT_DIR/gpu_check.json`` as they finish, so a run killed at its time
limit keeps what it measured; a failing row is recorded as a finding and the check goes on. ``--device cpu
--quick`` is the dry run of every code path, to run before any GPU time is spent.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from . import masking
from .ensemble import pretrain_ensemble
from .experiments.image_runs import SIZES
from .models import build_model
from .paths import REPO_ROOT, check_notebook
from .runs import RunSpec, fixed_method
from .train import TrainConfig, pretrain

#: The ``(n, reps)`` of the matmul peak on a GPU: the mean FLOP/s of ``reps`` ``n × n`` products.
PEAK_MATMUL_SIZE = (8192, 10)
#: The share of ``--budget-s`` after which no new micro-benchmark row starts (the evaluation rows get a tenth
#: more; the notebooks' code paths the rest: at the default 240 s, about two minutes).
BENCH_SHARE = 0.45

__all__ = ["matmul_peak", "step_flops", "single_row", "ensemble_row", "text_row", "eval_rows", "run_notebook_script",
           "main"]

FIXED = {"kind": "fixed", "ratio": 0.75}
R2MAE = {"kind": "r2mae", "low": 0.5, "high": 0.9}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_peak(device: str, dtype: torch.dtype, n: int, reps: int) -> float:
    """Mean FLOP/s of ``reps`` dense ``n × n`` products (2n³ each) after three warm-ups."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    for _ in range(3):
        a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def _vit(size: str, seed: int = 0):
    return build_model("vit", seed=seed, **{**SIZES["vit"][size], "img_size": 28, "in_chans": 1, "patch": 4})


def step_flops(size: str, batch: int, device: str) -> float:
    """FLOPs of one forward + backward of a ViT-MAE at ratio 0.75 (counted with ``FlopCounterMode``)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = _vit(size).to(device)
    x = torch.rand(batch, 1, 28, 28, device=device)
    sub = masking.random_subset_mask(torch.full((batch,), 0.75), model.num_patches, generator=torch.Generator())
    with FlopCounterMode(display=False) as counter:
        model(x, sub.mask.to(device)).loss.backward()
    return float(counter.get_total_flops())


def _data(batch: int, device: str) -> torch.Tensor:
    return torch.rand(max(4 * batch, 2048), 1, 28, 28, device=device)


def _step_seconds(history) -> float:
    """Mean step time after the first quarter of the steps (compilation and warm-up)."""
    s = history["seconds"].to_numpy()
    warm = max(1, len(s) // 4)
    return float((s[-1] - s[warm - 1]) / (len(s) - warm))


def _schedule(steps: int, batch: int) -> TrainConfig:
    """``steps`` of batch ``batch`` at MAE's learning rate ``1.5e-4 · batch / 256``."""
    return TrainConfig(steps=steps, batch_size=batch, lr=1.5e-4 * batch / 256)


def single_row(size: str, batch: int, steps: int, compile: bool, spec: dict, device: str) -> dict:
    """One ViT-MAE through ``pretrain``: step time and samples/s."""
    res = pretrain(_vit(size), _data(batch, device), sampler=masking.make_sampler(spec), train=_schedule(steps, batch),
                   device=device, compile=compile, progress=False, callback=lambda step, row: _sync(device))
    dt = _step_seconds(res.history)
    return {"kind": "single", "size": size, "k": 1, "batch": batch, "compile": compile, "sampler": spec["kind"],
            "step_ms": 1e3 * dt, "samples_per_s": batch / dt}


def ensemble_row(size: str, k: int, batch: int, steps: int, compile: bool, spec: dict, *, device: str) -> dict:
    """k ViT-MAEs through ``pretrain_ensemble``: step time and samples/s of the group."""
    t0 = time.perf_counter()
    results = pretrain_ensemble([_vit(size, seed=m) for m in range(k)], _data(batch, device),
                                samplers=[masking.make_sampler(spec)] * k, seeds=list(range(k)),
                                train=_schedule(steps, batch), device=device, compile=compile)
    dt = _step_seconds(results[0].history)
    return {"kind": "ensemble", "size": size, "k": k, "batch": batch, "compile": compile, "sampler": spec["kind"],
            "step_ms": 1e3 * dt, "samples_per_s": k * batch / dt, "wall_s": time.perf_counter() - t0}


def text_row(size: str, k: int, batch: int, seq_len: int, steps: int, device: str) -> dict:
    """k text encoders of 03's ``size`` (vocabulary 8192) through ``pretrain_ensemble`` with 03's MLM step,
    compiled on CUDA: step time, tokens/s and the FLOPs of one member's step."""
    from .experiments import language
    from .shard_time import step_flops as run_flops

    config = {"vocab_size": 8192, "max_len": seq_len, **language.SIZES[size]}
    ids = torch.randint(language.text.N_SPECIAL, 8192, (max(4 * batch, 512), seq_len), generator=torch.Generator())
    t0 = time.perf_counter()
    results = pretrain_ensemble([build_model("text_encoder", seed=m, **config) for m in range(k)], ids,
                                samplers=[masking.make_sampler({"kind": "fixed", "ratio": 0.15})] * k,
                                seeds=list(range(k)), train=_schedule(steps, batch), step=language.mlm_step,
                                device=device, compile=device.startswith("cuda"))
    dt = _step_seconds(results[0].history)
    spec = RunSpec("probe", "text_encoder", size, fixed_method(0.15), 0, TrainConfig(steps=1, batch_size=batch),
                   model=config)
    return {"kind": "text", "size": size, "k": k, "batch": batch, "compile": device.startswith("cuda"),
            "sampler": "fixed", "step_ms": 1e3 * dt, "samples_per_s": k * batch / dt,
            "member_flops": run_flops(spec), "wall_s": time.perf_counter() - t0}


def eval_rows(device: str, quick: bool) -> list[dict]:
    """The evaluation's parts at 02 full's scale (``quick``: small) on ``device``: seconds of each and per step.

    Features of a ViT-S (patch 4) on ``n`` images; the torch L-BFGS probe (five C, refit) on ``n`` × 64
    features of ten classes; a BN+LP epoch (batch 256) and a fine-tuning epoch of the ViT-S (batch 128) on
    ``n_ft`` images; k-NN (k = 20, cosine, sklearn on the CPU) of 10 000 against ``n`` features.
    """
    from . import evaluate

    n, n_ft, n_knn = (512, 256, 128) if quick else (50000, 10000, 10000)
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (n,), generator=gen).numpy()
    centres = torch.randn(10, 64, generator=gen)
    feats = (centres[labels] + 2.0 * torch.randn(n, 64, generator=gen)).numpy()
    images = (torch.rand(n, 28, 28, generator=gen) * 255).to(torch.uint8).numpy()
    model = _vit("S")
    rows = []

    def timed(what: str, fn, steps: int = 0) -> None:
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        dt = time.perf_counter() - t0
        rows.append({"kind": "eval", "what": what, "n": n, "seconds": dt,
                     "ms_per_step": 1e3 * dt / steps if steps else float("nan")})

    timed("features", lambda: evaluate.extract_features(model, images, device=device))
    timed("lp_torch", lambda: evaluate.linear_probe(feats, labels, feats[:n_knn], labels[:n_knn], solver="torch",
                                                    device=device))
    timed("bn_lp_epoch", lambda: evaluate.bn_linear_probe(feats, labels, feats[:n_knn], labels[:n_knn], epochs=1,
                                                          device=device), steps=-(-n // 256))
    timed("ft_epoch", lambda: evaluate.finetune(model, images[:n_ft], labels[:n_ft], images[:n_knn],
                                                labels[:n_knn], mode="full", epochs=1, device=device),
          steps=-(-n_ft // 128))
    timed("knn", lambda: evaluate.knn_accuracy(feats, labels, feats[:n_knn], labels[:n_knn], k=20,
                                               device=None if device == "cpu" else device))
    return rows


def run_notebook_script(notebook: str, overrides: dict, timeout: float) -> dict:
    """Execute ``notebooks/<notebook>.py`` as a script in a subprocess, its parameters cell followed by
    ``overrides``; returns the exit status, wall time and the output's tail."""
    check_notebook(notebook)
    lines = [f"{name} = {value!r}" for name, value in overrides.items()]
    code = (f"import sys; src = open({str(REPO_ROOT / 'notebooks' / f'{notebook}.py')!r}).read().splitlines(); "
            "start = next(i for i, s in enumerate(src) if s.startswith('# %%') and 'parameters' in s); "
            "end = next(i for i in range(start + 1, len(src)) if src[i].startswith('# %%')); "
            f"src[end:end] = {lines!r}; exec(compile(chr(10).join(src), {notebook!r}, 'exec'), {{}})")
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT / "notebooks", capture_output=True, text=True,
                           timeout=timeout, env={**os.environ, "MPLBACKEND": "Agg"})
        rc, text = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as err:
        rc, text = "timeout", str(err.stdout or "")
    return {"kind": "notebook", "notebook": notebook, "rc": rc, "wall_s": time.perf_counter() - t0,
            "tail": text[-1500:]}


def _plan(quick: bool) -> list[tuple]:
    if quick:
        return [("single", "S", 1, 16, 6, False, FIXED), ("single", "S", 1, 16, 6, True, R2MAE),
                ("ensemble", "S", 2, 16, 6, False, R2MAE), ("ensemble", "S", 2, 16, 6, True, FIXED)]
    plan = [("single", s, 1, 256, 150, False, FIXED) for s in ("S", "M", "L")]
    plan += [("single", "M", 1, b, 60, False, FIXED) for b in (4096, 16384)]
    plan += [("single", "M", 1, 256, 200, True, spec) for spec in (FIXED, R2MAE)]
    plan += [("ensemble", "S", k, 256, 60, True, FIXED) for k in (1, 8, 32)]
    plan += [("ensemble", "S", 32, 256, 60, True, R2MAE), ("ensemble", "M", 32, 256, 40, True, FIXED)]
    return plan


def _text_plan(quick: bool) -> list[tuple]:
    """(size, k, batch, seq_len, steps) of the text-encoder rows: 03 full's batch 128 and length 128."""
    if quick:
        return [("S", 1, 8, 32, 4), ("S", 2, 8, 32, 4)]
    return [(size, k, 128, 128, 40) for size in ("S", "M", "L") for k in (1, 8)]


def _table(report: dict) -> str:
    lines = [f"{'kind':8} {'size':4} {'k':>3} {'batch':>6} {'comp':>5} {'sampler':>7} {'ms/step':>8} "
             f"{'samples/s':>10} {'of peak':>8}"]
    for r in report["rows"]:
        if "error" in r:
            lines.append(f"{r['kind']:8} {r.get('size', r.get('what', '')):4} {r.get('k', ''):>3} ERROR "
                         f"{r['error'][:90]}")
        elif r["kind"] == "eval":
            lines.append(f"eval     {r['what']:12} n={r['n']:<6} {r['seconds']:8.2f} s  "
                         f"{r['ms_per_step']:8.2f} ms/step")
        else:
            lines.append(f"{r['kind']:8} {r['size']:4} {r['k']:>3} {r['batch']:>6} {str(r['compile']):>5} "
                         f"{r['sampler']:>7} {r['step_ms']:8.2f} {r['samples_per_s']:10.0f} "
                         f"{r.get('frac_peak', float('nan')):8.4f}")
    lines += [f"notebook {r['notebook']}: rc {r['rc']}, {r['wall_s']:.0f} s" for r in report["notebooks"]]
    return "\n".join(lines)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line; a bad ``--budget-s`` or notebook name raises ``ValueError`` (one line)."""
    ap = argparse.ArgumentParser(prog="python -m r2mae_core.gpu_check", description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: the CPU dry run of every code path")
    ap.add_argument("--budget-s", type=float, default=240.0, help="start nothing new after this many seconds")
    ap.add_argument("--notebooks", nargs="*", default=["02_vision", "03_language", "04_dna", "06_spectral_clustering"])
    args = ap.parse_args(argv)
    if args.budget_s <= 0:
        raise ValueError(f"--budget-s={args.budget_s} is not allowed: use a positive number of seconds")
    for nb in args.notebooks:
        check_notebook(nb)
    return args


def _device_info(dev: str, quick: bool) -> dict:
    """Versions, the device's name and its measured matmul peaks (bf16, fp32 and, on CUDA, tf32)."""
    n, reps = (256, 2) if quick else PEAK_MATMUL_SIZE
    cuda = dev.startswith("cuda")
    info = {"torch": torch.__version__, "python": sys.version.split()[0], "device": dev,
            "name": torch.cuda.get_device_name(0) if cuda else "cpu",
            "bf16_peak": matmul_peak(dev, torch.bfloat16, n, reps),
            "fp32_peak": matmul_peak(dev, torch.float32, n, reps)}
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        info["tf32_peak"] = matmul_peak(dev, torch.float32, n, reps)
        torch.backends.cuda.matmul.allow_tf32 = False
    return info


def _failed(row: dict, err: Exception) -> dict:
    """A row whose code path raised: the failure is a finding and the check goes on."""
    return {**row, "error": repr(err)[:400]}


def _bench_rows(args: argparse.Namespace, peak: float, out_of_time, record) -> None:
    """Image-model, text-encoder and evaluation rows, each recorded as it finishes, while time is left."""
    flops: dict[tuple, float] = {}
    for kind, size, k, batch, steps, comp, spec in _plan(args.quick):
        if out_of_time(BENCH_SHARE):  # keep the rest for the notebooks
            break
        try:
            row = (single_row(size, batch, steps, comp, spec, args.device) if kind == "single"
                   else ensemble_row(size, k, batch, steps, comp, spec, device=args.device))
            flops.setdefault((size, batch), step_flops(size, batch, args.device))
            row["frac_peak"] = k * flops[(size, batch)] / (row["step_ms"] / 1e3) / peak
        except Exception as err:  # noqa: BLE001 - a failing code path is a finding; the check goes on
            row = _failed({"kind": kind, "size": size, "k": k, "compile": comp, "sampler": spec["kind"]}, err)
        record([row])
    for size, k, batch, seq_len, steps in _text_plan(args.quick):
        if out_of_time(BENCH_SHARE):
            break
        try:
            row = text_row(size, k, batch, seq_len, steps, args.device)
            row["frac_peak"] = k * row["member_flops"] / (row["step_ms"] / 1e3) / peak
        except Exception as err:  # noqa: BLE001 - a failing code path is a finding; the check goes on
            row = _failed({"kind": "text", "size": size, "k": k}, err)
        record([row])
    if not out_of_time(BENCH_SHARE + 0.1):
        try:
            rows = eval_rows(args.device, args.quick)
        except Exception as err:  # noqa: BLE001 - a failing code path is a finding; the check goes on
            rows = [_failed({"kind": "eval", "what": "evaluation"}, err)]
        record(rows)


def _notebook_rows(args: argparse.Namespace, seconds_left, report: dict, save) -> None:
    """Each notebook's smoke script on the device (GPU settings: compiled ensembles of 8), while time is left."""
    extra = {nb: {"compile_model": True, "ensemble_size": 8} for nb in ("02_vision", "06_spectral_clustering")}
    extra.update({nb: {"ensemble_size": 8} for nb in ("03_language", "04_dna")})  # token ensembles compile on CUDA
    for nb in args.notebooks:
        left = seconds_left()
        if left < 30:
            report["notebooks"].append({"kind": "notebook", "notebook": nb, "rc": "skipped (budget)", "wall_s": 0.0})
            continue
        row = run_notebook_script(nb, {"device": args.device, **extra.get(nb, {})}, timeout=min(180.0, left))
        report["notebooks"].append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "tail"}), flush=True)
        if row["rc"] != 0:
            print(row["tail"], flush=True)
        save()


def main(argv: list[str] | None = None) -> int:
    """Run the check (module docstring) and write ``<out>/gpu_check.json``; 2 on bad arguments."""
    try:
        args = _arguments(argv)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    t_start, cuda = time.perf_counter(), args.device.startswith("cuda")
    info = _device_info(args.device, args.quick)
    report = {"info": info, "rows": [], "notebooks": []}
    out_file = args.out / "gpu_check.json"

    def save() -> None:
        out_file.write_text(json.dumps(report, indent=1))

    def record(rows: list[dict]) -> None:
        report["rows"] += rows
        print(json.dumps(rows[-1]), flush=True)
        save()

    def seconds_left() -> float:
        return args.budget_s - (time.perf_counter() - t_start)

    _bench_rows(args, info["bf16_peak" if cuda else "fp32_peak"],
                lambda share: time.perf_counter() - t_start > args.budget_s * share, record)
    if cuda:
        report["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    _notebook_rows(args, seconds_left, report, save)
    print(_table(report))
    print(f"total {time.perf_counter() - t_start:.0f} s; bf16 peak {info['bf16_peak'] / 1e12:.1f} TFLOP/s")
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
