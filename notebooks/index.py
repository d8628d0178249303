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
# # Sparse VAE codes for free?
#
# Sadeghi and Magron ([Interspeech 2022](https://arxiv.org/abs/2203.15758)) write a VAE's latent
# vector on a fixed dictionary, $\mathbf z = \mathbf D\mathbf a$, with a Gaussian prior on
# $\mathbf a$ whose variances are set in closed form, and report sparser codes **without** a loss
# of speech quality. **Does that hold when their 14 models are retrained and scored?**

# %% tags=["parameters", "remove-cell"]
seeds = [0, 1, 2, 3, 4]
data = "shipped"
preprocessing = "clean"
profile = "default"
label = ""

# %% tags=["remove-input"]
from IPython.display import Markdown

from sdm import book, bookdata, glue, pagetables, plotting, stopping
from sdm.lead import choose_lead

settings = book.get_profile(profile)
lead = choose_lead(data, preprocessing, settings.results)
lead_seeds = seeds if lead.data == data else None  # the profile's seeds are for its own corpus
main = bookdata.read_corpus(lead.data, preprocessing, settings.results, seeds=lead_seeds)
book.banner(label)

# %% tags=["remove-input"]
Markdown(pagetables.answer_sentence(main, lead))

# %% tags=["remove-input"]
lengths = stopping.run_lengths(lead.data, preprocessing, settings.results)
if lead_seeds is not None:
    lengths = lengths[lengths["seed"].isin(lead_seeds)]
Markdown(pagetables.headline(main.claims, stopping.seed_spread(lengths)))

# %% tags=["remove-input"]
Markdown(pagetables.scoreboard(main.claims))

# %% tags=["remove-cell"]
glue.figure("landing-quality", plotting.quality_vs_sparsity(main.table, "pesq_raw_nb", 2.8))

# %% [markdown]
# ```{glue:figure} landing-quality
# :name: fig-landing-quality
# :alt: Raw narrow-band PESQ against the Hoyer score for the 14 models, ours and the paper's.
#
# Quality against sparsity on the lead corpus: raw narrow-band PESQ (the paper's "PESQ") against
# the Hoyer score, ours (filled, 95% intervals) and the paper's (hollow). SDM-VAE (oranges) should
# move right without moving down.
# ```

# %% tags=["remove-input"]
Markdown("**The claims:** " + pagetables.claim_list())

# %% [markdown]
# **Pages:** {doc}`derive_gamma` · {doc}`train` · {doc}`table1` · {doc}`sparsity` ·
# {doc}`spectrograms` · {doc}`claims` · {doc}`beyond` · {doc}`performance` ·
# {doc}`../differences` · {doc}`../cite`. The paper and its official code (at the commit this
# companion read) are linked at the foot of every page.

# %% tags=["remove-input"]
Markdown(pagetables.lead_note(lead))

# %% [markdown]
# ## The paper in plain words
#
# A variational autoencoder (VAE) compresses each frame of a speech power spectrogram (513
# frequency bins) into a short latent vector $\mathbf z$ of size $m$ and decodes it back into a
# spectrum. A latent space with *structure*, for example sparse codes in which only a few entries
# are active, is easier to interpret and less prone to overfitting; but the usual ways to get
# sparsity (a Laplace prior, or the spike-and-slab prior of variational sparse coding, VSC)
# complicate training and tend to cost reconstruction quality.
#
# SDM-VAE writes the latent vector as a combination of the columns ("atoms") of a fixed
# dictionary, $\mathbf z = \mathbf D\mathbf a$ with $\mathbf D \in \mathbb R^{m \times k}$, and
# puts a zero-mean Gaussian prior with its own variance $\gamma_r$ on each coefficient $a_r$. The
# variances are not tuned: each training step sets them to the value that minimises the
# Kullback–Leibler term, $\gamma_r = \mu_r^2 + \sigma_r^2$ (the posterior mean and variance of
# $a_r$). With that value plugged in, the KL term of one coefficient is exactly
# $\tfrac12 \log(1 + \mu_r^2/\sigma_r^2)$: a log penalty that pushes most coefficients towards
# zero while leaving large ones almost free. The decoder still sees $\mathbf z = \mathbf D\mathbf
# a$, so the networks are those of a plain VAE and the extra cost is one matrix product.
#
# The paper compares a VAE, VSC with three sparsity levels and SDM-VAE with an identity dictionary
# and with two DCT dictionaries (the "overcomplete DCT" construction; at these sizes only $k = 64$
# atoms for $m = 32$ dimensions is overcomplete, $k = m$ is square and $k = 32 < m = 64$ is
# undercomplete), at $m = 32$ and $m = 64$: 14 models, judged by the quality of the resynthesised
# speech (PESQ, STOI) and the sparsity of the codes (Hoyer score).
#
# ## What this companion adds
#
# - **One package, every variant as data.** The 14 models are entries of one registry and share
#   one encoder, decoder and training loop; nothing branches on the model's name.
# - **Real speech that ships with the repository** (five minutes, 11 speakers, split by speaker),
#   and a 4.4-hour medium corpus built on request from pinned Debian packages; a local TCD-TIMIT
#   copy, the paper's corpus, plugs in by one setting.
# - **A stopping rule fitted to the data's size**: validation every ~1,000 optimisation steps, so
#   patience means the same amount of training on any corpus.
# - **Metrics named exactly**: which PESQ (wide-band, narrow-band, raw P.862) and which STOI
#   (classic or extended) each number is, everywhere.
# - **Tests** of the STFT, dictionaries, losses and training loop, including the pitfalls found in
#   the official code (for example, "best" weights that are really the last epoch's).
#
# Every page was executed once by `make book` from the results committed with the repository.
# On a machine with Python 3.11, git and make: `make test`, then `make book`; a single model from
# a terminal: `.venv/bin/papermill notebooks/train.ipynb out.ipynb -p m 64 -p k 64`.
