"""Numeric traps (issue 15, items 4 and 5): non-finite states, thresholds that fire forever,
invalid loaded values, broadcast states, out-of-range target times and empty batches.

Each test failed before its fix: the trap ran silently (NaN membrane with zero spikes, a
state broadcast over the batch, a NaN loss) or was reported as something else.
"""

from __future__ import annotations

import pickle

import pytest
import torch

import spikekit as spk
from spikekit import losses
from spikekit.functional import lif_step
from spikekit.kernels.graph import trace_step
from spikekit.neurons import LIFParams, LIFState, Options, get_neuron, list_neurons

NAN = float("nan")


def _threshold_neurons() -> list[str]:
    out = []
    for name in list_neurons():
        cls = get_neuron(name)
        if "v_th" in cls.params_type._fields and "reset" in cls.options_used:
            out.append(name)
    return out


# ----------------------------------------------------------------------------- non-finite state
def test_check_finite_refuses_a_nonfinite_state_passed_to_scan_and_step():
    n = spk.LIF(check_finite=True)
    bad = LIFState(torch.tensor([[0.0, NAN, 0.0]]))
    with pytest.raises(ValueError, match=r"LIF: state\.v of the state passed in holds 1 NaN/inf"):
        n.scan(torch.zeros(4, 1, 3), bad)
    with pytest.raises(ValueError, match=r"state\.v of the state passed in holds 1 NaN/inf"):
        n.step(torch.zeros(1, 3), bad)
    spk.LIF().scan(torch.zeros(4, 1, 3), bad)  # without check_finite: no check, no sync


def test_check_finite_names_the_field_and_step_where_the_state_overflows():
    # finite input, but without a reset the membrane sums past float32's range at step 1
    n = spk.LIF(reset="none", decay_input=False, check_finite=True)
    xs = torch.full((5, 2, 3), 3e38)
    with pytest.raises(
        ValueError, match=r"state\.v of the final state holds 6 NaN/inf value\(s\) from step 1 of T = 5"
    ):
        n.scan(xs)
    with pytest.raises(ValueError, match=r"state\.v of the final state .* from step 1 of T = 5"):
        spk.LIF(reset="none", decay_input=False, check_finite=True, batch_first=True).scan(xs.transpose(0, 1))
    with pytest.raises(ValueError, match=r"state\.v of the state after this step holds"):
        n.step(xs[0], LIFState(torch.full((2, 3), 3e38)))


def test_nonfinite_finds_a_nan_membrane_that_the_spikes_hide():
    net = torch.nn.Sequential(torch.nn.Linear(3, 3), spk.LIF())
    xs = torch.randn(5, 2, 3)
    xs[1, 0, 0] = NAN
    assert spk.nonfinite(net) is None  # no state is held outside stepwise / keep_state
    with spk.keep_state(net):
        zs = net(xs)
        assert bool(torch.isfinite(zs).all())  # the trap: outputs are finite zeros
        assert spk.nonfinite(net) == "1.state.v"
        net(torch.randn(5, 2, 3))
        assert spk.nonfinite(net) is None  # the kept state is the last call's
        pickle.dumps(net)  # a kept state never travels with the model
    assert net[1]._kept is None
    with spk.stepwise(net):
        net(xs[1])
        assert spk.nonfinite(net) == "1.state.v"
    with torch.no_grad():
        net[0].weight[0, 0] = NAN
    assert spk.nonfinite(net) is None  # Linear weights: the trainer checks those itself
    lif = spk.LIF(learn="beta")
    with torch.no_grad():
        lif.beta_logit.fill_(NAN)
    assert spk.nonfinite(lif) == "beta_logit"


def test_nonfinite_on_states_tensors_and_recordings():
    assert spk.nonfinite(LIFState(torch.zeros(2))) is None
    assert spk.nonfinite(LIFState(torch.tensor([0.0, float("inf")]))) == "v"
    assert spk.nonfinite(torch.tensor([NAN])) == "tensor"
    assert spk.nonfinite({"a": LIFState(torch.zeros(1)), "b": (LIFState(torch.tensor([NAN])),)}) == "b.0.v"
    net = torch.nn.Sequential(spk.LIF(shape=()))
    with spk.record(net) as rec:
        net(torch.tensor([[0.0], [NAN]]))
    assert spk.nonfinite(rec) is not None


# ----------------------------------------------------------------------------- thresholds
@pytest.mark.parametrize("name", _threshold_neurons())
def test_soft_reset_refuses_a_threshold_that_fires_forever(name):
    cls = get_neuron(name)
    with pytest.raises(ValueError, match=r"with reset='soft', v_th must be > 0"):
        cls(v_th=-1.0, reset="soft")
    with pytest.raises(ValueError, match=r"with reset='soft', v_th must be > 0"):
        cls(v_th=0.0, reset="soft")


def test_soft_reset_threshold_below_reset_is_still_allowed():
    spk.LIF(v_th=0.5, v_reset=1.0, reset="soft")  # the soft reset does not use v_reset
    spk.LIF(v_th=-1.0, reset="none")  # no reset: a deliberate choice, not refused


