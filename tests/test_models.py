"""VAE, VSC and SDM-VAE stacks: every variant trains on real frames; gradients go where they
should and nowhere else; a member behaves the same inside a stack and alone; VSC's schedule and
mean code."""

import pytest
import torch

from sdm.config import ModelConfig
from sdm.dictionary import build_dictionary
from sdm.models import (
    SHARPNESS_START,
    SHARPNESS_STEP,
    VSC,
    build_model,
    build_stack,
    group_members,
)
from sdm.variants import VARIANTS, get_variant

B = 32  # frames per member and batch


@pytest.fixture(scope="module")
def x(shipped_frames) -> torch.Tensor:
    """(3, B, 513): three different batches of real power frames, one per stack member."""
    return torch.from_numpy(shipped_frames[: 3 * B]).reshape(3, B, 513)


def _grad_norm(p: torch.nn.Parameter) -> float:
    return 0.0 if p.grad is None else float(p.grad.norm())


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_variant_runs_forward_and_backward_on_real_frames(name, x):
    cfg = get_variant(name)
    model = build_model(cfg, seed=0)
    out = model(x[:1])
    assert out.loss.shape == out.recon.shape == out.kl.shape == (1,)
    assert out.code.shape == (1, B, cfg.code_dim)
    assert torch.isfinite(out.loss).all() and torch.isfinite(out.code).all()
    torch.testing.assert_close(out.loss, out.recon + out.kl)
    assert torch.all(out.kl >= 0)
    out.loss.sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    # gradients reach every layer of the encoder and of the decoder
    enc, dec = model.encoder, model.decoder
    for part in (enc.hidden, enc.heads, dec.hidden, dec.out):
        assert _grad_norm(part.weight) > 0 and _grad_norm(part.bias) > 0
    # ... and every head (mean, log-variance, VSC's spike logit) of the encoder
    d = cfg.code_dim
    for h in range(model.n_heads):
        assert model.encoder.heads.weight.grad[..., h * d : (h + 1) * d].abs().sum() > 0
    rec = model.reconstruct(x[0])
    assert rec.variance.shape == (1, B, 513) and rec.code.shape == (1, B, d)
    assert torch.isfinite(rec.variance).all() and torch.all(rec.variance > 0)


@pytest.mark.parametrize("name", ["sdm-I-m32", "sdm-dct-k32-m64", "sdm-dct-k64-m32"])
def test_no_gradient_flows_into_gamma_or_the_fixed_dictionary(name, x):
    cfg = get_variant(name)
    model = build_model(cfg, seed=1)
    atoms = model.dictionary.atoms
    assert "dictionary.atoms" in model.state_dict()
    assert all(p is not atoms for p in model.parameters())
    assert not atoms.requires_grad
    torch.testing.assert_close(atoms[0], build_dictionary(cfg.dictionary, cfg.m, cfg.k))
    before = atoms.clone()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    out = model(x[:1])
    assert out.gamma is not None and out.gamma.shape == (1, B, cfg.k)
    assert not out.gamma.requires_grad and out.gamma.grad_fn is None
    out.loss.sum().backward()
    opt.step()
    assert atoms.grad is None
    assert torch.equal(model.dictionary.atoms, before)


