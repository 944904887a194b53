# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (r2mae)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Masked pretraining as minimum-norm regression
#
# The main paper (Dong, Wang & Kluger, NeurIPS 2025) characterises mask-based pretraining by the test risk of
# high-dimensional minimum-norm ("ridgeless") linear regression. Its text is not available to us, so this
# notebook **derives** the framework, **verifies** every formula against exact Monte Carlo fits, and states the
# paper's claims as hypotheses with decision rules written in code
# (`r2mae_core.experiments.linear_theory_claims`).
#
# ## The model
# Data $x\sim\mathcal N(0,\Sigma)$ in $\mathbb R^p$ with $\Sigma$ a correlation matrix; $n$ training samples,
# each with a ratio $m\sim P$ (fixed, R²MAE $\mathcal U[a,b]$, a schedule) and visibility
# $v_k\sim\mathrm{Bernoulli}(1-m)$. The linear masked autoencoder $\hat x_j = w_j^\top(v\odot x)$, trained on
# masked coordinates only, decouples over targets: $w_j$ is the minimum-norm least-squares fit of $x_j$ on
# $u=(v\odot x)_{-j}$ over the samples where $j$ is masked (what gradient descent from zero converges to).
#
# **Moments.** Given $m$, $u$ has second moment and cross-moment
# $$C(m) = (1-m)^2\Sigma_{-j} + m(1-m)\,I,\qquad c(m) = (1-m)\,\Sigma_{-j,j}$$
# (unit diagonal). All $C(m)$ share the eigenvectors of $\Sigma_{-j}$, with eigenvalues
# $\mu_i(m)=(1-m)^2\lambda_i+m(1-m)$: masking acts as a **ridge of strength $m/(1-m)$** on the population
# predictor $\beta^*(m) = C(m)^{-1}c(m)$. A sample enters target $j$'s fit with probability $m$, so the rows
# have the size-biased law $\pi(m)\propto m\,P(m)$ and there are $n_\mathrm{eff}=n\,E[m]$ of them:
# $\gamma_\mathrm{eff}=(p-1)/(n E[m])$, and the interpolation peak sits where $n E[m]\approx p$.
#
# **Random ratio, population limit.** The normal equations of a law only see
# $E[m(1-m)^2]$ and $E[m^2(1-m)]$: $E_\pi[C]\propto \Sigma + r I$ with $r=E[m^2(1-m)]/E[m(1-m)^2]$. So R²MAE's
# population predictor is that of the fixed ratio $m_\mathrm{eq}=E[m^2(1-m)]/E[m(1-m)]$ — the same vector, scale
# included, since $E[m(1-m)^2]+E[m^2(1-m)]=E[m(1-m)]$.
#
# **Finite n: a mixture of row groups.** Treating rows as Gaussian given their ratio (nodes $g$ of the law's
# quadrature), the leave-one-out (cavity) argument gives the deterministic equivalent of ridge regression with
# heterogeneous rows, which for one group is Hastie, Montanari, Rosset & Tibshirani (Ann. Stat. 2022):
# $$\theta_g^{-1}=\lambda+\frac1{n_\mathrm{eff}}\sum_i\frac{\mu_{gi}}{1+k_i},\quad k_i=\sum_g\pi_g\theta_g\mu_{gi},
# \quad \bar w_i=\frac{\sum_g\pi_g\theta_g c_{gi}}{1+k_i}.$$
# $\bar w=E[\hat w]$; its fluctuation solves $D_h=\sum_g A_{hg}(r_g+D_g)$ with
# $A_{hg}=\frac{\pi_g\theta_g^2}{n_\mathrm{eff}}\sum_i\frac{\mu_{hi}\mu_{gi}}{(1+k_i)^2}$ and
# $r_g=E_g[(x_j-\bar w^\top u)^2]$. At a test law with moments $(B, c_t)$ the risk is
# $$R = 1 - 2c_t^\top\bar w + \bar w^\top B\bar w + D_B .$$
# For one group this is the familiar fixed point $n_\mathrm{eff}=\sum_i\mu_i/(\mu_i+\kappa)$ with bias
# $\kappa^2\sum\mu\beta^2/(\mu+\kappa)^2/(1-S)$ and variance $\sigma^2S/(1-S)$. Rows with more visible
# coordinates get weight $\theta_g$: at finite $n$ a random ratio is **not** its population-equivalent fixed
# ratio (the plots below show by how much).
#
# **Downstream.** The representation $z=W^\top x$ of an unmasked input is, for a stationary (circulant)
# $\Sigma$, a spectral filter $h_k$ on Fourier mode $k$; a linear probe on $n_\mathrm{down}$ labelled samples of
# $y=\theta^\top x+\varepsilon$ sees features of variance $\lambda_k h_k^2$, and its risk is the same
# deterministic equivalent (one group).
#
# **Regimes.** `ar1` and `two_scale` (local correlation, like neighbouring pixels or bases: a masked coordinate
# is predictable from its neighbours) have risks well below the trivial risk 1 and clear optima. `spiked` and
# `power_law` (a few delocalised directions, unit diagonal) leave each coordinate's predictable part small: every
# masked predictor sits near the trivial risk.

