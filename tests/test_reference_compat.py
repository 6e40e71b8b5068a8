"""Exact compatibility with the reference libraries' neuron semantics (issue 2, item 6).

Each test runs the *installed* reference library (snntorch, spikingjelly, norse, eve-mli,
snetx) and spikekit, configured as in ``docs/compat.md``, on the same random input, and
compares spikes (exactly), membrane trajectories and gradients (float tolerance). Inputs are
float64 wherever the reference allows it so that rounding cannot flip a spike near the
threshold, and every comparison first checks that the data exercises the interesting part
(some neurons spike, some do not), so a neuron that never fires cannot pass by accident.

Tests skip cleanly when a reference is missing; CI installs them all (``spikekit[peers]``).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

import spikekit as spk
from spikekit import surrogate as S
from spikekit.neurons.if_ import IFState
from spikekit.neurons.lif import LIFState

F64 = torch.float64
TOL = {"rtol": 1e-9, "atol": 1e-10}  # float64 vs float64, different operation order
TOL32 = {"rtol": 2e-5, "atol": 2e-5}  # float32 runs (spikingjelly's accelerated dispatch)
# snntorch's spikes are always float32: a gradient that flows *into* a spike from later steps
# (its immediate, non-detached reset) or a product of spikes with a 0-dim parameter (which
# type promotion keeps in float32) is rounded to float32 on its side.
TOL_SNNTORCH = {"rtol": 1e-5, "atol": 1e-6}


# ----------------------------------------------------------------------------- helpers


def _randn(shape: tuple[int, ...], seed: int, scale: float = 1.0, shift: float = 0.0, dtype=F64) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=F64).mul(scale).add(shift).to(dtype)


def _spiky(z: Tensor) -> None:
    """The data must exercise both firing and not firing, else a comparison proves little."""
    rate = float(z.detach().float().mean())
    assert 0.05 < rate < 0.95, f"test data gives a firing rate of {rate:.3f}; choose another input scale"


def _same_spikes(a: Tensor, b: Tensor) -> None:
    assert a.shape == b.shape, (a.shape, b.shape)
    mism = int((a.double() != b.double()).sum())
    assert mism == 0, f"{mism} of {a.numel()} spikes differ"


def _ours(neuron: spk.Neuron, xs: Tensor, state=None) -> tuple[Tensor, object]:
    """Outputs and the recorded state trace (``[T, B, ...]`` per field, graph kept)."""
    with spk.record(neuron, detach=False) as rec:
        out, _ = neuron.scan(xs, state)
    (trace,) = rec.values()
    if state is None:
        # The default call form may run a registered fused backend: it must give the same
        # outputs and input gradients as the traced reference loop compared below.
        tol = TOL if xs.dtype == F64 else TOL32
        plain = neuron(xs)
        torch.testing.assert_close(plain, out, **tol)
        if xs.requires_grad:
            w = torch.randn(out.shape, generator=torch.Generator().manual_seed(99)).to(out.dtype)
            (g_plain,) = torch.autograd.grad((plain * w).sum(), xs)
            (g_ref,) = torch.autograd.grad((out * w).sum(), xs, retain_graph=True)
            torch.testing.assert_close(g_plain, g_ref, **tol)
    return out, trace


def _grads(loss: Tensor, inputs: list[Tensor]) -> list[Tensor]:
    return list(torch.autograd.grad(loss, inputs))


def _loss(out: Tensor, v: Tensor | None, seed: int) -> Tensor:
    """A loss that weights every output and membrane value differently (random upstream grad).

    The weights are float32 numbers, so a reference whose spikes are float32 (snntorch)
    receives exactly the same upstream gradient as our float64 spikes.
    """
    g = torch.Generator().manual_seed(seed + 1000)
    w1 = torch.randn(out.shape, generator=g).to(out.dtype)
    loss = (out * w1).sum()
    if v is not None:
        w2 = torch.randn(v.shape, generator=g).to(v.dtype)
        loss = loss + (v * w2).sum()
    return loss


def _grid(kinks: tuple[float, ...] = ()) -> Tensor:
    x = torch.linspace(-3, 3, 1201, dtype=F64)
    keep = torch.ones_like(x, dtype=torch.bool)
    for k in (0.0, *kinks):
        keep &= (x - k).abs() > 1e-3
    return x[keep]


def _autograd_grad(fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    x = x.clone().requires_grad_()
    (g,) = torch.autograd.grad(fn(x).sum(), x)
    return g


# ============================================================================= snntorch


@pytest.fixture(scope="module")
def snn():
    return pytest.importorskip("snntorch")


def _snntorch_run(leaky: nn.Module, xs: Tensor) -> tuple[Tensor, Tensor]:
    zs, mem = [], []
    for x in xs:
        s, m = leaky(x)
        zs.append(s)
        mem.append(m)
    return torch.stack(zs), torch.stack(mem)


def _snntorch_surrogates(snn):
    sg = snn.surrogate
    return {
        "default": (lambda: None, S.ATan()),  # snntorch's default is atan(alpha=2), as ours
        "atan": (lambda: sg.atan(alpha=3.0), S.ATan(alpha=3.0)),
        "fast_sigmoid": (lambda: sg.fast_sigmoid(slope=5.0), S.FastSigmoid(alpha=5.0)),
        # a power-of-two slope: snntorch multiplies its float32 upstream gradient by the slope
        # in float32 before anything else, which is exact only for powers of two
        "sigmoid": (lambda: sg.sigmoid(slope=4.0), S.Sigmoid(alpha=4.0)),
        "ste": (lambda: sg.straight_through_estimator(), S.StraightThrough()),
    }


_SNNTORCH_RESET = {"subtract": "soft", "zero": "hard", "none": "none"}


@pytest.mark.parametrize("surrogate", ["default", "atan", "fast_sigmoid", "sigmoid", "ste"])
@pytest.mark.parametrize("reset_delay", [True, False], ids=["delay", "nodelay"])
@pytest.mark.parametrize("mechanism", ["subtract", "zero", "none"])
def test_snntorch_leaky(snn, mechanism, reset_delay, surrogate):
    ref_sg, our_sg = _snntorch_surrogates(snn)[surrogate]
    beta, th = 0.75, 0.875
    xs = _randn((12, 4, 6), seed=1, scale=0.5, shift=0.2).requires_grad_()
    ref = snn.Leaky(
        beta=beta, threshold=th, reset_mechanism=mechanism, reset_delay=reset_delay, spike_grad=ref_sg()
    )
    ours = spk.LIF(
        beta=beta,
        v_th=th,
        v_reset=0.0,
        decay_input=False,
        reset=_SNNTORCH_RESET[mechanism],
        reset_delay=reset_delay,
        # snntorch detaches the delayed reset; its immediate reset keeps the spike's gradient
        detach_reset=reset_delay,
        surrogate=our_sg,
    )
    r_spk, r_mem = _snntorch_run(ref, xs)
    o_spk, trace = _ours(ours, xs)
    if mechanism != "none":
        _spiky(o_spk)
    if not reset_delay and mechanism == "subtract":
        # the equivalence needs the post-reset membrane to stay at or below threshold (see
        # test_snntorch_immediate_subtract_reset_above_threshold for what happens otherwise)
        assert bool((r_mem <= th).all())
    _same_spikes(o_spk, r_spk)
    torch.testing.assert_close(trace.v, r_mem, **TOL)
    g_ref = _grads(_loss(r_spk.double(), r_mem, 1), [xs])
    g_our = _grads(_loss(o_spk, trace.v, 1), [xs])
    torch.testing.assert_close(g_our[0], g_ref[0], **(TOL if reset_delay else TOL_SNNTORCH))


def test_snntorch_immediate_subtract_reset_above_threshold(snn):
    """Documented edge case of snntorch's ``reset_delay=False`` with reset by subtraction.

    If a spike leaves the membrane *above* threshold (``h >= 2 th``), snntorch subtracts the
    threshold again at the next step before deciding whether to fire, and undoes that
    subtraction when the neuron does not fire. So the next step fires only if
    ``beta v + x > 2 th``. spikekit (``reset_delay=False``) fires whenever
    ``beta v + x >= th``. Hand-computed with beta=0.5, th=1, x=[2.5, 0.5]:
    snntorch: h1=2.5 -> spike, v1=1.5; step 2: 0.75+0.5-1=0.25 < 1 -> no spike, v2=1.25.
    ours:     h1=2.5 -> spike, v1=1.5; step 2: h2=1.25 >= 1 -> spike, v2=0.25.
    """
    xs = torch.tensor([2.5, 0.5], dtype=F64).reshape(2, 1, 1)
    ref = snn.Leaky(beta=0.5, threshold=1.0, reset_mechanism="subtract", reset_delay=False)
    r_spk, r_mem = _snntorch_run(ref, xs)
    ours = spk.LIF(beta=0.5, v_th=1.0, decay_input=False, reset="soft")
    o_spk, trace = _ours(ours, xs)
    assert r_spk.flatten().tolist() == [1.0, 0.0]
    assert r_mem.flatten().tolist() == [1.5, 1.25]
    assert o_spk.flatten().tolist() == [1.0, 1.0]
    assert trace.v.flatten().tolist() == [1.5, 0.25]


@pytest.mark.parametrize("mechanism", ["subtract", "zero"])
@pytest.mark.parametrize("per_neuron", [False, True], ids=["shared", "per_neuron"])
def test_snntorch_learnable_beta_threshold_gradients(snn, mechanism, per_neuron):
    """dL/dx, dL/dthreshold and dL/dbeta through a whole run (snntorch clamps beta, we use
    beta = sigmoid(w), so dL/dbeta = dL/dw / (beta (1 - beta)))."""
    n = 5
    beta0 = torch.linspace(0.6, 0.9, n) if per_neuron else 0.8
    th0 = torch.linspace(0.75, 1.25, n) if per_neuron else 1.0
    ours = spk.LIF(
        beta=beta0,
        v_th=th0,
        decay_input=False,
        reset=_SNNTORCH_RESET[mechanism],
        reset_delay=True,
        detach_reset=True,
        surrogate=S.ATan(alpha=2.0),
        learn=("beta", "v_th"),
    ).double()
    p = ours.params()
    beta = p.beta.detach().clone()  # exactly what we use: sigmoid(logit) in float64
    ref = snn.Leaky(
        beta=beta.clone(),
        threshold=p.v_th.detach().clone(),
        learn_beta=True,
        learn_threshold=True,
        reset_mechanism=mechanism,
        spike_grad=snn.surrogate.atan(alpha=2.0),
    )
    xs = _randn((15, 3, n), seed=2, scale=0.6, shift=0.25).requires_grad_()
    r_spk, r_mem = _snntorch_run(ref, xs)
    o_spk, trace = _ours(ours, xs)
    _spiky(o_spk)
    _same_spikes(o_spk, r_spk)
    torch.testing.assert_close(trace.v, r_mem, **TOL)
    gx_r, gb_r, gt_r = _grads(_loss(r_spk.double(), r_mem, 2), [xs, ref.beta, ref.threshold])
    gx_o, gw_o, gt_o = _grads(_loss(o_spk, trace.v, 2), [xs, ours.beta_logit, ours.v_th])
    torch.testing.assert_close(gx_o, gx_r, **TOL)
    torch.testing.assert_close(gt_o, gt_r, **(TOL if per_neuron else TOL_SNNTORCH))
    torch.testing.assert_close(gw_o / (beta * (1 - beta)), gb_r, **TOL)
    assert bool((gb_r != 0).all()) and bool((gt_r != 0).all())


@pytest.mark.parametrize("surrogate", ["atan", "fast_sigmoid", "sigmoid", "ste"])
def test_snntorch_surrogate_gradients_on_grid(snn, surrogate):
    ref_sg, our_sg = _snntorch_surrogates(snn)[surrogate]
    x = _grid()
    ref = ref_sg()
    _same_spikes(S.spike(x, our_sg), ref(x))
    torch.testing.assert_close(_autograd_grad(lambda t: S.spike(t, our_sg), x), _autograd_grad(ref, x), **TOL)


# ============================================================================= spikingjelly


@pytest.fixture(scope="module")
def sj():
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import neuron, surrogate

    return neuron, surrogate


def _sj_surrogates(sjs) -> dict[str, tuple[Callable[..., nn.Module], S.Surrogate, tuple[float, ...]]]:
    """name -> (spikingjelly constructor taking ``spiking=``, ours, kinks of the gradient)."""
    return {
        "ATan": (lambda **k: sjs.ATan(alpha=3.0, **k), S.ATan(alpha=3.0), ()),
        "Sigmoid": (lambda **k: sjs.Sigmoid(alpha=4.0, **k), S.Sigmoid(alpha=4.0), ()),
        "PiecewiseQuadratic": (
            lambda **k: sjs.PiecewiseQuadratic(alpha=2.0, **k),
            S.PiecewiseQuadratic(alpha=2.0),
            (0.5, -0.5),
        ),
        "SoftSign": (lambda **k: sjs.SoftSign(alpha=2.0, **k), S.SoftSign(alpha=2.0), ()),
        "NonzeroSignLogAbs": (
            lambda **k: sjs.NonzeroSignLogAbs(alpha=1.5, **k),
            S.NonzeroSignLogAbs(alpha=1.5),
            (),
        ),
        "Erf": (lambda **k: sjs.Erf(alpha=2.0, **k), S.Erf(alpha=2.0), ()),
        "PiecewiseLeakyReLU": (
            lambda **k: sjs.PiecewiseLeakyReLU(w=0.5, c=0.05, **k),
            S.PiecewiseLeakyReLU(alpha=2.0, c=0.05),
            (0.5, -0.5),
        ),
        "PiecewiseExp": (lambda **k: sjs.PiecewiseExp(alpha=2.0, **k), S.PiecewiseExp(alpha=2.0), ()),
    }


_SJ_SG = [
    "ATan",
    "Sigmoid",
    "PiecewiseQuadratic",
    "SoftSign",
    "NonzeroSignLogAbs",
    "Erf",
    "PiecewiseLeakyReLU",
    "PiecewiseExp",
]


def _sj_run(node: nn.Module, xs: Tensor) -> tuple[Tensor, Tensor]:
    out = node(xs)
    return out, node.v_seq


def _sj_hard_or_soft(v_reset: float | None) -> dict:
    if v_reset is None:
        return {"reset": "soft", "v_reset": 0.0, "v_leak": 0.0}
    return {"reset": "hard", "v_reset": v_reset, "v_leak": v_reset}


@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("detach_reset", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("v_reset", [0.0, -0.25, None], ids=["hard0", "hard-0.25", "soft"])
def test_spikingjelly_ifnode(sj, v_reset, detach_reset, dtype):
    neuron, sjs = sj
    ref = neuron.IFNode(
        v_threshold=0.75,
        v_reset=v_reset,
        surrogate_function=sjs.ATan(alpha=2.0),
        detach_reset=detach_reset,
        step_mode="m",
        store_v_seq=True,
    )
    kw = _sj_hard_or_soft(v_reset)
    kw.pop("v_leak")
    ours = spk.IF(v_th=0.75, detach_reset=detach_reset, surrogate=S.ATan(alpha=2.0), **kw)
    xs = _randn((10, 4, 6), seed=3, scale=0.6, shift=0.15, dtype=dtype).requires_grad_()
    r_spk, r_v = _sj_run(ref, xs)
    o_spk, trace = _ours(ours, xs)
    _spiky(o_spk)
    _same_spikes(o_spk, r_spk)
    tol = TOL if dtype == F64 else TOL32
    torch.testing.assert_close(trace.v, r_v, **tol)
    (g_r,) = _grads(_loss(r_spk, r_v, 3), [xs])
    (g_o,) = _grads(_loss(o_spk, trace.v, 3), [xs])
    torch.testing.assert_close(g_o, g_r, **tol)


@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("detach_reset", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("decay_input", [True, False], ids=["decay_input", "no_decay_input"])
@pytest.mark.parametrize("v_reset", [0.0, -0.25, None], ids=["hard0", "hard-0.25", "soft"])
@pytest.mark.parametrize("tau", [2.0, 4.0])
def test_spikingjelly_lifnode(sj, tau, v_reset, decay_input, detach_reset, dtype):
    neuron, sjs = sj
    ref = neuron.LIFNode(
        tau=tau,
        decay_input=decay_input,
        v_threshold=0.75,
        v_reset=v_reset,
        surrogate_function=sjs.Sigmoid(alpha=4.0),
        detach_reset=detach_reset,
        step_mode="m",
        store_v_seq=True,
    )
    ours = spk.LIF(
        tau=tau,
        v_th=0.75,
        decay_input=decay_input,
        detach_reset=detach_reset,
        surrogate=S.Sigmoid(alpha=4.0),
        **_sj_hard_or_soft(v_reset),
    )
    scale = (1.5, 0.8) if decay_input else (0.5, 0.25)
    xs = _randn((10, 4, 6), seed=4, scale=scale[0], shift=scale[1], dtype=dtype).requires_grad_()
    r_spk, r_v = _sj_run(ref, xs)
    o_spk, trace = _ours(ours, xs)
    _spiky(o_spk)
    _same_spikes(o_spk, r_spk)
    tol = TOL if dtype == F64 else TOL32
    torch.testing.assert_close(trace.v, r_v, **tol)
    (g_r,) = _grads(_loss(r_spk, r_v, 4), [xs])
    (g_o,) = _grads(_loss(o_spk, trace.v, 4), [xs])
    torch.testing.assert_close(g_o, g_r, **tol)


@pytest.mark.parametrize("name", _SJ_SG)
def test_spikingjelly_surrogate_primitive_and_gradient(sj, name):
    _, sjs = sj
    make, ours, kinks = _sj_surrogates(sjs)[name]
    x = _grid(kinks)
    torch.testing.assert_close(ours.primitive(x), make(spiking=False)(x), **TOL)
    ref = make(spiking=True)
    _same_spikes(S.spike(x, ours), ref(x))
    torch.testing.assert_close(_autograd_grad(lambda t: S.spike(t, ours), x), _autograd_grad(ref, x), **TOL)


@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", _SJ_SG)
def test_spikingjelly_surrogate_through_lifnode(sj, name, dtype):
    """Every surrogate through a whole LIFNode run. In float32 spikingjelly dispatches the
    surrogates it lists in ``_ops/surrogate.py`` (all here but NonzeroSignLogAbs and
    PiecewiseLeakyReLU) to its accelerated path, which uses its own copy of the gradient
    formulas; float64 runs the Python surrogate classes."""
    neuron, sjs = sj
    make, ours_sg, _ = _sj_surrogates(sjs)[name]
    ref = neuron.LIFNode(tau=2.0, v_reset=None, surrogate_function=make(), step_mode="m", store_v_seq=True)
    ours = spk.LIF(tau=2.0, reset="soft", surrogate=ours_sg)
    xs = _randn((10, 3, 5), seed=5, scale=1.5, shift=0.8, dtype=dtype).requires_grad_()
    r_spk, r_v = _sj_run(ref, xs)
    o_spk, trace = _ours(ours, xs)
    _spiky(o_spk)
    _same_spikes(o_spk, r_spk)
    tol = TOL if dtype == F64 else TOL32
    (g_r,) = _grads(_loss(r_spk, r_v, 5), [xs])
    (g_o,) = _grads(_loss(o_spk, trace.v, 5), [xs])
    torch.testing.assert_close(g_o, g_r, **tol)


def test_spikingjelly_superspike_is_not_fast_sigmoid(sj):
    """spikingjelly's ``SuperSpike(alpha)`` backward is ``alpha / (1 + |x|)^2``: alpha scales
    the height, where snntorch ``fast_sigmoid(slope)`` and our ``FastSigmoid(alpha)`` narrow
    the width. They agree only at alpha = 1 (then also equal to norse's ``super``)."""
    _, sjs = sj
    x = _grid()
    one = S.FastSigmoid(alpha=1.0).grad(x)
    torch.testing.assert_close(_autograd_grad(sjs.SuperSpike(alpha=1.0), x), one, **TOL)
    g3 = _autograd_grad(sjs.SuperSpike(alpha=3.0), x)
    torch.testing.assert_close(g3, 3.0 * one, **TOL)
    assert not torch.allclose(g3, S.FastSigmoid(alpha=3.0).grad(x))


@pytest.mark.parametrize("decay_input", [True, False], ids=["decay_input", "no_decay_input"])
@pytest.mark.parametrize("v_reset", [0.0, None], ids=["hard", "soft"])
def test_spikingjelly_parametric_lif_learnable_tau(sj, v_reset, decay_input):
    """ParametricLIFNode learns w with 1/tau = sigmoid(w); ours learns beta = sigmoid(w') =
    1 - 1/tau, so w' = -w and dL/dw = -dL/dw'."""
    neuron, sjs = sj
    ref = neuron.ParametricLIFNode(
        init_tau=3.0,
        decay_input=decay_input,
        v_reset=v_reset,
        surrogate_function=sjs.ATan(),
        step_mode="m",
        store_v_seq=True,
    ).double()
    ours = spk.LIF(
        tau=3.0, decay_input=decay_input, surrogate=S.ATan(), learn="tau", **_sj_hard_or_soft(v_reset)
    )
    ours = ours.double()
    with torch.no_grad():
        ours.beta_logit.copy_(-ref.w)
    xs = _randn((12, 3, 5), seed=6, scale=1.2, shift=0.6 if decay_input else 0.25).requires_grad_()
    r_spk, r_v = _sj_run(ref, xs)
    o_spk, trace = _ours(ours, xs)
    _spiky(o_spk)
    _same_spikes(o_spk, r_spk)
    torch.testing.assert_close(trace.v, r_v, **TOL)
    gx_r, gw_r = _grads(_loss(r_spk, r_v, 6), [xs, ref.w])
    gx_o, gw_o = _grads(_loss(o_spk, trace.v, 6), [xs, ours.beta_logit])
    torch.testing.assert_close(gx_o, gx_r, **TOL)
    torch.testing.assert_close(-gw_o, gw_r, **TOL)
    assert float(gw_r.abs()) > 0


# ============================================================================= norse


@pytest.fixture(scope="module")
def norse():
    return pytest.importorskip("norse.torch")


# dt * tau_inv are powers of two, so both sides compute the same decays exactly
DT = 1e-3
TAU_MEM_INV = 125.0  # beta = 0.875
TAU_SYN_INV = 250.0  # beta_syn = 0.75


def _t(v: float, grad: bool = False) -> Tensor:
    return torch.tensor(v, dtype=F64, requires_grad=grad)


def _norse_cell_run(cell: nn.Module, xs: Tensor) -> tuple[Tensor, list]:
    state, outs, states = None, [], []
    for x in xs:
        z, state = cell(x, state)
        outs.append(z)
        states.append(state)
    return torch.stack(outs), states


@pytest.mark.parametrize("multi_step", [False, True], ids=["cell", "lifted"])
@pytest.mark.parametrize(("v_leak", "v_th", "v_reset"), [(0.0, 1.0, 0.0), (-0.25, 0.75, -0.5)])
def test_norse_lif_box(norse, v_leak, v_th, v_reset, multi_step):
    p = norse.LIFBoxParameters(
        tau_mem_inv=_t(TAU_MEM_INV), v_leak=_t(v_leak), v_th=_t(v_th), v_reset=_t(v_reset), method="super"
    )
    cell = norse.LIFBoxCell(p, dt=DT)
    ours = spk.LIF(
        tau=1 / TAU_MEM_INV,
        dt=DT,
        v_leak=v_leak,
        v_th=v_th,
        v_reset=v_reset,
        reset="hard",
        decay_input=True,
        surrogate=S.FastSigmoid(alpha=1.0),
    )
    xs = _randn((30, 3, 5), seed=7, scale=4.0, shift=3.0).requires_grad_()
    if multi_step:
        # norse 1.1.0 has no multi-step LIFBox module; Lift runs the cell over time
        r_spk, r_state = norse.Lift(cell)(xs)
        o_spk, trace = _ours(ours, xs)
        _same_spikes(o_spk, r_spk)
        torch.testing.assert_close(trace.v[-1], r_state.v, **TOL)
        r_v = None
    else:
        r_spk, states = _norse_cell_run(cell, xs)
        r_v = torch.stack([s.v for s in states])
        o_spk, trace = _ours(ours, xs)
        _same_spikes(o_spk, r_spk)
        torch.testing.assert_close(trace.v, r_v, **TOL)
    _spiky(o_spk)
    (g_r,) = _grads(_loss(r_spk, r_v, 7), [xs])
    (g_o,) = _grads(_loss(o_spk, None if r_v is None else trace.v, 7), [xs])
    torch.testing.assert_close(g_o, g_r, **TOL)


def test_norse_lif_box_learnable_threshold_and_time_constant(norse):
    """dL/dv_th directly; dL/dtau_mem_inv = -dt dL/dbeta = -dt dL/dw / (beta (1 - beta))."""
    v_th, tau_inv = _t(1.0, grad=True), _t(TAU_MEM_INV, grad=True)
    cell = norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=tau_inv, v_th=v_th, method="super"), dt=DT)
    ours = spk.LIF(
        tau=1 / TAU_MEM_INV, dt=DT, surrogate=S.FastSigmoid(alpha=1.0), learn=("tau", "v_th")
    ).double()
    with torch.no_grad():
        ours.beta_logit.copy_(torch.logit(_t(1 - DT * TAU_MEM_INV)))
    beta = ours.params().beta.detach()
    xs = _randn((30, 3, 5), seed=8, scale=4.0, shift=3.0).requires_grad_()
    r_spk, states = _norse_cell_run(cell, xs)
    r_v = torch.stack([s.v for s in states])
    o_spk, trace = _ours(ours, xs)
    _spiky(o_spk)
    _same_spikes(o_spk, r_spk)
    gx_r, gth_r, gtau_r = _grads(_loss(r_spk, r_v, 8), [xs, v_th, tau_inv])
    gx_o, gth_o, gw_o = _grads(_loss(o_spk, trace.v, 8), [xs, ours.v_th, ours.beta_logit])
    torch.testing.assert_close(gx_o, gx_r, **TOL)
    torch.testing.assert_close(gth_o, gth_r, **TOL)
    torch.testing.assert_close(-DT * gw_o / (beta * (1 - beta)), gtau_r, **TOL)
    assert float(gth_r.abs()) > 0 and float(gtau_r.abs()) > 0


