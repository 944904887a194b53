"""The report of a profile: ``python -m r2mae_core.report --profile quick``.

Merges every notebook's ``claims.json`` into ``results/<profile>/CLAIMS.md``, converts each executed
notebook to HTML (nbconvert) and writes ``results/<profile>/index.html``: the commit and date it was written
at, and per notebook its status and run time, the claims (with the metric each value measures and links to the
figures that support them), captioned figure thumbnails and its tables rendered (their first :data:`TABLE_ROWS`
rows, each linked to its CSV); captions and claim links come from :mod:`r2mae_core.catalogue`. All links are
relative and the notebook pages typeset their formulas with a local copy of MathJax
(``results/<profile>/_mathjax/``, from the ``jupyter-server-mathjax`` package), so the folder reads offline.
A notebook still marked ``.incomplete`` (failed or interrupted) is listed as such, never as a result.
"""

from __future__ import annotations

import argparse
import html
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import shard_log
from .catalogue import caption, evidence_for_claim
from .claims import Claim, claims_to_markdown
from .io import atomic_write_text, load_claims
from .paths import REPO_ROOT, check_profile, results_root

__all__ = ["collect", "local_mathjax", "write_report", "readme_ledger", "update_readme", "main"]

INCOMPLETE = ".incomplete"
#: The README block between these markers is the ledger of the committed ``full`` run, written by the report.
README_MARKERS = ("<!-- ledger:full:start -->", "<!-- ledger:full:end -->")
#: Rows of each table shown in the index (the CSV beside it has them all).
TABLE_ROWS = 20
#: The local MathJax's folder under ``results/<profile>/`` and the configuration the notebook pages load (MathJax 2,
#: the version nbconvert's templates configure; ``Safe`` keeps typeset text from running code).
MATHJAX_DIR = "_mathjax"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"


def collect(profile: str) -> dict[str, dict]:
    """Per notebook directory of ``results/<profile>/``: status, claims, figures, tables, notebook path."""
    root = results_root() / check_profile(profile)
    runs: dict[str, dict] = {}
    if not root.exists():
        return runs
    for run in sorted(p for p in root.iterdir() if p.is_dir() and p.name[:2].isdigit()):
        incomplete = (run / INCOMPLETE).exists()
        claims_file = run / "claims.json"
        runs[run.name] = {
            "path": run,
            "complete": not incomplete,
            "claims": load_claims(claims_file) if claims_file.exists() and not incomplete else [],
            "figures": sorted((run / "figures").glob("*.png")) if (run / "figures").exists() else [],
            "tables": sorted((run / "tables").glob("*.csv")) if (run / "tables").exists() else [],
            "notebook": run / f"{run.name}.ipynb",
        }
    return runs


def local_mathjax(root: Path) -> str | None:
    """Copy MathJax from the installed ``jupyter-server-mathjax`` package to ``root/_mathjax`` (once) and return
    the URL a notebook page one folder below ``root`` loads it from; None when the package is not installed
    (the pages then load MathJax from nbconvert's CDN and need the internet for formulas)."""
    try:
        import jupyter_server_mathjax
    except ImportError:
        return None
    source = Path(jupyter_server_mathjax.__file__).parent / "static"
    target = root / MATHJAX_DIR
    if not (target / "MathJax.js").exists():
        partial = root / f"{MATHJAX_DIR}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(source, partial)
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
    return f"../{MATHJAX_DIR}/MathJax.js?config={MATHJAX_CONFIG}"


def _notebook_html(ipynb: Path, *, exclude_input: bool, mathjax_url: str | None) -> Path | None:
    if not ipynb.exists():
        return None
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    exporter.exclude_input = exclude_input
    if mathjax_url is not None:
        exporter.mathjax_url = mathjax_url
    body, _ = exporter.from_notebook_node(nbformat.read(ipynb, as_version=4))
    return atomic_write_text(ipynb.with_suffix(".html"), body)