# %% tags=["parameters"]
profile: str = "smoke"  # which results/<profile>/ to write; build.sh sets it
seed: int = 0  # master seed; every Monte Carlo point derives its own child seeds
p: int = 120  # data dimension; the acceptance is stated at p of 400 and more
gammas: list = [0.5, 1.0, 2.0]  # model sizes gamma, the ratio p/n; n is p/gamma training samples
mc_ratios: list = [0.1, 0.3, 0.5, 0.7, 0.9]  # fixed ratios simulated by Monte Carlo (theory uses a dense grid)
theory_ratios: int = 39  # points of the dense theory ratio grid on [0.02, 0.98]
reps: int = 3  # Monte Carlo repetitions per point (fresh data and masks each)
c4_reps: int = 4  # repetitions per split (validation and test) for the R2MAE-vs-fixed comparison
scale_reps: int = 6  # repetitions averaged into the Monte Carlo mean fit of the per-scale gains
n_targets: int = 4  # sampled targets of the power-law family (the ring families need one)
n_down: int = 60  # labelled samples of the downstream probe (below p, where the representation matters)
r2mae_low: float = 0.1  # declared R2MAE interval, lower end
r2mae_high: float = 0.9  # declared R2MAE interval, upper end
r2mae_per: str = "sample"  # R2MAE draws a ratio per sample or per batch
test_ratio: float = 0.75  # the stated test ratio of one criterion
universal_low: float = 0.1  # universal criterion: risk averaged over test ratios from U[low, high]
universal_high: float = 0.9  # upper end of the universal test law
primary_criterion: str = "universal"  # criterion of claim C4: universal, test_ratio or downstream
phase_p: int = 40  # data dimension of the phase diagram
phase_gammas: list = [1.0, 4.0]  # model sizes gamma of the phase diagram
phase_families: list = ["two_scale"]  # covariance families of the phase diagram
phase_ridges: list = [0.0]  # ridge strengths (0 is minimum norm) of the phase diagram
phase_pers: list = ["sample", "batch"]  # R2MAE draws per sample and/or per batch in the phase diagram
phase_criteria: list = ["test_ratio", "universal", "downstream"]  # criteria of the phase diagram
phase_fixed_step: float = 0.02  # step of the fixed-ratio grid before its Brent refinement
phase_interval_step: float = 0.2  # endpoint step of the interval grid before its Nelder-Mead refinement
phase_batch_draws: int = 3  # seeded draws of the batch ratios for the per-batch theory
phase_reps: int = 8  # Monte Carlo repetitions per checked phase point
phase_tolerance: float = 0.0001  # a point is a theory win when the interval beats the fixed ratio by more
phase_mc_points: int = 2  # points closest to a win checked by Monte Carlo when the theory finds no win
diffusion_eps: float = 0.001  # masked diffusion law: m from U[eps, 1 - eps] with loss weight 1/m

# %%
from r2mae_core import io, reference, seed_everything, validation
from r2mae_core.experiments import linear_theory, linear_theory_claims
from r2mae_core.plotting import linear_theory as plots

