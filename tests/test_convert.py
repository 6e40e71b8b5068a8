"""ANN -> SNN conversion (spikekit.convert): folding, rates, scales, errors, equivalences, digits."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import spikekit
from spikekit.convert import (
    ConvertedIF,
    SpikingMaxPool2d,
    UnsupportedLayerError,
    ann_to_snn,
    decode,
    fold_batchnorm,
)
from spikekit.encoding import direct


def _randomise_bn(net: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.randn(n, generator=g))
                m.bias.data.copy_(torch.randn(n, generator=g))
    return net.eval()


def test_fold_batchnorm_is_exact_in_eval_mode() -> None:
    torch.manual_seed(0)
    ann = _randomise_bn(
        nn.Sequential(
            nn.Conv2d(1, 6, 3, padding=1, bias=False),
            nn.BatchNorm2d(6),
            nn.ReLU(),
            nn.Sequential(nn.Conv2d(6, 4, 3), nn.Dropout(0.5), nn.BatchNorm2d(4, affine=False)),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(4 * 6 * 6, 5),
            nn.BatchNorm1d(5),
        )
    )
    x = torch.rand(7, 1, 8, 8)
    folded = fold_batchnorm(ann)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    assert not any(isinstance(m, nn.Dropout) for m in folded.modules())
    torch.testing.assert_close(folded(x), ann(x), atol=1e-5, rtol=1e-5)
    # the ANN itself is untouched
    assert sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in ann.modules()) == 3


@pytest.mark.parametrize("v_init", [0.0, 0.5])
@pytest.mark.parametrize("T", [1, 5, 16, 50])
def test_linear_relu_reproduces_relu_rates_within_one_over_T(T: int, v_init: float) -> None:
    torch.manual_seed(1)
    ann = nn.Sequential(nn.Linear(6, 40), nn.ReLU()).double()
    x = torch.rand(32, 6, dtype=torch.float64)
    snn, report = ann_to_snn(ann, x, v_init=v_init)
    assert type(snn[1]) is (ConvertedIF if v_init else spikekit.IF)
    assert snn[1].options.reset == "soft"
    lam = report.layers[0].scale
    with torch.no_grad():
        rate_ann = ann(x) / lam  # in [0, 1] with mode="max" on the same data
        rate_snn = decode(snn(direct(x, T))) / lam  # the network ends in spikes carrying lam
    assert float(rate_ann.max()) == pytest.approx(1.0)
    err = (rate_snn - rate_ann).abs().max().item()
    assert err <= (max(v_init, 1 - v_init) if v_init else 1.0) / T + 1e-9, err


def test_scales_are_reported() -> None:
    torch.manual_seed(2)
    ann = nn.Sequential(nn.Linear(5, 30), nn.ReLU(), nn.Linear(30, 20), nn.ReLU(), nn.Linear(20, 3))
    x = torch.randn(500, 5)
    with torch.no_grad():
        a1 = ann[:2](x)
        a2 = ann[:4](x)
    _, rep = ann_to_snn(ann, x, mode="max")
    assert [s.ann_name for s in rep.layers] == ["1", "3"]
    assert rep.scales == pytest.approx((a1.max().item(), a2.max().item()))
    assert [s.v_th for s in rep.layers] == [1.0, 1.0]
    assert all(s.clipped == 0.0 for s in rep.layers)

    snn, rep_p = ann_to_snn(ann, x, mode="percentile", percentile=99.0, normalise="threshold")
    want = torch.quantile(a1[a1 > 0], 0.99).item()
    assert rep_p.layers[0].scale == pytest.approx(want, rel=1e-5)
    assert all(p.scale < m.scale for p, m in zip(rep_p.layers, rep.layers, strict=True))
    assert all(0.005 < s.clipped < 0.015 for s in rep_p.layers)  # ~1 % of positives above p99
    assert [s.v_th for s in rep_p.layers] == pytest.approx(list(rep_p.scales))
    assert [type(snn[s.position]) for s in rep_p.layers] == [ConvertedIF, ConvertedIF]
    text = str(rep_p)
    assert "percentile (99 %)" in text and "threshold" in text and "Linear(30, 20)" in text
    assert f"{rep_p.layers[1].scale:.4g}" in text


def test_unsupported_layers_raise_with_name_and_position() -> None:
    ann = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 8), nn.Tanh()))
    with pytest.raises(UnsupportedLayerError, match=r"layer 3 \('2.1': Tanh\(\)\).*only ReLU") as e:
        ann_to_snn(ann, torch.rand(4, 4))
    assert e.value.name == "2.1" and e.value.position == 3 and isinstance(e.value, TypeError)

    with pytest.raises(UnsupportedLayerError, match=r"layer 1 .*LSTM.*no spiking equivalent"):
        ann_to_snn(nn.Sequential(nn.Linear(4, 8), nn.LSTM(8, 8)), torch.rand(4, 4))
    with pytest.raises(UnsupportedLayerError, match=r"layer 0 .*BatchNorm1d.*follows the input"):
        ann_to_snn(nn.Sequential(nn.BatchNorm1d(4), nn.Linear(4, 2)).eval(), torch.rand(4, 4))
    pool_on_currents = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3), nn.MaxPool2d(2), nn.Conv2d(2, 2, 1), nn.ReLU()
    )
    with pytest.raises(UnsupportedLayerError, match=r"layer 3 \('3'.*MaxPool2d.*input currents"):
        ann_to_snn(pool_on_currents, torch.rand(4, 1, 8, 8))
    with pytest.raises(TypeError, match=r"nn\.Sequential"):
        ann_to_snn(nn.Linear(3, 3), torch.rand(4, 3))


def test_supported_pooling_placements() -> None:
    torch.manual_seed(3)
    ann = nn.Sequential(
        nn.MaxPool2d(2, stride=1),  # on the analog input: a plain pool
        nn.Conv2d(1, 4, 3, padding=1),
        nn.MaxPool2d(2),  # before a ReLU: moved after it, then gated
        nn.ReLU(),
        nn.AvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 3),
    )
    snn, rep = ann_to_snn(ann, torch.rand(16, 1, 7, 7))
    kinds = [type(m).__name__ for m in snn]
    assert kinds == [
        "TimeDistributed",
        "TimeDistributed",
        "ConvertedIF",
        "SpikingMaxPool2d",
        "TimeDistributed",
        "Flatten",
        "TimeDistributed",
    ]
    assert any("moved after" in n for n in rep.notes) and any("plain max pool" in n for n in rep.notes)


def test_threshold_and_weight_normalisation_are_equivalent() -> None:
    torch.manual_seed(4)
    ann = _randomise_bn(
        nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(8 * 16, 10),
        )
    ).double()
    x = torch.rand(20, 1, 8, 8, dtype=torch.float64)
    outs, spikes = {}, {}
    for how in ("weights", "threshold"):
        snn, rep = ann_to_snn(ann, x, mode="percentile", normalise=how)
        rec: list[torch.Tensor] = []
        for s in rep.layers:
            snn[s.position].register_forward_hook(lambda m, i, o, rec=rec: rec.append(o))
        with torch.no_grad():
            outs[how] = snn(direct(x, 12))
        spikes[how] = rec
        assert rep.layers[1].v_th == (1.0 if how == "weights" else rep.layers[1].scale)
    torch.testing.assert_close(outs["weights"], outs["threshold"], rtol=1e-9, atol=1e-9)
    for a, b in zip(spikes["weights"], spikes["threshold"], strict=True):
        assert a.sum() > 0 and torch.equal(a, b)


def test_spiking_max_pool_gates_the_busiest_input_and_streams() -> None:
    g = torch.Generator().manual_seed(5)
    rates = torch.tensor([0.1, 0.7, 0.3, 0.5]).view(1, 1, 2, 2)
    zs = (torch.rand(400, 3, 1, 2, 2, generator=g) < rates).float()
    pool = SpikingMaxPool2d(nn.MaxPool2d(2))
    out = pool(zs)
    assert out.shape == (400, 3, 1, 1, 1)
    assert abs(out.mean().item() - 0.7) < 0.05  # the OR of the spikes would give ~0.9
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    with spikekit.stepwise(pool):
        steps = torch.stack([pool(z) for z in zs])
    torch.testing.assert_close(steps, out)


def test_stepwise_and_cumulative_decoding_match_sequence_runs() -> None:
    torch.manual_seed(6)
    ann = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 3)
    )
    x = torch.rand(5, 1, 8, 8)
    snn, _ = ann_to_snn(ann, x)
    with torch.no_grad():
        ys = snn(direct(x, 10))
        with spikekit.stepwise(snn):
            ys_step = torch.stack([snn(x) for _ in range(10)])
        torch.testing.assert_close(ys_step, ys)
        cum = decode(ys, cumulative=True)
        torch.testing.assert_close(cum[3], decode(snn(direct(x, 4))))
        torch.testing.assert_close(cum[-1], decode(ys))
        torch.testing.assert_close(
            decode(ys.transpose(0, 1), cumulative=True, batch_first=True), cum.transpose(0, 1)
        )


def test_lazy_attribute() -> None:
    assert "convert" in dir(spikekit)
    assert spikekit.convert.ann_to_snn is ann_to_snn


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # small convs on a shared 2-core machine: threads only contend
    yield
    torch.set_num_threads(n)


@pytest.mark.usefixtures("one_thread")
def test_digits_convnet_converts_within_a_few_points() -> None:
    """A small digits_convnet-style ReLU CNN (~2 s of CPU training), converted with both modes."""
    from spikekit.data import digits_arrays

    torch.manual_seed(0)
    xtr, ytr, xte, yte = digits_arrays()
    ann = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.2),
        nn.Linear(32 * 16, 10),
    )
    opt = torch.optim.Adam(ann.parameters(), 3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), 64):
            idx = perm[i : i + 64]
            loss = F.cross_entropy(ann(xtr[idx]), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    ann.eval()
    with torch.no_grad():
        acc_ann = (ann(xte).argmax(1) == yte).float().mean().item()
    assert acc_ann > 0.95
    for mode in ("max", "percentile"):
        snn, _ = ann_to_snn(ann, xtr, mode=mode)
        with torch.no_grad():
            cum = decode(snn(direct(xte, 32)), cumulative=True)
        acc = {T: (cum[T - 1].argmax(1) == yte).float().mean().item() for T in (8, 32)}
        assert acc[32] >= acc_ann - 0.015, (mode, acc, acc_ann)
        assert acc[8] >= acc_ann - 0.04, (mode, acc, acc_ann)
