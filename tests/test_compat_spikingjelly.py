"""``spikekit.compat.spikingjelly`` against the installed spikingjelly (2.0), in float64.

Each neuron class runs on a small grid of parameter sets drawn from a fixed seed (reset kind,
``detach_reset``, ``decay_input``, threshold, surrogate) next to the same spikingjelly node on
the same input ``[T, B, F]``, scaled so that it fires: spikes equal exactly, the membrane trace
(``v_seq``) and the input gradient of a random loss close. spikingjelly's float64 path is its
``torch`` code. Our side goes through ``_ours`` of ``test_reference_compat``, which also checks
the default call (the fused kernel) against the traced reference scan.
"""

from __future__ import annotations

import random

import pytest
import torch
from test_reference_compat import (
    TOL,
    _autograd_grad,
    _grads,
    _grid,
    _loss,
    _ours,
    _randn,
    _same_spikes,
    _spiky,
)

import spikekit as spk
from spikekit import kernels
from spikekit import surrogate as S
from spikekit.compat import spikingjelly as cj

F64 = torch.float64
SHAPE = (12, 3, 5)


@pytest.fixture(scope="module")
def sj():
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import functional, neuron, surrogate

    return neuron, surrogate, functional


# name -> (spikingjelly kwargs, kinks of the gradient where the grid must not sample)
_SG = {
    "Sigmoid": ({"alpha": (2.0, 4.0, 5.0)}, ()),
    "ATan": ({"alpha": (1.0, 2.0, 3.0)}, ()),
    "PiecewiseQuadratic": ({"alpha": (1.0, 2.0)}, (0.5, -0.5, 1.0, -1.0)),
    "PiecewiseExp": ({"alpha": (1.0, 2.0)}, ()),
    "SoftSign": ({"alpha": (2.0, 3.0)}, ()),
    "NonzeroSignLogAbs": ({"alpha": (1.0, 1.5)}, ()),
    "Erf": ({"alpha": (1.0, 2.0)}, ()),
    "PiecewiseLeakyReLU": ({"w": (0.5, 1.0), "c": (0.01, 0.05)}, (0.5, -0.5, 1.0, -1.0)),
    "Rect": ({"alpha": (1.0, 2.0)}, (0.25, -0.25, 0.5, -0.5)),
}


def _draw(seed: int, n: int, space: dict[str, tuple]) -> list[dict]:
    rng = random.Random(seed)
    return [{k: rng.choice(v) for k, v in space.items()} for _ in range(n)]


def _sg_pair(sjs, name: str, kw: dict) -> tuple[torch.nn.Module, S.Surrogate]:
    return getattr(sjs, name)(**kw), getattr(cj.surrogate, name)(**kw)


def _sg_kw(rng: random.Random, name: str) -> dict:
    return {k: rng.choice(v) for k, v in _SG[name][0].items()}


def _compare(ref: torch.nn.Module, ours: spk.Neuron, xs: torch.Tensor, seed: int) -> None:
    r_spk = ref(xs)
    r_v = ref.v_seq
    o_spk, trace = _ours(ours, xs)
    _spiky(o_spk)
    _same_spikes(o_spk, r_spk)
    torch.testing.assert_close(trace.v, r_v, **TOL)
    (g_r,) = _grads(_loss(r_spk, r_v, seed), [xs])
    (g_o,) = _grads(_loss(o_spk, trace.v, seed), [xs])
    assert bool(g_o.abs().sum() > 0)
    torch.testing.assert_close(g_o, g_r, **TOL)


# ----------------------------------------------------------------------------- IF / LIF

_IF_GRID = _draw(
    1,
    4,
    {
        "v_threshold": (0.75, 1.0, 1.25),
        "v_reset": (0.0, -0.25, None),
        "detach_reset": (False, True),
        "sg": ("Sigmoid", "ATan", "PiecewiseQuadratic", "SoftSign"),
    },
)


