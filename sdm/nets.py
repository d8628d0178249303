"""Encoder and decoder MLPs, stacked: one module holds S independent members, each with its own
weights, evaluated with batched matmuls. S = 1 is the ordinary single model."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

N_BINS = 513


class StackedLinear(nn.Module):
    """S independent affine maps: x (S, B, n_in) -> (S, B, n_out), one baddbmm for all members.

    Each member is initialised from its own seed exactly as torch.nn.Linear would draw it
    (U(-1/sqrt(n_in), 1/sqrt(n_in)) for weights and biases), so a member's start does not depend on
    which stack it is in.
    """

    def __init__(self, n_in: int, n_out: int, generators: Sequence[torch.Generator]) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(n_in)
        weights, biases = [], []
        for g in generators:
            weights.append((torch.rand(n_in, n_out, generator=g) * 2 - 1) * bound)
            biases.append((torch.rand(1, n_out, generator=g) * 2 - 1) * bound)
        self.weight = nn.Parameter(torch.stack(weights))  # (S, n_in, n_out)
        self.bias = nn.Parameter(torch.stack(biases))  # (S, 1, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)


class Encoder(nn.Module):
    """513 -> 128 tanh -> `n_heads` heads of size d (mean, log-variance, and VSC's spike logit).

    The heads share one matmul; `forward` returns them split along the last dim.
    """

    def __init__(self, d: int, hidden: int, n_heads: int, generators: Sequence[torch.Generator]):
        super().__init__()
        self.d, self.n_heads = d, n_heads
        self.hidden = StackedLinear(N_BINS, hidden, generators)
        self.heads = StackedLinear(hidden, n_heads * d, generators)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """x (S, B, 513) power frames -> n_heads tensors (S, B, d)."""
        h = torch.tanh(self.hidden(x))
        return self.heads(h).split(self.d, dim=-1)


class Decoder(nn.Module):
    """m -> 128 tanh -> 513: the log-variance of each bin's zero-mean complex Gaussian."""

    def __init__(self, m: int, hidden: int, generators: Sequence[torch.Generator]):
        super().__init__()
        self.hidden = StackedLinear(m, hidden, generators)
        self.out = StackedLinear(hidden, N_BINS, generators)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (S, B, m) -> log-variance (S, B, 513)."""
        return self.out(torch.tanh(self.hidden(z)))
