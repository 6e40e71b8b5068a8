"""``spikekit.compat.snetx`` against the installed snetx (0.1.3), in float64.

``LIF`` on a small grid of parameter sets drawn from a fixed seed (``tau``, threshold, reset,
``detach``, alpha) next to snetx's ``LIF`` on the same batch-first input ``[B, T, F]``: spikes
equal exactly and input gradients close (snetx exposes no membrane trace; ours is checked
against the native neuron it is built as). ``TETLoss`` against snetx's formula.
"""

from __future__ import annotations

import random

import pytest
import torch
from test_reference_compat import TOL, _autograd_grad, _grads, _grid, _loss, _randn, _same_spikes, _spiky
from torch import nn

import spikekit as spk
from spikekit import kernels
from spikekit import surrogate as S
from spikekit.compat import snetx as cx


@pytest.fixture(scope="module")
def snetx():
    pytest.importorskip("snetx")
    import snetx.snn.algorithm
    import snetx.snn.neuron

    return snetx.snn


def _draw(seed: int, n: int) -> list[dict]:
    rng = random.Random(seed)
    return [
        {
            "tau": rng.choice((1.0, 1.6, 2.0, 4.0)),
            "v_th": rng.choice((0.75, 1.0)),
            "v_reset": rng.choice((0.0, -0.25, 0.25)),
            "detach": rng.choice((False, True)),
            "alpha": rng.choice((2.0, 4.0, 5.0)),
        }
        for _ in range(n)
    ]


@pytest.mark.parametrize("cfg", _draw(31, 5), ids=lambda c: "-".join(map(str, c.values())))
def test_lif(snetx, cfg):
    """snetx's ``tau`` divides the membrane (our ``beta = 1/tau``); input and output batch-first."""
    alpha = cfg.pop("alpha")
    ref = snetx.neuron.LIF(**cfg, sg=snetx.algorithm.arc_tan, alpha=lambda: alpha)
    ours = cx.LIF(**cfg, sg=cx.arc_tan, alpha=lambda: alpha)
    assert ours.beta.item() == pytest.approx(1 / cfg["tau"])
    th = cfg["v_th"]
    # the membrane settles at x / (1 - 1/tau): scale the input so that it crosses v_th
    gain = 1 - 1 / cfg["tau"] if cfg["tau"] > 1 else 1.0
    xs = _randn(
        (3, 12, 5), seed=32, scale=0.8 * th * max(gain, 0.4), shift=0.9 * th * max(gain, 0.4)
    ).requires_grad_()
    r = ref(xs)
    o = ours(xs)
    _spiky(o)
    _same_spikes(o, r)
    (g_r,) = _grads(_loss(r, None, 32), [xs])
    (g_o,) = _grads(_loss(o, None, 32), [xs])
    assert bool(g_o.abs().sum() > 0)
    torch.testing.assert_close(g_o, g_r, **TOL)
    # the compat neuron is the native one, time-first inside
    native = spk.LIF(
        beta=1 / cfg["tau"],
        v_th=th,
        v_reset=cfg["v_reset"],
        v_leak=0.0,
        decay_input=False,
        detach_reset=cfg["detach"],
        surrogate=S.ATan(alpha),
    )
    torch.testing.assert_close(native(xs.transpose(0, 1)).transpose(0, 1), o, rtol=0, atol=0)


def test_defaults_and_tau_trap(snetx):
    """snetx's ``LIF(tau=4)`` decays by 1/4 per step; ``spk.LIF(tau=4)`` by 3/4."""
    ours, ref = cx.LIF(), snetx.neuron.LIF()
    assert ours.options.surrogate == S.ATan(alpha=4.0) and ref.alpha() == 4.0
    assert ours.batch_first and not ours.options.decay_input
    assert cx.LIF(tau=4.0).beta.item() == pytest.approx(0.25)
    assert spk.LIF(tau=4.0).beta.item() == pytest.approx(0.75)
    xs = torch.full((1, 3, 1), 0.7, dtype=torch.float64)
    _same_spikes(cx.LIF(tau=4.0)(xs), snetx.neuron.LIF(tau=4.0)(xs))


def test_arc_tan_gradient(snetx):
    x = _grid()
    for alpha in (2.0, 4.0):
        ours = cx.arc_tan(alpha)
        ref = lambda t, a=alpha: snetx.algorithm.arc_tan.apply(t, a)  # noqa: E731
        _same_spikes(S.spike(x, ours), ref(x))
        torch.testing.assert_close(
            _autograd_grad(lambda t, s=ours: S.spike(t, s), x), _autograd_grad(ref, x), **TOL
        )


@pytest.mark.parametrize("lamb", [1e-3, 0.3])
@pytest.mark.parametrize("criterion", ["ce", "mse", "ce_sum"])
def test_tet_loss(snetx, criterion, lamb):
    """snetx's TETLoss, value and gradient; it is not ``spikekit.losses.tet_loss``."""
    g = torch.Generator().manual_seed(33)
    out = torch.randn(4, 6, 3, generator=g, dtype=torch.float64, requires_grad=True)  # [B, T, C]
    if criterion == "mse":
        crit, y = nn.MSELoss(), torch.rand(4, 3, generator=g, dtype=torch.float64)
    else:
        crit, y = (
            nn.CrossEntropyLoss(reduction="sum" if criterion == "ce_sum" else "mean"),
            torch.tensor([0, 2, 1, 2]),
        )
    r = snetx.algorithm.TETLoss(crit, y, out, lamb=lamb)
    o = cx.TETLoss(crit, y, out, lamb=lamb)
    torch.testing.assert_close(o, r, **TOL)
    torch.testing.assert_close(_grads(o, [out])[0], _grads(r, [out])[0], **TOL)
    torch.testing.assert_close(cx.TET(crit, lamb)(y, out), r, **TOL)
    if criterion == "ce" and lamb > 0.1:  # with a tiny lamb both are near the mean per-step CE
        ours_tet = spk.losses.tet_loss(lamb=lamb, batch_first=True)(out, y)
        assert abs(float(ours_tet.detach()) - float(r.detach())) > 1e-3  # same name, another formula


def test_unsupported_arguments_raise_helpfully(snetx):
    ea = snetx.algorithm.EvolvedAlpha
    with pytest.raises(TypeError, match="AlphaSchedule"):
        cx.LIF(alpha=ea(4.0))
    with pytest.raises(TypeError, match="formula"):
        cx.LIF(sg=snetx.algorithm.arc_tan)
    with pytest.raises(ValueError, match="tau must be"):
        cx.LIF(tau=0.5)
    assert cx.LIF(sg=S.Sigmoid, alpha=2.0).options.surrogate == S.Sigmoid(alpha=2.0)


def test_runs_the_fused_kernel():
    pytest.importorskip("numba")
    ours = cx.LIF(tau=2.0, detach=True)
    xs = _randn((3, 12, 5), seed=34, scale=0.5, shift=0.45)
    ts = xs.transpose(0, 1)
    state = ours.initial_state(ts[0])
    params = ours._cast(ours.params(), ts)
    assert kernels.explain(type(ours).step_fn, ts, state, params, ours.options).startswith("numba")
    fused = ours(xs)
    with kernels.use("reference"):
        ref = ours(xs)
    _spiky(fused)
    torch.testing.assert_close(fused, ref, rtol=0, atol=0)