# ----------------------------------------------------------------------------- loading values
@pytest.mark.parametrize(
    ("make", "key", "value", "msg"),
    [
        (spk.LIF, "beta", 1.7, r"beta must be in \[0, 1\] \(a decay\), got 1\.7"),
        (spk.LIF, "beta", -0.1, r"beta must be in \[0, 1\]"),
        (spk.LIF, "v_th", NAN, r"v_th must be finite, got nan"),
        (lambda: spk.LIF(learn="beta"), "beta_logit", float("inf"), r"beta_logit must be finite"),
        (spk.QIF, "a0", 0.0, r"a0 must be > 0"),
        (lambda: spk.LIF(shape=3), "beta", torch.tensor([0.5, 2.0, 0.5]), r"values in \[0\.5, 2\]"),
    ],
)
def test_load_state_dict_validates_values_like_the_constructor(make, key, value, msg):
    n = make()
    sd = n.state_dict()
    sd[key] = torch.as_tensor(value, dtype=sd[key].dtype).expand_as(sd[key]).clone()
    with pytest.raises(RuntimeError, match=msg):
        n.load_state_dict(sd)


def test_load_state_dict_still_takes_valid_values_learnt_or_fixed():
    fixed = spk.LIF(beta=0.25)
    learnt = spk.LIF(learn="beta")
    learnt.load_state_dict(fixed.state_dict())
    assert learnt.beta.item() == pytest.approx(0.25)
    fixed2 = spk.LIF()
    fixed2.load_state_dict(learnt.state_dict())
    assert fixed2.beta.item() == pytest.approx(0.25)
    sd = spk.LIF().state_dict()
    sd["beta"] = torch.tensor(1.0)  # a decay of 1 (no leak) is valid, as in the constructor
    spk.LIF().load_state_dict(sd)
    # relations between parameters are the constructor's business only: training a learnt
    # v_th below v_reset must not make its own checkpoint unloadable
    sd = spk.LIF(learn=("v_th",)).state_dict()
    sd["v_th"] = torch.tensor(-1.0)
    spk.LIF(learn=("v_th",)).load_state_dict(sd)


# ----------------------------------------------------------------------------- broadcast state
def _lif_params() -> LIFParams:
    return LIFParams(*(torch.tensor(v) for v in (0.5, 1.0, 0.0, 0.0)))


def test_functional_step_refuses_a_state_of_another_batch():
    with pytest.raises(
        ValueError, match=r"lif_step: state\.v has shape \(1, 3\) but the input x has shape \(4, 3\)"
    ):
        lif_step(torch.ones(4, 3), LIFState(torch.zeros(1, 3)), _lif_params(), Options())
    with pytest.raises(ValueError, match=r"state\.v has shape \(4, 3\) but the input x has shape \(1, 3\)"):
        spk.functional.scan(
            lif_step, torch.ones(2, 1, 3), LIFState(torch.zeros(4, 3)), _lif_params(), Options()
        )
    out, s = lif_step(torch.ones(4, 3), LIFState(torch.zeros(4, 3)), _lif_params(), Options())
    assert out.shape == s.v.shape == (4, 3)


def test_shape_check_leaves_kernel_tracing_alone():
    graphs = trace_step(lif_step, Options(), LIFState, LIFParams)
    assert graphs.forward  # traced on 0-d tensors: the shape check is not part of the graph


# ----------------------------------------------------------------------------- losses
def test_temporal_loss_refuses_target_times_outside_the_sequence():
    loss = losses.mse_temporal_loss(target_is_time=True)
    zs = torch.zeros(5, 2, 3)
    with pytest.raises(
        ValueError, match=r"must lie in \[-T, T - 1\] = \[-5, 4\] for T = 5.*got values in \[0, 99\]"
    ):
        loss(zs, torch.tensor([[0.0, 1.0, 99.0], [0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"\[-5, 4\]"):
        loss(zs, torch.full((3,), -6.0))
    with pytest.raises(ValueError, match=r"\[-5, 4\]"):
        loss(zs, torch.full((3,), NAN))
    assert torch.isfinite(loss(zs, torch.tensor([4.0, -5.0, -1.0])))


_LOSSES = [
    losses.ce_count_loss(),
    losses.ce_max_membrane_loss(),
    losses.ce_rate_loss(),
    losses.ce_temporal_loss(),
    losses.mse_count_loss(),
    losses.mse_membrane_loss(),
    losses.mse_rate_loss(),
    losses.mse_temporal_loss(),
    losses.tet_loss(),
    losses.mse_count_loss(batch_first=True),
]


@pytest.mark.parametrize("loss", _LOSSES, ids=repr)
def test_losses_refuse_an_empty_batch(loss):
    zs = torch.zeros(0, 5, 3) if loss.batch_first else torch.zeros(5, 0, 3)
    with pytest.raises(ValueError, match=r"empty batch \(B = 0\), shape \((0, 5|5, 0), 3\)"):
        loss(zs, torch.zeros(0, dtype=torch.long))


# ----------------------------------------------------------------------------- layout messages
def test_batch_first_empty_batch_is_not_called_t_zero():
    n = spk.LIF(batch_first=True)
    assert n(torch.zeros(0, 5, 3)).shape == (0, 5, 3)  # an empty batch runs, as time-first does
    assert spk.LIF()(torch.zeros(5, 0, 3)).shape == (5, 0, 3)
    with pytest.raises(
        ValueError, match=r"no time steps \(T = 0\), shape \(2, 0, 3\) \(\[B, T, \*features\]\)"
    ):
        n(torch.zeros(2, 0, 3))
