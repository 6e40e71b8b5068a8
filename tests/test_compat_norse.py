"""spikekit.compat.norse against the installed norse (issue 13, item 1).

Each compat cell is built from norse's own parameter tuple and run next to norse's cell in
norse's call form ``z, s = cell(x, s)`` on float64 inputs that make the neurons fire: spikes
exactly equal, state close, input gradients close. ``dt * tau_inv`` are powers of two so both
sides compute the same decays.
"""

from __future__ import annotations

import random

import pytest
import torch
from test_reference_compat import TOL, _randn, _same_spikes, _spiky
from torch import Tensor

import spikekit as spk
from spikekit.compat import norse as C

norse = pytest.importorskip("norse.torch")

F64 = torch.float64
DT = 1e-3


def _t(v: float) -> Tensor:
    return torch.tensor(v, dtype=F64)


def _run(cell, xs: Tensor) -> tuple[Tensor, list]:
    s, zs, states = None, [], []
    for x in xs:
        z, s = cell(x, s)
        zs.append(z)
        states.append(s)
    return torch.stack(zs), states


def _field(states: list, name: str) -> Tensor:
    return torch.stack([getattr(s, name) for s in states])


def _loss(z: Tensor, v: Tensor, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return (z * torch.randn(z.shape, generator=g).double()).sum() + (
        v * torch.randn(v.shape, generator=g).double()
    ).sum()


def _grid(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [
        {
            "tau_mem_inv": rng.choice([125.0, 250.0]),
            "tau_syn_inv": rng.choice([250.0, 500.0]),
            "v_leak": rng.choice([0.0, -0.25]),
            "v_th": rng.choice([0.75, 1.0]),
            "v_reset": rng.choice([0.0, -0.5]),
            "method": ["super", "triangle"][k % 2],
            "alpha": rng.choice([0.5, 2.0]),
        }
        for k in range(n)
    ]


def _check(ours, ref, xs, fields, seed, spiking=True):
    z_r, s_r = _run(ref, xs)
    z_o, s_o = _run(ours, xs)
    if spiking:
        _spiky(z_o)
        _same_spikes(z_o, z_r)
    else:
        torch.testing.assert_close(z_o, z_r, **TOL)
    for our_f, ref_f in fields:
        torch.testing.assert_close(_field(s_o, our_f), _field(s_r, ref_f), **TOL)
    (g_o,) = torch.autograd.grad(_loss(z_o, _field(s_o, "v"), seed), xs)
    (g_r,) = torch.autograd.grad(_loss(z_r, _field(s_r, "v"), seed), xs)
    torch.testing.assert_close(g_o, g_r, **TOL)
    return z_o


@pytest.mark.parametrize("cfg", _grid(4, 0))
def test_lif_box_cell(cfg):
    kw = {k: (_t(v) if k != "method" else v) for k, v in cfg.items() if k != "tau_syn_inv"}
    ref = norse.LIFBoxCell(norse.LIFBoxParameters(**kw), dt=DT)
    ours = C.LIFBoxCell(C.LIFBoxParameters(**{k: v for k, v in cfg.items() if k != "tau_syn_inv"}), dt=DT)
    xs = _randn((30, 3, 5), seed=40, scale=4.0, shift=3.0).requires_grad_()
    _check(ours, ref, xs, [("v", "v")], 40)


@pytest.mark.parametrize("cfg", _grid(4, 1))
def test_lif_cell(cfg):
    ref = norse.LIFCell(
        norse.LIFParameters(**{k: (_t(v) if k != "method" else v) for k, v in cfg.items()}), dt=DT
    )
    ours = C.LIFCell(C.LIFParameters(**cfg), dt=DT)
    xs = _randn((30, 3, 5), seed=41, scale=2.0, shift=0.7).requires_grad_()
    _check(ours, ref, xs, [("v", "v"), ("i", "i")], 41)


def test_lif_cell_accepts_norse_parameters():
    p = norse.LIFParameters(tau_mem_inv=_t(125.0), tau_syn_inv=_t(250.0), v_th=_t(0.75))
    ref, ours = norse.LIFCell(p, dt=DT), C.LIFCell(p, dt=DT)
    xs = _randn((20, 3, 5), seed=42, scale=2.0, shift=0.7).requires_grad_()
    _check(ours, ref, xs, [("v", "v"), ("i", "i")], 42)


@pytest.mark.parametrize("cfg", _grid(3, 2))
def test_li_cell(cfg):
    kw = {k: cfg[k] for k in ("tau_syn_inv", "tau_mem_inv", "v_leak")}
    ref = norse.LICell(norse.LIParameters(**{k: _t(v) for k, v in kw.items()}), dt=DT)
    ours = C.LICell(C.LIParameters(**kw), dt=DT)
    xs = _randn((20, 3, 5), seed=43).requires_grad_()
    _check(ours, ref, xs, [("v", "v"), ("i", "i")], 43, spiking=False)


@pytest.mark.parametrize("cfg", _grid(3, 3))
def test_iaf_cell(cfg):
    kw = {k: cfg[k] for k in ("v_th", "v_reset", "method", "alpha")}
    ref = norse.IAFCell(norse.IAFParameters(**{k: (_t(v) if k != "method" else v) for k, v in kw.items()}))
    ours = C.IAFCell(C.IAFParameters(**kw))
    xs = _randn((15, 3, 5), seed=44, scale=0.6, shift=0.2).requires_grad_()
    _check(ours, ref, xs, [("v", "v")], 44)


@pytest.mark.parametrize(("v_leak", "v_reset"), [(0.0, 0.0), (-0.25, -0.5)])
def test_lif_adex_cell(v_leak, v_reset):
    kw = dict(
        adaptation_current=0.5,
        adaptation_spike=0.25,
        delta_T=0.5,
        tau_ada_inv=62.5,
        tau_syn_inv=250.0,
        tau_mem_inv=125.0,
        v_leak=v_leak,
        v_th=1.0,
        v_reset=v_reset,
    )
    ref = norse.LIFAdExCell(
        norse.LIFAdExParameters(**{k: _t(v) for k, v in kw.items()}, method="super"), dt=DT
    )
    with torch.device("cpu"):
        torch.set_default_dtype(F64)  # AdEx's exponential: build its parameters in float64
        try:
            ours = C.LIFAdExCell(C.LIFAdExParameters(**kw), dt=DT)
        finally:
            torch.set_default_dtype(torch.float32)
    xs = _randn((30, 3, 5), seed=45, scale=2.0, shift=0.8).requires_grad_()
    _check(ours, ref, xs, [("v", "v"), ("i", "i"), ("w", "a")], 45)


def test_fused_kernel():
    ours = C.LIFCell(C.LIFParameters(tau_mem_inv=125.0, tau_syn_inv=250.0), dt=DT)
    xs = _randn((20, 3, 5), seed=46, scale=2.0, shift=0.7)
    state = ours.initial_state(xs[0])
    params = ours._cast(ours.params(), xs)
    assert spk.kernels.explain(type(ours).step_fn, xs, state, params, ours.options).startswith("numba")
    z_seq, s = ours.scan(xs)
    z_ref, states = spk.kernels.scan_trace(type(ours).step_fn, xs, state, params, ours.options)
    z_one, _ = _run(ours, xs)
    _spiky(z_seq)
    _same_spikes(z_seq, z_ref)
    _same_spikes(z_seq, z_one)
    torch.testing.assert_close(s.v, states.v[-1], **TOL)


def test_unsupported_method_raises():
    with pytest.raises(NotImplementedError, match="'super' or 'triangle'"):
        C.LIFCell(C.LIFParameters(method="adjoint"))


@pytest.mark.parametrize("autapses", [False, True])
@pytest.mark.parametrize("cfg", _grid(2, 5))
def test_lif_recurrent_cell(cfg, autapses):
    torch.manual_seed(7)
    ref = norse.LIFRecurrentCell(
        4,
        6,
        p=norse.LIFParameters(**{k: (_t(v) if k != "method" else v) for k, v in cfg.items()}),
        autapses=autapses,
        dt=DT,
    ).double()
    torch.manual_seed(7)  # norse's draw order and scale: the same seed gives the same weights
    ours = C.LIFRecurrentCell(4, 6, p=C.LIFParameters(**cfg), autapses=autapses, dt=DT).double()
    torch.testing.assert_close(ours.input_weights, ref.input_weights)
    torch.testing.assert_close(ours.recurrent_weights, ref.recurrent_weights)
    assert autapses or bool(ours.recurrent_weights.diagonal().eq(0).all())
    xs = _randn((30, 3, 4), seed=47, scale=3.0, shift=1.0).requires_grad_()
    z_o = _check(ours, ref, xs, [("z", "z"), ("v", "v"), ("i", "i")], 47)
    # the weights' gradients too (norse masks the diagonal's gradient with a hook; ours by a mask)
    ws_o = [ours.input_weights, ours.recurrent.weight]
    ws_r = [ref.input_weights, ref.recurrent_weights]
    g_o = torch.autograd.grad(_loss(*_zv(ours, xs), 48), ws_o)
    g_r = torch.autograd.grad(_loss(*_zv(ref, xs), 48), ws_r)
    for a, b in zip(g_o, g_r, strict=True):
        torch.testing.assert_close(a, b, **TOL)
    assert autapses or bool(g_o[1].diagonal().eq(0).all())
    # the whole-sequence scan is the same loop
    z_seq, s = ours.scan(xs.detach())
    _same_spikes(z_seq, z_o)
    assert torch.equal(s.z, z_seq[-1])


def _zv(cell, xs: Tensor) -> tuple[Tensor, Tensor]:
    z, states = _run(cell, xs)
    return z, _field(states, "v")
