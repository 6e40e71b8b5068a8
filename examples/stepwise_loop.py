"""A user-written time loop with explicit state (snntorch's "more control" style), a recording of
the membrane, and the same network switched to ANN mode (eve-mli's ``non_spike``).

    python examples/stepwise_loop.py
"""

from __future__ import annotations

import torch
from torch import nn

import spikeforge as sf


def main(T: int = 25) -> dict[str, float]:
    torch.manual_seed(0)
    # snntorch Leaky semantics: v = beta v + x (no input scaling), as in its quickstart
    leaky = dict(decay_input=False, reset="soft", reset_delay=True)
    fc1, lif1 = nn.Linear(16, 32), sf.LIF(beta=0.9, learn="beta", **leaky)  # shared, learnable decay
    fc2, lif2 = nn.Linear(32, 4), sf.LIF(beta=torch.rand(4) * 0.5 + 0.25, learn="beta", **leaky)  # per neuron
    x = torch.rand(8, 16) * 4

    # explicit state, one step at a time
    s1 = s2 = None
    spikes = []
    for _ in range(T):
        z1, s1 = lif1.step(fc1(x), s1)
        z2, s2 = lif2.step(fc2(z1), s2)
        spikes.append(z2)
    spk = torch.stack(spikes)  # [T, B, 4]

    # the same network as one sequence call, with its membrane recorded
    net = nn.Sequential(fc1, lif1, fc2, lif2)
    with sf.record(net) as rec:
        seq = net(x.expand(T, *x.shape))
    assert torch.equal(seq, spk)
    print(f"output rate {spk.mean():.3f}; membrane trace of the last layer: {tuple(rec['3'].v.shape)}")

    # ANN mode: LIF becomes LeakyReLU, per step, no state
    sf.non_spike(net)
    ann_out = net(x.expand(T, *x.shape))
    sf.spike(net)
    print(f"ANN-mode output mean {ann_out.mean():.3f}")
    return {"rate": spk.detach().mean().item(), "ann_mean": ann_out.detach().mean().item()}


if __name__ == "__main__":
    main()
