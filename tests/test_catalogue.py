"""The catalogue of figures and tables agrees with the notebooks and the README; the report captions figures,
links claims to them and typesets formulas with a local MathJax."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import nbformat
import pytest

from r2mae_core import catalogue, report
from r2mae_core.claims import Claim
from r2mae_core.io import save_claims, save_figure
from r2mae_core.paths import REPO_ROOT, notebook_names

SAVED = re.compile(r'"((?:fig|tab)\d+_[a-z0-9_]+)"')


@pytest.mark.parametrize("notebook", notebook_names())
def test_every_saved_output_is_catalogued_and_nothing_else(notebook):
    source = (REPO_ROOT / "notebooks" / f"{notebook}.py").read_text(encoding="utf-8")
    assert set(SAVED.findall(source)) == set(catalogue.CATALOGUE[notebook])


@pytest.mark.parametrize("notebook", notebook_names())
def test_the_readme_describes_each_notebook_with_the_catalogue(notebook):
    row = next(line for line in (REPO_ROOT / "README.md").read_text(encoding="utf-8").splitlines()
               if line.startswith(f"| [`notebooks/{notebook}.py`]"))
    cells = [c.strip() for c in row.strip("|").split(" | ")]
    assert cells[2] == catalogue.readme_cell(notebook), "update the README's row from catalogue.readme_cell"


def test_claims_find_their_figures():
    assert catalogue.evidence_for_claim("01_linear_theory", "C1") == ["fig6_theory_vs_mc"]
    assert catalogue.evidence_for_claim("04_dna", "D1-exon_intron") == ["fig2_methods", "fig3_paired_differences"]
    assert catalogue.evidence_for_claim("06_spectral_clustering", "T5-nmi") == ["fig3_segmentation_scores"]
    assert catalogue.evidence_for_claim("06_spectral_clustering", "T5") == ["fig5_bound"]
    assert catalogue.evidence_for_claim("01_linear_theory", "C4-eq") == ["fig4_r2mae_vs_fixed",
                                                                         "tab3_equivalent_ratio"]
    assert catalogue.evidence_for_claim("02_vision", "Z9") == []
    assert catalogue.caption("02_vision", "fig9_new") == "fig9_new"  # not catalogued: its name


def test_the_report_captions_links_and_typesets_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("R2MAE_RESULTS_DIR", str(tmp_path))
    notebook = "01_linear_theory"
    save_claims([Claim("C1", "theory = MC", "paper", "rel err", 0.01, 0.0, 0.02, 3, "supported", "quick")],
                profile="quick", notebook=notebook)
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    save_figure(fig, "fig6_theory_vs_mc", profile="quick", notebook=notebook, formats=("png",))
    plt.close(fig)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("$$R(m) = \\sigma^2$$")])
    nbformat.write(nb, tmp_path / "quick" / notebook / f"{notebook}.ipynb")
    index = report.write_report("quick").read_text()
    assert "<figcaption><b>fig6</b> theory vs MC</figcaption>" in index
    assert f"<a href='#{notebook}-fig6_theory_vs_mc'>fig6</a>" in index
    assert f"id='{notebook}-fig6_theory_vs_mc'" in index
    page = (tmp_path / "quick" / notebook / f"{notebook}.html").read_text()
    sources = re.findall(r"<script[^>]+src=\"([^\"]+)\"", page)
    mathjax = [s for s in sources if "MathJax" in s]
    assert mathjax == [f"../_mathjax/MathJax.js?config={report.MATHJAX_CONFIG}"]
    remote = [s for s in sources if s.startswith(("http:", "https:", "//"))]
    assert all("require" in s for s in remote), remote  # nbconvert's require.js: only widgets need it
    assert (tmp_path / "quick" / "_mathjax" / "MathJax.js").is_file()
    assert (tmp_path / "quick" / "_mathjax" / "config" / "TeX-AMS-MML_HTMLorMML-full.js").is_file()
