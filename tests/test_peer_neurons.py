"""The nonlinear and adaptive neurons against the peer libraries that have them.

QIF, EIF and Izhikevich against spikingjelly's ``QIFNode``, ``EIFNode`` and ``IzhikevichNode``;
Izhikevich and AdEx against norse's ``Izhikevich`` and ``LIFAdEx``, configured as in
``docs/compat.md``. Same conventions as ``test_reference_compat.py``: float64 inputs
``[T=50, B=4, F=7]`` scaled so that the neurons fire, spikes equal exactly, membrane (and the
other state) close, input gradients close through the same surrogate. Our side runs the
reference scan (the fused kernels are checked against it in ``test_kernels.py``), which keeps
this file fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from torch import Tensor

import spikekit as spk
from spikekit import kernels
from spikekit import surrogate as S
from spikekit.neurons.eif import EIFState
from spikekit.neurons.izhikevich import IzhikevichState
from spikekit.neurons.qif import QIFState

F64 = torch.float64
TOL = {"rtol": 1e-9, "atol": 1e-10}
SHAPE = (50, 4, 7)


@pytest.fixture(autouse=True)
def _reference_scan() -> Iterator[None]:
    with kernels.use("reference"):
        yield


@contextmanager
def _float64() -> Iterator[None]:
    """Build our neurons with float64 parameters, as the peers use Python floats."""
    prev = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        yield
    finally:
        torch.set_default_dtype(prev)


def _xs(seed: int, scale: float, shift: float) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(SHAPE, generator=g, dtype=F64) * scale + shift).requires_grad_()


def _w(like: Tensor, seed: int) -> Tensor:
    return torch.randn(like.shape, generator=torch.Generator().manual_seed(seed + 1000), dtype=like.dtype)


def _spiky(z: Tensor) -> None:
    rate = float(z.detach().mean())
    assert 0.05 < rate < 0.95, f"test data gives a firing rate of {rate:.3f}; choose another input scale"


def _compare(r_spk: Tensor, r_v: Tensor, o_spk: Tensor, o_v: Tensor, xs: Tensor, seed: int) -> None:
    """Spikes exact, final membrane close, input gradient of a random loss close."""
    _spiky(o_spk)
    assert int((r_spk != o_spk).sum()) == 0, f"{int((r_spk != o_spk).sum())} spikes differ"
    torch.testing.assert_close(o_v, r_v, **TOL)
    w, wv = _w(o_spk, seed), _w(o_v, seed + 1)
    (g_r,) = torch.autograd.grad((r_spk * w).sum() + (r_v * wv).sum(), xs)
    (g_o,) = torch.autograd.grad((o_spk * w).sum() + (o_v * wv).sum(), xs)
    assert bool(g_o.abs().sum() > 0)
    torch.testing.assert_close(g_o, g_r, **TOL)


# ============================================================================= spikingjelly


@pytest.fixture(scope="module")
def sj():
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import neuron, surrogate

    return neuron, surrogate


def _sj_reset(v_reset: float | None) -> dict:
    return {"reset": "soft"} if v_reset is None else {"reset": "hard", "v_reset": v_reset}


def _sj_v0(v_reset: float | None) -> Tensor:
    """spikingjelly starts the membrane at ``v_reset`` (0 with a soft reset)."""
    return torch.full(SHAPE[1:], 0.0 if v_reset is None else v_reset, dtype=F64)


@pytest.mark.parametrize("detach_reset", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("v_reset", [-0.1, None], ids=["hard", "soft"])
def test_spikingjelly_qif(sj, v_reset, detach_reset):
    neuron, sjs = sj
    kw = {"tau": 2.0, "v_c": 0.8, "a0": 1.0, "v_threshold": 1.0, "v_rest": 0.0}
    ref = neuron.QIFNode(
        **kw,
        v_reset=v_reset,
        surrogate_function=sjs.ATan(alpha=2.0),
        detach_reset=detach_reset,
        step_mode="m",
    )
    with _float64():
        ours = spk.QIF(
            tau=2.0,
            v_c=0.8,
            a0=1.0,
            v_th=1.0,
            v_rest=0.0,
            detach_reset=detach_reset,
            surrogate=S.ATan(alpha=2.0),
            **_sj_reset(v_reset),
        )
    xs = _xs(seed=1, scale=0.6, shift=0.35)
    r_spk = ref(xs)
    o_spk, o_state = ours.scan(xs, QIFState(_sj_v0(v_reset)))
    _compare(r_spk, ref.v, o_spk, o_state.v, xs, seed=1)


@pytest.mark.parametrize("detach_reset", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("v_reset", [-0.1, None], ids=["hard", "soft"])
def test_spikingjelly_eif(sj, v_reset, detach_reset):
    neuron, sjs = sj
    ref = neuron.EIFNode(
        tau=2.0,
        delta_T=0.5,
        theta_rh=0.8,
        v_threshold=1.0,
        v_rest=0.0,
        v_reset=v_reset,
        surrogate_function=sjs.ATan(alpha=2.0),
        detach_reset=detach_reset,
        step_mode="m",
    )
    with _float64():
        ours = spk.EIF(
            tau=2.0,
            delta_T=0.5,
            theta_rh=0.8,
            v_th=1.0,
            v_leak=0.0,
            detach_reset=detach_reset,
            surrogate=S.ATan(alpha=2.0),
            **_sj_reset(v_reset),
        )
    xs = _xs(seed=2, scale=0.6, shift=0.5)
    r_spk = ref(xs)
    o_spk, o_state = ours.scan(xs, EIFState(_sj_v0(v_reset)))
    _compare(r_spk, ref.v, o_spk, o_state.v, xs, seed=2)


@pytest.mark.parametrize("detach_reset", [False, True], ids=["attached", "detached"])
@pytest.mark.parametrize("v_reset", [0.0, None], ids=["hard", "soft"])
def test_spikingjelly_izhikevich(sj, v_reset, detach_reset):
    """spikingjelly's ``a0 (v - vr)(v - v_c) - w`` is our polynomial with ``u = w + A vr``."""
    neuron, sjs = sj
    tau, a0, vr, vc, tau_w, A, B = 2.0, 1.0, -0.1, 0.8, 4.0, 0.3, 0.2
    ref = neuron.IzhikevichNode(
        tau=tau,
        v_c=vc,
        a0=a0,
        v_threshold=1.0,
        v_reset=v_reset,
        v_rest=vr,
        w_rest=0.0,
        tau_w=tau_w,
        a=A,
        b=B,
        surrogate_function=sjs.ATan(alpha=2.0),
        detach_reset=detach_reset,
        step_mode="m",
    )
    with _float64():
        ours = spk.Izhikevich(
            tau=tau,
            k2=a0,
            k1=-a0 * (vr + vc),
            k0=a0 * vr * vc + A * vr,
            a=tau / tau_w,
            b=A,
            d=B,
            semi_implicit=1.0,
            v_th=1.0,
            detach_reset=detach_reset,
            surrogate=S.ATan(alpha=2.0),
            **_sj_reset(v_reset),
        )
    xs = _xs(seed=3, scale=0.6, shift=0.45)
    r_spk = ref(xs)
    v0 = _sj_v0(v_reset)
    o_spk, o_state = ours.scan(xs, IzhikevichState(v0, torch.zeros_like(v0) + A * vr))
    _compare(r_spk, ref.v, o_spk, o_state.v, xs, seed=3)
    torch.testing.assert_close(o_state.u - A * vr, ref.w, **TOL)


