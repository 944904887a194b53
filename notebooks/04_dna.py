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
# # 04 · Masked DNA language models: the mask ratio, model size and R²MAE on real genomes
#
# The bidirectional Transformer encoder of section 03 (`r2mae_core.models.text_encoder`: token + position
# embeddings, pre-norm blocks, tied MLM head) is pretrained by masked language modelling on **genomic DNA** with a
# DNA vocabulary: single nucleotides (`kmer = 1`, as Caduceus) or non-overlapping k-mers (`kmer = k`, as the
# Nucleotide Transformer), a parameter. Each step draws a mask ratio from a ratio sampler, selects exactly that
# fraction of the nucleotide tokens of each window (never `[CLS]`, padding, `N` or `[UNK]`) and corrupts them
# BERT-style (80% `[MASK]`, 10% a random nucleotide, 10% kept), as DNABERT, the Nucleotide Transformer and
# Caduceus do. The training loop is the project's one loop (`r2mae_core.train.pretrain`).
#
# **Methods.** Fixed ratios (15% = DNABERT / Nucleotide Transformer / Caduceus, 30%, and a sweep); a linear decay
# of the ratio over the R²MAE interval (scheduled); a **span curriculum** in the spirit of RandomMask (Liang et al.
# 2023): a fixed 15% masked in contiguous spans whose mean length grows from 1 token to `curriculum_max_span`
# over training; **R²MAE**: $m\sim\mathcal U[a,b]$ drawn afresh at every step, the interval declared in the
# profile's YAML before any run; its **equal-effect control**: the fixed ratio
# $m_{eq}=\mathbb E[m^2(1-m)]/\mathbb E[m(1-m)]$ of R²MAE's law, which in the linear theory of 01 trains exactly
# the population predictor of R²MAE (`r2mae_core.runs.equivalent_fixed_method`), so that a gain of R²MAE over
# it is a gain of drawing the ratio at random, not of R²MAE's effective ratio; and **masked diffusion** (MDLM, Sahoo et al. 2024; LLaDA, Nie et al. 2025): a
# noise level $t\sim\mathcal U[\varepsilon,1)$ per window ($\varepsilon=10^{-3}$), every nucleotide masked
# independently with probability $t$ (all shown as `[MASK]`) and the loss weighted by $1/t$, an unbiased estimate
# of the masked-diffusion likelihood bound (`r2mae_core.losses.masked_diffusion_loss`). Every model is evaluated
# the same way (BERT-style corruption at the test ratios).
#
# **Text and tasks.** Pretraining text: *D. melanogaster* chr2R at smoke and quick scale; the full profile adds
# human chrX (0–70 Mb), *P. falciparum* and the 16 bacterial genomes. Three labelled tasks
# (`r2mae_core.dna`, fixed split seed): **exon vs intron** windows of the 586 annotated fly genes (split by gene),
# **promoter** vs GC- and repeat-matched background on chr2R (split by 1 Mb block) and **species** of bacterial
# fragments (4 species; one whole strain per species held out for test). Every *test source* (test gene locus,
# test block, test strain) is cut out of the pretraining text, so no test window overlaps it (Table 1 counts the
# overlaps). N runs of ≥ 50 bp are cut from the text; labelled windows contain no N. Soft-masked (lower-case,
# repeat) bases are upper-cased: the soft mask is not a token, but its fraction per class is recorded. Reverse
# complements: windows are read 5'→3' on the gene/transcript strand, background and fragments on a random
# strand; pretraining text is reverse-complement-augmented only when `rc_augment` is set (full profile).
#
# **Evaluation.** Masked-nucleotide accuracy and perplexity on held-out text (the test sources on chr2R); each
# task by a linear probe on mean-pooled frozen features, scored by the Matthews correlation coefficient (MCC,
# as the Nucleotide Transformer benchmark), with F1 and accuracy in Table 5. Probes fit on train, choose their
# L2 strength on validation and are scored on test; every "best fixed ratio" is chosen on validation, never
# on test. Reference rows: the randomly initialised encoder and k-mer counts (k = 1..`kmer_counts_k`) +
# logistic regression (sklearn) on the same windows.

