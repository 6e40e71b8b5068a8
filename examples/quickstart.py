"""snntorch's quickstart, the spikekit way: a conv SNN trained with a spike-count loss.

Runs on the embedded 8x8 digits (no download) in a few seconds:

    python examples/quickstart.py --epochs 2
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

import spikekit as spk
from spikekit.data import digits_arrays
from spikekit.layers import Flatten, MaxPool2d, TimeDistributed


def main(epochs: int = 3, T: int = 8, seed: int = 0) -> float:
    torch.manual_seed(seed)
    x_train, y_train, x_test, y_test = digits_arrays(split_seed=seed)
    lif = dict(beta=0.9, reset="soft", decay_input=False, surrogate="fast_sigmoid")  # snntorch's Leaky
    net = nn.Sequential(
        TimeDistributed(nn.Conv2d(1, 8, 3, padding=1)),
        spk.LIF(**lif),
        MaxPool2d(2),
        Flatten(),
        nn.Linear(8 * 4 * 4, 10),
        spk.LIF(**lif),
    )
    loss_fn = spk.losses.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2)
    opt = torch.optim.Adam(net.parameters(), lr=5e-3)
    for epoch in range(epochs):
        for idx in torch.randperm(len(x_train)).split(64):
            out = net(spk.encoding.direct(x_train[idx], T))  # [T, B, 10]
            loss = loss_fn(out, y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = spk.metrics.accuracy_rate(net(spk.encoding.direct(x_test, T)), y_test)
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}  test accuracy {float(acc) * 100:.1f}%")
    return float(acc)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("-T", type=int, default=8)
    main(**vars(p.parse_args()))
