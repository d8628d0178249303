"""Dictionaries: eq. 11's DCT as the official code builds it, the identity, the fixed buffer."""

import math

import numpy as np
import pytest
import torch

from sdm.dictionary import FixedDictionary, build_dictionary, dct, eye

SHAPES = [(4, 3), (8, 8), (6, 10), (2, 5), (64, 32), (64, 64), (32, 64)]  # k < m, k = m, k > m


def odct_reference(m: int, k: int) -> np.ndarray:
    """The construction in book/conventions.md, element by element: atom 0 is 1/sqrt(m); atom r >= 1
    is cos(pi l r / k), l = 0..m-1, minus its mean, divided by its norm."""
    d = np.zeros((m, k))
    for ell in range(m):
        d[ell, 0] = 1.0 / math.sqrt(m)
    for r in range(1, k):
        atom = [math.cos(math.pi * ell * r / k) for ell in range(m)]
        mean = sum(atom) / m
        atom = [a - mean for a in atom]
        norm = math.sqrt(sum(a * a for a in atom))
        for ell in range(m):
            d[ell, r] = atom[ell] / norm
    return d


@pytest.mark.parametrize("m, k", SHAPES)
def test_dct_equals_the_reference_construction(m, k):
    d = dct(m, k)
    assert d.shape == (m, k) and d.dtype == torch.float32
    np.testing.assert_allclose(d.numpy(), odct_reference(m, k), atol=1e-6, rtol=0)


@pytest.mark.parametrize("m, k", SHAPES)
def test_dct_atoms_are_unit_norm_and_all_but_the_first_zero_mean(m, k):
    d = dct(m, k).double()
    assert torch.isfinite(d).all()
    torch.testing.assert_close(d.norm(dim=0), torch.ones(k, dtype=torch.float64), atol=1e-6, rtol=0)
    assert d[:, 1:].mean(dim=0).abs().max() < 1e-7
    # atom 0 is the constant 1/sqrt(m), not mean-subtracted (eq. 11 taken literally would zero it)
    torch.testing.assert_close(d[:, 0], torch.full((m,), 1 / math.sqrt(m), dtype=torch.float64))


@pytest.mark.parametrize("m, k", SHAPES)
def test_dct_has_no_zero_or_nan_column(m, k):
    d = dct(m, k)
    assert not torch.isnan(d).any()
    assert torch.all(d.abs().amax(dim=0) > 0.1)


def test_square_dct_is_not_orthogonal_condition_number_about_16():
    d = dct(64, 64).double()
    assert 15.0 < float(torch.linalg.cond(d)) < 17.0  # book/conventions.md: "condition number ≈ 16"
    assert not torch.allclose(d.T @ d, torch.eye(64, dtype=torch.float64), atol=1e-3)


@pytest.mark.parametrize("m, k", [(1, 4), (0, 3), (8, 0)])
def test_dct_rejects_shapes_without_a_usable_atom(m, k):
    with pytest.raises(ValueError, match=f"m={m}, k={k}"):
        dct(m, k)


def test_identity_dictionary():
    torch.testing.assert_close(eye(5), torch.eye(5))
    torch.testing.assert_close(build_dictionary("identity", 7, 7), torch.eye(7))
    with pytest.raises(ValueError, match="k == m"):
        eye(4, 3)


def test_build_dictionary_by_name_and_unknown_name_lists_valid_ones():
    torch.testing.assert_close(build_dictionary("dct", 8, 12), dct(8, 12))
    # a learned dictionary starts at the DCT of its shape
    torch.testing.assert_close(build_dictionary("learned", 8, 12), dct(8, 12))
    with pytest.raises(KeyError, match="identity, dct, learned"):
        build_dictionary("random", 8, 8)


def test_fixed_dictionary_is_a_buffer_and_applies_z_equals_d_a_per_member():
    atoms = torch.stack([dct(8, 12), torch.randn(8, 12)])  # (S=2, m=8, k=12)
    fixed = FixedDictionary(atoms)
    assert list(fixed.parameters()) == []
    assert set(fixed.state_dict()) == {"atoms"}
    a = torch.randn(2, 5, 12)
    z = fixed(a)
    assert z.shape == (2, 5, 8)
    for s in range(2):
        torch.testing.assert_close(z[s], a[s] @ atoms[s].T)
    with pytest.raises(ValueError, match=r"\(S, m, k\)"):
        FixedDictionary(dct(8, 12))