@pytest.mark.parametrize("cfg", _IF_GRID, ids=lambda c: "-".join(map(str, c.values())))
def test_ifnode(sj, cfg):
    neuron, sjs, _ = sj
    cfg = dict(cfg)
    name = cfg.pop("sg")
    kw = _sg_kw(random.Random(str(cfg)), name)
    r_sg, o_sg = _sg_pair(sjs, name, kw)
    ref = neuron.IFNode(**cfg, surrogate_function=r_sg, step_mode="m", store_v_seq=True)
    ours = cj.IFNode(**cfg, surrogate_function=o_sg, step_mode="m")
    th = cfg["v_threshold"]
    xs = _randn(SHAPE, seed=11, scale=0.8 * th, shift=0.2 * th).requires_grad_()
    _compare(ref, ours, xs, seed=11)


_LIF_GRID = _draw(
    2,
    5,
    {
        "tau": (1.5, 2.0, 3.0, 4.0),
        "decay_input": (True, False),
        "v_threshold": (0.75, 1.0, 1.25),
        "v_reset": (0.0, -0.25, None),
        "detach_reset": (False, True),
        "sg": tuple(_SG),
    },
)


def _lif_input(cfg: dict, seed: int, tau: float) -> torch.Tensor:
    # without decay_input the membrane settles at tau x instead of x
    th = cfg["v_threshold"] / (1.0 if cfg["decay_input"] else tau)
    scale, shift = 1.2, 1.4
    return _randn(SHAPE, seed=seed, scale=scale * th, shift=shift * th).requires_grad_()


@pytest.mark.parametrize("cfg", _LIF_GRID, ids=lambda c: "-".join(map(str, c.values())))
def test_lifnode(sj, cfg):
    neuron, sjs, _ = sj
    cfg = dict(cfg)
    name = cfg.pop("sg")
    kw = _sg_kw(random.Random(str(cfg)), name)
    r_sg, o_sg = _sg_pair(sjs, name, kw)
    ref = neuron.LIFNode(**cfg, surrogate_function=r_sg, step_mode="m", store_v_seq=True)
    ours = cj.LIFNode(**cfg, surrogate_function=o_sg, step_mode="m")
    _compare(ref, ours, _lif_input(cfg, 12, cfg["tau"]), seed=12)


_PLIF_GRID = _draw(
    3,
    4,
    {
        "init_tau": (1.5, 2.0, 3.0),
        "decay_input": (True, False),
        "v_threshold": (0.75, 1.0),
        "v_reset": (0.0, None),
        "detach_reset": (False, True),
    },
)


@pytest.mark.parametrize("cfg", _PLIF_GRID, ids=lambda c: "-".join(map(str, c.values())))
def test_parametric_lifnode(sj, cfg):
    """Learnt decay: spikingjelly's ``w`` is minus our ``beta_logit``; so are their gradients."""
    neuron, sjs, _ = sj
    ref = neuron.ParametricLIFNode(
        **cfg, surrogate_function=sjs.ATan(), step_mode="m", store_v_seq=True
    ).double()
    ours = cj.ParametricLIFNode(**cfg, surrogate_function=cj.surrogate.ATan(), step_mode="m").double()
    # the mapping gives the same value (both store it in float32 first)...
    torch.testing.assert_close(ours.beta_logit, -ref.w, rtol=0, atol=1e-6)
    with torch.no_grad():  # ...and the comparison starts from bit-identical values
        ours.beta_logit.copy_(-ref.w)
    xs = _lif_input(cfg, 13, cfg["init_tau"])
    r_spk = ref(xs)
    o_spk, trace = _ours(ours, xs)
    _spiky(o_spk)
    _same_spikes(o_spk, r_spk)
    torch.testing.assert_close(trace.v, ref.v_seq, **TOL)
    gx_r, gw_r = _grads(_loss(r_spk, ref.v_seq, 13), [xs, ref.w])
    gx_o, gw_o = _grads(_loss(o_spk, trace.v, 13), [xs, ours.beta_logit])
    torch.testing.assert_close(gx_o, gx_r, **TOL)
    torch.testing.assert_close(-gw_o, gw_r, **TOL)
    assert float(gw_r.abs()) > 0