def _figure_anchor(notebook: str, output: str) -> str:
    """The index's anchor of a figure or table."""
    return f"{notebook}-{output}"


def _claims_rows(notebook: str, claims: list[Claim], figures: list[Path], tables: list[Path]) -> str:
    """The claims table of one notebook; each claim links to the saved figures and tables that support it."""
    saved = {f.stem for f in figures} | {t.stem for t in tables}
    rows = []
    for c in claims:
        ci = "–" if c.ci_low != c.ci_low else f"[{c.ci_low:.4g}, {c.ci_high:.4g}]"
        value = "–" if c.value != c.value else f"{c.value:.4g}"
        links = ", ".join(f"<a href='#{_figure_anchor(notebook, f)}'>{f.split('_')[0]}</a>"
                          for f in evidence_for_claim(notebook, c.id) if f in saved) or "–"
        rows.append(f"<tr><td>{html.escape(c.id)}</td><td>{html.escape(c.claim)}</td>"
                    f"<td>{html.escape(c.metric)}</td><td>{value}</td><td>{ci}</td><td>{c.n_seeds}</td>"
                    f"<td class='{c.verdict}'>{c.verdict}</td><td>{links}</td></tr>")
    return ("<table><tr><th>id</th><th>claim</th><th>metric</th><th>value</th><th>95% CI</th><th>seeds</th>"
            "<th>verdict</th><th>figures</th></tr>" + "".join(rows) + "</table>") if rows else \
        "<p>No claims recorded.</p>"


def _figure_html(notebook: str, figure: Path) -> str:
    """A thumbnail linked to the full figure, captioned from the catalogue, with an anchor claims link to."""
    text = html.escape(caption(notebook, figure.stem))
    number = figure.stem.split("_")[0]
    return (f"<figure id='{_figure_anchor(notebook, figure.stem)}'><a href='{notebook}/figures/{figure.name}'>"
            f"<img src='{notebook}/figures/{figure.name}' alt='{text}'></a>"
            f"<figcaption><b>{number}</b> {text}</figcaption></figure>")


def _table_html(name: str, table: Path) -> str:
    """A CSV table rendered (its first :data:`TABLE_ROWS` rows), headed by a link to the whole file."""
    import pandas as pd

    frame = pd.read_csv(table)
    shown = frame.head(TABLE_ROWS).to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0,
                                           na_rep="–")
    more = f" (first {TABLE_ROWS} of {len(frame)} rows)" if len(frame) > TABLE_ROWS else ""
    number = table.stem.split("_")[0]
    return (f"<details id='{_figure_anchor(name, table.stem)}'><summary><a href='{name}/tables/{table.name}'>"
            f"{number}</a> "
            f"{html.escape(caption(name, table.stem))}{more}</summary>{shown}</details>")


def _run_minutes(ipynb: Path) -> float | None:
    """The executed notebook's wall time in minutes (papermill's ``duration``), None if not recorded."""
    if not ipynb.exists():
        return None
    seconds = json.loads(ipynb.read_text(encoding="utf-8")).get("metadata", {}).get("papermill", {}).get("duration")
    return None if seconds is None else float(seconds) / 60


