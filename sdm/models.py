"""VAE, VSC and SDM-VAE as stacks of S members that share one family and one shape.

Every model returns the same records (`Output` for training, `Reconstruction` for evaluation), so
the trainer and the evaluation never branch on the family. The three families differ only in how
the encoder's heads become a latent z, a code, and a prior term (`_latent`).
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import torch
from torch import nn

from sdm import losses
from sdm.config import ModelConfig
from sdm.dictionary import FixedDictionary, LearnedDictionary, build_dictionary
from sdm.nets import Decoder, Encoder


class Output(NamedTuple):
    """Per-member batch means: loss = recon + kl (S,);
    code (S, B, d) is what Hoyer is measured on."""

    loss: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor
    code: torch.Tensor
    gamma: torch.Tensor | None  # SDM-VAE's prior variances (S, B, k); None for other families


class Reconstruction(NamedTuple):
    """Posterior-mean decoding: variance (S, N, 513) of each bin;
    code (S, N, d) (a, E[z] for VSC, z)."""

    variance: torch.Tensor
    code: torch.Tensor


class Latent(NamedTuple):
    z: torch.Tensor  # (S, B, m), what the decoder receives
    code: torch.Tensor  # (S, B, d)
    kl: torch.Tensor  # (S, B)
    gamma: torch.Tensor | None


SEED_LIMIT = 1 << 40  # run seeds are 0 .. SEED_LIMIT - 1: below the stream offset


def _seed_stream(seed: int, stream: int) -> int:
    """Independent generator seeds per purpose (init, noise, shuffling)
    derived from one run seed."""
    return seed + stream * SEED_LIMIT


def check_seed(seed: object) -> int:
    """`seed` if it is a run seed, else ValueError naming it and the range.

    The range is what keeps runs independent: seed s draws its noise from generator seed
    s + 2**40, so a seed of 2**40 or more would replay another run's streams."""
    try:
        value = None if isinstance(seed, bool) else operator.index(seed)  # ints, numpy ints
    except TypeError:
        value = None
    if value is None or not 0 <= value < SEED_LIMIT:
        raise ValueError(
            f"seed {seed!r}: expected an integer from 0 to {SEED_LIMIT - 1} (2**40 - 1; each "
            "seed's generators start at seed + n * 2**40, so larger seeds would share them)"
        )
    return value


INIT_STREAM, NOISE_STREAM, SHUFFLE_STREAM = 0, 1, 2


