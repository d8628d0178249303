"""Dictionaries D of shape (m, k): z = D a. Fixed ones are buffers, so they travel in the state dict
but receive no gradient; a learned dictionary would be a module with the same interface."""

from __future__ import annotations

import math

import torch
from torch import nn


def eye(m: int, k: int | None = None) -> torch.Tensor:
    """The identity dictionary (k = m): SDM-VAE with D = I puts the sparse prior directly on z."""
    k = m if k is None else k
    if k != m:
        raise ValueError(f"identity dictionary needs k == m, got k={k}, m={m}")
    return torch.eye(m)


def dct(m: int, k: int) -> torch.Tensor:
    """Overcomplete DCT dictionary (eq. 11), built as the official code builds it.

    Atom 0 is the constant 1/sqrt(m); atoms r = 1..k-1 are cos(pi * l * r / k), l = 0..m-1, with
    their mean subtracted and then scaled to unit norm. Taken literally, eq. 11 would subtract the
    mean of atom 0 too and make it zero (book/conventions.md, "The official code's quirks").
    Shape (m, k); any k >= 1.
    """
    if m < 1 or k < 1:
        raise ValueError(f"dct dictionary needs m >= 1 and k >= 1, got m={m}, k={k}")
    ell = torch.arange(m, dtype=torch.float64)[:, None]
    r = torch.arange(k, dtype=torch.float64)[None, :]
    atoms = torch.cos(math.pi * ell * r / k)
    atoms[:, 1:] -= atoms[:, 1:].mean(dim=0, keepdim=True)
    norms = atoms.norm(dim=0)
    # m = 1 makes every mean-subtracted atom zero; a zero column would be a silent NaN later
    if torch.any(norms[1:] < 1e-12):
        raise ValueError(f"dct dictionary with m={m}, k={k} has an all-zero atom: use m >= 2")
    return (atoms / norms).float()


BUILDERS = {"identity": eye, "dct": dct}  # the names config.json stores


def build_dictionary(kind: str, m: int, k: int) -> torch.Tensor:
    """Look a dictionary up by name: identity or dct. Returns (m, k)."""
    try:
        return BUILDERS[kind](m, k)
    except KeyError:
        raise KeyError(f"unknown dictionary {kind!r}; valid: {', '.join(BUILDERS)}") from None


class FixedDictionary(nn.Module):
    """A stack of fixed dictionaries, one per member: atoms (S, m, k), registered as a buffer."""

    def __init__(self, atoms: torch.Tensor) -> None:
        super().__init__()
        if atoms.dim() != 3:
            raise ValueError(f"atoms: expected shape (S, m, k), got {tuple(atoms.shape)}")
        self.register_buffer("atoms", atoms)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        """z = D a for every member: a (S, B, k) -> z (S, B, m)."""
        return torch.bmm(a, self.atoms.transpose(1, 2))