def _commit() -> str:
    """The checkout's commit (short hash, ``+`` when the tree has changes), or ``unknown`` outside git."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+" if dirty else "")


def write_report(profile: str, *, exclude_input: bool = False, notebooks_html: bool = True) -> Path:
    """Write ``CLAIMS.md``, per-notebook HTML and ``index.html`` for ``profile``; return the index path."""
    root = results_root() / check_profile(profile)
    runs = collect(profile)
    claims_md = claims_to_markdown({name: r["claims"] for name, r in runs.items() if r["complete"]}, profile)
    atomic_write_text(root / "CLAIMS.md", claims_md)
    parts = [f"<h1>r2mae results — profile <code>{profile}</code></h1>",
             f"<p>Written {time.strftime('%Y-%m-%d %H:%M %Z')} from commit <code>{_commit()}</code>. "
             "Claims ledger: <a href='CLAIMS.md'>CLAIMS.md</a></p>"]
    mathjax = local_mathjax(root) if notebooks_html and any(r["complete"] for r in runs.values()) else None
    for name, run in runs.items():
        minutes = _run_minutes(run["notebook"])
        status = "complete" if run["complete"] else "INCOMPLETE (failed or interrupted: not a result)"
        if run["complete"] and minutes is not None:
            status += f", ran {minutes:.1f} min"
        parts.append(f"<h2 id='{name}'>{name} <small>{status}</small></h2>")
        if not run["complete"]:
            continue
        page = (_notebook_html(run["notebook"], exclude_input=exclude_input, mathjax_url=mathjax)
                if notebooks_html else None)
        if page is not None:
            parts.append(f"<p><a href='{name}/{page.name}'>executed notebook</a></p>")
        parts.append(_claims_rows(name, run["claims"], run["figures"], run["tables"]))
        parts.append("<div class='figs'>" + "".join(_figure_html(name, f) for f in run["figures"]) + "</div>")
        parts.extend(_table_html(name, t) for t in run["tables"])
    style = ("body{font-family:sans-serif;max-width:1200px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 6px;font-size:90%}.supported{color:#1a7f37}"
             ".contradicted{color:#cf222e}.inconclusive{color:#9a6700}figure{display:inline-block;margin:6px}"
             "img{max-width:360px;max-height:300px}small{color:#777}figcaption{max-width:360px;font-size:90%}")
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>r2mae {profile}</title><style>{style}"
            f"</style></head><body>{''.join(parts)}</body></html>\n")
    return atomic_write_text(root / "index.html", page)


def readme_ledger(profile: str = "full") -> str:
    """The README's ledger block: the CLAIMS.md tables of ``profile`` with their headings one level down, then
    the GPU shard commands whose results the ledger holds (:func:`r2mae_core.shard_log.provenance_markdown`)."""
    runs = collect(profile)
    md = claims_to_markdown({name: r["claims"] for name, r in runs.items() if r["complete"]}, profile)
    lines = md.splitlines()[4:]  # drop the page title and the generated-by paragraph
    claims = "\n".join(f"#{line}" if line.startswith("## ") else line for line in lines) + "\n"
    return (f"{claims}\n### GPU shard commands behind these numbers\n\nEach command of the GPU route whose "
            "results the ledger holds, as its log (`results/full/runs/_shards/`) records it.\n\n"
            f"{shard_log.provenance_markdown(profile)}")


def update_readme(readme: Path, profile: str = "full") -> bool:
    """Replace the README block between :data:`README_MARKERS` by :func:`readme_ledger`; False if no markers."""
    text = readme.read_text(encoding="utf-8")
    start, end = README_MARKERS
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    atomic_write_text(readme, f"{head}{start}\n{readme_ledger(profile)}{end}{tail}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m r2mae_core.report", description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="quick", help="smoke | quick | full (default quick)")
    parser.add_argument("--no-input", action="store_true", help="hide code cells in the notebook HTML")
    args = parser.parse_args(argv)
    try:
        check_profile(args.profile)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not (results_root() / args.profile).exists():
        print(f"error: results/{args.profile}/ does not exist: run ./build.sh run --profile {args.profile} first",
              file=sys.stderr)
        return 2
    index = write_report(args.profile, exclude_input=args.no_input)
    runs = collect(args.profile)
    n_claims = sum(len(r["claims"]) for r in runs.values())
    print(f"report: {index} ({len(runs)} notebooks, {n_claims} claims; CLAIMS.md beside it)")
    if args.profile == "full" and update_readme(REPO_ROOT / "README.md"):
        print("report: README.md ledger block updated from results/full")
    return 0


if __name__ == "__main__":
    sys.exit(main())
