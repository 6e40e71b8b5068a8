"""spikekit.compat.snntorch against the installed snntorch (issue 13, item 1).

Each compat neuron is built with snntorch's own arguments and run next to snntorch's class
built with the same arguments, in snntorch's one-step call form, on float64 inputs drawn so
that the neurons fire: spikes exactly equal, membranes close, input (and learnt parameter)
gradients close. snntorch's spikes are float32, so gradients that flow into a spike from a
later step are compared with ``TOL_SNNTORCH`` (see tests/test_reference_compat.py).
"""

from __future__ import annotations

import random

import pytest
import torch
from test_reference_compat import TOL, TOL_SNNTORCH, _grid, _randn, _same_spikes, _spiky
from torch import Tensor

import spikekit as spk
from spikekit import surrogate as S
from spikekit.compat import snntorch as C

snn = pytest.importorskip("snntorch")
import snntorch.functional as SF  # noqa: E402

F64 = torch.float64
# snntorch builds its target times (and with them the temporal losses) in float32
TOL_LOSS = {"rtol": 1e-6, "atol": 1e-7}


def _run(neuron, xs: Tensor, n_state: int) -> tuple[Tensor, list[Tensor]]:
    """snntorch's loop: ``out = neuron(x, *state)`` with the state fed back (spikes and states)."""
    state: tuple = ()
    zs, traces = [], [[] for _ in range(n_state)]
    for x in xs:
        z, *state = neuron(x, *state)
        zs.append(z)
        for tr, s in zip(traces, state, strict=True):
            tr.append(s)
    return torch.stack(zs), [torch.stack(t) for t in traces]


