"""05_single_cell: masked gene-expression pretraining, R²MAE against fixed, scGPT's and scheduled ratios.

``run(config)`` pretrains a gene-level masked model (:mod:`r2mae_core.models.gene_mae`: MLP, and a small
scGPT-like Transformer) with every masking scheme and seed, embeds every cell, and evaluates the embedding:

* **annotation**: linear probe (:func:`r2mae_core.evaluate.linear_probe`: standardised embedding + multinomial
  logistic regression, ``C`` chosen by macro-F1 on a stratified inner split of the training fold only) under
  repeated stratified K-fold CV; accuracy and macro-F1 per outer test fold (:func:`annotation_cv`);
* **clustering**: leiden on the embedding's kNN graph (scanpy), NMI and ARI against the labels at a
  resolution of a small grid chosen on the other half of the cells' labels (2-fold cross-fitting; scIB's
  "optimal resolution" scores beside them), and the label silhouette of the embedding (sklearn, Euclidean,
  in [-1, 1]) (:func:`clustering_scores`);
* **reconstruction**: MSE and Pearson r on masked entries of cells held out of pretraining, at several
  evaluation ratios (:func:`r2mae_core.single_cell.reconstruction_metrics`).

Reference rows: PCA (``pca_comps`` components, scanpy) of the same input and the randomly initialised encoder.
Pretraining is unsupervised and sees every cell except the reconstruction hold-out (like PCA, which sees all
cells); labels are used only inside the CV folds. Each (dataset, model, method, seed) unit is a run of the
engine (:mod:`r2mae_core.runs`), stored as a data-only record;
every method of a seed shares its CV splits and leiden seed, so differences are paired over seeds.

Datasets (``DATASET_SPECS``): PBMC 68k reduced (700 cells, 765 genes, 10 cell types in ``bulk_labels``; the
log-normalised ``.raw``) and HSMM (271 cells, log1p FPKM, the ``hsmm_genes`` most variable genes by
``sc.pp.highly_variable_genes``; labels: the 4 time points). The Transformer reads the ``transformer_genes`` most
variable genes of the dataset's input (attention over every gene is too slow on a CPU), and runs only on
``transformer_datasets``.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score
from sklearn.model_selection import RepeatedStratifiedKFold
from threadpoolctl import threadpool_limits

from .. import data as datasets
from .. import evaluate, single_cell
from ..cache import cache_key
from ..data import registry
from ..fingerprint import code_fingerprint
from ..masking import make_sampler
from ..models import model_config
from ..paths import cache_root, data_root
from ..records import load_record, record_digest, save_record
from ..runs import (
    Method,
    Options,
    RunSpec,
    TrainConfig,
    equivalent_control,
    execute,
    fixed_method,
    group_checkpoint_path,
    r2mae_method,
    reference_method,
)
from ..validation import (
    FRACTION,
    NON_NEGATIVE,
    POSITIVE,
    check_choice,
    check_choices,
    check_fields,
    check_list,
    check_numbers,
    check_per,
    check_ratio,
    check_ratios,
    check_seed,
    count,
    param,
)

__all__ = ["Config", "run", "plan", "work", "DATASET_SPECS", "MODELS", "NAMESPACE", "load_dataset", "load_arrays",
           "arrays_path", "methods", "equal_effect_control", "select_methods", "annotation_cv", "clustering_scores",
           "clustering_halves", "umap_adata", "pretrain_unit", "pretrain_units", "score_unit", "campaign_plan",
           "campaign_work", "ledger_record", "carry_paths", "data_names", "data_checksum", "spec_data_digest",
           "DRY_RUN"]

#: Dataset name -> label column of ``obs`` and a short name for tables.
DATASET_SPECS: dict[str, dict] = {
    "pbmc68k_reduced": {"label": "bulk_labels", "short": "pbmc"},
    "hsmm": {"label": "Hours", "short": "hsmm"},
}
MODELS = ("mlp", "transformer")
REFERENCES = ("PCA", "random init")
NAMESPACE = "single_cell_runs"
#: Cache folder of the units' resumable checkpoints while they train (removed once a unit's record is stored).
CHECKPOINTS = "single_cell_models"


@dataclass(frozen=True)
class Config:
    """One study (smoke defaults; ``parameters/{quick,full}/05_single_cell.yaml`` scale it).

    R²MAE's interval (``r2mae_low``, ``r2mae_high``) is declared in the profile before any run and never tuned
    on test folds; the scheduled baseline decays linearly from ``r2mae_high`` to ``r2mae_low`` (the same interval).
    ``umap_methods`` names the UMAP figure's methods (:func:`select_methods`: names or one-method groups) on the
    first dataset and model, first seed.
    """

    seed: int = param(0, check_seed)
    n_seeds: int = param(2, count(2))
    datasets: tuple[str, ...] = param(("pbmc68k_reduced",), check_choices, choices=DATASET_SPECS, min_len=1)
    models: tuple[str, ...] = param(("mlp",), check_choices, choices=MODELS, min_len=1)
    transformer_datasets: tuple[str, ...] = param(("pbmc68k_reduced",), check_choices, choices=DATASET_SPECS)
    fixed_ratios: tuple[float, ...] = param((0.15, 0.5), check_ratios)
    transformer_fixed_ratios: tuple[float, ...] = param((0.15, 0.5), check_ratios)
    choice_values: tuple[float, ...] = param((0.25, 0.5, 0.75), check_ratios)
    r2mae_low: float = param(0.1, check_ratio)
    r2mae_high: float = param(0.9, check_ratio)
    r2mae_per: str = param("batch", check_per)
    schedule_shape: str = param("linear", check_choice, choices=("linear", "cosine"))
    steps: int = param(30, count(1))
    batch_size: int = param(64, count(1))
    lr: float = param(1e-3, POSITIVE)
    weight_decay: float = param(0.05, NON_NEGATIVE)
    mlp_width: int = param(64, count(1))
    mlp_depth: int = param(1, count(1))
    mlp_latent: int = param(16, count(1))
    transformer_steps: int = param(30, count(1))
    transformer_genes: int = param(32, count(1))
    transformer_dim: int = param(32, count(1))
    transformer_depth: int = param(1, count(1))
    transformer_heads: int = param(4, count(1))
    hsmm_genes: int = param(1000, count(10))
    pca_comps: int = param(50, count(1))
    cv_folds: int = param(3, count(2))
    cv_repeats: int = param(2, count(1))
    probe_cs: tuple[float, ...] = param((0.1, 1.0), check_numbers, low=0, low_open=True)
    val_fraction: float = param(0.25, FRACTION)
    n_neighbors: int = param(15, count(2))
    neighbors_method: str = param("umap", check_choice, choices=("umap", "gauss"))
    leiden_resolutions: tuple[float, ...] = param((1.0,), check_numbers, low=0, low_open=True)
    recon_ratios: tuple[float, ...] = param((0.15, 0.5), check_ratios)
    holdout: float = param(0.1, FRACTION)
    umap_methods: tuple[str, ...] = param(("PCA", "choice", "r2mae"), check_list)
    device: str = param("cpu", check_choice, choices=("cpu", "cuda"))

    def __post_init__(self) -> None:
        check_fields(self)
        for model in MODELS:  # one clear line for sizes the model refuses (dim % heads, ...)
            try:
                model_config(single_cell.MODEL_ALIASES[model], n_genes=1, **self.model_kwargs(model))
            except ValueError as err:
                raise ValueError(f"{model} model: {err}") from None
        for method in self.methods("mlp"):  # one clear line for low > high, unknown per/shape, ...
            make_sampler(method.sampler)
        if not self.umap_methods:
            raise ValueError("umap_methods=() is not allowed: name at least one method")
        select_methods(self, self.models[0], self.umap_methods)  # one clear line for an unknown method

    def methods(self, model: str) -> list[Method]:
        """The masking methods of ``model`` (records): the fixed sweep (group ``fixed``), scGPT's per-batch choice
        (``choice``), the schedule (``scheduled``) and the declared R²MAE (``r2mae``)."""
        ratios = self.fixed_ratios if model == "mlp" else self.transformer_fixed_ratios
        lo, hi = self.r2mae_low, self.r2mae_high
        return [*(fixed_method(r) for r in ratios),
                Method("scGPT choice", "choice", {"kind": "choice", "values": list(self.choice_values), "per": "batch"},
                       "choice"),
                Method(f"scheduled {hi:g}→{lo:g}", "scheduled",
                       {"kind": "scheduled", "start": hi, "end": lo, "shape": self.schedule_shape}, "scheduled"),
                r2mae_method(lo, hi, self.r2mae_per)]

    def model_kwargs(self, model: str) -> dict:
        """Sizes of ``model`` (``n_genes`` comes from the data)."""
        if model == "mlp":
            return {"width": self.mlp_width, "depth": self.mlp_depth, "latent": self.mlp_latent}
        return {"dim": self.transformer_dim, "depth": self.transformer_depth, "heads": self.transformer_heads}

    def seed_of(self, *keys: int) -> int:
        """Child seed for a study point: SeedSequence([seed, *keys]) (stable under adding other points)."""
        state = np.random.SeedSequence([self.seed, *keys]).generate_state(1, dtype=np.uint64)[0]
        return int(state >> np.uint64(1))


def methods(config: Config, model: str) -> list[Method]:
    """Every method of ``model`` in table order: the masking schemes, the declared R²MAE's equal-effect control
    when no fixed ratio of the sweep is it (:func:`equal_effect_control`), then the references (group
    ``reference``)."""
    recipes = config.methods(model)
    control = equal_effect_control(config, model)
    return [*recipes, *([] if control in recipes else [control]), *(reference_method(name) for name in REFERENCES)]


def equal_effect_control(config: Config, model: str) -> Method:
    """The fixed ratio of equal population effect of ``model``'s declared R²MAE, m_eq = E[m²(1−m)] / E[m(1−m)]
    for m ~ U[r2mae_low, r2mae_high] (:func:`r2mae_core.runs.equivalent_control`; 0.5 for any interval symmetric
    about 0.5): the sweep's fixed run at m_eq when there is one (trained once), else a run of group
    ``equivalent`` with the same seeds, steps and ensemble."""
    recipes = config.methods(model)
    return equivalent_control(next(m for m in recipes if m.group == "r2mae"), recipes)


def select_methods(config: Config, model: str, keys) -> list[Method]:
    """The methods of ``model`` named by ``keys``: each key is a method's name (``"PCA"``, ``"fixed 0.5"``) or a
    group holding exactly one method (``"r2mae"``, ``"choice"``, ``"scheduled"``)."""
    every = methods(config, model)
    out = []
    for key in keys:
        hits = [m for m in every if m.name == key] or [m for m in every if m.group == key]
        if len(hits) != 1:
            raise ValueError(f"method {key!r} is not allowed: use a name of {[m.name for m in every]} or a group "
                             "with one method (r2mae, choice, scheduled)")
        out.append(hits[0])
    return out


# --------------------------------------------------------------------------------------------------- data
_DATA_MEMO: dict = {}


def load_dataset(name: str, *, hsmm_genes: int = 1000, transformer_genes: int = 128) -> dict:
    """Checked log-expression, labels and the Transformer's gene subset of a dataset (memoised per process).

    Returns
    -------
    dict
        ``adata`` (cells x genes used, ``.X`` log-expression), ``x`` (dense float32), ``y`` (int codes),
        ``labels`` (category names), ``tf_genes`` (column indices of the ``transformer_genes`` most variable
        genes), ``checksum`` (of ``x``).
    """
    import scanpy as sc

    key = (name, hsmm_genes, transformer_genes)
    if key in _DATA_MEMO:
        return _DATA_MEMO[key]
    if name not in DATASET_SPECS:
        raise ValueError(f"dataset={name!r} is not allowed: use one of {list(DATASET_SPECS)}")
    adata = datasets.load(name)
    if name == "hsmm":
        sc.pp.filter_genes(adata, min_cells=3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sc.pp.highly_variable_genes(adata, n_top_genes=hsmm_genes, flavor="seurat")
        adata = adata[:, adata.var["highly_variable"].to_numpy()].copy()
        del adata.layers["fpkm"]
    x = single_cell.expression_matrix(adata)
    labels = adata.obs[DATASET_SPECS[name]["label"]].astype("category")
    probe = sc.AnnData(x.copy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.pp.highly_variable_genes(probe, n_top_genes=min(transformer_genes, x.shape[1]), flavor="seurat")
    tf_genes = np.flatnonzero(probe.var["highly_variable"].to_numpy())
    out = {"adata": adata, "x": x, "y": labels.cat.codes.to_numpy().astype(np.int64),
           "labels": [str(c) for c in labels.cat.categories], "tf_genes": tf_genes,
           "checksum": single_cell.matrix_checksum(x)}
    _DATA_MEMO[key] = out
    return out


def arrays_path(name: str, hsmm_genes: int, transformer_genes: int) -> Path:
    """Where :func:`load_arrays` keeps a dataset's arrays: ``data/single_cell_arrays/<name>-h<h>-t<t>.npz``."""
    return data_root() / "single_cell_arrays" / f"{name}-h{hsmm_genes}-t{transformer_genes}.npz"


