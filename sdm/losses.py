"""The ELBO's terms as pure tensor functions.

Shapes: leading dims are free, the last one is summed.
"""

from __future__ import annotations

import torch

POWER_FLOOR = 1e-10
"""Floor on power and variance values inside logs and ratios.

Silent bins of 16-bit audio have power exactly 0 (or ~1e-12 after the STFT of digital silence);
the IS divergence needs log(x), and log(0) is -inf. 1e-10 is 100 dB below a full-scale bin (~1e0
after the STFT of normalised audio), far under what 16-bit audio resolves, so it changes no
audible bin."""


def is_divergence(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Itakura-Saito divergence d_IS(x, v) = sum_f x/v - log(x/v) - 1, per frame
    (Leglaive et al. 2018).

    x: power frames (..., F) >= 0; v: model variance (..., F) > 0. Returns (...,). It is >= 0 and
    = 0 exactly when v == x. Reported numbers (`is_div`) use this form.
    """
    ratio = x.clamp_min(POWER_FLOOR) / v.clamp_min(POWER_FLOOR)
    return (ratio - torch.log(ratio) - 1.0).sum(dim=-1)


def is_loss(x: torch.Tensor, log_v: torch.Tensor) -> torch.Tensor:
    """The training form of the reconstruction term: sum_f x / v + log v with v = exp(log_v).

    This is -log N_c(s; 0, v) up to constants, and equals is_divergence(x, v) + sum_f (log x + 1):
    the difference depends on the data only, so its gradient is the same. Works from the decoder's
    log-variance directly, so v never underflows. Returns (...,). Training losses use this form.
    """
    return (x * torch.exp(-log_v) + log_v).sum(dim=-1)


def kl_std_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag exp(logvar)) || N(0, I)), summed over the last dim: the VAE's prior term."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0).sum(dim=-1)


def gamma_update(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Eq. (9): gamma = mu^2 + sigma^2, the argmin over gamma of KL(q(a|x) || N(0, diag gamma)).

    Computed per frame and per atom, without gradient (Algorithm 1 alternates: gamma first, then the
    networks with gamma held fixed). (..., k) -> (..., k).
    """
    with torch.no_grad():
        return mu.pow(2) + logvar.exp()


def kl_gaussian_prior(mu: torch.Tensor, logvar: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag sigma^2) || N(0, diag gamma)) summed over atoms (eq. 8's prior term).

    0.5 * sum(log gamma - log sigma^2 + (sigma^2 + mu^2) / gamma - 1). With gamma from eq. (9) it is
    0.5 * sum log(1 + mu^2 / sigma^2): a log penalty on the code's signal-to-noise ratio, which is
    what promotes sparsity. (..., k) -> (...,).
    """
    var = logvar.exp()
    return 0.5 * (torch.log(gamma) - logvar + (var + mu.pow(2)) / gamma - 1.0).sum(dim=-1)


SPIKE_CLAMP = 1e-6
"""VSC spike probabilities are clamped to [1e-6, 1 - 1e-6] inside logs,
as the VSC reproduction does."""


def kl_spike_slab(
    mu: torch.Tensor, logvar: torch.Tensor, spike: torch.Tensor, alpha: torch.Tensor | float
) -> torch.Tensor:
    """VSC prior term (Tonolini et al. 2020, eq. 9 as Alfo5123's reproduction implements it).

    The slab KL against N(0, I) weighted by the posterior spike probability gamma_s, plus the
    Bernoulli KL between gamma_s and the prior probability alpha. (..., m) -> (...,).
    """
    p = spike.clamp(SPIKE_CLAMP, 1.0 - SPIKE_CLAMP)
    slab = 0.5 * p * (mu.pow(2) + logvar.exp() - logvar - 1.0)
    bernoulli = (1.0 - p) * torch.log((1.0 - p) / (1.0 - alpha)) + p * torch.log(p / alpha)
    return (slab + bernoulli).sum(dim=-1)
