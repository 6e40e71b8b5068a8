"""spikekit.energy: synaptic operations, MACs and energy, checked on hand-countable networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spikekit as spk
from spikekit.synops import PRESETS, EnergyPreset


def test_linear_counts_by_hand() -> None:
    # Layer 0 sees analog input: 3 steps x 2 samples x (4 in x 5 out) dense MACs.
    # Layer 1 sees the spikes we place by hand through an identity "neuron": nnz x fan-out (2).
    spikes = torch.zeros(3, 2, 5)
    spikes[0, 0, [0, 3]] = 1
    spikes[2, 1, 4] = 1

    class Fixed(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return spikes

    net = nn.Sequential(nn.Linear(4, 5), Fixed(), nn.Linear(5, 2))
    rep = spk.energy(net, torch.rand(3, 2, 4) + 0.1)
    first, second = rep.layers
    assert (first.name, first.kind, first.spiking_input) == ("0", "Linear", False)
    assert first.macs == 3 * 2 * 4 * 5 and first.synops == 0 and first.input_density == 1.0
    assert (second.name, second.spiking_input) == ("2", True)
    assert second.synops == 3 * 2 and second.macs == 0 and second.connections == 3 * 2 * 5 * 2
    assert second.input_density == pytest.approx(3 / 30)
    assert rep.samples == 2 and rep.synops == 6 and rep.macs == 120
    assert rep.energy_pj == pytest.approx(6 * 0.9 + 120 * 4.6)
    assert rep.ann_energy_pj == pytest.approx((120 + 60) * 4.6)
    assert rep.energy_per_sample_pj == pytest.approx(rep.energy_pj / 2)


def test_conv_fan_out_is_exact_at_borders_and_with_stride() -> None:
    conv = nn.Conv2d(1, 3, kernel_size=3, padding=1, bias=True)
    x = torch.zeros(1, 1, 1, 4, 4)  # [T, B, C, H, W]
    x[0, 0, 0, 0, 0] = 1  # corner: reaches the 2 x 2 outputs around it, for each of 3 channels
    x[0, 0, 0, 1, 1] = 1  # interior: reaches 3 x 3 outputs
    rep = spk.energy(spk.layers.TimeDistributed(conv), x)
    (layer,) = rep.layers
    assert layer.spiking_input and layer.synops == 3 * (4 + 9)
    # stride 2, no padding: the corner input reaches only output (0, 0); (1, 1) reaches (0, 0) too
    rep2 = spk.energy(spk.layers.TimeDistributed(nn.Conv2d(1, 3, 3, stride=2)), x)
    assert rep2.layers[0].synops == 3 * 2
    # grouped: each input channel feeds out_channels / groups = 2 output channels
    g = nn.Conv2d(2, 4, 1, groups=2, bias=False)
    x2 = torch.zeros(1, 1, 2, 2, 2)
    x2[0, 0, 0, 0, 0] = x2[0, 0, 1, 1, 1] = 1
    assert spk.energy(spk.layers.TimeDistributed(g), x2).layers[0].synops == 2 * 2


def test_presets_recurrent_weights_and_restored_mode() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(3, 4), spk.layers.Recurrent(spk.LIF(tau=2.0), nn.Linear(4, 4, bias=False)), nn.Linear(4, 2)
    )
    net.train()
    xs = torch.rand(6, 2, 3) * 4
    rep = spk.energy(net, xs, preset="45nm-int8")
    assert net.training  # restored
    names = [layer.name for layer in rep.layers]
    assert names == ["0", "1.recurrent", "2"]  # the recurrent weights are counted, every step
    with spk.record(net) as rec:
        net.eval()
        net(xs)
    net.train()
    z = rec.spikes["1.neuron"]
    assert rep.layers[2].synops == float(z.sum()) * 2
    assert rep.energy_pj == pytest.approx(rep.synops * 0.03 + rep.macs * 0.23)
    custom = EnergyPreset("mine", 1.0, 10.0, "test")
    assert spk.energy(net, xs, preset=custom).energy_pj == pytest.approx(rep.synops + 10 * rep.macs)
    assert PRESETS["45nm"].e_ac_pj == 0.9 and PRESETS["45nm"].e_mac_pj == 4.6
    with pytest.raises(ValueError, match="45nm"):
        spk.energy(net, xs, preset="7nm")
    text = str(rep)
    assert "1.recurrent" in text and "total" in text and "Horowitz" in text
    assert len(rep.lines()) == 4 and rep.lines()[-1].startswith("energy total per sample")


def test_synops_match_spikingjelly_counter() -> None:
    op = pytest.importorskip("spikingjelly.activation_based.op_counter")
    torch.manual_seed(1)
    conv = nn.Conv2d(2, 4, 3, padding=1, stride=2)
    lin = nn.Linear(4 * 3 * 3, 5)
    x = (torch.rand(3, 2, 6, 6) < 0.3).float()  # spikes [N, C, H, W]
    h = (torch.rand(3, 4 * 3 * 3) < 0.4).float()
    ours = spk.energy(conv, x, batch_dim=0).synops + spk.energy(lin, h, batch_dim=0).synops
    counter = op.SynOpCounter()
    with op.DispatchCounterMode([counter]):
        conv(x)
        lin(h)
    assert ours == counter.get_total() > 0