@pytest.mark.parametrize("multi_step", [False, True], ids=["LIFCell", "LIF"])
@pytest.mark.parametrize(("v_leak", "v_th", "v_reset"), [(0.0, 1.0, 0.0), (-0.25, 0.75, -0.5)])
def test_norse_lif_current_based(norse, v_leak, v_th, v_reset, multi_step):
    p = norse.LIFParameters(
        tau_syn_inv=_t(TAU_SYN_INV),
        tau_mem_inv=_t(TAU_MEM_INV),
        v_leak=_t(v_leak),
        v_th=_t(v_th),
        v_reset=_t(v_reset),
        method="super",
    )
    ours = spk.CubaLIF(
        tau=1 / TAU_MEM_INV,
        tau_syn=1 / TAU_SYN_INV,
        dt=DT,
        v_leak=v_leak,
        v_th=v_th,
        v_reset=v_reset,
        reset="hard",
        decay_input=True,
        surrogate=S.FastSigmoid(alpha=1.0),
    )
    xs = _randn((30, 3, 5), seed=9, scale=2.0, shift=0.7).requires_grad_()
    if multi_step:
        r_spk, r_states = norse.LIF(p, dt=DT, record_states=True)(xs)
        r_v, r_i = r_states.v, r_states.i
    else:
        r_spk, states = _norse_cell_run(norse.LIFCell(p, dt=DT), xs)
        r_v, r_i = torch.stack([s.v for s in states]), torch.stack([s.i for s in states])
    o_spk, trace = _ours(ours, xs)
    _spiky(o_spk)
    _same_spikes(o_spk, r_spk)
    torch.testing.assert_close(trace.v, r_v, **TOL)
    torch.testing.assert_close(trace.i, r_i, **TOL)
    (g_r,) = _grads(_loss(r_spk, r_v, 9), [xs])
    (g_o,) = _grads(_loss(o_spk, trace.v, 9), [xs])
    torch.testing.assert_close(g_o, g_r, **TOL)


