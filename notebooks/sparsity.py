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
# # How sparse are the codes?
#
# The Hoyer score of a vector $\mathbf v \in \mathbb R^d$,
#
# $$
# H(\mathbf v) = \frac{\sqrt d - \lVert\mathbf v\rVert_1 / \lVert\mathbf v\rVert_2}{\sqrt d - 1},
#   \tag{12}
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

# %% tags=["hide-input"]
from sdm import analysis, book, glue, plotting
from sdm.data import load_split
from sdm.display import variant_label
from sdm.variants import VARIANTS

book.quiet_logs()

specs, root, models = analysis.trained_models(seeds[0], data, preprocessing, profile)
book.banner(label)

# %% [markdown]
# ## Hoyer scores over test frames

# %% tags=["remove-cell"]
frames = analysis.frame_hoyer(models, data, preprocessing)
glue.figure("sparsity-hoyer", plotting.hoyer_distributions(frames))

# %% [markdown]
# ```{glue:figure} sparsity-hoyer
# :name: fig-sparsity-hoyer
# :alt: Violin plots of the Hoyer score of every test frame's code, one per model, for m=32 and 64.
#
# The Hoyer score of each test frame's code, one violin per model (the line inside is the median),
# at $m = 32$ (left) and $m = 64$ (right). Table 1 reports their means.
# ```

# %% tags=["remove-input"]
quartiles = frames.groupby("variant", sort=False)["hoyer"].describe()[["mean", "25%", "50%", "75%"]]
quartiles.rename(index=variant_label).round(3)

# %% [markdown]
# ## The codes of one test utterance
# $|\text{code}|$ over time, one row per atom (SDM-VAE) or latent dimension. A sparse code lights up
# a few rows per frame.

# %% tags=["remove-cell"]
test = load_split(data, preprocessing)
u = analysis.pick_utterance(data, preprocessing)
codes = {
    name: analysis.decode_utterance(model, test.specs[u], len(test.signals[u])).code
    for name, model in models.items()
}
for m in (64, 32):
    chosen = {n: c for n, c in codes.items() if VARIANTS[n].m == m}
    glue.figure(f"sparsity-codes-m{m}", plotting.code_heatmaps(chosen))

# %% tags=["remove-input"]
print(f"utterance: {test.names[u]} ({len(test.signals[u]) / 16000:.1f} s, {test.speakers[u]})")

# %% [markdown]
# ```{glue:figure} sparsity-codes-m64
# :name: fig-sparsity-codes-m64
# :alt: Heatmaps of the absolute code over time for the seven models at m=64.
#
# $|\text{code}|$ of the utterance named above over time, seven models at $m = 64$, on one colour
# scale (0 to the 99th percentile over all panels).
# ```
#
# ```{glue:figure} sparsity-codes-m32
# :name: fig-sparsity-codes-m32
# :alt: Heatmaps of the absolute code over time for the seven models at m=32.
#
# The same at $m = 32$.
# ```
#
# ## How many atoms carry the signal?

# %% tags=["remove-cell"]
activations = analysis.mean_activation(models, data, preprocessing)
for m in (64, 32):
    chosen = {n: a for n, a in activations.items() if VARIANTS[n].m == m}
    glue.figure(f"sparsity-atoms-m{m}", plotting.atom_activation(chosen))

# %% [markdown]
# ```{glue:figure} sparsity-atoms-m64
# :name: fig-sparsity-atoms-m64
# :alt: Mean absolute code per atom, sorted, for the seven models at m=64.
#
# Mean $|\text{code}|$ per atom over the test split, sorted and scaled by the largest, at
# $m = 64$: a curve that falls fast means a few atoms do most of the work.
# ```
#
# ```{glue:figure} sparsity-atoms-m32
# :name: fig-sparsity-atoms-m32
# :alt: Mean absolute code per atom, sorted, for the seven models at m=32.
#
# The same at $m = 32$.
# ```
#
# ## γ over training

# %% tags=["remove-cell"]
histories = {s.model.name: analysis.read_history(s, root) for s in specs if s.model.family == "sdm"}
glue.figure("sparsity-gamma-mean", plotting.learning_curves(histories, "gamma_mean", log_y=True))
glue.figure(
    "sparsity-gamma-median", plotting.learning_curves(histories, "gamma_median", log_y=True)
)

# %% [markdown]
# ```{glue:figure} sparsity-gamma-mean
# :name: fig-sparsity-gamma-mean
# :alt: Mean of gamma over validation frames and atoms against epoch, one line per SDM-VAE variant.
#
# The mean of $\gamma = \mu^2 + \sigma^2$ over validation frames and atoms at each validation,
# for every SDM-VAE variant.
# ```
#
# ```{glue:figure} sparsity-gamma-median
# :name: fig-sparsity-gamma-median
# :alt: Median of gamma over validation frames and atoms against epoch, per SDM-VAE variant.
#
# Its median: a median far below the mean means most atoms are off for most frames.
# ```
