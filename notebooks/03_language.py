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
# # 03 · Masked language modelling: the mask ratio, model size and R²MAE
#
# A small bidirectional Transformer (BERT-style: token + position embeddings, pre-norm blocks, tied output head;
# `r2mae_core.models.text_encoder`) is pretrained by masked language modelling on the **Brown corpus**. Each step
# draws a mask ratio from a ratio sampler, selects exactly that fraction of the real tokens of each sequence
# (never padding or `[CLS]`/`[SEP]`) and corrupts them BERT-style (80% `[MASK]`, 10% a random token, 10% kept;
# Devlin et al. 2019). The same loop (`r2mae_core.train.pretrain`) trains every family of the project.
#
# **Methods.** Fixed ratios (BERT's 15%, Wettig et al. 2023's 40%, and a sweep), Masking Ratio Decay (Yang et
# al. 2023: cosine $m(t)=0.15(1+\cos\pi t)+0.02$, linear $m(t)=\max(0.30(1-t),\,0.02)$), a linear decay over the
# R²MAE interval, **R²MAE**: $m\sim\mathcal U[a,b]$ drawn afresh at every step, with the default interval
# declared in the profile's YAML before any run, its **equal-effect control**: the fixed ratio
# $m_{eq}=\mathbb E[m^2(1-m)]/\mathbb E[m(1-m)]$ of R²MAE's law, which in the linear theory of 01 trains exactly the
# population predictor of R²MAE (`r2mae_core.runs.equivalent_fixed_method`), and **masked diffusion** (MDLM, Sahoo
# et al. 2024; LLaDA, Nie et al. 2025): a noise level $t\sim\mathcal U[\varepsilon,1)$ per sequence
# ($\varepsilon=10^{-3}$), every token masked independently with probability $t$ (all shown as `[MASK]`) and the
# loss weighted by $1/t$, an unbiased estimate of the masked-diffusion likelihood bound
# (`r2mae_core.losses.masked_diffusion_loss`). Every model is
# evaluated the same way (BERT-style corruption at the test ratios).
#
# **Data and splits.** A byte-level BPE tokenizer (vocabulary size a parameter) is trained on the *training
# documents* of Brown only. Brown is split **by document**, stratified by genre, with a fixed seed: 352 / 74 / 74
# documents train / validation / test (the table below has the counts). Pretraining sees the packed training
# documents only; the probes fit on training documents, choose their regularisation on validation documents and
# are scored on test documents; the best fixed ratio of a claim is chosen on validation, never on test.
# SpamAssassin e-mails (headers stripped) are split 60 / 20 / 20 and truncated to the context length.
#
# **Evaluation.** Masked-token loss and accuracy at test ratios 15% and 40%; genre (15 classes, macro-F1 and
# accuracy) and spam vs ham (F1) by a linear probe on mean-pooled frozen features; POS tagging by a token-level
# linear probe on the first sub-token of each word. Reference rows: the randomly initialised encoder and TF-IDF
# + logistic regression on the same (decoded) sequences.
#
# **What the theory of 01 predicts.** In the linear model the optimal fixed ratio grows with model size relative
# to the data ($\gamma=p/n$), and it depends on which scales the downstream task needs. L1 and L2 test the same
# directions on Transformers; L3 and L4 test R²MAE against the best fixed ratio and against Masking Ratio Decay.
# In the linear model a random ratio acts on the population as its fixed ratio $m_{eq}$ does, so L5 asks whether
# R²MAE beats that fixed ratio: a gain over the grid (L3) without one over $m_{eq}$ (L5) is the gain of R²MAE's
# effective ratio, not of drawing the ratio at random.

# %% tags=["parameters"]
profile: str = "smoke"  # which results/<profile>/ to write; build.sh sets it
seed: int = 0  # master seed; run i of every method uses child seed i (paired comparisons)
n_seeds: int = 2  # seeds per method (the quick and full profiles use at least 3)
sizes: list = ["XS"]  # encoder sizes of the fixed-ratio sweep (keys of language.SIZES)
main_size: str = "XS"  # size at which the baselines and R2MAE run
sweep_ratios: list = [0.15, 0.4]  # fixed ratios of the sweep (BERT 15% and Wettig 40% included)
baselines: list = ["mrd_cosine", "mrd_linear", "scheduled", "r2mae", "masked_diffusion"]  # scheduled baselines, R2MAE, masked diffusion
ablations: list = []  # extra methods: r2mae_sample (one ratio per sequence)
ablation_intervals: list = []  # extra R2MAE intervals as [low, high] pairs
r2mae_low: float = 0.15  # declared R2MAE interval, lower end
r2mae_high: float = 0.45  # declared R2MAE interval, upper end
r2mae_per: str = "batch"  # R2MAE draws one ratio per batch or per sample
primary_task: str = "downstream"  # task of claims L1, L3 and L4 (downstream is the mean of genre, spam, pos)
vocab_size: int = 512  # BPE vocabulary size, specials and the 256 bytes included
seq_len: int = 32  # context length in tokens, CLS and SEP included
steps: int = 8  # pretraining steps per run
batch_size: int = 16  # sequences per step
lr: float = 0.001  # peak AdamW learning rate (warmup then cosine decay)
warmup: float = 0.1  # warmup fraction of the steps
weight_decay: float = 0.01  # AdamW weight decay
test_ratios: list = [0.15, 0.4]  # mask ratios of the MLM evaluation
probe_train: int = 120  # Brown sequences the genre probe trains on
probe_eval: int = 60  # Brown sequences per validation and test split
pos_train_tokens: int = 600  # word tokens the POS probe trains on
pos_eval_tokens: int = 300  # word tokens per validation and test split
spam_train: int = 100  # e-mails the spam probe trains on
spam_eval: int = 60  # e-mails per validation and test split
finetune_epochs: int = 0  # epochs of full fine-tuning on genre and spam, 0 skips it (full profile only)
finetune_lrs: list = [0.0001]  # AdamW learning rates of fine-tuning; the best on validation is kept
device: str = "cpu"  # torch device of pretraining and features (cuda at full scale)
threads: int = 1  # torch CPU threads during the runs, 0 keeps the default (1 is fastest on a busy 2-core CPU)
workers: int = 1  # runs at once, each in its own process (2 one-thread workers on a 2-core CPU)
ensemble_size: int = 1  # runs of one size and schedule trained together as one vmapped ensemble (GPU: 8-32; CPU: 1)

