"""``spikekit bench``: CPU speed and memory of spikekit against the installed peer libraries.

Two benchmarks, each library measured in its own subprocess so that peak resident memory
(``ru_maxrss``) of one library is not inflated by another's allocations:

* **layer** (the Open Neuromorphic setup): ``Linear(n, n)`` then one LIF layer, input
  ``[T, B, n]``, loss = sum of output spikes, forward + backward. Reported: median time per
  iteration and peak RSS, and both as a ratio to the bare ``Linear`` (same loss on its output).
  The time ratio is the median over iterations of (library / bare Linear) with the two
  alternating in the library's process, so both see the same machine conditions; the memory
  ratio divides by the peak RSS of a process that ran only the bare Linear.
* **conv**: training throughput (samples/s, forward + backward + Adam step) of a small conv
  SNN, ``T = 4`` steps, batch 64, direct encoding (the same image at every step). Each library
  runs its own LIF; convolutions and pooling are plain torch applied to the time-folded batch
  ``[T*B, ...]``, so the difference between rows is the neuron implementation.
* **accuracy** (only with ``--only accuracy``): the same conv SNN trained per library on the
  embedded digits (8x8 upsampled to 28x28), same seed, data order and optimiser: test
  accuracy next to the training throughput.

Peers: snntorch ``snn.Leaky`` (stepped over time), norse ``LIFBoxCell`` (stepped over time;
norse has no multi-step box LIF), spikingjelly ``neuron.LIFNode(step_mode="m")`` (its
multi-step CPU path). All use ``tau = 2`` (``beta = 0.5``), threshold 1 and a hard reset to 0.

Results: a table on stdout, ``layer.csv``, ``conv.csv`` and ``results.md`` in the output
directory, and ``layer.png`` when matplotlib is installed.

Example (the command line)::

    spikekit bench --quick --out bench-results
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["LIBS", "add_parser", "main", "run_layer", "run_conv", "run_accuracy", "available"]

LIBS = ("spikekit", "snntorch", "norse", "spikingjelly")
_MODULE = {
    "spikekit": "spikekit",
    "snntorch": "snntorch",
    "norse": "norse",
    "spikingjelly": "spikingjelly",
}


def available(lib: str) -> bool:
    """Whether ``lib`` can be imported (checked without importing it)."""
    import importlib.util

    return importlib.util.find_spec(_MODULE[lib]) is not None


# ----------------------------------------------------------------------------- neurons per library
def _layer_neuron(lib: str) -> Callable[[Any], Any]:
    """``f(currents [T, B, n]) -> spikes [T, B, n]`` using ``lib``'s own LIF (tau 2, hard reset)."""
    import torch

    if lib == "spikekit":
        import spikekit as spk

        return spk.LIF(tau=2.0)
    if lib == "snntorch":
        import snntorch as snn

        lif = snn.Leaky(beta=0.5, threshold=1.0, reset_mechanism="zero")

        def f(xs: Any) -> Any:
            mem = lif.init_leaky()
            out = []
            for x in xs:
                spk, mem = lif(x, mem)
                out.append(spk)
            return torch.stack(out)

        return f
    if lib == "norse":
        from norse.torch import LIFBoxCell, LIFBoxParameters

        # beta = 1 - dt * tau_mem_inv = 0.5
        cell = LIFBoxCell(LIFBoxParameters(tau_mem_inv=torch.tensor(500.0), v_th=torch.tensor(1.0)), dt=0.001)

        def f(xs: Any) -> Any:
            state = None
            out = []
            for x in xs:
                z, state = cell(x, state)
                out.append(z)
            return torch.stack(out)

        return f
    if lib == "spikingjelly":
        from spikingjelly.activation_based import functional, neuron

        node = neuron.LIFNode(tau=2.0, v_threshold=1.0, v_reset=0.0, step_mode="m")

        def f(xs: Any) -> Any:
            functional.reset_net(node)
            return node(xs)

        return f
    raise ValueError(f"unknown library {lib!r}; expected 'linear' or one of {', '.join(LIBS)}")


