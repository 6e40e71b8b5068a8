"""Metrics: hand-computed accuracies, parity with snntorch's accuracy functions, firing rates."""

from __future__ import annotations

import pytest
import torch

import spikekit as spk
from spikekit import metrics as M


def _spikes(seed: int, shape=(20, 32, 5), p: float = 0.2) -> torch.Tensor:
    return (torch.rand(shape, generator=torch.Generator().manual_seed(seed)) < p).float()


def _labels(seed: int, n: int = 32, c: int = 5) -> torch.Tensor:
    return torch.randint(0, c, (n,), generator=torch.Generator().manual_seed(seed))


def test_accuracy_and_topk_hand_values():
    s = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.1, 0.4], [0.2, 0.3, 0.4]])
    y = torch.tensor([1, 2, 0])
    assert M.accuracy(s, y) == pytest.approx(1 / 3)
    assert M.accuracy(s, y, k=2) == pytest.approx(2 / 3)
    assert M.accuracy(s, y, k=3) == 1.0


def test_accuracy_rate_count_membrane_first_spike_hand_values():
    zs = torch.zeros(4, 2, 3)
    zs[:, 0, 1] = 1  # sample 0: class 1 fires every step
    zs[3, 1, 0] = 1  # sample 1: class 0 fires late, class 2 early and twice
    zs[0:2, 1, 2] = 1
    y = torch.tensor([1, 0])
    assert M.accuracy_rate(zs, y) == 0.5 and M.accuracy_count(zs, y) == 0.5
    assert M.accuracy_first_spike(zs, torch.tensor([1, 2])) == 1.0
    vs = torch.tensor([[[0.0, 1.0]], [[2.0, 0.5]]])
    assert M.accuracy_membrane(vs, torch.tensor([0])) == 1.0
    assert M.accuracy_rate(zs.transpose(0, 1), y, batch_first=True) == 0.5


def test_accuracy_rate_equals_snntorch():
    SF = pytest.importorskip("snntorch.functional")
    for seed in range(3):
        zs, y = _spikes(seed), _labels(seed + 10)
        assert M.accuracy_rate(zs, y) == pytest.approx(float(SF.accuracy_rate(zs, y)))
        zp = _spikes(seed, (20, 32, 15))
        assert M.accuracy_rate(zp, y, population_code=True, num_classes=5) == pytest.approx(
            float(SF.accuracy_rate(zp, y, population_code=True, num_classes=5))
        )


def test_accuracy_first_spike_equals_snntorch_temporal():
    SF = pytest.importorskip("snntorch.functional")
    for seed in range(3):
        zs, y = _spikes(seed, p=0.05), _labels(seed + 20)
        assert M.accuracy_first_spike(zs, y) == pytest.approx(float(SF.accuracy_temporal(zs, y)))


def test_accuracy_topk_equals_torch_topk_definition():
    s, y = torch.randn(64, 10, generator=torch.Generator().manual_seed(1)), _labels(2, 64, 10)
    for k in (1, 3, 5):
        ranks = (s > s.gather(1, y[:, None])).sum(1)  # how many classes beat the label
        assert M.accuracy(s, y, k=k) == pytest.approx(float((ranks < k).float().mean()))


def test_firing_rates_per_layer():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), spk.LIF(), torch.nn.Linear(4, 2), spk.LIF())
    xs = torch.rand(10, 8, 3) * 4
    rates = M.firing_rates(net, xs)
    with torch.no_grad():
        h = net[1](net[0](xs))
        o = net[3](net[2](h))
    assert set(rates) == {"1", "3"}
    assert rates["1"] == pytest.approx(float(h.mean())) and rates["3"] == pytest.approx(float(o.mean()))
    assert all(len(m._forward_hooks) == 0 for m in net)


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda: M.accuracy(torch.rand(4), torch.zeros(4, dtype=torch.long)), ValueError, r"\[B, C\]"),
        (lambda: M.accuracy(torch.rand(4, 3), torch.full((4,), 3)), ValueError, r"\[0, 2\]"),
        (lambda: M.accuracy(torch.rand(4, 3), torch.zeros(4, dtype=torch.long), k=4), ValueError, "k must"),
        (
            lambda: M.accuracy_rate(torch.rand(4, 3), torch.zeros(4, dtype=torch.long)),
            ValueError,
            r"\[T, B, C\]",
        ),
        (
            lambda: M.accuracy_rate(torch.rand(5, 4, 3), torch.zeros(3, dtype=torch.long)),
            ValueError,
            r"\[B\] = \[4\]",
        ),
    ],
)
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
