"""Numerical checks behind the derivation page: the envelope step of Algorithm 1, and where the
log penalty stops out-growing ℓ1.

Algorithm 1 sets γ = μ² + σ² without gradient, then differentiates the KL with γ held fixed.
Because γ* minimises the KL, ∂KL/∂γ = 0 there, so the gradient with γ fixed equals the gradient of
the KL with γ* substituted, ½ log(1 + μ²/σ²) (an envelope theorem): Algorithm 1 descends the log
penalty exactly.
"""

from __future__ import annotations

import numpy as np
import torch

from sdm import losses
from sdm.plotting import total_penalties


def envelope_gradients(n: int = 1000, seed: int = 0) -> dict[str, float]:
    """Largest absolute and relative gaps between two gradients over n random (μ, log σ²), in
    float64: autograd of the package's KL with γ = gamma_update(μ, log σ²) detached, and autograd of
    ½ log(1 + μ²/σ²). Returns {"mu_abs", "mu_rel", "logvar_abs", "logvar_rel"}."""
    gen = torch.Generator().manual_seed(seed)
    mu0 = torch.randn(n, dtype=torch.float64, generator=gen) * 2.0
    lv0 = torch.randn(n, dtype=torch.float64, generator=gen) * 1.5
    grads = []
    for penalty in ("fixed_gamma", "log"):
        mu, logvar = mu0.clone().requires_grad_(), lv0.clone().requires_grad_()
        if penalty == "fixed_gamma":
            gamma = losses.gamma_update(mu, logvar)  # computed without gradient: held fixed
            assert not gamma.requires_grad
            value = losses.kl_gaussian_prior(mu[:, None], logvar[:, None], gamma[:, None]).sum()
        else:
            value = (0.5 * torch.log1p(mu.pow(2) / logvar.exp())).sum()
        value.backward()
        grads.append((mu.grad.clone(), logvar.grad.clone()))
    (gm_a, gl_a), (gm_b, gl_b) = grads
    tiny = torch.finfo(torch.float64).tiny
    return {
        "mu_abs": float((gm_a - gm_b).abs().max()),
        "mu_rel": float(((gm_a - gm_b).abs() / gm_b.abs().clamp_min(tiny)).max()),
        "logvar_abs": float((gl_a - gl_b).abs().max()),
        "logvar_rel": float(((gl_a - gl_b).abs() / gl_b.abs().clamp_min(tiny)).max()),
    }


def log_outgrows_l1_until(sigma2: float, energy: float, max_atoms: int = 100_000) -> int:
    """The largest n at which spreading `energy` over n atoms has grown the log penalty's total
    (relative to n = 1) at least as much as the ℓ1 total: beyond it ℓ1 grows faster."""
    n = np.arange(1, max_atoms + 1)
    curves = total_penalties(n, sigma2, energy)
    log, l1 = curves["SDM-VAE (log)"], curves["Laplace (ℓ1)"]
    ahead = log / log[0] >= l1 / l1[0]
    return int(n[ahead][-1])


def log_penalty_limit(sigma2: float, energy: float) -> float:
    """The log penalty's total as n → ∞: energy / (2 σ²), the standard-normal prior's value."""
    return energy / (2 * sigma2)