def _loss(z: Tensor, v: Tensor, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(z.shape, generator=g).double()
    w2 = torch.randn(v.shape, generator=g).double()
    return (z.double() * w1).sum() + (v * w2).sum()


def _surrogates() -> list[tuple[str, object, object]]:
    sg = snn.surrogate
    return [
        ("default", None, None),
        ("atan", sg.atan(alpha=3.0), C.surrogate.atan(alpha=3.0)),
        ("fast_sigmoid", sg.fast_sigmoid(slope=4.0), C.surrogate.fast_sigmoid(slope=4.0)),
        ("sigmoid", sg.sigmoid(slope=4.0), C.surrogate.sigmoid(slope=4.0)),
        ("ste", sg.straight_through_estimator(), C.surrogate.straight_through_estimator()),
    ]


def _leaky_grid(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for k in range(n):
        out.append(
            {
                "beta": rng.choice([0.5, 0.75, 0.875]),
                "threshold": rng.choice([0.75, 1.0, 1.25]),
                "reset_mechanism": ["subtract", "zero", "none"][k % 3],
                "reset_delay": k % 2 == 0,
                "learn_beta": rng.random() < 0.5,
                "learn_threshold": rng.random() < 0.5,
                "sg": k % 5,
            }
        )
    return out


def _compare_grads(ours, ref, xs, z_o, v_o, z_r, v_r, seed, tol, learnt):
    """Input and learnt-parameter gradients; ours learn ``beta`` as ``sigmoid(w)``."""
    ps_o, ps_r = [xs], [xs]
    for our_name, ref_name in learnt:
        ps_o.append(getattr(ours, our_name))
        ps_r.append(getattr(ref, ref_name))
    g_o = torch.autograd.grad(_loss(z_o, v_o, seed), ps_o)
    g_r = torch.autograd.grad(_loss(z_r, v_r, seed), ps_r)
    for (our_name, _), go, gr in zip([("x", "x"), *learnt], g_o, g_r, strict=True):
        if our_name.endswith("_logit"):
            b = torch.sigmoid(getattr(ours, our_name)).detach()
            go = go / (b * (1 - b))
        torch.testing.assert_close(go, gr.to(go.dtype), **tol)
    return g_o


@pytest.mark.parametrize(
    "cfg", _leaky_grid(6, seed=0), ids=lambda c: f"{c['reset_mechanism']}-d{int(c['reset_delay'])}"
)
def test_leaky_grid(cfg):
    cfg = dict(cfg)
    _name, ref_sg, our_sg = _surrogates()[cfg.pop("sg")]
    th = cfg["threshold"]  # inputs scale with it, so every configuration fires about as often
    xs = _randn((12, 3, 5), seed=21, scale=0.5 * th, shift=0.2 * th).requires_grad_()
    ours = C.Leaky(spike_grad=our_sg, **cfg).double()
    # the reference gets exactly our (reparametrised) beta, in float64
    beta = ours.params().beta.detach().clone()
    ref = snn.Leaky(
        **{**cfg, "beta": beta, "threshold": torch.tensor(cfg["threshold"], dtype=F64)}, spike_grad=ref_sg
    )
    z_r, (v_r,) = _run(ref, xs, 1)
    z_o, (v_o,) = _run(ours, xs, 1)
    if cfg["reset_mechanism"] != "none":
        _spiky(z_o)
    if cfg["reset_mechanism"] == "subtract" and not cfg["reset_delay"]:
        assert bool((v_r <= cfg["threshold"]).all())  # the documented condition of exactness
    _same_spikes(z_o, z_r)
    torch.testing.assert_close(v_o, v_r, **TOL)
    learnt = ([("beta_logit", "beta")] if cfg["learn_beta"] else []) + (
        [("v_th", "threshold")] if cfg["learn_threshold"] else []
    )
    tol = TOL if cfg["reset_delay"] and not cfg["learn_threshold"] else TOL_SNNTORCH
    _compare_grads(ours, ref, xs, z_o, v_o, z_r, v_r, 21, tol, learnt)


@pytest.mark.parametrize("reset", ["zero", "subtract", "none"])
@pytest.mark.parametrize("learn", ["", "alpha", "beta", "threshold"])
def test_alpha_matches_snntorch(reset, learn):
    # snntorch 1.0's Alpha(learn_alpha=True) raises at construction (it assigns a clamped
    # tensor to its alpha Parameter), so the reference's alpha is a leaf tensor that requires
    # grad instead: the same gradient, without the flag.
    ours = C.Alpha(
        alpha=0.875,
        beta=0.625,
        threshold=0.75,  # snntorch keeps a fixed threshold in float32: exact values only
        reset_mechanism=reset,
        learn_alpha=learn == "alpha",
        learn_beta=learn == "beta",
        learn_threshold=learn == "threshold",
    ).double()
    xs = _randn((14, 3, 5), seed=31, scale=0.6, shift=0.3).requires_grad_()
    p = ours._cast(ours.params(), xs)  # the values a float64 run uses
    alpha = p.beta_exc.detach().clone().requires_grad_(learn == "alpha")
    ref = snn.Alpha(
        alpha=alpha,
        beta=p.beta_inh.detach().clone(),
        threshold=torch.tensor(0.75, dtype=F64),
        reset_mechanism=reset,
        learn_beta=learn == "beta",
        learn_threshold=learn == "threshold",
    )
    z_r, (e_r, n_r, v_r) = _run(ref, xs, 3)
    z_o, (e_o, n_o, v_o) = _run(ours, xs, 3)
    if reset != "none":
        _spiky(z_o)
    _same_spikes(z_o, z_r)
    for a, b in ((e_o, e_r), (n_o, n_r), (v_o, v_r)):
        torch.testing.assert_close(a, b, **TOL)
    ps_o, ps_r = [xs], [xs]
    if learn == "alpha":
        ps_o, ps_r = [xs, ours.beta_exc_logit], [xs, alpha]
    elif learn == "beta":
        ps_o, ps_r = [xs, ours.beta_inh_logit], [xs, ref.beta]
    elif learn == "threshold":
        ps_o, ps_r = [xs, ours.v_th], [xs, ref.threshold]
    g_o = torch.autograd.grad(_loss(z_o, v_o, 31), ps_o)
    g_r = torch.autograd.grad(_loss(z_r, v_r, 31), ps_r)
    if learn in ("alpha", "beta"):  # ours learn the decay as sigmoid(w)
        b = torch.sigmoid(ps_o[1]).detach()
        g_o = (g_o[0], g_o[1] / (b * (1 - b)))
    for go, gr in zip(g_o, g_r, strict=True):
        torch.testing.assert_close(go, gr.to(go.dtype), **TOL_SNNTORCH)
    # the whole sequence through the fused kernel gives the same spikes and final state
    z_seq, s = ours.scan(xs.detach())
    _same_spikes(z_seq, z_o)
    torch.testing.assert_close(s.v, v_o[-1].detach(), **TOL)


def test_leaky_fused_kernel_and_scan():
    ours = C.Leaky(beta=0.8, threshold=0.9)
    xs = _randn((10, 4, 6), seed=22, scale=0.6, shift=0.25)
    state = ours.initial_state(xs[0])
    params = ours._cast(ours.params(), xs)  # as Neuron.scan passes them
    assert spk.kernels.explain(type(ours).step_fn, xs, state, params, ours.options).startswith("numba")
    z_seq, s = ours.scan(xs)
    z_one, (v_one,) = _run(ours, xs, 1)
    _spiky(z_seq)
    _same_spikes(z_seq, z_one)
    torch.testing.assert_close(s.v, v_one[-1], **TOL)
    # and the same as the reference (traced, unfused) loop
    z_ref, states = spk.kernels.scan_trace(type(ours).step_fn, xs, state, params, ours.options)
    _same_spikes(z_seq, z_ref)
    torch.testing.assert_close(s.v, states.v[-1], **TOL)


@pytest.mark.parametrize(
    "cfg",
    [
        {"alpha": 0.5, "beta": 0.75, "reset_mechanism": "subtract", "reset_delay": True},
        {"alpha": 0.875, "beta": 0.5, "reset_mechanism": "subtract", "reset_delay": False},
        {"alpha": 0.75, "beta": 0.875, "reset_mechanism": "none", "reset_delay": True},
        {"alpha": 0.5, "beta": 0.75, "reset_mechanism": "zero", "reset_delay": False},
        {"alpha": 0.75, "beta": 0.75, "reset_mechanism": "subtract", "learn_alpha": True, "learn_beta": True},
    ],
    ids=["sub-delay", "sub-now", "none", "zero-now", "learn"],
)
def test_synaptic(cfg):
    xs = _randn((12, 3, 5), seed=23, scale=0.4, shift=0.05).requires_grad_()
    ours = C.Synaptic(threshold=1.25, **cfg).double()
    p = ours.params()
    ref = snn.Synaptic(
        **{**cfg, "alpha": p.beta_syn.detach().clone(), "beta": p.beta.detach().clone()},
        threshold=torch.tensor(1.25, dtype=F64),
    )
    z_r, (syn_r, v_r) = _run(ref, xs, 2)
    z_o, (syn_o, v_o) = _run(ours, xs, 2)
    if cfg["reset_mechanism"] != "none":
        _spiky(z_o)
    _same_spikes(z_o, z_r)
    torch.testing.assert_close(v_o, v_r, **TOL)
    torch.testing.assert_close(syn_o, syn_r, **TOL)
    learnt = [("beta_syn_logit", "alpha"), ("beta_logit", "beta")] if cfg.get("learn_alpha") else []
    tol = TOL if cfg.get("reset_delay", True) else TOL_SNNTORCH
    _compare_grads(ours, ref, xs, z_o, v_o, z_r, v_r, 23, tol, learnt)
    # the whole-sequence native call gives the same spikes
    _same_spikes(ours.scan(xs)[0], z_r)


@pytest.mark.parametrize(
    "kw", [{"beta": 0.75}, {"beta": 0.9, "reset_mechanism": "none"}, {"R": 1, "C": 4.0, "time_step": 0.5}]
)
def test_lapicque(kw):
    xs = _randn((12, 3, 5), seed=24, scale=1.5, shift=1.2 if "C" not in kw else 3.0).requires_grad_()
    ours = C.Lapicque(threshold=1.0, **kw).double()
    ref_kw = dict(kw)
    if "beta" in ref_kw:
        ref_kw["beta"] = torch.tensor(kw["beta"], dtype=F64)  # snntorch derives C from it
    ref = snn.Lapicque(**ref_kw).double()
    z_r, (v_r,) = _run(ref, xs, 1)
    z_o, (v_o,) = _run(ours, xs, 1)
    if kw.get("reset_mechanism") != "none":
        _spiky(z_o)
    _same_spikes(z_o, z_r)
    torch.testing.assert_close(v_o, v_r, **TOL)
    _compare_grads(ours, ref, xs, z_o, v_o, z_r, v_r, 24, TOL, [])


def _run_rleaky(ref, xs):
    """RLeaky fed its own spikes back; snntorch's are float32, made float64 (exact 0/1)."""
    spk_, mem = ref.init_rleaky()
    zs, vs = [], []
    for x in xs:
        spk_, mem = ref(x, spk_.double() if spk_.numel() else spk_, mem)
        zs.append(spk_)
        vs.append(mem)
    return torch.stack(zs), torch.stack(vs)


@pytest.mark.parametrize(
    "kw",
    [
        {"linear_features": 5},
        {"all_to_all": False, "V": 0.5, "reset_mechanism": "zero", "reset_delay": False},
        {"all_to_all": False, "V": -0.25, "reset_delay": False, "learn_recurrent": False},
    ],
    ids=["linear", "one_to_one", "one_to_one_nodelay"],
)
def test_rleaky(kw):
    torch.manual_seed(0)
    ref = snn.RLeaky(beta=0.75, threshold=1.0, **kw).double()
    ours = C.RLeaky(beta=0.75, threshold=1.0, **kw).double()
    ours.recurrent.load_state_dict(ref.recurrent.state_dict() if kw.get("linear_features") else {"V": ref.V})
    xs = _randn((12, 3, 5), seed=25, scale=0.6, shift=0.3).requires_grad_()
    z_r, v_r = _run_rleaky(ref, xs)
    z_o, v_o = _run_rleaky(ours, xs)
    _spiky(z_o)
    _same_spikes(z_o, z_r)
    torch.testing.assert_close(v_o, v_r, **TOL)
    learn = kw.get("learn_recurrent", True)
    ps_o = [xs] + ([next(ours.recurrent.parameters())] if learn else [])
    ps_r = [xs] + ([next(ref.recurrent.parameters())] if learn else [])
    g_o = torch.autograd.grad(_loss(z_o, v_o, 25), ps_o)
    g_r = torch.autograd.grad(_loss(z_r, v_r, 25), ps_r)
    for a, b in zip(g_o, g_r, strict=True):
        torch.testing.assert_close(a, b, **TOL_SNNTORCH)
        assert float(b.abs().max()) > 0


@pytest.mark.parametrize("i", range(1, 5))
def test_surrogate_gradients(i):
    _name, ref, ours = _surrogates()[i]
    x = _grid()
    assert isinstance(ours, S.Surrogate)
    _same_spikes(S.spike(x, ours), ref(x))
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    (ga,) = torch.autograd.grad(S.spike(xa, ours).sum(), xa)
    (gb,) = torch.autograd.grad(ref(xb).sum(), xb)
    torch.testing.assert_close(ga, gb.to(ga.dtype), **TOL)


def test_surrogate_defaults_match():
    x = _grid()
    for ours, ref in [
        (C.surrogate.atan(), snn.surrogate.atan()),
        (C.surrogate.fast_sigmoid(), snn.surrogate.fast_sigmoid()),
        (C.surrogate.sigmoid(), snn.surrogate.sigmoid()),
    ]:
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        (ga,) = torch.autograd.grad(S.spike(xa, ours).sum(), xa)
        (gb,) = torch.autograd.grad(ref(xb).sum(), xb)
        torch.testing.assert_close(ga, gb.double(), rtol=1e-5, atol=1e-6)  # snntorch's float32 slope


@pytest.mark.parametrize(
    ("cls", "kw", "words"),
    [
        (C.Leaky, {"beta": 0.5, "init_hidden": True}, "stepwise"),
        (C.Leaky, {"beta": 0.5, "inhibition": True}, "inhibition"),
        (C.Leaky, {"beta": 0.5, "state_quant": lambda t: t}, "quantisation"),
        (C.Leaky, {"beta": 0.5, "output": True}, "output"),
        (C.Leaky, {"beta": 0.5, "graded_spikes_factor": 2.0}, "spk * factor"),
        (C.Synaptic, {"alpha": 0.5, "beta": 0.5, "reset_mechanism": "zero"}, "reset_delay=False"),
        (C.RLeaky, {"beta": 0.5, "linear_features": 3, "reset_mechanism": "zero"}, "reset_delay=False"),
        (C.Lapicque, {"beta": 0.5, "R": 2.0}, "R = 1"),
        (C.Lapicque, {"beta": 0.5, "learn_beta": True}, "R and C"),
        (C.Alpha, {"alpha": 0.8, "beta": 0.9}, "greater than beta_inh"),
        (C.Leaky, {"beta": 0.5, "spike_grad": lambda t: t}, "compat.snntorch.surrogate"),
    ],
)
def test_unsupported_arguments_raise(cls, kw, words):
    with pytest.raises((NotImplementedError, TypeError, ValueError), match=None) as e:
        cls(**kw)
    assert words in str(e.value), str(e.value)


def test_unsupported_surrogate_raises():
    with pytest.raises(NotImplementedError, match="changes sign"):
        C.surrogate.triangular()


def test_state_must_match_input():
    lif = C.Leaky(beta=0.5)
    with pytest.raises(ValueError, match="fresh state"):
        lif(torch.ones(2, 3), torch.zeros(4, 3))


# ----------------------------------------------------------------------------- losses


def _spikes(seed: int, T: int = 12, B: int = 6, Cn: int = 4) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, Cn, generator=g, dtype=F64) < 0.15).double()