def load_arrays(name: str, *, hsmm_genes: int = 1000, transformer_genes: int = 128) -> dict:
    """What a unit reads of a dataset, without scanpy: ``x``, ``y``, ``labels``, ``tf_genes`` and ``checksum`` of
    :func:`load_dataset`, kept as a data-only record (:func:`arrays_path`) that a machine without scanpy or
    anndata (the GPU machine, which is carried the record and not the dataset) reads instead.

    Where the dataset is prepared (or not yet carried as a record) the arrays are built from it and the record
    is rewritten when it differs (:func:`r2mae_core.records.record_digest`), so a record never outlives a change
    of the dataset or of :func:`load_dataset`; elsewhere the record is read as it is.
    """
    key = (name, hsmm_genes, transformer_genes)
    if key not in _ARRAYS_MEMO:
        path = arrays_path(name, hsmm_genes, transformer_genes)
        stored = load_record(path) if path.exists() else None
        if stored is None or registry.is_prepared(name):
            ds = load_dataset(name, hsmm_genes=hsmm_genes, transformer_genes=transformer_genes)
            arrays = {k: ds[k] for k in ("x", "y", "labels", "tf_genes", "checksum")}
            if stored is None or record_digest(stored) != record_digest(arrays):
                save_record(path, arrays)
                stored = load_record(path)
        _ARRAYS_MEMO[key] = stored
    return _ARRAYS_MEMO[key]