@pytest.mark.parametrize("multi_step", [False, True], ids=["LICell", "LI"])
@pytest.mark.parametrize("v_leak", [0.0, -0.25])
def test_norse_leaky_integrator(norse, v_leak, multi_step):
    p = norse.LIParameters(tau_syn_inv=_t(TAU_SYN_INV), tau_mem_inv=_t(TAU_MEM_INV), v_leak=_t(v_leak))
    ours = spk.LI(tau=1 / TAU_MEM_INV, tau_syn=1 / TAU_SYN_INV, dt=DT, v_leak=v_leak)
    xs = _randn((20, 3, 5), seed=10).requires_grad_()
    if multi_step:
        r_v, r_state = norse.LI(p, dt=DT)(xs)
        r_i = r_state.i  # the multi-step LI returns only the final state
    else:
        r_v, states = _norse_cell_run(norse.LICell(p, dt=DT), xs)
        r_i = torch.stack([s.i for s in states])
    o_v, trace = _ours(ours, xs)
    torch.testing.assert_close(trace.i if not multi_step else trace.i[-1], r_i, **TOL)
    torch.testing.assert_close(o_v, r_v, **TOL)
    (g_r,) = _grads(_loss(r_v, None, 10), [xs])
    (g_o,) = _grads(_loss(o_v, None, 10), [xs])
    torch.testing.assert_close(g_o, g_r, **TOL)


