"""The ELBO's terms: closed forms against Monte Carlo, the gamma update as the KL's minimiser, and
the Itakura-Saito divergence's defining properties (including silent bins)."""

import math

import numpy as np
import pytest
import torch

from sdm.losses import (
    POWER_FLOOR,
    gamma_update,
    is_divergence,
    is_loss,
    kl_gaussian_prior,
    kl_spike_slab,
    kl_std_normal,
)

# Monte-Carlo checks: N_MC samples per distribution, float64; the closed form must lie within
# MC_SIGMAS standard errors of the estimate, and the standard error itself must be below MAX_SE, so
# the check stays sharp (a missing constant of 0.5 per dimension would be off by > 100 SE).
N_MC = 200_000
MC_SIGMAS = 4.0
MAX_SE = 0.02


def _gauss_logpdf(z: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    return -0.5 * (torch.log(2 * math.pi * var) + (z - mu) ** 2 / var)


def _posterior(seed: int, rows: int = 3, d: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(rows, d, generator=g, dtype=torch.float64)
    logvar = 0.8 * torch.randn(rows, d, generator=g, dtype=torch.float64)
    return mu, logvar


def _assert_mc_agrees(closed: torch.Tensor, log_ratios: torch.Tensor) -> None:
    """log_ratios: (N_MC, rows) samples of log q - log p; closed: (rows,) closed-form KLs."""
    estimate = log_ratios.mean(dim=0)
    se = log_ratios.std(dim=0) / math.sqrt(log_ratios.shape[0])
    assert torch.all(se < MAX_SE), se
    assert torch.all((closed - estimate).abs() < MC_SIGMAS * se), (closed, estimate, se)


def test_kl_std_normal_matches_monte_carlo():
    mu, logvar = _posterior(0)
    var = logvar.exp()
    g = torch.Generator().manual_seed(1)
    z = mu + var.sqrt() * torch.randn(N_MC, *mu.shape, generator=g, dtype=torch.float64)
    log_ratio = _gauss_logpdf(z, mu, var) - _gauss_logpdf(z, torch.zeros(()), torch.ones(()))
    _assert_mc_agrees(kl_std_normal(mu, logvar), log_ratio.sum(dim=-1))


def test_kl_gaussian_prior_matches_monte_carlo_for_any_gamma():
    mu, logvar = _posterior(2)
    var = logvar.exp()
    g = torch.Generator().manual_seed(3)
    gamma = torch.exp(torch.randn(mu.shape, generator=g, dtype=torch.float64))  # not the optimum
    z = mu + var.sqrt() * torch.randn(N_MC, *mu.shape, generator=g, dtype=torch.float64)
    log_ratio = _gauss_logpdf(z, mu, var) - _gauss_logpdf(z, torch.zeros(()), gamma)
    _assert_mc_agrees(kl_gaussian_prior(mu, logvar, gamma), log_ratio.sum(dim=-1))


def test_kl_spike_slab_matches_monte_carlo_of_spike_and_slab_distributions():
    """q = (1 - p) delta_0 + p N(mu, s^2) against (1 - alpha) delta_0 + alpha N(0, 1), per dim.

    The spike and the slab have disjoint supports, so the log-ratio of a slab draw is
    log(p N(z; mu, s^2)) - log(alpha N(z; 0, 1)) and that of a spike draw
    log((1 - p) / (1 - alpha)).
    """
    mu, logvar = _posterior(4)
    var = logvar.exp()
    g = torch.Generator().manual_seed(5)
    p = torch.rand(mu.shape, generator=g, dtype=torch.float64) * 0.9 + 0.05
    alpha = 0.2
    slab = torch.rand(N_MC, *mu.shape, generator=g, dtype=torch.float64) < p
    z = mu + var.sqrt() * torch.randn(N_MC, *mu.shape, generator=g, dtype=torch.float64)
    slab_ratio = (torch.log(p) + _gauss_logpdf(z, mu, var)) - (
        math.log(alpha) + _gauss_logpdf(z, torch.zeros(()), torch.ones(()))
    )
    spike_ratio = torch.log((1 - p) / (1 - alpha)).expand_as(z)
    log_ratio = torch.where(slab, slab_ratio, spike_ratio).sum(dim=-1)
    _assert_mc_agrees(kl_spike_slab(mu, logvar, p, alpha), log_ratio)


def test_kl_spike_slab_bernoulli_part_is_its_definition():
    """With mu = 0 and sigma = 1 the slab KL is 0 and only KL(Bern(p) || Bern(alpha)) remains:
    sum over s in {0, 1} of q(s) log(q(s) / prior(s)), written out by enumeration."""
    p_values = [0.01, 0.3, 0.5, 0.77, 0.99]
    for alpha in (0.05, 0.5, 0.9):
        expected = 0.0
        for p in p_values:
            for q_s, prior_s in ((1 - p, 1 - alpha), (p, alpha)):
                expected += q_s * math.log(q_s / prior_s)
        zeros = torch.zeros(len(p_values), dtype=torch.float64)
        got = kl_spike_slab(zeros, zeros, torch.tensor(p_values, dtype=torch.float64), alpha)
        assert float(got) == pytest.approx(expected, rel=1e-12)


def test_kl_spike_slab_slab_part_is_the_spike_weighted_gaussian_kl():
    mu, logvar = _posterior(6)
    p = torch.full_like(mu, 0.3)
    bern = kl_spike_slab(torch.zeros_like(mu), torch.zeros_like(mu), p, 0.5)
    slab = kl_spike_slab(mu, logvar, p, 0.5) - bern
    per_dim = 0.5 * (mu**2 + logvar.exp() - logvar - 1)
    torch.testing.assert_close(slab, (0.3 * per_dim).sum(dim=-1), rtol=1e-12, atol=1e-12)


def test_kl_spike_slab_is_finite_at_certain_spikes_and_broadcasts_alpha():
    mu, logvar = _posterior(7, rows=2, d=4)
    p = torch.tensor([[0.0, 1.0, 0.5, 1.0], [1.0, 0.0, 0.0, 0.2]], dtype=torch.float64)
    assert torch.isfinite(kl_spike_slab(mu, logvar, p, 0.05)).all()
    # one alpha per stack member, (S, 1, 1), as VSC stores it
    alphas = torch.tensor([0.05, 0.9], dtype=torch.float64).view(2, 1, 1)
    stacked = kl_spike_slab(mu, logvar, p.clamp(0.1, 0.9), alphas)
    assert stacked.shape == (2, 2)
    for s, a in enumerate((0.05, 0.9)):
        torch.testing.assert_close(stacked[s], kl_spike_slab(mu, logvar, p.clamp(0.1, 0.9), a))


# gamma update (eq. 9) -------------------------------------------------------------------------


@pytest.fixture
def code_posterior() -> tuple[torch.Tensor, torch.Tensor]:
    return _posterior(8, rows=8, d=16)


def test_gamma_update_is_mu_squared_plus_variance(code_posterior):
    mu, logvar = code_posterior
    torch.testing.assert_close(gamma_update(mu, logvar), mu**2 + logvar.exp())


def test_gamma_update_is_the_minimiser_random_perturbations_raise_the_kl(code_posterior):
    mu, logvar = code_posterior
    gamma = gamma_update(mu, logvar)
    best = kl_gaussian_prior(mu, logvar, gamma)  # (8,)
    g = torch.Generator().manual_seed(9)
    for scale in (1e-3, 0.1, 1.0):
        for _ in range(50):
            delta = scale * torch.randn(gamma.shape, generator=g, dtype=torch.float64)
            perturbed = kl_gaussian_prior(mu, logvar, gamma * torch.exp(delta))
            assert torch.all(perturbed > best)
    # one atom at a time, up and down: every coordinate is at its own minimum
    for j in range(gamma.shape[1]):
        for factor in (0.99, 1.01):
            bumped = gamma.clone()
            bumped[:, j] *= factor
            assert torch.all(kl_gaussian_prior(mu, logvar, bumped) > best)


def test_kl_gradient_wrt_gamma_vanishes_at_the_update(code_posterior):
    mu, logvar = code_posterior
    gamma = gamma_update(mu, logvar).clone().requires_grad_(True)
    kl_gaussian_prior(mu, logvar, gamma).sum().backward()
    assert gamma.grad.abs().max() < 1e-12
    # and does not vanish elsewhere, so the check above can fail
    other = (1.5 * gamma.detach()).requires_grad_(True)
    kl_gaussian_prior(mu, logvar, other).sum().backward()
    assert other.grad.abs().min() > 1e-3


def test_kl_at_the_update_is_the_log_snr_penalty(code_posterior):
    mu, logvar = code_posterior
    kl = kl_gaussian_prior(mu, logvar, gamma_update(mu, logvar))
    expected = 0.5 * torch.log1p(mu**2 / logvar.exp()).sum(dim=-1)
    torch.testing.assert_close(kl, expected, rtol=1e-12, atol=1e-12)


def test_gamma_update_carries_no_gradient():
    mu = torch.randn(4, 8, requires_grad=True)
    logvar = torch.randn(4, 8, requires_grad=True)
    gamma = gamma_update(mu, logvar)
    assert not gamma.requires_grad and gamma.grad_fn is None


# Itakura-Saito ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def power(shipped_frames) -> torch.Tensor:
    """64 real power frames, float64, floored so that every bin is above POWER_FLOOR."""
    x = torch.from_numpy(shipped_frames[::8].astype(np.float64))
    return x.clamp_min(10 * POWER_FLOOR)


def _random_log_v(x: torch.Tensor, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.log(x) + 2.0 * torch.randn(x.shape, generator=g, dtype=x.dtype)


def test_is_divergence_is_nonnegative(power):
    for seed in range(5):
        d = is_divergence(power, torch.exp(_random_log_v(power, seed)))
        assert d.shape == power.shape[:1]
        assert torch.all(d >= 0)
    # float32, the training dtype, near equality: rounding must not make it negative
    x32 = power.float()
    for rel in (1e-7, 1e-5, 1e-3):
        assert torch.all(is_divergence(x32, x32 * (1 + rel)) >= 0)
        assert torch.all(is_divergence(x32, x32 * (1 - rel)) >= 0)


def test_is_divergence_is_zero_exactly_when_variance_equals_frame(shipped_frames):
    x = torch.from_numpy(shipped_frames)  # float32, raw: some bins are below the floor
    assert torch.all(is_divergence(x, x) == 0)
    x64 = x.double().clamp_min(10 * POWER_FLOOR)
    assert torch.all(is_divergence(x64, x64) == 0)
    # a single bin off by 1 % makes every frame's divergence positive
    for f in (0, 100, 512):
        v = x64.clone()
        v[:, f] *= 1.01
        assert torch.all(is_divergence(x64, v) > 0)


def test_is_loss_differs_from_divergence_by_a_constant_of_the_data(power):
    # is_loss = is_divergence + sum_f (log x + 1), whatever the variance
    constant = (torch.log(power) + 1).sum(dim=-1)
    for seed in range(4):
        log_v = _random_log_v(power, seed)
        diff = is_loss(power, log_v) - is_divergence(power, log_v.exp())
        torch.testing.assert_close(diff, constant, rtol=1e-10, atol=1e-6)


def test_silent_bins_give_finite_values_and_gradients(shipped_frames):
    x = torch.from_numpy(shipped_frames[:16]).clone()
    x[:, :100] = 0.0  # silent bins
    x[0] = 0.0  # a silent frame
    log_v = torch.randn(x.shape, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    loss = is_loss(x, log_v)
    div = is_divergence(x, log_v.exp())
    assert torch.isfinite(loss).all() and torch.isfinite(div).all()
    assert torch.all(div >= 0)
    (loss.sum() + div.sum()).backward()
    assert torch.isfinite(log_v.grad).all()
    # a silent frame decoded as a tiny variance is a perfect fit
    assert float(is_divergence(x[:1], torch.zeros(1, 513))) == 0.0
    # the difference stays a constant of the data (up to the floor's POWER_FLOOR / v)
    x64, lv = x.double(), log_v.detach().double()
    diffs = [is_loss(x64, lv + c) - is_divergence(x64, (lv + c).exp()) for c in (0.0, 3.0)]
    torch.testing.assert_close(diffs[0], diffs[1], rtol=1e-9, atol=1e-6)