seed_everything(seed)
out = io.RunOutputs(profile, "01_linear_theory")
config = validation.from_parameters(linear_theory.Config, globals())  # every parameter that is a Config field
results = linear_theory.run(config)

# %% [markdown]
# ## 1 · Pretraining risk against the mask ratio
# Rows: covariance families; columns: model size $\gamma=p/n$. Lines: theory (risk, and its split into the
# irreducible error of the population predictor, the bias of the mean fit and the variance of the fit); points:
# Monte Carlo mean ± 2 SE. The grey band is the interpolation peak $|\gamma_\mathrm{eff}-1|<0.2$, where
# $n E[m]\approx p$; left of it the fit is over-parameterised (few rows: $m$ small), right of it
# under-parameterised.

# %%
fig = plots.risk_vs_ratio(results["fixed_theory"], results["fixed_mc"])
out.save_figure(fig, "fig1_risk_vs_ratio")

# %% [markdown]
# ## 2 · Where is the optimal ratio?
# The theory's risk-minimising fixed ratio against model size (more parameters per sample need more masked
# rows) and against the correlation strength $\rho$ of AR(1) data.

# %%
fig = plots.optimal_ratio(results["optimum"])
out.save_figure(fig, "fig2_optimal_ratio")

# %% [markdown]
# ## 3 · Downstream: does the best ratio depend on the task?
# A minimum-norm probe on $n_\mathrm{down}<p$ labelled samples of tasks living on coarse (low-frequency), mid,
# fine (high-frequency) or all scales of `two_scale` data, on the mean representation learned at each ratio.

# %%
fig = plots.downstream_vs_ratio(results["downstream_theory"], results["downstream_mc"])
out.save_figure(fig, "fig3_downstream_vs_ratio")

# %% [markdown]
# ## 4 · R²MAE against the best fixed ratio
# Heatmaps: theory risk of R²MAE $\mathcal U[a,b]$ minus the best fixed ratio, for the universal criterion
# (test ratios averaged over the universal law), the stated test ratio, and the mean downstream risk over the
# four tasks; negative means R²MAE is better. Lines: fixed-ratio risk with the declared R²MAE interval and its
# population-equivalent fixed ratio.

# %%
fig = plots.r2mae_vs_fixed(results["r2mae_grid"], declared=(r2mae_low, r2mae_high))
out.save_figure(fig, "fig4_r2mae_vs_fixed")

# %% [markdown]
# ### The fixed ratio of equal population effect
# A random law trains, in the population limit, exactly the predictor of the fixed ratio
# $m_\mathrm{eq}=E[m^2(1-m)]/E[m(1-m)]$, so an interval can beat a coarse grid of fixed ratios simply by having
# an $m_\mathrm{eq}$ between its points. Two controls remove that: the heatmaps' best fixed ratio is the
# optimum of a fine grid (step `phase_fixed_step`, refined by Brent's method to $10^{-5}$ in $m$; near the
# optimum the risk is $R^*+\tfrac12R''(m-m^*)^2$, so the refinement's error is below $10^{-8}$), and every
# interval's Monte Carlo runs next to the fixed ratio at its own $m_\mathrm{eq}$, which also joins C4's fixed
# candidates. Table 3: per interval and criterion, $m_\mathrm{eq}$, the theory risks of the interval, of fixed
# $m_\mathrm{eq}$ and of the fine grid's best fixed ratio, and the paired Monte Carlo gain
# risk(fixed $m_\mathrm{eq}$) − risk(interval) on the test repetitions with its 95% interval (claim C4-eq).

# %%
equivalence = linear_theory_claims.equivalence_table(results)
out.save_table(equivalence, "tab3_equivalent_ratio")
equivalence.round(4)

# %% [markdown]
# ## 5 · Multi-scale: which scales does the representation keep?
# The learned filter's gain on the coarse and fine bands of `two_scale` data (relative to its largest gain):
# theory for the mean fit at the pretraining sample size (solid) and the population limit (dashed), Monte Carlo
# mean fits (points).

# %%
fig = plots.scale_recovery(results["scales_theory"], results["scales_mc"])
out.save_figure(fig, "fig5_scale_recovery")

