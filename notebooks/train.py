# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Training one model
#
# This page trains one model of Table 1 — by default SDM-VAE with a DCT dictionary of $k = 64$
# atoms and $m = 64$ — or reuses the finished run, evaluates it on the test split, and shows how it
# learned. Run it for any variant from a terminal:
#
# ```bash
# .venv/bin/papermill notebooks/train.ipynb out.ipynb -p m 64 -p k 64
# .venv/bin/papermill notebooks/train.ipynb out.ipynb -p model vsc -p alpha 0.05 -p m 32
# ```
#
# `model` is `"sdm"`, `"vae"` or `"vsc"`; `k = 0` means the identity dictionary; `alpha` is VSC's
# prior spike probability. The defaults below are `sdm`'s own (a run made here is the same run as
# `python -m sdm train` with the same settings, and is reused by either).

# %% tags=["parameters"]
model = "sdm"
m = 64
k = 64
alpha = 0.5
seed = 0
data = "shipped"
preprocessing = "clean"
max_epochs = 10000
patience = 20
device = "auto"
out = ""
label = ""

# %%
from sdm import book, display, glue, pipeline, plotting, results, stacks
from sdm.analysis import read_history

book.quiet_logs()

spec, root = book.train_parameters(
    model, m, k, alpha, seed, data, preprocessing, max_epochs, patience, out, device
)
run_dir = spec.directory(root)
book.banner(label)

# %% [markdown]
# ## Train (or reuse)
# A finished run with the same identity (data and its checksum, preprocessing, variant, seed,
# training settings) is reused; an unfinished one resumes from its checkpoint.

# %%
stacks.ensure_trained([spec], root, device=device, progress=False)
result = results.read_config(run_dir)["result"]
history = read_history(spec, root)
print(f"{spec.model.name}, seed {seed}: {book.shown_path(run_dir)}")
print(
    f"best epoch {result['best_epoch']} of {result['epochs_run']}, "
    f"{'stopped early' if result['stopped_early'] else 'reached max_epochs'}, "
    f"{result['elapsed_s']:.0f} s of training"
)
print(f"{len(history)} validations, one every {result['val_interval_epochs']} epochs")

# %% [markdown]
# ## Learning curves
# Train and validation losses, split into the reconstruction term (the Itakura–Saito training form,
# $\sum_f x_f / v_f + \log v_f$, per frame) and the KL term. The validation loss decodes the
# posterior mean, so it is deterministic; the dashed line marks the best validation, whose weights
# are the ones kept.

# %% tags=["remove-output"]
columns = ["train_loss", "val_loss", "val_recon", "val_kl", "val_hoyer"]
glue.figure("train-curves", plotting.history_panels(history, columns, result["best_epoch"]))

# %% [markdown]
# ```{glue:figure} train-curves
# :name: fig-train-curves
# :alt: Training and validation losses, KL and Hoyer score against epoch for the trained model.
#
# Learning curves of the model trained on this page, one point per validation (their number is
# printed above; the training loss is averaged over the epochs since the previous validation).
# The dashed line is the best validation, whose weights are kept.
# ```

# %% [markdown]
# ## γ over training (SDM-VAE)
# The prior variances $\gamma = \mu^2 + \sigma^2$, averaged over validation frames and atoms, and
# their median: a median well below the mean means most atoms are switched off for most frames.

# %% tags=["remove-output"]
gamma_columns = [c for c in ("gamma_mean", "gamma_median") if c in history]
gamma_figure = plotting.history_panels(history, gamma_columns or ["val_kl"], log_y=True)
glue.figure("train-gamma", gamma_figure)

# %%
if not gamma_columns:
    print(f"{display.variant_label(spec.model)} has no γ (it is not an SDM-VAE): its KL is shown.")

# %% [markdown]
# ```{glue:figure} train-gamma
# :name: fig-train-gamma
# :alt: Mean and median of the prior variances gamma over validation frames against epoch.
#
# The prior variances $\gamma = \mu^2 + \sigma^2$ at each validation, mean and median over
# validation frames and atoms (log scale); for a model without γ, its validation KL.
# ```

# %% [markdown]
# ## Test metrics
# PESQ in three flavours (wide-band MOS-LQO; narrow-band MOS-LQO; raw narrow-band P.862, which is
# what the paper reports), STOI and ESTOI (the paper's "STOI"), the Hoyer score of the code, and the
# Itakura–Saito divergence per frame, averaged over the test utterances.

# %%
(metrics,) = pipeline.ensure_evaluated([spec], root, progress=False).values()
summary = metrics.drop(columns=["utterance", "speaker", "failures"]).agg(["mean", "sem"]).T
summary.rename(index=display.metric_label).round(3)
