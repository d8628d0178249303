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
# In the paper's notation, $\mathbf s$ is a frame of the speech STFT (the VAE models its power
# spectrum $|\mathbf s|^2$, 513 bins), $\mathbf z \in \mathbb R^m$ the latent vector and
# $\mathbf a \in \mathbb R^k$ its code on a fixed dictionary, $\mathbf z = \mathbf D\mathbf a$ with
# $\mathbf D \in \mathbb R^{m \times k}$. The prior on the code has one variance per atom,
# $p(\mathbf a) = \mathcal N(\mathbf 0, \operatorname{diag}\boldsymbol\gamma)$, and the encoder
# gives a diagonal Gaussian posterior $q(\mathbf a \mid \mathbf s) = \mathcal N(\boldsymbol\mu,
# \operatorname{diag}\boldsymbol\sigma^2)$. Algorithm 1 of the paper alternates two steps per
# mini-batch: set $\boldsymbol\gamma$ in closed form (its eq. 9), then take a gradient step on the
# ELBO (its eq. 8) with $\boldsymbol\gamma$ held fixed. This page derives eq. 9, checks it
# symbolically and numerically, shows why the second step descends a log penalty, and what that
# penalty does to a code. Equation numbers are the paper's.

# %% tags=["parameters"]
seed = 0
n_checks = 200
label = ""

# %% tags=["hide-input"]
import numpy as np
import sympy as sp
from IPython.display import Math

from sdm import analysis, book, derivation, glue, plotting

book.banner(label)

# %% [markdown]
# ## Step 1: the KL term of one atom
#
# The ELBO's prior term is $-\mathrm{KL}\big(q(\mathbf a\mid\mathbf s)\,\|\,p(\mathbf a)\big)$.
# Both distributions are diagonal, so the KL is a sum over atoms $r = 1, \dots, k$ of
#
# $$
# \mathrm{KL}_r(\gamma_r) = \frac12\left(\log\gamma_r - \log\sigma_r^2
#   + \frac{\sigma_r^2 + \mu_r^2}{\gamma_r} - 1\right).
# $$
#
# Only the first and third terms depend on $\gamma_r$, and the reconstruction term does not depend
# on it at all: maximising the ELBO over $\gamma_r$ is minimising $\mathrm{KL}_r$.

# %%
mu = sp.Symbol("mu", real=True)
sigma2 = sp.Symbol("sigma^2", positive=True)
gamma = sp.Symbol("gamma", positive=True)
kl = sp.Rational(1, 2) * (sp.log(gamma) - sp.log(sigma2) + (sigma2 + mu**2) / gamma - 1)
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
d_kl = sp.simplify(sp.diff(kl, gamma))
solution = sp.solve(sp.Eq(d_kl, 0), gamma)
second = sp.simplify(sp.diff(kl, gamma, 2).subs(gamma, solution[0]))
assert solution == [mu**2 + sigma2]
Math(
    rf"\frac{{\partial\,\mathrm{{KL}}}}{{\partial\gamma}} = {sp.latex(d_kl)}, \qquad "
    rf"\gamma^\star = {sp.latex(solution[0])}, \qquad "
    rf"\frac{{\partial^2\mathrm{{KL}}}}{{\partial\gamma^2}}\Big|_{{\gamma^\star}}"
    rf" = {sp.latex(second)}"
)

# %% [markdown]
# The derivative, its only root, and the second derivative there (positive: a minimum), as sympy
# computes them.
#
# ## Step 3: the closed form
#
# $$
# \gamma_r = \mu_r^2 + \sigma_r^2 \tag{9}
# $$
#
# computed per frame and per atom from the encoder's outputs, without gradient: in Algorithm 1 it
# is a separate coordinate step, not part of the network's computation graph.
# `sdm.losses.gamma_update` is this line.
#
# **A numerical check.** A generic bounded scalar optimiser, knowing nothing of the answer,
# minimises the package's own KL function for random $(\mu, \sigma^2)$ and lands on
# $\mu^2 + \sigma^2$:

# %%
rng = np.random.default_rng(seed)
pairs = [
    analysis.gamma_update_by_optimiser(rng.normal(0, 2), rng.normal(0, 1.5))
    for _ in range(n_checks)
]
gap = max(abs(found - closed) / closed for found, closed in pairs)
print(f"{n_checks} random (μ, log σ²): largest relative gap, optimiser vs μ² + σ²: {gap:.1e}")