# %% [markdown]
# ## 6 · Theory against simulation, every point
# Table 1 lists every Monte Carlo point with its theory value; Table 2 summarises the relative errors over the
# risk points away from the interpolation peak (the acceptance: median ≤ 5%, every point ≤ 15% at p ≥ 400).

# %%
errors = linear_theory_claims.error_table(results)
out.save_table(errors, "tab1_theory_vs_mc")
summary = linear_theory_claims.error_summary(errors)
out.save_table(summary, "tab2_error_summary")
fig = plots.theory_vs_mc(errors)
out.save_figure(fig, "fig6_theory_vs_mc")
summary.round(4)

# %% [markdown]
# ## 7 · Masked diffusion's ratio law
# Masked-diffusion language models (MDLM, Sahoo et al. 2024; LLaDA, Nie et al. 2025) draw $t\sim\mathcal U(0,1)$
# per sequence, mask each token with probability $t$ and weight the loss by $1/t$. In the linear model a weight
# $w(m)$ on a sample's loss makes the fit minimise $\sum_i w(m_i)(y_i-\hat w^\top u_i)^2$, i.e. an ordinary fit
# of the rows $\sqrt{w(m_i)}\,(u_i, y_i)$.
#
# **Population limit.** The normal equations become $E_\pi[wC]\beta=E_\pi[wc]$ with
# $E_\pi[wC]\propto E[w\,m(1-m)^2]\,\Sigma+E[w\,m^2(1-m)]\,I$, so
# $$m_\mathrm{eq}=\frac{E[w\,m^2(1-m)]}{E[w\,m(1-m)]},$$
# and since $E[wm(1-m)^2]+E[wm^2(1-m)]=E[wm(1-m)]$ the scale matches too: the weighted law trains the predictor of
# fixed $m_\mathrm{eq}$. For $m\sim\mathcal U(0,1)$, $w=1/m$: $m_\mathrm{eq}=E[m(1-m)]/E[1-m]=(1/6)/(1/2)=1/3$
# (the rows' law $\propto m\,w(m)P(m)$ is uniform).
#
# **Finite n.** The weighted rows are Gaussian given $m$ with moments $w_gC_g$, $w_gc_g$, $E_g[y^2]=w_g$, so the
# mixture deterministic equivalent applies unchanged with these group moments (`theory.weighted_law`,
# `theory.masked_diffusion_law`; the test risk stays unweighted); `tests/test_theory.py` checks it against
# weighted Monte Carlo fits. **Where no closed form exists:** a minimum-norm fit with fewer rows than
# coordinates interpolates every row, whatever its weight, and this law puts a fraction of order $k/q$ of the rows
# at $m>1-k/q$, i.e. with $O(1)$ visible coordinates. Interpolating such a row needs a coefficient
# $y/x_k$ with $x_k\sim\mathcal N(0,1)$, whose second moment is infinite: the Monte Carlo risk is heavy-tailed
# with no finite mean, and Gaussian equivalence given $m$ (which needs $q(1-m)\gg1$) fails. The deterministic
# equivalent is then finite but is not the expected risk; with a ridge $\lambda>0$ or more rows than
# coordinates it is. Table 4 gives both regimes at the focus point (the study's ridge and each phase ridge):
# theory, Monte Carlo mean and median, and the paired difference to the best fixed ratio of the fine grid.

# %%
diffusion = linear_theory_claims.diffusion_table(results)
out.save_table(diffusion, "tab4_masked_diffusion")
diffusion.round(4)