# %% tags=["parameters"]
profile: str = "smoke"  # which results/<profile>/ to write; build.sh sets it
seed: int = 0  # master seed; run i of every method uses child seed i (paired comparisons)
n_seeds: int = 2  # seeds per method (the quick and full profiles use at least 3)
sizes: list = ["XS"]  # encoder sizes of the fixed-ratio sweep (keys of dna.SIZES)
main_size: str = "XS"  # size at which the baselines and R2MAE run
sweep_ratios: list = [0.15, 0.3]  # fixed ratios of the sweep (15% of DNABERT, NT and Caduceus included)
baselines: list = ["scheduled", "curriculum", "r2mae", "masked_diffusion"]  # scheduled decay, span curriculum, R2MAE, masked diffusion
r2mae_low: float = 0.15  # declared R2MAE interval, lower end
r2mae_high: float = 0.45  # declared R2MAE interval, upper end
r2mae_per: str = "batch"  # R2MAE draws one ratio per batch or per sample
curriculum_ratio: float = 0.15  # fixed mask ratio of the span curriculum
curriculum_max_span: float = 6.0  # mean masked-span length (tokens) reached at the end of the curriculum
kmer: int = 1  # tokens are single nucleotides (1) or non-overlapping k-mers (k up to 6)
window: int = 64  # window length in bp of pretraining text and of every task
genomes: list = ["dm_chr2r"]  # pretraining genomes (dm_chr2r, hs_chrx, pf_genome, bacteria)
pretrain_windows: int = 2000  # pretraining windows drawn from the text (before reverse complements)
pretrain_max_n_frac: float = 0.1  # pretraining windows with a larger N fraction are dropped
rc_augment: bool = False  # also pretrain on the reverse complement of every window
steps: int = 20  # pretraining steps per run
batch_size: int = 32  # windows per step
lr: float = 0.002  # peak AdamW learning rate (warmup then cosine decay)
warmup: float = 0.1  # warmup fraction of the steps
weight_decay: float = 0.01  # AdamW weight decay
test_ratios: list = [0.15]  # mask ratios of the masked-nucleotide evaluation
mlm_eval: int = 200  # held-out windows of the masked-nucleotide evaluation
probe_train: int = 300  # training windows per task (split evenly over classes)
probe_eval: int = 100  # validation and test windows per task (split evenly over classes)
kmer_counts_k: int = 6  # longest k-mer of the k-mer-count baseline (counts of all lengths 1 to k)
finetune_epochs: int = 0  # epochs of full fine-tuning per task, 0 skips it (full profile only)
finetune_lrs: list = [0.0001]  # AdamW learning rates of fine-tuning; the best on validation is kept
device: str = "cpu"  # torch device of pretraining and features (cuda at full scale)
threads: int = 1  # torch CPU threads during the runs, 0 keeps the default (1 is fastest on a busy 2-core CPU)
workers: int = 1  # runs at once, each in its own process (2 one-thread workers on a 2-core CPU)
ensemble_size: int = 1  # runs of one size and schedule trained together as one vmapped ensemble (GPU: 8-32; CPU: 1)

# %%
from r2mae_core import io, reference, seed_everything, validation
from r2mae_core.experiments import dna, dna_claims
from r2mae_core.plotting import dna as plots

seed_everything(seed)
out = io.RunOutputs(profile, "04_dna")
config = validation.from_parameters(dna.Config, globals())  # every parameter that is a Config field

# %% [markdown]
# ## 0 · Tasks and pretraining text
# Every run (pretraining, then all evaluations) is cached per (method, size, seed, data): a re-run only
# re-plots. **Table 1** gives each task's probe subsets: windows per split and class (classes are exactly
# balanced in train and test; validation is drawn from the training genes / blocks / fragments), the number of
# distinct held-out units (genes, 1 Mb blocks, strains), the mean GC and soft-masked (repeat) fraction per
# class, and the number of test windows overlapping the pretraining text (0 by construction). **Table 2** gives
# the pretraining text per genome: bp in the genome, bp left after cutting test sources and long N runs, and
# windows available and used.

# %%
results = dna.run(config)
scores = dna_claims.scores(results["metrics"])
out.save_table(results["tasks"], "tab1_task_sizes")
out.save_table(results["pretraining"], "tab2_pretraining_text")
results["tasks"].round(3)

# %%
results["pretraining"]

# %% [markdown]
# **Near-copies.** Cutting the test sources out of the pretraining text does not keep out their copies elsewhere:
# duplicated exons, repeated promoters, transposons, the genes bacterial strains share. **Table 7** audits every
# test split (`r2mae_core.leakage`): for each test window, the fraction of its distinct canonical k-mers (a k-mer
# and its reverse complement count as one, so reverse-complemented copies are copies too) found among the task's
# training windows (train + validation, what the probe sees) and among the pretraining windows. With k = 16 a
# random window shares almost none of its k-mers by chance (`chance_max`, an upper bound), while a copy with 4%
# substitutions still keeps about half of them, so a window at or above the threshold 0.5 is a near-copy
# (about 96% identity or more). Near-copies found in the split as built (`flagged` of the `candidates`, against
# each reference) are dropped before the probe subsets are drawn (`dropped`; `rebalanced` more keep the classes
# equal); the remaining columns (`n_above`, `frac_above`, mean to max) measure the test windows used. Claim D4
# reads the largest `frac_above`.

