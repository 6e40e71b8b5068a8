"""``spikekit.compat.eve`` against the installed eve-mli (0.1.0), in float64.

Each neuron runs on a small grid of parameter sets drawn from a fixed seed (hard/soft reset,
``time_dependent``, ``binary``, surrogate and its alpha, ``tau``) next to the same eve node
stepped through time on the same input: outputs equal exactly (spikes) or close (graded), the
membrane trace and the input gradient close. Our side goes through ``_ours`` of
``test_reference_compat`` (which also checks the fused call against the reference scan).
"""

from __future__ import annotations

import random

import pytest
import torch
from test_reference_compat import (
    TOL,
    C,
    _autograd_grad,
    _eve_node,
    _eve_run,
    _grads,
    _grid,
    _loss,
    _ours,
    _randn,
    _same_spikes,
    _spiky,
)
from torch import nn

import spikekit as spk
from spikekit import kernels
from spikekit import surrogate as S
from spikekit.compat import eve as ce


@pytest.fixture(scope="module")
def eve():
    pytest.importorskip("eve")
    import eve.core
    import eve.core.surrogate_fn

    return eve.core


_SG = {
    "Sigmoid": (0.5, 1.0, 2.0),
    "ATan": (1.0, 2.0, 3.0),
    "SoftSign": (1.0, 2.0),
    "NonzeroSignLogAbs": (0.5, 1.0),
    "PiecewiseQuadratic": (0.5, 1.0),
}


def _draw(seed: int, n: int, kind: str) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        name = rng.choice(list(_SG))
        cfg = {
            "voltage_threshold": rng.choice((0.75, 1.0)),
            "voltage_reset": rng.choice((0.0, -0.25, None)),
            "time_dependent": rng.choice((True, False)),
            "binary": rng.random() < 0.75,
            "surrogate_fn": name,
            # None: eve's own default alpha for that surrogate
            "alpha": rng.choice((None, *_SG[name])),
        }
        if kind == "LIF":
            cfg["tau"] = rng.choice((1.0, 2.0, 3.0))
        out.append(cfg)
    return out


_GRID = [("IF", c) for c in _draw(21, 5, "IF")] + [("LIF", c) for c in _draw(22, 5, "LIF")]


@pytest.mark.parametrize(
    ("kind", "cfg"), _GRID, ids=lambda v: "-".join(map(str, v.values())) if isinstance(v, dict) else v
)
def test_nodes(eve, kind, cfg):
    cfg = {k: v for k, v in cfg.items() if v is not None or k == "voltage_reset"}
    ref = _eve_node(eve, eve.IFNode if kind == "IF" else eve.LIFNode, **cfg)
    ours = (ce.IFNode if kind == "IF" else ce.LIFNode)(**cfg)
    th = cfg["voltage_threshold"]
    scale, shift = (0.6 * th, 0.25 * th) if kind == "IF" else (1.2 * th, 0.7 * th)
    xs = _randn((10, 3, 2, C), seed=23, scale=scale, shift=shift).requires_grad_()
    r_out, r_v = _eve_run(ref, xs)
    o_out, trace = _ours(ours, xs)
    if cfg["binary"]:
        _spiky(o_out)
        _same_spikes(o_out, r_out)
    else:
        _spiky(o_out >= 0)
        torch.testing.assert_close(o_out, r_out, **TOL)
    torch.testing.assert_close(trace.v, r_v, **TOL)
    (g_r,) = _grads(_loss(r_out, r_v, 23), [xs])
    (g_o,) = _grads(_loss(o_out, trace.v, 23), [xs])
    assert bool(g_o.abs().sum() > 0)
    torch.testing.assert_close(g_o, g_r, **TOL)


