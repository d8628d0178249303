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
# # Spectrograms and audio
#
# One utterance of every test speaker, as four models hear it: the VAE, VSC with α = 0.5, and
# SDM-VAE with the identity and with the DCT k = 64 dictionary, all at $m = 64$. Each model
# encodes the power spectrogram, decodes the posterior mean, and the decoded power's square root
# is combined with the original phase and inverted (the paper's analysis–resynthesis). Each
# player sits under its spectrogram; the last card of each utterance shows where SDM-VAE DCT
# k = 64 puts too much (red) or too little (blue) power.
#
# **Loudness.** A resynthesis is as loud as the decoder's estimate of the power, and models
# trained on a few minutes of two voices misjudge the level of unseen voices by a few dB, in
# either direction (the table at the end gives each one). The players therefore play every
# resynthesis at the original's loudness (its RMS), so that you compare quality, not level.
# The metrics do not depend on it: PESQ aligns levels itself and STOI is scale-invariant.

# %% tags=["parameters"]
seeds = [0]
data = "shipped"
preprocessing = "clean"
profile = "default"
label = ""

# %% tags=["hide-input"]
import pandas as pd
from IPython.display import Markdown

from sdm import analysis, audiopage, book, glue
from sdm.data import load_split
from sdm.display import variant_label

book.quiet_logs()

_, _, models = analysis.trained_models(seeds[0], data, preprocessing, profile)
shown = {name: models[name] for name in audiopage.AUDIO_VARIANTS if name in models}
test = load_split(data, preprocessing)
chosen = audiopage.one_per_speaker(
    test.names, test.speakers, [len(s) for s in test.signals], max_seconds=4.0
)
book.banner(label)

# %% tags=["remove-cell"]
levels, captions = {}, []
for i, u in enumerate(chosen):
    original, spec = test.signals[u], test.specs[u]
    decoded = {n: analysis.decode_utterance(m, spec, len(original)) for n, m in shown.items()}
    grid, levels[test.speakers[u]] = audiopage.utterance_grid(original, spec, decoded)
    glue.html(f"audio-{i}", grid)
    captions.append(
        audiopage.figure_directive(
            f"audio-{i}", test.speakers[u], test.names[u], len(original) / 16000
        )
    )

# %% tags=["remove-input"]
Markdown("\n".join(captions))

# %% [markdown]
# ## Levels before matching
# Each resynthesis's RMS level relative to the original's, in dB, before the players matched
# them.

# %% tags=["remove-input"]
table = pd.DataFrame(levels).T.rename(columns=variant_label).round(1)
table.index.name = "speaker"
table
