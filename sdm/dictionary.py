"""Dictionaries D of shape (m, k): z = D a. Fixed ones are buffers, so they travel in the state dict
but receive no gradient; a learned one is a parameter trained with the networks, with the same
interface. Both measure their mutual coherence, the learned one also as a penalty."""

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


BUILDERS = {"identity": eye, "dct": dct, "learned": dct}
"""The names config.json stores -> the atoms (m, k); a learned dictionary's are where it starts:
the DCT of the same (m, k). A learned run then starts where the fixed DCT variant of the same seed
starts (the same network weights, the same D up to float rounding of the unit norm), so any
difference between the two runs is what learning D did."""


def build_dictionary(kind: str, m: int, k: int) -> torch.Tensor:
    """Look a dictionary up by name: identity, dct, or learned (its initial atoms). (m, k)."""
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

    def penalty(self) -> None:
        """A fixed dictionary adds nothing to the training loss."""
        return None

    def diagnostics(self) -> dict[str, torch.Tensor]:
        """Nothing to record: a fixed D does not change."""
        return {}


def _off_diagonal_gram(atoms: torch.Tensor) -> torch.Tensor:
    """D^T D with its diagonal set to 0: the inner products of distinct atoms. (..., k, k)"""
    gram = atoms.transpose(-2, -1) @ atoms
    k = atoms.shape[-1]
    return gram.masked_fill(torch.eye(k, dtype=torch.bool, device=atoms.device), 0.0)


def coherence(atoms: torch.Tensor) -> torch.Tensor:
    """The coherence penalty sum_{i<j} (d_i^T d_j)^2: the squared off-diagonal Gram entries, each
    pair once. 0 for orthonormal atoms; 1 for two identical unit atoms among orthonormal others.

    For k unit atoms in m dimensions it is at least k (k - m) / (2 m) (a Welch-type bound: 0 when
    k <= m, 64 for k = 128, m = 64). atoms (..., m, k) -> (...,).
    """
    return 0.5 * _off_diagonal_gram(atoms).pow(2).sum(dim=(-2, -1))


def max_abs_coherence(atoms: torch.Tensor) -> torch.Tensor:
    """The mutual coherence max_{i != j} |d_i^T d_j| of unit atoms (..., m, k) -> (...,)."""
    return _off_diagonal_gram(atoms).abs().amax(dim=(-2, -1))


class LearnedDictionary(nn.Module):
    """A stack of learned dictionaries, one per member: D = V / ||V|| column by column.

    The parameter V (S, m, k) is trained by the stack's optimiser in the same step as the
    networks; normalising inside the forward keeps every atom at unit norm whatever the step does,
    so the optimiser needs no projection. `penalty` is each member's λ times the coherence of its
    D (`coherence`), added to that member's training loss.
    """

    def __init__(self, atoms: torch.Tensor, coherence_weights: torch.Tensor) -> None:
        super().__init__()
        if atoms.dim() != 3 or coherence_weights.shape != atoms.shape[:1]:
            raise ValueError(
                f"atoms (S, m, k) and one weight per member expected, got {tuple(atoms.shape)} "
                f"and {tuple(coherence_weights.shape)}"
            )
        self.directions = nn.Parameter(atoms.clone())
        # λ comes from each member's config: not saved with the weights
        self.register_buffer("coherence_weight", coherence_weights.float(), persistent=False)

    @property
    def atoms(self) -> torch.Tensor:
        """D (S, m, k), unit-norm atoms."""
        return self.directions / self.directions.norm(dim=1, keepdim=True)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        """z = D a for every member: a (S, B, k) -> z (S, B, m)."""
        return torch.bmm(a, self.atoms.transpose(1, 2))

    def penalty(self) -> torch.Tensor:
        """λ_s * coherence(D_s) per member: (S,)."""
        return self.coherence_weight * coherence(self.atoms)

    @torch.no_grad()
    def diagnostics(self) -> dict[str, torch.Tensor]:
        """What a run records of its D at each validation (dictionary.csv): per member (S,)."""
        atoms = self.atoms
        return {"coherence_sum": coherence(atoms), "max_abs_coherence": max_abs_coherence(atoms)}
