"""Regularisers: functional values, snntorch parity, and the hook-based ActivityRecorder."""

from __future__ import annotations

import pytest
import torch

import spikekit as spk
from spikekit import regularisers as R


def _net() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 6), spk.LIF(), torch.nn.Linear(6, 4), spk.LIF(tau=4.0))


def _xs(T: int = 10, B: int = 5) -> torch.Tensor:
    return torch.rand(T, B, 3, generator=torch.Generator().manual_seed(1)) * 3


def test_functional_hand_values():
    zs = torch.tensor([[[1.0, 0.0, 0.0]], [[1.0, 1.0, 0.0]]])  # rates (1, 0.5, 0)
    assert R.l1_rate(zs).item() == pytest.approx(0.5)
    z = zs.clone().requires_grad_(True)
    R.l1_rate(z).backward()  # every step, silent ones included, is pushed down equally
    torch.testing.assert_close(z.grad, torch.full_like(z, 1 / 6))
    assert R.target_rate(zs, 0.5).item() == pytest.approx((0.25 + 0 + 0.25) / 3)
    assert R.target_rate(zs, 0.2, per_neuron=False).item() == pytest.approx(0.3**2)
    vs = torch.tensor([[[-3.0, 0.5, 2.0]]])
    assert R.membrane_bounds(vs, -1.0, 1.0).item() == pytest.approx((4 + 0 + 1) / 3)
    assert R.membrane_bounds(vs.clamp(-1, 1)).item() == 0.0


def test_l1_rate_sparsity_equals_snntorch():
    SF = pytest.importorskip("snntorch.functional")
    zs = (torch.rand(7, 3, 5, generator=torch.Generator().manual_seed(2)) < 0.3).float()
    torch.testing.assert_close(R.l1_rate_sparsity(1e-3)(zs), SF.l1_rate_sparsity(Lambda=1e-3)(zs))


def test_recorder_rates_equal_the_layer_outputs_and_hooks_are_removed():
    net, xs = _net(), _xs()
    with R.ActivityRecorder(net) as act:
        net(xs)
    h = net[1](net[0](xs))
    o = net[3](net[2](h))
    torch.testing.assert_close(act.rates()["1"], h.mean((0, 1)))
    torch.testing.assert_close(act.rates()["3"], o.mean((0, 1)))
    assert act.firing_rates()["1"] == pytest.approx(float(h.detach().mean()))
    assert all(len(m._forward_hooks) == 0 for m in net)
    assert all(m._recorder is None for _, m in spk.neurons_of(net))


def test_recorder_penalties_have_the_gradients_of_explicit_penalties():
    net, xs = _net(), _xs()
    with R.ActivityRecorder(net) as act:
        net(xs)
    loss = act.l1_rate() + act.target_rate({"1": 0.1, "3": 0.3})
    grads = torch.autograd.grad(loss, list(net.parameters()), allow_unused=True)
    h = net[1](net[0](xs))
    o = net[3](net[2](h))
    ref = R.l1_rate(h) + R.l1_rate(o) + R.target_rate(h, 0.1) + R.target_rate(o, 0.3)
    torch.testing.assert_close(loss, ref)
    for g, r in zip(grads, torch.autograd.grad(ref, list(net.parameters()), allow_unused=True), strict=True):
        if r is None:
            assert g is None
        else:
            torch.testing.assert_close(g, r)


def test_recorder_accumulates_running_sums_over_calls_and_stepwise():
    net, xs = _net(), _xs(T=8)
    with R.ActivityRecorder(net) as whole:
        net(xs[:4])
        net(xs[4:])
    with R.ActivityRecorder(net) as steps, spk.stepwise(net):
        for x in xs:
            net(x)
    # both saw 8 steps x 5 samples per neuron; sums agree up to the state carried between chunks
    assert whole.steps == steps.steps == {"1": 40, "3": 40}
    with torch.no_grad():
        full = net[1](net[0](xs))
    torch.testing.assert_close(steps.rates()["1"], full.mean((0, 1)))
    first, second = net[1](net[0](xs[:4])), net[1](net[0](xs[4:]))
    torch.testing.assert_close(whole.rates()["1"], torch.cat([first, second]).mean((0, 1)))
    assert all(t.numel() == 6 or t.numel() == 4 for t in whole.spike_sums.values())  # sums, not traces


def test_membrane_bounds_via_record():
    net, xs = _net(), _xs()
    with R.ActivityRecorder(net, layers=["3"], v_bounds=(-0.2, 0.5)) as act:
        net(xs)
    with spk.record(net) as rec:
        net(xs)
    torch.testing.assert_close(act.membrane_bounds(), R.membrane_bounds(rec["3"].v, -0.2, 0.5))
    assert set(act.rates()) == {"3"}
    assert act._recordings == {}  # traces dropped on exit
    act.membrane_bounds().backward()  # differentiable through the recorded membrane
    assert net[2].weight.grad is not None and float(net[2].weight.grad.abs().sum()) > 0


def test_recorder_errors():
    net = _net()
    with pytest.raises(ValueError, match=r"no neuron named \['9'\].*\['1', '3'\]"):
        R.ActivityRecorder(net, layers=["9"])
    with pytest.raises(ValueError, match="no spikekit neurons"):
        R.ActivityRecorder(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match="lo < hi"):
        R.ActivityRecorder(net, v_bounds=(1.0, 0.0))
    act = R.ActivityRecorder(net)
    with pytest.raises(RuntimeError, match="no forward pass"):
        act.l1_rate()
    with pytest.raises(RuntimeError, match="v_bounds"):
        act.membrane_bounds()
    with act:
        net(_xs())
        with pytest.raises(RuntimeError, match="already active"), act:
            pass
    with pytest.raises(ValueError, match="unknown layers"):
        act.target_rate({"7": 0.1})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        act.target_rate(1.5)
    with pytest.raises(ValueError, match="lo < hi"):
        R.membrane_bounds(torch.zeros(2, 2), 1.0, 1.0)


def test_recorder_removes_hooks_when_the_block_raises():
    net = _net()
    with pytest.raises(KeyError), R.ActivityRecorder(net, v_bounds=(-1.0, 1.0)):
        raise KeyError("boom")
    assert all(len(m._forward_hooks) == 0 for m in net)
    assert all(m._recorder is None for _, m in spk.neurons_of(net))
