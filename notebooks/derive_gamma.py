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
# # Deriving the γ update
#
# SDM-VAE puts a Gaussian prior with one variance per atom on the code,
# $p(\mathbf a) = \mathcal N(\mathbf 0, \operatorname{diag}\boldsymbol\gamma)$, and maps it to the
# latent vector through a fixed dictionary, $\mathbf z = \mathbf D \mathbf a$. The encoder gives a
# diagonal Gaussian posterior $q(\mathbf a \mid \mathbf x) = \mathcal N(\boldsymbol\mu,
# \operatorname{diag}\boldsymbol\sigma^2)$. Algorithm 1 of the paper alternates two steps per
# mini-batch: choose $\boldsymbol\gamma$ in closed form, then take an ELBO step on the networks
# with $\boldsymbol\gamma$ held fixed. This page derives the closed form, checks it symbolically and
# numerically, and shows why it promotes sparse codes.

# %% tags=["parameters"]
seed = 0
n_checks = 200
label = ""

# %%
import numpy as np
import sympy as sp

from sdm import analysis, book, plotting

book.banner(label)

# %% [markdown]
# ## Step 1: the KL term of one atom
#
# The ELBO's prior term is $-\mathrm{KL}(q(\mathbf a\mid\mathbf x)\,\|\,p(\mathbf a))$. Both
# distributions are diagonal, so the KL is a sum over atoms $r = 1..k$ of one-dimensional terms:
#
# $$
# \mathrm{KL}_r(\gamma_r) = \frac12\left(\log\gamma_r - \log\sigma_r^2
#   + \frac{\sigma_r^2 + \mu_r^2}{\gamma_r} - 1\right).
# $$ (kl-atom)
#
# Only the first and third terms depend on $\gamma_r$, and the reconstruction term does not depend
# on it at all: maximising the ELBO over $\gamma_r$ is minimising {eq}`kl-atom`.

# %%
mu, gamma = sp.symbols("mu gamma", real=True)
sigma2 = sp.symbols("sigma2", positive=True)
gamma_pos = sp.symbols("gamma", positive=True)
kl = sp.Rational(1, 2) * (sp.log(gamma_pos) - sp.log(sigma2) + (sigma2 + mu**2) / gamma_pos - 1)
kl

# %% [markdown]
# ## Step 2: its derivative in γ
#
# $$
# \frac{\partial\,\mathrm{KL}_r}{\partial\gamma_r}
#   = \frac12\left(\frac1{\gamma_r} - \frac{\sigma_r^2 + \mu_r^2}{\gamma_r^2}\right)
#   = \frac{\gamma_r - (\mu_r^2 + \sigma_r^2)}{2\gamma_r^2}.
# $$
#
# It is negative below $\mu_r^2 + \sigma_r^2$ and positive above it, so the single stationary point
# is the global minimum on $\gamma_r > 0$.

# %%
d_kl = sp.simplify(sp.diff(kl, gamma_pos))
solution = sp.solve(sp.Eq(d_kl, 0), gamma_pos)
second = sp.simplify(sp.diff(kl, gamma_pos, 2).subs(gamma_pos, solution[0]))
print("dKL/dγ      =", d_kl)
print("solution    =", solution)
print("d²KL/dγ² at the solution =", second, "(> 0: a minimum)")
assert solution == [mu**2 + sigma2]

# %% [markdown]
# ## Step 3: the closed form (eq. 9)
#
# $$
# \gamma_r^\star = \mu_r^2 + \sigma_r^2,
# $$ (gamma-update)
#
# computed per frame and per atom from the encoder's outputs, without gradient: in Algorithm 1 it is
# a separate coordinate step, not part of the network's computation graph. `sdm.losses.gamma_update`
# is this line.
#
# ## A numerical check
# A generic bounded scalar optimiser, started knowing nothing about the answer, lands on
# $\mu^2 + \sigma^2$ for random $(\mu, \sigma^2)$, in the package's own KL function.

# %%
rng = np.random.default_rng(seed)
pairs = [
    analysis.gamma_update_by_optimiser(rng.normal(0, 2), rng.normal(0, 1.5))
    for _ in range(n_checks)
]
gap = max(abs(found - closed) / closed for found, closed in pairs)
print(f"{n_checks} random (μ, log σ²): largest relative gap, optimiser vs μ² + σ²: {gap:.1e}")

# %% [markdown]
# ## Step 4: the KL after substitution, and why it promotes sparsity
#
# Putting {eq}`gamma-update` back into {eq}`kl-atom`:
#
# $$
# \mathrm{KL}_r(\gamma_r^\star) = \frac12\log\left(1 + \frac{\mu_r^2}{\sigma_r^2}\right).
# $$ (kl-sparse)
#
# The prior term becomes a penalty on each atom's signal-to-noise ratio. As a function of
# $|\mu_r|$ it is a log penalty: nearly quadratic inside $|\mu_r| \lesssim \sigma_r$, then growing
# only logarithmically — the shape of the log-sum penalties of reweighted-$\ell_1$ sparse coding.
# The right panel below shows what that does to a code: spread a fixed energy
# $\sum_r \mu_r^2$ evenly over $n$ atoms and add up the penalties. Under the standard-normal prior
# of a plain VAE the total does not depend on $n$, so nothing favours few active atoms; under an
# $\ell_1$ (Laplace) penalty it grows like $\sqrt n$; under SDM-VAE's log penalty it grows faster
# still. Concentrating the energy on a few atoms is the cheapest code, which is why SDM-VAE's codes
# come out sparse (Hoyer score) without a sampling-based spike-and-slab machinery.

# %%
substituted = sp.simplify(kl.subs(gamma_pos, mu**2 + sigma2))
print("KL(γ*) =", substituted)
assert sp.simplify(substituted - sp.log(1 + mu**2 / sigma2) / 2) == 0

# %%
fig = plotting.sparsity_penalties(sigma2=0.1)