_ARRAYS_MEMO: dict[tuple, dict] = {}


def _arrays_of(spec: RunSpec) -> dict:
    data = spec.data
    return load_arrays(data["dataset"], hsmm_genes=data["hsmm_genes"], transformer_genes=data["transformer_genes"])


def _encoder_inputs(spec: RunSpec) -> tuple[np.ndarray, np.ndarray]:
    """The matrix a unit's encoder reads (every gene for the MLP, the Transformer's genes for it) and the
    boolean mask of the cells held out of pretraining."""
    ds = _arrays_of(spec)
    xm = ds["x"] if spec.family == "mlp" else ds["x"][:, ds["tf_genes"]]
    return xm, _holdout_cells(spec.data["holdout"], spec.data["holdout_seed"], len(xm))


def _pretrained_record(spec: RunSpec, net, history: pd.DataFrame, xm: np.ndarray, held: np.ndarray) -> dict:
    """A unit's pretraining part from its encoder: history (empty for a reference), reconstruction on the
    held-out cells at each evaluation ratio, embedding of every cell."""
    recon = pd.DataFrame([{"eval_ratio": float(r), **single_cell.reconstruction_metrics(
        net, xm[held], r, seed=spec.evaluation["recon_seed"])} for r in spec.evaluation["recon"]])
    hist = (history[["step", "loss", "ratio_mean"]].reset_index(drop=True) if spec.train is not None
            else _empty_history())
    return {"history": hist, "reconstruction": recon, "embedding": single_cell.embed(net, xm).astype(np.float32)}