def test_norse_leaky_integrator_box(norse):
    p = norse.LIBoxParameters(tau_mem_inv=_t(TAU_MEM_INV), v_leak=_t(-0.25))
    ours = spk.LI(tau=1 / TAU_MEM_INV, tau_syn=None, dt=DT, v_leak=-0.25)
    xs = _randn((20, 3, 5), seed=11).requires_grad_()
    r_v, _ = _norse_cell_run(norse.LIBoxCell(p, dt=DT), xs)
    o_v, _ = _ours(ours, xs)
    torch.testing.assert_close(o_v, r_v, **TOL)
    torch.testing.assert_close(
        _grads(_loss(o_v, None, 11), [xs])[0], _grads(_loss(r_v, None, 11), [xs])[0], **TOL
    )


@pytest.mark.parametrize("v_reset", [0.0, -0.5])
def test_norse_iaf(norse, v_reset):
    p = norse.IAFParameters(v_th=_t(0.75), v_reset=_t(v_reset), method="super")
    ours = spk.IF(v_th=0.75, v_reset=v_reset, reset="hard", surrogate=S.FastSigmoid(alpha=1.0))
    xs = _randn((15, 3, 5), seed=12, scale=0.6, shift=0.2).requires_grad_()
    r_spk, r_state = norse.IAF(p)(xs)  # multi-step module (it cannot record states)
    c_spk, states = _norse_cell_run(norse.IAFCell(p), xs)
    r_v = torch.stack([s.v for s in states])
    o_spk, trace = _ours(ours, xs)
    _spiky(o_spk)
    _same_spikes(o_spk, r_spk)
    _same_spikes(o_spk, c_spk)
    torch.testing.assert_close(trace.v, r_v, **TOL)
    torch.testing.assert_close(trace.v[-1], r_state.v, **TOL)
    (g_r,) = _grads(_loss(c_spk, r_v, 12), [xs])
    (g_o,) = _grads(_loss(o_spk, trace.v, 12), [xs])
    torch.testing.assert_close(g_o, g_r, **TOL)


