"""The claims ledger (docs/ARCHITECTURE.md §6): each notebook states paper claims as hypotheses and decides
them by code.

A verdict rule is written before the run (in the experiment module) and applied to the measured
numbers here: ``supported``, ``contradicted`` or ``inconclusive``. A contradicted claim is a result.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields

import numpy as np

from .stats import mean_ci

__all__ = ["Claim", "VERDICTS", "verdict_from_interval", "verdict_from_bool", "interval_claim", "make_claim",
           "claims_to_markdown"]

VERDICTS = ("supported", "contradicted", "inconclusive")


@dataclass(frozen=True)
class Claim:
    """One row of the claims ledger.

    Attributes
    ----------
    id
        Short identifier, e.g. ``"C1"``.
    claim
        The hypothesis in one sentence, including the verdict rule.
    source
        Where the claim comes from (paper, section/figure).
    metric
        What ``value`` measures (e.g. "paired risk difference R²MAE − best fixed").
    value, ci_low, ci_high
        The measured number and its 95% interval (NaN when the rule is not interval based).
    n_seeds
        Independent seeds/repetitions behind ``value``.
    verdict
        One of :data:`VERDICTS`.
    profile
        ``smoke``, ``quick`` or ``full``.
    """

    id: str
    claim: str
    source: str
    metric: str
    value: float
    ci_low: float
    ci_high: float
    n_seeds: int
    verdict: str
    profile: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"Claim {self.id}: verdict={self.verdict!r} is not allowed: use one of {VERDICTS}")
        if self.profile not in ("smoke", "quick", "full"):
            raise ValueError(f"Claim {self.id}: profile={self.profile!r} is not allowed: use smoke, quick or full")
        if isinstance(self.n_seeds, bool) or int(self.n_seeds) != self.n_seeds or self.n_seeds < 0:
            raise ValueError(f"Claim {self.id}: n_seeds={self.n_seeds!r} must be a non-negative integer")

    def to_json(self) -> dict:
        """A JSON-safe dict (NaN becomes ``None``)."""
        out = asdict(self)
        for key in ("value", "ci_low", "ci_high"):
            v = float(out[key])
            out[key] = None if math.isnan(v) else v
        out["n_seeds"] = int(out["n_seeds"])
        return out

    @classmethod
    def from_json(cls, record: dict) -> Claim:
        """Inverse of :meth:`to_json`; unknown or missing keys are an error."""
        names = {f.name for f in fields(cls)}
        if set(record) != names:
            raise ValueError(f"claim record keys {sorted(record)} differ from the schema {sorted(names)}")
        rec = {k: (float("nan") if record[k] is None and k in ("value", "ci_low", "ci_high") else record[k])
               for k in record}
        return cls(**rec)


def verdict_from_interval(ci_low: float, ci_high: float, threshold: float = 0.0) -> str:
    """``supported`` if the whole interval lies above ``threshold``, ``contradicted`` if below, else
    ``inconclusive`` (also when the interval is undefined, e.g. a single seed)."""
    if math.isnan(ci_low) or math.isnan(ci_high):
        return "inconclusive"
    if ci_low > threshold:
        return "supported"
    if ci_high < threshold:
        return "contradicted"
    return "inconclusive"


def interval_claim(cid: str, claim: str, source: str, metric: str, *, value: float, ci_low: float, ci_high: float,
                   n_seeds: int, profile: str, threshold: float = 0.0, allow_contradicted: bool = True) -> Claim:
    """A :class:`Claim` whose verdict is :func:`verdict_from_interval` of ``[ci_low, ci_high]`` against
    ``threshold``; with ``allow_contradicted=False`` an interval below it reads ``inconclusive`` (for rules
    that can only support, e.g. "the optimum differs")."""
    verdict = verdict_from_interval(float(ci_low), float(ci_high), threshold)
    if verdict == "contradicted" and not allow_contradicted:
        verdict = "inconclusive"
    return Claim(cid, claim, source, metric, float(value), float(ci_low), float(ci_high), int(n_seeds), verdict,
                 profile)


def make_claim(*, cid: str, claim: str, source: str, metric: str, profile: str, diffs=None, draws=None,
               value: float | None = None, ci_low: float | None = None, ci_high: float | None = None,
               n_seeds: int | None = None, threshold: float = 0.0, allow_contradicted: bool = True) -> Claim:
    """:func:`interval_claim` by keyword, from one of three kinds of evidence.

    * ``diffs``: one paired difference per seed; ``value`` and the interval are their mean and Student-t 95%
      interval (:func:`r2mae_core.stats.mean_ci`), ``n_seeds`` their count. No differences: an ``inconclusive``
      claim with NaN value and interval and 0 seeds.
    * ``draws``: bootstrap draws of the statistic; the interval is their 2.5 and 97.5 percentiles, ``value`` the
      point estimate if given, else their mean; ``n_seeds`` is required.
    * ``value``, ``ci_low``, ``ci_high`` and ``n_seeds`` given directly.

    The verdict is :func:`verdict_from_interval` against ``threshold`` (``allow_contradicted=False``: an interval
    below it reads ``inconclusive``).
    """
    given = [name for name, v in (("diffs", diffs), ("draws", draws), ("ci_low", ci_low)) if v is not None]
    if len(given) != 1:
        raise ValueError(f"evidence={given!r} is not allowed: give exactly one of diffs, draws or value/ci_low/"
                         "ci_high")
    if diffs is not None:
        diffs = np.asarray(diffs, dtype=float)
        if diffs.size == 0:
            nan = float("nan")
            return Claim(cid, claim, source, metric, nan, nan, nan, 0, "inconclusive", profile)
        value, ci_low, ci_high = mean_ci(diffs)
        n_seeds = diffs.size
    elif draws is not None:
        draws = np.asarray(draws, dtype=float)
        value = float(np.mean(draws)) if value is None else value
        ci_low, ci_high = np.percentile(draws, [2.5, 97.5])
    if value is None or ci_high is None or n_seeds is None:
        raise ValueError(f"value={value!r}, ci_high={ci_high!r}, n_seeds={n_seeds!r} are not allowed: give each")
    return interval_claim(cid, claim, source, metric, value=value, ci_low=ci_low, ci_high=ci_high, n_seeds=n_seeds,
                          profile=profile, threshold=threshold, allow_contradicted=allow_contradicted)


def verdict_from_bool(ok: bool) -> str:
    """``supported`` if ``ok`` else ``contradicted`` (for rules that are a threshold test)."""
    return "supported" if bool(ok) else "contradicted"


def _fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.4g}"


def claims_to_markdown(claims_by_notebook: dict[str, Iterable[Claim]], profile: str) -> str:
    """Render the ledger as Markdown: one table per notebook, then a verdict count."""
    lines = [f"# Claims ledger — profile `{profile}`", "",
             "Generated by `./build.sh report` from each notebook's `claims.json`. Verdict rules live in code "
             "(`r2mae_core/experiments/*`).", ""]
    counts = dict.fromkeys(VERDICTS, 0)
    for notebook, claims in sorted(claims_by_notebook.items()):
        lines += [f"## {notebook}", "", "| id | claim | metric | value | 95% CI | seeds | verdict |",
                  "|---|---|---|---|---|---|---|"]
        for c in claims:
            counts[c.verdict] += 1
            ci = f"[{_fmt(c.ci_low)}, {_fmt(c.ci_high)}]"
            claim, metric = (text.replace("|", "\\|") for text in (c.claim, c.metric))
            lines.append(f"| {c.id} | {claim} | {metric} | {_fmt(c.value)} | {ci} | {c.n_seeds} | "
                         f"**{c.verdict}** |")
        lines.append("")
    lines.append("Totals: " + ", ".join(f"{v}: {n}" for v, n in counts.items()))
    return "\n".join(lines) + "\n"
