"""``spikekit bench``: CPU speed and memory of spikekit against the installed peer libraries.

Two benchmarks, each library measured in its own subprocess so that peak resident memory
(``ru_maxrss``) of one library is not inflated by another's allocations:

* **layer** (the Open Neuromorphic setup): ``Linear(n, n)`` then one neuron layer, input
  ``[T, B, n]``, loss = sum of the outputs, forward + backward. spikekit runs every registered
  neuron (``--neurons``, default all of :func:`spikekit.neurons.list_neurons`), the peers their
  LIF. Reported: median time per iteration and peak RSS, and both as a ratio to the bare
  ``Linear`` (same loss on its output). The time ratio is the median over iterations of
  (library / bare Linear) with the two alternating in the library's process, so both see the
  same machine conditions; the memory ratio divides by the peak RSS of a process that ran only
  the bare Linear.
* **compile** (spikekit's fused kernel, first use): per neuron, the first forward + backward
  of a tiny layer in a fresh process with an empty kernel cache (``SPIKEKIT_CACHE`` set to a
  new temporary directory: tracing, printing and numba compilation), then again in a second
  fresh process with that now-warm cache (loading numba's cached machine code).
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

Results: a table on stdout, ``layer.csv``, ``conv.csv``, ``first_use.csv`` and ``results.md``
in the output directory, and ``layer.png`` when matplotlib is installed.

Example (the command line)::

    spikekit bench --quick --out bench-results
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "LIBS",
    "add_parser",
    "main",
    "run_layer",
    "run_conv",
    "run_accuracy",
    "run_first_use",
    "available",
    "parse_neurons",
]

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
# Constructor keywords of spikekit's neurons in the layer benchmark: each neuron's defaults,
# except where those (almost) never spike on the Linear's output, which is ~N(0, 0.58^2) per
# element and independent over time. Spike rates (fraction of outputs that are spikes) measured
# at T = 500, B = 16, n = 512 with seed 0:
_NEURON_KWARGS: dict[str, dict[str, float]] = {
    # tau 2 (beta 0.5), threshold 1, hard reset: the setting of the peers' LIF rows (0.13 %)
    "lif": {"tau": 2.0},
    # the default v_th = 1 never spikes (the input is scaled by 1 - beta = 0.1, the membrane's
    # std is ~0.13); v_th = 0.25: ~0.5 % over the first 100 steps, 0.19 % over 500 once the
    # adaptation (tau_adapt 200, adapt 1.8) has built up
    "alif": {"v_th": 0.25},
    # default v_th = 1: 0.004 % (one spike per neuron in ~50 sequences); v_th = 0.5: 1.2 %
    "rf": {"v_th": 0.5},
    # in mV, the input (~0.6) is far below rheobase and no threshold helps (v_th is the spike
    # cut-off): the constant term 140 -> 150 is the bias current I = 10 of Izhikevich (2003)'s
    # regular-spiking demo, 0.86 %
    "izhikevich": {"k0": 150.0},
    # with their defaults: eif 12.7 %, if 1.6 %, qif 2.5 %, adex 0.88 %, cubalif 0.48 %; li does
    # not spike (its output is the membrane). A neuron registered later and not listed here is
    # built with its defaults, or with a lower v_th if those spike below _MIN_RATE (see
    # _spikekit_neuron); the keywords used are in the csv's `kwargs` column.
}
_MIN_RATE = 1e-3


def parse_neurons(values: Sequence[str] | None) -> list[str]:
    """``--neurons`` values (``all``, or names separated by commas/spaces) -> registered names.

    Raises:
        ValueError: an unknown name (the message lists the registered ones).
    """
    from spikekit.neurons import get_neuron, list_neurons

    names = [v.strip().lower() for item in values or ["all"] for v in item.split(",") if v.strip()]
    if not names or "all" in names:
        return list_neurons()
    unknown = [name for name in names if name not in list_neurons()]
    if unknown:
        raise ValueError(f"unknown neurons {unknown}; expected 'all' or some of {', '.join(list_neurons())}")
    return [get_neuron(name).__name__.lower() for name in dict.fromkeys(names)]


def _spiking(neuron: Any) -> bool:
    """Whether ``neuron`` outputs binary spikes (LI, for one, outputs its membrane)."""
    o = getattr(neuron, "options", None)
    return o is not None and o.surrogate is not None and o.spiking and o.binary


def _spikekit_neuron(name: str, probe: Callable[[], Any] | None = None) -> tuple[Any, dict[str, float]]:
    """spikekit's neuron ``name`` built for the layer benchmark, with its constructor keywords.

    ``_NEURON_KWARGS`` holds the measured choices. A spiking neuron not listed there whose
    spike rate on ``probe()`` (the Linear's output, computed only then) is below ``_MIN_RATE``
    gets its threshold halved until the rate is reached (at most 8 times; if it never is, its
    defaults are kept and the csv's rate column shows it), so a newly registered neuron is not
    timed on an all-silent layer unnoticed. That search runs the neuron, so the row's
    ``first_s`` then excludes the kernel's load. Without ``probe`` no search is run (the
    kernel, and so its first-use cost, does not depend on the parameter values).
    """
    import torch

    from spikekit.neurons import get_neuron

    cls = get_neuron(name)
    kwargs = dict(_NEURON_KWARGS.get(name, {}))
    neuron = cls(**kwargs)
    decl = {p.name: p for p in getattr(cls, "parameters_decl", ())}
    if probe is None or name in _NEURON_KWARGS or not _spiking(neuron) or "v_th" not in decl:
        return neuron, kwargs
    v_th = float(decl["v_th"].default)
    with torch.no_grad():
        y = probe()
        candidate = neuron
        for _ in range(9):
            if candidate(y).float().mean().item() >= _MIN_RATE:
                return candidate, kwargs
            v_th /= 2
            kwargs = {"v_th": v_th}
            candidate = cls(**kwargs)
    return neuron, {}


def peer_lif(lib: str) -> Any:
    """``lib``'s own LIF module as the benchmarks run it: tau 2 (beta 0.5), threshold 1, hard
    reset to 0 (built on torch's current default device)."""
    import torch

    if lib == "snntorch":
        import snntorch as snn

        return snn.Leaky(beta=0.5, threshold=1.0, reset_mechanism="zero")
    if lib == "norse":
        from norse.torch import LIFBoxCell, LIFBoxParameters

        # beta = 1 - dt * tau_mem_inv = 0.5
        return LIFBoxCell(LIFBoxParameters(tau_mem_inv=torch.tensor(500.0), v_th=torch.tensor(1.0)), dt=0.001)
    if lib == "spikingjelly":
        from spikingjelly.activation_based import neuron

        return neuron.LIFNode(tau=2.0, v_threshold=1.0, v_reset=0.0, step_mode="m")
    raise ValueError(f"unknown library {lib!r}; expected one of {', '.join(LIBS)}")


def _layer_neuron(
    lib: str, name: str = "lif", module: Any = None, compile_step: bool = False
) -> Callable[[Any], Any]:
    """``f(currents [T, B, n]) -> outputs [T, B, n]``: spikekit's neuron ``name``, or ``lib``'s
    own LIF (:func:`peer_lif`, or ``module`` when given; the only neuron the peers are run
    with). ``compile_step``: norse's cell stepped through ``torch.compile``."""
    import torch

    if lib == "spikekit":
        return _spikekit_neuron(name)[0]
    if name != "lif":
        raise ValueError(f"{lib} is benchmarked with its LIF only, not {name!r}")
    node = peer_lif(lib) if module is None else module
    if compile_step and lib != "norse":
        raise ValueError(f"compile_step is for norse's stepped cell, not {lib}")
    if lib == "snntorch":

        def f(xs: Any) -> Any:
            mem = node.init_leaky()
            out = []
            for x in xs:
                spk, mem = node(x, mem)
                out.append(spk)
            return torch.stack(out)

        return f
    if lib == "norse":
        step = torch.compile(node) if compile_step else node

        def f(xs: Any) -> Any:
            # the first step makes the state (None -> tensors) eagerly, so a compiled step
            # sees one signature
            z, state = node(xs[0], None)
            out = [z]
            for x in xs[1:]:
                z, state = step(x, state)
                out.append(z)
            return torch.stack(out)

        return f
    from spikingjelly.activation_based import functional

    def f(xs: Any) -> Any:
        functional.reset_net(node)
        return node(xs)

    return f


def _peak_rss_mb() -> float:
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def _layer_worker(lib: str, n: int, T: int, B: int, repeats: int, name: str = "lif") -> dict[str, Any]:
    import torch

    torch.manual_seed(0)
    lin = torch.nn.Linear(n, n)
    xs = torch.randn(T, B, n)
    extra: dict[str, Any] = {}
    neuron: Any = None
    if lib == "spikekit":
        neuron, kwargs = _spikekit_neuron(name, probe=lambda: lin(xs))
        extra["kwargs"] = json.dumps(kwargs)
    elif lib != "linear":
        neuron = _layer_neuron(lib, name)
    rate: list[float] = []

    def it(with_neuron: bool, record: bool = False) -> float:
        t0 = time.perf_counter()
        y = lin(xs)
        out = neuron(y) if with_neuron else y
        del y
        out.sum().backward()
        lin.weight.grad = lin.bias.grad = None
        dt = time.perf_counter() - t0
        if record:
            rate.append(out.detach().float().mean().item())
        return dt

    # warm-up (includes the one-off kernel load / JIT cache read); it also gives the spike rate
    first = it(neuron is not None, record=True)
    if neuron is not None and (lib != "spikekit" or _spiking(neuron)):
        extra["rate"] = rate[0]
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
        **extra,
    }


#: The tiny layer of the first-use measurement: its cost is the kernel's, not the layer's.
FIRST_USE_SIZE = {"n": 32, "T": 16, "B": 2}


def _first_use_worker(name: str, n: int, T: int, B: int) -> dict[str, Any]:
    """Time the first forward + backward through spikekit's neuron ``name`` in this process.

    Run in a fresh interpreter: the first call traces the step, prints the kernel source and
    compiles it (empty ``SPIKEKIT_CACHE``) or loads numba's cached code (warm cache). Both also
    include the fused backend's one-off load (importing numba). A second call is timed too, as
    the steady cost the first one compares with.
    """
    import torch

    from spikekit import kernels

    torch.manual_seed(0)
    lin = torch.nn.Linear(n, n)
    xs = torch.randn(T, B, n)
    neuron, _ = _spikekit_neuron(name)

    def it() -> float:
        t0 = time.perf_counter()
        neuron(lin(xs)).sum().backward()
        lin.weight.grad = lin.bias.grad = None
        return time.perf_counter() - t0

    first = it()
    later = it()
    try:  # after the timed calls: choosing the backend traces the step
        y = lin(xs).detach()
        state = neuron.initial_state(y[0])
        params = neuron._cast(neuron.params(), y)
        backend = kernels.explain(type(neuron).step_fn, y, state, params, neuron.options)
    except Exception as e:  # informative only; the times above stand
        backend = f"? ({type(e).__name__})"
    return {"first_s": first, "later_s": later, "backend": backend}


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
def _spawn(task: dict[str, Any], timeout: float, env_extra: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter; returns its result or ``{"error": ...}``."""
    env = {**os.environ, **(env_extra or {})}
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
    sizes: Sequence[int],
    T: int,
    B: int,
    repeats: int,
    libs: Sequence[str],
    timeout: float = 600,
    neurons: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Layer benchmark rows: one per (n, library, neuron), with ratios to the bare Linear.

    Args:
        sizes: layer widths ``n``. T: time steps. B: batch size. repeats: timed iterations.
        libs: libraries to compare (the bare ``Linear`` is always measured).
        timeout: seconds allowed per subprocess.
        neurons: spikekit's neurons to run (default: every registered one); the peers always
            run their LIF.

    Returns:
        Rows with keys ``n, lib, neuron, median_s, peak_rss_mb, time_x, mem_x`` (or ``error``);
        a library's row also has ``linear_s``, the bare Linear's median in its own process,
        ``rate`` (the fraction of outputs that are spikes, for spiking neurons) and, for
        spikekit, ``kwargs`` (the neuron's constructor keywords, JSON).
    """
    names = parse_neurons(None) if neurons is None else list(neurons)
    rows = []
    for n in sizes:
        task = {"kind": "layer", "n": n, "T": T, "B": B, "repeats": repeats}
        base = _spawn({**task, "lib": "linear"}, timeout)
        if "error" not in base:
            base.update(time_x=1.0, mem_x=1.0)
        rows.append({"n": n, "lib": "linear", "neuron": "", **base})
        print(_fmt_layer_row(rows[-1]), flush=True)
        for lib in libs:
            for name in names if lib == "spikekit" else ["lif"]:
                r = _spawn({**task, "lib": lib, "neuron": name}, timeout)
                if "error" not in r and "error" not in base:
                    r["time_x"] = r["paired_x"]
                    r["mem_x"] = r["peak_rss_mb"] / base["peak_rss_mb"]
                rows.append({"n": n, "lib": lib, "neuron": name, **r})
                print(_fmt_layer_row(rows[-1]), flush=True)
    return rows


def run_first_use(neurons: Sequence[str] | None = None, timeout: float = 600) -> list[dict[str, Any]]:
    """First-use cost of spikekit's fused kernel per neuron (see :func:`_first_use_worker`).

    For each neuron: a fresh process with ``SPIKEKIT_CACHE`` pointing to a new empty directory
    (``cold_s``), then a second fresh process on that same, now warm, directory (``warm_s``,
    and ``later_s``: its second call). The directory is removed afterwards.

    Returns:
        Rows with keys ``neuron, cold_s, warm_s, later_s, backend`` (or ``error``).
    """
    names = parse_neurons(None) if neurons is None else list(neurons)
    rows = []
    for name in names:
        cache = tempfile.mkdtemp(prefix="spikekit-bench-cache-")
        try:
            task = {"kind": "first_use", "neuron": name, **FIRST_USE_SIZE}
            env = {"SPIKEKIT_CACHE": cache}
            cold = _spawn(task, timeout, env)
            warm = _spawn(task, timeout, env) if "error" not in cold else {}
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        row: dict[str, Any] = {"neuron": name}
        if "error" in cold or "error" in warm:
            row["error"] = cold.get("error") or warm.get("error")
        else:
            row.update(
                cold_s=cold["first_s"],
                warm_s=warm["first_s"],
                later_s=warm["later_s"],
                backend=warm["backend"],
            )
        rows.append(row)
        print(_fmt_first_use_row(row), flush=True)
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
        return f"{r['n']:>6} {r['lib']:<13} {r['neuron']:<9} error: {r['error']}"
    rate = f"{r['rate'] * 100:>7.2f}%" if "rate" in r else ""
    return (
        f"{r['n']:>6} {r['lib']:<13} {r['neuron']:<9} {r['median_s'] * 1e3:>10.1f}"
        f" {r.get('time_x', float('nan')):>8.2f}x {r['peak_rss_mb']:>10.0f} {r.get('mem_x', float('nan')):>7.2f}x"
        f" {rate}"
    ).rstrip()


def _fmt_first_use_row(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['neuron']:<9} error: {r['error']}"
    return (
        f"{r['neuron']:<9} {r['cold_s']:>8.2f} {r['warm_s']:>8.2f} {r['later_s'] * 1e3:>9.1f}  {r['backend']}"
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
    first_use: list[dict[str, Any]] | None = None,
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    lcols = [
        "n",
        "lib",
        "neuron",
        "median_s",
        "linear_s",
        "time_x",
        "peak_rss_mb",
        "mem_x",
        "first_s",
        "rate",
        "kwargs",
        "error",
    ]
    ccols = ["lib", "samples_per_s", "median_s", "peak_rss_mb", "error"]
    acols = ["lib", "test_acc", "samples_per_s", "train_s", "peak_rss_mb", "error"]
    fcols = ["neuron", "cold_s", "warm_s", "later_s", "backend", "error"]
    tables = [("layer.csv", layer, lcols), ("conv.csv", conv, ccols)]
    if acc:
        tables.append(("accuracy.csv", acc, acols))
    if first_use:
        tables.append(("first_use.csv", first_use, fcols))
    for name, rows, cols in tables:
        with open(out / name, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            w.writerows(rows)
    md = [f"# spikekit bench ({meta['when']})", "", f"Settings: `{json.dumps(meta['settings'])}`"]
    md += _md_section(
        "Layer: Linear(n, n) + neuron, forward + backward",
        ["n", "library", "neuron", "median ms", "x Linear", "peak RSS MB", "x Linear", "spike rate %"],
        layer,
        ("n", "lib", "neuron"),
        lambda r: [
            f"{r['median_s'] * 1e3:.1f}",
            f"{r.get('time_x', float('nan')):.2f}",
            f"{r['peak_rss_mb']:.0f}",
            f"{r.get('mem_x', float('nan')):.2f}",
            f"{r['rate'] * 100:.2f}" if "rate" in r else "",
        ],
    )
    if first_use:
        size = ", ".join(f"{k}={v}" for k, v in FIRST_USE_SIZE.items())
        md += _md_section(
            f"Kernel first use: first forward + backward in a fresh process ({size})",
            ["neuron", "cold cache s", "warm cache s", "later call ms", "backend"],
            first_use,
            ("neuron",),
            lambda r: [f"{r['cold_s']:.2f}", f"{r['warm_s']:.2f}", f"{r['later_s'] * 1e3:.1f}", r["backend"]],
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
    ok = [
        {**r, "lib": f"{r['lib']} {r['neuron']}"} for r in layer if "error" not in r and r["lib"] != "linear"
    ]
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
    try:
        neurons = parse_neurons(args.neurons)
    except ValueError as e:
        print(f"spikekit bench: {e}", file=sys.stderr)
        return 2
    libs = [lib for lib in args.libs if available(lib)]
    skipped = sorted(set(args.libs) - set(libs))
    if skipped:
        print(f"not installed, skipped: {', '.join(skipped)}")
    settings = {
        "sizes": sizes,
        "T": T,
        "B": args.B,
        "repeats": repeats,
        "conv_steps": steps,
        "libs": libs,
        "neurons": neurons,
    }
    # Other processes share the cores: the load average says how far to trust the medians.
    load = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else []
    settings["load_avg_at_start"] = load
    if load:
        print(f"load average at start (1, 5, 15 min): {load[0]}, {load[1]}, {load[2]}")
    layer: list[dict[str, Any]] = []
    if "layer" in args.only:
        print(
            f"layer benchmark: Linear(n, n) + neuron (spikekit: {', '.join(neurons)}; peers: lif),"
            f" T={T}, B={args.B}, forward+backward, median of {repeats}"
        )
        print(
            f"{'n':>6} {'library':<13} {'neuron':<9} {'median ms':>10} {'x Linear':>9} {'peak MB':>10}"
            f" {'x Linear':>8} {'rate':>8}"
        )
        layer = run_layer(sizes, T, args.B, repeats, libs, neurons=neurons)
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
    first_use: list[dict[str, Any]] = []
    if "compile" in args.only:
        if "spikekit" in libs:
            size = ", ".join(f"{k}={v}" for k, v in FIRST_USE_SIZE.items())
            print(f"\nkernel first use: first forward+backward in a fresh process ({size})")
            print(f"{'neuron':<9} {'cold s':>8} {'warm s':>8} {'later ms':>9}  backend")
            first_use = run_first_use(neurons)
        else:
            print("\nkernel first use: skipped (spikekit not among --libs)")
    meta = {"when": time.strftime("%Y-%m-%d %H:%M"), "settings": settings}
    _write(Path(args.out), layer, conv, meta, acc, first_use)
    print(
        f"\nwrote {Path(args.out) / 'results.md'} (+ layer.csv, conv.csv, first_use.csv, layer.png if matplotlib)"
    )
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
    p.add_argument("--quick", action="store_true", help="n in {512, 2048}, T=100, few repeats")
    p.add_argument("--sizes", type=int, nargs="+", help="layer widths n (default 512 2048 4096)")
    p.add_argument("-T", type=int, help="time steps of the layer benchmark (default 500; quick 100)")
    p.add_argument("-B", type=int, default=16, help="batch size of the layer benchmark (default 16)")
    p.add_argument("--repeats", type=int, help="timed iterations per layer measurement (default 11; quick 5)")
    p.add_argument("--steps", type=int, help="timed training steps of the conv benchmark (default 10)")
    p.add_argument("--libs", nargs="+", default=list(LIBS), help=f"libraries (default: {' '.join(LIBS)})")
    p.add_argument(
        "--neurons",
        nargs="+",
        default=["all"],
        metavar="NAMES",
        help="spikekit neurons of the layer and compile benchmarks: 'all' (default: every registered"
        " neuron) or names, e.g. lif,alif (the peers always run their LIF)",
    )
    p.add_argument(
        "--only",
        nargs="+",
        default=["layer", "conv", "compile"],
        choices=["layer", "conv", "compile", "accuracy"],
        help="benchmarks to run (default: layer conv compile; compile times the fused kernel's first"
        " use with a cold and a warm cache; accuracy trains the conv SNN on digits)",
    )
    p.add_argument("--epochs", type=int, default=5, help="epochs of the accuracy run (default 5)")
    p.add_argument("--out", default="bench-results", help="output directory (default bench-results)")


def _worker_main(task: dict[str, Any]) -> None:
    if task["kind"] == "layer":
        r = _layer_worker(
            task["lib"], task["n"], task["T"], task["B"], task["repeats"], task.get("neuron", "lif")
        )
    elif task["kind"] == "first_use":
        r = _first_use_worker(task["neuron"], task["n"], task["T"], task["B"])
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
