"""Contract tests every neuron passes, driven by ``neuron_registry.CASES``."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest
import torch
from neuron_registry import CASES, NeuronCase

import spikekit as spk
from spikekit import kernels

cases = pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])


@pytest.fixture(autouse=True)
def _reference_backend():
    """The contract is the neuron's API and math, checked on the reference scan; that every
    fused kernel equals the reference is ``test_kernels.py``'s job (compiling kernels for
    every case here too doubled the suite's cold-cache time)."""
    with kernels.use("reference"):
        yield


def _xs(T=6, B=3, F=(4,), seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, *F, generator=g, dtype=dtype) * 1.5 - 0.2).to(dtype)


@cases
def test_step_scan_functional_agree_exactly(case: NeuronCase):
    n = case.make()
    xs = _xs()
    with kernels.use("reference"):
        zs_scan, s_scan = n.scan(xs)
    state, outs = None, []
    for x in xs:
        z, state = n.step(x, state)
        outs.append(z)
    zs_fn, s_fn = spk.functional.scan(type(n).step_fn, xs, n.initial_state(xs[0]), n.params(), n.options)
    torch.testing.assert_close(torch.stack(outs), zs_scan, rtol=0, atol=0)
    torch.testing.assert_close(zs_fn, zs_scan, rtol=0, atol=0)
    for a, b, c in zip(state, s_scan, s_fn, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(c, b, rtol=0, atol=0)
    # forward() is scan() without the state, and stepwise() is step() with carried state.
    torch.testing.assert_close(n(xs), n.scan(xs)[0])
    with spk.stepwise(n):
        torch.testing.assert_close(torch.stack([n(x) for x in xs]), torch.stack(outs))


@cases
def test_chunking_invariance(case: NeuronCase):
    n = case.make()
    xs = _xs(T=7)
    full, s_full = n.scan(xs)
    a, s = n.scan(xs[:3])
    b, s = n.scan(xs[3:], s)
    torch.testing.assert_close(torch.cat([a, b]), full)
    for u, v in zip(s, s_full, strict=True):
        torch.testing.assert_close(u, v)


@cases
def test_gradcheck_smooth_mode_float64(case: NeuronCase):
    n = (
        case.make(surrogate="sigmoid", learn=case.learnable)
        if case.cls is not spk.LI
        else case.make(learn=case.learnable)
    )
    n = n.double()
    # detach_reset and time_dependent=False cut true gradients on purpose; gradcheck the rest.
    n.options = dataclasses.replace(n.options, spiking=False, time_dependent=True, detach_reset=False)
    xs = _xs(T=3, B=2, F=(3,), dtype=torch.float64).requires_grad_()
    params = [p for p in n.parameters()]
    assert params, "learnable parameters should exist"

    def f(xs, *ps):
        return n.scan(xs)[0]

    with kernels.use("reference"):
        assert torch.autograd.gradcheck(f, (xs, *params), eps=1e-6, atol=1e-5)


@cases
def test_learnable_parameters_receive_gradients(case: NeuronCase):
    n = case.make(learn=case.learnable, shape=(4,))
    xs = _xs(T=8)
    out = n(xs)
    (out * torch.linspace(0.5, 1.5, out.numel()).reshape(out.shape)).sum().backward()
    names = dict(n.named_parameters())
    assert len(names) == len(case.learnable)
    # Parameters that the options leave out of the graph: v_reset without a hard reset, and the
    # decays acting only on the next step's state when the state is detached between steps.
    unused = set()
    if n.options.reset != "hard":
        unused.add("v_reset")
    if not n.options.time_dependent:
        unused |= {"beta_syn_logit", "rho_logit", "v_reset"}
    for name, p in names.items():
        if name in unused:
            assert p.grad is None or not p.grad.any(), name
            continue
        assert p.grad is not None and p.grad.shape == (4,), name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


@cases
def test_per_neuron_equals_shared(case: NeuronCase):
    shared = case.make()
    per = case.make(shape=(4,))
    xs = _xs()
    torch.testing.assert_close(per(xs), shared(xs))
    assert per.params().v_leak.shape == (4,) if hasattr(per.params(), "v_leak") else True


@cases
def test_infer_shape_equals_explicit_shape(case: NeuronCase):
    lazy = case.make(shape="infer", learn=case.learnable)
    xs = _xs(F=(2, 3))
    out = lazy(xs)
    assert lazy.shape == (2, 3)
    torch.testing.assert_close(out, case.make(shape=(2, 3), learn=case.learnable)(xs))


@cases
def test_no_state_in_state_dict(case: NeuronCase):
    n = case.make()
    keys = set(n.state_dict())
    with spk.stepwise(n):
        n(_xs()[0])
        assert set(n.state_dict()) == keys
    assert set(n.state_dict()) == keys
    # only parameters (and the neuron's plain-data description), never the membrane
    assert keys == {*n.params_type._fields, "_extra_state"}


@cases
def test_pickle_and_deepcopy(case: NeuronCase):
    n = case.make(learn=case.learnable)
    xs = _xs()
    ref = n(xs)
    for clone in (copy.deepcopy(n), pickle.loads(pickle.dumps(n))):
        torch.testing.assert_close(clone(xs), ref)
        assert clone.options == n.options
    with spk.stepwise(n):
        n(xs[0])
        clone = copy.deepcopy(n)
        assert clone._stream is None  # transient stepwise state never travels with a copy


@cases
def test_batch_independence(case: NeuronCase):
    n = case.make()
    xs = _xs(B=4)
    out = n(xs)
    xs2 = xs.clone()
    xs2[:, 1:] = torch.randn_like(xs2[:, 1:]) * 3
    torch.testing.assert_close(n(xs2)[:, 0], out[:, 0])
    # and one sample alone gives the same result
    torch.testing.assert_close(n(xs[:, :1]), out[:, :1])


@cases
def test_batch_first_is_a_transpose(case: NeuronCase):
    xs = _xs()
    torch.testing.assert_close(
        case.make(batch_first=True)(xs.transpose(0, 1)), case.make()(xs).transpose(0, 1)
    )


@cases
def test_outputs_are_spikes_or_documented_values(case: NeuronCase):
    n = case.make()
    out = n(_xs(T=10) * 2)
    if case.cls is spk.LI or not n.options.binary:
        assert out.dtype == torch.float32 and not set(out.unique().tolist()) <= {0.0, 1.0}
    else:
        assert set(out.unique().tolist()) <= {0.0, 1.0}
        assert out.sum() > 0


@cases
def test_float64_runs_in_float64(case: NeuronCase):
    n = case.make()
    out, state = n.scan(_xs(dtype=torch.float64))
    assert out.dtype == torch.float64 and all(s.dtype == torch.float64 for s in state)


def test_registry_covers_every_exported_neuron():
    assert {c.cls for c in CASES} == {spk.get_neuron(n) for n in spk.list_neurons()}
    assert {
        spk.IF,
        spk.LIF,
        spk.CubaLIF,
        spk.ALIF,
        spk.AlphaLIF,
        spk.LI,
        spk.QIF,
        spk.EIF,
        spk.Izhikevich,
        spk.AdEx,
        spk.RF,
    } == {spk.get_neuron(n) for n in spk.list_neurons()}
    assert spk.get_neuron("lif") is spk.LIF and spk.get_neuron(spk.IF) is spk.IF
    with pytest.raises(ValueError, match="unknown neuron 'lfi'; expected one of"):
        spk.get_neuron("lfi")


def test_per_channel_parameters_broadcast_over_space():
    """shape=(C, 1, 1): one threshold per conv channel (eve-mli's neuron_wise on a conv layer)."""
    v_th = torch.tensor([0.5, 1.0, 2.0]).reshape(3, 1, 1)
    n = spk.LIF(v_th=v_th, learn="v_th")
    xs = torch.rand(5, 2, 3, 4, 4) * 2
    out = n(xs)
    for c in range(3):
        torch.testing.assert_close(out[:, :, c], spk.LIF(v_th=float(v_th[c]))(xs[:, :, c]))
    out.sum().backward()
    assert n.v_th.grad.shape == (3, 1, 1)
    with pytest.raises(ValueError, match=r"must end in the neuron shape \(3, 1, 1\)"):
        n(torch.rand(5, 2, 4, 4, 4))


def test_parameters_follow_the_default_dtype():
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        n = spk.LIF(tau=0.01, dt=1e-3)
        assert n.params().beta.dtype == torch.float64 and n.params().beta.item() == 1 - 1e-3 / 0.01
    finally:
        torch.set_default_dtype(prev)
