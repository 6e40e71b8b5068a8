"""Scoped modes: stepwise streaming, reset, recording, ANN/SNN switching."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

import spikekit as spk


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 5), spk.LIF(tau=2.0), nn.Linear(5, 2), spk.CubaLIF(v_th=0.2))


def test_stepwise_equals_sequence_and_resets_on_exit():
    net = _net()
    xs = torch.rand(6, 4, 3) * 2
    ref = net(xs)
    with spk.stepwise(net):
        out = torch.stack([net(x) for x in xs])
    torch.testing.assert_close(out, ref)
    assert all(m._stream is None for _, m in spk.neurons_of(net))
    with spk.stepwise(net):  # a new scope starts fresh
        torch.testing.assert_close(net(xs[0]), ref[0])


def test_stepwise_scope_is_cleared_on_error_and_not_nested():
    net = _net()
    with pytest.raises(RuntimeError, match="boom"), spk.stepwise(net):
        net(torch.ones(2, 3))
        raise RuntimeError("boom")
    assert all(m._stream is None for _, m in spk.neurons_of(net))
    with (
        spk.stepwise(net),
        pytest.raises(RuntimeError, match="already inside a stepwise block"),
        spk.stepwise(net),
    ):
        pass


def test_reset_touches_only_the_named_model():
    a, b = _net(), _net()
    x = torch.rand(4, 3) * 3
    with spk.stepwise(a), spk.stepwise(b):
        a(x), b(x)
        spk.reset(a)
        assert all(m._stream.state is None for _, m in spk.neurons_of(a))
        assert all(m._stream.state is not None for _, m in spk.neurons_of(b))


def test_snntorch_quickstart_style_loop():
    """User-written time loop with explicit state, as snntorch's 'more control' example."""
    fc, lif = nn.Linear(3, 4), spk.LIF(beta=0.9, reset="soft", decay_input=False, reset_delay=True)
    xs = torch.rand(5, 2, 3)
    mem, spk_rec, mem_rec = None, [], []
    for x in xs:
        z, mem = lif.step(fc(x), mem)
        spk_rec.append(z)
        mem_rec.append(mem.v)
    zs, states = spk.functional.scan_trace(
        spk.functional.lif_step, fc(xs), lif.initial_state(torch.zeros(2, 4)), lif.params(), lif.options
    )
    torch.testing.assert_close(torch.stack(spk_rec), zs)
    torch.testing.assert_close(torch.stack(mem_rec), states.v)


def test_record_traces_without_changing_return_types():
    net = _net()
    xs = torch.rand(6, 4, 3) * 2
    with spk.record(net) as rec:
        out = net(xs)
    assert isinstance(out, torch.Tensor)
    assert set(rec) == {"1", "3"}
    assert rec["1"].v.shape == (6, 4, 5) and rec["3"].i.shape == (6, 4, 2)
    assert not rec["1"].v.requires_grad
    # trace equals stepping by hand
    lif, state, vs = net[1], None, []
    for x in net[0](xs):
        _, state = lif.step(x, state)
        vs.append(state.v)
    torch.testing.assert_close(rec["1"].v, torch.stack(vs))
    assert all(m._recorder is None for _, m in spk.neurons_of(net))


def test_record_inside_stepwise_concatenates_steps():
    net = _net()
    xs = torch.rand(3, 2, 3)
    with spk.stepwise(net), spk.record(net) as rec:
        for x in xs:
            net(x)
    assert rec["1"].v.shape == (3, 2, 5)


def test_non_spike_is_ann_and_spike_restores():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), spk.IF(), nn.Linear(5, 4), spk.LIF(), nn.Linear(4, 2), spk.LI())
    ann = nn.Sequential(net[0], nn.ReLU(), net[2], nn.LeakyReLU(0.01), net[4])
    xs = torch.randn(4, 2, 3)
    assert spk.non_spike(net) is net
    torch.testing.assert_close(net(xs), ann(xs))
    spk.spike(net)
    assert set(net[1](torch.rand(5, 2, 5) * 3).unique().tolist()) <= {0.0, 1.0}


def test_import_is_light():
    code = (
        "import sys, spikekit as spk; print(spk.LIF, spk.IF, spk.CubaLIF, spk.ALIF, spk.LI); "
        "heavy = {'matplotlib', 'tonic', 'nir', 'numba', 'torchvision', 'sklearn', 'tensorboard', "
        "'snntorch', 'norse', 'spikingjelly', 'eve', 'snetx', 'scipy'}; "
        "bad = sorted({m.split('.')[0] for m in sys.modules} & heavy); assert not bad, bad; "
        # Dynamo and the tracer cost ~2 s to import: only torch.compile or a fused kernel's
        # first trace may load them
        "slow = sorted(m for m in ('torch._dynamo', 'torch._inductor', 'onnx') if m in sys.modules); "
        "assert not slow, slow"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_demo_cli_learns_the_synthetic_task(capsys):
    from spikekit.cli import main

    assert main(["demo", "--steps", "60", "-T", "10"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    acc = float(line.split("test accuracy ")[1].split("%")[0])
    assert acc > 80.0, line


def test_detach_state_cuts_the_graph_but_keeps_values():
    net = _net()
    x = torch.rand(4, 3) * 3
    with spk.stepwise(net):
        net(x)
        before = [m._stream.state.v.clone() for _, m in spk.neurons_of(net)]
        assert any(m._stream.state.v.requires_grad for _, m in spk.neurons_of(net))
        assert all(m.streaming for _, m in spk.neurons_of(net))
        spk.detach_state(net)
        for (_, m), v in zip(spk.neurons_of(net), before, strict=True):
            assert not m._stream.state.v.requires_grad
            torch.testing.assert_close(m._stream.state.v, v)
    assert not any(m.streaming for _, m in spk.neurons_of(net))