def test_sdm_follows_algorithm_1(x):
    """gamma = mu^2 + sigma^2 of this batch's encoder output; KL = 0.5 sum log(1 + mu^2/sigma^2);
    the decoder receives z = D a, and the posterior-mean code is a = mu."""
    model = build_model(get_variant("sdm-dct-k64-m32"), seed=2)
    out = model(x[:1], sample=False)
    with torch.no_grad():
        mu, logvar = model.encoder(x[:1])
        torch.testing.assert_close(out.gamma, mu**2 + logvar.exp())
        expected_kl = 0.5 * torch.log1p(mu**2 / logvar.exp()).sum(-1).mean(1)
        torch.testing.assert_close(out.kl, expected_kl, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(out.code, mu)
        rec = model.reconstruct(x[0])
        z = mu @ model.dictionary.atoms[0].T
        torch.testing.assert_close(rec.variance, model.decoder(z).exp())
        torch.testing.assert_close(rec.code, mu)


def test_vae_codes_are_the_posterior_mean(x):
    model = build_model(get_variant("vae-m64"), seed=3)
    with torch.no_grad():
        mu, _ = model.encoder(x[:1])
        torch.testing.assert_close(model.reconstruct(x[0]).code, mu)
        torch.testing.assert_close(model(x[:1], sample=False).code, mu)


# VSC -------------------------------------------------------------------------------------------


def test_vsc_posterior_mean_code_is_spike_times_mu(x):
    model = build_model(get_variant("vsc-a0.5-m32"), seed=4)
    with torch.no_grad():
        mu, _, logit = model.encoder(x[:1])
        spike = torch.exp(-torch.relu(-logit))
        assert torch.all((spike > 0) & (spike <= 1))
        assert (spike < 1).any() and (spike == 1).any()  # both sides of the relu are exercised
        rec = model.reconstruct(x[0])
        torch.testing.assert_close(rec.code, spike * mu)
        torch.testing.assert_close(model(x[:1], sample=False).code, spike * mu)
        torch.testing.assert_close(rec.variance, model.decoder(spike * mu).exp())


def test_vsc_sharpness_starts_at_50_and_grows_by_0_001_per_epoch():
    cfgs = [get_variant(n) for n in ("vsc-a0.05-m32", "vsc-a0.9-m32")]
    model = build_stack(cfgs, [0, 1])
    assert SHARPNESS_START == 50.0 and SHARPNESS_STEP == 0.001
    assert torch.all(model.sharpness == 50.0) and model.sharpness.shape == (2, 1, 1)
    model.on_epoch_end()
    torch.testing.assert_close(model.sharpness, torch.full((2, 1, 1), 50.001), rtol=0, atol=1e-6)
    for _ in range(9999):
        model.on_epoch_end()
    # after 10,000 epochs: 60, to float32 resolution (no rounding drift accumulated on the way)
    torch.testing.assert_close(model.sharpness, torch.full((2, 1, 1), 60.0), rtol=0, atol=1e-5)
    # the schedule travels with the weights
    restored = build_model(cfgs[1], 1)
    restored.load_state_dict(model.member_state(1))
    assert float(restored.sharpness) == pytest.approx(60.0, abs=1e-5)


def test_vsc_sharpness_shapes_the_sampled_selection(x):
    """A huge sharpness makes the relaxed selection a hard 0/1 gate: z is 0 or the slab draw."""
    model = build_model(get_variant("vsc-a0.5-m32"), seed=5)
    model.sharpness.fill_(1e6)
    with torch.no_grad():
        z = model(x[:1]).code
    assert (z == 0).any() and (z != 0).any()


# stacks ----------------------------------------------------------------------------------------

STACKS = {
    "vae": (["vae-m32", "vae-m32", "vae-m32"], [0, 7, 11]),
    "vsc-alphas": (["vsc-a0.05-m64", "vsc-a0.5-m64", "vsc-a0.9-m64"], [3, 3, 5]),
    "sdm-dictionaries": (["sdm-I-m64", "sdm-dct-k64-m64", "sdm-I-m64"], [0, 1, 2]),
}


def _members(key: str) -> tuple[list[ModelConfig], list[int]]:
    names, seeds = STACKS[key]
    return [get_variant(n) for n in names], seeds


def _assert_outputs_close(stacked, alone, i: int) -> None:
    for field in ("loss", "recon", "kl"):
        torch.testing.assert_close(
            getattr(stacked, field)[i : i + 1], getattr(alone, field), rtol=1e-5, atol=1e-4
        )
    torch.testing.assert_close(stacked.code[i : i + 1], alone.code, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("key", list(STACKS))
def test_a_member_in_a_stack_equals_the_same_member_built_alone(key, x):
    configs, seeds = _members(key)
    stack = build_stack(configs, seeds)
    singles = [build_model(c, s) for c, s in zip(configs, seeds, strict=True)]
    for i, single in enumerate(singles):
        for (name, p), (_, q) in zip(
            stack.state_dict().items(), single.state_dict().items(), strict=True
        ):
            assert torch.equal(p[i : i + 1], q), name  # same start, whatever the stack
    # posterior mean, then two sampled passes: each member's noise stream continues on its own
    for sample in (False, True, True):
        out = stack(x, sample=sample)
        for i, single in enumerate(singles):
            _assert_outputs_close(out, single(x[i : i + 1], sample=sample), i)
    # a few Adam steps, every member with its own batch, and then a VSC-style epoch end
    opt = torch.optim.Adam(stack.parameters(), lr=1e-3)
    opts = [torch.optim.Adam(s.parameters(), lr=1e-3) for s in singles]
    for _ in range(3):
        opt.zero_grad()
        stack(x).loss.sum().backward()
        opt.step()
        for i, (single, o) in enumerate(zip(singles, opts, strict=True)):
            o.zero_grad()
            single(x[i : i + 1]).loss.sum().backward()
            o.step()
    stack.on_epoch_end()
    for single in singles:
        single.on_epoch_end()
    for i, single in enumerate(singles):
        for name, v in single.state_dict().items():
            torch.testing.assert_close(stack.member_state(i)[name], v, rtol=1e-4, atol=1e-5)
        _assert_outputs_close(stack(x, sample=False), single(x[i : i + 1], sample=False), i)
        torch.testing.assert_close(
            stack.reconstruct(x[0]).variance[i : i + 1],
            single.reconstruct(x[0]).variance,
            rtol=1e-4,
            atol=1e-6,
        )


def _trained_stack(key: str, x: torch.Tensor):
    configs, seeds = _members(key)
    stack = build_stack(configs, seeds)
    opt = torch.optim.Adam(stack.parameters(), lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        stack(x).loss.sum().backward()
        opt.step()
        stack.on_epoch_end()
    return stack, configs, seeds


def test_select_keeps_the_chosen_members_weights(x):
    stack, configs, seeds = _trained_stack("vsc-alphas", x)
    sub = stack.select([2, 0])
    assert sub.names == [configs[2].name, configs[0].name] and sub.seeds == [seeds[2], seeds[0]]
    for j, i in enumerate((2, 0)):
        for name, v in sub.member_state(j).items():
            assert torch.equal(v, stack.member_state(i)[name]), name
    torch.testing.assert_close(sub.alpha.flatten(), torch.tensor([0.9, 0.05]))
    with torch.no_grad():
        full, part = stack(x, sample=False), sub(x[[2, 0]], sample=False)
        torch.testing.assert_close(part.loss, full.loss[[2, 0]], rtol=1e-5, atol=1e-4)
        # copies: changing the selection leaves the original alone
        sub.decoder.out.bias.add_(1.0)
        assert torch.equal(stack(x, sample=False).loss, full.loss)


@pytest.mark.parametrize("key", list(STACKS))
def test_member_state_round_trips_through_build_model(key, x):
    stack, configs, seeds = _trained_stack(key, x)
    states = [stack.member_state(i) for i in range(stack.size)]
    with torch.no_grad():
        out = stack(x, sample=False)
        for i, (cfg, seed) in enumerate(zip(configs, seeds, strict=True)):
            single = build_model(cfg, seed)
            single.load_state_dict(states[i])  # strict: same keys, same shapes
            _assert_outputs_close(out, single(x[i : i + 1], sample=False), i)
        # member_state is a copy: later changes to the stack do not reach it
        before = [{k: v.clone() for k, v in st.items()} for st in states]
        for p in stack.parameters():
            p.add_(0.5)
        for st, old in zip(states, before, strict=True):
            assert all(torch.equal(st[k], old[k]) for k in st)


def test_seeds_decide_the_start_and_the_noise():
    cfg = get_variant("sdm-dct-k32-m32")
    a, b, c = build_model(cfg, 0), build_model(cfg, 0), build_model(cfg, 1)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.encoder.hidden.weight, c.encoder.hidden.weight)
    frames = torch.rand(1, 8, 513)
    torch.testing.assert_close(a(frames).code, b(frames).code)
    a2 = build_model(cfg, 0)
    a2.load_state_dict(c.state_dict())  # same weights, other noise stream than c
    assert not torch.equal(a2(frames).code, c(frames).code)


def test_noise_streams_continue_across_device_spellings():
    model = build_model(get_variant("vae-m32"), seed=0)
    gens = model.noise_generators(torch.device("cpu"))
    assert model.noise_generators("cpu") is gens
    first = torch.randn(4, generator=gens[0])
    assert not torch.equal(torch.randn(4, generator=model.noise_generators("cpu")[0]), first)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_noise_streams_are_not_restarted_by_asking_for_cuda_without_an_index():
    model = build_model(get_variant("vae-m32"), seed=0).to("cuda")
    frames = torch.rand(1, 8, 513, device="cuda")
    z1 = model(frames).code
    model.noise_generators(torch.device("cuda"))  # what the trainer passes when checkpointing
    z2 = model(frames).code
    assert not torch.equal(z1, z2)
    assert model.noise_generators("cuda") is model.noise_generators(torch.device("cuda:0"))


def test_stacks_need_one_family_and_shape_and_a_seed_per_member():
    with pytest.raises(ValueError, match="share family and shape"):
        build_stack([get_variant("sdm-I-m64"), get_variant("sdm-dct-k32-m64")], [0, 0])
    with pytest.raises(ValueError, match="share family and shape"):
        VSC([get_variant("vae-m32")], [0])
    with pytest.raises(ValueError, match="one seed per member"):
        build_stack([get_variant("vae-m32")], [0, 1])
    groups = group_members([(get_variant(n), 0) for n in VARIANTS])
    # m = 32: vae | vsc x3 | sdm-I + dct-k32 (k = m) | dct-k64; m = 64: vae | vsc x3 | dct-k32 |
    # sdm-I + dct-k64
    assert [[c.name for c, _ in g] for g in groups] == [
        ["vae-m32"],
        ["vsc-a0.05-m32", "vsc-a0.5-m32", "vsc-a0.9-m32"],
        ["sdm-I-m32", "sdm-dct-k32-m32"],
        ["sdm-dct-k64-m32"],
        ["vae-m64"],
        ["vsc-a0.05-m64", "vsc-a0.5-m64", "vsc-a0.9-m64"],
        ["sdm-I-m64", "sdm-dct-k64-m64"],
        ["sdm-dct-k32-m64"],
    ]
