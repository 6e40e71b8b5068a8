"""ANN -> SNN conversion on the embedded digits: spikekit.convert vs spikingjelly's ann2snn.

Trains a digits_convnet-style ReLU CNN once (conv3x3-BN-ReLU x2, max-pool 2, dropout, linear;
fixed seed, the fixed stratified split of ``spikekit.data.digits_arrays``), then converts that
same ANN with

* spikekit: ``spikekit.convert.ann_to_snn(ann, x_train, mode="max" | "percentile")`` (99.9th
  percentile of the positive activations, weight normalisation, membrane starting at half the
  threshold, gated max pool, accumulate-only readout);
* spikingjelly (when installed): ``ann2snn.Converter(ann2snn.RateCodingRecipe(loader,
  mode="max" | "99.9%"))``, its defaults otherwise (an EMA with momentum 0.1 of per-batch
  maxima or percentiles, IFNode with soft reset starting at 0, the max pool applied to the
  rescaled spikes), run in multi-step mode.

Both get the training images as calibration data (spikingjelly through a DataLoader of batch
256), the test image repeated at every step, and are decoded by the mean of the output over
time; every T is a separate run from a fresh state. Accuracies are on the 360 test images
(one image = 0.28 points, so an SNN can beat its ANN by luck); the second table is the share
of test images where the SNN picks the ANN's class, the direct measure of conversion error.

    PYTHONPATH=src python benchmarks/convert.py
    PYTHONPATH=src python benchmarks/convert.py --pool avg --Ts 4 8 16 32 64 --epochs 8
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def make_ann(channels: tuple[int, int], pool: str, dropout: float = 0.2) -> nn.Sequential:
    c1, c2 = channels
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1, bias=False),
        nn.BatchNorm2d(c1),
        nn.ReLU(),
        nn.Conv2d(c1, c2, 3, padding=1, bias=False),
        nn.BatchNorm2d(c2),
        nn.ReLU(),
        nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(c2 * 16, 10),
    )


def train(ann: nn.Module, x: Tensor, y: Tensor, epochs: int, seed: int) -> float:
    torch.manual_seed(seed)
    opt = torch.optim.Adam(ann.parameters(), 3e-3)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    ann.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 64):
            idx = perm[i : i + 64]
            loss = F.cross_entropy(ann(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    ann.eval()
    return time.perf_counter() - t0


def accuracy(logits: Tensor, y: Tensor) -> float:
    return 100.0 * (logits.argmax(1) == y).float().mean().item()


def spikingjelly_converters(
    ann: nn.Module, x: Tensor, y: Tensor
) -> tuple[dict[str, tuple[Callable[[Tensor], Tensor], float]], str]:
    """``{column: (run(xs [T, B, ...]) -> [T, B, 10], conversion seconds)}`` and a status."""
    try:
        from spikingjelly.activation_based import ann2snn, functional
    except Exception as e:  # not installed, or a dependency missing
        return {}, f"spikingjelly not available ({type(e).__name__}: {e})"
    try:
        from spikingjelly.logger import logger

        logger.remove()  # one INFO line per conversion otherwise
    except Exception:
        pass
    from torch.utils.data import DataLoader, TensorDataset

    out: dict[str, tuple[Callable[[Tensor], Tensor], float]] = {}
    for mode in ("max", "99.9%"):
        loader = DataLoader(TensorDataset(x, y), batch_size=256)
        t0 = time.perf_counter()
        with contextlib.redirect_stderr(io.StringIO()):  # its calibration loop draws a tqdm bar
            snn = ann2snn.Converter(ann2snn.RateCodingRecipe(loader, mode=mode)).convert(copy.deepcopy(ann))
        seconds = time.perf_counter() - t0
        snn.eval()
        functional.set_step_mode(snn, "m")

        def run(xs: Tensor, snn: nn.Module = snn) -> Tensor:
            functional.reset_net(snn)
            return snn(xs)

        out[f"sj {mode}"] = (run, seconds)
    import spikingjelly

    version = getattr(spikingjelly, "__version__", None)
    if version is None:
        from importlib.metadata import version as _v

        version = _v("spikingjelly")
    return out, f"spikingjelly {version}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--Ts", type=int, nargs="+", default=[4, 8, 16, 32, 64])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--channels", type=int, nargs=2, default=[32, 64])
    parser.add_argument("--pool", choices=["max", "avg"], default="max")
    parser.add_argument("--percentile", type=float, default=99.9)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (small convs: 1 is fastest)")
    parser.add_argument("--no-peers", action="store_true", help="skip spikingjelly")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from spikekit.convert import ann_to_snn, decode
    from spikekit.data import digits_arrays
    from spikekit.encoding import direct

    xtr, ytr, xte, yte = digits_arrays()
    torch.manual_seed(args.seed)  # the initial weights, then the batches (in train)
    ann = make_ann(tuple(args.channels), args.pool)
    train_s = train(ann, xtr, ytr, args.epochs, args.seed)
    with torch.no_grad():
        pred_ann = ann(xte).argmax(1)
        acc_ann = accuracy(ann(xte), yte)
    print(
        f"ANN: {ann_summary(ann)}; {args.epochs} epochs in {train_s:.1f} s (seed {args.seed}); "
        f"test accuracy {acc_ann:.2f} % on {len(yte)} images"
    )

    runs: dict[str, tuple[Callable[[Tensor], Tensor], float]] = {}
    for mode in ("max", "percentile"):
        snn, report = ann_to_snn(ann, xtr, mode=mode, percentile=args.percentile)
        snn.eval()
        print(report)
        col = "ours max" if mode == "max" else f"ours p{args.percentile:g}"
        runs[col] = (snn, report.seconds)
    status = "spikingjelly skipped (--no-peers)"
    if not args.no_peers:
        peers, status = spikingjelly_converters(ann, xtr, ytr)
        runs.update(peers)
    print(status)

    cols = list(runs)
    acc: dict[str, dict[int, float]] = {c: {} for c in cols}
    agree: dict[str, dict[int, float]] = {c: {} for c in cols}  # same class as the ANN
    sim: dict[str, float] = {}
    with torch.no_grad():
        for c, (run, _) in runs.items():
            run(direct(xte[:8], 2))  # warm-up: one-off kernel loading is not simulation time
            t_sim = 0.0
            for T in args.Ts:
                xs = direct(xte, T)
                t0 = time.perf_counter()
                ys = run(xs)
                t_sim += time.perf_counter() - t0
                acc[c][T] = accuracy(decode(ys), yte)
                agree[c][T] = accuracy(decode(ys), pred_ann)
            sim[c] = t_sim

    header = ["T", "ANN", *cols]
    rows = [[str(T), f"{acc_ann:.2f}", *(f"{acc[c][T]:.2f}" for c in cols)] for T in args.Ts]
    rows.append(["convert s", "", *(f"{runs[c][1]:.3f}" for c in cols)])
    rows.append([f"run s (sum T={'+'.join(map(str, args.Ts))})", "", *(f"{sim[c]:.2f}" for c in cols)])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print()
    print("test accuracy (%) of the converted SNN by number of steps T")
    print(" | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)))
    print()
    print("agreement (%) with the ANN's predicted class")
    rows = [[str(T), "", *(f"{agree[c][T]:.2f}" for c in cols)] for T in args.Ts]
    print(" | ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)))
    ours = [c for c in cols if c.startswith("ours")]
    print()
    for c in ours:
        gaps = {T: acc_ann - acc[c][T] for T in args.Ts}
        within1 = [T for T in args.Ts if T <= 32 and gaps[T] <= 1.0]
        print(
            f"{c}: gap to ANN at T=8: {gaps.get(8, float('nan')):+.2f} points (target <= 3); "
            f"T <= 32 within 1 point: {within1 or 'none'}"
        )
    return 0


def ann_summary(ann: nn.Module) -> str:
    return " -> ".join(type(m).__name__ for m in ann)


if __name__ == "__main__":
    sys.exit(main())