# ============================================================================= norse


@pytest.fixture(scope="module")
def norse():
    return pytest.importorskip("norse.torch")


DT = 1e-3


@pytest.mark.parametrize(
    ("a", "b", "c", "d", "v_rest"),
    [(0.02, 0.2, -65.0, 6.0, -70.0), (0.02, 0.2, -50.0, 2.0, -70.0), (0.1, 0.26, -60.0, -1.0, -62.0)],
    ids=["tonic_spiking", "tonic_bursting", "resonator"],
)
def test_norse_izhikevich(norse, a, b, c, d, v_rest):
    """norse's native parameters map one to one; both start at ``v = v_rest, u = b v_rest``."""
    from norse.torch.functional.izhikevich import create_izhikevich_spiking_behavior

    beh = create_izhikevich_spiking_behavior(a=a, b=b, c=c, d=d, v_rest=v_rest, u_rest=v_rest, tau_inv=250)
    beh = type(beh)(
        p=beh.p,
        s=type(beh.s)(v=torch.tensor(v_rest, dtype=F64), u=torch.tensor(v_rest, dtype=F64) * b),
    )
    ref = norse.Izhikevich(beh, dt=DT)
    with _float64():
        ours = spk.Izhikevich(
            tau=1 / 250, dt=DT, a=a, b=b, v_reset=c, d=d, v_rest=v_rest, surrogate=S.FastSigmoid(alpha=1.0)
        )
    xs = _xs(seed=4, scale=8.0, shift=22.0)
    r_spk, r_state = ref(xs)
    o_spk, o_state = ours.scan(xs)
    _compare(r_spk, r_state.v, o_spk, o_state.v, xs, seed=4)
    torch.testing.assert_close(o_state.u, r_state.u, **TOL)


@pytest.mark.parametrize(("v_leak", "v_reset"), [(0.0, 0.0), (-0.25, -0.5)])
def test_norse_lif_adex(norse, v_leak, v_reset):
    """norse centres the exponential on the threshold: ``theta_rh = v_th``."""
    t = lambda v: torch.tensor(v, dtype=F64)  # noqa: E731
    p = norse.LIFAdExParameters(
        adaptation_current=t(0.5),
        adaptation_spike=t(0.25),
        delta_T=t(0.5),
        tau_ada_inv=t(62.5),
        tau_syn_inv=t(250.0),
        tau_mem_inv=t(125.0),
        v_leak=t(v_leak),
        v_th=t(1.0),
        v_reset=t(v_reset),
        method="super",
    )
    ref = norse.LIFAdEx(p, dt=DT)
    with _float64():
        ours = spk.AdEx(
            tau=1 / 125.0,
            tau_syn=1 / 250.0,
            tau_adapt=1 / 62.5,
            dt=DT,
            a=0.5,
            b=0.25,
            delta_T=0.5,
            theta_rh=1.0,
            v_th=1.0,
            v_leak=v_leak,
            v_reset=v_reset,
            surrogate=S.FastSigmoid(alpha=1.0),
        )
    xs = _xs(seed=5, scale=2.0, shift=0.8)
    r_spk, r_state = ref(xs)
    o_spk, o_state = ours.scan(xs)
    _compare(r_spk, r_state.v, o_spk, o_state.v, xs, seed=5)
    torch.testing.assert_close(o_state.i, r_state.i, **TOL)
    torch.testing.assert_close(o_state.w, r_state.a, **TOL)
