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
# # 02 · Masked autoencoders on real images
#
# Fashion-MNIST (60k training images, 10k test; the last 10k of a seed-0 permutation of the training images are
# the **validation** split every choice is made on). Four questions, each a claim with its decision rule in
# `r2mae_core.experiments.vision_claims`:
#
# 1. **Does the best mask ratio move with the architecture and the model size** as the linear theory of 01
#    predicts (C3a: more parameters per sample → a larger optimal ratio)? MLP-, CNN- and ViT-MAEs of several
#    sizes, trained at fixed ratios. (V1)
# 2. **R²MAE** — a ratio drawn from $\mathcal U[a,b]$ at every step, with $[a,b]$ declared in the YAML before any
#    run — against the best fixed ratio (chosen on validation LP), scheduled decay over the same interval
#    (linear, cosine), MaskGIT's cosine law and MAGE's truncated Gaussian, on ViT-MAE (V2, V3); and whether its
#    advantage holds when the positions are blocks of patches (BEiT) rather than a random subset (V5), and
#    against the fixed ratio of equal population effect, the one fixed ratio 01's theory says it amounts to. (V6)
# 3. **U-MAE** (Zhang, Wang & Wang 2022): the MAE loss plus $\lambda\,\overline{(\hat z_i^\top \hat z_j)^2}$ over
#    pairs of L2-normalised features of the masked inputs, against dimensional collapse (effective rank). (V4)
# 4. What the models reconstruct at different test ratios.
#
# Every number is a mean over seeds with a 95% Student-t interval; differences are paired by seed (the runs of
# one seed share initialisation, data order and masks). LP = standardised features + multinomial logistic
# regression, its $C$ chosen on a held-out part of the probe's training images; k-NN = 20 neighbours, cosine;
# BN+LP = MAE's probe (non-affine BatchNorm + linear head); FT = full fine-tuning. Reference rows: raw pixels,
# and each architecture randomly initialised under the same probe. ViT features: mean of the patch tokens.

# %% tags=["parameters"]
profile: str = "smoke"  # which results/<profile>/ to write; build.sh sets it
seed: int = 0  # master seed; runs use child seeds shared by every method (paired differences)
n_seeds: int = 2  # seeds per method of the comparison (at least 3 quick, 5 full)
device: str = "cpu"  # torch device of training and evaluation (full: cuda)
compile_model: bool = False  # torch.compile the training step (GPU; ratios bucketed, no recompilation storm)
ensemble_size: int = 1  # runs of one architecture trained together as one vmapped ensemble (GPU: 8-32; CPU: 1)
n_pretrain: int = 1000  # pretraining images (0: every non-validation training image)
batch_size: int = 64  # pretraining batch of every run
lr: float = 0.0015  # peak AdamW learning rate (warmup + cosine)
n_probe_train: int = 600  # labelled non-validation images the probes fit on
n_probe_eval: int = 300  # validation and test images the probes are scored on
bn_lp_epochs: int = 0  # epochs of the BN+LP probe (0: skip)
ft_epochs: int = 0  # epochs of full fine-tuning (0: skip)
test_ratios: list = [0.75]  # test mask ratios of the reconstruction loss
sweep: dict = {"mlp": {"sizes": ["S"], "steps": 20}, "cnn": {"sizes": ["S"], "steps": 5}, "vit": {"sizes": ["S"], "steps": 10}}  # ratio sweep: architecture -> model sizes (S < M < L) and steps
sweep_ratios: list = [0.25, 0.75]  # fixed training ratios of the sweep
sweep_seeds: int = 1  # seeds of the sweep (the first of the run seeds)
vit_size: str = "S"  # ViT size of the method comparison
vit_patch: int = 7  # ViT patch size (28x28 images: 7 gives a 4x4 token grid, 4 a 7x7 grid)
method_steps: int = 10  # pretraining steps of each method-comparison run
fixed_ratios: list = [0.5, 0.75]  # fixed-ratio candidates; the best is chosen on validation LP
r2mae_low: float = 0.5  # declared R2MAE interval, lower end
r2mae_high: float = 0.9  # declared R2MAE interval, upper end
r2mae_per: str = "batch"  # R2MAE draws one ratio per batch or per sample
baselines: list = ["linear"]  # other samplers: linear, cosine (decay over the interval), maskgit, truncnorm
ablation_intervals: list = []  # R2MAE ablation: other intervals [[a, b], ...]
ablation_per_sample: bool = False  # R2MAE ablation: the other per-batch/per-sample choice
ablation_blocks: bool = True  # positions ablation: R2MAE and fixed ratios again with block masks (BEiT)
block_fixed_ratios: list = [0.75]  # fixed candidates trained with block masks too ([]: all of fixed_ratios)
umae_weight: float = 0.01  # lambda of the U-MAE uniformity term
umae_ratio: float = 0.75  # fixed ratio of the MAE / U-MAE pair (one of fixed_ratios)
umae_r2mae: bool = False  # also train R2MAE + U-MAE (the R2MAE / R2MAE + U-MAE pair)
recon_ratios: list = [0.5, 0.75]  # test ratios of the reconstruction figure
n_recon_images: int = 3  # validation images in the reconstruction figure

# %%
from r2mae_core import io, reference, seed_everything, validation
from r2mae_core.experiments import vision, vision_claims
from r2mae_core.plotting import vision as plots

seed_everything(seed)
out = io.RunOutputs(profile, "02_vision")
config = validation.from_parameters(vision.Config, globals())  # every parameter that is a Config field
results = vision.run(config, device=device, compile=compile_model, group_size=ensemble_size)