_Y = torch.tensor([0, 1, 2, 3, 1, 2])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(("on", "off", "tol"), [(0, -1, 0), (3, -2, 0), (3, 8, 0), (-1, 2, 0), (2, 9, 2)])
def test_mse_temporal_loss(on, off, tol, reduction):
    zs = _spikes(30)
    a, b = zs.clone().requires_grad_(), zs.clone().requires_grad_()
    ref = SF.mse_temporal_loss(on_target=on, off_target=off, tolerance=tol, reduction=reduction)(
        a, _Y.clone()
    )
    ours = C.functional.mse_temporal_loss(on_target=on, off_target=off, tolerance=tol, reduction=reduction)(
        b, _Y
    )
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref, **TOL_LOSS)
    (ga,) = torch.autograd.grad(ref.sum(), a)
    (gb,) = torch.autograd.grad(ours.sum(), b)
    torch.testing.assert_close(gb, ga, **TOL_LOSS)


def test_mse_temporal_loss_default_differs_from_native():
    """The reason the compat version exists: snntorch's default off target is t = 0."""
    zs = _spikes(31)
    native = spk.losses.mse_temporal_loss()(zs, _Y)
    compat = C.functional.mse_temporal_loss()(zs, _Y)
    ref = SF.mse_temporal_loss()(zs, _Y.clone())
    torch.testing.assert_close(compat, ref, **TOL_LOSS)
    assert abs(float(native) - float(ref)) > 1e-3


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("inverse", ["negate", "reciprocal"])
def test_ce_temporal_loss(inverse, reduction, weighted):
    zs = _spikes(32)
    w = torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=F64) if weighted else None
    ref = SF.ce_temporal_loss(inverse=inverse, reduction=reduction, weight=w)(zs, _Y.clone())
    ours = C.functional.ce_temporal_loss(inverse=inverse, reduction=reduction, weight=w)(zs, _Y)
    torch.testing.assert_close(ours, ref, **TOL)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("pop", [False, True])