@pytest.mark.parametrize("alpha", [0.3, 1.0, 2.5])
def test_norse_triangle_surrogate(norse, alpha):
    from norse.torch.functional.threshold import threshold

    x = _grid((1.0, -1.0))
    ours = S.Triangle(alpha=alpha)
    _same_spikes(S.spike(x, ours), threshold(x, "triangle", alpha))
    torch.testing.assert_close(
        _autograd_grad(lambda t: S.spike(t, ours), x),
        _autograd_grad(lambda t: threshold(t, "triangle", alpha), x),
        **TOL,
    )
    # and through a neuron: LIFBoxCell with method="triangle"
    p = norse.LIFBoxParameters(tau_mem_inv=_t(TAU_MEM_INV), method="triangle", alpha=alpha)
    lif = spk.LIF(tau=1 / TAU_MEM_INV, dt=DT, surrogate=ours)
    xs = _randn((30, 3, 5), seed=13, scale=4.0, shift=3.0).requires_grad_()
    r_spk, states = _norse_cell_run(norse.LIFBoxCell(p, dt=DT), xs)
    o_spk, trace = _ours(lif, xs)
    _same_spikes(o_spk, r_spk)
    r_v = torch.stack([s.v for s in states])
    torch.testing.assert_close(
        _grads(_loss(o_spk, trace.v, 13), [xs])[0], _grads(_loss(r_spk, r_v, 13), [xs])[0], **TOL
    )