# ----------------------------------------------------------------------------- QIF / EIF / Izhikevich

_NONLINEAR_COMMON = {"v_reset": (-0.1, 0.0, None), "detach_reset": (False, True), "sg": ("ATan", "Sigmoid")}

_QIF_GRID = _draw(4, 2, {"tau": (2.0, 3.0), "v_c": (0.6, 0.8), "a0": (0.5, 1.0), **_NONLINEAR_COMMON})
_EIF_GRID = _draw(
    5, 2, {"tau": (2.0, 3.0), "delta_T": (0.5, 1.0), "theta_rh": (0.6, 0.8), **_NONLINEAR_COMMON}
)
_IZH_GRID = _draw(
    6,
    3,
    {
        "tau": (2.0, 3.0),
        "tau_w": (2.0, 4.0),
        "a": (0.0, 0.3),
        "b": (0.0, 0.2),
        "w_rest": (0.0, 0.1),
        **_NONLINEAR_COMMON,
    },
)


@pytest.mark.parametrize(
    ("kind", "cfg", "shift"),
    [("QIFNode", c, 0.35) for c in _QIF_GRID]
    + [("EIFNode", c, 0.5) for c in _EIF_GRID]
    + [("IzhikevichNode", c, 0.45) for c in _IZH_GRID],
    ids=lambda v: "-".join(map(str, v.values())) if isinstance(v, dict) else str(v),
)
def test_nonlinear_nodes(sj, kind, cfg, shift):
    """The membrane starts at ``v_reset`` (0 when soft) and ``w`` at ``w_rest``, as spikingjelly."""
    neuron, sjs, _ = sj
    cfg = dict(cfg)
    name = cfg.pop("sg")
    r_sg, o_sg = _sg_pair(sjs, name, {})  # each library's default alpha for that name
    ref = getattr(neuron, kind)(**cfg, surrogate_function=r_sg, step_mode="m", store_v_seq=True)
    ours = getattr(cj, kind)(**cfg, surrogate_function=o_sg, step_mode="m")
    xs = _randn(SHAPE, seed=14, scale=0.6, shift=shift).requires_grad_()
    _compare(ref, ours, xs, seed=14)
    if kind == "IzhikevichNode":
        _, state = ours.scan(xs)
        torch.testing.assert_close(state.u - cfg["a"] * -0.1, ref.w, **TOL)  # v_rest = -0.1


# ----------------------------------------------------------------------------- surrogates


@pytest.mark.parametrize("name", list(_SG))
def test_surrogates(sj, name):
    """Primitive, spike and gradient against spikingjelly's class, defaults and one drawn alpha."""
    _, sjs, _ = sj
    for kw in ({}, _sg_kw(random.Random(name), name)):
        ref_p, ours = getattr(sjs, name)(**kw, spiking=False), getattr(cj.surrogate, name)(**kw)
        ref = getattr(sjs, name)(**kw)
        assert isinstance(ours, S.Surrogate)
        x = _grid(_SG[name][1] + tuple(k / 2 for k in _SG[name][1]))
        torch.testing.assert_close(ours.primitive(x), ref_p(x), **TOL)
        _same_spikes(S.spike(x, ours), ref(x))
        g = _autograd_grad(lambda t, s=ours: S.spike(t, s), x)
        assert bool((g > 0).any())
        torch.testing.assert_close(g, _autograd_grad(ref, x), **TOL)


