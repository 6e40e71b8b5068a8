"""Decoders: exact values, layouts, the first-spike-time gradient, norse's decode, errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from spikekit import decoding as D

VS = torch.tensor([[[0.2, -1.0, 0.0]], [[0.1, 0.5, 0.0]], [[0.3, 0.4, 1.0]]])  # [T=3, B=1, C=3]


def test_reductions_exact():
    torch.testing.assert_close(D.spike_count(VS), torch.tensor([[0.6, -0.1, 1.0]]))
    torch.testing.assert_close(D.rate(VS), torch.tensor([[0.2, -0.1 / 3, 1 / 3]]))
    torch.testing.assert_close(D.max_membrane(VS), torch.tensor([[0.3, 0.5, 1.0]]))
    torch.testing.assert_close(D.last(VS), torch.tensor([[0.3, 0.4, 1.0]]))
    torch.testing.assert_close(D.mean_membrane(VS), torch.tensor([[0.2, -0.1 / 3, 1 / 3]]))


@pytest.mark.parametrize(
    "fn",
    [D.spike_count, D.rate, D.max_membrane, D.last, D.mean_membrane, D.decode, D.decode_last, D.decode_mean],
)
def test_batch_first_gives_the_same_result(fn):
    vs = torch.randn(7, 4, 5)
    torch.testing.assert_close(fn(vs.transpose(0, 1), batch_first=True), fn(vs))


def test_log_softmax_variants_match_norse_tutorial():
    vs = torch.randn(9, 4, 10)
    # the norse MNIST tutorial's decode / decode_last, written out
    torch.testing.assert_close(D.decode(vs), F.log_softmax(torch.max(vs, 0)[0], dim=1))
    torch.testing.assert_close(D.decode_last(vs), F.log_softmax(vs[-1], dim=1))
    torch.testing.assert_close(D.decode_mean(vs), F.log_softmax(vs.mean(0), dim=1))


def test_first_spike_time_values_and_silent_fill():
    zs = torch.tensor([[0.0, 0, 1], [1, 0, 1], [1, 0, 0]]).unsqueeze(1)
    torch.testing.assert_close(D.first_spike_time(zs), torch.tensor([[1.0, 3.0, 0.0]]))
    torch.testing.assert_close(D.first_spike_time(zs, no_spike=2), torch.tensor([[1.0, 2.0, 0.0]]))
    torch.testing.assert_close(
        D.first_spike_time(zs.transpose(0, 1), batch_first=True), torch.tensor([[1.0, 3.0, 0.0]])
    )


def test_first_spike_time_gradient_is_sign_estimator():
    zs = torch.tensor([[0.0, 0, 1], [1, 0, 1], [1, 0, 0]]).unsqueeze(1).requires_grad_(True)
    w = torch.tensor([[2.0, 3.0, 5.0]])
    (D.first_spike_time(zs) * w).sum().backward()
    expected = torch.zeros(3, 1, 3)
    expected[1, 0, 0] = -2.0  # first spike of neuron 0 at t=1
    expected[2, 0, 1] = -3.0  # silent neuron: last step
    expected[0, 0, 2] = -5.0
    torch.testing.assert_close(zs.grad, expected)


def test_first_spike_time_matches_snntorch_first_spike():
    loss = pytest.importorskip("snntorch.functional.loss")
    zs = (torch.rand(15, 4, 6, generator=torch.Generator().manual_seed(0)) < 0.1).float()
    a, b = zs.clone().requires_grad_(True), zs.clone().requires_grad_(True)
    ours = D.first_spike_time(a, no_spike=14)
    ref = loss.SpikeTime.FirstSpike.apply(b, "cpu")
    torch.testing.assert_close(ours, ref)
    w = torch.randn(4, 6)
    (ours * w).sum().backward()
    (ref * w).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)


def test_max_membrane_gradient_goes_to_argmax_step():
    vs = VS.clone().requires_grad_(True)
    D.max_membrane(vs).sum().backward()
    assert vs.grad.sum() == 3 and vs.grad[2, 0, 0] == 1 and vs.grad[1, 0, 1] == 1


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: D.rate(torch.rand(5)), ValueError, r"\[T, B, \*features\].*\(5,\)"),
        (lambda: D.decode(torch.rand(3), batch_first=True), ValueError, r"\[B, T, \*features\]"),
        (lambda: D.spike_count(torch.rand(0, 2, 3)), ValueError, "T = 0"),
        (lambda: D.first_spike_time([[1.0]]), TypeError, r"torch\.Tensor"),
    ],
)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