def _peak_rss_mb() -> float:
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def _layer_worker(lib: str, n: int, T: int, B: int, repeats: int) -> dict[str, Any]:
    import torch

    torch.manual_seed(0)
    lin = torch.nn.Linear(n, n)
    xs = torch.randn(T, B, n)
    neuron = None if lib == "linear" else _layer_neuron(lib)

    def it(with_neuron: bool) -> float:
        t0 = time.perf_counter()
        y = lin(xs)
        out = neuron(y) if with_neuron else y
        del y
        out.sum().backward()
        lin.weight.grad = lin.bias.grad = None
        return time.perf_counter() - t0

    first = it(neuron is not None)  # warm-up (includes the one-off kernel load / JIT cache read)
    if neuron is None:
        times = [it(False) for _ in range(repeats)]
        return {"median_s": statistics.median(times), "first_s": first, "peak_rss_mb": _peak_rss_mb()}
    # The ratio to the bare Linear is measured here too, alternating the two: on a shared
    # machine the speed drifts over seconds, and pairs measured back to back see the same
    # conditions. (The bare Linear's iteration allocates a subset of this one's memory, so
    # the peak RSS is still this library's.)
    it(False)
    pairs = [(it(False), it(True)) for _ in range(repeats)]
    return {
        "median_s": statistics.median(b for _, b in pairs),
        "linear_s": statistics.median(a for a, _ in pairs),
        "paired_x": statistics.median(b / a for a, b in pairs),
        "first_s": first,
        "peak_rss_mb": _peak_rss_mb(),
    }


class _ConvSNN:
    """Factory of the conv SNN with ``lib``'s LIF (built lazily: torch imported by the worker)."""

    @staticmethod
    def build(lib: str) -> Any:
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.c1 = nn.Conv2d(1, 16, 3, padding=1)
                self.c2 = nn.Conv2d(16, 32, 3, padding=1)
                self.fc = nn.Linear(32 * 7 * 7, 10)
                self.n1, self.n2, self.n3 = (_layer_neuron(lib) for _ in range(3))
                for i, m in enumerate((self.n1, self.n2, self.n3)):
                    if isinstance(m, nn.Module):
                        self.add_module(f"neuron{i}", m)

            def forward(self, img: torch.Tensor, T: int) -> torch.Tensor:
                B = img.shape[0]
                # Direct encoding: the first conv sees the same image at every step.
                y = self.c1(img).unsqueeze(0).expand(T, -1, -1, -1, -1)
                z = self.n1(y)
                z = nn.functional.max_pool2d(self.c2(nn.functional.max_pool2d(z.flatten(0, 1), 2)), 2)
                z = self.n2(z.view(T, B, *z.shape[1:]))
                z = self.n3(self.fc(z.flatten(2)))
                return z.mean(0)  # firing rate per class

        return Net()


def _conv_worker(lib: str, T: int, B: int, steps: int) -> dict[str, Any]:
    import torch

    torch.manual_seed(0)
    net = _ConvSNN.build(lib)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    img = torch.rand(B, 1, 28, 28)
    y = torch.randint(0, 10, (B,))

    def it() -> None:
        loss = torch.nn.functional.cross_entropy(net(img, T) * 10, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    it()  # warm-up
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        it()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"median_s": med, "samples_per_s": B / med, "peak_rss_mb": _peak_rss_mb()}