# %% [markdown]
# ## 1 · The mask ratio across architectures and model sizes
# Validation LP accuracy (top) and the masked-reconstruction loss at test ratio 0.75 (bottom) against the
# training ratio; a star marks each size's best ratio. Table 1 lists every point.

# %%
sweep_summary = vision_claims.sweep_table(results["sweep"])
out.save_table(sweep_summary, "tab1_ratio_sweep")
fig = plots.ratio_sweep(sweep_summary)
out.save_figure(fig, "fig1_ratio_sweep")

# %% [markdown]
# The linear theory (01, fig2) predicts the optimal ratio to grow with the number of parameters per sample.
# Best ratio per seed (points) and its mean (lines):

# %%
best = vision_claims.best_ratios(results["sweep"])
fig = plots.best_ratio_vs_size(best)
out.save_figure(fig, "fig2_best_ratio_vs_size")

# %% [markdown]
# ## 2 · R²MAE against fixed, scheduled and other random ratios (ViT-MAE)
# Every method of the comparison with the reference rows; the dashed line is the best fixed ratio, chosen on
# the validation split. Table 2 has the numbers.

# %%
table = vision_claims.method_table(results["methods"], results["references"])
out.save_table(table, "tab2_methods")
print(f"pretraining wall time: {vision_claims.training_minutes(results):.2f} min")
fig = plots.method_comparison(table, results["best_fixed"], vision_claims.METRICS)
out.save_figure(fig, "fig3_method_comparison")
table.round(4)

# %% [markdown]
# ### Which positions: block masks against random positions
# The same ratio laws (the declared R²MAE interval and the fixed candidates of `block_fixed_ratios`) trained again
# with block masks: BEiT's blockwise masking (Bao et al. 2022), rectangles of patches of random area and aspect
# ratio until the image's count is reached, the same count as the random subset
# (`r2mae_core.masking.block_mask`). Paired differences in test LP: blocks − random at each law, and R²MAE − the
# best fixed ratio (chosen on validation among the same candidates) with either kind of positions (claim V5).

# %%
blocks = vision_claims.block_ablation(results["methods"])
out.save_table(blocks, "tab3_block_ablation")
fig = plots.block_ablation(blocks)
out.save_figure(fig, "fig7_block_ablation")
blocks.round(4)

# %% [markdown]
# ### The fixed ratio of equal population effect
# In 01's linear theory a random ratio with law $P$ trains, in the population limit, exactly the predictor of one
# fixed ratio, $m_{eq} = \mathbb E[m^2(1-m)] / \mathbb E[m(1-m)]$ with $m \sim P$
# (`r2mae_core.theory.equivalent_fixed_ratio`).
# If R²MAE beats the grid's best fixed ratio only because its effective ratio lies between the grid's points, the
# fixed ratio $m_{eq}$ does as well; if the randomness itself helps, R²MAE beats $m_{eq}$ too (claim V6). Each
# R²MAE law trained here (the declared interval, the ablations, the declared interval with block masks) has its
# control trained with the same seeds, steps and ensemble (a grid candidate that lies at $m_{eq}$ is the control
# itself, trained once). Table 4: test LP of R²MAE, of the best fixed ratio (chosen on validation among the
# candidates with the same positions) and of the control, and R²MAE minus each, paired by seed.

# %%
equal_effect = vision_claims.equal_effect_table(results)
out.save_table(equal_effect, "tab4_equal_effect")
equal_effect.round(4)

# %% [markdown]
# A fixed ratio is trained for one test condition; a random ratio for all of them. Reconstruction loss at each
# test ratio (validation images):

# %%
fig = plots.recon_vs_test_ratio(results["methods"], list(results["reconstructions"]))
out.save_figure(fig, "fig4_recon_vs_test_ratio")

# %% [markdown]
# ## 3 · U-MAE and dimensional collapse
# Effective rank $\exp H(\sigma/\lVert\sigma\rVert_1)$ of the test features and LP accuracy, with the normalised
# singular-value spectrum (first seed).

# %%
umae_names = results["spectra"]["method"].unique().tolist()
fig = plots.umae_rank(table, results["spectra"], umae_names)
out.save_figure(fig, "fig5_umae_rank")

# %% [markdown]
# ## 4 · Reconstructions
# Validation images, the masked input at each test ratio and the reconstructions of the best fixed ratio and
# R²MAE (visible patches pasted back).

# %%
fig = plots.reconstructions(results["reconstructions"])
out.save_figure(fig, "fig6_reconstructions")

# %% [markdown]
# ## Claims
# V0 sanity (MAE beats random init by ≥ 5 LP points); V1 best ratio grows with size; V2 R²MAE ≥ best fixed;
# V3 R²MAE ≥ scheduled decay; V4 U-MAE raises effective rank and LP; V5 R²MAE ≥ best fixed with block masks;
# V6 R²MAE beats the fixed ratio of equal population effect (V6-blocks: with block masks).
# Each verdict follows the rule in `vision_claims`.

# %%
claims = vision_claims.claims(results, config, profile)
out.save_claims(claims)
key_numbers = vision_claims.key_numbers(results, claims)
out.save_metrics(key_numbers)
for claim in claims:
    print(f"{claim.id}: {claim.verdict} ({claim.metric} = {claim.value:.4g})")
print(key_numbers)

# %% [markdown]
# At the smoke scale these key numbers are compared with the stored reference
# (`notebooks/reference/02_vision.json`, written by `./build.sh pair`), each within a tolerance set by its
# seed-to-seed spread (`r2mae_core.reference`). This cell's output is what `./build.sh test` checks.

# %% tags=["nbval-check-output"]
print(reference.check("02_vision", profile, key_numbers))