# %% [markdown]
# ## 8 · Phase diagram: where, if anywhere, does a random ratio win?
# **Population limit: never.** A law's population predictor is fixed $m_\mathrm{eq}$'s, on every criterion, so
# $R(P)=R(m_\mathrm{eq})\ge\min_m R(m)$. A random ratio can only win through finite-$n$ effects.
#
# **What the finite-n deterministic equivalent says.** Take a law of mean $m_0$ and small variance $s^2$. Its
# population effect is that of $m_\mathrm{eq}=m_0+\mathrm{Cov}(m,m(1-m))/E[m(1-m)]
# =m_0+s^2(1-2m_0)/(m_0(1-m_0))+O(s^3)$, but its row count is $nE[m]=nm_0$, not $nm_\mathrm{eq}$. Writing
# $R(m,N)$ for the risk of fixed ratio $m$ fitted on $N$ rows, and using that the fixed-ratio risk $R(m,nm)$ is
# stationary at its optimum $m^*$,
# $$R(P)-R(m^*,nm^*)=s^2\Big[-\,n\,\frac{1-2m^*}{m^*(1-m^*)}\,\frac{\partial R}{\partial N}(m^*,nm^*)
# \;+\;H\Big]+O(s^3),$$
# where the first term is the row-count effect (a random law is a fixed ratio with a decoupled row count) and $H$
# is the effect of mixing rows of different ratios (the heterogeneous deterministic equivalent's remainder). The
# sign of the row term is that of $-(1-2m^*)\,\partial R/\partial N$. With a ridge $\lambda>0$ more rows
# lower the risk ($\partial R/\partial N<0$; with tuned ridge the risk is monotone in $N$, Nakkiran et al.
# 2021), so the row term hurts when $m^*<1/2$ and helps when $m^*>1/2$. A minimum-norm fit on the
# over-parameterised side of the interpolation peak ($N<q$) is the one case where more rows *raise* the risk
# ($\partial R/\partial N>0$), so there a law below $1/2$ gains by dropping rows at the same effective ridge: this
# is where the theory can call a win. The phase table gives, at each point's fixed optimum, both terms for the
# two-point law $\{m^*\pm0.01\}$ (`expansion_total` $=\Delta R/s^2$, `expansion_rows`); where `expansion_total`
# $>0$ no narrow law near $m^*$ wins, and a win needs a wide interval.
#
# **The map.** For each family, model size $\gamma$ (0.1–10 at full scale), ridge, per-sample or per-batch ratios
# (per-batch: the deterministic equivalent given the batch ratios, averaged over seeded draws, on the best
# per-sample intervals) and criterion, figure 7 shows $\Delta$ = risk of the best interval (grid + Nelder–Mead)
# minus the best fixed ratio (fine grid + Brent). Monte Carlo checks every theory win, its $\gamma$-neighbours
# (the boundary, with the winning interval) and, when the theory calls none, the points closest to a win
# (Table 6: paired repetitions; 95% intervals per point, and Bonferroni intervals over the checked points, which
# the markers and claim C5 use: a win found somewhere among many points must survive the search). Claim C5 states
# the region.

# %%
fig = plots.phase_diagram(results["phase"], results["phase_mc"], tolerance=phase_tolerance)
out.save_figure(fig, "fig7_phase_diagram")
out.save_table(results["phase"], "tab5_phase_theory")
out.save_table(results["phase_mc"], "tab6_phase_monte_carlo")
results["phase_mc"].round(4)

# %%
results["phase"].nsmallest(10, "delta").round(5)

# %% [markdown]
# ## Claims
# C1 theory predicts simulation; C2 an interior optimal ratio; C3a the optimum grows with model size; C3b it
# depends on the downstream task; C4 R²MAE (interval chosen on validation repetitions) beats the best fixed
# ratio on the declared primary criterion, with the other criteria and the declared default interval as extra
# rows; C4-eq the same interval beats the fixed ratio of equal population effect; C5 the region of the phase
# diagram where a random ratio wins. Each verdict follows the rule in `linear_theory_claims`.

# %%
claims = linear_theory_claims.claims(results, config, profile)
out.save_claims(claims)
key_numbers = linear_theory_claims.key_numbers(results, claims)
out.save_metrics(key_numbers)
for claim in claims:
    print(f"{claim.id}: {claim.verdict} ({claim.metric} = {claim.value:.4g})")
print(key_numbers)

# %% [markdown]
# At the smoke scale these key numbers are compared with the stored reference
# (`notebooks/reference/01_linear_theory.json`, written by `./build.sh pair`), each within a tolerance set by its
# seed-to-seed spread (`r2mae_core.reference`). This cell's output is what `./build.sh test` checks.

# %% tags=["nbval-check-output"]
print(reference.check("01_linear_theory", profile, key_numbers))