def _canonical_device(device: torch.device | str) -> torch.device:
    """`cuda` and `cuda:<current>` are one device; torch.device compares them as different."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    return device


class LatentStack(nn.Module):
    """S members of one family and shape, each with its own weights, seed and noise stream."""

    family: ClassVar[str]
    n_heads: ClassVar[int] = 2

    def __init__(self, configs: Sequence[ModelConfig], seeds: Sequence[int]) -> None:
        super().__init__()
        if not configs or len(configs) != len(seeds):
            raise ValueError("a stack needs one seed per member and at least one member")
        keys = {c.shape_key for c in configs}
        if len(keys) != 1 or configs[0].family != self.family:
            raise ValueError(
                f"{type(self).__name__} members must share family and shape, got {keys}"
            )
        self.configs, self.seeds = list(configs), [check_seed(int(s)) for s in seeds]
        cfg = configs[0]
        gens = [torch.Generator().manual_seed(_seed_stream(s, INIT_STREAM)) for s in self.seeds]
        self.encoder = Encoder(cfg.code_dim, cfg.hidden, self.n_heads, gens)
        self.decoder = Decoder(cfg.m, cfg.hidden, gens)
        self._noise: list[torch.Generator] = []

    @property
    def size(self) -> int:
        return len(self.configs)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.configs]

    def noise_generators(self, device: torch.device | str) -> list[torch.Generator]:
        """One noise stream per member, so a member draws the same noise alone or in any stack.

        The streams are made once per device and then continue; asking for `cuda` and for `cuda:0`
        gets the same streams. Moving to another device type restarts them from the seed (a CPU
        and a CUDA generator have different states).
        """
        device = _canonical_device(device)
        if self._noise and _canonical_device(self._noise[0].device) == device:
            return self._noise
        old = self._noise
        self._noise = [
            torch.Generator(device).manual_seed(_seed_stream(s, NOISE_STREAM)) for s in self.seeds
        ]
        if old and old[0].device.type == device.type:
            for g, prev in zip(self._noise, old, strict=True):
                g.set_state(prev.get_state())
        return self._noise

    def _randn(self, like: torch.Tensor) -> torch.Tensor:
        gens = self.noise_generators(like.device)
        return torch.stack(
            [torch.randn(like.shape[1:], generator=g, device=like.device) for g in gens]
        )

    def _rand(self, like: torch.Tensor) -> torch.Tensor:
        gens = self.noise_generators(like.device)
        return torch.stack(
            [torch.rand(like.shape[1:], generator=g, device=like.device) for g in gens]
        )

    def _latent(self, heads: tuple[torch.Tensor, ...], sample: bool) -> Latent:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, sample: bool = True) -> Output:
        """Negative ELBO per member, averaged over the batch. x: (S, B, 513) power frames.

        sample=True draws the latent (training); sample=False decodes the posterior mean, which
        gives the deterministic validation loss the trainer early-stops on.
        """
        lat = self._latent(self.encoder(x), sample)
        recon = losses.is_loss(x, self.decoder(lat.z))  # (S, B)
        return Output(
            loss=(recon + lat.kl).mean(dim=1),
            recon=recon.mean(dim=1),
            kl=lat.kl.mean(dim=1),
            code=lat.code,
            gamma=lat.gamma,
        )

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> Reconstruction:
        """Decode the posterior mean of every member: x (N, 513) -> variance (S, N, 513), code."""
        xs = x.unsqueeze(0).expand(self.size, *x.shape)
        lat = self._latent(self.encoder(xs), sample=False)
        return Reconstruction(variance=self.decoder(lat.z).exp(), code=lat.code)

    def on_epoch_end(self) -> None:
        """Hook for schedules that advance once per epoch (VSC's sharpness); no-op by default."""

    def penalty(self) -> torch.Tensor | None:
        """A term per member (S,) that training adds to the loss but that is not part of the ELBO
        (a learned dictionary's coherence penalty); None when there is none. Validation losses
        leave it out, so they stay the negative ELBO."""
        return None

    def diagnostics(self) -> dict[str, torch.Tensor]:
        """Per-member numbers (S,) recorded at each validation beside the history (a learned
        dictionary's coherence: dictionary.csv); none by default."""
        return {}

    def select(self, members: Sequence[int]) -> LatentStack:
        """A new stack of the chosen members, weights copied
        (used to drop early-stopped members)."""
        idx = torch.as_tensor(list(members), dtype=torch.long)
        new = type(self)([self.configs[i] for i in members], [self.seeds[i] for i in members])
        device = next(self.parameters()).device
        new.load_state_dict({k: v[idx.to(v.device)] for k, v in self.state_dict().items()})
        new.to(device)
        if self._noise:
            new._noise = [self._noise[i] for i in members]
        return new

    def member_state(self, i: int) -> dict[str, torch.Tensor]:
        """Member i's weights and buffers as a one-member state dict (copies, on the CPU)."""
        return {k: v[i : i + 1].detach().cpu().clone() for k, v in self.state_dict().items()}


class VAE(LatentStack):
    """Leglaive et al. (2018): z ~ N(0, I) prior, Gaussian posterior, closed-form KL."""

    family = "vae"

    def _latent(self, heads: tuple[torch.Tensor, ...], sample: bool) -> Latent:
        mu, logvar = heads
        z = mu + torch.exp(0.5 * logvar) * self._randn(mu) if sample else mu
        return Latent(z=z, code=z, kl=losses.kl_std_normal(mu, logvar), gamma=None)


SHARPNESS_START, SHARPNESS_STEP = 50.0, 0.001
"""VSC's relaxed selection: sigmoid(c (eta + gamma_s - 1)), c = 50 at first and + 0.001 per epoch,
as in the reproduction the paper used (Alfo5123/Variational-Sparse-Coding, `update_()` once per
epoch)."""


class VSC(LatentStack):
    """Variational sparse coding (Tonolini et al. 2020) as the paper's reproduction implements it.

    Three heads: mu, log sigma^2 and a spike logit h, with log gamma_s = -relu(-h) (so
    gamma_s <= 1). Sampling: z = sigmoid(c (eta + gamma_s - 1)) * (mu + sigma eps), eta ~ U(0, 1).
    Prior term: `losses.kl_spike_slab` against prior spike probability alpha. Evaluation decodes and
    measures the posterior mean E[z] = gamma_s * mu (our decision; book/conventions.md).
    """

    family = "vsc"
    n_heads = 3

    def __init__(self, configs: Sequence[ModelConfig], seeds: Sequence[int]) -> None:
        super().__init__(configs, seeds)
        alphas = torch.tensor([c.alpha for c in configs], dtype=torch.float32)
        self.register_buffer("alpha", alphas.view(-1, 1, 1))
        self.register_buffer("sharpness", torch.full((len(configs), 1, 1), SHARPNESS_START))

    def _latent(self, heads: tuple[torch.Tensor, ...], sample: bool) -> Latent:
        mu, logvar, logit = heads
        spike = torch.exp(-torch.relu(-logit))
        if sample:
            select = torch.sigmoid(self.sharpness * (self._rand(mu) + spike - 1.0))
            z = select * (mu + torch.exp(0.5 * logvar) * self._randn(mu))
        else:
            z = spike * mu
        kl = losses.kl_spike_slab(mu, logvar, spike, self.alpha)
        return Latent(z=z, code=z, kl=kl, gamma=None)

    def on_epoch_end(self) -> None:
        # c = 50 + 0.001 n, computed from n rather than accumulated: adding 0.001 to a float32 50
        # ten thousand times loses 5.5 steps to rounding
        with torch.no_grad():
            n = torch.round((self.sharpness.double() - SHARPNESS_START) / SHARPNESS_STEP)
            self.sharpness.copy_(SHARPNESS_START + (n + 1) * SHARPNESS_STEP)


class SDMVAE(LatentStack):
    """SDM-VAE (eqs. 4-10): code a ~ N(0, diag gamma), z = D a with a dictionary D (m, k).

    Algorithm 1 per mini-batch: gamma = mu^2 + sigma^2 per frame and atom (eq. 9, no gradient), then
    the networks take an ELBO step with gamma fixed. Hoyer is measured on a. D is fixed (the
    paper's identity and DCT) or learned in that same step (beyond the paper: members whose
    config `learns_dictionary`, with their coherence penalty).
    """

    family = "sdm"

    def __init__(
        self,
        configs: Sequence[ModelConfig],
        seeds: Sequence[int],
        dictionary: nn.Module | None = None,
    ) -> None:
        super().__init__(configs, seeds)
        if dictionary is None:
            atoms = torch.stack([build_dictionary(c.dictionary, c.m, c.k) for c in configs])
            if configs[0].learns_dictionary:  # a stack never mixes the two (shape_key)
                weights = torch.tensor([c.coherence for c in configs], dtype=torch.float32)
                dictionary = LearnedDictionary(atoms, weights)
            else:
                dictionary = FixedDictionary(atoms)
        self.dictionary = dictionary

    def penalty(self) -> torch.Tensor | None:
        return self.dictionary.penalty()

    def diagnostics(self) -> dict[str, torch.Tensor]:
        return self.dictionary.diagnostics()

    def _latent(self, heads: tuple[torch.Tensor, ...], sample: bool) -> Latent:
        mu, logvar = heads
        gamma = losses.gamma_update(mu, logvar)
        a = mu + torch.exp(0.5 * logvar) * self._randn(mu) if sample else mu
        kl = losses.kl_gaussian_prior(mu, logvar, gamma)
        return Latent(z=self.dictionary(a), code=a, kl=kl, gamma=gamma)


MODELS: dict[str, type[LatentStack]] = {"vae": VAE, "vsc": VSC, "sdm": SDMVAE}


def build_stack(configs: Sequence[ModelConfig], seeds: Sequence[int]) -> LatentStack:
    """One stack for members that share family and shape (see `group_members`)."""
    return MODELS[configs[0].family](configs, seeds)


def build_model(config: ModelConfig, seed: int = 0) -> LatentStack:
    """A single model: a stack of one member."""
    return build_stack([config], [seed])


def group_members(
    members: Sequence[tuple[ModelConfig, int]],
) -> list[list[tuple[ModelConfig, int]]]:
    """Split (config, seed) pairs into stackable groups by shape, keeping the input order."""
    groups: dict[tuple, list[tuple[ModelConfig, int]]] = {}
    for cfg, seed in members:
        groups.setdefault(cfg.shape_key, []).append((cfg, seed))
    return list(groups.values())
