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
# # Beyond the paper: a learned dictionary
#
# The paper keeps the dictionary $\mathbf D$ fixed (the identity or a DCT) and names, as future
# work, learning it together with the networks under a mutual-coherence constraint. This page
# tries that, with the same trainer, data, stopping rule and metrics as the rest of the book.
#
# - **The dictionary.** $\mathbf D = \mathbf V / \lVert \mathbf V \rVert$, atom by atom, so every
#   atom keeps unit norm whatever an optimiser step does. $\mathbf V$ starts at the DCT
#   dictionary of the same shape: a learned model starts where the fixed DCT model of the same
#   seed starts, so what separates the two is what learning $\mathbf D$ did. $\mathbf V$ is
#   updated by the same Adam step as the encoder and the decoder; the γ update (eq. 9) is
#   unchanged.
# - **The coherence penalty.** Each model's training loss adds
#
#   $$
#   \lambda \sum_{i<j} \left(\mathbf d_i^\top \mathbf d_j\right)^2,
#   $$
#
#   the squared coherence of every pair of atoms: 0 for orthonormal atoms; for $k > m$ unit atoms
#   it cannot fall below $k(k-m)/(2m)$, 64 at $k = 128$, $m = 64$. The validation loss, on which
#   training stops and the best weights are kept, leaves it out: it is the negative ELBO, as for
#   every other model.
# - **The models**, all at $m = 64$: $k = 64$ and $k = 128$ atoms, each without the penalty
#   ($\lambda = 0$) and with it (the λ in their names, the largest that a sweep of λ found not to
#   cost validation loss: `tools/coherence_sweep.py` says how).

# %% tags=["parameters"]
seeds = [0, 1, 2, 3, 4]
data = "shipped"
preprocessing = "clean"
profile = "default"
label = ""

# %% tags=["hide-input"]
from IPython.display import Markdown

from sdm import beyond, book, glue, plotting

book.quiet_logs()

page = beyond.read_page(profile, seeds, data, preprocessing)  # reads results; trains nothing
book.banner(label)

# %% tags=["remove-input"]
Markdown(beyond.missing_note(page)) if page.missing else None  # nothing when all is there

# %% [markdown]
# ## Quality and sparsity at m = 64
# The learned dictionaries beside the VAE and every fixed dictionary at the same latent size, in
# both metric conventions (the paper's raw narrow-band PESQ and ESTOI; the usual wide-band PESQ
# and STOI), with the Hoyer score of the code.

# %% tags=["remove-input"]
Markdown(beyond.table_markdown(page))

# %% [markdown]
# ## Does learning the dictionary pay?
# Two claims of our own, judged like the paper's on the {doc}`claims` page: a paired difference
# per comparison, a 95% interval over seeds and test utterances, a verdict computed from it.
# **B1** compares the best learned model with the best fixed dictionary on PESQ (STOI is shown
# beside it, not counted); **B2** asks whether the penalty makes the codes sparser, for each
# number of atoms.

# %% tags=["remove-cell"]
for claim in beyond.BEYOND_CLAIMS:
    if beyond.has_estimates(page, claim):
        glue.figure(f"claim-{claim}", beyond.claim_figure(page, claim))

# %% tags=["remove-input"]
Markdown(beyond.verdicts_markdown(page))

# %% [markdown]
# ## Mutual coherence of D over training

# %% tags=["remove-cell"]
traces = beyond.coherence_traces(page)
if len(traces):
    glue.figure(
        "beyond-coherence",
        plotting.coherence_over_training(traces, beyond.coherence_references(), seeds[0]),
    )

# %% tags=["remove-input"]
Markdown(
    beyond.figure_markdown(
        "beyond-coherence",
        "The coherence of each learned dictionary against epoch: the sum over atom pairs and the "
        "largest pair.",
        "The coherence of each learned dictionary at every validation: left, the penalised sum "
        "$\\sum_{i<j} (\\mathbf d_i^\\top \\mathbf d_j)^2$ (log axis); right, the largest "
        f"$|\\mathbf d_i^\\top \\mathbf d_j|$. Bold: seed {seeds[0]}; thin: the other seeds. "
        "Dashed and dotted: where the runs start (the DCT of each shape) and the least sum "
        "128 unit atoms in 64 dimensions can have.",
        shown=len(traces) > 0,
        absent="No learned run is trained yet: nothing to draw.",
    )
)

# %% [markdown]
# ## The atoms

# %% tags=["remove-cell"]
dictionaries = beyond.saved_dictionaries(page)
learned_shown = beyond.has_learned_weights(page)
if learned_shown:
    glue.figure("beyond-atoms", plotting.dictionary_images(dictionaries))
    glue.figure("beyond-gram", plotting.dictionary_images(dictionaries, gram=True))

# %% tags=["remove-input"]
Markdown(
    beyond.figure_markdown(
        "beyond-atoms",
        "Images of the DCT dictionaries and of the learned ones, one column per atom.",
        f"The dictionaries of seed {seeds[0]}, one column per atom (entries of $\\mathbf D$, red "
        "positive, blue negative): each learned one beside the DCT it started from.",
        shown=learned_shown,
        absent="No learned weights yet: nothing to set beside the DCT.",
    )
    + "\n"
    + beyond.figure_markdown(
        "beyond-gram",
        "Images of the absolute Gram matrix of each dictionary.",
        "$|\\mathbf D^\\top \\mathbf D|$ of the same dictionaries: the diagonal is 1; every "
        "other entry is the coherence of two atoms, what the penalty pushes to 0.",
        shown=learned_shown,
        absent="",
    )
)

# %% [markdown]
# ## How sparse are the codes?

# %% tags=["remove-cell"]
frames = beyond.frame_hoyer(page)
if frames is not None:
    glue.figure("beyond-hoyer", plotting.hoyer_distributions(frames))

# %% tags=["remove-input"]
Markdown(
    beyond.figure_markdown(
        "beyond-hoyer",
        "Violin plots of the Hoyer score of every test frame's code, one per model at m=64.",
        f"The Hoyer score of each test frame's code (seed {seeds[0]}), one violin per model at "
        "$m = 64$ (the line inside is the median); the table above gives the means over seeds.",
        shown=frames is not None,
        absent="No learned weights yet: nothing to draw.",
    )
)
