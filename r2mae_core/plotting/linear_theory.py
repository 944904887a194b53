"""Figures of 01_linear_theory: pretraining risk vs mask ratio, optimal ratios, downstream probes, R²MAE against
fixed ratios, per-scale gains and theory against Monte Carlo."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import SymLogNorm, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.ticker import NullFormatter

from .style import method_colors, new_figure, palette

__all__ = ["risk_vs_ratio", "optimal_ratio", "downstream_vs_ratio", "r2mae_vs_fixed", "scale_recovery",
           "theory_vs_mc", "phase_diagram"]

_R2MAE = "R²MAE"
_R2MAE_X = 1.02  # where the R²MAE Monte Carlo point sits on a mask-ratio axis
_CRITERIA = {"universal": "universal test law", "test_ratio": "stated test ratio",
             "downstream": "mean downstream risk"}


def _tint(colour, amount: float) -> tuple[float, float, float]:
    """``colour`` blended towards white by ``amount`` (0 = unchanged)."""
    return tuple(c + (1.0 - c) * amount for c in to_rgb(colour))


def _mean_se(frame: pd.DataFrame, keys: list[str], value: str = "risk") -> pd.DataFrame:
    """Per ``keys``: mean and standard error over repetitions (targets of one repetition averaged first)."""
    per_rep = frame.groupby([*keys, "rep"], sort=True, dropna=False)[value].mean()
    grouped = per_rep.groupby(level=keys, sort=True, dropna=False)
    out = pd.DataFrame({"mean": grouped.mean(), "sd": grouped.std(ddof=1), "n": grouped.size()}).reset_index()
    out["se"] = (out["sd"] / np.sqrt(out["n"])).fillna(0.0)
    return out


def _shared_legend(fig: Figure, ax, ncols: int = 4, handles=None) -> None:
    """One legend for the whole figure, below the panels (handles of ``ax`` unless given)."""
    if handles is None:
        handles, _ = ax.get_legend_handles_labels()
    fig.legend(handles=handles, loc="outside lower center", ncols=min(ncols, len(handles)))


def risk_vs_ratio(fixed_theory: pd.DataFrame, fixed_mc: pd.DataFrame, *, ylim_factor: float = 2.5) -> Figure:
    """Pretraining risk against the fixed mask ratio; rows: covariance family, columns: model size γ = p/n.

    Per panel: the theory risk (solid) and its irreducible, bias and variance terms (thinner, dashed, tints of
    the risk colour); Monte Carlo means ± 2 SE over repetitions (points; a triangle at the top marks a mean
    above the y-range); the trivial predictor's risk 1 (grey dotted); the interpolation peak
    |γ_eff − 1| < 0.2 (grey band, from γ_eff ∝ 1/m). y is limited to [0, ``ylim_factor``].
    """
    families = list(dict.fromkeys(fixed_theory["family"]))
    gammas = sorted(fixed_theory["gamma"].unique())
    fig, axes = new_figure(len(gammas), len(families), width=2.45, height=1.9)
    colour = palette(1)[0]
    terms = (("irreducible", (0, (1, 1)), 0.2), ("bias", (0, (5, 2)), 0.3), ("variance", (0, (4, 1.5, 1, 1.5)), 0.45))
    mc = _mean_se(fixed_mc, ["family", "gamma", "ratio"])
    top = float(ylim_factor)
    for i, family in enumerate(families):
        for j, gamma in enumerate(gammas):
            ax = axes[i, j]
            th = fixed_theory[(fixed_theory["family"] == family) & (fixed_theory["gamma"] == gamma)]
            th = th.sort_values("ratio")
            scale = float(np.median(th["gamma_eff"] * th["ratio"]))  # γ_eff · m is constant for a fixed ratio
            if scale / 1.2 < 1:
                ax.axvspan(scale / 1.2, min(1.0, scale / 0.8), color="0.85", linewidth=0,
                           label="interpolation peak |γ_eff − 1| < 0.2")
            ax.axhline(1.0, color="0.45", linestyle=":", linewidth=1.0, label="trivial predictor (risk 1)")
            ax.plot(th["ratio"], th["risk"], color=colour, label="theory risk")
            for name, dashes, amount in terms:
                ax.plot(th["ratio"], th[name], color=_tint(colour, amount), linestyle=dashes, linewidth=1.0,
                        label=f"theory {name}")
            pts = mc[(mc["family"] == family) & (mc["gamma"] == gamma)]
            shown = pts[pts["mean"] <= top]
            ax.errorbar(shown["ratio"], shown["mean"], yerr=2 * shown["se"], fmt="o", color="black", markersize=3,
                        elinewidth=0.9, capsize=2, label="MC mean ± 2 SE (▲: above the y-range)", zorder=5)
            off = pts[pts["mean"] > top]
            ax.plot(off["ratio"], np.full(len(off), 0.96 * top), "^", color="black", markersize=4, zorder=5)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, top)
            ax.set_title(f"{family}, γ = p/n = {gamma:g}")
            ax.set_xlabel("mask ratio m")
            ax.set_ylabel("pretraining risk")
    _shared_legend(fig, axes[0, 0], ncols=3)
    return fig


def optimal_ratio(optimum: pd.DataFrame) -> Figure:
    """The theory's risk-minimising fixed mask ratio: (a) against model size γ = p/n, one line per family;
    (b) against the AR(1) correlation ρ (signal strength) at the focus model size."""
    fig, axes = new_figure(2, 1, width=3.3, height=2.6)
    by_size = optimum[optimum["sweep"] == "gamma"]
    colours = method_colors(list(dict.fromkeys(by_size["family"])))
    ax = axes[0, 0]
    for family, sub in by_size.groupby("family", sort=False):
        sub = sub.sort_values("x")
        ax.plot(sub["x"], sub["ratio_opt"], marker="o", markersize=3, color=colours[family], label=family)
    ax.set_xscale("log")
    ticks = 2.0 ** np.arange(np.floor(np.log2(by_size["x"].min())), np.ceil(np.log2(by_size["x"].max())) + 1)
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("model size γ = p/n")
    ax.legend(title="family", loc="upper left")
    ax.set_title("(a) optimum against model size")
    ax = axes[0, 1]
    for family, sub in optimum[optimum["sweep"] == "rho"].groupby("family", sort=False):
        sub = sub.sort_values("x")
        ax.plot(sub["x"], sub["ratio_opt"], marker="o", markersize=3, color=colours.get(family, "black"),
                label=family)
    ax.set_xlabel("AR(1) correlation ρ (signal strength)")
    ax.set_title("(b) optimum against correlation")
    for ax in axes.flat:
        ax.set_ylim(0, 1)
        ax.set_ylabel("risk-minimising mask ratio")
    return fig


def downstream_vs_ratio(downstream_theory: pd.DataFrame, downstream_mc: pd.DataFrame) -> Figure:
    """Downstream probe risk against the pretraining mask ratio, one panel per task.

    Theory for fixed ratios (line) with its argmin (vertical dotted line), Monte Carlo test-split means ± 2 SE
    (points), the R²MAE theory value (horizontal dashed line) and its Monte Carlo mean ± 2 SE at x = 1.02.
    """
    tasks = list(dict.fromkeys(downstream_theory["task"]))
    fig, axes = new_figure(len(tasks), 1, width=2.5, height=2.3)
    fixed_colour, r2_colour = palette(2)
    mc = _mean_se(downstream_mc[downstream_mc["split"] == "test"], ["task", "law", "ratio"])
    for ax, task in zip(axes.flat, tasks, strict=True):
        th = downstream_theory[downstream_theory["task"] == task]
        fixed = th[th["ratio"].notna()].sort_values("ratio")
        best = float(fixed["ratio"].iloc[int(np.argmin(fixed["risk"].to_numpy()))])
        ax.plot(fixed["ratio"], fixed["risk"], color=fixed_colour, label="theory, fixed ratio")
        ax.axvline(best, color="0.35", linestyle=":", linewidth=1.0, label="theory argmin ratio")
        pts = mc[(mc["task"] == task) & mc["ratio"].notna()]
        ax.errorbar(pts["ratio"], pts["mean"], yerr=2 * pts["se"], fmt="o", color=fixed_colour, markersize=3,
                    capsize=2, elinewidth=0.9, label="MC test mean ± 2 SE")
        for value in th.loc[th["law"] == _R2MAE, "risk"]:
            ax.axhline(value, color=r2_colour, linestyle="--", linewidth=1.2, label=f"{_R2MAE} theory")
        r2 = mc[(mc["task"] == task) & (mc["law"] == _R2MAE)]
        ax.errorbar(np.full(len(r2), _R2MAE_X), r2["mean"], yerr=2 * r2["se"], fmt="s", color=r2_colour,
                    markersize=3.5, capsize=2, elinewidth=0.9, label=f"{_R2MAE} MC mean ± 2 SE (x = {_R2MAE_X:g})")
        ax.set_xlim(0, 1.06)
        edge = " (grid edge)" if best in (fixed["ratio"].iloc[0], fixed["ratio"].iloc[-1]) else ""
        ax.set_title(f"task: {task}\ntheory argmin m = {best:.2f}{edge}")
        ax.set_xlabel("pretraining mask ratio m")
        ax.set_ylabel("probe test risk")
    _shared_legend(fig, axes[0, 0], ncols=5)
    return fig


def _heatmap(ax, fig: Figure, diff: pd.DataFrame, declared: tuple[float, float]) -> None:
    """Annotated heatmap of ``diff`` (rows: low, columns: high) on a symmetric-log scale centred at 0."""
    values = diff.to_numpy(dtype=float)
    bound = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    bound = bound if bound > 0 else 1.0
    norm = SymLogNorm(linthresh=bound / 100, vmin=-bound, vmax=bound, base=10)
    image = ax.imshow(values, cmap="RdBu_r", norm=norm, aspect="auto")
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            dark = abs(float(norm(value)) - 0.5) > 0.32
            ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=6.5,
                    color="white" if dark else "black")
    rows = np.flatnonzero(np.isclose(diff.index.to_numpy(dtype=float), declared[0]))
    cols = np.flatnonzero(np.isclose(diff.columns.to_numpy(dtype=float), declared[1]))
    if rows.size and cols.size:
        ax.add_patch(Rectangle((cols[0] - 0.5, rows[0] - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2))
    ax.set_xticks(range(values.shape[1]), [f"{v:g}" for v in diff.columns])
    ax.set_yticks(range(values.shape[0]), [f"{v:g}" for v in diff.index])
    ax.grid(False)
    ax.set_xlabel("interval upper end b")
    ax.set_ylabel("interval lower end a")
    bar = fig.colorbar(image, ax=ax, shrink=0.85, label="R²MAE − best fixed")
    ticks = [-bound, -bound / 10, 0.0, bound / 10, bound]
    bar.set_ticks(ticks, labels=[f"{t:.2g}" for t in ticks])
    bar.minorticks_off()


def r2mae_vs_fixed(r2mae_grid: pd.DataFrame, *, criteria: tuple[str, ...] = ("universal", "test_ratio", "downstream"),
                   declared: tuple[float, float] = (0.1, 0.9)) -> Figure:
    """R²MAE U[a, b] against the best fixed mask ratio, one column per risk criterion.

    Top row: heatmap over (a rows, b columns) of the theory risk of R²MAE minus the best fixed ratio's risk
    (symmetric-log diverging colours centred at 0; blue/negative = R²MAE better; the ``declared`` interval is
    outlined). Bottom row: fixed-ratio risk against the ratio with the declared R²MAE risk (horizontal dashed
    line) and its population-equivalent fixed ratio (vertical dotted line); the y-range is cut where the
    fixed-ratio risk explodes near the interpolation peak.
    """
    fixed = r2mae_grid[r2mae_grid["kind"] == "fixed"].sort_values("low")
    intervals = r2mae_grid[r2mae_grid["kind"] == "r2mae"]
    chosen = intervals[np.isclose(intervals["low"], declared[0]) & np.isclose(intervals["high"], declared[1])]
    fig, axes = new_figure(len(criteria), 2, width=3.1, height=2.6)
    fixed_colour, r2_colour = palette(2)
    for j, criterion in enumerate(criteria):
        i_best = int(np.argmin(fixed[criterion].to_numpy()))
        best_ratio, best_risk = float(fixed["low"].iloc[i_best]), float(fixed[criterion].iloc[i_best])
        diff = intervals.pivot_table(index="low", columns="high", values=criterion, aggfunc="first") - best_risk
        _heatmap(axes[0, j], fig, diff, declared)
        name = _CRITERIA.get(criterion, criterion)
        axes[0, j].set_title(f"{name}\nbest fixed m = {best_ratio:.2f} (risk {best_risk:.3g})")
        ax = axes[1, j]
        ax.plot(fixed["low"], fixed[criterion], color=fixed_colour, label="fixed ratio (theory)")
        ax.plot([best_ratio], [best_risk], "o", color=fixed_colour, markersize=4, label="best fixed ratio")
        top = 2.5 * best_risk
        for row in chosen.itertuples():
            value = float(getattr(row, criterion))
            ax.axhline(value, color=r2_colour, linestyle="--", label=f"{_R2MAE} U[{declared[0]:g}, {declared[1]:g}]")
            ax.axvline(row.equivalent_ratio, color="0.35", linestyle=":", linewidth=1.0,
                       label="population-equivalent fixed ratio")
            top = max(top, 1.25 * value)
        low = min(float(fixed[criterion].min()), *(chosen[criterion].tolist() or [np.inf]))
        top = min(top, float(fixed[criterion].max()))
        ax.set_ylim(low - 0.05 * (top - low), top + 0.05 * (top - low))
        ax.set_xlim(0, 1)
        ax.set_xlabel("mask ratio m")
        ax.set_ylabel(f"risk ({name})")
    handles, _ = axes[1, 0].get_legend_handles_labels()
    handles.append(Patch(fill=False, edgecolor="black", linewidth=2, label="declared interval (heatmaps)"))
    _shared_legend(fig, axes[1, 0], ncols=5, handles=handles)
    return fig


def scale_recovery(scales_theory: pd.DataFrame, scales_mc: pd.DataFrame) -> Figure:
    """Gain of the learned filter on the coarse and fine frequency bands (relative to its largest gain)
    against the mask ratio, one panel per band.

    Theory for the mean fit at the pretraining sample size (solid), its population limit (dashed), Monte Carlo
    mean fits (points); R²MAE: theory as a horizontal dash-dotted line and Monte Carlo at x = 1.02.
    """
    bands = list(dict.fromkeys(scales_theory["band"]))
    fig, axes = new_figure(len(bands), 1, width=3.2, height=2.6)
    fixed_colour, r2_colour = palette(2)
    for ax, band in zip(axes.flat, bands, strict=True):
        th = scales_theory[scales_theory["band"] == band]
        fixed = th[th["ratio"].notna()].sort_values("ratio")
        ax.axhline(0.0, color="0.6", linewidth=0.8)
        ax.plot(fixed["ratio"], fixed["gain"], color=fixed_colour, label="theory, finite-n mean fit")
        ax.plot(fixed["ratio"], fixed["population_gain"], color=fixed_colour, linestyle="--", linewidth=1.1,
                label="theory, population")
        mc = scales_mc[(scales_mc["band"] == band)]
        pts = mc[mc["ratio"].notna()]
        ax.plot(pts["ratio"], pts["gain"], "o", color="black", markersize=4, label="MC mean fit")
        for value in th.loc[th["law"] == _R2MAE, "gain"]:
            ax.axhline(value, color=r2_colour, linestyle="-.", linewidth=1.2, label=f"{_R2MAE} theory")
        r2 = mc[mc["law"] == _R2MAE]
        ax.plot(np.full(len(r2), _R2MAE_X), r2["gain"], "s", color=r2_colour, markersize=4.5,
                markeredgecolor="black", label=f"{_R2MAE} MC (x = {_R2MAE_X:g})")
        ax.set_xlim(0, 1.06)
        ax.set_title(f"{band} band")
        ax.set_xlabel("mask ratio m")
        ax.set_ylabel("gain on band\n(relative to max |h|)")
    _shared_legend(fig, axes[0, 0], ncols=3)
    return fig


def theory_vs_mc(errors: pd.DataFrame) -> Figure:
    """Theory against simulation for every Monte Carlo point of the error table.

    (a) Monte Carlo mean (x, ± 2 SE; lower bars cut before 0) against theory (y) on log-log axes with the
    identity line, coloured by ``source``; hollow markers: points outside the acceptance (``included`` False).
    Points with a non-positive mean or theory (e.g. negative per-scale gains) cannot be shown on log axes and
    are counted in the title. (b) Histogram of |relative error| over the included points (log x), with the
    acceptance thresholds 5% (median) and 15% (every point).
    """
    fig, axes = new_figure(2, 1, width=3.4, height=3.4)
    sources = list(dict.fromkeys(errors["source"]))
    colours = method_colors(sources)
    positive = (errors["mc_mean"] > 0) & (errors["theory"] > 0)
    shown = errors[positive]
    ax = axes[0, 0]
    for source in sources:
        for included, sub in shown[shown["source"] == source].groupby("included"):
            se2 = 2 * sub["mc_se"].fillna(0.0).to_numpy()
            xerr = np.vstack([np.minimum(se2, 0.95 * sub["mc_mean"].to_numpy()), se2])
            ax.errorbar(sub["mc_mean"], sub["theory"], xerr=xerr, fmt="o", markersize=4, elinewidth=0.7,
                        color=colours[source], markerfacecolor=colours[source] if included else "none")
    if len(shown):
        lims = np.array([shown[["mc_mean", "theory"]].min().min(), shown[["mc_mean", "theory"]].max().max()])
        lims = lims * np.array([0.7, 1.4])
        ax.plot(lims, lims, color="0.4", linestyle="--", linewidth=0.9, zorder=0)
        ax.set_xlim(*lims)
        ax.set_ylim(*lims)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("Monte Carlo mean (± 2 SE)")
    ax.set_ylabel("theory")
    hidden = int((~positive).sum())
    ax.set_title("(a) theory against Monte Carlo" + (f"\n({hidden} non-positive points not shown)" if hidden else ""))
    ax = axes[0, 1]
    rel = errors.loc[errors["included"].astype(bool), "rel_err"].abs().dropna().to_numpy()
    if rel.size:
        lo, hi = max(float(rel.min()), 1e-4), max(float(rel.max()), 0.2)
        ax.hist(np.clip(rel, lo, None), bins=np.geomspace(lo * 0.9, hi * 1.1, 25), color=palette(1)[0], alpha=0.8)
        ax.set_title(f"(b) |relative error|, included points\nmedian {np.median(rel):.1%}, max {rel.max():.1%}")
    else:
        ax.set_title("(b) no included points")
    ax.set_xscale("log")
    for value, style in ((0.05, "--"), (0.15, ":")):
        ax.axvline(value, color="black", linestyle=style, linewidth=1.0)
    ax.set_xlabel("|relative error| (theory − MC) / |MC|")
    ax.set_ylabel("points")
    handles = [Line2D([], [], color=colours[s], marker="o", linestyle="", label=s) for s in sources]
    handles += [Line2D([], [], color="0.3", marker="o", linestyle="", label="included (acceptance)"),
                Line2D([], [], color="0.3", marker="o", markerfacecolor="none", linestyle="", label="not included"),
                Line2D([], [], color="black", linestyle="--", label="5% (median threshold)"),
                Line2D([], [], color="black", linestyle=":", label="15% (every-point threshold)"),
                Patch(color=palette(1)[0], alpha=0.8, label="included points")]
    _shared_legend(fig, axes[0, 0], ncols=3, handles=handles)
    return fig


def phase_diagram(phase: pd.DataFrame, phase_mc: pd.DataFrame, *, tolerance: float = 1e-4) -> Figure:
    """Where a random ratio wins: Δ = R(best R²MAE interval) − R(best fixed ratio, fine grid) in theory.

    Panels: rows = criterion, columns = (ridge λ, per-sample / per-batch ratios). In each panel rows are
    covariance families and columns model sizes γ = p/n; colour is Δ on a symmetric-log diverging scale centred
    at 0 (blue = the interval wins), a cell with Δ < −``tolerance`` is outlined (a theory win). Monte Carlo
    checks: a filled black dot where the paired interval of risk(fixed) − risk(interval) lies above 0 (a
    measured win), a hollow dot where it covers 0, a cross where it lies below 0; the intervals are claim C5's,
    Bonferroni over the checked points (``fw_low``, ``fw_high``).
    """
    criteria = [c for c in ("test_ratio", "universal", "downstream") if c in set(phase["criterion"])]
    columns = sorted({(float(r), p) for r, p in zip(phase["ridge"], phase["per"], strict=True)},
                     key=lambda t: (t[0], t[1] != "sample"))
    families = list(dict.fromkeys(phase["family"]))
    gammas = sorted(phase["gamma"].unique())
    bound = max(float(np.nanmax(np.abs(phase["delta"].to_numpy(dtype=float)))), 10 * tolerance)
    norm = SymLogNorm(linthresh=max(tolerance, bound / 1000), vmin=-bound, vmax=bound, base=10)
    fig, axes = new_figure(len(columns), len(criteria), width=max(2.2, 0.32 * len(gammas) + 1.0),
                           height=max(1.6, 0.3 * len(families) + 0.9))
    image = None
    for i, criterion in enumerate(criteria):
        for j, (ridge, per) in enumerate(columns):
            ax = axes[i, j]
            sub = phase[(phase["criterion"] == criterion) & (phase["ridge"] == ridge) & (phase["per"] == per)]
            if not len(sub):
                ax.text(0.5, 0.5, "not computed", ha="center", va="center", transform=ax.transAxes, fontsize=7)
            grid = sub.pivot_table(index="family", columns="gamma", values="delta", aggfunc="first")
            grid = grid.reindex(index=families, columns=gammas)
            image = ax.imshow(grid.to_numpy(dtype=float), cmap="RdBu_r", norm=norm, aspect="auto")
            for (r, c), value in np.ndenumerate(grid.to_numpy(dtype=float)):
                if np.isfinite(value) and value < -tolerance:
                    ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.5))
            mc = phase_mc[(phase_mc["criterion"] == criterion) & (phase_mc["ridge"] == ridge)
                          & (phase_mc["per"] == per)] if len(phase_mc) else phase_mc
            for row in mc.itertuples():
                x, y = gammas.index(row.gamma), families.index(row.family)
                if row.fw_low > 0:
                    ax.plot(x, y, "o", color="black", markersize=4)
                elif row.fw_high < 0:
                    ax.plot(x, y, "x", color="black", markersize=4)
                else:
                    ax.plot(x, y, "o", markerfacecolor="none", markeredgecolor="black", markersize=4)
            ax.set_xticks(range(len(gammas)), [f"{g:.2g}" for g in gammas], fontsize=6, rotation=90)
            ax.set_yticks(range(len(families)), families if j == 0 else [""] * len(families), fontsize=6.5)
            ax.grid(False)
            ax.set_title(f"{_CRITERIA.get(criterion, criterion)}\nλ = {ridge:g}, per {per}", fontsize=7)
            if i == len(criteria) - 1:
                ax.set_xlabel("model size γ = p/n")
    if image is not None:
        bar = fig.colorbar(image, ax=axes, shrink=0.6, label="Δ = R(best interval) − R(best fixed)")
        ticks = [-bound, -bound / 100, 0.0, bound / 100, bound]
        bar.set_ticks(ticks, labels=[f"{t:.1g}" for t in ticks])
        bar.minorticks_off()
    handles = [Line2D([], [], marker="o", linestyle="", color="black", label="MC: interval wins (Bonferroni CI > 0)"),
               Line2D([], [], marker="o", linestyle="", markerfacecolor="none", markeredgecolor="black",
                      label="MC: CI covers 0"),
               Line2D([], [], marker="x", linestyle="", color="black", label="MC: fixed wins (CI < 0)"),
               Patch(fill=False, edgecolor="black", linewidth=1.5, label="theory win (Δ < −tolerance)")]
    fig.legend(handles=handles, loc="outside lower center", ncols=2 if len(columns) < 4 else 4, fontsize=7)
    return fig
