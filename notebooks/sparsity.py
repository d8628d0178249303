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
# # How sparse are the codes?
#
# The Hoyer score of a vector $\mathbf v \in \mathbb R^d$ (eq. 12),
#
# $$
# H(\mathbf v) = \frac{\sqrt d - \lVert\mathbf v\rVert_1 / \lVert\mathbf v\rVert_2}{\sqrt d - 1},
# $$
#
# is 0 when all entries are equal in magnitude and 1 when a single entry is non-zero. Table 1
# averages it over frames and utterances; this page looks at its distribution over frames, at the
# codes of one utterance, at how many atoms carry the signal, and at how SDM-VAE's prior variances
# γ evolve during training. All codes are posterior means: $\mathbf a$ for SDM-VAE, $\mathbf z$ for
# the VAE, $\gamma_s \odot \mu$ for VSC.

# %% tags=["parameters"]
seeds = [0]
data = "shipped"
preprocessing = "clean"
profile = "default"
label = ""

# %%
from sdm import analysis, book, plotting
from sdm.evaluate import load_test_set

specs, root, models = analysis.trained_models(seeds[0], data, preprocessing, profile)
book.banner(label)

# %% [markdown]
# ## Hoyer scores over test frames
# One violin per model; the lines are the quartiles.

# %%
frames = analysis.frame_hoyer(models, data, preprocessing)
fig = plotting.hoyer_distributions(frames)

# %%
frames.groupby("variant", sort=False)["hoyer"].describe()[["mean", "25%", "50%", "75%"]].round(3)

# %% [markdown]
# ## The codes of one test utterance
# $|\text{code}|$ over time, one row per atom (SDM-VAE) or latent dimension. A sparse code lights up
# a few rows per frame.

# %%
test = load_test_set(data, preprocessing)
u = analysis.pick_utterance(data, preprocessing)
print(
    f"utterance: {test.names[u]} ({len(test.signals[u]) / 16000:.1f} s, speaker {test.speakers[u]})"
)
codes = {
    name: analysis.decode_utterance(model, test.specs[u], len(test.signals[u])).code
    for name, model in models.items()
}
fig = plotting.code_heatmaps({n: c for n, c in codes.items() if n.endswith("m64")})

# %%
fig = plotting.code_heatmaps({n: c for n, c in codes.items() if n.endswith("m32")})

# %% [markdown]
# ## How many atoms carry the signal?
# Mean $|\text{code}|$ per atom over the test split, sorted and scaled by the largest. A curve that
# falls fast means a few atoms do most of the work.

# %%
activations = analysis.mean_activation(models, data, preprocessing)
fig = plotting.atom_activation({n: a for n, a in activations.items() if n.endswith("m64")})

# %%
fig = plotting.atom_activation({n: a for n, a in activations.items() if n.endswith("m32")})

# %% [markdown]
# ## γ over training
# For every SDM-VAE variant, the mean and the median of $\gamma = \mu^2 + \sigma^2$ over validation
# frames and atoms at each validation.

# %%
histories = {s.model.name: analysis.read_history(s, root) for s in specs if s.model.family == "sdm"}
fig = plotting.learning_curves(histories, "gamma_mean", log_y=True)
fig = plotting.learning_curves(histories, "gamma_median", log_y=True)
