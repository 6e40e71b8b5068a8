"""Traps of issue 13 around neurons: peers' keywords, recording, learnt parameters, float64.

Each test failed on the code before the fix; together they run in a few seconds on a CPU.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spikekit as spk
from spikekit import viz
from spikekit.layers import Recurrent

# ---------------------------------------------------------------- peers' keywords


@pytest.mark.parametrize(
    ("kwargs", "expect"),
    [
        ({"threshold": 1.0}, "v_th="),
        ({"v_threshold": 1.0}, "v_th="),
        ({"learn_beta": True}, "learn=('beta',)"),
        ({"spike_grad": None}, "surrogate="),
        ({"surrogate_function": None}, "surrogate="),
        ({"init_hidden": True}, "spk.stepwise"),
        ({"tau_mem_inv": 100.0}, "tau=1/"),
        ({"voltage_threshold": 1.0}, "v_th="),
    ],
)
def test_peer_keyword_names_our_equivalent(kwargs: dict, expect: str) -> None:
    (key,) = kwargs
    with pytest.raises(TypeError) as e:
        spk.LIF(**kwargs)
    msg = str(e.value)
    assert f"'{key}'" in msg and expect in msg, msg
    assert "'s name" in msg  # says whose name it is


def test_peer_value_soft_reset_hint() -> None:
    with pytest.raises(ValueError, match=r"reset='soft'"):
        spk.LIF(v_reset=None)
    with pytest.raises(ValueError, match=r"reset='soft'"):
        spk.LIF(reset="subtract")


def test_peer_hint_only_when_this_neuron_has_the_equivalent() -> None:
    # snntorch's alpha is a synaptic decay: CubaLIF has beta_syn, LIF has none.
    with pytest.raises(TypeError, match="beta_syn"):
        spk.CubaLIF(alpha=0.9)
    with pytest.raises(TypeError) as e:
        spk.LIF(alpha=0.9)
    assert "beta_syn" not in str(e.value)
    with pytest.raises(TypeError, match="no equivalent"):
        spk.LI(threshold=1.0)  # LI does not fire


def test_every_neuron_uses_the_table_and_typos_still_list_accepted() -> None:
    from spikekit.neurons._peer_keywords import PEER_KEYWORDS

    for cls in (spk.LIF, spk.IF, spk.CubaLIF, spk.ALIF, spk.LI):
        with pytest.raises(TypeError, match="'v_threshold' \\(spikingjelly's name\\)"):
            cls(v_threshold=1.0)
        with pytest.raises(TypeError, match="accepted: "):
            cls(not_a_keyword=1)
    assert {"threshold", "spike_grad", "init_hidden", "v_threshold", "tau_mem_inv"} <= set(PEER_KEYWORDS)


# ---------------------------------------------------------------- recording


def test_record_keeps_spikes_as_well_as_states() -> None:
    net = nn.Sequential(nn.Linear(2, 3), spk.LIF(batch_first=True))
    xs = torch.rand(4, 6, 2) * 3  # [B, T, F]
    with spk.record(net) as rec:
        ys = net(xs)
    assert rec["1"].v.shape == (6, 4, 3)
    assert torch.equal(rec.spikes["1"], ys.transpose(0, 1))  # time-first, like the states


def test_record_spikes_in_stepwise_and_inside_recurrent() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 3), Recurrent(spk.LIF(), nn.Linear(3, 3, bias=False)))
    xs = torch.rand(5, 2, 2) * 3
    with spk.record(net) as rec:
        ys = net(xs)
    assert torch.equal(rec.spikes["1.neuron"], ys) and rec["1.neuron"].v.shape == (5, 2, 3)
    with spk.stepwise(net), spk.record(net) as rec2:
        steps = torch.stack([net(x) for x in xs])
    assert torch.equal(steps, ys) and torch.equal(rec2.spikes["1.neuron"], ys)


def test_trace_sample_finds_the_neuron_inside_recurrent() -> None:
    net = nn.Sequential(nn.Linear(2, 3), Recurrent(spk.LIF(), nn.Linear(3, 3)), spk.LI(tau_syn=None))
    tr = viz.trace_sample(net, torch.ones(5, 1, 2))
    assert set(tr["outputs"]) == {"1.neuron", "2"} == set(tr["states"])
    assert tr["outputs"]["1.neuron"].shape == (5, 1, 3)


# ---------------------------------------------------------------- learnt parameters


def test_learnt_parameters_readable_under_public_names() -> None:
    n = spk.LIF(tau=4.0, v_th=0.5, learn=("tau", "v_th"))
    # keys unchanged (plus the neuron's description)
    assert set(n.state_dict()) == {"beta_logit", "v_th", "v_reset", "v_leak", "_extra_state"}
    assert torch.allclose(n.beta, torch.tensor(0.75)) and n.beta.requires_grad
    assert torch.allclose(n.tau, torch.tensor(4.0))
    n.tau.backward()  # differentiable down to the stored logit
    assert n.beta_logit.grad is not None
    fixed = spk.LIF(tau=4.0)
    assert torch.allclose(fixed.beta, torch.tensor(0.75)) and torch.allclose(fixed.tau, torch.tensor(4.0))
    a = spk.ALIF(tau_adapt=50.0, learn="tau_adapt")
    assert torch.allclose(a.rho, torch.tensor(0.98)) and torch.allclose(a.tau_adapt, torch.tensor(50.0))
    with pytest.raises(AttributeError):
        _ = n.not_a_parameter


# ---------------------------------------------------------------- float64 precision


def _build_under(dtype: torch.dtype, **kw: object) -> spk.LIF:
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        return spk.LIF(**kw)
    finally:
        torch.set_default_dtype(old)


@pytest.mark.parametrize(
    "kw", [{"tau": 3.0}, {"tau": torch.tensor([3.0, 7.0])}, {"beta": 0.3, "v_th": 5.0, "v_leak": 0.1}]
)
def test_float64_input_does_not_depend_on_default_dtype_at_construction(kw: dict) -> None:
    xs = torch.linspace(0.1, 2.0, 2 * 3 * 2, dtype=torch.float64).reshape(2, 3, 2)
    f32 = _build_under(torch.float32, **kw)
    f64 = _build_under(torch.float64, **kw)
    assert f32.beta.dtype == torch.float32  # buffers (and state_dict) keep the default dtype
    out32, s32 = f32.scan(xs)
    out64, s64 = f64.scan(xs)
    assert torch.equal(out32, out64) and torch.equal(s32.v, s64.v)
    # module.double() on a float32-built module gives the same, from the original numbers
    d, _ = f32.double().scan(xs)
    assert torch.equal(d, out64) and torch.equal(f32.double().scan(xs)[1].v, s64.v)


def test_float64_exact_values_yield_to_a_loaded_state_dict() -> None:
    n = _build_under(torch.float32, tau=3.0)
    sd = n.state_dict()
    sd["v_th"] = torch.tensor(0.6)
    n.load_state_dict(sd)
    p = n._cast(n.params(), torch.zeros(1, dtype=torch.float64))
    assert p.v_th.item() == torch.tensor(0.6).double().item()  # the loaded value, not 1.0
    assert p.beta.item() == 1 - 1 / 3  # untouched: still the exact number
    assert n._cast(n.params(), torch.zeros(1)).beta.dtype == torch.float32