def test_mse_count_loss(reduction, pop):
    zs = _spikes(33, Cn=8)
    kw = {"population_code": True, "num_classes": 4} if pop else {}
    y = _Y if pop else torch.tensor([0, 1, 7, 3, 5, 2])
    ref = SF.mse_count_loss(correct_rate=0.75, incorrect_rate=0.25, reduction=reduction, **kw)(zs, y.clone())
    ours = C.functional.mse_count_loss(correct_rate=0.75, incorrect_rate=0.25, reduction=reduction, **kw)(
        zs, y
    )
    assert ours.shape == ref.shape
    torch.testing.assert_close(ours, ref.double(), **TOL_LOSS)


def test_multi_spike_temporal_loss_is_refused_for_snntorchs_bug():
    """snntorch's multi-spike times lose a neuron's second spike when another neuron's first
    spike falls on the same step; the compat loss refuses rather than copy or silently fix it."""
    from snntorch.functional.loss import SpikeTime

    zs = torch.zeros(6, 1, 2)
    zs[1, 0, 0] = zs[2, 0, 0] = 1  # neuron 0 spikes at 1 and 2
    zs[2, 0, 1] = zs[5, 0, 1] = 1  # neuron 1 first spikes at 2
    times = SpikeTime.MultiSpike.apply(zs, 2, "cpu")[:, 0, 0]
    assert times.tolist() == [1.0, 5.0]  # the bug: the second spike (t = 2) reads as none (T - 1)
    with pytest.raises(NotImplementedError, match="spikes are lost"):
        C.functional.mse_temporal_loss(multi_spike=True)


@pytest.mark.parametrize("name", ["ce_rate_loss", "ce_count_loss"])
def test_same_named_rate_losses_match(name):
    zs = _spikes(34)
    ref = getattr(SF, name)()(zs.float(), _Y.clone())
    ours = getattr(C.functional, name)()(zs, _Y)
    torch.testing.assert_close(ours, ref.double().reshape(()), rtol=1e-6, atol=1e-6)