# %% [markdown]
# ## Step 4: what the gradient step descends
#
# Put eq. 9 back into the KL:
#
# $$
# \mathrm{KL}_r(\mu_r^2 + \sigma_r^2) = \frac12\log\left(1 + \frac{\mu_r^2}{\sigma_r^2}\right),
# $$
#
# exactly (the constants cancel). Algorithm 1 does not differentiate this expression, though: it
# differentiates $\mathrm{KL}_r(\gamma_r)$ with $\gamma_r$ frozen at its current value. The two
# gradients agree. Write $F(\mu, \sigma^2) = \min_\gamma \mathrm{KL}_r(\gamma; \mu, \sigma^2)$;
# by the chain rule
#
# $$
# \frac{\partial F}{\partial \mu}
#   = \frac{\partial\,\mathrm{KL}_r}{\partial \mu}\bigg|_{\gamma^\star}
#   + \underbrace{\frac{\partial\,\mathrm{KL}_r}{\partial \gamma}\bigg|_{\gamma^\star}}_{=\,0}
#   \frac{\partial \gamma^\star}{\partial \mu},
# $$
#
# and the same for $\sigma^2$: at the minimiser the KL is flat in $\gamma$, so how $\gamma^\star$
# moves with $(\mu, \sigma^2)$ does not matter (the envelope theorem). Both sides equal
# $\mu_r / (\mu_r^2 + \sigma_r^2)$ in $\mu_r$. Algorithm 1's step is therefore a gradient step on
# the log penalty $\tfrac12\log(1 + \mu_r^2/\sigma_r^2)$, which is what makes it a
# sparsity-promoting method rather than a plain VAE with a moving prior.

# %%
substituted = sp.simplify(kl.subs(gamma, mu**2 + sigma2))
assert sp.simplify(substituted - sp.log(1 + mu**2 / sigma2) / 2) == 0
frozen = sp.diff(kl, mu).subs(gamma, mu**2 + sigma2)  # γ frozen, then its value plugged in
assert sp.simplify(frozen - sp.diff(substituted, mu)) == 0
Math(
    rf"\mathrm{{KL}}(\gamma^\star) = {sp.latex(substituted)}, \qquad "
    rf"\frac{{\partial\,\mathrm{{KL}}}}{{\partial\mu}}\Big|_{{\gamma = \gamma^\star}}"
    rf" = {sp.latex(sp.simplify(frozen))}"
)

# %% [markdown]
# Symbolically: the substituted KL, and the $\mu$-gradient with $\gamma$ frozen. Numerically, in
# the package's own functions and with PyTorch's autograd: the gradient of
# `kl_gaussian_prior(μ, log σ², γ)` with γ from `gamma_update` (no gradient through it) against
# the gradient of $\tfrac12\log(1 + \mu^2/\sigma^2)$, over random points in float64:

# %%
gaps = derivation.envelope_gradients(n=1000, seed=seed)
print(f"largest gap over 1000 points, ∂/∂μ:     {gaps['mu_abs']:.1e}")
print(f"largest gap over 1000 points, ∂/∂log σ²: {gaps['logvar_abs']:.1e}")
print("(float64 rounding: about 1e-16)")

# %% [markdown]
# ## Why a log penalty makes codes sparse
#
# As a function of $|\mu_r|$ the log penalty is nearly quadratic for $|\mu_r| \lesssim \sigma_r$,
# then grows only logarithmically: large coefficients are almost free, small ones are pushed to
# zero, the shape of the log-sum penalties of reweighted-$\ell_1$ sparse coding. The right panel
# of the figure spreads a fixed energy $E = \sum_r \mu_r^2$ evenly over $n$ atoms and adds up the
# penalties. Under the plain VAE's standard-normal prior the total does not depend on $n$: nothing
# favours few active atoms. Under $\ell_1$ it grows like $\sqrt n$. The log penalty grows faster
# than $\ell_1$ only while each atom's share $E/n$ stays well above $\sigma^2$; once the shares
# fall below $\sigma^2$ it levels off at $E/(2\sigma^2)$, the standard-normal value, and $\ell_1$
# overtakes it. So it is the first few atoms that the log penalty taxes hardest: concentrating
# the energy on a few atoms is the cheapest code, which is why SDM-VAE's codes come out sparse
# without spike-and-slab machinery.

# %% tags=["remove-input"]
sigma2_value, energy = 0.1, 4.0
cross = derivation.log_outgrows_l1_until(sigma2_value, energy)
print(f"σ² = {sigma2_value}, E = {energy}:")
print(f"the log penalty grows faster than ℓ1 up to n = {cross} atoms (E/n = {energy / cross:.3f});")
limit = derivation.log_penalty_limit(sigma2_value, energy)
print(f"as n grows it tends to E/(2σ²) = {limit:g}, the standard-normal value.")

# %% tags=["remove-cell"]
glue.figure("penalties", plotting.sparsity_penalties(sigma2=sigma2_value, energy=energy))

# %% [markdown]
# ```{glue:figure} penalties
# :name: fig-penalties
# :alt: Penalty of one atom for three priors, and the total penalty of energy spread over n atoms.
#
# Left: the penalty of one atom against its posterior mean $\mu$ ($\sigma^2 = 0.1$): SDM-VAE's
# $\tfrac12\log(1+\mu^2/\sigma^2)$, an $\ell_1$ (Laplace) penalty and the plain VAE's quadratic,
# scaled to meet at $|\mu| = 1$. Right: the total penalty of an energy $E = 4$ spread evenly over
# $n$ atoms, relative to $n = 1$ (log axes); the grey line marks $E/n = \sigma^2$.
# ```