def test_norse_superspike_ignores_alpha(norse):
    """norse 1.1.0's SuperSpike backward is 1/(|x|+1)^2 whatever alpha is: FastSigmoid(alpha=1)."""
    from norse.torch.functional.threshold import threshold

    x = _grid()
    ours = _autograd_grad(lambda t: S.spike(t, S.FastSigmoid(alpha=1.0)), x)
    for alpha in (1.0, 100.0):
        torch.testing.assert_close(
            _autograd_grad(lambda t, a=alpha: threshold(t, "super", a), x), ours, **TOL
        )
    assert not torch.allclose(ours, _autograd_grad(lambda t: S.spike(t, S.FastSigmoid(alpha=100.0)), x))


# ============================================================================= eve-mli


@pytest.fixture(scope="module")
def eve():
    pytest.importorskip("eve")
    import eve.core
    import eve.core.surrogate_fn

    return eve.core


C = 6  # neurons (the Linear layer's out_features); eve aligns per-neuron values on the last dim


def _eve_node(eve, cls, **kw) -> nn.Module:
    state = eve.State(nn.Linear(4, C))  # eve reads the neuron count off a filter layer
    node = cls(state, **kw).double()
    node.spike()  # eve neurons start in non-spiking (ANN) mode
    node.train()  # in eval mode eve's surrogates return a Heaviside with no gradient
    return node


def _eve_run(node: nn.Module, xs: Tensor) -> tuple[Tensor, Tensor]:
    outs, vs = [], []
    for x in xs:
        outs.append(node(x))
        vs.append(node.membrane_voltage_eve)
    return torch.stack(outs), torch.stack(vs)


_EVE_SG = {
    "Sigmoid": (S.Sigmoid(alpha=1.0), {}),  # eve's default surrogate and alpha
    "ATan": (S.ATan(alpha=2.0), {"alpha": 2.0}),
    "SoftSign": (S.SoftSign(alpha=2.0), {"alpha": 2.0}),
    "NonzeroSignLogAbs": (S.NonzeroSignLogAbs(alpha=1.0), {"alpha": 1.0}),
    "PiecewiseQuadratic": (S.PiecewiseQuadratic(alpha=1.0), {"alpha": 1.0}),
}


def _eve_ours(kind: str, voltage_reset: float | None, tau: float, **kw) -> spk.Neuron:
    reset = {"reset": "soft"} if voltage_reset is None else {"reset": "hard", "v_reset": voltage_reset}
    if kind == "IF":
        return spk.IF(detach_reset=True, **reset, **kw)
    leak = 0.0 if voltage_reset is None else voltage_reset
    return spk.LIF(tau=tau, v_leak=leak, decay_input=True, detach_reset=True, **reset, **kw)


# binary=False returns v - th and bypasses the surrogate, so one surrogate covers it
_EVE_OUT = [(name, True) for name in _EVE_SG] + [("Sigmoid", False)]