def _accuracy_worker(lib: str, T: int, B: int, epochs: int) -> dict[str, Any]:
    """Train the conv SNN of ``lib`` on the embedded digits (8x8 upsampled to 28x28).

    Same seed, data order, optimiser and loss for every library, so the rows differ by the
    neuron (and its default surrogate) only: the accuracy next to the throughput.
    """
    import torch

    from spikekit.data.vision import digits_arrays

    x_tr, y_tr, x_te, y_te = digits_arrays()
    up = lambda x: torch.nn.functional.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)  # noqa: E731
    x_tr, x_te = up(x_tr), up(x_te)
    torch.manual_seed(0)
    net = _ConvSNN.build(lib)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    order = torch.Generator().manual_seed(0)
    train_s = 0.0
    for _ in range(epochs):
        perm = torch.randperm(len(y_tr), generator=order)
        t0 = time.perf_counter()
        for i in range(0, len(perm) - B + 1, B):  # full batches only: every step has B samples
            idx = perm[i : i + B]
            loss = torch.nn.functional.cross_entropy(net(x_tr[idx], T) * 10, y_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        train_s += time.perf_counter() - t0
    with torch.no_grad():
        pred = torch.cat([net(x_te[i : i + 256], T).argmax(1) for i in range(0, len(y_te), 256)])
    steps = epochs * (len(y_tr) // B)
    return {
        "test_acc": (pred == y_te).float().mean().item(),
        "samples_per_s": steps * B / train_s,
        "train_s": train_s,
        "peak_rss_mb": _peak_rss_mb(),
    }


# ----------------------------------------------------------------------------- orchestration
def _spawn(task: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; returns its result or ``{"error": ...}``."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "spikekit.bench", "--worker", json.dumps(task)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        err = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": err[:200]}
    return json.loads(lines[-1])


def run_layer(
    sizes: Sequence[int], T: int, B: int, repeats: int, libs: Sequence[str], timeout: float = 600
) -> list[dict[str, Any]]:
    """Layer benchmark rows: one per (n, library), with ratios to the bare Linear.

    Args:
        sizes: layer widths ``n``. T: time steps. B: batch size. repeats: timed iterations.
        libs: libraries to compare (the bare ``Linear`` is always measured).
        timeout: seconds allowed per subprocess.

    Returns:
        Rows with keys ``n, lib, median_s, peak_rss_mb, time_x, mem_x`` (or ``error``); a
        library's row also has ``linear_s``, the bare Linear's median in its own process.
    """
    rows = []
    for n in sizes:
        base = _spawn({"kind": "layer", "lib": "linear", "n": n, "T": T, "B": B, "repeats": repeats}, timeout)
        rows.append({"n": n, "lib": "linear", **base})
        for lib in libs:
            r = _spawn({"kind": "layer", "lib": lib, "n": n, "T": T, "B": B, "repeats": repeats}, timeout)
            if "error" not in r and "error" not in base:
                r["time_x"] = r["paired_x"]
                r["mem_x"] = r["peak_rss_mb"] / base["peak_rss_mb"]
            rows.append({"n": n, "lib": lib, **r})
        if "error" not in base:
            base["time_x"] = base["mem_x"] = 1.0
            rows[-1 - len(libs)].update(time_x=1.0, mem_x=1.0)
        for row in rows[-1 - len(libs) :]:
            print(_fmt_layer_row(row), flush=True)
    return rows


def run_conv(T: int, B: int, steps: int, libs: Sequence[str], timeout: float = 600) -> list[dict[str, Any]]:
    """Conv SNN training throughput rows (``lib, samples_per_s, median_s, peak_rss_mb``)."""
    rows = []
    for lib in libs:
        r = {"lib": lib, **_spawn({"kind": "conv", "lib": lib, "T": T, "B": B, "steps": steps}, timeout)}
        rows.append(r)
        print(_fmt_conv_row(r), flush=True)
    return rows


def run_accuracy(
    T: int, B: int, epochs: int, libs: Sequence[str], timeout: float = 1200
) -> list[dict[str, Any]]:
    """Conv SNN trained on digits per library: rows ``lib, test_acc, samples_per_s, train_s``."""
    rows = []
    for lib in libs:
        r = {
            "lib": lib,
            **_spawn({"kind": "accuracy", "lib": lib, "T": T, "B": B, "epochs": epochs}, timeout),
        }
        rows.append(r)
        if "error" in r:
            print(f"{lib:<13} error: {r['error']}", flush=True)
        else:
            print(
                f"{lib:<13} {r['test_acc'] * 100:>9.2f}% {r['samples_per_s']:>10.1f} {r['train_s']:>9.1f}",
                flush=True,
            )
    return rows


def _fmt_layer_row(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['n']:>6} {r['lib']:<13} error: {r['error']}"
    return (
        f"{r['n']:>6} {r['lib']:<13} {r['median_s'] * 1e3:>10.1f} {r.get('time_x', float('nan')):>8.2f}x"
        f" {r['peak_rss_mb']:>10.0f} {r.get('mem_x', float('nan')):>7.2f}x"
    )


def _fmt_conv_row(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['lib']:<13} error: {r['error']}"
    return (
        f"{r['lib']:<13} {r['samples_per_s']:>10.1f} {r['median_s'] * 1e3:>10.1f} {r['peak_rss_mb']:>10.0f}"
    )


def _md_section(
    title: str,
    header: list[str],
    rows: list[dict[str, Any]],
    ids: tuple[str, ...],
    cells: Callable[..., list[str]],
) -> list[str]:
    """A markdown section with one table: ``ids`` cells then ``cells(row)``, or the row's error."""
    lines = ["", f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        rest = [f"error: {r['error']}"] + [""] * (len(header) - len(ids) - 1) if "error" in r else cells(r)
        lines.append("| " + " | ".join([*(str(r[k]) for k in ids), *rest]) + " |")
    return lines


def _write(
    out: Path,
    layer: list[dict[str, Any]],
    conv: list[dict[str, Any]],
    meta: dict[str, Any],
    acc: list[dict[str, Any]] | None = None,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    lcols = ["n", "lib", "median_s", "linear_s", "time_x", "peak_rss_mb", "mem_x", "first_s", "error"]
    ccols = ["lib", "samples_per_s", "median_s", "peak_rss_mb", "error"]
    acols = ["lib", "test_acc", "samples_per_s", "train_s", "peak_rss_mb", "error"]
    tables = [("layer.csv", layer, lcols), ("conv.csv", conv, ccols)]
    if acc:
        tables.append(("accuracy.csv", acc, acols))
    for name, rows, cols in tables:
        with open(out / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
    md = [f"# spikekit bench ({meta['when']})", "", f"Settings: `{json.dumps(meta['settings'])}`"]
    md += _md_section(
        "Layer: Linear(n, n) + LIF, forward + backward",
        ["n", "library", "median ms", "x Linear", "peak RSS MB", "x Linear"],
        layer,
        ("n", "lib"),
        lambda r: [
            f"{r['median_s'] * 1e3:.1f}",
            f"{r.get('time_x', float('nan')):.2f}",
            f"{r['peak_rss_mb']:.0f}",
            f"{r.get('mem_x', float('nan')):.2f}",
        ],
    )
    if conv:
        md += _md_section(
            "Conv SNN training throughput",
            ["library", "samples/s", "ms/step", "peak RSS MB"],
            conv,
            ("lib",),
            lambda r: [f"{r['samples_per_s']:.1f}", f"{r['median_s'] * 1e3:.1f}", f"{r['peak_rss_mb']:.0f}"],
        )
    if acc:
        md += _md_section(
            "Conv SNN trained on digits",
            ["library", "test acc %", "samples/s", "train s"],
            acc,
            ("lib",),
            lambda r: [f"{r['test_acc'] * 100:.2f}", f"{r['samples_per_s']:.1f}", f"{r['train_s']:.1f}"],
        )
    (out / "results.md").write_text("\n".join(md) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    ok = [r for r in layer if "error" not in r and r["lib"] != "linear"]
    if not ok:
        return
    sizes = sorted({r["n"] for r in ok})
    libs = list(dict.fromkeys(r["lib"] for r in ok))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.8 / len(libs)
    for i, lib in enumerate(libs):
        for ax, key in zip(axes, ("time_x", "mem_x"), strict=True):
            vals = [
                next((r[key] for r in ok if r["n"] == n and r["lib"] == lib), float("nan")) for n in sizes
            ]
            ax.bar([j + i * width for j in range(len(sizes))], vals, width, label=lib)
    for ax, title in zip(axes, ("time / bare Linear", "peak RSS / bare Linear"), strict=True):
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(sizes))], [f"n={n}" for n in sizes])
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_title(title)
        ax.set_yscale("log")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out / "layer.png", dpi=120)
    plt.close(fig)


def main(args: argparse.Namespace) -> int:
    """Run the benchmarks described by parsed ``args`` (see :func:`add_parser`); returns an exit code."""

    def given(value: Any, default: Any) -> Any:  # 0 is a value (refused below), not "unset"
        return default if value is None else value

    if args.quick:
        # the machine is often shared: 3 samples made medians jump 2x
        sizes, T, repeats, steps = (
            given(args.sizes, [512, 2048]),
            given(args.T, 100),
            given(args.repeats, 5),
            3,
        )
    else:
        sizes, T, repeats = given(args.sizes, [512, 2048, 4096]), given(args.T, 500), given(args.repeats, 11)
        steps = 10
    steps = given(args.steps, steps)
    for name, v in (
        ("T", T),
        ("B", args.B),
        ("repeats", repeats),
        ("steps", steps),
        ("epochs", args.epochs),
        *(("n", n) for n in sizes),
    ):
        if v <= 0:
            print(f"spikekit bench: {name} must be > 0, got {v}", file=sys.stderr)
            return 2
    unknown = [lib for lib in args.libs if lib not in LIBS]
    if unknown:
        print(
            f"spikekit bench: unknown libraries {unknown}; expected some of {', '.join(LIBS)}",
            file=sys.stderr,
        )
        return 2
    libs = [lib for lib in args.libs if available(lib)]
    skipped = sorted(set(args.libs) - set(libs))
    if skipped:
        print(f"not installed, skipped: {', '.join(skipped)}")
    settings = {"sizes": sizes, "T": T, "B": args.B, "repeats": repeats, "conv_steps": steps, "libs": libs}
    # Other processes share the cores: the load average says how far to trust the medians.
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []
    settings["load_avg_at_start"] = load
    if load:
        print(f"load average at start (1, 5, 15 min): {load[0]}, {load[1]}, {load[2]}")
    print(f"layer benchmark: Linear(n, n) + LIF, T={T}, B={args.B}, forward+backward, median of {repeats}")
    print(f"{'n':>6} {'library':<13} {'median ms':>10} {'x Linear':>9} {'peak MB':>10} {'x Linear':>8}")
    layer = run_layer(sizes, T, args.B, repeats, libs) if "layer" in args.only else []
    conv: list[dict[str, Any]] = []
    if "conv" in args.only:
        print(f"\nconv SNN training: T=4, batch 64, 28x28 direct encoding, median of {steps} steps")
        print(f"{'library':<13} {'samples/s':>10} {'ms/step':>10} {'peak MB':>10}")
        conv = run_conv(4, 64, steps, libs)
    acc: list[dict[str, Any]] = []
    if "accuracy" in args.only:
        print(f"\nconv SNN trained on digits (8x8 upsampled to 28x28): T=4, batch 64, {args.epochs} epochs")
        print(f"{'library':<13} {'test acc':>10} {'samples/s':>10} {'train s':>9}")
        acc = run_accuracy(4, 64, args.epochs, libs)
    meta = {"when": time.strftime("%Y-%m-%d %H:%M"), "settings": settings}
    _write(Path(args.out), layer, conv, meta, acc)
    print(f"\nwrote {Path(args.out) / 'results.md'} (+ layer.csv, conv.csv, layer.png if matplotlib)")
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``bench`` sub-command on an ``argparse`` sub-parsers object.

    Returns:
        The new sub-parser (its ``func`` default is :func:`main`).
    """
    p = subparsers.add_parser("bench", help="CPU speed/memory against snntorch, norse, spikingjelly")
    _add_arguments(p)
    p.set_defaults(func=main)
    return p


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="n in {512, 2048}, T=100, few repeats (< 2 min)")
    p.add_argument("--sizes", type=int, nargs="+", help="layer widths n (default 512 2048 4096)")
    p.add_argument("-T", type=int, help="time steps of the layer benchmark (default 500; quick 100)")
    p.add_argument("-B", type=int, default=16, help="batch size of the layer benchmark (default 16)")
    p.add_argument("--repeats", type=int, help="timed iterations per layer measurement (default 11; quick 5)")
    p.add_argument("--steps", type=int, help="timed training steps of the conv benchmark (default 10)")
    p.add_argument("--libs", nargs="+", default=list(LIBS), help=f"libraries (default: {' '.join(LIBS)})")
    p.add_argument(
        "--only",
        nargs="+",
        default=["layer", "conv"],
        choices=["layer", "conv", "accuracy"],
        help="benchmarks to run (default: layer conv; accuracy trains the conv SNN on digits)",
    )
    p.add_argument("--epochs", type=int, default=5, help="epochs of the accuracy run (default 5)")
    p.add_argument("--out", default="bench-results", help="output directory (default bench-results)")


def _worker_main(task: dict[str, Any]) -> None:
    if task["kind"] == "layer":
        r = _layer_worker(task["lib"], task["n"], task["T"], task["B"], task["repeats"])
    elif task["kind"] == "accuracy":
        r = _accuracy_worker(task["lib"], task["T"], task["B"], task["epochs"])
    else:
        r = _conv_worker(task["lib"], task["T"], task["B"], task["steps"])
    print(json.dumps(r))


if __name__ == "__main__":  # pragma: no cover - the subprocess entry point
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        _worker_main(json.loads(sys.argv[2]))
    else:
        parser = argparse.ArgumentParser(prog="spikekit bench")
        _add_arguments(parser)
        sys.exit(main(parser.parse_args()))
