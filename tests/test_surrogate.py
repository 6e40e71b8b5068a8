"""Surrogates: grad == d primitive/dx, value-object behaviour, lookup, schedule."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest
import torch

import spikekit as spk
from spikekit import surrogate as S

ALL = [getattr(S, n)() for n in S.names()] + [S.ATan(alpha=5.0), S.PiecewiseLeakyReLU(alpha=2.0, c=0.1)]
ids = [repr(s) for s in ALL]


def _grid(s: S.Surrogate) -> torch.Tensor:
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    # keep away from the kinks of piecewise surrogates, where the derivative is one-sided
    kinks = {
        "PiecewiseQuadratic": [1 / s.alpha, -1 / s.alpha],
        "PiecewiseLeakyReLU": [1 / s.alpha, -1 / s.alpha],
        "Triangle": [1.0, -1.0, 0.0],
        "Boxcar": [0.5 / s.alpha, -0.5 / s.alpha],
        "NonzeroSignLogAbs": [0.0],
        "PiecewiseExp": [0.0],
        "FastSigmoid": [0.0],
        "SoftSign": [0.0],
    }.get(type(s).__name__, [])
    keep = torch.ones_like(x, dtype=torch.bool)
    for k in kinks:
        keep &= (x - k).abs() > 1e-3
    return x[keep]


@pytest.mark.parametrize("s", ALL, ids=ids)
def test_grad_is_derivative_of_primitive_autograd(s):
    x = _grid(s).requires_grad_()
    (g,) = torch.autograd.grad(s.primitive(x).sum(), x)
    torch.testing.assert_close(g, s.grad(x.detach()), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("s", ALL, ids=ids)
def test_grad_is_derivative_of_primitive_finite_differences(s):
    x = _grid(s)
    eps = 1e-6
    fd = (s.primitive(x + eps) - s.primitive(x - eps)) / (2 * eps)
    torch.testing.assert_close(fd, s.grad(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("s", ALL, ids=ids)
def test_spike_forward_is_heaviside_and_backward_is_grad(s):
    x = torch.tensor([-1.0, -1e-3, 0.0, 1e-3, 2.0], requires_grad=True)
    z = S.spike(x, s)
    assert z.tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
    w = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    (z * w).sum().backward()
    torch.testing.assert_close(x.grad, w * s.grad(x.detach()))
    # smooth mode is the primitive, with its own derivative
    torch.testing.assert_close(s(x.detach(), spiking=False), s.primitive(x.detach()))


@pytest.mark.parametrize("s", ALL, ids=ids)
def test_value_object(s):
    assert pickle.loads(pickle.dumps(s)) == s
    assert copy.deepcopy(s) == s and hash(copy.deepcopy(s)) == hash(s)
    assert {s: 1}[type(s)(**{f.name: getattr(s, f.name) for f in dataclasses.fields(s)})] == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.alpha = 3.0  # type: ignore[misc]
    assert type(s).__name__ in repr(s)


@pytest.mark.parametrize(
    "s",
    [c() for c in (S.Sigmoid, S.ATan, S.PiecewiseQuadratic, S.SoftSign, S.Erf, S.PiecewiseExp, S.Boxcar)]
    + [S.PiecewiseLeakyReLU(c=0.0)],
)
def test_step_like_surrogates_go_from_0_to_1(s):
    big = torch.tensor(1e4, dtype=torch.float64)
    assert float(s.primitive(-big)) == pytest.approx(0.0, abs=1e-3)
    assert float(s.primitive(big * 0)) == pytest.approx(0.5)
    assert float(s.primitive(big)) == pytest.approx(1.0, abs=1e-3)


def test_lookup_names_and_aliases():
    assert S.get("atan") == S.ATan()
    assert S.get("ArcTan", alpha=4.0) == S.ATan(alpha=4.0)
    assert S.get("fast_sigmoid") == S.FastSigmoid() == S.get("SuperSpike")
    assert S.get("piecewise-quadratic") == S.PiecewiseQuadratic()
    s = S.Sigmoid(alpha=2.0)
    assert S.get(s) is s and S.get(s, alpha=3.0) == S.Sigmoid(alpha=3.0)
    assert len(S.names()) == 12


def test_lookup_errors_are_clear():
    with pytest.raises(ValueError, match=r"unknown surrogate 'atn'; expected one of Sigmoid, ATan"):
        S.get("atn")
    with pytest.raises(
        TypeError, match=r"surrogate must be a spikekit\.surrogate\.Surrogate or its name, got int"
    ):
        S.get(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alpha must be finite and > 0, got -1"):
        S.ATan(alpha=-1)
    with pytest.raises(ValueError, match="unknown surrogate"):
        spk.LIF(surrogate="nope")


def test_alpha_schedule_touches_only_the_given_model():
    a = torch.nn.Sequential(spk.LIF(surrogate=S.ATan(alpha=2.0)), spk.IF(), spk.LI())
    b = torch.nn.Sequential(spk.LIF(surrogate=S.ATan(alpha=2.0)))
    sched = S.AlphaSchedule(base=4.0, epochs=4, e_max=1.0)
    assert [sched.alpha(e) for e in range(5)] == [4.0, 5.0, 6.0, 7.0, 8.0]
    assert sched.apply(a, 2) == 6.0
    assert a[0].options.surrogate == S.ATan(alpha=6.0) and a[1].options.surrogate == S.ATan(alpha=6.0)
    assert a[2].options.surrogate is None
    assert b[0].options.surrogate == S.ATan(alpha=2.0)
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        S.AlphaSchedule(base=1.0, epochs=0)


def test_set_surrogate():
    net = torch.nn.Sequential(spk.LIF(), torch.nn.Linear(2, 2), spk.IF())
    spk.set_surrogate(net, "sigmoid", alpha=10.0)
    assert all(m.options.surrogate == S.Sigmoid(alpha=10.0) for _, m in spk.neurons_of(net))
