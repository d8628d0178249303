# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
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
from sdm import book, experiment, plotting, runs
from sdm.analysis import read_history

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
experiment.ensure_trained([spec], root, device=device, progress=False)
result = runs.read_config(run_dir)["result"]
print(f"{spec.model.name}, seed {seed}: {run_dir}")
print(
    f"best epoch {result['best_epoch']} of {result['epochs_run']} "
    f"(validated every {result['val_interval_epochs']} epochs; "
    f"{'stopped early' if result['stopped_early'] else 'reached max_epochs'}), "
    f"{result['elapsed_s']:.0f} s of training"
)

# %% [markdown]
# ## Learning curves
# Train and validation losses, split into the reconstruction term (the Itakura–Saito training form,
# $\sum_f x_f / v_f + \log v_f$, per frame) and the KL term. The validation loss decodes the
# posterior mean, so it is deterministic; the dashed line marks the best validation, whose weights
# are the ones kept.

# %%
history = read_history(spec, root)
fig = plotting.history_panels(
    history,
    ["train_loss", "val_loss", "val_recon", "val_kl", "val_hoyer"],
    mark_epoch=result["best_epoch"],
)

# %% [markdown]
# ## γ over training (SDM-VAE)
# The prior variances $\gamma = \mu^2 + \sigma^2$, averaged over validation frames and atoms, and
# their median: a median well below the mean means most atoms are switched off for most frames.

# %%
if "gamma_mean" in history:
    fig = plotting.history_panels(history, ["gamma_mean", "gamma_median"], log_y=True)
else:
    print(f"{spec.model.name} has no γ (it is not an SDM-VAE)")

# %% [markdown]
# ## Test metrics
# PESQ in three flavours (wide-band MOS-LQO; narrow-band MOS-LQO; raw narrow-band P.862, which is
# what the paper reports), STOI and ESTOI (the paper's "STOI"), the Hoyer score of the code, and the
# Itakura–Saito divergence per frame, averaged over the test utterances.

# %%
(metrics,) = experiment.ensure_evaluated([spec], root, progress=False).values()
summary = metrics.drop(columns=["utterance", "speaker", "failures"]).agg(["mean", "sem"]).T
summary.round(3)
