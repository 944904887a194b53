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
# # 00 · A tour of the masking library
#
# Every section of this companion masks its inputs through one module, `r2mae_core.masking`, so this
# short notebook shows what it does, on real Fashion-MNIST test images.
#
# A masked-pretraining step needs two answers:
#
# * **how much to mask**: a *ratio sampler* returns the mask ratio(s) $m$ for the step. A fixed ratio is the
#   MAE/BERT default; **R²MAE** (the main paper) draws $m \sim \mathcal U[a, b]$ anew every step (per batch), or
#   for every sample (per sample); schedules move $m$ with training progress $t \in [0, 1]$; MaskGIT draws
#   $m = \cos(\pi r / 2)$ with $r \sim \mathcal U(0, 1)$; MAGE a truncated Gaussian; scGPT a choice in $\{0.25, 0.5, 0.75\}$;
#   masked-diffusion language models (MDLM, LLaDA) a noise level $t \sim \mathcal U[\varepsilon, 1)$ per sequence.
# * **which positions**: a *mask generator* turns ratios into a boolean mask (`True` = hidden): an exact-count
#   random subset (the MAE argsort trick, which also gives the keep/restore indices the encoder needs),
#   independent Bernoulli draws, contiguous spans, blocks of patches (BEiT), and BERT's 80/10/10 token corruption.
#
# The last cell checks the realised statistics against the specification and writes them to the claims
# ledger (three implementation checks, M1–M3; the paper's claims start in `01_linear_theory`).

# %% tags=["parameters"]
profile: str = "smoke"  # which results/<profile>/ to write; build.sh sets it
seed: int = 0  # master seed; every sampler and generator gets a child seed
n_batches: int = 400  # training steps simulated per sampler; progress t runs from 0 to 1 over them
batch_size: int = 64  # rows per step
patch: int = 4  # patch size on 28x28 images (4 gives 7x7, i.e. 49 tokens)
n_images: int = 6  # Fashion-MNIST test images shown masked
mean_span: float = 3.0  # mean span length, in tokens, of the span generator

# %%
from r2mae_core import io, reference, seed_everything, validation
from r2mae_core.experiments import masking_tour
from r2mae_core.plotting import masking as plots

seed_everything(seed)
out = io.RunOutputs(profile, "00_masking_tour")
config = validation.from_parameters(masking_tour.Config, globals())  # every parameter that is a Config field
results = masking_tour.run(config)

# %% [markdown]
# ## Ratio samplers
# Each panel is the distribution of the ratios one sampler produced over a simulated training run. The
# schedule's histogram is the time-average of its deterministic path, shown in the next figure.

# %%
fig = plots.ratio_distributions(results["ratios"])
out.save_figure(fig, "fig1_ratio_distributions")

# %%
fig = plots.ratio_over_training(results["ratios"])
out.save_figure(fig, "fig2_ratio_over_training")

# %% [markdown]
# ## Masks on real images
# Grey patches are masked. The exact-count generator hides the same number of patches in every image; blocks
# hide the same number in rectangles; R²MAE per sample hides a different number in each; Bernoulli varies around
# the ratio; spans hide runs of neighbouring tokens (in raster order).

# %%
fig = plots.masked_images(results["images"])
out.save_figure(fig, "fig3_masked_images")

# %% [markdown]
# ## Block masks on the patch grid
# BEiT's blockwise masking (Bao et al. 2022; `masking.block_mask`): rectangles of patches with random area (at
# least 4 patches) and aspect ratio (0.3 to 1/0.3, log-uniform) are added until the image's count is reached,
# the same count as the random subset, so a model sees as many visible tokens under either. One row per ratio;
# each placed rectangle is outlined. Table 3: blocks have a much shorter boundary (masked/visible neighbour
# pairs) than random subsets of the same count.

# %%
fig = plots.block_masks(results["blocks"])
out.save_figure(fig, "fig4_block_masks")
out.save_table(results["blocks"]["stats"], "tab3_block_masks")
results["blocks"]["stats"].round(3)

# %% [markdown]
# ## Masked diffusion: the noise level and its weight
# MDLM (Sahoo et al. 2024) and LLaDA (Nie et al. 2025) draw $t \sim \mathcal U[\varepsilon, 1)$ per sequence
# ($\varepsilon = 10^{-3}$), mask each token independently with probability $t$ and weight the sequence's
# masked-token loss by $1/t$. Since $\mathbb E[k \mid t] = t\,n$ for $k$ masked tokens out of $n$, the weighted
# count $k/(t\,n)$ has mean 1 at every $t$: the weighted loss is an unbiased estimate of the average over all
# $n$ tokens of the loss at that noise level, and over $t$ of the masked-diffusion likelihood bound
# (`losses.masked_diffusion_loss`). Left: the drawn $t$; right: the masked fraction and the weighted fraction
# against $t$ (claim M3 checks the mean).

# %%
fig = plots.diffusion_weights(results["diffusion"])
out.save_figure(fig, "fig5_diffusion_weights")
masking_tour.diffusion_check(results["diffusion"])

# %% [markdown]
# ## Does the implementation match its specification?
# Table 1 compares the Monte Carlo moments of every sampler with the quadrature expectation its `expect`
# method computes (the linear theory of `01` uses those expectations). Table 2 shows that per-sample R²MAE
# spreads the *realised* masked fraction within a batch as $\mathcal U[a,b]$ does, while per batch keeps the
# whole batch at one ratio.

# %%
out.save_table(results["moments"], "tab1_sampler_moments")
out.save_table(results["spread"], "tab2_within_batch_spread")
results["spread"]

# %%
claims = masking_tour.claims(results, profile)
out.save_claims(claims)
key_numbers = masking_tour.key_numbers(results)
out.save_metrics(key_numbers)
for claim in claims:
    print(f"{claim.id}: {claim.verdict} ({claim.metric} = {claim.value:.4g})")
print(key_numbers)

# %% [markdown]
# At the smoke scale these key numbers are compared with the stored reference
# (`notebooks/reference/00_masking_tour.json`, written by `./build.sh pair`), each within a tolerance set by its
# seed-to-seed spread (`r2mae_core.reference`). This cell's output is what `./build.sh test` checks.

# %% tags=["nbval-check-output"]
print(reference.check("00_masking_tour", profile, key_numbers))
