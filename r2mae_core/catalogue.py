"""What each notebook's figures and tables show, and which claims each figure supports.

One record per output file name (``figN_slug`` / ``tabN_slug``, the names the notebooks save): its caption and
the ids of the claims (``claims.json``) it is evidence for. The report captions figures and tables
with it and links each claim to its figures and tables; the README's "figures / tables" column is :func:`readme_cell` of
each notebook (``tests/test_catalogue.py`` checks both against the notebooks' sources and the README).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Output", "CATALOGUE", "caption", "evidence_for_claim", "readme_cell"]


@dataclass(frozen=True)
class Output:
    """One figure or table of a notebook.

    Attributes
    ----------
    caption
        What it shows, in a few words (the README's wording).
    claims
        Ids of the claims it is evidence for; a claim ``X-detail`` (a per-task part) is supported by what supports
        ``X``.
    """

    caption: str
    claims: tuple[str, ...] = ()


CATALOGUE: dict[str, dict[str, Output]] = {
    "00_masking_tour": {
        "fig1_ratio_distributions": Output("ratio distributions", ("M1",)),
        "fig2_ratio_over_training": Output("ratio over training", ("M2",)),
        "fig3_masked_images": Output("masks on images"),
        "fig4_block_masks": Output("block masks on the patch grid"),
        "fig5_diffusion_weights": Output("masked diffusion's noise levels and 1/t weights", ("M3",)),
        "tab1_sampler_moments": Output("sampler moments (MC vs quadrature)"),
        "tab2_within_batch_spread": Output("within-batch spread"),
        "tab3_block_masks": Output("block masks: counts and block shapes"),
    },
    "01_linear_theory": {
        "fig1_risk_vs_ratio": Output("risk vs ratio (families × model sizes, bias/variance)", ("C2",)),
        "fig2_optimal_ratio": Output("optimal ratio vs model size and correlation", ("C3a",)),
        "fig3_downstream_vs_ratio": Output("downstream risk per task", ("C3b",)),
        "fig4_r2mae_vs_fixed": Output("R²MAE vs best fixed (interval heatmaps)", ("C4", "C4-eq")),
        "fig5_scale_recovery": Output("per-scale gain", ("C4",)),
        "fig6_theory_vs_mc": Output("theory vs MC", ("C1",)),
        "fig7_phase_diagram": Output("phase diagram (where a random ratio wins)", ("C5",)),
        "tab1_theory_vs_mc": Output("every MC point"),
        "tab2_error_summary": Output("error summary"),
        "tab3_equivalent_ratio": Output("intervals vs their fixed ratio of equal population effect", ("C4-eq",)),
        "tab4_masked_diffusion": Output("masked diffusion's law"),
        "tab5_phase_theory": Output("phase diagram theory"),
        "tab6_phase_monte_carlo": Output("phase diagram Monte Carlo"),
    },
    "02_vision": {
        "fig1_ratio_sweep": Output("ratio sweep (LP, reconstruction)", ("V1",)),
        "fig2_best_ratio_vs_size": Output("best ratio vs size", ("V1",)),
        "fig3_method_comparison": Output("method comparison (LP, BN+LP, FT, k-NN, effective rank)",
                                         ("V0", "V2", "V3", "V6")),
        "fig4_recon_vs_test_ratio": Output("reconstruction loss vs test ratio"),
        "fig5_umae_rank": Output("U-MAE effective rank and spectrum", ("V4a", "V4b", "V4c", "V4d")),
        "fig6_reconstructions": Output("reconstructions"),
        "fig7_block_ablation": Output("block vs random positions at the same ratio law", ("V5",)),
        "tab1_ratio_sweep": Output("sweep"),
        "tab2_methods": Output("methods with reference rows"),
        "tab3_block_ablation": Output("block vs random positions (paired differences)", ("V5",)),
        "tab4_equal_effect": Output("R²MAE vs the best fixed ratio and the fixed ratio of equal population effect",
                                    ("V6",)),
    },
    "03_language": {
        "fig1_ratio_sweep": Output("score vs fixed ratio per size", ("L1", "L2")),
        "fig2_methods": Output("every method on every task", ("L3", "L4", "L5", "S1")),
        "fig3_paired_differences": Output("paired differences R²MAE − best fixed / equal-effect fixed / best MRD / "
                                          "masked diffusion / random init", ("L3", "L4", "L5", "S1")),
        "fig4_training_curves": Output("training loss and ratio"),
        "tab1_data_splits": Output("data splits"),
        "tab2_paired_differences": Output("paired differences"),
        "tab3_all_metrics_test": Output("every metric (mean, 95% CI)"),
        "tab4_runs": Output("runs (time, tokens)"),
        "tab5_equal_effect_control": Output("R²MAE next to the best fixed ratio and its equal-effect fixed ratio",
                                            ("L5",)),
    },
    "04_dna": {
        "fig1_ratio_sweep": Output("MCC vs fixed ratio per size and task", ("D3",)),
        "fig2_methods": Output("every method on every task", ("D1", "D2", "D5", "S1")),
        "fig3_paired_differences": Output("paired differences R²MAE − baseline", ("D1", "D2", "D5", "S1")),
        "fig4_training_curves": Output("training loss and ratio"),
        "tab1_task_sizes": Output("task sizes and class balance (test overlap with pretraining)"),
        "tab2_pretraining_text": Output("pretraining text"),
        "tab3_best_ratio_per_task": Output("best ratio per task"),
        "tab4_paired_differences": Output("paired differences"),
        "tab5_all_metrics_test": Output("every metric (mean, 95% CI)"),
        "tab6_runs": Output("runs"),
        "tab7_test_leakage": Output("near-copy audit of the test splits (16-mer containment)", ("D4",)),
        "tab8_equal_effect_control": Output("R²MAE next to the best fixed ratio and its equal-effect fixed ratio",
                                            ("D5",)),
    },
    "05_single_cell": {
        "fig1_ratio_sweep": Output("fixed-ratio sweep (macro-F1, NMI)"),
        "fig2_method_scores": Output("every method on every metric", ("S1", "S2", "S3", "S4")),
        "fig3_paired_differences": Output("paired differences R²MAE − baseline", ("S1", "S2", "S3", "S4")),
        "fig4_reconstruction": Output("masked-gene reconstruction on held-out cells"),
        "fig5_loss_curves": Output("pretraining loss"),
        "fig6_umap": Output("UMAPs by cell type"),
        "tab1_best_fixed_ratio": Output("best fixed ratio per model/task"),
        "tab2_summary": Output("summary (mean, 95% CI)"),
        "tab3_paired_differences": Output("paired differences"),
        "tab4_reconstruction": Output("reconstruction"),
        "tab5_equal_effect": Output("R²MAE vs the best fixed ratio and the fixed ratio of equal population effect",
                                    ("S4",)),
    },
    "06_spectral_clustering": {
        "fig1_component_distances": Output("component distances per ratio", ("T1", "T2")),
        "fig2_segmentation_examples": Output("segmentation examples", ("T6",)),
        "fig3_segmentation_scores": Output("segmentation scores", ("T6", "T5-nmi")),
        "fig4_probing_heads": Output("probing gap and heads", ("T3", "T3a", "T3b", "T4", "T4a", "T4b")),
        "fig5_bound": Output("bound tightness", ("T5",)),
        "tab1_component_distances": Output("component distances"),
        "tab2_component_slopes": Output("slopes"),
        "tab3_segmentation": Output("segmentation"),
        "tab4_probing": Output("probing"),
        "tab5_heads": Output("heads"),
        "tab6_bound": Output("bound per batch"),
    },
}

_NUMBERED = re.compile(r"^(fig|tab)(\d+)_")


def caption(notebook: str, name: str) -> str:
    """The caption of output ``name`` (a file stem) of ``notebook``; the stem itself if it is not catalogued."""
    entry = CATALOGUE.get(notebook, {}).get(name)
    return entry.caption if entry is not None else name


def _supports(listed: str, claim_id: str) -> bool:
    return claim_id == listed or claim_id.startswith(listed + "-")


def evidence_for_claim(notebook: str, claim_id: str) -> list[str]:
    """The figure and table names of ``notebook`` that support claim ``claim_id``, figures first, each in
    catalogue order (an exact id is preferred: ``T5-nmi`` links to what lists ``T5-nmi``, and only when nothing
    does, to what lists ``T5``)."""
    outputs = sorted(CATALOGUE.get(notebook, {}).items(), key=lambda item: not item[0].startswith("fig"))
    exact = [n for n, o in outputs if claim_id in o.claims]
    return exact or [n for n, o in outputs if any(_supports(c, claim_id) for c in o.claims)]


def readme_cell(notebook: str) -> str:
    """The README's "figures / tables" cell of ``notebook``: ``fig1 caption, fig2 …; tab1 caption, …``."""
    def short(name: str) -> str:
        kind, number = _NUMBERED.match(name).groups()
        return f"{kind}{number} {CATALOGUE[notebook][name].caption}"

    def number(name: str) -> int:
        return int(_NUMBERED.match(name).group(2))

    names = CATALOGUE[notebook]
    figs = sorted((n for n in names if n.startswith("fig")), key=number)
    tabs = sorted((n for n in names if n.startswith("tab")), key=number)
    return "; ".join(", ".join(short(n) for n in group) for group in (figs, tabs) if group)