# %%
from r2mae_core import io, reference, seed_everything, validation
from r2mae_core.experiments import language, language_claims
from r2mae_core.plotting import language as plots

seed_everything(seed)
out = io.RunOutputs(profile, "03_language")
config = validation.from_parameters(language.Config, globals())  # every parameter that is a Config field

# %% [markdown]
# Every run (pretraining, then all evaluations) is cached per (method, size, seed, evaluation): a re-run only
# re-plots. Table 1 states the split: documents, packed sequences and the probe subsets per split.

# %%
results = language.run(config)
scores = language_claims.scores(results["metrics"])
out.save_table(results["splits"], "tab1_data_splits")
results["splits"]

# %% [markdown]
# ## 1 · The best fixed ratio against model size and task
# Test-split score of each fixed pretraining ratio (mean and 95% interval over seeds), one line per encoder size.
# Horizontal lines: the other methods at the main size, the randomly initialised encoder and TF-IDF.

# %%
fig = plots.ratio_sweep(scores, main_size=main_size)
out.save_figure(fig, "fig1_ratio_sweep")

# %% [markdown]
# ## 2 · R²MAE against fixed and scheduled ratios
# Every method at the main size on every task (test split), and the paired differences of R²MAE against the
# best fixed ratio and the better Masking Ratio Decay, both chosen on the validation split, against its
# equal-effect fixed ratio $m_{eq}$, against masked diffusion, and against the randomly initialised encoder (the
# sanity check S1). Table 5 sets R²MAE next to the grid's best fixed ratio (chosen on validation) and its
# equal-effect control: test scores, then R²MAE − each (paired over seeds, 95% intervals).

# %%
fig = plots.method_comparison(scores, main_size=main_size)
out.save_figure(fig, "fig2_methods")
comparisons = language_claims.comparisons(scores, config)
out.save_table(comparisons, "tab2_paired_differences")
fig = plots.paired_differences(comparisons)
out.save_figure(fig, "fig3_paired_differences")
equal_effect = language_claims.equal_effect(scores, config)
out.save_table(equal_effect, "tab5_equal_effect_control")
comparisons.round(4)

# %%
equal_effect.round(4)

# %% [markdown]
# ## 3 · Training curves
# Pretraining loss on the corrupted tokens and the sampled ratio over training (mean over seeds, main size). The
# loss is measured at each method's own ratio, so the curves compare how hard each objective is, not quality;
# the MLM evaluation at fixed test ratios is in Table 3.

# %%
fig = plots.training_curves(results["history"], size=main_size)
out.save_figure(fig, "fig4_training_curves")
table = language_claims.summary_table(results["metrics"])
out.save_table(table, "tab3_all_metrics_test")
out.save_table(results["runs"], "tab4_runs")
table[table["task"].isin(["genre", "spam", "pos"])].round(4)

# %% [markdown]
# ## Claims
# L1 the best fixed ratio grows with model size; L2 it differs between tasks; L3 R²MAE ≥ the best fixed ratio
# (chosen on validation); L4 R²MAE ≥ Masking Ratio Decay; L5 R²MAE beats the fixed ratio of equal population
# effect $m_{eq}$; S1 (sanity) pretrained features beat the randomly
# initialised encoder on genre macro-F1. Each verdict follows the rule written in `language_claims` (paired
# differences over seeds with 95% intervals: above 0 supported, below 0 contradicted, covering 0 inconclusive).

# %%
claims = language_claims.claims(results, config, profile)
out.save_claims(claims)
key_numbers = language_claims.key_numbers(results, claims, config)
out.save_metrics(key_numbers)
for claim in claims:
    print(f"{claim.id}: {claim.verdict} ({claim.metric} = {claim.value:.4g})")
print(key_numbers)

# %% [markdown]
# At the smoke scale these key numbers are compared with the stored reference
# (`notebooks/reference/03_language.json`, written by `./build.sh pair`), each within a tolerance set by its
# seed-to-seed spread (`r2mae_core.reference`). This cell's output is what `./build.sh test` checks.

# %% tags=["nbval-check-output"]
print(reference.check("03_language", profile, key_numbers))
