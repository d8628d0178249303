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
# # Spectrograms and audio
#
# One test utterance, as every model hears it. Each model encodes the power spectrogram, decodes
# the posterior mean, and the decoded power's square root is combined with the original phase and
# inverted (the paper's analysis–resynthesis). The spectrograms are in dB on one colour scale; the
# players below let you listen to the original and to every resynthesis.

# %% tags=["parameters"]
seeds = [0]
data = "shipped"
preprocessing = "clean"
profile = "default"
label = ""

# %%
import numpy as np
from IPython.display import HTML

from sdm import analysis, book, plotting
from sdm.evaluate import load_test_set

_, _, models = analysis.trained_models(seeds[0], data, preprocessing, profile)
test = load_test_set(data, preprocessing)
u = analysis.pick_utterance(data, preprocessing)
original, spec = test.signals[u], test.specs[u]
decoded = {name: analysis.decode_utterance(m, spec, len(original)) for name, m in models.items()}
print(f"utterance: {test.names[u]} ({len(original) / 16000:.1f} s, speaker {test.speakers[u]})")
book.banner(label)

# %% [markdown]
# ## m = 32

# %%
panels = {"original": np.abs(spec) ** 2}
panels |= {n: d.variance for n, d in decoded.items() if n.endswith("m32")}
fig = plotting.spectrograms(panels)

# %% [markdown]
# ## m = 64

# %%
panels = {"original": np.abs(spec) ** 2}
panels |= {n: d.variance for n, d in decoded.items() if n.endswith("m64")}
fig = plotting.spectrograms(panels)

# %% [markdown]
# ## Listen
# Embedded as FLAC; every resynthesis uses the original phase, so differences are in the magnitude
# only.

# %%
players = [analysis.audio_player(original, "original")]
players += [analysis.audio_player(d.estimate, name) for name, d in decoded.items()]
HTML('<div class="sdm-audio">' + "".join(players) + "</div>")
