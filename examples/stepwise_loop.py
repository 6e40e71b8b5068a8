"""A user-written time loop with explicit state (snntorch's "more control" style), a recording of
the membrane, and the same network switched to ANN mode (eve-mli's ``non_spike``).

    python examples/stepwise_loop.py
"""

from __future__ import annotations

import torch
from torch import nn

import spikekit as spk


def main(T: int = 25) -> dict[str, float]:
    torch.manual_seed(0)
    # snntorch Leaky semantics: v = beta v + x (no input scaling), as in its quickstart
    leaky = dict(decay_input=False, reset="soft", reset_delay=True)
    fc1, lif1 = nn.Linear(16, 32), spk.LIF(beta=0.9, learn="beta", **leaky)  # shared, learnable decay
    per_neuron_beta = torch.rand(4) * 0.5 + 0.25
    fc2, lif2 = nn.Linear(32, 4), spk.LIF(beta=per_neuron_beta, learn="beta", **leaky)
    x = torch.rand(8, 16) * 4

    # explicit state, one step at a time
    s1 = s2 = None
    zs = []
    for _ in range(T):
        z1, s1 = lif1.step(fc1(x), s1)
        z2, s2 = lif2.step(fc2(z1), s2)
        zs.append(z2)
    out_spikes = torch.stack(zs)  # [T, B, 4]

    # the same network as one sequence call, with its membrane recorded
    net = nn.Sequential(fc1, lif1, fc2, lif2)
    with spk.record(net) as rec:
        seq = net(x.expand(T, *x.shape))
    assert torch.equal(seq, out_spikes)
    print(f"output rate {out_spikes.mean():.3f}; membrane trace of the last layer: {tuple(rec['3'].v.shape)}")

    # ANN mode: LIF becomes LeakyReLU, per step, no state
    spk.non_spike(net)
    ann_out = net(x.expand(T, *x.shape))
    spk.spike(net)
    print(f"ANN-mode output mean {ann_out.mean():.3f}")
    return {"rate": out_spikes.detach().mean().item(), "ann_mean": ann_out.detach().mean().item()}


if __name__ == "__main__":
    main()