@pytest.mark.parametrize("kind", ["IF", "LIF"])
def test_learnable_neuron_wise(eve, kind):
    """``state=`` the layer before gives eve's per-neuron parameters; a non-zero reset starts
    at 0 as eve (no explicit state needed); gradients of the threshold and reset agree (the
    LIF's reset gradient is the sum over our ``v_reset`` and ``v_leak``)."""
    kw = {
        "voltage_threshold": 0.75,
        "voltage_reset": -0.25,
        "learnable_threshold": True,
        "learnable_reset": True,
        "surrogate_fn": "ATan",
    }
    kw.update({"tau": 2.0} if kind == "LIF" else {})
    ref = _eve_node(eve, eve.IFNode if kind == "IF" else eve.LIFNode, **kw)
    ours = (ce.IFNode if kind == "IF" else ce.LIFNode)(nn.Linear(4, C), **kw).double()
    assert ours.shape == (C,)
    xs = _randn((10, 3, 2, C), seed=24, scale=0.6 if kind == "IF" else 1.2, shift=0.2).requires_grad_()
    r_out, r_v = _eve_run(ref, xs)
    o_out, trace = _ours(ours, xs)
    _spiky(o_out)
    _same_spikes(o_out, r_out)
    torch.testing.assert_close(trace.v, r_v, **TOL)
    resets = [ours.v_reset] + ([ours.v_leak] if kind == "LIF" else [])
    g_r = _grads(_loss(r_out, r_v, 24), [xs, ref.voltage_threshold, ref.voltage_reset])
    g_o = _grads(_loss(o_out, trace.v, 24), [xs, ours.v_th, *resets])
    torch.testing.assert_close(g_o[0], g_r[0], **TOL)
    torch.testing.assert_close(g_o[1], g_r[1].reshape(-1), **TOL)
    torch.testing.assert_close(sum(g_o[2:]), g_r[2].reshape(-1), **TOL)
    assert bool((g_r[1] != 0).all())


def test_state_shapes():
    assert ce.IFNode(nn.Conv2d(2, 7, 3), learnable_threshold=True).shape == (7, 1, 1)
    assert ce.IFNode(5, learnable_threshold=True).shape == (5,)
    assert ce.IFNode(nn.Linear(3, 4), neuron_wise=False, learnable_threshold=True).shape is None


@pytest.mark.parametrize("name", list(_SG))
def test_surrogates(eve, name):
    """Default alpha and one other: spike and gradient equal eve's (eve's own default alphas)."""
    for kw in ({}, {"alpha": _SG[name][0]}):
        ref = getattr(eve.surrogate_fn, name)(**kw).double()
        ref.spike()
        ref.train()
        ours = getattr(ce.surrogate_fn, name)(**kw)
        x = _grid((0.5, -0.5, 1.0, -1.0, 2.0, -2.0))
        _same_spikes(S.spike(x, ours), ref(x))
        torch.testing.assert_close(
            _autograd_grad(lambda t, s=ours: S.spike(t, s), x), _autograd_grad(ref, x), **TOL
        )


def test_default_sigmoid_alpha_is_eves_one(eve):
    """The trap: ``surrogate="sigmoid"`` is alpha 4 natively; eve's default is 1."""
    assert ce.IFNode().options.surrogate == S.Sigmoid(alpha=1.0)
    assert ce.LIFNode(alpha=3.0).options.surrogate == S.Sigmoid(alpha=3.0)
    assert float(eve.surrogate_fn.Sigmoid().alpha) == 1.0
    assert spk.IF(surrogate="sigmoid").options.surrogate.alpha == 4.0
    assert ce.LIFNode().beta.item() == 0.0  # eve's default tau=1: no memory


def test_unsupported_arguments_raise_helpfully():
    with pytest.raises(NotImplementedError, match=r"spikekit\.surrogate\.Erf"):
        ce.IFNode(surrogate_fn="Erf")
    with pytest.raises(NotImplementedError, match="PiecewiseLeakyReLU"):
        ce.LIFNode(surrogate_fn="PiecewiseLeakyReLU", w=0.5)
    with pytest.raises(ValueError, match="unknown surrogate_fn"):
        ce.IFNode(surrogate_fn="Tanh")
    with pytest.raises(ValueError, match="neuron count"):
        ce.IFNode(learnable_threshold=True)
    with pytest.raises(ValueError, match="hard reset"):
        ce.IFNode(voltage_reset=None, learnable_reset=True, neuron_wise=False)
    with pytest.raises(TypeError, match="formula"):
        ce.IFNode(surrogate_fn=torch.autograd.Function)


def test_runs_the_fused_kernel():
    pytest.importorskip("numba")
    ours = ce.LIFNode(tau=2.0, voltage_reset=None, surrogate_fn="ATan")
    xs = _randn((10, 3, 4), seed=25, scale=1.2, shift=0.7)
    state = ours.initial_state(xs[0])
    params = ours._cast(ours.params(), xs)
    assert kernels.explain(type(ours).step_fn, xs, state, params, ours.options).startswith("numba")
    fused = ours(xs)
    with kernels.use("reference"):
        ref = ours(xs)
    _spiky(fused)
    torch.testing.assert_close(fused, ref, rtol=0, atol=0)
