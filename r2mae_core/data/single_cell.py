"""Single-cell datasets: PBMC 68k reduced (in the scanpy wheel) and HSMM (Debian ``r-bioc-hsmmsinglecell``).

Both are cached as gzip-compressed ``.h5ad`` with a sparse CSR float32 matrix and returned as ``AnnData``.

``pbmc68k_reduced`` (700 cells x 765 genes): read straight from ``scanpy/datasets/10x_pbmc68k_reduced.h5ad``
(what ``scanpy.datasets.pbmc68k_reduced()`` reads too; it does not download). ``.X`` is the file's ``.raw.X``:
log1p of per-cell normalised counts (normalised before the gene subset, so rows do not sum to a constant; no
raw counts ship). The file's scaled ``.X``, ``uns`` and ``obsp`` are dropped (``sc.pp.scale`` recomputes the
former); ``obs`` (``bulk_labels``: 10 cell types, ``louvain``, QC), ``var`` and ``obsm`` (``X_pca``,
``X_umap``) are kept.

``hsmm`` (271 cells x 47,192 genes): the package's three plain R data frames, read with ``rdata``
(``HSMM_expr_matrix`` genes x cells FPKM, ``HSMM_sample_sheet``, ``HSMM_gene_annotation``; no S4 object
needed). Returned with ``layers["fpkm"]`` = FPKM (float32) and ``.X`` = ``log1p(FPKM)``; ``obs`` has the
sample sheet (``Hours`` as category, plus ``time_h`` int 0/24/48/72, ``Media``, ``Pseudotime``, ``State``) and
``var`` the gene annotation (``gene_short_name``, ``biotype``, ...). The cache stores FPKM only.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["BUILDERS", "READERS"]


def _read_h5ad(path: Path):
    import anndata

    with warnings.catch_warnings():  # old-format files: "Moving element from .uns[...] to .obsp[...]"
        warnings.simplefilter("ignore", FutureWarning)
        return anndata.read_h5ad(path)


def _write_h5ad(adata, out: Path) -> None:
    adata.write_h5ad(out, compression="gzip", compression_opts=9)


def _plain_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Nullable pandas dtypes from rdata -> numpy dtypes that h5ad stores everywhere."""
    out = df.copy()
    for col in out.columns:
        s = out[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            continue
        if pd.api.types.is_bool_dtype(s.dtype) and not s.isna().any():
            out[col] = s.astype(bool)
        elif pd.api.types.is_integer_dtype(s.dtype) and not s.isna().any():
            out[col] = s.astype(np.int64)
        elif pd.api.types.is_string_dtype(s.dtype) or s.dtype == object:
            out[col] = s.astype(object).where(s.notna(), "").astype(str)
    out.index = out.index.astype(str)
    return out


def _build_pbmc(sources: dict, out: Path) -> dict:
    import anndata
    import scipy.sparse as sp

    src = _read_h5ad(sources["h5ad"])
    if src.raw is None or list(src.raw.var_names) != list(src.var_names):
        raise ValueError("pbmc68k_reduced: expected .raw with the same genes as .X")
    x = sp.csr_matrix(src.raw.X, dtype=np.float32)
    adata = anndata.AnnData(X=x, obs=src.obs.copy(), var=src.var.copy(),
                            obsm={k: np.asarray(v, dtype=np.float32) for k, v in src.obsm.items()})
    _write_h5ad(adata, out)
    return {"n_obs": adata.n_obs, "n_vars": adata.n_vars,
            "n_cell_types": int(adata.obs["bulk_labels"].nunique())}


def _read_pbmc(path: Path):
    return _read_h5ad(path)


def _build_hsmm(sources: dict, out: Path) -> dict:
    import anndata
    import rdata
    import scipy.sparse as sp

    expr = rdata.read_rda(sources["expr"])["HSMM_expr_matrix"]  # xarray DataArray, genes x cells
    samples = _plain_frame(rdata.read_rda(sources["samples"])["HSMM_sample_sheet"])
    genes = _plain_frame(rdata.read_rda(sources["genes"])["HSMM_gene_annotation"])
    gene_ids = [str(g) for g in expr.coords[expr.dims[0]].values]
    cell_ids = [str(c) for c in expr.coords[expr.dims[1]].values]
    if gene_ids != list(genes.index) or cell_ids != list(samples.index):
        raise ValueError("hsmm: expression matrix and annotation tables are not aligned")
    samples["time_h"] = samples["Hours"].astype(str).astype(np.int64)
    x = sp.csr_matrix(np.asarray(expr.values, dtype=np.float32).T)
    adata = anndata.AnnData(X=x, obs=samples, var=genes)
    _write_h5ad(adata, out)
    return {"n_obs": adata.n_obs, "n_vars": adata.n_vars, "nnz": int(x.nnz),
            "time_points": sorted(int(t) for t in samples["time_h"].unique())}


def _read_hsmm(path: Path):
    adata = _read_h5ad(path)
    adata.layers["fpkm"] = adata.X
    adata.X = adata.X.log1p()  # sparse log1p keeps zeros at zero
    return adata


BUILDERS = {"pbmc68k_reduced": _build_pbmc, "hsmm": _build_hsmm}
READERS = {"pbmc68k_reduced": _read_pbmc, "hsmm": _read_hsmm}
