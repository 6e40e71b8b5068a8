"""The ``spikekit`` command: ``train`` and ``sweep`` (spikekit.train.cli), ``bench``
(spikekit.bench) and ``demo`` (a seconds-long synthetic task, below).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence


def _demo(args: argparse.Namespace) -> int:
    import torch
    from torch import nn

    import spikekit as spk

    if args.steps <= 0 or args.T <= 0:
        print(
            f"spikekit demo: --steps and -T must be > 0, got steps={args.steps}, T={args.T}",
            file=sys.stderr,
        )
        return 2
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    n_in, n_cls = 16, 4

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        # Class c raises the firing probability of input channels 4c..4c+3 from 0.1 to 0.5.
        y = torch.randint(0, n_cls, (n,), generator=gen)
        rate = torch.full((n, n_in), 0.1)
        for c in range(n_cls):
            rate[y == c, 4 * c : 4 * c + 4] = 0.5
        xs = (torch.rand(args.T, n, n_in, generator=gen) < rate).float()
        return xs, y

    net = nn.Sequential(nn.Linear(n_in, 32), spk.LIF(tau=5.0), nn.Linear(32, n_cls), spk.LI(tau=5.0))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    t0 = time.perf_counter()
    for i in range(args.steps):
        xs, y = batch(64)
        logits = net(xs).max(0).values  # max over time of the readout membrane
        loss = nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if (i + 1) % max(1, args.steps // 5) == 0:
            print(f"step {i + 1:4d}/{args.steps}  loss {loss.item():.3f}")
    xs, y = batch(1000)
    with torch.no_grad():
        acc = (net(xs).max(0).values.argmax(1) == y).float().mean().item()
    print(
        f"synthetic rate-coded task: test accuracy {acc * 100:.1f}% "
        f"(chance {100 / n_cls:.0f}%) in {time.perf_counter() - t0:.1f} s"
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    # The sub-command modules keep their heavy imports inside their run functions.
    from spikekit import bench
    from spikekit.train import cli as train_cli

    p = argparse.ArgumentParser(prog="spikekit", description="Spiking neural networks on PyTorch.")
    sub = p.add_subparsers(dest="command", required=True)
    train_cli.add_parser(sub)
    bench.add_parser(sub)
    d = sub.add_parser("demo", help="train a small SNN on a built-in synthetic task (seconds)")
    d.add_argument("--steps", type=int, default=150, help="optimiser steps (default 150)")
    d.add_argument("-T", type=int, default=20, help="time steps per sample (default 20)")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``spikekit`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command in ("train", "sweep"):
        from spikekit.train.cli import dispatch

        return dispatch(args)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