def test_default_surrogate_is_sigmoid_4(sj):
    neuron, _, _ = sj
    assert cj.LIFNode().options.surrogate == S.Sigmoid(alpha=4.0)
    assert neuron.LIFNode().surrogate_function.alpha == 4.0
    assert cj.surrogate.Sigmoid() == S.Sigmoid(alpha=4.0)


def test_superspike_only_alpha_one(sj):
    _, sjs, _ = sj
    x = _grid()
    torch.testing.assert_close(
        _autograd_grad(lambda t: S.spike(t, cj.surrogate.SuperSpike()), x),
        _autograd_grad(sjs.SuperSpike(), x),
        **TOL,
    )
    with pytest.raises(NotImplementedError, match="FastSigmoid"):
        cj.surrogate.SuperSpike(alpha=2.0)


# ----------------------------------------------------------------------------- calling convention


def test_single_step_mode_needs_stepwise_and_matches_spikingjelly(sj):
    """``step_mode='s'``: refused outside ``spk.stepwise``; inside it one step per call carries
    the membrane, and ``functional.reset_net`` clears it, as spikingjelly's stateful node."""
    neuron, sjs, functional = sj
    ref = neuron.LIFNode(tau=3.0, v_reset=None, surrogate_function=sjs.ATan())
    ours = cj.LIFNode(tau=3.0, v_reset=None, surrogate_function=cj.surrogate.ATan())
    xs = _randn(SHAPE, seed=15, scale=1.5, shift=1.0)
    with pytest.raises(RuntimeError, match="stepwise"):
        ours(xs)
    with pytest.raises(RuntimeError, match="stepwise"):
        cj.functional.reset_net(ours)
    r1 = torch.stack([ref(x) for x in xs])
    functional.reset_net(ref)
    r2 = torch.stack([ref(x) for x in xs[:4]])
    with spk.stepwise(ours):
        o1 = torch.stack([ours(x) for x in xs])
        cj.functional.reset_net(ours)
        o2 = torch.stack([ours(x) for x in xs[:4]])
    _spiky(o1)
    _same_spikes(o1, r1)
    _same_spikes(o2, r2)
    cj.functional.set_step_mode(ours, "m")
    _same_spikes(ours(xs), r1)


def test_unsupported_arguments_raise_helpfully(sj):
    _, sjs, _ = sj
    with pytest.raises(NotImplementedError, match=r"spikekit\.record"):
        cj.LIFNode(store_v_seq=True)
    with pytest.raises(TypeError, match=r"compat\.spikingjelly\.surrogate"):
        cj.IFNode(surrogate_function=sjs.ATan())
    with pytest.raises(ValueError, match="step_mode"):
        cj.IFNode(step_mode="x")
    with pytest.raises(ValueError, match="backend"):
        cj.LIFNode(backend="cuda")
    assert cj.LIFNode(backend="cupy").step_mode == "s"  # a kernel choice, not a model change
    with pytest.raises(NotImplementedError, match="no spikekit equivalent"):
        cj.surrogate.QPseudoSpike()
    with pytest.raises(NotImplementedError, match="primitive"):
        cj.surrogate.ATan(spiking=False)
    with pytest.raises(ValueError, match="init_tau"):
        cj.ParametricLIFNode(init_tau=1.0)


def test_runs_the_fused_kernel(sj):
    pytest.importorskip("numba")
    ours = cj.LIFNode(tau=3.0, v_reset=-0.25, detach_reset=True, step_mode="m")
    xs = _randn(SHAPE, seed=16, scale=1.5, shift=1.0)
    state = ours.initial_state(xs[0])
    params = ours._cast(ours.params(), xs)  # the parameters in the input's dtype, as a call passes them
    assert kernels.explain(type(ours).step_fn, xs, state, params, ours.options).startswith("numba")
    assert type(ours).step_fn is spk.LIF.step_fn
    fused = ours(xs)
    with kernels.use("reference"):
        ref = ours(xs)
    _spiky(fused)
    torch.testing.assert_close(fused, ref, rtol=0, atol=0)