def _empty_history() -> pd.DataFrame:
    return pd.DataFrame({"step": np.zeros(0, np.int64), "loss": np.zeros(0), "ratio_mean": np.zeros(0)})


def _holdout_cells(holdout: float, seed: int, n: int) -> np.ndarray:
    """Boolean (n,) mask of the ``holdout`` fraction of cells (at least 2) held out of pretraining
    (reconstruction is scored on them), drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    held = np.zeros(n, dtype=bool)
    held[rng.permutation(n)[: max(2, int(round(holdout * n)))]] = True
    return held


# --------------------------------------------------------------------------------------------- evaluation
def cv_splits(y: np.ndarray, *, folds: int, repeats: int, seed: int) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """Repeated stratified K-fold splits ``(repeat, fold, train_idx, test_idx)`` (sklearn)."""
    rskf = RepeatedStratifiedKFold(n_splits=folds, n_repeats=repeats, random_state=seed % 2**32)
    return [(i // folds, i % folds, tr, te) for i, (tr, te) in enumerate(rskf.split(np.zeros(len(y)), y))]


def annotation_cv(z: np.ndarray, y: np.ndarray, *, folds: int = 5, repeats: int = 2, seed: int = 0,
                  cs=(0.01, 0.1, 1.0, 10.0), val_fraction: float = 0.25) -> pd.DataFrame:
    """Cell-type annotation by linear probe under repeated stratified CV.

    Per fold, :func:`r2mae_core.evaluate.linear_probe` (sklearn solver): ``C`` from ``cs`` chosen by macro-F1 on
    a stratified ``val_fraction`` split of the training fold only, refit on the whole training fold, scored on
    the test fold.

    Returns
    -------
    DataFrame
        One row per (repeat, fold): ``val_f1`` (inner validation, training fold only), ``test_acc``,
        ``test_f1`` (macro-F1 over the classes of the test fold's truth and predictions), ``C``.
    """
    rows = []
    for repeat, fold, tr, te in cv_splits(y, folds=folds, repeats=repeats, seed=seed):
        res = evaluate.linear_probe(z[tr], y[tr], z[te], y[te], Cs=cs, val_fraction=val_fraction,
                                    seed=(seed + 7919 * repeat + fold) % 2**32, select="macro_f1",
                                    metrics=("acc", "macro_f1"))
        rows.append({"repeat": repeat, "fold": fold, "val_f1": res.scores["val_macro_f1"],
                     "test_acc": res.scores["test_acc"], "test_f1": res.scores["test_macro_f1"], "C": res.C})
    return pd.DataFrame(rows)


def clustering_halves(n_cells: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The two halves of the cells whose labels choose each other's leiden resolution: a seeded random split
    (``numpy.random.default_rng(seed).permutation``) that looks at no label; the first half has ``n_cells // 2``
    cells, each half's indices are sorted."""
    order = np.random.default_rng(seed % 2**32).permutation(int(n_cells))
    return np.sort(order[: n_cells // 2]), np.sort(order[n_cells // 2:])


def clustering_scores(z: np.ndarray, y: np.ndarray, *, resolutions=(0.5, 1.0), n_neighbors: int = 15,
                      seed: int = 0, method: str = "umap") -> dict[str, float]:
    """Leiden clustering of an embedding against labels, its resolution chosen on one half of the cells' labels
    and scored on the other.

    kNN graph ``sc.pp.neighbors(use_rep=..., method=method)`` (``"umap"``: scanpy's default UMAP connectivities;
    ``"gauss"``: a Gaussian kernel, which skips numba's ~20 s compile: the smoke setting) and ``sc.tl.leiden``
    (igraph) at each resolution, on every cell (no label is used to cluster). The cells split into two
    random halves (:func:`clustering_halves`); each half's NMI and ARI (sklearn) are taken at the resolution
    with the best NMI on the *other* half, and ``nmi``, ``ari`` are the mean over the two halves (2-fold
    cross-fitting: the resolution is a hyperparameter chosen on labels the score does not use). For comparison
    with scIB (Luecken et al. 2022, *Nat. Methods* 19:41, "optimal resolution" clustering), ``nmi_optimal``,
    ``ari_optimal``, ``resolution_optimal`` and ``n_clusters_optimal`` are the same scores on every cell at the
    resolution with the best NMI on every cell, which is optimistic by its selection. The two are not on one
    scale: NMI's chance level rises as the sample shrinks, so a half's NMI tends to exceed the NMI of every cell
    at the same partition; compare ``nmi`` between methods (every method of a seed shares the halves) and
    ``nmi_optimal`` with scIB's tables. ``silhouette`` is the silhouette of the *labels* on the embedding
    (sklearn, Euclidean, in [-1, 1]; scIB rescales it to (s + 1)/2).

    Returns
    -------
    dict
        ``nmi``, ``ari``, ``resolution_half1``, ``resolution_half2`` (the resolution each half is scored at),
        the ``*_optimal`` scores above and ``silhouette``, all floats.
    """
    import anndata
    import scanpy as sc

    z, y = np.asarray(z), np.asarray(y)
    ad = anndata.AnnData(obs=pd.DataFrame(index=[str(i) for i in range(len(z))]))
    ad.obsm["X_emb"] = np.asarray(z, dtype=np.float32)
    seed = seed % 2**32
    partitions = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sc.pp.neighbors(ad, use_rep="X_emb", n_neighbors=n_neighbors, random_state=seed, method=method)
        for res in resolutions:
            sc.tl.leiden(ad, resolution=float(res), random_state=seed, flavor="igraph", n_iterations=2,
                         directed=False, key_added="leiden")
            partitions.append(ad.obs["leiden"].to_numpy())
    resolutions = [float(r) for r in resolutions]
    halves = clustering_halves(len(y), seed)
    per_half = []
    for scored, chooser in (halves, halves[::-1]):
        pick = int(np.argmax([normalized_mutual_info_score(y[chooser], c[chooser]) for c in partitions]))
        per_half.append((resolutions[pick], normalized_mutual_info_score(y[scored], partitions[pick][scored]),
                         adjusted_rand_score(y[scored], partitions[pick][scored])))
    (res1, nmi1, ari1), (res2, nmi2, ari2) = per_half
    nmi_every_cell = [normalized_mutual_info_score(y, c) for c in partitions]
    best = int(np.argmax(nmi_every_cell))
    scores = {"nmi": (nmi1 + nmi2) / 2, "ari": (ari1 + ari2) / 2, "resolution_half1": res1, "resolution_half2": res2,
              "nmi_optimal": nmi_every_cell[best],
              "ari_optimal": adjusted_rand_score(y, partitions[best]),
              "resolution_optimal": resolutions[best], "n_clusters_optimal": len(set(partitions[best]))}
    with threadpool_limits(1):
        scores["silhouette"] = float(silhouette_score(z, y)) if np.ptp(z, axis=0).max() > 0 else float("nan")
    return {k: float(v) for k, v in scores.items()}


def _pca(x: np.ndarray, n_comps: int) -> np.ndarray:
    import scanpy as sc

    n = int(min(n_comps, x.shape[0] - 1, x.shape[1] - 1))
    with threadpool_limits(1):
        return np.asarray(sc.pp.pca(x, n_comps=n, random_state=0), dtype=np.float32)


# --------------------------------------------------------------------------------------------- the runs
def _unit_spec(config: Config, dataset: str, model: str, method: Method, s: int) -> RunSpec:
    """One (dataset, model, method, seed index) unit as a run; PCA is one run per dataset and seed (tagged with
    each model it is listed under)."""
    ds = load_arrays(dataset, hsmm_genes=config.hsmm_genes, transformer_genes=config.transformer_genes)
    family = "pca" if method.name == "PCA" else model
    data = {"dataset": dataset, "hsmm_genes": config.hsmm_genes, "transformer_genes": config.transformer_genes,
            "holdout": config.holdout, "holdout_seed": config.seed_of(9), "checksum": ds["checksum"]}
    evaluation = {"seed": config.seed_of(2, s), "recon_seed": config.seed_of(3, s),
                  "cv": [config.cv_folds, config.cv_repeats, list(config.probe_cs), config.val_fraction],
                  "cluster": [config.n_neighbors, list(config.leiden_resolutions), config.neighbors_method],
                  "recon": list(config.recon_ratios)}
    if family == "pca":
        model_cfg = {"pca_comps": config.pca_comps}
    else:  # every field of the model's config, defaults included (a changed default must not hit a stale entry)
        model_cfg = asdict(model_config(single_cell.MODEL_ALIASES[model], n_genes=1, **config.model_kwargs(model)))
        model_cfg.pop("n_genes")
    steps = config.steps if model == "mlp" else config.transformer_steps
    train = None if method.kind == "reference" else TrainConfig(
        steps=steps, batch_size=config.batch_size, lr=config.lr, weight_decay=config.weight_decay, warmup=0.05,
        checkpoint_every=max(500, steps // 4))  # not part of the unit's key
    tags = {"dataset": DATASET_SPECS[dataset]["short"], "model": model, "seed": s}
    return RunSpec(NAMESPACE, family, "-", method, config.seed_of(1, s), train, model=model_cfg, data=data,
                   evaluation=evaluation, tags=tags)


def plan(config: Config) -> list[RunSpec]:
    """Every unit of the study: per dataset, model (the Transformer only on ``transformer_datasets``), method
    (:func:`methods`) and seed index."""
    return [_unit_spec(config, dataset, model, method, s) for dataset in config.datasets for model in config.models
            if model != "transformer" or dataset in config.transformer_datasets
            for method in methods(config, model) for s in range(config.n_seeds)]


def pretrain_unit(spec: RunSpec, device: str = "cpu") -> dict:
    """The part of a unit that needs its model (the GPU's part): pretrain (or initialise) the encoder on the cells
    outside the reconstruction hold-out, embed every cell and score the reconstruction on the held-out cells.
    PCA units embed with scanpy's PCA (the CPU's part: no model).

    Returns ``embedding`` (cells × dims, float32), ``history`` (every step; empty for references) and, for
    encoders, ``reconstruction`` (per evaluation ratio).
    """
    if spec.family == "pca":
        data = spec.data
        ds = load_dataset(data["dataset"], hsmm_genes=data["hsmm_genes"], transformer_genes=data["transformer_genes"])
        return {"history": _empty_history(),
                "embedding": _pca(ds["x"], spec.model["pca_comps"]).astype(np.float32)}
    xm, held = _encoder_inputs(spec)
    train = spec.train or TrainConfig(steps=1)
    key = cache_key(CHECKPOINTS, spec.training_identity(), code=code_fingerprint(__name__))
    ckpt = cache_root() / CHECKPOINTS / f"{key}.pt"
    net, history = single_cell.fit_encoder(
        xm[~held], model=spec.family, model_kwargs=spec.model, sampler=spec.method.sampler, steps=train.steps,
        batch_size=train.batch_size, lr=train.lr, weight_decay=train.weight_decay, seed=spec.seed, device=device,
        train=spec.train is not None, cache=False, checkpoint_path=ckpt if spec.train else None,
        checkpoint_every=train.checkpoint_every)
    record = _pretrained_record(spec, net, history, xm, held)
    ckpt.unlink(missing_ok=True)  # the engine's record of the unit replaces it
    return record


def score_unit(spec: RunSpec, pretrained: dict) -> dict:
    """The CPU's part of a unit: :func:`annotation_cv` and :func:`clustering_scores` (scanpy) of its embedding,
    added to :func:`pretrain_unit`'s record."""
    ev = spec.evaluation
    y = _arrays_of(spec)["y"]
    z = pretrained["embedding"]
    folds, repeats, cs, val_fraction = ev["cv"]
    n_neighbors, resolutions, neighbors_method = ev["cluster"]
    return {**pretrained,
            "annotation": annotation_cv(z, y, folds=folds, repeats=repeats, seed=ev["seed"], cs=tuple(cs),
                                        val_fraction=val_fraction),
            "clustering": clustering_scores(z, y, resolutions=tuple(resolutions), n_neighbors=n_neighbors,
                                            seed=ev["seed"], method=neighbors_method)}


def work(group: list[RunSpec], options: Options) -> list[dict]:
    """The engine's work on single-cell units: :func:`pretrain_unit` (pretrain or PCA / random init, embed,
    reconstruction), then :func:`score_unit` (annotation CV, clustering).

    Records: ``annotation`` (CV rows), ``clustering`` (scores), ``embedding`` (cells × dims, float32),
    ``history`` (every step; empty for references) and, for encoders, ``reconstruction`` (per evaluation ratio,
    on the held-out cells).
    """
    return [score_unit(spec, pretrain_unit(spec, options.device)) for spec in group]


# ------------------------------------------------------------------------------------------- the GPU route
#: The GPU route's dry run (:mod:`r2mae_core.campaign`): the profile's units with two steps of batch 16 on the CPU,
#: the Transformer reading the 32 most variable genes (every code path; attention over 256 genes is slow on a CPU).
DRY_RUN = {"steps": 2, "transformer_steps": 2, "batch_size": 16, "transformer_genes": 32, "device": "cpu"}


def campaign_plan(config: Config) -> list[RunSpec]:
    """The units the GPU machine runs: every unit with an encoder (PCA needs scanpy and no GPU: it stays here)."""
    return [spec for spec in plan(config) if spec.family != "pca"]


def campaign_work(group: list[RunSpec], options: Options) -> list[dict]:
    """The GPU machine's work on units: their pretraining part only (it has no scanpy), one by one
    (:func:`pretrain_unit`) or, for a group of trained units, as one ensemble (:func:`pretrain_units`); each
    record carries the digest of the arrays it read (:func:`spec_data_digest`) and is completed by
    :func:`ledger_record` here."""
    trained = len(group) > 1 and all(spec.train is not None for spec in group)
    records = (pretrain_units(group, options.device, compile=options.compile) if trained
               else [pretrain_unit(spec, options.device) for spec in group])
    for spec, record in zip(group, records, strict=True):
        record["data_digest"] = spec_data_digest(spec)
    return records


def pretrain_units(group: list[RunSpec], device: str = "cpu", *, compile: bool = False) -> list[dict]:
    """:func:`pretrain_unit` of a group of trained units of one dataset, model and schedule (an engine group),
    trained as one ensemble (:func:`r2mae_core.single_cell.fit_encoders`): the same records up to
    floating-point rounding."""
    first, train = group[0], group[0].train
    xm, held = _encoder_inputs(first)
    fitted = single_cell.fit_encoders(xm[~held], model=first.family, model_kwargs=first.model,
                                      samplers=[spec.method.sampler for spec in group],
                                      seeds=[spec.seed for spec in group], steps=train.steps,
                                      batch_size=train.batch_size, lr=train.lr, weight_decay=train.weight_decay,
                                      device=device, compile=compile, checkpoint_every=train.checkpoint_every,
                                      checkpoint_path=group_checkpoint_path(group, CHECKPOINTS,
                                                                          code=code_fingerprint(__name__)))
    return [_pretrained_record(spec, net, history, xm, held)
            for spec, (net, history) in zip(group, fitted, strict=True)]


def ledger_record(config: Config, spec: RunSpec, pretrained: dict) -> dict:
    """The record the ledger keeps of a unit made on the GPU: :func:`score_unit` of it, computed here, with its
    embedding kept only where a figure reads it (the UMAP units: first seed, ``umap_methods``, the first dataset
    and model), so the committed ledger stays small."""
    record = score_unit(spec, {k: v for k, v in pretrained.items() if k != "data_digest"})
    umap = {repr(s.identity()) for s in _umap_specs(config)}
    if repr(spec.identity()) not in umap:
        record.pop("embedding")
    return record


def _umap_specs(config: Config) -> list[RunSpec]:
    model = config.models[0]
    return [_unit_spec(config, config.datasets[0], model, m, 0) for m in select_methods(config, model,
                                                                                         config.umap_methods)]


def data_names(config: Config) -> list[str]:
    """The prepared datasets the units of ``config`` read (``data/<name>/``)."""
    return list(config.datasets)


def carry_paths(config: Config) -> list[Path]:
    """What the GPU machine reads: the arrays of every dataset (:func:`load_arrays`, built here first)."""
    for dataset in config.datasets:
        load_arrays(dataset, hsmm_genes=config.hsmm_genes, transformer_genes=config.transformer_genes)
    return [data_root() / "single_cell_arrays"]


def data_checksum(config: Config) -> str:
    """Part of every unit's key beside its spec: none (each spec holds its data's checksum)."""
    return ""


def spec_data_digest(spec: RunSpec) -> str:
    """The digest of the arrays the unit ``spec`` reads (:func:`load_arrays`,
    :func:`r2mae_core.records.record_digest`): the units of one config read different datasets, so each result is
    checked against its own dataset's digest when it is taken in."""
    return record_digest(_arrays_of(spec))


def _results(config: Config, runs: list[RunSpec], progress: bool) -> list[dict]:
    return execute(runs, work, options=Options(device=config.device), desc="05 single-cell units",
                   progress=progress)


def run(config: Config, *, progress: bool = True) -> dict[str, pd.DataFrame]:
    """Every unit of the study, as tidy tables.

    Returns
    -------
    dict of DataFrame
        Each table starts with dataset, model, the method's columns (method, group, kind, ratio, ratio_low,
        ratio_high, uniformity_weight: :meth:`r2mae_core.runs.Method.columns`) and the seed index.
        ``annotation`` (+ repeat, fold, val_f1, test_acc, test_f1, C), ``clustering`` (+ nmi, ari, silhouette,
        resolution_half1, resolution_half2 and the ``*_optimal`` scores of :func:`clustering_scores`),
        ``reconstruction`` (+ eval_ratio, mse, pearson; trained and random encoders),
        ``loss`` (+ step, loss, ratio_mean: every 10th step).
        PCA rows are repeated under each model (one computation per dataset and seed).
    """
    tables: dict[str, list] = {"annotation": [], "clustering": [], "reconstruction": [], "loss": []}
    runs = plan(config)
    for spec, res in zip(runs, _results(config, runs, progress), strict=True):
        tags = {"dataset": spec.tags["dataset"], "model": spec.tags["model"], **spec.method.columns(),
                "seed": spec.tags["seed"]}
        tables["annotation"].append(res["annotation"].assign(**tags))
        tables["clustering"].append(pd.DataFrame([{**tags, **res["clustering"]}]))
        if "reconstruction" in res:
            tables["reconstruction"].append(res["reconstruction"].assign(**tags))
        hist = res["history"]
        if len(hist):
            tables["loss"].append(hist.loc[hist["step"] % 10 == 0, ["step", "loss", "ratio_mean"]].assign(**tags))
    order = ["dataset", "model", "method", "group", "kind", "ratio", "ratio_low", "ratio_high", "uniformity_weight",
             "seed"]
    out = {}
    for name, frames in tables.items():
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=order)
        out[name] = df[order + [c for c in df.columns if c not in order]]
    return out


def umap_adata(config: Config, dataset: str, model: str, method_keys, *, s: int = 0):
    """The dataset's cells with, per method (``method_keys``: names or one-method groups, :func:`select_methods`),
    its embedding (``obsm["X_emb_<i>"]``, seed index ``s``, read from the cache) and a UMAP of it
    (``obsm["X_umap_<i>"]``: ``sc.pp.neighbors`` + ``sc.tl.umap``), ``obs["label"]`` the cell types and
    ``uns["methods"]`` the method labels (for :func:`r2mae_core.plotting.single_cell.umap_grid`)."""
    import anndata
    import scanpy as sc

    ds = load_dataset(dataset, hsmm_genes=config.hsmm_genes, transformer_genes=config.transformer_genes)
    adata = anndata.AnnData(obs=pd.DataFrame(index=ds["adata"].obs_names.copy()))
    adata.obs["label"] = pd.Categorical.from_codes(ds["y"], ds["labels"])
    seed = config.seed_of(4, s) % 2**32
    chosen = select_methods(config, model, method_keys)
    runs = [_unit_spec(config, dataset, model, method, s) for method in chosen]
    for i, res in enumerate(_results(config, runs, progress=False)):
        adata.obsm[f"X_emb_{i}"] = res["embedding"]
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore")
            sc.pp.neighbors(adata, use_rep=f"X_emb_{i}", n_neighbors=config.n_neighbors, random_state=seed,
                            method=config.neighbors_method)
            sc.tl.umap(adata, random_state=seed)
        adata.obsm[f"X_umap_{i}"] = adata.obsm.pop("X_umap")
    adata.uns["methods"] = [m.name for m in chosen]
    return adata