# %%
leak = results["leakage"]
out.save_table(leak, "tab7_test_leakage")
leak.round(4)

# %% [markdown]
# ## 1 · The best fixed ratio against model size and task
# Test MCC of each fixed pretraining ratio (mean and 95% interval over seeds), one line per encoder size.
# Horizontal lines: the other methods at the main size, the randomly initialised encoder and the k-mer-count
# baseline. Read the position of each curve's maximum: if it moves between panels the best ratio depends on the
# task (claim D3). **Table 3** gives the best ratio per size and task, chosen on the validation split, with its
# test MCC.

# %%
fig = plots.ratio_sweep(scores, main_size=main_size)
out.save_figure(fig, "fig1_ratio_sweep")
best = dna_claims.best_ratios(scores)
out.save_table(best, "tab3_best_ratio_per_task")
best.round(4)

# %% [markdown]
# ## 2 · R²MAE against fixed, scheduled and curriculum masking
# Every method at the main size on every task (test MCC), then the paired differences over seeds of R²MAE against
# the best fixed ratio and the better of scheduled / curriculum (both chosen on validation), against its
# equal-effect fixed ratio $m_{eq}$, against masked diffusion, and against the randomly initialised encoder (the
# sanity check S1). **Table 8** sets R²MAE next to the grid's best fixed ratio (chosen on validation) and its
# equal-effect control: test MCC, then R²MAE − each (paired over seeds, 95% intervals). An interval right of 0 favours R²MAE. At smoke and quick
# scale the encoders are small and briefly trained: read the random-init and k-mer-count rows first, since they
# bound how much any masking scheme can matter at this scale.

# %%
fig = plots.method_comparison(scores, main_size=main_size)
out.save_figure(fig, "fig2_methods")
comparisons = dna_claims.comparisons(scores, config)
out.save_table(comparisons, "tab4_paired_differences")
fig = plots.paired_differences(comparisons)
out.save_figure(fig, "fig3_paired_differences")
equal_effect = dna_claims.equal_effect(scores, config)
out.save_table(equal_effect, "tab8_equal_effect_control")
comparisons.round(4)

# %%
equal_effect.round(4)

# %% [markdown]
# ## 3 · Masked-nucleotide prediction and training curves
# Pretraining loss on the corrupted tokens and the sampled ratio over training (mean over seeds, main size). The
# loss is measured at each method's own ratio (and, for the curriculum, its own span length), so the curves
# compare how hard each objective is, not quality; the masked-nucleotide accuracy and perplexity at the fixed
# test ratios on held-out text are in **Table 5** (tasks `mlm@ratio`), with every probe metric (MCC, F1,
# accuracy; `*_ft` rows: fine-tuning, full profile).

# %%
fig = plots.training_curves(results["history"], size=main_size)
out.save_figure(fig, "fig4_training_curves")
table = dna_claims.summary_table(results["metrics"])
out.save_table(table, "tab5_all_metrics_test")
out.save_table(results["runs"], "tab6_runs")
table[table["metric"].isin(["mcc", "acc", "perplexity"])].round(4)

# %% [markdown]
# ## Claims
# D1 R²MAE ≥ the best fixed ratio (chosen on validation) on the task average; D2 R²MAE ≥ scheduled / curriculum
# masking; D3 the best fixed ratio differs between tasks; S1 (sanity) pretrained features beat the randomly
# initialised encoder on exon/intron by more than 0.05 MCC; D4 the test splits used are clean (at most 1% of the test
# windows of any task at or above the near-copy threshold, Table 7); D5 R²MAE beats the fixed ratio of equal
# population effect $m_{eq}$ (Table 8). Each verdict follows the rule written in `dna_claims` (D1–D3, D5 and S1:
# paired differences over seeds with 95% intervals, above the threshold supported, below it contradicted, covering
# it inconclusive; D4: the largest fraction against the 1% bound). The key numbers are test MCCs at the main size
# (seed means).

# %%
claims = dna_claims.claims(results, config, profile)
out.save_claims(claims)
key_numbers = dna_claims.key_numbers(results, claims, config)
out.save_metrics(key_numbers)
for claim in claims:
    print(f"{claim.id}: {claim.verdict} ({claim.metric} = {claim.value:.4g})")
print(key_numbers)

# %% [markdown]
# At the smoke scale these key numbers are compared with the stored reference
# (`notebooks/reference/04_dna.json`, written by `./build.sh pair`), each within a tolerance set by its
# seed-to-seed spread (`r2mae_core.reference`). This cell's output is what `./build.sh test` checks.

# %% tags=["nbval-check-output"]
print(reference.check("04_dna", profile, key_numbers))