@pytest.mark.parametrize(
    ("surrogate", "binary"), _EVE_OUT, ids=[f"{n}-{'binary' if b else 'graded'}" for n, b in _EVE_OUT]
)
@pytest.mark.parametrize("time_dependent", [True, False], ids=["td", "not_td"])
@pytest.mark.parametrize("voltage_reset", [0.0, None], ids=["hard", "soft"])
@pytest.mark.parametrize("kind", ["IF", "LIF"])
def test_eve_nodes(eve, kind, voltage_reset, time_dependent, binary, surrogate):
    our_sg, eve_kw = _EVE_SG[surrogate]
    tau = 2.0
    node = _eve_node(
        eve,
        eve.IFNode if kind == "IF" else eve.LIFNode,
        voltage_threshold=0.75,
        voltage_reset=voltage_reset,
        time_dependent=time_dependent,
        surrogate_fn=surrogate,
        binary=binary,
        **({"tau": tau} if kind == "LIF" else {}),
        **eve_kw,
    )
    ours = _eve_ours(
        kind, voltage_reset, tau, v_th=0.75, surrogate=our_sg, time_dependent=time_dependent, binary=binary
    )
    scale, shift = (0.6, 0.2) if kind == "IF" else (1.2, 0.6)
    xs = _randn((10, 3, 2, C), seed=14, scale=scale, shift=shift).requires_grad_()
    r_out, r_v = _eve_run(node, xs)
    o_out, trace = _ours(ours, xs)
    if binary:
        _spiky(o_out)
        _same_spikes(o_out, r_out)
    else:
        _spiky(o_out >= 0)
        torch.testing.assert_close(o_out, r_out, **TOL)
    torch.testing.assert_close(trace.v, r_v, **TOL)
    (g_r,) = _grads(_loss(r_out, r_v, 14), [xs])
    (g_o,) = _grads(_loss(o_out, trace.v, 14), [xs])
    torch.testing.assert_close(g_o, g_r, **TOL)


@pytest.mark.parametrize("neuron_wise", [True, False], ids=["neuron_wise", "shared"])
@pytest.mark.parametrize("voltage_reset", [-0.25, None], ids=["hard", "soft"])
@pytest.mark.parametrize("kind", ["IF", "LIF"])
def test_eve_learnable_threshold_and_reset(eve, kind, voltage_reset, neuron_wise):
    """Learnt threshold (and reset, for a hard reset) receive the same gradients.

    eve starts the membrane at 0 whatever ``voltage_reset`` is, while spikekit starts a
    hard-reset IF at ``v_reset`` and a LIF at ``v_leak``; so a non-zero reset potential needs
    an explicit zero initial state. eve's LIF leaks towards ``voltage_reset``, which is our
    ``v_leak``: its gradient is the sum of our ``v_reset`` and ``v_leak`` gradients.
    """
    hard = voltage_reset is not None
    tau = 2.0
    node = _eve_node(
        eve,
        eve.IFNode if kind == "IF" else eve.LIFNode,
        voltage_threshold=0.75,
        voltage_reset=voltage_reset,
        learnable_threshold=True,
        learnable_reset=hard,
        neuron_wise=neuron_wise,
        surrogate_fn="ATan",
        **({"tau": tau} if kind == "LIF" else {}),
    )
    learn = ["v_th"] + (["v_reset"] + (["v_leak"] if kind == "LIF" else []) if hard else [])
    ours = _eve_ours(
        kind, voltage_reset, tau, v_th=0.75, surrogate=S.ATan(), learn=learn, shape=C if neuron_wise else None
    ).double()
    xs = _randn((10, 3, 2, C), seed=15, scale=0.6 if kind == "IF" else 1.2, shift=0.2).requires_grad_()
    state_type = IFState if kind == "IF" else LIFState
    r_out, r_v = _eve_run(node, xs)
    o_out, trace = _ours(ours, xs, state_type(torch.zeros_like(xs[0])))
    _spiky(o_out)
    _same_spikes(o_out, r_out)
    torch.testing.assert_close(trace.v, r_v, **TOL)
    params_r = [xs, node.voltage_threshold] + ([node.voltage_reset] if hard else [])
    params_o = [xs] + [getattr(ours, k) for k in learn]
    g_r = _grads(_loss(r_out, r_v, 15), params_r)
    g_o = _grads(_loss(o_out, trace.v, 15), params_o)
    torch.testing.assert_close(g_o[0], g_r[0], **TOL)
    torch.testing.assert_close(g_o[1].reshape(-1), g_r[1].reshape(-1), **TOL)
    if hard:
        torch.testing.assert_close(sum(g_o[2:]).reshape(-1), g_r[2].reshape(-1), **TOL)
    assert bool((g_r[1] != 0).all())


@pytest.mark.parametrize("kind", ["IF", "LIF"])
def test_eve_non_spiking_mode(eve, kind):
    """eve's ``non_spike()``: IFNode is ReLU, LIFNode is LeakyReLU; ours via ``spk.non_spike``."""
    node = _eve_node(eve, eve.IFNode if kind == "IF" else eve.LIFNode)
    node.non_spike()
    ours = spk.non_spike(spk.IF() if kind == "IF" else spk.LIF())
    xs = _randn((5, 3, 2, C), seed=16).requires_grad_()
    r = torch.stack([node(x) for x in xs])
    o = ours(xs)
    torch.testing.assert_close(o, r, **TOL)
    assert bool((r < 0).any()) == (kind == "LIF")  # ReLU vs LeakyReLU really differ here
    torch.testing.assert_close(
        _grads(_loss(o, None, 16), [xs])[0], _grads(_loss(r, None, 16), [xs])[0], **TOL
    )


def _eve_sg(eve, name: str, **kw) -> nn.Module:
    sg = getattr(eve.surrogate_fn, name)(**kw).double()
    sg.spike()
    sg.train()
    return sg


def _eve_sg_primitive(sg: nn.Module, x: Tensor) -> Tensor:
    sg.non_spike()
    try:
        return sg(x)
    finally:
        sg.spike()


@pytest.mark.parametrize("name", ["Sigmoid", "ATan", "SoftSign", "NonzeroSignLogAbs"])
def test_eve_surrogates_match(eve, name):
    ours, kw = _EVE_SG[name]
    sg = _eve_sg(eve, name, **kw)
    x = _grid()
    _same_spikes(S.spike(x, ours), sg(x))
    torch.testing.assert_close(_autograd_grad(lambda t: S.spike(t, ours), x), _autograd_grad(sg, x), **TOL)
    torch.testing.assert_close(ours.primitive(x), _eve_sg_primitive(sg, x), **TOL)


def test_eve_piecewise_quadratic_gradient_only(eve):
    """eve's PiecewiseQuadratic gradient is ours, but its primitive is the PiecewiseExp
    primitive (not the integral of that gradient), so only the gradient is compatible."""
    sg = _eve_sg(eve, "PiecewiseQuadratic", alpha=2.0)
    x = _grid((0.5, -0.5))
    ours = S.PiecewiseQuadratic(alpha=2.0)
    torch.testing.assert_close(_autograd_grad(lambda t: S.spike(t, ours), x), _autograd_grad(sg, x), **TOL)
    prim = _eve_sg_primitive(sg, x)
    torch.testing.assert_close(prim, S.PiecewiseExp(alpha=2.0).primitive(x), **TOL)
    assert (prim - ours.primitive(x)).abs().max() > 0.05


def test_eve_piecewise_leaky_relu_backward_is_twice_its_primitive_slope(eve):
    """eve's backward uses 1/w inside the window, its own primitive (and spikingjelly, and
    ours with alpha = 1/w) has slope 1/(2w); outside the window both use c."""
    w, c = 0.5, 0.05
    sg = _eve_sg(eve, "PiecewiseLeakyReLU", w=w, c=c)
    x = _grid((w, -w))
    ours = S.PiecewiseLeakyReLU(alpha=1 / w, c=c)
    torch.testing.assert_close(ours.primitive(x), _eve_sg_primitive(sg, x), **TOL)
    g_eve, g_ours = _autograd_grad(sg, x), ours.grad(x)
    inside = x.abs() < w
    torch.testing.assert_close(g_eve[inside], 2 * g_ours[inside], **TOL)
    torch.testing.assert_close(g_eve[~inside], g_ours[~inside], **TOL)


def test_eve_erf_backward_bug(eve):
    """eve 0.1.0's Erf backward is ``exp(-(alpha x)^2) x / sqrt(pi)``: ``x`` where the
    derivative of its primitive ``erfc(-alpha x)/2`` has ``alpha``. The primitive matches
    ours; our gradient is the true derivative, so the two differ by the factor ``x / alpha``
    (negative gradient below threshold, zero at the threshold)."""
    alpha = 2.0
    sg = _eve_sg(eve, "Erf", alpha=alpha)
    x = _grid()
    ours = S.Erf(alpha=alpha)
    torch.testing.assert_close(ours.primitive(x), _eve_sg_primitive(sg, x), **TOL)
    g_eve = _autograd_grad(sg, x)
    torch.testing.assert_close(g_eve, ours.grad(x) * x / alpha, **TOL)
    torch.testing.assert_close(ours.grad(x), _autograd_grad(ours.primitive, x), **TOL)
    assert bool((g_eve[x < 0] < 0).all()) and bool((ours.grad(x) > 0).all())


# ============================================================================= snetx


@pytest.fixture(scope="module")
def snetx():
    pytest.importorskip("snetx")
    import snetx.snn.algorithm
    import snetx.snn.neuron

    return snetx.snn


@pytest.mark.parametrize("detach", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize(("tau", "v_th", "v_reset"), [(2.0, 1.0, 0.0), (4.0, 0.75, -0.25), (1.6, 1.0, 0.25)])
def test_snetx_lif(snetx, tau, v_th, v_reset, detach):
    """snetx: ``u = u / tau + x`` (decay 1/tau, leak to 0, input not scaled), hard reset to
    v_reset, batch-first, default ATan with alpha 4."""
    alpha = 4.0
    ref = snetx.neuron.LIF(
        tau=tau, v_th=v_th, v_reset=v_reset, sg=snetx.algorithm.arc_tan, alpha=lambda: alpha, detach=detach
    )
    ours = spk.LIF(
        beta=1 / tau,
        v_th=v_th,
        v_reset=v_reset,
        v_leak=0.0,
        reset="hard",
        decay_input=False,
        detach_reset=detach,
        surrogate=S.ATan(alpha=alpha),
        batch_first=True,
    )
    xs = _randn((3, 12, 5), seed=17, scale=0.6, shift=0.35).requires_grad_()  # [N, T, F]
    r = ref(xs)
    o = ours(xs)
    _spiky(o)
    _same_spikes(o, r)
    torch.testing.assert_close(
        _grads(_loss(o, None, 17), [xs])[0], _grads(_loss(r, None, 17), [xs])[0], **TOL
    )


def test_snetx_evolved_alpha_is_alpha_schedule(snetx):
    """snetx's EvolvedAlpha keeps the epoch in class attributes; AlphaSchedule takes it as an
    argument. Same numbers for every epoch."""
    ea = snetx.algorithm.EvolvedAlpha
    saved = (ea.e_max, ea.epoch, ea.current)
    try:
        ea.e_max, ea.epoch = 0.5, 8
        evolved = ea(3.0)
        sched = S.AlphaSchedule(base=3.0, epochs=8, e_max=0.5)
        for epoch in range(9):
            ea.current = epoch
            assert sched.alpha(epoch) == pytest.approx(evolved(), rel=1e-12)
    finally:
        ea.e_max, ea.epoch, ea.current = saved


@pytest.mark.skipif(not os.environ.get("CI"), reason="only CI must have every peer library")
def test_ci_has_every_reference_library():
    """In CI the comparisons above must run, not skip: every peer has to import."""
    import importlib

    for name in ("snntorch", "norse", "spikingjelly.activation_based", "eve", "snetx", "tonic", "numba"):
        importlib.import_module(name)
